//! Task definitions as the derivation rules read them, parsed leniently from the JSON people actually have: the
//! output of `aws ecs describe-task-definition` (`{"taskDefinition": {…}, "tags": […]}`), the bare task definition,
//! or the input of `register-task-definition`, with `null`s, empty strings, a `logConfiguration` given as a
//! one-element list, and unknown keys.
//!
//! Only the fields that decide execution-role permissions are kept. Values are kept as written (apart from empty
//! strings and `null`, which mean "absent"); judging them is the derivation rules' job. The SDK adapter builds the
//! same type from the ECS API's response.

mod json;

use serde_json::Value;

use super::Arn;

/// The largest JSON text [`TaskDefinition::from_json`] reads: eight times the 64 KiB ECS allows a task definition,
/// room for describe output and pretty-printing. A bound on the text bounds the time and memory parsing takes
/// (a `serde_json::Value` of deeply nested JSON takes up to a hundred times the text's size).
pub const MAX_TASK_DEFINITION_BYTES: usize = 512 << 10;

/// The parts of a task definition that decide what its execution role needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDefinition {
    /// `taskDefinitionArn`, when known (describe output, or from the ECS API).
    pub arn: Option<String>,
    /// `family`.
    pub family: Option<String>,
    /// `revision`.
    pub revision: Option<i64>,
    /// `executionRoleArn`.
    pub execution_role_arn: Option<String>,
    /// `requiresCompatibilities` (`EC2`, `FARGATE`, `EXTERNAL`, `MANAGED_INSTANCES`).
    pub requires_compatibilities: Vec<String>,
    /// `containerDefinitions`, in order.
    pub containers: Vec<ContainerDefinition>,
}

/// One container definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDefinition {
    /// Position in `containerDefinitions`, for field paths in reasons and findings.
    pub index: usize,
    /// `name`, or `None` when absent or empty.
    pub name: Option<String>,
    /// `image`.
    pub image: Option<String>,
    /// `logConfiguration`.
    pub log_configuration: Option<LogConfiguration>,
    /// `secrets`.
    pub secrets: Vec<SecretEntry>,
    /// `repositoryCredentials.credentialsParameter`.
    pub repository_credentials: Option<String>,
    /// `environmentFiles`.
    pub environment_files: Vec<EnvironmentFile>,
    /// `firelensConfiguration`.
    pub firelens_configuration: Option<FirelensConfiguration>,
    /// `credentialSpecs`.
    pub credential_specs: Vec<String>,
}

impl ContainerDefinition {
    /// The name to show in reasons: the container's name, or `#<index>` when it has none.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("#{}", self.index))
    }

    /// The JSON path of a field of this container, e.g. `containerDefinitions[0].image`.
    pub fn field_path(&self, field: impl std::fmt::Display) -> String {
        format!("containerDefinitions[{}].{}", self.index, field)
    }
}

/// `logConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfiguration {
    /// `logDriver`.
    pub log_driver: Option<String>,
    /// `options`, values as strings (`true` becomes `"true"`).
    pub options: Options,
    /// `secretOptions`.
    pub secret_options: Vec<SecretEntry>,
    /// Whether the JSON gave `logConfiguration` as a list (seen in copied documentation); the first entry is used.
    pub was_list: bool,
}

/// String options by name (`logConfiguration.options`, `firelensConfiguration.options`), sorted by name. A task
/// definition has a few each, and the controller keeps every revision it watches: a sorted vector holds exactly
/// them, where a map would reserve room for eleven.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(Vec<(String, String)>);

impl Options {
    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Every option, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Options {
    /// Sorted by name; of two options with one name, the later wins (as inserting into a map would).
    fn from_iter<I: IntoIterator<Item = (String, String)>>(options: I) -> Options {
        let mut options: Vec<(String, String)> = options.into_iter().collect();
        options.reverse();
        options.sort_by(|a, b| a.0.cmp(&b.0));
        options.dedup_by(|later, earlier| later.0 == earlier.0);
        options.shrink_to_fit();
        Options(options)
    }
}

/// An entry of `secrets` or `secretOptions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretEntry {
    /// Position in its list.
    pub index: usize,
    /// `name`.
    pub name: Option<String>,
    /// `valueFrom`.
    pub value_from: Option<String>,
}

