//! Plan tests: the write decided for each combination of desired and observed state.

use std::collections::BTreeSet;

use super::*;
use crate::derive::Reason;
use crate::policy::{INLINE_LIMIT, MANAGED_LIMIT};

fn key() -> RoleKey {
    RoleKey {
        account: "123456789012".into(),
        name: "app-exec".into(),
    }
}

fn requirement(action: &str, resource: &str) -> Requirement {
    Requirement {
        permission: Permission::new(action, resource),
        reasons: vec![Reason {
            task_definition: "web:1".into(),
            container: "web".into(),
            field: "containerDefinitions[0].image".into(),
        }],
    }
}

fn desired(requirements: Vec<Requirement>) -> DesiredRole {
    DesiredRole {
        key: key(),
        task_definitions: vec!["web:1".into()],
        requirements,
        findings: vec![],
        managed_policy_arn: None,
        trust_policy: None,
    }
}

fn observed(policy: Option<&str>) -> ObservedRole {
    ObservedRole {
        exists: true,
        owned_policy: policy.map(str::to_string),
        other_inline_policies: vec!["team-extra".into()],
        attached_policies: vec![],
        trust_policy: None,
        foreign_inline_size: 0,
        owned_managed: vec![],
        other_policies: vec![],
        boundary: None,
        has_baseline_tag: false,
    }
}

const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/web";

mod held;

#[test]
fn a_role_without_the_owned_policy_gets_it_created() {
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &observed(None),
        "execrole",
        Removals::Allowed,
    );
    let Change::Create { document } = &plan.change else {
        panic!("expected create, got {:?}", plan.change);
    };
    assert!(document.contains("ecr:BatchGetImage"));
    assert_eq!(plan.added.len(), 1);
    assert_eq!(&*plan.added[0].reasons[0].container, "web");
}

#[test]
fn an_equivalent_policy_in_another_shape_is_not_drift() {
    // URL-encoded, lower-cased action, list instead of string, a Sid: same meaning.
    let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Sid%22%3A%22x%22%2C%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22ecr%3Abatchgetimage%22%5D%2C%22Resource%22%3A%5B%22arn%3Aaws%3Aecr%3Aus-east-1%3A123456789012%3Arepository%2Fweb%22%5D%7D%5D%7D";
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &observed(Some(encoded)),
        "execrole",
        Removals::Allowed,
    );
    assert_eq!(plan.change, Change::None, "{plan:?}");
    assert!(plan.added.is_empty() && plan.removed.is_empty());
}

#[test]
fn a_stale_statement_is_removed_and_a_missing_one_added() {
    let stale = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/old"}]}"#;
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &observed(Some(stale)),
        "execrole",
        Removals::Allowed,
    );
    assert!(matches!(plan.change, Change::Update { .. }));
    assert_eq!(plan.added[0].permission.resource, REPO);
    assert_eq!(
        plan.removed[0].resource,
        "arn:aws:ecr:us-east-1:123456789012:repository/old"
    );
    assert_eq!(plan.removed[0].action, "ecr:BatchGetImage");
}

#[test]
fn held_back_removals_are_shown_as_pending_and_the_write_keeps_every_grant() {
    let stale = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/old"}]}"#;
    let removals = Removals::HeldBack(vec![Hold::PartialObservation]);
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let plan = plan_role(&d, &observed(Some(stale)), "execrole", removals);
    // The plan shows the full delta, the same as when removals are allowed.
    let full = plan_role(&d, &observed(Some(stale)), "execrole", Removals::Allowed);
    assert_eq!(
        RolePlan {
            held_back: None,
            ..plan.clone()
        },
        full
    );
    let held = plan.held_back.as_ref().expect("removals held back");
    assert_eq!(held.removals.len(), 1);
    assert_eq!(held.removals[0].by, vec![Hold::PartialObservation]);
    let write = plan.write();
    assert!(!write.removes() && !plan.is_write_withheld());
    let Change::Update { document } = &write.change else {
        panic!("expected an update, got {:?}", write.change);
    };
    assert!(document.contains("repository/old") && document.contains("repository/web"));
}

