//! Rendering a [`Plan`]: text that reads like `terraform plan` (per role a symbol, `+`/`-` per permission, the
//! reasons behind each addition, findings), and JSON with a stable, documented schema (`"schema": 1`; fields are
//! only ever added).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::json::{FindingJson, RequirementJson};
use super::{Change, HeldBack, Hold, INLINE_POLICY_LIMIT, Plan, RolePlan};
use crate::derive::Finding;
use crate::policy::Permission;

/// The plan as human-readable text.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    for role in &plan.roles {
        role_text(&mut out, role);
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "Task definitions without a usable execution role:");
        for finding in &plan.findings {
            let _ = writeln!(out, "    ! {finding}");
        }
        out.push('\n');
    }
    for (key, error) in &plan.errors {
        let _ = writeln!(out, "x role {key}: could not be read: {error}\n");
    }
    let count = |c: &str| {
        plan.roles
            .iter()
            .filter(|r| r.change.as_str() == c && (c != "none" || !r.has_changes()))
            .count()
    };
    let findings = plan.findings.len() + plan.roles.iter().map(|r| r.findings.len()).sum::<usize>();
    if plan.has_changes() {
        let _ = writeln!(
            out,
            "Plan: {} to create, {} to update, {} to delete, {} up to date; {} findings{}.",
            count("create"),
            count("update"),
            count("delete"),
            count("none"),
            findings,
            errors_suffix(plan),
        );
    } else {
        let _ = writeln!(
            out,
            "No changes. {} execution roles up to date; {} findings{}.",
            plan.roles.len(),
            findings,
            errors_suffix(plan),
        );
    }
    out
}

fn errors_suffix(plan: &Plan) -> String {
    if plan.errors.is_empty() {
        String::new()
    } else {
        format!("; {} roles could not be read", plan.errors.len())
    }
}

/// The heading says what apply writes: the full delta, or when removals are held back the write that keeps them
/// (the lines below still show the full delta).
fn role_text(out: &mut String, role: &RolePlan) {
    let write = role.write();
    let (symbol, verb) = match (&write.change, role.role_exists) {
        (_, false) => ("!", "does not exist; nothing can be written"),
        _ if role.is_write_withheld() => (
            "!",
            "removals are held back and the write cannot keep them; nothing is written",
        ),
        _ if write.too_large.is_some() => (
            "!",
            "needs more than IAM's size limits allow; nothing is written",
        ),
        (Change::Delete, true) if !write.managed.is_empty() => (
            "~",
            "needs more than fits inline: moves into spill policies",
        ),
        (_, true) if !write.managed.is_empty() => ("~", "spill policies will be updated"),
        (Change::None, true) if write.has_changes() => {
            ("~", "inline policy up to date; other changes below")
        }
        (Change::None, true) if role.held_back.is_some() => {
            ("=", "nothing to write; the removals below are held back")
        }
        (Change::None, true) => ("=", "up to date"),
        (Change::Create { .. }, true) => ("+", "inline policy will be created"),
        (Change::Update { .. }, true) => ("~", "inline policy will be updated"),
        (Change::Delete, true) => ("-", "inline policy will be deleted (nothing needs it)"),
    };
    let _ = writeln!(
        out,
        "{symbol} role {} policy {}: {verb}",
        role.key, role.policy_name
    );
    role_details_text(out, role);
    out.push('\n');
}

/// The lines under a role's heading: who uses it, `+`/`-` per permission with reasons, blocked and over-granted
/// needs, writes to other policies, findings. Shared with `derive --against`, which heads them its own way.
pub fn role_details_text(out: &mut String, role: &RolePlan) {
    role_delta(out, role);
    role_warnings(out, role);
    role_other_writes(out, role);
    for finding in &role.findings {
        let _ = writeln!(out, "    ! {finding}");
    }
    if !role.other_inline_policies.is_empty() {
        let _ = writeln!(
            out,
            "    other inline policies (not ours, left untouched): {}",
            role.other_inline_policies.join(", ")
        );
    }
}

/// What uses the role, and the permissions added and removed, with why.
fn role_delta(out: &mut String, role: &RolePlan) {
    let _ = writeln!(out, "    used by: {}", role.task_definitions.join(", "));
    if let Some(error) = &role.unreadable_owned_policy {
        let _ = writeln!(
            out,
            "    ! the owned policy cannot be read and will be replaced whole: {error}"
        );
    }
    for addition in &role.added {
        let _ = writeln!(out, "    + {}", permission_text(&addition.permission));
        for reason in &addition.reasons {
            let _ = writeln!(
                out,
                "        because {} container {} {}",
                reason.task_definition, reason.container, reason.field
            );
        }
    }
    let held = role.held_back.as_ref();
    for removed in &role.removed {
        let by = held
            .and_then(|h| h.removals.iter().find(|r| r.permission == *removed))
            .map(|r| held_by_text(&r.by))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    - {}   (no longer needed{by})",
            permission_text(removed)
        );
    }
    for other in &role.removed_other {
        let _ = writeln!(out, "    - {other}   (no longer needed)");
    }
    if held.is_some_and(|h| h.withheld) {
        let _ = writeln!(
            out,
            "    ! removals are held back and the write would still take away what cannot be kept; nothing is \
             written"
        );
    }
}