/// An entry of `environmentFiles`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentFile {
    /// Position in its list.
    pub index: usize,
    /// `type` (only `s3` exists today).
    pub kind: Option<String>,
    /// `value`: an S3 object ARN.
    pub value: Option<String>,
}

/// `firelensConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirelensConfiguration {
    /// `type` (`fluentbit` or `fluentd`).
    pub kind: Option<String>,
    /// `options`.
    pub options: Options,
}

/// Why a JSON text is not a task definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskDefinitionError {
    /// Not JSON at all.
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object with `containerDefinitions`.
    #[error(
        "not a task definition: expected an object with `containerDefinitions` (or `taskDefinition`)"
    )]
    NotATaskDefinition,
    /// The text is larger than any task definition can be (see [`MAX_TASK_DEFINITION_BYTES`]).
    #[error(
        "the document is {bytes} bytes; a task definition may be at most {} KiB (ECS allows 64 KiB)",
        MAX_TASK_DEFINITION_BYTES >> 10
    )]
    TooLarge {
        /// The size of the text.
        bytes: usize,
    },
    /// A field has a type no task definition uses.
    #[error("`{path}` must be {expected}")]
    WrongType {
        /// JSON path of the field.
        path: String,
        /// What it must be.
        expected: &'static str,
    },
}

impl TaskDefinitionError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TaskDefinitionError::InvalidJson(_) => "invalid_json",
            TaskDefinitionError::NotATaskDefinition => "not_a_task_definition",
            TaskDefinitionError::TooLarge { .. } => "too_large",
            TaskDefinitionError::WrongType { .. } => "wrong_type",
        }
    }
}

impl TaskDefinition {
    /// Parse a task definition from JSON text in any of the shapes described in the module doc.
    pub fn from_json(text: &str) -> Result<TaskDefinition, TaskDefinitionError> {
        if text.len() > MAX_TASK_DEFINITION_BYTES {
            return Err(TaskDefinitionError::TooLarge { bytes: text.len() });
        }
        let mut document = serde_json::Deserializer::from_str(text);
        json::parse(&mut document)
            .and_then(|parsed| document.end().map(|()| parsed))
            .map_err(|e| TaskDefinitionError::InvalidJson(e.to_string()))?
    }

    /// Parse a task definition from a JSON value (see [`TaskDefinition::from_json`]).
    pub fn from_value(value: &Value) -> Result<TaskDefinition, TaskDefinitionError> {
        json::parse(value).map_err(|e| TaskDefinitionError::InvalidJson(e.to_string()))?
    }

    /// The parsed `taskDefinitionArn`, when present and well-formed.
    pub fn parsed_arn(&self) -> Option<Arn> {
        self.arn.as_deref().and_then(|a| Arn::parse(a).ok())
    }

    /// A short name for reasons and findings: `family:revision`, the family, or the ARN.
    pub fn display_name(&self) -> String {
        match (&self.family, self.revision, &self.arn) {
            (Some(family), Some(revision), _) => format!("{family}:{revision}"),
            (_, _, Some(arn)) => arn.rsplit('/').next().unwrap_or(arn.as_str()).to_string(),
            (Some(family), None, None) => family.clone(),
            (None, _, None) => "(unnamed task definition)".to_string(),
        }
    }

    /// Whether the task definition can only run on EC2 container instances (`requiresCompatibilities` is exactly
    /// `EC2`), where ECR pulls and `awslogs` use the instance role unless the agent is told otherwise.
    pub fn is_ec2_only(&self) -> bool {
        !self.requires_compatibilities.is_empty()
            && self
                .requires_compatibilities
                .iter()
                .all(|c| c.eq_ignore_ascii_case("EC2"))
    }
}

/// Where a field is in the task definition, for the error that names it: written out only then, so parsing a
/// valid document formats no path.
#[derive(Clone, Copy)]
enum FieldPath<'a> {
    /// The task definition itself.
    Root,
    /// `parent.key` (just `key` at the root).
    Key(&'a FieldPath<'a>, &'a str),
    /// `parent[index]`.
    Index(&'a FieldPath<'a>, usize),
}

