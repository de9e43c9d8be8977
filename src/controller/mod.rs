//! The controller, in kube-rs vocabulary: *sweeps* observe the world (per target: list every page, describe
//! each new revision once, derive, group by execution role) and publish each role's desired state; a keyed
//! *work queue* of roles feeds a bounded set of *workers*, each of which reconciles one role (`desired`,
//! `observed`, `delta`, apply) and turns the result into the role's next run time: nothing (wait for a change),
//! after a settle window (it wrote), with per-role exponential backoff (a retryable error), or at the resync
//! interval (a terminal error). Sweeps repeat every resync interval with jitter, or at once when an event or a
//! config reload asks. A failing target, Region, revision or role never stops the others; on shutdown, work in
//! flight drains.
//!
//! Every step is a function over one `Context` (configuration and clients, store, queue, caches, metrics);
//! `Controller` is the thin public facade over it. `pass` runs the same steps once, synchronously, for
//! `run --once`, `plan` and tests. The controller talks to AWS
//! only through the `aws` traits, so tests drive it with in-memory fakes and a paused clock. It does not render
//! plans (`plan`) or serve HTTP (`http`); it records metrics and readiness for them.

mod context;
mod event_loop;
mod fence;
pub(crate) mod lookups;
mod observe;
mod queue;
mod reconcile;
mod reload;
mod role;
mod runtime;
mod snapshots;
mod spill;
mod store;
mod watcher;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use context::Context;
pub(crate) use context::Runtime;
pub use context::{ClientSource, Health, TargetClients};
pub use fence::Coordinated;
pub use observe::PolicyCache;
pub use queue::{WorkQueue, WorkQueues};
pub use reconcile::{ApplyRules, Outcome, ReconcileError, RoleReport};
pub use reload::ReloadOutcome;
pub use store::PlanUse;

use crate::aws::IamApi;
use crate::config::{Config, Mode, Target};
use crate::derive::{self, DeriveContext, Finding, FindingKind, Requirement};
use crate::metrics::Metrics;
use crate::model::RoleKey;
use crate::plan::{DesiredRole, Plan, Removals, RolePlan};
use role::RoleRun;
use runtime::record_queue;
use store::{AccountRecord, LastReconcile, PublishedRole, Store, SweptRole};

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// The plan per role (as observed before any write).
    pub plan: Plan,
    /// Count of roles per outcome.
    pub outcomes: BTreeMap<Outcome, usize>,
    /// IAM writes made.
    pub writes: usize,
    /// Targets or Regions that could not be fully observed.
    pub observe_errors: Vec<String>,
    /// How long the pass took.
    pub duration: Duration,
    /// Whether shutdown cut the pass short (some roles were not reconciled).
    pub interrupted: bool,
}

impl PassReport {
    /// Whether everything could be observed and every role reconciled.
    pub fn is_success(&self) -> bool {
        self.observe_errors.is_empty() && self.plan.errors.is_empty() && !self.interrupted
    }
}

/// Rule 13's permissions as requirements, with the config as their reason.
fn insights_requirements(configure: bool, view: bool) -> Vec<Requirement> {
    derive::container_insights_permissions(configure, view)
        .into_iter()
        .map(|permission| Requirement {
            permission,
            reasons: vec![derive::Reason {
                task_definition: "(config)".into(),
                container: "-".into(),
                field: "policy.container_insights".into(),
            }],
        })
        .collect()
}

/// What the revisions naming one role contribute: their names, requirements and findings.
#[derive(Default)]
struct RoleInputs {
    /// The revisions (`family:revision`).
    task_definitions: BTreeSet<String>,
    /// Their requirements, merged.
    requirements: derive::RequirementSet,
    /// Their findings.
    findings: BTreeSet<Finding>,
}

/// What the revisions of one account say about its roles, merged one revision at a time (a sweep never holds
/// every revision's derivation at once).
struct RoleFold {
    by_role: BTreeMap<RoleKey, RoleInputs>,
    /// Findings of revisions that name no usable role.
    loose: Vec<Finding>,
    /// Whether the requirements keep their reasons (`PlanUse::Report`) or drop them (`PlanUse::CountOnly`).
    plans: PlanUse,
}

impl RoleFold {
    fn new(plans: PlanUse) -> RoleFold {
        RoleFold {
            by_role: BTreeMap::new(),
            loose: Vec::new(),
            plans,
        }
    }

