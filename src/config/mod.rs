//! Configuration in two stages (as ripgrep does it): `raw` mirrors the YAML file and rejects unknown keys; this
//! module turns it into the validated [`Config`] in one place ([`Config::from_raw`]) and renders the effective
//! settings for `check-config`.
//!
//! Every error names the file, the key path and the line. This module does not watch the file for changes; the
//! controller decides when to load it again.

mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::derive::{Baseline, DeriveOptions, VpcEndpointCondition};

/// Whether the controller may write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Observe, derive, diff and report; never write. The default.
    #[default]
    DryRun,
    /// Repair drift by writing the owned inline policy.
    Enforce,
}

/// The log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines. The default.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

/// One account to manage, in one or more Regions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The 12-digit account id.
    pub account: String,
    /// The Regions whose task definitions are watched.
    pub regions: Vec<String>,
    /// The role to assume in the account; `None` uses the controller's own credentials.
    pub assume_role_arn: Option<String>,
    /// The external id to pass when assuming the role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The session name for the assumed role.
    pub session_name: String,
}

/// Which task definitions are in scope.
#[derive(Debug, Clone)]
pub struct Scope {
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    include: GlobSet,
    exclude: GlobSet,
}

impl Scope {
    /// Build a scope from include and exclude family globs.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Scope, globset::Error> {
        Ok(Scope {
            include_patterns: include.to_vec(),
            exclude_patterns: exclude.to_vec(),
            include: glob_set(include)?,
            exclude: glob_set(exclude)?,
        })
    }

    /// Whether a family is in scope: it matches an include glob and no exclude glob.
    pub fn contains_family(&self, family: &str) -> bool {
        self.include.is_match(family) && !self.exclude.is_match(family)
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.include_patterns == other.include_patterns
            && self.exclude_patterns == other.exclude_patterns
    }
}

fn glob_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        builder.add(Glob::new(pattern)?);
    }
    builder.build()
}

/// Exponential backoff settings for retryable AWS errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackoffSettings {
    /// The first wait.
    #[serde(with = "humantime_serde_text")]
    pub initial_interval: Duration,
    /// The longest single wait.
    #[serde(with = "humantime_serde_text")]
    pub max_interval: Duration,
    /// How long one AWS request is retried in place before its error goes back to the work queue (which then
    /// backs the role off, without giving up).
    #[serde(with = "humantime_serde_text")]
    pub max_elapsed: Duration,
}

/// A token bucket: a steady rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// Client-side rate limits per account, by service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimits {
    /// IAM (reads and writes share one bucket per account).
    pub iam: RateLimit,
    /// ECS, per account.
    pub ecs: RateLimit,
    /// Every other service (Secrets Manager, SSM, KMS, ECR, STS, SQS), one bucket each per account.
    pub other: RateLimit,
}

/// Event-driven convergence: the SQS queue fed by EventBridge rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Events {
    /// The queue URL.
    pub queue_url: String,
    /// The queue's Region (from the URL when not given).
    pub region: String,
    /// The long-poll wait of each receive (at most 20 s).
    #[serde(with = "humantime_serde_text")]
    pub wait_time: Duration,
}

/// When a changed config file is picked up (SIGHUP always reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reload {
    /// Poll the file for changes.
    pub watch_file: bool,
    /// How often the file is checked.
    #[serde(with = "humantime_serde_text")]
    pub poll_interval: Duration,
}

/// Which execution roles the controller may manage, by IAM path or tag. Empty selects every role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoleSelection {
    /// The role's path must start with one of these (`/ecs/`); empty: any path.
    pub path_prefixes: Vec<String>,
    /// Every tag listed must be on the role with this value; empty: no tag needed.
    pub tags: std::collections::BTreeMap<String, String>,
}

