//! The policy document model ([`PolicyDocument`], [`Statement`], [`Permission`]),
//! parsing every shape IAM accepts and returns, and deterministic minified
//! serialisation (serde, with the key order and string-or-list shapes IAM documents).
//!
//! This file keeps documents as written (order, case, duplicates and `Sid`
//! survive a parse/serialise round trip). It deliberately does not decide what
//! two documents mean or whether they are the same; that is `normalize.rs`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::PolicyError;

/// Condition block: operator (e.g. `"StringEquals"`) -> condition key (e.g.
/// `"aws:sourceVpce"`) -> values.
///
/// A `BTreeMap` so iteration, and therefore serialisation, is deterministic.
/// Values are kept as strings whatever their JSON type (`true` -> `"true"`),
/// because IAM compares them as strings.
pub type Conditions = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The policy language version this module writes.
///
/// It is the only version under which IAM expands policy variables.
pub const POLICY_VERSION: &str = "2012-10-17";

/// The largest text [`PolicyDocument::parse`] reads. IAM's policies are at most tens of KiB even percent-encoded;
/// parsing deeply nested JSON allocates up to a hundred times the text's size, so a bound on the text bounds memory.
pub const MAX_POLICY_TEXT_BYTES: usize = 512 << 10;

/// The older policy language version, still accepted when reading.
pub const LEGACY_POLICY_VERSION: &str = "2008-10-17";

/// One atomic permission we want to grant: Allow `action` on `resource` under `conditions`.
///
/// This is what callers derive from task definitions; [`crate::policy::compile`]
/// turns a set of them into the smallest policy that grants exactly them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Permission {
    /// The IAM action, e.g. `ecr:BatchGetImage`.
    pub action: String,
    /// The resource ARN (or `*`).
    pub resource: String,
    /// Conditions that must all hold; values should be sorted and deduplicated.
    pub conditions: Conditions,
}

impl Permission {
    /// An unconditional permission for `action` on `resource`.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Permission {
            action: action.into(),
            resource: resource.into(),
            conditions: Conditions::new(),
        }
    }

    /// Adds `values` under `operator` / `key`, keeping the values sorted and deduplicated.
    ///
    /// Calling it twice for the same operator and key unions the values, which
    /// is what a second value in an IAM condition list means.
    pub fn with_condition(
        mut self,
        operator: &str,
        key: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let slot = self
            .conditions
            .entry(operator.to_owned())
            .or_default()
            .entry(key.to_owned())
            .or_default();
        slot.extend(values.into_iter().map(Into::into));
        slot.sort();
        slot.dedup();
        self
    }
}

/// Whether a statement allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

impl Effect {
    /// The exact spelling IAM uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IAM policy document (identity policy or trust policy) as written.
///
/// `Id` is accepted when parsing but not kept: it has no effect on meaning.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PolicyDocument {
    /// `Version`, when present; absent means IAM assumes `2008-10-17`.
    #[serde(rename = "Version", skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Statements in document order.
    #[serde(rename = "Statement")]
    pub statements: Vec<Statement>,
}

/// One statement as written: lists keep their order, case and duplicates.
///
/// Serialised with its keys in IAM's documented order (the field order), absent keys left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// `Sid`, a label without meaning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`: `"*"` or an object such as `{"Service": "ecs-tasks.amazonaws.com"}`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_principal"
    )]
    pub principal: Option<Value>,
    /// `NotPrincipal`, same shapes as `Principal`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_principal"
    )]
    pub not_principal: Option<Value>,
    /// `Action`; exclusive with `not_action`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_list"
    )]
    pub action: Option<Vec<String>>,
    /// `NotAction`; exclusive with `action`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_list"
    )]
    pub not_action: Option<Vec<String>>,
    /// `Resource`; exclusive with `not_resource`; both absent in trust policies.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_list"
    )]
    pub resource: Option<Vec<String>>,
    /// `NotResource`; exclusive with `resource`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_list"
    )]
    pub not_resource: Option<Vec<String>>,
    /// `Condition`; empty when absent.
    #[serde(
        skip_serializing_if = "Conditions::is_empty",
        serialize_with = "serialize_conditions"
    )]
    pub condition: Conditions,
}