    /// Merge one revision's derivation into its role's inputs (or its findings into the loose ones).
    fn add(&mut self, account: &str, derivation: derive::Derivation) {
        match derivation.role {
            Some(role) if role.account == account => {
                let entry = self.by_role.entry(role).or_default();
                entry.task_definitions.insert(derivation.task_definition);
                for requirement in derivation.requirements {
                    entry.requirements.add(kept_for(self.plans, requirement));
                }
                entry.findings.extend(derivation.findings);
            }
            Some(role) => self.loose.push(Finding {
                kind: FindingKind::InvalidExecutionRole,
                task_definition: derivation.task_definition,
                container: None,
                field: Some("executionRoleArn".into()),
                message: format!(
                    "execution role {role} is not in the task definition's account {account}; it is not managed"
                ),
                holds: None,
            }),
            None => self.loose.extend(derivation.findings),
        }
    }
}

/// A requirement as a role keeps it: with its reasons for reports (`PlanUse::Report`), without them for the daemon
/// (`PlanUse::CountOnly`), which never shows them.
fn kept_for(plans: PlanUse, mut requirement: derive::Requirement) -> derive::Requirement {
    if plans == PlanUse::CountOnly {
        requirement.reasons = Vec::new();
    }
    requirement
}

/// What one sweep of one target saw.
struct Sweep {
    account: String,
    roles: Vec<SweptRole>,
    /// The findings of its roles.
    findings: BTreeSet<Finding>,
    /// Findings of revisions that name no usable role.
    loose: Vec<Finding>,
    /// What could not be observed.
    errors: Vec<watcher::ObserveError>,
    /// In-scope revisions counted.
    watched: usize,
    /// Of those, revisions kept for the prune grace period.
    in_grace: usize,
}

