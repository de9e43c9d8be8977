//! One account's IAM read in bulk: the roles and customer managed policies that `GetAccountAuthorizationDetails`
//! (Filter `Role` and `LocalManagedPolicy`) returns, page by page, gathered into one [`AccountAuthorization`]
//! snapshot. It owns the snapshot's types and the gathering of pages through [`super::all_pages`].
//!
//! Documents stay as IAM returned them (URL-encoded), exactly like the per-role reads', so the one decoding in
//! `policy` serves both. AWS managed policies are not part of the snapshot (that filter would list hundreds of
//! them), nor are the tags of customer managed policies (IAM does not return them here): callers read those
//! separately. It does not decide when a snapshot is taken or used (see `controller`).

use std::collections::BTreeMap;

use super::{AwsError, RoleInfo, all_pages};

/// A role as `GetAccountAuthorizationDetails` returns it: what `GetRole`, `ListRolePolicies`, `GetRolePolicy`
/// and `ListAttachedRolePolicies` would have answered for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleDetail {
    /// The role's name.
    pub name: String,
    /// ARN, trust policy (URL-encoded), boundary, path and tags.
    pub info: RoleInfo,
    /// Inline policies: name and document as IAM returned it (URL-encoded).
    pub inline_policies: Vec<(String, String)>,
    /// The ARNs of the attached managed policies.
    pub attached_policies: Vec<String>,
}

/// A customer managed policy of the account, with every version's document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalPolicy {
    /// The policy ARN.
    pub arn: String,
    /// The policy name.
    pub name: String,
    /// Its IAM path (`/` or `/execrole/`).
    pub path: String,
    /// Its unique id: a policy deleted and created again under the same ARN gets a new one.
    pub policy_id: String,
    /// The default version's id (`v3`).
    pub default_version_id: String,
    /// How many roles, users and groups it is attached to.
    pub attachment_count: usize,
    /// Every version with its document (IAM keeps at most five).
    pub versions: Vec<LocalPolicyVersion>,
}

/// One version of a customer managed policy, with its document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalPolicyVersion {
    /// The version id (`v3`).
    pub version_id: String,
    /// Whether it is the default version.
    pub is_default: bool,
    /// Its document as IAM returned it (URL-encoded).
    pub document: Option<String>,
}

impl LocalPolicy {
    /// The default version's document as IAM returned it (URL-encoded).
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.is_default)
            .and_then(|v| v.document.as_deref())
    }
}

/// One item of a `GetAccountAuthorizationDetails` page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationItem {
    /// A role.
    Role(RoleDetail),
    /// A customer managed policy.
    Policy(LocalPolicy),
}

/// One page of `GetAccountAuthorizationDetails`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationPage {
    /// The roles and policies on this page.
    pub items: Vec<AuthorizationItem>,
    /// The marker of the next page, `None` on the last (only while `IsTruncated`).
    pub marker: Option<String>,
}

/// Every role and customer managed policy of one account, read at one moment (all pages of
/// `GetAccountAuthorizationDetails`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountAuthorization {
    /// Roles by lower-case name (IAM role names are unique case-insensitively).
    roles: BTreeMap<String, RoleDetail>,
    /// Customer managed policies by ARN.
    policies: BTreeMap<String, LocalPolicy>,
    /// How many pages (requests) the read took.
    pub pages: usize,
}

impl AccountAuthorization {
    /// A snapshot of these items, read in `pages` requests.
    pub fn new(items: Vec<AuthorizationItem>, pages: usize) -> AccountAuthorization {
        let mut snapshot = AccountAuthorization {
            pages,
            ..AccountAuthorization::default()
        };
        for item in items {
            match item {
                AuthorizationItem::Role(role) => {
                    snapshot.roles.insert(role.name.to_lowercase(), role);
                }
                AuthorizationItem::Policy(policy) => {
                    snapshot.policies.insert(policy.arn.clone(), policy);
                }
            }
        }
        snapshot
    }

