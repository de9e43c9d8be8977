//! The controller's side of `coordination`: which accounts this replica works on (those in shards it holds),
//! the IAM client that checks the lease immediately before every write ([`FencedIam`]), waiting for a shard
//! before sweeping it, and the prune grace bookkeeping kept in the lease table so a take-over keeps it.
//!
//! Without `coordination` every function here lets everything through, and nothing is wrapped. Sweeps of
//! accounts in shards not held are not run at all (not even read-only): a replica that takes a shard over
//! describes that account's revisions once, which costs less than every replica reading every account.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::context::Context;
use crate::aws::{
    AwsError, ErrorKind, IamApi, LeaseTable, ListedPolicy, ManagedPolicyInfo, PolicyVersionInfo,
    RoleInfo,
};
use crate::coordination::{Clock, Leases, Term};

/// This replica's part in `coordination`: its leases, and the table (for the grace bookkeeping).
#[derive(Clone)]
pub struct Coordinated {
    /// The shards held, and their terms.
    pub leases: Arc<Leases>,
    /// The lease table.
    pub table: Arc<dyn LeaseTable>,
    /// The wall clock the table's times are read with.
    pub clock: Arc<dyn Clock>,
}

/// Whether this replica works on `account` now: always without coordination, else while it holds the
/// account's shard.
pub(crate) fn is_ours(ctx: &Context, account: &str) -> bool {
    ctx.coordination
        .as_ref()
        .is_none_or(|c| c.leases.holds_account(account))
}

/// `iam`, checked against the lease of `account`'s shard before every write when coordination is on.
pub(crate) fn fenced(ctx: &Context, account: &str, iam: Arc<dyn IamApi>) -> Arc<dyn IamApi> {
    match &ctx.coordination {
        None => iam,
        Some(c) => Arc::new(FencedIam {
            inner: iam,
            leases: c.leases.clone(),
            account: account.to_string(),
        }),
    }
}

/// The span a role of `account` is reconciled in: with coordination, the shard and fencing counter of the term
/// it starts under, so every log line of the reconcile (its "IAM write" lines too) carries them.
pub(crate) fn lease_span(ctx: &Context, account: &str) -> tracing::Span {
    match ctx
        .coordination
        .as_ref()
        .and_then(|c| c.leases.term_for(account))
    {
        Some(term) => {
            tracing::info_span!("lease", shard = term.shard, fencing_counter = term.counter)
        }
        None => tracing::Span::none(),
    }
}

/// How a wait for an account's shard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardWait {
    /// The shard was held already (or there is no coordination).
    Held,
    /// The shard was taken while waiting: sweep it in full.
    Acquired,
    /// The generation ended first.
    Cancelled,
}

/// Wait until this replica holds `account`'s shard.
pub(crate) async fn wait_for_shard(
    ctx: &Context,
    account: &str,
    generation: &CancellationToken,
) -> ShardWait {
    let Some(c) = &ctx.coordination else {
        return ShardWait::Held;
    };
    if c.leases.holds_account(account) {
        return ShardWait::Held;
    }
    let mut changes = c.leases.subscribe();
    loop {
        if c.leases.holds_account(account) {
            tracing::info!(%account, shard = c.leases.shard_of(account), "shard held; sweeping the account");
            return ShardWait::Acquired;
        }
        tokio::select! {
            biased;
            _ = generation.cancelled() => return ShardWait::Cancelled,
            changed = changes.changed() => if changed.is_err() { return ShardWait::Cancelled },
        }
    }
}

