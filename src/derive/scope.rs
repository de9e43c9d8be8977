//! What an unresolved fact could change ([`HoldScope`]): the grants that derivation would add or reshape once the
//! fact is known, so that the planner keeps exactly those while the fact stays unknown and removes everything
//! else a role no longer needs.
//!
//! A scope is as narrow as derivation itself: a pull-through-cache rule can only bring back the two import
//! actions under its own namespace of its own registry, a key only `kms:Decrypt` on keys of its Region and
//! account. Not here: deciding whether a fact is unresolved (the rule files) or what to keep (`plan`).

use serde::Serialize;

use super::ecr::PULL_THROUGH_ACTIONS;
use crate::model::Arn;
use crate::policy::Permission;

/// The grants an unresolved fact could change; removals of them are held back until it resolves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HoldScope {
    /// A registry's pull-through-cache rules (row 2): `ecr:BatchImportUpstreamImage` and `ecr:CreateRepository`
    /// on the repositories under `<prefix>/` of that registry.
    PullThroughCache {
        /// The registry's partition.
        partition: String,
        /// The registry's Region.
        region: String,
        /// The registry's account.
        account: String,
        /// The first path segment of the image's repository.
        prefix: String,
    },
    /// A secret's facts (its full ARN and its key): `secretsmanager:GetSecretValue` on the secret, by full ARN or
    /// by name (`-??????`), and `kms:Decrypt` on keys of its Region (a secret's key is in its Region).
    Secret {
        /// The secret's ARN as the task definition gives it.
        arn: String,
        /// The secret's Region.
        region: String,
    },
    /// A parameter's or a key's facts: `kms:Decrypt` on keys of one Region, of one account when known.
    Decrypt {
        /// The key's Region.
        region: String,
        /// The key's account, when known (a parameter's key may be in any account).
        account: Option<String>,
    },
    /// The secret named inside a domainless gMSA CredSpec file, which is never read: `secretsmanager:GetSecretValue`
    /// and `kms:Decrypt` on any resource.
    CredSpecSecret,
}

const GET_SECRET_VALUE: &str = "secretsmanager:GetSecretValue";
const DECRYPT: &str = "kms:Decrypt";

impl HoldScope {
    /// Whether resolving the fact could make a role need `permission` (whatever its conditions).
    pub fn covers(&self, permission: &Permission) -> bool {
        let action = |name: &str| permission.action.eq_ignore_ascii_case(name);
        match self {
            HoldScope::PullThroughCache {
                partition,
                region,
                account,
                prefix,
            } => {
                let namespace =
                    format!("arn:{partition}:ecr:{region}:{account}:repository/{prefix}/");
                PULL_THROUGH_ACTIONS.iter().any(|a| action(a))
                    && permission.resource.starts_with(&namespace)
            }
            HoldScope::Secret { arn, region } => {
                let secret = action(GET_SECRET_VALUE)
                    && (permission.resource == *arn
                        || permission.resource == format!("{arn}-??????"));
                secret || (action(DECRYPT) && is_key_in(&permission.resource, region, None))
            }
            HoldScope::Decrypt { region, account } => {
                action(DECRYPT) && is_key_in(&permission.resource, region, account.as_deref())
            }
            HoldScope::CredSpecSecret => action(GET_SECRET_VALUE) || action(DECRYPT),
        }
    }

    /// What the scope holds back, for plans and logs.
    pub fn describe(&self) -> String {
        match self {
            HoldScope::PullThroughCache {
                region,
                account,
                prefix,
                ..
            } => format!(
                "ecr:BatchImportUpstreamImage and ecr:CreateRepository on repositories `{prefix}/…` of registry \
                 {account}/{region}"
            ),
            HoldScope::Secret { arn, region } => format!(
                "secretsmanager:GetSecretValue on `{arn}` and kms:Decrypt on keys in {region}"
            ),
            HoldScope::Decrypt {
                region,
                account: Some(account),
            } => format!("kms:Decrypt on keys of account {account} in {region}"),
            HoldScope::Decrypt {
                region,
                account: None,
            } => format!("kms:Decrypt on keys in {region}"),
            HoldScope::CredSpecSecret => {
                "secretsmanager:GetSecretValue and kms:Decrypt on any resource".to_string()
            }
        }
    }
}

/// Whether `resource` is a KMS key ARN in `region` (and `account`, when given).
fn is_key_in(resource: &str, region: &str, account: Option<&str>) -> bool {
    Arn::parse(resource).is_ok_and(|arn| {
        arn.service == "kms"
            && arn.region == region
            && account.is_none_or(|a| arn.account == a)
            && arn.resource.starts_with("key/")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull_through() -> HoldScope {
        HoldScope::PullThroughCache {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            prefix: "docker-hub".into(),
        }
    }

    #[test]
    fn a_pull_through_scope_covers_only_the_import_actions_in_its_namespace() {
        let scope = pull_through();
        let inside = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/*";
        assert!(scope.covers(&Permission::new("ecr:BatchImportUpstreamImage", inside)));
        assert!(scope.covers(&Permission::new("ecr:createrepository", inside)));
        assert!(!scope.covers(&Permission::new("ecr:BatchGetImage", inside)));
        for outside in [
            "arn:aws:ecr:us-east-1:123456789012:repository/quay/*",
            "arn:aws:ecr:us-east-1:123456789012:repository/docker-hubx/*",
            "arn:aws:ecr:us-west-2:123456789012:repository/docker-hub/*",
            "arn:aws:ecr:us-east-1:222222222222:repository/docker-hub/*",
            "*",
        ] {
            assert!(
                !scope.covers(&Permission::new("ecr:BatchImportUpstreamImage", outside)),
                "{outside}"
            );
        }
    }

    #[test]
    fn key_and_secret_scopes_cover_decrypt_on_keys_of_their_region() {
        let key = "arn:aws:kms:us-east-1:123456789012:key/1111";
        let other_account = "arn:aws:kms:us-east-1:222222222222:key/2222";
        let other_region = "arn:aws:kms:eu-west-1:123456789012:key/3333";
        let decrypt = |r: &str| Permission::new("kms:Decrypt", r);
        let of_account = HoldScope::Decrypt {
            region: "us-east-1".into(),
            account: Some("123456789012".into()),
        };
        assert!(of_account.covers(&decrypt(key)));
        assert!(!of_account.covers(&decrypt(other_account)));
        assert!(!of_account.covers(&decrypt(other_region)));
        assert!(!of_account.covers(&decrypt("*")));
        assert!(!of_account.covers(&Permission::new("kms:Encrypt", key)));
        let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db";
        let secret = HoldScope::Secret {
            arn: secret_arn.into(),
            region: "us-east-1".into(),
        };
        assert!(secret.covers(&decrypt(other_account)));
        assert!(!secret.covers(&decrypt(other_region)));
        let get = |r: &str| Permission::new("secretsmanager:GetSecretValue", r);
        assert!(secret.covers(&get(secret_arn)));
        assert!(secret.covers(&get(&format!("{secret_arn}-??????"))));
        assert!(!secret.covers(&get(&format!("{secret_arn}x"))));
        assert!(!secret.covers(&Permission::new("ssm:GetParameters", secret_arn)));
        assert!(
            HoldScope::CredSpecSecret.covers(&get("arn:aws:secretsmanager:eu-west-1:1:secret:x"))
        );
        assert!(!HoldScope::CredSpecSecret.covers(&Permission::new("s3:GetObject", "*")));
    }
}