#[test]
fn held_back_removals_change_nothing_when_nothing_would_be_removed() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let removals = Removals::HeldBack(vec![Hold::Unresolved {
        scope: crate::derive::HoldScope::CredSpecSecret,
        finding: Box::new(held::unresolved_finding()),
    }]);
    let plan = plan_role(&d, &observed(None), "execrole", removals);
    assert_eq!(
        plan,
        plan_role(&d, &observed(None), "execrole", Removals::Allowed)
    );
    assert!(std::ptr::eq(plan.write(), &plan));
}

#[test]
fn a_role_that_needs_nothing_loses_its_owned_policy() {
    let old = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}]}"#;
    let plan = plan_role(
        &desired(vec![]),
        &observed(Some(old)),
        "execrole",
        Removals::Allowed,
    );
    assert_eq!(plan.change, Change::Delete);
    let plan = plan_role(
        &desired(vec![]),
        &observed(None),
        "execrole",
        Removals::Allowed,
    );
    assert_eq!(plan.change, Change::None);
}

#[test]
fn an_unreadable_owned_policy_is_replaced_whole() {
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &observed(Some("not json")),
        "execrole",
        Removals::Allowed,
    );
    assert!(matches!(plan.change, Change::Update { .. }));
    assert!(plan.unreadable_owned_policy.is_some());
}

#[test]
fn a_missing_role_is_never_written() {
    let mut o = observed(None);
    o.exists = false;
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &o,
        "execrole",
        Removals::Allowed,
    );
    assert_eq!(plan.change, Change::None);
    assert!(!plan.role_exists);
    assert!(
        render_text(&Plan {
            roles: vec![plan],
            ..Default::default()
        })
        .contains("does not exist")
    );
}

#[test]
fn text_and_json_show_additions_with_reasons_and_removals() {
    let stale = r#"{"Statement":{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/old"}}"#;
    let role = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &observed(Some(stale)),
        "execrole",
        Removals::Allowed,
    );
    let plan = Plan {
        roles: vec![role],
        ..Default::default()
    };
    let text = render_text(&plan);
    assert!(
        text.contains("~ role 123456789012/app-exec policy execrole"),
        "{text}"
    );
    assert!(
        text.contains(&format!("+ ecr:BatchGetImage on {REPO}")),
        "{text}"
    );
    assert!(
        text.contains("because web:1 container web containerDefinitions[0].image"),
        "{text}"
    );
    assert!(
        text.contains("- ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/old"),
        "{text}"
    );
    assert!(
        text.contains("(not ours, left untouched): team-extra"),
        "{text}"
    );
    assert!(text.contains("Plan: 0 to create, 1 to update"), "{text}");
    let json = render_json(&plan);
    assert_eq!(json["schema"], 1);
    assert_eq!(json["changes_pending"], true);
    assert_eq!(json["roles"][0]["change"], "update");
    assert_eq!(
        json["roles"][0]["added"][0]["reasons"][0]["field"],
        "containerDefinitions[0].image"
    );
    assert_eq!(
        json["roles"][0]["removed"][0]["resource"],
        "arn:aws:ecr:us-east-1:123456789012:repository/old"
    );
    assert_eq!(
        json["roles"][0]["policy"]["Statement"][0]["Action"],
        "ecr:BatchGetImage"
    );
}

#[test]
fn an_empty_plan_says_no_changes() {
    let plan = Plan::default();
    assert!(!plan.has_changes());
    assert!(render_text(&plan).starts_with("No changes."));
}

#[test]
fn the_managed_policy_is_attached_once_in_the_managed_baseline() {
    let arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
    let mut d = desired(vec![]);
    d.managed_policy_arn = Some(arn.into());
    let plan = plan_role(&d, &observed(None), "execrole", Removals::Allowed);
    assert_eq!(plan.attach_managed_policy.as_deref(), Some(arn));
    assert!(plan.has_changes());
    assert!(
        render_text(&Plan {
            roles: vec![plan],
            ..Default::default()
        })
        .contains("+ attach managed policy")
    );
    let mut o = observed(None);
    o.attached_policies = vec![arn.into()];
    assert!(!plan_role(&d, &o, "execrole", Removals::Allowed).has_changes());
}

