//! Pure planning: what a role should hold (desired, from the derived requirements) against what IAM has
//! (observed, the owned inline policy) → the delta and the single write that repairs it, and the rendering of a
//! whole plan as text (read like `terraform plan`) or JSON (a stable schema for bots).
//!
//! It never talks to AWS and never decides *when* to write; the controller does that. Comparison is by meaning
//! (`policy::diff`), so a policy that IAM re-encoded, re-ordered or re-cased is not drift.

mod render;

use serde::Serialize;

use crate::derive::{Finding, Reason, Requirement};
use crate::model::RoleKey;
use crate::policy::{self, Grant, Permission, PolicyDocument};

pub use render::{finding_json, render_json, render_text};

/// IAM's limit on the total size of a role's inline policies (characters, whitespace not counted).
pub const INLINE_POLICY_LIMIT: usize = 10_240;

/// What one role should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRole {
    /// The role.
    pub key: RoleKey,
    /// The in-scope task definitions that name it (`family:revision`), sorted.
    pub task_definitions: Vec<String>,
    /// The merged requirements of those task definitions.
    pub requirements: Vec<Requirement>,
    /// Their findings.
    pub findings: Vec<Finding>,
    /// The managed policy that must be attached (`managed-policy` baseline), as an ARN.
    pub managed_policy_arn: Option<String>,
    /// The trust policy the role must have, when trust management is on.
    pub trust_policy: Option<PolicyDocument>,
}

impl DesiredRole {
    /// The compiled owned policy, or `None` when nothing is needed.
    pub fn policy(&self) -> Option<PolicyDocument> {
        if self.requirements.is_empty() {
            return None;
        }
        let permissions: Vec<Permission> = self
            .requirements
            .iter()
            .map(|r| r.permission.clone())
            .collect();
        Some(policy::compile(&permissions))
    }
}

/// What IAM holds for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedRole {
    /// Whether the role exists.
    pub exists: bool,
    /// The owned inline policy's document as IAM returned it, when it exists.
    pub owned_policy: Option<String>,
    /// The names of the role's other inline policies (never touched).
    pub other_inline_policies: Vec<String>,
    /// The ARNs of attached managed policies (read only when a managed policy must be attached).
    pub attached_policies: Vec<String>,
    /// The trust policy as IAM returned it (URL-encoded).
    pub trust_policy: Option<String>,
}

/// The single write that repairs a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// Nothing to do.
    None,
    /// Create the owned policy (the role has none yet).
    Create {
        /// The minified policy document.
        document: String,
    },
    /// Replace the owned policy.
    Update {
        /// The minified policy document.
        document: String,
    },
    /// Delete the owned policy: the role needs nothing any more.
    Delete,
}

impl Change {
    /// The change's name in plans and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::None => "none",
            Change::Create { .. } => "create",
            Change::Update { .. } => "update",
            Change::Delete => "delete",
        }
    }
}

/// A permission to add, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addition {
    /// What.
    pub permission: Permission,
    /// Why.
    pub reasons: Vec<Reason>,
}

/// The plan for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePlan {
    /// The role.
    pub key: RoleKey,
    /// The owned policy's name.
    pub policy_name: String,
    /// The task definitions that name the role.
    pub task_definitions: Vec<String>,
    /// Whether the role exists.
    pub role_exists: bool,
    /// The write that repairs the role.
    pub change: Change,
    /// Needed and not granted by the owned policy ("missing").
    pub added: Vec<Addition>,
    /// Granted by the owned policy and no longer needed ("excess"): (action, resource, conditions) as written.
    pub removed: Vec<Permission>,
    /// Statements of the owned policy that cannot be expanded (e.g. `NotAction`) and will be removed, as JSON.
    pub removed_other: Vec<String>,
    /// The desired policy, when anything is needed.
    pub desired: Option<PolicyDocument>,
    /// The desired policy's size as IAM counts it.
    pub desired_size: usize,
    /// The role's other inline policies, left untouched.
    pub other_inline_policies: Vec<String>,
    /// Why the owned policy could not be read, when it could not (it is then rewritten whole).
    pub unreadable_owned_policy: Option<String>,
    /// Findings of the task definitions behind the role.
    pub findings: Vec<Finding>,
    /// The managed policy to attach (`managed-policy` baseline), when it is not attached yet.
    pub attach_managed_policy: Option<String>,
    /// The trust policy to write (minified), when trust is managed and has drifted.
    pub trust_update: Option<String>,
}

