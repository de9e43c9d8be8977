//! The controller against the emulator: enforce writes what is needed and nothing else, dry-run writes nothing,
//! a second pass over an unchanged world makes no writes and no new describes, stale statements are pruned while
//! foreign policies stay byte-for-byte.

use std::sync::Arc;

use execrole::config::Mode;
use execrole::controller::{Controller, Health};
use execrole::metrics::Metrics;
use execrole::policy::{self, Permission, PolicyDocument};
use tokio_util::sync::CancellationToken;

use crate::support::*;

const FOREIGN: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Sid\": \"Team\", \"Effect\": \"Allow\", \"Action\": \"s3:GetObject\", \"Resource\": \"arn:aws:s3:::team-config/*\"}]\n}";
const STALE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"arn:aws:ecr:us-east-1:123456789012:repository/old"}]}"#;

/// Seed: app-exec shared by web (2 revisions) and worker; api-exec with a stale owned policy and a foreign one.
async fn seed(moto: &Moto) {
    let ecs = moto.ecs(REGION).await;
    let iam = moto.iam().await;
    let app = create_role(&iam, "app-exec").await;
    let api = create_role(&iam, "api-exec").await;
    register(
        &ecs,
        "web",
        &app,
        vec![container(
            "web",
            &ecr_image("web"),
            Some(("/ecs/web", false)),
        )],
    )
    .await;
    register(
        &ecs,
        "web",
        &app,
        vec![container(
            "web",
            &ecr_image("web"),
            Some(("/ecs/web", false)),
        )],
    )
    .await;
    register(
        &ecs,
        "worker",
        &app,
        vec![container(
            "worker",
            &ecr_image("team/worker"),
            Some(("/ecs/worker", true)),
        )],
    )
    .await;
    register(
        &ecs,
        "api",
        &api,
        vec![
            container("api", &ecr_image("api"), Some(("/ecs/api", false))),
            container(
                "sidecar",
                "public.ecr.aws/aws-observability/aws-otel-collector:latest",
                None,
            ),
        ],
    )
    .await;
    put_policy(&iam, "api-exec", "execrole", STALE).await;
    put_policy(&iam, "api-exec", "team-extra", FOREIGN).await;
}

fn expected_app_exec() -> PolicyDocument {
    let repo = |r: &str| format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{r}");
    let group = |g: &str| format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{g}:*");
    let mut permissions = vec![Permission::new("ecr:GetAuthorizationToken", "*")];
    for r in ["web", "team/worker"] {
        for action in [
            "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer",
            "ecr:BatchGetImage",
        ] {
            permissions.push(Permission::new(action, repo(r)));
        }
    }
    for g in ["/ecs/web", "/ecs/worker"] {
        permissions.push(Permission::new("logs:CreateLogStream", group(g)));
        permissions.push(Permission::new("logs:PutLogEvents", group(g)));
    }
    permissions.push(Permission::new("logs:CreateLogGroup", group("/ecs/worker")));
    policy::compile(&permissions)
}

async fn controller(
    moto: &Moto,
    mode: &str,
    metrics: Arc<Metrics>,
) -> (Controller, Arc<Health>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = load_config(&config_file(dir.path(), mode, ""));
    let health = Arc::new(Health::default());
    let factory = moto.factory(metrics.clone()).await;
    let controller = Controller::new(config, &factory, metrics, health.clone()).await;
    (controller, health, dir)
}

#[tokio::test]
async fn enforce_writes_what_is_needed_and_a_second_pass_writes_and_describes_nothing() {
    let moto = Moto::start();
    seed(&moto).await;
    let iam = moto.iam().await;
    let metrics = Arc::new(Metrics::new());
    let (controller, health, _dir) = controller(&moto, "enforce", metrics.clone()).await;
    assert!(!health.is_ready());

    let first = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;
    assert!(first.is_success(), "{:?}", first.observe_errors);
    assert_eq!(first.writes, 2);
    assert!(health.is_ready());

    // Read back through IAM (URL-encoded), decode, and compare by meaning with what the rules demand.
    let raw = get_policy(&iam, "app-exec", "execrole")
        .await
        .expect("owned policy written");
    assert!(
        raw.starts_with("%7B"),
        "IAM returns documents URL-encoded: {raw}"
    );
    let written = PolicyDocument::parse(&raw).unwrap();
    assert!(
        policy::is_equivalent(&written, &expected_app_exec()),
        "written: {}\nexpected: {}",
        written.to_json(),
        expected_app_exec().to_json()
    );

    let describes = metrics.aws_requests("ecs", "DescribeTaskDefinition", "success");
    assert_eq!(describes, 4);
    let writes = metrics.iam_writes_total();
    let second = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;
    assert!(second.is_success());
    assert_eq!(second.writes, 0);
    assert_eq!(
        metrics.iam_writes_total(),
        writes,
        "no IAM write on an unchanged world"
    );
    assert_eq!(
        metrics.aws_requests("ecs", "DescribeTaskDefinition", "success"),
        describes,
        "no revision is described twice"
    );
    assert_eq!(metrics.cache_hits.get(), 4);
    assert_eq!(
        second.outcomes.get(&execrole::controller::Outcome::InSync),
        Some(&2)
    );
}

