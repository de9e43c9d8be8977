//! Event-driven convergence: long-poll the events queue (SQS fed by EventBridge, `deploy/events.md`), map each
//! message to effects (`crate::events`), and act at once: a task-definition change sweeps its account now (the
//! sweep queues the roles whose desired state changed), an IAM change to a managed role queues that role. The
//! controller's own writes are recognised and ignored. Every message is deleted once handled, including ones
//! that cannot be read (they are counted and logged, and would only come back forever otherwise); the periodic
//! resync stays the backstop for anything lost.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::runtime::Triggers;
use super::runtime::enqueue;
use super::{ClientSource, Runtime};
use crate::aws::{EventQueue, KeyBackoff};
use crate::events::{EventEffect, OwnWrites, USER_AGENT_MARKER, effects_of};

/// Receive and act on events until the generation ends; does nothing when no queue is configured.
pub(super) async fn event_loop(
    ctx: &Context,
    rt: &Runtime,
    source: &dyn ClientSource,
    generation: &CancellationToken,
    triggers: &Triggers,
) {
    let Some(events) = &rt.config.events else {
        return;
    };
    let queue: Arc<dyn EventQueue> = source.event_queue(events);
    let own = OwnWrites {
        session_names: rt
            .targets
            .iter()
            .map(|(t, _)| t.session_name.clone())
            .collect(),
        user_agent_marker: USER_AGENT_MARKER.to_string(),
    };
    tracing::info!(queue = %events.queue_url, "listening for events");
    let mut failures: Option<KeyBackoff> = None;
    loop {
        let received = tokio::select! {
            _ = generation.cancelled() => return,
            received = queue.receive(events.wait_time, 10) => received,
        };
        let messages = match received {
            Ok(messages) => {
                failures = None;
                messages
            }
            Err(error) => {
                let config = &rt.config;
                let delay = failures
                    .get_or_insert_with(|| KeyBackoff::for_settings(&config.backoff))
                    .next_delay();
                tracing::warn!(error = %error, delay_ms = delay.as_millis() as u64, "receiving events failed; the resync still runs");
                tokio::select! {
                    _ = generation.cancelled() => return,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        let mut handled = Vec::with_capacity(messages.len());
        for message in messages {
            handle_event(ctx, rt, &message.body, &own, triggers);
            handled.push(message.receipt_handle);
        }
        if !handled.is_empty()
            && let Err(error) = queue.delete(&handled).await
        {
            tracing::warn!(error = %error, "deleting handled events failed; they will be seen again (harmless)");
        }
    }
}

/// Act on one message's effects.
fn handle_event(ctx: &Context, rt: &Runtime, body: &str, own: &OwnWrites, triggers: &Triggers) {
    let effects = match effects_of(body, own) {
        Ok(effects) => effects,
        Err(error) => {
            tracing::warn!(reason = error.reason(), error = %error, "an event could not be read; ignored");
            ctx.metrics
                .events_received
                .with_label_values(&["invalid"])
                .inc();
            return;
        }
    };
    let mut acted = false;
    for effect in effects {
        match effect {
            EventEffect::Sweep {
                account, region, ..
            } => {
                let watched = rt
                    .targets
                    .iter()
                    .any(|(t, _)| t.account == account && t.regions.contains(&region));
                if watched {
                    tracing::info!(%account, %region, "task definitions changed; sweeping now");
                    triggers.of(&account).notify_one();
                    acted = true;
                }
            }
            EventEffect::Role(key) => {
                if ctx.store.is_managed(&key) {
                    tracing::info!(role = %key, "role changed outside execrole; reconciling now");
                    // A snapshot read before this event no longer holds for the role.
                    ctx.store.require_fresh(&key, ctx.snapshots.now());
                    enqueue(ctx, key, Instant::now());
                    acted = true;
                }
            }
        }
    }
    let label = if acted { "acted" } else { "ignored" };
    ctx.metrics
        .events_received
        .with_label_values(&[label])
        .inc();
}
