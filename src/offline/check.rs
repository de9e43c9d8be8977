//! `execrole derive --against POLICY.json`: the pull-request check. The derived needs of the task definitions
//! (several naming one role are that role's union) are compared with the policy documents under review, through
//! the plan's own machinery (`plan::plan_role`, evaluation by effect, rendering): `+` missing with its reasons,
//! `-` granted and not needed, blocked needs (a `Deny` in the compared documents) and over-grants.
//!
//! A need counts as missing only when the compared documents do not allow it when evaluated the way IAM does (so
//! `logs:*` on the log group covers `logs:PutLogEvents`); the wider grant is then reported as not needed. It
//! reads no file and calls no AWS API: `main` loads the documents and derives the inputs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use super::{FileReport, not_looked_up_line};
use crate::derive::{Finding, merge_requirements};
use crate::model::RoleKey;
use crate::plan::{
    Change, DesiredRole, ObservedRole, OtherPolicy, Plan, Removals, RolePlan, blocked_needs,
    plan_role, role_details_text,
};
use crate::policy::{Effect, PolicyDocument, PolicyError};

/// Why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A `--against` file could not be read.
    #[error("--against {file}: cannot read the file: {error}")]
    ReadAgainstFailed {
        /// The file.
        file: String,
        /// Why (in the message, not as a source, so it is printed once).
        error: std::io::Error,
    },
    /// A `--against` file is not an IAM policy document.
    #[error("--against {file}: not an IAM policy document: {error}")]
    AgainstNotAPolicy {
        /// The file.
        file: String,
        /// Why (in the message, not as a source, so it is printed once).
        error: PolicyError,
    },
    /// The task definitions name more than one execution role, and one policy cannot be compared with several.
    #[error(
        "the task definitions name {count} execution roles ({roles}); --against compares one role's policy: run \
         the check once per role, with that role's task definitions"
    )]
    SeveralRoles {
        /// How many.
        count: usize,
        /// Which, comma-separated.
        roles: String,
    },
    /// No task definition names a usable execution role.
    #[error(
        "no task definition names a usable execution role, so there is nothing to compare --against with"
    )]
    NoRole,
}

impl CheckError {
    /// A bounded name for the step that failed.
    pub fn reason(&self) -> &'static str {
        match self {
            CheckError::ReadAgainstFailed { .. } => "read_against_failed",
            CheckError::AgainstNotAPolicy { .. } => "against_not_a_policy",
            CheckError::SeveralRoles { .. } => "several_roles",
            CheckError::NoRole => "no_role",
        }
    }
}

/// A policy document to compare with, and the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Against {
    /// The file name as given.
    pub source: String,
    /// The document.
    pub document: PolicyDocument,
}

impl Against {
    /// Read and parse a policy document file (JSON, or URL-encoded JSON as IAM returns it).
    pub fn load(path: &Path) -> Result<Against, CheckError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|error| CheckError::ReadAgainstFailed {
                file: file.clone(),
                error,
            })?;
        Against::parse(file, &text)
    }

    /// Parse a policy document; `source` names it in errors and output.
    pub fn parse(source: String, text: &str) -> Result<Against, CheckError> {
        match PolicyDocument::parse(text) {
            Ok(document) => Ok(Against { source, document }),
            Err(error) => Err(CheckError::AgainstNotAPolicy {
                file: source,
                error,
            }),
        }
    }
}

/// The outcome of a check: the plan-shaped comparison of the role with the compared documents.
#[derive(Debug, Clone)]
pub struct Check {
    /// The compared files, as given.
    pub against: Vec<String>,
    /// One role (the one the task definitions name), and the findings of task definitions that name none.
    pub plan: Plan,
    /// How many secrets and parameters were not looked up (offline), counted in one line in text output.
    pub not_looked_up: usize,
}

impl Check {
    /// Whether the documents grant exactly what is needed: nothing missing, nothing extra, nothing blocked.
    pub fn is_in_sync(&self) -> bool {
        self.plan.roles.iter().all(role_is_in_sync)
    }
}

fn role_is_in_sync(role: &RolePlan) -> bool {
    role.added.is_empty()
        && role.removed.is_empty()
        && role.removed_other.is_empty()
        && role.blocked.is_empty()
}

/// Compare the derived needs of `reports` (all readable) with the `against` documents.
pub fn check(reports: &[FileReport], against: &[Against]) -> Result<Check, CheckError> {
    let mut roles: BTreeMap<RoleKey, Vec<&FileReport>> = BTreeMap::new();
    let mut loose: Vec<Finding> = Vec::new();
    let mut not_looked_up = 0;
    for report in reports {
        let Ok((derivation, _)) = &report.result else {
            continue;
        };
        not_looked_up += report.not_looked_up.len();
        match &derivation.role {
            Some(role) => roles.entry(role.clone()).or_default().push(report),
            None => loose.extend(report.listed_findings().cloned()),
        }
    }
    if roles.len() > 1 {
        let names: Vec<String> = roles.keys().map(ToString::to_string).collect();
        return Err(CheckError::SeveralRoles {
            count: names.len(),
            roles: names.join(", "),
        });
    }
    let (key, files) = roles.into_iter().next().ok_or(CheckError::NoRole)?;
    let role = compare_role(&desired_role(key, &files), against);
    Ok(Check {
        against: against.iter().map(|a| a.source.clone()).collect(),
        plan: Plan {
            roles: vec![role],
            findings: loose,
            errors: Vec::new(),
        },
        not_looked_up,
    })
}

