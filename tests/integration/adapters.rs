//! The SDK adapters against the emulator: what they read and how they report absence and errors.

use std::num::NonZeroU32;
use std::sync::Arc;

use execrole::aws::{RateLimit, RateLimits};
use execrole::config::Target;
use execrole::metrics::Metrics;
use execrole::policy::PolicyDocument;

use crate::support::*;

#[tokio::test]
async fn ecs_adapter_lists_and_describes_task_definitions_as_our_model() {
    let moto = Moto::start();
    let ecs = moto.ecs(REGION).await;
    let iam = moto.iam().await;
    let role = create_role(&iam, "app-exec").await;
    let arn = register(
        &ecs,
        "web",
        &role,
        vec![container(
            "web",
            &ecr_image("team/web"),
            Some(("/ecs/web", true)),
        )],
    )
    .await;

    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (regions, _, _) = factory.clients(&target()).await;
    let page = regions[0].1.list_task_definitions_page(None).await.unwrap();
    assert_eq!(page.arns, vec![arn.clone()]);
    assert_eq!(page.next_token, None);

    let td = regions[0].1.describe_task_definition(&arn).await.unwrap();
    assert_eq!(td.arn.as_deref(), Some(arn.as_str()));
    assert_eq!(td.family.as_deref(), Some("web"));
    assert_eq!(td.revision, Some(1));
    assert_eq!(td.execution_role_arn.as_deref(), Some(role.as_str()));
    let c = &td.containers[0];
    assert_eq!(c.image.as_deref(), Some(ecr_image("team/web").as_str()));
    let log = c.log_configuration.as_ref().unwrap();
    assert_eq!(log.log_driver.as_deref(), Some("awslogs"));
    let option = |name: &str| log.options.get(name).map(String::as_str);
    assert_eq!(option("awslogs-group"), Some("/ecs/web"));
    assert_eq!(option("awslogs-create-group"), Some("true"));
    assert_eq!(
        metrics.aws_requests("ecs", "DescribeTaskDefinition", "success"),
        1
    );
}

#[tokio::test]
async fn iam_adapter_reads_writes_and_reports_absence_as_none() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    create_role(&iam, "app-exec").await;
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (_, api, _) = factory.clients(&target()).await;

    assert!(api.get_role("missing").await.unwrap().is_none());
    let role = api.get_role("app-exec").await.unwrap().unwrap();
    assert!(role.arn.ends_with(":role/app-exec"));
    // The trust policy comes back URL-encoded, as from real IAM; the policy model reads it.
    let trust = PolicyDocument::parse(role.assume_role_policy.as_deref().unwrap()).unwrap();
    assert_eq!(trust.statements.len(), 1);

    assert_eq!(
        api.get_role_policy("app-exec", "execrole").await.unwrap(),
        None
    );
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/ecs/a+b:*"}]}"#;
    api.put_role_policy("app-exec", "execrole", document)
        .await
        .unwrap();
    assert_eq!(
        api.list_role_policies("app-exec").await.unwrap(),
        vec!["execrole"]
    );
    let raw = api
        .get_role_policy("app-exec", "execrole")
        .await
        .unwrap()
        .unwrap();
    let read = PolicyDocument::parse(&raw).unwrap();
    assert!(execrole::policy::is_equivalent(
        &read,
        &PolicyDocument::parse(document).unwrap()
    ));
    api.delete_role_policy("app-exec", "execrole")
        .await
        .unwrap();
    assert!(api.list_role_policies("app-exec").await.unwrap().is_empty());
    assert_eq!(
        metrics.iam_writes_total(),
        0,
        "adapters do not count writes; the reconcile does"
    );
}

#[tokio::test]
async fn iam_errors_are_classified_as_terminal() {
    let moto = Moto::start();
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let (_, api, _) = factory.clients(&target()).await;
    // The role does not exist: PutRolePolicy fails with NoSuchEntity, which is not retried.
    let err = api
        .put_role_policy(
            "no-such-role",
            "execrole",
            r#"{"Version":"2012-10-17","Statement":[]}"#,
        )
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert_eq!(err.operation, "PutRolePolicy");
    assert_eq!(metrics.aws_requests("iam", "PutRolePolicy", "not_found"), 1);
}

