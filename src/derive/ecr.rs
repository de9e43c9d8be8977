//! Rules 1, 1b, 1c, 2 and 3: pulling container images. A private ECR image needs `ecr:GetAuthorizationToken` on `*`
//! (the action has no resource-level permissions) and the three layer actions on the exact repository, in the Region
//! and account of the registry host; every other registry needs nothing from the execution role.
//!
//! Rule 1c: a configured VPC endpoint restriction conditions the layer statement (and the pull-through actions) on
//! `aws:sourceVpce` / `aws:sourceVpc`; `GetAuthorizationToken` stays unconditioned, as in the seed.
//!
//! Rule 2: when the first path segment of a multi-segment repository is the prefix of one of the registry's
//! pull-through-cache rules (a look-up), also `ecr:BatchImportUpstreamImage` and `ecr:CreateRepository` on
//! `repository/<prefix>/*`. The prefix wildcard rather than the exact path: the repository ECR creates for an
//! upstream image is named by the upstream (e.g. Docker Hub's `library/` namespace), which the image text does not
//! always spell the same way, and the wildcard stays inside the cache's own namespace. Without the look-up
//! (offline) nothing extra is granted and nothing is reported: a cache path is indistinguishable from an ordinary
//! nested repository, and a finding on every such image would be noise.
//!
//! Not here: private registry credentials (rule 4) and the repository policy that a cross-account pull also needs
//! (reported as a finding, never written).

use super::{DeriveOptions, Fact, FindingKind, Lookup, Needs, VpcEndpointCondition};
use crate::model::{ContainerDefinition, EcrImage, ImageRef, has_placeholder};
use crate::policy::Permission;

/// The actions that read image layers from one repository.
pub const LAYER_ACTIONS: [&str; 3] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// Rules 1, 1b and 3 for one container.
pub(crate) fn private_images(
    container: &ContainerDefinition,
    options: &DeriveOptions,
    needs: &mut Needs,
) {
    let name = container.display_name();
    let field = container.field_path("image");
    let Some(image) = container.image.as_deref() else {
        needs.find(
            FindingKind::IncompleteConfiguration,
            Some(&name),
            Some(&field),
            "the container has no image",
        );
        return;
    };
    if has_placeholder(image) {
        needs.find(
            FindingKind::UnresolvedPlaceholder,
            Some(&name),
            Some(&field),
            format!("image `{image}` holds an unresolved template placeholder; render it before registering"),
        );
        return;
    }
    match ImageRef::parse(image) {
        Ok(ImageRef::Other) if looks_like_ecr(image) => needs.find(
            FindingKind::InvalidReference,
            Some(&name),
            Some(&field),
            format!(
                "image `{image}` looks like a private ECR image, but its host is not \
                 `<account>.dkr.ecr.<region>.amazonaws.com`: nothing can be granted for it"
            ),
        ),
        Ok(ImageRef::Other) => {}
        Ok(ImageRef::Ecr(ecr)) => {
            needs.grant(
                Permission::new("ecr:GetAuthorizationToken", "*"),
                &name,
                &field,
            );
            let repository = ecr.repository_arn();
            for action in LAYER_ACTIONS {
                let permission = Permission::new(action, repository.clone());
                needs.grant(vpce(permission, &options.vpc_endpoint), &name, &field);
            }
            pull_through(&ecr, options, &name, &field, needs);
            if needs
                .scope
                .account
                .as_deref()
                .is_some_and(|a| a != ecr.account)
            {
                needs.find(
                    FindingKind::CrossAccountResource,
                    Some(&name),
                    Some(&field),
                    format!(
                        "repository `{repository}` is in account {}: its repository policy must also allow the \
                         execution role to pull (execrole does not write it)",
                        ecr.account
                    ),
                );
            }
        }
        Err(err) => needs.find(
            FindingKind::InvalidReference,
            Some(&name),
            Some(&field),
            err.to_string(),
        ),
    }
}

/// The actions a pull through a pull-through-cache rule adds.
pub const PULL_THROUGH_ACTIONS: [&str; 2] =
    ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"];

/// Rule 2 for one private ECR image.
fn pull_through(
    ecr: &EcrImage,
    options: &DeriveOptions,
    name: &str,
    field: &str,
    needs: &mut Needs,
) {
    if !options.pull_through_lookups {
        return;
    }
    let Some((prefix, _)) = ecr.repository.split_once('/') else {
        return;
    };
    let fact = needs.fact(Lookup::PullThroughCacheRules {
        region: ecr.region.clone(),
        account: ecr.account.clone(),
    });
    match fact {
        Some(Fact::PullThroughCacheRules { rules }) if rules.iter().any(|r| r.prefix == prefix) => {
            let resource = format!(
                "arn:{}:ecr:{}:{}:repository/{prefix}/*",
                ecr.partition(),
                ecr.region,
                ecr.account
            );
            for action in PULL_THROUGH_ACTIONS {
                let permission = Permission::new(action, resource.clone());
                needs.grant(vpce(permission, &options.vpc_endpoint), name, field);
            }
        }
        Some(Fact::Failed { reason }) => needs.find(
            FindingKind::UnresolvedLookup,
            Some(name),
            Some(field),
            format!(
                "the pull-through-cache rules of registry {}/{} could not be read ({reason}); if `{prefix}` is \
                 a cache prefix, ecr:BatchImportUpstreamImage and ecr:CreateRepository are not granted",
                ecr.account, ecr.region
            ),
        ),
        _ => {}
    }
}

/// Rule 1c: the VPC endpoint conditions, when configured.
fn vpce(mut permission: Permission, condition: &VpcEndpointCondition) -> Permission {
    if !condition.source_vpce.is_empty() {
        permission = permission.with_condition(
            "StringEquals",
            "aws:sourceVpce",
            condition.source_vpce.iter().cloned(),
        );
    }
    if !condition.source_vpc.is_empty() {
        permission = permission.with_condition(
            "StringEquals",
            "aws:sourceVpc",
            condition.source_vpc.iter().cloned(),
        );
    }
    permission
}

/// Whether an image that is not a valid private ECR reference still names an ECR-looking host (a documentation
/// placeholder such as `aws_account_id.dkr.ecr.region.amazonaws.com`).
fn looks_like_ecr(image: &str) -> bool {
    let host = image
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    image.contains('/') && (host.contains(".dkr.ecr") || host.contains(".dkr-ecr."))
}
