//! Spill policies and the baseline attachment against the emulator: spill policies are created under the spill
//! path and found there again when a failed attach left them unattached; versions a half-finished write left
//! behind heal; the `managed-policy` baseline tags the roles it attaches to, and switching to `least-privilege`
//! detaches only from those, never from a role a human attached the policy to.

use std::path::Path;
use std::process::Command;

use crate::proxy::{FaultRates, Outcome, Proxy, Targeted};
use crate::support::*;

/// Run an execrole command to its end; its exit code and output.
fn finish(command: &mut Command) -> (i32, String) {
    let out = command.output().expect("run execrole");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `execrole run --once` straight against moto; its exit code and output.
fn run_once(moto: &Moto, config: &Path) -> (i32, String) {
    finish(
        moto.execrole()
            .args(["run", "--once", "--config"])
            .arg(config),
    )
}

/// `execrole plan` straight against moto; its exit code and output.
fn plan(moto: &Moto, config: &Path) -> (i32, String) {
    finish(moto.execrole().args(["plan", "--config"]).arg(config))
}

/// The customer managed policies tagged as execrole's: (path, name, attachment count), sorted by name.
async fn owned_policies(iam: &aws_sdk_iam::Client) -> Vec<(String, String, i32)> {
    let listed = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    let mut owned = Vec::new();
    for policy in listed.policies() {
        let meta = iam
            .get_policy()
            .policy_arn(policy.arn().unwrap())
            .send()
            .await
            .unwrap();
        let meta = meta.policy().unwrap();
        if meta
            .tags()
            .iter()
            .any(|t| t.key() == "managed-by" && t.value() == "execrole")
        {
            owned.push((
                meta.path().unwrap_or_default().to_string(),
                meta.policy_name().unwrap().to_string(),
                meta.attachment_count().unwrap_or_default(),
            ));
        }
    }
    owned.sort_by(|a, b| a.1.cmp(&b.1));
    owned
}

#[tokio::test]
async fn a_spill_policy_left_unattached_by_a_failed_attach_is_found_and_attached_on_the_next_pass()
{
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_spilling_role(&iam, &ecs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");

    // Every AttachRolePolicy of the first pass fails (its retries too): the first spill policy is created, and
    // left unattached.
    let failing = (1..=200)
        .map(|nth| Targeted {
            operation: "AttachRolePolicy".into(),
            nth,
            outcome: Outcome::InternalError,
        })
        .collect();
    let proxy = Proxy::start_with(&moto.endpoint, FaultRates::NONE, failing, 0);
    let (code, output) = finish(
        moto.execrole()
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .args(["run", "--once", "--config"])
            .arg(&config),
    );
    assert_ne!(code, 0, "the attach failed:\n{output}");
    assert_eq!(proxy.counts().reached_moto("CreatePolicy"), 1);
    assert_eq!(
        owned_policies(&iam).await,
        vec![("/execrole/".into(), "execrole-app-exec-1".into(), 0)]
    );

    // One clean pass converges: the orphan is adopted (attached, not created again), the rest created.
    let (code, output) = run_once(&moto, &config);
    assert_eq!(code, 0, "the role is still in error:\n{output}");
    let owned = owned_policies(&iam).await;
    assert!(owned.len() >= 2, "{owned:?}");
    for (path, name, attachments) in &owned {
        assert_eq!(
            (path.as_str(), *attachments),
            ("/execrole/", 1),
            "{name}: {owned:?}"
        );
    }
    let (code, output) = plan(&moto, &config);
    assert_eq!(code, 0, "not converged:\n{output}");
}

/// The first spill policy of `app-exec`: its ARN, and its default version's document.
async fn first_spill_policy(iam: &aws_sdk_iam::Client) -> (String, String) {
    let arn = format!("arn:aws:iam::{ACCOUNT}:policy/execrole/execrole-app-exec-1");
    let meta = iam.get_policy().policy_arn(&arn).send().await.unwrap();
    let default = meta
        .policy()
        .unwrap()
        .default_version_id()
        .unwrap()
        .to_string();
    let version = iam
        .get_policy_version()
        .policy_arn(&arn)
        .version_id(default)
        .send()
        .await
        .unwrap();
    let document = version.policy_version().unwrap().document().unwrap();
    let document = percent_encoding::percent_decode_str(document)
        .decode_utf8()
        .unwrap()
        .to_string();
    (arn, document)
}

/// Add a version to a policy.
async fn add_version(iam: &aws_sdk_iam::Client, arn: &str, document: &str, default: bool) {
    iam.create_policy_version()
        .policy_arn(arn)
        .policy_document(document)
        .set_as_default(default)
        .send()
        .await
        .unwrap();
}

/// The policy's versions: (id, is default), by id.
async fn versions(iam: &aws_sdk_iam::Client, arn: &str) -> Vec<(String, bool)> {
    let listed = iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .unwrap();
    let mut versions: Vec<(String, bool)> = listed
        .versions()
        .iter()
        .map(|v| (v.version_id().unwrap().to_string(), v.is_default_version()))
        .collect();
    versions.sort_by_key(|(id, _)| id[1..].parse::<u32>().unwrap());
    versions
}

const STALE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/gone"}]}"#;

#[tokio::test]
async fn versions_left_by_half_finished_writes_heal_and_then_stay_still() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_spilling_role(&iam, &ecs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");
    assert_eq!(run_once(&moto, &config).0, 0);
    let (arn, right) = first_spill_policy(&iam).await;

    // Five versions; the default (v2) is wrong, and a newer one (v3) already holds the right document.
    add_version(&iam, &arn, STALE, true).await;
    add_version(&iam, &arn, &right, false).await;
    add_version(&iam, &arn, STALE, false).await;
    add_version(&iam, &arn, STALE, false).await;
    let (code, output) = plan(&moto, &config);
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("its newer version v3 already holds the document"),
        "{output}"
    );
    let (code, output) = run_once(&moto, &config);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        versions(&iam, &arn).await,
        [("v1", false), ("v2", false), ("v3", true)].map(|(id, d)| (id.to_string(), d))
    );

    // Five versions again (IAM numbers on: v6, v7), the default v6 wrong and a stray v7: the stray goes, and a
    // new right default fits.
    add_version(&iam, &arn, STALE, true).await;
    add_version(&iam, &arn, STALE, false).await;
    assert_eq!(versions(&iam, &arn).await.len(), 5);
    let (code, output) = run_once(&moto, &config);
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        versions(&iam, &arn).await,
        [
            ("v1", false),
            ("v2", false),
            ("v3", false),
            ("v6", false),
            ("v8", true)
        ]
        .map(|(id, d)| (id.to_string(), d))
    );
    assert_eq!(first_spill_policy(&iam).await.1, right);
    let (code, output) = plan(&moto, &config);
    assert_eq!(code, 0, "healed for good:\n{output}");
}

