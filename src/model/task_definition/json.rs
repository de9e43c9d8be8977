//! Reading a task definition's JSON straight into the model, without building a `serde_json::Value` first.
//!
//! Each object is read into slots, one per field the model keeps (the last of a repeated key wins, as it does when
//! JSON is read into a map); every JSON type is accepted there, so only a syntax error stops the parse, and every
//! value goes through `deserialize_any`, as a `Value` is read, so the parser's checks and messages are the same.
//! The slots then become the model in a fixed order, so a field of the wrong type is reported by the path of the
//! first wrong field in that order, whatever order the text has the keys in.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{
    ContainerDefinition, EnvironmentFile, FieldPath, FirelensConfiguration, LogConfiguration,
    Options, SecretEntry, TaskDefinition, TaskDefinitionError,
};

/// Read the task definition in the JSON `document` (any of the shapes the module doc of the model lists): the
/// outer error is the JSON's (syntax), the inner one the task definition's (shape, types).
pub(super) fn parse<'de, D: Deserializer<'de>>(
    document: D,
) -> Result<Result<TaskDefinition, TaskDefinitionError>, D::Error> {
    let Json(root) = Json::<Obj<Root>>::deserialize(document)?;
    let fields = match root {
        Obj::Object(Root {
            wrapper: Obj::Object(inner),
            ..
        }) => inner,
        Obj::Object(Root { outer, .. }) => outer,
        Obj::Null | Obj::Other => return Ok(Err(TaskDefinitionError::NotATaskDefinition)),
    };
    Ok(fields.task_definition())
}

/// What a field of the wrong type must be, e.g. "a string".
type Expected = &'static str;

/// A JSON boolean, number or string.
enum Scalar<'a> {
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(&'a str),
}

/// A slot read from any JSON value: each kind of value becomes one of the slot's values, none is an error.
trait FromJson<'de>: Sized {
    /// The slot for a value of a kind it does not read.
    fn other() -> Self;

    /// The slot for `null`.
    fn null() -> Self {
        Self::other()
    }

    /// The slot for a boolean, a number or a string.
    fn scalar(_: Scalar<'_>) -> Self {
        Self::other()
    }

    /// The slot for a list, read to its end.
    fn list<A: SeqAccess<'de>>(mut list: A) -> Result<Self, A::Error> {
        skip_list(&mut list)?;
        Ok(Self::other())
    }

    /// The slot for an object, read to its end.
    fn object<A: MapAccess<'de>>(mut object: A) -> Result<Self, A::Error> {
        while let Some(Json(Key(_))) = object.next_key()? {
            skip_value(&mut object)?;
        }
        Ok(Self::other())
    }
}

/// A slot as serde reads it: through `deserialize_any`, whatever the value is.
struct Json<T>(T);

impl<'de, T: FromJson<'de>> Deserialize<'de> for Json<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(AnyValue(PhantomData))
            .map(Json)
    }
}

/// The visitor that hands each kind of JSON value to the slot type `T`.
struct AnyValue<T>(PhantomData<T>);

