//! The `observed` step of a reconcile: what IAM holds for one role, read either per role (`GetRole`,
//! `ListRolePolicies`, `GetRolePolicy` each, `ListAttachedRolePolicies`) or from the account's snapshot
//! (`GetAccountAuthorizationDetails`, no per-role read), and turned into the one `ObservedRole` the planner
//! compares with. Both sources meet in [`RoleState`], so everything after the raw reads is one code path.
//!
//! It also owns the caches of managed policies: documents by (ARN, version), and the default versions of AWS
//! managed policies (read once per ARN for the whole controller, rechecked after `lookups.cache_ttl`: never one
//! `GetPolicy` per role). Spill policies are read by `spill::owned_spill_policies`, fed with the candidates of the
//! snapshot (every local policy with its path) or of the spill-path listing. It does not decide which source a
//! role is read from (`snapshots`), nor plan or write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::reconcile::Ownership;
use super::spill::owned_spill_policies;
use crate::aws::{AccountAuthorization, AwsError, IamApi, ListedPolicy, RoleInfo};
use crate::config::RoleSelection;
use crate::model::RoleKey;
use crate::plan::{self, ObservedRole};
use crate::policy::PolicyDocument;

/// Where a role's IAM state is read from.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    /// One role at a time, with its own requests.
    PerRole,
    /// The account's snapshot, read after the role's last known change.
    Snapshot(&'a AccountAuthorization),
}

/// A role as IAM holds it, before the documents of its managed policies are read.
struct RoleState {
    info: RoleInfo,
    /// Inline policy names with their documents as IAM returned them (`None`: gone since it was listed).
    inline: Vec<(String, Option<String>)>,
    /// Attached managed policy ARNs.
    attached: Vec<String>,
}

/// What the raw read found.
enum Found {
    /// The role is outside `safety.role_selection`.
    NotSelected,
    /// No such role.
    Missing,
    /// The role.
    Role(RoleState),
}

/// What one observation found, and what reading the role per role costs in requests (for choosing bulk reads).
pub(crate) struct Observation {
    /// The role, or `None` when it is outside `safety.role_selection`.
    pub(crate) role: Option<ObservedRole>,
    /// Requests a per-role read of this role makes (whichever source was used this time).
    pub(crate) per_role_cost: usize,
}

/// Read what IAM holds for the role from `source`: the role (with its trust policy and tags), its inline policies
/// (the owned one's document, and the others' sizes, which share IAM's inline limit), its attached policies, and
/// the spill policies it owns, attached or not (`spill::owned_spill_policies`).
pub(crate) async fn observe(
    iam: &dyn IamApi,
    source: Source<'_>,
    key: &RoleKey,
    owned: &Ownership<'_>,
    selection: &RoleSelection,
) -> Result<Observation, AwsError> {
    let (role, policy_name, caches) = (key.name.as_str(), owned.policy_name, owned.documents);
    let state = match source {
        Source::PerRole => read_role(iam, role, selection).await?,
        Source::Snapshot(snapshot) => role_from_snapshot(snapshot, role, selection),
    };
    let state = match state {
        Found::NotSelected => return Ok(observation(None)),
        Found::Missing => return Ok(observation(Some(missing_role()))),
        Found::Role(state) => state,
    };
    let inline = observe_inline(role, policy_name, &state.inline);
    let others = observe_attached(iam, source, role, policy_name, &state.attached, caches).await?;
    let candidates = spill_candidates(iam, source, key, owned).await?;
    let owned_managed =
        owned_spill_policies(iam, role, policy_name, &state.attached, &candidates, caches).await?;
    let boundary = match &state.info.permissions_boundary {
        Some(arn) => managed_document(iam, source, arn, caches).await?,
        None => None,
    };
    let (tag, value) = plan::BASELINE_TAG;
    let has_baseline_tag = state.info.tags.iter().any(|(k, v)| k == tag && v == value);
    let mut other_policies = inline.others;
    other_policies.extend(others);
    let observed = ObservedRole {
        exists: true,
        other_policies,
        boundary,
        owned_policy: inline.owned,
        other_inline_policies: state
            .inline
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| n != policy_name)
            .collect(),
        attached_policies: state.attached,
        trust_policy: state.info.assume_role_policy,
        foreign_inline_size: inline.foreign_size,
        owned_managed,
        has_baseline_tag,
    };
    Ok(observation(Some(observed)))
}

