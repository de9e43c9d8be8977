//! Our own types for the things `execrole` reasons about: ARNs and partitions, container image references, task
//! definitions as the derivation rules read them, the key of a reconcile (`RoleKey`), and the one check of each
//! AWS identifier the crate validates (account id, Region, SQS queue URL).
//!
//! This module owns parsing of those values from text and JSON; it knows nothing of IAM policies (see `policy`),
//! of which permission a field needs (see `derive`), or of the AWS SDK (see `aws`). It is pure and synchronous.

mod arn;
mod image;
mod packed;
mod queue_url;
mod task_definition;

pub use arn::{Arn, ArnError, partition_for_region};
pub use image::{EcrImage, ImageError, ImageRef};
pub use packed::PackedTaskDefinition;
pub use queue_url::{queue_account, queue_region};
pub use task_definition::{
    ContainerDefinition, EnvironmentFile, FirelensConfiguration, LogConfiguration,
    MAX_TASK_DEFINITION_BYTES, Options, SecretEntry, TaskDefinition, TaskDefinitionError,
};

use std::fmt;

/// The key of one reconcile: an execution role, named by its account and role name.
///
/// IAM role names are unique per account (the path is not part of the identity), so the pair is the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RoleKey {
    /// The 12-digit account id that owns the role.
    pub account: String,
    /// The role name (the last segment of the role ARN, without its path).
    pub name: String,
}

impl RoleKey {
    /// The role key named by an IAM role ARN (`arn:P:iam::A:role[/path]/name`), or `None` when the text is not one.
    pub fn from_role_arn(text: &str) -> Option<RoleKey> {
        let arn = Arn::parse(text).ok()?;
        if arn.service != "iam" || !is_account_id(&arn.account) {
            return None;
        }
        let rest = arn.resource.strip_prefix("role/")?;
        let name = rest.rsplit('/').next()?;
        if name.is_empty() {
            return None;
        }
        Some(RoleKey {
            account: arn.account,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for RoleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.name)
    }
}

/// Whether `text` is a 12-digit AWS account id.
pub fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `text` is an AWS Region name (`us-east-1`, `cn-north-1`, `us-gov-west-1`, `us-isob-east-1`): at most 32
/// characters, at least three `-`-separated parts of lowercase letters and digits, the last one a number. The one
/// Region check of the crate (config, events, image and ARN parsing all use it).
pub fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    text.len() <= 32
        && parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `text` still holds an unresolved template placeholder (`${…}`, `{{…}}`, `<…>`), as copied from a
/// deployment tool's template instead of a rendered value.
pub fn has_placeholder(text: &str) -> bool {
    text.contains("${") || text.contains("{{") || (text.contains('<') && text.contains('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_key_comes_from_the_last_path_segment() {
        let cases = [
            (
                "arn:aws:iam::123456789012:role/app-exec",
                Some(("123456789012", "app-exec")),
            ),
            (
                "arn:aws:iam::123456789012:role/ecs/team/app-exec",
                Some(("123456789012", "app-exec")),
            ),
            (
                "arn:aws-cn:iam::123456789012:role/x",
                Some(("123456789012", "x")),
            ),
            ("arn:aws:iam::123456789012:user/bob", None),
            ("arn:aws:iam::aws_account_id:role/x", None),
            ("arn:aws:iam::123456789012:role/", None),
            ("ecsTaskExecutionRole", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = RoleKey::from_role_arn(text);
            let want = want.map(|(a, n)| RoleKey {
                account: a.into(),
                name: n.into(),
            });
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn regions_are_real_region_names() {
        for text in [
            "us-east-1",
            "eu-west-1",
            "cn-north-1",
            "us-gov-west-1",
            "us-isob-east-1",
            "ap-southeast-2",
        ] {
            assert!(is_region(text), "{text}");
        }
        for text in [
            "",
            "eu-west",
            "EU West",
            "eu-west-x",
            "eu--1",
            "local",
            "us-east-1-",
            "a-very-long-name-that-is-not-a-region-1",
        ] {
            assert!(!is_region(text), "{text}");
        }
    }

    #[test]
    fn placeholders_are_recognised() {
        for text in [
            "${AWS_ACCOUNT_ID}",
            "{{ must_env `X` }}",
            "<aws_account_id>",
        ] {
            assert!(has_placeholder(text), "{text}");
        }
        for text in ["123456789012", "arn:aws:logs:us-east-1:1:log-group:/a:*"] {
            assert!(!has_placeholder(text), "{text}");
        }
    }
}