impl Statement {
    /// An empty statement with the given effect, to be filled in field by field.
    ///
    /// It is not valid IAM until it has an action; it exists so that callers
    /// and tests need not spell out nine fields.
    pub fn new(effect: Effect) -> Self {
        Statement {
            sid: None,
            effect,
            principal: None,
            not_principal: None,
            action: None,
            not_action: None,
            resource: None,
            not_resource: None,
            condition: Conditions::new(),
        }
    }

    /// This statement alone as minified JSON, keys in IAM's documented order.
    ///
    /// Used by [`PolicyDocument::to_json`] and as the comparison key for
    /// statements that cannot be expanded into grants.
    pub fn to_json(&self) -> String {
        minified(self)
    }
}

impl PolicyDocument {
    /// Parse what IAM returns, URL-encoded or raw.
    ///
    /// GetRolePolicy and GetRole (trust policy) return percent-encoded text
    /// (`%7B%22Version%22...`); moto's GetPolicyVersion returns raw JSON. The
    /// text is percent-decoded only when, trimmed, it does not start with `{`,
    /// and with `percent_decode_str`, not form decoding, so `+` stays `+`.
    pub fn parse(text: &str) -> Result<PolicyDocument, PolicyError> {
        if text.len() > MAX_POLICY_TEXT_BYTES {
            return Err(PolicyError::TooLarge { bytes: text.len() });
        }
        let trimmed = text.trim();
        let decoded: Cow<'_, str> = if trimmed.starts_with('{') {
            Cow::Borrowed(trimmed)
        } else {
            percent_decode_str(trimmed)
                .decode_utf8()
                .map_err(|source| PolicyError::DecodeText { source })?
        };
        let value: Value =
            serde_json::from_str(&decoded).map_err(|source| PolicyError::ParseJson { source })?;
        Self::from_value(value)
    }

    /// Read an already-parsed JSON value as a policy document (its strings are moved, not copied).
    ///
    /// Same rules as [`PolicyDocument::parse`], for callers that hold a `Value`.
    pub fn from_value(value: Value) -> Result<PolicyDocument, PolicyError> {
        let mut root = match value {
            Value::Object(root) => root,
            other => {
                return Err(PolicyError::document(
                    "(root)",
                    format!("expected a JSON object, found {}", kind(&other)),
                ));
            }
        };
        if let Some(unknown) = root
            .keys()
            .find(|k| !matches!(k.as_str(), "Version" | "Id" | "Statement"))
        {
            return Err(PolicyError::document(unknown, "unknown policy key"));
        }
        let version = match root.remove("Version") {
            None => None,
            Some(Value::String(v)) if v == POLICY_VERSION || v == LEGACY_POLICY_VERSION => Some(v),
            Some(other) => {
                return Err(PolicyError::document(
                    "Version",
                    format!(
                        "expected \"{POLICY_VERSION}\" or \"{LEGACY_POLICY_VERSION}\", found {}",
                        describe(&other)
                    ),
                ));
            }
        };
        match root.get("Id") {
            None | Some(Value::String(_)) => {}
            Some(other) => {
                return Err(PolicyError::document(
                    "Id",
                    format!("expected a string, found {}", kind(other)),
                ));
            }
        }
        let statements = match root.remove("Statement") {
            None => return Err(PolicyError::document("Statement", "missing")),
            Some(Value::Object(one)) => vec![read_statement(0, one)?],
            Some(Value::Array(many)) => many
                .into_iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::Object(object) => read_statement(index, object),
                    other => Err(PolicyError::statement(
                        index,
                        "Statement",
                        format!("expected an object, found {}", kind(&other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(PolicyError::document(
                    "Statement",
                    format!(
                        "expected an object or a list of objects, found {}",
                        kind(&other)
                    ),
                ));
            }
        };
        Ok(PolicyDocument {
            version,
            statements,
        })
    }

    /// Minified, deterministic JSON: `{"Version":"2012-10-17","Statement":[...]}`.
    ///
    /// Statement keys come in the order Sid, Effect, Principal, NotPrincipal,
    /// Action, NotAction, Resource, NotResource, Condition; a one-element list
    /// is written as a plain string (smaller, and IAM accepts both); object
    /// keys inside `Principal` and `Condition` are sorted; no whitespace.
    /// `Version` is omitted only when the document has none.
    pub fn to_json(&self) -> String {
        minified(self)
    }

    /// The document serialised with every object's keys sorted (`Statement` before `Version`, a statement's
    /// `Action` first and `Sid` last), the way a `serde_json::Value` of it prints: the key order of the JSON
    /// reports (`derive --output json`, `plan --output json`), written without building a `Value`.
    pub fn sorted_keys(&self) -> impl Serialize + '_ {
        SortedDocument(self)
    }
}

/// [`PolicyDocument::sorted_keys`].
struct SortedDocument<'a>(&'a PolicyDocument);

impl Serialize for SortedDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let doc = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("Statement", &SortedStatements(&doc.statements))?;
        if let Some(version) = &doc.version {
            map.serialize_entry("Version", version)?;
        }
        map.end()
    }
}

