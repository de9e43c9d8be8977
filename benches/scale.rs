//! The scale benchmark: one account and Region in the local AWS emulator (moto on a free loopback port, as the
//! integration tests start it) seeded with a few hundred task-definition revisions, then three enforce passes of
//! the library's `Controller::pass`: pass 1 cold (describes everything, looks everything up, writes every role),
//! passes 2 and 3 steady state (nothing changed). For each pass: wall time, AWS requests by service and operation
//! (diffs of `execrole_aws_requests_total`), IAM writes, and the peak RSS of this process during the pass. Then the
//! minimum a steady-state pass needs and the ratio measured / minimum.
//!
//! It drives the library, never the `execrole` binary (the shared target directory may swap the binary under us).
//! Every AWS client reaches only 127.0.0.1: the seeding clients and the controller's factory come from the test
//! support module, which sets an explicit loopback endpoint, a Region and static dummy credentials, and this
//! process sets `AWS_EC2_METADATA_DISABLED=true` and empties the variables that could point the SDK elsewhere before
//! any client is built.
//!
//! `cargo bench --bench scale` (size: `EXECROLE_SCALE_REVISIONS` per account, default 300, in families of 5
//! revisions, one execution role per family). The Organization shape (issue 10) adds accounts reached through
//! `sts:AssumeRole` (moto maps the role's account): `EXECROLE_SCALE_ACCOUNTS` (default 1),
//! `EXECROLE_SCALE_UNRELATED_ROLES` (roles no task definition names, per account, default 0) and
//! `EXECROLE_SCALE_IAM_RATE` (the controller's IAM rate limit per second, default 1000). The passes keep what the
//! daemon keeps of each role (its outcome, not its plan); `EXECROLE_SCALE_PLANS=report` keeps every role's plan
//! for the pass report, as `run --once` and `plan` do. `cargo test --benches` runs this binary without `--bench`:
//! it then does nothing.

#[allow(dead_code)]
#[path = "../tests/integration/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use execrole::config::{Config, Mode};
use execrole::controller::{Controller, Health, Outcome, PassReport, PlanUse};
use execrole::metrics::Metrics;
use execrole::model::RoleKey;
use futures::StreamExt;
use prometheus::core::Collector;
use tokio_util::sync::CancellationToken;

use support::{ACCOUNT, Moto, REGION};

// The daemon's allocator and its options (src/main.rs), so that the memory figures are the daemon's.
#[cfg(not(target_env = "msvc"))]
execrole::use_jemalloc!();

