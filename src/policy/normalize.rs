//! Meaning of a policy: expansion into [`Grant`]s, comparison by meaning
//! ([`is_equivalent`]) and the [`diff`] between a desired and an observed policy.
//!
//! "Meaning" here is syntactic canonicalisation, not evaluation: action case,
//! list order, duplicates, string-vs-list, `Sid` and how grants are split
//! across statements do not matter; wildcards are compared literally (`ecr:*`
//! is not the same as `ecr:BatchGetImage`) and `Version` is ignored. Condition
//! keys that differ only by case inside one operator block are merged by
//! unioning their values, which IAM would instead AND; such documents are
//! not something this daemon writes, and the simplification is accepted.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::document::{Conditions, Effect, Permission, PolicyDocument, Statement};

/// A statement in canonical form, one action on one resource.
///
/// Action names are compared case-insensitively (IAM treats
/// `ecr:batchgetimage` and `ecr:BatchGetImage` the same), so the canonical
/// action is lowercase; resources are case-sensitive; list order, duplicates,
/// string-vs-list and Sid do not matter. Condition keys are case-insensitive
/// (lowercased), operators case-sensitive as in IAM; values sorted and deduped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Grant {
    /// Allow or Deny.
    pub effect: Effect,
    /// Lowercased action.
    pub action: String,
    /// Resource, case kept.
    pub resource: String,
    /// Canonical conditions (see [`Grant`]).
    pub conditions: Conditions,
}

impl Grant {
    /// A grant in canonical form, whatever the case and order of the inputs.
    pub fn new(effect: Effect, action: &str, resource: &str, conditions: &Conditions) -> Self {
        Grant {
            effect,
            action: action.to_lowercase(),
            resource: resource.to_owned(),
            conditions: canonical_conditions(conditions),
        }
    }

    /// The [`Permission`] this grant allows, or `None` for a Deny grant.
    ///
    /// Permissions only allow; a deny has no permission equivalent.
    pub fn to_permission(&self) -> Option<Permission> {
        match self.effect {
            Effect::Allow => Some(Permission {
                action: self.action.clone(),
                resource: self.resource.clone(),
                conditions: self.conditions.clone(),
            }),
            Effect::Deny => None,
        }
    }
}

impl From<&Permission> for Grant {
    /// An Allow grant with the action lowercased and conditions canonical.
    fn from(permission: &Permission) -> Self {
        Grant::new(
            Effect::Allow,
            &permission.action,
            &permission.resource,
            &permission.conditions,
        )
    }
}

/// The meaning of a document: its expanded grants plus the statements that
/// cannot be expanded, each as canonical statement JSON.
///
/// Statements with `NotAction`, `NotResource`, `Principal`, `NotPrincipal` or
/// without `Resource` describe sets we cannot enumerate, so they are compared
/// whole (after canonicalisation) rather than expanded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Normalized {
    /// Grants from statements with `Action` and `Resource` and no principal.
    pub grants: BTreeSet<Grant>,
    /// Canonical JSON of every other statement (see [`Statement::to_json`]).
    pub others: BTreeSet<String>,
}

/// The canonical meaning of `doc`; two documents mean the same iff these are equal.
pub fn normalize(doc: &PolicyDocument) -> Normalized {
    let expanded = Expanded::new(doc);
    Normalized {
        grants: expanded
            .grants()
            .into_iter()
            .map(GrantRef::to_grant)
            .collect(),
        others: expanded.others,
    }
}

/// A document split into what [`normalize`] makes of it, the grants still to be listed: per expandable statement
/// its effect, its actions lower-cased, its resources and its canonical conditions; the other statements'
/// canonical JSON.
struct Expanded<'a> {
    statements: Vec<ExpandedStatement<'a>>,
    others: BTreeSet<String>,
}

/// One expandable statement (see [`Expanded`]).
struct ExpandedStatement<'a> {
    effect: Effect,
    actions: Vec<Cow<'a, str>>,
    resources: &'a [String],
    conditions: Conditions,
}

impl<'a> Expanded<'a> {
    fn new(doc: &'a PolicyDocument) -> Self {
        let mut expanded = Expanded {
            statements: Vec::with_capacity(doc.statements.len()),
            others: BTreeSet::new(),
        };
        for statement in &doc.statements {
            match expandable(statement) {
                Some((actions, resources)) => expanded.statements.push(ExpandedStatement {
                    effect: statement.effect,
                    actions: actions.iter().map(|a| lowercase(a)).collect(),
                    resources,
                    conditions: canonical_conditions(&statement.condition),
                }),
                None => {
                    expanded.others.insert(canonical_statement(statement));
                }
            }
        }
        expanded
    }

