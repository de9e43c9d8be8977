//! What a pass observes: paging, scope, foreign accounts, revisions that cannot be described (removals held
//! back, additions written), and look-ups (pull-through cache rules).

use super::*;

#[tokio::test]
async fn a_revision_that_cannot_be_described_blocks_removals_but_not_additions() {
    struct Case {
        name: &'static str,
        owned: Vec<(String, String)>,
        /// Whether the pass must write (`None`: either is acceptable, as long as nothing is removed).
        write: Option<bool>,
    }
    let web1 = needs_of("web");
    let without_logs: Vec<(String, String)> = web1
        .iter()
        .filter(|(a, _)| !a.starts_with("logs:"))
        .cloned()
        .collect();
    let with_stale = |mut v: Vec<(String, String)>| {
        v.push(stale());
        v
    };
    let cases = [
        Case {
            name: "only a removal",
            owned: with_stale(web1.clone()),
            write: Some(false),
        },
        Case {
            name: "only an addition",
            owned: without_logs.clone(),
            write: Some(true),
        },
        Case {
            name: "an addition and a removal",
            owned: with_stale(without_logs.clone()),
            write: None,
        },
    ];
    for case in cases {
        let ecs = FakeEcs::default()
            .with(task_definition(
                &td_arn("web", 1),
                "app-exec",
                vec![ecr_container("web")],
            ))
            .with(task_definition(
                &td_arn("web", 2),
                "app-exec",
                vec![ecr_container("web")],
            ));
        ecs.fail_describe(&td_arn("web", 2));
        let before = policy_text(&case.owned);
        let iam = FakeIam::default().role("app-exec", &[(OWNED, &before)]);
        let w = World::new(CONFIG, ecs, iam).await;

        let report = w.pass(Mode::Enforce).await;

        let name = case.name;
        assert!(!report.is_success(), "{name}: {report:?}");
        assert!(
            report
                .observe_errors
                .iter()
                .any(|e| e.contains(&td_arn("web", 2))),
            "{name}: {:?}",
            report.observe_errors
        );
        let after = w.iam.policy("app-exec", OWNED).expect("owned policy kept");
        let removed: Vec<Grant> = grants_of(&before)
            .difference(&grants_of(&after))
            .cloned()
            .collect();
        assert!(removed.is_empty(), "{name}: removed {removed:?}");
        match case.write {
            Some(false) => {
                assert_eq!(w.iam.writes(), 0, "{name}");
                assert_eq!(after, before, "{name}");
                assert_eq!(
                    report.outcomes,
                    outcomes(&[(Outcome::Pending, 1)]),
                    "{name}"
                );
                assert_eq!(w.drift("excess"), 1, "{name}");
            }
            Some(true) => {
                assert_eq!(w.iam.count("PutRolePolicy"), 1, "{name}");
                assert_eq!(grants_of(&after), grant_set(&web1), "{name}");
                assert_eq!(
                    report.outcomes,
                    outcomes(&[(Outcome::Applied, 1)]),
                    "{name}"
                );
            }
            None => {}
        }
        assert_eq!(
            w.metrics.passes.with_label_values(&["failure"]).get(),
            1,
            "{name}"
        );
    }
}

#[tokio::test]
async fn out_of_scope_families_are_not_described_or_touched() {
    let yaml = format!("{CONFIG}task_definitions:\n  exclude_families: [\"legacy-*\"]\n");
    let legacy = td_arn("legacy-app", 3);
    let ecs = FakeEcs::default()
        .with(task_definition(
            &legacy,
            "legacy-exec",
            vec![ecr_container("legacy")],
        ))
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ));
    let stale_owned = policy_text(&[stale()]);
    let iam = FakeIam::default()
        .role("legacy-exec", &[(OWNED, &stale_owned)])
        .role("app-exec", &[]);
    let w = World::new(&yaml, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(report.is_success(), "{report:?}");
    assert_eq!(w.ecs.describe_calls(&legacy), 0);
    assert_eq!(w.ecs.describe_calls(&td_arn("web", 1)), 1);
    assert_eq!(w.iam.calls_for("legacy-exec"), 0, "{:?}", w.iam.calls());
    assert_eq!(w.iam.policy("legacy-exec", OWNED), Some(stale_owned));
    assert!(w.iam.policy("app-exec", OWNED).is_some());
    let roles: Vec<&str> = report
        .plan
        .roles
        .iter()
        .map(|r| r.key.name.as_str())
        .collect();
    assert_eq!(roles, vec!["app-exec"]);
    assert_eq!(w.metrics.task_definitions_watched.get(), 1);
}