impl Sweep {
    fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The reconciling controller: a thin facade over its `Context` for `main`, the HTTP server, benches and tests.
pub struct Controller {
    ctx: Context,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single insert, remove or swap: a poisoned lock still holds
    // consistent data.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Controller {
    /// Build a controller and the clients of every target.
    pub async fn new(
        config: Config,
        clients: &dyn ClientSource,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Controller {
        let runtime = Runtime::build(config, clients).await;
        Controller {
            ctx: Context::new(runtime, metrics, health),
        }
    }

    /// Work only on the accounts in shards `coordinated` holds, and write only under a valid lease
    /// (`coordination`).
    pub fn coordinate(&mut self, coordinated: Coordinated) {
        self.ctx.health.watch_leases(coordinated.leases.clone());
        self.ctx.coordination = Some(coordinated);
    }

    /// Observe only, whatever the config (and any reloaded config) says: `run --dry-run`.
    pub fn force_dry_run(&self) {
        self.ctx.force_dry_run();
    }

    /// The configuration in force.
    pub fn config(&self) -> Config {
        self.ctx.runtime().config.clone()
    }

    /// One full pass: sweep every target, then reconcile every role in `mode` with bounded concurrency, and
    /// wait for all of it. `run --once`, `plan` and tests use it; the daemon runs the same steps through the
    /// work queue.
    pub async fn pass(&self, mode: Mode, shutdown: &CancellationToken) -> PassReport {
        pass(&self.ctx, mode, PlanUse::Report, shutdown).await
    }

    /// [`Controller::pass`], keeping each role's plan for the report (`PlanUse::Report`) or, as the daemon does,
    /// only its outcome (`PlanUse::CountOnly`: the report's `plan.roles` stays empty).
    pub async fn pass_with(
        &self,
        mode: Mode,
        plans: PlanUse,
        shutdown: &CancellationToken,
    ) -> PassReport {
        pass(&self.ctx, mode, plans, shutdown).await
    }
}

/// One full pass: every target at its own pace (sweep, then reconcile its roles in `mode` with its own bounded
/// concurrency), and wait for all of it. `run --once`, `plan` and tests use it; the daemon runs the same steps
/// through the work queues.
async fn pass(
    ctx: &Context,
    mode: Mode,
    plans: PlanUse,
    shutdown: &CancellationToken,
) -> PassReport {
    let started = tokio::time::Instant::now();
    let rt = ctx.runtime();
    let mut report = PassReport::default();
    let roles_written = AtomicUsize::new(0);
    let run = PassRun {
        mode,
        plans,
        shutdown,
        roles_written: &roles_written,
    };
    // With coordination, only the targets in shards this replica holds.
    let ours = (0..rt.targets.len()).filter(|&i| fence::is_ours(ctx, &rt.targets[i].0.account));
    let targets = futures::future::join_all(ours.map(|i| pass_target(ctx, &rt, i, &run))).await;
    // With coordination, also when no target was ours to sweep.
    record_readiness(ctx, &rt);
    let mut role_plans: Vec<RolePlan> = Vec::new();
    for target in targets {
        report.observe_errors.extend(target.observe_errors);
        report.plan.findings.extend(target.loose);
        report.interrupted |= target.reports.len() < target.role_count;
        for (key, role, error) in target.reports {
            *report.outcomes.entry(role.outcome).or_default() += 1;
            report.writes += role.writes;
            if let Some(error) = &error {
                report.plan.errors.push((key.clone(), error.to_string()));
            }
            role_plans.extend(role.plan.map(|plan| *plan));
        }
    }
    role_plans.sort_by(|a, b| a.key.cmp(&b.key));
    report.plan.roles = role_plans;
    report.plan.errors.sort();
    report.plan.findings.sort();
    report.duration = started.elapsed();
    record_pass(ctx, &report);
    report
}

/// What every target of one pass shares: the mode, shutdown, and the blast-radius cap's counter.
struct PassRun<'a> {
    mode: Mode,
    plans: PlanUse,
    shutdown: &'a CancellationToken,
    roles_written: &'a AtomicUsize,
}

/// What one target's part of a pass did.
struct TargetPass {
    observe_errors: Vec<String>,
    loose: Vec<Finding>,
    role_count: usize,
    reports: Vec<(RoleKey, LastReconcile, Option<ReconcileError>)>,
}

/// One target's part of a pass: sweep it, publish, prepare the observation of its roles, and reconcile them
/// with `concurrency` at once (its own workers, whatever the other targets are doing).
async fn pass_target(ctx: &Context, rt: &Runtime, index: usize, run: &PassRun<'_>) -> TargetPass {
    let sweep = sweep_target(ctx, rt, index, run.plans).await;
    let observe_errors = sweep
        .errors
        .iter()
        .map(|e| format!("account {}: {e}", sweep.account))
        .collect();
    let loose = sweep.loose.clone();
    let keys: Vec<RoleKey> = sweep.roles.iter().map(|r| r.key().clone()).collect();
    publish(ctx, rt, sweep);
    if !run.shutdown.is_cancelled() {
        prepare_observation(ctx, rt, index, &keys).await;
    }
    let role_count = keys.len();
    let reports = futures::stream::iter(keys)
        .filter(|_| std::future::ready(!run.shutdown.is_cancelled()))
        .map(|key| async move {
            let role = RoleRun {
                key,
                mode: run.mode,
                roles_written: run.roles_written,
                plans: run.plans,
            };
            let result = role::reconcile(&role, ctx).await;
            let last = ctx.store.take_last(&role.key)?;
            Some((role.key, last, result.err()))
        })
        .buffer_unordered(rt.config.concurrency)
        .filter_map(std::future::ready)
        .collect()
        .await;
    TargetPass {
        observe_errors,
        loose,
        role_count,
        reports,
    }
}

/// Before the roles `keys` of a target are reconciled: mark that they need IAM state read from now on, and read
/// the account's snapshot when the `observe` setting says so (`snapshots`).
async fn prepare_observation(ctx: &Context, rt: &Runtime, index: usize, keys: &[RoleKey]) {
    if keys.is_empty() {
        return;
    }
    let (target, clients) = &rt.targets[index];
    let marked = ctx.snapshots.now();
    for key in keys {
        ctx.store.require_fresh(key, marked);
    }
    let per_role_cost = ctx.store.per_role_cost(keys);
    ctx.snapshots
        .prepare(
            rt.config.observe,
            &target.account,
            clients.iam.as_ref(),
            per_role_cost,
            marked,
            &ctx.metrics,
        )
        .await;
}

/// Observe one target: list, describe what is new, derive, and group by role.
async fn sweep_target(ctx: &Context, rt: &Runtime, index: usize, plans: PlanUse) -> Sweep {
    let (target, clients) = &rt.targets[index];
    fence::restore_grace(ctx, &target.account).await;
    let view = ctx
        .watcher
        .observe_target(&rt.config, target, &clients.ecs, &ctx.metrics)
        .await;
    fence::save_grace(ctx, &target.account).await;
    let iam = fence::fenced(ctx, &target.account, clients.iam.clone());
    let sweep = SweepInputs {
        config: &rt.config,
        target,
        clients,
        complete: view.is_complete(),
        iam,
        plans,
    };
    let swept = derive_roles(ctx, &sweep, &view.task_definitions).await;
    Sweep {
        account: target.account.clone(),
        roles: swept.roles,
        findings: swept.findings,
        loose: swept.loose,
        errors: view.errors,
        watched: view.task_definitions.len(),
        in_grace: view.in_grace,
    }
}

/// Make a sweep's roles the desired state of its account. Returns the roles that are new or whose desired
/// state changed; roles no longer named by any in-scope revision are forgotten (never touched again).
fn publish(ctx: &Context, rt: &Runtime, mut sweep: Sweep) -> Vec<RoleKey> {
    let mut findings = std::mem::take(&mut sweep.findings);
    findings.extend(sweep.loose.iter().cloned());
    let record = AccountRecord {
        complete: sweep.is_complete(),
        watched: sweep.watched,
        in_grace: sweep.in_grace,
        findings,
    };
    let published = ctx.store.publish(&sweep.account, sweep.roles, record);
    // The reconciles of this sweep list the account's spill policies afresh (once, shared).
    ctx.spill_listings.forget(&sweep.account);
    for key in &published.gone {
        ctx.queues.of(&key.account).remove(key);
        tracing::info!(role = %key, "no in-scope task definition names the role any more; it is no longer managed");
    }
    record_state(ctx, rt);
    record_drift(ctx);
    record_queue(ctx);
    published.changed
}

/// The drift gauges, from every managed role's last reconcile.
fn record_drift(ctx: &Context) {
    for (kind, count) in ctx.store.drift_counts() {
        ctx.metrics
            .roles_in_drift
            .with_label_values(&[kind])
            .set(count as i64);
    }
}

/// Gauges and readiness from the published state: roles managed, revisions watched, findings (each logged
/// once when it appears and once when it goes away), ready when every target's last sweep saw everything.
fn record_state(ctx: &Context, rt: &Runtime) {
    let m = &ctx.metrics;
    m.roles_managed.set(ctx.store.role_count() as i64);
    let accounts = ctx.store.accounts();
    m.task_definitions_watched
        .set(accounts.values().map(|a| a.watched as i64).sum());
    m.task_definitions_in_grace
        .set(accounts.values().map(|a| a.in_grace as i64).sum());
    record_readiness(ctx, rt);

    let current: BTreeSet<Finding> = accounts
        .values()
        .flat_map(|a| a.findings.iter().cloned())
        .collect();
    let mut by_kind: BTreeMap<FindingKind, i64> = BTreeMap::new();
    for finding in &current {
        *by_kind.entry(finding.kind).or_default() += 1;
    }
    m.findings.reset();
    for (kind, count) in by_kind {
        m.findings.with_label_values(&[kind.as_str()]).set(count);
    }
    let logged = ctx.store.swap_logged_findings(current.clone());
    for finding in current.difference(&logged) {
        tracing::warn!(
            kind = finding.kind.as_str(),
            blocking = finding.kind.is_blocking(),
            task_definition = %finding.task_definition,
            container = finding.container.as_deref().unwrap_or(""),
            field = finding.field.as_deref().unwrap_or(""),
            "finding: {}",
            finding.message
        );
    }
    for finding in logged.difference(&current) {
        tracing::info!(
            kind = finding.kind.as_str(),
            task_definition = %finding.task_definition,
            field = finding.field.as_deref().unwrap_or(""),
            "finding resolved"
        );
    }
}

/// Readiness: every target this replica works on (all, or with `coordination` those in shards it holds) was
/// fully seen by its last sweep.
fn record_readiness(ctx: &Context, rt: &Runtime) {
    let accounts = ctx.store.accounts();
    let ready = rt
        .targets
        .iter()
        .filter(|(t, _)| fence::is_ours(ctx, &t.account))
        .all(|(t, _)| accounts.get(&t.account).is_some_and(|a| a.complete));
    ctx.health.set_ready(ready);
    ctx.metrics.ready.set(i64::from(ctx.health.is_ready()));
}

/// Count a pass and log its summary.
fn record_pass(ctx: &Context, report: &PassReport) {
    if report.interrupted {
        tracing::info!(
            reconciled = report.outcomes.values().sum::<usize>(),
            writes = report.writes,
            "pass interrupted by shutdown"
        );
        return;
    }
    let success = report.is_success();
    count_pass(ctx, success, success);
    tracing::info!(
        result = if success { "success" } else { "failure" },
        roles = report.outcomes.values().sum::<usize>(),
        in_sync = report.outcomes.get(&Outcome::InSync).copied().unwrap_or(0),
        applied = report.outcomes.get(&Outcome::Applied).copied().unwrap_or(0),
        pending = report.outcomes.get(&Outcome::Pending).copied().unwrap_or(0),
        errors = report.outcomes.get(&Outcome::Error).copied().unwrap_or(0),
        writes = report.writes,
        task_definitions = ctx.metrics.task_definitions_watched.get(),
        cached = ctx.watcher.cached_count(),
        duration_ms = report.duration.as_millis() as u64,
        "pass finished"
    );
}

/// Count a pass; the last-success time moves only when the whole world has been seen (in the daemon: every
/// target's last sweep), so one target that keeps failing holds it back and a staleness alert fires.
fn count_pass(ctx: &Context, success: bool, world_seen: bool) {
    ctx.metrics
        .passes
        .with_label_values(&[if success { "success" } else { "failure" }])
        .inc();
    if success && world_seen {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        ctx.metrics.last_success.set(now as i64);
    }
}

/// What a sweep's roles are built with: the configuration, the target and its clients, whether every in-scope
/// revision was seen, and the (fenced) IAM client its roles are reconciled through.
struct SweepInputs<'a> {
    config: &'a Config,
    target: &'a Target,
    clients: &'a TargetClients,
    complete: bool,
    iam: Arc<dyn IamApi>,
    /// Whether the plans made from the roles are kept for a report: only reports show the reasons behind a
    /// permission, so the daemon's roles keep none (one per permission and revision: most of a role's state).
    plans: PlanUse,
}