impl RoleSelection {
    /// Whether a role with this path and these tags may be managed.
    pub fn selects(&self, path: &str, tags: &[(String, String)]) -> bool {
        let path_ok = self.path_prefixes.is_empty()
            || self
                .path_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()));
        let tags_ok = self
            .tags
            .iter()
            .all(|(k, v)| tags.iter().any(|(tk, tv)| tk == k && tv == v));
        path_ok && tags_ok
    }

    /// Whether every role is selected (no look-up of path or tags needed).
    pub fn selects_all(&self) -> bool {
        self.path_prefixes.is_empty() && self.tags.is_empty()
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// The file it was read from.
    #[serde(skip)]
    pub source: PathBuf,
    /// `dry-run` or `enforce`.
    pub mode: Mode,
    /// The accounts and Regions to manage.
    pub targets: Vec<Target>,
    /// Which families are in scope.
    #[serde(skip)]
    pub scope: Scope,
    /// Include globs, as written (for display).
    pub include_families: Vec<String>,
    /// Exclude globs, as written (for display).
    pub exclude_families: Vec<String>,
    /// Grant ECR and awslogs permissions also to EC2-only task definitions.
    pub ecr_and_logs_on_ec2: bool,
    /// INACTIVE revisions that a service still runs or deploys count as needs.
    pub include_inactive_in_use: bool,
    /// A revision that stops counting keeps its permissions this long before they are pruned.
    #[serde(with = "humantime_serde_text")]
    pub prune_grace_period: Duration,
    /// The name of the inline policy the controller owns on each execution role.
    pub inline_policy_name: String,
    /// Time between full passes.
    #[serde(with = "humantime_serde_text")]
    pub resync_interval: Duration,
    /// Each resync waits the interval times a random factor in `1 ± resync_jitter`, so that many controllers
    /// (or targets) do not fire at once.
    pub resync_jitter: f64,
    /// After a write, the role is judged again only after this long (IAM is eventually consistent).
    #[serde(with = "humantime_serde_text")]
    pub settle_window: Duration,
    /// Client-side rate limits per account and service.
    pub rate_limits: RateLimits,
    /// Event-driven convergence, when configured.
    pub events: Option<Events>,
    /// Config hot reload.
    pub reload: Reload,
    /// How many roles are reconciled at once.
    pub concurrency: usize,
    /// Retry settings for retryable AWS errors.
    pub backoff: BackoffSettings,
    /// The HTTP listen address for `/metrics`, `/healthz` and `/readyz`.
    pub http_listen: SocketAddr,
    /// Log output format.
    pub log_format: LogFormat,
    /// Log level filter (`tracing` env-filter syntax).
    pub log_level: String,
    /// `least-privilege` or `managed-policy`.
    pub baseline: Baseline,
    /// VPC endpoint conditions on the ECR layer statement (rule 1c).
    pub ecr_vpc_endpoint: VpcEndpointCondition,
    /// Container Insights lifecycle-event permissions (rule 13).
    pub container_insights: ContainerInsights,
    /// Trust-policy management (rule 14).
    pub trust_policy: TrustPolicy,
    /// How long looked-up facts (a secret's KMS key, pull-through-cache rules) are reused.
    #[serde(with = "humantime_serde_text")]
    pub lookup_cache_ttl: Duration,
    /// Whether pull-through-cache rules are looked up (rule 2).
    pub lookup_pull_through_cache: bool,
    /// Safety rails for `enforce` mode.
    pub safety: Safety,
}

/// Safety rails: limits on what one pass may write, and actions the controller never grants.
#[derive(Debug, Clone, Serialize)]
pub struct Safety {
    /// At most this many roles are written in one pass (blast radius); the rest wait for the next pass.
    pub max_roles_written_per_pass: usize,
    /// Action globs (case-insensitive) that are never granted, on top of `*` and `service:*`, which never are.
    pub never_grant: Vec<String>,
    /// Which roles may be managed at all.
    pub role_selection: RoleSelection,
    #[serde(skip)]
    never_grant_set: GlobSet,
}

impl PartialEq for Safety {
    fn eq(&self, other: &Self) -> bool {
        self.max_roles_written_per_pass == other.max_roles_written_per_pass
            && self.never_grant == other.never_grant
            && self.role_selection == other.role_selection
    }
}

impl Safety {
    /// Build the rails; globs match action names case-insensitively.
    pub fn new(
        max_roles_written_per_pass: usize,
        never_grant: Vec<String>,
    ) -> Result<Safety, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &never_grant {
            builder.add(
                globset::GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .build()?,
            );
        }
        Ok(Safety {
            max_roles_written_per_pass,
            never_grant,
            role_selection: RoleSelection::default(),
            never_grant_set: builder.build()?,
        })
    }

    /// Whether an action must never be granted: `*`, a whole service (`ecr:*`), or a configured glob.
    pub fn is_forbidden(&self, action: &str) -> bool {
        action == "*" || action.ends_with(":*") || self.never_grant_set.is_match(action)
    }
}

impl Default for Safety {
    fn default() -> Self {
        Safety::new(
            25,
            vec!["iam:*".into(), "sts:*".into(), "organizations:*".into()],
        )
        .expect("the default globs are valid")
    }
}

