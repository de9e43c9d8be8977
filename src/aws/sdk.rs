//! The AWS SDK adapters behind [`EcsApi`] and [`IamApi`], and the factory that builds them per target: the
//! standard credential chain (environment, profile, web identity, container credentials; `AWS_ENDPOINT_URL`
//! honoured), optionally `sts:AssumeRole` into the target account, one ECS client per Region and one IAM client per
//! account.
//!
//! The base configuration names the SDK app `execrole` ([`crate::events::APP_NAME`]), so every request's user
//! agent, and CloudTrail's `userAgent` for it, carries `app/execrole`: that is how event-driven convergence knows
//! the controller's own writes and ignores their events. The event queue is read with the base credentials.
//!
//! The SDK's own retries are switched off on purpose: every attempt then goes through [`super::call_with_retry`], where it
//! is counted (throttles apart) and retried with our backoff, so the metrics show what really hit AWS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

use super::{
    AwsError, EcsApi, ErrorKind, FactsApi, IamApi, ManagedPolicyInfo, PolicyVersionInfo,
    RetryPolicy, RoleInfo, SdkFacts, TaskDefinitionPage, absent_as_none, convert, send,
};
use crate::config::Target;
use crate::metrics::Metrics;
use crate::model::{TaskDefinition, partition_for_region};

/// Builds SDK clients for targets from one shared base configuration.
#[derive(Clone)]
pub struct ClientFactory {
    base: SdkConfig,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
}

impl ClientFactory {
    /// Load the base configuration from the environment (the standard chain).
    pub async fn from_env(metrics: Arc<Metrics>, retry: RetryPolicy) -> ClientFactory {
        let base = with_app_name(aws_config::defaults(BehaviorVersion::latest()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        ClientFactory {
            base,
            metrics,
            retry,
        }
    }

    /// A factory for an AWS-compatible endpoint on this machine (a local emulator): static test credentials, the
    /// given Region, and every service at `endpoint_url`. Nothing else is consulted: no profile, no instance
    /// metadata, no environment.
    pub async fn for_local_endpoint(
        endpoint_url: &str,
        region: &str,
        metrics: Arc<Metrics>,
        retry: RetryPolicy,
    ) -> ClientFactory {
        let credentials = aws_credential_types::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "execrole-local",
        );
        let base = with_app_name(aws_config::defaults(BehaviorVersion::latest()))
            .retry_config(RetryConfig::disabled())
            .endpoint_url(endpoint_url)
            .region(Region::new(region.to_string()))
            .credentials_provider(credentials)
            .load()
            .await;
        ClientFactory {
            base,
            metrics,
            retry,
        }
    }

    /// The configuration for a target: the base one, or credentials from assuming the target's role (refreshed by
    /// the SDK before they expire).
    async fn target_config(&self, target: &Target) -> SdkConfig {
        let Some(role_arn) = &target.assume_role_arn else {
            return self.base.clone();
        };
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
            .session_name(target.session_name.clone())
            .configure(&self.base);
        if let Some(external_id) = &target.external_id {
            builder = builder.external_id(external_id.clone());
        }
        let provider = builder.build().await;
        self.base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider))
            .build()
    }

    /// ECS adapters for each of the target's Regions, the IAM adapter for its account, and the look-ups.
    pub async fn clients(
        &self,
        target: &Target,
    ) -> (
        Vec<(String, Arc<dyn EcsApi>)>,
        Arc<dyn IamApi>,
        Arc<dyn FactsApi>,
    ) {
        let config = self.target_config(target).await;
        let facts: Arc<dyn FactsApi> = Arc::new(SdkFacts::new(
            config.clone(),
            self.metrics.clone(),
            self.retry,
        ));
        let ecs = target
            .regions
            .iter()
            .map(|region| {
                let conf = aws_sdk_ecs::config::Builder::from(&config)
                    .region(Region::new(region.clone()))
                    .build();
                let api: Arc<dyn EcsApi> = Arc::new(SdkEcs {
                    client: aws_sdk_ecs::Client::from_conf(conf),
                    metrics: self.metrics.clone(),
                    retry: self.retry,
                });
                (region.clone(), api)
            })
            .collect();
        // IAM is global per partition; its endpoint is reached through the partition's home Region.
        let iam_region = match target.regions.first().map(|r| partition_for_region(r)) {
            Some("aws-cn") => "cn-north-1",
            Some("aws-us-gov") => "us-gov-west-1",
            _ => "us-east-1",
        };
        let conf = aws_sdk_iam::config::Builder::from(&config)
            .region(Region::new(iam_region))
            .build();
        let iam: Arc<dyn IamApi> = Arc::new(SdkIam {
            client: aws_sdk_iam::Client::from_conf(conf),
            metrics: self.metrics.clone(),
            retry: self.retry,
        });
        (ecs, iam, facts)
    }
}