/// A sweep's roles (new or changed in full, the others by key), their findings, and the findings of revisions
/// that name no usable role.
#[derive(Default)]
struct SweptRoles {
    roles: Vec<SweptRole>,
    findings: BTreeSet<Finding>,
    loose: Vec<Finding>,
}

impl SweptRoles {
    /// Add a role: in full when it differs from what is published, otherwise by key.
    fn add(&mut self, store: &Store, role: PublishedRole) {
        self.findings.extend(role.desired.findings.iter().cloned());
        self.roles.push(if store.is_published(&role) {
            SweptRole::Unchanged {
                key: role.desired.key,
                iam: role.iam,
            }
        } else {
            SweptRole::Changed(role)
        });
    }
}

/// Derive every revision, answering the look-ups derivation asks for (`lookups::derive_with_lookups`), one role
/// at a time (the revisions grouped by the role they name): each role's desired state is built from its
/// revisions and compared with what is published at once, so a sweep holds in full only the roles that changed.
async fn derive_roles(
    ctx: &Context,
    sweep: &SweepInputs<'_>,
    revisions: &[Arc<watcher::Revision>],
) -> SweptRoles {
    let options = sweep.config.derive_options();
    let mut by_role: BTreeMap<Option<RoleKey>, Vec<&watcher::Revision>> = BTreeMap::new();
    for revision in revisions {
        let role = revision
            .execution_role_arn
            .as_deref()
            .and_then(RoleKey::from_role_arn);
        by_role.entry(role).or_default().push(revision);
    }
    let template = RoleTemplate::new(sweep.config, sweep.target);
    let lookup_target = lookups::LookupTarget {
        account: &sweep.target.account,
        api: sweep.clients.facts.as_ref(),
        concurrency: sweep.config.concurrency,
    };
    lookups::derive_with_lookups(&ctx.facts, lookup_target, &ctx.metrics, |facts, asked| {
        let mut swept = SweptRoles::default();
        for revisions in by_role.values() {
            let mut fold = RoleFold::new(sweep.plans);
            let mut complete = sweep.complete;
            for revision in revisions {
                let Some(td) = unpack(revision) else {
                    complete = false;
                    continue;
                };
                let derivation =
                    derive::required_permissions(&td, &DeriveContext::default(), &options, facts);
                lookups::note_lookups(&derivation, asked);
                fold.add(&sweep.target.account, derivation);
            }
            let (desired, loose) = desired_roles(&template, fold);
            swept.loose.extend(loose);
            // A partial view (or a revision not read back) holds back every removal; a failed look-up leaves a
            // need undecided (e.g. kms:Decrypt), so the grants that its fact could change are kept meanwhile,
            // and only those.
            for d in desired {
                let removals = Removals::for_role(complete, &d.findings);
                let role = PublishedRole {
                    desired: d,
                    iam: sweep.iam.clone(),
                    removals,
                };
                swept.add(&ctx.store, role);
            }
        }
        swept
    })
    .await
}

