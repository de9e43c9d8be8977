//! Settings that the configuration and the AWS shell share: client-side rate limits per service and the backoff
//! of retried requests, each type and each default written once here.
//!
//! A leaf module: it imports nothing else of the crate, so `config` (which validates and renders them) and `aws`
//! (which builds token buckets and backoffs from them) both use it without a cycle. It does not build buckets or
//! backoffs (see `aws`) nor read YAML (see `config`).

use std::num::NonZeroU32;
use std::time::Duration;

use serde::Serialize;

/// The service labels with a client-side rate limit bucket of their own. Any other label shares one more bucket at
/// the `other` rate.
pub const RATE_LIMITED_SERVICES: [&str; 8] = [
    "ecs",
    "iam",
    "secretsmanager",
    "ssm",
    "kms",
    "ecr",
    "sts",
    "sqs",
];

/// The services whose quotas are the account's in every Region (one bucket per account); every other service's
/// quotas are per account and Region (one bucket per account, Region and service).
pub const GLOBAL_SERVICES: [&str; 1] = ["iam"];

/// A token bucket: a steady rate of requests and the burst allowed on top of it after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Requests a second, sustained.
    pub per_second: NonZeroU32,
    /// Requests at once after a quiet spell (the bucket's size).
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// A limit, or `None` when either number is zero.
    pub const fn new(per_second: u32, burst: u32) -> Option<RateLimit> {
        match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            _ => None,
        }
    }

    /// A limit for a constant; a zero fails to compile where it is evaluated at compile time.
    const fn constant(per_second: u32, burst: u32) -> RateLimit {
        match RateLimit::new(per_second, burst) {
            Some(limit) => limit,
            None => panic!("rate limits are not zero"),
        }
    }
}

/// The client-side rate limits of one account (and Region, for regional services), per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimits {
    /// IAM (5/s, burst 10 by default; reads and writes share one bucket per account, IAM being global): its
    /// control-plane quotas are low and shared with every deployment tool.
    pub iam: RateLimit,
    /// ECS (10/s, burst 20 by default), per account and Region.
    pub ecs: RateLimit,
    /// Each other service (Secrets Manager, SSM, KMS, ECR, STS, SQS), each with its own bucket at this rate per
    /// account and Region (10/s, burst 20 by default).
    pub other: RateLimit,
}

impl RateLimits {
    /// The defaults, as a constant.
    pub const DEFAULT: RateLimits = RateLimits {
        iam: RateLimit::constant(5, 10),
        ecs: RateLimit::constant(10, 20),
        other: RateLimit::constant(10, 20),
    };

    /// The limit for a service label (`iam`, `ecs`; anything else gets `other`).
    pub fn for_service(&self, service: &str) -> RateLimit {
        match service {
            "iam" => self.iam,
            "ecs" => self.ecs,
            _ => self.other,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::DEFAULT
    }
}

/// Exponential backoff settings for retryable AWS errors: how one request is retried in place, and the intervals of
/// the per-role backoff of the work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BackoffSettings {
    /// The first wait.
    #[serde(with = "duration_text")]
    pub initial_interval: Duration,
    /// The longest single wait.
    #[serde(with = "duration_text")]
    pub max_interval: Duration,
    /// How long one AWS request is retried in place before its error goes back to the work queue (which then
    /// backs the role off, without giving up).
    #[serde(with = "duration_text")]
    pub max_elapsed: Duration,
}

impl BackoffSettings {
    /// The defaults, as a constant: 500 ms, at most 30 s, give up on one request after 10 s.
    pub const DEFAULT: BackoffSettings = BackoffSettings {
        initial_interval: Duration::from_millis(500),
        max_interval: Duration::from_secs(30),
        max_elapsed: Duration::from_secs(10),
    };
}

impl Default for BackoffSettings {
    fn default() -> Self {
        BackoffSettings::DEFAULT
    }
}

/// Durations are shown as `humantime` text (`5m`), the way they are written in the config file.
pub(crate) mod duration_text {
    use std::time::Duration;

    /// Serialise a duration as `humantime` text.
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_is_not_a_rate_limit() {
        assert_eq!(RateLimit::new(0, 1), None);
        assert_eq!(RateLimit::new(1, 0), None);
        assert_eq!(
            RateLimit::new(2, 4).map(|l| (l.per_second.get(), l.burst.get())),
            Some((2, 4))
        );
    }
}
