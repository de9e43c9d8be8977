//! The steps of reconciling one execution role (`converge`): `desired` (given), `observed` (read from IAM by
//! `observe`, per role or from the account's snapshot), `delta` (`plan::plan_role`), then apply only when the
//! delta is not empty, the mode is `enforce`, and applying is safe. Only what execrole owns is ever written: the
//! inline policy, its spill policies, the baseline's attachment (with its role tag) and the trust policy when
//! managed; other policies are read at most, never changed.

use std::time::Instant;

use super::observe::{PolicyCache, Source, observe};
use super::spill::SpillListings;
use crate::aws::{AwsError, IamApi};
use crate::config::Mode;
use crate::metrics::Metrics;
use crate::plan::{
    self, BaselineTag, Change, DesiredRole, ManagedChange, ObservedRole, Removals, RolePlan,
};

/// How a reconcile ended (the `result` label of `execrole_reconciles_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    // Declared in the order of their labels, so maps keyed by outcome list them as before.
    /// The repair was written.
    Applied,
    /// The role could not be read or written.
    Error,
    /// Nothing to change.
    InSync,
    /// The role is outside `safety.role_selection` (path or tags): observed, never written.
    NotSelected,
    /// Drift seen and not written (dry-run, or a write that was not safe this pass).
    Pending,
}

impl Outcome {
    /// The `result` label, and the one source of these strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applied => "applied",
            Outcome::Pending => "pending",
            Outcome::Error => "error",
            Outcome::NotSelected => "not_selected",
        }
    }
}

/// Why a reconcile failed, named after the step that failed. Each keeps the AWS error and so its kind
/// (retryable or terminal) until `error_policy`, the metric and the log line; the text is the AWS error's.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the role, its policies or its boundary from IAM failed.
    #[error(transparent)]
    ObserveFailed(AwsError),
    /// An IAM write failed (earlier writes of the same plan stay done).
    #[error(transparent)]
    WriteFailed(AwsError),
    /// The safety rails refused the write: it would grant an action `safety.never_grant` forbids.
    #[error(transparent)]
    Refused(AwsError),
}

impl ReconcileError {
    /// The AWS error behind it.
    pub fn aws(&self) -> &AwsError {
        match self {
            ReconcileError::ObserveFailed(e)
            | ReconcileError::WriteFailed(e)
            | ReconcileError::Refused(e) => e,
        }
    }

    /// Whether retrying soon can help (throttling, 5xx, time-outs, connection errors).
    pub fn is_retryable(&self) -> bool {
        self.aws().is_retryable()
    }

    /// The step that failed, for logs.
    pub fn step(&self) -> &'static str {
        match self {
            ReconcileError::ObserveFailed(_) => "observe",
            ReconcileError::WriteFailed(_) => "write",
            ReconcileError::Refused(_) => "refused",
        }
    }
}

/// The result of reconciling one role.
#[derive(Debug)]
pub struct RoleReport {
    /// The plan (what was or would be written).
    pub plan: Option<RolePlan>,
    /// How it ended.
    pub outcome: Outcome,
    /// The error, when it ended in one.
    pub error: Option<ReconcileError>,
    /// IAM writes made.
    pub writes: usize,
    /// Whether a write was held back by the blast-radius cap (the role waits for the next window).
    pub capped: bool,
    /// Requests a per-role read of the role makes (0 when it could not be observed).
    pub per_role_cost: usize,
}

impl RoleReport {
    /// A report of `outcome` with no plan, error or write.
    fn new(outcome: Outcome) -> RoleReport {
        RoleReport {
            plan: None,
            outcome,
            error: None,
            writes: 0,
            capped: false,
            per_role_cost: 0,
        }
    }
}

/// What a reconcile may do beyond observing.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRules<'a> {
    /// `enforce` or `dry-run`.
    pub mode: Mode,
    /// What may be removed: when some in-scope revision of the account could not be seen, permissions may still
    /// be added but none removed (a missing revision may need them); when a look-up went unanswered, none of
    /// those its fact could change.
    pub removals: &'a Removals,
    /// Actions never granted, and the blast-radius cap.
    pub safety: &'a crate::config::Safety,
    /// Roles written so far in this pass (shared by the concurrent reconciles).
    pub roles_written: &'a std::sync::atomic::AtomicUsize,
}

/// What execrole owns on every role, by name and place, and the caches its observation shares across roles.
pub(crate) struct Ownership<'a> {
    /// The owned inline policy's name (and the prefix of spill policy names).
    pub(crate) policy_name: &'a str,
    /// The IAM path spill policies are created under and listed from.
    pub(crate) spill_path: &'a str,
    /// The spill-path listing per account.
    pub(crate) listings: &'a SpillListings,
    /// Managed policy documents.
    pub(crate) documents: &'a PolicyCache,
}

