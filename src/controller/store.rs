//! The store: one record per managed role (its published desired state and where it came from, its last outcome,
//! its drift, its backoff) and one per watched account (what its last sweep saw). kube-runtime keeps per-object
//! state the same way; one record per key cannot drift apart the way parallel maps keyed by the same role can.
//!
//! The store only keeps state consistent (publishing a sweep adds, replaces and forgets records as one step); it
//! does not observe, reconcile, schedule or record metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Outcome;
use super::snapshots::{Moment, UNKNOWN_PER_ROLE_COST};
use crate::aws::{IamApi, KeyBackoff};
use crate::config::BackoffSettings;
use crate::derive::Finding;
use crate::model::RoleKey;
use crate::plan::{DesiredRole, Removals, RolePlan};

/// A role's desired state and where it came from (the last sweep of its account).
#[derive(Clone)]
pub(crate) struct PublishedRole {
    /// What the role should hold.
    pub(crate) desired: DesiredRole,
    /// The IAM client of its account.
    pub(crate) iam: Arc<dyn IamApi>,
    /// What may be removed: everything when every in-scope revision of the account was seen and every look-up
    /// answered; otherwise all but what the holds cover.
    pub(crate) removals: Removals,
}

impl PublishedRole {
    /// Whether publishing `other` changes nothing a reconcile would act on.
    fn same_as(&self, other: &PublishedRole) -> bool {
        self.desired == other.desired && self.removals == other.removals
    }
}

/// One role a sweep saw: its new desired state, or only its key when what is published already says the same (so
/// that a steady sweep does not hold a second copy of every role's desired state).
pub(crate) enum SweptRole {
    /// New, or different from what is published.
    Changed(PublishedRole),
    /// The same as what is published; only its account's IAM client is refreshed.
    Unchanged { key: RoleKey, iam: Arc<dyn IamApi> },
}

impl SweptRole {
    /// The role.
    pub(crate) fn key(&self) -> &RoleKey {
        match self {
            SweptRole::Changed(published) => &published.desired.key,
            SweptRole::Unchanged { key, .. } => key,
        }
    }
}

/// What a role's last reconcile did: how it ended, its plan (when it got that far) and the writes it made.
/// `pass` takes it for its report; the drift flags are read from it.
#[derive(Debug)]
pub(crate) struct LastReconcile {
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// The plan (what was or would be written), when the role could be observed. Boxed: a plan is large, and
    /// the store keeps a record for every managed role whether or not it keeps its plan.
    pub(crate) plan: Option<Box<RolePlan>>,
    /// IAM writes made.
    pub(crate) writes: usize,
}

/// Who reads a reconcile's plan: `pass` puts every role's plan in its report; the daemon only counts outcomes and
/// drift, so it keeps none (every role's last plan, with its documents, would stay in memory for as long as the
/// role is managed: tens of MB over thousands of roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanUse {
    /// Keep the plan until `pass` takes it for its report.
    #[default]
    Report,
    /// Keep the outcome, the writes and the drift flags; drop the plan.
    CountOnly,
}

/// Whether a role is in drift, by kind (the `kind` label of `execrole_roles_in_drift`), as its last reconcile saw
/// it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DriftFlags {
    pub(crate) missing: bool,
    pub(crate) excess: bool,
    pub(crate) blocked: bool,
    pub(crate) over_granted: bool,
    pub(crate) trust: bool,
}

/// Whether a role's drift flags hold one kind.
type IsIn = fn(&DriftFlags) -> bool;

