//! Benchmarks of the pure core (criterion): deriving what a task definition needs, compiling a role's policy,
//! and planning a role (diff against what IAM holds, plus the evaluation of its other policies). No AWS, no I/O
//! inside the measured code. The inputs are the real-shaped fixtures in `tests/fixtures/taskdefs/` (read the way
//! `execrole derive` reads them) and a synthetic shared execution role: `n` services whose task definitions all
//! name `platform-exec`, with private ECR images, `awslogs`, Secrets Manager and SSM secrets under customer
//! managed keys, and S3 environment files, with every look-up answered as the controller would answer it.
//!
//! `cargo bench --bench derive`; figures in `BENCHMARKS.md`. Each benchmark is kept short (10 samples, 2 s) so the
//! whole file runs in about a minute. Under `cargo test --benches` criterion runs each benchmark once, untimed.
//!
//! Times are the CPU time of the benchmark's thread ([`ThreadCpuTime`]), not wall time: the measured code is
//! single-threaded and does no I/O, so on a quiet machine the two agree, and on a machine shared with builds the
//! CPU time does not grow with the load.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use execrole::derive::{
    self, DeriveContext, DeriveOptions, Fact, Facts, KeyFacts, Lookup, ParameterFacts, Requirement,
    SecretFacts,
};
use execrole::model::{RoleKey, TaskDefinition};
use execrole::offline;
use execrole::plan::{self, DesiredRole, ObservedRole, OtherPolicy};
use execrole::policy::{self, Effect, Permission, PolicyDocument, Statement};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const ROLE: &str = "platform-exec";

/// `AmazonECSTaskExecutionRolePolicy` as AWS publishes it: attached to many execution roles, so plan evaluates it.
const AWS_MANAGED_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#;

