//! Rules 8 and 9: the `awslogs` log driver. The execution role needs `logs:CreateLogStream` and
//! `logs:PutLogEvents` on `arn:P:logs:<awslogs-region>:A:log-group:<group>:*` (the `:*` form is what AWS checks),
//! plus `logs:CreateLogGroup` on the same resource when `awslogs-create-group` is `true`.
//!
//! The Region is `awslogs-region`, which may differ from the task's; the account is always the task's. Other log
//! drivers (and their `secretOptions`) are not handled here.

use super::site::log_configuration_path;
use super::{FindingKind, Needs, partition};
use crate::model::{ContainerDefinition, Options, has_placeholder, is_region};
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
    let at = Fields::of(container, log.was_list);
    let Some(group) = log_group(&log.options, &at, needs) else {
        return;
    };
    let Some(region) = log_region(&log.options, &at, needs) else {
        return;
    };
    let Some(account) = needs.scope.account.clone() else {
        at.find(
            needs,
            FindingKind::UnknownContext,
            &at.group,
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
            &at.container,
            &at.group,
        );
    }
    if log
        .options
        .get("awslogs-create-group")
        .is_some_and(|v| is_true(v))
    {
        needs.grant(
            Permission::new("logs:CreateLogGroup", resource),
            &at.container,
            &at.option("awslogs-create-group"),
        );
    }
}

/// The container and the field paths of the awslogs options, for reasons and findings: `awslogs-group`'s, which
/// every grant names, and the others' when they are needed.
struct Fields<'c> {
    of: &'c ContainerDefinition,
    base: &'static str,
    container: String,
    group: String,
}

impl Fields<'_> {
    fn of(container: &ContainerDefinition, was_list: bool) -> Fields<'_> {
        let base = log_configuration_path(was_list);
        Fields {
            of: container,
            base,
            container: container.display_name(),
            group: container.field_path(format_args!("{base}.options.awslogs-group")),
        }
    }

    /// The field path of option `name`.
    fn option(&self, name: &str) -> String {
        self.of
            .field_path(format_args!("{}.options.{name}", self.base))
    }

    fn find(&self, needs: &mut Needs, kind: FindingKind, field: &str, message: impl Into<String>) {
        needs.find(kind, Some(&self.container), Some(field), message);
    }
}

/// The `awslogs-group` option when it is a usable log group name; otherwise a finding and `None`.
fn log_group<'a>(options: &'a Options, at: &Fields, needs: &mut Needs) -> Option<&'a String> {
    let Some(group) = options.get("awslogs-group").filter(|g| !g.is_empty()) else {
        at.find(
            needs,
            FindingKind::InvalidReference,
            &at.group,
            "the awslogs driver needs the awslogs-group option; tasks will fail to start",
        );
        return None;
    };
    let problem = if has_placeholder(group) {
        (
            FindingKind::UnresolvedPlaceholder,
            format!("log group `{group}` holds an unresolved template placeholder"),
        )
    } else if !is_log_group_name(group) {
        (
            FindingKind::InvalidReference,
            format!("`{group}` is not a valid CloudWatch Logs group name"),
        )
    } else {
        return Some(group);
    };
    at.find(needs, problem.0, &at.group, problem.1);
    None
}

/// The `awslogs-region` option, or the task's Region (with a finding) when it is not set; a finding and `None`
/// when neither gives a Region.
fn log_region(options: &Options, at: &Fields, needs: &mut Needs) -> Option<String> {
    let (kind, message) = match options.get("awslogs-region").filter(|r| !r.is_empty()) {
        Some(region) if has_placeholder(region) => (
            FindingKind::UnresolvedPlaceholder,
            format!("awslogs-region `{region}` holds an unresolved template placeholder"),
        ),
        Some(region) if !is_region(region) => (
            FindingKind::InvalidReference,
            format!("awslogs-region `{region}` is not a Region name"),
        ),
        Some(region) => return Some(region.clone()),
        None => match needs.scope.region.clone() {
            Some(task_region) => {
                at.find(
                    needs,
                    FindingKind::IncompleteConfiguration,
                    &at.option("awslogs-region"),
                    format!("awslogs-region is not set; assumed the task's Region {task_region}"),
                );
                return Some(task_region);
            }
            None => (
                FindingKind::UnknownContext,
                "awslogs-region is not set and the task's Region is unknown (give --region)"
                    .to_owned(),
            ),
        },
    };
    at.find(needs, kind, &at.option("awslogs-region"), message);
    None
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
