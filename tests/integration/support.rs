//! Test support: a real local AWS (moto in server mode, the pinned virtualenv under `target/moto-venv`) started on
//! a free loopback port per test, SDK clients for seeding that can only reach it, and helpers to run the
//! `execrole` binary against it with an environment that cannot reach anything else.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use execrole::aws::{BackoffSettings, ClientFactory};
use execrole::metrics::Metrics;

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// A running moto server, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The moto_server binary of the pinned virtualenv, created on first use.
fn moto_server() -> PathBuf {
    // Empty means unset, as in scripts/moto-venv.sh (`${EXECROLE_MOTO_VENV:-…}`).
    let venv = std::env::var_os("EXECROLE_MOTO_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/moto-venv"));
    let bin = venv.join("bin/moto_server");
    // The stamp scripts/pinned-venv.sh leaves for `moto[server]==5.2.5` (the pin in scripts/moto-venv.sh).
    if !venv.join(".execrole-pinned-moto_server_==5.2.5").exists() {
        let status = Command::new(repo_root().join("scripts/moto-venv.sh"))
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/moto-venv.sh");
        assert!(status.success(), "scripts/moto-venv.sh failed");
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}

impl Moto {
    /// Start moto on a free port on 127.0.0.1 with the AWS managed policies loaded.
    pub fn start() -> Moto {
        let bin = moto_server();
        let dir = tempfile::tempdir().expect("a temp dir");
        for _attempt in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("moto.log")).expect("moto log file");
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start moto_server");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, try another
                }
                if is_ready(port) {
                    return Moto {
                        child,
                        endpoint: format!("http://127.0.0.1:{port}"),
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
        panic!("moto did not start; its log:\n{log}");
    }

    /// An SDK configuration that can only reach this emulator.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }

    /// An SDK configuration acting in `account` (credentials from `sts:AssumeRole` on a role there; moto
    /// checks neither trust nor existence), reaching only this emulator.
    pub async fn sdk_config_in(&self, account: &str) -> aws_config::SdkConfig {
        let base = self.sdk_config().await;
        let provider = aws_config::sts::AssumeRoleProvider::builder(format!(
            "arn:aws:iam::{account}:role/seed"
        ))
        .session_name("seed")
        .configure(&base)
        .build()
        .await;
        base.to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(provider),
            )
            .build()
    }

    pub async fn ecs(&self, region: &str) -> aws_sdk_ecs::Client {
        let config = aws_sdk_ecs::config::Builder::from(&self.sdk_config().await)
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_ecs::Client::from_conf(config)
    }

    pub async fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config().await)
    }

    /// The controller's client factory, pointed at this emulator.
    pub async fn factory(&self, metrics: Arc<Metrics>) -> ClientFactory {
        factory_at(&self.endpoint, metrics).await
    }

    /// A `Command` for the execrole binary with an environment that reaches only this emulator.
    pub fn execrole(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_execrole"));
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
            "AWS_ENDPOINT_URL_ECS",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_STS",
            "EXECROLE_LOG",
        ] {
            command.env_remove(var);
        }
        command
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
        command
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The controller's client factory, pointed at `endpoint` (the emulator, or a proxy in front of it on 127.0.0.1),
/// with short retries and rate limits too wide to wait on.
pub async fn factory_at(endpoint: &str, metrics: Arc<Metrics>) -> ClientFactory {
    let retry = BackoffSettings {
        initial_interval: Duration::from_millis(50),
        max_interval: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(5),
    };
    // The emulator has no quotas to protect: buckets wide enough that no test waits on them (the rate limit
    // itself is tested on its own, with a narrow bucket).
    let wide = execrole::aws::RateLimit {
        per_second: std::num::NonZeroU32::new(10_000).expect("non-zero"),
        burst: std::num::NonZeroU32::new(10_000).expect("non-zero"),
    };
    ClientFactory::for_local_endpoint(endpoint, REGION, metrics, retry)
        .await
        .with_rate_limits(execrole::aws::RateLimits {
            iam: wide,
            ecs: wide,
            other: wide,
        })
}