/// Observe one role from `source`, plan its delta and apply it under `rules`; counts the reconcile and its
/// duration.
pub(crate) async fn converge(
    desired: &DesiredRole,
    iam: &dyn IamApi,
    source: Source<'_>,
    owned: &Ownership<'_>,
    rules: ApplyRules<'_>,
    metrics: &Metrics,
) -> RoleReport {
    let started = Instant::now();
    let selection = &rules.safety.role_selection;
    let observed = observe(iam, source, &desired.key, owned, selection).await;
    let per_role_cost = observed.as_ref().map_or(0, |o| o.per_role_cost);
    let mut report = match observed.map(|o| o.role) {
        Err(error) => RoleReport {
            error: Some(ReconcileError::ObserveFailed(error)),
            ..RoleReport::new(Outcome::Error)
        },
        Ok(None) => {
            tracing::debug!(role = %desired.key, "role outside safety.role_selection; not managed");
            RoleReport::new(Outcome::NotSelected)
        }
        Ok(Some(observed)) => {
            let delta = plan::plan_role(
                desired,
                &observed,
                owned.policy_name,
                rules.removals.clone(),
            );
            let report = apply(delta, observed, iam, owned.spill_path, rules, metrics).await;
            if changed_spill_listing(&report) {
                owned.listings.forget(&desired.key.account);
            }
            report
        }
    };
    report.per_role_cost = per_role_cost;
    metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    metrics
        .reconciles
        .with_label_values(&[report.outcome.as_str()])
        .inc();
    report
}

/// Whether a spill policy write failed while creating or deleting: a policy may now exist unattached that the
/// account's listing (made before) does not show, and the role's retry must list again to adopt it. A write that
/// succeeded leaves nothing to find (a created policy is attached; a deleted one is gone and skipped), so the
/// listing stays shared for the rest of the pass.
fn changed_spill_listing(report: &RoleReport) -> bool {
    matches!(report.error, Some(ReconcileError::WriteFailed(_)))
        && report.plan.as_ref().is_some_and(|p| {
            p.write().managed.iter().any(|c| {
                matches!(
                    c,
                    ManagedChange::Create { .. } | ManagedChange::Delete { .. }
                )
            })
        })
}

/// A reconcile that could not observe the role at all (its account's bulk read failed); counted like any.
pub(crate) fn unobserved(error: AwsError, metrics: &Metrics) -> RoleReport {
    metrics
        .reconciles
        .with_label_values(&[Outcome::Error.as_str()])
        .inc();
    RoleReport {
        error: Some(ReconcileError::ObserveFailed(error)),
        ..RoleReport::new(Outcome::Error)
    }
}

/// Execute a plan: decide whether it may be written now, then write it in order. When the planner held removals
/// back, the write keeps the held-back grants (removing the rest) and the role stays pending (those removals are
/// not done).
async fn apply(
    delta: RolePlan,
    observed: ObservedRole,
    iam: &dyn IamApi,
    spill_path: &str,
    rules: ApplyRules<'_>,
    metrics: &Metrics,
) -> RoleReport {
    let (mut outcome, error, writes, capped) = match gate(&delta, &rules) {
        Gate::Stop(outcome, error) => (outcome, error, 0, false),
        Gate::Capped => (Outcome::Pending, None, 0, true),
        Gate::Proceed => {
            let mut writer = Writer {
                iam,
                spill_path,
                plan: delta.write(),
                observed: &observed,
                metrics,
                writes: 0,
            };
            match writer.write_all().await {
                Ok(()) => (Outcome::Applied, None, writer.writes, false),
                Err(error) => (
                    Outcome::Error,
                    Some(ReconcileError::WriteFailed(error)),
                    writer.writes,
                    false,
                ),
            }
        }
    };
    if let Some(held) = &delta.held_back
        && outcome != Outcome::Error
    {
        outcome = Outcome::Pending;
        log_held_back(&delta.key, held);
    }
    RoleReport {
        plan: Some(delta),
        outcome,
        error,
        writes,
        capped,
        per_role_cost: 0,
    }
}

