//! The AWS SDK adapters behind [`EcsApi`] and [`IamApi`], and the factory that builds them per target: the
//! standard credential chain (environment, profile, web identity, container credentials; `AWS_ENDPOINT_URL`
//! honoured), optionally `sts:AssumeRole` into the target account, one ECS client per Region, one IAM client per
//! account, and one set of rate limiters per account shared by all of them and by the look-ups (regional services
//! draw from the buckets of their Region, IAM from the account's).
//!
//! The base configuration names the SDK app `execrole` ([`crate::events::APP_NAME`]), so every request's user
//! agent, and CloudTrail's `userAgent` for it, carries `app/execrole`: that is how event-driven convergence knows
//! the controller's own writes and ignores their events. The event queue is read with the base credentials.
//!
//! Retries are layered on purpose, and each layer is the only one at its level:
//! * the SDK's own retries are switched off, so no attempt is hidden from us;
//! * every request goes through `send` and so [`super::call_with_retry`], which retries retryable failures in place
//!   with our exponential backoff (`backoff` settings) and counts every attempt, throttles apart, so the metrics
//!   show what really hit AWS;
//! * above it, a reconcile that still fails is retried by the controller's per-key backoff, with no give-up time.
//!
//! Before each attempt, retries included, a permit is taken from the account's token bucket for the service
//! ([`super::Limiters`]), so the controller stays under API quotas that it shares with everything else in the
//! account. The event queue, read with the base credentials, has limiters of its own. The SDK's own
//! `sts:AssumeRole` credential refreshes are neither retried nor rate-limited by us.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;

use super::{
    AuthorizationItem, AuthorizationPage, AwsError, BackoffSettings, Caller, EcsApi, ErrorKind,
    FactsApi, IamApi, Limiters, ListedPolicy, ManagedPolicyInfo, PolicyVersionInfo, RateLimits,
    RoleInfo, SdkFacts, TaskDefinitionPage, absent_as_none, all_pages, convert, send,
};
use crate::config::Target;
use crate::metrics::Metrics;
use crate::model::{TaskDefinition, partition_for_region, queue_account};

/// Builds SDK clients for targets from one shared base configuration.
#[derive(Clone)]
pub struct ClientFactory {
    base: SdkConfig,
    metrics: Arc<Metrics>,
    retry: BackoffSettings,
    rate_limits: RateLimits,
    /// Each account's limiters, built on first use; shared by clones of the factory.
    limiters: Arc<Mutex<HashMap<String, Arc<Limiters>>>>,
}