impl<'de, T: FromJson<'de>> Visitor<'de> for AnyValue<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::null())
    }

    fn visit_bool<E>(self, v: bool) -> Result<T, E> {
        Ok(T::scalar(Scalar::Bool(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<T, E> {
        Ok(T::scalar(Scalar::U64(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<T, E> {
        Ok(T::scalar(Scalar::I64(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<T, E> {
        Ok(T::scalar(Scalar::F64(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<T, E> {
        Ok(T::scalar(Scalar::Str(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, list: A) -> Result<T, A::Error> {
        T::list(list)
    }

    fn visit_map<A: MapAccess<'de>>(self, object: A) -> Result<T, A::Error> {
        T::object(object)
    }
}

/// A value that is not kept.
struct Skip;

impl FromJson<'_> for Skip {
    fn other() -> Self {
        Skip
    }
}

/// Read the rest of `list`, keeping nothing.
fn skip_list<'de, A: SeqAccess<'de>>(list: &mut A) -> Result<(), A::Error> {
    while list.next_element::<Json<Skip>>()?.is_some() {}
    Ok(())
}

/// Read the value of the key just read, keeping nothing.
fn skip_value<'de, A: MapAccess<'de>>(object: &mut A) -> Result<(), A::Error> {
    object.next_value::<Json<Skip>>().map(drop)
}

/// Read the value of the key just read into the slot `T`.
fn value<'de, T: FromJson<'de>, A: MapAccess<'de>>(object: &mut A) -> Result<T, A::Error> {
    object.next_value::<Json<T>>().map(|Json(slot)| slot)
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Json<Key<'de>> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(KeyVisitor)
            .map(|key| Json(Key(key)))
    }
}

/// The visitor of object keys (always strings in JSON).
struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

/// An object's slots, filled key by key.
trait Fields<'de>: Default {
    /// Read the value of `key` (skip it when no slot keeps it).
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error>;
}

impl<'de, T: Fields<'de>> Fields<'de> for Box<T> {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        (**self).field(key, object)
    }
}

/// A value that is read as the object `T` when it is one.
#[derive(Default)]
enum Obj<T> {
    /// `null` (or absent).
    #[default]
    Null,
    /// An object.
    Object(T),
    /// Any other value.
    Other,
}

impl<T: Default> Obj<T> {
    /// The object's slots, or empty slots when the value is not an object.
    fn or_empty(self) -> T {
        match self {
            Obj::Object(fields) => fields,
            Obj::Null | Obj::Other => T::default(),
        }
    }
}

impl<'de, T: Fields<'de>> FromJson<'de> for Obj<T> {
    fn other() -> Self {
        Obj::Other
    }

    fn null() -> Self {
        Obj::Null
    }

    fn object<A: MapAccess<'de>>(mut object: A) -> Result<Self, A::Error> {
        let mut fields = T::default();
        while let Some(Json(Key(key))) = object.next_key()? {
            fields.field(&key, &mut object)?;
        }
        Ok(Obj::Object(fields))
    }
}

/// A string field: `null` and blank text are `None`, text is trimmed.
struct Str(Result<Option<String>, Expected>);

impl Default for Str {
    fn default() -> Self {
        Str(Ok(None))
    }
}

impl FromJson<'_> for Str {
    fn other() -> Self {
        Str(Err("a string"))
    }

    fn null() -> Self {
        Str::default()
    }

    fn scalar(value: Scalar<'_>) -> Self {
        match value {
            Scalar::Str(text) => {
                let text = text.trim();
                Str(Ok((!text.is_empty()).then(|| text.to_string())))
            }
            _ => Str::other(),
        }
    }
}

/// A string in a list, as written; `None` for any other value (dropped).
struct Text(Option<String>);

impl FromJson<'_> for Text {
    fn other() -> Self {
        Text(None)
    }

    fn scalar(value: Scalar<'_>) -> Self {
        match value {
            Scalar::Str(text) => Text(Some(text.to_string())),
            _ => Text(None),
        }
    }
}

/// An integer (`revision`); `None` for any other value or one beyond `i64`.
#[derive(Default)]
struct Int(Option<i64>);

impl FromJson<'_> for Int {
    fn other() -> Self {
        Int(None)
    }

    fn scalar(value: Scalar<'_>) -> Self {
        match value {
            Scalar::U64(n) => Int(i64::try_from(n).ok()),
            Scalar::I64(n) => Int(Some(n)),
            _ => Int(None),
        }
    }
}

/// A list field: `null` is empty.
struct List<T>(Result<Vec<T>, Expected>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(Ok(Vec::new()))
    }
}

impl<'de, T: FromJson<'de>> FromJson<'de> for List<T> {
    fn other() -> Self {
        List(Err("a list"))
    }

    fn null() -> Self {
        List::default()
    }

    fn list<A: SeqAccess<'de>>(mut list: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(list.size_hint().unwrap_or(0));
        while let Some(Json(item)) = list.next_element()? {
            items.push(item);
        }
        Ok(List(Ok(items)))
    }
}

/// An `options` object: every value kept by name (the last of a repeated name wins, even `null`), booleans and
/// numbers as their JSON text, other values as `None` (dropped).
struct OptionsField(Result<Vec<(String, Option<String>)>, Expected>);

impl Default for OptionsField {
    fn default() -> Self {
        OptionsField(Ok(Vec::new()))
    }
}

impl<'de> FromJson<'de> for OptionsField {
    fn other() -> Self {
        OptionsField(Err("an object of strings"))
    }

    fn null() -> Self {
        OptionsField::default()
    }

    fn object<A: MapAccess<'de>>(mut object: A) -> Result<Self, A::Error> {
        let mut options = Vec::new();
        while let Some(Json(Key(name))) = object.next_key()? {
            let OptionValue(value) = value(&mut object)?;
            options.push((name.into_owned(), value));
        }
        Ok(OptionsField(Ok(options)))
    }
}

/// The value of one option.
struct OptionValue(Option<String>);

impl FromJson<'_> for OptionValue {
    fn other() -> Self {
        OptionValue(None)
    }

    fn scalar(value: Scalar<'_>) -> Self {
        OptionValue(match value {
            Scalar::Str(text) => Some(text.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::U64(n) => Some(n.to_string()),
            Scalar::I64(n) => Some(n.to_string()),
            Scalar::F64(n) => serde_json::Number::from_f64(n).map(|n| n.to_string()),
        })
    }
}

/// The outermost object: a task definition, or describe output holding one in `taskDefinition`.
#[derive(Default)]
struct Root {
    outer: TaskDefinitionFields,
    wrapper: Obj<TaskDefinitionFields>,
}

impl<'de> Fields<'de> for Root {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "taskDefinition" => self.wrapper = value(object)?,
            _ => self.outer.field(key, object)?,
        }
        Ok(())
    }
}

