//! The lease table: [`LeaseTable`], the few conditional writes that leases need, and [`SdkLeaseTable`] over
//! Amazon DynamoDB (the design of the DynamoDB Lock Client). Every write that can take or keep a lease is
//! conditional, so two replicas can never both succeed; the conditions are written here once.
//!
//! Items (partition key `lease`, a string):
//! * `shard#<k>`: `holder`, `expires` (Unix milliseconds by the writer's clock), `counter` (the fencing counter,
//!   one more on every take-over). Never deleted: a release sets `expires` to 0 and keeps the counter, so
//!   counters only grow. These items carry no TTL attribute.
//! * `replica#<id>`: a replica's heartbeat, `holder`, `expires`, and `ttl` (Unix seconds, a day after `expires`)
//!   so the table's TTL, when enabled on `ttl`, removes the heartbeats of replicas long gone.
//! * `grace#<account>`: the prune grace bookkeeping of one account, `revisions` (a map of revision ARN to the
//!   Unix milliseconds it stopped counting).
//!
//! This file owns the requests; what to do with the answers (who takes what, when) is `crate::coordination`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{AwsError, Caller, ErrorKind, send};

/// One shard lease or replica heartbeat as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    /// `shard#<k>` or `replica#<id>`.
    pub key: String,
    /// The replica that holds (or announces) it.
    pub holder: String,
    /// When it ends, in Unix milliseconds by the writer's clock.
    pub expires_ms: u64,
    /// The fencing counter (0 for heartbeats).
    pub counter: u64,
}

/// The conditional writes of leases, heartbeats and the grace bookkeeping. `Ok(false)` means a condition did not
/// hold (someone else holds the lease): an answer, not a failure.
#[async_trait]
pub trait LeaseTable: Send + Sync {
    /// Every shard lease and replica heartbeat.
    async fn scan(&self) -> Result<Vec<LeaseItem>, AwsError>;

    /// Write `item` if there is no item under its key, or (with `previous` = the counter seen) the one there
    /// has that counter and ended before `now_ms`.
    async fn acquire(
        &self,
        item: &LeaseItem,
        now_ms: u64,
        previous: Option<u64>,
    ) -> Result<bool, AwsError>;

    /// Move the lease's end to `expires_ms` if `holder` still holds it with `counter` and it has not ended at
    /// `now_ms`: a renewal that comes too late writes nothing.
    async fn renew(
        &self,
        key: &str,
        holder: &str,
        counter: u64,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, AwsError>;

    /// End the lease now (expires 0, counter kept) if `holder` still holds it with `counter`.
    async fn release(&self, key: &str, holder: &str, counter: u64) -> Result<bool, AwsError>;

    /// Announce a replica until `expires_ms` (an unconditional put).
    async fn heartbeat(&self, replica: &str, expires_ms: u64) -> Result<(), AwsError>;

    /// Remove a replica's heartbeat (on shutdown).
    async fn retire(&self, replica: &str) -> Result<(), AwsError>;

    /// The grace bookkeeping of an account: revision ARN → Unix milliseconds it stopped counting.
    async fn grace(&self, account: &str) -> Result<BTreeMap<String, u64>, AwsError>;

    /// Replace the grace bookkeeping of an account.
    async fn store_grace(
        &self,
        account: &str,
        revisions: &BTreeMap<String, u64>,
    ) -> Result<(), AwsError>;
}

/// The table key of a replica's heartbeat.
pub fn heartbeat_key(replica: &str) -> String {
    format!("replica#{replica}")
}

/// The table key of an account's grace bookkeeping.
pub fn grace_key(account: &str) -> String {
    format!("grace#{account}")
}

/// How long after its end a heartbeat stays for the table's TTL: long enough that no replica still reads it as
/// live, short enough that the table does not collect the names of every task that ever ran.
const HEARTBEAT_TTL_SECS: u64 = 86_400;

/// [`LeaseTable`] over DynamoDB, every request through [`send`] (counted, rate-limited, retried in place).
pub struct SdkLeaseTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
    caller: Caller,
}