#[tokio::test]
async fn a_task_definition_in_another_account_is_never_acted_on() {
    let foreign = format!("arn:aws:ecs:{REGION}:{OTHER_ACCOUNT}:task-definition/web:1");
    let ecs = FakeEcs::default().with(task_definition(
        &foreign,
        "foreign-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("foreign-exec", &[])).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(!report.is_success());
    assert!(
        report
            .observe_errors
            .iter()
            .any(|e| e.contains(&foreign) && e.contains("not in the target account")),
        "{:?}",
        report.observe_errors
    );
    assert_eq!(w.ecs.describe_calls(&foreign), 0);
    assert_eq!(w.iam.calls_for("foreign-exec"), 0, "{:?}", w.iam.calls());
    assert_eq!(w.iam.policy("foreign-exec", OWNED), None);
    assert!(report.plan.roles.is_empty());
}

#[tokio::test]
async fn listing_follows_every_page_and_finds_revisions_on_each() {
    let families = ["a", "b", "c", "d", "e"];
    let mut ecs = FakeEcs::default().paged(2);
    for family in families {
        ecs = ecs.with(task_definition(
            &td_arn(family, 1),
            &format!("{family}-exec"),
            vec![ecr_container(family)],
        ));
    }
    let mut iam = FakeIam::default();
    for family in families {
        iam = iam.role(&format!("{family}-exec"), &[]);
    }
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert!(report.is_success(), "{report:?}");
    assert_eq!(w.ecs.list_calls(), 3, "5 revisions, 2 per page");
    for family in families {
        assert_eq!(w.ecs.describe_calls(&td_arn(family, 1)), 1, "{family}");
        let written = w.iam.policy(&format!("{family}-exec"), OWNED);
        assert_eq!(
            written.as_deref().map(grants_of),
            Some(grant_set(&needs_of(family))),
            "{family}"
        );
    }
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 5)]));
    assert_eq!(w.metrics.task_definitions_watched.get(), 5);
}

