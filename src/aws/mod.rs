//! The imperative shell's edge: narrow traits that speak our model (`EcsApi`, `IamApi`), the AWS SDK adapters
//! behind them, error classification (retryable or terminal), and retries with exponential backoff.
//!
//! SDK types never leave this module. The controller talks only to the traits, so it is tested with in-memory
//! fakes; the adapters are tested against the local AWS emulator. Every request is counted and timed in
//! [`crate::metrics::Metrics`] here, at the seam.

mod convert;
mod error;
mod facts;
mod retry;
mod sdk;

use async_trait::async_trait;

pub use error::{AwsError, ErrorKind};
pub use facts::{FactsApi, SdkFacts};
pub use retry::{RetryPolicy, call_with_retry};
pub use sdk::{ClientFactory, SdkEcs, SdkIam};

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

    /// One task definition by ARN.
    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError>;
}

/// An IAM role as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role ARN.
    pub arn: String,
    /// The trust policy document as IAM returned it (URL-encoded).
    pub assume_role_policy: Option<String>,
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
}
