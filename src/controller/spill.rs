//! Finding the spill policies execrole owns, attached or not. An owned spill policy has a spill name
//! (`<inline name>-<role>-<n>`) *and* the owner tag; it is found two ways: attached to its role (at any path, so the
//! ones earlier versions created at `/` keep being recognised), or listed under the spill path
//! (`ListPolicies`, `Scope=Local`, `PathPrefix`), which finds the ones an interrupted write left unattached.
//!
//! The listing is made once per account and sweep (`SpillListings`), not per role; [`owned_spill_policies`] is
//! the one place that turns candidates (from that listing, or from any other account-wide snapshot of local
//! policies) and a role's attachments into what the role owns, reading each candidate's tags, versions and
//! documents. It never writes, and never reports a policy without the owner tag as owned.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::observe::PolicyCache;
use crate::aws::{AwsError, IamApi, ListedPolicy, ManagedPolicyInfo};
use crate::plan::{self, OwnedManagedPolicy, OwnedVersion};

/// The customer managed policies under the spill path whose names are spill names, by the role they name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpillCandidates {
    by_role: BTreeMap<String, Vec<ListedPolicy>>,
}

impl SpillCandidates {
    /// Group listed policies by role; names that are not spill names of `policy_name` are left out.
    pub fn from_listing(listed: Vec<ListedPolicy>, policy_name: &str) -> SpillCandidates {
        let mut by_role: BTreeMap<String, Vec<ListedPolicy>> = BTreeMap::new();
        for policy in listed {
            if let Some(role) = plan::spill_policy_role(policy_name, &policy.name) {
                by_role.entry(role.to_string()).or_default().push(policy);
            }
        }
        SpillCandidates { by_role }
    }

    /// The candidates named for `role`.
    pub fn for_role(&self, role: &str) -> &[ListedPolicy] {
        self.by_role.get(role).map_or(&[], Vec::as_slice)
    }
}

/// Which listing: the account, the spill path and the inline policy name (a reloaded config may change either).
type ListingKey = (String, String, String);

/// The spill-path listing of each account, made by the first reconcile that needs it after the account's sweep
/// and shared by the rest; forgotten when the account is swept again or a spill write of it failed half-way (so
/// the role's retry lists again and finds what the failed write left).
#[derive(Default)]
pub(crate) struct SpillListings {
    listings: Mutex<HashMap<ListingKey, Arc<OnceCell<Arc<SpillCandidates>>>>>,
}

impl SpillListings {
    /// Drop the account's listing: the next reconcile in it lists again.
    pub(crate) fn forget(&self, account: &str) {
        self.lock().retain(|(a, _, _), _| a != account);
    }