/// A cached revision read back; `None` (logged) when it cannot be, which the watcher's check when caching and
/// packing's round-trip tests rule out. Its role's removals then wait for a later sweep.
fn unpack(revision: &watcher::Revision) -> Option<crate::model::TaskDefinition> {
    match revision.unpack() {
        Ok(td) => Some(td),
        Err(error) => {
            tracing::error!(arn = %revision.arn, %error, "a cached task definition could not be read back; its role keeps every grant this sweep");
            None
        }
    }
}

/// The desired state of each role the revisions name. Returns the roles and the findings of revisions that name
/// no usable role.
fn desired_roles(template: &RoleTemplate<'_>, fold: RoleFold) -> (Vec<DesiredRole>, Vec<Finding>) {
    let RoleFold {
        by_role,
        loose,
        plans,
    } = fold;
    let insights = template.insights;
    let roles = by_role
        .into_iter()
        .map(|(key, inputs)| {
            let mut requirements = inputs.requirements;
            if insights.applies_to(&key.name) {
                for requirement in insights_requirements(insights.configure, insights.view) {
                    requirements.add(kept_for(plans, requirement));
                }
            }
            DesiredRole {
                task_definitions: inputs.task_definitions.into_iter().collect(),
                requirements: requirements.into_requirements(),
                findings: inputs.findings.into_iter().collect(),
                managed_policy_arn: template.managed_policy_arn.clone(),
                trust_policy: template.trust_policy.clone(),
                key,
            }
        })
        .collect();
    (roles, loose)
}

