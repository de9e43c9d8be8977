//! Config hot reload: the file the config came from is read again when its text changes (polled every
//! `reload.poll_interval`) or on request (SIGHUP). A valid new config replaces the old one as a whole (clients
//! for its targets are built first), and the daemon's next generation runs with it; an invalid one is refused,
//! logged and counted, and the old config stays in force. Settings that only take effect at start (the HTTP
//! address, logging, and the SDK clients' retry and rate-limit settings) are reported, not applied.

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::{ClientSource, Controller, Runtime};
use crate::config::{Config, ConfigError};

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The new config is in force.
    Applied,
    /// The file means the same config as the one in force.
    Unchanged,
    /// The file could not be read or is invalid; the old config stays in force.
    Refused(ConfigError),
}

impl Controller {
    /// Load the config file again and apply it when it is valid and different.
    pub async fn reload(&self, source: &dyn ClientSource) -> ReloadOutcome {
        reload_config(&self.ctx, source).await
    }
}

/// Load the config file again and apply it when it is valid and different.
pub(super) async fn reload_config(ctx: &Context, source: &dyn ClientSource) -> ReloadOutcome {
    let old = ctx.runtime();
    let file = old.config.source.clone();
    let outcome = match Config::load(&file) {
        Err(error) => {
            tracing::error!(file = %file.display(), error = %error, "config reload refused; the old config stays in force");
            ctx.metrics
                .config_reloads
                .with_label_values(&[error.reason()])
                .inc();
            return ReloadOutcome::Refused(error);
        }
        Ok(new) if new == old.config => ReloadOutcome::Unchanged,
        Ok(new) => {
            warn_about_start_only_settings(&old.config, &new);
            let mode = new.mode;
            let targets = new.targets.len();
            let runtime = Runtime::build(new, source).await;
            ctx.replace_runtime(runtime);
            tracing::info!(file = %file.display(), ?mode, targets, forced_dry_run = ctx.is_forced_dry_run(), "config reloaded");
            ReloadOutcome::Applied
        }
    };
    let label = match outcome {
        ReloadOutcome::Applied => "applied",
        _ => "unchanged",
    };
    ctx.metrics.config_reloads.with_label_values(&[label]).inc();
    outcome
}

/// Watch the config file (when `reload.watch_file`) and reload requests until the generation ends; a reload
/// that applies a new config ends the generation, so the next one starts with it.
pub(super) async fn reload_loop(
    ctx: &Context,
    rt: &Runtime,
    source: &dyn ClientSource,
    generation: &CancellationToken,
    requests: &Notify,
) {
    let file = rt.config.source.clone();
    let settings = rt.config.reload;
    let read = || std::fs::read(&file).ok();
    let mut last = read();
    loop {
        tokio::select! {
            _ = generation.cancelled() => return,
            _ = requests.notified() => {
                tracing::info!(file = %file.display(), "reload requested");
                last = read();
            }
            _ = tokio::time::sleep(settings.poll_interval), if settings.watch_file => {
                let now = read();
                if now == last {
                    continue;
                }
                last = now;
                tracing::info!(file = %file.display(), "config file changed");
            }
        }
        if let ReloadOutcome::Applied = reload_config(ctx, source).await {
            generation.cancel();
            return;
        }
    }
}
fn warn_about_start_only_settings(old: &Config, new: &Config) {
    let start_only = [
        ("http.listen", old.http_listen != new.http_listen),
        ("logging.format", old.log_format != new.log_format),
        ("logging.level", old.log_level != new.log_level),
        (
            "backoff.max_elapsed",
            old.backoff.max_elapsed != new.backoff.max_elapsed,
        ),
        ("rate_limits", old.rate_limits != new.rate_limits),
        ("coordination", old.coordination != new.coordination),
    ];
    for (key, changed) in start_only {
        if changed {
            tracing::warn!(
                key,
                "this setting changed but only takes effect at the next restart"
            );
        }
    }
}