    /// The account's candidates: listed once (`ListPolicies` under `spill_path`, all pages), then shared. A failed
    /// listing is not kept, so the next reconcile tries again.
    pub(crate) async fn candidates(
        &self,
        account: &str,
        iam: &dyn IamApi,
        spill_path: &str,
        policy_name: &str,
    ) -> Result<Arc<SpillCandidates>, AwsError> {
        let key = (
            account.to_string(),
            spill_path.to_string(),
            policy_name.to_string(),
        );
        let cell = self.lock().entry(key).or_default().clone();
        cell.get_or_try_init(|| async {
            let listed = iam.list_local_policies(spill_path).await?;
            Ok(Arc::new(SpillCandidates::from_listing(listed, policy_name)))
        })
        .await
        .cloned()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ListingKey, Arc<OnceCell<Arc<SpillCandidates>>>>> {
        self.listings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The spill policies `role` owns: its attached policies with a spill name of the role (any path), and the
/// `candidates` named for it (attached or not), each kept only when it still exists and carries the owner tag (and,
/// when it has one, a role tag naming this role; one not attached to the role must have that tag and be attached
/// nowhere else). `attached` is the role's attached policy ARNs.
pub(crate) async fn owned_spill_policies(
    iam: &dyn IamApi,
    role: &str,
    policy_name: &str,
    attached: &[String],
    candidates: &[ListedPolicy],
    cache: &PolicyCache,
) -> Result<Vec<OwnedManagedPolicy>, AwsError> {
    let mut found: Vec<(String, String)> = attached
        .iter()
        .filter_map(|arn| {
            let name = arn.rsplit('/').next().unwrap_or_default();
            plan::is_spill_policy_name(policy_name, role, name)
                .then(|| (name.to_string(), arn.clone()))
        })
        .collect();
    for candidate in candidates {
        if !found.iter().any(|(_, arn)| arn == &candidate.arn) {
            found.push((candidate.name.clone(), candidate.arn.clone()));
        }
    }
    let mut owned = Vec::new();
    for (name, arn) in found {
        let is_attached = attached.contains(&arn);
        if let Some(policy) = owned_spill_policy(iam, role, name, arn, is_attached, cache).await? {
            owned.push(policy);
        }
    }
    Ok(owned)
}

/// One candidate, read: `None` when it is gone or not tagged as execrole's for this role.
async fn owned_spill_policy(
    iam: &dyn IamApi,
    role: &str,
    name: String,
    arn: String,
    is_attached: bool,
    cache: &PolicyCache,
) -> Result<Option<OwnedManagedPolicy>, AwsError> {
    let Some(policy) = iam.get_policy(&arn).await? else {
        return Ok(None);
    };
    let (key, value) = plan::OWNER_TAG;
    if !policy.tags.iter().any(|(k, v)| k == key && v == value) {
        tracing::warn!(role, policy_arn = %arn, "a policy named like execrole's spill policy is not tagged as ours; left alone");
        return Ok(None);
    }
    if let Some((_, other)) = policy
        .tags
        .iter()
        .find(|(k, v)| k == plan::ROLE_TAG && v != role)
    {
        tracing::warn!(role, policy_arn = %arn, tagged_role = %other, "a spill policy is tagged for another role; left alone");
        return Ok(None);
    }
    if !is_attached && !is_adoptable(role, &arn, &policy) {
        return Ok(None);
    }
    let listed = iam.list_policy_versions(&arn).await?;
    let default_id = listed
        .iter()
        .find(|v| v.is_default)
        .map_or(policy.default_version_id.as_str(), |v| {
            v.version_id.as_str()
        });
    let default = plan::version_number(default_id);
    let mut versions = Vec::new();
    for version in listed {
        // The default's document, and those of versions newer than it (a half-finished write may have left the
        // needed document there); older versions are history and are not read.
        let is_newer = plan::version_number(&version.version_id) > default;
        let document = if version.is_default || is_newer {
            cache
                .version_text(iam, &policy, &version.version_id)
                .await?
        } else {
            None
        };
        versions.push(OwnedVersion {
            id: version.version_id,
            is_default: version.is_default,
            document,
        });
    }
    let document = versions
        .iter()
        .find(|v| v.is_default)
        .and_then(|v| v.document.clone());
    Ok(Some(OwnedManagedPolicy {
        name,
        arn,
        document,
        is_attached,
        versions,
    }))
}

/// Whether an owned spill policy that is not attached to `role` may be adopted by it (attached, rewritten or
/// deleted): only when its role tag names `role` (execrole always writes that tag, so a policy without one is not
/// one it created for the role) and it is attached nowhere (adopting one attached to another role would change
/// that role's permissions).
fn is_adoptable(role: &str, arn: &str, policy: &ManagedPolicyInfo) -> bool {
    let tagged_for_role = policy
        .tags
        .iter()
        .any(|(k, v)| k == plan::ROLE_TAG && v == role);
    if !tagged_for_role {
        tracing::warn!(role, policy_arn = %arn, "an unattached spill policy has no role tag naming this role; left alone");
        return false;
    }
    if policy.attachment_count != Some(0) {
        tracing::warn!(role, policy_arn = %arn, attachments = ?policy.attachment_count, "a spill policy named for this role is attached elsewhere, not to it; left alone");
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, path: &str) -> ListedPolicy {
        ListedPolicy {
            name: name.into(),
            arn: format!("arn:aws:iam::123456789012:policy{path}{name}"),
            path: path.into(),
        }
    }

    #[test]
    fn candidates_are_grouped_by_the_role_their_name_gives_and_other_names_are_left_out() {
        let candidates = SpillCandidates::from_listing(
            vec![
                listed("execrole-web-exec-1", "/execrole/"),
                listed("execrole-web-exec-2", "/execrole/"),
                listed("execrole-web-1-1", "/execrole/"),
                listed("team-policy", "/execrole/"),
                listed("execrole-web-exec", "/execrole/"),
            ],
            "execrole",
        );
        let names = |role: &str| -> Vec<String> {
            candidates
                .for_role(role)
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        assert_eq!(
            names("web-exec"),
            ["execrole-web-exec-1", "execrole-web-exec-2"]
        );
        assert_eq!(names("web-1"), ["execrole-web-1-1"]);
        assert!(names("web").is_empty() && names("team").is_empty());
    }
}
