//! How each account's roles are observed (the `observe` setting): per role, or from the account's snapshot (every
//! role and customer managed policy from `GetAccountAuthorizationDetails`, all pages). It keeps each account's
//! latest snapshot read, whether bulk reads are denied there, and it chooses: `bulk` always reads in bulk,
//! `per-role` never, `auto` reads in bulk when the snapshot's pages cost fewer requests than per-role reads of the
//! roles queued would (estimated from their last observation), and falls back to per-role reads, with a warning
//! once and `execrole_observe_fallbacks_total`, when the call is denied.
//!
//! Consistency: every role carries the [`Moment`] of its last known change (the sweep or event that queued it, or
//! its own last write; see the store), and a snapshot is used for it only when its read began after that moment.
//! A role written in this pass is therefore never judged again from the snapshot read before the write: it is read
//! per role (`auto`) or from a new snapshot (`bulk`). A role observed while a read is in progress that began after
//! its last change waits for that read rather than being read on its own.
//!
//! Memory: the account lets go of its snapshot when the next read begins, rather than keeping it through the read
//! (a snapshot of 2,000 roles is a few megabytes, its read as much again); reconciles still observing from it keep
//! their own reference until they are done. It does not read roles itself (`observe`) nor schedule them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::aws::{AccountAuthorization, AwsError, IamApi};
use crate::config::ObserveMode;
use crate::metrics::Metrics;

/// A point in the order of the events that decide whether a snapshot is recent enough: marks of roles that need
/// fresh state, and the beginnings of snapshot reads. A counter, not a clock, so that two of them never tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(u64);

/// A snapshot read (or its failure) and when it began.
#[derive(Clone)]
struct Read {
    began: Moment,
    result: Result<Arc<AccountAuthorization>, AwsError>,
}

/// What is known of bulk reads in one account.
#[derive(Default)]
struct Account {
    /// The latest read, until the next one begins (the account does not keep it through the next read).
    latest: Mutex<Option<Read>>,
    /// When the read in progress began, if one is.
    in_progress: Mutex<Option<Moment>>,
    /// Pages of the last snapshot read, 0 before the first and after a failed read.
    pages: AtomicUsize,
    /// Held while a snapshot is read: one read at a time per account.
    reading: tokio::sync::Mutex<()>,
    /// `auto` met a terminal error (access denied): per-role reads until the next reload.
    denied: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single insert or swap: a poisoned lock still holds consistent data.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Each account's latest snapshot and the choice between bulk and per-role reads.
#[derive(Default)]
pub(crate) struct Snapshots {
    accounts: Mutex<HashMap<String, Arc<Account>>>,
    clock: AtomicU64,
}

/// What a per-role read costs when a role was never observed: `GetRole`, `ListRolePolicies`,
/// `ListAttachedRolePolicies` and one `GetRolePolicy`.
pub(crate) const UNKNOWN_PER_ROLE_COST: usize = 4;

impl Snapshots {
    /// The next moment: later than every moment handed out before.
    pub(crate) fn now(&self) -> Moment {
        Moment(self.clock.fetch_add(1, Ordering::SeqCst))
    }

    fn account(&self, account: &str) -> Arc<Account> {
        lock(&self.accounts)
            .entry(account.to_string())
            .or_default()
            .clone()
    }

    /// Forget every snapshot and denial (after a reload: credentials and permissions may have changed).
    pub(crate) fn forget(&self) {
        lock(&self.accounts).clear();
    }

    /// Before the roles of `account` queued at `marked` are reconciled: read a snapshot now when `mode` says so,
    /// given what per-role reads of those roles would cost (`per_role_cost` requests).
    pub(crate) async fn prepare(
        &self,
        mode: ObserveMode,
        account: &str,
        iam: &dyn IamApi,
        per_role_cost: usize,
        marked: Moment,
        metrics: &Metrics,
    ) {
        let state = self.account(account);
        let wanted = match mode {
            ObserveMode::PerRole => false,
            ObserveMode::Bulk => true,
            ObserveMode::Auto => {
                !state.denied.load(Ordering::SeqCst)
                    && per_role_cost > 0
                    && estimated_pages(&state) < per_role_cost
            }
        };
        if wanted {
            self.read_after(mode, account, &state, iam, marked, metrics)
                .await;
        }
    }

