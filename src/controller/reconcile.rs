//! Reconciling one execution role: `desired` (given), `observed` (read from IAM), `delta` (`plan::plan_role`),
//! then apply only when the delta is not empty, the mode is `enforce`, and applying is safe. Only the owned inline
//! policy is ever written; other inline policies and attachments are read by name at most, never changed.

use std::time::Instant;

use crate::aws::{AwsError, IamApi};
use crate::config::Mode;
use crate::metrics::Metrics;
use crate::plan::{self, Change, DesiredRole, ObservedRole, RolePlan};

/// How a reconcile ended (the `result` label of `execrole_reconciles_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to change.
    InSync,
    /// The repair was written.
    Applied,
    /// Drift seen and not written (dry-run, or a write that was not safe this pass).
    Pending,
    /// The role could not be read or written.
    Error,
}

impl Outcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InSync => "in_sync",
            Outcome::Applied => "applied",
            Outcome::Pending => "pending",
            Outcome::Error => "error",
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
    pub error: Option<AwsError>,
    /// IAM writes made.
    pub writes: usize,
}

/// What a reconcile may do beyond observing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyRules {
    /// `enforce` or `dry-run`.
    pub mode: Mode,
    /// Whether the desired state is complete: when some in-scope revision of the account could not be seen,
    /// permissions may still be added but none removed (a missing revision may need them): the owned policy's
    /// grants are kept in the desired state for that pass.
    pub complete: bool,
}

/// Read what IAM holds for the role: the role (with its trust policy), its inline policy names, the owned
/// policy's document, and its attached policies when the baseline needs them.
async fn observe(
    iam: &dyn IamApi,
    role: &str,
    policy_name: &str,
    needs_attachments: bool,
) -> Result<ObservedRole, AwsError> {
    let Some(info) = iam.get_role(role).await? else {
        return Ok(ObservedRole {
            exists: false,
            owned_policy: None,
            other_inline_policies: Vec::new(),
            attached_policies: Vec::new(),
            trust_policy: None,
        });
    };
    let names = iam.list_role_policies(role).await?;
    let owned_policy = if names.iter().any(|n| n == policy_name) {
        iam.get_role_policy(role, policy_name).await?
    } else {
        None
    };
    let attached_policies = if needs_attachments {
        iam.list_attached_role_policies(role).await?
    } else {
        Vec::new()
    };
    Ok(ObservedRole {
        exists: true,
        owned_policy,
        other_inline_policies: names.into_iter().filter(|n| n != policy_name).collect(),
        attached_policies,
        trust_policy: info.assume_role_policy,
    })
}

/// Reconcile one role.
pub async fn reconcile(
    desired: &DesiredRole,
    iam: &dyn IamApi,
    policy_name: &str,
    rules: ApplyRules,
    metrics: &Metrics,
) -> RoleReport {
    let started = Instant::now();
    let report = match observe(
        iam,
        &desired.key.name,
        policy_name,
        desired.managed_policy_arn.is_some(),
    )
    .await
    {
        Err(error) => RoleReport {
            plan: None,
            outcome: Outcome::Error,
            error: Some(error),
            writes: 0,
        },
        Ok(observed) => {
            let delta = plan::plan_role(desired, &observed, policy_name);
            if rules.complete || !removes(&delta) {
                apply(delta, observed, iam, rules, metrics).await
            } else {
                // Write the additions only, keeping every grant; report the removals as still pending.
                let keeping = plan::plan_role(
                    &keeping_what_is_granted(desired, &observed),
                    &observed,
                    policy_name,
                );
                let mut report = apply(keeping, observed, iam, rules, metrics).await;
                if report.outcome != Outcome::Error {
                    report.outcome = Outcome::Pending;
                }
                report.plan = Some(delta);
                report
            }
        }
    };
    metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    metrics
        .reconciles
        .with_label_values(&[report.outcome.as_str()])
        .inc();
    report
}

/// Whether applying the plan would take a permission away (or replace an owned policy it cannot read).
fn removes(delta: &RolePlan) -> bool {
    !delta.removed.is_empty()
        || !delta.removed_other.is_empty()
        || delta.change == Change::Delete
        || delta.unreadable_owned_policy.is_some()
}