/// Container Insights lifecycle-event permissions (rule 13), opt-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInsights {
    /// Grant the permissions to configure lifecycle events.
    pub configure: bool,
    /// Grant the permissions to view them.
    pub view: bool,
    /// The role names that get them; empty means every managed role.
    pub roles: Vec<String>,
}

impl ContainerInsights {
    /// Whether the role gets any Container Insights permission.
    pub fn applies_to(&self, role: &str) -> bool {
        (self.configure || self.view)
            && (self.roles.is_empty() || self.roles.iter().any(|r| r == role))
    }
}

/// Trust-policy management (rule 14).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TrustPolicy {
    /// Rewrite a drifted trust policy to trust exactly `ecs-tasks.amazonaws.com`.
    pub manage: bool,
    /// Add `aws:SourceAccount` and `aws:SourceArn` conditions (confused-deputy protection).
    pub harden: bool,
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{file}: cannot read the file: {message}")]
    ReadFailed {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// A key has a bad value, is unknown, or is missing.
    #[error("{}", format_invalid(file, path, *line, *column, message))]
    Invalid {
        /// The file.
        file: String,
        /// The key path (`targets[0].account`), empty for the document itself.
        path: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ConfigError::ReadFailed { .. } => "read_failed",
            ConfigError::Invalid { .. } => "invalid",
        }
    }
}

