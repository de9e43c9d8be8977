//! Prometheus metrics: one [`Metrics`] struct with its own registry, recorded at the seams (the AWS adapters, the
//! reconcile, the pass) and rendered in the text format by `http`. Labels are bounded: never a role name, an ARN
//! or error text.

use std::time::Duration;

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::aws::{AwsError, ErrorKind, RATE_LIMITED_SERVICES};

/// Every metric `execrole` exports, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// `execrole_passes_total{result}`.
    pub passes: IntCounterVec,
    /// `execrole_reconciles_total{result}`.
    pub reconciles: IntCounterVec,
    /// `execrole_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `execrole_roles_managed`.
    pub roles_managed: IntGauge,
    /// `execrole_roles_in_drift{kind}`.
    pub roles_in_drift: IntGaugeVec,
    /// `execrole_iam_writes_total{operation}`.
    pub iam_writes: IntCounterVec,
    /// `execrole_aws_requests_total{service,operation,outcome}`.
    pub aws_requests: IntCounterVec,
    /// `execrole_aws_request_duration_seconds{service,operation}`.
    pub aws_request_duration: HistogramVec,
    /// `execrole_aws_retries_total{service,operation}`.
    pub aws_retries: IntCounterVec,
    /// `execrole_rate_limit_waits_total{service}`.
    pub rate_limit_waits: IntCounterVec,
    /// `execrole_rate_limit_wait_seconds_total{service}`.
    pub rate_limit_wait_seconds: CounterVec,
    /// `execrole_task_definition_cache_hits_total`.
    pub cache_hits: IntCounter,
    /// `execrole_task_definition_cache_misses_total`.
    pub cache_misses: IntCounter,
    /// `execrole_task_definitions_watched`.
    pub task_definitions_watched: IntGauge,
    /// `execrole_policy_size_ratio`.
    pub policy_size_ratio: Histogram,
    /// `execrole_lookups_total{kind,result}`.
    pub lookups: IntCounterVec,
    /// `execrole_findings{kind}`.
    pub findings: IntGaugeVec,
    /// `execrole_last_successful_pass_timestamp_seconds`.
    pub last_success: IntGauge,
    /// `execrole_ready`.
    pub ready: IntGauge,
    /// `execrole_build_info{version}`.
    pub build_info: IntGaugeVec,
    /// `execrole_task_definitions_in_grace`.
    pub task_definitions_in_grace: IntGauge,
    /// `execrole_work_queue_depth`.
    pub work_queue_depth: IntGauge,
    /// `execrole_work_queue_in_flight`.
    pub work_queue_in_flight: IntGauge,
    /// `execrole_work_queue_adds_total`.
    pub work_queue_adds: IntCounter,
    /// `execrole_work_queue_retries_total{reason}`.
    pub work_queue_retries: IntCounterVec,
    /// `execrole_config_reloads_total{result}`.
    pub config_reloads: IntCounterVec,
    /// `execrole_events_received_total{result}`.
    pub events_received: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric =
        IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn seconds_counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> CounterVec {
    let metric = CounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// The IAM operations the controller may write with.
pub const IAM_WRITE_OPERATIONS: [&str; 9] = [
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "UpdateAssumeRolePolicy",
    "CreatePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "DetachRolePolicy",
    "DeletePolicy",
];

/// The drift kinds reported by `execrole_roles_in_drift`.
pub const DRIFT_KINDS: [&str; 5] = ["missing", "excess", "blocked", "over_granted", "trust"];

impl Metrics {
    /// A fresh registry with every metric at zero (label sets that are known up front are pre-created, so
    /// dashboards and alerts see zeros rather than absent series).
    pub fn new() -> Metrics {
        let r = Registry::new();
        let metrics = Metrics {
            passes: counter_vec(
                &r,
                "execrole_passes_total",
                "Passes, by result: in the daemon each target's sweep (list, describe, derive); with run --once or plan the whole run. Success means everything could be observed.",
                &["result"],
            ),
            reconciles: counter_vec(
                &r,
                "execrole_reconciles_total",
                "Role reconciles, by result (in_sync, applied, pending, error).",
                &["result"],
            ),
            reconcile_duration: histogram(
                &r,
                "execrole_reconcile_duration_seconds",
                "Time to reconcile one execution role.",
                prometheus::exponential_buckets(0.005, 2.0, 14).expect("static buckets"),
            ),
            roles_managed: gauge(
                &r,
                "execrole_roles_managed",
                "Execution roles named by in-scope task definitions.",
            ),
            roles_in_drift: gauge_vec(
                &r,
                "execrole_roles_in_drift",
                "Execution roles whose drift remained after the last pass, by kind.",
                &["kind"],
            ),
            iam_writes: counter_vec(
                &r,
                "execrole_iam_writes_total",
                "IAM writes made, by operation.",
                &["operation"],
            ),
            aws_requests: counter_vec(
                &r,
                "execrole_aws_requests_total",
                "AWS API requests (every attempt), by service, operation and outcome (success, throttled, not_found, error).",
                &["service", "operation", "outcome"],
            ),
            aws_request_duration: {
                let m = HistogramVec::new(
                    HistogramOpts::new(
                        "execrole_aws_request_duration_seconds",
                        "AWS API request duration.",
                    )
                    .buckets(
                        prometheus::exponential_buckets(0.005, 2.0, 12).expect("static buckets"),
                    ),
                    &["service", "operation"],
                )
                .expect("static metric definition");
                r.register(Box::new(m.clone()))
                    .expect("metric registered once");
                m
            },
            aws_retries: counter_vec(
                &r,
                "execrole_aws_retries_total",
                "AWS API requests retried after a retryable error, by service and operation.",
                &["service", "operation"],
            ),
            rate_limit_waits: counter_vec(
                &r,
                "execrole_rate_limit_waits_total",
                "AWS API request attempts that waited for the client-side rate limit of their service (the account's token bucket was empty), by service.",
                &["service"],
            ),
            rate_limit_wait_seconds: seconds_counter_vec(
                &r,
                "execrole_rate_limit_wait_seconds_total",
                "Time AWS API request attempts spent waiting for the client-side rate limit, by service.",
                &["service"],
            ),
            cache_hits: counter(
                &r,
                "execrole_task_definition_cache_hits_total",
                "Task definition revisions served from the cache (not described again).",
            ),
            cache_misses: counter(
                &r,
                "execrole_task_definition_cache_misses_total",
                "Task definition revisions described through the ECS API.",
            ),
            task_definitions_watched: gauge(
                &r,
                "execrole_task_definitions_watched",
                "In-scope task definition revisions counted (ACTIVE, INACTIVE in use when configured, and in grace) in each target's last sweep.",
            ),
            policy_size_ratio: histogram(
                &r,
                "execrole_policy_size_ratio",
                "Size of each role's desired owned inline policy as a fraction of IAM's 10,240-character limit.",
                vec![0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            ),
            lookups: counter_vec(
                &r,
                "execrole_lookups_total",
                "Fact look-ups for derivation (secret, parameter, kms_key, pull_through_cache_rules), by result (cached, found, not_found, failed).",
                &["kind", "result"],
            ),
            findings: gauge_vec(
                &r,
                "execrole_findings",
                "Findings in the last pass, by kind.",
                &["kind"],
            ),
            last_success: gauge(
                &r,
                "execrole_last_successful_pass_timestamp_seconds",
                "Unix time of the last pass that completed without errors.",
            ),
            ready: gauge(
                &r,
                "execrole_ready",
                "1 once the first full pass has completed.",
            ),
            build_info: gauge_vec(
                &r,
                "execrole_build_info",
                "Build information; the value is always 1.",
                &["version"],
            ),
            task_definitions_in_grace: gauge(
                &r,
                "execrole_task_definitions_in_grace",
                "Revisions that no longer count (deregistered, no longer used by a service) but keep their permissions until task_definitions.prune_grace_period has passed.",
            ),
            work_queue_depth: gauge(
                &r,
                "execrole_work_queue_depth",
                "Execution roles waiting in the work queue (due now or later).",
            ),
            work_queue_in_flight: gauge(
                &r,
                "execrole_work_queue_in_flight",
                "Execution roles being reconciled right now.",
            ),
            work_queue_adds: counter(
                &r,
                "execrole_work_queue_adds_total",
                "Requests to reconcile a role (resyncs, changes, events, requeues); duplicates collapse in the queue.",
            ),
            work_queue_retries: counter_vec(
                &r,
                "execrole_work_queue_retries_total",
                "Roles requeued after a failed or held-back reconcile, by reason (backoff: retryable error; resync: terminal error; capped: blast-radius cap; settle: re-check after a write).",
                &["reason"],
            ),
            config_reloads: counter_vec(
                &r,
                "execrole_config_reloads_total",
                "Config reloads, by result (applied, unchanged, invalid, read_failed).",
                &["result"],
            ),
            events_received: counter_vec(
                &r,
                "execrole_events_received_total",
                "Messages received from the events queue, by result (acted, ignored, invalid).",
                &["result"],
            ),
            registry: r,
        };
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for result in ["success", "failure"] {
            metrics.passes.with_label_values(&[result]);
        }
        for result in ["in_sync", "applied", "pending", "error", "not_selected"] {
            metrics.reconciles.with_label_values(&[result]);
        }
        for kind in DRIFT_KINDS {
            metrics.roles_in_drift.with_label_values(&[kind]).set(0);
        }
        for operation in IAM_WRITE_OPERATIONS {
            metrics.iam_writes.with_label_values(&[operation]);
        }
        for reason in ["backoff", "resync", "capped", "settle"] {
            metrics.work_queue_retries.with_label_values(&[reason]);
        }
        for result in ["applied", "unchanged", "invalid", "read_failed"] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        for result in ["acted", "ignored", "invalid"] {
            metrics.events_received.with_label_values(&[result]);
        }
        for service in RATE_LIMITED_SERVICES {
            metrics.rate_limit_waits.with_label_values(&[service]);
            metrics
                .rate_limit_wait_seconds
                .with_label_values(&[service]);
        }
        metrics
    }

    /// Record one AWS request attempt.
    pub fn observe_aws_request(
        &self,
        service: &str,
        operation: &str,
        error: Option<&AwsError>,
        duration: Duration,
    ) {
        let outcome = match error {
            None => "success",
            Some(e) if e.kind == ErrorKind::Throttling => "throttled",
            // A missing role or policy is an answer for reads, so it is kept apart from failures.
            Some(e) if e.kind == ErrorKind::NotFound => "not_found",
            Some(_) => "error",
        };
        self.aws_requests
            .with_label_values(&[service, operation, outcome])
            .inc();
        self.aws_request_duration
            .with_label_values(&[service, operation])
            .observe(duration.as_secs_f64());
    }

    /// Record that a request is about to be retried.
    pub fn observe_aws_retry(&self, service: &str, operation: &str) {
        self.aws_retries
            .with_label_values(&[service, operation])
            .inc();
    }

    /// Record that a request attempt waits for the client-side rate limit of its service.
    pub fn observe_rate_limit_wait(&self, service: &str) {
        self.rate_limit_waits.with_label_values(&[service]).inc();
    }

    /// Record how long a request attempt waited for the client-side rate limit.
    pub fn observe_rate_limit_waited(&self, service: &str, waited: Duration) {
        self.rate_limit_wait_seconds
            .with_label_values(&[service])
            .inc_by(waited.as_secs_f64());
    }

    /// The count of rate-limit waits for a service (for tests and summaries).
    pub fn rate_limit_waits(&self, service: &str) -> u64 {
        self.rate_limit_waits.with_label_values(&[service]).get()
    }

    /// The count of requests with these labels (for tests and summaries).
    pub fn aws_requests(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.aws_requests
            .with_label_values(&[service, operation, outcome])
            .get()
    }

    /// The total of IAM writes so far.
    pub fn iam_writes_total(&self) -> u64 {
        IAM_WRITE_OPERATIONS
            .iter()
            .map(|op| self.iam_writes.with_label_values(&[op]).get())
            .sum()
    }

    /// Render every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.registry.gather(), &mut buffer) {
            return format!("# error encoding metrics: {err}\n");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_every_family_with_its_prefix() {
        let metrics = Metrics::new();
        metrics.observe_aws_request("iam", "GetRole", None, Duration::from_millis(3));
        let text = metrics.render();
        for name in [
            "execrole_passes_total",
            "execrole_reconciles_total",
            "execrole_roles_in_drift",
            "execrole_iam_writes_total",
            "execrole_aws_requests_total",
            "execrole_rate_limit_waits_total",
            "execrole_rate_limit_wait_seconds_total",
            "execrole_build_info",
            "execrole_ready",
            "execrole_work_queue_depth",
            "execrole_work_queue_retries_total",
            "execrole_config_reloads_total",
            "execrole_events_received_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{text}"
            );
        }
        assert!(text.contains(
            r#"execrole_aws_requests_total{operation="GetRole",outcome="success",service="iam"} 1"#
        ));
    }

    #[test]
    fn throttles_are_counted_apart_from_other_errors() {
        let metrics = Metrics::new();
        let throttled = AwsError::new("ecs", "ListTaskDefinitions", ErrorKind::Throttling, "x");
        let denied = AwsError::new("ecs", "ListTaskDefinitions", ErrorKind::AccessDenied, "x");
        metrics.observe_aws_request(
            "ecs",
            "ListTaskDefinitions",
            Some(&throttled),
            Duration::ZERO,
        );
        metrics.observe_aws_request("ecs", "ListTaskDefinitions", Some(&denied), Duration::ZERO);
        assert_eq!(
            metrics.aws_requests("ecs", "ListTaskDefinitions", "throttled"),
            1
        );
        assert_eq!(
            metrics.aws_requests("ecs", "ListTaskDefinitions", "error"),
            1
        );
    }
}
