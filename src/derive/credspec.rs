//! Row 12: gMSA credential specs (`credentialSpecs[]`). `credentialspec:<ARN>` and
//! `credentialspecdomainless:<ARN>` name a CredSpec file the agent reads with the execution role: an S3 object
//! (`s3:GetObject` + `s3:GetBucketLocation`) or an SSM parameter (`ssm:GetParameters`, plus `kms:Decrypt` for a
//! SecureString under a customer managed key). Any other form (`credentialspec:file://…`) is a file on the host and
//! needs nothing.
//!
//! Domainless gMSA also needs the Secrets Manager secret named *inside* the CredSpec file. execrole does not read
//! the file: that part is reported as a finding (best effort), never guessed.

use super::references::{RefError, check_placeholder, checked_arn, parameter_from_arn, service_of};
use super::s3::{S3Object, grant_object, parse_s3_object};
use super::secrets::grant_parameter;
use super::site::{Site, report};
use super::{HoldScope, Needs, Unsettled};
use crate::model::ContainerDefinition;

/// What a credential spec needs read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredSpecSource {
    S3(S3Object),
    Parameter(super::references::ParameterRef),
    /// A file on the container instance.
    Local,
}

/// A parsed credential spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredSpec {
    pub domainless: bool,
    pub source: CredSpecSource,
}

/// Parse `credentialspec:…` / `credentialspecdomainless:…`.
pub(crate) fn parse_credential_spec(
    text: &str,
    task_region: Option<&str>,
) -> Result<CredSpec, RefError> {
    check_placeholder(text)?;
    let (domainless, rest) = if let Some(rest) = text.strip_prefix("credentialspecdomainless:") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("credentialspec:") {
        (false, rest)
    } else {
        return Err(RefError::Invalid(format!(
            "`{text}` must start with `credentialspec:` or `credentialspecdomainless:`"
        )));
    };
    if !rest.starts_with("arn:") {
        return Ok(CredSpec {
            domainless,
            source: CredSpecSource::Local,
        });
    }
    let source = match service_of(rest) {
        Some("s3") => CredSpecSource::S3(parse_s3_object(rest, task_region)?),
        Some("ssm") => CredSpecSource::Parameter(parameter_from_arn(&checked_arn(rest)?)?),
        _ => {
            return Err(RefError::Invalid(format!(
                "`{text}`: a credential spec ARN must name an S3 object or an SSM parameter"
            )));
        }
    };
    Ok(CredSpec { domainless, source })
}

/// Row 12 for one container.
pub(crate) fn credential_specs(container: &ContainerDefinition, needs: &mut Needs) {
    let region = needs.scope.region.clone();
    for (index, text) in container.credential_specs.iter().enumerate() {
        let site = Site::of(container, format_args!("credentialSpecs[{index}]"));
        let spec = match parse_credential_spec(text, region.as_deref()) {
            Ok(spec) => spec,
            Err(err) => {
                report(err, &site, needs);
                continue;
            }
        };
        match &spec.source {
            CredSpecSource::S3(object) => grant_object(object, &site, needs),
            CredSpecSource::Parameter(parameter) => grant_parameter(parameter, &site, needs),
            CredSpecSource::Local => {}
        }
        if spec.domainless {
            needs.find_unresolved(
                Unsettled::Unanswered,
                Some(&site.container),
                Some(&site.field),
                "domainless gMSA also reads the Secrets Manager secret named in the CredSpec file \
                 (HostAccountConfig.PluginInput.credentialArn); execrole does not read the file, so \
                 secretsmanager:GetSecretValue (and kms:Decrypt for a customer managed key) on it is not derived",
                HoldScope::CredSpecSecret,
            );
        }
    }
}
