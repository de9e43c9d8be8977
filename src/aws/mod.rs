//! The imperative shell's edge: narrow traits that speak our model (`EcsApi`, `IamApi`, `EventQueue`,
//! `LeaseTable`), the AWS SDK adapters behind them, error classification (retryable or terminal), retries with
//! exponential backoff, and client-side rate limits per account, Region and service.
//!
//! SDK types never leave this module. The controller talks only to the traits, so it is tested with in-memory
//! fakes; the adapters are tested against the local AWS emulator. Every request is counted and timed in
//! [`crate::metrics::Metrics`] here, at the seam.

mod authorization;
mod convert;
mod error;
mod facts;
mod lease_table;
mod limit;
mod pages;
mod retry;
mod sdk;
mod sqs;

use async_trait::async_trait;

pub use authorization::{
    AccountAuthorization, AuthorizationItem, AuthorizationPage, LocalPolicy, LocalPolicyVersion,
    RoleDetail,
};
pub use error::{AwsError, ErrorKind};
pub use facts::{FactsApi, SdkFacts};
pub use lease_table::{LeaseItem, LeaseTable, SdkLeaseTable, grace_key, heartbeat_key};
pub use limit::Limiters;
pub use pages::{MAX_PAGES, all_pages};
pub use retry::{Caller, KeyBackoff, call_with_retry, jittered, request_backoff};
use retry::{absent_as_none, send};
pub use sdk::{ClientFactory, SdkEcs, SdkIam};
pub use sqs::{EventQueue, QueueMessage, SdkEventQueue};

pub use crate::settings::{BackoffSettings, RATE_LIMITED_SERVICES, RateLimit, RateLimits};

use crate::model::TaskDefinition;

/// One page of `ListTaskDefinitions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDefinitionPage {
    /// Task definition ARNs on this page.
    pub arns: Vec<String>,
    /// The token for the next page, `None` on the last.
    pub next_token: Option<String>,
}

/// What the controller reads from and asks of ECS in one account and Region.
#[async_trait]
pub trait EcsApi: Send + Sync {
    /// One page of ACTIVE task definition ARNs.
    async fn list_task_definitions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<TaskDefinitionPage, AwsError>;

    /// Every ACTIVE task definition ARN, all pages of [`EcsApi::list_task_definitions_page`] through
    /// [`all_pages`] (so a repeated token or a list without end is an error, not a hang).
    async fn task_definition_arns(&self) -> Result<Vec<String>, AwsError> {
        all_pages("ecs", "ListTaskDefinitions", |token| async move {
            let page = self.list_task_definitions_page(token).await?;
            Ok((page.arns, page.next_token))
        })
        .await
    }

    /// One task definition by ARN.
    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError>;

    /// The task definition ARNs that services of every cluster in the Region run or are deploying
    /// (`ListClusters`, `ListServices`, `DescribeServices`: the service's task definition, every deployment's and
    /// every task set's), all pages, distinct and sorted. Used to keep INACTIVE revisions that a service still runs
    /// in scope. Values are as ECS returned them: usually full ARNs, but a `family:revision` is possible (the
    /// caller resolves it). Deleted services are left out. The default answers "none", for fakes that have no
    /// services.
    async fn task_definitions_in_use(&self) -> Result<Vec<String>, AwsError> {
        Ok(Vec::new())
    }
}

/// An IAM role as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleInfo {
    /// The role ARN.
    pub arn: String,
    /// The trust policy document as IAM returned it (URL-encoded).
    pub assume_role_policy: Option<String>,
    /// The permissions boundary's ARN, when the role has one.
    pub permissions_boundary: Option<String>,
    /// The role's path (`/` or `/ecs/`).
    pub path: String,
    /// The role's tags.
    pub tags: Vec<(String, String)>,
}

/// A customer or AWS managed policy's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManagedPolicyInfo {
    /// The policy ARN.
    pub arn: String,
    /// The policy id (`ANPA…`): a policy deleted and created again under the same ARN gets a new one.
    pub id: String,
    /// How many users, groups and roles it is attached to, when IAM said.
    pub attachment_count: Option<u32>,
    /// The default version's id (`v3`).
    pub default_version_id: String,
    /// The policy's tags.
    pub tags: Vec<(String, String)>,
}

/// A customer managed policy as `ListPolicies` lists it (no tags: IAM's list calls leave them out).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedPolicy {
    /// The policy name.
    pub name: String,
    /// The policy ARN.
    pub arn: String,
    /// Its IAM path (`/execrole/`).
    pub path: String,
}

/// One version of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionInfo {
    /// The version id (`v3`).
    pub version_id: String,
    /// Whether it is the default version.
    pub is_default: bool,
}

fn unsupported<T>(operation: &'static str) -> Result<T, AwsError> {
    Err(AwsError::new(
        "iam",
        operation,
        ErrorKind::Other,
        "not supported by this IAM client",
    ))
}

/// What the controller reads from and writes to IAM in one account.
#[async_trait]
pub trait IamApi: Send + Sync {
    /// The role, or `None` when it does not exist.
    async fn get_role(&self, role: &str) -> Result<Option<RoleInfo>, AwsError>;

    /// The names of the role's inline policies (all pages).
    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError>;

    /// An inline policy's document as IAM returned it (URL-encoded), or `None` when it does not exist.
    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError>;