#[tokio::test]
async fn stale_statements_are_pruned_and_foreign_policies_stay_byte_for_byte() {
    let moto = Moto::start();
    seed(&moto).await;
    let iam = moto.iam().await;
    let foreign_before = get_policy(&iam, "api-exec", "team-extra").await.unwrap();

    let metrics = Arc::new(Metrics::new());
    let (controller, _, _dir) = controller(&moto, "enforce", metrics).await;
    let report = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;
    assert!(report.is_success());

    let owned =
        PolicyDocument::parse(&get_policy(&iam, "api-exec", "execrole").await.unwrap()).unwrap();
    let resources: Vec<String> = policy::grants(&owned)
        .into_iter()
        .map(|g| g.resource)
        .collect();
    assert!(
        !resources.iter().any(|r| r.ends_with("repository/old")),
        "{resources:?}"
    );
    assert!(
        resources.iter().any(|r| r.ends_with("repository/api")),
        "{resources:?}"
    );
    assert_eq!(
        get_policy(&iam, "api-exec", "team-extra").await.unwrap(),
        foreign_before,
        "the foreign policy must not change at all"
    );
    let names = iam
        .list_role_policies()
        .role_name("api-exec")
        .send()
        .await
        .unwrap();
    assert_eq!(names.policy_names(), ["execrole", "team-extra"]);
}

#[tokio::test]
async fn dry_run_reports_drift_and_writes_nothing() {
    let moto = Moto::start();
    seed(&moto).await;
    let iam = moto.iam().await;
    let metrics = Arc::new(Metrics::new());
    let (controller, _, _dir) = controller(&moto, "dry-run", metrics.clone()).await;
    let report = controller
        .pass(Mode::DryRun, &CancellationToken::new())
        .await;
    assert!(report.plan.has_changes());
    assert_eq!(report.writes, 0);
    assert_eq!(metrics.iam_writes_total(), 0);
    assert_eq!(metrics.aws_requests("iam", "PutRolePolicy", "success"), 0);
    assert_eq!(get_policy(&iam, "app-exec", "execrole").await, None);
    assert_eq!(
        get_policy(&iam, "api-exec", "execrole")
            .await
            .map(|raw| { PolicyDocument::parse(&raw).unwrap() }),
        Some(PolicyDocument::parse(STALE).unwrap())
    );
    assert_eq!(
        metrics.roles_in_drift.with_label_values(&["missing"]).get(),
        2
    );
    assert_eq!(
        metrics.roles_in_drift.with_label_values(&["excess"]).get(),
        1
    );
}

#[tokio::test]
async fn a_role_that_does_not_exist_is_reported_and_others_still_reconcile() {
    let moto = Moto::start();
    seed(&moto).await;
    let ecs = moto.ecs(REGION).await;
    register(
        &ecs,
        "ghost",
        &format!("arn:aws:iam::{ACCOUNT}:role/ghost-exec"),
        vec![container("ghost", &ecr_image("ghost"), None)],
    )
    .await;
    let metrics = Arc::new(Metrics::new());
    let (controller, _, _dir) = controller(&moto, "enforce", metrics).await;
    let report = controller
        .pass(Mode::Enforce, &CancellationToken::new())
        .await;
    let ghost = report
        .plan
        .roles
        .iter()
        .find(|r| r.key.name == "ghost-exec")
        .unwrap();
    assert!(!ghost.role_exists);
    assert_eq!(report.writes, 2, "the two existing roles are still written");
}