/// The role's union over its task definitions.
fn desired_role(key: RoleKey, files: &[&FileReport]) -> DesiredRole {
    let derivations: Vec<_> = files
        .iter()
        .filter_map(|f| f.result.as_ref().ok().map(|(d, _)| d))
        .collect();
    let mut task_definitions: Vec<String> = derivations
        .iter()
        .map(|d| d.task_definition.clone())
        .collect();
    task_definitions.sort();
    task_definitions.dedup();
    let mut findings: Vec<Finding> = files
        .iter()
        .flat_map(|f| f.listed_findings().cloned())
        .collect();
    findings.sort();
    findings.dedup();
    DesiredRole {
        key,
        task_definitions,
        requirements: merge_requirements(derivations.iter().flat_map(|d| d.requirements.iter())),
        findings,
        managed_policy_arn: None,
        trust_policy: None,
    }
}

/// Plan the role as if the compared documents were what it holds: their `Allow` statements as the policy under
/// comparison, and every document (its `Deny`s included) as a policy the role has, for evaluation by effect.
fn compare_role(desired: &DesiredRole, against: &[Against]) -> RolePlan {
    let allows = PolicyDocument {
        statements: against
            .iter()
            .flat_map(|a| a.document.statements.iter())
            .filter(|s| s.effect == Effect::Allow)
            .cloned()
            .collect(),
        version: Some(crate::policy::POLICY_VERSION.to_string()),
    };
    let others: Vec<OtherPolicy> = against
        .iter()
        .map(|a| OtherPolicy {
            source: a.source.clone(),
            document: a.document.clone(),
        })
        .collect();
    let observed = ObservedRole {
        exists: true,
        owned_policy: Some(allows.to_json()),
        other_inline_policies: Vec::new(),
        attached_policies: Vec::new(),
        trust_policy: None,
        foreign_inline_size: 0,
        owned_managed: Vec::new(),
        other_policies: others.clone(),
        boundary: None,
        has_baseline_tag: false,
    };
    let mut role = plan_role(desired, &observed, "(compared)", Removals::Allowed);
    let not_allowed = blocked_needs(None, &desired.requirements, &others, None);
    role.added.retain(|a| {
        not_allowed
            .iter()
            .any(|b| is_need(b, &a.permission.action, &a.permission.resource))
    });
    // Size and spill policies are the controller's concern, not the check's.
    role.managed.clear();
    role.too_large = None;
    role.change = match (&role.desired, role_is_in_sync(&role)) {
        (_, true) => Change::None,
        (Some(doc), false) => Change::Update {
            document: doc.to_json(),
        },
        (None, false) => Change::Delete,
    };
    role
}

fn is_need(blocked: &crate::plan::Blocked, action: &str, resource: &str) -> bool {
    blocked.action == action && blocked.resource == resource
}

