//! The controller runtime against the emulator: two accounts (one through `sts:AssumeRole`) reconciled in one
//! run, the write cap, a deregistered revision's permissions pruned after the grace period and not before, an
//! INACTIVE revision a service still runs, and the daemon itself (`Controller::run`): an SQS event (through an
//! EventBridge rule) makes a new task definition's role converge long before the resync, and a config file
//! change is applied when valid and refused when not.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use execrole::config::Mode;
use execrole::controller::{Controller, Health};
use execrole::metrics::Metrics;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::{cloudtrail_record, create_queue, entry, eventbridge, route_api_calls, sqs};
use crate::support::*;

const OTHER: &str = "111111111111";

/// Wait for `condition` (checked every 100 ms) for at most `limit`; returns how long it took.
async fn wait_for<F, Fut>(limit: Duration, what: &str, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Run the daemon (`Controller::run`) on `config` while `script` runs with the daemon's metrics, then shut it
/// down and wait for it to drain.
async fn with_daemon<F, Fut>(moto: &Moto, config: &Path, script: F)
where
    F: FnOnce(Arc<Metrics>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = load_config(config);
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let controller = Controller::new(
        config,
        &factory,
        metrics.clone(),
        Arc::new(Health::default()),
    )
    .await;
    let shutdown = CancellationToken::new();
    let daemon = controller.run(shutdown.clone(), &factory, Arc::new(Notify::new()));
    let script = async {
        script(metrics.clone()).await;
        shutdown.cancel();
    };
    tokio::join!(daemon, script);
}

async fn has_policy(iam: &aws_sdk_iam::Client, role: &str) -> bool {
    get_policy(iam, role, "execrole").await.is_some()
}

async fn seed_role(iam: &aws_sdk_iam::Client, ecs: &aws_sdk_ecs::Client, family: &str) -> String {
    let role = create_role(iam, &format!("{family}-exec")).await;
    register(
        ecs,
        family,
        &role,
        vec![container(family, &ecr_image(family), None)],
    )
    .await
}

#[tokio::test]
async fn two_accounts_one_through_assume_role_are_reconciled_in_one_run() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_role(&iam, &ecs, "web").await;
    let other = moto.sdk_config_in(OTHER).await;
    let other_iam = aws_sdk_iam::Client::new(&other);
    let other_ecs = aws_sdk_ecs::Client::new(&other);
    let role = create_role(&other_iam, "api-exec").await;
    let image = format!("{OTHER}.dkr.ecr.{REGION}.amazonaws.com/api:1");
    let arn = register(
        &other_ecs,
        "api",
        &role,
        vec![container("api", &image, None)],
    )
    .await;
    assert!(
        arn.contains(&format!(":{OTHER}:")),
        "seeded in {OTHER}: {arn}"
    );

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "  - account: \"{OTHER}\"\n    regions: [{REGION}]\n    assume_role_arn: arn:aws:iam::{OTHER}:role/execrole-target\n    external_id: shared-secret\n    session_name: execrole-test\n"
    );
    // The helper's config lists the default account; the second target goes after it.
    let path = config_file(dir.path(), "enforce", "");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        &format!("    regions: [{REGION}]\n"),
        &format!("    regions: [{REGION}]\n{extra}"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    let config = load_config(&path);
    assert_eq!(config.targets.len(), 2);
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let controller = Controller::new(
        config,
        &factory,
        metrics.clone(),
        Arc::new(Health::default()),
    )
    .await;
    let report = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;

    assert!(report.is_success(), "{:?}", report.observe_errors);
    assert!(has_policy(&iam, "web-exec").await);
    assert!(has_policy(&other_iam, "api-exec").await);
    assert!(
        !has_policy(&iam, "api-exec").await,
        "nothing of account {OTHER} leaked into the default account"
    );
    let written = get_policy(&other_iam, "api-exec", "execrole")
        .await
        .unwrap();
    let decoded = percent_encoding::percent_decode_str(&written).decode_utf8_lossy();
    assert!(
        decoded.contains(&format!("arn:aws:ecr:{REGION}:{OTHER}:repository/api")),
        "{decoded}"
    );
}

#[tokio::test]
async fn the_write_cap_holds_against_the_emulator() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    for family in ["a", "b", "c"] {
        seed_role(&iam, &ecs, family).await;
    }
    let cap = "safety:\n  max_roles_written_per_pass: 1\n";
    let (report, metrics) = one_pass(&moto, Mode::Enforce, cap).await;
    assert_eq!(
        report.outcomes.get(&execrole::controller::Outcome::Applied),
        Some(&1)
    );
    assert_eq!(
        report.outcomes.get(&execrole::controller::Outcome::Pending),
        Some(&2)
    );
    assert_eq!(
        metrics
            .iam_writes
            .with_label_values(&["PutRolePolicy"])
            .get(),
        1
    );
    let mut written = 0;
    for family in ["a", "b", "c"] {
        written += usize::from(has_policy(&iam, &format!("{family}-exec")).await);
    }
    assert_eq!(written, 1);
}

/// `web:1` pulls `old` and `web:2` pulls `web`, both with `app-exec`; returns `web:1`'s ARN.
async fn seed_old_and_new_web(iam: &aws_sdk_iam::Client, ecs: &aws_sdk_ecs::Client) -> String {
    let role = create_role(iam, "app-exec").await;
    let old = register(
        ecs,
        "web",
        &role,
        vec![container("web", &ecr_image("old"), None)],
    )
    .await;
    register(
        ecs,
        "web",
        &role,
        vec![container("web", &ecr_image("web"), None)],
    )
    .await;
    old
}

