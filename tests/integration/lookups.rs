//! Look-ups and seed features against the emulator: kms:Decrypt only for customer managed keys (secrets and SSM
//! SecureStrings), the managed-policy baseline, and trust-policy management.

use std::sync::Arc;

use execrole::config::Mode;
use execrole::metrics::Metrics;
use execrole::policy::{self, Grant, PolicyDocument};

use crate::support::*;

async fn kms_key(moto: &Moto) -> String {
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let out = kms
        .create_key()
        .description("execrole test CMK")
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_string()
}

async fn secret(moto: &Moto, name: &str, kms_key: Option<&str>) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    let out = sm
        .create_secret()
        .name(name)
        .secret_string("not-read-by-execrole")
        .set_kms_key_id(kms_key.map(str::to_string))
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_string()
}

async fn secure_parameter(moto: &Moto, name: &str, kms_key: Option<&str>) {
    let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config().await);
    ssm.put_parameter()
        .name(name)
        .value("not-read-by-execrole")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .set_key_id(kms_key.map(str::to_string))
        .send()
        .await
        .unwrap();
}

fn with_secrets(name: &str, secrets: &[(&str, &str)]) -> aws_sdk_ecs::types::ContainerDefinition {
    let mut builder = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name(name)
        .image("nginx")
        .memory(128);
    for (env, value_from) in secrets {
        builder = builder.secrets(
            aws_sdk_ecs::types::Secret::builder()
                .name(*env)
                .value_from(*value_from)
                .build()
                .unwrap(),
        );
    }
    builder.build()
}

async fn run_pass(moto: &Moto, extra: &str) -> (execrole::controller::PassReport, Arc<Metrics>) {
    one_pass(moto, Mode::Enforce, extra).await
}

async fn owned(moto: &Moto, role: &str) -> Vec<Grant> {
    let raw = get_policy(&moto.iam().await, role, "execrole")
        .await
        .expect("owned policy");
    policy::grants(&PolicyDocument::parse(&raw).unwrap())
        .into_iter()
        .collect()
}

