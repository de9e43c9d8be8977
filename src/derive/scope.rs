//! What an unresolved fact could change ([`HoldScope`]): the grants that derivation would add or reshape once the
//! fact is known, so that the planner keeps exactly those while the fact stays unknown and removes everything
//! else a role no longer needs.
//!
//! A scope is as narrow as derivation itself: a pull-through-cache rule can only bring back the two import
//! actions under its own namespace of its own registry, a key only `kms:Decrypt` on keys of its Region and
//! account. A grant is matched as IAM patterns (`*`, `?`, any case of action), so a wider grant that could grant
//! what the fact brings back (`kms:Decrypt` on `*`, `ecr:*`) is covered too. Not here: deciding whether a fact is unresolved (the rule files) or what to keep (`plan`).

use serde::Serialize;

use super::ecr::PULL_THROUGH_ACTIONS;
use crate::policy::{Permission, patterns_overlap};

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
    /// Whether resolving the fact could make a role need `permission` (whatever its conditions): whether its
    /// action and resource, as patterns (a human may have written `kms:Decrypt` on `*` or `ecr:*`), could grant
    /// some action on some resource that the fact could bring back.
    pub fn covers(&self, permission: &Permission) -> bool {
        let action = permission.action.to_ascii_lowercase();
        self.reach().iter().any(|(actions, resource)| {
            actions
                .iter()
                .any(|a| patterns_overlap(&action, &a.to_ascii_lowercase()))
                && patterns_overlap(&permission.resource, resource)
        })
    }

    /// What the fact could bring back: actions and a resource pattern each.
    fn reach(&self) -> Vec<(&'static [&'static str], String)> {
        match self {
            HoldScope::PullThroughCache {
                partition,
                region,
                account,
                prefix,
            } => vec![(
                &PULL_THROUGH_ACTIONS,
                format!("arn:{partition}:ecr:{region}:{account}:repository/{prefix}/*"),
            )],
            HoldScope::Secret { arn, region } => vec![
                (&[GET_SECRET_VALUE], arn.clone()),
                (&[GET_SECRET_VALUE], format!("{arn}-??????")),
                (&[DECRYPT], key_pattern(region, None)),
            ],
            HoldScope::Decrypt { region, account } => {
                vec![(&[DECRYPT], key_pattern(region, account.as_deref()))]
            }
            HoldScope::CredSpecSecret => vec![(&[GET_SECRET_VALUE, DECRYPT], "*".to_string())],
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

/// The ARNs of the keys in `region` (of `account`, when given), in any partition.
fn key_pattern(region: &str, account: Option<&str>) -> String {
    format!("arn:*:kms:{region}:{}:key/*", account.unwrap_or("*"))
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

    #[test]
    fn a_wildcard_grant_is_covered_when_it_could_grant_what_the_fact_could_bring_back() {
        let decrypt = |r: &str| Permission::new("kms:Decrypt", r);
        let key = HoldScope::Decrypt {
            region: "us-east-1".into(),
            account: Some("123456789012".into()),
        };
        for covered in [
            decrypt("*"),
            decrypt("arn:aws:kms:*:123456789012:key/*"),
            decrypt("arn:aws:kms:us-east-1:123456789012:*"),
            Permission::new("kms:*", "arn:aws:kms:us-east-1:123456789012:key/1111"),
            Permission::new("KMS:Decr*", "*"),
            Permission::new("*", "*"),
        ] {
            assert!(key.covers(&covered), "{covered:?}");
        }
        for outside in [
            decrypt("arn:aws:kms:eu-west-1:*:key/*"),
            decrypt("arn:aws:kms:us-east-1:222222222222:key/*"),
            Permission::new("kms:Encrypt*", "*"),
            Permission::new("ssm:*", "*"),
        ] {
            assert!(!key.covers(&outside), "{outside:?}");
        }
        let cache = pull_through();
        for covered in [
            Permission::new("ecr:BatchImportUpstreamImage", "*"),
            Permission::new("ecr:*", "arn:aws:ecr:us-east-1:123456789012:repository/*"),
            Permission::new(
                "ecr:Create*",
                "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub*",
            ),
            Permission::new(
                "ecr:BatchImportUpstreamImage",
                "arn:aws:ecr:*:*:repository/docker-hub/library/nginx",
            ),
        ] {
            assert!(cache.covers(&covered), "{covered:?}");
        }
        for outside in [
            Permission::new("ecr:BatchGet*", "*"),
            Permission::new(
                "ecr:*",
                "arn:aws:ecr:us-east-1:123456789012:repository/quay/*",
            ),
            Permission::new("ecr:*", "arn:aws:ecr:us-west-2:123456789012:repository/*"),
        ] {
            assert!(!cache.covers(&outside), "{outside:?}");
        }
        let secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db";
        let secret = HoldScope::Secret {
            arn: secret_arn.into(),
            region: "us-east-1".into(),
        };
        for covered in [
            Permission::new("secretsmanager:GetSecretValue", "*"),
            Permission::new("secretsmanager:*", format!("{secret_arn}*")),
            Permission::new(
                "secretsmanager:GetSecretValue",
                format!("{secret_arn}-AbC123"),
            ),
            decrypt("*"),
        ] {
            assert!(secret.covers(&covered), "{covered:?}");
        }
        let other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-*";
        assert!(!secret.covers(&Permission::new("secretsmanager:GetSecretValue", other)));
        assert!(HoldScope::CredSpecSecret.covers(&Permission::new("secretsmanager:*", "*")));
    }
}