/// Say which removals were held back for a role, and by what (debug: the finding behind it is logged once as a
/// warning, and `plan` shows the same).
fn log_held_back(role: &crate::model::RoleKey, held: &plan::HeldBack) {
    for removal in &held.removals {
        let by: Vec<String> = removal.by.iter().map(plan::Hold::describe).collect();
        tracing::debug!(
            role = %role,
            action = %removal.permission.action,
            resource = %removal.permission.resource,
            held_back_by = %by.join("; "),
            "removal held back"
        );
    }
}

/// Whether a plan is written now.
enum Gate {
    /// Write it.
    Proceed,
    /// Not written: the outcome, and the error when it is one.
    Stop(Outcome, Option<ReconcileError>),
    /// Held back by the blast-radius cap until the next window.
    Capped,
}

/// Decide, before any write, whether the plan's write goes out now: the role exists and fits IAM's limits, there
/// is something to write, the mode is `enforce`, the safety rails allow it, and the cap is not reached.
fn gate(delta: &RolePlan, rules: &ApplyRules<'_>) -> Gate {
    let write = delta.write();
    if !write.role_exists {
        // Nothing can be written to a role that does not exist; its tasks cannot start if they need anything.
        let outcome = if write.desired.is_some() {
            Outcome::Pending
        } else {
            Outcome::InSync
        };
        return Gate::Stop(outcome, None);
    }
    if let Some(why) = &write.too_large {
        tracing::warn!(role = %write.key, reason = %why, "role too large for IAM's limits; nothing written");
        return Gate::Stop(Outcome::Pending, None);
    }
    if !write.has_changes() {
        return Gate::Stop(Outcome::InSync, None);
    }
    if rules.mode == Mode::DryRun {
        return Gate::Stop(Outcome::Pending, None);
    }
    if let Some(p) = write
        .desired
        .iter()
        .flat_map(|d| d.statements.iter())
        .flat_map(|st| st.action.iter().flatten())
        .find(|a| rules.safety.is_forbidden(a))
    {
        tracing::error!(role = %write.key, action = %p, "refusing to write: the policy would grant an action that safety.never_grant forbids");
        let error = AwsError::new(
            "iam",
            "PutRolePolicy",
            crate::aws::ErrorKind::InvalidInput,
            format!("refused by safety rails: {p}"),
        );
        return Gate::Stop(Outcome::Error, Some(ReconcileError::Refused(error)));
    }
    if delta.is_write_withheld() {
        tracing::warn!(
            role = %write.key,
            "not writing: removals are held back (a partial view or an unresolved look-up), and the change would still remove what cannot be kept"
        );
        return Gate::Stop(Outcome::Pending, None);
    }
    let cap = rules.safety.max_roles_written_per_pass;
    if rules
        .roles_written
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        >= cap
    {
        tracing::warn!(role = %write.key, cap, "not writing this pass: safety.max_roles_written_per_pass reached");
        return Gate::Capped;
    }
    Gate::Proceed
}

/// The writes of one plan, one method per write kind, counting what was written.
struct Writer<'a> {
    iam: &'a dyn IamApi,
    spill_path: &'a str,
    plan: &'a RolePlan,
    observed: &'a ObservedRole,
    metrics: &'a Metrics,
    writes: usize,
}

