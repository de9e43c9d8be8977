//! One pass against the fakes: what is written in each mode, what is never touched, outcomes and readiness,
//! failures that stay local, shutdown, and the safety rails (never-grant, the blast-radius cap).

use super::*;

#[tokio::test]
async fn enforce_writes_the_owned_policy_and_a_second_pass_writes_nothing() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("worker", 1),
            "app-exec",
            vec![ecr_container("worker")],
        ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;

    let first = w.pass(Mode::Enforce).await;
    assert!(first.is_success(), "{first:?}");
    assert_eq!(first.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(first.writes, 1);
    let puts: Vec<Call> = w
        .iam
        .calls()
        .into_iter()
        .filter(|c| c.operation == "PutRolePolicy")
        .collect();
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(
        (puts[0].role.as_str(), puts[0].policy.as_deref()),
        ("app-exec", Some(OWNED))
    );
    assert_eq!(w.iam.count("DeleteRolePolicy"), 0);
    let written = w
        .iam
        .policy("app-exec", OWNED)
        .expect("owned policy written");
    let mut wanted = needs_of("web");
    wanted.extend(needs_of("worker"));
    assert_eq!(grants_of(&written), grant_set(&wanted));
    assert_eq!(
        w.metrics
            .iam_writes
            .with_label_values(&["PutRolePolicy"])
            .get(),
        1
    );
    assert_eq!(w.ecs.all_describe_calls(), 2);

    let hits_before = w.metrics.cache_hits.get();
    let second = w.pass(Mode::Enforce).await;
    assert!(second.is_success(), "{second:?}");
    assert_eq!(second.outcomes, outcomes(&[(Outcome::InSync, 1)]));
    assert_eq!(second.writes, 0);
    assert_eq!(
        w.iam.writes(),
        1,
        "the second pass wrote: {:?}",
        w.iam.calls()
    );
    assert_eq!(
        w.ecs.all_describe_calls(),
        2,
        "revisions are described once"
    );
    assert_eq!(w.metrics.cache_hits.get(), hits_before + 2);
    assert!(!second.plan.has_changes());
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_pending() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;

    let report = w.pass(Mode::DryRun).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Pending, 1)]));
    assert!(report.plan.has_changes());
    assert!(matches!(
        report.plan.roles[0].change,
        crate::plan::Change::Create { .. }
    ));
    assert_eq!(report.writes, 0);
    assert_eq!(w.iam.writes(), 0);
    assert_eq!(w.iam.policy("app-exec", OWNED), None);
    assert_eq!(w.metrics.iam_writes_total(), 0);
    assert_eq!(w.drift("missing"), 1);
    assert_eq!(w.drift("excess"), 0);
    assert_eq!(w.reconciles("pending"), 1);
}

#[tokio::test]
async fn foreign_inline_policies_are_never_touched() {
    let foreign = "  {\"Version\": \"2012-10-17\",\n\t\"Statement\": [ {\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"} ] }\n  ";
    let mut owned = needs_of("web");
    owned.push(stale());
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let iam = FakeIam::default().role(
        "app-exec",
        &[("team-extra", foreign), (OWNED, &policy_text(&owned))],
    );
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(
        w.iam.policy("app-exec", "team-extra").as_deref(),
        Some(foreign)
    );
    let now = grants_of(&w.iam.policy("app-exec", OWNED).unwrap());
    assert_eq!(now, grant_set(&needs_of("web")));
    assert!(!now.contains(grant_set(&[stale()]).first().unwrap()));
    let touched_foreign: Vec<Call> = w
        .iam
        .calls()
        .into_iter()
        // Reading it is allowed (its size counts against the role's inline limit); writing is not.
        .filter(|c| c.policy.as_deref() == Some("team-extra") && c.operation != "GetRolePolicy")
        .collect();
    assert!(touched_foreign.is_empty(), "{touched_foreign:?}");
    assert_eq!(
        report.plan.roles[0].other_inline_policies,
        vec!["team-extra"]
    );
}

