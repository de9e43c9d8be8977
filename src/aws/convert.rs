//! SDK task definitions → our model. The mapping mirrors `model::TaskDefinition::from_value` so that the API and
//! a JSON file give the same derivation: empty strings mean absent, enum values keep their wire names.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as ecs;

use crate::model::{
    ContainerDefinition, EnvironmentFile, FirelensConfiguration, LogConfiguration, SecretEntry,
    TaskDefinition,
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

fn map(options: Option<&std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
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
