//! The JSON forms of a finding and of a needed permission with its reasons, shared by `plan --output json` and
//! `derive --output json`. They borrow what they print and serialise directly (the derive report streams them),
//! with every object's keys sorted: the order a `serde_json::Value` keeps, which both reports have always printed.

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::derive::{Finding, HoldScope, Reason, Requirement};
use crate::policy::Permission;

/// A finding: `{ "blocking", "container", "field", "holds_back", "kind", "message", "task_definition" }`.
pub struct FindingJson<'a>(pub &'a Finding);

impl Serialize for FindingJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        let mut map = serializer.serialize_map(Some(7))?;
        map.serialize_entry("blocking", &f.kind.is_blocking())?;
        map.serialize_entry("container", &f.container)?;
        map.serialize_entry("field", &f.field)?;
        map.serialize_entry("holds_back", &f.holds.as_ref().map(HoldsBackJson))?;
        map.serialize_entry("kind", f.kind.as_str())?;
        map.serialize_entry("message", &f.message)?;
        map.serialize_entry("task_definition", &f.task_definition)?;
        map.end()
    }
}

/// What a finding holds back: the scope's own serialisation (a tagged enum, `kind` the variant) with its keys
/// sorted.
struct HoldsBackJson<'a>(&'a HoldScope);

impl Serialize for HoldsBackJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            HoldScope::PullThroughCache {
                partition,
                region,
                account,
                prefix,
            } => {
                map.serialize_entry("account", account)?;
                map.serialize_entry("kind", "pull_through_cache")?;
                map.serialize_entry("partition", partition)?;
                map.serialize_entry("prefix", prefix)?;
                map.serialize_entry("region", region)?;
            }
            HoldScope::Secret { arn, region } => {
                map.serialize_entry("arn", arn)?;
                map.serialize_entry("kind", "secret")?;
                map.serialize_entry("region", region)?;
            }
            HoldScope::Decrypt { region, account } => {
                map.serialize_entry("account", account)?;
                map.serialize_entry("kind", "decrypt")?;
                map.serialize_entry("region", region)?;
            }
            HoldScope::CredSpecSecret => map.serialize_entry("kind", "cred_spec_secret")?,
        }
        map.end()
    }
}

/// A needed permission and why: `{ "action", "conditions", "reasons": [ { "container", "field",
/// "task_definition" } ], "resource" }`.
pub struct RequirementJson<'a> {
    /// What is needed.
    pub permission: &'a Permission,
    /// Why.
    pub reasons: &'a [Reason],
}

impl<'a> From<&'a Requirement> for RequirementJson<'a> {
    fn from(requirement: &'a Requirement) -> Self {
        RequirementJson {
            permission: &requirement.permission,
            reasons: &requirement.reasons,
        }
    }
}

impl Serialize for RequirementJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let permission = self.permission;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("action", &permission.action)?;
        map.serialize_entry("conditions", &permission.conditions)?;
        map.serialize_entry("reasons", &Reasons(self.reasons))?;
        map.serialize_entry("resource", &permission.resource)?;
        map.end()
    }
}

/// The reasons of a [`RequirementJson`].
struct Reasons<'a>(&'a [Reason]);

impl Serialize for Reasons<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ReasonJson))
    }
}

/// One reason: `{ "container", "field", "task_definition" }`.
struct ReasonJson<'a>(&'a Reason);

impl Serialize for ReasonJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let reason = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("container", &*reason.container)?;
        map.serialize_entry("field", &*reason.field)?;
        map.serialize_entry("task_definition", &*reason.task_definition)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_finding_holds_back_is_the_scopes_own_serialisation_with_sorted_keys() {
        let s = |text: &str| text.to_string();
        let scopes = [
            HoldScope::PullThroughCache {
                partition: s("aws"),
                region: s("us-east-1"),
                account: s("123456789012"),
                prefix: s("hub"),
            },
            HoldScope::Secret {
                arn: s("arn:aws:secretsmanager:us-east-1:123456789012:secret:a"),
                region: s("us-east-1"),
            },
            HoldScope::Decrypt {
                region: s("us-east-1"),
                account: None,
            },
            HoldScope::Decrypt {
                region: s("us-east-1"),
                account: Some(s("123456789012")),
            },
            HoldScope::CredSpecSecret,
        ];
        for scope in scopes {
            let direct = serde_json::to_string_pretty(&HoldsBackJson(&scope)).unwrap();
            let via_value = serde_json::to_value(&scope).unwrap();
            assert_eq!(direct, serde_json::to_string_pretty(&via_value).unwrap());
        }
    }
}
