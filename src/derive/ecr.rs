//! Rules 1, 1b and 3: pulling container images. A private ECR image needs `ecr:GetAuthorizationToken` on `*` (the
//! action has no resource-level permissions) and the three layer actions on the exact repository, in the Region and
//! account of the registry host; every other registry needs nothing from the execution role.
//!
//! Not here: pull-through cache (rule 2), private registry credentials (rule 4) and the repository policy that a
//! cross-account pull also needs (reported as a finding, never written).

use super::{FindingKind, Needs};
use crate::model::{ContainerDefinition, ImageRef, has_placeholder};
use crate::policy::Permission;

/// The actions that read image layers from one repository.
pub const LAYER_ACTIONS: [&str; 3] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// Rules 1, 1b and 3 for one container.
pub(crate) fn private_images(container: &ContainerDefinition, needs: &mut Needs) {
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
        Ok(ImageRef::Other) => {}
        Ok(ImageRef::Ecr(ecr)) => {
            needs.grant(
                Permission::new("ecr:GetAuthorizationToken", "*"),
                &name,
                &field,
            );
            let repository = ecr.repository_arn();
            for action in LAYER_ACTIONS {
                needs.grant(Permission::new(action, repository.clone()), &name, &field);
            }
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
