//! The raw configuration: types that mirror the YAML file one to one, with `deny_unknown_fields` everywhere, and
//! the one place that reads YAML (`serde_yaml`). Values that can be checked on their own (account ids, Regions,
//! durations, globs, ARNs, addresses) are checked while deserialising, so their errors carry the key path and line.
//! Checks across keys live in `validate.rs`; the defaults of settings shared with `aws` come from
//! `crate::settings`.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::model::{RoleKey, is_account_id, is_region};
use crate::settings::{BackoffSettings, RateLimit, RateLimits};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub mode: super::Mode,
    pub targets: Vec<RawTarget>,
    #[serde(default)]
    pub task_definitions: RawTaskDefinitions,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default = "default_resync")]
    pub resync_interval: DurationText,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub observe: super::ObserveMode,
    #[serde(default)]
    pub backoff: RawBackoff,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub logging: RawLogging,
    #[serde(default)]
    pub trust_policy: RawTrust,
    #[serde(default)]
    pub lookups: RawLookups,
    #[serde(default)]
    pub safety: RawSafety,
    #[serde(default = "default_settle")]
    pub settle_window: DurationText,
    #[serde(default = "default_jitter")]
    pub resync_jitter: f64,
    #[serde(default)]
    pub rate_limits: RawRateLimits,
    #[serde(default)]
    pub events: Option<RawEvents>,
    #[serde(default)]
    pub reload: RawReload,
    #[serde(default)]
    pub coordination: Option<RawCoordination>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCoordination {
    pub dynamodb_table: String,
    #[serde(default)]
    pub region: Option<RegionName>,
    #[serde(default = "default_lease_duration")]
    pub lease_duration: DurationText,
    #[serde(default = "default_shards")]
    pub shards: u32,
    #[serde(default)]
    pub replica_id: String,
    #[serde(default)]
    pub clock_skew_margin: Option<DurationText>,
}

fn default_lease_duration() -> DurationText {
    DurationText(Duration::from_secs(15))
}

