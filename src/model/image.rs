//! Container image references, and recognising the private Amazon ECR hosts among them.
//!
//! It answers one question for the derivation rules: is this image in a private ECR registry, and if so in which
//! account, Region and repository? Every other registry (Docker Hub, `public.ecr.aws`, `ghcr.io`, a private
//! `host:5000`) is reported as `Other`. It does not decide permissions.

use super::{is_account_id, is_region, partition_for_region};

/// A container image, split into what the derivation rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A private ECR image.
    Ecr(EcrImage),
    /// Any other registry: no execution-role permission needed to pull it (unless repository credentials are set).
    Other,
}

/// A private ECR image: `A.dkr.ecr.R.amazonaws.com[.cn]/repo[:tag][@digest]` and its FIPS and dual-stack forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    /// The registry's account (from the host, not from the task definition).
    pub account: String,
    /// The registry's Region (from the host).
    pub region: String,
    /// The repository path without tag or digest; may contain `/`.
    pub repository: String,
}

impl EcrImage {
    /// The partition of the registry's Region.
    pub fn partition(&self) -> &'static str {
        partition_for_region(&self.region)
    }

    /// The repository's ARN: `arn:P:ecr:R:A:repository/<path>`.
    pub fn repository_arn(&self) -> String {
        format!(
            "arn:{}:ecr:{}:{}:repository/{}",
            self.partition(),
            self.region,
            self.account,
            self.repository
        )
    }
}

/// Why an image that names an ECR host cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The host is an ECR host but the account is not 12 digits.
    #[error("ECR image `{image}` has no valid 12-digit account id in its host")]
    BadAccount {
        /// The image text.
        image: String,
    },
    /// The host is an ECR host but there is no repository path.
    #[error("ECR image `{image}` names no repository")]
    NoRepository {
        /// The image text.
        image: String,
    },
    /// The repository path holds characters ECR does not allow.
    #[error("ECR image `{image}` has an invalid repository name `{repository}`")]
    BadRepository {
        /// The image text.
        image: String,
        /// The repository part.
        repository: String,
    },
}

impl ImageRef {
    /// Classify an image reference. `Err` only for images whose host is ECR-shaped but unusable, so that a typo
    /// in a private image is reported instead of silently needing nothing.
    pub fn parse(image: &str) -> Result<ImageRef, ImageError> {
        let image = image.trim();
        let Some((host, rest)) = image.split_once('/') else {
            return Ok(ImageRef::Other);
        };
        let host = host.to_ascii_lowercase();
        let Some((account, region)) = ecr_host(&host) else {
            return Ok(ImageRef::Other);
        };
        if !is_account_id(account) {
            return Err(ImageError::BadAccount {
                image: image.to_string(),
            });
        }
        let repository = repository_path(rest);
        if repository.is_empty() {
            return Err(ImageError::NoRepository {
                image: image.to_string(),
            });
        }
        if !is_valid_repository(repository) {
            return Err(ImageError::BadRepository {
                image: image.to_string(),
                repository: repository.to_string(),
            });
        }
        Ok(ImageRef::Ecr(EcrImage {
            account: account.to_string(),
            region: region.to_string(),
            repository: repository.to_string(),
        }))
    }
}

/// `(account, region)` when `host` is a private ECR registry host, in any of its documented forms.
fn ecr_host(host: &str) -> Option<(&str, &str)> {
    // Strip the DNS suffix first: it decides the partition-specific forms.
    let stem = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"))
        .or_else(|| host.strip_suffix(".on.amazonwebservices.com.cn"))
        .or_else(|| host.strip_suffix(".on.aws"))?;
    // stem = "<account>.<service>.<region>"
    let (account, rest) = stem.split_once('.')?;
    let (service, region) = rest.split_once('.')?;
    let is_ecr = matches!(
        service,
        "dkr.ecr" | "dkr.ecr-fips" | "dkr-ecr" | "dkr-ecr-fips"
    );
    // "dkr.ecr.R" splits as service "dkr", region "ecr.R": handle the dotted service names explicitly.
    if is_ecr && is_region(region) {
        return Some((account, region));
    }
    let rest = rest.strip_prefix("dkr.")?;
    let (service, region) = rest.split_once('.')?;
    if matches!(service, "ecr" | "ecr-fips") && is_region(region) {
        return Some((account, region));
    }
    None
}

