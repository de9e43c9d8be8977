//! Pure planning: what a role should hold (desired, from the derived requirements) against what IAM has
//! (observed, the owned inline policy) → the delta and the single write that repairs it, and the rendering of a
//! whole plan as text (read like `terraform plan`) or JSON (a stable schema for bots).
//!
//! It never talks to AWS and never decides *when* to write; the controller does that. Comparison is by meaning
//! (`policy::diff`), so a policy that IAM re-encoded, re-ordered or re-cased is not drift.

mod baseline;
mod effect;
mod hold;
mod json;
mod render;
mod spill;

use serde::Serialize;

use crate::derive::{Finding, Reason, Requirement};
use crate::model::RoleKey;
use crate::policy::{self, Grant, INLINE_LIMIT, Permission, PolicyDocument};

pub use baseline::{BASELINE_TAG, BaselineTag, is_baseline_policy_arn};
pub use effect::{Blocked, BlockedBy, OtherPolicy, OverGrant, blocked_needs, over_grants};
pub use hold::{HeldBack, HeldRemoval, Hold, Removals};
pub use json::{FindingJson, RequirementJson};
pub use render::{render_json, render_text, role_details_text};
pub use spill::{
    MAX_POLICY_VERSIONS, ManagedChange, OWNER_TAG, OwnedManagedPolicy, OwnedVersion, ROLE_TAG,
    is_spill_policy_name, spill_policy_name, spill_policy_role, version_number,
    versions_to_make_room,
};

/// IAM's limit on the total size of a role's inline policies (characters, whitespace not counted).
pub const INLINE_POLICY_LIMIT: usize = INLINE_LIMIT;

/// IAM's default quota of managed policies attached to one role.
pub const MAX_ATTACHED_POLICIES: usize = 10;

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
        crate::derive::policy_for(&self.requirements)
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
    /// The size (as IAM counts it) of the role's other inline policies, which share the inline limit.
    pub foreign_inline_size: usize,
    /// The spill policies the controller owns on the role.
    pub owned_managed: Vec<OwnedManagedPolicy>,
    /// The role's other policies (inline and attached, not owned), for evaluation by effect.
    pub other_policies: Vec<OtherPolicy>,
    /// The permissions boundary, when the role has one.
    pub boundary: Option<PolicyDocument>,
    /// Whether the role carries `execrole:baseline-attached=true` (execrole attached the baseline's policy).
    pub has_baseline_tag: bool,
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
    /// The baseline's managed policy to detach: execrole attached it (the role is tagged so) and the baseline is
    /// `least-privilege` now.
    pub detach_managed_policy: Option<String>,
    /// The write to the role's `execrole:baseline-attached` tag, after the attachment's.
    pub baseline_tag: Option<BaselineTag>,
    /// The trust policy to write (minified), when trust is managed and has drifted.
    pub trust_update: Option<String>,
    /// Writes to spill policies (customer managed policies the controller owns), in apply order.
    pub managed: Vec<ManagedChange>,
    /// Why the role's needs cannot be written within IAM's limits, when they cannot (nothing is written).
    pub too_large: Option<String>,
    /// Needs that other policies or the boundary stop even with the owned policy as desired.
    pub blocked: Vec<Blocked>,
    /// Other policies that allow much more than the needs (reported, never changed).
    pub over_granted: Vec<OverGrant>,
    /// When removals were held back: which and why, and the write that keeps them (the plan above still shows
    /// the full delta, removals included; the held-back ones are pending).
    pub held_back: Option<HeldBack>,
}

impl RolePlan {
    /// Whether applying the plan would write.
    pub fn has_changes(&self) -> bool {
        self.change != Change::None
            || self.attach_managed_policy.is_some()
            || self.detach_managed_policy.is_some()
            || self.baseline_tag.is_some()
            || self.trust_update.is_some()
            || !self.managed.is_empty()
    }

    /// Whether applying the plan would take a permission away (or replace an owned policy it cannot read).
    pub fn removes(&self) -> bool {
        !self.removed.is_empty()
            || !self.removed_other.is_empty()
            || self.change == Change::Delete
            || self.unreadable_owned_policy.is_some()
            || self.detach_managed_policy.is_some()
    }

    /// The plan whose writes apply executes: this one, or the one that keeps the held-back grants when removals
    /// were held back.
    pub fn write(&self) -> &RolePlan {
        self.held_back.as_ref().map_or(self, |h| h.write.as_ref())
    }

    /// Whether removals were held back and even the write that keeps them would remove something the holds
    /// cannot vouch for (a statement that cannot be expanded, an unreadable owned policy): then nothing may be
    /// written.
    pub fn is_write_withheld(&self) -> bool {
        self.held_back.as_ref().is_some_and(|h| h.withheld)
    }
}