/// A task definition's slots.
#[derive(Default)]
struct TaskDefinitionFields {
    has_containers: bool,
    /// Boxed: the list then stays small, rather than a run of large slots (the allocator handles a request of a
    /// kilobyte or more by first merging every small block freed so far).
    containers: List<Obj<Box<ContainerFields>>>,
    arn: Str,
    family: Str,
    revision: Int,
    execution_role_arn: Str,
    requires_compatibilities: List<Text>,
}

impl<'de> Fields<'de> for TaskDefinitionFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "containerDefinitions" => {
                self.has_containers = true;
                self.containers = value(object)?;
            }
            "taskDefinitionArn" => self.arn = value(object)?,
            "family" => self.family = value(object)?,
            "revision" => self.revision = value(object)?,
            "executionRoleArn" => self.execution_role_arn = value(object)?,
            "requiresCompatibilities" => self.requires_compatibilities = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// A container definition's slots.
#[derive(Default)]
struct ContainerFields {
    name: Str,
    image: Str,
    log_configuration: LogField,
    secrets: List<Obj<SecretFields>>,
    repository_credentials: Obj<CredentialsFields>,
    environment_files: List<Obj<FileFields>>,
    firelens_configuration: Obj<FirelensFields>,
    credential_specs: List<Text>,
}

impl<'de> Fields<'de> for ContainerFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = value(object)?,
            "image" => self.image = value(object)?,
            "logConfiguration" => self.log_configuration = value(object)?,
            "secrets" => self.secrets = value(object)?,
            "repositoryCredentials" => self.repository_credentials = value(object)?,
            "environmentFiles" => self.environment_files = value(object)?,
            "firelensConfiguration" => self.firelens_configuration = value(object)?,
            "credentialSpecs" => self.credential_specs = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// `logConfiguration`: one value, or a list whose first entry is used.
enum LogField {
    Single(Obj<LogFields>),
    List(Option<Obj<LogFields>>),
}

impl Default for LogField {
    fn default() -> Self {
        LogField::Single(Obj::Null)
    }
}

impl<'de> FromJson<'de> for LogField {
    fn other() -> Self {
        LogField::Single(Obj::Other)
    }