    /// The snapshot to observe a role of `account` from, `None` to read it per role. A snapshot counts only when
    /// its read began after `fresh_after` (the role's last known change). `bulk` reads a new one when there is none
    /// or the last one failed retryably (and fails the role with the read's error); `auto` then reads the role per
    /// role.
    pub(crate) async fn for_role(
        &self,
        mode: ObserveMode,
        account: &str,
        fresh_after: Option<Moment>,
        iam: &dyn IamApi,
        metrics: &Metrics,
    ) -> Result<Option<Arc<AccountAuthorization>>, AwsError> {
        if mode == ObserveMode::PerRole {
            return Ok(None);
        }
        let state = self.account(account);
        let is_fresh = |began: Moment| fresh_after.is_none_or(|at| began > at);
        // A read in progress that began after the role's last change is waited for, not read around.
        if lock(&state.in_progress).is_some_and(is_fresh) {
            drop(state.reading.lock().await);
        }
        let latest = lock(&state.latest)
            .clone()
            .filter(|read| is_fresh(read.began));
        if mode == ObserveMode::Auto {
            return Ok(latest
                .filter(|_| !state.denied.load(Ordering::SeqCst))
                .and_then(|read| read.result.ok()));
        }
        let read = match latest {
            // A read that failed and may succeed if tried again is not reused by a retry: the retries that come
            // after it share one new read.
            Some(read) if read.result.as_ref().is_err_and(|e| e.is_retryable()) => {
                self.read_after(mode, account, &state, iam, read.began, metrics)
                    .await
            }
            Some(read) => read,
            None => {
                let after = fresh_after.unwrap_or_else(|| self.now());
                self.read_after(mode, account, &state, iam, after, metrics)
                    .await
            }
        };
        read.result.map(Some)
    }