    /// Every grant (action × resource of each expandable statement), sorted as [`Grant`]s are, without duplicates.
    fn grants(&self) -> Vec<GrantRef<'_>> {
        let mut grants = Vec::with_capacity(
            self.statements
                .iter()
                .map(|s| s.actions.len() * s.resources.len())
                .sum(),
        );
        for statement in &self.statements {
            for action in &statement.actions {
                grants.extend(statement.resources.iter().map(|resource| GrantRef {
                    effect: statement.effect,
                    action,
                    resource,
                    conditions: &statement.conditions,
                }));
            }
        }
        grants.sort_unstable();
        grants.dedup();
        grants
    }
}

/// A [`Grant`] borrowed from an [`Expanded`] document: the same fields in the same order, so it sorts the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GrantRef<'a> {
    effect: Effect,
    action: &'a str,
    resource: &'a str,
    conditions: &'a Conditions,
}

impl GrantRef<'_> {
    fn to_grant(self) -> Grant {
        Grant {
            effect: self.effect,
            action: self.action.to_owned(),
            resource: self.resource.to_owned(),
            conditions: self.conditions.clone(),
        }
    }
}

/// `text` lower-cased as [`str::to_lowercase`] does, borrowed when it is already (the common case).
pub(crate) fn lowercase(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

/// Expands `Action` x `Resource` of every statement that uses both and has no principal.
///
/// Other statements are left out; use [`normalize`] to see them too.
pub fn grants(doc: &PolicyDocument) -> BTreeSet<Grant> {
    normalize(doc).grants
}

/// Whether `a` and `b` mean the same, including non-expandable statements.
pub fn is_equivalent(a: &PolicyDocument, b: &PolicyDocument) -> bool {
    normalize(a) == normalize(b)
}

/// What must change to turn `observed` into `desired`, all lists sorted.
///
/// Expandable statements are reported per [`Grant`]; the others as canonical
/// statement JSON in `other_added` / `other_removed`, because they cannot be
/// split into grants.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PolicyDiff {
    /// Grants in desired but not in observed.
    pub added: Vec<Grant>,
    /// Grants in observed but not in desired.
    pub removed: Vec<Grant>,
    /// Canonical non-expandable statements in desired but not in observed.
    pub other_added: Vec<String>,
    /// Canonical non-expandable statements in observed but not in desired.
    pub other_removed: Vec<String>,
}

impl PolicyDiff {
    /// True when the two documents mean the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.other_added.is_empty()
            && self.other_removed.is_empty()
    }
}

/// The difference by meaning between `desired` and `observed`.
pub fn diff(desired: &PolicyDocument, observed: &PolicyDocument) -> PolicyDiff {
    let (desired, observed) = (Expanded::new(desired), Expanded::new(observed));
    let (desired_grants, observed_grants) = (desired.grants(), observed.grants());
    PolicyDiff {
        added: only_in(&desired_grants, &observed_grants),
        removed: only_in(&observed_grants, &desired_grants),
        other_added: desired
            .others
            .difference(&observed.others)
            .cloned()
            .collect(),
        other_removed: observed
            .others
            .difference(&desired.others)
            .cloned()
            .collect(),
    }
}

/// The grants of `left` that are not in `right`, both sorted without duplicates, in order.
fn only_in(left: &[GrantRef<'_>], right: &[GrantRef<'_>]) -> Vec<Grant> {
    let mut right = right.iter().peekable();
    let mut only = Vec::new();
    for grant in left {
        while right.next_if(|other| *other < grant).is_some() {}
        if right.peek() != Some(&grant) {
            only.push(grant.to_grant());
        }
    }
    only
}

/// Conditions with keys lowercased, values sorted and deduplicated, and empty
/// operator blocks dropped (they constrain nothing).
pub(crate) fn canonical_conditions(conditions: &Conditions) -> Conditions {
    let mut canonical = Conditions::new();
    for (operator, keys) in conditions {
        if keys.is_empty() {
            continue;
        }
        let block: &mut BTreeMap<String, Vec<String>> =
            canonical.entry(operator.clone()).or_default();
        for (key, values) in keys {
            block
                .entry(key.to_lowercase())
                .or_default()
                .extend(values.iter().cloned());
        }
        for values in block.values_mut() {
            values.sort();
            values.dedup();
        }
    }
    canonical
}

fn expandable(statement: &Statement) -> Option<(&[String], &[String])> {
    if statement.principal.is_some() || statement.not_principal.is_some() {
        return None;
    }
    match (&statement.action, &statement.resource) {
        (Some(actions), Some(resources)) => Some((actions, resources)),
        _ => None,
    }
}