impl DriftFlags {
    /// The kinds with their label, in the order the gauges are set.
    pub(crate) const KINDS: [(&'static str, IsIn); 5] = [
        ("missing", |d| d.missing),
        ("excess", |d| d.excess),
        ("blocked", |d| d.blocked),
        ("over_granted", |d| d.over_granted),
        ("trust", |d| d.trust),
    ];

    /// Drift that a write can clear counts only while it remains (not written: dry-run, capped, failed); what no
    /// write of ours can clear (blocked, over-granted elsewhere) counts whenever it is seen.
    fn of(report: &LastReconcile) -> DriftFlags {
        let Some(plan) = &report.plan else {
            return DriftFlags::default();
        };
        let remains = matches!(report.outcome, Outcome::Pending | Outcome::Error);
        DriftFlags {
            missing: remains
                && (!plan.added.is_empty() || (!plan.role_exists && plan.desired.is_some())),
            excess: remains && (!plan.removed.is_empty() || !plan.removed_other.is_empty()),
            blocked: !plan.blocked.is_empty(),
            over_granted: !plan.over_granted.is_empty(),
            trust: remains && plan.trust_update.is_some(),
        }
    }
}

/// Everything known of one managed role.
pub(crate) struct RoleRecord {
    /// Its desired state, from the last sweep of its account.
    pub(crate) published: PublishedRole,
    /// What its last reconcile did (until `pass` takes it).
    pub(crate) last: Option<LastReconcile>,
    /// Its drift, as its last reconcile saw it.
    pub(crate) drift: DriftFlags,
    /// Its retry backoff, while its reconciles keep failing with retryable errors.
    pub(crate) backoff: Option<KeyBackoff>,
    /// Its last known change (the sweep or event that queued it, its own last write): IAM state read before it
    /// is stale for this role.
    pub(crate) fresh_after: Option<Moment>,
    /// Requests a per-role read of it makes, from its last observation.
    pub(crate) per_role_cost: Option<usize>,
    /// When the settle window after its last write ends, until its first run after that.
    pub(crate) settles_at: Option<tokio::time::Instant>,
}

impl RoleRecord {
    /// The record of a newly published role.
    fn new(published: PublishedRole) -> RoleRecord {
        RoleRecord {
            published,
            last: None,
            drift: DriftFlags::default(),
            backoff: None,
            fresh_after: None,
            per_role_cost: None,
            settles_at: None,
        }
    }
}

/// What the last sweep of one account saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccountRecord {
    /// Whether it saw everything.
    pub(crate) complete: bool,
    /// In-scope revisions counted.
    pub(crate) watched: usize,
    /// Of those, revisions kept only for the prune grace period.
    pub(crate) in_grace: usize,
    /// Its findings (of every role, and of revisions that name no usable role).
    pub(crate) findings: BTreeSet<Finding>,
}

/// Roles whose published state changed, and roles that are no longer managed.
pub(crate) struct Published {
    pub(crate) changed: Vec<RoleKey>,
    pub(crate) gone: Vec<RoleKey>,
}