/// A document's statements, each with its keys sorted.
struct SortedStatements<'a>(&'a [Statement]);

impl Serialize for SortedStatements<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(SortedStatement))
    }
}

/// One statement with its keys sorted; the values are written as [`Statement`]'s own serialisation writes them.
struct SortedStatement<'a>(&'a Statement);

impl Serialize for SortedStatement<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut map = serializer.serialize_map(None)?;
        entry(&mut map, "Action", list(&s.action))?;
        if !s.condition.is_empty() {
            map.serialize_entry("Condition", &ConditionBlock(&s.condition))?;
        }
        map.serialize_entry("Effect", &s.effect)?;
        entry(&mut map, "NotAction", list(&s.not_action))?;
        entry(
            &mut map,
            "NotPrincipal",
            s.not_principal.as_ref().map(SortedValue),
        )?;
        entry(&mut map, "NotResource", list(&s.not_resource))?;
        entry(&mut map, "Principal", s.principal.as_ref().map(SortedValue))?;
        entry(&mut map, "Resource", list(&s.resource))?;
        entry(&mut map, "Sid", s.sid.as_ref())?;
        map.end()
    }
}

/// A list as [`StringOrList`], when present.
fn list(list: &Option<Vec<String>>) -> Option<StringOrList<'_>> {
    list.as_deref().map(StringOrList)
}

/// Write `key` with `value`, or nothing when there is no value.
fn entry<M: SerializeMap>(
    map: &mut M,
    key: &str,
    value: Option<impl Serialize>,
) -> Result<(), M::Error> {
    value.map_or(Ok(()), |value| map.serialize_entry(key, &value))
}

const STATEMENT_KEYS: [&str; 9] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

fn read_statement(index: usize, object: Map<String, Value>) -> Result<Statement, PolicyError> {
    let fail = |key: &str, problem: String| PolicyError::statement(index, key, problem);
    // Each known key's value, in the order of `STATEMENT_KEYS`.
    let mut values: [Option<Value>; 9] = Default::default();
    for (key, value) in object {
        match STATEMENT_KEYS.iter().position(|known| *known == key) {
            Some(at) => values[at] = Some(value),
            None => return Err(fail(&key, "unknown statement key".to_owned())),
        }
    }
    let [
        sid,
        effect,
        principal,
        not_principal,
        action,
        not_action,
        resource,
        not_resource,
        condition,
    ] = values;
    let sid = read_sid(sid).map_err(|p| fail("Sid", p))?;
    let effect = read_effect(effect).map_err(|p| fail("Effect", p))?;
    let principal = read_principal(principal).map_err(|p| fail("Principal", p))?;
    let not_principal = read_principal(not_principal).map_err(|p| fail("NotPrincipal", p))?;
    let [action, not_action, resource, not_resource] =
        read_lists([action, not_action, resource, not_resource])
            .map_err(|(key, p)| fail(key, p))?;
    let condition = match condition {
        None => Conditions::new(),
        Some(value) => read_conditions(value).map_err(|p| fail("Condition", p))?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        not_principal,
        action,
        not_action,
        resource,
        not_resource,
        condition,
    })
}

