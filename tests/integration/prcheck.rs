//! The pull-request check end to end, through the built binary: `derive --against` (in sync, missing and excess,
//! blocked by a Deny, malformed policy), input from stdin and in the `{"taskDefinition": …}` wrapper, offline
//! look-ups grouped in text, `--online` against the emulator, and every recipe in `deploy/ci/` and
//! `.pre-commit-hooks.yaml` run with the very command line it contains, in a scratch repository laid out as the
//! recipe expects. Only the `--online` test starts the emulator; it reaches nothing but 127.0.0.1.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(path: &str) -> String {
    root()
        .join("tests/fixtures/prcheck")
        .join(path)
        .display()
        .to_string()
}

/// The account and Region for the fixture without a taskDefinitionArn, then both task definitions.
fn role_files() -> Vec<String> {
    vec![
        "--account".into(),
        ACCOUNT.into(),
        "--region".into(),
        REGION.into(),
        fixture("taskdefs/web.json"),
        fixture("taskdefs/worker.json"),
    ]
}

/// A command for the binary with no way to reach AWS (it must not need to).
fn execrole() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_execrole"));
    command
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

fn run(command: &mut Command, stdin: Option<&str>) -> (i32, String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start execrole");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(pipe);
    let out = child.wait_with_output().expect("wait for execrole");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(policies: &[&str], extra: &[&str]) -> (i32, String, String) {
    let mut command = execrole();
    command.arg("derive");
    for policy in policies {
        command.arg("--against").arg(fixture(policy));
    }
    command.args(extra).args(role_files());
    run(&mut command, None)
}

#[test]
fn a_policy_with_exactly_the_union_of_needs_is_in_sync() {
    let (code, stdout, stderr) = check(&["policies/policy-in-sync.json"], &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("= role 123456789012/shop-exec: in sync with"),
        "{stdout}"
    );
    assert!(stdout.contains("used by: web:7, worker"), "{stdout}");
}

#[test]
fn missing_and_excess_grants_exit_2_with_their_reasons() {
    let (code, stdout, stderr) = check(&["policies/policy-drifted.json"], &[]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    for line in [
        "    + ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/shop/worker\n        because worker container worker containerDefinitions[0].image",
        "    + logs:CreateLogGroup on arn:aws:logs:us-east-1:123456789012:log-group:/ecs/shop:*\n        because worker container worker containerDefinitions[0].logConfiguration.options.awslogs-create-group",
        "    - s3:GetObject on arn:aws:s3:::shop-config/web.env",
        "Differences: 4 missing, 1 not needed, 0 blocked",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let (code, stdout, _) = check(&["policies/policy-drifted.json"], &["--output", "json"]);
    assert_eq!(code, 2);
    let json: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["in_sync"], false);
    assert_eq!(json["roles"][0]["added"].as_array().unwrap().len(), 4);
    assert_eq!(json["roles"][0]["removed"][0]["action"], "s3:GetObject");
    assert_eq!(
        json["roles"][0]["added"][0]["reasons"][0]["task_definition"],
        "worker"
    );
}

#[test]
fn a_deny_in_a_compared_document_blocks_a_need() {
    let (code, stdout, stderr) = check(
        &[
            "policies/policy-in-sync.json",
            "policies/policy-guardrail.json",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "! blocked: secretsmanager:GetSecretValue on arn:aws:secretsmanager:us-east-1:123456789012:secret:shop/db-AbCdEf is stopped by an explicit Deny"
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("\n    - "),
        "a Deny is not an excess grant:\n{stdout}"
    );
}

#[test]
fn a_malformed_policy_file_is_an_error_naming_it() {
    let (code, stdout, stderr) = check(&["policies/policy-malformed.json"], &[]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("policy-malformed.json: not an IAM policy document"),
        "{stderr}"
    );
    let (code, _, stderr) = check(&["policies/no-such-policy.json"], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no-such-policy.json: cannot read the file"),
        "{stderr}"
    );
}

#[test]
fn stdin_and_the_describe_wrapper_are_read() {
    // web.json is `aws ecs describe-task-definition` output: {"taskDefinition": …, "tags": []}.
    let text = std::fs::read_to_string(fixture("taskdefs/web.json")).unwrap();
    let (code, stdout, stderr) = run(
        execrole().args(["derive", "--output", "json", "-"]),
        Some(&text),
    );
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["files"][0]["file"], "-");
    assert_eq!(json["files"][0]["task_definition"], "web:7");
    assert_eq!(json["files"][0]["role"]["name"], "shop-exec");
    let (code, _, stderr) = run(execrole().args(["derive", "-", "-"]), Some(&text));
    assert_eq!(code, 1, "a second `-` is an error");
    assert_eq!(stderr, "");
}

#[test]
fn offline_look_ups_are_one_line_in_text_and_every_finding_in_json() {
    let web = fixture("taskdefs/web.json");
    let (code, text, _) = run(execrole().args(["derive", &web]), None);
    assert_eq!(code, 0);
    assert!(
        text.contains(
            "    ! 2 secrets and parameters were not looked up, so kms:Decrypt is undecided; --online decides it"
        ),
        "{text}"
    );
    assert!(!text.contains("[unresolved_lookup]"), "{text}");
    let (_, json, _) = run(execrole().args(["derive", "--output", "json", &web]), None);
    let json: Value = serde_json::from_str(&json).unwrap();
    let unresolved = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "unresolved_lookup")
        .count();
    assert_eq!(unresolved, 2, "{json}");
}

#[tokio::test]
async fn online_look_ups_decide_kms_decrypt_for_customer_managed_keys_only() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let key = aws_sdk_kms::Client::new(&config)
        .create_key()
        .description("execrole prcheck CMK")
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let mut arns = Vec::new();
    for (name, kms) in [("shop/cmk", Some(key.clone())), ("shop/default", None)] {
        let out = sm
            .create_secret()
            .name(name)
            .secret_string("never-read")
            .set_kms_key_id(kms)
            .send()
            .await
            .unwrap();
        arns.push(out.arn().unwrap().to_string());
    }
    let td = serde_json::json!({"taskDefinition": {
        "taskDefinitionArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/shop:1"),
        "family": "shop", "revision": 1,
        "executionRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/shop-exec"),
        "containerDefinitions": [{"name": "app", "image": "nginx", "secrets": [
            {"name": "CMK", "valueFrom": arns[0]}, {"name": "DEFAULT", "valueFrom": arns[1]}]}]}});
    let mut command = moto.execrole();
    command.args(["derive", "--online", "--output", "json", "-"]);
    let (code, stdout, stderr) = run(&mut command, Some(&td.to_string()));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let file = &json["files"][0];
    let decrypts: Vec<&Value> = file["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "kms:Decrypt")
        .collect();
    assert_eq!(decrypts.len(), 1, "only the CMK secret: {file}");
    assert_eq!(decrypts[0]["resource"], key.as_str());
    assert_eq!(
        decrypts[0]["conditions"]["StringEquals"]["kms:ViaService"][0],
        format!("secretsmanager.{REGION}.amazonaws.com")
    );
    assert!(
        file["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "unresolved_lookup"),
        "{file}"
    );
}

/// A scratch repository laid out as the recipes expect, with `policy` as the policy under review.
fn scratch_repository(policy: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("iam")).unwrap();
    std::fs::create_dir_all(dir.path().join("ecs/taskdefs")).unwrap();
    std::fs::copy(
        fixture(policy),
        dir.path().join("iam/execution-role-policy.json"),
    )
    .unwrap();
    for td in ["web.json", "worker.json"] {
        std::fs::copy(
            fixture(&format!("taskdefs/{td}")),
            dir.path().join("ecs/taskdefs").join(td),
        )
        .unwrap();
    }
    dir
}

