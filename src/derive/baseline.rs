//! The `managed-policy` baseline: `AmazonECSTaskExecutionRolePolicy` is attached (as the seed's console and CLI
//! steps do), so execrole derives only what it lacks. The managed policy grants exactly `ecr:GetAuthorizationToken`,
//! the three ECR layer actions and `logs:CreateLogStream` / `logs:PutLogEvents` on `*`, unconditioned; every
//! requirement for those actions is covered by it, whatever its resource, and is dropped.
//!
//! That includes the layer statement of rule 1c: the managed policy already allows those actions without the VPC
//! endpoint condition, so a conditioned copy would restrict nothing. A VPC endpoint restriction only takes effect
//! with the `least-privilege` baseline. Not here: attaching the policy (the controller does that).

use std::collections::{BTreeMap, BTreeSet};

use super::Reason;
use crate::policy::Permission;

/// The managed policy's name, after `arn:P:iam::aws:policy/`.
pub const MANAGED_POLICY_NAME: &str = "service-role/AmazonECSTaskExecutionRolePolicy";

/// What the managed policy allows, each on `*` without conditions.
pub const MANAGED_POLICY_ACTIONS: [&str; 6] = [
    "ecr:GetAuthorizationToken",
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
];

/// `arn:<partition>:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy`.
pub fn managed_policy_arn(partition: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/{MANAGED_POLICY_NAME}")
}

/// Drop what the managed policy already grants.
pub(crate) fn drop_managed(requirements: &mut BTreeMap<Permission, BTreeSet<Reason>>) {
    requirements
        .retain(|permission, _| !MANAGED_POLICY_ACTIONS.contains(&permission.action.as_str()));
}
