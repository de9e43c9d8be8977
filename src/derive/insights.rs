//! Row 13: Container Insights with enhanced observability's lifecycle events, as the seed lists them. Configuring
//! them needs `events:PutRule`, `events:PutTargets` and `logs:CreateLogGroup`; viewing them needs
//! `events:DescribeRule`, `events:ListTargetsByRule` and `logs:DescribeLogGroups`; all on `*`, exactly as in the
//! seed. Opt-in (the config decides per role or globally); nothing here reads a task definition.

use crate::policy::Permission;

/// The actions to configure lifecycle events.
pub const CONFIGURE_ACTIONS: [&str; 3] =
    ["events:PutRule", "events:PutTargets", "logs:CreateLogGroup"];

/// The actions to view lifecycle events.
pub const VIEW_ACTIONS: [&str; 3] = [
    "events:DescribeRule",
    "events:ListTargetsByRule",
    "logs:DescribeLogGroups",
];

/// The Container Insights permissions for the chosen opt-ins, sorted.
pub fn container_insights_permissions(configure: bool, view: bool) -> Vec<Permission> {
    let mut permissions: Vec<Permission> = configure
        .then_some(CONFIGURE_ACTIONS)
        .into_iter()
        .chain(view.then_some(VIEW_ACTIONS))
        .flatten()
        .map(|action| Permission::new(action, "*"))
        .collect();
    permissions.sort();
    permissions
}
