//! Pure derivation: a task definition (plus the facts looked up about it) → the permissions its execution role
//! needs, each with the reasons (task definition, container, field path) behind it, and findings for what cannot be
//! granted safely. One file per rule family, numbered as in `derivation-rules.md`.
//!
//! It decides *what* is needed, never *how* it is written: compiling requirements into a policy is `policy`'s job,
//! and comparing with IAM is `plan`'s. It never guesses: a value that cannot be turned into an exact ARN becomes a
//! finding, never a wildcard.

mod baseline;
mod credspec;
mod ecr;
mod facts;
mod insights;
mod kms;
mod logs;
mod reason;
mod references;
mod s3;
mod scope;
mod secrets;
mod site;
mod trust;

pub use baseline::{MANAGED_POLICY_ACTIONS, MANAGED_POLICY_NAME, managed_policy_arn};
pub use facts::{Fact, Facts, KeyFacts, Lookup, ParameterFacts, PullThroughRule, SecretFacts};
pub use insights::container_insights_permissions;
pub use reason::Reason;
pub use scope::HoldScope;
pub use trust::{ECS_TASKS_PRINCIPAL, trust_policy};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::model::{Arn, RoleKey, TaskDefinition, is_account_id, is_region, partition_for_region};
use crate::policy::Permission;

/// One permission and every reason it is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// What to allow.
    pub permission: Permission,
    /// Why (sorted, deduplicated).
    pub reasons: Vec<Reason>,
}

/// The kinds of finding; bounded, so they can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The task definition needs an execution role and names none: its tasks will fail to start.
    NoExecutionRole,
    /// `executionRoleArn` is not an IAM role ARN.
    InvalidExecutionRole,
    /// A reference (image, ARN, option) cannot be parsed; the task would fail to start.
    InvalidReference,
    /// A value still holds a template placeholder (`${…}`, `{{…}}`, `<…>`).
    UnresolvedPlaceholder,
    /// A resource in another account must also allow the role in its own policy; reported, never written.
    CrossAccountResource,
    /// A required option is missing, or a default was assumed.
    IncompleteConfiguration,
    /// The account or Region of the task definition is unknown, so an exact ARN cannot be built.
    UnknownContext,
    /// A fact needed to decide a requirement was not looked up, or the look-up failed or was denied; nothing was
    /// granted in its place (never a wildcard).
    UnresolvedLookup,
    /// A referenced secret, parameter or key does not exist: tasks will fail to start.
    ReferenceNotFound,
    /// A configuration the launch type does not support (e.g. a FireLens config file from S3 on Fargate).
    UnsupportedConfiguration,
}

impl FindingKind {
    /// The metric label and JSON name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NoExecutionRole => "no_execution_role",
            FindingKind::InvalidExecutionRole => "invalid_execution_role",
            FindingKind::InvalidReference => "invalid_reference",
            FindingKind::UnresolvedPlaceholder => "unresolved_placeholder",
            FindingKind::CrossAccountResource => "cross_account_resource",
            FindingKind::IncompleteConfiguration => "incomplete_configuration",
            FindingKind::UnknownContext => "unknown_context",
            FindingKind::UnresolvedLookup => "unresolved_lookup",
            FindingKind::ReferenceNotFound => "reference_not_found",
            FindingKind::UnsupportedConfiguration => "unsupported_configuration",
        }
    }

    /// Whether tasks of the task definition will fail to start because of it.
    pub fn is_blocking(self) -> bool {
        matches!(
            self,
            FindingKind::NoExecutionRole
                | FindingKind::InvalidExecutionRole
                | FindingKind::InvalidReference
                | FindingKind::UnresolvedPlaceholder
                | FindingKind::ReferenceNotFound
                | FindingKind::UnsupportedConfiguration
        )
    }
}