#[tokio::test]
async fn a_role_needing_nothing_loses_its_owned_policy() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![container("nginx:1.27", None)],
    ));
    let iam = FakeIam::default().role("app-exec", &[(OWNED, &policy_text(&needs_of("web")))]);
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(report.plan.roles[0].change, crate::plan::Change::Delete);
    assert_eq!(w.iam.count("DeleteRolePolicy"), 1);
    assert_eq!(w.iam.count("PutRolePolicy"), 0);
    assert_eq!(w.iam.policy("app-exec", OWNED), None);
    assert_eq!(
        w.metrics
            .iam_writes
            .with_label_values(&["DeleteRolePolicy"])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_failing_role_does_not_stop_the_others() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("a", 1),
            "role-a",
            vec![ecr_container("a")],
        ))
        .with(task_definition(
            &td_arn("b", 1),
            "role-b",
            vec![ecr_container("b")],
        ));
    let iam = FakeIam::default()
        .role("role-a", &[])
        .role("role-b", &[])
        .fail("GetRole", "role-a", denied("iam", "GetRole"));
    let w = World::new(CONFIG, ecs, iam).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(
        report.outcomes,
        outcomes(&[(Outcome::Applied, 1), (Outcome::Error, 1)])
    );
    assert_eq!(
        grants_of(&w.iam.policy("role-b", OWNED).expect("role-b written")),
        grant_set(&needs_of("b"))
    );
    assert_eq!(w.iam.policy("role-a", OWNED), None);
    let failed: Vec<&str> = report
        .plan
        .errors
        .iter()
        .map(|(k, _)| k.name.as_str())
        .collect();
    assert_eq!(failed, vec!["role-a"]);
    assert!(
        report.plan.errors[0].1.contains("access_denied"),
        "{:?}",
        report.plan.errors
    );
    assert!(!report.is_success());
    assert_eq!(w.reconciles("error"), 1);
    assert_eq!(w.reconciles("applied"), 1);
    assert_eq!(w.metrics.passes.with_label_values(&["failure"]).get(), 1);
}

#[tokio::test]
async fn a_missing_role_is_reported_and_not_written() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "gone-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default()).await;

    let report = w.pass(Mode::Enforce).await;

    assert_eq!(report.plan.roles.len(), 1);
    let role = &report.plan.roles[0];
    assert_eq!(role.key.name, "gone-exec");
    assert!(!role.role_exists);
    assert_eq!(role.task_definitions, vec!["web:1"]);
    assert_eq!(w.iam.writes(), 0, "{:?}", w.iam.calls());
    assert_eq!(report.writes, 0);
    assert_eq!(w.iam.count("ListRolePolicies"), 0);
}

#[tokio::test]
async fn readiness_follows_the_last_pass() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    let ready = |w: &World| (w.health.is_ready(), w.metrics.ready.get());

    assert_eq!(ready(&w), (false, 0), "before the first pass");

    assert!(w.pass(Mode::Enforce).await.is_success());
    assert_eq!(ready(&w), (true, 1), "after a clean pass");

    w.ecs
        .fail_listing(Some(denied("ecs", "ListTaskDefinitions")));
    let failed = w.pass(Mode::Enforce).await;
    assert!(!failed.observe_errors.is_empty());
    assert_eq!(ready(&w), (false, 0), "after a pass that could not list");

    w.ecs.fail_listing(None);
    assert!(w.pass(Mode::Enforce).await.is_success());
    assert_eq!(ready(&w), (true, 1), "after listing recovers");
}

#[tokio::test]
async fn shutdown_before_a_pass_starts_no_role() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("api", 1),
            "api-exec",
            vec![ecr_container("api")],
        ));
    let stale_owned = policy_text(&[stale()]);
    let iam = FakeIam::default()
        .role("app-exec", &[(OWNED, &stale_owned)])
        .role("api-exec", &[]);
    let w = World::new(CONFIG, ecs, iam).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();

    let report = w.controller.pass(Mode::Enforce, &shutdown).await;

    assert!(w.iam.calls().is_empty(), "{:?}", w.iam.calls());
    assert_eq!(report.writes, 0);
    assert!(report.outcomes.is_empty(), "{:?}", report.outcomes);
    assert_eq!(w.iam.policy("app-exec", OWNED), Some(stale_owned));
}

#[tokio::test]
async fn a_pass_cut_short_by_shutdown_is_not_recorded_as_a_success() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();

    let report = w.controller.pass(Mode::Enforce, &shutdown).await;

    assert!(report.outcomes.is_empty(), "no role was reconciled");
    assert_eq!(w.metrics.passes.with_label_values(&["success"]).get(), 0);
    assert_eq!(w.metrics.last_success.get(), 0);
    // Readiness is about seeing the world: the listing itself completed.
    assert!(w.health.is_ready());
    assert_eq!(w.metrics.ready.get(), 1);
}

#[tokio::test]
async fn the_blast_radius_cap_limits_the_roles_written_per_pass() {
    let yaml = format!("{CONFIG}safety:\n  max_roles_written_per_pass: 2\n");
    let mut ecs = FakeEcs::default();
    let mut iam = FakeIam::default();
    for name in ["a", "b", "c"] {
        ecs = ecs.with(task_definition(
            &td_arn(name, 1),
            &format!("{name}-exec"),
            vec![ecr_container(name)],
        ));
        iam = iam.role(&format!("{name}-exec"), &[]);
    }
    let w = World::new(&yaml, ecs, iam).await;
    let first = w.pass(Mode::Enforce).await;
    assert_eq!(
        first.outcomes,
        outcomes(&[(Outcome::Applied, 2), (Outcome::Pending, 1)])
    );
    assert_eq!(w.iam.writes(), 2);
    assert_eq!(
        w.drift("missing"),
        1,
        "the role left for the next pass is still in drift"
    );
    let second = w.pass(Mode::Enforce).await;
    assert_eq!(
        second.outcomes,
        outcomes(&[(Outcome::Applied, 1), (Outcome::InSync, 2)])
    );
    assert_eq!(w.iam.writes(), 3);
}

