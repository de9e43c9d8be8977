//! Bulk observation against the emulator, every request counted by the pass-through proxy (no faults): in
//! `observe: bulk` a steady-state pass reads the account's IAM with `GetAccountAuthorizationDetails` and makes no
//! per-role read, and its plan is the plan of per-role reads (moto URL-encodes the documents of both).

use std::sync::Arc;

use execrole::config::Mode;
use execrole::controller::{Controller, Health, PassReport};
use execrole::metrics::Metrics;
use tokio_util::sync::CancellationToken;

use crate::proxy::{Counts, FaultRates, Proxy};
use crate::support::*;

/// The per-role IAM reads that bulk observation replaces.
const PER_ROLE_READS: [&str; 4] = [
    "GetRole",
    "ListRolePolicies",
    "GetRolePolicy",
    "ListAttachedRolePolicies",
];

const FOREIGN: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-config/*"}]}"#;
const AWS_MANAGED: &str = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

/// Three execution roles, each named by a task definition: one with a foreign inline policy, one with an AWS
/// managed policy attached, one with a customer managed policy attached; and two roles no task definition names.
async fn seed(moto: &Moto) {
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    for i in 0..3 {
        let role = format!("app-exec-{i}");
        let arn = create_role(&iam, &role).await;
        let image = ecr_image(&format!("web{i}"));
        let log = format!("/ecs/web{i}");
        let containers = vec![container("app", &image, Some((&log, false)))];
        register(&ecs, &format!("web{i}"), &arn, containers).await;
    }
    put_policy(&iam, "app-exec-0", "team", FOREIGN).await;
    attach(&iam, "app-exec-1", AWS_MANAGED).await;
    let local = iam
        .create_policy()
        .policy_name("team-shared")
        .policy_document(FOREIGN)
        .send()
        .await
        .expect("create policy");
    let local = local.policy().and_then(|p| p.arn()).expect("policy arn");
    attach(&iam, "app-exec-2", local).await;
    for name in ["unrelated-1", "unrelated-2"] {
        create_role(&iam, name).await;
    }
}

async fn attach(iam: &aws_sdk_iam::Client, role: &str, arn: &str) {
    iam.attach_role_policy()
        .role_name(role)
        .policy_arn(arn)
        .send()
        .await
        .expect("attach policy");
}

/// A controller reading IAM as `observe` says, through `endpoint`.
async fn controller(endpoint: &str, observe: &str) -> (Controller, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&config_file(
        dir.path(),
        "enforce",
        &format!("observe: {observe}\n"),
    ));
    let metrics = Arc::new(Metrics::new());
    let factory = factory_at(endpoint, metrics.clone()).await;
    let controller = Controller::new(config, &factory, metrics, Arc::new(Health::default())).await;
    (controller, dir)
}

async fn pass(controller: &Controller, mode: Mode) -> PassReport {
    let report = controller.pass(mode, &CancellationToken::new()).await;
    assert!(report.is_success(), "{:?}", report.plan.errors);
    report
}

/// Requests per operation made between two counts.
fn made(before: &Counts, after: &Counts, operation: &str) -> u64 {
    after.requests(operation) - before.requests(operation)
}

#[tokio::test]
async fn a_steady_state_pass_in_bulk_mode_makes_no_per_role_iam_read() {
    let moto = Moto::start();
    seed(&moto).await;
    let proxy = Proxy::start(&moto.endpoint, FaultRates::NONE, 0);
    let (bulk, _dir) = controller(&proxy.endpoint, "bulk").await;

    let cold = pass(&bulk, Mode::Enforce).await;
    assert_eq!(cold.writes, 3, "{:?}", cold.plan);
    let before = proxy.counts();
    let steady = pass(&bulk, Mode::Enforce).await;
    let after = proxy.counts();

    assert_eq!(steady.writes, 0, "{:?}", steady.plan);
    assert_eq!(steady.plan.roles.len(), 3);
    for operation in PER_ROLE_READS {
        assert_eq!(
            after.requests(operation),
            0,
            "{operation}: {:?}",
            after.by_operation
        );
    }
    // One page for the whole account; the AWS managed policy was read in the cold pass and is cached.
    assert_eq!(made(&before, &after, "GetAccountAuthorizationDetails"), 1);
    let iam_requests: u64 = after
        .by_operation
        .keys()
        .filter(|op| !is_ecs(op))
        .map(|op| made(&before, &after, op))
        .sum();
    assert_eq!(iam_requests, 1, "{:?}", after.by_operation);

    // Per-role reads of the same state plan the same.
    let (per_role, _dir) = controller(&moto.endpoint, "per-role").await;
    let expected = pass(&per_role, Mode::DryRun).await;
    let got = pass(&bulk, Mode::DryRun).await;
    assert_eq!(got.plan, expected.plan);
}

/// Whether a counted operation is ECS's (the proxy counts `X-Amz-Target` operations by name).
fn is_ecs(operation: &str) -> bool {
    matches!(
        operation,
        "ListTaskDefinitions"
            | "DescribeTaskDefinition"
            | "ListClusters"
            | "ListServices"
            | "DescribeServices"
    )
}