/// The tags of a role.
async fn role_tags(iam: &aws_sdk_iam::Client, role: &str) -> Vec<(String, String)> {
    let out = iam.get_role().role_name(role).send().await.unwrap();
    out.role()
        .unwrap()
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// The ARNs attached to a role.
async fn attached(iam: &aws_sdk_iam::Client, role: &str) -> Vec<String> {
    let out = iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    out.attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn least_privilege_detaches_the_baseline_only_where_execrole_attached_it() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let baseline = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
    for name in ["ours", "theirs"] {
        let role = create_role(&iam, &format!("{name}-exec")).await;
        let image = ecr_image(name);
        let log = format!("/ecs/{name}");
        register(
            &ecs,
            name,
            &role,
            vec![container("app", &image, Some((&log, false)))],
        )
        .await;
    }
    // A human attached the policy to `theirs-exec` before execrole ever ran.
    iam.attach_role_policy()
        .role_name("theirs-exec")
        .policy_arn(baseline)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let managed = config_file(
        dir.path(),
        "enforce",
        "policy:\n  baseline: managed-policy\n",
    );
    let (code, output) = run_once(&moto, &managed);
    assert_eq!(code, 0, "{output}");
    let tag = ("execrole:baseline-attached".to_string(), "true".to_string());
    assert_eq!(attached(&iam, "ours-exec").await, vec![baseline]);
    assert_eq!(role_tags(&iam, "ours-exec").await, vec![tag.clone()]);
    assert_eq!(role_tags(&iam, "theirs-exec").await, vec![]);
    assert_eq!(plan(&moto, &managed).0, 0);

    let least = config_file(dir.path(), "enforce", "");
    let (code, output) = plan(&moto, &least);
    assert_eq!(code, 2, "{output}");
    let detaches: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("- detach managed policy"))
        .collect();
    assert_eq!(detaches.len(), 1, "{output}");
    // Roles are listed by name: the detach is under `ours-exec`, before `theirs-exec` is named.
    let detach_at = output.find("- detach managed policy").unwrap();
    assert!(output[..detach_at].contains("ours-exec"), "{output}");
    assert!(!output[..detach_at].contains("theirs-exec"), "{output}");

    let (code, output) = run_once(&moto, &least);
    assert_eq!(code, 0, "{output}");
    assert_eq!(attached(&iam, "ours-exec").await, Vec::<String>::new());
    assert_eq!(role_tags(&iam, "ours-exec").await, vec![]);
    assert_eq!(attached(&iam, "theirs-exec").await, vec![baseline]);
    assert!(
        get_policy(&iam, "ours-exec", "execrole")
            .await
            .is_some_and(|p| p.contains("ecr"))
    );
    let (code, output) = plan(&moto, &least);
    assert_eq!(
        code, 0,
        "a human's attachment is reported, never changed:\n{output}"
    );
}

#[tokio::test]
async fn a_spill_policy_named_for_the_role_but_attached_to_another_is_never_rewritten_or_attached()
{
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_spilling_role(&iam, &ecs).await;
    create_role(&iam, "other-role").await;
    // An owned-looking spill policy of app-exec that a human attached to another role instead.
    let created = iam
        .create_policy()
        .policy_name("execrole-app-exec-1")
        .path("/execrole/")
        .policy_document(STALE)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("managed-by")
                .value("execrole")
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("execrole:role")
                .value("app-exec")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let arn = created.policy().unwrap().arn().unwrap().to_string();
    iam.attach_role_policy()
        .role_name("other-role")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");

    let (code, output) = run_once(&moto, &config);
    assert_ne!(
        code, 0,
        "the name is taken, so app-exec cannot converge:\n{output}"
    );
    assert_eq!(
        versions(&iam, &arn).await,
        vec![("v1".to_string(), true)],
        "{output}"
    );
    assert_eq!(attached(&iam, "other-role").await, vec![arn.clone()]);
    assert!(!attached(&iam, "app-exec").await.contains(&arn), "{output}");
}