/// Write a config file for the account, returning its path (kept alive by the returned dir).
pub fn config_file(dir: &Path, mode: &str, extra: &str) -> PathBuf {
    let path = dir.join("execrole.yaml");
    let text = format!(
        "mode: {mode}\ntargets:\n  - account: \"{ACCOUNT}\"\n    regions: [{REGION}]\nlogging:\n  format: text\n  level: warn\nbackoff:\n  initial_interval: 50ms\n  max_interval: 500ms\n  max_elapsed: 5s\nlookups:\n  pull_through_cache: false\nrate_limits:\n  iam: {{per_second: 10000, burst: 10000}}\n  ecs: {{per_second: 10000, burst: 10000}}\n  other: {{per_second: 10000, burst: 10000}}\n{extra}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// One controller pass against the emulator in `mode` (the config's mode too), with `extra` config YAML; returns
/// the report and the metrics it recorded.
pub async fn one_pass(
    moto: &Moto,
    mode: execrole::config::Mode,
    extra: &str,
) -> (execrole::controller::PassReport, Arc<Metrics>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mode_text = match mode {
        execrole::config::Mode::Enforce => "enforce",
        execrole::config::Mode::DryRun => "dry-run",
    };
    let config = load_config(&config_file(dir.path(), mode_text, extra));
    let metrics = Arc::new(Metrics::new());
    let factory = moto.factory(metrics.clone()).await;
    let health = Arc::new(execrole::controller::Health::default());
    let controller =
        execrole::controller::Controller::new(config, &factory, metrics.clone(), health).await;
    let report = controller
        .pass(mode, &tokio_util::sync::CancellationToken::new())
        .await;
    (report, metrics)
}

/// Load a config file written by [`config_file`].
pub fn load_config(path: &Path) -> execrole::config::Config {
    execrole::config::Config::load(path).expect("test config is valid")
}

pub const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// Create an execution role.
pub async fn create_role(iam: &aws_sdk_iam::Client, name: &str) -> String {
    let out = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .expect("create role");
    out.role().map(|r| r.arn().to_string()).expect("role arn")
}

/// Put an inline policy.
pub async fn put_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str, document: &str) {
    iam.put_role_policy()
        .role_name(role)
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .expect("put role policy");
}

/// An inline policy's document as IAM returns it (URL-encoded), or None.
pub async fn get_policy(iam: &aws_sdk_iam::Client, role: &str, name: &str) -> Option<String> {
    iam.get_role_policy()
        .role_name(role)
        .policy_name(name)
        .send()
        .await
        .ok()
        .map(|o| o.policy_document().to_string())
}

/// A container definition: an image, and awslogs to `group` when given.
pub fn container(
    name: &str,
    image: &str,
    log_group: Option<(&str, bool)>,
) -> aws_sdk_ecs::types::ContainerDefinition {
    let mut builder = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name(name)
        .image(image)
        .memory(128);
    if let Some((group, create)) = log_group {
        let mut log = aws_sdk_ecs::types::LogConfiguration::builder()
            .log_driver(aws_sdk_ecs::types::LogDriver::Awslogs)
            .options("awslogs-group", group)
            .options("awslogs-region", REGION)
            .options("awslogs-stream-prefix", name);
        if create {
            log = log.options("awslogs-create-group", "true");
        }
        builder = builder.log_configuration(log.build().expect("log configuration"));
    }
    builder.build()
}

/// Register a task definition revision; returns its ARN.
pub async fn register(
    ecs: &aws_sdk_ecs::Client,
    family: &str,
    role_arn: &str,
    containers: Vec<aws_sdk_ecs::types::ContainerDefinition>,
) -> String {
    let out = ecs
        .register_task_definition()
        .family(family)
        .execution_role_arn(role_arn)
        .set_container_definitions(Some(containers))
        .send()
        .await
        .expect("register task definition");
    out.task_definition()
        .and_then(|t| t.task_definition_arn())
        .map(str::to_string)
        .expect("task definition arn")
}

/// An ECR image of the test account.
pub fn ecr_image(repository: &str) -> String {
    format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{repository}:1")
}

/// The test account's target: the default account in the test Region, no role to assume.
pub fn target() -> execrole::config::Target {
    execrole::config::Target {
        account: ACCOUNT.into(),
        regions: vec![REGION.into()],
        assume_role_arn: None,
        external_id: None,
        session_name: "execrole".into(),
    }
}

/// One role, `app-exec`, shared by 40 families of 4 containers each: its needs pass the 10,240-character inline
/// limit, so it spills into managed policies. Returns the revisions' ARNs.
pub async fn seed_spilling_role(
    iam: &aws_sdk_iam::Client,
    ecs: &aws_sdk_ecs::Client,
) -> Vec<String> {
    let role = create_role(iam, "app-exec").await;
    let mut arns = Vec::new();
    for family in 0..40 {
        let containers = (0..4)
            .map(|c| {
                container(
                    &format!("c{c}"),
                    &ecr_image(&format!("team-{family:02}/service-number-{c}")),
                    None,
                )
            })
            .collect();
        arns.push(register(ecs, &format!("svc-{family:02}"), &role, containers).await);
    }
    arns
}
