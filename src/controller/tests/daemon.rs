//! The daemon (`Controller::run`) against the fakes on a paused tokio clock: resync with jitter, the settle
//! window after a write, per-role backoff that grows and resets, terminal errors retried at the resync, the
//! write cap per window, a failing target next to a healthy one, and config hot reload. No test sleeps on the
//! real clock: every `sleep` below advances the paused clock.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

const DAEMON: &str = r#"
mode: enforce
targets:
  - account: "123456789012"
    regions: [us-east-1]
resync_interval: 100s
resync_jitter: 0.1
settle_window: 7s
backoff:
  initial_interval: 1s
  max_interval: 64s
"#;

fn throttled(operation: &'static str) -> AwsError {
    AwsError::new("iam", operation, ErrorKind::Throttling, "Rate exceeded")
}

/// Run the daemon while `script` runs, then shut it down and wait for it to drain.
async fn with_daemon<F: std::future::Future<Output = ()>>(w: &World, script: F) {
    let shutdown = CancellationToken::new();
    let daemon = w
        .controller
        .run(shutdown.clone(), w.source.as_ref(), Arc::new(Notify::new()));
    let script = async {
        script.await;
        shutdown.cancel();
    };
    tokio::join!(daemon, script);
}

fn get_role_times(w: &World, role: &str) -> Vec<Instant> {
    w.iam
        .calls()
        .iter()
        .filter(|c| c.operation == "GetRole" && c.role == role)
        .map(|c| c.at)
        .collect()
}

fn web() -> FakeEcs {
    FakeEcs::default().with(task_definition(
        &td_arn("web", 1),
        "app-exec",
        vec![ecr_container("web")],
    ))
}

#[tokio::test(start_paused = true)]
async fn the_daemon_converges_then_resyncs_with_jitter_and_writes_nothing_more() {
    let w = World::new(DAEMON, web(), FakeIam::default().role("app-exec", &[])).await;
    let start = Instant::now();
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(1000)).await;
    })
    .await;

    assert_eq!(w.iam.count("PutRolePolicy"), 1, "{:?}", w.iam.calls());
    assert_eq!(
        w.iam.policy("app-exec", OWNED).as_deref().map(grants_of),
        Some(grant_set(&needs_of("web")))
    );
    let sweeps = w.ecs.list_times.lock().unwrap().clone();
    assert_eq!(sweeps[0], start, "the first sweep starts at once");
    let gaps: Vec<Duration> = sweeps.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(gaps.len() >= 8, "about ten resyncs in 1000 s: {gaps:?}");
    for gap in &gaps {
        assert!(
            *gap >= Duration::from_secs(90) && *gap <= Duration::from_secs(111),
            "a resync outside 100 s ± 10 %: {gaps:?}"
        );
    }
    assert!(
        gaps.iter().any(|g| *g != gaps[0]),
        "resyncs are jittered: {gaps:?}"
    );
    assert_eq!(
        w.metrics
            .roles_in_drift
            .with_label_values(&["missing"])
            .get(),
        0
    );
    assert!(w.health.is_ready());
    assert!(w.controller.is_idle());
}

