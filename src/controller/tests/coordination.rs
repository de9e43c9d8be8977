//! `coordination` in the controller, against the in-memory lease table on a paused clock: a replica works only
//! on accounts in shards it holds, and a write is refused, before it reaches IAM, once the lease is no longer
//! valid.

use std::time::Duration;

use super::*;
use crate::coordination::memory::MemoryTable;
use crate::coordination::{Elector, LeaseSettings, Leases, TokioClock};

const SETTINGS: LeaseSettings = LeaseSettings {
    shards: 4,
    lease_duration: Duration::from_secs(3),
    clock_skew_margin: Duration::from_millis(600),
};

/// A world whose controller is the replica `id` over `table`, with its elector.
async fn replica(id: &str, table: &Arc<MemoryTable>) -> (World, Elector) {
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    coordinated(
        id,
        table,
        CONFIG,
        ecs,
        FakeIam::default().role("app-exec", &[]),
    )
    .await
}

/// A world of `yaml` and `ecs` whose controller is the replica `id` over `table`, with its elector; the wall
/// clock moves with tokio's paused one.
async fn coordinated(
    id: &str,
    table: &Arc<MemoryTable>,
    yaml: &str,
    ecs: FakeEcs,
    iam: FakeIam,
) -> (World, Elector) {
    let mut w = World::new(yaml, ecs, iam).await;
    let leases = Leases::new(id, SETTINGS.shards);
    let clock = Arc::new(TokioClock::new(table.created, 1_800_000_000_000, 0));
    let elector = Elector::new(
        table.clone(),
        clock.clone(),
        SETTINGS,
        leases.clone(),
        w.metrics.clone(),
    );
    w.controller.coordinate(Coordinated {
        leases,
        table: table.clone(),
        clock,
    });
    (w, elector)
}

#[tokio::test(start_paused = true)]
async fn a_replica_reconciles_only_the_accounts_of_shards_it_holds() {
    let table = Arc::new(MemoryTable::default());
    let (a, a_elector) = replica("a", &table).await;
    let (b, b_elector) = replica("b", &table).await;
    a_elector.round().await;
    b_elector.round().await;

    let report = b.pass(Mode::Enforce).await;
    assert!(report.plan.roles.is_empty(), "b holds no shard: {report:?}");
    assert_eq!(b.iam.calls().len(), 0, "b never even reads the account");
    assert_eq!(b.ecs.all_describe_calls(), 0);
    assert!(
        b.health.is_ready(),
        "a replica with no shard can work: ready"
    );

    let report = a.pass(Mode::Enforce).await;
    assert_eq!(report.outcomes, outcomes(&[(Outcome::Applied, 1)]));
    assert_eq!(a.iam.writes(), 1);
    assert!(a.health.is_ready());
}

#[tokio::test(start_paused = true)]
async fn a_write_after_the_lease_stopped_being_valid_never_reaches_iam() {
    let table = Arc::new(MemoryTable::default());
    let (a, a_elector) = replica("a", &table).await;
    a_elector.round().await;
    a.pass(Mode::DryRun).await;
    let key = RoleKey {
        account: ACCOUNT.into(),
        name: "app-exec".into(),
    };
    let iam = a
        .controller
        .ctx
        .store
        .published(&key)
        .expect("published")
        .iam;

    iam.put_role_policy("app-exec", OWNED, "{}")
        .await
        .expect("the lease is valid");
    assert_eq!(a.iam.writes(), 1);
    // No renewal for 2.4 s (3 s less the 0.6 s margin): the next write stops before it reaches IAM.
    tokio::time::advance(Duration::from_millis(2400)).await;
    let refused = iam.put_role_policy("app-exec", OWNED, "{}").await;
    assert!(refused.is_err());
    assert!(iam.delete_role_policy("app-exec", OWNED).await.is_err());
    assert_eq!(a.iam.writes(), 1, "nothing more reached IAM");
    assert!(iam.get_role("app-exec").await.is_ok(), "reads go on");
}

#[tokio::test(start_paused = true)]
async fn a_take_over_keeps_the_prune_grace_period_of_the_old_holder() {
    let yaml = format!("{CONFIG}task_definitions:\n  prune_grace_period: 10m\n");
    let revisions = || {
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
    };
    let table = Arc::new(MemoryTable::default());
    let (a, a_elector) = coordinated(
        "a",
        &table,
        &yaml,
        revisions(),
        FakeIam::default().role("app-exec", &[]),
    )
    .await;
    a_elector.round().await;
    a.pass(Mode::Enforce).await;
    a.ecs.deregister(&td_arn("web", 1));
    a.pass(Mode::Enforce).await;
    assert_eq!(a.metrics.task_definitions_in_grace.get(), 1);

    // a dies 9 minutes into the grace period; b, which never saw web:1 counting, takes the shard over.
    tokio::time::advance(Duration::from_secs(9 * 60)).await;
    let (b, b_elector) = coordinated(
        "b",
        &table,
        &yaml,
        revisions(),
        FakeIam::default().role("app-exec", &[]),
    )
    .await;
    b.ecs.deregister(&td_arn("web", 1));
    let written = a.iam.policy("app-exec", OWNED).unwrap();
    b.iam
        .put_role_policy("app-exec", OWNED, &written)
        .await
        .unwrap();
    b_elector.round().await;
    let report = b.pass(Mode::Enforce).await;
    assert_eq!(report.writes, 0, "kept for the rest of the grace period");
    assert_eq!(b.metrics.task_definitions_in_grace.get(), 1);

    tokio::time::advance(Duration::from_secs(61)).await;
    b_elector.round().await;
    b.pass(Mode::Enforce).await;
    let granted = b.iam.policy("app-exec", OWNED).map(|p| grants_of(&p));
    assert_eq!(
        granted,
        Some(grant_set(&needs_of("web"))),
        "pruned when it ends"
    );
}

#[tokio::test(start_paused = true)]
async fn bulk_reads_go_through_the_fenced_client() {
    // The fenced client wraps every IAM call of a coordinated replica: a read it did not pass on would fail.
    let table = Arc::new(MemoryTable::default());
    let ecs = FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ));
    let iam = FakeIam::default().role("app-exec", &[]).bulk(100);
    let yaml = format!("{CONFIG}observe: bulk\n");
    let (a, a_elector) = coordinated("a", &table, &yaml, ecs, iam).await;
    a_elector.round().await;

    let report = a.pass(Mode::Enforce).await;
    assert_eq!(
        report.outcomes,
        outcomes(&[(Outcome::Applied, 1)]),
        "{report:?}"
    );
    assert_eq!(a.iam.count("GetAccountAuthorizationDetails"), 1);
    assert_eq!(a.iam.count("GetRole"), 0, "observed from the snapshot");
}
