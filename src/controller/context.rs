//! What every reconcile runs with: the `Context` (kube-rs's name), passed by reference to `reconcile`,
//! `error_policy`, the sweeps and the loops. It holds the configuration in force with the clients it asked for
//! (`Runtime`, replaced as a whole on reload), the store of per-role records, the scheduler (a work queue per
//! account), the snapshots of each account's IAM, the
//! write budget, the caches, metrics and readiness (`Health`); `ClientSource` says where clients come from.
//! Per-role state lives in the store only.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use super::lookups::FactCache;
use super::observe::PolicyCache;
use super::queue::WorkQueues;
use super::snapshots::Snapshots;
use super::spill::SpillListings;
use super::store::Store;
use super::watcher::Watcher;
use crate::aws::{ClientFactory, EcsApi, FactsApi, IamApi};
use crate::config::{Config, Mode, Target};
use crate::metrics::Metrics;
use crate::model::RoleKey;

/// The clients of one target: one ECS API per Region, one IAM API for the account.
#[derive(Clone)]
pub struct TargetClients {
    /// ECS per Region.
    pub ecs: Vec<(String, Arc<dyn EcsApi>)>,
    /// IAM for the account.
    pub iam: Arc<dyn IamApi>,
    /// Look-ups (secrets, parameters, keys, registries) in the account.
    pub facts: Arc<dyn FactsApi>,
}

/// Where the controller gets its clients (the SDK factory, or fakes in tests).
#[async_trait]
pub trait ClientSource: Send + Sync {
    /// Clients for a target.
    async fn clients(&self, target: &Target) -> TargetClients;

    /// The events queue, when the config names one.
    fn event_queue(&self, events: &crate::config::Events) -> Arc<dyn crate::aws::EventQueue>;
}

#[async_trait]
impl ClientSource for ClientFactory {
    async fn clients(&self, target: &Target) -> TargetClients {
        let (ecs, iam, facts) = ClientFactory::clients(self, target).await;
        TargetClients { ecs, iam, facts }
    }

    fn event_queue(&self, events: &crate::config::Events) -> Arc<dyn crate::aws::EventQueue> {
        ClientFactory::event_queue(self, &events.queue_url, &events.region)
    }
}

/// Readiness and liveness, shared with the HTTP server.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    /// With `coordination`: the leases, whose table must be reachable for the replica to work.
    leases: std::sync::OnceLock<Arc<crate::coordination::Leases>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Health {
    /// Whether the process can work: every target it works on was fully seen by its last sweep (with
    /// `coordination`, the targets in shards it holds, none at all when it holds none) and, with
    /// `coordination`, the lease table answered the last round.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
            && self
                .leases
                .get()
                .is_none_or(|leases| leases.is_table_reachable())
    }

    /// Count the lease table's reachability in readiness (`coordination`).
    pub fn watch_leases(&self, leases: Arc<crate::coordination::Leases>) {
        let _ = self.leases.set(leases);
    }

    /// Set readiness (from the published state).
    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
}

/// The configuration in force and the clients it asked for; replaced as a whole on reload.
pub(crate) struct Runtime {
    /// The validated configuration.
    pub(crate) config: Config,
    /// Every target with its clients.
    pub(crate) targets: Vec<(Target, TargetClients)>,
}

impl Runtime {
    /// Build the clients of every target of `config`.
    pub(crate) async fn build(config: Config, clients: &dyn ClientSource) -> Runtime {
        let mut targets = Vec::new();
        for target in &config.targets {
            targets.push((target.clone(), clients.clients(target).await));
        }
        Runtime { config, targets }
    }
}

/// The blast-radius cap outside `pass`: at most `max_roles_written_per_pass` roles written per window of one
/// resync interval.
pub(crate) struct WriteBudget {
    window: Mutex<tokio::time::Instant>,
    used: AtomicUsize,
}

impl WriteBudget {
    /// A budget whose first window starts now.
    pub(crate) fn new() -> WriteBudget {
        WriteBudget {
            window: Mutex::new(tokio::time::Instant::now()),
            used: AtomicUsize::new(0),
        }
    }

    /// The counter of the current window (a new window starts once `length` has passed), and the window's end.
    pub(crate) fn current(&self, length: Duration) -> (&AtomicUsize, tokio::time::Instant) {
        let mut start = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        if now >= *start + length {
            *start = now;
            self.used.store(0, Ordering::SeqCst);
        }
        (&self.used, *start + length)
    }
}

/// Everything a reconcile, a sweep or a loop runs with, shared by reference (kube-rs's `Context`).
pub(crate) struct Context {
    /// The configuration in force and its clients; replaced as a whole on reload.
    runtime: RwLock<Arc<Runtime>>,
    /// `run --dry-run`: observe only, whatever any config (also a reloaded one) says.
    force_dry_run: AtomicBool,
    /// The task definitions seen, per target and Region (described once each).
    pub(crate) watcher: Watcher,
    /// Look-up answers (secrets, keys, registries), kept for `lookup_cache_ttl`.
    pub(crate) facts: FactCache,
    /// Managed policy documents read from IAM.
    pub(crate) policies: PolicyCache,
    /// The spill-path listing of each account, once per sweep.
    pub(crate) spill_listings: SpillListings,
    /// Each account's latest snapshot of its IAM, and the choice between bulk and per-role reads.
    pub(crate) snapshots: Snapshots,
    /// One record per managed role and per watched account.
    pub(crate) store: Store,
    /// The scheduler: which role of each account runs next, and when.
    pub(crate) queues: WorkQueues<RoleKey>,
    /// The blast-radius cap outside `pass`.
    pub(crate) budget: WriteBudget,
    /// The metrics registry.
    pub(crate) metrics: Arc<Metrics>,
    /// Readiness, shared with the HTTP server.
    pub(crate) health: Arc<Health>,
    /// With `coordination`: this replica's leases and the lease table.
    pub(crate) coordination: Option<super::fence::Coordinated>,
}

impl Context {
    /// A context for `runtime`, with empty caches, store and queue.
    pub(crate) fn new(runtime: Runtime, metrics: Arc<Metrics>, health: Arc<Health>) -> Context {
        Context {
            facts: FactCache::new(runtime.config.lookup_cache_ttl),
            policies: PolicyCache::new(runtime.config.lookup_cache_ttl),
            runtime: RwLock::new(Arc::new(runtime)),
            force_dry_run: AtomicBool::new(false),
            watcher: Watcher::default(),
            spill_listings: SpillListings::default(),
            snapshots: Snapshots::default(),
            store: Store::default(),
            queues: WorkQueues::default(),
            budget: WriteBudget::new(),
            metrics,
            health,
            coordination: None,
        }
    }

    /// The configuration in force, with its clients.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        self.runtime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Put a new configuration (and its clients) in force.
    pub(crate) fn replace_runtime(&self, runtime: Runtime) {
        *self.runtime.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(runtime);
    }

    /// Observe only from now on, whatever the config says (`run --dry-run`).
    pub(crate) fn force_dry_run(&self) {
        self.force_dry_run.store(true, Ordering::SeqCst);
    }

    /// Whether `run --dry-run` forced observe-only.
    pub(crate) fn is_forced_dry_run(&self) -> bool {
        self.force_dry_run.load(Ordering::SeqCst)
    }

    /// The mode the daemon reconciles in under `config`.
    pub(crate) fn mode(&self, config: &Config) -> Mode {
        if self.is_forced_dry_run() {
            Mode::DryRun
        } else {
            config.mode
        }
    }
}
