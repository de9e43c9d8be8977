//! Config tests: defaults, every key, and errors that name the file, the key path and the line.

use super::*;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(Path::new("execrole.yaml"), text)
}

const MINIMAL: &str = "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n";

#[test]
fn a_minimal_config_gets_safe_defaults() {
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.mode, Mode::DryRun);
    assert_eq!(config.inline_policy_name, "execrole");
    assert_eq!(config.spill_path, "/execrole/");
    assert_eq!(config.resync_interval, Duration::from_secs(300));
    assert_eq!(config.http_listen, "0.0.0.0:9464".parse().unwrap());
    assert_eq!(config.log_format, LogFormat::Json);
    assert!(config.scope.contains_family("anything"));
    assert!(config.ecr_and_logs_on_ec2);
    assert_eq!(config.targets[0].session_name, "execrole");
}

#[test]
fn every_key_is_read() {
    let config = load(
        r#"
mode: enforce
targets:
  - account: "111111111111"
    regions: [us-east-1, eu-west-1]
    assume_role_arn: arn:aws:iam::111111111111:role/execrole-target
    external_id: shared-secret
    session_name: ops
task_definitions:
  include_families: ["web*", "api"]
  exclude_families: ["web-legacy*"]
  ecr_and_logs_on_ec2: false
policy:
  inline_name: platform-execrole
  baseline: managed-policy
  ecr_vpc_endpoint:
    source_vpce: [vpce-0123456789abcdef0]
    source_vpc: [vpc-0a1b2c3d]
  container_insights:
    configure: true
    view: false
    roles: [app-exec]
trust_policy:
  manage: true
  harden: true
lookups:
  cache_ttl: 2m
  pull_through_cache: false
safety:
  max_roles_written_per_pass: 7
  never_grant: ["iam:*", "kms:Create*"]
resync_interval: 90s
concurrency: 8
backoff:
  initial_interval: 1s
  max_interval: 1m
  max_elapsed: 5m
http:
  listen: 127.0.0.1:9000
logging:
  format: text
  level: debug
"#,
    )
    .unwrap();
    assert_eq!(config.mode, Mode::Enforce);
    let t = &config.targets[0];
    assert_eq!(t.regions, vec!["eu-west-1", "us-east-1"]);
    assert_eq!(
        t.assume_role_arn.as_deref(),
        Some("arn:aws:iam::111111111111:role/execrole-target")
    );
    assert_eq!(t.external_id.as_deref(), Some("shared-secret"));
    assert_eq!(t.session_name, "ops");
    assert!(config.scope.contains_family("web-api"));
    assert!(config.scope.contains_family("api"));
    assert!(!config.scope.contains_family("web-legacy-1"));
    assert!(!config.scope.contains_family("apis"));
    assert!(!config.ecr_and_logs_on_ec2);
    assert_eq!(config.inline_policy_name, "platform-execrole");
    assert_eq!(config.resync_interval, Duration::from_secs(90));
    assert_eq!(config.concurrency, 8);
    assert_eq!(config.backoff.max_elapsed, Duration::from_secs(300));
    assert_eq!(config.http_listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.baseline, Baseline::ManagedPolicy);
    assert_eq!(
        config.ecr_vpc_endpoint.source_vpce,
        vec!["vpce-0123456789abcdef0"]
    );
    assert_eq!(config.ecr_vpc_endpoint.source_vpc, vec!["vpc-0a1b2c3d"]);
    assert!(config.container_insights.applies_to("app-exec"));
    assert!(!config.container_insights.applies_to("other"));
    assert_eq!(
        config.trust_policy,
        TrustPolicy {
            manage: true,
            harden: true
        }
    );
    assert_eq!(config.lookup_cache_ttl, Duration::from_secs(120));
    assert!(!config.derive_options().pull_through_lookups);
    assert_eq!(config.safety.max_roles_written_per_pass, 7);
    assert!(config.safety.is_forbidden("kms:CreateGrant"));
    assert!(!config.safety.is_forbidden("kms:Decrypt"));
    assert!(load(MINIMAL).unwrap().derive_options().pull_through_lookups);
    assert_eq!(config.derive_options().baseline, Baseline::ManagedPolicy);
    let yaml = config.to_effective_yaml();
    assert!(yaml.contains("mode: enforce"), "{yaml}");
    assert!(yaml.contains("resync_interval: 1m 30s"), "{yaml}");
}