/// Compare desired with observed for one role and decide the write, removing only what `removals` allows.
pub fn plan_role(
    desired: &DesiredRole,
    observed: &ObservedRole,
    policy_name: &str,
    removals: Removals,
) -> RolePlan {
    let mut plan = delta(desired, observed, policy_name);
    if let Removals::HeldBack(holds) = removals
        && (plan.removes() || hold::has_unreadable_spill(observed))
    {
        plan.held_back = hold::held_back(&plan, desired, observed, &holds);
    }
    plan
}

/// The full delta of one role: every need against everything the role holds.
fn delta(desired: &DesiredRole, observed: &ObservedRole, policy_name: &str) -> RolePlan {
    let desired_doc = desired.policy();
    let mut plan = unplanned(desired, observed, policy_name, desired_doc.as_ref());
    if observed.exists {
        compare(&mut plan, desired, observed, desired_doc.as_ref());
    }
    plan.desired = desired_doc;
    plan
}

/// Compare an existing role with what it should hold: its other policies' effects, the delta of the grants and
/// the writes that repair it.
fn compare(
    plan: &mut RolePlan,
    desired: &DesiredRole,
    observed: &ObservedRole,
    desired_doc: Option<&PolicyDocument>,
) {
    effects(plan, desired, observed, desired_doc);
    let observed_doc = match observed.owned_policy.as_deref().map(PolicyDocument::parse) {
        None => None,
        Some(Ok(doc)) => Some(doc),
        Some(Err(err)) => {
            plan.unreadable_owned_policy = Some(err.to_string());
            // We own it and cannot read it: everything we need is "missing", and the write replaces it whole.
            Some(PolicyDocument::default())
        }
    };
    let owned_managed = spill_documents(observed);
    let empty = PolicyDocument::default();
    let owned_all = owned_grants(observed_doc.as_ref().unwrap_or(&empty), &owned_managed);
    let delta = policy::diff(desired_doc.unwrap_or(&empty), &owned_all);
    plan.added = additions(&delta.added, &desired.requirements);
    if !delta.removed.is_empty() {
        let spellings = action_spellings(&owned_all);
        plan.removed = delta
            .removed
            .iter()
            .map(|g| display_permission(g, &spellings))
            .collect();
    }
    plan.removed_other = delta.other_removed.clone();

    let inline = Inline {
        doc: observed_doc.as_ref(),
        // With no attached spill policy the inline policy is all that grants: the delta above is its diff.
        in_sync: (!owned_managed.iter().any(|(m, _)| m.is_attached)).then(|| delta.is_empty()),
    };
    writes(
        plan,
        desired,
        observed,
        &inline,
        &owned_managed,
        desired_doc,
    );
}

/// Everything we own that grants: the inline policy and the attached spill policies (an unattached spill policy
/// grants nothing), as one document; the inline policy itself when no attached spill policy could be read.
fn owned_grants<'a>(
    inline: &'a PolicyDocument,
    owned_managed: &[spill::Owned<'_>],
) -> std::borrow::Cow<'a, PolicyDocument> {
    let mut attached = owned_managed
        .iter()
        .filter(|(m, _)| m.is_attached)
        .filter_map(|(_, doc)| doc.as_ref())
        .peekable();
    if attached.peek().is_none() {
        return std::borrow::Cow::Borrowed(inline);
    }
    let mut all = inline.clone();
    for doc in attached {
        all.statements.extend(doc.statements.iter().cloned());
    }
    std::borrow::Cow::Owned(all)
}

/// The role's plan before anything is compared: who it is, what it needs, and no change yet (the desired policy
/// itself is filled in last, once the comparison no longer borrows it).
fn unplanned(
    desired: &DesiredRole,
    observed: &ObservedRole,
    policy_name: &str,
    desired_doc: Option<&PolicyDocument>,
) -> RolePlan {
    RolePlan {
        key: desired.key.clone(),
        policy_name: policy_name.to_string(),
        task_definitions: desired.task_definitions.clone(),
        role_exists: observed.exists,
        change: Change::None,
        added: Vec::new(),
        removed: Vec::new(),
        removed_other: Vec::new(),
        desired_size: desired_doc.map(policy::iam_size).unwrap_or(0),
        desired: None,
        other_inline_policies: observed.other_inline_policies.clone(),
        unreadable_owned_policy: None,
        findings: desired.findings.clone(),
        attach_managed_policy: None,
        detach_managed_policy: None,
        baseline_tag: None,
        trust_update: None,
        managed: Vec::new(),
        too_large: None,
        blocked: Vec::new(),
        over_granted: Vec::new(),
        held_back: None,
    }
}

/// The spill policies the role owns, each with its document parsed when it can be read.
fn spill_documents(observed: &ObservedRole) -> Vec<spill::Owned<'_>> {
    observed
        .owned_managed
        .iter()
        .map(|m| {
            let document = m
                .document
                .as_deref()
                .and_then(|d| PolicyDocument::parse(d).ok());
            (m, document)
        })
        .collect()
}

