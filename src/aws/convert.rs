//! SDK types → our model: task definitions (the mapping mirrors `model::TaskDefinition::from_value` so that the API
//! and a JSON file give the same derivation: empty strings mean absent, enum values keep their wire names), and the
//! roles and customer managed policies of `GetAccountAuthorizationDetails` (documents kept URL-encoded, as the
//! per-role reads keep them).

use aws_sdk_ecs::types as ecs;
use aws_sdk_iam::types as iam;

use super::{LocalPolicy, LocalPolicyVersion, RoleDetail, RoleInfo};

use crate::model::{
    ContainerDefinition, EnvironmentFile, FirelensConfiguration, LogConfiguration, Options,
    SecretEntry, TaskDefinition,
};

/// Convert one described task definition.
pub(crate) fn task_definition(td: &ecs::TaskDefinition) -> TaskDefinition {
    TaskDefinition {
        arn: text(td.task_definition_arn()),
        family: text(td.family()),
        revision: Some(i64::from(td.revision())).filter(|r| *r > 0),
        execution_role_arn: text(td.execution_role_arn()),
        requires_compatibilities: td
            .requires_compatibilities()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect(),
        containers: td
            .container_definitions()
            .iter()
            .enumerate()
            .map(|(index, c)| container(index, c))
            .collect(),
    }
}

fn container(index: usize, c: &ecs::ContainerDefinition) -> ContainerDefinition {
    ContainerDefinition {
        index,
        name: text(c.name()),
        image: text(c.image()),
        log_configuration: c.log_configuration().map(|log| LogConfiguration {
            log_driver: text(Some(log.log_driver().as_str())),
            options: map(log.options()),
            secret_options: secrets(log.secret_options()),
            was_list: false,
        }),
        secrets: secrets(c.secrets()),
        repository_credentials: c
            .repository_credentials()
            .and_then(|r| text(Some(r.credentials_parameter()))),
        environment_files: c
            .environment_files()
            .iter()
            .enumerate()
            .map(|(index, f)| EnvironmentFile {
                index,
                kind: text(Some(f.r#type().as_str())),
                value: text(Some(f.value())),
            })
            .collect(),
        firelens_configuration: c.firelens_configuration().map(|f| FirelensConfiguration {
            kind: text(Some(f.r#type().as_str())),
            options: map(f.options()),
        }),
        credential_specs: c
            .credential_specs()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .cloned()
            .collect(),
    }
}

fn secrets(list: &[ecs::Secret]) -> Vec<SecretEntry> {
    list.iter()
        .enumerate()
        .map(|(index, s)| SecretEntry {
            index,
            name: text(Some(s.name())),
            value_from: text(Some(s.value_from())),
        })
        .collect()
}

fn map(options: Option<&std::collections::HashMap<String, String>>) -> Options {
    options
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn text(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Key and value of IAM tags.
pub(crate) fn tags(list: &[iam::Tag]) -> Vec<(String, String)> {
    list.iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

/// One role of `GetAccountAuthorizationDetails`, its strings moved (a page holds every role's documents; a copy
/// would double it while the page is converted); `None` without a name (IAM always sends one).
pub(crate) fn role_detail(role: iam::RoleDetail) -> Option<RoleDetail> {
    let tags = tags(role.tags());
    let name = role.role_name?;
    Some(RoleDetail {
        info: RoleInfo {
            arn: role.arn.unwrap_or_default(),
            assume_role_policy: role.assume_role_policy_document,
            permissions_boundary: role
                .permissions_boundary
                .and_then(|b| b.permissions_boundary_arn),
            path: role.path.unwrap_or_else(|| "/".to_string()),
            tags,
        },
        inline_policies: role
            .role_policy_list
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.policy_name?, p.policy_document?)))
            .collect(),
        attached_policies: role
            .attached_managed_policies
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.policy_arn)
            .collect(),
        name,
    })
}

/// One customer managed policy of `GetAccountAuthorizationDetails`, its strings moved; `None` without an ARN.
/// The name is taken from the ARN when the answer has none (moto leaves `PolicyName` out here).
pub(crate) fn local_policy(policy: iam::ManagedPolicyDetail) -> Option<LocalPolicy> {
    let arn = policy.arn?;
    let name = match policy.policy_name.filter(|n| !n.is_empty()) {
        Some(name) => name,
        None => arn.rsplit('/').next().unwrap_or_default().to_string(),
    };
    Some(LocalPolicy {
        name,
        path: policy.path.unwrap_or_else(|| "/".to_string()),
        policy_id: policy.policy_id.unwrap_or_default(),
        default_version_id: policy.default_version_id.unwrap_or_default(),
        attachment_count: policy.attachment_count.unwrap_or(0).max(0) as usize,
        versions: policy
            .policy_version_list
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                Some(LocalPolicyVersion {
                    version_id: v.version_id?,
                    is_default: v.is_default_version,
                    document: v.document,
                })
            })
            .collect(),
        arn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_policy_without_a_name_is_named_by_its_arn() {
        let detail = iam::ManagedPolicyDetail::builder()
            .arn("arn:aws:iam::123456789012:policy/execrole/execrole-app-exec-1")
            .path("/execrole/")
            .default_version_id("v2")
            .policy_version_list(
                iam::PolicyVersion::builder()
                    .version_id("v2")
                    .is_default_version(true)
                    .document("%7B%7D")
                    .build(),
            )
            .build();
        let policy = local_policy(detail).unwrap();
        assert_eq!(policy.name, "execrole-app-exec-1");
        assert_eq!(policy.path, "/execrole/");
        assert_eq!(policy.default_document(), Some("%7B%7D"));
    }
}
