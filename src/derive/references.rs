//! The grammars of secret references, as the ECS agent reads them: Secrets Manager secret ARNs (with or without
//! the `:json-key:version-stage:version-id` suffix), SSM parameter ARNs and names, bare secret names, and the ARN
//! checks every reference shares (a real Region, a 12-digit account, the partition of that Region).
//!
//! Pure parsing: it never looks anything up and never grants; `secrets.rs` turns the parsed references into
//! permissions. Every function returns an error instead of guessing, and none panics on any input.

use crate::model::{Arn, has_placeholder, is_account_id, is_region, partition_for_region};

/// Why a reference cannot become an exact IAM resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefError {
    /// A template placeholder (`${…}`, `{{…}}`, `<…>`) was never rendered.
    Placeholder(String),
    /// The value is malformed: tasks that use it fail to start.
    Invalid(String),
    /// A bare name needs the task's Region and account, and they are unknown.
    UnknownContext(String),
}

/// The Region and account a bare name lives in (the task's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub region: String,
    pub account: String,
}

/// A Secrets Manager secret, without any suffix after the secret id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRef {
    pub region: String,
    pub account: String,
    /// The name, or the name plus its `-xxxxxx` random suffix, as written.
    pub id: String,
}

impl SecretRef {
    /// `arn:P:secretsmanager:R:A:secret:<id>` (a full ARN when `id` carries the suffix, otherwise partial).
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:secretsmanager:{}:{}:secret:{}",
            partition_for_region(&self.region),
            self.region,
            self.account,
            self.id
        )
    }

    /// Whether `id` ends in `-` plus six alphanumeric characters, the random suffix of a full ARN. (A name may
    /// itself end that way: the look-up settles it.)
    pub fn has_random_suffix(&self) -> bool {
        looks_like_random_suffix(&self.id)
    }
}

/// Whether `text` ends like a full secret ARN's random suffix: `-` and six ASCII alphanumerics of which at least
/// one is an upper-case letter or a digit. Secrets Manager draws the suffix from mixed-case letters and digits;
/// names commonly end in lower-case words of six letters (`-config`, `-tokens`, `-access`), which are names.
/// Without a look-up this is the best guess; `DescribeSecret` settles it in the controller.
pub(crate) fn looks_like_random_suffix(text: &str) -> bool {
    has_random_suffix(text)
        && text
            .bytes()
            .rev()
            .take(6)
            .any(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Whether `text` ends in `-` and six ASCII alphanumerics, with something before the `-`.
pub(crate) fn has_random_suffix(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 7
        && bytes[bytes.len() - 7] == b'-'
        && bytes[bytes.len() - 6..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric())
}

/// An SSM parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParameterRef {
    pub region: String,
    pub account: String,
    /// The name as SSM knows it (with its leading `/` when hierarchical).
    pub name: String,
}

/// The SSM path under which Parameter Store exposes Secrets Manager secrets (row 6b).
pub(crate) const SECRETS_MANAGER_REFERENCE: &str = "/aws/reference/secretsmanager/";

impl ParameterRef {
    /// `arn:P:ssm:R:A:parameter/<name without its leading />`.
    pub fn arn(&self) -> String {
        format!(
            "arn:{}:ssm:{}:{}:parameter/{}",
            partition_for_region(&self.region),
            self.region,
            self.account,
            self.name.strip_prefix('/').unwrap_or(&self.name)
        )
    }

    /// The secret a `/aws/reference/secretsmanager/<secret>` parameter stands for.
    pub fn referenced_secret(&self) -> Option<SecretRef> {
        let id = self.name.strip_prefix(SECRETS_MANAGER_REFERENCE)?;
        Some(SecretRef {
            region: self.region.clone(),
            account: self.account.clone(),
            id: id.to_string(),
        })
    }
}

/// What a `secrets[].valueFrom` or `secretOptions[].valueFrom` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueFrom {
    Secret(SecretRef),
    Parameter(ParameterRef),
}

/// Classify a `valueFrom` (rows 5, 6, 6b, 7): a Secrets Manager ARN, an SSM ARN, or an SSM parameter name in the
/// task's Region and account (`place`).
pub(crate) fn parse_value_from(text: &str, place: Option<&Place>) -> Result<ValueFrom, RefError> {
    check_placeholder(text)?;
    if text.starts_with("arn:") {
        return match service_of(text) {
            Some("secretsmanager") => {
                secret_from_arn(&checked_arn(text)?, true).map(ValueFrom::Secret)
            }
            Some("ssm") => parameter_from_arn(&checked_arn(text)?).map(ValueFrom::Parameter),
            _ => Err(RefError::Invalid(format!(
                "`{text}` is not a Secrets Manager secret or SSM parameter ARN, which valueFrom must name"
            ))),
        };
    }
    let name = parameter_name(text)?;
    let place = place.ok_or_else(|| {
        RefError::UnknownContext(format!(
            "parameter `{text}` is a bare name in the task's Region and account, which are unknown \
             (give --account and --region)"
        ))
    })?;
    Ok(ValueFrom::Parameter(ParameterRef {
        region: place.region.clone(),
        account: place.account.clone(),
        name,
    }))
}

/// `repositoryCredentials.credentialsParameter` (row 4): a Secrets Manager ARN (no JSON-key suffix) or a bare
/// secret name in the task's Region and account.
pub(crate) fn parse_credentials_parameter(
    text: &str,
    place: Option<&Place>,
) -> Result<SecretRef, RefError> {
    check_placeholder(text)?;
    if text.starts_with("arn:") {
        if service_of(text) != Some("secretsmanager") {
            return Err(RefError::Invalid(format!(
                "`{text}` is not a Secrets Manager secret ARN; private registry credentials must be a secret"
            )));
        }
        return secret_from_arn(&checked_arn(text)?, false);
    }
    check_secret_id(text, text)?;
    let place = place.ok_or_else(|| {
        RefError::UnknownContext(format!(
            "secret `{text}` is a bare name in the task's Region and account, which are unknown \
             (give --account and --region)"
        ))
    })?;
    Ok(SecretRef {
        region: place.region.clone(),
        account: place.account.clone(),
        id: text.to_string(),
    })
}