/// `; held back: <why>` for a removal that a hold keeps, naming every hold.
fn held_by_text(by: &[Hold]) -> String {
    let reasons: Vec<String> = by.iter().map(Hold::describe).collect();
    format!("; held back: {}", reasons.join("; "))
}

/// Needs that stay blocked, over-grants elsewhere, and a role too large for IAM.
fn role_warnings(out: &mut String, role: &RolePlan) {
    for blocked in &role.blocked {
        let why = blocked.why.describe();
        let _ = writeln!(
            out,
            "    ! blocked: {} on {} is stopped by {why}; tasks that need it will fail",
            blocked.action, blocked.resource
        );
    }
    for over in &role.over_granted {
        let _ = writeln!(
            out,
            "    ! over-granted elsewhere: {} allows {} (not changed by execrole)",
            over.source, over.allows
        );
    }
    if let Some(why) = &role.too_large {
        let _ = writeln!(out, "    ! role too large: {why}; nothing is written");
    }
}

/// The writes besides the inline policy: spill policies, the managed-policy attachment, the trust policy.
fn role_other_writes(out: &mut String, role: &RolePlan) {
    for change in &role.managed {
        let _ = writeln!(out, "    {}", spill_change_text(change));
    }
    if let Some(arn) = &role.attach_managed_policy {
        let _ = writeln!(
            out,
            "    + attach managed policy {arn}   (baseline managed-policy)"
        );
    }
    if let Some(arn) = &role.detach_managed_policy {
        let _ = writeln!(
            out,
            "    - detach managed policy {arn}   (attached by execrole: the role is tagged {}; baseline least-privilege)",
            super::BASELINE_TAG.0
        );
    }
    match role.baseline_tag {
        Some(super::BaselineTag::Add) => {
            let _ = writeln!(
                out,
                "    + tag the role {}={}",
                super::BASELINE_TAG.0,
                super::BASELINE_TAG.1
            );
        }
        Some(super::BaselineTag::Remove) => {
            let _ = writeln!(out, "    - untag the role {}", super::BASELINE_TAG.0);
        }
        None => {}
    }
    if let Some(trust) = &role.trust_update {
        let _ = writeln!(out, "    ~ trust policy will be rewritten: {trust}");
    }
}

/// One spill-policy write, as a plan line.
fn spill_change_text(change: &super::ManagedChange) -> String {
    use super::ManagedChange;
    match change {
        ManagedChange::Create { name, document } => format!(
            "+ spill policy {name} will be created and attached ({} characters)",
            document.len()
        ),
        ManagedChange::Update { name, document, .. } => format!(
            "~ spill policy {name} gets a new version ({} characters)",
            document.len()
        ),
        ManagedChange::SetDefault {
            name, version_id, ..
        } => format!(
            "~ spill policy {name}: its newer version {version_id} already holds the document and becomes the default"
        ),
        ManagedChange::PruneVersions {
            name, version_ids, ..
        } => format!(
            "- spill policy {name}: versions newer than the default ({}) will be deleted",
            version_ids.join(", ")
        ),
        ManagedChange::Attach { name, .. } => format!(
            "+ spill policy {name} exists unattached (an interrupted write) and will be attached"
        ),
        ManagedChange::Delete {
            name,
            is_attached: true,
            ..
        } => format!("- spill policy {name} will be detached and deleted"),
        ManagedChange::Delete { name, .. } => {
            format!("- spill policy {name} exists unattached and is not needed: it will be deleted")
        }
    }
}

fn permission_text(p: &Permission) -> String {
    let mut text = format!("{} on {}", p.action, p.resource);
    for (operator, keys) in &p.conditions {
        for (key, values) in keys {
            let _ = write!(text, " if {operator} {key} = {}", values.join(" | "));
        }
    }
    text
}