/// The customer managed policies under the spill path named as the role's spill policies: from the snapshot,
/// which lists every local policy with its path, or from the account's spill-path listing (`ListPolicies`, once
/// per account and sweep).
async fn spill_candidates(
    iam: &dyn IamApi,
    source: Source<'_>,
    key: &RoleKey,
    owned: &Ownership<'_>,
) -> Result<Vec<ListedPolicy>, AwsError> {
    let (role, policy_name) = (key.name.as_str(), owned.policy_name);
    match source {
        Source::Snapshot(snapshot) => Ok(snapshot
            .local_policies()
            .filter(|p| p.path.starts_with(owned.spill_path))
            .filter(|p| plan::is_spill_policy_name(policy_name, role, &p.name))
            .map(|p| ListedPolicy {
                name: p.name.clone(),
                arn: p.arn.clone(),
                path: p.path.clone(),
            })
            .collect()),
        Source::PerRole => {
            let listing = owned
                .listings
                .candidates(&key.account, iam, owned.spill_path, policy_name)
                .await?;
            Ok(listing.for_role(role).to_vec())
        }
    }
}

/// An observation with its per-role cost.
fn observation(role: Option<ObservedRole>) -> Observation {
    let per_role_cost = match &role {
        Some(r) if r.exists => per_role_cost(r),
        _ => 1,
    };
    Observation {
        role,
        per_role_cost,
    }
}

/// Requests a per-role read of this role makes: `GetRole`, `ListRolePolicies`, `ListAttachedRolePolicies`, a
/// `GetRolePolicy` per inline policy, and a `GetPolicy` per customer managed policy attached or as boundary (AWS
/// managed ones are cached).
pub(crate) fn per_role_cost(role: &ObservedRole) -> usize {
    let inline = role.other_inline_policies.len() + usize::from(role.owned_policy.is_some());
    let local = role
        .attached_policies
        .iter()
        .filter(|arn| !is_aws_managed(arn))
        .count();
    3 + inline + local + usize::from(role.boundary.is_some())
}

/// A role that does not exist.
fn missing_role() -> ObservedRole {
    ObservedRole {
        exists: false,
        owned_policy: None,
        other_inline_policies: Vec::new(),
        attached_policies: Vec::new(),
        trust_policy: None,
        foreign_inline_size: 0,
        owned_managed: Vec::new(),
        other_policies: Vec::new(),
        boundary: None,
        has_baseline_tag: false,
    }
}

/// The role read per role; its policies only when it is selected (an unselected role costs one `GetRole`).
async fn read_role(
    iam: &dyn IamApi,
    role: &str,
    selection: &RoleSelection,
) -> Result<Found, AwsError> {
    let info = iam.get_role(role).await?;
    let Some(info) = info else {
        return Ok(missing_or_unselected(selection));
    };
    if !selection.selects(&info.path, &info.tags) {
        return Ok(Found::NotSelected);
    }
    let mut inline = Vec::new();
    for name in iam.list_role_policies(role).await? {
        let document = iam.get_role_policy(role, &name).await?;
        inline.push((name, document));
    }
    let attached = iam.list_attached_role_policies(role).await?;
    Ok(Found::Role(RoleState {
        info,
        inline,
        attached,
    }))
}

/// The role as the snapshot holds it.
fn role_from_snapshot(
    snapshot: &AccountAuthorization,
    role: &str,
    selection: &RoleSelection,
) -> Found {
    let Some(detail) = snapshot.role(role) else {
        return missing_or_unselected(selection);
    };
    if !selection.selects(&detail.info.path, &detail.info.tags) {
        return Found::NotSelected;
    }
    let mut attached = detail.attached_policies.clone();
    // `ListAttachedRolePolicies` answers sorted and distinct; so does the snapshot's role.
    attached.sort();
    attached.dedup();
    Found::Role(RoleState {
        info: detail.info.clone(),
        inline: detail
            .inline_policies
            .iter()
            .map(|(name, document)| (name.clone(), Some(document.clone())))
            .collect(),
        attached,
    })
}