#[test]
fn the_spill_path_follows_iams_path_rules() {
    for good in ["/", "/execrole/", "/platform/execrole/", "/a.b-c_d@e/"] {
        let text = format!("{MINIMAL}policy:\n  spill_path: \"{good}\"\n");
        assert_eq!(load(&text).unwrap().spill_path, good);
    }
    let long = format!("/{}/", "a".repeat(511));
    for bad in [
        "",
        "execrole/",
        "/execrole",
        "//",
        "/a//b/",
        "/has space/",
        "/caf\u{e9}/",
        &long,
    ] {
        let text = format!("{MINIMAL}policy:\n  spill_path: \"{bad}\"\n");
        let err = load(&text).expect_err(bad).to_string();
        assert!(err.contains("policy.spill_path"), "{bad}: {err}");
    }
}

#[test]
fn observe_defaults_to_auto_and_takes_each_mode() {
    use crate::config::ObserveMode;
    assert_eq!(load(MINIMAL).unwrap().observe, ObserveMode::Auto);
    for (text, mode) in [
        ("auto", ObserveMode::Auto),
        ("bulk", ObserveMode::Bulk),
        ("per-role", ObserveMode::PerRole),
    ] {
        let config = load(&format!("{MINIMAL}observe: {text}\n")).unwrap();
        assert_eq!(config.observe, mode, "{text}");
        assert!(
            config
                .to_effective_yaml()
                .contains(&format!("observe: {text}"))
        );
    }
}

#[test]
fn errors_name_the_file_the_key_path_and_the_line() {
    let cases = [
        (
            "mode: enforced\n",
            "execrole.yaml:1",
            "mode",
            "unknown variant",
        ),
        (
            "observe: per_role\n",
            "execrole.yaml:1",
            "observe",
            "unknown variant `per_role`, expected one of `auto`, `bulk`, `per-role`",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n    colour: blue\n",
            "execrole.yaml:4",
            "targets[0]",
            "unknown field `colour`",
        ),
        (
            "targets:\n  - account: 123456789012\n    regions: [us-east-1]\n",
            "execrole.yaml:2",
            "targets[0].account",
            "must be quoted",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1, mars]\n",
            "execrole.yaml:3",
            "targets[0].regions[1]",
            "`mars` is not a Region name",
        ),
        (
            &format!("{MINIMAL}resync_interval: soon\n"),
            "execrole.yaml:4",
            "resync_interval",
            "not a duration",
        ),
        (
            &format!("{MINIMAL}task_definitions:\n  include_families: [\"a[\"]\n"),
            "execrole.yaml:5",
            "task_definitions.include_families[0]",
            "not a valid glob",
        ),
        (
            &format!("{MINIMAL}policy:\n  inline_name: \"has space\"\n"),
            "execrole.yaml:5",
            "policy.inline_name",
            "not an IAM policy name",
        ),
        (
            &format!("{MINIMAL}policy:\n  spill_path: execrole/\n"),
            "execrole.yaml:5",
            "policy.spill_path",
            "not an IAM path for policies",
        ),
        (
            "mode: enforce\n",
            "execrole.yaml",
            "",
            "missing field `targets`",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n  - account: \"123456789012\"\n    regions: [eu-west-1]\n",
            "execrole.yaml:4",
            "targets[1].account",
            "listed twice",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n    external_id: x\n",
            "execrole.yaml:4",
            "targets[0].external_id",
            "only used with assume_role_arn",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n    assume_role_arn: arn:aws:iam::111111111111:role/x\n",
            "execrole.yaml:4",
            "targets[0].assume_role_arn",
            "not in the target's account",
        ),
        (
            "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n    session_name: ops team\n",
            "execrole.yaml:2",
            "targets[0].session_name",
            "not a role session name",
        ),
        (
            "targets: []\n",
            "execrole.yaml:1",
            "targets",
            "at least one target",
        ),
        (
            &format!("{MINIMAL}policy:\n  ecr_vpc_endpoint:\n    source_vpce: [vpc-123]\n"),
            "execrole.yaml:6",
            "policy.ecr_vpc_endpoint.source_vpce[0]",
            "not a VPC endpoint id",
        ),
        (
            &format!("{MINIMAL}policy:\n  baseline: managed\n"),
            "execrole.yaml:5",
            "policy.baseline",
            "unknown variant",
        ),
        (
            &format!("{MINIMAL}trust_policy:\n  harden: true\n"),
            "execrole.yaml:5",
            "trust_policy.harden",
            "only applies with manage",
        ),
        (
            &format!("{MINIMAL}safety:\n  max_roles_written_per_pass: 0\n"),
            "execrole.yaml:5",
            "safety.max_roles_written_per_pass",
            "must be at least 1",
        ),
        (
            &format!("{MINIMAL}safety:\n  never_grant: [\"a[\"]\n"),
            "execrole.yaml:5",
            "safety.never_grant[0]",
            "not a valid glob",
        ),
        (
            &format!("{MINIMAL}resync_jitter: 1.5\n"),
            "execrole.yaml:4",
            "resync_jitter",
            "not a fraction",
        ),
        (
            &format!("{MINIMAL}rate_limits:\n  iam:\n    per_second: 0\n    burst: 1\n"),
            "execrole.yaml:5",
            "rate_limits.iam",
            "at least 1",
        ),
        (
            &format!("{MINIMAL}events:\n  queue_url: https://example.com/q\n"),
            "execrole.yaml:5",
            "events.queue_url",
            "not an SQS queue URL",
        ),
        (
            &format!(
                "{MINIMAL}events:\n  queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/q\n  wait_time: 30s\n"
            ),
            "execrole.yaml:6",
            "events.wait_time",
            "from 1s to 20s",
        ),
        (
            &format!(
                "{MINIMAL}events:\n  queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/q\n  wait_time: 0s\n"
            ),
            "execrole.yaml:6",
            "events.wait_time",
            "from 1s to 20s",
        ),
        (
            &format!("{MINIMAL}backoff:\n  initial_interval: 0s\n"),
            "execrole.yaml:5",
            "backoff.initial_interval",
            "longer than 0s",
        ),
        (
            &format!("{MINIMAL}settle_window: 0s\n"),
            "execrole.yaml:4",
            "settle_window",
            "at least 1s",
        ),
        (
            &format!("{MINIMAL}safety:\n  role_selection:\n    path_prefixes: [ecs]\n"),
            "execrole.yaml:6",
            "safety.role_selection.path_prefixes[0]",
            "must start and end with `/`",
        ),
        (
            &format!("{MINIMAL}reload:\n  poll_interval: 1ms\n"),
            "execrole.yaml:5",
            "reload.poll_interval",
            "at least 100ms",
        ),
    ];
    for (text, location, path, message) in cases {
        let err = load(text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with(location), "{text}\n=> {shown}");
        if !path.is_empty() {
            assert!(shown.contains(&format!(": {path}: ")), "{text}\n=> {shown}");
        }
        assert!(shown.contains(message), "{text}\n=> {shown}");
    }
}

