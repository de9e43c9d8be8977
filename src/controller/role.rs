//! One role's turn, in kube-rs's shape: `reconcile(role, &Context)` brings the role to its desired state and
//! says when it runs next (an `Action`), or fails with a `ReconcileError` that the one `error_policy` turns into
//! an `Action`. What the reconcile did (outcome, plan, writes) is kept in the role's store record, where `pass`
//! reads it for its report and the drift gauges are counted from.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tracing::Instrument;

use super::context::Context;
use super::observe::Source;
use super::reconcile::{
    ApplyRules, Outcome, Ownership, ReconcileError, RoleReport, converge, unobserved,
};
use super::store::{LastReconcile, PlanUse, PublishedRole};
use crate::config::{Config, Mode};
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

/// The role to reconcile, and what this run allows: the mode, and the write counter of the blast-radius cap
/// (`pass`'s own, or the daemon's current window).
pub(crate) struct RoleRun<'a> {
    /// The role.
    pub(crate) key: RoleKey,
    /// `enforce` or `dry-run`.
    pub(crate) mode: Mode,
    /// Roles written so far under the cap (shared by concurrent reconciles).
    pub(crate) roles_written: &'a AtomicUsize,
    /// Whether its plan is kept for a report.
    pub(crate) plans: PlanUse,
}

/// Bring one role to its desired state: take the `desired` state the last sweep published, read what IAM holds
/// (`observed`: from the account's snapshot when one was read after the role's last known change, otherwise per
/// role), plan the `delta` and apply it (`converge`). A write marks the role, so that the snapshot read before it
/// is never used for it again. Then say when the role runs next:
/// * no longer managed (before or after): nothing until it is published again;
/// * the blast-radius cap held the write back: when the next write window opens;
/// * it wrote: after the settle window, and not before;
/// * otherwise: nothing until a sweep or an event asks again.
///
/// Success resets the role's backoff; a failure is returned for `error_policy`.
pub(crate) async fn reconcile(role: &RoleRun<'_>, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = &role.key;
    let Some(published) = ctx.store.published(key) else {
        return Ok(Action::AwaitChange);
    };
    if !super::fence::is_ours(ctx, &key.account) {
        // Another replica holds the account's shard (coordination): its sweeps queue the role there.
        return Ok(Action::AwaitChange);
    }
    let rt = ctx.runtime();
    let rules = ApplyRules {
        mode: role.mode,
        removals: &published.removals,
        safety: &rt.config.safety,
        roles_written: role.roles_written,
    };
    let report = observe_and_converge(key, &published, rules, &rt.config, ctx)
        .instrument(super::fence::lease_span(ctx, &key.account))
        .await;
    let RoleReport {
        plan,
        outcome,
        error,
        writes,
        capped,
        ..
    } = report;
    if let Some(doc) = plan.as_ref().and_then(|p| p.desired.as_ref()) {
        let ratio = crate::policy::iam_size(doc) as f64 / crate::plan::INLINE_POLICY_LIMIT as f64;
        ctx.metrics.policy_size_ratio.observe(ratio);
    }
    ctx.store.record_reconcile(
        key,
        LastReconcile {
            outcome,
            plan: plan.map(Box::new),
            writes,
        },
        role.plans,
    );
    super::record_drift(ctx);
    if let Some(error) = error {
        tracing::warn!(role = %key, error = %error, step = error.step(), retryable = error.is_retryable(), "reconcile failed");
        return Err(error);
    }
    if !ctx.store.is_managed(key) {
        // The role left the desired state while it was reconciled: nothing more to do for it.
        return Ok(Action::AwaitChange);
    }
    ctx.store.reset_backoff(key);
    Ok(match outcome {
        _ if capped => Action::HeldByWriteCap,
        Outcome::Applied => Action::Settle(rt.config.settle_window),
        _ => Action::AwaitChange,
    })
}

/// Read the role from the account's snapshot when one was read after the role's last known change, otherwise per
/// role (or, with `observe: bulk`, from a new snapshot), and converge it. Keeps what a per-role read of it costs,
/// and marks a role that wrote, so that IAM state read before its writes, or inside the settle window after them,
/// is never used for it.
async fn observe_and_converge(
    key: &RoleKey,
    published: &PublishedRole,
    rules: ApplyRules<'_>,
    config: &Config,
    ctx: &Context,
) -> RoleReport {
    let iam = published.iam.as_ref();
    let fresh_after = ctx.store.fresh_after(key, || ctx.snapshots.now());
    let snapshots = &ctx.snapshots;
    let snapshot = snapshots
        .for_role(config.observe, &key.account, fresh_after, iam, &ctx.metrics)
        .await;
    let owned = Ownership {
        policy_name: &config.inline_policy_name,
        spill_path: &config.spill_path,
        listings: &ctx.spill_listings,
        documents: &ctx.policies,
    };
    let report = match &snapshot {
        Ok(snapshot) => {
            let source = snapshot
                .as_deref()
                .map_or(Source::PerRole, Source::Snapshot);
            let desired = &published.desired;
            converge(desired, iam, source, &owned, rules, &ctx.metrics).await
        }
        Err(error) => unobserved(error.clone(), &ctx.metrics),
    };
    if report.per_role_cost > 0 {
        ctx.store.record_per_role_cost(key, report.per_role_cost);
    }
    if report.writes > 0 || matches!(report.error, Some(ReconcileError::WriteFailed(_))) {
        let settles_at = tokio::time::Instant::now() + config.settle_window;
        ctx.store.written(key, snapshots.now(), settles_at);
    }
    report
}

/// The one mapping from a failed reconcile to the role's next run (kube-rs's `error_policy`): a retryable
/// error (throttling, 5xx, time-outs, connection) backs off per role, exponentially with jitter, never giving
/// up; a terminal one (access denied, invalid input, refused) waits for the target's next resync. A role that
/// is no longer managed waits for a change.
pub(crate) fn error_policy(role: &RoleKey, error: &ReconcileError, ctx: &Context) -> Action {
    if !ctx.store.is_managed(role) {
        return Action::AwaitChange;
    }
    if !error.is_retryable() {
        ctx.store.reset_backoff(role);
        return Action::AtResync;
    }
    let delay = ctx.store.next_backoff(role, &ctx.runtime().config.backoff);
    tracing::debug!(role = %role, delay_ms = delay.as_millis() as u64, "role backs off");
    Action::Backoff(delay)
}
