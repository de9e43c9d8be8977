//! The look-ups behind [`FactsApi`]: `secretsmanager:DescribeSecret`, `ssm:DescribeParameters`, `kms:DescribeKey`
//! and `ecr:DescribePullThroughCacheRules`, each in the Region the fact lives in. Metadata only: nothing here can
//! read a secret value (no `GetSecretValue`, no `GetParameter`). Each Region's requests draw from that Region's rate
//! limits.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};

use super::{AwsError, Caller, ErrorKind, absent_as_none, all_pages, send};
use crate::derive::{KeyFacts, ParameterFacts, PullThroughRule, SecretFacts};

/// Facts about secrets, parameters, keys and registries in one account. `None` means "does not exist".
#[async_trait]
pub trait FactsApi: Send + Sync {
    /// `DescribeSecret`: full ARN and KMS key id.
    async fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<SecretFacts>, AwsError>;
    /// `DescribeParameters` filtered by exact name: type and KMS key id.
    async fn describe_parameter(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<ParameterFacts>, AwsError>;
    /// `DescribeKey`: key ARN and manager.
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KeyFacts>, AwsError>;
    /// `DescribePullThroughCacheRules` of the account's registry in `region` (all pages).
    async fn pull_through_cache_rules(
        &self,
        region: &str,
    ) -> Result<Vec<PullThroughRule>, AwsError>;
}

/// [`FactsApi`] over the AWS SDK, with clients built per Region on first use.
pub struct SdkFacts {
    config: SdkConfig,
    caller: Caller,
    clients: Mutex<HashMap<String, Clients>>,
}

#[derive(Clone)]
struct Clients {
    /// The account's caller, drawing from the Region's rate limits.
    caller: Caller,
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    kms: aws_sdk_kms::Client,
    ecr: aws_sdk_ecr::Client,
}

impl SdkFacts {
    pub(crate) fn new(config: SdkConfig, caller: Caller) -> SdkFacts {
        SdkFacts {
            config,
            caller,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn clients(&self, region: &str) -> Clients {
        let build = || {
            let caller = self.caller.in_region(region);
            let region = Region::new(region.to_string());
            Clients {
                caller,
                secrets: aws_sdk_secretsmanager::Client::from_conf(
                    aws_sdk_secretsmanager::config::Builder::from(&self.config)
                        .region(region.clone())
                        .build(),
                ),
                ssm: aws_sdk_ssm::Client::from_conf(
                    aws_sdk_ssm::config::Builder::from(&self.config)
                        .region(region.clone())
                        .build(),
                ),
                kms: aws_sdk_kms::Client::from_conf(
                    aws_sdk_kms::config::Builder::from(&self.config)
                        .region(region.clone())
                        .build(),
                ),
                ecr: aws_sdk_ecr::Client::from_conf(
                    aws_sdk_ecr::config::Builder::from(&self.config)
                        .region(region)
                        .build(),
                ),
            }
        };
        match self.clients.lock() {
            Ok(mut map) => map.entry(region.to_string()).or_insert_with(build).clone(),
            Err(_) => build(),
        }
    }
}

#[async_trait]
impl FactsApi for SdkFacts {
    async fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<SecretFacts>, AwsError> {
        const OP: &str = "DescribeSecret";
        let Clients {
            caller,
            secrets: client,
            ..
        } = self.clients(region);
        let out = absent_as_none(
            send(&caller, "secretsmanager", OP, || {
                client.describe_secret().secret_id(secret_id).send()
            })
            .await,
        )?;
        Ok(out.and_then(|o| {
            o.arn().map(|arn| SecretFacts {
                arn: arn.to_string(),
                kms_key_id: o.kms_key_id().filter(|k| !k.is_empty()).map(str::to_string),
            })
        }))
    }

    async fn describe_parameter(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<ParameterFacts>, AwsError> {
        const OP: &str = "DescribeParameters";
        let Clients {
            caller,
            ssm: client,
            ..
        } = self.clients(region);
        let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(name)
            .build()
            .map_err(|e| AwsError::new("ssm", OP, ErrorKind::InvalidInput, e.to_string()))?;
        let out = send(&caller, "ssm", OP, || {
            client
                .describe_parameters()
                .parameter_filters(filter.clone())
                .send()
        })
        .await?;
        Ok(out
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name))
            .map(|p| ParameterFacts {
                kind: p
                    .r#type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                key_id: p.key_id().filter(|k| !k.is_empty()).map(str::to_string),
            }))
    }

    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KeyFacts>, AwsError> {
        const OP: &str = "DescribeKey";
        let Clients {
            caller,
            kms: client,
            ..
        } = self.clients(region);
        let out = absent_as_none(
            send(&caller, "kms", OP, || {
                client.describe_key().key_id(key_id).send()
            })
            .await,
        )?;
        Ok(out.and_then(|o| {
            o.key_metadata().and_then(|m| {
                m.arn().map(|arn| KeyFacts {
                    arn: arn.to_string(),
                    // moto reports `alias/aws/*` keys as CUSTOMER; the key id tells the truth there.
                    customer_managed: m.key_manager()
                        == Some(&aws_sdk_kms::types::KeyManagerType::Customer)
                        && !key_id.starts_with("alias/aws/")
                        && !key_id.contains(":alias/aws/"),
                })
            })
        }))
    }

    async fn pull_through_cache_rules(
        &self,
        region: &str,
    ) -> Result<Vec<PullThroughRule>, AwsError> {
        const OP: &str = "DescribePullThroughCacheRules";
        let Clients { caller, ecr, .. } = self.clients(region);
        let (caller, client) = (&caller, &ecr);
        all_pages("ecr", OP, |token| async move {
            let out = send(caller, "ecr", OP, || {
                client
                    .describe_pull_through_cache_rules()
                    .set_next_token(token.clone())
                    .send()
            })
            .await?;
            let rules = out
                .pull_through_cache_rules()
                .iter()
                .filter_map(|r| r.ecr_repository_prefix())
                .map(|prefix| PullThroughRule {
                    prefix: prefix.to_string(),
                })
                .collect();
            Ok((rules, out.next_token().map(str::to_string)))
        })
        .await
    }
}
