//! Checks across keys: the one place where a raw config becomes a validated [`Config`]. [`from_raw`] calls one
//! validator per section of the file, in a fixed order (so the first error reported does not depend on chance),
//! and assembles the result. Values that can be checked on their own are checked earlier, while deserialising
//! (`raw`). Every error names the file, the key path and its line.

use std::path::Path;
use std::time::Duration;

use super::raw::{self, RawConfig};
use super::{
    BackoffSettings, Config, ConfigError, ContainerInsights, Coordination, Events, RateLimit,
    RateLimits, Reload, RoleSelection, Safety, Scope, Target, TrustPolicy, line_of_key,
};
use crate::derive::VpcEndpointCondition;
use crate::model::queue_region;

/// Where errors point: the file and its text (to find a key's line).
struct Source<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// The error for a bad value at `path`.
    fn invalid(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.display().to_string(),
            path: path.to_string(),
            line: line_of_key(self.text, path),
            column: None,
            message: message.into(),
        }
    }
}

/// The validated config of a raw one: each section's checks in turn, then the parts put together.
pub(super) fn from_raw(file: &Path, text: &str, raw: RawConfig) -> Result<Config, ConfigError> {
    let at = Source { file, text };
    let targets = targets(&at, &raw.targets)?;
    let (scope, include_families, exclude_families) = scope(&at, &raw.task_definitions)?;
    let trust_policy = trust_policy(&at, &raw.trust_policy)?;
    let container_insights = container_insights(&at, &raw.policy.container_insights)?;
    let safety = safety(&at, &raw.safety)?;
    let backoff = pacing(&at, &raw)?;
    let rate_limits = rate_limits(&at, &raw.rate_limits)?;
    let events = raw.events.map(|e| events(&at, e)).transpose()?;
    let reload = reload(&at, &raw.reload)?;
    let coordination = raw.coordination.map(|c| coordination(&at, c)).transpose()?;
    logging(&at, &raw.logging)?;
    Ok(Config {
        source: file.to_path_buf(),
        mode: raw.mode,
        targets,
        scope,
        include_families,
        exclude_families,
        ecr_and_logs_on_ec2: raw.task_definitions.ecr_and_logs_on_ec2,
        include_inactive_in_use: raw.task_definitions.include_inactive_in_use,
        prune_grace_period: raw.task_definitions.prune_grace_period.0,
        inline_policy_name: raw.policy.inline_name.0,
        spill_path: raw.policy.spill_path.0,
        resync_interval: raw.resync_interval.0,
        resync_jitter: raw.resync_jitter,
        settle_window: raw.settle_window.0,
        rate_limits,
        events,
        reload,
        concurrency: raw.concurrency,
        observe: raw.observe,
        backoff,
        http_listen: raw.http.listen,
        log_format: raw.logging.format,
        log_level: raw.logging.level,
        baseline: raw.policy.baseline,
        ecr_vpc_endpoint: vpc_endpoint(raw.policy.ecr_vpc_endpoint),
        container_insights,
        trust_policy,
        lookup_cache_ttl: raw.lookups.cache_ttl.0,
        lookup_pull_through_cache: raw.lookups.pull_through_cache,
        safety,
        coordination,
    })
}