#[tokio::test(start_paused = true)]
async fn after_a_write_the_role_is_judged_again_only_after_the_settle_window() {
    let w = World::new(DAEMON, web(), FakeIam::default().role("app-exec", &[])).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(50)).await;
    })
    .await;
    let put = w
        .iam
        .calls()
        .iter()
        .find(|c| c.operation == "PutRolePolicy")
        .map(|c| c.at)
        .expect("the role was written");
    let reads = get_role_times(&w, "app-exec");
    assert_eq!(reads.len(), 2, "one read to write, one re-check: {reads:?}");
    assert_eq!(
        reads[1] - put,
        Duration::from_secs(7),
        "re-checked after the settle window"
    );
    assert_eq!(w.iam.count("PutRolePolicy"), 1);
    assert_eq!(
        w.metrics
            .work_queue_retries
            .with_label_values(&["settle"])
            .get(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_sweep_inside_the_settle_window_does_not_judge_the_role_early() {
    // The resync (10 s) comes before the settle window (30 s) ends: the role still waits for the window.
    let yaml = DAEMON
        .replace("resync_interval: 100s", "resync_interval: 10s")
        .replace("resync_jitter: 0.1", "resync_jitter: 0.0")
        .replace("settle_window: 7s", "settle_window: 30s");
    let w = World::new(&yaml, web(), FakeIam::default().role("app-exec", &[])).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(35)).await;
    })
    .await;
    let reads = get_role_times(&w, "app-exec");
    // Resyncs at 10 s and 20 s ask for the role, but nothing reads it before the window ends.
    assert!(reads.len() >= 2, "{reads:?}");
    assert_eq!(reads[1] - reads[0], Duration::from_secs(30), "{reads:?}");
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_back_off_exponentially_and_success_resets_the_backoff() {
    let iam =
        FakeIam::default()
            .role("app-exec", &[])
            .fail("GetRole", "app-exec", throttled("GetRole"));
    // A long resync, so that every re-read below comes from the backoff.
    let yaml = DAEMON.replace("resync_interval: 100s", "resync_interval: 1h");
    let w = World::new(&yaml, web(), iam).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(200)).await;
        // The throttling ends: the next attempt succeeds and writes.
        w.iam.errors.lock().unwrap().clear();
        tokio::time::sleep(Duration::from_secs(200)).await;
        // And starts again: the backoff starts over from the initial interval.
        w.iam
            .errors
            .lock()
            .unwrap()
            .insert(("GetRole", "app-exec".into()), throttled("GetRole"));
        w.ecs.task_definitions.lock().unwrap().insert(
            td_arn("web", 2),
            task_definition(&td_arn("web", 2), "app-exec", vec![ecr_container("web2")]),
        );
        tokio::time::sleep(Duration::from_secs(3700)).await;
    })
    .await;

    let reads = get_role_times(&w, "app-exec");
    let gaps: Vec<f64> = reads
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    // Attempt n waits 2^n s (±50 %), up to 64 s: 1, 2, 4, 8, 16, 32, 64, 64 ...
    for (n, gap) in gaps.iter().take(6).enumerate() {
        let interval = 2f64.powi(n as i32);
        assert!(
            *gap >= interval * 0.5 && *gap <= interval * 1.5,
            "gap {n} is {gap} s, expected {interval} s ± 50 %: {gaps:?}"
        );
    }
    let throttled_stretch = gaps.iter().take_while(|g| **g < 1000.0);
    assert!(throttled_stretch.clone().count() >= 8, "{gaps:?}");
    assert!(
        throttled_stretch.clone().all(|g| *g <= 64.0 * 1.5),
        "capped at max_interval: {gaps:?}"
    );
    assert_eq!(
        w.iam.count("PutRolePolicy"),
        1,
        "written once the throttling ended"
    );
    assert!(
        w.metrics
            .work_queue_retries
            .with_label_values(&["backoff"])
            .get()
            >= 6
    );
    // After the reset, the first retry waits about the initial interval again.
    let restart = reads
        .iter()
        .position(|t| *t >= Instant::now() - Duration::from_secs(3700))
        .expect("reads after the throttling came back");
    let again: Vec<f64> = reads[restart..]
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    assert!(
        !again.is_empty() && again[0] <= 1.5,
        "backoff reset: {again:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn terminal_errors_are_retried_at_the_resync_interval_not_sooner() {
    let iam = FakeIam::default().role("app-exec", &[]).fail(
        "GetRole",
        "app-exec",
        denied("iam", "GetRole"),
    );
    let yaml = DAEMON.replace("resync_jitter: 0.1", "resync_jitter: 0.0");
    let w = World::new(&yaml, web(), iam).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(250)).await;
    })
    .await;
    let reads = get_role_times(&w, "app-exec");
    let gaps: Vec<Duration> = reads.windows(2).map(|p| p[1] - p[0]).collect();
    assert_eq!(
        gaps,
        vec![Duration::from_secs(100), Duration::from_secs(100)],
        "access denied is not hammered"
    );
    assert_eq!(
        w.metrics
            .work_queue_retries
            .with_label_values(&["backoff"])
            .get(),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn the_write_cap_holds_per_window_and_the_rest_wait_for_the_next() {
    let yaml = format!("{DAEMON}safety:\n  max_roles_written_per_pass: 1\n")
        .replace("resync_jitter: 0.1", "resync_jitter: 0.0");
    let mut ecs = FakeEcs::default();
    let mut iam = FakeIam::default();
    for family in ["a", "b", "c"] {
        ecs = ecs.with(task_definition(
            &td_arn(family, 1),
            &format!("{family}-exec"),
            vec![ecr_container(family)],
        ));
        iam = iam.role(&format!("{family}-exec"), &[]);
    }
    let w = World::new(&yaml, ecs, iam).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(
            w.iam.count("PutRolePolicy"),
            1,
            "one role in the first window"
        );
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(w.iam.count("PutRolePolicy"), 2, "one more in the second");
        tokio::time::sleep(Duration::from_secs(100)).await;
    })
    .await;
    assert_eq!(w.iam.count("PutRolePolicy"), 3);
    assert!(
        w.metrics
            .work_queue_retries
            .with_label_values(&["capped"])
            .get()
            >= 2
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_listing_is_retried_sooner_than_the_resync_and_readiness_follows_it() {
    let yaml = DAEMON.replace("resync_interval: 100s", "resync_interval: 1h");
    let w = World::new(&yaml, web(), FakeIam::default().role("app-exec", &[])).await;
    w.ecs.fail_listing(Some(AwsError::new(
        "ecs",
        "ListTaskDefinitions",
        ErrorKind::Server,
        "503",
    )));
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!w.health.is_ready(), "the world has not been seen");
        assert_eq!(w.iam.count("PutRolePolicy"), 0);
        w.ecs.fail_listing(None);
        tokio::time::sleep(Duration::from_secs(120)).await;
    })
    .await;
    assert!(w.health.is_ready());
    assert_eq!(w.iam.count("PutRolePolicy"), 1);
    let listings = w.ecs.list_times.lock().unwrap().len();
    assert!(
        listings >= 4,
        "retried with backoff, not at the 1 h resync: {listings}"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_bounds_the_roles_reconciled_at_once() {
    let yaml = format!("{DAEMON}concurrency: 2\n");
    let mut ecs = FakeEcs::default();
    let mut iam = FakeIam::default();
    for i in 0..6 {
        let family = format!("f{i}");
        ecs = ecs.with(task_definition(
            &td_arn(&family, 1),
            &format!("{family}-exec"),
            vec![ecr_container(&family)],
        ));
        iam = iam.role(&format!("{family}-exec"), &[]);
    }
    let w = World::new(&yaml, ecs, iam).await;
    let peak = AtomicUsize::new(0);
    with_daemon(&w, async {
        for _ in 0..2000 {
            let now = w.metrics.work_queue_in_flight.get() as usize;
            peak.fetch_max(now, Ordering::SeqCst);
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(w.iam.count("PutRolePolicy"), 6);
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("execrole.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(start_paused = true)]
async fn a_valid_config_change_is_applied_without_a_restart_and_an_invalid_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dry = DAEMON.replace("mode: enforce", "mode: dry-run") + "reload:\n  poll_interval: 1s\n";
    let path = write_config(&dir, &dry);
    let config = Config::load(&path).unwrap();
    let w = World::with_config(
        config,
        web(),
        FakeIam::default().role("app-exec", &[]),
        FakeFacts::default(),
    )
    .await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(w.iam.writes(), 0, "dry-run");
        assert_eq!(w.reconciles("pending"), 1);

        // An invalid file: refused, counted once, the old config stays.
        std::fs::write(&path, "mode: enforce\ntargets: []\n").unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            w.metrics
                .config_reloads
                .with_label_values(&["invalid"])
                .get(),
            1
        );
        assert_eq!(w.controller.config().mode, Mode::DryRun);
        assert_eq!(w.iam.writes(), 0);

        // A valid change: applied, and the new mode acts at once (the next generation sweeps first).
        std::fs::write(&path, dry.replace("mode: dry-run", "mode: enforce")).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            w.metrics
                .config_reloads
                .with_label_values(&["applied"])
                .get(),
            1
        );
        assert_eq!(w.controller.config().mode, Mode::Enforce);
        assert_eq!(w.iam.count("PutRolePolicy"), 1);
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_forced_dry_run_survives_a_reload_to_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let dry = DAEMON.replace("mode: enforce", "mode: dry-run");
    let path = write_config(&dir, &dry);
    let w = World::with_config(
        Config::load(&path).unwrap(),
        web(),
        FakeIam::default().role("app-exec", &[]),
        FakeFacts::default(),
    )
    .await;
    w.controller.force_dry_run();
    std::fs::write(&path, DAEMON).unwrap();
    assert!(matches!(
        w.controller.reload(w.source.as_ref()).await,
        ReloadOutcome::Applied
    ));
    assert!(matches!(
        w.controller.reload(w.source.as_ref()).await,
        ReloadOutcome::Unchanged
    ));
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    assert_eq!(w.iam.writes(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_daemon_counts_drift_but_keeps_no_plan_in_memory() {
    let dry = DAEMON.replace("mode: enforce", "mode: dry-run");
    let w = World::new(&dry, web(), FakeIam::default().role("app-exec", &[])).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(20)).await;
    })
    .await;
    assert_eq!(w.iam.writes(), 0);
    let missing = w.metrics.roles_in_drift.with_label_values(&["missing"]);
    assert_eq!(missing.get(), 1, "dry-run leaves the role's grants missing");
    let key = RoleKey {
        account: "123456789012".into(),
        name: "app-exec".into(),
    };
    let last = w.controller.ctx.store.take_last(&key).expect("reconciled");
    assert_eq!(last.outcome, Outcome::Pending);
    assert!(
        last.plan.is_none(),
        "the daemon keeps no plan: {:?}",
        last.plan
    );
}

/// A CloudTrail `RegisterTaskDefinition` record as EventBridge delivers it, by `principal` with `user_agent`.
fn register_event(family: &str, role: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": "0d5c7a3e-0000-4000-8000-000000000001",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "region": REGION,
        "detail": {
            "eventSource": "ecs.amazonaws.com",
            "eventName": "RegisterTaskDefinition",
            "awsRegion": REGION,
            "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci")},
            "userAgent": "aws-cli/2.15.30",
            "requestParameters": {"family": family, "executionRoleArn": role_arn(role)},
            "responseElements": {"taskDefinition": {
                "taskDefinitionArn": td_arn(family, 1),
                "executionRoleArn": role_arn(role)
            }}
        }
    })
    .to_string()
}