    /// Create or replace an inline policy.
    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), AwsError>;

    /// Delete an inline policy.
    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError>;

    /// The ARNs of the managed policies attached to the role (all pages).
    async fn list_attached_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError>;

    /// Attach a managed policy.
    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError>;

    /// Replace the role's trust policy.
    async fn update_assume_role_policy(&self, role: &str, document: &str) -> Result<(), AwsError>;

    /// A managed policy's metadata, or `None` when it does not exist.
    async fn get_policy(&self, _arn: &str) -> Result<Option<ManagedPolicyInfo>, AwsError> {
        unsupported("GetPolicy")
    }

    /// A managed policy version's document as IAM returned it, or `None` when it does not exist.
    async fn get_policy_version(
        &self,
        _arn: &str,
        _version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        unsupported("GetPolicyVersion")
    }

    /// The versions of a managed policy.
    async fn list_policy_versions(&self, _arn: &str) -> Result<Vec<PolicyVersionInfo>, AwsError> {
        unsupported("ListPolicyVersions")
    }

    /// The account's customer managed policies under an IAM path (`ListPolicies` with `Scope=Local` and
    /// `PathPrefix`, all pages), attached or not.
    async fn list_local_policies(&self, _path_prefix: &str) -> Result<Vec<ListedPolicy>, AwsError> {
        unsupported("ListPolicies")
    }

    /// Create a customer managed policy under an IAM path, with tags; returns its ARN.
    async fn create_policy(
        &self,
        _name: &str,
        _path: &str,
        _document: &str,
        _tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        unsupported("CreatePolicy")
    }

    /// Make an existing version of a managed policy its default.
    async fn set_default_policy_version(
        &self,
        _arn: &str,
        _version_id: &str,
    ) -> Result<(), AwsError> {
        unsupported("SetDefaultPolicyVersion")
    }

    /// Add or overwrite tags on a role.
    async fn tag_role(&self, _role: &str, _tags: &[(String, String)]) -> Result<(), AwsError> {
        unsupported("TagRole")
    }

    /// Remove tags (by key) from a role.
    async fn untag_role(&self, _role: &str, _keys: &[String]) -> Result<(), AwsError> {
        unsupported("UntagRole")
    }

    /// Add a version to a managed policy and make it the default.
    async fn create_policy_version(&self, _arn: &str, _document: &str) -> Result<(), AwsError> {
        unsupported("CreatePolicyVersion")
    }

    /// Delete a non-default version of a managed policy.
    async fn delete_policy_version(&self, _arn: &str, _version_id: &str) -> Result<(), AwsError> {
        unsupported("DeletePolicyVersion")
    }

    /// Detach a managed policy from a role.
    async fn detach_role_policy(&self, _role: &str, _arn: &str) -> Result<(), AwsError> {
        unsupported("DetachRolePolicy")
    }

    /// Delete a managed policy (all its non-default versions must be deleted first).
    async fn delete_policy(&self, _arn: &str) -> Result<(), AwsError> {
        unsupported("DeletePolicy")
    }

    /// One page of `GetAccountAuthorizationDetails` (Filter `Role` and `LocalManagedPolicy`) after `marker`.
    async fn account_authorization_page(
        &self,
        _marker: Option<String>,
    ) -> Result<AuthorizationPage, AwsError> {
        unsupported("GetAccountAuthorizationDetails")
    }

    /// Every role and customer managed policy of the account in one snapshot: all pages of
    /// [`IamApi::account_authorization_page`] through [`all_pages`].
    async fn account_authorization(&self) -> Result<AccountAuthorization, AwsError> {
        authorization::account_authorization(|marker| self.account_authorization_page(marker)).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An ECS whose list answers `pages` in order, each with the token of the next.
    struct PagedEcs {
        pages: Vec<(Vec<&'static str>, Option<&'static str>)>,
        asked: Mutex<Vec<Option<String>>>,
    }

    #[async_trait]
    impl EcsApi for PagedEcs {
        async fn list_task_definitions_page(
            &self,
            next_token: Option<String>,
        ) -> Result<TaskDefinitionPage, AwsError> {
            let mut asked = self.asked.lock().unwrap();
            let (arns, next) = &self.pages[asked.len()];
            asked.push(next_token);
            Ok(TaskDefinitionPage {
                arns: arns.iter().map(|a| a.to_string()).collect(),
                next_token: next.map(str::to_string),
            })
        }

        async fn describe_task_definition(&self, _arn: &str) -> Result<TaskDefinition, AwsError> {
            unreachable!("not used")
        }
    }

    #[tokio::test]
    async fn task_definition_arns_follow_every_page_and_stop_on_a_repeated_token() {
        let ecs = PagedEcs {
            pages: vec![
                (vec!["a", "b"], Some("t1")),
                (vec![], Some("t2")),
                (vec!["c"], None),
            ],
            asked: Mutex::default(),
        };
        assert_eq!(
            ecs.task_definition_arns().await.unwrap(),
            vec!["a", "b", "c"]
        );
        assert_eq!(
            *ecs.asked.lock().unwrap(),
            vec![None, Some("t1".into()), Some("t2".into())]
        );

        let looping = PagedEcs {
            pages: vec![(vec!["a"], Some("t1")), (vec!["b"], Some("t1"))],
            asked: Mutex::default(),
        };
        let err = looping.task_definition_arns().await.unwrap_err();
        assert_eq!((err.service, err.operation), ("ecs", "ListTaskDefinitions"));
        assert!(err.message.contains("next token"), "{err}");
    }
}