/// `targets`: at least one; per target at least one Region, none twice, an account listed once, an assumed role in
/// the target's own account, and an external id only with a role to assume.
fn targets(at: &Source, raw: &[raw::RawTarget]) -> Result<Vec<Target>, ConfigError> {
    if raw.is_empty() {
        return Err(at.invalid("targets", "at least one target is needed"));
    }
    let mut targets: Vec<Target> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let path = format!("targets[{i}]");
        if t.regions.is_empty() {
            return Err(at.invalid(&format!("{path}.regions"), "at least one Region is needed"));
        }
        if targets.iter().any(|other| other.account == t.account.0) {
            return Err(at.invalid(
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
            return Err(at.invalid(
                &format!("{path}.assume_role_arn"),
                format!(
                    "role `{}` is in account {}, not in the target's account {}",
                    role.0, role.1.account, t.account.0
                ),
            ));
        }
        if t.external_id.is_some() && t.assume_role_arn.is_none() {
            return Err(at.invalid(
                &format!("{path}.external_id"),
                "external_id is only used with assume_role_arn",
            ));
        }
        let mut regions: Vec<String> = t.regions.iter().map(|r| r.0.clone()).collect();
        regions.sort();
        if regions.windows(2).any(|w| w[0] == w[1]) {
            return Err(at.invalid(&format!("{path}.regions"), "a Region is listed twice"));
        }
        targets.push(Target {
            account: t.account.0.clone(),
            regions,
            assume_role_arn: t.assume_role_arn.as_ref().map(|r| r.0.clone()),
            external_id: t.external_id.clone(),
            session_name: t
                .session_name
                .as_ref()
                .map_or_else(|| "execrole".to_string(), |name| name.0.clone()),
        });
    }
    Ok(targets)
}

/// `task_definitions`: the family globs, as a scope and as written.
fn scope(
    at: &Source,
    raw: &raw::RawTaskDefinitions,
) -> Result<(Scope, Vec<String>, Vec<String>), ConfigError> {
    let include: Vec<String> = raw.include_families.iter().map(|g| g.0.clone()).collect();
    let exclude: Vec<String> = raw.exclude_families.iter().map(|g| g.0.clone()).collect();
    let scope = Scope::new(&include, &exclude)
        .map_err(|e| at.invalid("task_definitions", format!("invalid family glob: {e}")))?;
    Ok((scope, include, exclude))
}

/// `trust_policy`: `harden` only with `manage`.
fn trust_policy(at: &Source, raw: &raw::RawTrust) -> Result<TrustPolicy, ConfigError> {
    if raw.harden && !raw.manage {
        return Err(at.invalid(
            "trust_policy.harden",
            "harden only applies with manage: true",
        ));
    }
    Ok(TrustPolicy {
        manage: raw.manage,
        harden: raw.harden,
    })
}

/// `policy.container_insights`: roles only when something is granted.
fn container_insights(
    at: &Source,
    raw: &raw::RawInsights,
) -> Result<ContainerInsights, ConfigError> {
    if !raw.roles.is_empty() && !raw.configure && !raw.view {
        return Err(at.invalid(
            "policy.container_insights.roles",
            "roles are listed but neither configure nor view is true",
        ));
    }
    Ok(ContainerInsights {
        configure: raw.configure,
        view: raw.view,
        roles: raw.roles.clone(),
    })
}

/// `safety`: a cap of at least one role, the never-grant globs, the role selection.
fn safety(at: &Source, raw: &raw::RawSafety) -> Result<Safety, ConfigError> {
    if raw.max_roles_written_per_pass == 0 {
        return Err(at.invalid(
            "safety.max_roles_written_per_pass",
            "must be at least 1 (use mode: dry-run to write nothing)",
        ));
    }
    let never_grant = raw.never_grant.iter().map(|g| g.0.clone()).collect();
    let safety = Safety::new(raw.max_roles_written_per_pass, never_grant)
        .map_err(|e| at.invalid("safety.never_grant", format!("invalid action glob: {e}")))?;
    Ok(Safety {
        role_selection: RoleSelection {
            path_prefixes: raw
                .role_selection
                .path_prefixes
                .iter()
                .map(|p| p.0.clone())
                .collect(),
            tags: raw.role_selection.tags.clone(),
        },
        ..safety
    })
}

/// The pace of work: `concurrency`, `resync_interval`, `settle_window`, `resync_jitter` and `backoff` (whose
/// settings it answers).
fn pacing(at: &Source, raw: &RawConfig) -> Result<BackoffSettings, ConfigError> {
    if raw.concurrency == 0 {
        return Err(at.invalid("concurrency", "must be at least 1"));
    }
    if raw.resync_interval.0 < Duration::from_secs(1) {
        return Err(at.invalid("resync_interval", "must be at least 1s"));
    }
    let backoff = BackoffSettings {
        initial_interval: raw.backoff.initial_interval.0,
        max_interval: raw.backoff.max_interval.0,
        max_elapsed: raw.backoff.max_elapsed.0,
    };
    if backoff.initial_interval.is_zero() {
        return Err(at.invalid(
            "backoff.initial_interval",
            "must be longer than 0s (a zero backoff retries in a tight loop)",
        ));
    }
    if raw.settle_window.0 < Duration::from_secs(1) {
        return Err(at.invalid(
            "settle_window",
            "must be at least 1s (IAM needs time to settle after a write)",
        ));
    }
    if backoff.initial_interval > backoff.max_interval {
        return Err(at.invalid(
            "backoff.initial_interval",
            "must not be longer than backoff.max_interval",
        ));
    }
    if !(0.0..1.0).contains(&raw.resync_jitter) {
        return Err(at.invalid(
            "resync_jitter",
            format!(
                "{} is not a fraction in [0, 1) (0.1 waits 90 % to 110 % of resync_interval)",
                raw.resync_jitter
            ),
        ));
    }
    Ok(backoff)
}

/// `rate_limits`: every rate and burst at least 1.
fn rate_limits(at: &Source, raw: &raw::RawRateLimits) -> Result<RateLimits, ConfigError> {
    let rate = |path: &str, r: &raw::RawRateLimit| {
        RateLimit::new(r.per_second, r.burst)
            .ok_or_else(|| at.invalid(path, "per_second and burst must be at least 1"))
    };
    Ok(RateLimits {
        iam: rate("rate_limits.iam", &raw.iam)?,
        ecs: rate("rate_limits.ecs", &raw.ecs)?,
        other: rate("rate_limits.other", &raw.other)?,
    })
}

/// `events`: a queue URL (whose Region is read from it unless given) and a long-poll wait SQS accepts.
fn events(at: &Source, raw: raw::RawEvents) -> Result<Events, ConfigError> {
    let region = match raw.region {
        Some(r) => r.0,
        None => queue_region(&raw.queue_url)
            .map(str::to_string)
            .ok_or_else(|| {
                at.invalid(
                    "events.queue_url",
                    format!(
                        "`{}` is not an SQS queue URL like https://sqs.eu-west-1.amazonaws.com/123456789012/name; \
                         give events.region for another form",
                        raw.queue_url
                    ),
                )
            })?,
    };
    if !(raw.queue_url.starts_with("https://") || raw.queue_url.starts_with("http://")) {
        return Err(at.invalid(
            "events.queue_url",
            format!("`{}` is not a URL", raw.queue_url),
        ));
    }
    if raw.wait_time.0 > Duration::from_secs(20) || raw.wait_time.0 < Duration::from_secs(1) {
        return Err(at.invalid(
            "events.wait_time",
            "must be from 1s to 20s (an SQS long poll waits at most 20s; 0s would poll in a tight loop)",
        ));
    }
    Ok(Events {
        queue_url: raw.queue_url,
        region,
        wait_time: raw.wait_time.0,
    })
}

/// `reload`: a poll interval of at least 100 ms.
fn reload(at: &Source, raw: &raw::RawReload) -> Result<Reload, ConfigError> {
    if raw.poll_interval.0 < Duration::from_millis(100) {
        return Err(at.invalid("reload.poll_interval", "must be at least 100ms"));
    }
    Ok(Reload {
        watch_file: raw.watch_file,
        poll_interval: raw.poll_interval.0,
    })
}

/// The longest lease: a replica that dies holds its shards this long, so more than a few minutes is a mistake.
const MAX_LEASE_DURATION: Duration = Duration::from_secs(600);

/// The most shards: each is one item renewed every third of a lease, so more shards cost requests, not speed.
const MAX_SHARDS: u32 = 256;

/// `coordination`: a DynamoDB table name, a lease of 1 s to 10 min, 1 to 256 shards, a replica id that fits a
/// key, and a clock-skew margin (default a fifth of the lease) shorter than half the lease, so a holder that
/// renews every third of the lease is never without a valid lease while it can renew.
fn coordination(at: &Source, raw: raw::RawCoordination) -> Result<Coordination, ConfigError> {
    let table = &raw.dynamodb_table;
    let table_ok = (3..=255).contains(&table.len())
        && table
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !table_ok {
        return Err(at.invalid(
            "coordination.dynamodb_table",
            format!("`{table}` is not a DynamoDB table name (3-255 letters, digits and _.-)"),
        ));
    }
    let lease = raw.lease_duration.0;
    if lease < Duration::from_secs(1) || lease > MAX_LEASE_DURATION {
        return Err(at.invalid(
            "coordination.lease_duration",
            "must be from 1s to 10m (a dead replica's shards wait this long for a new holder)",
        ));
    }
    if raw.shards == 0 || raw.shards > MAX_SHARDS {
        return Err(at.invalid(
            "coordination.shards",
            format!("{} is not from 1 to {MAX_SHARDS}", raw.shards),
        ));
    }
    let id_ok = raw.replica_id.len() <= 128 && raw.replica_id.chars().all(|c| c.is_ascii_graphic());
    if !id_ok {
        return Err(at.invalid(
            "coordination.replica_id",
            "must be at most 128 printable characters without spaces (empty: hostname, pid and a random suffix)",
        ));
    }
    let margin = raw.clock_skew_margin.map_or(lease / 5, |m| m.0);
    if margin.is_zero() || margin >= lease / 2 {
        return Err(at.invalid(
            "coordination.clock_skew_margin",
            format!(
                "must be longer than 0s and shorter than half of lease_duration ({}): clocks are never exactly in step, and a holder needs time to renew",
                humantime::format_duration(lease / 2)
            ),
        ));
    }
    Ok(Coordination {
        dynamodb_table: raw.dynamodb_table,
        region: raw.region.map(|r| r.0),
        lease_duration: lease,
        shards: raw.shards,
        replica_id: raw.replica_id,
        clock_skew_margin: margin,
    })
}

/// `logging.level`: a filter `tracing` accepts.
fn logging(at: &Source, raw: &raw::RawLogging) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(&raw.level).map_err(|e| {
        at.invalid(
            "logging.level",
            format!("`{}` is not a log filter: {e}", raw.level),
        )
    })?;
    Ok(())
}

/// `policy.ecr_vpc_endpoint`: the endpoint and VPC ids, as written.
fn vpc_endpoint(raw: raw::RawVpcEndpoint) -> VpcEndpointCondition {
    VpcEndpointCondition {
        source_vpce: raw.source_vpce.into_iter().map(|v| v.0).collect(),
        source_vpc: raw.source_vpc.into_iter().map(|v| v.0).collect(),
    }
}