impl ClientFactory {
    /// Load the base configuration from the environment (the standard chain).
    pub async fn from_env(metrics: Arc<Metrics>, retry: BackoffSettings) -> ClientFactory {
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
            rate_limits: RateLimits::default(),
            limiters: Arc::default(),
        }
    }

    /// A factory for an AWS-compatible endpoint on this machine (a local emulator): static test credentials, the
    /// given Region, and every service at `endpoint_url`. Nothing else is consulted: no profile, no instance
    /// metadata, no environment.
    pub async fn for_local_endpoint(
        endpoint_url: &str,
        region: &str,
        metrics: Arc<Metrics>,
        retry: BackoffSettings,
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
            rate_limits: RateLimits::default(),
            limiters: Arc::default(),
        }
    }

    /// Use these client-side rate limits (by default [`RateLimits::default`]) for the clients built from now on.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> ClientFactory {
        self.rate_limits = limits;
        // Limiters already built keep the limits they were built with; the new ones start afresh.
        self.limiters = Arc::default();
        self
    }

    /// The account's rate limiters: one set per account, built on first use and shared by every client of the
    /// account (every Region's ECS, IAM, the look-ups), whichever target or call built it.
    fn limiters(&self, account: &str) -> Arc<Limiters> {
        // The map is only ever inserted into, so it is whole even if a holder of the lock panicked.
        let mut map = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(account.to_string())
            .or_insert_with(|| Arc::new(Limiters::new(&self.rate_limits)))
            .clone()
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
        let caller = Caller::new(
            self.retry,
            self.metrics.clone(),
            self.limiters(&target.account),
        );
        let facts: Arc<dyn FactsApi> = Arc::new(SdkFacts::new(config.clone(), caller.clone()));
        let ecs = target
            .regions
            .iter()
            .map(|region| {
                let conf = aws_sdk_ecs::config::Builder::from(&config)
                    .region(Region::new(region.clone()))
                    .build();
                let api: Arc<dyn EcsApi> = Arc::new(SdkEcs {
                    client: aws_sdk_ecs::Client::from_conf(conf),
                    caller: caller.in_region(region),
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
            caller,
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
        // The queue's account draws from its own buckets, shared with its clients when it is also a target.
        let caller = Caller::new(
            self.retry,
            self.metrics.clone(),
            self.limiters(queue_account(queue_url).unwrap_or(queue_url)),
        )
        .in_region(region);
        Arc::new(super::SdkEventQueue::new(
            aws_sdk_sqs::Client::from_conf(conf),
            queue_url,
            caller,
        ))
    }
}

impl ClientFactory {
    /// The lease table of `coordination`, in its Region (by default the base configuration's), read and written
    /// with the controller's own base credentials. An attempt may take up to a lease (its answer is used with the
    /// time the request was sent, so a slow answer is never trusted for longer than it should be), and retries in
    /// place stop after a third of a lease, when the next round is due anyway.
    pub fn lease_table(
        &self,
        coordination: &crate::config::Coordination,
    ) -> Arc<dyn super::LeaseTable> {
        let budget = coordination.lease_duration / 3;
        let mut conf = aws_sdk_dynamodb::config::Builder::from(&self.base).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(coordination.lease_duration)
                .operation_attempt_timeout(coordination.lease_duration)
                .build(),
        );
        if let Some(region) = &coordination.region {
            conf = conf.region(Region::new(region.clone()));
        }
        let retry = BackoffSettings {
            initial_interval: self.retry.initial_interval.min(budget / 4),
            max_interval: budget / 2,
            max_elapsed: budget,
        };
        let caller = Caller::new(
            retry,
            self.metrics.clone(),
            self.limiters(&format!("dynamodb:{}", coordination.dynamodb_table)),
        );
        Arc::new(super::SdkLeaseTable::new(
            aws_sdk_dynamodb::Client::from_conf(conf.build()),
            &coordination.dynamodb_table,
            caller,
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
    caller: Caller,
}

#[async_trait]
impl EcsApi for SdkEcs {
    async fn list_task_definitions_page(
        &self,
        next_token: Option<String>,
    ) -> Result<TaskDefinitionPage, AwsError> {
        const OP: &str = "ListTaskDefinitions";
        let out = send(&self.caller, "ecs", OP, || {
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
        let out = send(&self.caller, "ecs", OP, || {
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

    async fn task_definitions_in_use(&self) -> Result<Vec<String>, AwsError> {
        let mut in_use = BTreeSet::new();
        for cluster in self.cluster_arns().await? {
            // A cluster deleted since it was listed runs nothing.
            let Some(services) = absent_as_none(self.service_arns(&cluster).await)? else {
                continue;
            };
            for batch in services.chunks(DESCRIBE_SERVICES_BATCH) {
                in_use.extend(self.service_task_definitions(&cluster, batch).await?);
            }
        }
        Ok(in_use.into_iter().collect())
    }
}

/// `DescribeServices` takes at most this many services per request.
const DESCRIBE_SERVICES_BATCH: usize = 10;

impl SdkEcs {
    /// The ARNs of every cluster in the Region (all pages).
    async fn cluster_arns(&self) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListClusters";
        all_pages("ecs", OP, |token| async move {
            let out = send(&self.caller, "ecs", OP, || {
                self.client
                    .list_clusters()
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            Ok((
                out.cluster_arns().to_vec(),
                out.next_token().map(str::to_string),
            ))
        })
        .await
    }

    /// The ARNs of every service in a cluster (all pages).
    async fn service_arns(&self, cluster: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListServices";
        all_pages("ecs", OP, |token| async move {
            let out = send(&self.caller, "ecs", OP, || {
                self.client
                    .list_services()
                    .cluster(cluster)
                    .max_results(100)
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            Ok((
                out.service_arns().to_vec(),
                out.next_token().map(str::to_string),
            ))
        })
        .await
    }

    /// The task definitions that a batch of a cluster's services run or are moving to: each service's own, every
    /// deployment's, and every task set's (services with an external or CodeDeploy controller keep theirs in task
    /// sets). Values are kept as ECS returned them, which is not always a full ARN. Deleted (INACTIVE) services run
    /// nothing and are skipped; a service deleted since it was listed (failure `MISSING`) too. Any other failure is
    /// an error, so that no caller mistakes a partial answer for the whole.
    async fn service_task_definitions(
        &self,
        cluster: &str,
        services: &[String],
    ) -> Result<Vec<String>, AwsError> {
        const OP: &str = "DescribeServices";
        let result = send(&self.caller, "ecs", OP, || {
            self.client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(services.to_vec()))
                .send()
        })
        .await;
        let Some(out) = absent_as_none(result)? else {
            return Ok(Vec::new());
        };
        if let Some(failure) = out
            .failures()
            .iter()
            .find(|f| f.reason() != Some("MISSING"))
        {
            return Err(AwsError::new(
                "ecs",
                OP,
                ErrorKind::Other,
                format!(
                    "service {} could not be described: {}{}",
                    failure.arn().unwrap_or("(no ARN)"),
                    failure.reason().unwrap_or("no reason given"),
                    failure
                        .detail()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default(),
                ),
            ));
        }
        let mut in_use = Vec::new();
        for service in out.services() {
            if service.status() == Some("INACTIVE") {
                continue;
            }
            in_use.extend(service.task_definition().map(str::to_string));
            in_use.extend(
                service
                    .deployments()
                    .iter()
                    .filter_map(|d| d.task_definition())
                    .map(str::to_string),
            );
            in_use.extend(
                service
                    .task_sets()
                    .iter()
                    .filter_map(|t| t.task_definition())
                    .map(str::to_string),
            );
        }
        in_use.retain(|td| !td.is_empty());
        Ok(in_use)
    }
}

/// [`IamApi`] over the AWS SDK.
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    caller: Caller,
}

#[async_trait]
impl IamApi for SdkIam {
    async fn get_role(&self, role: &str) -> Result<Option<RoleInfo>, AwsError> {
        const OP: &str = "GetRole";
        let result = send(&self.caller, "iam", OP, || {
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
                tags: convert::tags(r.tags()),
            })
        }))
    }

    async fn list_role_policies(&self, role: &str) -> Result<Vec<String>, AwsError> {
        const OP: &str = "ListRolePolicies";
        all_pages("iam", OP, |marker| async move {
            let out = send(&self.caller, "iam", OP, || {
                self.client
                    .list_role_policies()
                    .role_name(role)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            let next = out
                .marker()
                .filter(|_| out.is_truncated())
                .map(str::to_string);
            Ok((out.policy_names().to_vec(), next))
        })
        .await
    }

    async fn get_role_policy(&self, role: &str, policy: &str) -> Result<Option<String>, AwsError> {
        const OP: &str = "GetRolePolicy";
        let result = send(&self.caller, "iam", OP, || {
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
        send(&self.caller, "iam", OP, || {
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
        send(&self.caller, "iam", OP, || {
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
        let mut arns = all_pages("iam", OP, |marker| async move {
            let out = send(&self.caller, "iam", OP, || {
                self.client
                    .list_attached_role_policies()
                    .role_name(role)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            let arns = out
                .attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn())
                .map(str::to_string)
                .collect();
            let next = out
                .marker()
                .filter(|_| out.is_truncated())
                .map(str::to_string);
            Ok((arns, next))
        })
        .await?;
        arns.sort();
        arns.dedup();
        Ok(arns)
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> Result<(), AwsError> {
        const OP: &str = "AttachRolePolicy";
        send(&self.caller, "iam", OP, || {
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
        send(&self.caller, "iam", OP, || {
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
        let result = send(&self.caller, "iam", OP, || {
            self.client.get_policy().policy_arn(arn).send()
        })
        .await;
        Ok(absent_as_none(result)?.and_then(|out| {
            out.policy().map(|p| ManagedPolicyInfo {
                arn: p.arn().unwrap_or(arn).to_string(),
                id: p.policy_id().unwrap_or_default().to_string(),
                attachment_count: p.attachment_count().and_then(|n| u32::try_from(n).ok()),
                default_version_id: p.default_version_id().unwrap_or_default().to_string(),
                tags: convert::tags(p.tags()),
            })
        }))
    }

    async fn get_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<Option<String>, AwsError> {
        const OP: &str = "GetPolicyVersion";
        let result = send(&self.caller, "iam", OP, || {
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
        all_pages("iam", OP, |marker| async move {
            let out = send(&self.caller, "iam", OP, || {
                self.client
                    .list_policy_versions()
                    .policy_arn(arn)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            let versions = out
                .versions()
                .iter()
                .filter_map(|v| {
                    v.version_id().map(|id| PolicyVersionInfo {
                        version_id: id.to_string(),
                        is_default: v.is_default_version(),
                    })
                })
                .collect();
            let next = out
                .marker()
                .filter(|_| out.is_truncated())
                .map(str::to_string);
            Ok((versions, next))
        })
        .await
    }

    async fn list_local_policies(&self, path_prefix: &str) -> Result<Vec<ListedPolicy>, AwsError> {
        const OP: &str = "ListPolicies";
        all_pages("iam", OP, |marker| async move {
            let out = send(&self.caller, "iam", OP, || {
                self.client
                    .list_policies()
                    .scope(aws_sdk_iam::types::PolicyScopeType::Local)
                    .path_prefix(path_prefix)
                    .set_marker(marker.clone())
                    .send()
            })
            .await?;
            let policies = out
                .policies()
                .iter()
                .filter_map(|p| {
                    Some(ListedPolicy {
                        name: p.policy_name()?.to_string(),
                        arn: p.arn()?.to_string(),
                        path: p.path().unwrap_or("/").to_string(),
                    })
                })
                .collect();
            let next = out
                .marker()
                .filter(|_| out.is_truncated())
                .map(str::to_string);
            Ok((policies, next))
        })
        .await
    }

    async fn create_policy(
        &self,
        name: &str,
        path: &str,
        document: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        const OP: &str = "CreatePolicy";
        let tags = sdk_tags(tags);
        let out = send(&self.caller, "iam", OP, || {
            self.client
                .create_policy()
                .policy_name(name)
                .path(path)
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
        send(&self.caller, "iam", OP, || {
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

    async fn set_default_policy_version(
        &self,
        arn: &str,
        version_id: &str,
    ) -> Result<(), AwsError> {
        const OP: &str = "SetDefaultPolicyVersion";
        send(&self.caller, "iam", OP, || {
            self.client
                .set_default_policy_version()
                .policy_arn(arn)
                .version_id(version_id)
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn tag_role(&self, role: &str, tags: &[(String, String)]) -> Result<(), AwsError> {
        const OP: &str = "TagRole";
        let tags = sdk_tags(tags);
        send(&self.caller, "iam", OP, || {
            self.client
                .tag_role()
                .role_name(role)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn untag_role(&self, role: &str, keys: &[String]) -> Result<(), AwsError> {
        const OP: &str = "UntagRole";
        send(&self.caller, "iam", OP, || {
            self.client
                .untag_role()
                .role_name(role)
                .set_tag_keys(Some(keys.to_vec()))
                .send()
        })
        .await
        .map(|_| ())
    }

    async fn delete_policy_version(&self, arn: &str, version_id: &str) -> Result<(), AwsError> {
        const OP: &str = "DeletePolicyVersion";
        send(&self.caller, "iam", OP, || {
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
        send(&self.caller, "iam", OP, || {
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
        send(&self.caller, "iam", OP, || {
            self.client.delete_policy().policy_arn(arn).send()
        })
        .await
        .map(|_| ())
    }

    async fn account_authorization_page(
        &self,
        marker: Option<String>,
    ) -> Result<AuthorizationPage, AwsError> {
        use aws_sdk_iam::types::EntityType;
        const OP: &str = "GetAccountAuthorizationDetails";
        let mut out = send(&self.caller, "iam", OP, || {
            self.client
                .get_account_authorization_details()
                .filter(EntityType::Role)
                .filter(EntityType::LocalManagedPolicy)
                .max_items(AUTHORIZATION_PAGE_SIZE)
                .set_marker(marker.clone())
                .send()
        })
        .await?;
        let marker = out.marker.take().filter(|_| out.is_truncated);
        let roles = out.role_detail_list.take().unwrap_or_default();
        let policies = out.policies.take().unwrap_or_default();
        let items = roles
            .into_iter()
            .filter_map(convert::role_detail)
            .map(AuthorizationItem::Role)
            .chain(
                policies
                    .into_iter()
                    .filter_map(convert::local_policy)
                    .map(AuthorizationItem::Policy),
            )
            .collect();
        Ok(AuthorizationPage { items, marker })
    }
}

/// Tags in the SDK's shape (a tag IAM would refuse, with an empty key, is left out).
fn sdk_tags(tags: &[(String, String)]) -> Vec<aws_sdk_iam::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

/// Items per `GetAccountAuthorizationDetails` page: IAM's maximum, so an account costs the fewest requests.
const AUTHORIZATION_PAGE_SIZE: i32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_factory_builds_one_set_of_limiters_per_account() {
        let factory = ClientFactory::for_local_endpoint(
            "http://127.0.0.1:9",
            "us-east-1",
            Arc::new(Metrics::new()),
            BackoffSettings::default(),
        )
        .await;
        let first = factory.limiters("111111111111");
        assert!(Arc::ptr_eq(&first, &factory.limiters("111111111111")));
        assert!(Arc::ptr_eq(
            &first,
            &factory.clone().limiters("111111111111")
        ));
        assert!(!Arc::ptr_eq(&first, &factory.limiters("222222222222")));
        let slower = factory.with_rate_limits(RateLimits {
            iam: RateLimits::default().other,
            ..RateLimits::default()
        });
        assert!(
            !Arc::ptr_eq(&first, &slower.limiters("111111111111")),
            "new limits start afresh"
        );
    }

    #[test]
    fn the_app_name_is_one_the_sdk_accepts() {
        assert!(aws_config::AppName::new(crate::events::APP_NAME).is_ok());
    }
}