fn format_invalid(
    file: &str,
    path: &str,
    line: Option<usize>,
    column: Option<usize>,
    message: &str,
) -> String {
    let mut out = file.to_string();
    if let Some(line) = line {
        out.push_str(&format!(":{line}"));
        if let Some(column) = column {
            out.push_str(&format!(":{column}"));
        }
    }
    if !path.is_empty() {
        out.push_str(&format!(": {path}"));
    }
    // serde_yaml may already start its message with the path; don't say it twice.
    let message = message
        .strip_prefix(&format!("{path}: "))
        .unwrap_or(message);
    out.push_str(&format!(": {message}"));
    out
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::ReadFailed {
            file: file.display().to_string(),
            message: e.to_string(),
        })?;
        Config::from_yaml(file, &text)
    }

    /// Parse and validate config text; `file` is used in error messages.
    pub fn from_yaml(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw = raw::parse(file, text)?;
        Config::from_raw(file, text, raw)
    }

    /// The one place where a raw config becomes a validated one: checks across keys.
    fn from_raw(file: &Path, text: &str, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let invalid = |path: &str, message: String| ConfigError::Invalid {
            file: file.display().to_string(),
            path: path.to_string(),
            line: line_of_key(text, path),
            column: None,
            message,
        };
        if raw.targets.is_empty() {
            return Err(invalid("targets", "at least one target is needed".into()));
        }
        let mut targets: Vec<Target> = Vec::new();
        for (i, t) in raw.targets.into_iter().enumerate() {
            let path = format!("targets[{i}]");
            if t.regions.is_empty() {
                return Err(invalid(
                    &format!("{path}.regions"),
                    "at least one Region is needed".into(),
                ));
            }
            if targets.iter().any(|other| other.account == t.account.0) {
                return Err(invalid(
                    &format!("{path}.account"),
                    format!(
                        "account {} is listed twice; list all its Regions in one target",
                        t.account.0
                    ),
                ));
            }
            if let Some(role) = &t.assume_role_arn
                && role.1.account != t.account.0
            {
                return Err(invalid(
                    &format!("{path}.assume_role_arn"),
                    format!(
                        "role `{}` is in account {}, not in the target's account {}",
                        role.0, role.1.account, t.account.0
                    ),
                ));
            }
            if t.external_id.is_some() && t.assume_role_arn.is_none() {
                return Err(invalid(
                    &format!("{path}.external_id"),
                    "external_id is only used with assume_role_arn".into(),
                ));
            }
            let mut regions: Vec<String> = t.regions.into_iter().map(|r| r.0).collect();
            regions.sort();
            if regions.windows(2).any(|w| w[0] == w[1]) {
                return Err(invalid(
                    &format!("{path}.regions"),
                    "a Region is listed twice".into(),
                ));
            }
            targets.push(Target {
                account: t.account.0,
                regions,
                assume_role_arn: t.assume_role_arn.map(|r| r.0),
                external_id: t.external_id,
                session_name: t.session_name.unwrap_or_else(|| "execrole".to_string()),
            });
        }
        let include: Vec<String> = raw
            .task_definitions
            .include_families
            .into_iter()
            .map(|g| g.0)
            .collect();
        let exclude: Vec<String> = raw
            .task_definitions
            .exclude_families
            .into_iter()
            .map(|g| g.0)
            .collect();
        let scope = Scope::new(&include, &exclude)
            .map_err(|e| invalid("task_definitions", format!("invalid family glob: {e}")))?;
        if raw.trust_policy.harden && !raw.trust_policy.manage {
            return Err(invalid(
                "trust_policy.harden",
                "harden only applies with manage: true".into(),
            ));
        }
        let insights = &raw.policy.container_insights;
        if !insights.roles.is_empty() && !insights.configure && !insights.view {
            return Err(invalid(
                "policy.container_insights.roles",
                "roles are listed but neither configure nor view is true".into(),
            ));
        }
        if raw.safety.max_roles_written_per_pass == 0 {
            return Err(invalid(
                "safety.max_roles_written_per_pass",
                "must be at least 1 (use mode: dry-run to write nothing)".into(),
            ));
        }
        if raw.concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1".into()));
        }
        if raw.resync_interval.0 < Duration::from_secs(1) {
            return Err(invalid("resync_interval", "must be at least 1s".into()));
        }
        if raw.backoff.initial_interval.0.is_zero() {
            return Err(invalid(
                "backoff.initial_interval",
                "must be longer than 0s (a zero backoff retries in a tight loop)".into(),
            ));
        }
        if raw.settle_window.0 < Duration::from_secs(1) {
            return Err(invalid(
                "settle_window",
                "must be at least 1s (IAM needs time to settle after a write)".into(),
            ));
        }
        if raw.backoff.initial_interval.0 > raw.backoff.max_interval.0 {
            return Err(invalid(
                "backoff.initial_interval",
                "must not be longer than backoff.max_interval".into(),
            ));
        }
        if !(0.0..1.0).contains(&raw.resync_jitter) {
            return Err(invalid(
                "resync_jitter",
                format!(
                    "{} is not a fraction in [0, 1) (0.1 waits 90 % to 110 % of resync_interval)",
                    raw.resync_jitter
                ),
            ));
        }
        let rate = |path: &str, r: &raw::RawRateLimit| {
            if r.per_second == 0 || r.burst == 0 {
                Err(invalid(
                    path,
                    "per_second and burst must be at least 1".into(),
                ))
            } else {
                Ok(RateLimit {
                    per_second: r.per_second,
                    burst: r.burst,
                })
            }
        };
        let rate_limits = RateLimits {
            iam: rate("rate_limits.iam", &raw.rate_limits.iam)?,
            ecs: rate("rate_limits.ecs", &raw.rate_limits.ecs)?,
            other: rate("rate_limits.other", &raw.rate_limits.other)?,
        };
        let events = match raw.events {
            None => None,
            Some(e) => {
                let region = match e.region {
                    Some(r) => r.0,
                    None => queue_region(&e.queue_url).ok_or_else(|| {
                        invalid(
                            "events.queue_url",
                            format!(
                                "`{}` is not an SQS queue URL like https://sqs.eu-west-1.amazonaws.com/123456789012/name; \
                                 give events.region for another form",
                                e.queue_url
                            ),
                        )
                    })?,
                };
                if !(e.queue_url.starts_with("https://") || e.queue_url.starts_with("http://")) {
                    return Err(invalid(
                        "events.queue_url",
                        format!("`{}` is not a URL", e.queue_url),
                    ));
                }
                if e.wait_time.0 > Duration::from_secs(20) || e.wait_time.0 < Duration::from_secs(1)
                {
                    return Err(invalid(
                        "events.wait_time",
                        "must be from 1s to 20s (an SQS long poll waits at most 20s; 0s would poll in a tight loop)"
                            .into(),
                    ));
                }
                Some(Events {
                    queue_url: e.queue_url,
                    region,
                    wait_time: e.wait_time.0,
                })
            }
        };
        if raw.reload.poll_interval.0 < Duration::from_millis(100) {
            return Err(invalid(
                "reload.poll_interval",
                "must be at least 100ms".into(),
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&raw.logging.level).map_err(|e| {
            invalid(
                "logging.level",
                format!("`{}` is not a log filter: {e}", raw.logging.level),
            )
        })?;
        Ok(Config {
            source: file.to_path_buf(),
            mode: raw.mode,
            targets,
            scope,
            include_families: include,
            exclude_families: exclude,
            ecr_and_logs_on_ec2: raw.task_definitions.ecr_and_logs_on_ec2,
            include_inactive_in_use: raw.task_definitions.include_inactive_in_use,
            prune_grace_period: raw.task_definitions.prune_grace_period.0,
            inline_policy_name: raw.policy.inline_name.0,
            resync_interval: raw.resync_interval.0,
            resync_jitter: raw.resync_jitter,
            settle_window: raw.settle_window.0,
            rate_limits,
            events,
            reload: Reload {
                watch_file: raw.reload.watch_file,
                poll_interval: raw.reload.poll_interval.0,
            },
            concurrency: raw.concurrency,
            backoff: BackoffSettings {
                initial_interval: raw.backoff.initial_interval.0,
                max_interval: raw.backoff.max_interval.0,
                max_elapsed: raw.backoff.max_elapsed.0,
            },
            http_listen: raw.http.listen,
            log_format: raw.logging.format,
            log_level: raw.logging.level,
            baseline: raw.policy.baseline,
            ecr_vpc_endpoint: VpcEndpointCondition {
                source_vpce: raw
                    .policy
                    .ecr_vpc_endpoint
                    .source_vpce
                    .into_iter()
                    .map(|v| v.0)
                    .collect(),
                source_vpc: raw
                    .policy
                    .ecr_vpc_endpoint
                    .source_vpc
                    .into_iter()
                    .map(|v| v.0)
                    .collect(),
            },
            container_insights: ContainerInsights {
                configure: raw.policy.container_insights.configure,
                view: raw.policy.container_insights.view,
                roles: raw.policy.container_insights.roles,
            },
            trust_policy: TrustPolicy {
                manage: raw.trust_policy.manage,
                harden: raw.trust_policy.harden,
            },
            lookup_cache_ttl: raw.lookups.cache_ttl.0,
            lookup_pull_through_cache: raw.lookups.pull_through_cache,
            safety: Safety {
                role_selection: RoleSelection {
                    path_prefixes: raw
                        .safety
                        .role_selection
                        .path_prefixes
                        .into_iter()
                        .map(|p| p.0)
                        .collect(),
                    tags: raw.safety.role_selection.tags,
                },
                ..Safety::new(
                    raw.safety.max_roles_written_per_pass,
                    raw.safety.never_grant.into_iter().map(|g| g.0).collect(),
                )
                .map_err(|e| invalid("safety.never_grant", format!("invalid action glob: {e}")))?
            },
        })
    }

    /// The derivation settings this config asks for.
    pub fn derive_options(&self) -> DeriveOptions {
        DeriveOptions {
            ecr_and_logs_on_ec2: self.ecr_and_logs_on_ec2,
            baseline: self.baseline,
            vpc_endpoint: self.ecr_vpc_endpoint.clone(),
            pull_through_lookups: self.lookup_pull_through_cache,
        }
    }

    /// The effective settings as YAML, defaults filled in.
    pub fn to_effective_yaml(&self) -> String {
        raw::to_yaml(self)
    }
}