#[test]
fn wildcard_and_never_grant_actions_are_forbidden() {
    let safety = crate::config::Safety::default();
    for action in [
        "*",
        "ecr:*",
        "s3:*",
        "iam:PassRole",
        "IAM:passrole",
        "sts:AssumeRole",
    ] {
        assert!(safety.is_forbidden(action), "{action}");
    }
    for action in [
        "ecr:BatchGetImage",
        "logs:PutLogEvents",
        "kms:Decrypt",
        "ecr:Get*",
    ] {
        assert!(!safety.is_forbidden(action), "{action}");
    }
}

#[tokio::test]
async fn a_steady_sweep_keeps_unchanged_roles_by_key_and_a_new_revision_changes_its_role() {
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("worker", 1),
            "worker-exec",
            vec![ecr_container("worker")],
        ));
    let w = World::new(
        CONFIG,
        ecs,
        FakeIam::default()
            .role("app-exec", &[])
            .role("worker-exec", &[]),
    )
    .await;
    assert!(w.pass(Mode::Enforce).await.is_success());
    let ctx = &w.controller.ctx;
    let kinds = |sweep: &Sweep| -> Vec<(String, bool)> {
        sweep
            .roles
            .iter()
            .map(|r| {
                let changed = matches!(r, SweptRole::Changed(_));
                (r.key().name.clone(), changed)
            })
            .collect()
    };

    // Nothing changed: every role by key only, and publishing changes nothing.
    let sweep = sweep_target(ctx, &ctx.runtime(), 0, PlanUse::Report).await;
    assert_eq!(
        kinds(&sweep),
        [
            ("app-exec".to_string(), false),
            ("worker-exec".to_string(), false)
        ]
    );
    let before = ctx.store.published(&role_key("app-exec")).unwrap().desired;
    assert!(publish(ctx, &ctx.runtime(), sweep).is_empty());
    let after = ctx.store.published(&role_key("app-exec")).unwrap().desired;
    assert_eq!(before, after, "an unchanged role keeps its published state");
    assert!(!after.requirements.is_empty());

    // A new revision of one role: that role in full, the other by key.
    w.ecs.task_definitions.lock().unwrap().insert(
        td_arn("web", 2),
        task_definition(&td_arn("web", 2), "app-exec", vec![ecr_container("web2")]),
    );
    let sweep = sweep_target(ctx, &ctx.runtime(), 0, PlanUse::Report).await;
    assert_eq!(
        kinds(&sweep),
        [
            ("app-exec".to_string(), true),
            ("worker-exec".to_string(), false)
        ]
    );
    assert_eq!(publish(ctx, &ctx.runtime(), sweep), [role_key("app-exec")]);
    let desired = ctx.store.published(&role_key("app-exec")).unwrap().desired;
    assert_eq!(
        desired.task_definitions.len(),
        2,
        "{:?}",
        desired.task_definitions
    );
}

/// The daemon's roles keep their permissions without the reasons behind them (only reports show reasons); a
/// report's sweep keeps them. The permissions are the same either way.
#[tokio::test]
async fn the_daemon_keeps_no_reasons_only_reports_do() {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    // Container Insights adds needs of its own, with reasons of its own.
    let config = format!("{CONFIG}policy:\n  container_insights:\n    configure: true\n");
    let w = World::new(&config, ecs, FakeIam::default().role("app-exec", &[])).await;
    let ctx = &w.controller.ctx;
    let desired = |plans: PlanUse| async move {
        let sweep = sweep_target(ctx, &ctx.runtime(), 0, plans).await;
        publish(ctx, &ctx.runtime(), sweep);
        ctx.store.published(&role_key("app-exec")).unwrap().desired
    };
    let report = desired(PlanUse::Report).await;
    let daemon = desired(PlanUse::CountOnly).await;
    assert!(
        report.requirements.iter().any(|r| r
            .reasons
            .iter()
            .any(|why| &*why.task_definition == "(config)")),
        "{report:?}"
    );
    assert!(
        report.requirements.iter().all(|r| !r.reasons.is_empty()),
        "{report:?}"
    );
    assert!(
        daemon.requirements.iter().all(|r| r.reasons.is_empty()),
        "{daemon:?}"
    );
    let permissions = |d: &crate::plan::DesiredRole| -> Vec<_> {
        d.requirements
            .iter()
            .map(|r| r.permission.clone())
            .collect()
    };
    assert_eq!(permissions(&report), permissions(&daemon));
    assert_eq!(report.task_definitions, daemon.task_definitions);
}

fn role_key(name: &str) -> RoleKey {
    RoleKey {
        account: ACCOUNT.into(),
        name: name.into(),
    }
}