/// When some revisions of the account could not be read, a grant in the owned policy may be needed by one of
/// them: keep every grant the owned policy already has, so that additions still go out and nothing is removed.
fn keeping_what_is_granted(desired: &DesiredRole, observed: &ObservedRole) -> DesiredRole {
    let Some(document) = observed
        .owned_policy
        .as_deref()
        .and_then(|raw| crate::policy::PolicyDocument::parse(raw).ok())
    else {
        return desired.clone();
    };
    let kept = crate::policy::grants(&document)
        .into_iter()
        .filter_map(|grant| grant.to_permission())
        .map(|permission| crate::derive::Requirement {
            permission,
            reasons: std::collections::BTreeSet::from([crate::derive::Reason {
                task_definition: "(kept)".into(),
                container: "-".into(),
                field: "some task definitions of the account could not be read this pass".into(),
            }]),
        });
    let mut keeping = desired.clone();
    let requirements: Vec<_> = desired.requirements.iter().cloned().chain(kept).collect();
    keeping.requirements = crate::derive::merge_requirements(requirements.iter());
    keeping
}

async fn apply(
    delta: RolePlan,
    observed: ObservedRole,
    iam: &dyn IamApi,
    rules: ApplyRules,
    metrics: &Metrics,
) -> RoleReport {
    let done = |plan: RolePlan, outcome, error, writes| RoleReport {
        plan: Some(plan),
        outcome,
        error,
        writes,
    };
    if !delta.role_exists {
        // Nothing can be written to a role that does not exist; its tasks cannot start if they need anything.
        let outcome = if delta.desired.is_some() {
            Outcome::Pending
        } else {
            Outcome::InSync
        };
        return done(delta, outcome, None, 0);
    }
    if !delta.has_changes() {
        return done(delta, Outcome::InSync, None, 0);
    }
    if rules.mode == Mode::DryRun {
        return done(delta, Outcome::Pending, None, 0);
    }
    let removes = !delta.removed.is_empty()
        || !delta.removed_other.is_empty()
        || delta.change == Change::Delete;
    if !rules.complete && removes {
        tracing::warn!(
            role = %delta.key,
            "not writing: some task definitions of the account could not be read this pass, and the change would remove permissions"
        );
        return done(delta, Outcome::Pending, None, 0);
    }
    let role = delta.key.name.clone();
    let policy = delta.policy_name.clone();
    let mut writes = 0;
    let inline = match &delta.change {
        Change::Create { document } | Change::Update { document } => Some((
            "PutRolePolicy",
            iam.put_role_policy(&role, &policy, document).await,
        )),
        Change::Delete => Some((
            "DeleteRolePolicy",
            iam.delete_role_policy(&role, &policy).await,
        )),
        Change::None => None,
    };
    if let Some((operation, result)) = inline {
        if let Err(error) = result {
            tracing::error!(role = %delta.key, policy = %policy, operation, error = %error, "IAM write failed");
            return done(delta, Outcome::Error, Some(error), writes);
        }
        writes += 1;
        metrics.iam_writes.with_label_values(&[operation]).inc();
        let added: Vec<String> = delta
            .added
            .iter()
            .map(|a| format!("{} {}", a.permission.action, a.permission.resource))
            .collect();
        let removed: Vec<String> = delta
            .removed
            .iter()
            .map(|p| format!("{} {}", p.action, p.resource))
            .chain(delta.removed_other.iter().cloned())
            .collect();
        tracing::info!(
            role = %delta.key,
            policy = %policy,
            operation,
            change = delta.change.as_str(),
            added = ?added,
            removed = ?removed,
            previous_document = observed.owned_policy.as_deref().map(decode_for_log).unwrap_or_default(),
            "IAM write"
        );
    }
    if let Some(arn) = &delta.attach_managed_policy {
        if let Err(error) = iam.attach_role_policy(&role, arn).await {
            tracing::error!(role = %delta.key, policy_arn = %arn, error = %error, "IAM write failed");
            return done(delta, Outcome::Error, Some(error), writes);
        }
        writes += 1;
        metrics
            .iam_writes
            .with_label_values(&["AttachRolePolicy"])
            .inc();
        tracing::info!(role = %delta.key, policy_arn = %arn, operation = "AttachRolePolicy", "IAM write");
    }
    if let Some(trust) = &delta.trust_update {
        if let Err(error) = iam.update_assume_role_policy(&role, trust).await {
            tracing::error!(role = %delta.key, error = %error, "IAM write failed");
            return done(delta, Outcome::Error, Some(error), writes);
        }
        writes += 1;
        metrics
            .iam_writes
            .with_label_values(&["UpdateAssumeRolePolicy"])
            .inc();
        tracing::info!(
            role = %delta.key,
            operation = "UpdateAssumeRolePolicy",
            document = %trust,
            previous_document = observed.trust_policy.as_deref().map(decode_for_log).unwrap_or_default(),
            "IAM write"
        );
    }
    done(delta, Outcome::Applied, None, writes)
}

/// The previous document, decoded and minified, so a human can put it back.
fn decode_for_log(raw: &str) -> String {
    match crate::policy::PolicyDocument::parse(raw) {
        Ok(doc) => doc.to_json(),
        Err(_) => raw.to_string(),
    }
}