/// Something the user should know about a task definition that no write can fix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// `family:revision`.
    pub task_definition: String,
    /// The container, when the finding is about one.
    pub container: Option<String>,
    /// The JSON path of the field.
    pub field: Option<String>,
    /// A sentence for humans.
    pub message: String,
    /// For an `unresolved_lookup` finding: the grants the unknown fact could change, whose removals are held
    /// back until it resolves. `None` holds nothing back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds: Option<HoldScope>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.kind.as_str(), self.task_definition)?;
        if let Some(container) = &self.container {
            write!(f, " container {container}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Which baseline the execution role starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// Every rule scoped to exact resources, nothing attached. The default.
    #[default]
    LeastPrivilege,
    /// `AmazonECSTaskExecutionRolePolicy` attached (as the seed's console steps do); derive only what it lacks.
    ManagedPolicy,
}

/// The VPC endpoint restriction of rule 1c: conditions on the ECR layer statement only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VpcEndpointCondition {
    /// Allowed `aws:sourceVpce` values.
    pub source_vpce: Vec<String>,
    /// Allowed `aws:sourceVpc` values.
    pub source_vpc: Vec<String>,
}

impl VpcEndpointCondition {
    /// Whether no restriction is configured.
    pub fn is_empty(&self) -> bool {
        self.source_vpce.is_empty() && self.source_vpc.is_empty()
    }
}

/// Settings that change what is derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeriveOptions {
    /// Grant ECR pulls and `awslogs` also for task definitions that run only on EC2 (where the instance role is used
    /// unless the agent is configured otherwise). On by default: a service can move between launch types.
    pub ecr_and_logs_on_ec2: bool,
    /// The baseline.
    pub baseline: Baseline,
    /// Rule 1c: VPC endpoint conditions on the ECR layer statement (empty: none).
    pub vpc_endpoint: VpcEndpointCondition,
    /// Rule 2: look up pull-through-cache rules for nested repository paths. On by default; accounts without
    /// cache rules can switch it off to save the look-ups.
    pub pull_through_lookups: bool,
}

impl Default for DeriveOptions {
    fn default() -> Self {
        DeriveOptions {
            ecr_and_logs_on_ec2: true,
            baseline: Baseline::LeastPrivilege,
            vpc_endpoint: VpcEndpointCondition::default(),
            pull_through_lookups: true,
        }
    }
}

/// Where a task definition lives, for the inputs that do not say (register-task-definition input has no ARN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeriveContext {
    /// The account to assume when the task definition has no ARN.
    pub account: Option<String>,
    /// The Region to assume when the task definition has no ARN.
    pub region: Option<String>,
}

/// What one task definition needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Derivation {
    /// `family:revision`.
    pub task_definition: String,
    /// The execution role that must hold the permissions, when the task definition names a valid one.
    pub role: Option<RoleKey>,
    /// The execution role ARN as written.
    pub execution_role_arn: Option<String>,
    /// The permissions, sorted.
    pub requirements: Vec<Requirement>,
    /// What cannot be granted, or needs a human.
    pub findings: Vec<Finding>,
    /// Look-ups that were needed and not found in the facts given (the controller performs them and derives
    /// again). Offline they stay unresolved: each secret, parameter or key one has an `UnresolvedLookup` finding;
    /// pull-through-cache rules have none (without them nothing extra is granted).
    pub lookups: Vec<Lookup>,
    /// Of `findings`, the `unresolved_lookup` ones that only say a fact was not looked up (no answer was given,
    /// as offline), so a report can count them in one line. Not serialised: `findings` has them all.
    #[serde(skip)]
    pub not_looked_up: Vec<Finding>,
    /// Look-ups that the facts given answered (so that a caller that gave cached facts can count them). Not
    /// serialised; part of equality, so two derivations given different facts may differ here only.
    #[serde(skip)]
    pub answered: Vec<Lookup>,
}

/// The account, Region and partition a task definition runs in, as far as they are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskScope {
    pub account: Option<String>,
    pub region: Option<String>,
}