fn yaml(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The recipe's variables as (name, value).
fn variables(map: &serde_yaml::Value) -> Vec<(String, String)> {
    map.as_mapping()
        .expect("a mapping of variables")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Run a recipe's shell line in `dir` with its variables and the built binary first on PATH.
fn run_shell(line: &str, vars: &[(String, String)], dir: &Path) -> (i32, String, String) {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_execrole")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("sh");
    command
        .args(["-c", line])
        .current_dir(dir)
        .envs(vars.iter().cloned())
        .env("PATH", path)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    run(&mut command, None)
}

/// Exit 0 with the in-sync policy and 2 with the drifted one, for a recipe given as (shell line, variables).
fn assert_recipe_gates(line: &str, vars: &[(String, String)]) {
    assert!(line.starts_with("execrole derive --against"), "{line}");
    let repo = scratch_repository("policies/policy-in-sync.json");
    let (code, stdout, stderr) = run_shell(line, vars, repo.path());
    assert_eq!(code, 0, "`{line}`:\n{stdout}{stderr}");
    assert!(stdout.contains("In sync:"), "{stdout}");
    let repo = scratch_repository("policies/policy-drifted.json");
    let (code, stdout, stderr) = run_shell(line, vars, repo.path());
    assert_eq!(code, 2, "`{line}`:\n{stdout}{stderr}");
    assert!(
        stdout.contains("Differences: 4 missing, 1 not needed"),
        "{stdout}"
    );
}

#[test]
fn the_github_actions_recipe_gates_on_its_own_command_line() {
    let workflow = yaml("deploy/ci/github-actions.yml");
    let job = &workflow["jobs"]["execution-role"];
    let line = job["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|run| run.starts_with("execrole "))
        .expect("a step that runs execrole");
    assert_recipe_gates(line, &variables(&job["env"]));
}

#[test]
fn the_gitlab_ci_recipe_gates_on_its_own_command_line() {
    let pipeline = yaml("deploy/ci/gitlab-ci.yml");
    let job = &pipeline["execrole-check"];
    let line = job["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .find(|run| run.starts_with("execrole "))
        .expect("a script line that runs execrole");
    assert_recipe_gates(line, &variables(&job["variables"]));
}

#[test]
fn the_pre_commit_hook_gates_with_its_entry_and_the_documented_args() {
    let hooks = yaml(".pre-commit-hooks.yaml");
    let hook = &hooks[0];
    assert_eq!(hook["id"], "execrole-check");
    assert_eq!(hook["pass_filenames"], false, "the role needs its union");
    let entry: Vec<&str> = hook["entry"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(entry[0], "execrole");
    let config = yaml("deploy/ci/pre-commit-config.example.yaml");
    let user_hook = &config["repos"][0]["hooks"][0];
    assert_eq!(user_hook["id"], "execrole-check");
    let args: Vec<&str> = user_hook["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for (policy, expected) in [
        ("policies/policy-in-sync.json", 0),
        ("policies/policy-drifted.json", 2),
    ] {
        let repo = scratch_repository(policy);
        // pre-commit runs the entry with the args, no shell, in the repository's root.
        let mut command = execrole();
        command
            .args(&entry[1..])
            .args(&args)
            .current_dir(repo.path());
        let (code, stdout, stderr) = run(&mut command, None);
        assert_eq!(code, expected, "{policy}:\n{stdout}{stderr}");
    }
}

/// The `jq` lines of docs/pr-check.md, run as written on a Terraform plan and a CloudFormation template that hold
/// the role's policy: each yields a policy document, and the role's own policy is in sync.
#[test]
fn the_documented_jq_extractions_yield_the_policy_documents() {
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: jq is not installed (apt-get install -y jq); the documented extractions are untested"
        );
        return;
    }
    let docs = std::fs::read_to_string(root().join("docs/pr-check.md")).unwrap();
    let lines: Vec<&str> = docs.lines().filter(|l| l.starts_with("jq ")).collect();
    assert!(lines.len() >= 3, "{lines:?}");
    let repo = scratch_repository("policies/policy-drifted.json");
    for (source, copy) in [
        ("sources/terraform-plan.json", "plan.json"),
        ("sources/cloudformation.json", "template.json"),
    ] {
        std::fs::copy(fixture(source), repo.path().join(copy)).unwrap();
    }
    for line in lines {
        let (code, stdout, stderr) = run_shell(line, &[], repo.path());
        assert_eq!(code, 0, "`{line}`:\n{stdout}{stderr}");
        let output = line.rsplit("> ").next().unwrap().trim();
        let (code, stdout, stderr) = run(
            execrole()
                .args(["derive", "--against", output])
                .args(["--account", ACCOUNT, "--region", REGION, "ecs/taskdefs"])
                .current_dir(repo.path()),
            None,
        );
        let expected = if output == "execution-policy.json" {
            0
        } else {
            2
        };
        assert_eq!(code, expected, "`{line}`:\n{stdout}{stderr}");
    }
}