/// A CloudTrail IAM record on `role` by a principal whose user agent is `user_agent`.
fn iam_event(operation: &str, role: &str, user_agent: &str) -> String {
    serde_json::json!({
        "version": "0",
        "id": "0d5c7a3e-0000-4000-8000-000000000002",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.iam",
        "account": ACCOUNT,
        "region": "us-east-1",
        "detail": {
            "eventSource": "iam.amazonaws.com",
            "eventName": operation,
            "awsRegion": "us-east-1",
            "recipientAccountId": ACCOUNT,
            "userIdentity": {"type": "AssumedRole", "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice")},
            "userAgent": user_agent,
            "requestParameters": {"roleName": role, "policyName": OWNED}
        }
    })
    .to_string()
}

const EVENTS: &str = "events:\n  queue_url: https://sqs.us-east-1.amazonaws.com/123456789012/execrole-events\n  wait_time: 20s\n";

#[tokio::test(start_paused = true)]
async fn an_event_makes_a_new_task_definitions_role_converge_long_before_the_resync() {
    let yaml = format!(
        "{}{EVENTS}",
        DAEMON.replace("resync_interval: 100s", "resync_interval: 1h")
    );
    let w = World::new(
        &yaml,
        web(),
        FakeIam::default()
            .role("app-exec", &[])
            .role("api-exec", &[]),
    )
    .await;
    let start = Instant::now();
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(w.iam.count("PutRolePolicy"), 1, "web's role converged");
        // A new family is registered, and CloudTrail tells us.
        w.ecs.task_definitions.lock().unwrap().insert(
            td_arn("api", 1),
            task_definition(&td_arn("api", 1), "api-exec", vec![ecr_container("api")]),
        );
        w.source
            .events
            .bodies
            .lock()
            .unwrap()
            .push_back(register_event("api", "api-exec"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            w.iam.policy("api-exec", OWNED).is_some(),
            "api's role converged within seconds"
        );
        assert!(Instant::now() - start < Duration::from_secs(120));
        // Someone deletes our policy by hand: the IAM event puts it back at once.
        w.iam
            .roles
            .lock()
            .unwrap()
            .get_mut("api-exec")
            .unwrap()
            .clear();
        w.source.events.bodies.lock().unwrap().push_back(iam_event(
            "DeleteRolePolicy",
            "api-exec",
            "console.amazonaws.com",
        ));
        // Our own write, seen through CloudTrail: ignored. And a message that is not an event at all.
        w.source.events.bodies.lock().unwrap().push_back(iam_event(
            "PutRolePolicy",
            "app-exec",
            "aws-sdk-rust/1.3 os/linux lang/rust app/execrole",
        ));
        w.source
            .events
            .bodies
            .lock()
            .unwrap()
            .push_back("not json".into());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(
            w.iam.policy("api-exec", OWNED).is_some(),
            "repaired after a manual delete"
        );
    })
    .await;
    let events = |r: &str| w.metrics.events_received.with_label_values(&[r]).get();
    assert_eq!(
        (events("acted"), events("ignored"), events("invalid")),
        (2, 1, 1)
    );
    assert_eq!(
        w.source.events.deleted.load(Ordering::SeqCst),
        4,
        "every message is deleted once handled"
    );
    // Only one periodic sweep (at the start) and one triggered by the event: no resync was needed.
    assert_eq!(w.ecs.list_times.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_daemon_future_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let w = World::new(DAEMON, web(), FakeIam::default().role("app-exec", &[])).await;
    let shutdown = CancellationToken::new();
    let daemon = w
        .controller
        .run(shutdown.clone(), w.source.as_ref(), Arc::new(Notify::new()));
    assert_send(&daemon);
    shutdown.cancel();
    daemon.await;
}