#[test]
fn a_missing_file_is_an_error_that_names_it() {
    let err = Config::load(Path::new("/nonexistent/execrole.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/execrole.yaml: cannot read")
    );
    assert_eq!(err.reason(), "read_failed");
}

#[test]
fn the_example_and_demo_configs_are_valid() {
    for file in ["config/example.yaml", "config/demo.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn runtime_keys_have_defaults_and_are_read() {
    let config = load(MINIMAL).unwrap();
    assert_eq!(config.settle_window, Duration::from_secs(30));
    assert_eq!(config.resync_jitter, 0.1);
    assert_eq!(config.rate_limits.iam, RateLimit::new(5, 10).unwrap());
    assert_eq!(config.events, None);
    assert!(config.reload.watch_file);
    assert!(!config.include_inactive_in_use);
    assert_eq!(config.prune_grace_period, Duration::from_secs(3600));
    assert!(config.safety.role_selection.selects_all());

    let config = load(&format!(
        "{MINIMAL}settle_window: 5s\nresync_jitter: 0.25\nrate_limits:\n  ecs: {{per_second: 3, burst: 4}}\n\
         events:\n  queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/execrole-events\n  wait_time: 5s\n\
         reload:\n  watch_file: false\n  poll_interval: 2s\n\
         task_definitions:\n  include_inactive_in_use: true\n  prune_grace_period: 15m\n\
         safety:\n  role_selection:\n    path_prefixes: [/ecs/]\n    tags: {{team: platform}}\n"
    ))
    .unwrap();
    assert_eq!(config.settle_window, Duration::from_secs(5));
    assert_eq!(config.resync_jitter, 0.25);
    assert_eq!(config.rate_limits.ecs, RateLimit::new(3, 4).unwrap());
    assert_eq!(config.rate_limits.iam.per_second.get(), 5);
    let events = config.events.clone().unwrap();
    assert_eq!(events.region, "eu-west-1");
    assert_eq!(events.wait_time, Duration::from_secs(5));
    assert!(!config.reload.watch_file);
    assert_eq!(config.reload.poll_interval, Duration::from_secs(2));
    assert!(config.include_inactive_in_use);
    assert_eq!(config.prune_grace_period, Duration::from_secs(900));
    let selection = &config.safety.role_selection;
    let team = vec![("team".to_string(), "platform".to_string())];
    assert!(selection.selects("/ecs/", &team));
    assert!(!selection.selects("/", &team));
    assert!(!selection.selects("/ecs/", &[]));
    assert!(!selection.selects("/ecs/", &[("team".into(), "other".into())]));
}

#[test]
fn a_config_text_over_the_size_limit_is_refused_before_parsing() {
    // Found by the fuzzing harness: a 1 MiB document made the YAML parser allocate about 100 MiB.
    let padding = MAX_CONFIG_BYTES - MINIMAL.len() - 1;
    let at_limit = format!("{MINIMAL}#{}", "x".repeat(padding));
    assert_eq!(at_limit.len(), MAX_CONFIG_BYTES);
    assert!(load(&at_limit).is_ok());

    let over = format!("{at_limit}x");
    let err = load(&over).unwrap_err();
    let ConfigError::Invalid {
        path,
        line,
        message,
        ..
    } = &err
    else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!((path.as_str(), *line), ("", None));
    assert_eq!(
        message,
        &format!(
            "the file is {} bytes; a config file may be at most 256 KiB",
            MAX_CONFIG_BYTES + 1
        )
    );
    assert!(
        err.to_string().starts_with("execrole.yaml: the file is"),
        "{err}"
    );
}

#[test]
fn coordination_is_absent_by_default_and_read_with_its_defaults() {
    assert_eq!(load(MINIMAL).unwrap().coordination, None);
    let config = load(&format!(
        "{MINIMAL}coordination:\n  dynamodb_table: execrole-leases\n"
    ))
    .unwrap();
    let c = config.coordination.unwrap();
    assert_eq!(c.dynamodb_table, "execrole-leases");
    assert_eq!(c.region, None);
    assert_eq!(c.lease_duration, Duration::from_secs(15));
    assert_eq!(c.shards, 4);
    assert_eq!(c.replica_id, "");
    assert_eq!(c.clock_skew_margin, Duration::from_secs(3));

    let config = load(&format!(
        "{MINIMAL}coordination:\n  dynamodb_table: t.x_1\n  region: eu-west-1\n  lease_duration: 30s\n  \
         shards: 16\n  replica_id: a-1\n  clock_skew_margin: 5s\n"
    ))
    .unwrap();
    let c = config.coordination.unwrap();
    assert_eq!(c.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.lease_duration, Duration::from_secs(30));
    assert_eq!(c.shards, 16);
    assert_eq!(c.replica_id, "a-1");
    assert_eq!(c.clock_skew_margin, Duration::from_secs(5));
}

#[test]
fn bad_coordination_settings_are_errors_that_name_the_key_and_line() {
    let table = "coordination:\n  dynamodb_table: leases\n";
    let cases = [
        (
            format!("{MINIMAL}coordination:\n  region: eu-west-1\n"),
            "execrole.yaml:5",
            "coordination",
            "missing field `dynamodb_table`",
        ),
        (
            format!("{MINIMAL}coordination:\n  dynamodb_table: \"a b\"\n"),
            "execrole.yaml:5",
            "coordination.dynamodb_table",
            "not a DynamoDB table name",
        ),
        (
            format!("{MINIMAL}{table}  lease_duration: 500ms\n"),
            "execrole.yaml:6",
            "coordination.lease_duration",
            "from 1s to 10m",
        ),
        (
            format!("{MINIMAL}{table}  shards: 0\n"),
            "execrole.yaml:6",
            "coordination.shards",
            "0 is not from 1 to 256",
        ),
        (
            format!("{MINIMAL}{table}  replica_id: \"has space\"\n"),
            "execrole.yaml:6",
            "coordination.replica_id",
            "printable characters without spaces",
        ),
        (
            format!("{MINIMAL}{table}  lease_duration: 10s\n  clock_skew_margin: 5s\n"),
            "execrole.yaml:7",
            "coordination.clock_skew_margin",
            "shorter than half of lease_duration (5s)",
        ),
        (
            // serde_yaml places errors inside an optional section at the section's first key.
            format!("{MINIMAL}{table}  region: moon\n"),
            "execrole.yaml:5",
            "coordination.region",
            "not a Region name",
        ),
        (
            format!("{MINIMAL}{table}  colour: blue\n"),
            "execrole.yaml:6",
            "coordination",
            "unknown field `colour`",
        ),
    ];
    for (text, location, path, message) in cases {
        let shown = load(&text).unwrap_err().to_string();
        assert!(shown.starts_with(location), "{text}\n=> {shown}");
        assert!(shown.contains(&format!(": {path}")), "{text}\n=> {shown}");
        assert!(shown.contains(message), "{text}\n=> {shown}");
    }
}
