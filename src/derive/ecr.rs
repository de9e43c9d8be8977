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
//! An image in another account's registry gets a `cross_account_resource` finding instead: that repository's
//! policy must also allow the pull, and that registry's cache rules are not looked up (they cannot be described
//! from the task's account), so the finding also says what a cache prefix there would need; it holds nothing
//! back. A failed look-up of the task's own registry is `unresolved_lookup` and holds back only the two import
//! actions in that prefix's namespace ([`HoldScope::PullThroughCache`]).
//!
//! Not here: private registry credentials (rule 4) and writing any repository policy (never done).

use super::{
    DeriveOptions, Fact, FindingKind, HoldScope, Lookup, Needs, Unsettled, VpcEndpointCondition,
};
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
            let other_account = needs
                .scope
                .account
                .as_deref()
                .is_some_and(|a| a != ecr.account);
            if other_account {
                cross_account_registry(&ecr, options, &name, &field, needs);
            } else {
                pull_through(&ecr, options, &name, &field, needs);
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

/// The finding for an image in another account's registry: that repository's policy must also allow the pull.
/// Its pull-through-cache rules cannot be described from the task's account, so they are not looked up: for a
/// nested path the finding says what a cache prefix would also need, and nothing is held back for it.
fn cross_account_registry(
    ecr: &EcrImage,
    options: &DeriveOptions,
    name: &str,
    field: &str,
    needs: &mut Needs,
) {
    let repository = ecr.repository_arn();
    let mut message = format!(
        "repository `{repository}` is in account {}: its repository policy must also allow the execution role to \
         pull (execrole does not write it)",
        ecr.account
    );
    if let Some(prefix) = cache_prefix(ecr, options) {
        message.push_str(&format!(
            "; execrole cannot read that registry's pull-through-cache rules, so if `{prefix}` is a cache prefix \
             there, ecr:BatchImportUpstreamImage and ecr:CreateRepository are not granted: allow them to the role \
             in a policy execrole does not own (it removes from its own what it did not derive) and in that \
             registry's policy"
        ));
    }
    needs.find(
        FindingKind::CrossAccountResource,
        Some(name),
        Some(field),
        message,
    );
}

/// The first path segment of a nested repository, when pull-through-cache rules are looked up at all.
fn cache_prefix<'e>(ecr: &'e EcrImage, options: &DeriveOptions) -> Option<&'e str> {
    if !options.pull_through_lookups {
        return None;
    }
    ecr.repository.split_once('/').map(|(prefix, _)| prefix)
}

/// Rule 2 for one private ECR image of the task's own account (or of an unknown one).
fn pull_through(
    ecr: &EcrImage,
    options: &DeriveOptions,
    name: &str,
    field: &str,
    needs: &mut Needs,
) {
    let Some(prefix) = cache_prefix(ecr, options) else {
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
        Some(Fact::Failed { reason }) => needs.find_unresolved(
            Unsettled::Unanswered,
            Some(name),
            Some(field),
            format!(
                "the pull-through-cache rules of registry {}/{} could not be read ({reason}); if `{prefix}` is \
                 a cache prefix, ecr:BatchImportUpstreamImage and ecr:CreateRepository are not granted",
                ecr.account, ecr.region
            ),
            HoldScope::PullThroughCache {
                partition: ecr.partition().to_string(),
                region: ecr.region.clone(),
                account: ecr.account.clone(),
                prefix: prefix.to_string(),
            },
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
