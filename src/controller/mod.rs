//! The controller: a full pass per resync interval (list, describe what is new, derive, group revisions by
//! execution role, then reconcile each role with bounded concurrency) until shutdown. A failing target, Region,
//! revision or role never stops the others; work in flight drains on shutdown.
//!
//! It talks to AWS only through the `aws` traits, so tests drive it with in-memory fakes. It does not render plans
//! (`plan`) or serve HTTP (`http`); it records metrics and readiness for them.

mod lookups;
mod reconcile;
mod watcher;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

pub use reconcile::{ApplyRules, Outcome, PolicyCache, RoleReport, reconcile};

use crate::aws::{ClientFactory, EcsApi, FactsApi, IamApi};
use crate::config::{Config, Mode, Target};
use crate::derive::{self, DeriveContext, Finding, FindingKind, Requirement};
use crate::metrics::Metrics;
use crate::model::RoleKey;
use crate::plan::{DesiredRole, Plan, RolePlan};
use watcher::Watcher;

/// The clients of one target: one ECS API per Region, one IAM API for the account.
#[derive(Clone)]
pub struct TargetClients {
    /// ECS per Region.
    pub ecs: Vec<(String, Arc<dyn EcsApi>)>,
    /// IAM for the account.
    pub iam: Arc<dyn IamApi>,
    /// Look-ups (secrets, parameters, keys, registries) in the account.
    pub facts: Arc<dyn FactsApi>,
}

/// Where the controller gets its clients (the SDK factory, or fakes in tests).
#[async_trait]
pub trait ClientSource: Send + Sync {
    /// Clients for a target.
    async fn clients(&self, target: &Target) -> TargetClients;
}

#[async_trait]
impl ClientSource for ClientFactory {
    async fn clients(&self, target: &Target) -> TargetClients {
        let (ecs, iam, facts) = ClientFactory::clients(self, target).await;
        TargetClients { ecs, iam, facts }
    }
}

/// Readiness and liveness, shared with the HTTP server.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Whether the first full pass has completed and the last pass could see the world.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// The plan per role (as observed before any write).
    pub plan: Plan,
    /// Count of roles per outcome.
    pub outcomes: BTreeMap<&'static str, usize>,
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

/// Roles in drift at the end of a pass, by kind (the `kind` label of `execrole_roles_in_drift`).
struct Drift {
    missing: i64,
    excess: i64,
    blocked: i64,
    over_granted: i64,
    trust: i64,
}

/// Rule 13's permissions as requirements, with the config as their reason.
fn insights_requirements(configure: bool, view: bool) -> Vec<Requirement> {
    derive::container_insights_permissions(configure, view)
        .into_iter()
        .map(|permission| Requirement {
            permission,
            reasons: BTreeSet::from([derive::Reason {
                task_definition: "(config)".into(),
                container: "-".into(),
                field: "policy.container_insights".into(),
            }]),
        })
        .collect()
}

/// What the revisions naming one role contribute: their names, requirements and findings.
type RoleInputs = (BTreeSet<String>, Vec<Requirement>, BTreeSet<Finding>);

