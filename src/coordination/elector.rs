//! The elector: one round every third of a lease (announce, renew, give up the excess, take up to the fair
//! share), and on shutdown, giving every lease up at once. Each lease change is counted
//! (`execrole_lease_transitions_total`) and logged with its shard and fencing counter.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shard::{fair_share, lease_key, preference, shard_of_key};
use super::{Clock, Held, LeaseSettings, Leases};
use crate::aws::{AwsError, LeaseItem, LeaseTable};
use crate::metrics::{LeaseEvent, Metrics};

/// How often a replica looks for shards it could take between rounds.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);

/// What one round read from the table.
struct TableView {
    /// Live replicas, this one included.
    replicas: usize,
    /// The shard leases there are.
    shards: BTreeMap<u32, LeaseItem>,
}

/// Keeps this replica's [`Leases`] up to date against the table.
pub struct Elector {
    table: Arc<dyn LeaseTable>,
    clock: Arc<dyn Clock>,
    settings: LeaseSettings,
    leases: Arc<Leases>,
    metrics: Arc<Metrics>,
}

impl Elector {
    /// An elector for `leases` over `table`.
    pub fn new(
        table: Arc<dyn LeaseTable>,
        clock: Arc<dyn Clock>,
        settings: LeaseSettings,
        leases: Arc<Leases>,
        metrics: Arc<Metrics>,
    ) -> Elector {
        Elector {
            table,
            clock,
            settings,
            leases,
            metrics,
        }
    }