/// With coordination: readiness again whenever the set of shards held changes (a replica that holds none is
/// ready once the lease table answers), until the generation ends.
pub(crate) async fn track_readiness(ctx: &Context, generation: &CancellationToken) {
    let Some(c) = &ctx.coordination else {
        return;
    };
    let mut changes = c.leases.subscribe();
    loop {
        super::record_readiness(ctx, &ctx.runtime());
        tokio::select! {
            biased;
            _ = generation.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Before sweeping `account` (coordination on): take in the grace bookkeeping an earlier holder left in the
/// table. A table that cannot be read leaves what this process knows.
pub(crate) async fn restore_grace(ctx: &Context, account: &str) {
    let Some(c) = &ctx.coordination else {
        return;
    };
    match c.table.grace(account).await {
        Ok(stored) => {
            let (now, now_ms) = (Instant::now(), c.clock.now_ms());
            let since = stored
                .into_iter()
                .map(|(arn, ms)| {
                    let ago = Duration::from_millis(now_ms.saturating_sub(ms));
                    (arn, now.checked_sub(ago).unwrap_or(now))
                })
                .collect();
            ctx.watcher.restore_missing_since(since);
        }
        Err(error) => {
            tracing::warn!(%account, error = %error, "cannot read the grace bookkeeping from the lease table")
        }
    }
}

/// After sweeping `account` (coordination on): keep its grace bookkeeping in the table for a later holder.
pub(crate) async fn save_grace(ctx: &Context, account: &str) {
    let Some(c) = &ctx.coordination else {
        return;
    };
    let (now, now_ms) = (Instant::now(), c.clock.now_ms());
    let since: BTreeMap<String, u64> = ctx
        .watcher
        .missing_since(account)
        .into_iter()
        .map(|(arn, at)| {
            (
                arn,
                now_ms.saturating_sub(now.duration_since(at).as_millis() as u64),
            )
        })
        .collect();
    if let Err(error) = c.table.store_grace(account, &since).await {
        tracing::warn!(%account, error = %error, "cannot keep the grace bookkeeping in the lease table");
    }
}

/// An IAM client whose writes go out only while this replica holds the account's shard with a valid lease:
/// checked immediately before each write, and logged with the shard and fencing counter. Reads pass through.
///
/// It implements every method of [`IamApi`]: a method added to the trait with a default body must be added
/// here too (a write with the fence, a read passed through), or the wrapper answers with the default.
struct FencedIam {
    inner: Arc<dyn IamApi>,
    leases: Arc<Leases>,
    account: String,
}

impl FencedIam {
    /// The term the write to `resource` (a role name, or a spill policy's name or ARN) goes out under, or the
    /// error that stops it.
    fn term(&self, operation: &'static str, resource: &str) -> Result<Term, AwsError> {
        match self.leases.term_for(&self.account) {
            Some(term) => {
                tracing::info!(
                    replica = self.leases.replica(),
                    account = %self.account,
                    resource,
                    operation,
                    shard = term.shard,
                    fencing_counter = term.counter,
                    "IAM write under lease"
                );
                Ok(term)
            }
            None => {
                let shard = self.leases.shard_of(&self.account);
                tracing::warn!(replica = self.leases.replica(), account = %self.account, resource, operation, shard, "not writing: this replica no longer holds a valid lease on the account's shard");
                Err(AwsError::new(
                    "iam",
                    operation,
                    ErrorKind::Other,
                    format!("not written: the lease of shard {shard} is not held (coordination)"),
                ))
            }
        }
    }
}

#[async_trait]
impl IamApi for FencedIam {
    async fn get_role(&self, role: &str) -> Result<Option<RoleInfo>, AwsError> {
        self.inner.get_role(role).await
    }

    async fn account_authorization_page(
        &self,
        marker: Option<String>,
    ) -> Result<crate::aws::AuthorizationPage, AwsError> {
        self.inner.account_authorization_page(marker).await
    }

    async fn account_authorization(&self) -> Result<crate::aws::AccountAuthorization, AwsError> {
        self.inner.account_authorization().await
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        self.inner.list_role_policies(role).await
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
        self.inner.get_role_policy(role, policy).await
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        self.term("PutRolePolicy", role)?;
        self.inner.put_role_policy(role, policy, document).await
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError> {
        self.term("DeleteRolePolicy", role)?;
        self.inner.delete_role_policy(role, policy).await
    }

    async fn list_attached_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        self.inner.list_attached_role_policies(role).await
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError> {
        self.term("AttachRolePolicy", role)?;
        self.inner.attach_role_policy(role, policy_arn).await
    }

    async fn update_assume_role_policy(&self, role: &str, document: &str) -> Result<(), AwsError> {
        self.term("UpdateAssumeRolePolicy", role)?;
        self.inner.update_assume_role_policy(role, document).await
    }

    async fn get_policy(&self, arn: &str) -> Result<Option<ManagedPolicyInfo>, AwsError> {
        self.inner.get_policy(arn).await
    }

    async fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        self.inner.get_policy_version(arn, version_id).await
    }

    async fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersionInfo>, AwsError> {
        self.inner.list_policy_versions(arn).await
    }

    async fn list_local_policies(&self, path_prefix: &str) -> Result<Vec<ListedPolicy>, AwsError> {
        self.inner.list_local_policies(path_prefix).await
    }

    async fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        self.term("CreatePolicy", name)?;
        self.inner.create_policy(name, path, document, tags).await
    }

    async fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<(), AwsError> {
        self.term("SetDefaultPolicyVersion", arn)?;
        self.inner.set_default_policy_version(arn, version_id).await
    }

    async fn tag_role(&self, role: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        self.term("TagRole", role)?;
        self.inner.tag_role(role, tags).await
    }

    async fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), AwsError> {
        self.term("UntagRole", role)?;
        self.inner.untag_role(role, keys).await
    }

    async fn create_policy_version(&self, arn: &str, document: &str) -> Result<(), AwsError> {
        self.term("CreatePolicyVersion", arn)?;
        self.inner.create_policy_version(arn, document).await
    }

    async fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), AwsError> {
        self.term("DeletePolicyVersion", arn)?;
        self.inner.delete_policy_version(arn, version_id).await
    }

    async fn detach_role_policy(&self, role: &str, arn: &str) -> Result<(), AwsError> {
        self.term("DetachRolePolicy", role)?;
        self.inner.detach_role_policy(role, arn).await
    }

    async fn delete_policy(&self, arn: &str) -> Result<(), AwsError> {
        self.term("DeletePolicy", arn)?;
        self.inner.delete_policy(arn).await
    }
}
