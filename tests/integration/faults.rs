//! Crashes and faults (issue 13, item 4): the fault-injecting proxy's answers reach execrole classified as AWS's
//! would be; the real `execrole run`, behind the proxy with about half of all requests failing, is killed with
//! SIGKILL at seeded random moments and restarted, and still converges without touching foreign policies or
//! leaving a role in error; and a spill policy whose `CreatePolicy` answer was lost (as with a crash between the
//! spill writes) is adopted on the next pass.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use execrole::metrics::{IAM_WRITE_OPERATIONS, Metrics};

use crate::proxy::{FaultRates, Outcome, Proxy, SplitMix64, Targeted};
use crate::support::*;

/// Most of what the project's independent checks inject: 45 % of requests fail, every kind of fault included.
const HEAVY: FaultRates = FaultRates {
    throttle: 12,
    internal_error: 8,
    unavailable: 8,
    reset: 8,
    lost_response: 9,
};

/// The seed of the kill test: the proxy's decisions and the kill moments.
const SEED: u64 = 0x13_0004;

fn targeted(operation: &str, nth: u64, outcome: Outcome) -> Targeted {
    Targeted {
        operation: operation.into(),
        nth,
        outcome,
    }
}

#[tokio::test]
async fn the_proxys_faults_reach_execrole_classified_as_aws_would_send_them() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let role = create_role(&iam, "app-exec").await;
    register(
        &ecs,
        "web",
        &role,
        vec![container("web", &ecr_image("web"), None)],
    )
    .await;
    let proxy = Proxy::start_with(
        &moto.endpoint,
        FaultRates::NONE,
        vec![
            targeted("GetRole", 1, Outcome::Throttled),
            targeted("ListTaskDefinitions", 1, Outcome::Throttled),
            targeted("ListRolePolicies", 1, Outcome::InternalError),
            targeted("GetRolePolicy", 1, Outcome::Unavailable),
            targeted("DescribeTaskDefinition", 1, Outcome::Reset),
            targeted("PutRolePolicy", 1, Outcome::LostResponse),
        ],
        1,
    );
    let metrics = Arc::new(Metrics::new());
    let factory = factory_at(&proxy.endpoint, metrics.clone()).await;
    let (regions, proxied_iam, _) = factory.clients(&target()).await;
    let ecs_api = &regions[0].1;

    // Every fault is retried (so classified retryable), and the retry gets moto's answer.
    let page = ecs_api.list_task_definitions_page(None).await.unwrap();
    ecs_api
        .describe_task_definition(&page.arns[0])
        .await
        .unwrap();
    assert!(proxied_iam.get_role("app-exec").await.unwrap().is_some());
    assert!(
        proxied_iam
            .list_role_policies("app-exec")
            .await
            .unwrap()
            .is_empty()
    );
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:CreateLogStream","Resource":"*"}]}"#;
    proxied_iam
        .put_role_policy("app-exec", "execrole", document)
        .await
        .unwrap();
    assert!(
        proxied_iam
            .get_role_policy("app-exec", "execrole")
            .await
            .unwrap()
            .is_some()
    );

    // The throttles, in both protocols' shapes, are seen as throttles; the rest as retryable errors.
    for (service, operation, outcome) in [
        ("iam", "GetRole", "throttled"),
        ("ecs", "ListTaskDefinitions", "throttled"),
        ("iam", "ListRolePolicies", "error"),
        ("iam", "GetRolePolicy", "error"),
        ("ecs", "DescribeTaskDefinition", "error"),
        ("iam", "PutRolePolicy", "error"),
    ] {
        assert_eq!(
            metrics.aws_requests(service, operation, outcome),
            1,
            "{operation} {outcome}"
        );
        assert_eq!(
            metrics.aws_requests(service, operation, "success"),
            1,
            "{operation}"
        );
    }
    let counts = proxy.counts();
    assert_eq!(counts.requests("PutRolePolicy"), 2);
    assert_eq!(
        counts.reached_moto("PutRolePolicy"),
        2,
        "a lost response's call happened"
    );
    assert_eq!(
        counts.reached_moto("GetRole"),
        1,
        "a throttled call did not"
    );
    assert_eq!(counts.faults(), 6, "{counts:?}");
}

/// The roles of the kill test: each with two families, every container with an image and a log group.
const ROLES: [&str; 5] = ["web", "api", "worker", "batch", "cron"];

async fn seed_estate(iam: &aws_sdk_iam::Client, ecs: &aws_sdk_ecs::Client) -> String {
    for name in ROLES {
        let role = create_role(iam, &format!("{name}-exec")).await;
        for family in [name.to_string(), format!("{name}-canary")] {
            let containers = (0..2)
                .map(|c| {
                    container(
                        &format!("c{c}"),
                        &ecr_image(&format!("{family}/c{c}")),
                        Some((&format!("/ecs/{family}"), c == 0)),
                    )
                })
                .collect();
            register(ecs, &family, &role, containers).await;
        }
    }
    // Foreign: a team's inline policy and a team's managed policy, attached. Neither may ever change.
    put_policy(iam, "web-exec", "team-extra", FOREIGN_INLINE).await;
    let arn = iam
        .create_policy()
        .policy_name("team-managed")
        .policy_document(FOREIGN_MANAGED)
        .send()
        .await
        .unwrap()
        .policy()
        .and_then(|p| p.arn())
        .unwrap()
        .to_string();
    iam.attach_role_policy()
        .role_name("api-exec")
        .policy_arn(&arn)
        .send()
        .await
        .unwrap();
    // Stale: an owned policy granting what nothing needs any more, to be pruned.
    put_policy(iam, "worker-exec", "execrole", STALE_OWNED).await;
    arn
}