/// Revisions per family (and per execution role).
const REVISIONS_PER_FAMILY: usize = 5;
/// ListTaskDefinitions page size (`maxResults`) the controller asks for; real ECS honours it, moto does not.
const PAGE_SIZE: usize = 100;
const TEAM_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Team","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-config/*"}]}"#;
const AWS_MANAGED_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";

/// Make sure no SDK client built later can look anywhere but the loopback endpoint it is given.
fn pin_environment() {
    // SAFETY: called first thing in `main`, before the tokio runtime or any other thread exists.
    unsafe {
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/dev/null");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", REGION);
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_ECS",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_KMS",
            "AWS_ENDPOINT_URL_SSM",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "AWS_ENDPOINT_URL_ECR",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ] {
            std::env::remove_var(var);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Seeding
// ---------------------------------------------------------------------------------------------------------------

/// What was seeded, for the minimum.
#[derive(Debug, Default)]
struct Seeded {
    accounts: usize,
    revisions: usize,
    roles: usize,
    /// Roles that no task definition names (the controller must not read them one by one).
    unrelated_roles: usize,
    /// Roles with a foreign inline policy (`team-extra`) beside ours.
    with_foreign_inline: usize,
    /// Roles with `AmazonECSTaskExecutionRolePolicy` attached.
    with_attached: usize,
    secrets: usize,
    parameters: usize,
}

/// The SDK clients used for seeding (all from the support module's loopback-only configuration).
struct Seeder {
    account: String,
    ecs: aws_sdk_ecs::Client,
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    kms_key: String,
}

impl Seeder {
    /// Clients acting in `account` (the default account directly, any other through `sts:AssumeRole`).
    async fn new(moto: &Moto, account: &str) -> Seeder {
        let sdk = if account == ACCOUNT {
            moto.sdk_config().await
        } else {
            moto.sdk_config_in(account).await
        };
        let kms = aws_sdk_kms::Client::new(&sdk);
        let key = kms
            .create_key()
            .description("execrole scale benchmark CMK")
            .send()
            .await
            .expect("create key");
        Seeder {
            account: account.to_string(),
            ecs: aws_sdk_ecs::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
            kms_key: key
                .key_metadata()
                .map(|m| m.arn().unwrap_or_default().to_string())
                .expect("key arn"),
        }
    }

    /// Family `i` with `revisions` revisions and its own execution role `svc-NNN-exec`:
    /// * every revision: an `app` container with a private ECR image and awslogs (`awslogs-create-group` on every
    ///   third family);
    /// * from revision 3 on, a `worker` container with a second repository and the same log group;
    /// * every third family: a Secrets Manager secret (under the CMK on every sixth family, else the default key);
    /// * every fourth family (offset 1): an SSM SecureString parameter by bare name (under the CMK on every
    ///   eighth family);
    /// * every fifth family: a public-image sidecar that needs nothing;
    /// * every tenth role has a foreign inline policy, every seventh has the AWS managed policy attached.
    async fn family(&self, i: usize, revisions: usize) -> Seeded {
        let mut seeded = Seeded {
            accounts: 0,
            revisions,
            roles: 1,
            ..Seeded::default()
        };
        let family = format!("svc-{i:03}");
        let role_name = format!("{family}-exec");
        let role_arn = support::create_role(&self.iam, &role_name).await;
        if i.is_multiple_of(10) {
            support::put_policy(&self.iam, &role_name, "team-extra", TEAM_POLICY).await;
            seeded.with_foreign_inline = 1;
        }
        if i.is_multiple_of(7) {
            self.iam
                .attach_role_policy()
                .role_name(&role_name)
                .policy_arn(AWS_MANAGED_POLICY)
                .send()
                .await
                .expect("attach the AWS managed policy");
            seeded.with_attached = 1;
        }
        let mut secrets: Vec<aws_sdk_ecs::types::Secret> = Vec::new();
        if i.is_multiple_of(3) {
            let out = self
                .secrets
                .create_secret()
                .name(format!("{family}/db"))
                .secret_string("not-read-by-execrole")
                .set_kms_key_id((i.is_multiple_of(6)).then(|| self.kms_key.clone()))
                .send()
                .await
                .expect("create secret");
            secrets.push(
                aws_sdk_ecs::types::Secret::builder()
                    .name("DB_PASSWORD")
                    .value_from(format!("{}:password::", out.arn().expect("secret arn")))
                    .build()
                    .expect("secret"),
            );
            seeded.secrets = 1;
        }
        if i % 4 == 1 {
            let name = format!("/{family}/api-key");
            self.ssm
                .put_parameter()
                .name(&name)
                .value("not-read-by-execrole")
                .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                .set_key_id((i % 8 == 1).then(|| self.kms_key.clone()))
                .send()
                .await
                .expect("put parameter");
            secrets.push(
                aws_sdk_ecs::types::Secret::builder()
                    .name("API_KEY")
                    .value_from(name)
                    .build()
                    .expect("secret"),
            );
            seeded.parameters = 1;
        }
        let group = format!("/ecs/{family}");
        let account = &self.account;
        for revision in 1..=revisions {
            let image = format!(
                "{account}.dkr.ecr.{REGION}.amazonaws.com/team-{}/{family}:1.{revision}",
                i % 4
            );
            let mut app = support::container("app", &image, Some((&group, i.is_multiple_of(3))));
            app.secrets = (!secrets.is_empty()).then(|| secrets.clone());
            let mut containers = vec![app];
            if revision >= 3 {
                let worker = format!(
                    "{account}.dkr.ecr.{REGION}.amazonaws.com/team-{}/{family}-worker:1.{revision}",
                    i % 4
                );
                containers.push(support::container("worker", &worker, Some((&group, false))));
            }
            if i.is_multiple_of(5) {
                containers.push(support::container(
                    "otel",
                    "public.ecr.aws/aws-observability/aws-otel-collector:latest",
                    None,
                ));
            }
            support::register(&self.ecs, &family, &role_arn, containers).await;
        }
        seeded
    }
}

/// The size of the estate to seed.
#[derive(Debug, Clone, Copy)]
struct Shape {
    accounts: usize,
    /// Revisions per account.
    revisions: usize,
    /// Roles per account that no task definition names.
    unrelated_roles: usize,
}

impl Shape {
    fn from_env() -> Shape {
        let number = |name: &str, default: usize| -> usize {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
                .unwrap_or(default)
        };
        let shape = Shape {
            accounts: number("EXECROLE_SCALE_ACCOUNTS", 1),
            revisions: number("EXECROLE_SCALE_REVISIONS", 300),
            unrelated_roles: number("EXECROLE_SCALE_UNRELATED_ROLES", 0),
        };
        assert!(
            shape.revisions > 0,
            "EXECROLE_SCALE_REVISIONS must be at least 1"
        );
        assert!(
            (1..=900).contains(&shape.accounts),
            "EXECROLE_SCALE_ACCOUNTS must be 1 to 900"
        );
        shape
    }

    /// The account ids: the emulator's default account first, then `100000000001`, `100000000002`, ….
    fn accounts(&self) -> Vec<String> {
        (0..self.accounts)
            .map(|k| match k {
                0 => ACCOUNT.to_string(),
                k => format!("{:012}", 100_000_000_000u64 + k as u64),
            })
            .collect()
    }
}

/// Seed every account of `shape`: families of five revisions, each with its own role, eight families at a time,
/// and the unrelated roles.
async fn seed(moto: &Moto, shape: Shape) -> Seeded {
    let mut seeders = Vec::new();
    for account in shape.accounts() {
        seeders.push(Seeder::new(moto, &account).await);
    }
    let revisions = shape.revisions;
    let families = revisions.div_ceil(REVISIONS_PER_FAMILY);
    let work = seeders
        .iter()
        .flat_map(|seeder| (0..families).map(move |i| (seeder, i)));
    let parts: Vec<Seeded> = futures::stream::iter(work)
        .map(|(seeder, i)| async move {
            let count = REVISIONS_PER_FAMILY.min(revisions - i * REVISIONS_PER_FAMILY);
            seeder.family(i, count).await
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let unrelated = seeders
        .iter()
        .flat_map(|seeder| (0..shape.unrelated_roles).map(move |j| (seeder, j)));
    futures::stream::iter(unrelated)
        .for_each_concurrent(8, |(seeder, j)| async move {
            support::create_role(&seeder.iam, &format!("unrelated-{j:04}")).await;
        })
        .await;
    let mut total = parts.into_iter().fold(Seeded::default(), |a, b| Seeded {
        accounts: 0,
        revisions: a.revisions + b.revisions,
        roles: a.roles + b.roles,
        unrelated_roles: 0,
        with_foreign_inline: a.with_foreign_inline + b.with_foreign_inline,
        with_attached: a.with_attached + b.with_attached,
        secrets: a.secrets + b.secrets,
        parameters: a.parameters + b.parameters,
    });
    total.accounts = shape.accounts;
    total.unrelated_roles = shape.accounts * shape.unrelated_roles;
    total
}

// ---------------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------------

/// `execrole_aws_requests_total` as (service, operation, outcome) → count.
type Requests = BTreeMap<(String, String, String), u64>;

fn requests(metrics: &Metrics) -> Requests {
    let mut out = Requests::new();
    for family in metrics.aws_requests.collect() {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let value = metric.get_counter().value() as u64;
            out.insert(
                (label("service"), label("operation"), label("outcome")),
                value,
            );
        }
    }
    out
}

fn difference(after: &Requests, before: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// A line of `/proc/self/status` in kB.
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The RSS now, split into anonymous memory (the heap, stacks) and file-backed pages (the program's code and
/// data as far as it has run): code a pass runs for the first time counts too.
fn print_rss_parts(name: &str) {
    let mib = |field| status_kb(field).map_or(f64::NAN, |kb| kb as f64 / 1024.0);
    println!(
        "{name}: RSS {:.1} MiB: anonymous {:.1} MiB, file-backed {:.1} MiB",
        mib("VmRSS:"),
        mib("RssAnon:"),
        mib("RssFile:")
    );
}

/// Reset the peak RSS (VmHWM) to the current RSS, so each pass reports its own peak. Linux ≥ 4.0.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// What the figures need of a pass report. The report itself is dropped as soon as the pass ends, as the daemon
/// drops it, so that the next pass's peak RSS is the controller's and not this benchmark's.
struct PassSummary {
    outcomes: BTreeMap<Outcome, usize>,
    success: bool,
    observe_errors: Vec<String>,
    role_errors: Vec<(RoleKey, String)>,
}

impl PassSummary {
    fn of(report: PassReport) -> PassSummary {
        PassSummary {
            success: report.is_success(),
            outcomes: report.outcomes,
            observe_errors: report.observe_errors,
            role_errors: report.plan.errors,
        }
    }
}

/// Whether the passes keep every role's plan for their report (`EXECROLE_SCALE_PLANS=report`, as `run --once`
/// and `plan` do) or only outcomes (the default, as the daemon does).
fn plan_use() -> PlanUse {
    match std::env::var("EXECROLE_SCALE_PLANS").as_deref() {
        Ok("report") => PlanUse::Report,
        Ok("count") | Err(_) => PlanUse::CountOnly,
        Ok(other) => panic!("EXECROLE_SCALE_PLANS is `report` or `count`, not `{other}`"),
    }
}

/// One pass's figures.
struct PassFigures {
    name: String,
    wall: Duration,
    report: PassSummary,
    requests: Requests,
    iam_writes: u64,
    describes: u64,
    lookups: BTreeMap<String, u64>,
    peak_rss_kb: Option<u64>,
    peak_is_per_pass: bool,
}

fn lookups(metrics: &Metrics) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for family in metrics.lookups.collect() {
        for metric in family.get_metric() {
            let labels: Vec<String> = metric
                .get_label()
                .iter()
                .map(|l| l.value().to_string())
                .collect();
            out.insert(labels.join("/"), metric.get_counter().value() as u64);
        }
    }
    out
}

async fn measured_pass(name: String, controller: &Controller, metrics: &Metrics) -> PassFigures {
    let before = requests(metrics);
    let writes_before = metrics.iam_writes_total();
    let misses_before = metrics.cache_misses.get();
    let lookups_before = lookups(metrics);
    let peak_is_per_pass = reset_peak_rss();
    let started = Instant::now();
    let report = controller
        .pass_with(Mode::Enforce, plan_use(), &CancellationToken::new())
        .await;
    let wall = started.elapsed();
    let report = PassSummary::of(report);
    let peak_rss_kb = status_kb("VmHWM:");
    let lookups_after = lookups(metrics);
    PassFigures {
        name,
        wall,
        report,
        requests: difference(&requests(metrics), &before),
        iam_writes: metrics.iam_writes_total() - writes_before,
        describes: metrics.cache_misses.get() - misses_before,
        lookups: lookups_after
            .iter()
            .map(|(k, v)| (k.clone(), v - lookups_before.get(k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect(),
        peak_rss_kb,
        peak_is_per_pass,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The minimum
// ---------------------------------------------------------------------------------------------------------------

/// The fewest requests a steady-state pass can make, by (service, operation), and the real-AWS list page count.
struct Minimum {
    by_operation: BTreeMap<(String, String), u64>,
    list_pages_real_aws: u64,
    /// `GetPolicy` per attached managed policy: not part of the minimum in the brief, but documented as a cost of
    /// evaluating the role's other policies (docs/how-it-works.md, "What it costs in IAM calls").
    attached_get_policy: u64,
    /// With bulk observation: one `GetAccountAuthorizationDetails` page per account (moto never pages it) and one
    /// `ListTaskDefinitions` page per account and Region.
    bulk: u64,
}

impl Minimum {
    fn total(&self) -> u64 {
        self.by_operation.values().sum()
    }
}

fn minimum(seeded: &Seeded, regions: usize) -> Minimum {
    // Every seeded role exists; the ones with a foreign inline policy have one more.
    let roles = seeded.roles as u64;
    let other_inline = seeded.with_foreign_inline as u64;
    let key = |s: &str, o: &str| (s.to_string(), o.to_string());
    let mut by_operation = BTreeMap::new();
    // moto returns every ARN in one page whatever maxResults says.
    let lists = (seeded.accounts * regions) as u64;
    by_operation.insert(key("ecs", "ListTaskDefinitions"), lists);
    by_operation.insert(key("iam", "GetRole"), roles);
    by_operation.insert(key("iam", "ListRolePolicies"), roles);
    by_operation.insert(key("iam", "GetRolePolicy"), roles + other_inline);
    by_operation.insert(key("iam", "ListAttachedRolePolicies"), roles);
    Minimum {
        by_operation,
        list_pages_real_aws: lists
            * (seeded.revisions / seeded.accounts.max(1))
                .div_ceil(PAGE_SIZE)
                .max(1) as u64,
        attached_get_policy: seeded.with_attached as u64,
        bulk: lists + seeded.accounts as u64,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------------------------

fn by_operation(requests: &Requests) -> BTreeMap<(String, String), (u64, u64)> {
    // (service, operation) → (all outcomes, of which not success)
    let mut out: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for ((service, operation, outcome), count) in requests {
        let entry = out.entry((service.clone(), operation.clone())).or_default();
        entry.0 += count;
        if outcome != "success" {
            entry.1 += count;
        }
    }
    out
}

fn print_report(seeded: &Seeded, passes: &[PassFigures], minimum: &Minimum, seed_time: Duration) {
    println!();
    println!(
        "scale: {} account(s); {} revisions in {} families, {} execution roles ({} with a foreign inline policy, {} with an attached managed policy), {} unrelated roles, {} secrets, {} parameters; seeded in {:.1} s",
        seeded.accounts,
        seeded.revisions,
        seeded.roles,
        seeded.roles,
        seeded.with_foreign_inline,
        seeded.with_attached,
        seeded.unrelated_roles,
        seeded.secrets,
        seeded.parameters,
        seed_time.as_secs_f64()
    );
    println!();
    println!(
        "| pass | wall time | requests | IAM writes | describes | roles (outcomes) | peak RSS |"
    );
    println!("|---|---:|---:|---:|---:|---|---:|");
    for p in passes {
        let total: u64 = p.requests.values().sum();
        let outcomes: Vec<String> = p
            .report
            .outcomes
            .iter()
            .map(|(k, v)| format!("{} {v}", k.as_str()))
            .collect();
        let rss = p
            .peak_rss_kb
            .map(|kb| format!("{:.1} MiB", kb as f64 / 1024.0))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "| {} | {:.0} ms | {} | {} | {} | {} | {}{} |",
            p.name,
            p.wall.as_secs_f64() * 1000.0,
            total,
            p.iam_writes,
            p.describes,
            outcomes.join(", "),
            rss,
            if p.peak_is_per_pass {
                ""
            } else {
                " (process peak)"
            }
        );
    }
    println!();
    let columns: Vec<BTreeMap<(String, String), (u64, u64)>> =
        passes.iter().map(|p| by_operation(&p.requests)).collect();
    let mut operations: Vec<(String, String)> = columns
        .iter()
        .flat_map(|c| c.keys().cloned())
        .chain(minimum.by_operation.keys().cloned())
        .collect();
    operations.sort();
    operations.dedup();
    let header: Vec<&str> = passes.iter().map(|p| p.name.as_str()).collect();
    println!(
        "| service | operation | {} | steady-state minimum |",
        header.join(" | ")
    );
    println!(
        "|---|---|{}---:|",
        header.iter().map(|_| "---:|").collect::<String>()
    );
    for op in &operations {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match c.get(op) {
                None => "0".into(),
                Some((all, 0)) => all.to_string(),
                Some((all, not_ok)) => format!("{all} ({not_ok} not success)"),
            })
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            op.0,
            op.1,
            cells.join(" | "),
            minimum.by_operation.get(op).copied().unwrap_or(0)
        );
    }
    let totals: Vec<String> = passes
        .iter()
        .map(|p| p.requests.values().sum::<u64>().to_string())
        .collect();
    println!(
        "| **total** | | {} | {} |",
        totals.join(" | "),
        minimum.total()
    );
    println!();
    let min = minimum.total();
    for p in passes.iter().skip(1) {
        let total: u64 = p.requests.values().sum();
        println!(
            "{}: {} requests, minimum {} (moto: one ListTaskDefinitions page per Region), ratio {:.3}; \
             with the documented GetPolicy per attached managed policy ({}), ratio {:.3}",
            p.name,
            total,
            min,
            total as f64 / min as f64,
            minimum.attached_get_policy,
            total as f64 / (min + minimum.attached_get_policy) as f64,
        );
    }
    print_per_account(seeded, passes, minimum);
    let real_min = min - minimum.by_operation[&("ecs".into(), "ListTaskDefinitions".into())]
        + minimum.list_pages_real_aws;
    println!(
        "real AWS: ListTaskDefinitions takes ceil({} / {PAGE_SIZE}) = {} pages per Region, so the minimum is {} \
         ({} with the GetPolicy reads)",
        seeded.revisions,
        minimum.list_pages_real_aws,
        real_min,
        real_min + minimum.attached_get_policy
    );
    for p in passes {
        if !p.lookups.is_empty() {
            println!("{} look-ups: {:?}", p.name, p.lookups);
        }
        if !p.report.success {
            println!(
                "{}: NOT a success: observe errors {:?}, role errors {:?}",
                p.name, p.report.observe_errors, p.report.role_errors
            );
        }
    }
}

/// Requests per account and pass (every account has the same shape, so the total divided by the accounts), by
/// service, and the bulk-observation minimum.
fn print_per_account(seeded: &Seeded, passes: &[PassFigures], minimum: &Minimum) {
    let accounts = seeded.accounts.max(1) as f64;
    println!();
    println!(
        "| pass | requests per account | IAM per account | ECS per account | other per account |"
    );
    println!("|---|---:|---:|---:|---:|");
    for p in passes {
        let of = |service: Option<&str>| -> f64 {
            let count: u64 = p
                .requests
                .iter()
                .filter(|((s, _, _), _)| match service {
                    Some(wanted) => s == wanted,
                    None => s != "iam" && s != "ecs",
                })
                .map(|(_, v)| v)
                .sum();
            count as f64 / accounts
        };
        let total: u64 = p.requests.values().sum();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p.name,
            total as f64 / accounts,
            of(Some("iam")),
            of(Some("ecs")),
            of(None)
        );
    }
    println!();
    println!(
        "with bulk observation the steady-state minimum is {} requests ({} per account: one \
         GetAccountAuthorizationDetails page and one ListTaskDefinitions page per Region on moto)",
        minimum.bulk,
        minimum.bulk as f64 / accounts
    );
}

// ---------------------------------------------------------------------------------------------------------------

/// One target per account: the default account directly, every other one through a role to assume.
fn targets(shape: Shape) -> String {
    shape
        .accounts()
        .iter()
        .map(|account| {
            let assume = if account == ACCOUNT {
                String::new()
            } else {
                format!("\n    assume_role_arn: arn:aws:iam::{account}:role/execrole-target")
            };
            format!("  - account: \"{account}\"\n    regions: [{REGION}]{assume}\n")
        })
        .collect()
}

fn config(shape: Shape, iam_rate: u32) -> Config {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("scale.yaml");
    let writes = shape.accounts * shape.revisions;
    let text = format!(
        "mode: enforce
targets:
{targets}concurrency: 8
resync_interval: 1h
safety:
  max_roles_written_per_pass: {writes}
lookups:
  cache_ttl: 24h
  pull_through_cache: false
rate_limits:
  iam: {{per_second: {iam_rate}, burst: {iam_rate}}}
  ecs: {{per_second: 1000, burst: 1000}}
  other: {{per_second: 1000, burst: 1000}}
backoff:
  initial_interval: 50ms
  max_interval: 500ms
  max_elapsed: 5s
logging:
  format: text
  level: warn
",
        targets = targets(shape)
    );
    std::fs::write(&path, text).expect("write the config");
    Config::load(&path).expect("the scale config is valid")
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` (and `make test`, which tests all targets) does not.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale: skipped (a benchmark; run it with `cargo bench --bench scale`)");
        return;
    }
    pin_environment();
    let shape = Shape::from_env();
    let iam_rate: u32 = std::env::var("EXECROLE_SCALE_IAM_RATE")
        .ok()
        .map(|v| v.parse().expect("EXECROLE_SCALE_IAM_RATE is a number"))
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let moto = Moto::start();
        let started = Instant::now();
        let seeded = seed(&moto, shape).await;
        let seed_time = started.elapsed();

        let metrics = Arc::new(Metrics::new());
        let factory = moto.factory(metrics.clone()).await;
        let controller = Controller::new(
            config(shape, iam_rate),
            &factory,
            metrics.clone(),
            Arc::new(Health::default()),
        )
        .await;
        print_rss_parts("before pass 1 (after seeding and building the controller)");
        let mut passes = Vec::new();
        let count: usize = std::env::var("EXECROLE_SCALE_PASSES")
            .ok()
            .map(|v| v.parse().expect("EXECROLE_SCALE_PASSES is a number"))
            .unwrap_or(3);
        assert!(
            count >= 2,
            "EXECROLE_SCALE_PASSES must be at least 2 (a cold pass and a steady one)"
        );
        for n in 1..=count {
            let name = if n == 1 {
                "pass 1 (cold)".to_string()
            } else {
                format!("pass {n}")
            };
            passes.push(measured_pass(name.clone(), &controller, &metrics).await);
            print_rss_parts(&format!("end of {name}"));
        }
        let minimum = minimum(&seeded, 1);
        print_report(&seeded, &passes, &minimum, seed_time);
        let unwritten = passes[1..].iter().any(|p| p.iam_writes > 0);
        assert!(!unwritten, "a steady-state pass wrote to IAM");
        assert!(
            passes.iter().all(|p| p.report.success),
            "every pass observes everything and reconciles every role"
        );
    });
}