impl<'a> FieldPath<'a> {
    fn key(&'a self, key: &'a str) -> FieldPath<'a> {
        FieldPath::Key(self, key)
    }

    fn index(&'a self, index: usize) -> FieldPath<'a> {
        FieldPath::Index(self, index)
    }
}

impl std::fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldPath::Root => Ok(()),
            FieldPath::Key(FieldPath::Root, key) => f.write_str(key),
            FieldPath::Key(parent, key) => write!(f, "{parent}.{key}"),
            FieldPath::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_found_by_name_sorted_and_the_later_of_two_wins() {
        let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
        let options: Options = [pair("b", "1"), pair("a", "2"), pair("b", "3")]
            .into_iter()
            .collect();
        assert_eq!(options.get("b").map(String::as_str), Some("3"));
        assert_eq!(options.get("a").map(String::as_str), Some("2"));
        assert_eq!(options.get("c"), None);
        let names: Vec<&String> = options.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(!options.is_empty() && Options::default().is_empty());
    }

    #[test]
    fn text_over_the_size_limit_is_refused_before_parsing() {
        // Found by the fuzzing harness: 2 MiB of deeply nested JSON became 192 MiB of parsed values.
        let minimal = r#"{"containerDefinitions":[]}"#;
        let at_limit = format!(
            "{minimal}{}",
            " ".repeat(MAX_TASK_DEFINITION_BYTES - minimal.len())
        );
        assert!(TaskDefinition::from_json(&at_limit).is_ok());

        let over = format!("{at_limit} ");
        let err = TaskDefinition::from_json(&over).unwrap_err();
        assert_eq!(
            err,
            TaskDefinitionError::TooLarge {
                bytes: MAX_TASK_DEFINITION_BYTES + 1
            }
        );
        assert_eq!(err.reason(), "too_large");
        assert_eq!(
            err.to_string(),
            format!(
                "the document is {} bytes; a task definition may be at most 512 KiB (ECS allows 64 KiB)",
                MAX_TASK_DEFINITION_BYTES + 1
            )
        );
    }

    #[test]
    fn describe_output_and_register_input_parse_alike() {
        let inner = r#"{"family":"web","revision":3,
            "taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
            "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec",
            "requiresCompatibilities":["FARGATE"],
            "containerDefinitions":[{"name":"web","image":"nginx",
              "logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/web","awslogs-create-group":true}}}]}"#;
        let wrapped = format!(r#"{{"taskDefinition":{inner},"tags":[]}}"#);
        let a = TaskDefinition::from_json(inner).unwrap();
        let b = TaskDefinition::from_json(&wrapped).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.display_name(), "web:3");
        let log = a.containers[0].log_configuration.as_ref().unwrap();
        assert_eq!(
            log.options.get("awslogs-create-group").map(String::as_str),
            Some("true")
        );
        assert_eq!(a.parsed_arn().unwrap().region, "us-east-1");
    }

    #[test]
    fn nulls_and_empty_strings_mean_absent() {
        let td = TaskDefinition::from_json(
            r#"{"family":"","executionRoleArn":"","containerDefinitions":[{"name":null,"image":"",
               "repositoryCredentials":{"credentialsParameter":""},"secrets":null,"logConfiguration":null,
               "environmentFiles":[{"type":"s3","value":""}],"credentialSpecs":[""]}]}"#,
        )
        .unwrap();
        assert_eq!(td.family, None);
        assert_eq!(td.execution_role_arn, None);
        let c = &td.containers[0];
        assert_eq!((c.name.clone(), c.image.clone()), (None, None));
        assert_eq!(c.repository_credentials, None);
        assert!(c.secrets.is_empty() && c.credential_specs.is_empty());
        assert_eq!(c.environment_files[0].value, None);
        assert_eq!(c.display_name(), "#0");
    }

    #[test]
    fn log_configuration_given_as_a_list_uses_its_first_entry() {
        let td = TaskDefinition::from_json(
            r#"{"containerDefinitions":[{"logConfiguration":[{"logDriver":"splunk",
               "secretOptions":[{"name":"t","valueFrom":"arn:aws:secretsmanager:us-east-1:123456789012:secret:t-AbCdEf"}]}]}]}"#,
        )
        .unwrap();
        let log = td.containers[0].log_configuration.as_ref().unwrap();
        assert!(log.was_list);
        assert_eq!(log.log_driver.as_deref(), Some("splunk"));
        assert_eq!(log.secret_options.len(), 1);
    }

    #[test]
    fn shapes_that_are_not_task_definitions_are_errors_that_say_where() {
        let cases = [
            ("not json", "invalid_json"),
            ("[]", "not_a_task_definition"),
            (r#"{"family":"x"}"#, "not_a_task_definition"),
            (r#"{"containerDefinitions":{}}"#, "wrong_type"),
            (r#"{"containerDefinitions":[{"image":5}]}"#, "wrong_type"),
        ];
        for (text, reason) in cases {
            let err = TaskDefinition::from_json(text).unwrap_err();
            assert_eq!(err.reason(), reason, "{text}: {err}");
        }
        let err =
            TaskDefinition::from_json(r#"{"containerDefinitions":[{"image":5}]}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`containerDefinitions[0].image` must be a string"
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_whole_path() {
        let cases = [
            (r#""family":1"#, "`family` must be a string"),
            (
                r#""requiresCompatibilities":"EC2""#,
                "`requiresCompatibilities` must be a list",
            ),
            (
                r#""containerDefinitions":[{},2]"#,
                "`containerDefinitions[1]` must be an object",
            ),
            (
                r#""containerDefinitions":[{"logConfiguration":[{"options":[]}]}]"#,
                "`containerDefinitions[0].logConfiguration[0].options` must be an object of strings",
            ),
            (
                r#""containerDefinitions":[{"logConfiguration":{"secretOptions":[{"valueFrom":[]}]}}]"#,
                "`containerDefinitions[0].logConfiguration.secretOptions[0].valueFrom` must be a string",
            ),
            (
                r#""containerDefinitions":[{"repositoryCredentials":{"credentialsParameter":true}}]"#,
                "`containerDefinitions[0].repositoryCredentials.credentialsParameter` must be a string",
            ),
            (
                r#""containerDefinitions":[{"firelensConfiguration":{"type":{}}}]"#,
                "`containerDefinitions[0].firelensConfiguration.type` must be a string",
            ),
            (
                r#""containerDefinitions":[{"environmentFiles":[{"type":"s3"},{"value":0}]}]"#,
                "`containerDefinitions[0].environmentFiles[1].value` must be a string",
            ),
            (
                r#""containerDefinitions":[{"secrets":[{"name":null},{"name":[]}]}]"#,
                "`containerDefinitions[0].secrets[1].name` must be a string",
            ),
            (
                r#""containerDefinitions":[{"credentialSpecs":{}}]"#,
                "`containerDefinitions[0].credentialSpecs` must be a list",
            ),
        ];
        for (fields, message) in cases {
            let text = if fields.contains("containerDefinitions") {
                format!("{{{fields}}}")
            } else {
                format!(r#"{{"containerDefinitions":[],{fields}}}"#)
            };
            let err = TaskDefinition::from_json(&text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text}");
        }
    }

    #[test]
    fn a_repeated_key_takes_its_last_value() {
        let td = TaskDefinition::from_json(
            r#"{"family":1,"family":"web","revision":"x","revision":4,"containerDefinitions":[{"image":5}],
               "containerDefinitions":[{"name":"a","name":"b","secrets":{},"secrets":null}]}"#,
        )
        .unwrap();
        assert_eq!(td.display_name(), "web:4");
        assert_eq!(td.containers.len(), 1);
        assert_eq!(td.containers[0].name.as_deref(), Some("b"));
        let wrapped = TaskDefinition::from_json(
            r#"{"taskDefinition":{"containerDefinitions":[]},"taskDefinition":"gone","family":"outer",
               "containerDefinitions":[]}"#,
        )
        .unwrap();
        assert_eq!(wrapped.family.as_deref(), Some("outer"));
    }

    #[test]
    fn the_wrapper_is_used_only_when_it_is_an_object() {
        let outer = r#""family":"outer","containerDefinitions":[]"#;
        let td =
            TaskDefinition::from_json(&format!(r#"{{"taskDefinition":null,{outer}}}"#)).unwrap();
        assert_eq!(td.family.as_deref(), Some("outer"));
        let err =
            TaskDefinition::from_json(&format!(r#"{{"taskDefinition":{{"family":"x"}},{outer}}}"#))
                .unwrap_err();
        assert_eq!(err, TaskDefinitionError::NotATaskDefinition);
        // Only the outermost object is unwrapped.
        let err = TaskDefinition::from_json(
            r#"{"taskDefinition":{"taskDefinition":{"containerDefinitions":[]}}}"#,
        )
        .unwrap_err();
        assert_eq!(err, TaskDefinitionError::NotATaskDefinition);
        let td = TaskDefinition::from_json(r#"{"containerDefinitions":null}"#).unwrap();
        assert!(td.containers.is_empty());
        for text in [
            "5",
            "\"x\"",
            "null",
            "true",
            "[{\"containerDefinitions\":[]}]",
        ] {
            let err = TaskDefinition::from_json(text).unwrap_err();
            assert_eq!(err, TaskDefinitionError::NotATaskDefinition, "{text}");
        }
    }

    #[test]
    fn invalid_json_anywhere_wins_over_a_wrong_type() {
        let err = TaskDefinition::from_json(
            r#"{"family":1,"containerDefinitions":[{"image":2}],"x":[1,}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "not valid JSON: expected value at line 1 column 57"
        );
        let err = TaskDefinition::from_json(r#"{"containerDefinitions":[]} x"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not valid JSON: trailing characters at line 1 column 29"
        );
        let deep = format!(
            r#"{{"containerDefinitions":[],"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let err = TaskDefinition::from_json(&deep).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not valid JSON: recursion limit exceeded at line 1 column 158"
        );
        let err =
            TaskDefinition::from_json(r#"{"containerDefinitions":[{"x":"\q"}]}"#).unwrap_err();
        assert_eq!(err.reason(), "invalid_json");
    }

    #[test]
    fn of_several_wrong_fields_the_first_in_reading_order_is_named() {
        let cases = [
            (
                r#"{"family":1,"containerDefinitions":[{"image":2}]}"#,
                "`containerDefinitions[0].image` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"name":1,"image":2,"logConfiguration":3}]}"#,
                "`containerDefinitions[0].logConfiguration` must be an object",
            ),
            (
                r#"{"containerDefinitions":[{"name":1,"firelensConfiguration":{"options":1},
                   "repositoryCredentials":{"credentialsParameter":1}}]}"#,
                "`containerDefinitions[0].repositoryCredentials.credentialsParameter` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"name":1,"firelensConfiguration":{"options":1,"type":2}}]}"#,
                "`containerDefinitions[0].firelensConfiguration.type` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"credentialSpecs":1,"environmentFiles":1,"secrets":1,"image":1}]}"#,
                "`containerDefinitions[0].image` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"credentialSpecs":1,"environmentFiles":1,"secrets":1}]}"#,
                "`containerDefinitions[0].secrets` must be a list",
            ),
            (
                r#"{"containerDefinitions":[{"credentialSpecs":1,"environmentFiles":[{"type":1}]}]}"#,
                "`containerDefinitions[0].environmentFiles[0].type` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"logConfiguration":{"secretOptions":1,"options":2,"logDriver":3}}]}"#,
                "`containerDefinitions[0].logConfiguration.logDriver` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"logConfiguration":{"secretOptions":1,"options":2}}]}"#,
                "`containerDefinitions[0].logConfiguration.options` must be an object of strings",
            ),
            (
                r#"{"containerDefinitions":[{},{"image":1},3]}"#,
                "`containerDefinitions[1].image` must be a string",
            ),
            (
                r#"{"requiresCompatibilities":1,"executionRoleArn":1,"family":1,"taskDefinitionArn":1,"containerDefinitions":[]}"#,
                "`taskDefinitionArn` must be a string",
            ),
            (
                r#"{"requiresCompatibilities":1,"executionRoleArn":1,"family":1,"containerDefinitions":[]}"#,
                "`family` must be a string",
            ),
            (
                r#"{"requiresCompatibilities":1,"executionRoleArn":1,"containerDefinitions":[]}"#,
                "`executionRoleArn` must be a string",
            ),
            (
                r#"{"containerDefinitions":[{"logConfiguration":[null,{"logDriver":1}]}]}"#,
                "`containerDefinitions[0].logConfiguration[0]` must be an object",
            ),
        ];
        for (text, message) in cases {
            let err = TaskDefinition::from_json(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text}");
        }
    }

    #[test]
    fn values_of_other_types_are_dropped_or_read_as_absent_where_no_error_is_due() {
        let td = TaskDefinition::from_json(
            r#"{"revision":"3","requiresCompatibilities":[" EC2 ","",1,null,"FARGATE"],
               "containerDefinitions":[{"credentialSpecs":[" a ","",2,"b"],"secrets":[5,{"name":" s "}],
               "environmentFiles":[null,{"type":"s3","value":" arn "}],"repositoryCredentials":"x",
               "firelensConfiguration":7,"logConfiguration":[],"fam\u0069ly":1,"n\u0061me":" x\t"},
               {"repositoryCredentials":[],"firelensConfiguration":{"type":" fluentbit ","options":{
               "s":" v ","t":true,"f":false,"i":-3,"u":18446744073709551615,"d":1.5,"e":1e3,"n":null,"o":{},"l":[]}},
               "logConfiguration":[{"logDriver":"awslogs"},1]}]}"#,
        )
        .unwrap();
        assert_eq!(td.revision, None);
        assert_eq!(td.requires_compatibilities, [" EC2 ", "", "FARGATE"]);
        let c = &td.containers[0];
        assert_eq!(c.name.as_deref(), Some("x"));
        assert_eq!(c.credential_specs, [" a ", "b"]);
        assert_eq!(c.secrets[0], SecretEntry::default());
        assert_eq!(c.secrets[1].name.as_deref(), Some("s"));
        assert_eq!((c.secrets[1].index, c.environment_files[1].index), (1, 1));
        assert_eq!(
            (
                c.environment_files[0].kind.clone(),
                c.environment_files[0].value.clone()
            ),
            (None, None)
        );
        assert_eq!(c.environment_files[1].value.as_deref(), Some("arn"));
        assert_eq!(c.repository_credentials, None);
        assert_eq!(
            c.firelens_configuration,
            Some(FirelensConfiguration::default())
        );
        assert_eq!(c.log_configuration, None);
        let c = &td.containers[1];
        assert_eq!(c.repository_credentials, None);
        let firelens = c.firelens_configuration.as_ref().unwrap();
        assert_eq!(firelens.kind.as_deref(), Some("fluentbit"));
        let options: Vec<(&str, &str)> = firelens
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            options,
            [
                ("d", "1.5"),
                ("e", "1000.0"),
                ("f", "false"),
                ("i", "-3"),
                ("s", " v "),
                ("t", "true"),
                ("u", "18446744073709551615")
            ]
        );
        let log = c.log_configuration.as_ref().unwrap();
        assert!(log.was_list && log.log_driver.as_deref() == Some("awslogs"));
        let big = TaskDefinition::from_json(
            r#"{"revision":9223372036854775808,"containerDefinitions":[]}"#,
        );
        assert_eq!(big.unwrap().revision, None);
        let negative = TaskDefinition::from_json(r#"{"revision":-2,"containerDefinitions":[]}"#);
        assert_eq!(negative.unwrap().revision, Some(-2));
    }

    #[test]
    fn a_json_value_parses_as_its_text_does() {
        let text = r#"{"taskDefinition":{"family":"web","revision":2,"containerDefinitions":[{"name":"a",
            "logConfiguration":{"logDriver":"awslogs","options":{"x":1.5,"y":true}},"secrets":[{"name":"s"}]}]}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            TaskDefinition::from_value(&value),
            TaskDefinition::from_json(text)
        );
        let value: Value =
            serde_json::from_str(r#"{"containerDefinitions":[{"image":[]}]}"#).unwrap();
        assert_eq!(
            TaskDefinition::from_value(&value).unwrap_err().to_string(),
            "`containerDefinitions[0].image` must be a string"
        );
    }

    #[test]
    fn ec2_only_means_exactly_ec2() {
        let td = |c: &[&str]| TaskDefinition {
            requires_compatibilities: c.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert!(td(&["EC2"]).is_ec2_only());
        assert!(!td(&["EC2", "FARGATE"]).is_ec2_only());
        assert!(!td(&[]).is_ec2_only());
    }
}
