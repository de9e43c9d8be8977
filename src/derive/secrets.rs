//! Rows 4, 5, 6, 6b and 7: secrets the ECS agent fetches with the execution role. Private registry credentials
//! (`repositoryCredentials.credentialsParameter`), `secrets[].valueFrom` and `logConfiguration.secretOptions[]`
//! each become `secretsmanager:GetSecretValue` on the secret or `ssm:GetParameters` on the parameter (both for a
//! `/aws/reference/secretsmanager/…` parameter), plus `kms:Decrypt` when a look-up shows a customer managed key
//! (see `kms.rs`).
//!
//! The secret's IAM resource: the full ARN when the id ends in the six-character random suffix, otherwise
//! `<id>-??????` (never wider). An id that ends like a suffix may be a name that itself ends that way; the
//! `DescribeSecret` look-up settles it, and without it (offline) the id is taken as the full ARN, which is what it
//! is in practice (ARNs copied from the console). Never a `secretsmanager:VersionStage` condition, never the
//! `:json-key:…` suffix in the resource. Not here: parsing (`references.rs`), credential specs (`credspec.rs`), where a reference was
//! found and the findings about it (`site.rs`).

use super::references::{
    ParameterRef, Place, SecretRef, ValueFrom, has_random_suffix, parse_credentials_parameter,
    parse_value_from,
};
use super::site::{Site, cross_account, log_configuration_path, report};
use super::{Fact, FindingKind, HoldScope, Lookup, Needs, kms};
use crate::model::ContainerDefinition;
use crate::policy::Permission;

/// Rows 4, 5, 6, 6b and 7 for one container.
pub(crate) fn container_secrets(container: &ContainerDefinition, needs: &mut Needs) {
    let place = needs.place();
    if let Some(parameter) = &container.repository_credentials {
        let site = Site::of(container, "repositoryCredentials.credentialsParameter");
        match parse_credentials_parameter(parameter, place.as_ref()) {
            Ok(secret) => grant_secret(&secret, &site, needs),
            Err(err) => report(err, &site, needs),
        }
    }
    let log_options = container.log_configuration.iter().flat_map(|log| {
        let base = log_configuration_path(log.was_list);
        log.secret_options.iter().map(move |entry| {
            let field = ValueFromField::SecretOption(base, entry.index);
            (field, entry.value_from.as_deref())
        })
    });
    let entries = container
        .secrets
        .iter()
        .map(|entry| {
            let field = ValueFromField::Secret(entry.index);
            (field, entry.value_from.as_deref())
        })
        .chain(log_options);
    for (field, value) in entries {
        value_from(container, value, field, place.as_ref(), needs);
    }
}

/// Where a `valueFrom` is in its container, written out only as the site's field path.
#[derive(Clone, Copy)]
enum ValueFromField {
    /// `secrets[i].valueFrom`.
    Secret(usize),
    /// `<logConfiguration path>.secretOptions[i].valueFrom`.
    SecretOption(&'static str, usize),
}

impl std::fmt::Display for ValueFromField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueFromField::Secret(index) => write!(f, "secrets[{index}].valueFrom"),
            ValueFromField::SecretOption(base, index) => {
                write!(f, "{base}.secretOptions[{index}].valueFrom")
            }
        }
    }
}

fn value_from(
    container: &ContainerDefinition,
    value: Option<&str>,
    field: ValueFromField,
    place: Option<&Place>,
    needs: &mut Needs,
) {
    let site = Site::of(container, field);
    let Some(value) = value else {
        needs.find(
            FindingKind::InvalidReference,
            Some(&site.container),
            Some(&site.field),
            "valueFrom is empty; tasks will fail to start",
        );
        return;
    };
    match parse_value_from(value, place) {
        Ok(ValueFrom::Secret(secret)) => grant_secret(&secret, &site, needs),
        Ok(ValueFrom::Parameter(parameter)) => grant_parameter(&parameter, &site, needs),
        Err(err) => report(err, &site, needs),
    }
}

/// `secretsmanager:GetSecretValue` on the secret, and `kms:Decrypt` when it uses a customer managed key.
pub(crate) fn grant_secret(secret: &SecretRef, site: &Site, needs: &mut Needs) {
    let arn = secret.arn();
    let fact = needs.fact(Lookup::Secret {
        region: secret.region.clone(),
        account: secret.account.clone(),
        secret_id: arn.clone(),
    });
    let resource = secret_resource(secret, &arn, fact.as_ref());
    needs.grant(
        Permission::new("secretsmanager:GetSecretValue", resource),
        &site.container,
        &site.field,
    );
    let what = format!("secret `{arn}`");
    cross_account(
        &secret.account,
        &what,
        "resource policy (and the key policy of the customer managed key it must use)",
        site,
        needs,
    );
    match fact {
        Some(Fact::Secret(facts)) => {
            if let Some(key_id) = facts.kms_key_id {
                kms::decrypt(
                    &key_id,
                    "secretsmanager",
                    &secret.region,
                    &secret.account,
                    &what,
                    site,
                    needs,
                );
            }
        }
        other => {
            let scope = HoldScope::Secret {
                arn,
                region: secret.region.clone(),
            };
            kms::unresolved(other, &what, scope, site, needs)
        }
    }
}

/// The IAM resource of a secret whose ARN (as written) is `arn` (see the module doc for the ambiguous case).
fn secret_resource(secret: &SecretRef, arn: &str, fact: Option<&Fact>) -> String {
    if let Some(Fact::Secret(facts)) = fact {
        if facts.arn == arn {
            // DescribeSecret confirms the id is the full ARN, suffix included.
            return arn.to_string();
        }
        if facts
            .arn
            .strip_prefix(arn)
            .is_some_and(|rest| rest.len() == 7 && has_random_suffix(&facts.arn))
        {
            // The id is the name: the secret's own suffix follows it.
            return format!("{arn}-??????");
        }
    }
    if secret.has_random_suffix() {
        arn.to_string()
    } else {
        format!("{arn}-??????")
    }
}

/// `ssm:GetParameters` on the parameter, and `kms:Decrypt` when it is a SecureString under a customer managed key;
/// for `/aws/reference/secretsmanager/<secret>` also the secret itself.
pub(crate) fn grant_parameter(parameter: &ParameterRef, site: &Site, needs: &mut Needs) {
    needs.grant(
        Permission::new("ssm:GetParameters", parameter.arn()),
        &site.container,
        &site.field,
    );
    if let Some(secret) = parameter.referenced_secret() {
        // A reference parameter is not stored in Parameter Store: the secret's facts decide kms:Decrypt.
        grant_secret(&secret, site, needs);
        return;
    }
    let what = format!("parameter `{}`", parameter.arn());
    cross_account(&parameter.account, &what, "sharing (AWS RAM)", site, needs);
    let fact = needs.fact(Lookup::Parameter {
        region: parameter.region.clone(),
        account: parameter.account.clone(),
        name: parameter.name.clone(),
    });
    match fact {
        Some(Fact::Parameter(facts)) => {
            if facts.kind == "SecureString" {
                let key_id = facts.key_id.unwrap_or_else(|| "alias/aws/ssm".to_string());
                kms::decrypt(
                    &key_id,
                    "ssm",
                    &parameter.region,
                    &parameter.account,
                    &what,
                    site,
                    needs,
                );
            }
        }
        other => {
            let scope = HoldScope::Decrypt {
                region: parameter.region.clone(),
                account: None,
            };
            kms::unresolved(other, &what, scope, site, needs)
        }
    }
}