impl TaskScope {
    fn of(td: &TaskDefinition, ctx: &DeriveContext) -> TaskScope {
        let arn = td.parsed_arn();
        let role_account = td
            .execution_role_arn
            .as_deref()
            .and_then(|a| Arn::parse(a).ok())
            .map(|a| a.account)
            .filter(|a| is_account_id(a));
        TaskScope {
            account: arn
                .as_ref()
                .map(|a| a.account.clone())
                .filter(|a| is_account_id(a))
                .or_else(|| ctx.account.clone())
                .or(role_account),
            // A Region that is not one (`region`, `${AWS_REGION}`) must never end up in an ARN.
            region: arn
                .map(|a| a.region)
                .filter(|r| is_region(r))
                .or_else(|| ctx.region.clone()),
        }
    }
}

/// Why a fact is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsettled {
    /// No answer was given (offline, or not asked yet).
    NotLookedUp,
    /// The look-up failed, was denied, or gave an answer that settles nothing; or it is never made (the secret
    /// inside a domainless gMSA CredSpec file).
    Unanswered,
}

/// Collects requirements and findings while the rules run over one task definition.
pub(crate) struct Needs<'f> {
    task_definition: std::sync::Arc<str>,
    scope: TaskScope,
    facts: &'f Facts,
    lookups: BTreeSet<Lookup>,
    answered: BTreeSet<Lookup>,
    requirements: BTreeMap<Permission, BTreeSet<Reason>>,
    findings: BTreeSet<Finding>,
    not_looked_up: BTreeSet<Finding>,
    /// The reason of the last grant: a rule grants several permissions for one field in a row, and its container
    /// name and field path are then taken from it rather than from the process's interner again.
    last_reason: Option<Reason>,
}

impl Needs<'_> {
    /// The task's Region and account, where bare secret and parameter names live, when both are known.
    pub(crate) fn place(&self) -> Option<references::Place> {
        Some(references::Place {
            region: self.scope.region.clone()?,
            account: self.scope.account.clone()?,
        })
    }

    /// The answer to a look-up (recorded as answered), or `None` (and the look-up is recorded as needed).
    pub(crate) fn fact(&mut self, lookup: Lookup) -> Option<Fact> {
        match self.facts.get(&lookup) {
            Some(fact) => {
                let fact = fact.clone();
                self.answered.insert(lookup);
                Some(fact)
            }
            None => {
                self.lookups.insert(lookup);
                None
            }
        }
    }

    pub(crate) fn grant(&mut self, permission: Permission, container: &str, field: &str) {
        let reason = match &self.last_reason {
            Some(last) if *last.container == *container && *last.field == *field => last.clone(),
            _ => {
                let reason = Reason::new(self.task_definition.clone(), container, field);
                self.last_reason = Some(reason.clone());
                reason
            }
        };
        self.requirements
            .entry(permission)
            .or_default()
            .insert(reason);
    }

    pub(crate) fn find(
        &mut self,
        kind: FindingKind,
        container: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) {
        let finding = self.finding(kind, container, field, message);
        self.findings.insert(finding);
    }

    /// Report a fact that is unknown: an `unresolved_lookup` finding that holds back the removals in `scope`.
    /// One `why` [`Unsettled::NotLookedUp`] is also listed in the derivation's `not_looked_up`.
    pub(crate) fn find_unresolved(
        &mut self,
        why: Unsettled,
        container: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
        scope: HoldScope,
    ) {
        let mut finding = self.finding(FindingKind::UnresolvedLookup, container, field, message);
        finding.holds = Some(scope);
        if why == Unsettled::NotLookedUp {
            self.not_looked_up.insert(finding.clone());
        }
        self.findings.insert(finding);
    }

    fn finding(
        &self,
        kind: FindingKind,
        container: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            kind,
            task_definition: self.task_definition.to_string(),
            container: container.map(str::to_string),
            field: field.map(str::to_string),
            message: message.into(),
            holds: None,
        }
    }
}

