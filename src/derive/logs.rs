//! Rules 8 and 9: the `awslogs` log driver. The execution role needs `logs:CreateLogStream` and
//! `logs:PutLogEvents` on `arn:P:logs:<awslogs-region>:A:log-group:<group>:*` (the `:*` form is what AWS checks),
//! plus `logs:CreateLogGroup` on the same resource when `awslogs-create-group` is `true`.
//!
//! The Region is `awslogs-region`, which may differ from the task's; the account is always the task's. Other log
//! drivers (and their `secretOptions`) are not handled here.

use super::{FindingKind, Needs, partition};
use crate::model::{ContainerDefinition, has_placeholder, is_region};
use crate::policy::Permission;

/// Rules 8 and 9 for one container.
pub(crate) fn awslogs(container: &ContainerDefinition, needs: &mut Needs) {
    let Some(log) = &container.log_configuration else {
        return;
    };
    if !log
        .log_driver
        .as_deref()
        .is_some_and(|d| d.eq_ignore_ascii_case("awslogs"))
    {
        return;
    }
    let name = container.display_name();
    let base = if log.was_list {
        "logConfiguration[0]"
    } else {
        "logConfiguration"
    };
    let group_field = container.field_path(&format!("{base}.options.awslogs-group"));
    let region_field = container.field_path(&format!("{base}.options.awslogs-region"));

    let Some(group) = log.options.get("awslogs-group").filter(|g| !g.is_empty()) else {
        needs.find(
            FindingKind::InvalidReference,
            Some(&name),
            Some(&group_field),
            "the awslogs driver needs the awslogs-group option; tasks will fail to start",
        );
        return;
    };
    if has_placeholder(group) {
        needs.find(
            FindingKind::UnresolvedPlaceholder,
            Some(&name),
            Some(&group_field),
            format!("log group `{group}` holds an unresolved template placeholder"),
        );
        return;
    }
    if !is_log_group_name(group) {
        needs.find(
            FindingKind::InvalidReference,
            Some(&name),
            Some(&group_field),
            format!("`{group}` is not a valid CloudWatch Logs group name"),
        );
        return;
    }
    let region = match log.options.get("awslogs-region").filter(|r| !r.is_empty()) {
        Some(region) if has_placeholder(region) => {
            needs.find(
                FindingKind::UnresolvedPlaceholder,
                Some(&name),
                Some(&region_field),
                format!("awslogs-region `{region}` holds an unresolved template placeholder"),
            );
            return;
        }
        Some(region) if !is_region(region) => {
            needs.find(
                FindingKind::InvalidReference,
                Some(&name),
                Some(&region_field),
                format!("awslogs-region `{region}` is not a Region name"),
            );
            return;
        }
        Some(region) => region.clone(),
        None => match needs.scope.region.clone() {
            Some(task_region) => {
                needs.find(
                    FindingKind::IncompleteConfiguration,
                    Some(&name),
                    Some(&region_field),
                    format!("awslogs-region is not set; assumed the task's Region {task_region}"),
                );
                task_region
            }
            None => {
                needs.find(
                    FindingKind::UnknownContext,
                    Some(&name),
                    Some(&region_field),
                    "awslogs-region is not set and the task's Region is unknown (give --region)",
                );
                return;
            }
        },
    };
    let Some(account) = needs.scope.account.clone() else {
        needs.find(
            FindingKind::UnknownContext,
            Some(&name),
            Some(&group_field),
            "the task's account is unknown, so the log group ARN cannot be built (give --account)",
        );
        return;
    };
    let resource = format!(
        "arn:{}:logs:{region}:{account}:log-group:{group}:*",
        partition(&region)
    );
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        needs.grant(
            Permission::new(action, resource.clone()),
            &name,
            &group_field,
        );
    }
    let create_field = container.field_path(&format!("{base}.options.awslogs-create-group"));
    if log
        .options
        .get("awslogs-create-group")
        .is_some_and(|v| is_true(v))
    {
        needs.grant(
            Permission::new("logs:CreateLogGroup", resource),
            &name,
            &create_field,
        );
    }
}

/// CloudWatch Logs group names: 1–512 of `A-Za-z0-9`, `_`, `-`, `/`, `.`, `#`.
fn is_log_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= 512
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'.' | b'#'))
}

/// Whether a Docker log option is true, as the awslogs driver parses it (Go's `strconv.ParseBool`).
fn is_true(value: &str) -> bool {
    matches!(value.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True")
}