/// The reconciling controller.
pub struct Controller {
    config: Config,
    targets: Vec<(Target, TargetClients)>,
    watcher: Watcher,
    facts: lookups::FactCache,
    policies: PolicyCache,
    /// The findings of the last full pass, so that each is logged when it appears and when it goes away.
    last_findings: std::sync::Mutex<BTreeSet<Finding>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Controller {
    /// Build a controller and the clients of every target.
    pub async fn new(
        config: Config,
        clients: &dyn ClientSource,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Controller {
        let mut targets = Vec::new();
        for target in &config.targets {
            targets.push((target.clone(), clients.clients(target).await));
        }
        Controller {
            facts: lookups::FactCache::new(config.lookup_cache_ttl),
            policies: PolicyCache::default(),
            last_findings: std::sync::Mutex::new(BTreeSet::new()),
            config,
            targets,
            watcher: Watcher::default(),
            metrics,
            health,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Run passes every resync interval until `shutdown` fires. A pass in flight finishes the roles it started.
    pub async fn run(&self, shutdown: CancellationToken) {
        loop {
            let report = self.pass(self.config.mode, &shutdown).await;
            if shutdown.is_cancelled() {
                break;
            }
            let _ = report;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.config.resync_interval) => {}
            }
        }
        tracing::info!("controller stopped");
    }

    /// One full pass: observe every target, derive, and reconcile every role in `mode`.
    pub async fn pass(&self, mode: Mode, shutdown: &CancellationToken) -> PassReport {
        let started = Instant::now();
        let mut report = PassReport::default();
        let mut roles: Vec<(DesiredRole, Arc<dyn IamApi>, bool)> = Vec::new();
        let mut findings_by_kind: BTreeMap<FindingKind, i64> = BTreeMap::new();
        let mut watched = 0usize;
        for (target, clients) in &self.targets {
            let view = self
                .watcher
                .observe_target(&self.config, target, &clients.ecs, &self.metrics)
                .await;
            watched += view.task_definitions.len();
            let complete = view.is_complete();
            report.observe_errors.extend(
                view.errors
                    .iter()
                    .map(|e| format!("account {}: {e}", target.account)),
            );
            let derivations = self
                .derive_all(target, clients, &view.task_definitions)
                .await;
            let (desired, loose) = self.desired_roles(target, derivations);
            for finding in desired
                .iter()
                .flat_map(|d| d.findings.iter())
                .chain(loose.iter())
            {
                *findings_by_kind.entry(finding.kind).or_default() += 1;
            }
            report.plan.findings.extend(loose);
            // A failed look-up leaves a need undecided (e.g. kms:Decrypt): treat the role like a partial view, so
            // that nothing it may still need is removed meanwhile.
            roles.extend(desired.into_iter().map(|d| {
                let decided = !d
                    .findings
                    .iter()
                    .any(|f| f.kind == FindingKind::UnresolvedLookup);
                (d, clients.iam.clone(), complete && decided)
            }));
        }

        let role_count = roles.len();
        let policy_name = self.config.inline_policy_name.as_str();
        let metrics = self.metrics.as_ref();
        let cache = &self.policies;
        let safety = &self.config.safety;
        let roles_written = std::sync::atomic::AtomicUsize::new(0);
        let roles_written = &roles_written;
        let reports: Vec<(RoleKey, RoleReport)> = futures::stream::iter(roles)
            .filter(|_| std::future::ready(!shutdown.is_cancelled()))
            .map(|(desired, iam, complete)| async move {
                let rules = ApplyRules {
                    mode,
                    complete,
                    safety,
                    roles_written,
                };
                let result =
                    reconcile(&desired, iam.as_ref(), policy_name, rules, metrics, cache).await;
                (desired.key.clone(), result)
            })
            .buffer_unordered(self.config.concurrency)
            .collect()
            .await;

        report.interrupted = reports.len() < role_count;
        let mut role_plans: Vec<RolePlan> = Vec::new();
        let (mut missing, mut excess, mut blocked, mut over_granted, mut trust) =
            (0i64, 0i64, 0i64, 0i64, 0i64);
        for (key, role) in reports {
            *report.outcomes.entry(role.outcome.as_str()).or_default() += 1;
            report.writes += role.writes;
            if let Some(error) = &role.error {
                tracing::warn!(role = %key, error = %error, "reconcile failed");
                report.plan.errors.push((key.clone(), error.to_string()));
            }
            if let Some(plan) = role.plan {
                if let Some(doc) = &plan.desired {
                    let ratio = crate::policy::iam_size(doc) as f64
                        / crate::plan::INLINE_POLICY_LIMIT as f64;
                    self.metrics.policy_size_ratio.observe(ratio);
                }
                let remains = matches!(role.outcome, Outcome::Pending | Outcome::Error);
                if remains
                    && (!plan.added.is_empty() || (!plan.role_exists && plan.desired.is_some()))
                {
                    missing += 1;
                }
                if remains && (!plan.removed.is_empty() || !plan.removed_other.is_empty()) {
                    excess += 1;
                }
                blocked += i64::from(!plan.blocked.is_empty());
                trust += i64::from(remains && plan.trust_update.is_some());
                over_granted += i64::from(!plan.over_granted.is_empty());
                role_plans.push(plan);
            }
        }
        role_plans.sort_by(|a, b| a.key.cmp(&b.key));
        report.plan.roles = role_plans;
        report.plan.errors.sort();
        report.plan.findings.sort();
        report.duration = started.elapsed();

        let drift = Drift {
            missing,
            excess,
            blocked,
            over_granted,
            trust,
        };
        self.record_pass(&report, watched, &drift, &findings_by_kind);
        report
    }

    /// Derive every revision, answering the look-ups derivation asks for (a secret's key is only known after the
    /// secret is described, so this takes a few rounds; it stops when no new look-up is asked).
    async fn derive_all(
        &self,
        target: &Target,
        clients: &TargetClients,
        task_definitions: &[Arc<crate::model::TaskDefinition>],
    ) -> Vec<derive::Derivation> {
        const MAX_ROUNDS: usize = 4;
        let options = self.config.derive_options();
        let mut facts = derive::Facts::new();
        let mut round = 0;
        loop {
            let derivations: Vec<derive::Derivation> = task_definitions
                .iter()
                .map(|td| {
                    derive::required_permissions(td, &DeriveContext::default(), &options, &facts)
                })
                .collect();
            let missing: BTreeSet<derive::Lookup> = derivations
                .iter()
                .flat_map(|d| d.lookups.iter().cloned())
                .collect();
            round += 1;
            if missing.is_empty() || round >= MAX_ROUNDS {
                return derivations;
            }
            self.facts
                .answer(
                    &target.account,
                    missing.into_iter().collect(),
                    clients.facts.as_ref(),
                    &mut facts,
                    self.config.concurrency,
                    &self.metrics,
                )
                .await;
        }
    }

    /// Group derivations by execution role. Returns the roles and the findings of revisions that name no usable
    /// role.
    fn desired_roles(
        &self,
        target: &Target,
        derivations: Vec<derive::Derivation>,
    ) -> (Vec<DesiredRole>, Vec<Finding>) {
        let mut by_role: BTreeMap<RoleKey, RoleInputs> = BTreeMap::new();
        let mut loose = Vec::new();
        for derivation in derivations {
            match derivation.role {
                Some(role) if role.account == target.account => {
                    let entry = by_role.entry(role).or_default();
                    entry.0.insert(derivation.task_definition);
                    entry.1.extend(derivation.requirements);
                    entry.2.extend(derivation.findings);
                }
                Some(role) => loose.push(Finding {
                    kind: FindingKind::InvalidExecutionRole,
                    task_definition: derivation.task_definition,
                    container: None,
                    field: Some("executionRoleArn".into()),
                    message: format!(
                        "execution role {role} is not in the task definition's account {}; it is not managed",
                        target.account
                    ),
                }),
                None => loose.extend(derivation.findings),
            }
        }
        let partition = target
            .regions
            .first()
            .map(|r| crate::model::partition_for_region(r))
            .unwrap_or("aws");
        let managed_policy_arn = (self.config.baseline == derive::Baseline::ManagedPolicy)
            .then(|| derive::managed_policy_arn(partition));
        let trust_policy = self
            .config
            .trust_policy
            .manage
            .then(|| self.trust_policy(target, partition));
        let insights = &self.config.container_insights;
        let roles = by_role
            .into_iter()
            .map(|(key, (tds, mut requirements, findings))| {
                if insights.applies_to(&key.name) {
                    requirements.extend(insights_requirements(insights.configure, insights.view));
                }
                DesiredRole {
                    task_definitions: tds.into_iter().collect(),
                    requirements: derive::merge_requirements(requirements.iter()),
                    findings: findings.into_iter().collect(),
                    managed_policy_arn: managed_policy_arn.clone(),
                    trust_policy: trust_policy.clone(),
                    key,
                }
            })
            .collect();
        (roles, loose)
    }

    /// The trust policy to enforce: `ecs-tasks.amazonaws.com`, hardened with the account and every Region of
    /// the target when configured.
    fn trust_policy(&self, target: &Target, partition: &str) -> crate::policy::PolicyDocument {
        if !self.config.trust_policy.harden {
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

    /// Log each finding once when it appears (warn) and once when it is gone (info), not at every pass.
    fn log_findings(&self, report: &PassReport) {
        let current: BTreeSet<Finding> = report
            .plan
            .findings
            .iter()
            .chain(report.plan.roles.iter().flat_map(|r| r.findings.iter()))
            .cloned()
            .collect();
        let Ok(mut last) = self.last_findings.lock() else {
            return;
        };
        for finding in current.difference(&last) {
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
        for finding in last.difference(&current) {
            tracing::info!(
                kind = finding.kind.as_str(),
                task_definition = %finding.task_definition,
                field = finding.field.as_deref().unwrap_or(""),
                "finding resolved"
            );
        }
        *last = current;
    }

    fn record_pass(
        &self,
        report: &PassReport,
        watched: usize,
        drift: &Drift,
        findings: &BTreeMap<FindingKind, i64>,
    ) {
        if report.interrupted {
            // A pass cut short by shutdown says nothing about the world: leave every gauge as the last full pass
            // set it.
            tracing::info!(
                reconciled = report.plan.roles.len(),
                writes = report.writes,
                "pass interrupted by shutdown"
            );
            return;
        }
        self.log_findings(report);
        let m = &self.metrics;
        let success = report.is_success();
        m.passes
            .with_label_values(&[if success { "success" } else { "failure" }])
            .inc();
        m.roles_managed.set(report.plan.roles.len() as i64);
        m.roles_in_drift
            .with_label_values(&["missing"])
            .set(drift.missing);
        m.roles_in_drift
            .with_label_values(&["excess"])
            .set(drift.excess);
        m.roles_in_drift
            .with_label_values(&["blocked"])
            .set(drift.blocked);
        m.roles_in_drift
            .with_label_values(&["over_granted"])
            .set(drift.over_granted);
        m.roles_in_drift
            .with_label_values(&["trust"])
            .set(drift.trust);
        m.task_definitions_watched.set(watched as i64);
        m.findings.reset();
        for (kind, count) in findings {
            m.findings.with_label_values(&[kind.as_str()]).set(*count);
        }
        let observed_everything = report.observe_errors.is_empty();
        if success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            m.last_success.set(now as i64);
        }
        self.health
            .ready
            .store(observed_everything, Ordering::SeqCst);
        m.ready.set(i64::from(observed_everything));
        tracing::info!(
            result = if success { "success" } else { "failure" },
            roles = report.plan.roles.len(),
            in_sync = report.outcomes.get("in_sync").copied().unwrap_or(0),
            applied = report.outcomes.get("applied").copied().unwrap_or(0),
            pending = report.outcomes.get("pending").copied().unwrap_or(0),
            errors = report.outcomes.get("error").copied().unwrap_or(0),
            writes = report.writes,
            task_definitions = watched,
            cached = self.watcher.cached_count(),
            duration_ms = report.duration.as_millis() as u64,
            "pass finished"
        );
    }
}

#[cfg(test)]
mod tests;
