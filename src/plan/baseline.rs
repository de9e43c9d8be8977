//! The `managed-policy` baseline's attachment, and whose it is. When execrole attaches
//! `AmazonECSTaskExecutionRolePolicy` it tags the role `execrole:baseline-attached=true`; with the `least-privilege`
//! baseline it detaches the policy again only from roles so tagged (and removes the tag). An attachment without the
//! tag is a human's (or older execrole's): it is never detached, only reported as an over-grant.
//!
//! The writes go attach, then tag; detach, then untag. A crash in between leaves either an attachment without the
//! tag (treated as a human's: privilege left in place and reported, never a human's attachment taken away) or a tag
//! without an attachment (removed by the next pass). Not here: which policy the baseline names (`derive`), writing
//! (the controller).

use serde::Serialize;

use super::ObservedRole;
use crate::derive::{MANAGED_POLICY_ACTIONS, MANAGED_POLICY_NAME};
use crate::policy::Permission;

/// The role tag that says execrole attached the baseline's managed policy.
pub const BASELINE_TAG: (&str, &str) = ("execrole:baseline-attached", "true");

/// A write to the role's baseline tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineTag {
    /// Tag the role: execrole attached the policy.
    Add,
    /// Remove the tag: the policy is detached (or was never attached).
    Remove,
}

/// The baseline's writes for one role.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BaselineWrites {
    /// The managed policy to attach.
    pub(super) attach: Option<String>,
    /// The managed policy to detach (execrole attached it; the baseline no longer wants it).
    pub(super) detach: Option<String>,
    /// The tag write, after the attachment's.
    pub(super) tag: Option<BaselineTag>,
}

/// Whether an ARN is `AmazonECSTaskExecutionRolePolicy` in any partition.
pub fn is_baseline_policy_arn(arn: &str) -> bool {
    arn.strip_prefix("arn:")
        .and_then(|rest| rest.split_once(":iam::aws:policy/"))
        .is_some_and(|(partition, name)| !partition.contains(':') && name == MANAGED_POLICY_NAME)
}

/// What the baseline's policy grants (each action on `*`): what detaching it takes away.
pub(super) fn baseline_grants() -> Vec<Permission> {
    MANAGED_POLICY_ACTIONS
        .iter()
        .map(|action| Permission::new(*action, "*"))
        .collect()
}

/// The baseline's policy when it is attached and the role's tag says execrole attached it.
pub(super) fn attached_by_execrole(observed: &ObservedRole) -> Option<String> {
    observed
        .attached_policies
        .iter()
        .find(|arn| observed.has_baseline_tag && is_baseline_policy_arn(arn))
        .cloned()
}

