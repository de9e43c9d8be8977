//! A task definition written back as the JSON that [`TaskDefinition::from_json`] reads as the same value: how the
//! controller keeps every revision it watches in one allocation (the parsed form takes about thirty, and a
//! watcher of 10,000 revisions would hold 300,000 of them for as long as it runs). Unpacking is parsing. Empty
//! lists and objects are left out (they read back as absent ones do): most containers have no secrets, files or
//! credential specs, and every byte is kept once per revision.

use serde_json::{Map, Value, json};

use super::{
    ContainerDefinition, EnvironmentFile, LogConfiguration, Options, SecretEntry, TaskDefinition,
    TaskDefinitionError,
};

/// A task definition packed into its JSON text (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedTaskDefinition(Box<str>);

impl PackedTaskDefinition {
    /// Pack `td`.
    pub fn pack(td: &TaskDefinition) -> PackedTaskDefinition {
        PackedTaskDefinition(task_definition(td).to_string().into_boxed_str())
    }

    /// The task definition again. It fails only if packing lost something, which the round-trip tests rule out.
    pub fn unpack(&self) -> Result<TaskDefinition, TaskDefinitionError> {
        TaskDefinition::from_json(&self.0)
    }
}

/// `key: value` into `map` when the value is present.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        map.insert(key.to_string(), value);
    }
}

/// `key: value` into `map` unless the value is an empty list or object, which reads back as absent does.
fn put_filled(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Array(list) => list.is_empty(),
        Value::Object(object) => object.is_empty(),
        _ => false,
    };
    if !empty {
        map.insert(key.to_string(), value);
    }
}

fn text(value: &Option<String>) -> Option<Value> {
    value.as_ref().map(|v| Value::String(v.clone()))
}

fn task_definition(td: &TaskDefinition) -> Value {
    let mut map = Map::new();
    put(&mut map, "taskDefinitionArn", text(&td.arn));
    put(&mut map, "family", text(&td.family));
    put(&mut map, "revision", td.revision.map(Value::from));
    put(&mut map, "executionRoleArn", text(&td.execution_role_arn));
    put_filled(
        &mut map,
        "requiresCompatibilities",
        json!(td.requires_compatibilities),
    );
    let containers = td.containers.iter().map(container).collect();
    map.insert("containerDefinitions".into(), Value::Array(containers));
    Value::Object(map)
}

fn container(c: &ContainerDefinition) -> Value {
    let mut map = Map::new();
    put(&mut map, "name", text(&c.name));
    put(&mut map, "image", text(&c.image));
    if let Some(log) = &c.log_configuration {
        let packed = log_configuration(log);
        let packed = if log.was_list {
            Value::Array(vec![packed])
        } else {
            packed
        };
        map.insert("logConfiguration".into(), packed);
    }
    put_filled(&mut map, "secrets", secrets(&c.secrets));
    put(
        &mut map,
        "repositoryCredentials",
        c.repository_credentials
            .as_ref()
            .map(|p| json!({ "credentialsParameter": p })),
    );
    let files = c.environment_files.iter().map(environment_file).collect();
    put_filled(&mut map, "environmentFiles", Value::Array(files));
    put(
        &mut map,
        "firelensConfiguration",
        c.firelens_configuration.as_ref().map(|f| {
            let mut firelens = Map::new();
            put(&mut firelens, "type", text(&f.kind));
            put_filled(&mut firelens, "options", options(&f.options));
            Value::Object(firelens)
        }),
    );
    put_filled(&mut map, "credentialSpecs", json!(c.credential_specs));
    Value::Object(map)
}

fn log_configuration(log: &LogConfiguration) -> Value {
    let mut map = Map::new();
    put(&mut map, "logDriver", text(&log.log_driver));
    put_filled(&mut map, "options", options(&log.options));
    put_filled(&mut map, "secretOptions", secrets(&log.secret_options));
    Value::Object(map)
}

fn secrets(entries: &[SecretEntry]) -> Value {
    let entries = entries
        .iter()
        .map(|s| {
            let mut map = Map::new();
            put(&mut map, "name", text(&s.name));
            put(&mut map, "valueFrom", text(&s.value_from));
            Value::Object(map)
        })
        .collect();
    Value::Array(entries)
}

fn environment_file(file: &EnvironmentFile) -> Value {
    let mut map = Map::new();
    put(&mut map, "type", text(&file.kind));
    put(&mut map, "value", text(&file.value));
    Value::Object(map)
}