/// The per-role and per-account records.
#[derive(Default)]
pub(crate) struct Store {
    roles: Mutex<BTreeMap<RoleKey, RoleRecord>>,
    accounts: Mutex<BTreeMap<String, AccountRecord>>,
    /// The findings last logged (each is logged when it appears and when it goes away).
    logged_findings: Mutex<BTreeSet<Finding>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks completes before the guard drops: a poisoned lock still holds consistent
    // data.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Make a sweep's roles the desired state of `account`: new roles get a record, changed ones keep their
    /// drift and backoff, unchanged ones only take the new IAM client, roles the sweep no longer saw are
    /// forgotten.
    pub(crate) fn publish(
        &self,
        account: &str,
        roles: Vec<SweptRole>,
        sweep: AccountRecord,
    ) -> Published {
        let fresh: BTreeMap<RoleKey, SweptRole> =
            roles.into_iter().map(|r| (r.key().clone(), r)).collect();
        let mut records = lock(&self.roles);
        let gone: Vec<RoleKey> = records
            .keys()
            .filter(|k| k.account == account && !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in &gone {
            records.remove(key);
        }
        let mut changed = Vec::new();
        for (key, swept) in fresh {
            match (records.get_mut(&key), swept) {
                (Some(record), SweptRole::Changed(published)) => {
                    if !record.published.same_as(&published) {
                        changed.push(key);
                    }
                    record.published = published;
                }
                (Some(record), SweptRole::Unchanged { iam, .. }) => record.published.iam = iam,
                (None, SweptRole::Changed(published)) => {
                    changed.push(key.clone());
                    records.insert(key, RoleRecord::new(published));
                }
                // Forgotten since the sweep compared it (a reload dropped its account): the next sweep of the
                // account publishes it again if it is still a target.
                (None, SweptRole::Unchanged { .. }) => {}
            }
        }
        drop(records);
        lock(&self.accounts).insert(account.to_string(), sweep);
        Published { changed, gone }
    }

    /// Whether `role` is what is published for it already (nothing a reconcile acts on would change).
    pub(crate) fn is_published(&self, role: &PublishedRole) -> bool {
        lock(&self.roles)
            .get(&role.desired.key)
            .is_some_and(|record| record.published.same_as(role))
    }

    /// A role's published desired state, or `None` when it is not managed.
    pub(crate) fn published(&self, key: &RoleKey) -> Option<PublishedRole> {
        lock(&self.roles).get(key).map(|r| r.published.clone())
    }

    /// Whether the role is managed (published by the last sweep of its account).
    pub(crate) fn is_managed(&self, key: &RoleKey) -> bool {
        lock(&self.roles).contains_key(key)
    }

    /// Keep what a reconcile saw, when the role is still managed: its drift, and its plan only for `PlanUse::Report`.
    pub(crate) fn record_reconcile(&self, key: &RoleKey, mut last: LastReconcile, plans: PlanUse) {
        if let Some(record) = lock(&self.roles).get_mut(key) {
            record.drift = DriftFlags::of(&last);
            if plans == PlanUse::CountOnly {
                last.plan = None;
            }
            record.last = Some(last);
        }
    }

    /// Take what the role's last reconcile did (for `pass`'s report); `None` when it was not reconciled.
    pub(crate) fn take_last(&self, key: &RoleKey) -> Option<LastReconcile> {
        lock(&self.roles).get_mut(key).and_then(|r| r.last.take())
    }

    /// Mark that the role needs IAM state read after `at` (it was queued by a sweep or an event, or it wrote).
    pub(crate) fn require_fresh(&self, key: &RoleKey, at: Moment) {
        if let Some(record) = lock(&self.roles).get_mut(key) {
            record.fresh_after = Some(record.fresh_after.map_or(at, |old| old.max(at)));
        }
    }

    /// The role wrote at `at`: IAM state read before is stale for it, and so is state read before its settle
    /// window ends at `settles_at` (IAM is eventually consistent).
    pub(crate) fn written(&self, key: &RoleKey, at: Moment, settles_at: tokio::time::Instant) {
        self.require_fresh(key, at);
        if let Some(record) = lock(&self.roles).get_mut(key) {
            record.settles_at = Some(settles_at);
        }
    }

    /// The role's last known change, when one was marked. A settle window that has ended since its last write
    /// counts as a change `now` (its first run after the window), so that no state read inside the window is used.
    pub(crate) fn fresh_after(
        &self,
        key: &RoleKey,
        now: impl FnOnce() -> Moment,
    ) -> Option<Moment> {
        let mut roles = lock(&self.roles);
        let record = roles.get_mut(key)?;
        if record
            .settles_at
            .is_some_and(|at| at <= tokio::time::Instant::now())
        {
            record.settles_at = None;
            record.fresh_after = Some(now());
        }
        record.fresh_after
    }

    /// Keep what a per-role read of the role costs (from an observation, whichever its source).
    pub(crate) fn record_per_role_cost(&self, key: &RoleKey, cost: usize) {
        if let Some(record) = lock(&self.roles).get_mut(key) {
            record.per_role_cost = Some(cost);
        }
    }

    /// What per-role reads of these roles would cost, from their last observations (a role never observed counts
    /// [`UNKNOWN_PER_ROLE_COST`]).
    pub(crate) fn per_role_cost(&self, keys: &[RoleKey]) -> usize {
        let roles = lock(&self.roles);
        keys.iter()
            .map(|k| {
                roles
                    .get(k)
                    .and_then(|r| r.per_role_cost)
                    .unwrap_or(UNKNOWN_PER_ROLE_COST)
            })
            .sum()
    }

    /// How many managed roles are in drift of each kind.
    pub(crate) fn drift_counts(&self) -> Vec<(&'static str, usize)> {
        let roles = lock(&self.roles);
        DriftFlags::KINDS
            .iter()
            .map(|(kind, is_in)| (*kind, roles.values().filter(|r| is_in(&r.drift)).count()))
            .collect()
    }

    /// The role's next retry delay (its backoff grows); a role no longer managed gets a first delay and no
    /// record.
    pub(crate) fn next_backoff(&self, key: &RoleKey, settings: &BackoffSettings) -> Duration {
        match lock(&self.roles).get_mut(key) {
            Some(record) => record
                .backoff
                .get_or_insert_with(|| KeyBackoff::for_settings(settings))
                .next_delay(),
            None => KeyBackoff::for_settings(settings).next_delay(),
        }
    }

    /// Reset the role's backoff (it succeeded, or failed in a way retrying cannot help).
    pub(crate) fn reset_backoff(&self, key: &RoleKey) {
        if let Some(record) = lock(&self.roles).get_mut(key) {
            record.backoff = None;
        }
    }

    /// Forget every role (after a reload), and the accounts not in `accounts`.
    pub(crate) fn forget(&self, accounts: &BTreeSet<&str>) {
        lock(&self.roles).clear();
        lock(&self.accounts).retain(|a, _| accounts.contains(a.as_str()));
    }

    /// How many roles are managed.
    pub(crate) fn role_count(&self) -> usize {
        lock(&self.roles).len()
    }

    /// A copy of the account records.
    pub(crate) fn accounts(&self) -> BTreeMap<String, AccountRecord> {
        lock(&self.accounts).clone()
    }

    /// Swap the set of findings last logged for `current`; returns the previous set.
    pub(crate) fn swap_logged_findings(&self, current: BTreeSet<Finding>) -> BTreeSet<Finding> {
        std::mem::replace(&mut *lock(&self.logged_findings), current)
    }
}
