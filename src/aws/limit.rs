//! Client-side rate limits: a token bucket per AWS service for one account (and per Region for regional services, whose
//! quotas AWS counts per account and Region), drawn from before every request attempt (retries included), so the
//! controller stays under API quotas that it shares with everything else in the account.
//! It owns the buckets, their rates and the waiting for a permit. It does not retry or classify errors
//! (`retry`), nor own the limits' type and defaults (`crate::settings`), and it does not decide which clients share a bucket: the client factory builds one [`Limiters`] per
//! account and hands it to every client of that account.
//!
//! The buckets are `governor`'s (GCRA), used from this file only, so it can be swapped. They read time from
//! `tokio::time` (the same [`TokioClock`] as the retries) and waits sleep in `tokio::time`, so tests pause and advance
//! the clock instead of waiting, and a paused test clock governs rate limits and backoff alike.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::retry::TokioClock;
use crate::metrics::Metrics;
use crate::settings::{GLOBAL_SERVICES, RATE_LIMITED_SERVICES, RateLimit, RateLimits};

/// The bucket quota of a limit.
fn quota(limit: RateLimit) -> Quota {
    Quota::per_second(limit.per_second).allow_burst(limit.burst)
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<std::time::Instant>>;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One bucket per service in [`RATE_LIMITED_SERVICES`], and one shared by any other label.
struct Buckets {
    by_service: BTreeMap<&'static str, Bucket>,
    unlisted: Bucket,
}

impl Buckets {
    /// Full buckets at these limits.
    fn new(limits: &RateLimits) -> Buckets {
        let bucket = |limit: RateLimit| RateLimiter::direct_with_clock(quota(limit), TokioClock);
        Buckets {
            by_service: RATE_LIMITED_SERVICES
                .iter()
                .map(|&service| (service, bucket(limits.for_service(service))))
                .collect(),
            unlisted: bucket(limits.other),
        }
    }

    fn bucket(&self, service: &str) -> &Bucket {
        self.by_service.get(service).unwrap_or(&self.unlisted)
    }
}

/// The token buckets of one account: for global services ([`GLOBAL_SERVICES`]: IAM) one per service for the
/// account, for regional services one per service and Region (built on first use), as AWS counts their quotas, so
/// that an account watched in N Regions gets each Region's full rate. Share it (in an `Arc`) between every client
/// of the account.
pub struct Limiters {
    limits: RateLimits,
    /// Global services, and requests that name no Region.
    account: Arc<Buckets>,
    /// Regional services, per Region.
    regions: Mutex<BTreeMap<String, Arc<Buckets>>>,
}

impl fmt::Debug for Limiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiters")
            .field(
                "services",
                &self.account.by_service.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Limiters {
    fn default() -> Self {
        Limiters::new(&RateLimits::default())
    }
}

impl Limiters {
    /// Full buckets at these limits.
    pub fn new(limits: &RateLimits) -> Limiters {
        Limiters {
            limits: *limits,
            account: Arc::new(Buckets::new(limits)),
            regions: Mutex::default(),
        }
    }

    /// The buckets a request to `service` in `region` draws from.
    fn buckets(&self, service: &str, region: Option<&str>) -> Arc<Buckets> {
        match region.filter(|_| !GLOBAL_SERVICES.contains(&service)) {
            Some(region) => {
                // The map is only ever inserted into, so it is whole even if a holder of the lock panicked.
                let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
                regions
                    .entry(region.to_string())
                    .or_insert_with(|| Arc::new(Buckets::new(&self.limits)))
                    .clone()
            }
            None => self.account.clone(),
        }
    }

    /// Take a permit for one request to `service`: at once when the bucket has one; otherwise count a wait in
    /// `execrole_rate_limit_waits_total`, sleep until a permit is due, and add the time waited to
    /// `execrole_rate_limit_wait_seconds_total`. Dropping the future while it waits takes nothing.
    pub async fn acquire(&self, service: &'static str, region: Option<&str>, metrics: &Metrics) {
        let buckets = self.buckets(service, region);
        let bucket = buckets.bucket(service);
        let Err(mut not_until) = bucket.check() else {
            return;
        };
        metrics.observe_rate_limit_wait(service);
        let started = tokio::time::Instant::now();
        loop {
            // At least a millisecond, so that a clock that does not move cannot make this spin.
            let wait = not_until
                .wait_time_from(TokioClock.now())
                .max(Duration::from_millis(1));
            tokio::time::sleep(wait).await;
            match bucket.check() {
                Ok(()) => break,
                // Another request took the permit first: wait for the next one.
                Err(later) => not_until = later,
            }
        }
        metrics.observe_rate_limit_waited(service, started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use tokio::time::Instant;

    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn limits() -> RateLimits {
        RateLimits {
            iam: limit(5, 10),
            ecs: limit(10, 3),
            other: limit(2, 2),
        }
    }

    /// Take `n` permits for `service`; answers how long that took on the (paused) clock.
    async fn take(
        limiters: &Limiters,
        metrics: &Metrics,
        service: &'static str,
        n: u32,
    ) -> Duration {
        let started = Instant::now();
        for _ in 0..n {
            limiters.acquire(service, None, metrics).await;
        }
        started.elapsed()
    }

    #[test]
    fn the_defaults_keep_iam_slowest() {
        let defaults = RateLimits::default();
        assert_eq!(defaults.iam, limit(5, 10));
        assert_eq!(defaults.ecs, limit(10, 20));
        assert_eq!(defaults.other, limit(10, 20));
    }

    #[test]
    fn the_config_defaults_are_the_limits_defaults() {
        let yaml = "targets:\n  - account: \"123456789012\"\n    regions: [us-east-1]\n";
        let config =
            crate::config::Config::from_yaml(std::path::Path::new("execrole.yaml"), yaml).unwrap();
        assert_eq!(config.rate_limits, RateLimits::default());
    }

    #[test]
    fn services_map_to_their_limits_and_unknown_labels_to_other() {
        let limits = limits();
        let cases = [
            ("iam", limits.iam),
            ("ecs", limits.ecs),
            ("secretsmanager", limits.other),
            ("ssm", limits.other),
            ("kms", limits.other),
            ("ecr", limits.other),
            ("sts", limits.other),
            ("sqs", limits.other),
            ("s3", limits.other),
            ("", limits.other),
        ];
        for (service, expected) in cases {
            assert_eq!(limits.for_service(service), expected, "{service:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_and_the_next_request_waits_for_the_rate() {
        let metrics = Metrics::new();
        let limiters = Limiters::new(&limits());
        assert_eq!(take(&limiters, &metrics, "iam", 10).await, Duration::ZERO);
        assert_eq!(metrics.rate_limit_waits("iam"), 0);

        // 5 a second: the eleventh waits a fifth of a second, and the wait is counted.
        assert_eq!(
            take(&limiters, &metrics, "iam", 1).await,
            Duration::from_millis(200)
        );
        assert_eq!(metrics.rate_limit_waits("iam"), 1);
        let seconds = metrics
            .rate_limit_wait_seconds
            .with_label_values(&["iam"])
            .get();
        assert!((seconds - 0.2).abs() < 1e-6, "{seconds}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_refills_the_bucket() {
        let metrics = Metrics::new();
        let limiters = Limiters::new(&limits());
        take(&limiters, &metrics, "ecs", 3).await;
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(take(&limiters, &metrics, "ecs", 3).await, Duration::ZERO);
        assert_eq!(metrics.rate_limit_waits("ecs"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn each_listed_service_has_its_own_bucket() {
        // Emptying one service's bucket never makes another service wait.
        let cases = [
            ("iam", 10, "ecs"),
            ("ecs", 3, "iam"),
            ("secretsmanager", 2, "ssm"),
            ("kms", 2, "ecr"),
            ("sts", 2, "sqs"),
        ];
        for (drained, burst, other) in cases {
            let metrics = Metrics::new();
            let limiters = Limiters::new(&limits());
            take(&limiters, &metrics, drained, burst).await;
            assert_eq!(
                take(&limiters, &metrics, other, 1).await,
                Duration::ZERO,
                "{drained} then {other}"
            );
            assert!(
                take(&limiters, &metrics, drained, 1).await > Duration::ZERO,
                "{drained}"
            );
            assert_eq!(metrics.rate_limit_waits(drained), 1, "{drained}");
            assert_eq!(metrics.rate_limit_waits(other), 0, "{other}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unlisted_services_share_one_bucket_at_the_other_rate() {
        let metrics = Metrics::new();
        let limiters = Limiters::new(&limits());
        // `other` is 2 a second, burst 2: two requests to unlisted services empty the shared bucket.
        take(&limiters, &metrics, "s3", 1).await;
        take(&limiters, &metrics, "athena", 1).await;
        assert_eq!(
            take(&limiters, &metrics, "s3", 1).await,
            Duration::from_millis(500)
        );
        assert_eq!(metrics.rate_limit_waits("s3"), 1);
        assert_eq!(take(&limiters, &metrics, "ssm", 2).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_that_lose_the_race_wait_for_the_next_permit() {
        let metrics = Metrics::new();
        let limiters = Limiters::new(&limits());
        take(&limiters, &metrics, "kms", 2).await;
        // Three requests wait on the empty bucket at once: at 2 a second they pass half a second apart.
        let started = Instant::now();
        let finished = futures::future::join_all((0..3).map(|_| async {
            limiters.acquire("kms", None, &metrics).await;
            started.elapsed()
        }))
        .await;
        let mut finished = finished;
        finished.sort();
        assert_eq!(
            finished,
            vec![
                Duration::from_millis(500),
                Duration::from_millis(1000),
                Duration::from_millis(1500)
            ]
        );
        assert_eq!(metrics.rate_limit_waits("kms"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn regional_services_have_buckets_per_region_and_iam_one_per_account() {
        let metrics = Metrics::new();
        let limiters = Limiters::new(&limits());
        let take_in = |service: &'static str, region: &'static str, n: u32| {
            let (limiters, metrics) = (&limiters, &metrics);
            async move {
                let started = Instant::now();
                for _ in 0..n {
                    limiters.acquire(service, Some(region), metrics).await;
                }
                started.elapsed()
            }
        };
        // ECS (burst 3): emptying us-east-1's bucket leaves eu-west-1's full.
        assert_eq!(take_in("ecs", "us-east-1", 3).await, Duration::ZERO);
        assert_eq!(take_in("ecs", "eu-west-1", 3).await, Duration::ZERO);
        assert!(take_in("ecs", "us-east-1", 1).await > Duration::ZERO);
        // IAM (burst 10) is global: one bucket whatever Region a request names.
        assert_eq!(take_in("iam", "us-east-1", 10).await, Duration::ZERO);
        assert!(take_in("iam", "eu-west-1", 1).await > Duration::ZERO);
        assert_eq!(metrics.rate_limit_waits("iam"), 1);
    }

    #[tokio::test]
    async fn the_real_clock_works_too() {
        // A fast rate keeps the real wait to a few milliseconds.
        let metrics = Metrics::new();
        let limiters = Limiters::new(&RateLimits {
            other: limit(1000, 1),
            ..limits()
        });
        take(&limiters, &metrics, "ecr", 3).await;
        assert_eq!(metrics.rate_limit_waits("ecr"), 2);
    }
}