/// Found in review: after a reload, nothing acts on the desired state the old config published. Here the new
/// config takes family `api` out of scope while the next sweep is slow: `api-exec` must not be written again.
#[tokio::test(start_paused = true)]
async fn after_a_reload_no_role_outside_the_new_scope_is_written() {
    let base = DAEMON.replace("resync_jitter: 0.1", "resync_jitter: 0.0")
        + "reload:\n  poll_interval: 1h\n";
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &base);
    let ecs = FakeEcs::default()
        .with(task_definition(
            &td_arn("web", 1),
            "web-exec",
            vec![ecr_container("web")],
        ))
        .with(task_definition(
            &td_arn("api", 1),
            "api-exec",
            vec![ecr_container("api")],
        ));
    let iam = FakeIam::default()
        .role("web-exec", &[])
        .role("api-exec", &[]);
    let w = World::with_config(Config::load(&path).unwrap(), ecs, iam, FakeFacts::default()).await;
    let shutdown = CancellationToken::new();
    let hup = Arc::new(Notify::new());
    let reloaded_at = Mutex::new(None);
    let script = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(w.iam.count("PutRolePolicy"), 2);
        // Someone empties api-exec by hand, and the config drops family `api`; listing now takes 30 s.
        w.iam
            .roles
            .lock()
            .unwrap()
            .get_mut("api-exec")
            .unwrap()
            .clear();
        *w.ecs.list_delay.lock().unwrap() = Duration::from_secs(30);
        std::fs::write(
            &path,
            format!("{base}task_definitions:\n  exclude_families: [\"api\"]\n"),
        )
        .unwrap();
        hup.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !w.controller.config().scope.contains_family("api"),
            "reloaded"
        );
        *reloaded_at.lock().unwrap() = Some(Instant::now());
        tokio::time::sleep(Duration::from_secs(60)).await;
        shutdown.cancel();
    };
    tokio::join!(
        w.controller
            .run(shutdown.clone(), w.source.as_ref(), hup.clone()),
        script
    );
    let reloaded_at = reloaded_at.lock().unwrap().unwrap();
    let late: Vec<_> = w
        .iam
        .calls()
        .into_iter()
        .filter(|c| c.role == "api-exec" && c.at > reloaded_at)
        .map(|c| (c.operation, c.at - reloaded_at))
        .collect();
    assert!(
        late.is_empty(),
        "api-exec is out of scope after the reload, yet: {late:?}"
    );
}