    fn null() -> Self {
        LogField::Single(Obj::Null)
    }

    fn list<A: SeqAccess<'de>>(mut list: A) -> Result<Self, A::Error> {
        let first = list.next_element()?.map(|Json(first)| first);
        skip_list(&mut list)?;
        Ok(LogField::List(first))
    }

    fn object<A: MapAccess<'de>>(object: A) -> Result<Self, A::Error> {
        Obj::object(object).map(LogField::Single)
    }
}

/// `logConfiguration`'s slots.
#[derive(Default)]
struct LogFields {
    log_driver: Str,
    options: OptionsField,
    secret_options: List<Obj<SecretFields>>,
}

impl<'de> Fields<'de> for LogFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "logDriver" => self.log_driver = value(object)?,
            "options" => self.options = value(object)?,
            "secretOptions" => self.secret_options = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// `firelensConfiguration`'s slots.
#[derive(Default)]
struct FirelensFields {
    kind: Str,
    options: OptionsField,
}

impl<'de> Fields<'de> for FirelensFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = value(object)?,
            "options" => self.options = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// An entry of `secrets` or `secretOptions`.
#[derive(Default)]
struct SecretFields {
    name: Str,
    value_from: Str,
}

impl<'de> Fields<'de> for SecretFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "name" => self.name = value(object)?,
            "valueFrom" => self.value_from = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// An entry of `environmentFiles`.
#[derive(Default)]
struct FileFields {
    kind: Str,
    value: Str,
}

impl<'de> Fields<'de> for FileFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "type" => self.kind = value(object)?,
            "value" => self.value = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// `repositoryCredentials`.
#[derive(Default)]
struct CredentialsFields {
    credentials_parameter: Str,
}

impl<'de> Fields<'de> for CredentialsFields {
    fn field<A: MapAccess<'de>>(&mut self, key: &str, object: &mut A) -> Result<(), A::Error> {
        match key {
            "credentialsParameter" => self.credentials_parameter = value(object)?,
            _ => skip_value(object)?,
        }
        Ok(())
    }
}

/// A slot's value, or the error naming the field `key` of `parent` when it has the wrong type.
fn at<T>(
    slot: Result<T, Expected>,
    parent: &FieldPath<'_>,
    key: &str,
) -> Result<T, TaskDefinitionError> {
    slot.map_err(|expected| TaskDefinitionError::WrongType {
        path: parent.key(key).to_string(),
        expected,
    })
}

/// The error for a value at `path` that must be an object.
fn not_an_object(path: &FieldPath<'_>) -> TaskDefinitionError {
    TaskDefinitionError::WrongType {
        path: path.to_string(),
        expected: "an object",
    }
}