fn canonical_statement(statement: &Statement) -> String {
    let lower_set = |list: &Option<Vec<String>>| {
        list.as_ref()
            .map(|items| sorted_set(items.iter().map(|s| s.to_lowercase())))
    };
    let set =
        |list: &Option<Vec<String>>| list.as_ref().map(|items| sorted_set(items.iter().cloned()));
    Statement {
        sid: None,
        effect: statement.effect,
        principal: statement.principal.as_ref().map(canonical_principal),
        not_principal: statement.not_principal.as_ref().map(canonical_principal),
        action: lower_set(&statement.action),
        not_action: lower_set(&statement.not_action),
        resource: set(&statement.resource),
        not_resource: set(&statement.not_resource),
        condition: canonical_conditions(&statement.condition),
    }
    .to_json()
}

fn sorted_set(items: impl Iterator<Item = String>) -> Vec<String> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}

/// `{"AWS": "a"}` and `{"AWS": ["a", "a"]}` mean the same; make them equal.
fn canonical_principal(principal: &Value) -> Value {
    let Value::Object(map) = principal else {
        return principal.clone();
    };
    let canonical = map
        .iter()
        .map(|(kind, ids)| {
            let ids = match ids {
                Value::String(id) => Value::Array(vec![Value::String(id.clone())]),
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    let unique: BTreeSet<&str> = items.iter().filter_map(Value::as_str).collect();
                    Value::Array(
                        unique
                            .into_iter()
                            .map(|id| Value::String(id.to_owned()))
                            .collect(),
                    )
                }
                other => other.clone(),
            };
            (kind.clone(), ids)
        })
        .collect();
    Value::Object(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> PolicyDocument {
        match PolicyDocument::parse(json) {
            Ok(doc) => doc,
            Err(e) => panic!("test fixture does not parse: {e}\n{json}"),
        }
    }

    const BASE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":["arn:aws:ecr:us-east-1:1:repository/a","arn:aws:ecr:us-east-1:1:repository/b"]},{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#;

    #[test]
    fn equivalent_documents_compare_equal_by_meaning() {
        let cases = [
            (
                "statement order and list order",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"},{"Effect":"Allow","Action":["ecr:GetDownloadUrlForLayer","ecr:BatchGetImage"],"Resource":["arn:aws:ecr:us-east-1:1:repository/b","arn:aws:ecr:us-east-1:1:repository/a"]}]}"#,
            ),
            (
                "string or list and action case",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:getauthorizationtoken"],"Resource":["*"]},{"Effect":"Allow","Action":["ECR:BATCHGETIMAGE","ecr:getdownloadurlforlayer"],"Resource":["arn:aws:ecr:us-east-1:1:repository/a","arn:aws:ecr:us-east-1:1:repository/b"]}]}"#,
            ),
            (
                "duplicate entries and sid",
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"Pull","Effect":"Allow","Action":["ecr:BatchGetImage","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":["arn:aws:ecr:us-east-1:1:repository/a","arn:aws:ecr:us-east-1:1:repository/b","arn:aws:ecr:us-east-1:1:repository/a"]},{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"},{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
            ),
            (
                "split statements instead of merged",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:1:repository/a"},{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"arn:aws:ecr:us-east-1:1:repository/b"},{"Effect":"Allow","Action":"ecr:GetDownloadUrlForLayer","Resource":["arn:aws:ecr:us-east-1:1:repository/a","arn:aws:ecr:us-east-1:1:repository/b"]},{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
            ),
            (
                "single statement object",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:GetAuthorizationToken"],"Resource":["arn:aws:ecr:us-east-1:1:repository/a","arn:aws:ecr:us-east-1:1:repository/b","*"]}}"#,
            ),
        ];
        let base = doc(BASE);
        for (name, json) in cases {
            if name == "single statement object" {
                // Merging everything into one statement over-grants (token on the repos):
                // it must NOT be equivalent, which guards against over-eager merging.
                assert!(!is_equivalent(&base, &doc(json)), "{name}");
                continue;
            }
            assert!(is_equivalent(&base, &doc(json)), "{name}");
            assert!(diff(&base, &doc(json)).is_empty(), "{name}");
        }
    }

    #[test]
    fn different_resource_or_condition_is_not_equivalent() {
        let plain = r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k"}}"#;
        let cases = [
            (
                "resource case differs",
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/K"}}"#,
            ),
            (
                "condition added",
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k","Condition":{"StringEquals":{"aws:SourceVpce":"vpce-1"}}}}"#,
            ),
            (
                "effect differs",
                r#"{"Statement":{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/k"}}"#,
            ),
            (
                "NotResource instead of Resource",
                r#"{"Statement":{"Effect":"Allow","Action":"s3:GetObject","NotResource":"arn:aws:s3:::b/k"}}"#,
            ),
        ];
        for (name, json) in cases {
            assert!(!is_equivalent(&doc(plain), &doc(json)), "{name}");
            assert!(!diff(&doc(plain), &doc(json)).is_empty(), "{name}");
        }
    }

    #[test]
    fn conditions_compare_by_key_case_and_value_set_but_not_operator_case() {
        let with = |condition: &str| {
            doc(&format!(
                r#"{{"Statement":{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{condition}}}}}"#
            ))
        };
        let base = with(r#"{"StringEquals":{"aws:SourceVpce":["vpce-1","vpce-2"]}}"#);
        let cases = [
            (
                r#"{"StringEquals":{"aws:sourcevpce":["vpce-2","vpce-1","vpce-1"]}}"#,
                true,
            ),
            (
                r#"{"StringEquals":{"AWS:SOURCEVPCE":["vpce-1","vpce-2"]},"StringLike":{}}"#,
                true,
            ),
            (
                r#"{"stringequals":{"aws:SourceVpce":["vpce-1","vpce-2"]}}"#,
                false,
            ),
            (r#"{"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#, false),
            (
                r#"{"StringEquals":{"aws:SourceVpce":["VPCE-1","vpce-2"]}}"#,
                false,
            ),
        ];
        for (condition, equivalent) in cases {
            assert_eq!(
                is_equivalent(&base, &with(condition)),
                equivalent,
                "{condition}"
            );
        }
    }

    #[test]
    fn non_expandable_statements_compare_in_canonical_form() {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let cases = [
            (
                "list principal, action case, no sid",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":["ecs-tasks.amazonaws.com","ecs-tasks.amazonaws.com"]},"Action":["STS:AssumeRole"]}}"#,
                true,
            ),
            (
                "different service",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}}"#,
                false,
            ),
            (
                "extra statement",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},{"Effect":"Deny","NotAction":"s3:*","Resource":"*"}]}"#,
                false,
            ),
        ];
        for (name, json, equivalent) in cases {
            assert_eq!(is_equivalent(&doc(trust), &doc(json)), equivalent, "{name}");
            assert!(
                grants(&doc(json)).is_empty(),
                "{name}: principals never expand"
            );
        }
    }

    #[test]
    fn diff_reports_added_removed_and_other_statements_sorted() {
        let observed = doc(
            r#"{"Statement":[{"Effect":"Allow","Action":["logs:PutLogEvents","logs:CreateLogStream"],"Resource":"arn:g"},{"Effect":"Deny","NotAction":"iam:*","Resource":"*"}]}"#,
        );
        let desired = doc(
            r#"{"Statement":[{"Effect":"Allow","Action":["logs:PutLogEvents","ecr:BatchGetImage","ecr:BatchCheckLayerAvailability"],"Resource":"arn:g"}]}"#,
        );
        let d = diff(&desired, &observed);
        let allow = |action: &str| Grant::new(Effect::Allow, action, "arn:g", &Conditions::new());
        assert_eq!(
            d.added,
            vec![
                allow("ecr:batchcheckLayerAvailability"),
                allow("ecr:batchgetimage")
            ]
        );
        assert_eq!(d.removed, vec![allow("logs:createlogstream")]);
        assert!(d.other_added.is_empty());
        assert_eq!(
            d.other_removed,
            vec![r#"{"Effect":"Deny","NotAction":"iam:*","Resource":"*"}"#.to_owned()]
        );
        assert!(!d.is_empty());
    }

    #[test]
    fn diff_of_a_document_with_itself_is_empty() {
        let cases = [
            BASE,
            r#"{"Statement":{"Effect":"Deny","NotAction":"iam:*","NotResource":["b","a"]}}"#,
            r#"{"Statement":[]}"#,
        ];
        for json in cases {
            assert!(diff(&doc(json), &doc(json)).is_empty(), "{json}");
        }
    }

    #[test]
    fn grant_from_permission_is_allow_with_lowercase_action_and_canonical_conditions() {
        let permission = Permission::new("ECR:BatchGetImage", "arn:Repo").with_condition(
            "StringEquals",
            "aws:SourceVpce",
            ["b", "a"],
        );
        let grant = Grant::from(&permission);
        assert_eq!(grant.effect, Effect::Allow);
        assert_eq!(grant.action, "ecr:batchgetimage");
        assert_eq!(grant.resource, "arn:Repo");
        let expected: Conditions = [(
            "StringEquals".to_owned(),
            [(
                "aws:sourcevpce".to_owned(),
                vec!["a".to_owned(), "b".to_owned()],
            )]
            .into(),
        )]
        .into();
        assert_eq!(grant.conditions, expected);
        assert!(
            Grant::new(Effect::Deny, "a", "b", &Conditions::new())
                .to_permission()
                .is_none()
        );
    }
}