/// Everything the execution role of `td` needs, with reasons and findings. Deterministic, and independent of the
/// order of the containers.
pub fn required_permissions(
    td: &TaskDefinition,
    ctx: &DeriveContext,
    options: &DeriveOptions,
    facts: &Facts,
) -> Derivation {
    let mut needs = Needs {
        task_definition: td.display_name().into(),
        scope: TaskScope::of(td, ctx),
        facts,
        lookups: BTreeSet::new(),
        answered: BTreeSet::new(),
        requirements: BTreeMap::new(),
        findings: BTreeSet::new(),
        not_looked_up: BTreeSet::new(),
        last_reason: None,
    };
    let ecr_and_logs = options.ecr_and_logs_on_ec2 || !td.is_ec2_only();
    for container in &td.containers {
        if ecr_and_logs {
            ecr::private_images(container, options, &mut needs);
            logs::awslogs(container, &mut needs);
        }
        secrets::container_secrets(container, &mut needs);
        s3::environment_files(container, &mut needs);
        s3::firelens_config(td, container, &mut needs);
        credspec::credential_specs(container, &mut needs);
    }

    let role = td
        .execution_role_arn
        .as_deref()
        .and_then(RoleKey::from_role_arn);
    match (&td.execution_role_arn, &role) {
        (Some(arn), None) => needs.find(
            FindingKind::InvalidExecutionRole,
            None,
            Some("executionRoleArn"),
            format!("`{arn}` is not an IAM role ARN; tasks that need it will fail to start"),
        ),
        (None, _) if !needs.requirements.is_empty() => needs.find(
            FindingKind::NoExecutionRole,
            None,
            Some("executionRoleArn"),
            "the task definition needs an execution role and names none: its tasks will fail to start",
        ),
        _ => {}
    }
    if options.baseline == Baseline::ManagedPolicy {
        baseline::drop_managed(&mut needs.requirements);
    }
    Derivation {
        task_definition: needs.task_definition.to_string(),
        role,
        execution_role_arn: td.execution_role_arn.clone(),
        requirements: needs
            .requirements
            .into_iter()
            .map(|(permission, reasons)| Requirement {
                permission,
                reasons: reasons.into_iter().collect(),
            })
            .collect(),
        findings: needs.findings.into_iter().collect(),
        lookups: needs.lookups.into_iter().collect(),
        not_looked_up: needs.not_looked_up.into_iter().collect(),
        answered: needs.answered.into_iter().collect(),
    }
}

/// The policy that grants exactly `requirements` (`policy::compile`), or `None` when nothing is needed.
pub fn policy_for(requirements: &[Requirement]) -> Option<crate::policy::PolicyDocument> {
    (!requirements.is_empty())
        .then(|| crate::policy::compile(requirements.iter().map(|r| &r.permission)))
}

/// Merge the requirements of several task definitions (one role): the union of permissions, reasons combined.
pub fn merge_requirements<'a>(
    requirements: impl IntoIterator<Item = &'a Requirement>,
) -> Vec<Requirement> {
    let mut merged = RequirementSet::default();
    for requirement in requirements {
        merged.add(requirement.clone());
    }
    merged.into_requirements()
}

/// Requirements being merged one at a time (taking each requirement's reasons, not copying them): the union of
/// permissions, reasons combined, sorted by permission.
#[derive(Debug, Default)]
pub struct RequirementSet(BTreeMap<Permission, Vec<Reason>>);

impl RequirementSet {
    /// Add one requirement (its permission, or its reasons to that permission's).
    pub fn add(&mut self, requirement: Requirement) {
        let Requirement {
            permission,
            mut reasons,
        } = requirement;
        match self.0.get_mut(&permission) {
            Some(existing) => {
                // Exactly: a role merges a few reasons per permission, and a sweep holds every role's at once.
                existing.reserve_exact(reasons.len());
                existing.append(&mut reasons);
            }
            None => {
                self.0.insert(permission, reasons);
            }
        }
    }

    /// The merged requirements, sorted by permission, each one's reasons sorted and deduplicated.
    pub fn into_requirements(self) -> Vec<Requirement> {
        self.0
            .into_iter()
            .map(|(permission, mut reasons)| {
                reason::settle(&mut reasons);
                Requirement {
                    permission,
                    reasons,
                }
            })
            .collect()
    }
}

/// The partition of a Region, or of the task's Region when none is given.
pub(crate) fn partition(region: &str) -> &'static str {
    partition_for_region(region)
}

#[cfg(test)]
mod tests;