/// A role that does not exist is reported only when the selection could have selected it.
fn missing_or_unselected(selection: &RoleSelection) -> Found {
    if selection.selects_all() {
        Found::Missing
    } else {
        Found::NotSelected
    }
}

/// What the role's inline policies hold.
struct InlinePolicies {
    /// The owned policy's document as IAM returned it.
    owned: Option<String>,
    /// The others' size as IAM counts it (they share the inline limit).
    foreign_size: usize,
    /// The others, parsed, for evaluation by effect.
    others: Vec<plan::OtherPolicy>,
}

/// Sort the role's inline policies: the owned one's document, and the others' sizes and documents.
fn observe_inline(
    role: &str,
    policy_name: &str,
    policies: &[(String, Option<String>)],
) -> InlinePolicies {
    let mut inline = InlinePolicies {
        owned: None,
        foreign_size: 0,
        others: Vec::new(),
    };
    for (name, document) in policies {
        if name == policy_name {
            inline.owned = document.clone();
        } else if let Some(raw) = document {
            inline.foreign_size += inline_size(raw);
            match PolicyDocument::parse(raw) {
                Ok(document) => inline.others.push(plan::OtherPolicy {
                    source: format!("inline:{name}"),
                    document,
                }),
                Err(err) => {
                    tracing::warn!(role, policy = %name, error = %err, "another inline policy cannot be read; it is not evaluated")
                }
            }
        }
    }
    inline
}

/// Read the documents of the role's attached policies other than its spill policies (those are read by
/// `spill::owned_spill_policies`), for evaluation by effect.
async fn observe_attached(
    iam: &dyn IamApi,
    source: Source<'_>,
    role: &str,
    policy_name: &str,
    arns: &[String],
    caches: &PolicyCache,
) -> Result<Vec<plan::OtherPolicy>, AwsError> {
    let mut others = Vec::new();
    for arn in arns {
        let name = arn.rsplit('/').next().unwrap_or_default();
        if plan::is_spill_policy_name(policy_name, role, name) {
            continue;
        }
        if let Some(document) = managed_document(iam, source, arn, caches).await? {
            others.push(plan::OtherPolicy {
                source: arn.clone(),
                document,
            });
        }
    }
    Ok(others)
}

/// Whether a managed policy is AWS managed (`arn:<partition>:iam::aws:policy/…`): the same in every account.
fn is_aws_managed(arn: &str) -> bool {
    arn.split(':').nth(4) == Some("aws")
}

/// Managed policy documents read from IAM: by (ARN, version id) (versions are immutable), parsed for evaluation
/// or, for spill policies, as IAM returned them (for the plan); and the default version of each AWS managed
/// policy (checked again after `aws_managed_ttl`).
#[derive(Default)]
pub struct PolicyCache {
    documents: Mutex<HashMap<(String, String), PolicyDocument>>,
    texts: Mutex<HashMap<(String, String, String), String>>,
    /// Per AWS managed policy ARN: its default version and when it was last read (one read at a time per ARN).
    aws_managed: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<DefaultVersion>>>>>,
    /// How long an AWS managed policy's default version is trusted before it is read again.
    aws_managed_ttl: Duration,
}