const FOREIGN_INLINE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::team-bucket/*"}]}"#;
const FOREIGN_MANAGED: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sqs:SendMessage"],"Resource":"arn:aws:sqs:us-east-1:123456789012:team-queue"}]}"#;
const STALE_OWNED: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameters","Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/gone"}]}"#;

/// Everything foreign, as IAM returns it: compared byte for byte before and after.
async fn foreign_state(iam: &aws_sdk_iam::Client, arn: &str) -> Vec<String> {
    let mut state = vec![get_policy(iam, "web-exec", "team-extra").await.unwrap()];
    let policy = iam.get_policy().policy_arn(arn).send().await.unwrap();
    let policy = policy.policy().unwrap();
    state.push(format!(
        "{:?} {:?} {:?} {:?}",
        policy.default_version_id(),
        policy.attachment_count(),
        policy.path(),
        policy.tags()
    ));
    let versions = iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .unwrap();
    for version in versions.versions() {
        let full = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(version.version_id().unwrap())
            .send()
            .await
            .unwrap();
        let full = full.policy_version().unwrap();
        state.push(format!(
            "{:?} {:?} {:?}",
            full.version_id(),
            full.is_default_version(),
            full.document()
        ));
    }
    for name in ROLES {
        let role = format!("{name}-exec");
        let inline = iam
            .list_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        let attached = iam
            .list_attached_role_policies()
            .role_name(&role)
            .send()
            .await
            .unwrap();
        let foreign_inline: Vec<_> = inline
            .policy_names()
            .iter()
            .filter(|n| n.as_str() != "execrole")
            .collect();
        let attached: Vec<_> = attached
            .attached_policies()
            .iter()
            .map(|p| p.policy_arn())
            .collect();
        state.push(format!("{role}: {foreign_inline:?} {attached:?}"));
    }
    state
}

/// `execrole run` (the daemon) through `endpoint`, its log in `log`.
fn start_daemon(moto: &Moto, endpoint: &str, config: &Path, log: &Path) -> Child {
    moto.execrole()
        .env("AWS_ENDPOINT_URL", endpoint)
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("a log file"))
        .spawn()
        .expect("start execrole run")
}

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

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Give the next start work to do: `round`'s role gets its owned policy overwritten with a stale grant, and the
/// role after it a new revision with a new image.
async fn drift(iam: &aws_sdk_iam::Client, ecs: &aws_sdk_ecs::Client, round: usize) {
    let stale = ROLES[round % ROLES.len()];
    put_policy(iam, &format!("{stale}-exec"), "execrole", STALE_OWNED).await;
    let grown = ROLES[(round + 1) % ROLES.len()];
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/{grown}-exec");
    let image = ecr_image(&format!("{grown}/round-{round}"));
    register(ecs, grown, &role_arn, vec![container("c0", &image, None)]).await;
}

/// Start the daemon `kills` times on a drifted estate, SIGKILL each after a seeded random delay; each must still
/// be running then.
async fn kill_repeatedly(moto: &Moto, proxy: &Proxy, config: &Path, logs: &Path, kills: usize) {
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let mut rng = SplitMix64::new(SEED);
    for round in 0..kills {
        drift(&iam, &ecs, round).await;
        let log = logs.join(format!("killed-{round}.log"));
        let mut daemon = start_daemon(moto, &proxy.endpoint, config, &log);
        // The kill moment is the point of the test, not a wait for something that could be polled.
        let delay = Duration::from_millis(rng.between(200..3_000));
        tokio::time::sleep(delay).await;
        let early = daemon.try_wait().expect("poll the daemon");
        assert!(
            early.is_none(),
            "round {round}: the daemon exited by itself ({early:?}) before its kill at {delay:?}; log:\n{}",
            log_text(&log)
        );
        daemon.kill().expect("SIGKILL");
        daemon.wait().expect("reap the daemon");
    }
}

/// Poll `execrole plan` straight against moto (no faults) until it finds nothing to change.
fn wait_until_converged(moto: &Moto, config: &Path, log: &Path, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (code, output) = finish(moto.execrole().args(["plan", "--config"]).arg(config));
        match code {
            0 => return started.elapsed(),
            2 => {}
            _ => panic!("plan against moto failed ({code}):\n{output}"),
        }
        assert!(
            started.elapsed() < limit,
            "not converged after {limit:?}; last plan:\n{output}\ndaemon log:\n{}",
            log_text(log)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// SIGTERM the daemon and wait (bounded) for it to drain and exit.
fn stop(mut daemon: Child, log: &Path) {
    let pid = daemon.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the daemon did not stop on SIGTERM; log:\n{}",
            log_text(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit {status:?}; log:\n{}", log_text(log));
}

/// A last `run --once` through a proxy that only counts: it must succeed and write nothing.
fn assert_settled(moto: &Moto, config: &Path) {
    let counter = Proxy::start(&moto.endpoint, FaultRates::NONE, 0);
    let (code, output) = finish(
        moto.execrole()
            .env("AWS_ENDPOINT_URL", &counter.endpoint)
            .args(["run", "--once", "--config"])
            .arg(config),
    );
    assert_eq!(code, 0, "a role is left in error:\n{output}");
    let counts = counter.counts();
    // The roles were read (observe: auto, the default: one bulk read of the account, which is one page here,
    // and no per-role read).
    assert_eq!(
        counts.requests("GetAccountAuthorizationDetails"),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.requests("GetRole"), 0, "{counts:?}");
    for write in IAM_WRITE_OPERATIONS {
        assert_eq!(
            counts.requests(write),
            0,
            "{write} after convergence: {counts:?}"
        );
    }
}

#[tokio::test]
async fn sigkilled_at_random_moments_under_faults_it_converges_and_leaves_foreign_policies_alone() {
    let started = Instant::now();
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    let foreign_arn = seed_estate(&iam, &ecs).await;
    let before = foreign_state(&iam, &foreign_arn).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(
        dir.path(),
        "enforce",
        "resync_interval: 2s\nsettle_window: 1s\n",
    );
    let proxy = Proxy::start(&moto.endpoint, HEAVY, SEED);

    const KILLS: usize = 6;
    kill_repeatedly(&moto, &proxy, &config, dir.path(), KILLS).await;
    let killed = proxy.counts();
    drift(&iam, &ecs, KILLS).await;
    let log: PathBuf = dir.path().join("last.log");
    let daemon = start_daemon(&moto, &proxy.endpoint, &config, &log);
    let took = wait_until_converged(&moto, &config, &log, Duration::from_secs(180));
    stop(daemon, &log);

    assert_settled(&moto, &config);
    assert_eq!(
        foreign_state(&iam, &foreign_arn).await,
        before,
        "foreign policies changed"
    );
    let counts = proxy.counts();
    for outcome in [
        Outcome::Throttled,
        Outcome::InternalError,
        Outcome::Unavailable,
        Outcome::Reset,
        Outcome::LostResponse,
    ] {
        assert!(counts.outcome(outcome) > 0, "no {outcome:?}: {counts:?}");
    }
    assert!(
        killed.reached_moto("PutRolePolicy") > 0,
        "the killed runs wrote something before dying: {killed:?}"
    );
    eprintln!(
        "kill test: {} requests, {} faults {:?}; before the last start {} requests, {} faults; converged {took:?} after the last start; wall {:?}",
        counts.total(),
        counts.faults(),
        counts.by_outcome(),
        killed.total(),
        killed.faults(),
        started.elapsed()
    );
}

/// The customer managed policies tagged as execrole's that are attached to no role.
async fn unattached_owned_policies(iam: &aws_sdk_iam::Client) -> Vec<String> {
    let listed = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    let mut orphans = Vec::new();
    for policy in listed.policies() {
        let arn = policy.arn().unwrap();
        let meta = iam.get_policy().policy_arn(arn).send().await.unwrap();
        let meta = meta.policy().unwrap();
        let owned = meta
            .tags()
            .iter()
            .any(|t| t.key() == "managed-by" && t.value() == "execrole");
        if owned && meta.attachment_count() == Some(0) {
            orphans.push(arn.to_string());
        }
    }
    orphans
}

#[tokio::test]
async fn a_spill_policy_whose_create_answer_was_lost_is_adopted_on_the_next_pass() {
    let moto = Moto::start();
    let (iam, ecs) = (moto.iam().await, moto.ecs(REGION).await);
    seed_spilling_role(&iam, &ecs).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");

    // The first CreatePolicy happens on moto but its answer never arrives: as if execrole died between the spill
    // writes (CreatePolicy, then AttachRolePolicy).
    let proxy = Proxy::start_with(
        &moto.endpoint,
        FaultRates::NONE,
        vec![targeted("CreatePolicy", 1, Outcome::LostResponse)],
        0,
    );
    let (_, first) = finish(
        moto.execrole()
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .args(["run", "--once", "--config"])
            .arg(&config),
    );
    assert_eq!(
        proxy.counts().outcome(Outcome::LostResponse),
        1,
        "the role spilled: {first}"
    );

    // Two clean passes: the role converges, and no spill policy is left unattached.
    finish(
        moto.execrole()
            .args(["run", "--once", "--config"])
            .arg(&config),
    );
    let (code, output) = finish(
        moto.execrole()
            .args(["run", "--once", "--config"])
            .arg(&config),
    );
    assert_eq!(code, 0, "the role is still in error:\n{output}");
    let (code, output) = finish(moto.execrole().args(["plan", "--config"]).arg(&config));
    assert_eq!(code, 0, "the role has not converged:\n{output}");
    assert_eq!(unattached_owned_policies(&iam).await, Vec::<String>::new());
}