/// The repository path of `path[:tag][@digest]`.
fn repository_path(rest: &str) -> &str {
    let without_digest = rest.split('@').next().unwrap_or(rest);
    match without_digest.rfind(':') {
        // A tag follows the last `:` only when no `/` comes after it.
        Some(i) if !without_digest[i..].contains('/') => &without_digest[..i],
        _ => without_digest,
    }
}

/// ECR repository names: lowercase letters, digits, `.`, `_`, `-` and `/` separating non-empty components.
fn is_valid_repository(repository: &str) -> bool {
    repository.len() <= 256
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecr(account: &str, region: &str, repository: &str) -> ImageRef {
        ImageRef::Ecr(EcrImage {
            account: account.into(),
            region: region.into(),
            repository: repository.into(),
        })
    }

    #[test]
    fn ecr_hosts_in_every_form_are_recognised() {
        let digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
        let cases = [
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/web",
                ecr("123456789012", "us-east-1", "web"),
            ),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.2",
                ecr("123456789012", "us-east-1", "web"),
            ),
            (
                &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web@{digest}"),
                ecr("123456789012", "us-east-1", "web"),
            ),
            (
                &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.2@{digest}"),
                ecr("123456789012", "us-east-1", "web"),
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/svc/api:latest",
                ecr("123456789012", "eu-west-1", "team/svc/api"),
            ),
            (
                "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/app:v1",
                ecr("210987654321", "cn-north-1", "app"),
            ),
            (
                "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app",
                ecr("123456789012", "us-gov-west-1", "app"),
            ),
            (
                "123456789012.dkr-ecr.eu-central-1.on.aws/app:1",
                ecr("123456789012", "eu-central-1", "app"),
            ),
            (
                "123456789012.dkr-ecr-fips.us-east-2.on.aws/app:1",
                ecr("123456789012", "us-east-2", "app"),
            ),
            (
                "123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM/app",
                ecr("123456789012", "us-east-1", "app"),
            ),
        ];
        for (image, want) in cases {
            assert_eq!(ImageRef::parse(image), Ok(want), "{image}");
        }
    }

    #[test]
    fn other_registries_need_nothing() {
        for image in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "docker.io/library/nginx",
            "public.ecr.aws/aws-observability/aws-otel-collector:latest",
            "ghcr.io/org/app:1",
            "registry.local:5000/app:1",
            "mcr.microsoft.com/windows/servercore:ltsc2019",
            "",
        ] {
            assert_eq!(ImageRef::parse(image), Ok(ImageRef::Other), "{image}");
        }
    }

    #[test]
    fn ecr_shaped_hosts_with_bad_parts_are_errors() {
        assert!(matches!(
            ImageRef::parse("aws_account_id.dkr.ecr.us-west-2.amazonaws.com/hello"),
            Err(ImageError::BadAccount { .. })
        ));
        assert!(matches!(
            ImageRef::parse("${ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/hello"),
            Err(ImageError::BadAccount { .. })
        ));
        assert!(matches!(
            ImageRef::parse("123456789012.dkr.ecr.us-west-2.amazonaws.com/"),
            Err(ImageError::NoRepository { .. })
        ));
        assert!(matches!(
            ImageRef::parse("123456789012.dkr.ecr.us-west-2.amazonaws.com/App:1"),
            Err(ImageError::BadRepository { .. })
        ));
    }

    #[test]
    fn repository_arn_uses_the_partition_of_the_host_region() {
        let ImageRef::Ecr(image) =
            ImageRef::parse("210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/a/b:1").unwrap()
        else {
            panic!("not ECR");
        };
        assert_eq!(
            image.repository_arn(),
            "arn:aws-cn:ecr:cn-north-1:210987654321:repository/a/b"
        );
    }
}
