//! Drift by effect against the emulator: what the role can really do with all its policies and its boundary.

use execrole::config::Mode;

use crate::support::*;

#[tokio::test]
async fn denies_boundaries_and_wide_grants_elsewhere_show_in_the_plan() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let role = create_role(&iam, "app-exec").await;
    register(
        &ecs,
        "web",
        &role,
        vec![container(
            "web",
            &ecr_image("web"),
            Some(("/ecs/web", false)),
        )],
    )
    .await;
    // A foreign inline guardrail denies pulling images.
    put_policy(
        &iam,
        "app-exec",
        "guardrail",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}]}"#,
    )
    .await;
    // An attached customer managed policy allows all of ECR everywhere.
    let wide = iam
        .create_policy()
        .policy_name("legacy-ecr-admin")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    let wide_arn = wide.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name("app-exec")
        .policy_arn(&wide_arn)
        .send()
        .await
        .unwrap();
    // A permissions boundary that allows ECR only: the awslogs needs are outside it.
    let boundary = iam
        .create_policy()
        .policy_name("ecr-only-boundary")
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#)
        .send()
        .await
        .unwrap();
    iam.put_role_permissions_boundary()
        .role_name("app-exec")
        .permissions_boundary(boundary.policy().unwrap().arn().unwrap())
        .send()
        .await
        .unwrap();

    let (report, metrics) = one_pass(&moto, Mode::DryRun, "").await;
    assert!(report.is_success(), "{:?}", report.plan.errors);
    let plan = &report.plan.roles[0];

    let blocked: Vec<(&str, &str)> = plan
        .blocked
        .iter()
        .map(|b| (b.action.as_str(), b.why.as_str()))
        .collect();
    assert!(
        blocked.contains(&("ecr:BatchGetImage", "explicit_deny")),
        "{blocked:?}"
    );
    assert!(
        blocked.contains(&("logs:PutLogEvents", "boundary")),
        "{blocked:?}"
    );
    assert!(
        blocked.contains(&("logs:CreateLogStream", "boundary")),
        "{blocked:?}"
    );
    assert!(
        !blocked
            .iter()
            .any(|(a, _)| *a == "ecr:GetDownloadUrlForLayer"),
        "{blocked:?}"
    );
    assert!(
        plan.over_granted
            .iter()
            .any(|o| o.source == wide_arn && o.allows == "ecr:* on *"),
        "{:?}",
        plan.over_granted
    );
    let text = execrole::plan::render_text(&report.plan);
    assert!(text.contains("! blocked: ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/web is stopped by an explicit Deny"), "{text}");
    assert!(
        text.contains(&format!(
            "! over-granted elsewhere: {wide_arn} allows ecr:* on *"
        )),
        "{text}"
    );
    assert_eq!(
        metrics.roles_in_drift.with_label_values(&["blocked"]).get(),
        1
    );
    assert_eq!(
        metrics
            .roles_in_drift
            .with_label_values(&["over_granted"])
            .get(),
        1
    );
    // The foreign policies are read, never written.
    assert_eq!(metrics.iam_writes_total(), 0);
}