/// Decide the baseline's writes: attach (and tag) what the baseline wants and is missing; detach (and untag)
/// what execrole attached and the baseline no longer wants; drop a tag left without its attachment.
pub(super) fn baseline_writes(wanted: Option<&str>, observed: &ObservedRole) -> BaselineWrites {
    let attached = observed
        .attached_policies
        .iter()
        .find(|arn| is_baseline_policy_arn(arn));
    let tagged = observed.has_baseline_tag;
    match wanted {
        Some(arn) if !observed.attached_policies.iter().any(|a| a == arn) => BaselineWrites {
            attach: Some(arn.to_string()),
            detach: None,
            tag: (!tagged).then_some(BaselineTag::Add),
        },
        Some(_) => BaselineWrites::default(),
        None if tagged => BaselineWrites {
            attach: None,
            detach: attached.cloned(),
            tag: Some(BaselineTag::Remove),
        },
        None => BaselineWrites::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::managed_policy_arn;
    use crate::model::RoleKey;
    use crate::plan::{DesiredRole, Hold, Plan, Removals, plan_role, render_json, render_text};

    fn desired(baseline: Option<String>) -> DesiredRole {
        DesiredRole {
            key: RoleKey {
                account: "123456789012".into(),
                name: "app-exec".into(),
            },
            task_definitions: vec!["web:1".into()],
            requirements: vec![],
            findings: vec![],
            managed_policy_arn: baseline,
            trust_policy: None,
        }
    }

    fn observed(attached: &[String], has_baseline_tag: bool) -> ObservedRole {
        ObservedRole {
            exists: true,
            owned_policy: None,
            other_inline_policies: vec![],
            attached_policies: attached.to_vec(),
            trust_policy: None,
            foreign_inline_size: 0,
            owned_managed: vec![],
            other_policies: vec![],
            boundary: None,
            has_baseline_tag,
        }
    }

    #[test]
    fn the_baseline_policy_is_recognised_in_every_partition_and_nothing_else() {
        for partition in ["aws", "aws-cn", "aws-us-gov"] {
            assert!(is_baseline_policy_arn(&managed_policy_arn(partition)));
        }
        for other in [
            "arn:aws:iam::aws:policy/AmazonECSTaskExecutionRolePolicy",
            "arn:aws:iam::123456789012:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicyX",
            "service-role/AmazonECSTaskExecutionRolePolicy",
        ] {
            assert!(!is_baseline_policy_arn(other), "{other}");
        }
    }

    #[test]
    fn the_baseline_attaches_tags_detaches_and_untags_only_what_execrole_attached() {
        let arn = managed_policy_arn("aws");
        let team = "arn:aws:iam::123456789012:policy/team".to_string();
        let attached = [arn.clone(), team.clone()];
        let none = BaselineWrites::default();
        let cases = [
            // managed-policy: attach and tag; a tag left by a crash before the attach is kept.
            (
                Some(&arn),
                &[][..],
                false,
                BaselineWrites {
                    attach: Some(arn.clone()),
                    detach: None,
                    tag: Some(BaselineTag::Add),
                },
            ),
            (
                Some(&arn),
                &[][..],
                true,
                BaselineWrites {
                    attach: Some(arn.clone()),
                    detach: None,
                    tag: None,
                },
            ),
            // Already attached, by a human or by execrole: nothing, and never a tag claiming a human's attachment.
            (Some(&arn), &attached[..], false, BaselineWrites::default()),
            (Some(&arn), &attached[..], true, BaselineWrites::default()),
            // least-privilege: detach and untag only when tagged; a human's attachment stays.
            (
                None,
                &attached[..],
                true,
                BaselineWrites {
                    attach: None,
                    detach: Some(arn.clone()),
                    tag: Some(BaselineTag::Remove),
                },
            ),
            (None, &attached[..], false, BaselineWrites::default()),
            // A tag without its attachment (a human detached it, or a crash between detach and untag) is removed.
            (
                None,
                &[team.clone()][..],
                true,
                BaselineWrites {
                    attach: None,
                    detach: None,
                    tag: Some(BaselineTag::Remove),
                },
            ),
            (None, &[][..], false, none),
        ];
        for (i, (wanted, attached, tagged, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                baseline_writes(wanted.map(String::as_str), &observed(attached, tagged)),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn switching_to_least_privilege_plans_the_detach_and_shows_it() {
        let arn = managed_policy_arn("aws");
        let plan = plan_role(
            &desired(None),
            &observed(std::slice::from_ref(&arn), true),
            "execrole",
            Removals::Allowed,
        );
        assert_eq!(plan.detach_managed_policy.as_deref(), Some(arn.as_str()));
        assert_eq!(plan.baseline_tag, Some(BaselineTag::Remove));
        assert!(plan.has_changes() && plan.removes());
        let whole = Plan {
            roles: vec![plan],
            ..Default::default()
        };
        let text = render_text(&whole);
        assert!(
            text.contains(&format!("- detach managed policy {arn}")),
            "{text}"
        );
        assert!(
            text.contains("- untag the role execrole:baseline-attached"),
            "{text}"
        );
        let json = render_json(&whole);
        assert_eq!(json["roles"][0]["detach_managed_policy"], arn.as_str());
        assert_eq!(json["roles"][0]["baseline_tag"], "remove");
    }

    #[test]
    fn held_back_removals_keep_the_baseline_attachment() {
        let arn = managed_policy_arn("aws");
        let removals = Removals::HeldBack(vec![Hold::PartialObservation]);
        let plan = plan_role(
            &desired(None),
            &observed(std::slice::from_ref(&arn), true),
            "execrole",
            removals,
        );
        assert_eq!(
            plan.detach_managed_policy.as_deref(),
            Some(arn.as_str()),
            "shown as pending"
        );
        let write = plan.write();
        assert_eq!(
            (&write.detach_managed_policy, write.baseline_tag),
            (&None, None)
        );
        assert!(!plan.is_write_withheld());
        let held = &plan.held_back.as_ref().expect("held back").removals;
        assert!(
            held.iter()
                .any(|h| h.permission.action == "ecr:BatchGetImage"),
            "{held:?}"
        );

        // A hold on what a key could change does not cover ECR and logs: the detach goes ahead.
        let scope = crate::derive::HoldScope::Decrypt {
            region: "us-east-1".into(),
            account: None,
        };
        let finding = crate::derive::Finding {
            kind: crate::derive::FindingKind::UnresolvedLookup,
            task_definition: "web:1".into(),
            container: None,
            field: None,
            message: "the key could not be described".into(),
            holds: Some(scope.clone()),
        };
        let removals = Removals::HeldBack(vec![Hold::Unresolved {
            scope,
            finding: Box::new(finding),
        }]);
        let observed = observed(std::slice::from_ref(&arn), true);
        let plan = plan_role(&desired(None), &observed, "execrole", removals);
        assert!(plan.held_back.is_none(), "{:?}", plan.held_back);
        assert_eq!(
            plan.write().detach_managed_policy.as_deref(),
            Some(arn.as_str())
        );
    }
}
