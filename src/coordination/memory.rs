//! An in-memory [`LeaseTable`] for tests: the same conditions as the DynamoDB adapter, evaluated under one lock,
//! with switches for an unreachable table and for answers that arrive late.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::aws::{AwsError, ErrorKind, LeaseItem, LeaseTable, heartbeat_key};

/// The fake table.
pub(crate) struct MemoryTable {
    /// When it was made: the tests' wall clocks start here.
    pub(crate) created: tokio::time::Instant,
    items: Mutex<BTreeMap<String, LeaseItem>>,
    grace: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    /// Every request fails while set.
    pub(crate) unreachable: AtomicBool,
    /// Renewals reach the table this many milliseconds after they were sent.
    pub(crate) renew_delay_ms: AtomicU64,
    /// Successful conditional writes (acquire, renew, release).
    pub(crate) writes: AtomicU64,
}

impl Default for MemoryTable {
    fn default() -> Self {
        MemoryTable {
            created: tokio::time::Instant::now(),
            items: Mutex::default(),
            grace: Mutex::default(),
            unreachable: AtomicBool::default(),
            renew_delay_ms: AtomicU64::default(),
            writes: AtomicU64::default(),
        }
    }
}

impl MemoryTable {
    /// The item under `key`.
    pub(crate) fn item(&self, key: &str) -> Option<LeaseItem> {
        self.items.lock().unwrap().get(key).cloned()
    }

    fn check(&self, operation: &'static str) -> Result<(), AwsError> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(AwsError::new(
                "dynamodb",
                operation,
                ErrorKind::Connection,
                "unreachable (test)",
            ));
        }
        Ok(())
    }

    /// Apply `change` to the item under `key` when `condition` holds for it; count the write.
    fn write_if(
        &self,
        key: &str,
        condition: impl FnOnce(Option<&LeaseItem>) -> bool,
        change: impl FnOnce(Option<LeaseItem>) -> LeaseItem,
    ) -> bool {
        let mut items = self.items.lock().unwrap();
        if !condition(items.get(key)) {
            return false;
        }
        let new = change(items.remove(key));
        items.insert(key.to_string(), new);
        self.writes.fetch_add(1, Ordering::SeqCst);
        true
    }
}

#[async_trait]
impl LeaseTable for MemoryTable {
    async fn scan(&self) -> Result<Vec<LeaseItem>, AwsError> {
        self.check("Scan")?;
        Ok(self.items.lock().unwrap().values().cloned().collect())
    }

    async fn acquire(
        &self,
        item: &LeaseItem,
        now_ms: u64,
        previous: Option<u64>,
    ) -> Result<bool, AwsError> {
        self.check("PutItem")?;
        Ok(self.write_if(
            &item.key,
            |old| match (old, previous) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(old), Some(p)) => old.expires_ms < now_ms && old.counter == p,
            },
            |_| item.clone(),
        ))
    }

    async fn renew(
        &self,
        key: &str,
        holder: &str,
        counter: u64,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, AwsError> {
        let delay = self.renew_delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.check("UpdateItem")?;
        Ok(self.write_if(
            key,
            |old| {
                old.is_some_and(|o| {
                    o.holder == holder && o.counter == counter && o.expires_ms >= now_ms
                })
            },
            |old| LeaseItem {
                expires_ms,
                ..old.expect("checked")
            },
        ))
    }

    async fn release(&self, key: &str, holder: &str, counter: u64) -> Result<bool, AwsError> {
        self.check("UpdateItem")?;
        Ok(self.write_if(
            key,
            |old| old.is_some_and(|o| o.holder == holder && o.counter == counter),
            |old| LeaseItem {
                expires_ms: 0,
                ..old.expect("checked")
            },
        ))
    }

    async fn heartbeat(&self, replica: &str, expires_ms: u64) -> Result<(), AwsError> {
        self.check("PutItem")?;
        let key = heartbeat_key(replica);
        self.items.lock().unwrap().insert(
            key.clone(),
            LeaseItem {
                key,
                holder: replica.to_string(),
                expires_ms,
                counter: 0,
            },
        );
        Ok(())
    }

    async fn retire(&self, replica: &str) -> Result<(), AwsError> {
        self.check("DeleteItem")?;
        self.items.lock().unwrap().remove(&heartbeat_key(replica));
        Ok(())
    }

    async fn grace(&self, account: &str) -> Result<BTreeMap<String, u64>, AwsError> {
        self.check("GetItem")?;
        Ok(self
            .grace
            .lock()
            .unwrap()
            .get(account)
            .cloned()
            .unwrap_or_default())
    }

    async fn store_grace(
        &self,
        account: &str,
        revisions: &BTreeMap<String, u64>,
    ) -> Result<(), AwsError> {
        self.check("PutItem")?;
        self.grace
            .lock()
            .unwrap()
            .insert(account.to_string(), revisions.clone());
        Ok(())
    }
}
