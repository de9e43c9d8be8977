//! Scoped hold-back: an unresolved fact keeps only the grants it could change; everything else the role no
//! longer needs is removed in the same write, and the plan says which removals were held back and by what.

use super::*;
use crate::derive::{FindingKind, HoldScope};

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111";
const PARAMETER: &str = "arn:aws:ssm:us-east-1:123456789012:parameter/app/token";
const CACHE: &str = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/*";
const OTHER_CACHE: &str = "arn:aws:ecr:us-east-1:123456789012:repository/quay/*";

/// An `unresolved_lookup` finding of `web:1`.
pub(super) fn unresolved_finding() -> Finding {
    Finding {
        kind: FindingKind::UnresolvedLookup,
        task_definition: "web:1".into(),
        container: Some("web".into()),
        field: Some("containerDefinitions[0].secrets[0].valueFrom".into()),
        message: "the look-up of KMS key `alias/app` failed (denied); kms:Decrypt not granted"
            .into(),
        holds: None,
    }
}

fn hold(scope: HoldScope) -> Hold {
    let mut finding = unresolved_finding();
    finding.holds = Some(scope.clone());
    Hold::Unresolved {
        scope,
        finding: Box::new(finding),
    }
}

fn key_hold() -> Hold {
    hold(HoldScope::Decrypt {
        region: "us-east-1".into(),
        account: Some("123456789012".into()),
    })
}

fn pull_through_hold() -> Hold {
    hold(HoldScope::PullThroughCache {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        prefix: "docker-hub".into(),
    })
}

/// An owned policy granting each (action, resource).
fn owned(grants: &[(&str, &str)]) -> String {
    let permissions: Vec<Permission> = grants
        .iter()
        .map(|(action, resource)| Permission::new(*action, *resource))
        .collect();
    policy::compile(&permissions).to_json()
}

fn written(plan: &RolePlan) -> BTreeSet<(String, String)> {
    plan.write()
        .desired
        .iter()
        .flat_map(policy::grants)
        .map(|g| (g.action, g.resource))
        .collect()
}

fn grant(action: &str, resource: &str) -> (String, String) {
    (action.to_lowercase(), resource.to_string())
}

#[test]
fn a_stale_parameter_grant_is_removed_while_decrypt_on_an_unresolved_key_is_kept() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let o = observed(Some(&owned(&[
        ("ecr:BatchGetImage", REPO),
        ("ssm:GetParameters", PARAMETER),
        ("kms:Decrypt", KEY),
    ])));
    let plan = plan_role(&d, &o, "execrole", Removals::HeldBack(vec![key_hold()]));
    // The plan shows the full delta: both grants are no longer needed.
    assert_eq!(plan.removed.len(), 2, "{:?}", plan.removed);
    let held = plan.held_back.as_ref().expect("a removal is held back");
    assert_eq!(held.removals.len(), 1);
    assert_eq!(held.removals[0].permission.resource, KEY);
    assert_eq!(held.removals[0].by, vec![key_hold()]);
    // The write removes the parameter grant and keeps the key's.
    assert!(!plan.is_write_withheld());
    assert_eq!(
        written(&plan),
        BTreeSet::from([grant("ecr:BatchGetImage", REPO), grant("kms:Decrypt", KEY)])
    );
    let write = plan.write();
    assert_eq!(write.removed.len(), 1);
    assert_eq!(write.removed[0].action, "ssm:GetParameters");
    assert!(matches!(write.change, Change::Update { .. }));
}

#[test]
fn an_unresolved_cache_rule_keeps_only_the_import_grants_of_its_namespace() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let o = observed(Some(&owned(&[
        ("ecr:BatchGetImage", REPO),
        ("ecr:BatchImportUpstreamImage", CACHE),
        ("ecr:CreateRepository", CACHE),
        ("ecr:BatchImportUpstreamImage", OTHER_CACHE),
        ("ssm:GetParameters", PARAMETER),
        ("kms:Decrypt", KEY),
    ])));
    let plan = plan_role(
        &d,
        &o,
        "execrole",
        Removals::HeldBack(vec![pull_through_hold()]),
    );
    assert_eq!(plan.removed.len(), 5);
    let held: Vec<&str> = plan
        .held_back
        .as_ref()
        .unwrap()
        .removals
        .iter()
        .map(|r| r.permission.action.as_str())
        .collect();
    assert_eq!(
        held,
        ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    );
    assert_eq!(
        written(&plan),
        BTreeSet::from([
            grant("ecr:BatchGetImage", REPO),
            grant("ecr:BatchImportUpstreamImage", CACHE),
            grant("ecr:CreateRepository", CACHE),
        ])
    );
}

#[test]
fn a_hold_that_covers_no_removal_lets_the_full_write_go_out() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let o = observed(Some(&owned(&[
        ("ecr:BatchGetImage", REPO),
        ("ssm:GetParameters", PARAMETER),
    ])));
    let plan = plan_role(
        &d,
        &o,
        "execrole",
        Removals::HeldBack(vec![key_hold(), pull_through_hold()]),
    );
    assert_eq!(plan, plan_role(&d, &o, "execrole", Removals::Allowed));
    assert!(plan.held_back.is_none() && std::ptr::eq(plan.write(), &plan));
    assert!(plan.removes());
}

#[test]
fn a_statement_that_cannot_be_expanded_withholds_the_write_under_any_hold() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let not_action = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/web"},{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#;
    let plan = plan_role(
        &d,
        &observed(Some(not_action)),
        "execrole",
        Removals::HeldBack(vec![key_hold()]),
    );
    assert!(plan.is_write_withheld(), "{plan:?}");
    assert!(plan.held_back.as_ref().unwrap().removals.is_empty());
}

#[test]
fn removals_for_a_role_come_from_the_view_and_the_findings_that_hold() {
    let mut holding = unresolved_finding();
    holding.holds = Some(HoldScope::CredSpecSecret);
    let mut cross = unresolved_finding();
    cross.kind = FindingKind::CrossAccountResource;
    let findings = vec![cross.clone(), holding.clone()];
    assert_eq!(
        Removals::for_role(false, &findings),
        Removals::HeldBack(vec![Hold::PartialObservation])
    );
    assert_eq!(
        Removals::for_role(true, &findings),
        Removals::HeldBack(vec![Hold::Unresolved {
            scope: HoldScope::CredSpecSecret,
            finding: Box::new(holding)
        }])
    );
    assert_eq!(Removals::for_role(true, &[cross]), Removals::Allowed);
}

#[test]
fn the_plan_says_which_removals_were_held_back_and_by_which_finding() {
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let o = observed(Some(&owned(&[
        ("ecr:BatchGetImage", REPO),
        ("ssm:GetParameters", PARAMETER),
        ("kms:Decrypt", KEY),
    ])));
    let plan = Plan {
        roles: vec![plan_role(
            &d,
            &o,
            "execrole",
            Removals::HeldBack(vec![key_hold()]),
        )],
        ..Plan::default()
    };
    let text = render_text(&plan);
    assert!(
        text.contains(&format!(
            "- kms:Decrypt on {KEY}   (no longer needed; held back: the unresolved look-up of web:1 container web \
             containerDefinitions[0].secrets[0].valueFrom)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "- ssm:GetParameters on {PARAMETER}   (no longer needed)\n"
        )),
        "{text}"
    );
    let json = render_json(&plan);
    let held = &json["roles"][0]["held_back"];
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(held[0]["action"], "kms:Decrypt");
    assert_eq!(held[0]["by"][0]["hold"], "unresolved_lookup");
    assert_eq!(held[0]["by"][0]["scope"]["kind"], "decrypt");
    assert_eq!(held[0]["by"][0]["finding"]["task_definition"], "web:1");
    assert_eq!(json["roles"][0]["write_withheld"], false);
    assert_eq!(
        json["roles"][0]["removed"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_wildcard_grant_that_could_cover_what_an_unresolved_fact_needs_is_kept() {
    // A human-written owned policy (say, adopted by pointing `policy_name` at it): tasks decrypt through
    // `kms:Decrypt` on `*` and import upstream images through `ecr:*`. While the key and the cache rules are
    // unknown, those grants may be the only ones that let the tasks start, so they are held back; a wildcard
    // that cannot reach the fact's scope is still removed.
    let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
    let any_repository = "arn:aws:ecr:us-east-1:123456789012:repository/*";
    let o = observed(Some(&owned(&[
        ("ecr:BatchGetImage", REPO),
        ("kms:Decrypt", "*"),
        ("ecr:*", any_repository),
        ("ssm:*", "*"),
    ])));
    let holds = vec![key_hold(), pull_through_hold()];
    let plan = plan_role(&d, &o, "execrole", Removals::HeldBack(holds));
    assert!(!plan.is_write_withheld());
    assert_eq!(
        written(&plan),
        BTreeSet::from([
            grant("ecr:BatchGetImage", REPO),
            grant("kms:Decrypt", "*"),
            grant("ecr:*", any_repository),
        ])
    );
}

#[test]
fn a_spill_policy_that_cannot_be_read_withholds_the_write_under_any_hold() {
    // Its grants are unknown: the write would delete (or overwrite) it and so remove what a hold may keep.
    for document in [None, Some("not a policy".to_string())] {
        let spill = OwnedManagedPolicy {
            name: "execrole-app-exec-1".into(),
            arn: "arn:aws:iam::123456789012:policy/execrole-app-exec-1".into(),
            document: document.clone(),
            is_attached: true,
            versions: vec![],
        };
        let mut o = observed(Some(&owned(&[("ecr:BatchGetImage", REPO)])));
        o.attached_policies = vec![spill.arn.clone()];
        o.owned_managed = vec![spill];
        let d = desired(vec![requirement("ecr:BatchGetImage", REPO)]);
        for hold in [Hold::PartialObservation, key_hold()] {
            let plan = plan_role(&d, &o, "execrole", Removals::HeldBack(vec![hold.clone()]));
            assert!(
                matches!(plan.managed.as_slice(), [ManagedChange::Delete { .. }]),
                "{plan:?}"
            );
            assert!(plan.is_write_withheld(), "{document:?} {hold:?}: {plan:?}");
        }
        // Left unattached by an interrupted write, it grants nothing: deleting it takes nothing away.
        o.owned_managed[0].is_attached = false;
        o.attached_policies.clear();
        let plan = plan_role(&d, &o, "execrole", Removals::HeldBack(vec![key_hold()]));
        assert!(!plan.is_write_withheld(), "{document:?}: {plan:?}");
    }
}

#[test]
fn the_text_heading_says_what_apply_writes_when_removals_are_held_back() {
    // Nothing is needed any more but the held-back kms:Decrypt: the full delta deletes the inline policy, the
    // write that apply executes keeps it unchanged.
    let o = observed(Some(&owned(&[
        ("ssm:GetParameters", PARAMETER),
        ("kms:Decrypt", KEY),
    ])));
    let plan = plan_role(
        &desired(vec![]),
        &o,
        "execrole",
        Removals::HeldBack(vec![key_hold()]),
    );
    assert_eq!(plan.change, Change::Delete);
    assert!(matches!(plan.write().change, Change::Update { .. }));
    let text = render_text(&Plan {
        roles: vec![plan],
        ..Plan::default()
    });
    assert!(!text.contains("will be deleted"), "{text}");
    assert!(text.contains("inline policy will be updated"), "{text}");
    // Only the held-back grant is left: the write changes nothing, the removal stays pending.
    let o = observed(Some(&owned(&[("kms:Decrypt", KEY)])));
    let plan = plan_role(
        &desired(vec![]),
        &o,
        "execrole",
        Removals::HeldBack(vec![key_hold()]),
    );
    assert_eq!(plan.write().change, Change::None);
    let text = render_text(&Plan {
        roles: vec![plan],
        ..Plan::default()
    });
    assert!(
        text.contains("= role 123456789012/app-exec policy execrole: nothing to write; the removals below are held back"),
        "{text}"
    );
}
