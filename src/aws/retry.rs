//! Sending AWS requests: a [`Caller`] (how to retry, where to count, the account's rate limits) and the loop that
//! runs one request with exponential backoff and jitter, through the `backoff` crate (used from this file only, so
//! it can be swapped). Every attempt, retries included, first takes a permit from the account's rate limiter
//! (`limit`). Retryable errors (throttling, 5xx, time-outs, connection errors) wait and try again until
//! `max_elapsed`; terminal errors return at once. Every attempt is counted in the metrics, so throttles show even
//! when a retry succeeds. All waiting goes through `tokio::time`, so tests pause the clock. It does not classify
//! errors (`error`) or know any SDK client (`sdk`, `facts`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use backoff::Clock;
use backoff::backoff::Backoff;
use backoff::exponential::ExponentialBackoff;

use super::{AwsError, Limiters};
use crate::metrics::{AwsOutcome, Metrics};
use crate::settings::BackoffSettings;

/// How to retry: an exponential backoff (multiplier 2, ±50 % jitter) from the settings that reads time from
/// `tokio::time`, so a paused test clock governs `max_elapsed` as well as the waits.
pub fn request_backoff(settings: &BackoffSettings) -> ExponentialBackoff<TokioClock> {
    exponential(
        settings.initial_interval,
        settings.max_interval,
        0.5,
        2.0,
        Some(settings.max_elapsed),
    )
}

/// The backoff crate's exponential backoff on the tokio clock, started now: the one place its fields are set.
fn exponential(
    initial_interval: Duration,
    max_interval: Duration,
    randomization_factor: f64,
    multiplier: f64,
    max_elapsed_time: Option<Duration>,
) -> ExponentialBackoff<TokioClock> {
    let mut backoff = ExponentialBackoff {
        current_interval: initial_interval,
        initial_interval,
        randomization_factor,
        multiplier,
        max_interval,
        start_time: TokioClock.now(),
        max_elapsed_time,
        clock: TokioClock,
    };
    backoff.reset();
    backoff
}

/// The `backoff` crate's clock, read from `tokio::time` (which tests can pause and advance).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// What every AWS request of one account is sent with: how to retry, where to count, and the account's rate
/// limits (shared by every client of the account).
#[derive(Clone)]
pub struct Caller {
    /// How to retry retryable failures.
    pub retry: BackoffSettings,
    /// Where every attempt, retry and rate-limit wait is counted.
    pub metrics: Arc<Metrics>,
    /// The account's token buckets, one per service (and Region, for regional services).
    pub limiters: Arc<Limiters>,
    /// The Region its requests go to, `None` for global services (IAM): picks the Region's buckets.
    pub region: Option<String>,
}

impl Caller {
    /// A caller with these parts.
    pub fn new(retry: BackoffSettings, metrics: Arc<Metrics>, limiters: Arc<Limiters>) -> Caller {
        Caller {
            retry,
            metrics,
            limiters,
            region: None,
        }
    }

    /// The same caller for requests to `region`: regional services draw from that Region's buckets.
    pub fn in_region(&self, region: &str) -> Caller {
        Caller {
            region: Some(region.to_string()),
            ..self.clone()
        }
    }
}

/// Run `attempt` until it succeeds, fails terminally, or retryable failures have lasted `max_elapsed`. Before each
/// attempt, retries included, it takes a permit for `service` from the caller's rate limits (the wait is not part
/// of the attempt's duration). Each attempt's outcome and duration are recorded as `service`/`operation`.
pub async fn call_with_retry<T, F, Fut>(
    caller: &Caller,
    service: &'static str,
    operation: &'static str,
    mut attempt: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let metrics = caller.metrics.as_ref();
    let mut backoff = request_backoff(&caller.retry);
    loop {
        caller
            .limiters
            .acquire(service, caller.region.as_deref(), metrics)
            .await;
        let started = tokio::time::Instant::now();
        let result = attempt().await;
        let outcome = result
            .as_ref()
            .map_or_else(AwsError::outcome, |_| AwsOutcome::Success);
        metrics.observe_aws_request(service, operation, outcome, started.elapsed());
        let err = match result {
            Ok(value) => return Ok(value),
            Err(err) if err.is_retryable() => err,
            Err(err) => return Err(err),
        };
        let Some(wait) = backoff.next_backoff() else {
            return Err(err);
        };
        metrics.observe_aws_retry(service, operation);
        tracing::debug!(service, operation, error = %err, wait_ms = wait.as_millis() as u64, "retrying AWS request");
        tokio::time::sleep(wait).await;
    }
}

/// One SDK request with retries: `request` builds and sends it afresh for each attempt, and SDK errors are
/// classified at this seam (see [`AwsError::from_sdk`]).
pub(crate) async fn send<T, E, F, Fut>(
    caller: &Caller,
    service: &'static str,
    operation: &'static str,
    mut request: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    call_with_retry(caller, service, operation, || {
        let attempt = request();
        async move {
            attempt
                .await
                .map_err(|e| AwsError::from_sdk(service, operation, e))
        }
    })
    .await
}