#[tokio::test]
async fn each_region_of_an_account_has_its_own_ecs_rate_limit_and_iam_one_for_the_account() {
    let moto = Moto::start();
    let metrics = Arc::new(Metrics::new());
    // ECS: one request at once, then one a second (slow enough that a busy machine cannot refill the bucket
    // between the requests below); IAM keeps the default.
    let limits = RateLimits {
        ecs: RateLimit {
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::MIN,
        },
        ..RateLimits::default()
    };
    let factory = moto.factory(metrics.clone()).await.with_rate_limits(limits);
    let two_regions = Target {
        regions: vec![REGION.into(), "eu-west-1".into()],
        ..target()
    };
    let (regions, iam, _) = factory.clients(&two_regions).await;
    // Three requests at once, before any is sent: ECS quotas are per account and Region, so the second Region
    // takes its own permit at once, and only the first Region's second request waits for its bucket.
    let (first, again, other) = tokio::join!(
        regions[0].1.list_task_definitions_page(None),
        regions[0].1.list_task_definitions_page(None),
        regions[1].1.list_task_definitions_page(None),
    );
    first.unwrap();
    again.unwrap();
    other.unwrap();
    assert_eq!(metrics.rate_limit_waits("ecs"), 1);
    // IAM has a bucket of its own.
    iam.get_role("missing").await.unwrap();
    assert_eq!(metrics.rate_limit_waits("iam"), 0);
    assert_eq!(
        metrics.aws_requests("ecs", "ListTaskDefinitions", "success"),
        3
    );
}

/// The bulk snapshot says of a role what the per-role reads say: ARN, path, tags, boundary, trust policy, inline
/// documents and attached policies; and it lists the account's customer managed policies with their documents.
#[tokio::test]
async fn the_bulk_snapshot_says_what_the_per_role_reads_say() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let boundary = iam
        .create_policy()
        .policy_name("boundary")
        .path("/execrole/")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap()
        .policy
        .and_then(|p| p.arn)
        .unwrap();
    iam.create_role()
        .role_name("app-exec")
        .path("/ecs/")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .permissions_boundary(&boundary)
        .tags(aws_sdk_iam::types::Tag::builder().key("team").value("a b").build().unwrap())
        .send()
        .await
        .unwrap();
    put_policy(&iam, "app-exec", "team-extra", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::a/b c"}]}"#).await;
    iam.attach_role_policy()
        .role_name("app-exec")
        .policy_arn(&boundary)
        .send()
        .await
        .unwrap();
    let factory = moto.factory(Arc::new(Metrics::new())).await;
    let (_, api, _) = factory.clients(&target()).await;

    let snapshot = api.account_authorization().await.unwrap();
    let detail = snapshot
        .role("app-exec")
        .expect("the role is in the snapshot");
    let role = api.get_role("app-exec").await.unwrap().unwrap();
    // moto URL-encodes the trust policy in GetRole but not here; both read as the same document.
    let trust = |info: &execrole::aws::RoleInfo| {
        PolicyDocument::parse(info.assume_role_policy.as_deref().unwrap()).unwrap()
    };
    assert_eq!(trust(&detail.info), trust(&role));
    let without_trust = |info: &execrole::aws::RoleInfo| execrole::aws::RoleInfo {
        assume_role_policy: None,
        ..info.clone()
    };
    assert_eq!(without_trust(&detail.info), without_trust(&role));
    assert_eq!(role.path, "/ecs/");
    assert_eq!(role.tags, vec![("team".to_string(), "a b".to_string())]);
    assert_eq!(
        role.permissions_boundary.as_deref(),
        Some(boundary.as_str())
    );
    let inline = api
        .get_role_policy("app-exec", "team-extra")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        detail.inline_policies,
        vec![("team-extra".to_string(), inline)]
    );
    assert_eq!(
        detail.attached_policies,
        api.list_attached_role_policies("app-exec").await.unwrap()
    );
    let policy = snapshot
        .local_policies()
        .find(|p| p.arn == boundary)
        .expect("the customer managed policy is in the snapshot");
    assert_eq!(
        (policy.path.as_str(), policy.name.as_str()),
        ("/execrole/", "boundary")
    );
    assert_eq!(policy.attachment_count, 1);
    assert!(
        policy
            .default_document()
            .is_some_and(|d| d.contains("Allow"))
    );
}
