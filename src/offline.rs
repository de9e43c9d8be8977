//! The `derive` command's report: for each task definition file, the execution role, every permission with the
//! reasons behind it, the findings, and the compiled policy, rendered as text, JSON (schema 1) or the bare policy
//! documents. Pure: `main` reads the files and prints.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::derive::{self, Derivation, DeriveContext, DeriveOptions, Facts};
use crate::model::TaskDefinition;
use crate::plan::{INLINE_POLICY_LIMIT, finding_json};
use crate::policy::{self, Permission, PolicyDocument};

/// What one input file yielded.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file name as given.
    pub file: String,
    /// The derivation, or why the file could not be read as a task definition.
    pub result: Result<(Derivation, Option<PolicyDocument>), String>,
}

/// Derive every input. `inputs` are (file name, file text or read error).
pub fn derive_files(
    inputs: &[(String, Result<String, String>)],
    ctx: &DeriveContext,
    options: &DeriveOptions,
) -> Vec<FileReport> {
    inputs
        .iter()
        .map(|(file, text)| {
            let result = text.clone().and_then(|text| {
                let td = TaskDefinition::from_json(&text).map_err(|e| e.to_string())?;
                let derivation = derive::required_permissions(&td, ctx, options, &Facts::new());
                let permissions: Vec<Permission> = derivation
                    .requirements
                    .iter()
                    .map(|r| r.permission.clone())
                    .collect();
                let doc = (!permissions.is_empty()).then(|| policy::compile(&permissions));
                Ok((derivation, doc))
            });
            FileReport {
                file: file.clone(),
                result,
            }
        })
        .collect()
}

/// Whether any file could not be read as a task definition.
pub fn has_errors(reports: &[FileReport]) -> bool {
    reports.iter().any(|r| r.result.is_err())
}

/// Human-readable report.
pub fn render_text(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let (derivation, doc) = match &report.result {
            Err(error) => {
                let _ = writeln!(out, "== {}\n    error: {error}\n", report.file);
                continue;
            }
            Ok(ok) => ok,
        };
        let _ = writeln!(out, "== {}: {}", report.file, derivation.task_definition);
        let _ = writeln!(
            out,
            "execution role: {}",
            derivation.execution_role_arn.as_deref().unwrap_or("(none)")
        );
        if derivation.requirements.is_empty() {
            let _ = writeln!(out, "needs: nothing from the execution role");
        } else {
            let _ = writeln!(out, "needs:");
        }
        for requirement in &derivation.requirements {
            let _ = writeln!(
                out,
                "    + {} on {}",
                requirement.permission.action, requirement.permission.resource
            );
            for (operator, keys) in &requirement.permission.conditions {
                for (key, values) in keys {
                    let _ = writeln!(out, "        if {operator} {key} = {}", values.join(" | "));
                }
            }
            for reason in &requirement.reasons {
                let _ = writeln!(
                    out,
                    "        because container {} {}",
                    reason.container, reason.field
                );
            }
        }
        if !derivation.findings.is_empty() {
            let _ = writeln!(out, "findings:");
            for finding in &derivation.findings {
                let _ = writeln!(out, "    ! {finding}");
            }
        }
        if let Some(doc) = doc {
            let _ = writeln!(
                out,
                "policy ({} of {INLINE_POLICY_LIMIT} characters):\n{}",
                policy::iam_size(doc),
                doc.to_json()
            );
        }
        out.push('\n');
    }
    out
}

/// JSON report (schema 1):
///
/// ```text
/// { "schema": 1, "files": [ { "file", "error": null | "<why>", "task_definition", "execution_role_arn",
///   "role": { "account", "name" } | null,
///   "requirements": [ { "action", "resource", "conditions", "reasons": [ { "task_definition", "container", "field" } ] } ],
///   "findings": [ { "kind", "blocking", "task_definition", "container", "field", "message" } ],
///   "policy": <IAM policy document> | null, "policy_size": n } ] }
/// ```
pub fn render_json(reports: &[FileReport]) -> Value {
    let files: Vec<Value> = reports
        .iter()
        .map(|report| match &report.result {
            Err(error) => json!({ "file": report.file, "error": error }),
            Ok((d, doc)) => json!({
                "file": report.file,
                "error": null,
                "task_definition": d.task_definition,
                "execution_role_arn": d.execution_role_arn,
                "role": d.role.as_ref().map(|k| json!({"account": k.account, "name": k.name})),
                "requirements": d.requirements.iter().map(|r| json!({
                    "action": r.permission.action,
                    "resource": r.permission.resource,
                    "conditions": r.permission.conditions,
                    "reasons": r.reasons,
                })).collect::<Vec<_>>(),
                "findings": d.findings.iter().map(finding_json).collect::<Vec<_>>(),
                "policy": doc.as_ref().and_then(|d| serde_json::from_str::<Value>(&d.to_json()).ok()),
                "policy_size": doc.as_ref().map(policy::iam_size).unwrap_or(0),
            }),
        })
        .collect();
    json!({ "schema": 1, "files": files })
}

/// Only the policy documents, one minified document per line, for files that need any.
pub fn render_policies(reports: &[FileReport]) -> String {
    reports
        .iter()
        .filter_map(|r| r.result.as_ref().ok().and_then(|(_, doc)| doc.as_ref()))
        .map(|doc| format!("{}\n", doc.to_json()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(text: &str) -> Vec<(String, Result<String, String>)> {
        vec![("td.json".to_string(), Ok(text.to_string()))]
    }

    const TD: &str = r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
        "executionRoleArn":"arn:aws:iam::123456789012:role/app-exec","family":"web","revision":1,
        "containerDefinitions":[{"name":"web","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1"}]}"#;

    #[test]
    fn text_json_and_policy_outputs_agree() {
        let reports = derive_files(
            &inputs(TD),
            &DeriveContext::default(),
            &DeriveOptions::default(),
        );
        let text = render_text(&reports);
        assert!(
            text.contains(
                "+ ecr:BatchGetImage on arn:aws:ecr:us-east-1:123456789012:repository/web"
            ),
            "{text}"
        );
        assert!(
            text.contains("because container web containerDefinitions[0].image"),
            "{text}"
        );
        let json = render_json(&reports);
        assert_eq!(json["files"][0]["role"]["name"], "app-exec");
        assert_eq!(
            json["files"][0]["requirements"].as_array().unwrap().len(),
            4
        );
        let policy_line = render_policies(&reports);
        let doc = PolicyDocument::parse(policy_line.trim()).unwrap();
        assert_eq!(
            json["files"][0]["policy"],
            serde_json::from_str::<Value>(&doc.to_json()).unwrap()
        );
    }

    #[test]
    fn unreadable_files_are_reported_and_the_others_still_derived() {
        let mut all = inputs(TD);
        all.push(("bad.json".into(), Ok("{".into())));
        all.push(("missing.json".into(), Err("No such file".into())));
        let reports = derive_files(&all, &DeriveContext::default(), &DeriveOptions::default());
        assert!(has_errors(&reports));
        assert!(reports[0].result.is_ok());
        let text = render_text(&reports);
        assert!(
            text.contains("== bad.json\n    error: not valid JSON"),
            "{text}"
        );
        assert!(
            text.contains("== missing.json\n    error: No such file"),
            "{text}"
        );
    }
}
