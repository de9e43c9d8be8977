//! Amazon Resource Names: parsing `arn:partition:service:region:account:resource` and the partition that a Region
//! belongs to. It does not validate service-specific resource grammars; the derivation rules do that.

use std::fmt;

/// A parsed ARN. The resource part keeps any `:` and `/` it contains.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arn {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// The service namespace, e.g. `ecs`.
    pub service: String,
    /// The Region, empty for global services.
    pub region: String,
    /// The account id, empty for some resources (S3 objects).
    pub account: String,
    /// Everything after the fifth `:`.
    pub resource: String,
}

/// Why a text is not an ARN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// The text does not start with `arn:`.
    #[error("`{0}` is not an ARN (it does not start with `arn:`)")]
    NotAnArn(String),
    /// Fewer than six `:`-separated parts.
    #[error("`{0}` is not an ARN (it needs six `:`-separated parts)")]
    TooFewParts(String),
    /// Partition, service or resource is empty.
    #[error("`{0}` is not an ARN (partition, service and resource must not be empty)")]
    EmptyPart(String),
}

impl Arn {
    /// Parse an ARN; the six parts must be present and partition, service and resource non-empty.
    pub fn parse(text: &str) -> Result<Arn, ArnError> {
        if !text.starts_with("arn:") {
            return Err(ArnError::NotAnArn(text.to_string()));
        }
        let mut parts = text.splitn(6, ':');
        let _arn = parts.next();
        let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ArnError::TooFewParts(text.to_string()));
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err(ArnError::EmptyPart(text.to_string()));
        }
        Ok(Arn {
            partition: partition.to_string(),
            service: service.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource: resource.to_string(),
        })
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

/// The partition a Region belongs to: `cn-*` → `aws-cn`, `us-gov-*` → `aws-us-gov`, the ISO Regions to theirs,
/// everything else `aws`.
pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_keeps_colons_and_slashes_in_the_resource() {
        let arn = Arn::parse(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pass-AbCdEf:password::",
        )
        .unwrap();
        assert_eq!(arn.partition, "aws");
        assert_eq!(arn.service, "secretsmanager");
        assert_eq!(arn.region, "us-east-1");
        assert_eq!(arn.account, "123456789012");
        assert_eq!(arn.resource, "secret:db/pass-AbCdEf:password::");
        assert_eq!(
            arn.to_string(),
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pass-AbCdEf:password::"
        );
    }

    #[test]
    fn malformed_arns_are_rejected_with_the_reason() {
        assert!(matches!(Arn::parse("foo"), Err(ArnError::NotAnArn(_))));
        assert!(matches!(
            Arn::parse("arn:aws:s3"),
            Err(ArnError::TooFewParts(_))
        ));
        assert!(matches!(
            Arn::parse("arn::s3:::"),
            Err(ArnError::EmptyPart(_))
        ));
    }

    #[test]
    fn partition_follows_the_region() {
        let cases = [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
        ];
        for (region, partition) in cases {
            assert_eq!(partition_for_region(region), partition, "{region}");
        }
    }
}
