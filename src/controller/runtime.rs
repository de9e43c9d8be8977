//! The daemon: per-target sweep loops, the workers that drain the work queue, and the policy that turns a
//! reconcile's result into the role's next run time (kube-rs's `Action` and `error_policy`). The loops run as
//! one *generation* per configuration: a reload ends the generation (work in flight drains) and starts the next
//! with the new configuration; shutdown ends the last one.
//!
//! Nothing here sleeps inside a reconcile: every wait is a run time in the queue or a sweep loop's timer, on
//! `tokio::time`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Controller, Outcome, ReconcileError, RoleReport, Runtime, lock};
use crate::aws::{KeyBackoff, jittered};
use crate::model::RoleKey;

/// What to do with a role after its reconcile: everything the worker needs, no reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing until something changes (a sweep or an event adds it again).
    AwaitChange,
    /// Nothing until the next periodic sweep of the role's target, which queues every role (a terminal error:
    /// retrying sooner cannot help).
    AtResync,
    /// It wrote: judge it again after this settle window (IAM is eventually consistent), and not before.
    Settle(Duration),
    /// A retryable error: run again after this per-role backoff.
    Backoff(Duration),
    /// The blast-radius cap held its write back: run again when the next write window opens.
    HeldByWriteCap,
}

impl Action {
    /// The `reason` label of `execrole_work_queue_retries_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::AwaitChange => "await_change",
            Action::AtResync => "resync",
            Action::Settle(_) => "settle",
            Action::Backoff(_) => "backoff",
            Action::HeldByWriteCap => "capped",
        }
    }
}

/// Per-target sweep triggers: an event or a reload asks for an account to be swept now.
#[derive(Default)]
pub(crate) struct Triggers {
    by_account: std::sync::Mutex<std::collections::BTreeMap<String, Arc<Notify>>>,
}

impl Triggers {
    pub(crate) fn of(&self, account: &str) -> Arc<Notify> {
        lock(&self.by_account)
            .entry(account.to_string())
            .or_default()
            .clone()
    }
}

