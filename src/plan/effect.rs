//! Drift by effect: what the role can really do once the owned policy is as desired, judged by evaluating every
//! need against all of the role's policies (the owned one, its other inline and attached policies) and its
//! permissions boundary, the way IAM does (`policy::evaluate`).
//!
//! *Blocked*: a need that an explicit `Deny` or the boundary stops, so tasks will still fail however the owned
//! policy is written. *Over-granted elsewhere*: another policy allows far more than the needs (a whole service, or
//! a needed action on `*`): reported, never changed. *Unknown*: a condition could not be decided.

use serde::Serialize;

use crate::derive::Requirement;
use crate::policy::{Decision, Evaluator, Permission, PolicyDocument, Request};

/// A policy of the role other than the owned ones, with a name to report it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherPolicy {
    /// `inline:<name>` or the managed policy's ARN.
    pub source: String,
    /// Its document.
    pub document: PolicyDocument,
}

/// A need that the role's other policies or its boundary stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// What stops it.
    pub why: BlockedBy,
}

/// What stops a needed permission (`why` in plans and JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockedBy {
    /// An explicit `Deny` in another policy.
    ExplicitDeny,
    /// The permissions boundary (or no policy at all) does not allow it.
    Boundary,
    /// A condition that cannot be evaluated.
    Unknown,
}

impl BlockedBy {
    /// The stable name (the JSON `why`).
    pub fn as_str(self) -> &'static str {
        match self {
            BlockedBy::ExplicitDeny => "explicit_deny",
            BlockedBy::Boundary => "boundary",
            BlockedBy::Unknown => "unknown",
        }
    }

    /// The words of the text plan.
    pub fn describe(self) -> &'static str {
        match self {
            BlockedBy::ExplicitDeny => "an explicit Deny in another policy",
            BlockedBy::Boundary => "the permissions boundary (or no policy) does not allow it",
            BlockedBy::Unknown => "a condition that cannot be evaluated",
        }
    }
}

/// Another policy that allows much more than the role needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverGrant {
    /// Which policy.
    pub source: String,
    /// What it allows, e.g. `ecr:* on *`.
    pub allows: String,
}

/// Evaluate every need with the desired owned policy in place.
///
/// `desired` must be the policy compiled from `requirements` (`derive::policy_for`), or `None` to judge the needs
/// by the other policies alone. It grants every need, so a need it certainly allows (no conditions, no policy
/// variable in the resource: its statement matches whatever the context) is decided by the other policies' `Deny`
/// statements and the boundary alone ([`Evaluator::evaluate_allowed`]). The other needs are evaluated against
/// all the policies, the desired one cut down to the statements that can match their actions.
pub fn blocked_needs(
    desired: Option<&PolicyDocument>,
    requirements: &[Requirement],
    others: &[OtherPolicy],
    boundary: Option<&PolicyDocument>,
) -> Vec<Blocked> {
    debug_assert!(
        desired.is_none_or(
            |d| *d == crate::policy::compile(requirements.iter().map(|r| &r.permission))
        ),
        "the desired policy is the one compiled from the needs"
    );
    let other_documents = || others.iter().map(|o| &o.document);
    let others_only = Evaluator::new(other_documents(), boundary);
    let desired_part = desired.map(|d| part_for_uncertain_needs(d, requirements));
    let with_desired = desired_part
        .as_ref()
        .map(|d| Evaluator::new(std::iter::once(d).chain(other_documents()), boundary));
    requirements
        .iter()
        .filter_map(|r| {
            let request = request_for(&r.permission);
            let decision = match &with_desired {
                None => others_only.evaluate(&request),
                Some(_) if certainly_allowed_by_its_statement(&r.permission) => {
                    others_only.evaluate_allowed(&request)
                }
                Some(with_desired) => with_desired.evaluate(&request),
            };
            blocked(&r.permission, decision)
        })
        .collect()
}

/// The statements of the desired policy that can match the action of a need it does not certainly allow (the
/// others cannot change how those needs are decided): the ones with an `Action` entry that is such an action
/// (actions compare lower-cased) or has a wildcard, and any with `NotAction`. No statement when every need is
/// certainly allowed.
fn part_for_uncertain_needs(
    desired: &PolicyDocument,
    requirements: &[Requirement],
) -> PolicyDocument {
    let actions: std::collections::HashSet<String> = requirements
        .iter()
        .filter(|r| !certainly_allowed_by_its_statement(&r.permission))
        .map(|r| r.permission.action.to_lowercase())
        .collect();
    let can_match = |statement: &&crate::policy::Statement| match &statement.action {
        Some(listed) => listed
            .iter()
            .any(|a| a.contains(['*', '?']) || actions.contains(&a.to_lowercase())),
        None => true,
    };
    let statements = if actions.is_empty() {
        Vec::new()
    } else {
        desired
            .statements
            .iter()
            .filter(can_match)
            .cloned()
            .collect()
    };
    PolicyDocument {
        version: desired.version.clone(),
        statements,
    }
}