/// A team's own inline policy on the same role, with an explicit Deny (plan evaluates it too).
const TEAM_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Team","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-config/*"},{"Effect":"Deny","Action":"ssm:GetParameters","Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/forbidden/*"}]}"#;

/// The fixtures as (file name, text), as `execrole derive` reads its arguments.
fn fixture_inputs() -> Vec<(String, Result<String, String>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/taskdefs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/taskdefs")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| e.to_string());
            (name, text)
        })
        .collect()
}

/// `--account` and `--region`, so that register-task-definition input (no ARN) derives in full too.
fn context() -> DeriveContext {
    DeriveContext {
        account: Some(ACCOUNT.into()),
        region: Some(REGION.into()),
    }
}

/// The task definition of service `i`: an app container (private ECR image, awslogs, secrets) and a sidecar
/// (public image, shared log group).
fn service_task_definition(i: usize) -> TaskDefinition {
    let mut secrets = vec![serde_json::json!({
        "name": "DB_PASSWORD",
        "valueFrom": format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:svc-{i}/db-AbCdEf:password::"),
    })];
    if i.is_multiple_of(2) {
        secrets
            .push(serde_json::json!({"name": "API_KEY", "valueFrom": format!("/svc-{i}/api-key")}));
    }
    let mut app_log = serde_json::json!({
        "awslogs-group": format!("/ecs/svc-{i}"),
        "awslogs-region": REGION,
        "awslogs-stream-prefix": "app",
    });
    if i.is_multiple_of(3) {
        app_log["awslogs-create-group"] = "true".into();
    }
    let mut app = serde_json::json!({
        "name": "app",
        "image": format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/team-{}/svc-{i}:1.{i}", i % 4),
        "logConfiguration": {"logDriver": "awslogs", "options": app_log},
        "secrets": secrets,
    });
    if i.is_multiple_of(4) {
        app["environmentFiles"] = serde_json::json!([
            {"type": "s3", "value": format!("arn:aws:s3:::platform-config/svc-{i}/app.env")}
        ]);
    }
    let sidecar = serde_json::json!({
        "name": "otel",
        "image": "public.ecr.aws/aws-observability/aws-otel-collector:latest",
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": "/ecs/sidecars", "awslogs-region": REGION, "awslogs-stream-prefix": "otel"
        }},
    });
    let value = serde_json::json!({
        "taskDefinitionArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/svc-{i}:1"),
        "family": format!("svc-{i}"),
        "revision": 1,
        "executionRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/{ROLE}"),
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [app, sidecar],
    });
    TaskDefinition::from_value(&value).expect("a valid synthetic task definition")
}

/// An answer for a look-up, as the controller would get it from AWS: every secret and SecureString under one of
/// two customer managed keys.
fn answer(lookup: &Lookup) -> Fact {
    match lookup {
        Lookup::Secret { secret_id, .. } => Fact::Secret(SecretFacts {
            arn: if secret_id.starts_with("arn:") {
                secret_id.clone()
            } else {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-AbCdEf")
            },
            kms_key_id: Some(format!("alias/team-{}", secret_id.len() % 2)),
        }),
        Lookup::Parameter { name, .. } => Fact::Parameter(ParameterFacts {
            kind: "SecureString".into(),
            key_id: Some(format!("alias/team-{}", name.len() % 2)),
        }),
        Lookup::Key { key_id, .. } => Fact::Key(KeyFacts {
            arn: format!(
                "arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-00000000000{}",
                key_id.len() % 2
            ),
            customer_managed: true,
        }),
        Lookup::PullThroughCacheRules { .. } => Fact::PullThroughCacheRules { rules: Vec::new() },
    }
}

/// Derive every task definition, answering look-ups round by round as the controller does; returns the facts.
fn facts_for(task_definitions: &[TaskDefinition], options: &DeriveOptions) -> Facts {
    let mut facts = Facts::new();
    for _round in 0..4 {
        let mut asked = false;
        for td in task_definitions {
            let derivation =
                derive::required_permissions(td, &DeriveContext::default(), options, &facts);
            for lookup in derivation.lookups {
                asked = true;
                let fact = answer(&lookup);
                facts.insert(lookup, fact);
            }
        }
        if !asked {
            break;
        }
    }
    facts
}

/// The desired state of `platform-exec`, named by `n` services.
fn shared_role(n: usize) -> (DesiredRole, Vec<TaskDefinition>, Facts) {
    let options = DeriveOptions::default();
    let tds: Vec<TaskDefinition> = (0..n).map(service_task_definition).collect();
    let facts = facts_for(&tds, &options);
    let mut requirements: Vec<Requirement> = Vec::new();
    let mut names = Vec::new();
    for td in &tds {
        let derivation =
            derive::required_permissions(td, &DeriveContext::default(), &options, &facts);
        assert!(
            derivation.lookups.is_empty(),
            "every look-up is answered: {:?}",
            derivation.lookups
        );
        names.push(derivation.task_definition);
        requirements.extend(derivation.requirements);
    }
    let desired = DesiredRole {
        key: RoleKey {
            account: ACCOUNT.into(),
            name: ROLE.into(),
        },
        task_definitions: names,
        requirements: derive::merge_requirements(requirements.iter()),
        findings: Vec::new(),
        managed_policy_arn: None,
        trust_policy: None,
    };
    (desired, tds, facts)
}

/// The same grants written the way people write them by hand: one statement per resource (and condition set).
fn one_statement_per_resource(permissions: &[Permission]) -> PolicyDocument {
    let mut by_resource: BTreeMap<(String, String), (Vec<String>, policy::Conditions)> =
        BTreeMap::new();
    for p in permissions {
        let key = (p.resource.clone(), format!("{:?}", p.conditions));
        let entry = by_resource
            .entry(key)
            .or_insert_with(|| (Vec::new(), p.conditions.clone()));
        entry.0.push(p.action.clone());
    }
    PolicyDocument {
        version: Some(policy::POLICY_VERSION.into()),
        statements: by_resource
            .into_iter()
            .enumerate()
            .map(|(i, ((resource, _), (actions, condition)))| Statement {
                sid: Some(format!("S{i}")),
                action: Some(actions),
                resource: Some(vec![resource]),
                condition,
                ..Statement::new(Effect::Allow)
            })
            .collect(),
    }
}

/// What IAM returns for a role whose owned policy is `owned` (URL-encoded, as GetRolePolicy returns it), with the
/// AWS managed policy attached and a team's inline policy beside ours.
fn observed_with(owned: &PolicyDocument) -> ObservedRole {
    let encoded =
        percent_encoding::utf8_percent_encode(&owned.to_json(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    ObservedRole {
        exists: true,
        owned_policy: Some(encoded),
        other_inline_policies: vec!["team-extra".into()],
        attached_policies: vec![derive::managed_policy_arn("aws")],
        trust_policy: None,
        foreign_inline_size: policy::iam_size(&PolicyDocument::parse(TEAM_POLICY).expect("team")),
        owned_managed: Vec::new(),
        other_policies: vec![
            OtherPolicy {
                source: "inline:team-extra".into(),
                document: PolicyDocument::parse(TEAM_POLICY).expect("team policy"),
            },
            OtherPolicy {
                source: derive::managed_policy_arn("aws"),
                document: PolicyDocument::parse(AWS_MANAGED_POLICY).expect("managed policy"),
            },
        ],
        boundary: None,
        has_baseline_tag: false,
    }
}

fn permissions_of(desired: &DesiredRole) -> Vec<Permission> {
    desired
        .requirements
        .iter()
        .map(|r| r.permission.clone())
        .collect()
}

fn bench_derive(c: &mut Criterion<ThreadCpuTime>) {
    let inputs = fixture_inputs();
    let ctx = context();
    let options = DeriveOptions::default();
    let mut group = c.benchmark_group("derive");
    // What `execrole derive tests/fixtures/taskdefs/*.json` does, minus printing: parse, derive, compile.
    group.bench_function("derive_files/all_fixtures", |b| {
        b.iter(|| offline::derive_files(black_box(&inputs), &ctx, &options))
    });
    let parsed: Vec<(String, TaskDefinition)> = inputs
        .iter()
        .filter_map(|(name, text)| {
            let td = TaskDefinition::from_json(text.as_ref().ok()?).ok()?;
            Some((name.trim_end_matches(".json").to_string(), td))
        })
        .collect();
    let facts = Facts::new();
    for (name, td) in &parsed {
        group.bench_with_input(
            BenchmarkId::new("required_permissions", name),
            td,
            |b, td| b.iter(|| derive::required_permissions(black_box(td), &ctx, &options, &facts)),
        );
    }
    let (_, tds, facts) = shared_role(12);
    group.bench_function("required_permissions/synthetic_service_with_facts", |b| {
        b.iter(|| {
            derive::required_permissions(
                black_box(&tds[0]),
                &DeriveContext::default(),
                &options,
                &facts,
            )
        })
    });
    group.finish();
}

fn bench_compile(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("compile");
    for services in [12, 60] {
        let (desired, _, _) = shared_role(services);
        let permissions = permissions_of(&desired);
        let statements = desired.policy().map(|d| d.statements.len()).unwrap_or(0);
        let label = format!(
            "{services}_services_{}_permissions_{statements}_statements",
            permissions.len()
        );
        group.bench_with_input(
            BenchmarkId::new("policy_compile", &label),
            &permissions,
            |b, p| b.iter(|| policy::compile(black_box(p))),
        );
        group.bench_with_input(
            BenchmarkId::new("desired_role_policy", &label),
            &desired,
            |b, d| b.iter(|| black_box(d).policy()),
        );
    }
    group.finish();
}

fn bench_plan(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("plan_role");
    let (desired, _, _) = shared_role(12);
    let permissions = permissions_of(&desired);
    let hand_written = one_statement_per_resource(&permissions);
    let statements = hand_written.statements.len();

    // In sync: the same grants, laid out one statement per resource.
    let in_sync = observed_with(&hand_written);
    let check = plan::plan_role(&desired, &in_sync, "execrole", plan::Removals::Allowed);
    assert!(!check.has_changes(), "the in-sync case plans no write");
    group.bench_function(format!("in_sync_{statements}_statements"), |b| {
        b.iter(|| {
            plan::plan_role(
                black_box(&desired),
                black_box(&in_sync),
                "execrole",
                plan::Removals::Allowed,
            )
        })
    });

    // The same, with no other policy on the role: isolates the evaluation of needs against the other policies
    // (blocked, over-granted elsewhere) from the diff itself.
    let alone = ObservedRole {
        other_inline_policies: Vec::new(),
        attached_policies: Vec::new(),
        foreign_inline_size: 0,
        other_policies: Vec::new(),
        ..in_sync.clone()
    };
    group.bench_function(
        format!("in_sync_{statements}_statements_no_other_policies"),
        |b| {
            b.iter(|| {
                plan::plan_role(
                    black_box(&desired),
                    black_box(&alone),
                    "execrole",
                    plan::Removals::Allowed,
                )
            })
        },
    );

    // Drifted: three resources' grants missing, three stale grants.
    let mut drifted_doc = hand_written.clone();
    drifted_doc.statements.truncate(statements - 3);
    for old in ["svc-old-1", "svc-old-2", "svc-old-3"] {
        drifted_doc.statements.push(Statement {
            action: Some(vec![
                "ecr:BatchGetImage".into(),
                "ecr:GetDownloadUrlForLayer".into(),
            ]),
            resource: Some(vec![format!(
                "arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{old}"
            )]),
            ..Statement::new(Effect::Allow)
        });
    }
    let drifted = observed_with(&drifted_doc);
    let check = plan::plan_role(&desired, &drifted, "execrole", plan::Removals::Allowed);
    assert!(check.has_changes() && !check.added.is_empty() && !check.removed.is_empty());
    group.bench_function(
        format!("drifted_{}_statements", drifted_doc.statements.len()),
        |b| {
            b.iter(|| {
                plan::plan_role(
                    black_box(&desired),
                    black_box(&drifted),
                    "execrole",
                    plan::Removals::Allowed,
                )
            })
        },
    );

    // How it grows: a role named by 60 services (five times the needs), in sync, other policies as above.
    let (large, _, _) = shared_role(60);
    let large_doc = one_statement_per_resource(&permissions_of(&large));
    let large_observed = observed_with(&large_doc);
    group.bench_function(
        format!(
            "in_sync_{}_statements_{}_needs",
            large_doc.statements.len(),
            large.requirements.len()
        ),
        |b| {
            b.iter(|| {
                plan::plan_role(
                    black_box(&large),
                    black_box(&large_observed),
                    "execrole",
                    plan::Removals::Allowed,
                )
            })
        },
    );
    group.finish();
}

/// A role with exactly `needs` needs (the first ones of a large enough shared role), in sync, other policies as
/// in `bench_plan`.
fn role_with_needs(needs: usize) -> (DesiredRole, ObservedRole) {
    let (mut desired, _, _) = shared_role(needs.div_ceil(7) + 1);
    assert!(
        desired.requirements.len() >= needs,
        "enough services for {needs} needs"
    );
    desired.requirements.truncate(needs);
    let observed = observed_with(&one_statement_per_resource(&permissions_of(&desired)));
    (desired, observed)
}

/// How plan time grows with the needs: a role whose grants are in sync, from 50 to 2,000 needs (should be linear).
fn bench_plan_growth(c: &mut Criterion<ThreadCpuTime>) {
    let mut group = c.benchmark_group("plan_role_growth");
    for needs in [50, 100, 250, 500, 1000, 2000] {
        let (desired, observed) = role_with_needs(needs);
        let check = plan::plan_role(&desired, &observed, "execrole", plan::Removals::Allowed);
        // The grants are in sync; past the inline limit the plan moves them to spill policies (or finds the role
        // too large), which costs the same evaluation and diff.
        assert!(
            check.added.is_empty() && check.removed.is_empty(),
            "{needs} needs: in sync"
        );
        group.throughput(criterion::Throughput::Elements(needs as u64));
        group.bench_with_input(
            BenchmarkId::new("in_sync_needs", needs),
            &(desired, observed),
            |b, (d, o)| {
                b.iter(|| {
                    plan::plan_role(
                        black_box(d),
                        black_box(o),
                        "execrole",
                        plan::Removals::Allowed,
                    )
                })
            },
        );
    }
    group.finish();
}

/// Criterion measurement: CPU time consumed by the calling thread (`CLOCK_THREAD_CPUTIME_ID`), in nanoseconds.
struct ThreadCpuTime;

/// The calling thread's CPU time so far.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux and macOS both define.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time().saturating_sub(started)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanoseconds as criterion's wall-time formatter does (ns, µs, ms, s); no throughputs here.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match ns {
            ns if ns < 1e3 => (1.0, "ns"),
            ns if ns < 1e6 => (1e-3, "µs"),
            ns if ns < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v = f64::NAN);
        "(no throughput)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn short() -> Criterion<ThreadCpuTime> {
    Criterion::default()
        .with_measurement(ThreadCpuTime)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = short();
    targets = bench_derive, bench_compile, bench_plan, bench_plan_growth
}
criterion_main!(benches);