impl Controller {
    /// Run until `shutdown` fires: sweeps, workers, and (when configured) the events loop and config reloads.
    /// `reload_requests` is notified on SIGHUP.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        source: &dyn super::ClientSource,
        reload_requests: Arc<Notify>,
    ) {
        let triggers = Triggers::default();
        loop {
            let rt = self.runtime();
            let generation = shutdown.child_token();
            // Built in loops rather than with iterator closures, so the future stays `Send`.
            let mut sweeps = Vec::with_capacity(rt.targets.len());
            for index in 0..rt.targets.len() {
                sweeps.push(self.sweep_loop(&rt, index, &generation, &triggers));
            }
            let mut workers = Vec::with_capacity(rt.config.concurrency);
            for _ in 0..rt.config.concurrency {
                workers.push(self.worker(&generation));
            }
            let sweeps = futures::future::join_all(sweeps);
            let workers = futures::future::join_all(workers);
            let events = self.event_loop(&rt, source, &generation, &triggers);
            let reloads = self.reload_loop(&rt, source, &generation, &reload_requests);
            tokio::join!(sweeps, workers, events, reloads);
            if shutdown.is_cancelled() {
                break;
            }
            // A new configuration: forget the desired state the old one published (its scope, targets and
            // completeness no longer hold). Queued roles then find nothing to do until the new generation's
            // first sweeps publish again and queue every role.
            self.forget_desired_state(&self.runtime());
        }
        self.metrics.work_queue_in_flight.set(0);
        tracing::info!("controller stopped");
    }

    /// Sweep one target every resync interval (with jitter), or at once when triggered; after a failed sweep,
    /// sooner, with backoff. A periodic sweep queues every role of the target (the level-triggered resync); a
    /// triggered one only the roles whose desired state changed.
    async fn sweep_loop(
        &self,
        rt: &Runtime,
        index: usize,
        generation: &CancellationToken,
        triggers: &Triggers,
    ) {
        let account = rt.targets[index].0.account.clone();
        let trigger = triggers.of(&account);
        let config = &rt.config;
        let mut failures: Option<KeyBackoff> = None;
        // The periodic resync keeps its own deadline: sweeps triggered by events in between never postpone it.
        let mut next_resync = Instant::now();
        let mut periodic = true;
        loop {
            let started = Instant::now();
            // A sweep only reads, so a shutdown or a reload may drop it half-way.
            let sweep = tokio::select! {
                biased;
                _ = generation.cancelled() => break,
                sweep = self.sweep(rt, index) => sweep,
            };
            let complete = sweep.is_complete();
            let retryable = sweep.errors.iter().filter(|e| e.is_retryable()).count();
            let unobserved = sweep.errors.len();
            let all: Vec<RoleKey> = sweep.roles.iter().map(|r| r.desired.key.clone()).collect();
            let changed = self.publish(rt, sweep);
            let queued = if periodic { all } else { changed };
            for key in &queued {
                self.enqueue(key.clone(), Instant::now());
            }
            self.count_pass(complete, self.health.is_ready());
            tracing::info!(
                account = %account,
                result = if complete { "success" } else { "failure" },
                periodic,
                unobserved,
                retryable,
                queued = queued.len(),
                task_definitions = self.metrics.task_definitions_watched.get(),
                cached = self.watcher.cached_count(),
                duration_ms = started.elapsed().as_millis() as u64,
                "sweep finished"
            );
            if periodic {
                next_resync =
                    Instant::now() + jittered(config.resync_interval, config.resync_jitter);
            }
            let retry_at = if complete {
                failures = None;
                None
            } else {
                let delay = failures
                    .get_or_insert_with(|| KeyBackoff::for_settings(&config.backoff))
                    .next_delay()
                    .min(config.resync_interval);
                Some(Instant::now() + delay)
            };
            let wake = retry_at.map_or(next_resync, |at| at.min(next_resync));
            tokio::select! {
                biased;
                _ = generation.cancelled() => break,
                _ = tokio::time::sleep_until(wake) => periodic = true,
                _ = trigger.notified() => periodic = false,
            }
        }
    }

    /// Take roles off the queue and reconcile them, one at a time, until the generation ends; the role in hand
    /// is always finished.
    async fn worker(&self, generation: &CancellationToken) {
        loop {
            let key = tokio::select! {
                biased;
                _ = generation.cancelled() => break,
                key = self.queue.next() => key,
            };
            let Some(key) = key else { break };
            self.metrics.work_queue_in_flight.inc();
            self.record_queue();
            let rt = self.runtime();
            let mode = self.mode(&rt.config);
            let (budget, window_end) = self.budget.current(rt.config.resync_interval);
            let report = self.reconcile_key(&rt, &key, mode, budget).await;
            let action = match &report {
                Some(report) => self.next_action(&rt, &key, report),
                None => Action::AwaitChange,
            };
            self.queue.done(&key);
            self.metrics.work_queue_in_flight.dec();
            let at = match action {
                Action::AwaitChange => None,
                Action::AtResync => {
                    self.metrics
                        .work_queue_retries
                        .with_label_values(&[action.as_str()])
                        .inc();
                    None
                }
                Action::Settle(after) => {
                    let at = Instant::now() + after;
                    self.queue.hold_until(key.clone(), at);
                    Some(at)
                }
                Action::Backoff(after) => Some(Instant::now() + after),
                Action::HeldByWriteCap => Some(window_end),
            };
            if let Some(at) = at {
                self.metrics
                    .work_queue_retries
                    .with_label_values(&[action.as_str()])
                    .inc();
                self.enqueue(key, at);
            }
            self.record_queue();
        }
    }

    /// The role's next run after a reconcile:
    /// * a failure: what `error_policy` says;
    /// * held back by the blast-radius cap: when the next window opens;
    /// * wrote: judge it again after the settle window, and not before;
    /// * otherwise: nothing until a sweep or an event asks again. Success resets the backoff.
    fn next_action(&self, rt: &Runtime, key: &RoleKey, report: &RoleReport) -> Action {
        if !self.store.is_managed(key) {
            // The role left the desired state while it was reconciled: nothing more to do for it.
            return Action::AwaitChange;
        }
        if let Some(error) = &report.error {
            return self.error_policy(rt, key, error);
        }
        self.store.reset_backoff(key);
        if report.capped {
            return Action::HeldByWriteCap;
        }
        match report.outcome {
            Outcome::Applied => Action::Settle(rt.config.settle_window),
            _ => Action::AwaitChange,
        }
    }

    /// The one mapping from a failed reconcile to the role's next run (kube-rs's `error_policy`): a retryable
    /// error (throttling, 5xx, time-outs, connection) backs off per role, exponentially with jitter, never giving
    /// up; a terminal one (access denied, invalid input, refused) waits for the target's next resync.
    fn error_policy(&self, rt: &Runtime, key: &RoleKey, error: &ReconcileError) -> Action {
        if !error.is_retryable() {
            self.store.reset_backoff(key);
            return Action::AtResync;
        }
        let delay = self.store.next_backoff(key, &rt.config.backoff);
        tracing::debug!(role = %key, delay_ms = delay.as_millis() as u64, "role backs off");
        Action::Backoff(delay)
    }

    /// Ask for a role to run at `at` (duplicates collapse; the earlier time wins).
    pub(crate) fn enqueue(&self, key: RoleKey, at: Instant) {
        self.metrics.work_queue_adds.inc();
        self.queue.add_at(key, at);
        self.record_queue();
    }

    /// Forget every published desired state (after a reload), and what is known of the accounts and Regions the
    /// new configuration `rt` no longer watches. Only a reload changes the targets, so this is the one place.
    fn forget_desired_state(&self, rt: &Runtime) {
        let accounts: std::collections::BTreeSet<&str> =
            rt.targets.iter().map(|(t, _)| t.account.as_str()).collect();
        self.store.forget(&accounts);
        let watched: std::collections::BTreeSet<(String, String)> = rt
            .targets
            .iter()
            .flat_map(|(t, _)| t.regions.iter().map(|r| (t.account.clone(), r.clone())))
            .collect();
        self.watcher.retain_targets(&watched);
        self.record_drift();
    }

    pub(super) fn record_queue(&self) {
        self.metrics.work_queue_depth.set(self.queue.len() as i64);
    }

    /// Whether the daemon has nothing waiting or running (for tests and `--once`-like waits).
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.queue.in_flight() == 0
    }

    /// Whether `run --dry-run` forced observe-only.
    pub fn is_forced_dry_run(&self) -> bool {
        self.force_dry_run.load(Ordering::SeqCst)
    }
}