/// An AWS managed policy's default version, as last read.
#[derive(Clone)]
struct DefaultVersion {
    version_id: Option<String>,
    read_at: tokio::time::Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single insert: a poisoned lock still holds consistent data.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PolicyCache {
    /// A cache that trusts an AWS managed policy's default version for `aws_managed_ttl`.
    pub fn new(aws_managed_ttl: Duration) -> PolicyCache {
        PolicyCache {
            aws_managed_ttl,
            ..PolicyCache::default()
        }
    }

    fn document(&self, arn: &str, version_id: &str) -> Option<PolicyDocument> {
        lock(&self.documents)
            .get(&(arn.to_string(), version_id.to_string()))
            .cloned()
    }

    fn keep_document(&self, arn: &str, version_id: &str, document: &PolicyDocument) {
        lock(&self.documents).insert((arn.to_string(), version_id.to_string()), document.clone());
    }

    /// The default version id of an AWS managed policy (`None`: it does not exist): one `GetPolicy` per ARN and
    /// `aws_managed_ttl`, whichever account or role asks.
    async fn aws_managed_version(
        &self,
        iam: &dyn IamApi,
        arn: &str,
    ) -> Result<Option<String>, AwsError> {
        let cell = lock(&self.aws_managed)
            .entry(arn.to_string())
            .or_default()
            .clone();
        let mut entry = cell.lock().await;
        if let Some(known) = entry.as_ref()
            && known.read_at.elapsed() < self.aws_managed_ttl
        {
            return Ok(known.version_id.clone());
        }
        let version_id = iam.get_policy(arn).await?.map(|p| p.default_version_id);
        *entry = Some(DefaultVersion {
            version_id: version_id.clone(),
            read_at: tokio::time::Instant::now(),
        });
        Ok(version_id)
    }

    /// A version's document as IAM returned it, or `None` when it is gone: read once per (ARN, policy id,
    /// version). The policy id tells a policy deleted and created again under the same ARN (whose versions start
    /// again at `v1`) from the one read before; without an id nothing is cached.
    pub(crate) async fn version_text(
        &self,
        iam: &dyn IamApi,
        policy: &crate::aws::ManagedPolicyInfo,
        version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        let arn = policy.arn.as_str();
        let key = (arn.to_string(), policy.id.clone(), version_id.to_string());
        let cacheable = !policy.id.is_empty();
        if cacheable && let Some(text) = lock(&self.texts).get(&key).cloned() {
            return Ok(Some(text));
        }
        let text = iam.get_policy_version(arn, version_id).await?;
        if cacheable && let Some(text) = &text {
            lock(&self.texts).insert(key, text.clone());
        }
        Ok(text)
    }
}

/// The default version's document of a managed policy, or `None` when it is gone or unreadable: from the snapshot
/// for the account's own policies, otherwise one `GetPolicy` (cached per ARN for AWS managed policies) and a
/// `GetPolicyVersion` only for a version not read before.
async fn managed_document(
    iam: &dyn IamApi,
    source: Source<'_>,
    arn: &str,
    caches: &PolicyCache,
) -> Result<Option<PolicyDocument>, AwsError> {
    if let Source::Snapshot(snapshot) = source
        && let Some(policy) = snapshot.local_policy(arn)
    {
        return Ok(parsed(
            arn,
            &policy.default_version_id,
            policy.default_document().map(str::to_string),
            caches,
        ));
    }
    let version_id = if is_aws_managed(arn) {
        caches.aws_managed_version(iam, arn).await?
    } else {
        iam.get_policy(arn).await?.map(|p| p.default_version_id)
    };
    let Some(version_id) = version_id else {
        return Ok(None);
    };
    if let Some(document) = caches.document(arn, &version_id) {
        return Ok(Some(document));
    }
    let raw = iam.get_policy_version(arn, &version_id).await?;
    Ok(parsed(arn, &version_id, raw, caches))
}

/// A managed policy version's document parsed (and cached), or `None` when missing or unreadable.
fn parsed(
    arn: &str,
    version_id: &str,
    raw: Option<String>,
    caches: &PolicyCache,
) -> Option<PolicyDocument> {
    if let Some(document) = caches.document(arn, version_id) {
        return Some(document);
    }
    match PolicyDocument::parse(&raw?) {
        Ok(document) => {
            caches.keep_document(arn, version_id, &document);
            Some(document)
        }
        Err(err) => {
            tracing::warn!(policy_arn = %arn, error = %err, "an attached policy cannot be read; it is not evaluated");
            None
        }
    }
}

/// An inline policy's size as IAM counts it: its minified JSON, or its text without whitespace if unparseable.
fn inline_size(raw: &str) -> usize {
    match PolicyDocument::parse(raw) {
        Ok(doc) => crate::policy::iam_size(&doc),
        Err(_) => raw.chars().filter(|c| !c.is_whitespace()).count(),
    }
}