    /// Run rounds every third of a lease until `shutdown`, then give every lease up. In between, every
    /// [`WATCH_INTERVAL`], one read of the table looks for shards this replica could take now (one given up on
    /// SIGTERM, or a replica gone), and runs a round at once when it finds one: so a hand-over takes well under a
    /// second whatever the lease duration, for one `Scan` per interval.
    pub async fn run(&self, shutdown: CancellationToken) {
        let renew = self.settings.renew_interval();
        let mut next_round = Instant::now();
        loop {
            if Instant::now() >= next_round || self.could_take_more().await {
                self.round().await;
                next_round = Instant::now() + renew;
            }
            let wake = next_round.min(Instant::now() + WATCH_INTERVAL);
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        self.release_all().await;
    }

    /// Whether the table shows a free or ended shard while this replica holds less than its fair share. A table
    /// that cannot be read says no (the next round reports it).
    async fn could_take_more(&self) -> bool {
        let held = self.leases.held().len();
        if held >= self.settings.shards as usize {
            return false;
        }
        let now = self.clock.now_ms();
        let Ok(items) = self.table.scan().await else {
            return false;
        };
        let view = self.view(items, now);
        let free = (0..self.settings.shards)
            .any(|k| view.shards.get(&k).is_none_or(|i| i.expires_ms < now));
        free && held < fair_share(self.settings.shards, view.replicas)
    }

    /// One round: announce this replica, read the table, renew what is held, give up what exceeds the fair
    /// share, and take free shards up to it. A table that cannot be reached changes nothing held: those leases
    /// run on until they end (and stop writes then).
    pub async fn round(&self) {
        let sent = Instant::now();
        let now = self.clock.now_ms();
        let view = match self.observe(now).await {
            Ok(view) => view,
            Err(error) => {
                self.metrics.observe_lease(LeaseEvent::Failure);
                self.leases.set_table_reachable(false);
                tracing::warn!(replica = self.leases.replica(), error = %error, "cannot reach the lease table; held leases stop writes when they end");
                return;
            }
        };
        self.leases.set_table_reachable(true);
        self.metrics.replicas_seen.set(view.replicas as i64);
        self.renew_held(sent, now).await;
        let fair = fair_share(self.settings.shards, view.replicas);
        self.release_excess(fair).await;
        self.acquire_free(&view, fair, sent, now).await;
        self.publish();
    }

    /// Heartbeat, then read every lease and heartbeat.
    async fn observe(&self, now: u64) -> Result<TableView, AwsError> {
        let lease_ms = self.settings.lease_duration.as_millis() as u64;
        self.table
            .heartbeat(self.leases.replica(), now + lease_ms)
            .await?;
        let items = self.table.scan().await?;
        Ok(self.view(items, now))
    }

    /// What the table's items say at `now`: live replicas (this one always counted) and shard leases.
    fn view(&self, items: Vec<LeaseItem>, now: u64) -> TableView {
        let replicas = items
            .iter()
            .filter(|i| i.key.starts_with("replica#"))
            .filter(|i| i.expires_ms > now && i.holder != self.leases.replica())
            .count()
            + 1;
        let shards = items
            .into_iter()
            .filter_map(|i| Some((shard_of_key(&i.key)?, i)))
            .filter(|(k, _)| *k < self.settings.shards)
            .collect();
        TableView { replicas, shards }
    }

    /// Renew every held lease; one whose condition fails (taken over, or ended) is lost at once.
    async fn renew_held(&self, sent: Instant, now: u64) {
        let expires = now + self.settings.lease_duration.as_millis() as u64;
        for shard in self.leases.held() {
            let Some(counter) = self.leases.counter_of(shard) else {
                continue;
            };
            let answer = self
                .table
                .renew(
                    &lease_key(shard),
                    self.leases.replica(),
                    counter,
                    now,
                    expires,
                )
                .await;
            match answer {
                Ok(true) => {
                    let valid_until = self.settings.valid_until(sent);
                    self.leases.insert(
                        shard,
                        Held {
                            counter,
                            valid_until,
                        },
                    );
                    self.metrics.observe_lease(LeaseEvent::Renewed);
                }
                Ok(false) => {
                    self.leases.remove(shard);
                    self.metrics.observe_lease(LeaseEvent::Lost);
                    tracing::warn!(
                        replica = self.leases.replica(),
                        shard,
                        fencing_counter = counter,
                        "shard lease lost (taken over or ended before renewal); writes to its accounts stopped"
                    );
                }
                Err(error) => {
                    self.metrics.observe_lease(LeaseEvent::Failure);
                    tracing::warn!(replica = self.leases.replica(), shard, fencing_counter = counter, error = %error, "cannot renew a shard lease; it stops writes when it ends");
                }
            }
        }
    }

    /// Give up the held leases beyond `fair`, the least preferred first (a replica joined).
    async fn release_excess(&self, fair: usize) {
        let mut held: Vec<u32> = self.leases.held().into_iter().collect();
        if held.len() <= fair {
            return;
        }
        let excess = held.len() - fair;
        held.sort_by_key(|&k| preference(self.leases.replica(), k));
        for shard in held.into_iter().take(excess) {
            self.release(shard, "more than the fair share").await;
        }
    }

    /// Take free or expired shards, the most preferred first, until `fair` are held.
    async fn acquire_free(&self, view: &TableView, fair: usize, sent: Instant, now: u64) {
        let me = self.leases.replica();
        let held = self.leases.held();
        let mut free: Vec<u32> = (0..self.settings.shards)
            .filter(|k| !held.contains(k))
            .filter(|k| view.shards.get(k).is_none_or(|i| i.expires_ms < now))
            .collect();
        free.sort_by_key(|&k| std::cmp::Reverse(preference(me, k)));
        let expires = now + self.settings.lease_duration.as_millis() as u64;
        for shard in free.into_iter().take(fair.saturating_sub(held.len())) {
            let before = view.shards.get(&shard);
            let item = LeaseItem {
                key: lease_key(shard),
                holder: me.to_string(),
                expires_ms: expires,
                counter: before.map_or(1, |i| i.counter + 1),
            };
            match self
                .table
                .acquire(&item, now, before.map(|i| i.counter))
                .await
            {
                Ok(true) => {
                    let valid_until = self.settings.valid_until(sent);
                    self.leases.insert(
                        shard,
                        Held {
                            counter: item.counter,
                            valid_until,
                        },
                    );
                    self.metrics.observe_lease(LeaseEvent::Acquired);
                    tracing::info!(
                        replica = me,
                        shard,
                        fencing_counter = item.counter,
                        previous_holder = before.map_or("", |i| i.holder.as_str()),
                        "shard lease acquired"
                    );
                }
                Ok(false) => {}
                Err(error) => {
                    self.metrics.observe_lease(LeaseEvent::Failure);
                    tracing::warn!(replica = me, shard, error = %error, "cannot take a shard lease");
                    return;
                }
            }
        }
    }

    /// Give one lease up: stop writing under it first, then end it in the table.
    async fn release(&self, shard: u32, why: &str) {
        let Some(held) = self.leases.remove(shard) else {
            return;
        };
        self.publish();
        let me = self.leases.replica();
        match self
            .table
            .release(&lease_key(shard), me, held.counter)
            .await
        {
            Ok(_) => {
                self.metrics.observe_lease(LeaseEvent::Released);
                tracing::info!(
                    replica = me,
                    shard,
                    fencing_counter = held.counter,
                    why,
                    "shard lease released"
                );
            }
            Err(error) => {
                // Writes stopped already; the lease ends by itself.
                self.metrics.observe_lease(LeaseEvent::Failure);
                tracing::warn!(replica = me, shard, error = %error, "cannot release a shard lease; it ends by itself");
            }
        }
    }

    /// Give every lease up and retire the heartbeat (shutdown): other replicas take the shards at their next
    /// round, not a lease later.
    pub async fn release_all(&self) {
        for shard in self.leases.held() {
            self.release(shard, "shutdown").await;
        }
        if let Err(error) = self.table.retire(self.leases.replica()).await {
            tracing::warn!(replica = self.leases.replica(), error = %error, "cannot remove the heartbeat; it ends by itself");
        }
        self.publish();
    }

    /// Tell subscribers and the gauge what is held.
    fn publish(&self) {
        self.leases.publish();
        self.metrics
            .shard_leases_held
            .set(self.leases.held().len() as i64);
    }
}