/// The Region of an SQS queue URL (`https://sqs.eu-west-1.amazonaws.com/…`, also `.amazonaws.com.cn`).
fn queue_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let region = host.strip_prefix("sqs.")?.split('.').next()?;
    crate::model::is_region(region).then(|| region.to_string())
}

/// The 1-based line of the last key of `path` (`targets[1].regions` → the second `regions:` under `targets`),
/// found by a plain scan of the text: good enough to point a human at the place for checks across keys.
pub(crate) fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let mut index = 0usize;
    let mut wanted: Vec<(String, Option<usize>)> = Vec::new();
    for segment in path.split('.') {
        match segment.split_once('[') {
            Some((key, rest)) => {
                let n = rest.trim_end_matches(']').parse().ok();
                wanted.push((key.to_string(), n));
            }
            None => wanted.push((segment.to_string(), None)),
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    for (key, nth) in wanted {
        let found = (index..lines.len()).find(|&i| {
            let l = lines[i].trim_start().trim_start_matches("- ");
            l.starts_with(&format!("{key}:"))
        })?;
        index = found;
        if let Some(n) = nth {
            // The n-th list item after the key, counting only items as indented as the first one.
            let is_item = |l: &str| l.trim_start().starts_with("- ");
            let indent = |l: &str| l.len() - l.trim_start().len();
            let first = (found + 1..lines.len()).find(|&i| is_item(lines[i]))?;
            let item_indent = indent(lines[first]);
            index = (first..lines.len())
                .filter(|&i| is_item(lines[i]) && indent(lines[i]) == item_indent)
                .nth(n)?;
        }
    }
    Some(index + 1)
}

/// Durations are shown as `humantime` text (`5m`), the way they are written.
mod humantime_serde_text {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests;
