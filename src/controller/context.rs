//! What every reconcile runs with, beside the store and the queue: the configuration in force with the clients
//! it asked for (`Runtime`, replaced as a whole on reload), where clients come from (`ClientSource`), readiness
//! (`Health`), and the blast-radius write budget. It holds no per-role state (that is the store's).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::{ClientFactory, EcsApi, FactsApi, IamApi};
use crate::config::{Config, Target};

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
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Whether the first full pass has completed and the last pass could see the world.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
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