fn read_sid(value: Option<Value>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("expected a string, found {}", kind(&other))),
    }
}

fn read_effect(value: Option<Value>) -> Result<Effect, String> {
    match value {
        Some(Value::String(s)) if s == "Allow" => Ok(Effect::Allow),
        Some(Value::String(s)) if s == "Deny" => Ok(Effect::Deny),
        None => Err("missing".to_owned()),
        Some(other) => Err(format!(
            "expected \"Allow\" or \"Deny\", found {}",
            describe(&other)
        )),
    }
}

/// `Action`, `NotAction`, `Resource` and `NotResource`, in that order, with the key an error is about: exactly
/// one of the action keys is required, at most one of the resource keys is allowed.
fn read_lists(
    values: [Option<Value>; 4],
) -> Result<[Option<Vec<String>>; 4], (&'static str, String)> {
    let mut lists = [None, None, None, None];
    for ((slot, name), value) in lists
        .iter_mut()
        .zip(["Action", "NotAction", "Resource", "NotResource"])
        .zip(values)
    {
        if let Some(value) = value {
            *slot = Some(read_string_list(value).map_err(|p| (name, p))?);
        }
    }
    let [action, not_action, resource, not_resource] = &lists;
    match (action, not_action) {
        (Some(_), Some(_)) => {
            return Err((
                "NotAction",
                "Action and NotAction cannot both be present".to_owned(),
            ));
        }
        (None, None) => {
            return Err((
                "Action",
                "missing: one of Action or NotAction is required".to_owned(),
            ));
        }
        _ => {}
    }
    if resource.is_some() && not_resource.is_some() {
        return Err((
            "NotResource",
            "Resource and NotResource cannot both be present".to_owned(),
        ));
    }
    Ok(lists)
}

fn read_string_list(value: Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s),
                other => Err(format!("entry {i} is {}, expected a string", kind(&other))),
            })
            .collect(),
        other => Err(format!(
            "expected a string or a list of strings, found {}",
            kind(&other)
        )),
    }
}

fn read_principal(value: Option<Value>) -> Result<Option<Value>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if s == "*" => Ok(Some(Value::String(s))),
        Some(Value::Object(map)) => {
            for (kind_name, ids) in &map {
                read_string_list(ids.clone()).map_err(|p| format!("`{kind_name}`: {p}"))?;
            }
            Ok(Some(Value::Object(map)))
        }
        Some(other) => Err(format!(
            "expected \"*\" or an object, found {}",
            describe(&other)
        )),
    }
}

fn read_conditions(value: Value) -> Result<Conditions, String> {
    let Value::Object(operators) = value else {
        return Err(format!("expected an object, found {}", kind(&value)));
    };
    let mut conditions = Conditions::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else {
            return Err(format!(
                "`{operator}`: expected an object, found {}",
                kind(&keys)
            ));
        };
        let block = conditions.entry(operator.clone()).or_default();
        for (key, values) in keys {
            let values = match values {
                Value::Array(items) => items
                    .into_iter()
                    .map(condition_value)
                    .collect::<Option<Vec<_>>>(),
                single => condition_value(single).map(|v| vec![v]),
            };
            let Some(values) = values else {
                return Err(format!(
                    "`{operator}` > `{key}`: expected a string, bool, number or a list of those"
                ));
            };
            block.insert(key, values);
        }
    }
    Ok(conditions)
}

fn condition_value(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The JSON type of `value`, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Like [`kind`], but quotes short strings so a typo is visible.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        other => kind(other).to_owned(),
    }
}