#[tokio::test]
async fn customer_managed_keys_need_kms_decrypt_via_the_service_and_default_keys_do_not() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let role = create_role(&iam, "app-exec").await;
    let key = kms_key(&moto).await;
    let cmk_secret = secret(&moto, "db/password", Some(&key)).await;
    let default_secret = secret(&moto, "api/token", None).await;
    secure_parameter(&moto, "/app/cmk", Some(&key)).await;
    secure_parameter(&moto, "/app/default", None).await;
    register(
        &ecs,
        "web",
        &role,
        vec![with_secrets(
            "web",
            &[
                ("DB", &format!("{cmk_secret}:password::")),
                ("TOKEN", &default_secret),
                ("CMK_PARAM", "/app/cmk"),
                ("DEFAULT_PARAM", "/app/default"),
            ],
        )],
    )
    .await;

    let (report, metrics) = run_pass(&moto, "").await;
    assert!(
        report.is_success(),
        "{:?} {:?}",
        report.observe_errors,
        report.plan.errors
    );
    let grants = owned(&moto, "app-exec").await;
    let decrypts: Vec<&Grant> = grants
        .iter()
        .filter(|g| g.action == "kms:decrypt")
        .collect();
    assert_eq!(
        decrypts.len(),
        2,
        "one per service through which the CMK is used: {grants:#?}"
    );
    for grant in &decrypts {
        assert_eq!(grant.resource, key, "on the key ARN, never `*` or an alias");
    }
    let services: Vec<&str> = decrypts
        .iter()
        .flat_map(|g| g.conditions.values().flat_map(|k| k.values()).flatten())
        .map(String::as_str)
        .collect();
    assert!(
        services.contains(&"secretsmanager.us-east-1.amazonaws.com"),
        "{services:?}"
    );
    assert!(
        services.contains(&"ssm.us-east-1.amazonaws.com"),
        "{services:?}"
    );
    // Both secrets and both parameters are granted, with the json-key suffix removed.
    let get_secret: Vec<&str> = grants
        .iter()
        .filter(|g| g.action == "secretsmanager:getsecretvalue")
        .map(|g| g.resource.as_str())
        .collect();
    assert!(get_secret.contains(&cmk_secret.as_str()), "{get_secret:?}");
    assert!(
        get_secret.contains(&default_secret.as_str()),
        "{get_secret:?}"
    );
    assert!(grants.iter().any(|g| g.action == "ssm:getparameters"
        && g.resource == format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/cmk")));
    // Look-ups were made, and a second pass answers them from the cache.
    let looked_up = metrics
        .lookups
        .with_label_values(&["secret", "found"])
        .get();
    assert_eq!(looked_up, 2);
}

#[tokio::test]
async fn the_managed_policy_baseline_attaches_it_and_derives_only_the_rest() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let role = create_role(&iam, "app-exec").await;
    register(
        &ecs,
        "worker",
        &role,
        vec![container(
            "worker",
            &ecr_image("worker"),
            Some(("/ecs/worker", true)),
        )],
    )
    .await;
    let (report, _) = run_pass(&moto, "policy:\n  baseline: managed-policy\n").await;
    assert!(report.is_success());
    let attached = iam
        .list_attached_role_policies()
        .role_name("app-exec")
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .collect();
    assert_eq!(
        arns,
        ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]
    );
    // The managed policy lacks logs:CreateLogGroup: only that is in the owned policy.
    let grants = owned(&moto, "app-exec").await;
    let actions: Vec<&str> = grants.iter().map(|g| g.action.as_str()).collect();
    assert_eq!(actions, ["logs:createloggroup"], "{grants:#?}");

    // Attached once: the next pass writes nothing.
    let (report, metrics) = run_pass(&moto, "policy:\n  baseline: managed-policy\n").await;
    assert_eq!(report.writes, 0);
    assert_eq!(metrics.iam_writes_total(), 0);
}

#[tokio::test]
async fn trust_drift_is_repaired_when_managed_and_left_alone_when_not() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let drifted = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#;
    iam.create_role()
        .role_name("app-exec")
        .assume_role_policy_document(drifted)
        .send()
        .await
        .unwrap();
    let role = format!("arn:aws:iam::{ACCOUNT}:role/app-exec");
    register(
        &ecs,
        "web",
        &role,
        vec![container("web", &ecr_image("web"), None)],
    )
    .await;
    let trust = || async {
        let out = iam.get_role().role_name("app-exec").send().await.unwrap();
        PolicyDocument::parse(out.role().unwrap().assume_role_policy_document().unwrap()).unwrap()
    };

    // Not managed (the default): left alone.
    run_pass(&moto, "").await;
    assert!(policy::is_equivalent(
        &trust().await,
        &PolicyDocument::parse(drifted).unwrap()
    ));

    // Managed and hardened: rewritten to ecs-tasks only, with the confused-deputy conditions.
    let (report, metrics) =
        run_pass(&moto, "trust_policy:\n  manage: true\n  harden: true\n").await;
    assert!(report.is_success());
    assert_eq!(
        metrics
            .iam_writes
            .with_label_values(&["UpdateAssumeRolePolicy"])
            .get(),
        1
    );
    let expected = PolicyDocument::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"ecs-tasks.amazonaws.com"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"aws:SourceAccount":"{ACCOUNT}"}},"ArnLike":{{"aws:SourceArn":"arn:aws:ecs:us-east-1:{ACCOUNT}:*"}}}}}}]}}"#
    ))
    .unwrap();
    let now = trust().await;
    assert!(policy::is_equivalent(&now, &expected), "{}", now.to_json());

    // And then it is in sync.
    let (_, metrics) = run_pass(&moto, "trust_policy:\n  manage: true\n  harden: true\n").await;
    assert_eq!(metrics.iam_writes_total(), 0);
}
