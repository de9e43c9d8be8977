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
    /// permissions may still be added but none removed (a missing revision may need them).
    pub complete: bool,
}

/// Read what IAM holds for the role.
async fn observe(
    iam: &dyn IamApi,
    role: &str,
    policy_name: &str,
) -> Result<ObservedRole, AwsError> {
    if iam.get_role(role).await?.is_none() {
        return Ok(ObservedRole {
            exists: false,
            owned_policy: None,
            other_inline_policies: Vec::new(),
        });
    }
    let names = iam.list_role_policies(role).await?;
    let owned_policy = if names.iter().any(|n| n == policy_name) {
        iam.get_role_policy(role, policy_name).await?
    } else {
        None
    };
    Ok(ObservedRole {
        exists: true,
        owned_policy,
        other_inline_policies: names.into_iter().filter(|n| n != policy_name).collect(),
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
    let report = match observe(iam, &desired.key.name, policy_name).await {
        Err(error) => RoleReport {
            plan: None,
            outcome: Outcome::Error,
            error: Some(error),
            writes: 0,
        },
        Ok(observed) => {
            let delta = plan::plan_role(desired, &observed, policy_name);
            apply(delta, observed, iam, rules, metrics).await
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
    let (operation, result) = match &delta.change {
        Change::Create { document } | Change::Update { document } => (
            "PutRolePolicy",
            iam.put_role_policy(&role, &policy, document).await,
        ),
        Change::Delete => (
            "DeleteRolePolicy",
            iam.delete_role_policy(&role, &policy).await,
        ),
        Change::None => return done(delta, Outcome::InSync, None, 0),
    };
    match result {
        Ok(()) => {
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
            done(delta, Outcome::Applied, None, 1)
        }
        Err(error) => {
            tracing::error!(role = %delta.key, policy = %policy, operation, error = %error, "IAM write failed");
            done(delta, Outcome::Error, Some(error), 0)
        }
    }
}

/// The previous document, decoded and minified, so a human can put it back.
fn decode_for_log(raw: &str) -> String {
    match crate::policy::PolicyDocument::parse(raw) {
        Ok(doc) => doc.to_json(),
        Err(_) => raw.to_string(),
    }
}