/// A list written as a plain string when it has one entry (smaller, and IAM accepts both), else as a JSON list.
struct StringOrList<'a>(&'a [String]);

impl Serialize for StringOrList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            [only] => serializer.serialize_str(only),
            list => serializer.collect_seq(list),
        }
    }
}

/// Any JSON value, with object keys sorted whatever map ordering serde_json was built with, so output never
/// depends on features.
struct SortedValue<'a>(&'a Value);

impl Serialize for SortedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Array(items) => serializer.collect_seq(items.iter().map(SortedValue)),
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                serializer.collect_map(entries.into_iter().map(|(k, v)| (k, SortedValue(v))))
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// `serialize_with` for `Principal` and `NotPrincipal` (only called when present).
fn serialize_principal<S: Serializer>(
    principal: &Option<Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    principal.as_ref().map(SortedValue).serialize(serializer)
}

/// `serialize_with` for `Action`, `NotAction`, `Resource` and `NotResource` (only called when present).
fn serialize_list<S: Serializer>(
    values: &Option<Vec<String>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    list(values).serialize(serializer)
}

/// `serialize_with` for `Condition` (only called when not empty).
fn serialize_conditions<S: Serializer>(
    conditions: &Conditions,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    ConditionBlock(conditions).serialize(serializer)
}

/// A `Condition` block: operator -> key -> string or list, keys in `BTreeMap` (sorted) order.
struct ConditionBlock<'a>(&'a Conditions);

impl Serialize for ConditionBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(operator, keys)| {
            let block: BTreeMap<&String, StringOrList<'_>> = keys
                .iter()
                .map(|(key, values)| (key, StringOrList(values)))
                .collect();
            (operator, block)
        }))
    }
}

/// Minified JSON of a value whose serialisation cannot fail (every map key is a string).
fn minified(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect(ALWAYS_SERIALISES)
}

/// The number of characters of [`minified`], counted as it is written instead of kept.
pub(super) fn minified_chars(value: &impl Serialize) -> usize {
    let mut counter = CharCounter(0);
    serde_json::to_writer(&mut counter, value).expect(ALWAYS_SERIALISES);
    counter.0
}

const ALWAYS_SERIALISES: &str = "policy documents always serialise: every map key is a string";

/// Counts the characters of the UTF-8 text written to it: the bytes that do not continue a character.
struct CharCounter(usize);