/// What the role's other policies and settings mean for it: needs they block, what they over-grant, the
/// managed-policy attachment and the trust policy to write.
fn effects(
    plan: &mut RolePlan,
    desired: &DesiredRole,
    observed: &ObservedRole,
    desired_doc: Option<&PolicyDocument>,
) {
    plan.blocked = blocked_needs(
        desired_doc,
        &desired.requirements,
        &observed.other_policies,
        observed.boundary.as_ref(),
    );
    plan.over_granted = over_grants(
        &desired.requirements,
        &observed.other_policies,
        desired.managed_policy_arn.as_deref(),
    );
    let baseline = baseline::baseline_writes(desired.managed_policy_arn.as_deref(), observed);
    plan.attach_managed_policy = baseline.attach;
    plan.detach_managed_policy = baseline.detach;
    plan.baseline_tag = baseline.tag;
    if let Some(trust) = &desired.trust_policy {
        let current = observed
            .trust_policy
            .as_deref()
            .and_then(|t| PolicyDocument::parse(t).ok());
        if !current.is_some_and(|c| policy::is_equivalent(&c, trust)) {
            plan.trust_update = Some(trust.to_json());
        }
    }
}

/// Decide the writes to what the controller owns: the inline policy when the desired policy fits its budget,
/// spill policies when it does not, deletes when nothing is needed.
fn writes(
    plan: &mut RolePlan,
    desired: &DesiredRole,
    observed: &ObservedRole,
    inline: &Inline<'_>,
    owned_managed: &[spill::Owned<'_>],
    desired_doc: Option<&PolicyDocument>,
) {
    let unreadable = plan.unreadable_owned_policy.is_some();
    let inline_change = |doc: &PolicyDocument| match inline.doc {
        None => Change::Create {
            document: doc.to_json(),
        },
        Some(current) if unreadable || !inline.means(doc, current) => Change::Update {
            document: doc.to_json(),
        },
        Some(_) => Change::None,
    };
    let delete_inline = if inline.doc.is_some() {
        Change::Delete
    } else {
        Change::None
    };
    let delete_all_managed = || spill::delete_all(owned_managed);
    let budget = INLINE_LIMIT.saturating_sub(observed.foreign_inline_size);
    match desired_doc {
        None => {
            plan.change = delete_inline;
            plan.managed = delete_all_managed();
        }
        Some(doc) if plan.desired_size <= budget => {
            plan.change = inline_change(doc);
            plan.managed = delete_all_managed();
        }
        Some(doc) => match spill::spill(
            doc,
            &desired.key.name,
            desired.managed_policy_arn.as_deref(),
            owned_managed,
            observed,
            &plan.policy_name,
        ) {
            Ok(managed) => {
                plan.managed = managed;
                plan.change = delete_inline;
            }
            Err(why) => plan.too_large = Some(why),
        },
    }
}

/// The owned inline policy as observed, parsed.
struct Inline<'a> {
    /// Its document, when there is one.
    doc: Option<&'a PolicyDocument>,
    /// Whether it already means the desired policy, when the plan's delta already says so (no attached spill
    /// policy); `None`: compare.
    in_sync: Option<bool>,
}

impl Inline<'_> {
    /// Whether `current` (this inline policy) means `desired`.
    fn means(&self, desired: &PolicyDocument, current: &PolicyDocument) -> bool {
        self.in_sync
            .unwrap_or_else(|| policy::diff(desired, current).is_empty())
    }
}

/// The additions, each with the reasons of the (first) requirement it came from.
fn additions(added: &[Grant], requirements: &[Requirement]) -> Vec<Addition> {
    if added.is_empty() {
        return Vec::new();
    }
    let mut by_grant: std::collections::HashMap<Grant, &Requirement> =
        std::collections::HashMap::with_capacity(requirements.len());
    for r in requirements {
        by_grant.entry(Grant::from(&r.permission)).or_insert(r);
    }
    added
        .iter()
        .filter_map(|grant| {
            by_grant.get(grant).map(|r| Addition {
                permission: r.permission.clone(),
                reasons: r.reasons.clone(),
            })
        })
        .collect()
}

/// How the observed policies spell each action, by its lowercase form (the first spelling found wins).
fn action_spellings(observed: &PolicyDocument) -> std::collections::HashMap<String, &str> {
    let mut spellings = std::collections::HashMap::new();
    for action in observed
        .statements
        .iter()
        .flat_map(|s| s.action.iter().flatten())
    {
        spellings
            .entry(action.to_lowercase())
            .or_insert(action.as_str());
    }
    spellings
}

/// A removed grant as the observed policies spelled its action (grants are lower-cased for comparison).
fn display_permission(
    grant: &Grant,
    spellings: &std::collections::HashMap<String, &str>,
) -> Permission {
    let spelled = spellings
        .get(&grant.action)
        .map_or_else(|| grant.action.clone(), |s| (*s).to_string());
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
        self.roles
            .iter()
            .any(|r| r.has_changes() || r.too_large.is_some())
    }
}

#[cfg(test)]
mod tests;
