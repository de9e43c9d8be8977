//! The parsers under test: for each, its seeds (fixtures, config examples, the unit tests' examples), how one input
//! is generated from them, and what is run on it. A check may return anything (errors are expected for most
//! inputs); it fails only by panicking, hanging or allocating without bound. Where a property must hold for every
//! accepted input (a serialised policy parses again, an ARN prints as it was written), the check asserts it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use execrole::config::Config;
use execrole::derive::{
    Baseline, DeriveContext, DeriveOptions, Facts, VpcEndpointCondition, merge_requirements,
    required_permissions,
};
use execrole::events::{OwnWrites, USER_AGENT_MARKER, effects_of};
use execrole::model::{Arn, ImageRef, RoleKey, TaskDefinition};
use execrole::policy::{PolicyDocument, normalize};

use crate::mutate::{Dictionary, Rng, mutate_bytes, mutate_string, mutate_value, write_json};

/// The largest input generated (a task definition from the API is at most 64 KiB; a config file is small).
const MAX_INPUT: usize = 8 << 20;

/// How a target's inputs are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// JSON text.
    Json,
    /// JSON text, percent-encoded the way IAM returns policies (or almost).
    PercentJson,
    /// YAML text (the config file).
    Yaml,
    /// A short string (an ARN, an image reference).
    Text,
}

/// One parser under test.
pub struct Target {
    /// The name used in reports, file names and `EXECROLE_FUZZ_TARGET`.
    pub name: &'static str,
    /// What is run on each input.
    pub check: fn(&str),
    syntax: Syntax,
    seeds: Vec<Value>,
    texts: Vec<String>,
    dictionary: Dictionary,
}

impl Target {
    fn new(name: &'static str, syntax: Syntax, texts: Vec<String>, check: fn(&str)) -> Target {
        let seeds: Vec<Value> = match syntax {
            Syntax::Text => texts.iter().map(|t| Value::String(t.clone())).collect(),
            Syntax::Yaml => texts
                .iter()
                .filter_map(|t| serde_yaml::from_str(t).ok())
                .collect(),
            _ => texts
                .iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect(),
        };
        assert!(!seeds.is_empty(), "{name} has no seeds");
        let dictionary = Dictionary::of(&seeds);
        Target {
            name,
            check,
            syntax,
            seeds,
            texts,
            dictionary,
        }
    }