/// What every role of a target gets whatever its revisions say: the baseline's managed policy, the trust policy
/// to enforce, and the Container Insights permissions' settings. Built once per sweep, not per role.
struct RoleTemplate<'a> {
    managed_policy_arn: Option<String>,
    trust_policy: Option<crate::policy::PolicyDocument>,
    insights: &'a crate::config::ContainerInsights,
}

impl<'a> RoleTemplate<'a> {
    fn new(config: &'a Config, target: &Target) -> RoleTemplate<'a> {
        let partition = target
            .regions
            .first()
            .map(|r| crate::model::partition_for_region(r))
            .unwrap_or("aws");
        RoleTemplate {
            managed_policy_arn: (config.baseline == derive::Baseline::ManagedPolicy)
                .then(|| derive::managed_policy_arn(partition)),
            trust_policy: config
                .trust_policy
                .manage
                .then(|| trust_policy(config, target, partition)),
            insights: &config.container_insights,
        }
    }
}

/// The trust policy to enforce: `ecs-tasks.amazonaws.com`, hardened with the account and every Region of
/// the target when configured.
fn trust_policy(
    config: &Config,
    target: &Target,
    partition: &str,
) -> crate::policy::PolicyDocument {
    if !config.trust_policy.harden {
        return derive::trust_policy(partition, None);
    }
    let first = target
        .regions
        .first()
        .map(String::as_str)
        .unwrap_or("us-east-1");
    let mut doc = derive::trust_policy(partition, Some((&target.account, first)));
    let arns: Vec<String> = target
        .regions
        .iter()
        .map(|r| format!("arn:{partition}:ecs:{r}:{}:*", target.account))
        .collect();
    for statement in &mut doc.statements {
        for keys in statement.condition.values_mut() {
            if let Some(values) = keys.get_mut("aws:SourceArn") {
                *values = arns.clone();
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests;