#[tokio::test]
async fn a_pull_through_cache_image_gets_the_import_actions_and_the_rules_are_cached() {
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:1.27";
    let plain = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:1";
    let container =
        |name: &str, image: &str| serde_json::json!({"name": name, "image": image}).to_string();
    let td = TaskDefinition::from_json(&format!(
        r#"{{"taskDefinitionArn":"{}","family":"web","revision":1,
            "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec",
            "containerDefinitions":[{},{}]}}"#,
        td_arn("web", 1),
        container("web", image),
        container("api", plain),
    ))
    .unwrap();
    let facts = FakeFacts {
        rules: vec![PullThroughRule {
            prefix: "docker-hub".into(),
        }],
        ..Default::default()
    };
    let w = World::with_facts(
        CONFIG,
        FakeEcs::default().with(td),
        FakeIam::default().role("app-exec", &[]),
        facts,
    )
    .await;
    let report = w.pass(Mode::Enforce).await;
    assert!(report.is_success(), "{report:?}");
    let written = w
        .iam
        .policy("app-exec", OWNED)
        .expect("owned policy written");
    let grants = grants_of(&written);
    let cache = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/*";
    for action in ["ecr:batchimportupstreamimage", "ecr:createrepository"] {
        assert!(
            grants
                .iter()
                .any(|g| g.action == action && g.resource == cache),
            "{action} on {cache} missing: {grants:#?}"
        );
    }
    // The plain repository does not match the rule: no import actions on it.
    assert!(
        !grants
            .iter()
            .any(|g| g.action == "ecr:createrepository" && g.resource.contains("team/api"))
    );
    let calls = w.facts.rule_calls.load(Ordering::SeqCst);
    assert_eq!(calls, 1, "one look-up per registry");
    w.pass(Mode::Enforce).await;
    assert_eq!(
        w.facts.rule_calls.load(Ordering::SeqCst),
        1,
        "answered from the cache"
    );
    assert_eq!(w.iam.writes(), 1);
}

#[tokio::test]
async fn another_accounts_cache_rules_are_not_looked_up_and_hold_back_no_removal() {
    let image = "222222222222.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:1.27";
    let td = TaskDefinition::from_json(&format!(
        r#"{{"taskDefinitionArn":"{}","family":"web","revision":1,
            "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec",
            "containerDefinitions":[{{"name":"web","image":"{image}"}}]}}"#,
        td_arn("web", 1),
    ))
    .unwrap();
    let stale_parameter = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/old");
    let owned = crate::policy::compile(&[
        crate::policy::Permission::new("ecr:GetAuthorizationToken", "*"),
        crate::policy::Permission::new("ssm:GetParameters", stale_parameter.clone()),
    ])
    .to_json();
    let w = World::with_facts(
        CONFIG,
        FakeEcs::default().with(td),
        FakeIam::default().role("app-exec", &[(OWNED, &owned)]),
        FakeFacts::default(),
    )
    .await;
    let report = w.pass(Mode::Enforce).await;
    assert!(report.is_success(), "{report:?}");
    assert_eq!(w.facts.rule_calls.load(Ordering::SeqCst), 0);
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    let plan = &report.plan.roles[0];
    assert!(plan.held_back.is_none(), "{plan:?}");
    let kinds: Vec<_> = plan.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![FindingKind::CrossAccountResource]);
    let grants = grants_of(&w.iam.policy("app-exec", OWNED).unwrap());
    assert!(
        !grants.iter().any(|g| g.resource == stale_parameter),
        "the stale grant is pruned: {grants:#?}"
    );
}

#[tokio::test]
async fn spill_policies_are_listed_once_per_account_and_pass_not_per_role() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "web-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("api", 1),
            "api-exec",
            vec![ecr_container("api")],
        ))
        .with(task_definition(
            &td_arn("job", 1),
            "job-exec",
            vec![ecr_container("job")],
        ));
    let iam = FakeIam::default()
        .role("web-exec", &[])
        .role("api-exec", &[])
        .role("job-exec", &[]);
    let w = World::new(CONFIG, ecs, iam).await;

    for pass in 1..=2 {
        let report = w.pass(Mode::DryRun).await;
        assert!(report.is_success(), "{report:?}");
        assert_eq!(report.plan.roles.len(), 3);
        let listings: Vec<Call> = w
            .iam
            .calls()
            .into_iter()
            .filter(|c| c.operation == "ListPolicies")
            .collect();
        assert_eq!(listings.len(), pass, "pass {pass}: {listings:?}");
        assert_eq!(listings[0].policy.as_deref(), Some("/execrole/"));
    }
}

#[tokio::test]
async fn a_forgotten_spill_listing_is_made_again_and_a_failed_one_is_not_kept() {
    let iam = FakeIam::default();
    let listings = super::spill::SpillListings::default();
    let list = || listings.candidates(ACCOUNT, &iam, "/execrole/", OWNED);
    list().await.unwrap();
    list().await.unwrap();
    assert_eq!(iam.count("ListPolicies"), 1);
    listings.forget(OTHER_ACCOUNT);
    list().await.unwrap();
    assert_eq!(iam.count("ListPolicies"), 1, "another account's listing");
    listings.forget(ACCOUNT);
    list().await.unwrap();
    assert_eq!(iam.count("ListPolicies"), 2);
    // Another path (a reloaded config) is another listing.
    listings
        .candidates(ACCOUNT, &iam, "/platform/", OWNED)
        .await
        .unwrap();
    assert_eq!(iam.count("ListPolicies"), 3);

    let failing = FakeIam::default().fail("ListPolicies", "", denied("iam", "ListPolicies"));
    let listings = super::spill::SpillListings::default();
    for _ in 0..2 {
        let err = listings
            .candidates(ACCOUNT, &failing, "/execrole/", OWNED)
            .await
            .unwrap_err();
        assert_eq!(err.operation, "ListPolicies");
    }
    assert_eq!(failing.count("ListPolicies"), 2, "a failure is tried again");
}