/// The check as text, in the plan's style, ending with a one-line verdict.
pub fn render_text(check: &Check) -> String {
    let mut out = String::new();
    let against = check.against.join(", ");
    for role in &check.plan.roles {
        let (symbol, verb) = if role_is_in_sync(role) {
            ("=", "in sync with")
        } else {
            ("~", "differs from")
        };
        let _ = writeln!(out, "{symbol} role {}: {verb} {against}", role.key);
        role_details_text(&mut out, role);
        if check.not_looked_up > 0 {
            let _ = writeln!(out, "    ! {}", not_looked_up_line(check.not_looked_up));
        }
        out.push('\n');
    }
    if !check.plan.findings.is_empty() {
        let _ = writeln!(out, "Task definitions without a usable execution role:");
        for finding in &check.plan.findings {
            let _ = writeln!(out, "    ! {finding}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", verdict(check));
    out
}

fn verdict(check: &Check) -> String {
    let count = |f: fn(&RolePlan) -> usize| check.plan.roles.iter().map(f).sum::<usize>();
    let findings = check.plan.findings.len()
        + check
            .plan
            .roles
            .iter()
            .map(|r| r.findings.len())
            .sum::<usize>();
    if check.is_in_sync() {
        return format!(
            "In sync: {} grants exactly what the task definitions need; {findings} findings.",
            check.against.join(", ")
        );
    }
    format!(
        "Differences: {} missing, {} not needed, {} blocked, {} over-granted; {findings} findings.",
        count(|r| r.added.len()),
        count(|r| r.removed.len() + r.removed_other.len()),
        count(|r| r.blocked.len()),
        count(|r| r.over_granted.len()),
    )
}

/// The check as JSON: the plan's schema 1 (`plan --output json`) plus `"against"` (the compared files),
/// `"in_sync"` (the verdict) and `"not_looked_up"` (how many secrets and parameters were not looked up).
pub fn render_json(check: &Check) -> Value {
    let mut value = crate::plan::render_json(&check.plan);
    if let Some(map) = value.as_object_mut() {
        map.insert("against".into(), json!(check.against));
        map.insert("in_sync".into(), json!(check.is_in_sync()));
        map.insert("not_looked_up".into(), json!(check.not_looked_up));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{DeriveContext, DeriveOptions};
    use crate::offline::derive_files;

    const TD: &str = r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
        "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","family":"web","revision":1,
        "containerDefinitions":[{"name":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1",
        "logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"/ecs/web","awslogs-region":"us-east-1"}}}]}"#;

    const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/web";
    const GROUP: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*";

    fn reports() -> Vec<FileReport> {
        derive_files(
            &[("td.json".into(), Ok(TD.into()))],
            &DeriveContext::default(),
            &DeriveOptions::default(),
        )
    }

    fn against(statements: &str) -> Against {
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
        Against::parse("policy.json".into(), &text).unwrap()
    }

    fn exact() -> String {
        format!(
            r#"{{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}},
            {{"Effect":"Allow","Action":["ecr:BatchCheckLayerAvailability","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"{REPO}"}},
            {{"Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],"Resource":"{GROUP}"}}"#
        )
    }

    #[test]
    fn a_policy_with_exactly_the_needs_is_in_sync() {
        let check = check(&reports(), &[against(&exact())]).unwrap();
        assert!(check.is_in_sync(), "{}", render_text(&check));
        assert!(
            render_text(&check)
                .starts_with("= role 123456789012/app-exec: in sync with policy.json")
        );
    }

    #[test]
    fn a_wider_grant_covers_the_need_and_is_reported_as_not_needed() {
        let statements = exact().replace(
            r#"["logs:CreateLogStream","logs:PutLogEvents"]"#,
            r#""logs:*""#,
        );
        let check = check(&reports(), &[against(&statements)]).unwrap();
        let role = &check.plan.roles[0];
        assert!(role.added.is_empty(), "{:?}", role.added);
        assert_eq!(role.removed.len(), 1, "{:?}", role.removed);
        assert_eq!(role.removed[0].action, "logs:*");
        assert!(!check.is_in_sync());
    }

    #[test]
    fn a_deny_in_the_compared_document_blocks_a_need() {
        let statements = format!(
            r#"{},{{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}}"#,
            exact()
        );
        let check = check(&reports(), &[against(&statements)]).unwrap();
        let role = &check.plan.roles[0];
        assert_eq!(role.blocked.len(), 1, "{:?}", role.blocked);
        assert_eq!(role.blocked[0].why.as_str(), "explicit_deny");
        assert!(
            role.removed_other.is_empty(),
            "a Deny is not an excess grant"
        );
        assert!(render_text(&check).contains("! blocked: ecr:BatchGetImage on"));
    }

    #[test]
    fn several_roles_cannot_be_compared_with_one_policy() {
        let other = TD.replace("role/app-exec", "role/other-exec");
        let reports = derive_files(
            &[
                ("a.json".into(), Ok(TD.into())),
                ("b.json".into(), Ok(other)),
            ],
            &DeriveContext::default(),
            &DeriveOptions::default(),
        );
        let err = check(&reports, &[against(&exact())]).unwrap_err();
        assert_eq!(err.reason(), "several_roles");
    }

    #[test]
    fn a_malformed_policy_names_its_file() {
        let err = Against::parse("bad.json".into(), r#"{"Statement": 3}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--against bad.json: not an IAM policy document"),
            "{err}"
        );
    }

    #[test]
    fn needs_of_one_role_unite_across_task_definitions() {
        let second = TD
            .replace("task-definition/web:1", "task-definition/worker:3")
            .replace(
                r#""family":"web","revision":1"#,
                r#""family":"worker","revision":3"#,
            )
            .replace("/web:1", "/worker:1");
        let reports = derive_files(
            &[
                ("a.json".into(), Ok(TD.into())),
                ("b.json".into(), Ok(second)),
            ],
            &DeriveContext::default(),
            &DeriveOptions::default(),
        );
        let check = check(&reports, &[against(&exact())]).unwrap();
        let role = &check.plan.roles[0];
        assert_eq!(role.task_definitions, vec!["web:1", "worker:3"]);
        let missing: Vec<&str> = role
            .added
            .iter()
            .map(|a| a.permission.resource.as_str())
            .collect();
        assert!(
            missing.iter().all(|r| r.ends_with("repository/worker")),
            "{missing:?}"
        );
        assert_eq!(missing.len(), 3);
    }
}