impl RolePlan {
    /// Whether applying the plan would write.
    pub fn has_changes(&self) -> bool {
        self.change != Change::None
            || self.attach_managed_policy.is_some()
            || self.trust_update.is_some()
    }
}

/// Compare desired with observed for one role and decide the write.
pub fn plan_role(desired: &DesiredRole, observed: &ObservedRole, policy_name: &str) -> RolePlan {
    let desired_doc = desired.policy();
    let desired_size = desired_doc.as_ref().map(policy::iam_size).unwrap_or(0);
    let mut plan = RolePlan {
        key: desired.key.clone(),
        policy_name: policy_name.to_string(),
        task_definitions: desired.task_definitions.clone(),
        role_exists: observed.exists,
        change: Change::None,
        added: Vec::new(),
        removed: Vec::new(),
        removed_other: Vec::new(),
        desired: desired_doc.clone(),
        desired_size,
        other_inline_policies: observed.other_inline_policies.clone(),
        unreadable_owned_policy: None,
        findings: desired.findings.clone(),
        attach_managed_policy: None,
        trust_update: None,
    };
    if !observed.exists {
        return plan;
    }
    plan.attach_managed_policy = desired
        .managed_policy_arn
        .as_ref()
        .filter(|arn| !observed.attached_policies.contains(arn))
        .cloned();
    if let Some(trust) = &desired.trust_policy {
        let current = observed
            .trust_policy
            .as_deref()
            .and_then(|t| PolicyDocument::parse(t).ok());
        if !current.is_some_and(|c| policy::is_equivalent(&c, trust)) {
            plan.trust_update = Some(trust.to_json());
        }
    }
    let observed_doc = match observed.owned_policy.as_deref().map(PolicyDocument::parse) {
        None => None,
        Some(Ok(doc)) => Some(doc),
        Some(Err(err)) => {
            plan.unreadable_owned_policy = Some(err.to_string());
            // We own it and cannot read it: everything we need is "missing", and the write replaces it whole.
            Some(PolicyDocument::default())
        }
    };
    let empty = PolicyDocument::default();
    let delta = policy::diff(
        desired_doc.as_ref().unwrap_or(&empty),
        observed_doc.as_ref().unwrap_or(&empty),
    );
    plan.added = additions(&delta.added, &desired.requirements);
    plan.removed = delta
        .removed
        .iter()
        .map(|g| display_permission(g, observed_doc.as_ref()))
        .collect();
    plan.removed_other = delta.other_removed.clone();
    let unreadable = plan.unreadable_owned_policy.is_some();
    plan.change = match (&desired_doc, observed_doc.is_some()) {
        (None, false) => Change::None,
        (None, true) => Change::Delete,
        (Some(doc), false) => Change::Create {
            document: doc.to_json(),
        },
        (Some(doc), true) if !delta.is_empty() || unreadable => Change::Update {
            document: doc.to_json(),
        },
        (Some(_), true) => Change::None,
    };
    plan
}

/// The additions, each with the reasons of the requirement it came from.
fn additions(added: &[Grant], requirements: &[Requirement]) -> Vec<Addition> {
    added
        .iter()
        .filter_map(|grant| {
            requirements
                .iter()
                .find(|r| Grant::from(&r.permission) == *grant)
                .map(|r| Addition {
                    permission: r.permission.clone(),
                    reasons: r.reasons.iter().cloned().collect(),
                })
        })
        .collect()
}

/// A removed grant as the observed policy spelled its action (grants are lower-cased for comparison).
fn display_permission(grant: &Grant, observed: Option<&PolicyDocument>) -> Permission {
    let spelled = observed
        .into_iter()
        .flat_map(|doc| doc.statements.iter())
        .flat_map(|s| s.action.iter().flatten())
        .find(|a| a.eq_ignore_ascii_case(&grant.action))
        .cloned()
        .unwrap_or_else(|| grant.action.clone());
    Permission {
        action: spelled,
        resource: grant.resource.clone(),
        conditions: grant.conditions.clone(),
    }
}

/// The plan of a whole pass: every role, and the findings of task definitions that name no usable role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per role, sorted by key.
    pub roles: Vec<RolePlan>,
    /// Findings not tied to a role (no or invalid `executionRoleArn`).
    pub findings: Vec<Finding>,
    /// Roles that could not be read (role, error), so the plan is incomplete.
    pub errors: Vec<(RoleKey, String)>,
}

impl Plan {
    /// Whether any role would be written.
    pub fn has_changes(&self) -> bool {
        self.roles.iter().any(RolePlan::has_changes)
    }
}

#[cfg(test)]
mod tests;