/// An SSM parameter ARN (also used by credential specs).
pub(crate) fn parameter_from_arn(arn: &Arn) -> Result<ParameterRef, RefError> {
    let text = arn.to_string();
    let Some(rest) = arn.resource.strip_prefix("parameter/") else {
        return Err(RefError::Invalid(format!(
            "`{text}` is not an SSM parameter ARN (`arn:P:ssm:R:A:parameter/<name>`)"
        )));
    };
    // `name:version` and `name:label` select a version; IAM authorises the parameter itself.
    let path = rest.split(':').next().unwrap_or(rest);
    let name = if path.contains('/') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let name = parameter_name(&name)
        .map_err(|_| RefError::Invalid(format!("`{text}` does not name a valid SSM parameter")))?;
    Ok(ParameterRef {
        region: arn.region.clone(),
        account: arn.account.clone(),
        name,
    })
}

/// A Secrets Manager ARN: `secret:<id>`, or (when `suffix_allowed`) `secret:<id>:<json-key>:<stage>:<version>`.
fn secret_from_arn(arn: &Arn, suffix_allowed: bool) -> Result<SecretRef, RefError> {
    let text = arn.to_string();
    let parts: Vec<&str> = arn.resource.split(':').collect();
    if parts[0] != "secret" {
        return Err(RefError::Invalid(format!(
            "`{text}` is not a Secrets Manager secret ARN (`arn:P:secretsmanager:R:A:secret:<id>`)"
        )));
    }
    match parts.len() {
        2 => {}
        5 if suffix_allowed => {}
        5 => {
            return Err(RefError::Invalid(format!(
                "`{text}` carries a `:json-key:version-stage:version-id` suffix, which is not allowed here"
            )));
        }
        n => {
            return Err(RefError::Invalid(format!(
                "`{text}` has {n} `:`-separated parts after `secret`; ECS accepts `secret:<id>` or \
                 `secret:<id>:<json-key>:<version-stage>:<version-id>`"
            )));
        }
    }
    check_secret_id(parts[1], &text)?;
    Ok(SecretRef {
        region: arn.region.clone(),
        account: arn.account.clone(),
        id: parts[1].to_string(),
    })
}

/// Secret names: 1–512 of `A-Za-z0-9/_+=.@-`.
fn check_secret_id(id: &str, text: &str) -> Result<(), RefError> {
    let ok = !id.is_empty()
        && id.len() <= 512
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RefError::Invalid(format!(
            "`{text}` does not name a valid secret (names use A-Z a-z 0-9 / _ + = . @ -)"
        )))
    }
}

/// An SSM parameter name as written: `foo` or `/a/b`; `a/b` (a path without its leading `/`) is invalid. The
/// secret after `/aws/reference/secretsmanager/` follows the secret-name rules instead.
pub(crate) fn parameter_name(text: &str) -> Result<String, RefError> {
    if let Some(secret) = text.strip_prefix(SECRETS_MANAGER_REFERENCE) {
        check_secret_id(secret, text)?;
        return Ok(text.to_string());
    }
    let invalid = |why: &str| {
        Err(RefError::Invalid(format!(
            "`{text}` is not a valid SSM parameter name: {why}"
        )))
    };
    if text.is_empty() || text.len() > 2048 {
        return invalid("it must be 1 to 2048 characters");
    }
    if text.contains('/') && !text.starts_with('/') {
        return invalid("a hierarchical name must start with `/` (or give the parameter's ARN)");
    }
    let body = text.strip_prefix('/').unwrap_or(text);
    let segments_ok = body.split('/').all(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    });
    if !segments_ok {
        return invalid("names use A-Z a-z 0-9 _ . - and `/` between non-empty levels");
    }
    Ok(text.to_string())
}

/// An ARN whose Region, account and partition are real: documentation placeholders such as `region`,
/// `aws_account_id` or `XXXXXXXXXXXX` are rejected, never turned into a resource.
pub(crate) fn checked_arn(text: &str) -> Result<Arn, RefError> {
    let arn = Arn::parse(text).map_err(|e| RefError::Invalid(e.to_string()))?;
    if !is_region(&arn.region) {
        return Err(RefError::Invalid(format!(
            "`{text}`: `{}` is not a Region name (a placeholder left from an example?)",
            arn.region
        )));
    }
    if !is_account_id(&arn.account) {
        return Err(RefError::Invalid(format!(
            "`{text}`: `{}` is not a 12-digit account id (a placeholder left from an example?)",
            arn.account
        )));
    }
    let partition = partition_for_region(&arn.region);
    if arn.partition != partition {
        return Err(RefError::Invalid(format!(
            "`{text}`: Region {} is in partition `{partition}`, not `{}`",
            arn.region, arn.partition
        )));
    }
    Ok(arn)
}

/// The service of an ARN-shaped text (`arn:P:<service>:…`).
pub(crate) fn service_of(text: &str) -> Option<&str> {
    text.split(':').nth(2)
}

/// `Err(Placeholder)` when `text` holds an unrendered template placeholder.
pub(crate) fn check_placeholder(text: &str) -> Result<(), RefError> {
    if has_placeholder(text) {
        Err(RefError::Placeholder(format!(
            "`{text}` holds an unresolved template placeholder; render it before registering"
        )))
    } else {
        Ok(())
    }
}
