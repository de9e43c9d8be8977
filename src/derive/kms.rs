//! "When kms:Decrypt is needed": a secret or SecureString parameter encrypted with a customer managed key needs
//! `kms:Decrypt` on the key ARN (never an alias, never `*`), conditioned on `kms:ViaService` =
//! `<service>.<R>.amazonaws.com` (`.amazonaws.com.cn` in `aws-cn`). AWS managed keys (`alias/aws/*`, or what
//! `DescribeKey` reports as AWS managed) need nothing.
//!
//! Whatever cannot be decided from the facts becomes a finding: a look-up not made (offline) or failed is
//! `UnresolvedLookup`, a missing secret, parameter or key is `ReferenceNotFound`, a key in another account is
//! `CrossAccountResource`. Not here: which secrets and parameters exist (`secrets.rs`).

use super::site::{Site, cross_account};
use super::{Fact, FindingKind, HoldScope, Lookup, Needs, Unsettled};
use crate::model::{Arn, is_account_id, is_region, partition_for_region};
use crate::policy::Permission;

/// `kms:Decrypt` for `key_id` (as the secret or parameter gives it) used by `service` in `region`; `account` is
/// the secret's or parameter's account, where a bare key id or alias lives. `what` names the secret or parameter.
pub(crate) fn decrypt(
    key_id: &str,
    service: &str,
    region: &str,
    account: &str,
    what: &str,
    site: &Site,
    needs: &mut Needs,
) {
    if is_aws_managed_alias(key_id) {
        return;
    }
    let (key_region, key_account) = match Arn::parse(key_id) {
        Ok(arn) => (arn.region, arn.account),
        Err(_) => (region.to_string(), account.to_string()),
    };
    let scope = HoldScope::Decrypt {
        region: key_region.clone(),
        account: Some(key_account.clone()),
    };
    let fact = needs.fact(Lookup::Key {
        region: key_region,
        account: key_account,
        key_id: key_id.to_string(),
    });
    let key_what = format!("KMS key `{key_id}` of {what}");
    let key = match fact {
        Some(Fact::Key(key)) => key,
        other => return unresolved(other, &key_what, scope, site, needs),
    };
    if !key.customer_managed {
        return;
    }
    if !is_key_arn(&key.arn) {
        needs.find_unresolved(
            Unsettled::Unanswered,
            Some(&site.container),
            Some(&site.field),
            format!(
                "the look-up of {key_what} gave `{}`, not a key ARN; kms:Decrypt not granted",
                key.arn
            ),
            scope,
        );
        return;
    }
    let permission = Permission::new("kms:Decrypt", key.arn.clone()).with_condition(
        "StringEquals",
        "kms:ViaService",
        [via_service(service, region)],
    );
    needs.grant(permission, &site.container, &site.field);
    if let Ok(arn) = Arn::parse(&key.arn) {
        cross_account(
            &arn.account,
            &format!("KMS key `{}`", key.arn),
            "key policy",
            site,
            needs,
        );
    }
}

/// `<service>.<region>.amazonaws.com`, or `.amazonaws.com.cn` in the China partition.
pub(crate) fn via_service(service: &str, region: &str) -> String {
    let suffix = if partition_for_region(region) == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{service}.{region}.{suffix}")
}

/// `alias/aws/…` (bare or as an alias ARN): an AWS managed key, which needs no statement.
pub(crate) fn is_aws_managed_alias(key_id: &str) -> bool {
    key_id.starts_with("alias/aws/")
        || Arn::parse(key_id)
            .is_ok_and(|a| a.service == "kms" && a.resource.starts_with("alias/aws/"))
}

/// The finding for a look-up whose answer is not the expected fact: not made, failed, not found, or unexpected.
/// Nothing is granted in its place; while the fact is unknown, removals in `scope` (what it could change) are
/// held back.
pub(crate) fn unresolved(
    fact: Option<Fact>,
    what: &str,
    scope: HoldScope,
    site: &Site,
    needs: &mut Needs,
) {
    let (container, field) = (Some(site.container.as_str()), Some(site.field.as_str()));
    let message = match fact {
        None => {
            let message = format!(
                "{what} was not looked up (offline?): whether it is encrypted with a customer managed KMS key, \
                 and so needs kms:Decrypt, is unknown; kms:Decrypt not granted"
            );
            return needs.find_unresolved(Unsettled::NotLookedUp, container, field, message, scope);
        }
        Some(Fact::NotFound) => {
            let message = format!("{what} does not exist: tasks will fail to start");
            return needs.find(FindingKind::ReferenceNotFound, container, field, message);
        }
        Some(Fact::Failed { reason }) => {
            format!("the look-up of {what} failed ({reason}); kms:Decrypt not granted")
        }
        Some(other) => format!(
            "the look-up of {what} gave an unexpected answer ({other:?}); kms:Decrypt not granted"
        ),
    };
    needs.find_unresolved(Unsettled::Unanswered, container, field, message, scope);
}

/// Whether an ARN names a KMS key (`arn:P:kms:R:A:key/<id>`).
fn is_key_arn(text: &str) -> bool {
    Arn::parse(text).is_ok_and(|a| {
        a.service == "kms"
            && is_region(&a.region)
            && is_account_id(&a.account)
            && a.resource
                .strip_prefix("key/")
                .is_some_and(|k| !k.is_empty())
    })
}
