//! The daemon: per-target sweep loops, and the workers that drain the work queue and schedule each role's next
//! run from the `Action` its reconcile (or `error_policy`) returned (both in `role.rs`). The loops run as
//! one *generation* per configuration: a reload ends the generation (work in flight drains) and starts the next
//! with the new configuration; shutdown ends the last one.
//!
//! Nothing here sleeps inside a reconcile: every wait is a run time in the queue or a sweep loop's timer, on
//! `tokio::time`.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::event_loop::event_loop;
use super::reload::reload_loop;
use super::role::{Action, RoleRun, error_policy, reconcile};
use super::store::PlanUse;
use super::{
    Controller, Runtime, count_pass, lock, prepare_observation, publish, record_drift, sweep_target,
};
use crate::aws::{KeyBackoff, jittered};
use crate::model::RoleKey;

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
        run(&self.ctx, shutdown, source, reload_requests).await
    }

    /// Whether the daemon has nothing waiting or running (for tests and `--once`-like waits).
    pub fn is_idle(&self) -> bool {
        self.ctx.queues.is_empty() && self.ctx.queues.in_flight() == 0
    }

    /// Whether `run --dry-run` forced observe-only.
    pub fn is_forced_dry_run(&self) -> bool {
        self.ctx.is_forced_dry_run()
    }
}

/// Run until `shutdown` fires: sweeps, workers, and (when configured) the events loop and config reloads.
/// `reload_requests` is notified on SIGHUP.
async fn run(
    ctx: &Context,
    shutdown: CancellationToken,
    source: &dyn super::ClientSource,
    reload_requests: Arc<Notify>,
) {
    let triggers = Triggers::default();
    loop {
        let rt = ctx.runtime();
        let generation = shutdown.child_token();
        // Built in loops rather than with iterator closures, so the future stays `Send`.
        let mut sweeps = Vec::with_capacity(rt.targets.len());
        for index in 0..rt.targets.len() {
            sweeps.push(sweep_loop(ctx, &rt, index, &generation, &triggers));
        }
        // Each account has its own workers on its own queue: a slow or throttled account holds up only itself.
        let mut workers = Vec::with_capacity(rt.config.concurrency * rt.targets.len());
        for (target, _) in &rt.targets {
            for _ in 0..rt.config.concurrency {
                workers.push(worker(ctx, &target.account, &generation));
            }
        }
        let sweeps = futures::future::join_all(sweeps);
        let workers = futures::future::join_all(workers);
        let events = event_loop(ctx, &rt, source, &generation, &triggers);
        let reloads = reload_loop(ctx, &rt, source, &generation, &reload_requests);
        let readiness = super::fence::track_readiness(ctx, &generation);
        tokio::join!(sweeps, workers, events, reloads, readiness);
        if shutdown.is_cancelled() {
            break;
        }
        // A new configuration: forget the desired state the old one published (its scope, targets and
        // completeness no longer hold). Queued roles then find nothing to do until the new generation's
        // first sweeps publish again and queue every role.
        forget_desired_state(ctx, &ctx.runtime());
    }
    ctx.metrics.work_queue_in_flight.set(0);
    tracing::info!("controller stopped");
}

