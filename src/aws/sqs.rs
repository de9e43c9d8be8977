//! The queue of events for event-driven convergence: [`EventQueue`], and [`SdkEventQueue`] over Amazon SQS
//! (`ReceiveMessage` as a long poll, `DeleteMessageBatch` in chunks of ten), every request through [`super::send`].
//!
//! This file owns receiving and deleting messages; it does not read them (see [`crate::events`]) or decide when to
//! delete them (the controller). A message that is never deleted comes back after the queue's visibility time-out
//! and, after the queue's receive limit, goes to its dead-letter queue: events are hints, so a lost or repeated one
//! costs at most a redundant sweep, and the periodic resync stays the backstop.

use std::time::Duration;

use async_trait::async_trait;

use super::{AwsError, Caller, ErrorKind, send};

/// The longest long poll SQS allows (`WaitTimeSeconds` 20); it fits within the factory's 30 s attempt time-out.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// The most messages one `ReceiveMessage` returns and one `DeleteMessageBatch` deletes.
pub const MAX_BATCH: usize = 10;

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The message body (for us, an EventBridge envelope as JSON).
    pub body: String,
    /// The handle that deletes this receipt of the message.
    pub receipt_handle: String,
}

/// A queue of event messages: receive with a long poll, delete what was handled.
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Wait up to `wait` (capped at [`MAX_WAIT`]; whole seconds) for up to `max_messages` (1 to 10) messages.
    /// An empty answer means none arrived in time.
    async fn receive(
        &self,
        wait: Duration,
        max_messages: i32,
    ) -> Result<Vec<QueueMessage>, AwsError>;

    /// Delete the messages of these receipts. Entries the queue refuses are reported together as one error after
    /// every chunk was tried; a failed request stops at once (its messages come back later, which is harmless).
    async fn delete(&self, receipt_handles: &[String]) -> Result<(), AwsError>;
}

/// [`EventQueue`] over the AWS SDK.
pub struct SdkEventQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    caller: Caller,
}

impl SdkEventQueue {
    pub(crate) fn new(
        client: aws_sdk_sqs::Client,
        queue_url: &str,
        caller: Caller,
    ) -> SdkEventQueue {
        SdkEventQueue {
            client,
            queue_url: queue_url.to_string(),
            caller,
        }
    }
}

/// `WaitTimeSeconds` for a wait: whole seconds, at most 20.
fn wait_seconds(wait: Duration) -> i32 {
    // The cap keeps the value within 0..=20, so the conversion cannot fail.
    i32::try_from(wait.min(MAX_WAIT).as_secs()).unwrap_or(0)
}

/// `MaxNumberOfMessages` for a request: 1 to 10.
fn batch_size(max_messages: i32) -> i32 {
    max_messages.clamp(1, MAX_BATCH as i32)
}

#[async_trait]
impl EventQueue for SdkEventQueue {
    async fn receive(
        &self,
        wait: Duration,
        max_messages: i32,
    ) -> Result<Vec<QueueMessage>, AwsError> {
        const OP: &str = "ReceiveMessage";
        let out = send(&self.caller, "sqs", OP, || {
            self.client
                .receive_message()
                .queue_url(&self.queue_url)
                .wait_time_seconds(wait_seconds(wait))
                .max_number_of_messages(batch_size(max_messages))
                .send()
        })
        .await?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                m.receipt_handle().map(|handle| QueueMessage {
                    body: m.body().unwrap_or_default().to_string(),
                    receipt_handle: handle.to_string(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt_handles: &[String]) -> Result<(), AwsError> {
        const OP: &str = "DeleteMessageBatch";
        let mut failures: Vec<String> = Vec::new();
        let mut first_code: Option<String> = None;
        let mut all_sender_faults = true;
        for (chunk_index, chunk) in receipt_handles.chunks(MAX_BATCH).enumerate() {
            let entries: Vec<aws_sdk_sqs::types::DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, handle)| {
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .ok()
                })
                .collect();
            let out = send(&self.caller, "sqs", OP, || {
                self.client
                    .delete_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries.clone()))
                    .send()
            })
            .await?;
            for failed in out.failed() {
                // Entry ids are the index within the chunk; report the index within the whole call.
                let index = failed
                    .id()
                    .parse::<usize>()
                    .map(|i| (chunk_index * MAX_BATCH + i).to_string())
                    .unwrap_or_else(|_| failed.id().to_string());
                failures.push(format!(
                    "#{index}: {} ({})",
                    failed.code(),
                    failed.message().unwrap_or("no message")
                ));
                first_code.get_or_insert_with(|| failed.code().to_string());
                all_sender_faults &= failed.sender_fault();
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        // The queue's fault may pass; a bad receipt handle will not.
        let kind = if all_sender_faults {
            ErrorKind::InvalidInput
        } else {
            ErrorKind::Server
        };
        let mut message = format!(
            "{} of {} messages were not deleted: {}",
            failures.len(),
            receipt_handles.len(),
            failures[..failures.len().min(MAX_BATCH)].join("; ")
        );
        if failures.len() > MAX_BATCH {
            message.push_str(&format!("; and {} more", failures.len() - MAX_BATCH));
        }
        let mut err = AwsError::new("sqs", OP, kind, message);
        err.code = first_code;
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_whole_seconds_capped_at_the_sqs_maximum() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_millis(999), 0),
            (Duration::from_millis(1500), 1),
            (Duration::from_secs(20), 20),
            (Duration::from_secs(21), 20),
            (Duration::MAX, 20),
        ];
        for (wait, want) in cases {
            assert_eq!(wait_seconds(wait), want, "{wait:?}");
        }
    }

    #[test]
    fn batch_sizes_stay_within_what_sqs_accepts() {
        let cases = [
            (i32::MIN, 1),
            (0, 1),
            (1, 1),
            (7, 7),
            (10, 10),
            (11, 10),
            (i32::MAX, 10),
        ];
        for (asked, want) in cases {
            assert_eq!(batch_size(asked), want, "{asked}");
        }
    }
}