/// The plan as JSON. Schema (version 1):
///
/// ```text
/// { "schema": 1, "changes_pending": bool,
///   "summary": { "roles", "create", "update", "delete", "unchanged", "findings", "errors" },
///   "roles": [ { "account", "role", "policy_name", "role_exists", "change": "none|create|update|delete",
///                "task_definitions": [..],
///                "added": [ { "action", "resource", "conditions", "reasons": [ {"task_definition","container","field"} ] } ],
///                "removed": [ { "action", "resource", "conditions" } ], "removed_other": [ "<statement json>" ],
///                "policy": <desired policy document or null>, "policy_size": n, "policy_size_limit": 10240,
///                "other_inline_policies": [..], "unreadable_owned_policy": "<error>" | null,
///                "attach_managed_policy": "<arn>" | null, "detach_managed_policy": "<arn>" | null,
///                "baseline_tag": "add|remove" | null, "trust_policy_update": <document> | null,
///                "spill_policies": [ { "change": "create|update|set_default|prune_versions|attach|delete",
///                                      "name", "arn"?, "document"?, "version_id"?, "version_ids"?,
///                                      "is_attached"? } ],
///                "too_large": "<why>" | null,
///                "blocked": [ { "action", "resource", "why": "explicit_deny|boundary|unknown" } ],
///                "over_granted_elsewhere": [ { "source", "allows" } ],
///                "held_back": [ { "action", "resource", "conditions",
///                                 "by": [ { "hold": "partial_observation|unresolved_lookup", "scope"?, "finding"? } ] } ],
///                "write_withheld": bool,
///                "findings": [ Finding ] } ],
///   "findings": [ { "kind", "blocking", "task_definition", "container", "field", "message", "holds_back" } ],
///   "errors": [ { "account", "role", "error" } ] }
/// ```
pub fn render_json(plan: &Plan) -> Value {
    let count = |c: &str| plan.roles.iter().filter(|r| r.change.as_str() == c).count();
    json!({
        "schema": 1,
        "changes_pending": plan.has_changes(),
        "summary": {
            "roles": plan.roles.len(),
            "create": count("create"),
            "update": count("update"),
            "delete": count("delete"),
            "unchanged": count("none"),
            "findings": plan.findings.len() + plan.roles.iter().map(|r| r.findings.len()).sum::<usize>(),
            "errors": plan.errors.len(),
        },
        "roles": plan.roles.iter().map(role_json).collect::<Vec<_>>(),
        "findings": plan.findings.iter().map(finding_json).collect::<Vec<_>>(),
        "errors": plan.errors.iter().map(|(key, error)| json!({
            "account": key.account, "role": key.name, "error": error,
        })).collect::<Vec<_>>(),
    })
}

fn role_json(role: &RolePlan) -> Value {
    json!({
        "account": role.key.account,
        "role": role.key.name,
        "policy_name": role.policy_name,
        "role_exists": role.role_exists,
        "change": role.change.as_str(),
        "task_definitions": role.task_definitions,
        "added": role.added.iter().map(|a| value(RequirementJson {
            permission: &a.permission,
            reasons: &a.reasons,
        })).collect::<Vec<_>>(),
        "removed": role.removed.iter().map(|p| json!({
            "action": p.action, "resource": p.resource, "conditions": p.conditions,
        })).collect::<Vec<_>>(),
        "removed_other": role.removed_other,
        "policy": role.desired.as_ref().map(|d| value(d.sorted_keys())),
        "policy_size": role.desired_size,
        "policy_size_limit": INLINE_POLICY_LIMIT,
        "other_inline_policies": role.other_inline_policies,
        "unreadable_owned_policy": role.unreadable_owned_policy,
        "attach_managed_policy": role.attach_managed_policy,
        "detach_managed_policy": role.detach_managed_policy,
        "baseline_tag": role.baseline_tag,
        "spill_policies": role.managed,
        "too_large": role.too_large,
        "blocked": role.blocked,
        "over_granted_elsewhere": role.over_granted,
        "trust_policy_update": role.trust_update.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok()),
        "held_back": role.held_back.as_ref().map(held_back_json).unwrap_or_default(),
        "write_withheld": role.is_write_withheld(),
        "findings": role.findings.iter().map(finding_json).collect::<Vec<_>>(),
    })
}

/// The removals held back, each with every hold that keeps it.
fn held_back_json(held: &HeldBack) -> Vec<Value> {
    held.removals
        .iter()
        .map(|r| {
            json!({
                "action": r.permission.action,
                "resource": r.permission.resource,
                "conditions": r.permission.conditions,
                "by": r.by.iter().map(hold_json).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn hold_json(hold: &Hold) -> Value {
    match hold {
        Hold::PartialObservation => json!({ "hold": hold.as_str() }),
        Hold::Unresolved { scope, finding } => json!({
            "hold": hold.as_str(),
            "scope": scope,
            "finding": finding_json(finding),
        }),
    }
}

/// A finding as JSON ([`FindingJson`]).
fn finding_json(f: &Finding) -> Value {
    value(FindingJson(f))
}

/// One of the shared JSON forms as a `Value`.
fn value(form: impl serde::Serialize) -> Value {
    serde_json::to_value(form).expect("the JSON forms always serialise: every map key is a string")
}