    /// The role named `name` (case-insensitive, as IAM matches role names), or `None` when it did not exist.
    pub fn role(&self, name: &str) -> Option<&RoleDetail> {
        self.roles.get(&name.to_lowercase())
    }

    /// The customer managed policy with this ARN, or `None` when it is not one of the account's.
    pub fn local_policy(&self, arn: &str) -> Option<&LocalPolicy> {
        self.policies.get(arn)
    }

    /// Every customer managed policy of the account, by ARN (attached or not): what spill-policy discovery
    /// needs, without a `ListPolicies`.
    pub fn local_policies(&self) -> impl Iterator<Item = &LocalPolicy> {
        self.policies.values()
    }

    /// How many roles the account has.
    pub fn role_count(&self) -> usize {
        self.roles.len()
    }
}

/// Read every page of `GetAccountAuthorizationDetails` with `page` (one request each, through [`all_pages`], so a
/// repeated marker is an error, not a loop) and gather them into one snapshot.
pub async fn account_authorization<F, Fut>(page: F) -> Result<AccountAuthorization, AwsError>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<AuthorizationPage, AwsError>>,
{
    let pages = std::sync::atomic::AtomicUsize::new(0);
    let items = all_pages("iam", "GetAccountAuthorizationDetails", |marker| {
        pages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let next = page(marker);
        async move {
            let page = next.await?;
            Ok((page.items, page.marker))
        }
    })
    .await?;
    Ok(AccountAuthorization::new(items, pages.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> AuthorizationItem {
        AuthorizationItem::Role(RoleDetail {
            name: name.to_string(),
            ..RoleDetail::default()
        })
    }

    /// Pages of `GetAccountAuthorizationDetails` as a fake answers them: `pages[i]` after marker `m{i}`.
    async fn read(pages: Vec<(Vec<&str>, Option<&str>)>) -> Result<AccountAuthorization, AwsError> {
        let asked = std::sync::Mutex::new(Vec::new());
        let result = account_authorization(|marker: Option<String>| {
            let index = marker
                .as_deref()
                .map_or(0, |m| m[1..].parse::<usize>().unwrap());
            asked.lock().unwrap().push(marker);
            let (names, next) = pages[index].clone();
            async move {
                Ok(AuthorizationPage {
                    items: names.into_iter().map(role).collect(),
                    marker: next.map(str::to_string),
                })
            }
        })
        .await;
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked[0], None, "the first page is asked without a marker");
        result
    }

    #[tokio::test]
    async fn every_page_is_read_by_its_marker_and_counted() {
        let snapshot = read(vec![
            (vec!["a", "b"], Some("m1")),
            (vec![], Some("m2")),
            (vec!["c"], None),
        ])
        .await
        .unwrap();
        assert_eq!(snapshot.pages, 3);
        assert_eq!(snapshot.role_count(), 3);
        assert!(snapshot.role("c").is_some());
    }

    #[tokio::test]
    async fn a_repeated_marker_stops_the_read_with_an_error() {
        let err = read(vec![(vec!["a"], Some("m1")), (vec!["b"], Some("m1"))])
            .await
            .unwrap_err();
        assert_eq!(err.operation, "GetAccountAuthorizationDetails");
        assert!(err.message.contains("returned before"), "{err}");
    }

    #[test]
    fn roles_are_found_whatever_the_case_and_policies_by_arn() {
        let policy = LocalPolicy {
            arn: "arn:aws:iam::123456789012:policy/execrole/p".into(),
            ..LocalPolicy::default()
        };
        let snapshot =
            AccountAuthorization::new(vec![role("App"), AuthorizationItem::Policy(policy)], 1);
        assert_eq!(snapshot.role("app").map(|r| r.name.as_str()), Some("App"));
        assert!(snapshot.role("other").is_none());
        assert!(
            snapshot
                .local_policy("arn:aws:iam::123456789012:policy/execrole/p")
                .is_some()
        );
        assert_eq!(snapshot.local_policies().count(), 1);
        assert_eq!(snapshot.role_count(), 1);
    }
}
