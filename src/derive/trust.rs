//! Row 14: the execution role's trust policy, as the seed's "create the role" step writes it: Allow `sts:AssumeRole`
//! for the service principal `ecs-tasks.amazonaws.com`. Optionally hardened against the confused deputy with
//! `StringEquals aws:SourceAccount = A` and `ArnLike aws:SourceArn = arn:P:ecs:R:A:*` (a per-cluster SourceArn is
//! not supported by AWS). Not here: comparing it with the role's current trust policy (`plan`).

use serde_json::json;

use crate::policy::{Effect, POLICY_VERSION, PolicyDocument, Statement};

/// The ECS tasks service principal (the same in every partition).
pub const ECS_TASKS_PRINCIPAL: &str = "ecs-tasks.amazonaws.com";

/// The trust policy; `hardening` is `(account, region)` of the tasks allowed to assume the role.
pub fn trust_policy(partition: &str, hardening: Option<(&str, &str)>) -> PolicyDocument {
    let mut statement = Statement::new(Effect::Allow);
    statement.principal = Some(json!({ "Service": ECS_TASKS_PRINCIPAL }));
    statement.action = Some(vec!["sts:AssumeRole".to_string()]);
    if let Some((account, region)) = hardening {
        statement
            .condition
            .entry("StringEquals".to_string())
            .or_default()
            .insert("aws:SourceAccount".to_string(), vec![account.to_string()]);
        statement
            .condition
            .entry("ArnLike".to_string())
            .or_default()
            .insert(
                "aws:SourceArn".to_string(),
                vec![format!("arn:{partition}:ecs:{region}:{account}:*")],
            );
    }
    PolicyDocument {
        version: Some(POLICY_VERSION.to_string()),
        statements: vec![statement],
    }
}
