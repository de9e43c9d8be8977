//! Scoped hold-back against the emulator, run as a user would (`execrole run --once`, then `plan`), with
//! `lookups.pull_through_cache: true`: moto answers `DescribePullThroughCacheRules` with HTTP 500, so the cache
//! rules of the account's own registry stay unknown. Stale grants on roles whose images sit in nested-path
//! repositories or in another account's registry are still pruned; only the import grants that the failed
//! look-up could bring back are kept, and the plan says by which finding.

use execrole::policy::{self, Grant, Permission, PolicyDocument};

use crate::binary::run;
use crate::support::*;

const SHARED_IMAGE: &str = "222222222222.dkr.ecr.us-east-1.amazonaws.com/shared/base:1";

fn repository(account: &str, path: &str) -> String {
    format!("arn:aws:ecr:{REGION}:{account}:repository/{path}")
}

fn stale_parameter() -> String {
    format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/retired/token")
}

/// The owned policy: what `image_repository` needs, a stale parameter grant, and the import grants on `cache`.
fn owned_policy(image_repository: &str, cache: &[String]) -> String {
    let mut permissions = vec![
        Permission::new("ecr:GetAuthorizationToken", "*"),
        Permission::new("ssm:GetParameters", stale_parameter()),
    ];
    for action in [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ] {
        permissions.push(Permission::new(action, image_repository));
    }
    for namespace in cache {
        for action in ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"] {
            permissions.push(Permission::new(action, namespace.as_str()));
        }
    }
    policy::compile(&permissions).to_json()
}

async fn owned_grants(iam: &aws_sdk_iam::Client, role: &str) -> Vec<Grant> {
    let raw = get_policy(iam, role, "execrole")
        .await
        .expect("owned policy");
    policy::grants(&PolicyDocument::parse(&raw).unwrap())
        .into_iter()
        .collect()
}

fn has(grants: &[Grant], action: &str, resource: &str) -> bool {
    grants
        .iter()
        .any(|g| g.action.eq_ignore_ascii_case(action) && g.resource == resource)
}

/// `nested-exec` pulls `team/api` from the account's own registry and holds import grants on `team/*` (which the
/// failed look-up could bring back) and on `quay/*` (which nothing can); `shared-exec` pulls from another
/// account's registry. Both hold a stale parameter grant.
async fn seed(moto: &Moto) {
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let nested = create_role(&iam, "nested-exec").await;
    let cache = [
        format!("{}/*", repository(ACCOUNT, "team")),
        format!("{}/*", repository(ACCOUNT, "quay")),
    ];
    let document = owned_policy(&repository(ACCOUNT, "team/api"), &cache);
    put_policy(&iam, "nested-exec", "execrole", &document).await;
    let containers = vec![container("api", &ecr_image("team/api"), None)];
    register(&ecs, "api", &nested, containers).await;

    let shared = create_role(&iam, "shared-exec").await;
    let document = owned_policy(&repository("222222222222", "shared/base"), &[]);
    put_policy(&iam, "shared-exec", "execrole", &document).await;
    let containers = vec![container("base", SHARED_IMAGE, None)];
    register(&ecs, "base", &shared, containers).await;
}

#[tokio::test]
async fn stale_grants_are_pruned_while_only_what_a_failed_cache_look_up_could_change_is_kept() {
    let moto = Moto::start();
    seed(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("pull_through_cache: false", "pull_through_cache: true");
    assert!(text.contains("pull_through_cache: true"));
    std::fs::write(&config, text).unwrap();

    let (code, stdout, stderr) = run(moto
        .execrole()
        .args(["run", "--once", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");

    let iam = moto.iam().await;
    let nested = owned_grants(&iam, "nested-exec").await;
    let team = format!("{}/*", repository(ACCOUNT, "team"));
    let quay = format!("{}/*", repository(ACCOUNT, "quay"));
    assert!(
        !has(&nested, "ssm:GetParameters", &stale_parameter()),
        "{nested:#?}"
    );
    assert!(
        !has(&nested, "ecr:BatchImportUpstreamImage", &quay),
        "{nested:#?}"
    );
    for action in ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"] {
        assert!(has(&nested, action, &team), "{action} kept: {nested:#?}");
    }
    assert!(has(
        &nested,
        "ecr:BatchGetImage",
        &repository(ACCOUNT, "team/api")
    ));
    let shared = owned_grants(&iam, "shared-exec").await;
    assert!(
        !has(&shared, "ssm:GetParameters", &stale_parameter()),
        "{shared:#?}"
    );
    assert!(has(
        &shared,
        "ecr:BatchGetImage",
        &repository("222222222222", "shared/base")
    ));

    // The plan still shows the two held-back removals, and the finding that holds them.
    let (code, stdout, stderr) = run(moto
        .execrole()
        .args(["plan", "--output", "json", "--config"])
        .arg(&config));
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let role = |name: &str| {
        json["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["role"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {json}"))
    };
    let nested = role("nested-exec");
    let held = nested["held_back"].as_array().unwrap();
    assert_eq!(held.len(), 2, "{nested}");
    assert_eq!(
        nested["removed"].as_array().map(Vec::len),
        Some(2),
        "{nested}"
    );
    for removal in held {
        assert_eq!(removal["resource"], team.as_str());
        let by = &removal["by"][0];
        assert_eq!(by["hold"], "unresolved_lookup");
        assert_eq!(by["scope"]["prefix"], "team");
        assert_eq!(by["finding"]["field"], "containerDefinitions[0].image");
    }
    let shared = role("shared-exec");
    assert_eq!(shared["change"], "none", "{shared}");
    assert_eq!(shared["held_back"], serde_json::json!([]));
    let kinds: Vec<&str> = shared["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["cross_account_resource"], "{shared}");

    let (_, text, _) = run(moto.execrole().args(["plan", "--config"]).arg(&config));
    let held_line = format!(
        " on {team}   (no longer needed; held back: the unresolved look-up of api:1 container api \
         containerDefinitions[0].image)"
    );
    assert_eq!(text.matches(&held_line).count(), 2, "{text}");
}