impl ClientFactory {
    /// The event queue at `queue_url` in `region`, read with the controller's own base credentials (the queue lives
    /// in the controller's account, never in a target's).
    pub fn event_queue(&self, queue_url: &str, region: &str) -> Arc<dyn super::EventQueue> {
        let conf = aws_sdk_sqs::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .build();
        Arc::new(super::SdkEventQueue::new(
            aws_sdk_sqs::Client::from_conf(conf),
            queue_url,
            self.metrics.clone(),
            self.retry,
        ))
    }
}

/// Name the SDK app (see the module doc). [`crate::events::APP_NAME`] is a valid name (a unit test says so), so
/// the loader never goes without it.
fn with_app_name(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    match aws_config::AppName::new(crate::events::APP_NAME) {
        Ok(name) => loader.app_name(name),
        Err(_) => loader,
    }
}

/// [`EcsApi`] over the AWS SDK.
pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
}

#[async_trait]
impl EcsApi for SdkEcs {
    async fn list_task_definitions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<TaskDefinitionPage, AwsError> {
        const OP: &str = "ListTaskDefinitions";
        let out = send(&self.retry, &self.metrics, "ecs", OP, || {
            self.client
                .list_task_definitions()
                .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
                .max_results(100)
                .set_next_token(next_token.clone())
                .send()
        })
        .await?;
        Ok(TaskDefinitionPage {
            arns: out.task_definition_arns().to_vec(),
            next_token: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
    }

    async fn describe_task_definition(&self, arn: &str) -> Result<TaskDefinition, AwsError> {
        const OP: &str = "DescribeTaskDefinition";
        let out = send(&self.retry, &self.metrics, "ecs", OP, || {
            self.client
                .describe_task_definition()
                .task_definition(arn)
                .send()
        })
        .await?;
        match out.task_definition() {
            Some(td) => Ok(convert::task_definition(td)),
            None => Err(AwsError::new(
                "ecs",
                OP,
                ErrorKind::Other,
                format!("no task definition returned for {arn}"),
            )),
        }
    }
}

/// [`IamApi`] over the AWS SDK.
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
}

#[async_trait]
impl IamApi for SdkIam {
    async fn get_role(&self, role: &str) -> Result<Option<RoleInfo>, AwsError> {
        const OP: &str = "GetRole";
        let result = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client.get_role().role_name(role).send()
        })
        .await;
        Ok(absent_as_none(result)?.and_then(|out| {
            out.role().map(|r| RoleInfo {
                arn: r.arn().to_string(),
                assume_role_policy: r.assume_role_policy_document().map(str::to_string),
                permissions_boundary: r
                    .permissions_boundary()
                    .and_then(|b| b.permissions_boundary_arn())
                    .map(str::to_string),
                path: r.path().to_string(),
                tags: r
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            })
        }))
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListRolePolicies";
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = send(&self.retry, &self.metrics, "iam", OP, || {
                self.client
                    .list_role_policies()
                    .role_name(role)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            names.extend(out.policy_names().iter().cloned());
            match out.marker().filter(|m| out.is_truncated() && !m.is_empty()) {
                Some(next) => marker = Some(next.to_string()),
                None => break,
            }
        }
        Ok(names)
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
        const OP: &str = "GetRolePolicy";
        let result = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .get_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
        })
        .await;
        Ok(absent_as_none(result)?.map(|out| out.policy_document().to_string()))
    }

    async fn put_role_policy(
        &self,
        role: &str,
        policy: &str,
        document: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "PutRolePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .put_role_policy()
                .role_name(role)
                .policy_name(policy)
                .policy_document(document)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete_role_policy(&self, role: &str, policy: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteRolePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .delete_role_policy()
                .role_name(role)
                .policy_name(policy)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn list_attached_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListAttachedRolePolicies";
        let mut arns = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = send(&self.retry, &self.metrics, "iam", OP, || {
                self.client
                    .list_attached_role_policies()
                    .role_name(role)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            arns.extend(
                out.attached_policies()
                    .iter()
                    .filter_map(|p| p.policy_arn())
                    .map(str::to_string),
            );
            // moto ends with an extra empty page; a repeated marker would loop, so stop on it too.
            match out.marker().filter(|m| out.is_truncated() && !m.is_empty()) {
                Some(next) if Some(next) != marker.as_deref() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        arns.sort();
        arns.dedup();
        Ok(arns)
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError> {
        const OP: &str = "AttachRolePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .attach_role_policy()
                .role_name(role)
                .policy_arn(policy_arn)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn update_assume_role_policy(&self, role: &str, document: &str) -> Result<(), AwsError> {
        const OP: &str = "UpdateAssumeRolePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(document)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn get_policy(&self, arn: &str) -> Result<Option<ManagedPolicyInfo>, AwsError> {
        const OP: &str = "GetPolicy";
        let result = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client.get_policy().policy_arn(arn).send()
        })
        .await;
        Ok(absent_as_none(result)?.and_then(|out| {
            out.policy().map(|p| ManagedPolicyInfo {
                arn: p.arn().unwrap_or(arn).to_string(),
                default_version_id: p.default_version_id().unwrap_or_default().to_string(),
                tags: p
                    .tags()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
            })
        }))
    }

    async fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        const OP: &str = "GetPolicyVersion";
        let result = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version_id)
                .send()
        })
        .await;
        Ok(absent_as_none(result)?.and_then(|out| {
            out.policy_version()
                .and_then(|v| v.document())
                .map(str::to_string)
        }))
    }

    async fn list_policy_versions(&self, arn: &str) -> Result<Vec<PolicyVersionInfo>, AwsError> {
        const OP: &str = "ListPolicyVersions";
        let out = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client.list_policy_versions().policy_arn(arn).send()
        })
        .await?;
        Ok(out
            .versions()
            .iter()
            .filter_map(|v| {
                v.version_id().map(|id| PolicyVersionInfo {
                    version_id: id.to_string(),
                    is_default: v.is_default_version(),
                })
            })
            .collect())
    }

    async fn create_policy(
        &self,
        name: &str,
        document: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        const OP: &str = "CreatePolicy";
        let tags: Vec<aws_sdk_iam::types::Tag> = tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_iam::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let out = send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .create_policy()
                .policy_name(name)
                .policy_document(document)
                .description("Owned by execrole: permissions an ECS execution role needs (spilled from its inline policy)")
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
        out.policy()
            .and_then(|p| p.arn())
            .map(str::to_string)
            .ok_or_else(|| {
                AwsError::new("iam", OP, ErrorKind::Other, "no policy ARN in the response")
            })
    }

    async fn create_policy_version(&self, arn: &str, document: &str) -> Result<(), AwsError> {
        const OP: &str = "CreatePolicyVersion";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .create_policy_version()
                .policy_arn(arn)
                .policy_document(document)
                .set_as_default(true)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), AwsError> {
        const OP: &str = "DeletePolicyVersion";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(version_id)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn detach_role_policy(&self, role: &str, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "DetachRolePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client
                .detach_role_policy()
                .role_name(role)
                .policy_arn(arn)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete_policy(&self, arn: &str) -> Result<(), AwsError> {
        const OP: &str = "DeletePolicy";
        send(&self.retry, &self.metrics, "iam", OP, || {
            self.client.delete_policy().policy_arn(arn).send()
        })
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_app_name_is_one_the_sdk_accepts() {
        assert!(aws_config::AppName::new(crate::events::APP_NAME).is_ok());
    }
}