fn default_shards() -> u32 {
    4
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimits {
    #[serde(default = "default_iam_rate")]
    pub iam: RawRateLimit,
    #[serde(default = "default_ecs_rate")]
    pub ecs: RawRateLimit,
    #[serde(default = "default_other_rate")]
    pub other: RawRateLimit,
}

impl Default for RawRateLimits {
    fn default() -> Self {
        RawRateLimits {
            iam: default_iam_rate(),
            ecs: default_ecs_rate(),
            other: default_other_rate(),
        }
    }
}

fn default_iam_rate() -> RawRateLimit {
    RawRateLimit::from(RateLimits::DEFAULT.iam)
}
fn default_ecs_rate() -> RawRateLimit {
    RawRateLimit::from(RateLimits::DEFAULT.ecs)
}
fn default_other_rate() -> RawRateLimit {
    RawRateLimit::from(RateLimits::DEFAULT.other)
}

impl From<RateLimit> for RawRateLimit {
    fn from(limit: RateLimit) -> Self {
        RawRateLimit {
            per_second: limit.per_second.get(),
            burst: limit.burst.get(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEvents {
    pub queue_url: String,
    #[serde(default)]
    pub region: Option<RegionName>,
    #[serde(default = "default_wait_time")]
    pub wait_time: DurationText,
}

fn default_wait_time() -> DurationText {
    DurationText(Duration::from_secs(20))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReload {
    #[serde(default = "default_true")]
    pub watch_file: bool,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: DurationText,
}

impl Default for RawReload {
    fn default() -> Self {
        RawReload {
            watch_file: true,
            poll_interval: default_poll_interval(),
        }
    }
}

fn default_poll_interval() -> DurationText {
    DurationText(Duration::from_secs(10))
}

fn default_settle() -> DurationText {
    DurationText(Duration::from_secs(30))
}

fn default_jitter() -> f64 {
    0.1
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoleSelection {
    #[serde(default)]
    pub path_prefixes: Vec<IamPath>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSafety {
    #[serde(default = "default_max_roles_written")]
    pub max_roles_written_per_pass: usize,
    #[serde(default = "default_never_grant")]
    pub never_grant: Vec<GlobText>,
    #[serde(default)]
    pub role_selection: RawRoleSelection,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety {
            max_roles_written_per_pass: default_max_roles_written(),
            never_grant: default_never_grant(),
            role_selection: RawRoleSelection::default(),
        }
    }
}

fn default_max_roles_written() -> usize {
    25
}

fn default_never_grant() -> Vec<GlobText> {
    ["iam:*", "sts:*", "organizations:*"]
        .into_iter()
        .map(|g| GlobText(g.to_string()))
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrust {
    #[serde(default)]
    pub manage: bool,
    #[serde(default)]
    pub harden: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLookups {
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl: DurationText,
    #[serde(default = "default_true")]
    pub pull_through_cache: bool,
}

impl Default for RawLookups {
    fn default() -> Self {
        RawLookups {
            cache_ttl: default_cache_ttl(),
            pull_through_cache: true,
        }
    }
}

fn default_cache_ttl() -> DurationText {
    DurationText(Duration::from_secs(600))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVpcEndpoint {
    #[serde(default)]
    pub source_vpce: Vec<VpcEndpointId>,
    #[serde(default)]
    pub source_vpc: Vec<VpcId>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInsights {
    #[serde(default)]
    pub configure: bool,
    #[serde(default)]
    pub view: bool,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub account: AccountId,
    pub regions: Vec<RegionName>,
    #[serde(default)]
    pub assume_role_arn: Option<RoleArn>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub session_name: Option<SessionName>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTaskDefinitions {
    #[serde(default = "default_include")]
    pub include_families: Vec<GlobText>,
    #[serde(default)]
    pub exclude_families: Vec<GlobText>,
    #[serde(default = "default_true")]
    pub ecr_and_logs_on_ec2: bool,
    #[serde(default)]
    pub include_inactive_in_use: bool,
    #[serde(default = "default_grace")]
    pub prune_grace_period: DurationText,
}

fn default_grace() -> DurationText {
    DurationText(Duration::from_secs(3600))
}

impl Default for RawTaskDefinitions {
    fn default() -> Self {
        RawTaskDefinitions {
            include_families: default_include(),
            exclude_families: Vec::new(),
            ecr_and_logs_on_ec2: true,
            include_inactive_in_use: false,
            prune_grace_period: default_grace(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default = "default_policy_name")]
    pub inline_name: PolicyName,
    #[serde(default = "default_spill_path")]
    pub spill_path: SpillPath,
    #[serde(default)]
    pub baseline: crate::derive::Baseline,
    #[serde(default)]
    pub ecr_vpc_endpoint: RawVpcEndpoint,
    #[serde(default)]
    pub container_insights: RawInsights,
}

impl Default for RawPolicy {
    fn default() -> Self {
        RawPolicy {
            inline_name: default_policy_name(),
            spill_path: default_spill_path(),
            baseline: crate::derive::Baseline::default(),
            ecr_vpc_endpoint: RawVpcEndpoint::default(),
            container_insights: RawInsights::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    #[serde(default = "default_initial")]
    pub initial_interval: DurationText,
    #[serde(default = "default_max_interval")]
    pub max_interval: DurationText,
    #[serde(default = "default_max_elapsed")]
    pub max_elapsed: DurationText,
}

impl Default for RawBackoff {
    fn default() -> Self {
        RawBackoff {
            initial_interval: default_initial(),
            max_interval: default_max_interval(),
            max_elapsed: default_max_elapsed(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_listen(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    #[serde(default)]
    pub format: super::LogFormat,
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for RawLogging {
    fn default() -> Self {
        RawLogging {
            format: super::LogFormat::default(),
            level: default_level(),
        }
    }
}

fn default_resync() -> DurationText {
    DurationText(Duration::from_secs(300))
}
fn default_concurrency() -> usize {
    4
}
fn default_include() -> Vec<GlobText> {
    vec![GlobText("*".to_string())]
}
fn default_true() -> bool {
    true
}
fn default_policy_name() -> PolicyName {
    PolicyName("execrole".to_string())
}

fn default_spill_path() -> SpillPath {
    SpillPath("/execrole/".to_string())
}
fn default_initial() -> DurationText {
    DurationText(BackoffSettings::DEFAULT.initial_interval)
}
fn default_max_interval() -> DurationText {
    DurationText(BackoffSettings::DEFAULT.max_interval)
}
fn default_max_elapsed() -> DurationText {
    DurationText(BackoffSettings::DEFAULT.max_elapsed)
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9464))
}
fn default_level() -> String {
    "info".to_string()
}

/// Read and deserialise a config file's text. Errors name the file, the key path and the line.
pub(crate) fn parse(file: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let path = if path == "." { String::new() } else { path };
        // serde_yaml knows where structural errors are, but reports errors raised by a value's own checks at the
        // start of the document: then the key path finds the line.
        let location = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .filter(|&(line, column)| path.is_empty() || (line, column) != (1, 1));
        let (line, column) = match location {
            Some((line, column)) => (Some(line), Some(column)),
            None => (super::line_of_key(text, &path), None),
        };
        ConfigError::Invalid {
            file: file.display().to_string(),
            path,
            line,
            column,
            message: strip_location(&inner.to_string()),
        }
    })
}

/// Render the effective settings as YAML (for `check-config`).
pub(crate) fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
}

/// serde_yaml appends " at line L column C" (and may prefix the path); we report both separately.
fn strip_location(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    message.to_string()
}

/// A 12-digit account id, which must be quoted in YAML (an unquoted number loses leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccountId(pub String);

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = AccountId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted 12-digit account id")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AccountId, E> {
                if is_account_id(v) {
                    Ok(AccountId(v.to_string()))
                } else {
                    Err(E::custom(format!("`{v}` is not a 12-digit account id")))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AccountId, E> {
                Err(E::custom(format!(
                    "account id {v} must be quoted (\"{v:012}\"): YAML reads an unquoted number and drops leading zeros"
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AccountId, E> {
                Err(E::custom(format!("`{v}` is not a 12-digit account id")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A Region name such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegionName(pub String);

impl<'de> Deserialize<'de> for RegionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if is_region(&text) {
            Ok(RegionName(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not a Region name (like `eu-west-1`)"
            )))
        }
    }
}

/// A duration written like `30s`, `5m`, `1h`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(DurationText)
            .map_err(|e| {
                de::Error::custom(format!(
                    "`{text}` is not a duration like `30s`, `5m` or `1h` ({e})"
                ))
            })
    }
}

/// A family glob (`*`, `?`, `[…]`, `{a,b}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GlobText(pub String);

impl<'de> Deserialize<'de> for GlobText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        globset::Glob::new(&text)
            .map(|_| GlobText(text.clone()))
            .map_err(|e| de::Error::custom(format!("`{text}` is not a valid glob: {e}")))
    }
}

/// An IAM role ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoleArn(pub String, pub RoleKey);

impl<'de> Deserialize<'de> for RoleArn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match RoleKey::from_role_arn(&text) {
            Some(key) => Ok(RoleArn(text, key)),
            None => Err(de::Error::custom(format!(
                "`{text}` is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
            ))),
        }
    }
}

/// An IAM policy name: 1–128 of letters, digits and `+=,.@_-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PolicyName(pub String);

/// A name of `lengths` characters among IAM's name characters (letters, digits and `+=,.@_-`), or an error that
/// says it is not `what`.
fn iam_name<'de, D: Deserializer<'de>>(
    d: D,
    lengths: std::ops::RangeInclusive<usize>,
    what: &str,
) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let valid = lengths.contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid {
        Ok(text)
    } else {
        Err(de::Error::custom(format!(
            "`{text}` is not {what} ({}-{} letters, digits and +=,.@_-)",
            lengths.start(),
            lengths.end()
        )))
    }
}

impl<'de> Deserialize<'de> for PolicyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        iam_name(d, 1..=128, "an IAM policy name").map(PolicyName)
    }
}

/// An STS role session name (`targets[].session_name`): 2–64 of letters, digits and `+=,.@_-`, as `AssumeRole`
/// accepts (anything else would fail every request to the account, long after the config was loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionName(pub String);

impl<'de> Deserialize<'de> for SessionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        iam_name(d, 2..=64, "a role session name").map(SessionName)
    }
}

/// The IAM path of the spill policies (`/execrole/`): IAM's path rules (1–512 printable ASCII characters,
/// starting and ending with `/`), and no empty segment (`//`), which the deploy templates' pattern refuses too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpillPath(pub String);

impl<'de> Deserialize<'de> for SpillPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let valid = text.len() <= 512
            && text.starts_with('/')
            && text.ends_with('/')
            && !text.contains("//")
            && text.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if valid {
            Ok(SpillPath(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not an IAM path for policies: 1-512 printable ASCII characters without spaces, \
                 starting and ending with `/`, no empty segment (like `/execrole/`)"
            )))
        }
    }
}

/// A VPC endpoint id (`vpce-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VpcEndpointId(pub String);

impl<'de> Deserialize<'de> for VpcEndpointId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if is_aws_id(&text, "vpce-") {
            Ok(VpcEndpointId(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not a VPC endpoint id (vpce-0123456789abcdef0)"
            )))
        }
    }
}

/// A VPC id (`vpc-…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VpcId(pub String);

impl<'de> Deserialize<'de> for VpcId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if is_aws_id(&text, "vpc-") {
            Ok(VpcId(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not a VPC id (vpc-0123456789abcdef0)"
            )))
        }
    }
}

fn is_aws_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// An IAM path (`/`, `/ecs/`): starts and ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IamPath(pub String);

impl<'de> Deserialize<'de> for IamPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.starts_with('/') && text.ends_with('/') {
            Ok(IamPath(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not an IAM path: it must start and end with `/` (like `/ecs/`)"
            )))
        }
    }
}