/// Found in review: sweeps triggered by events must not postpone the periodic resync, or a role with a terminal
/// error (or drift that raised no event) is never looked at again while deployments keep coming.
#[tokio::test(start_paused = true)]
async fn events_do_not_postpone_the_periodic_resync() {
    let yaml = format!(
        "{}{EVENTS}",
        DAEMON.replace("resync_jitter: 0.1", "resync_jitter: 0.0")
    );
    let ecs = web().with(task_definition(
        &td_arn("api", 1),
        "api-exec",
        vec![ecr_container("api")],
    ));
    let iam = FakeIam::default()
        .role("app-exec", &[])
        .role("api-exec", &[])
        .fail("GetRole", "api-exec", denied("iam", "GetRole"));
    let w = World::new(&yaml, ecs, iam).await;
    with_daemon(&w, async {
        // A deployment every 60 s (the resync is 100 s), for 600 s.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            w.source
                .events
                .bodies
                .lock()
                .unwrap()
                .push_back(register_event("web", "app-exec"));
        }
    })
    .await;
    let reads = get_role_times(&w, "api-exec");
    assert!(
        reads.len() >= 6,
        "retried at each 100 s resync over 600 s: {reads:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_spill_policy_left_unattached_by_a_failed_attach_is_adopted_by_the_retry() {
    // A team's inline policy takes nearly all of the 10,240-character inline budget, so the role's needs spill.
    let big: Vec<(String, String)> = (0..97)
        .map(|i| {
            let bucket = format!("arn:aws:s3:::team-bucket-with-a-long-name-{i:03}/*");
            ("s3:GetObject".to_string(), bucket)
        })
        .collect();
    let team = policy_text(&big);
    let iam = FakeIam::default()
        .role("app-exec", &[("team-big", &team)])
        .fail(
            "AttachRolePolicy",
            "app-exec",
            throttled("AttachRolePolicy"),
        );
    let w = World::new(DAEMON, web(), iam).await;
    with_daemon(&w, async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(w.iam.count("CreatePolicy"), 1, "{:?}", w.iam.calls());
        assert!(w.iam.count("AttachRolePolicy") >= 1);
        w.iam.heal("AttachRolePolicy", "app-exec");
        // The backoff retry (well before the next resync at about 100 s) lists again and attaches the orphan.
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;

    let calls = w.iam.calls();
    assert_eq!(
        w.iam.count("CreatePolicy"),
        1,
        "never created twice: {calls:?}"
    );
    assert_eq!(
        w.iam.count("ListPolicies"),
        2,
        "listed again after the failure"
    );
    let managed = w.iam.managed.lock().unwrap();
    let (arn, spilled) = managed.iter().next().expect("the spill policy");
    assert_eq!(
        arn,
        &format!("arn:aws:iam::{ACCOUNT}:policy/execrole/execrole-app-exec-1")
    );
    assert!(spilled.attached_to.contains("app-exec"));
    assert_eq!(grants_of(&spilled.document), grant_set(&needs_of("web")));
}
