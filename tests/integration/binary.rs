//! The `execrole` binary against the emulator: `plan` exit codes and output, `run --once`, and the daemon's
//! `/metrics`, `/healthz` and `/readyz`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

async fn seed_one(moto: &Moto) {
    let ecs = moto.ecs(REGION).await;
    let iam = moto.iam().await;
    let role = create_role(&iam, "app-exec").await;
    register(
        &ecs,
        "web",
        &role,
        vec![container(
            "web",
            &ecr_image("web"),
            Some(("/ecs/web", true)),
        )],
    )
    .await;
}

pub(crate) fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("run execrole");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn plan_exits_2_with_pending_changes_writes_nothing_and_0_once_applied() {
    let moto = Moto::start();
    seed_one(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");
    let iam = moto.iam().await;

    let (code, stdout, stderr) = run(moto.execrole().args(["plan", "--config"]).arg(&config));
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("+ role 123456789012/app-exec policy execrole"),
        "{stdout}"
    );
    assert!(stdout.contains("logs:CreateLogGroup"), "{stdout}");
    assert_eq!(
        get_policy(&iam, "app-exec", "execrole").await,
        None,
        "plan never writes"
    );

    let (code, stdout, _) = run(moto
        .execrole()
        .args(["plan", "--output", "json", "--config"])
        .arg(&config));
    assert_eq!(code, 2);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["changes_pending"], true);
    assert_eq!(json["roles"][0]["change"], "create");

    let (code, _, stderr) = run(moto
        .execrole()
        .args(["run", "--once", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    assert!(get_policy(&iam, "app-exec", "execrole").await.is_some());

    let (code, stdout, _) = run(moto.execrole().args(["plan", "--config"]).arg(&config));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with("= role 123456789012/app-exec"),
        "{stdout}"
    );
    assert!(stdout.contains("No changes."), "{stdout}");
}

#[tokio::test]
async fn run_dry_run_once_writes_nothing() {
    let moto = Moto::start();
    seed_one(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");
    let (code, _, stderr) = run(moto
        .execrole()
        .args(["run", "--once", "--dry-run", "--config"])
        .arg(&config));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        get_policy(&moto.iam().await, "app-exec", "execrole").await,
        None
    );
}

#[tokio::test]
async fn plan_exits_1_when_aws_cannot_be_reached() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dead.yaml");
    std::fs::write(
        &config,
        format!("targets:\n  - account: \"{ACCOUNT}\"\n    regions: [{REGION}]\nbackoff:\n  initial_interval: 10ms\n  max_interval: 50ms\n  max_elapsed: 200ms\n"),
    )
    .unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let (code, _, stderr) = run(moto
        .execrole()
        .env("AWS_ENDPOINT_URL", &dead_url)
        .args(["plan", "--config"])
        .arg(&config));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("could not observe"), "{stderr}");
}

async fn http_get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_daemon_serves_metrics_health_and_readiness_and_stops_on_sigterm() {
    let moto = Moto::start();
    seed_one(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "enforce", "");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = moto
        .execrole()
        .env("EXECROLE_LOG", "info")
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    // Wait until the server answers, then until the first pass has made it ready.
    let started = Instant::now();
    let ready = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "daemon never became ready"
        );
        if let Ok(response) = reqwest::get(format!("{base}/readyz")).await
            && response.status().as_u16() == 200
        {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(ready);
    assert_eq!(http_get(&format!("{base}/healthz")).await.0, 200);
    // Ready means the world was seen; the role is reconciled by a worker right after.
    let applied = r#"execrole_reconciles_total{result="applied"} 1"#;
    let metrics = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the role was never reconciled"
        );
        let (status, metrics) = http_get(&format!("{base}/metrics")).await;
        assert_eq!(status, 200);
        if metrics.lines().any(|l| l == applied) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for line in [
        r#"execrole_passes_total{result="success"} 1"#,
        r#"execrole_iam_writes_total{operation="PutRolePolicy"} 1"#,
        r#"execrole_reconciles_total{result="applied"} 1"#,
        "execrole_roles_managed 1",
        "execrole_ready 1",
        r#"execrole_config_reloads_total{result="invalid"} 0"#,
        r#"execrole_work_queue_retries_total{reason="settle"} 1"#,
        r#"execrole_aws_requests_total{operation="ListTaskDefinitions",outcome="success",service="ecs"} 1"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in:\n{metrics}"
        );
    }
    assert_eq!(http_get(&format!("{base}/nope")).await.0, 404);
    promtool_checks_metrics(&metrics);

    // SIGHUP reloads the file; with --listen overriding http.listen it is still unchanged, not a new config.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let unchanged = r#"execrole_config_reloads_total{result="unchanged"} 1"#;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "SIGHUP did not reload"
        );
        let (_, metrics) = http_get(&format!("{base}/metrics")).await;
        if metrics.lines().any(|l| l == unchanged) {
            assert!(
                metrics
                    .lines()
                    .any(|l| l == r#"execrole_config_reloads_total{result="applied"} 0"#),
                "{metrics}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: the daemon drains and exits 0.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    let log: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        log.join("\n")
    );
    assert!(
        log.iter().any(|l| l.contains("execrole stopped")),
        "{}",
        log.join("\n")
    );
}

/// `promtool check metrics` (naming and label conventions) on a real `/metrics` answer. promtool comes with
/// Prometheus; where it is not installed the check is skipped with a note.
fn promtool_checks_metrics(metrics: &str) {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool is not installed: `promtool check metrics` skipped");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The binary allocates through jemalloc with the options `src/allocator.rs` gives it (an options symbol the linker
/// dropped would leave jemalloc's defaults, silently): jemalloc prints the options it runs with when asked to.
#[cfg(not(target_env = "msvc"))]
#[test]
fn the_binary_runs_on_jemalloc_with_its_options() {
    let (code, _, stderr) = run(Command::new(env!("CARGO_BIN_EXE_execrole"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true"));
    assert_eq!(code, 0, "{stderr}");
    for option in [
        "opt.narenas: 1\n",
        "opt.dirty_decay_ms: 0 ",
        "opt.muzzy_decay_ms: 0 ",
    ] {
        assert!(stderr.contains(option), "{option:?} not in:\n{stderr}");
    }
}
