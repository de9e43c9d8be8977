//! Revisions that stop counting: the prune grace period after deregistration, and inactive revisions that a
//! service still runs.

use super::*;

/// `web:1` pulls `old` and `web:2` pulls `web`, both with `app-exec`: what only `web:1` needs is `old`.
fn web_revisions_old_and_new() -> FakeEcs {
    FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "app-exec",
            vec![ecr_container("old")],
        ))
        .with(task_definition(
            &td_arn("web", 2),
            "app-exec",
            vec![ecr_container("web")],
        ))
}

#[tokio::test(start_paused = true)]
async fn a_deregistered_revisions_exclusive_permissions_are_pruned_after_the_grace_period_not_before()
 {
    let yaml = format!("{CONFIG}task_definitions:\n  prune_grace_period: 10m\n");
    let ecs = web_revisions_old_and_new();
    let w = World::new(&yaml, ecs, FakeIam::default().role("app-exec", &[])).await;
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();
    w.pass(Mode::Enforce).await;
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    assert_eq!(granted(), Some(grant_set(&both)));

    w.ecs.deregister(&td_arn("web", 1));
    tokio::time::advance(std::time::Duration::from_secs(9 * 60)).await;
    let report = w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "kept within the grace period"
    );
    assert_eq!(report.writes, 0);
    assert_eq!(w.metrics.task_definitions_in_grace.get(), 1);

    // The grace period runs from the pass that first found it gone (at 9 minutes).
    tokio::time::advance(std::time::Duration::from_secs(11 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&needs_of("web"))),
        "pruned after it"
    );
    assert_eq!(
        w.ecs.describe_calls(&td_arn("web", 1)),
        1,
        "described once, ever"
    );
}

#[tokio::test(start_paused = true)]
async fn inactive_revisions_a_service_still_runs_count_when_configured() {
    let ecs = web_revisions_old_and_new();
    ecs.deregister(&td_arn("web", 1));
    // moto (and a hand-edited service) may name the revision without its ARN.
    ecs.in_use.lock().unwrap().push("web:1".into());
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();

    let counted = format!(
        "{CONFIG}task_definitions:\n  include_inactive_in_use: true\n  prune_grace_period: 0s\n"
    );
    let w = World::new(&counted, ecs, FakeIam::default().role("app-exec", &[])).await;
    w.pass(Mode::Enforce).await;
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "the running INACTIVE revision counts"
    );

    // The service moves on: the revision stops counting (no grace here) and its permissions go.
    w.ecs.in_use.lock().unwrap().clear();
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&needs_of("web"))));
}

#[tokio::test(start_paused = true)]
async fn inactive_revisions_do_not_count_unless_configured() {
    let ecs = web_revisions_old_and_new();
    ecs.deregister(&td_arn("web", 1));
    ecs.in_use.lock().unwrap().push(td_arn("web", 1));
    let w = World::new(CONFIG, ecs, FakeIam::default().role("app-exec", &[])).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        w.iam.policy("app-exec", OWNED).as_deref().map(grants_of),
        Some(grant_set(&needs_of("web")))
    );
    assert_eq!(w.ecs.describe_calls(&td_arn("web", 1)), 0);
}

/// Found in review: the grace period must run from when a revision stopped counting, not from when a sweep last
/// saw it (with a resync longer than the grace period, a revision deregistered a minute before a sweep was pruned
/// at once).
#[tokio::test(start_paused = true)]
async fn a_revision_deregistered_just_before_a_sweep_keeps_its_permissions_for_the_grace_period() {
    let yaml = format!("{CONFIG}task_definitions:\n  prune_grace_period: 30m\n");
    let w = World::new(
        &yaml,
        web_revisions_old_and_new(),
        FakeIam::default().role("app-exec", &[]),
    )
    .await;
    let both: Vec<(String, String)> = needs_of("old").into_iter().chain(needs_of("web")).collect();
    let granted = || w.iam.policy("app-exec", OWNED).as_deref().map(grants_of);
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&both)));
    tokio::time::advance(std::time::Duration::from_secs(59 * 60)).await;
    w.ecs.deregister(&td_arn("web", 1));
    tokio::time::advance(std::time::Duration::from_secs(60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&both)),
        "one minute into a 30 minute grace period"
    );
    tokio::time::advance(std::time::Duration::from_secs(29 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(granted(), Some(grant_set(&both)), "29 minutes into it");
    tokio::time::advance(std::time::Duration::from_secs(2 * 60)).await;
    w.pass(Mode::Enforce).await;
    assert_eq!(
        granted(),
        Some(grant_set(&needs_of("web"))),
        "pruned after it"
    );
}