    /// The latest read if it began after `after`, or a new one (one at a time per account).
    async fn read_after(
        &self,
        mode: ObserveMode,
        account: &str,
        state: &Account,
        iam: &dyn IamApi,
        after: Moment,
        metrics: &Metrics,
    ) -> Read {
        let _reading = state.reading.lock().await;
        if let Some(read) = lock(&state.latest).clone().filter(|r| r.began > after) {
            return read;
        }
        // The previous snapshot goes first (roles still observed from it keep their own reference), freed outside
        // the lock.
        let previous = lock(&state.latest).take();
        drop(previous);
        let began = self.now();
        *lock(&state.in_progress) = Some(began);
        let result = iam.account_authorization().await.map(Arc::new);
        state.pages.store(
            result.as_ref().map_or(0, |snapshot| snapshot.pages),
            Ordering::SeqCst,
        );
        match &result {
            Ok(snapshot) => tracing::debug!(
                account,
                pages = snapshot.pages,
                roles = snapshot.role_count(),
                "read the account's IAM in bulk"
            ),
            Err(error) => fall_back(mode, account, state, error, metrics),
        }
        let read = Read { began, result };
        *lock(&state.latest) = Some(read.clone());
        *lock(&state.in_progress) = None;
        read
    }
}

/// Pages of the account's last snapshot, or one when none was read yet or the last read failed.
fn estimated_pages(state: &Account) -> usize {
    state.pages.load(Ordering::SeqCst).max(1)
}

/// A failed bulk read: `auto` reads per role instead (for good after a terminal error such as access denied,
/// warned once; for this pass after a retryable one), and counts the fallback. `bulk` only warns: its roles fail
/// with the error.
fn fall_back(
    mode: ObserveMode,
    account: &str,
    state: &Account,
    error: &AwsError,
    metrics: &Metrics,
) {
    if mode != ObserveMode::Auto {
        tracing::warn!(account, error = %error, "reading the account's IAM in bulk failed; its roles cannot be observed until it succeeds (observe: bulk)");
        return;
    }
    metrics
        .observe_fallbacks
        .with_label_values(&[error.reason()])
        .inc();
    if error.is_retryable() {
        tracing::warn!(account, error = %error, "reading the account's IAM in bulk failed; its roles are read one by one this time");
    } else if !state.denied.swap(true, Ordering::SeqCst) {
        tracing::warn!(account, error = %error, "reading the account's IAM in bulk (iam:GetAccountAuthorizationDetails) is not possible; its roles are read one by one until the config is reloaded");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Weak;
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use tokio::sync::{Notify, Semaphore};

    use super::*;
    use crate::aws::RoleInfo;

    /// An IAM whose bulk read announces that it began, waits for the gate, and checks that the snapshot the test
    /// handed back (`previous`) is gone by then. Nothing else is called.
    struct GatedIam {
        began: Notify,
        gate: Semaphore,
        reads: AtomicUsize,
        previous: Mutex<Option<Weak<AccountAuthorization>>>,
        previous_alive: AtomicBool,
    }

    #[async_trait]
    impl IamApi for GatedIam {
        async fn get_role(&self, _: &str) -> Result<Option<RoleInfo>, AwsError> {
            unreachable!("per-role read")
        }
        async fn list_role_policies(&self, _: &str) -> Result<Vec<String>, AwsError> {
            unreachable!("per-role read")
        }
        async fn get_role_policy(&self, _: &str, _: &str) -> Result<Option<String>, AwsError> {
            unreachable!("per-role read")
        }
        async fn put_role_policy(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!("write")
        }
        async fn delete_role_policy(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!("write")
        }
        async fn list_attached_role_policies(&self, _: &str) -> Result<Vec<String>, AwsError> {
            unreachable!("per-role read")
        }
        async fn attach_role_policy(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!("write")
        }
        async fn update_assume_role_policy(&self, _: &str, _: &str) -> Result<(), AwsError> {
            unreachable!("write")
        }
        async fn account_authorization(&self) -> Result<AccountAuthorization, AwsError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let previous = lock(&self.previous).take();
            let alive = previous.is_some_and(|weak| weak.upgrade().is_some());
            self.previous_alive.store(alive, Ordering::SeqCst);
            self.began.notify_one();
            self.gate.acquire().await.expect("gate open").forget();
            Ok(AccountAuthorization::new(Vec::new(), 1))
        }
    }

    impl GatedIam {
        /// Gate closed: every read waits for a permit.
        fn new() -> GatedIam {
            GatedIam {
                began: Notify::new(),
                gate: Semaphore::new(0),
                reads: AtomicUsize::new(0),
                previous: Mutex::new(None),
                previous_alive: AtomicBool::new(false),
            }
        }
    }

    const ACCOUNT: &str = "111111111111";

    /// An `auto` read of the roles marked at the returned moment, begun and held at the gate.
    async fn a_read_in_progress() -> (
        Arc<Snapshots>,
        Arc<GatedIam>,
        Arc<Metrics>,
        Moment,
        tokio::task::JoinHandle<()>,
    ) {
        let snapshots = Arc::new(Snapshots::default());
        let iam = Arc::new(GatedIam::new());
        let metrics = Arc::new(Metrics::new());
        let marked = snapshots.now();
        let reading = tokio::spawn({
            let (snapshots, iam, metrics) = (snapshots.clone(), iam.clone(), metrics.clone());
            async move {
                let iam = iam.as_ref();
                snapshots
                    .prepare(ObserveMode::Auto, ACCOUNT, iam, 4, marked, &metrics)
                    .await
            }
        });
        iam.began.notified().await;
        (snapshots, iam, metrics, marked, reading)
    }

    #[tokio::test]
    async fn a_new_read_lets_go_of_the_previous_snapshot_before_it_begins() {
        let (snapshots, iam, metrics) = (Snapshots::default(), GatedIam::new(), Metrics::new());
        iam.gate.add_permits(2);
        let first = snapshots
            .for_role(ObserveMode::Bulk, ACCOUNT, None, &iam, &metrics)
            .await
            .unwrap()
            .expect("a snapshot");
        *lock(&iam.previous) = Some(Arc::downgrade(&first));
        drop(first);
        let marked = snapshots.now();
        snapshots
            .prepare(ObserveMode::Bulk, ACCOUNT, &iam, 4, marked, &metrics)
            .await;
        assert_eq!(iam.reads.load(Ordering::SeqCst), 2);
        assert!(
            !iam.previous_alive.load(Ordering::SeqCst),
            "the previous snapshot was still held while the next was read"
        );
    }

    #[tokio::test]
    async fn auto_waits_for_a_read_in_progress_instead_of_reading_the_role_alone() {
        let (snapshots, iam, metrics, marked, reading) = a_read_in_progress().await;
        let open_gate = async {
            tokio::task::yield_now().await;
            iam.gate.add_permits(1);
        };
        let (observed, ()) = tokio::join!(
            snapshots.for_role(
                ObserveMode::Auto,
                ACCOUNT,
                Some(marked),
                iam.as_ref(),
                &metrics
            ),
            open_gate
        );
        reading.await.unwrap();
        assert!(
            observed.unwrap().is_some(),
            "a role marked before the read began is observed from it"
        );
        assert_eq!(iam.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn auto_does_not_wait_for_a_read_that_began_before_the_roles_change() {
        let (snapshots, iam, metrics, _, reading) = a_read_in_progress().await;
        let changed = snapshots.now();
        let observe = snapshots.for_role(
            ObserveMode::Auto,
            ACCOUNT,
            Some(changed),
            iam.as_ref(),
            &metrics,
        );
        let observed = tokio::time::timeout(std::time::Duration::from_secs(10), observe)
            .await
            .expect("for_role waited for a read that cannot serve the role");
        assert!(
            observed.unwrap().is_none(),
            "read on its own at once: the read in progress is older than the change"
        );
        iam.gate.add_permits(1);
        reading.await.unwrap();
    }
}