#[test]
fn managed_trust_is_rewritten_only_when_its_meaning_differs() {
    let trust = crate::derive::trust_policy("aws", None);
    let mut d = desired(vec![]);
    d.trust_policy = Some(trust.clone());
    let mut o = observed(None);
    // Same meaning, other shape (a list principal, a Sid): no change.
    o.trust_policy = Some(r#"{"Version":"2012-10-17","Statement":[{"Sid":"x","Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com"]},"Action":["sts:AssumeRole"]}]}"#.into());
    assert_eq!(
        plan_role(&d, &o, "execrole", Removals::Allowed).trust_update,
        None
    );
    // Another principal as well: drift.
    o.trust_policy = Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#.into());
    assert_eq!(
        plan_role(&d, &o, "execrole", Removals::Allowed).trust_update,
        Some(trust.to_json())
    );
}

fn many(n: usize) -> Vec<Requirement> {
    (0..n)
        .flat_map(|i| {
            let repo = format!("arn:aws:ecr:us-east-1:123456789012:repository/team-{i:04}/a-service-with-a-long-name");
            [requirement("ecr:BatchGetImage", &repo), requirement("ecr:GetDownloadUrlForLayer", &repo)]
        })
        .collect()
}

#[test]
fn a_policy_over_the_inline_budget_spills_into_owned_managed_policies() {
    let d = desired(many(120));
    assert!(policy::iam_size(&d.policy().unwrap()) > INLINE_LIMIT);
    let plan = plan_role(&d, &observed(None), "execrole", Removals::Allowed);
    assert_eq!(plan.change, Change::None);
    assert!(plan.managed.len() >= 2, "{:?}", plan.managed);
    for (i, change) in plan.managed.iter().enumerate() {
        let ManagedChange::Create { name, document } = change else {
            panic!("expected creates: {change:?}");
        };
        assert_eq!(name, &spill_policy_name("execrole", "app-exec", i + 1));
        assert!(document.len() <= MANAGED_LIMIT);
    }
    assert!(
        render_text(&Plan {
            roles: vec![plan],
            ..Default::default()
        })
        .contains("+ spill policy execrole-app-exec-1")
    );
}

#[test]
fn foreign_inline_policies_count_against_the_inline_budget() {
    let d = desired(many(20));
    let size = policy::iam_size(&d.policy().unwrap());
    let mut o = observed(None);
    o.foreign_inline_size = INLINE_LIMIT - size + 1;
    let plan = plan_role(&d, &o, "execrole", Removals::Allowed);
    assert!(
        matches!(plan.managed.first(), Some(ManagedChange::Create { .. })),
        "{plan:?}"
    );
    o.foreign_inline_size = INLINE_LIMIT - size;
    let plan = plan_role(&d, &o, "execrole", Removals::Allowed);
    assert!(matches!(plan.change, Change::Create { .. }));
    assert!(plan.managed.is_empty());
}

#[test]
fn shrinking_back_under_the_budget_deletes_the_spill_policies_after_writing_inline() {
    let owned = OwnedManagedPolicy {
        name: "execrole-app-exec-1".into(),
        arn: "arn:aws:iam::123456789012:policy/execrole-app-exec-1".into(),
        document: Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}]}"#.into()),
        is_attached: true,
        versions: vec![],
    };
    let mut o = observed(None);
    o.attached_policies = vec![owned.arn.clone()];
    o.owned_managed = vec![owned];
    let plan = plan_role(
        &desired(vec![requirement("ecr:BatchGetImage", REPO)]),
        &o,
        "execrole",
        Removals::Allowed,
    );
    assert!(matches!(plan.change, Change::Create { .. }));
    assert!(matches!(
        plan.managed.as_slice(),
        [ManagedChange::Delete { .. }]
    ));
    assert_eq!(
        plan.removed.len(),
        1,
        "the old grant on * goes: {:?}",
        plan.removed
    );
}

#[test]
fn a_role_too_large_for_every_limit_is_reported_and_not_written() {
    let plan = plan_role(
        &desired(many(2000)),
        &observed(None),
        "execrole",
        Removals::Allowed,
    );
    assert!(plan.too_large.is_some());
    assert!(!plan.has_changes());
    assert!(
        render_text(&Plan {
            roles: vec![plan],
            ..Default::default()
        })
        .contains("role too large")
    );
}