/// Sweep one target every resync interval (with jitter), or at once when triggered; after a failed sweep,
/// sooner, with backoff. A periodic sweep queues every role of the target (the level-triggered resync); a
/// triggered one only the roles whose desired state changed.
async fn sweep_loop(
    ctx: &Context,
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
        match super::fence::wait_for_shard(ctx, &account, generation).await {
            super::fence::ShardWait::Held => {}
            super::fence::ShardWait::Acquired => periodic = true,
            super::fence::ShardWait::Cancelled => break,
        }
        let started = Instant::now();
        // A sweep only reads, so a shutdown or a reload may drop it half-way.
        let sweep = tokio::select! {
            biased;
            _ = generation.cancelled() => break,
            sweep = sweep_target(ctx, rt, index, PlanUse::CountOnly) => sweep,
        };
        let complete = sweep.is_complete();
        let retryable = sweep.errors.iter().filter(|e| e.is_retryable()).count();
        let unobserved = sweep.errors.len();
        let all: Vec<RoleKey> = sweep.roles.iter().map(|r| r.key().clone()).collect();
        let changed = publish(ctx, rt, sweep);
        let queued = if periodic { all } else { changed };
        // Reading the account's snapshot only reads, so a shutdown or a reload may drop it too.
        tokio::select! {
            biased;
            _ = generation.cancelled() => break,
            _ = prepare_observation(ctx, rt, index, &queued) => {}
        }
        for key in &queued {
            enqueue(ctx, key.clone(), Instant::now());
        }
        count_pass(ctx, complete, ctx.health.is_ready());
        tracing::info!(
            account = %account,
            result = if complete { "success" } else { "failure" },
            periodic,
            unobserved,
            retryable,
            queued = queued.len(),
            task_definitions = ctx.metrics.task_definitions_watched.get(),
            cached = ctx.watcher.cached_count(),
            duration_ms = started.elapsed().as_millis() as u64,
            "sweep finished"
        );
        if periodic {
            next_resync = Instant::now() + jittered(config.resync_interval, config.resync_jitter);
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

/// Take roles of `account` off its queue and reconcile them, one at a time, until the generation ends; the role
/// in hand is always finished.
async fn worker(ctx: &Context, account: &str, generation: &CancellationToken) {
    let queue = ctx.queues.of(account);
    loop {
        let key = tokio::select! {
            biased;
            _ = generation.cancelled() => break,
            key = queue.next() => key,
        };
        let Some(key) = key else { break };
        ctx.metrics.work_queue_in_flight.inc();
        record_queue(ctx);
        let rt = ctx.runtime();
        let mode = ctx.mode(&rt.config);
        let (budget, window_end) = ctx.budget.current(rt.config.resync_interval);
        let role = RoleRun {
            key,
            mode,
            roles_written: budget,
            plans: PlanUse::CountOnly,
        };
        let action = match reconcile(&role, ctx).await {
            Ok(action) => action,
            Err(error) => error_policy(&role.key, &error, ctx),
        };
        let key = role.key;
        queue.done(&key);
        ctx.metrics.work_queue_in_flight.dec();
        let at = match action {
            Action::AwaitChange => None,
            Action::AtResync => {
                ctx.metrics
                    .work_queue_retries
                    .with_label_values(&[action.as_str()])
                    .inc();
                None
            }
            Action::Settle(after) => {
                let at = Instant::now() + after;
                queue.hold_until(key.clone(), at);
                Some(at)
            }
            Action::Backoff(after) => Some(Instant::now() + after),
            Action::HeldByWriteCap => Some(window_end),
        };
        if let Some(at) = at {
            ctx.metrics
                .work_queue_retries
                .with_label_values(&[action.as_str()])
                .inc();
            enqueue(ctx, key, at);
        }
        record_queue(ctx);
    }
}

/// Ask for a role to run at `at` (duplicates collapse; the earlier time wins).
pub(crate) fn enqueue(ctx: &Context, key: RoleKey, at: Instant) {
    ctx.metrics.work_queue_adds.inc();
    ctx.queues.of(&key.account).add_at(key, at);
    record_queue(ctx);
}

/// Forget every published desired state (after a reload), and what is known of the accounts and Regions the
/// new configuration `rt` no longer watches. Only a reload changes the targets, so this is the one place.
fn forget_desired_state(ctx: &Context, rt: &Runtime) {
    let accounts: std::collections::BTreeSet<&str> =
        rt.targets.iter().map(|(t, _)| t.account.as_str()).collect();
    ctx.store.forget(&accounts);
    ctx.snapshots.forget();
    let watched: std::collections::BTreeSet<(String, String)> = rt
        .targets
        .iter()
        .flat_map(|(t, _)| t.regions.iter().map(|r| (t.account.clone(), r.clone())))
        .collect();
    ctx.watcher.retain_targets(&watched);
    record_drift(ctx);
}

pub(super) fn record_queue(ctx: &Context) {
    ctx.metrics.work_queue_depth.set(ctx.queues.len() as i64);
}
