//! Several replicas sharing the work (`coordination:` in the config): target accounts are hashed into shards
//! (`shard`), each shard has one lease in a DynamoDB table, and a replica writes only the roles of accounts in
//! shards it holds, and only while its lease is valid with a margin for clock skew (the Kubernetes Lease and the
//! DynamoDB Lock Client, per shard).
//!
//! [`Leases`] is what the controller reads: which shards this replica holds, and the term (shard and fencing
//! counter) under which a write may go out *now*. The [`Elector`] keeps it up to date: every third of a lease it
//! announces the replica (a heartbeat item), renews what it holds, gives up what exceeds its fair share
//! ceil(shards / live replicas), and takes free or expired shards up to it; on shutdown it gives everything up
//! at once. All table writes are conditional (`crate::aws::LeaseTable`).
//!
//! Safety does not rest on the clocks agreeing: a holder's lease is valid by its own monotonic clock from the
//! moment it *sent* the write that took or renewed it, for the lease duration less `clock_skew_margin`; another
//! replica takes it only once the table's expiry (written by the holder's wall clock) is past by its own wall
//! clock. So writes under two terms never overlap while the clocks differ by less than the margin.
//!
//! This module decides nothing about roles; it does not know IAM.

mod clock;
mod elector;
#[cfg(test)]
pub(crate) mod memory;
pub mod shard;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

#[cfg(test)]
pub(crate) use clock::TokioClock;
pub use clock::{Clock, SystemClock};
pub use elector::Elector;

/// The lease settings the elector runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How many shards.
    pub shards: u32,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// How long before its end (by its own clock) a holder stops writing.
    pub clock_skew_margin: Duration,
}

impl From<&crate::config::Coordination> for LeaseSettings {
    fn from(c: &crate::config::Coordination) -> Self {
        LeaseSettings {
            shards: c.shards,
            lease_duration: c.lease_duration,
            clock_skew_margin: c.clock_skew_margin,
        }
    }
}

impl LeaseSettings {
    /// How often leases are renewed: a third of the lease.
    pub fn renew_interval(&self) -> Duration {
        self.lease_duration / 3
    }

    /// How long a lease taken or renewed by a request sent at `sent` may be written under.
    fn valid_until(&self, sent: Instant) -> Instant {
        sent + self.lease_duration.saturating_sub(self.clock_skew_margin)
    }
}

/// A lease term: the shard and its fencing counter, which grows on every take-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    /// The shard.
    pub shard: u32,
    /// The fencing counter of this holder's term.
    pub counter: u64,
}

/// A lease this replica holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    counter: u64,
    valid_until: Instant,
}

/// Which shards this replica holds, shared by the elector (which changes it) and the controller (which reads it
/// before every write).
pub struct Leases {
    replica: String,
    shards: u32,
    held: Mutex<BTreeMap<u32, Held>>,
    changes: watch::Sender<BTreeSet<u32>>,
    table_reachable: AtomicBool,
}

impl Leases {
    /// No shard held yet.
    pub fn new(replica: &str, shards: u32) -> Arc<Leases> {
        Arc::new(Leases {
            replica: replica.to_string(),
            shards: shards.max(1),
            held: Mutex::default(),
            changes: watch::channel(BTreeSet::new()).0,
            table_reachable: AtomicBool::new(false),
        })
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The shard of an account.
    pub fn shard_of(&self, account: &str) -> u32 {
        shard::shard_of(account, self.shards)
    }

    /// The term under which a write to a role of `account` may go out now: its shard is held, and the lease is
    /// valid for longer than the clock-skew margin. `None`: do not write.
    pub fn term_for(&self, account: &str) -> Option<Term> {
        let shard = self.shard_of(account);
        let held = *self.lock().get(&shard)?;
        (Instant::now() < held.valid_until).then_some(Term {
            shard,
            counter: held.counter,
        })
    }

    /// Whether this replica holds the shard of `account` (valid now).
    pub fn holds_account(&self, account: &str) -> bool {
        self.term_for(account).is_some()
    }

    /// The shards held, valid or not yet found lost.
    pub fn held(&self) -> BTreeSet<u32> {
        self.lock().keys().copied().collect()
    }

    /// Changes of the set of shards held.
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.changes.subscribe()
    }

    /// Whether the last round of the elector reached the table.
    pub fn is_table_reachable(&self) -> bool {
        self.table_reachable.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u32, Held>> {
        // Every update is a single insert or remove: a poisoned lock still holds consistent data.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, shard: u32, held: Held) {
        self.lock().insert(shard, held);
    }

    fn remove(&self, shard: u32) -> Option<Held> {
        self.lock().remove(&shard)
    }

    fn counter_of(&self, shard: u32) -> Option<u64> {
        self.lock().get(&shard).map(|h| h.counter)
    }

    fn set_table_reachable(&self, reachable: bool) {
        self.table_reachable.store(reachable, Ordering::SeqCst);
    }

    /// Tell subscribers the held set, when it changed.
    fn publish(&self) {
        let held = self.held();
        self.changes.send_if_modified(|current| {
            let changed = *current != held;
            *current = held;
            changed
        });
    }
}

/// This replica's id when the config gives none: the hostname, the pid and a random suffix (two tasks on one
/// host, or a restarted pid, never share an id).
pub fn default_replica_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "execrole".to_string());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let suffix = hasher.finish() & 0xffff_ffff;
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(96)
        .collect();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}