/// `Ok(None)` for "does not exist" (a read's answer, not a failure), the error otherwise.
pub(crate) fn absent_as_none<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.kind == super::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::aws::{ErrorKind, RateLimit, RateLimits};

    fn policy() -> BackoffSettings {
        BackoffSettings {
            initial_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(10),
        }
    }

    /// A caller with the test policy and the default rate limits, each test its own.
    fn caller() -> Caller {
        Caller::new(
            policy(),
            Arc::new(Metrics::new()),
            Arc::new(Limiters::default()),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_until_success_and_counted() {
        let caller = caller();
        let metrics = &caller.metrics;
        let calls = AtomicUsize::new(0);
        let result = call_with_retry(&caller, "iam", "GetRole", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(AwsError::new(
                        "iam",
                        "GetRole",
                        ErrorKind::Throttling,
                        "slow down",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(metrics.aws_requests("iam", "GetRole", "throttled"), 2);
        assert_eq!(metrics.aws_requests("iam", "GetRole", "success"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_errors_return_at_once() {
        let caller = caller();
        let metrics = &caller.metrics;
        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = call_with_retry(&caller, "iam", "PutRolePolicy", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(AwsError::new(
                    "iam",
                    "PutRolePolicy",
                    ErrorKind::AccessDenied,
                    "no",
                ))
            }
        })
        .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::AccessDenied);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(metrics.aws_requests("iam", "PutRolePolicy", "error"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_give_up_after_max_elapsed() {
        let caller = caller();
        let metrics = &caller.metrics;
        let started = tokio::time::Instant::now();
        let result: Result<(), _> =
            call_with_retry(&caller, "ecs", "ListTaskDefinitions", || async {
                Err(AwsError::new(
                    "ecs",
                    "ListTaskDefinitions",
                    ErrorKind::Server,
                    "boom",
                ))
            })
            .await;
        assert_eq!(result.unwrap_err().kind, ErrorKind::Server);
        let elapsed = started.elapsed();
        // It stops once the next wait would pass max_elapsed: after more than half of it, never after it.
        assert!(elapsed > Duration::from_secs(5), "{elapsed:?}");
        assert!(elapsed <= Duration::from_secs(10), "{elapsed:?}");
        assert!(metrics.aws_requests("ecs", "ListTaskDefinitions", "error") > 3);
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_takes_a_rate_limit_permit_retries_included() {
        // One IAM request a second, no burst: the backoff (100 ms, then 200 ms, ±50 %) is shorter than the rate,
        // so each retry waits for the bucket, and the waits are counted.
        let one_a_second = RateLimit {
            per_second: std::num::NonZeroU32::MIN,
            burst: std::num::NonZeroU32::MIN,
        };
        let limits = RateLimits {
            iam: one_a_second,
            ..RateLimits::default()
        };
        let caller = Caller::new(
            policy(),
            Arc::new(Metrics::new()),
            Arc::new(Limiters::new(&limits)),
        );
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let result = call_with_retry(&caller, "iam", "GetRole", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(AwsError::new(
                        "iam",
                        "GetRole",
                        ErrorKind::Throttling,
                        "slow down",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(2));
        assert_eq!(caller.metrics.rate_limit_waits("iam"), 2);
        assert_eq!(
            caller
                .metrics
                .aws_retries
                .with_label_values(&["iam", "GetRole"])
                .get(),
            2
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "the third attempt went at the second permit"
        );
    }
}

/// Per-key exponential backoff for the work queue: doubling from `initial_interval` up to `max_interval`, ±50 %
/// jitter, and no give-up time (a role keeps being retried, ever more slowly, until it succeeds). Reset on
/// success. Time comes from `tokio::time`.
#[derive(Debug, Clone)]
pub struct KeyBackoff {
    inner: ExponentialBackoff<TokioClock>,
}

impl KeyBackoff {
    /// A fresh backoff for one key.
    pub fn new(initial_interval: Duration, max_interval: Duration) -> KeyBackoff {
        KeyBackoff {
            inner: exponential(initial_interval, max_interval, 0.5, 2.0, None),
        }
    }

    /// A fresh backoff with the config's intervals.
    pub fn for_settings(settings: &BackoffSettings) -> KeyBackoff {
        KeyBackoff::new(settings.initial_interval, settings.max_interval)
    }

    /// The wait before the next retry (grows with each call).
    pub fn next_delay(&mut self) -> Duration {
        // With no give-up time the crate always answers; the fallback only guards the type.
        self.inner.next_backoff().unwrap_or(self.inner.max_interval)
    }
}

/// `base` times a random factor in `1 ± factor` (the resync jitter), drawn the way the backoff crate
/// randomises its waits.
pub fn jittered(base: Duration, factor: f64) -> Duration {
    exponential(base, base, factor.clamp(0.0, 1.0), 1.0, None)
        .next_backoff()
        .unwrap_or(base)
}

#[cfg(test)]
mod key_backoff_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn key_backoff_grows_to_its_ceiling_and_never_gives_up() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        let mut backoff = KeyBackoff::new(initial, max);
        let mut previous_ceiling = Duration::ZERO;
        for attempt in 0..40u32 {
            let delay = backoff.next_delay();
            // Interval n is initial × 2^n capped at max, then ±50 % jitter.
            let interval = initial
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(max);
            assert!(
                delay >= interval.mul_f64(0.5),
                "attempt {attempt}: {delay:?}"
            );
            assert!(
                delay <= interval.mul_f64(1.5),
                "attempt {attempt}: {delay:?}"
            );
            assert!(interval >= previous_ceiling);
            previous_ceiling = interval;
            // Time passing does not make it give up: there is no max_elapsed.
            tokio::time::advance(Duration::from_secs(3600)).await;
        }
        let fresh = KeyBackoff::new(initial, max).next_delay();
        assert!(
            fresh <= initial.mul_f64(1.5),
            "a fresh backoff starts over: {fresh:?}"
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_varies() {
        let base = Duration::from_secs(300);
        let draws: Vec<Duration> = (0..200).map(|_| jittered(base, 0.1)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= base.mul_f64(0.9) && *d <= base.mul_f64(1.1))
        );
        assert!(draws.iter().any(|d| *d != draws[0]), "no jitter at all");
        assert_eq!(jittered(base, 0.0), base);
    }
}