impl Writer<'_> {
    /// The order that never leaves a needed permission missing in between: spill creates, updates and
    /// adoptions, the inline policy, spill deletes, the baseline's attachment (then its tag) or detachment (then
    /// the untag), the trust policy. Stops at the first failure.
    async fn write_all(&mut self) -> Result<(), AwsError> {
        self.spill(false).await?;
        self.inline().await?;
        self.spill(true).await?;
        self.attachment().await?;
        self.baseline_tag().await?;
        self.trust().await
    }

    fn count(&mut self, operation: &str) {
        self.writes += 1;
        self.metrics
            .iam_writes
            .with_label_values(&[operation])
            .inc();
    }

    /// The spill-policy changes: creates and updates, or (`deletes`) the deletes.
    async fn spill(&mut self, deletes: bool) -> Result<(), AwsError> {
        let plan = self.plan;
        for change in plan.managed.iter().filter(|c| c.is_delete() == deletes) {
            let spill = SpillWriter {
                iam: self.iam,
                role: &plan.key.name,
                metrics: self.metrics,
            };
            match spill.write(change, self.spill_path).await {
                Ok(n) => self.writes += n,
                Err(error) => {
                    tracing::error!(role = %plan.key, error = %error, "IAM write failed");
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// The owned inline policy: put or delete.
    async fn inline(&mut self) -> Result<(), AwsError> {
        let plan = self.plan;
        let (role, policy) = (&plan.key.name, &plan.policy_name);
        let (operation, result) = match &plan.change {
            Change::Create { document } | Change::Update { document } => (
                "PutRolePolicy",
                self.iam.put_role_policy(role, policy, document).await,
            ),
            Change::Delete => (
                "DeleteRolePolicy",
                self.iam.delete_role_policy(role, policy).await,
            ),
            Change::None => return Ok(()),
        };
        if let Err(error) = result {
            tracing::error!(role = %plan.key, policy = %policy, operation, error = %error, "IAM write failed");
            return Err(error);
        }
        self.count(operation);
        let added: Vec<String> = plan
            .added
            .iter()
            .map(|a| format!("{} {}", a.permission.action, a.permission.resource))
            .collect();
        let removed: Vec<String> = plan
            .removed
            .iter()
            .map(|p| format!("{} {}", p.action, p.resource))
            .chain(plan.removed_other.iter().cloned())
            .collect();
        tracing::info!(
            role = %plan.key,
            policy = %policy,
            operation,
            change = plan.change.as_str(),
            added = ?added,
            removed = ?removed,
            previous_document = self.observed.owned_policy.as_deref().map(decode_for_log).unwrap_or_default(),
            "IAM write"
        );
        Ok(())
    }

    /// The AWS managed policy of the `managed-policy` baseline: attached when missing, detached when execrole
    /// attached it and the baseline no longer wants it.
    async fn attachment(&mut self) -> Result<(), AwsError> {
        let plan = self.plan;
        let role = &plan.key.name;
        let (operation, arn, result) =
            match (&plan.attach_managed_policy, &plan.detach_managed_policy) {
                (Some(arn), _) => (
                    "AttachRolePolicy",
                    arn,
                    self.iam.attach_role_policy(role, arn).await,
                ),
                (None, Some(arn)) => (
                    "DetachRolePolicy",
                    arn,
                    self.iam.detach_role_policy(role, arn).await,
                ),
                (None, None) => return Ok(()),
            };
        if let Err(error) = result {
            tracing::error!(role = %plan.key, policy_arn = %arn, operation, error = %error, "IAM write failed");
            return Err(error);
        }
        self.count(operation);
        tracing::info!(role = %plan.key, policy_arn = %arn, operation, "IAM write");
        Ok(())
    }

    /// The role's `execrole:baseline-attached` tag: added after execrole attached the policy, removed after it
    /// detached it (or when the tag outlived the attachment).
    async fn baseline_tag(&mut self) -> Result<(), AwsError> {
        let plan = self.plan;
        let role = &plan.key.name;
        let (key, value) = plan::BASELINE_TAG;
        let (operation, result) = match plan.baseline_tag {
            Some(BaselineTag::Add) => (
                "TagRole",
                self.iam
                    .tag_role(role, &[(key.to_string(), value.to_string())])
                    .await,
            ),
            Some(BaselineTag::Remove) => (
                "UntagRole",
                self.iam.untag_role(role, &[key.to_string()]).await,
            ),
            None => return Ok(()),
        };
        if let Err(error) = result {
            tracing::error!(role = %plan.key, tag = key, operation, error = %error, "IAM write failed");
            return Err(error);
        }
        self.count(operation);
        tracing::info!(role = %plan.key, tag = key, operation, "IAM write");
        Ok(())
    }

    /// The trust policy, when managed and drifted.
    async fn trust(&mut self) -> Result<(), AwsError> {
        let plan = self.plan;
        let Some(trust) = &plan.trust_update else {
            return Ok(());
        };
        if let Err(error) = self
            .iam
            .update_assume_role_policy(&plan.key.name, trust)
            .await
        {
            tracing::error!(role = %plan.key, error = %error, "IAM write failed");
            return Err(error);
        }
        self.count("UpdateAssumeRolePolicy");
        tracing::info!(
            role = %plan.key,
            operation = "UpdateAssumeRolePolicy",
            document = %trust,
            previous_document = self.observed.trust_policy.as_deref().map(decode_for_log).unwrap_or_default(),
            "IAM write"
        );
        Ok(())
    }
}

/// The writes to one role's spill policies, one method per kind of change, each counted and logged.
struct SpillWriter<'a> {
    iam: &'a dyn IamApi,
    role: &'a str,
    metrics: &'a Metrics,
}

impl SpillWriter<'_> {
    fn count(&self, operation: &str) {
        self.metrics
            .iam_writes
            .with_label_values(&[operation])
            .inc();
    }

    /// The writes for one change; returns how many were made.
    async fn write(&self, change: &ManagedChange, spill_path: &str) -> Result<usize, AwsError> {
        let (iam, role) = (self.iam, self.role);
        match change {
            ManagedChange::Create { name, document } => {
                self.create(name, spill_path, document).await
            }
            ManagedChange::Update {
                name,
                arn,
                document,
            } => self.update(name, arn, document).await,
            ManagedChange::SetDefault {
                name,
                arn,
                version_id,
            } => {
                iam.set_default_policy_version(arn, version_id).await?;
                self.count("SetDefaultPolicyVersion");
                tracing::info!(role, policy = %name, policy_arn = %arn, version_id = %version_id, operation = "SetDefaultPolicyVersion", "IAM write");
                Ok(1)
            }
            ManagedChange::PruneVersions {
                name,
                arn,
                version_ids,
            } => self.delete_versions(name, arn, version_ids).await,
            ManagedChange::Attach { name, arn } => {
                iam.attach_role_policy(role, arn).await?;
                self.count("AttachRolePolicy");
                tracing::info!(role, policy = %name, policy_arn = %arn, operation = "AttachRolePolicy", "IAM write (adopting an unattached spill policy)");
                Ok(1)
            }
            ManagedChange::Delete {
                name,
                arn,
                is_attached,
            } => self.delete(name, arn, *is_attached).await,
        }
    }

    /// Create the policy under the spill path, tagged as execrole's for the role, and attach it.
    async fn create(&self, name: &str, path: &str, document: &str) -> Result<usize, AwsError> {
        let (iam, role) = (self.iam, self.role);
        let (key, value) = plan::OWNER_TAG;
        let tags = vec![
            (key.to_string(), value.to_string()),
            (plan::ROLE_TAG.to_string(), role.to_string()),
        ];
        let arn = iam.create_policy(name, path, document, &tags).await?;
        self.count("CreatePolicy");
        tracing::info!(role, policy = %name, policy_arn = %arn, operation = "CreatePolicy", document = %document, "IAM write");
        iam.attach_role_policy(role, &arn).await?;
        self.count("AttachRolePolicy");
        tracing::info!(role, policy = %name, policy_arn = %arn, operation = "AttachRolePolicy", "IAM write");
        Ok(2)
    }

    /// Add a new default version, first deleting the versions a half-finished write left newer than the default
    /// and, when IAM's five are taken, the oldest ones (as IAM lists them now).
    async fn update(&self, name: &str, arn: &str, document: &str) -> Result<usize, AwsError> {
        let versions: Vec<(String, bool)> = self
            .iam
            .list_policy_versions(arn)
            .await?
            .into_iter()
            .map(|v| (v.version_id, v.is_default))
            .collect();
        let stale = plan::versions_to_make_room(&versions);
        let writes = self.delete_versions(name, arn, &stale).await?;
        self.iam.create_policy_version(arn, document).await?;
        self.count("CreatePolicyVersion");
        tracing::info!(role = self.role, policy = %name, policy_arn = %arn, operation = "CreatePolicyVersion", document = %document, "IAM write");
        Ok(writes + 1)
    }

    /// Delete non-default versions.
    async fn delete_versions(
        &self,
        name: &str,
        arn: &str,
        ids: &[String],
    ) -> Result<usize, AwsError> {
        for id in ids {
            self.iam.delete_policy_version(arn, id).await?;
            self.count("DeletePolicyVersion");
            tracing::info!(role = self.role, policy = %name, policy_arn = %arn, version_id = %id, operation = "DeletePolicyVersion", "IAM write");
        }
        Ok(ids.len())
    }

    /// Detach the policy (when attached), delete its non-default versions, then the policy.
    async fn delete(&self, name: &str, arn: &str, is_attached: bool) -> Result<usize, AwsError> {
        let (iam, role) = (self.iam, self.role);
        let mut writes = 0;
        if is_attached {
            iam.detach_role_policy(role, arn).await?;
            self.count("DetachRolePolicy");
            writes += 1;
        }
        let old: Vec<String> = iam
            .list_policy_versions(arn)
            .await?
            .into_iter()
            .filter(|v| !v.is_default)
            .map(|v| v.version_id)
            .collect();
        writes += self.delete_versions(name, arn, &old).await?;
        iam.delete_policy(arn).await?;
        self.count("DeletePolicy");
        tracing::info!(role, policy = %name, policy_arn = %arn, operation = "DeletePolicy", "IAM write");
        Ok(writes + 1)
    }
}

/// The previous document, decoded and minified, so a human can put it back.
fn decode_for_log(raw: &str) -> String {
    match crate::policy::PolicyDocument::parse(raw) {
        Ok(doc) => doc.to_json(),
        Err(_) => raw.to_string(),
    }
}
