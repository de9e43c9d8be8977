//! Where a reference was found in a task definition ([`Site`]: container and field path, and the path of
//! `logConfiguration` as written), and the findings every reference rule reports there: a reference that cannot
//! be parsed, and a resource in another account whose own policy must also allow the role.
//!
//! Shared by the secret, parameter, KMS, S3 and credential-spec rules, so none of them imports another for it. Not
//! here: parsing references (`references.rs`) or granting anything.

use super::references::RefError;
use super::{FindingKind, Needs};
use crate::model::ContainerDefinition;

/// Where a reference was found: the container and the field path.
pub(crate) struct Site {
    pub container: String,
    pub field: String,
}

impl Site {
    /// The site of `field` (a path relative to the container) in `container`.
    pub fn of(container: &ContainerDefinition, field: impl std::fmt::Display) -> Site {
        Site {
            container: container.display_name(),
            field: container.field_path(field),
        }
    }
}

/// A parse error as a finding.
pub(crate) fn report(err: RefError, site: &Site, needs: &mut Needs) {
    let (kind, message) = match err {
        RefError::Placeholder(m) => (FindingKind::UnresolvedPlaceholder, m),
        RefError::Invalid(m) => (FindingKind::InvalidReference, m),
        RefError::UnknownContext(m) => (FindingKind::UnknownContext, m),
    };
    needs.find(kind, Some(&site.container), Some(&site.field), message);
}

/// A finding when a resource is in another account than the task.
pub(crate) fn cross_account(
    account: &str,
    what: &str,
    policy: &str,
    site: &Site,
    needs: &mut Needs,
) {
    if needs.scope.account.as_deref().is_some_and(|a| a != account) {
        needs.find(
            FindingKind::CrossAccountResource,
            Some(&site.container),
            Some(&site.field),
            format!(
                "{what} is in account {account}: its {policy} must also allow the execution role \
                 (execrole does not write it)"
            ),
        );
    }
}

/// The path of `logConfiguration` as written: `logConfiguration[0]` when the task definition gave it as a list.
pub(crate) fn log_configuration_path(was_list: bool) -> &'static str {
    if was_list {
        "logConfiguration[0]"
    } else {
        "logConfiguration"
    }
}