/// The request a need makes: its action on its resource, its condition values as the context.
fn request_for(permission: &Permission) -> Request {
    let mut request = Request::new(permission.action.clone(), permission.resource.clone());
    for keys in permission.conditions.values() {
        for (key, values) in keys {
            request = request.with_context(key, values.iter().cloned());
        }
    }
    request
}

/// Whether the statement a compiled policy grants `permission` with certainly matches the permission's own
/// request: it has no conditions, and its resource no policy variable (`${…}`), so the resource pattern is the
/// resource itself, which a glob always matches. The action, lower-cased the same way on both sides, too.
fn certainly_allowed_by_its_statement(permission: &Permission) -> bool {
    permission.conditions.is_empty() && !permission.resource.contains("${")
}

/// The need as blocked, unless the decision allows it.
fn blocked(permission: &Permission, decision: Decision) -> Option<Blocked> {
    let why = match decision {
        Decision::Allowed => return None,
        Decision::ExplicitDeny => BlockedBy::ExplicitDeny,
        Decision::ImplicitDeny => BlockedBy::Boundary,
        Decision::Unknown => BlockedBy::Unknown,
    };
    Some(Blocked {
        action: permission.action.clone(),
        resource: permission.resource.clone(),
        why,
    })
}

/// Allow statements of other policies that cover a needed service wholesale (`*`, `ecr:*`) or a needed action on
/// every resource. `exempt` names policies that are meant to (the managed-policy baseline).
pub fn over_grants(
    requirements: &[Requirement],
    others: &[OtherPolicy],
    exempt: Option<&str>,
) -> Vec<OverGrant> {
    // The needed services, each once (a role needs few): compared ignoring ASCII case.
    let mut services: Vec<&str> = Vec::new();
    for (service, _) in requirements
        .iter()
        .filter_map(|r| r.permission.action.split_once(':'))
    {
        if !services.iter().any(|s| s.eq_ignore_ascii_case(service)) {
            services.push(service);
        }
    }
    let needed_on_star: std::collections::BTreeSet<String> = requirements
        .iter()
        .filter(|r| r.permission.resource == "*")
        .map(|r| r.permission.action.to_ascii_lowercase())
        .collect();
    let mut found = Vec::new();
    for other in others.iter().filter(|o| Some(o.source.as_str()) != exempt) {
        for statement in &other.document.statements {
            if statement.effect != crate::policy::Effect::Allow || !statement.condition.is_empty() {
                continue;
            }
            let Some(actions) = &statement.action else {
                continue;
            };
            let on_everything = statement
                .resource
                .as_ref()
                .is_some_and(|rs| rs.iter().any(|r| r == "*"));
            for action in actions {
                let lower = action.to_ascii_lowercase();
                let wholesale = lower == "*"
                    || lower.strip_suffix(":*").is_some_and(|service| {
                        services.iter().any(|s| s.eq_ignore_ascii_case(service))
                    });
                let needed_action_everywhere = on_everything
                    && !needed_on_star.contains(&lower)
                    && requirements
                        .iter()
                        .any(|r| r.permission.action.eq_ignore_ascii_case(action));
                if wholesale || needed_action_everywhere {
                    let resources = statement.resource.clone().unwrap_or_default().join(", ");
                    found.push(OverGrant {
                        source: other.source.clone(),
                        allows: format!("{action} on {resources}"),
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| (&a.source, &a.allows).cmp(&(&b.source, &b.allows)));
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::Reason;
    use crate::policy::{Effect, Statement, compile};
    use proptest::prelude::*;

    fn need(action: &str, resource: &str) -> Requirement {
        Requirement {
            permission: Permission::new(action, resource),
            reasons: vec![Reason {
                task_definition: "web:1".into(),
                container: "web".into(),
                field: "containerDefinitions[0].image".into(),
            }],
        }
    }

    fn other(source: &str, json: &str) -> OtherPolicy {
        OtherPolicy {
            source: source.into(),
            document: PolicyDocument::parse(json).unwrap(),
        }
    }

    const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/web";

    #[test]
    fn an_explicit_deny_elsewhere_blocks_a_need() {
        let needs = vec![
            need("ecr:BatchGetImage", REPO),
            need("ecr:GetAuthorizationToken", "*"),
        ];
        let desired = compile(
            &needs
                .iter()
                .map(|r| r.permission.clone())
                .collect::<Vec<_>>(),
        );
        let deny = other(
            "inline:guardrail",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}]}"#,
        );
        let blocked = blocked_needs(Some(&desired), &needs, &[deny], None);
        assert_eq!(
            blocked,
            vec![Blocked {
                action: "ecr:BatchGetImage".into(),
                resource: REPO.into(),
                why: BlockedBy::ExplicitDeny
            }]
        );
        assert!(blocked_needs(Some(&desired), &needs, &[], None).is_empty());
    }

    #[test]
    fn a_boundary_that_does_not_allow_a_need_blocks_it() {
        let needs = vec![
            need("ecr:BatchGetImage", REPO),
            need(
                "logs:PutLogEvents",
                "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*",
            ),
        ];
        let desired = compile(
            &needs
                .iter()
                .map(|r| r.permission.clone())
                .collect::<Vec<_>>(),
        );
        let boundary = PolicyDocument::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
        )
        .unwrap();
        let blocked = blocked_needs(Some(&desired), &needs, &[], Some(&boundary));
        assert_eq!(blocked.len(), 1);
        assert_eq!(
            (blocked[0].action.as_str(), blocked[0].why.as_str()),
            ("logs:PutLogEvents", "boundary")
        );
    }

    /// A need: an action, a resource (wildcards and policy variables included) and maybe a condition.
    fn random_need() -> impl Strategy<Value = Requirement> {
        let condition = prop::option::of((
            prop::sample::select(vec!["StringEquals", "StringLike", "Null", "IpAddress"]),
            prop::collection::vec("[ab*]|true", 0..3),
        ));
        (
            "(ecr|ECR|s3):(Get|get|a\\*|G\\?t)",
            "arn:[ab*?]{0,3}|\\$\\{aws:username\\}/[ab]|\\*",
            condition,
        )
            .prop_map(|(action, resource, condition)| {
                let mut requirement = need(&action, &resource);
                if let Some((operator, values)) = condition {
                    requirement.permission =
                        requirement.permission.with_condition(operator, "k", values);
                }
                requirement
            })
    }

    /// A policy of one statement: either effect, an action and a resource pattern, maybe a condition on `k`.
    fn random_policy() -> impl Strategy<Value = PolicyDocument> {
        (
            any::<bool>(),
            "(ecr|s3):(Get|get|\\*)|\\*",
            "arn:[ab*]{0,2}|\\*",
            prop::option::of("[ab*]"),
        )
            .prop_map(|(allow, action, resource, condition)| {
                let mut statement = Statement {
                    action: Some(vec![action]),
                    resource: Some(vec![resource]),
                    ..Statement::new(if allow { Effect::Allow } else { Effect::Deny })
                };
                if let Some(value) = condition {
                    statement.condition = [(
                        "StringLike".to_owned(),
                        [("k".to_owned(), vec![value])].into(),
                    )]
                    .into();
                }
                PolicyDocument {
                    version: Some(crate::policy::POLICY_VERSION.to_owned()),
                    statements: vec![statement],
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The shortcut for needs the desired policy certainly allows (only the Deny statements and the boundary
        /// are tested for them) decides exactly as evaluating every need against all the policies.
        #[test]
        fn blocked_needs_agree_with_evaluating_every_policy(
            needs in prop::collection::vec(random_need(), 1..8),
            others in prop::collection::vec(random_policy(), 0..4),
            boundary in prop::option::of(random_policy()),
        ) {
            let others: Vec<OtherPolicy> = others
                .into_iter()
                .enumerate()
                .map(|(i, document)| OtherPolicy { source: format!("inline:{i}"), document })
                .collect();
            let desired = compile(needs.iter().map(|r| &r.permission));
            let evaluator = Evaluator::new(
                std::iter::once(&desired).chain(others.iter().map(|o| &o.document)),
                boundary.as_ref(),
            );
            let expected: Vec<Blocked> = needs
                .iter()
                .filter_map(|r| blocked(&r.permission, evaluator.evaluate(&request_for(&r.permission))))
                .collect();
            prop_assert_eq!(blocked_needs(Some(&desired), &needs, &others, boundary.as_ref()), expected);
        }
    }

    #[test]
    fn a_service_wide_grant_elsewhere_is_an_over_grant_and_the_baseline_is_exempt() {
        let needs = vec![
            need("ecr:BatchGetImage", REPO),
            need("ecr:GetAuthorizationToken", "*"),
        ];
        let wide = other(
            "inline:legacy",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:*","s3:GetObject"],"Resource":"*"}]}"#,
        );
        let baseline = other(
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetAuthorizationToken"],"Resource":"*"}]}"#,
        );
        let found = over_grants(
            &needs,
            &[wide, baseline.clone()],
            Some("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"),
        );
        assert_eq!(
            found,
            vec![OverGrant {
                source: "inline:legacy".into(),
                allows: "ecr:* on *".into()
            }]
        );
        // Without the exemption, a needed action on every resource is an over-grant; the token on * is not.
        let found = over_grants(&needs, &[baseline], None);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].allows, "ecr:BatchGetImage on *");
    }
}
