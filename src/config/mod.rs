//! Configuration in two stages (as ripgrep does it): `raw` mirrors the YAML file and rejects unknown keys; this
//! module holds the validated [`Config`], built in one place (`validate`), and renders the effective settings
//! for `check-config`.
//!
//! Every error names the file, the key path and the line. This module does not watch the file for changes; the
//! controller decides when to load it again.

mod raw;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

pub use crate::settings::{BackoffSettings, RateLimit, RateLimits};

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

/// How the controller reads IAM to observe roles (`observe`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObserveMode {
    /// Read in bulk when that costs fewer requests than per-role reads (estimated from the last pass); per role
    /// when bulk reads are denied. The default.
    #[default]
    Auto,
    /// Read each account's IAM in bulk (`GetAccountAuthorizationDetails`): no per-role read.
    Bulk,
    /// Read each role with its own requests (`GetRole`, `ListRolePolicies`, `GetRolePolicy`,
    /// `ListAttachedRolePolicies`).
    PerRole,
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

/// Event-driven convergence: the SQS queue fed by EventBridge rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Events {
    /// The queue URL.
    pub queue_url: String,
    /// The queue's Region (from the URL when not given).
    pub region: String,
    /// The long-poll wait of each receive (at most 20 s).
    #[serde(with = "crate::settings::duration_text")]
    pub wait_time: Duration,
}

/// Several replicas sharing the work through leases in a DynamoDB table (`coordination:`); absent, one process
/// does everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coordination {
    /// The lease table (partition key `lease`, a string); execrole never creates or deletes it.
    pub dynamodb_table: String,
    /// The table's Region; `None`: the SDK's Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// A holder that cannot renew within this stops writing before it ends; renewals come every third of it.
    #[serde(with = "crate::settings::duration_text")]
    pub lease_duration: Duration,
    /// Target accounts are hashed (rendezvous hashing of the account id) into this many shards, one lease each.
    pub shards: u32,
    /// This replica's name in the table; empty: hostname, pid and a random suffix, chosen at start.
    pub replica_id: String,
    /// The most the clocks of two replicas may differ: a holder stops writing this long before its lease ends.
    #[serde(with = "crate::settings::duration_text")]
    pub clock_skew_margin: Duration,
}

/// When a changed config file is picked up (SIGHUP always reloads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Reload {
    /// Poll the file for changes.
    pub watch_file: bool,
    /// How often the file is checked.
    #[serde(with = "crate::settings::duration_text")]
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
    #[serde(with = "crate::settings::duration_text")]
    pub prune_grace_period: Duration,
    /// The name of the inline policy the controller owns on each execution role.
    pub inline_policy_name: String,
    /// The IAM path the controller creates its spill policies under, and where it looks for them
    /// (`policy.spill_path`, `/execrole/` by default).
    pub spill_path: String,
    /// Time between full passes.
    #[serde(with = "crate::settings::duration_text")]
    pub resync_interval: Duration,
    /// Each resync waits the interval times a random factor in `1 ± resync_jitter`, so that many controllers
    /// (or targets) do not fire at once.
    pub resync_jitter: f64,
    /// After a write, the role is judged again only after this long (IAM is eventually consistent).
    #[serde(with = "crate::settings::duration_text")]
    pub settle_window: Duration,
    /// Client-side rate limits per account and service.
    pub rate_limits: RateLimits,
    /// Event-driven convergence, when configured.
    pub events: Option<Events>,
    /// Config hot reload.
    pub reload: Reload,
    /// How many roles are reconciled at once, per account.
    pub concurrency: usize,
    /// How roles are read from IAM: `auto`, `bulk` or `per-role`.
    pub observe: ObserveMode,
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
    #[serde(with = "crate::settings::duration_text")]
    pub lookup_cache_ttl: Duration,
    /// Whether pull-through-cache rules are looked up (rule 2).
    pub lookup_pull_through_cache: bool,
    /// Safety rails for `enforce` mode.
    pub safety: Safety,
    /// Several replicas sharing the targets through leases, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<Coordination>,
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

/// The largest config text accepted: far more than any real config (the commented example is a few KiB), and
/// small enough that parsing it stays within tens of MiB.
pub const MAX_CONFIG_BYTES: usize = 256 << 10;

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError::ReadFailed {
            file: file.display().to_string(),
            message: e.to_string(),
        })?;
        Config::from_yaml(file, &text)
    }

    /// Parse and validate config text; `file` is used in error messages. Text over [`MAX_CONFIG_BYTES`] is refused
    /// before parsing: the YAML parser needs up to a hundred times the size of the text in memory.
    pub fn from_yaml(file: &Path, text: &str) -> Result<Config, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid {
                file: file.display().to_string(),
                path: String::new(),
                line: None,
                column: None,
                message: format!(
                    "the file is {} bytes; a config file may be at most {} KiB",
                    text.len(),
                    MAX_CONFIG_BYTES >> 10
                ),
            });
        }
        let raw = raw::parse(file, text)?;
        validate::from_raw(file, text, raw)
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

#[cfg(test)]
mod tests;