impl std::io::Write for CharCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normalize::{diff, is_equivalent};
    use proptest::prelude::*;

    fn parse_ok(text: &str) -> PolicyDocument {
        match PolicyDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => panic!("expected {text} to parse, got {e}"),
        }
    }

    #[test]
    fn text_over_the_size_limit_is_refused_before_decoding() {
        // Found by the fuzzing harness: 2 MiB of deeply nested JSON became 192 MiB of parsed values.
        let minimal = r#"{"Statement":[]}"#;
        let at_limit = format!(
            "{minimal}{}",
            " ".repeat(MAX_POLICY_TEXT_BYTES - minimal.len())
        );
        assert!(PolicyDocument::parse(&at_limit).is_ok());

        for over in [
            format!("{at_limit} "),
            "%7B".repeat(MAX_POLICY_TEXT_BYTES / 3 + 1),
        ] {
            let err = PolicyDocument::parse(&over).unwrap_err();
            assert!(
                matches!(err, PolicyError::TooLarge { bytes } if bytes == over.len()),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "policy text is {} bytes; at most 512 KiB is read (IAM's largest policies are far smaller)",
                    over.len()
                )
            );
        }
    }

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn url_encoded_get_role_policy_text_parses() {
        let text = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22logs%3APutLogEvents%22%2C%22Resource%22%3A%22arn%3Aaws%3Alogs%3Aus-east-1%3A123456789012%3Alog-group%3A%2Fecs%2Fweb%3A%2A%22%7D%5D%7D";
        let doc = parse_ok(text);
        assert_eq!(doc.version.as_deref(), Some("2012-10-17"));
        let [statement] = doc.statements.as_slice() else {
            panic!("expected one statement, got {doc:?}");
        };
        assert_eq!(statement.effect, Effect::Allow);
        assert_eq!(statement.action, strings(&["logs:PutLogEvents"]));
        assert_eq!(
            statement.resource,
            strings(&["arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"])
        );
    }

    #[test]
    fn raw_and_url_encoded_shapes_parse_to_the_expected_statement() {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let cases: [(&str, String, Statement); 6] = [
            (
                "trust policy with service principal, url-encoded",
                percent_encoding::utf8_percent_encode(trust, percent_encoding::NON_ALPHANUMERIC)
                    .to_string(),
                Statement {
                    sid: Some(String::new()),
                    principal: Some(serde_json::json!({"Service": "ecs-tasks.amazonaws.com"})),
                    action: strings(&["sts:AssumeRole"]),
                    ..Statement::new(Effect::Allow)
                },
            ),
            (
                "single statement object, no version, surrounding whitespace",
                "  \n{\"Statement\":{\"Effect\":\"Deny\",\"NotAction\":[\"iam:*\",\"s3:*\"],\"NotResource\":\"*\"}}\n".to_owned(),
                Statement {
                    not_action: strings(&["iam:*", "s3:*"]),
                    not_resource: strings(&["*"]),
                    ..Statement::new(Effect::Deny)
                },
            ),
            (
                "condition values as bool, number, string and list",
                r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":true},"NumericLessThan":{"s3:max-keys":10},"StringEquals":{"aws:SourceVpce":["vpce-1",false,2.5]}}}]}"#.to_owned(),
                Statement {
                    action: strings(&["s3:GetObject"]),
                    resource: strings(&["*"]),
                    condition: [
                        ("Bool".to_owned(), [("aws:SecureTransport".to_owned(), vec!["true".to_owned()])].into()),
                        ("NumericLessThan".to_owned(), [("s3:max-keys".to_owned(), vec!["10".to_owned()])].into()),
                        (
                            "StringEquals".to_owned(),
                            [("aws:SourceVpce".to_owned(), vec!["vpce-1".to_owned(), "false".to_owned(), "2.5".to_owned()])].into(),
                        ),
                    ]
                    .into(),
                    ..Statement::new(Effect::Allow)
                },
            ),
            (
                "a plus sign inside a url-encoded resource stays a plus",
                "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22s3%3AGetObject%22%2C%22Resource%22%3A%22arn%3Aaws%3As3%3A%3A%3Ab%2Fa+b%2Fc%2Bd%22%7D%7D".to_owned(),
                Statement {
                    action: strings(&["s3:GetObject"]),
                    resource: strings(&["arn:aws:s3:::b/a+b/c+d"]),
                    ..Statement::new(Effect::Allow)
                },
            ),
            (
                "star principal and list actions with Id",
                r#"{"Id":"x","Statement":[{"Effect":"Allow","Principal":"*","Action":["a:B","a:C"],"Resource":["r1","r2"]}]}"#.to_owned(),
                Statement {
                    principal: Some(serde_json::json!("*")),
                    action: strings(&["a:B", "a:C"]),
                    resource: strings(&["r1", "r2"]),
                    ..Statement::new(Effect::Allow)
                },
            ),
            (
                "raw json with a plus is not form-decoded",
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"a+b%2B"}}"#.to_owned(),
                Statement {
                    action: strings(&["s3:GetObject"]),
                    resource: strings(&["a+b%2B"]),
                    ..Statement::new(Effect::Allow)
                },
            ),
        ];
        for (name, text, expected) in cases {
            let doc = parse_ok(&text);
            assert_eq!(doc.statements, vec![expected], "{name}");
        }
    }

    #[test]
    fn each_rejection_names_statement_index_and_key() {
        let ok = r#"{"Effect":"Allow","Action":"a:b","Resource":"*"}"#;
        let cases = [
            (
                r#"{"Effect":"Maybe","Action":"a:b","Resource":"*"}"#,
                "Effect",
            ),
            (r#"{"Action":"a:b","Resource":"*"}"#, "Effect"),
            (
                r#"{"Effect":"allow","Action":"a:b","Resource":"*"}"#,
                "Effect",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}"#,
                "NotAction",
            ),
            (r#"{"Effect":"Allow","Resource":"*"}"#, "Action"),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","NotResource":"x"}"#,
                "NotResource",
            ),
            (
                r#"{"Effect":"Allow","Action":["a:b",7],"Resource":"*"}"#,
                "Action",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":{"x":1}}"#,
                "Resource",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Bogus":1}"#,
                "Bogus",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Sid":3}"#,
                "Sid",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Principal":"someone"}"#,
                "Principal",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","NotPrincipal":{"AWS":[1]}}"#,
                "NotPrincipal",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"k":null}}}"#,
                "Condition",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":"x"}}"#,
                "Condition",
            ),
            (
                r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":[]}"#,
                "Condition",
            ),
            ("17", "Statement"),
        ];
        for (bad, key) in cases {
            let text = format!(r#"{{"Version":"2012-10-17","Statement":[{ok},{ok},{bad}]}}"#);
            match PolicyDocument::parse(&text) {
                Err(error @ PolicyError::ReadStatement { index: 2, .. }) => {
                    let message = error.to_string();
                    assert!(message.contains("statement 2"), "{message}");
                    assert!(message.contains(&format!("`{key}`")), "{bad}: {message}");
                    assert_eq!(error.reason(), "invalid_statement");
                }
                other => panic!("{bad}: expected statement 2 / {key} error, got {other:?}"),
            }
        }
    }

    #[test]
    fn document_level_rejections_name_the_step_and_key() {
        let cases = [
            ("not json at all", "invalid_json", None),
            ("{\"Statement\":", "invalid_json", None),
            ("%7B%FF%FE", "invalid_encoding", None),
            ("[1,2]", "invalid_document", Some("`(root)`")),
            ("{}", "invalid_document", Some("`Statement`")),
            (
                r#"{"Statement":"x"}"#,
                "invalid_document",
                Some("`Statement`"),
            ),
            (
                r#"{"Version":"2020-01-01","Statement":[]}"#,
                "invalid_document",
                Some("`Version`"),
            ),
            (
                r#"{"Statement":[],"Extra":1}"#,
                "invalid_document",
                Some("`Extra`"),
            ),
            (
                r#"{"Statement":[],"Id":1}"#,
                "invalid_document",
                Some("`Id`"),
            ),
            ("%5B1%5D", "invalid_document", Some("`(root)`")),
            ("", "invalid_json", None),
        ];
        for (text, reason, key) in cases {
            match PolicyDocument::parse(text) {
                Ok(doc) => panic!("{text}: expected an error, got {doc:?}"),
                Err(error) => {
                    assert_eq!(error.reason(), reason, "{text}: {error}");
                    if let Some(key) = key {
                        assert!(error.to_string().contains(key), "{text}: {error}");
                    }
                }
            }
        }
    }

    #[test]
    fn to_json_is_minified_ordered_and_uses_strings_for_single_entries() {
        let doc = PolicyDocument {
            version: Some(POLICY_VERSION.to_owned()),
            statements: vec![Statement {
                sid: Some("S\"1".to_owned()),
                principal: Some(serde_json::json!({"Service": "x", "AWS": ["b", "a"]})),
                action: strings(&["a:B"]),
                not_resource: strings(&["r1", "r2"]),
                condition: [(
                    "Bool".to_owned(),
                    [("aws:SecureTransport".to_owned(), vec!["true".to_owned()])].into(),
                )]
                .into(),
                ..Statement::new(Effect::Deny)
            }],
        };
        assert_eq!(
            doc.to_json(),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"S\"1","Effect":"Deny","Principal":{"AWS":["b","a"],"Service":"x"},"Action":"a:B","NotResource":["r1","r2"],"Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#
        );
        assert_eq!(PolicyDocument::default().to_json(), r#"{"Statement":[]}"#);
    }

    #[test]
    fn string_or_list_action_parses_both_shapes() {
        let cases = [
            (r#""s3:GetObject""#, vec!["s3:GetObject"]),
            (r#"["s3:GetObject"]"#, vec!["s3:GetObject"]),
            (
                r#"["s3:GetObject","s3:PutObject"]"#,
                vec!["s3:GetObject", "s3:PutObject"],
            ),
            ("[]", vec![]),
        ];
        for (action, expected) in cases {
            let doc = parse_ok(&format!(
                r#"{{"Statement":{{"Effect":"Allow","Action":{action},"Resource":"*"}}}}"#
            ));
            let actions = doc.statements.first().and_then(|s| s.action.clone());
            let expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
            assert_eq!(actions, Some(expected), "{action}");
        }
    }

    #[test]
    fn with_condition_keeps_values_sorted_and_deduplicated() {
        let permission = Permission::new("a:b", "*")
            .with_condition("StringEquals", "k", ["z", "a"])
            .with_condition("StringEquals", "k", ["a", "m"]);
        assert_eq!(
            permission
                .conditions
                .get("StringEquals")
                .and_then(|k| k.get("k")),
            Some(&vec!["a".to_owned(), "m".to_owned(), "z".to_owned()])
        );
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9:*/+%\"\\\\ é\n-]{0,10}"
    }

    fn list() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(text(), 0..4)
    }

    fn principal() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            Just(Some(Value::String("*".to_owned()))),
            prop::collection::btree_map("AWS|Service|Federated", list(), 1..3).prop_map(|m| {
                Some(Value::Object(
                    m.into_iter()
                        .map(|(k, v)| (k, Value::Array(v.into_iter().map(Value::String).collect())))
                        .collect(),
                ))
            }),
        ]
    }

    fn conditions() -> impl Strategy<Value = Conditions> {
        prop::collection::btree_map(
            "StringEquals|StringLike|Bool|ArnLike",
            prop::collection::btree_map(text(), list(), 0..3),
            0..3,
        )
    }

    fn statement() -> impl Strategy<Value = Statement> {
        (
            prop::option::of(text()),
            prop::bool::ANY,
            principal(),
            principal(),
            (prop::bool::ANY, list()),
            (0u8..3, list()),
            conditions(),
        )
            .prop_map(
                |(
                    sid,
                    allow,
                    principal,
                    not_principal,
                    (positive, actions),
                    (which, resources),
                    condition,
                )| {
                    let effect = if allow { Effect::Allow } else { Effect::Deny };
                    Statement {
                        sid,
                        effect,
                        principal,
                        not_principal,
                        action: positive.then(|| actions.clone()),
                        not_action: (!positive).then_some(actions),
                        resource: (which == 1).then(|| resources.clone()),
                        not_resource: (which == 2).then_some(resources),
                        condition,
                    }
                },
            )
    }

    pub(crate) fn document() -> impl Strategy<Value = PolicyDocument> {
        (
            prop::option::of(prop_oneof![
                Just(POLICY_VERSION),
                Just(LEGACY_POLICY_VERSION)
            ]),
            prop::collection::vec(statement(), 0..4),
        )
            .prop_map(|(version, statements)| PolicyDocument {
                version: version.map(str::to_owned),
                statements,
            })
    }

    proptest! {
        #[test]
        fn parse_of_to_json_round_trips(doc in document()) {
            let parsed = PolicyDocument::parse(&doc.to_json());
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            if let Ok(parsed) = parsed {
                prop_assert!(is_equivalent(&parsed, &doc));
                prop_assert!(diff(&doc, &doc).is_empty());
                prop_assert_eq!(parsed.to_json(), doc.to_json());
            }
        }

        #[test]
        fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = PolicyDocument::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_json_like_text(
            text in r#"[{}\[\]",:%0-9A-Za-z ]{0,60}"#,
        ) {
            let _ = PolicyDocument::parse(&text);
            let _ = PolicyDocument::parse(&format!(r#"{{"Statement":{text}}}"#));
        }
    }
}
