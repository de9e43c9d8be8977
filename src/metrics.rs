//! Prometheus metrics: one [`Metrics`] struct with its own registry, recorded at the seams (the AWS adapters, the
//! reconcile, the pass) and rendered in the text format by `http`. Labels are bounded: never a role name, an ARN
//! or error text.

use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::settings::RATE_LIMITED_SERVICES;

/// How one AWS request attempt ended: the `outcome` label of `execrole_aws_requests_total`. The AWS shell sorts its
/// errors into these; metrics only counts them (so this module needs nothing of `aws`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsOutcome {
    /// The request succeeded.
    Success,
    /// The service throttled it.
    Throttled,
    /// What was asked for does not exist (an answer for reads, kept apart from failures).
    NotFound,
    /// Any other failure.
    Error,
}

impl AwsOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsOutcome::Success => "success",
            AwsOutcome::Throttled => "throttled",
            AwsOutcome::NotFound => "not_found",
            AwsOutcome::Error => "error",
        }
    }
}

/// What happened to a shard's lease: the `event` label of `execrole_lease_transitions_total`. The coordination
/// shell decides; metrics only counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A free or expired lease was taken.
    Acquired,
    /// A held lease was renewed.
    Renewed,
    /// A request to the lease table failed (the lease runs on until it ends, then stops writes).
    Failure,
    /// A held lease ended without being given up: another replica took it, or it ran out.
    Lost,
    /// A held lease was given up (fair share, or shutdown).
    Released,
}

impl LeaseEvent {
    /// Every event, in label order.
    pub const ALL: [LeaseEvent; 5] = [
        LeaseEvent::Acquired,
        LeaseEvent::Renewed,
        LeaseEvent::Failure,
        LeaseEvent::Lost,
        LeaseEvent::Released,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseEvent::Acquired => "acquired",
            LeaseEvent::Renewed => "renewed",
            LeaseEvent::Failure => "failure",
            LeaseEvent::Lost => "lost",
            LeaseEvent::Released => "released",
        }
    }
}

/// Declares [`Metrics`] (one field per metric, with its doc) and `Metrics::register_all`, which builds each metric
/// from its definition and registers it: a metric is written once, its field, type, name, help, labels and buckets
/// in one entry.
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $kind:ty = $definition:expr;)*) => {
        /// Every metric `execrole` exports, registered in one registry.
        pub struct Metrics {
            registry: Registry,
            $($(#[$doc])* pub $field: $kind,)*
        }

        impl Metrics {
            /// Every metric built from its definition and registered in `registry`, all at zero.
            fn register_all(registry: Registry) -> Metrics {
                Metrics {
                    $($field: register(&registry, $definition),)*
                    registry,
                }
            }
        }
    };
}

/// Register a statically defined metric (definitions and names are fixed, so neither step fails at run time).
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("static metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

/// A metric's name and help.
fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

/// A histogram's name, help and buckets.
fn histogram_opts(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets)
}

/// `count` buckets from `start`, each twice the one before.
fn doubling_buckets(start: f64, count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, 2.0, count).expect("static buckets")
}

