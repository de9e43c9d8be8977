//! Holding removals back: what the planner may not take away from a role ([`Removals`]), because part of the
//! account could not be seen (every grant is kept) or a fact behind the role's needs is unknown (the grants its
//! [`HoldScope`] covers are kept). Everything outside the holds is removed as usual, so one look-up that never
//! resolves does not freeze a role's other removals.
//!
//! The write that keeps the held grants is planned here, as a second delta, so the plan `plan_role` returns is
//! exactly what apply does.

use super::{DesiredRole, ObservedRole, RolePlan};
use crate::derive::{Finding, HoldScope, Reason, Requirement};
use crate::policy::{self, Permission, PolicyDocument};

/// What the planner may take away from a role: an input, so the plan it returns is what apply does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removals {
    /// Everything the role no longer needs may be removed.
    Allowed,
    /// What these holds cover may not be removed (additions still go out, and so do removals outside them); the
    /// removals held back are reported as pending.
    HeldBack(Vec<Hold>),
}

impl Removals {
    /// What may be removed from a role: nothing when the account was seen only in part (`complete` false),
    /// otherwise everything but what the unresolved facts behind its `findings` could change.
    pub fn for_role(complete: bool, findings: &[Finding]) -> Removals {
        if !complete {
            return Removals::HeldBack(vec![Hold::PartialObservation]);
        }
        let holds: Vec<Hold> = findings
            .iter()
            .filter_map(|finding| {
                finding.holds.clone().map(|scope| Hold::Unresolved {
                    scope,
                    finding: Box::new(finding.clone()),
                })
            })
            .collect();
        if holds.is_empty() {
            Removals::Allowed
        } else {
            Removals::HeldBack(holds)
        }
    }
}

/// Why some removals are held back for a role, and which.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hold {
    /// Some in-scope revision of the account could not be seen; it may need anything: every grant is kept.
    PartialObservation,
    /// A fact behind the role's needs is unknown: the grants it could change are kept.
    Unresolved {
        /// What the fact could change.
        scope: HoldScope,
        /// The `unresolved_lookup` finding that reports it.
        finding: Box<Finding>,
    },
}

impl Hold {
    /// A stable name for logs and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Hold::PartialObservation => "partial_observation",
            Hold::Unresolved { .. } => "unresolved_lookup",
        }
    }

    /// Whether the hold keeps `permission`.
    pub fn covers(&self, permission: &Permission) -> bool {
        match self {
            Hold::PartialObservation => true,
            Hold::Unresolved { scope, .. } => scope.covers(permission),
        }
    }

    /// Why it holds, for the text plan.
    pub fn describe(&self) -> String {
        match self {
            Hold::PartialObservation => {
                "some task definitions of the account could not be read this pass".to_string()
            }
            Hold::Unresolved { finding, .. } => {
                let mut at = finding.task_definition.clone();
                if let Some(container) = &finding.container {
                    at.push_str(&format!(" container {container}"));
                }
                if let Some(field) = &finding.field {
                    at.push_str(&format!(" {field}"));
                }
                format!("the unresolved look-up of {at}")
            }
        }
    }
}

/// A removal held back, and every hold that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRemoval {
    /// The grant kept, as the owned policy spells it.
    pub permission: Permission,
    /// What keeps it (at least one).
    pub by: Vec<Hold>,
}

/// Removals held back: which and why, and the plan of the write that keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldBack {
    /// The removals of the full delta that the write keeps.
    pub removals: Vec<HeldRemoval>,
    /// The write apply executes instead of the full delta (additions, and removals outside the holds).
    pub write: Box<RolePlan>,
    /// Whether even that write would take away something the holds cannot vouch for (a statement that cannot be
    /// expanded, an unreadable owned or spill policy, a grant that cannot be kept): then nothing may be written.
    pub withheld: bool,
}

/// The removals of `plan` (the full delta) that `holds` keep, and the write that keeps them; `None` when no
/// removal is held back and the full write may go out.
pub(super) fn held_back(
    plan: &RolePlan,
    desired: &DesiredRole,
    observed: &ObservedRole,
    holds: &[Hold],
) -> Option<HeldBack> {
    let detached = plan
        .detach_managed_policy
        .is_some()
        .then(|| held_baseline(holds));
    let held: Vec<HeldRemoval> = plan
        .removed
        .iter()
        .chain(detached.iter().flatten())
        .filter_map(|permission| {
            let by: Vec<Hold> = holds
                .iter()
                .filter(|h| h.covers(permission))
                .cloned()
                .collect();
            (!by.is_empty()).then(|| HeldRemoval {
                permission: permission.clone(),
                by,
            })
        })
        .collect();
    let write = super::delta(
        &keeping(desired, observed, holds),
        observed,
        &plan.policy_name,
    );
    let withheld = write.unreadable_owned_policy.is_some()
        || has_unreadable_spill(observed)
        || !write.removed_other.is_empty()
        || write
            .removed
            .iter()
            .any(|p| holds.iter().any(|h| h.covers(p)));
    (!held.is_empty() || withheld).then(|| HeldBack {
        removals: held,
        write: Box::new(write),
        withheld,
    })
}

/// The baseline policy's grants that `holds` cover: what detaching it would take away that a hold keeps.
fn held_baseline(holds: &[Hold]) -> Vec<Permission> {
    super::baseline::baseline_grants()
        .into_iter()
        .filter(|p| holds.iter().any(|h| h.covers(p)))
        .collect()
}

/// Whether an attached owned spill policy cannot be read: its grants are unknown, and every write replaces or
/// deletes it.
pub(super) fn has_unreadable_spill(observed: &ObservedRole) -> bool {
    observed
        .owned_managed
        .iter()
        .filter(|m| m.is_attached)
        .any(|m| {
            m.document
                .as_deref()
                .is_none_or(|d| PolicyDocument::parse(d).is_err())
        })
}

/// The desired role plus every grant the owned policies already have that a hold covers (it may still be
/// needed), so that the write adds what is missing, removes what no hold covers and keeps the rest.
fn keeping(desired: &DesiredRole, observed: &ObservedRole, holds: &[Hold]) -> DesiredRole {
    let documents: Vec<PolicyDocument> = observed
        .owned_policy
        .iter()
        .chain(
            observed
                .owned_managed
                .iter()
                .filter(|m| m.is_attached)
                .filter_map(|m| m.document.as_ref()),
        )
        .filter_map(|raw| PolicyDocument::parse(raw).ok())
        .collect();
    let kept = documents
        .iter()
        .flat_map(policy::grants)
        .filter_map(|grant| grant.to_permission())
        .filter_map(|permission| {
            let hold = holds.iter().find(|h| h.covers(&permission))?;
            Some(Requirement {
                permission,
                reasons: vec![Reason {
                    task_definition: "(kept)".into(),
                    container: "-".into(),
                    field: hold.describe().into(),
                }],
            })
        });
    let mut keeping = desired.clone();
    // Nor is the baseline's managed policy detached while a hold covers what it grants.
    if keeping.managed_policy_arn.is_none() && !held_baseline(holds).is_empty() {
        keeping.managed_policy_arn = super::baseline::attached_by_execrole(observed);
    }
    let requirements: Vec<_> = desired.requirements.iter().cloned().chain(kept).collect();
    keeping.requirements = crate::derive::merge_requirements(requirements.iter());
    keeping
}