fn options(options: &Options) -> Value {
    Value::Object(
        options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::FirelensConfiguration;

    /// A string as parsing (and the SDK adapter) leaves it: any text, trimmed and not empty.
    fn word() -> impl Strategy<Value = String> {
        "(\\PC|[\t\n\"\\\\ ]){0,12}".prop_filter_map("trimmed, not empty", |s| {
            let s = s.trim().to_string();
            (!s.is_empty()).then_some(s)
        })
    }

    fn maybe() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(word())
    }

    fn entries() -> impl Strategy<Value = Vec<SecretEntry>> {
        proptest::collection::vec((maybe(), maybe()), 0..3).prop_map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(index, (name, value_from))| SecretEntry {
                    index,
                    name,
                    value_from,
                })
                .collect()
        })
    }

    fn options() -> impl Strategy<Value = Options> {
        // Keys and values as the SDK gives them: any text, untrimmed, possibly empty.
        proptest::collection::vec(("(\\PC|\\s){0,8}", "(\\PC|\\s){0,8}"), 0..4)
            .prop_map(|pairs| pairs.into_iter().collect())
    }

    fn log() -> impl Strategy<Value = Option<LogConfiguration>> {
        proptest::option::of((maybe(), options(), entries(), any::<bool>()).prop_map(
            |(log_driver, options, secret_options, was_list)| LogConfiguration {
                log_driver,
                options,
                secret_options,
                was_list,
            },
        ))
    }

    fn rare() -> impl Strategy<
        Value = (
            Vec<EnvironmentFile>,
            Option<FirelensConfiguration>,
            Vec<String>,
        ),
    > {
        let files = proptest::collection::vec((maybe(), maybe()), 0..2).prop_map(|files| {
            files
                .into_iter()
                .enumerate()
                .map(|(index, (kind, value))| EnvironmentFile { index, kind, value })
                .collect()
        });
        let firelens = proptest::option::of(
            (maybe(), options())
                .prop_map(|(kind, options)| FirelensConfiguration { kind, options }),
        );
        let specs = proptest::collection::vec(
            "[ a-z:/]{1,8}".prop_filter("not empty", |s| !s.is_empty()),
            0..2,
        );
        (files, firelens, specs)
    }

    fn containers() -> impl Strategy<Value = Vec<ContainerDefinition>> {
        let one = (maybe(), maybe(), log(), entries(), maybe(), rare());
        proptest::collection::vec(one, 0..3).prop_map(|list| {
            list.into_iter()
                .enumerate()
                .map(
                    |(index, (name, image, log_configuration, secrets, creds, rare))| {
                        ContainerDefinition {
                            index,
                            name,
                            image,
                            log_configuration,
                            secrets,
                            repository_credentials: creds,
                            environment_files: rare.0,
                            firelens_configuration: rare.1,
                            credential_specs: rare.2,
                        }
                    },
                )
                .collect()
        })
    }

    fn task_definitions() -> impl Strategy<Value = TaskDefinition> {
        let compat = proptest::collection::vec("[A-Z_ ]{0,8}", 0..3);
        (
            maybe(),
            maybe(),
            any::<Option<i64>>(),
            maybe(),
            compat,
            containers(),
        )
            .prop_map(
                |(
                    arn,
                    family,
                    revision,
                    execution_role_arn,
                    requires_compatibilities,
                    containers,
                )| {
                    TaskDefinition {
                        arn,
                        family,
                        revision,
                        execution_role_arn,
                        requires_compatibilities,
                        containers,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn unpacking_gives_back_what_was_packed(td in task_definitions()) {
            let packed = PackedTaskDefinition::pack(&td);
            prop_assert_eq!(packed.unpack(), Ok(td));
        }
    }

    #[test]
    fn packing_leaves_out_what_reads_back_as_absent() {
        let td = TaskDefinition::from_json(
            r#"{"family": "web", "revision": 3, "requiresCompatibilities": [],
                "containerDefinitions": [{"name": "app", "image": "nginx", "secrets": [],
                  "environmentFiles": [], "credentialSpecs": [],
                  "logConfiguration": {"logDriver": "awslogs", "options": {}, "secretOptions": []},
                  "firelensConfiguration": {"type": "fluentbit", "options": {}}}]}"#,
        )
        .unwrap();
        let packed = PackedTaskDefinition::pack(&td);
        assert_eq!(
            &*packed.0,
            r#"{"containerDefinitions":[{"firelensConfiguration":{"type":"fluentbit"},"image":"nginx","logConfiguration":{"logDriver":"awslogs"},"name":"app"}],"family":"web","revision":3}"#
        );
        assert_eq!(packed.unpack(), Ok(td));
    }

    #[test]
    fn every_fixture_survives_packing() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/taskdefs");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let Ok(td) = TaskDefinition::from_json(&std::fs::read_to_string(&path).unwrap()) else {
                continue;
            };
            let packed = PackedTaskDefinition::pack(&td);
            assert_eq!(packed.unpack().as_ref(), Ok(&td), "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 5, "{seen} fixtures");
    }
}