metrics! {
    /// `execrole_passes_total{result}`.
    passes: IntCounterVec = IntCounterVec::new(opts("execrole_passes_total", "Passes, by result: in the daemon each target's sweep (list, describe, derive); with run --once or plan the whole run. Success means everything could be observed."), &["result"]);
    /// `execrole_reconciles_total{result}`.
    reconciles: IntCounterVec = IntCounterVec::new(opts("execrole_reconciles_total", "Role reconciles, by result (in_sync, applied, pending, error, not_selected)."), &["result"]);
    /// `execrole_reconcile_duration_seconds`.
    reconcile_duration: Histogram = Histogram::with_opts(histogram_opts("execrole_reconcile_duration_seconds", "Time to reconcile one execution role.", doubling_buckets(0.005, 14)));
    /// `execrole_roles_managed`.
    roles_managed: IntGauge = IntGauge::new("execrole_roles_managed", "Execution roles named by in-scope task definitions.");
    /// `execrole_roles_in_drift{kind}`.
    roles_in_drift: IntGaugeVec = IntGaugeVec::new(opts("execrole_roles_in_drift", "Execution roles whose drift remained after the last pass, by kind."), &["kind"]);
    /// `execrole_iam_writes_total{operation}`.
    iam_writes: IntCounterVec = IntCounterVec::new(opts("execrole_iam_writes_total", "IAM writes made, by operation."), &["operation"]);
    /// `execrole_aws_requests_total{service,operation,outcome}`.
    aws_requests: IntCounterVec = IntCounterVec::new(opts("execrole_aws_requests_total", "AWS API requests (every attempt), by service, operation and outcome (success, throttled, not_found, error)."), &["service", "operation", "outcome"]);
    /// `execrole_aws_request_duration_seconds{service,operation}`.
    aws_request_duration: HistogramVec = HistogramVec::new(histogram_opts("execrole_aws_request_duration_seconds", "AWS API request duration.", doubling_buckets(0.005, 12)), &["service", "operation"]);
    /// `execrole_aws_retries_total{service,operation}`.
    aws_retries: IntCounterVec = IntCounterVec::new(opts("execrole_aws_retries_total", "AWS API requests retried after a retryable error, by service and operation."), &["service", "operation"]);
    /// `execrole_rate_limit_waits_total{service}`.
    rate_limit_waits: IntCounterVec = IntCounterVec::new(opts("execrole_rate_limit_waits_total", "AWS API request attempts that waited for the client-side rate limit of their service (the token bucket of the account, or of the account and Region for every service but IAM, was empty), by service. The sts series stays 0: the SDK's AssumeRole credential provider does not draw from these limits."), &["service"]);
    /// `execrole_rate_limit_wait_seconds_total{service}`.
    rate_limit_wait_seconds: CounterVec = CounterVec::new(opts("execrole_rate_limit_wait_seconds_total", "Time AWS API request attempts spent waiting for the client-side rate limit, by service (sts stays 0)."), &["service"]);
    /// `execrole_task_definition_cache_hits_total`.
    cache_hits: IntCounter = IntCounter::new("execrole_task_definition_cache_hits_total", "Task definition revisions served from the cache (not described again).");
    /// `execrole_task_definition_cache_misses_total`.
    cache_misses: IntCounter = IntCounter::new("execrole_task_definition_cache_misses_total", "Task definition revisions described through the ECS API.");
    /// `execrole_task_definitions_watched`.
    task_definitions_watched: IntGauge = IntGauge::new("execrole_task_definitions_watched", "In-scope task definition revisions counted (ACTIVE, INACTIVE in use when configured, and in grace) in each target's last sweep.");
    /// `execrole_policy_size_ratio`.
    policy_size_ratio: Histogram = Histogram::with_opts(histogram_opts("execrole_policy_size_ratio", "Size of each role's desired owned inline policy as a fraction of IAM's 10,240-character limit.", vec![0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]));
    /// `execrole_lookups_total{kind,result}`.
    lookups: IntCounterVec = IntCounterVec::new(opts("execrole_lookups_total", "Fact look-ups for derivation (secret, parameter, kms_key, pull_through_cache_rules), by result (cached, found, not_found, failed)."), &["kind", "result"]);
    /// `execrole_findings{kind}`.
    findings: IntGaugeVec = IntGaugeVec::new(opts("execrole_findings", "Findings in the last pass, by kind."), &["kind"]);
    /// `execrole_last_successful_pass_timestamp_seconds`.
    last_success: IntGauge = IntGauge::new("execrole_last_successful_pass_timestamp_seconds", "Unix time of the last pass that completed without errors.");
    /// `execrole_ready`.
    ready: IntGauge = IntGauge::new("execrole_ready", "1 while every target's last sweep observed everything (the condition of /readyz), otherwise 0.");
    /// `execrole_build_info{version}`.
    build_info: IntGaugeVec = IntGaugeVec::new(opts("execrole_build_info", "Build information; the value is always 1."), &["version"]);
    /// `execrole_task_definitions_in_grace`.
    task_definitions_in_grace: IntGauge = IntGauge::new("execrole_task_definitions_in_grace", "Revisions that no longer count (deregistered, no longer used by a service) but keep their permissions until task_definitions.prune_grace_period has passed.");
    /// `execrole_work_queue_depth`.
    work_queue_depth: IntGauge = IntGauge::new("execrole_work_queue_depth", "Execution roles waiting in the work queue (due now or later).");
    /// `execrole_work_queue_in_flight`.
    work_queue_in_flight: IntGauge = IntGauge::new("execrole_work_queue_in_flight", "Execution roles being reconciled right now.");
    /// `execrole_work_queue_adds_total`.
    work_queue_adds: IntCounter = IntCounter::new("execrole_work_queue_adds_total", "Requests to reconcile a role (resyncs, changes, events, requeues); duplicates collapse in the queue.");
    /// `execrole_work_queue_retries_total{reason}`.
    work_queue_retries: IntCounterVec = IntCounterVec::new(opts("execrole_work_queue_retries_total", "Roles requeued after a failed or held-back reconcile, by reason (backoff: retryable error; resync: terminal error; capped: blast-radius cap; settle: re-check after a write)."), &["reason"]);
    /// `execrole_config_reloads_total{result}`.
    config_reloads: IntCounterVec = IntCounterVec::new(opts("execrole_config_reloads_total", "Config reloads, by result (applied, unchanged, invalid, read_failed)."), &["result"]);
    /// `execrole_observe_fallbacks_total{reason}`.
    observe_fallbacks: IntCounterVec = IntCounterVec::new(opts("execrole_observe_fallbacks_total", "Bulk IAM reads (GetAccountAuthorizationDetails) that failed with observe: auto, so the account's roles were read one by one, by reason (access_denied: for good until a reload; throttling, server, ...: this time)."), &["reason"]);
    /// `execrole_events_received_total{result}`.
    events_received: IntCounterVec = IntCounterVec::new(opts("execrole_events_received_total", "Messages received from the events queue, by result (acted, ignored, invalid)."), &["result"]);
    /// `execrole_shard_leases_held`.
    shard_leases_held: IntGauge = IntGauge::new("execrole_shard_leases_held", "Shard leases this replica holds (coordination); 0 without coordination.");
    /// `execrole_lease_transitions_total{event}`.
    lease_transitions: IntCounterVec = IntCounterVec::new(opts("execrole_lease_transitions_total", "Shard lease events, by event (acquired, renewed, failure: a table request failed, lost: ended without being given up, released)."), &["event"]);
    /// `execrole_replicas_seen`.
    replicas_seen: IntGauge = IntGauge::new("execrole_replicas_seen", "Live replicas (own one included) in the lease table at the last heartbeat; 0 without coordination.");
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The IAM operations the controller may write with.
pub const IAM_WRITE_OPERATIONS: [&str; 12] = [
    "PutRolePolicy",
    "DeleteRolePolicy",
    "AttachRolePolicy",
    "UpdateAssumeRolePolicy",
    "CreatePolicy",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "DetachRolePolicy",
    "DeletePolicy",
    "SetDefaultPolicyVersion",
    "TagRole",
    "UntagRole",
];

/// The drift kinds reported by `execrole_roles_in_drift`.
pub const DRIFT_KINDS: [&str; 5] = ["missing", "excess", "blocked", "over_granted", "trust"];

impl Metrics {
    /// A fresh registry with every metric at zero (label sets that are known up front are pre-created, so
    /// dashboards and alerts see zeros rather than absent series).
    pub fn new() -> Metrics {
        let metrics = Metrics::register_all(Registry::new());
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics.create_known_series();
        metrics
    }

    /// Pre-create the label sets known up front.
    fn create_known_series(&self) {
        for result in ["success", "failure"] {
            self.passes.with_label_values(&[result]);
        }
        for result in ["in_sync", "applied", "pending", "error", "not_selected"] {
            self.reconciles.with_label_values(&[result]);
        }
        for kind in DRIFT_KINDS {
            self.roles_in_drift.with_label_values(&[kind]).set(0);
        }
        for operation in IAM_WRITE_OPERATIONS {
            self.iam_writes.with_label_values(&[operation]);
        }
        for reason in ["backoff", "resync", "capped", "settle"] {
            self.work_queue_retries.with_label_values(&[reason]);
        }
        for result in ["applied", "unchanged", "invalid", "read_failed"] {
            self.config_reloads.with_label_values(&[result]);
        }
        for result in ["acted", "ignored", "invalid"] {
            self.events_received.with_label_values(&[result]);
        }
        for event in LeaseEvent::ALL {
            self.lease_transitions.with_label_values(&[event.as_str()]);
        }
        for service in RATE_LIMITED_SERVICES {
            self.rate_limit_waits.with_label_values(&[service]);
            self.rate_limit_wait_seconds.with_label_values(&[service]);
        }
    }

    /// Count a lease event.
    pub fn observe_lease(&self, event: LeaseEvent) {
        self.lease_transitions
            .with_label_values(&[event.as_str()])
            .inc();
    }

    /// The count of a lease event (for tests and summaries).
    pub fn lease_events(&self, event: LeaseEvent) -> u64 {
        self.lease_transitions
            .with_label_values(&[event.as_str()])
            .get()
    }

    /// Record one AWS request attempt.
    pub fn observe_aws_request(
        &self,
        service: &str,
        operation: &str,
        outcome: AwsOutcome,
        duration: Duration,
    ) {
        self.aws_requests
            .with_label_values(&[service, operation, outcome.as_str()])
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
        metrics.observe_aws_request(
            "iam",
            "GetRole",
            AwsOutcome::Success,
            Duration::from_millis(3),
        );
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
            "execrole_shard_leases_held",
            "execrole_lease_transitions_total",
            "execrole_replicas_seen",
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
    fn a_fresh_registry_renders_exactly_the_reference_text() {
        // Names, help texts, labels, buckets and pre-created series of every metric, byte for byte.
        let want = include_str!("../tests/fixtures/metrics_fresh.txt").replace(
            "{version=\"0.1.0\"}",
            &format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
        );
        assert_eq!(Metrics::new().render(), want);
    }
}