impl TaskDefinitionFields {
    /// The task definition: the containers first, then the other fields, the first wrong one an error.
    fn task_definition(self) -> Result<TaskDefinition, TaskDefinitionError> {
        if !self.has_containers {
            return Err(TaskDefinitionError::NotATaskDefinition);
        }
        let root = FieldPath::Root;
        let containers = at(self.containers.0, &root, "containerDefinitions")?
            .into_iter()
            .enumerate()
            .map(|(index, c)| container(index, c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TaskDefinition {
            arn: at(self.arn.0, &root, "taskDefinitionArn")?,
            family: at(self.family.0, &root, "family")?,
            revision: self.revision.0,
            execution_role_arn: at(self.execution_role_arn.0, &root, "executionRoleArn")?,
            requires_compatibilities: at(
                self.requires_compatibilities.0,
                &root,
                "requiresCompatibilities",
            )?
            .into_iter()
            .filter_map(|Text(text)| text)
            .collect(),
            containers,
        })
    }
}

/// Container `index`: its `logConfiguration`, `repositoryCredentials` and `firelensConfiguration` first, then its
/// other fields.
fn container(
    index: usize,
    fields: Obj<Box<ContainerFields>>,
) -> Result<ContainerDefinition, TaskDefinitionError> {
    let containers = FieldPath::Root.key("containerDefinitions");
    let here = containers.index(index);
    let Obj::Object(c) = fields else {
        return Err(not_an_object(&here));
    };
    let c = *c;
    let log_configuration = match c.log_configuration {
        LogField::Single(Obj::Null) | LogField::List(None) => None,
        LogField::List(Some(first)) => Some(log_configuration(
            first,
            &here.key("logConfiguration").index(0),
            true,
        )?),
        LogField::Single(other) => Some(log_configuration(
            other,
            &here.key("logConfiguration"),
            false,
        )?),
    };
    let repository_credentials = match c.repository_credentials {
        Obj::Object(creds) => at(
            creds.credentials_parameter.0,
            &here.key("repositoryCredentials"),
            "credentialsParameter",
        )?,
        Obj::Null | Obj::Other => None,
    };
    let firelens_configuration = match c.firelens_configuration {
        Obj::Null => None,
        Obj::Object(firelens) => {
            let path = here.key("firelensConfiguration");
            Some(FirelensConfiguration {
                kind: at(firelens.kind.0, &path, "type")?,
                options: options(firelens.options, &path)?,
            })
        }
        Obj::Other => Some(FirelensConfiguration::default()),
    };
    Ok(ContainerDefinition {
        index,
        name: at(c.name.0, &here, "name")?,
        image: at(c.image.0, &here, "image")?,
        log_configuration,
        secrets: secret_entries(c.secrets, &here, "secrets")?,
        repository_credentials,
        environment_files: environment_files(c.environment_files, &here)?,
        firelens_configuration,
        credential_specs: at(c.credential_specs.0, &here, "credentialSpecs")?
            .into_iter()
            .filter_map(|Text(text)| text.filter(|s| !s.is_empty()))
            .collect(),
    })
}

/// A `logConfiguration` (at `path`, which must be an object).
fn log_configuration(
    fields: Obj<LogFields>,
    path: &FieldPath<'_>,
    was_list: bool,
) -> Result<LogConfiguration, TaskDefinitionError> {
    let Obj::Object(log) = fields else {
        return Err(not_an_object(path));
    };
    Ok(LogConfiguration {
        log_driver: at(log.log_driver.0, path, "logDriver")?,
        options: options(log.options, path)?,
        secret_options: secret_entries(log.secret_options, path, "secretOptions")?,
        was_list,
    })
}

/// The list `key` of `parent` of `{name, valueFrom}` entries (an entry that is not an object has neither).
fn secret_entries(
    list: List<Obj<SecretFields>>,
    parent: &FieldPath<'_>,
    key: &str,
) -> Result<Vec<SecretEntry>, TaskDefinitionError> {
    let path = parent.key(key);
    at(list.0, parent, key)?
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let fields = entry.or_empty();
            let here = path.index(index);
            Ok(SecretEntry {
                index,
                name: at(fields.name.0, &here, "name")?,
                value_from: at(fields.value_from.0, &here, "valueFrom")?,
            })
        })
        .collect()
}

/// `environmentFiles` of the container at `parent` (an entry that is not an object has neither field).
fn environment_files(
    list: List<Obj<FileFields>>,
    parent: &FieldPath<'_>,
) -> Result<Vec<EnvironmentFile>, TaskDefinitionError> {
    let path = parent.key("environmentFiles");
    at(list.0, parent, "environmentFiles")?
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let fields = entry.or_empty();
            let here = path.index(index);
            Ok(EnvironmentFile {
                index,
                kind: at(fields.kind.0, &here, "type")?,
                value: at(fields.value.0, &here, "value")?,
            })
        })
        .collect()
}

/// The `options` of the object at `parent`: the last value of each name, those that are not text dropped.
fn options(field: OptionsField, parent: &FieldPath<'_>) -> Result<Options, TaskDefinitionError> {
    let mut options = at(field.0, parent, "options")?;
    options.reverse();
    options.sort_by(|a, b| a.0.cmp(&b.0));
    options.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok(options
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect())
}