    /// Input `index` of the run seeded with `seed`: the same numbers always give the same input.
    pub fn input(&self, seed: u64, index: u64) -> String {
        let mut rng = Rng::for_input(seed, self.name, index);
        if self.syntax == Syntax::Text {
            let start = rng.pick(&self.dictionary.strings).clone();
            let text = mutate_string(&mut rng, &self.dictionary, &start);
            return if rng.one_in(4) {
                bytes_mutated(&mut rng, text)
            } else {
                text
            };
        }
        let text = match rng.below(10) {
            0 => rng.pick(&self.texts).clone(),
            _ => {
                let mut value = rng.pick(&self.seeds).clone();
                mutate_value(&mut rng, &self.dictionary, &mut value);
                self.write(&mut rng, &value)
            }
        };
        let mut text = if rng.one_in(3) {
            bytes_mutated(&mut rng, text)
        } else {
            text
        };
        // Stacked mutations can grow an input without bound; the parsers' inputs are a few MiB at most.
        if text.len() > MAX_INPUT {
            let mut end = MAX_INPUT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        text
    }

    fn write(&self, rng: &mut Rng, value: &Value) -> String {
        match self.syntax {
            Syntax::Yaml if !rng.one_in(4) => {
                serde_yaml::to_string(value).unwrap_or_else(|_| value.to_string())
            }
            Syntax::PercentJson if !rng.one_in(3) => {
                let json = write_json(rng, value);
                percent_encoded(rng, &json)
            }
            _ => write_json(rng, value),
        }
    }
}

fn bytes_mutated(rng: &mut Rng, text: String) -> String {
    let mut bytes = text.into_bytes();
    mutate_bytes(rng, &mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Percent-encode `text` as IAM does, or with the variations a decoder must survive: some characters left raw,
/// lowercase hex, broken escapes, encoded bytes that are not UTF-8, double encoding, surrounding whitespace.
fn percent_encoded(rng: &mut Rng, text: &str) -> String {
    let lower = rng.one_in(4);
    let partial = rng.one_in(4);
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
        if keep || (partial && rng.one_in(2)) {
            out.push(b as char);
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if rng.one_in(200) {
            out.push_str(rng.pick::<&str>(&[
                "%",
                "%4",
                "%ZZ",
                "%FF",
                "%C0%80",
                "%ED%A0%80",
                "%00",
                "%25",
                "+",
            ]));
        }
    }
    match rng.below(6) {
        0 => out.replace('%', "%25"),
        1 => format!(" \n\t{out}\r\n"),
        _ => out,
    }
}

/// Every target, in the order they run.
pub fn all() -> Vec<Target> {
    let taskdefs = fixtures();
    vec![
        Target::new(
            "task_definition",
            Syntax::Json,
            taskdefs.clone(),
            check_task_definition,
        ),
        Target::new("derive", Syntax::Json, taskdefs.clone(), check_derive),
        Target::new(
            "policy_document",
            Syntax::PercentJson,
            policies(),
            check_policy,
        ),
        Target::new("event", Syntax::Json, events(), check_event),
        Target::new("image", Syntax::Text, images(&taskdefs), check_image),
        Target::new("arn", Syntax::Text, arns(&taskdefs), check_arn),
        Target::new("config", Syntax::Yaml, configs(), check_config),
    ]
}

fn check_task_definition(text: &str) {
    if let Ok(td) = TaskDefinition::from_json(text) {
        let _ = (td.display_name(), td.is_ec2_only(), td.parsed_arn());
        for c in &td.containers {
            let _ = (c.display_name(), c.field_path("image"));
        }
    }
}

fn check_derive(text: &str) {
    let Ok(td) = TaskDefinition::from_json(text) else {
        return;
    };
    let contexts = [
        DeriveContext::default(),
        DeriveContext {
            account: Some("123456789012".into()),
            region: Some("eu-west-1".into()),
        },
    ];
    let options = [
        DeriveOptions::default(),
        DeriveOptions {
            ecr_and_logs_on_ec2: false,
            baseline: Baseline::ManagedPolicy,
            vpc_endpoint: VpcEndpointCondition {
                source_vpce: vec!["vpce-0123456789abcdef0".into()],
                source_vpc: vec!["vpc-0a1b2c3d".into()],
            },
            pull_through_lookups: false,
        },
    ];
    for (ctx, options) in contexts.iter().zip(&options) {
        let derivation = required_permissions(&td, ctx, options, &Facts::default());
        let _ = merge_requirements(&derivation.requirements);
        let _ = derivation.findings.iter().map(ToString::to_string).count();
    }
}

fn check_policy(text: &str) {
    if let Ok(doc) = PolicyDocument::parse(text) {
        let _ = normalize(&doc);
        let json = doc.to_json();
        let again = PolicyDocument::parse(&json);
        assert!(
            again.is_ok(),
            "a parsed policy must parse again once written: {again:?}"
        );
    }
}

fn check_event(text: &str) {
    let own = OwnWrites {
        session_names: vec!["execrole".into()],
        user_agent_marker: USER_AGENT_MARKER.into(),
    };
    let _ = effects_of(text, &own);
}

fn check_image(text: &str) {
    if let Ok(ImageRef::Ecr(image)) = ImageRef::parse(text) {
        let _ = (image.partition(), image.repository_arn());
    }
}

fn check_arn(text: &str) {
    if let Ok(arn) = Arn::parse(text) {
        assert_eq!(arn.to_string(), text, "an ARN must print as it was written");
    }
    let _ = RoleKey::from_role_arn(text);
}

fn check_config(text: &str) {
    if let Ok(config) = Config::from_yaml(Path::new("fuzz.yaml"), text) {
        let _ = (config.to_effective_yaml(), config.derive_options());
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_dir(dir: &Path, ext: &str) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable seed"))
        .collect()
}

/// The task-definition fixtures, bare and wrapped as describe output.
fn fixtures() -> Vec<String> {
    let mut texts = read_dir(&root().join("tests/fixtures/taskdefs"), "json");
    let wrapped: Vec<String> = texts
        .iter()
        .filter_map(|t| serde_json::from_str::<Value>(t).ok())
        .filter(|v| v.get("taskDefinition").is_none())
        .map(|v| json!({"taskDefinition": v, "tags": [{"key": "team", "value": "a"}]}).to_string())
        .collect();
    texts.extend(wrapped);
    texts
}

/// Every string under the key `key` in the fixtures.
fn strings_under(texts: &[String], key: &str) -> Vec<String> {
    fn walk(value: &Value, key: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if k == key || key.is_empty() => out.push(s.clone()),
                        _ => walk(v, key, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, key, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for text in texts {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            walk(&value, key, &mut out);
        }
    }
    out
}

fn images(taskdefs: &[String]) -> Vec<String> {
    let mut out = strings_under(taskdefs, "image");
    out.extend(
        [
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.2@sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/app:v1",
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app",
            "123456789012.dkr-ecr.eu-central-1.on.aws/app:1",
            "123456789012.dkr-ecr-fips.us-east-2.on.aws/app:1",
            "123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM/app",
            "public.ecr.aws/aws-observability/aws-otel-collector:latest",
            "registry.local:5000/app:1",
            "${ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/hello",
        ]
        .map(String::from),
    );
    out
}

fn arns(taskdefs: &[String]) -> Vec<String> {
    let mut out: Vec<String> = strings_under(taskdefs, "")
        .into_iter()
        .filter(|s| s.contains("arn:"))
        .collect();
    out.extend(
        [
            "arn:aws:iam::123456789012:role/path/to/exec",
            "arn:aws:sts::123456789012:assumed-role/Deployer/execrole",
            "arn:aws-us-gov:s3:::bucket/a:b:c",
            "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7",
        ]
        .map(String::from),
    );
    out
}

/// Policy documents in the shapes IAM stores and returns (from `policy`'s unit tests).
fn policies() -> Vec<String> {
    [
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "Ecr", "Effect": "Allow", "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], "Resource": "arn:aws:ecr:eu-west-1:123456789012:repository/web", "Condition": {"StringEquals": {"aws:sourceVpce": ["vpce-0123456789abcdef0"]}}}, {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]}),
        json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole", "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:ecs:eu-west-1:123456789012:*"}, "StringEquals": {"aws:SourceAccount": "123456789012"}}}}),
        json!({"Version": "2008-10-17", "Id": "x", "Statement": [{"Effect": "Deny", "NotAction": ["iam:*"], "NotResource": ["arn:aws:s3:::b/*"], "Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"s3:max-keys": 10}}}]}),
        json!({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": ["arn:aws:iam::123456789012:root", "*"]}, "Action": "s3:GetObject", "Resource": ["arn:aws:s3:::b/k.env", "arn:aws:s3:::b"]}]}),
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*", "Condition": {"ForAnyValue:StringLike": {"kms:ViaService": ["secretsmanager.*.amazonaws.com", "ssm.*.amazonaws.com"]}}}]}),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

/// EventBridge envelopes of CloudTrail records (shapes from `events`' unit tests).
fn events() -> Vec<String> {
    let detail = |name: &str, params: Value, response: Value| {
        json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/Deployer/deploy-pipeline", "accountId": "123456789012"},
            "eventSource": "ecs.amazonaws.com", "eventName": name, "awsRegion": "eu-west-1",
            "recipientAccountId": "123456789012",
            "userAgent": "aws-cli/2.15.30 md/awscrt#0.19.19 command/ecs.register-task-definition",
            "requestParameters": params, "responseElements": response
        })
    };
    let envelope = |source: &str, detail: Value| {
        json!({"version": "0", "id": "6f1c2b7e", "detail-type": "AWS API Call via CloudTrail", "source": source,
               "account": "123456789012", "time": "2025-03-04T10:15:30Z", "region": "eu-west-1", "resources": [],
               "detail": detail})
    };
    let td = json!({"taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7", "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec"});
    [
        envelope("aws.ecs", detail("RegisterTaskDefinition", json!({"family": "web", "executionRoleArn": "arn:aws:iam::123456789012:role/web-exec", "containerDefinitions": [{"name": "web", "image": "nginx"}]}), json!({"taskDefinition": td}))),
        envelope("aws.ecs", detail("DeregisterTaskDefinition", json!({"taskDefinition": "web:7"}), json!({"taskDefinition": td}))),
        envelope("aws.ecs", detail("DeleteTaskDefinitions", json!({"taskDefinitions": ["web:7"]}), json!({"taskDefinitions": [td], "failures": []}))),
        envelope("aws.iam", detail("PutRolePolicy", json!({"roleName": "web-exec", "policyName": "x", "policyDocument": "{}"}), Value::Null)),
        envelope("aws.iam", {
            let mut d = detail("DeleteRole", json!({"roleName": "old"}), Value::Null);
            d["errorCode"] = json!("NoSuchEntity");
            d["userAgent"] = json!("aws-sdk-rust/1.3 app/execrole");
            d
        }),
        json!({"Type": "Notification", "Message": "{}"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

/// The config examples and the config unit tests' documents.
fn configs() -> Vec<String> {
    let mut texts = read_dir(&root().join("config"), "yaml");
    texts.push("targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n".into());
    texts.push(
        "mode: enforce\ntargets:\n  - account: \"111111111111\"\n    regions: [us-east-1, eu-west-1]\n    assume_role_arn: arn:aws:iam::111111111111:role/execrole-target\n    external_id: shared-secret\n    session_name: ops\ntask_definitions:\n  include_families: [\"web*\", \"api\"]\n  exclude_families: [\"web-legacy*\"]\n  ecr_and_logs_on_ec2: false\npolicy:\n  inline_name: platform-execrole\n  baseline: managed-policy\n  ecr_vpc_endpoint:\n    source_vpce: [vpce-0123456789abcdef0]\n    source_vpc: [vpc-0a1b2c3d]\n  container_insights:\n    configure: true\n    view: false\n    roles: [app-exec]\nlookups:\n  cache_ttl: 2m\n  pull_through_cache: false\nsafety:\n  max_roles_written_per_pass: 7\n  never_grant: [\"iam:*\", \"kms:Create*\"]\nresync_interval: 90s\nconcurrency: 8\n".into(),
    );
    texts
}