/// Move the test's tokio clock forward by `by` (the grace period is measured on it), leaving it running.
async fn let_time_pass(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

#[tokio::test]
async fn a_deregistered_revisions_permissions_are_pruned_after_the_grace_period_and_not_before() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let old = seed_old_and_new_web(&iam, &ecs).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        "enforce",
        "task_definitions:\n  prune_grace_period: 10m\n",
    );
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let controller = Controller::new(
        load_config(&path),
        &factory,
        metrics.clone(),
        Arc::new(Health::default()),
    )
    .await;
    let never = CancellationToken::new();
    let pass = || controller.pass(Mode::Enforce, &never);
    let grants_old = || async {
        let text = get_policy(&iam, "app-exec", "execrole").await.unwrap();
        percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .contains("repository/old")
    };
    pass().await;
    assert!(grants_old().await);

    ecs.deregister_task_definition()
        .task_definition(&old)
        .send()
        .await
        .unwrap();
    let_time_pass(Duration::from_secs(9 * 60)).await;
    let report = pass().await;
    assert!(report.is_success());
    assert!(grants_old().await, "kept within the grace period");
    assert_eq!(metrics.task_definitions_in_grace.get(), 1);

    // The grace period runs from the pass that first found it gone.
    let_time_pass(Duration::from_secs(11 * 60)).await;
    pass().await;
    assert!(!grants_old().await, "pruned after the grace period");
    assert!(has_policy(&iam, "app-exec").await, "web:2's needs stay");
    assert_eq!(metrics.task_definitions_in_grace.get(), 0);
}

#[tokio::test]
async fn an_inactive_revision_a_service_runs_keeps_its_permissions_when_configured() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let old = seed_old_and_new_web(&iam, &ecs).await;
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition(&old)
        .desired_count(1)
        .send()
        .await
        .unwrap();
    ecs.deregister_task_definition()
        .task_definition(&old)
        .send()
        .await
        .unwrap();
    let extra = "task_definitions:\n  include_inactive_in_use: true\n  prune_grace_period: 0s\n";
    let (report, _) = one_pass(&moto, Mode::Enforce, extra).await;
    assert!(report.is_success(), "{:?}", report.observe_errors);
    let text = get_policy(&iam, "app-exec", "execrole").await.unwrap();
    let decoded = percent_encoding::percent_decode_str(&text).decode_utf8_lossy();
    assert!(decoded.contains("repository/old"), "{decoded}");
    assert!(decoded.contains("repository/web"), "{decoded}");
}

#[tokio::test]
async fn an_sqs_event_makes_a_new_roles_task_definition_converge_long_before_the_resync() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_role(&iam, &ecs, "web").await;
    let sqs = sqs(&moto).await;
    let bus = eventbridge(&moto).await;
    let (url, queue_arn) = create_queue(&sqs, "execrole-events").await;
    route_api_calls(&bus, &queue_arn).await;

    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "resync_interval: 1h\nsettle_window: 1s\nevents:\n  queue_url: {url}\n  region: {REGION}\n  wait_time: 1s\n"
    );
    let path = config_file(dir.path(), "enforce", &extra);
    with_daemon(&moto, &path, |metrics| async move {
        wait_for(Duration::from_secs(30), "web's role", || {
            has_policy(&iam, "web-exec")
        })
        .await;

        // A team registers a new family; CloudTrail's record reaches the queue through the rule.
        let arn = seed_role(&iam, &ecs, "api").await;
        let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/api-exec");
        let record = cloudtrail_record(
            "ecs.amazonaws.com",
            "RegisterTaskDefinition",
            "aws-cli/2.15.30 command/ecs.register-task-definition",
            json!({"family": "api", "executionRoleArn": role_arn}),
            json!({"taskDefinition": {"taskDefinitionArn": arn, "executionRoleArn": role_arn}}),
        );
        let sent = bus
            .put_events()
            .entries(entry("aws.ecs", &record))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.failed_entry_count(), 0);
        let took = wait_for(
            Duration::from_secs(20),
            "api's role after the event",
            || has_policy(&iam, "api-exec"),
        )
        .await;
        assert!(
            took < Duration::from_secs(20),
            "converged in {took:?}, the resync is 1 h"
        );
        assert_eq!(
            metrics.events_received.with_label_values(&["acted"]).get(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_config_change_is_applied_when_valid_and_refused_when_not() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_role(&iam, &ecs, "web").await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "resync_interval: 1h\nreload:\n  poll_interval: 200ms\n";
    let path = config_file(dir.path(), "dry-run", extra);
    with_daemon(&moto, &path.clone(), |metrics| async move {
        wait_for(Duration::from_secs(30), "the dry-run reconcile", || {
            let metrics = metrics.clone();
            async move { metrics.reconciles.with_label_values(&["pending"]).get() >= 1 }
        })
        .await;
        assert!(
            !has_policy(&iam, "web-exec").await,
            "dry-run writes nothing"
        );

        std::fs::write(&path, "mode: enforce\ntargets:\n  - account: \"12345\"\n").unwrap();
        wait_for(
            Duration::from_secs(10),
            "the invalid file to be refused",
            || {
                let metrics = metrics.clone();
                async move { metrics.config_reloads.with_label_values(&["invalid"]).get() == 1 }
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !has_policy(&iam, "web-exec").await,
            "the old (dry-run) config stays in force"
        );
        assert_eq!(
            metrics.config_reloads.with_label_values(&["invalid"]).get(),
            1,
            "refused once, not at every poll"
        );

        let enforce = config_file(dir.path(), "enforce", extra);
        assert_eq!(enforce, path);
        wait_for(Duration::from_secs(20), "the valid change to apply", || {
            has_policy(&iam, "web-exec")
        })
        .await;
        assert_eq!(
            metrics.config_reloads.with_label_values(&["applied"]).get(),
            1
        );
    })
    .await;
}