impl SdkLeaseTable {
    pub(crate) fn new(client: aws_sdk_dynamodb::Client, table: &str, caller: Caller) -> Self {
        SdkLeaseTable {
            client,
            table: table.to_string(),
            caller,
        }
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A failed condition is an answer (`false`); any other failure stays an error.
fn condition_held(result: Result<(), AwsError>) -> Result<bool, AwsError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.code.as_deref() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(e),
    }
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

/// A scanned item as a lease, when it is one.
fn lease_item(item: &HashMap<String, AttributeValue>) -> Option<LeaseItem> {
    let key = text(item, "lease")?;
    if !(key.starts_with("shard#") || key.starts_with("replica#")) {
        return None;
    }
    Some(LeaseItem {
        key,
        holder: text(item, "holder").unwrap_or_default(),
        expires_ms: number(item, "expires").unwrap_or(0),
        counter: number(item, "counter").unwrap_or(0),
    })
}

fn invalid(operation: &'static str, message: String) -> AwsError {
    AwsError::new("dynamodb", operation, ErrorKind::InvalidInput, message)
}

#[async_trait]
impl LeaseTable for SdkLeaseTable {
    async fn scan(&self) -> Result<Vec<LeaseItem>, AwsError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        for _ in 0..super::MAX_PAGES {
            let page = send(&self.caller, "dynamodb", "Scan", || {
                self.client
                    .scan()
                    .table_name(&self.table)
                    .consistent_read(true)
                    .set_exclusive_start_key(start.clone())
                    .send()
            })
            .await?;
            items.extend(page.items().iter().filter_map(lease_item));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
        Err(invalid(
            "Scan",
            "the table keeps returning more pages".into(),
        ))
    }

    async fn acquire(
        &self,
        item: &LeaseItem,
        now_ms: u64,
        previous: Option<u64>,
    ) -> Result<bool, AwsError> {
        let result = send(&self.caller, "dynamodb", "PutItem", || {
            let request = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("lease", s(&item.key))
                .item("holder", s(&item.holder))
                .item("expires", n(item.expires_ms))
                .item("counter", n(item.counter));
            match previous {
                None => request.condition_expression("attribute_not_exists(lease)"),
                Some(counter) => request
                    .condition_expression(
                        "attribute_not_exists(lease) OR (expires < :now AND #counter = :previous)",
                    )
                    .expression_attribute_names("#counter", "counter")
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":previous", n(counter)),
            }
            .send()
        })
        .await;
        condition_held(result.map(|_| ()))
    }

    async fn renew(
        &self,
        key: &str,
        holder: &str,
        counter: u64,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, AwsError> {
        let result = send(&self.caller, "dynamodb", "UpdateItem", || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("lease", s(key))
                .update_expression("SET expires = :expires")
                .condition_expression(
                    "holder = :holder AND #counter = :counter AND expires >= :now",
                )
                .expression_attribute_names("#counter", "counter")
                .expression_attribute_values(":holder", s(holder))
                .expression_attribute_values(":counter", n(counter))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":expires", n(expires_ms))
                .send()
        })
        .await;
        condition_held(result.map(|_| ()))
    }

    async fn release(&self, key: &str, holder: &str, counter: u64) -> Result<bool, AwsError> {
        let result = send(&self.caller, "dynamodb", "UpdateItem", || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("lease", s(key))
                .update_expression("SET expires = :zero")
                .condition_expression("holder = :holder AND #counter = :counter")
                .expression_attribute_names("#counter", "counter")
                .expression_attribute_values(":holder", s(holder))
                .expression_attribute_values(":counter", n(counter))
                .expression_attribute_values(":zero", n(0))
                .send()
        })
        .await;
        condition_held(result.map(|_| ()))
    }

    async fn heartbeat(&self, replica: &str, expires_ms: u64) -> Result<(), AwsError> {
        let ttl = expires_ms / 1000 + HEARTBEAT_TTL_SECS;
        send(&self.caller, "dynamodb", "PutItem", || {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("lease", s(&heartbeat_key(replica)))
                .item("holder", s(replica))
                .item("expires", n(expires_ms))
                .item("ttl", n(ttl))
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn retire(&self, replica: &str) -> Result<(), AwsError> {
        send(&self.caller, "dynamodb", "DeleteItem", || {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("lease", s(&heartbeat_key(replica)))
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn grace(&self, account: &str) -> Result<BTreeMap<String, u64>, AwsError> {
        let answer = send(&self.caller, "dynamodb", "GetItem", || {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("lease", s(&grace_key(account)))
                .consistent_read(true)
                .send()
        })
        .await?;
        let Some(revisions) = answer.item().and_then(|i| i.get("revisions")) else {
            return Ok(BTreeMap::new());
        };
        let map = revisions.as_m().map_err(|_| {
            invalid(
                "GetItem",
                format!("{}: revisions is not a map", grace_key(account)),
            )
        })?;
        Ok(map
            .iter()
            .filter_map(|(arn, v)| Some((arn.clone(), v.as_n().ok()?.parse().ok()?)))
            .collect())
    }

    async fn store_grace(
        &self,
        account: &str,
        revisions: &BTreeMap<String, u64>,
    ) -> Result<(), AwsError> {
        let map: HashMap<String, AttributeValue> = revisions
            .iter()
            .map(|(arn, ms)| (arn.clone(), n(*ms)))
            .collect();
        send(&self.caller, "dynamodb", "PutItem", || {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("lease", s(&grace_key(account)))
                .item("revisions", AttributeValue::M(map.clone()))
                .send()
        })
        .await
        .map(|_| ())
    }
}
