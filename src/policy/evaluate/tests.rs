use proptest::prelude::*;

use super::{Decision, Request, evaluate, statement_matches};
use crate::policy::{Effect, PolicyDocument, Statement};
use crate::policy::{Permission, compile};

const REPO: &str = "arn:aws:ecr:us-east-1:123456789012:repository/web";
const LOG_GROUP: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web";

fn doc(statements: &str) -> PolicyDocument {
    PolicyDocument::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
    ))
    .unwrap_or_else(|e| panic!("{statements}: {e}"))
}

fn allow(action: &str, resource: &str) -> String {
    format!(r#"{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}"#)
}

#[test]
fn explicit_deny_wins_over_allow_in_any_policy() {
    let request = Request::new("ecr:BatchGetImage", REPO);
    let allows = doc(&allow("ecr:*", "*"));
    let denies = doc(r#"{"Effect":"Deny","Action":"ecr:BatchGetImage","Resource":"*"}"#);
    let cases = [
        ("allow alone", vec![allows.clone()], Decision::Allowed),
        ("deny alone", vec![denies.clone()], Decision::ExplicitDeny),
        (
            "allow then deny",
            vec![allows.clone(), denies.clone()],
            Decision::ExplicitDeny,
        ),
        (
            "deny then allow",
            vec![denies, allows],
            Decision::ExplicitDeny,
        ),
        ("no policies", vec![], Decision::ImplicitDeny),
    ];
    for (name, policies, expected) in cases {
        assert_eq!(evaluate(&policies, None, &request), expected, "{name}");
    }
}

#[test]
fn actions_and_resources_match_as_iam_documents() {
    let get = "ecr:GetDownloadUrlForLayer";
    let cases = [
        ("service wildcard", allow("ecr:*", REPO), get, REPO, true),
        ("prefix wildcard", allow("ecr:Batch*", REPO), "ecr:BatchGetImage", REPO, true),
        ("prefix wildcard misses", allow("ecr:Batch*", REPO), get, REPO, false),
        ("single-character wildcard", allow("ecr:Get?ownloadUrlForLayer", REPO), get, REPO, true),
        ("single-character wildcard needs one", allow("ecr:Get?DownloadUrlForLayer", REPO), get, REPO, false),
        ("wildcard service does not leak", allow("ecr:*", REPO), "logs:PutLogEvents", REPO, false),
        ("action case is ignored", allow("ECR:batchgetimage", REPO), "ecr:BatchGetImage", REPO, true),
        ("request action case is ignored", allow("ecr:BatchGetImage", REPO), "ECR:BATCHGETIMAGE", REPO, true),
        ("resource case matters", allow("ecr:BatchGetImage", REPO), "ecr:BatchGetImage", &REPO.to_uppercase(), false),
        ("star resource", allow("ecr:BatchGetImage", "*"), "ecr:BatchGetImage", REPO, true),
        (
            "resource star crosses colons and slashes",
            allow("logs:PutLogEvents", "arn:aws:logs:*:123456789012:log-group:/ecs/*"),
            "logs:PutLogEvents",
            "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/web/api:log-stream:ecs/app/1",
            true,
        ),
        (
            "resource wildcard keeps the account",
            allow("logs:PutLogEvents", "arn:aws:logs:*:123456789012:log-group:/ecs/*"),
            "logs:PutLogEvents",
            "arn:aws:logs:eu-west-1:210987654321:log-group:/ecs/web",
            false,
        ),
        ("a question mark is a glob, not regex", allow("ecr:BatchGetImage", "arn:a.c"), "ecr:BatchGetImage", "arn:abc", false),
        (
            "not action allows everything else",
            r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#.to_owned(),
            "ecr:BatchGetImage",
            REPO,
            true,
        ),
        (
            "not action excludes what it lists",
            r#"{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}"#.to_owned(),
            "IAM:PassRole",
            REPO,
            false,
        ),
        (
            "not resource allows every other resource",
            format!(r#"{{"Effect":"Allow","Action":"ecr:*","NotResource":"{REPO}"}}"#),
            "ecr:BatchGetImage",
            "arn:aws:ecr:us-east-1:123456789012:repository/api",
            true,
        ),
        (
            "not resource excludes what it lists",
            format!(r#"{{"Effect":"Allow","Action":"ecr:*","NotResource":"{REPO}"}}"#),
            "ecr:BatchGetImage",
            REPO,
            false,
        ),
        (
            "a statement without resource never matches",
            r#"{"Effect":"Allow","Action":"ecr:*"}"#.to_owned(),
            "ecr:BatchGetImage",
            REPO,
            false,
        ),
        (
            "principal is ignored in identity policies",
            r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"ecr:*","Resource":"*"}"#.to_owned(),
            "ecr:BatchGetImage",
            REPO,
            true,
        ),
    ];
    for (name, statement, action, resource, allowed) in cases {
        let expected = if allowed {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        };
        let request = Request::new(action, resource);
        assert_eq!(
            evaluate(&[doc(&statement)], None, &request),
            expected,
            "{name}"
        );
    }
}

#[test]
fn a_boundary_intersects_with_the_identity_policies() {
    let request = Request::new("logs:PutLogEvents", LOG_GROUP);
    let identity = doc(&allow("logs:*", "*"));
    let cases = [
        (
            "boundary allows",
            doc(&allow("logs:PutLogEvents", "*")),
            Decision::Allowed,
        ),
        (
            "boundary allows another action",
            doc(&allow("ecr:*", "*")),
            Decision::ImplicitDeny,
        ),
        ("empty boundary", doc(""), Decision::ImplicitDeny),
        (
            "boundary denies",
            doc(&format!(
                r#"{},{{"Effect":"Deny","Action":"logs:*","Resource":"*"}}"#,
                allow("*", "*")
            )),
            Decision::ExplicitDeny,
        ),
        (
            "boundary allows only under an unknown operator",
            doc(
                r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#,
            ),
            Decision::Unknown,
        ),
    ];
    for (name, boundary, expected) in cases {
        assert_eq!(
            evaluate(std::slice::from_ref(&identity), Some(&boundary), &request),
            expected,
            "{name}"
        );
    }
    // The boundary grants nothing by itself.
    assert_eq!(
        evaluate(&[], Some(&doc(&allow("*", "*"))), &request),
        Decision::ImplicitDeny
    );
}

/// `(name, operator, key, policy values, context values or None when absent, expected)`.
type ConditionCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
    Option<bool>,
);

#[test]
#[rustfmt::skip] // One case per line reads as a table.
fn condition_operators_decide_as_iam_documents() {
    const ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task/web/abc";
    const OTHER_TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/web/abd";
    let cases: &[ConditionCase] = &[
        ("string equals", "StringEquals", "k", &["a", "b"], Some(&["b"]), Some(true)),
        ("string equals is case-sensitive", "StringEquals", "k", &["a"], Some(&["A"]), Some(false)),
        ("string equals has no wildcards", "StringEquals", "k", &["a*"], Some(&["ab"]), Some(false)),
        ("string equals with a missing key", "StringEquals", "k", &["a"], None, Some(false)),
        ("string not equals", "StringNotEquals", "k", &["a", "b"], Some(&["c"]), Some(true)),
        ("string not equals is a nor", "StringNotEquals", "k", &["a", "b"], Some(&["b"]), Some(false)),
        // Documented: a negated operator is true when the key is missing.
        ("string not equals with a missing key", "StringNotEquals", "k", &["a"], None, Some(true)),
        ("string not like with a missing key", "StringNotLike", "k", &["a*"], None, Some(true)),
        ("arn not like with a missing key", "ArnNotLike", "k", &["arn:*"], None, Some(true)),
        ("equals ignore case", "StringEqualsIgnoreCase", "k", &["ABC"], Some(&["abc"]), Some(true)),
        ("equals ignore case differs", "StringEqualsIgnoreCase", "k", &["ABC"], Some(&["abd"]), Some(false)),
        ("not equals ignore case", "StringNotEqualsIgnoreCase", "k", &["ABC"], Some(&["abd"]), Some(true)),
        ("not equals ignore case same", "StringNotEqualsIgnoreCase", "k", &["ABC"], Some(&["abc"]), Some(false)),
        ("string like", "StringLike", "k", &["vpce-*"], Some(&["vpce-1"]), Some(true)),
        ("string like question mark", "StringLike", "k", &["vpce-?"], Some(&["vpce-12"]), Some(false)),
        ("string not like", "StringNotLike", "k", &["vpce-*"], Some(&["other"]), Some(true)),
        ("string not like matching", "StringNotLike", "k", &["vpce-*"], Some(&["vpce-1"]), Some(false)),
        ("arn like", "ArnLike", "aws:SourceArn", &["arn:aws:ecs:us-east-1:123456789012:*"], Some(&[ARN]), Some(true)),
        ("arn like other account", "ArnLike", "aws:SourceArn", &["arn:aws:ecs:us-east-1:210987654321:*"], Some(&[ARN]), Some(false)),
        ("arn like star stays in its component", "ArnLike", "k", &["arn:aws:ecs:us-east-1:*:web"], Some(&["arn:aws:ecs:us-east-1:1:task:web"]), Some(false)),
        ("arn equals", "ArnEquals", "k", &[ARN], Some(&[ARN]), Some(true)),
        ("arn equals differs", "ArnEquals", "k", &[ARN], Some(&[OTHER_TASK]), Some(false)),
        ("arn not equals", "ArnNotEquals", "k", &[ARN], Some(&[OTHER_TASK]), Some(true)),
        ("arn not equals same", "ArnNotEquals", "k", &[ARN], Some(&[ARN]), Some(false)),
        ("arn not like", "ArnNotLike", "k", &["arn:aws:ecs:*:*:task/*"], Some(&["arn:aws:s3:::b"]), Some(true)),
        ("arn not like matching", "ArnNotLike", "k", &["arn:aws:ecs:*:*:task/*"], Some(&[ARN]), Some(false)),
        ("arn like on a non-arn value", "ArnLike", "k", &["arn:aws:ecs:*:*:*"], Some(&["not-an-arn"]), Some(false)),
        ("bool", "Bool", "aws:SecureTransport", &["true"], Some(&["true"]), Some(true)),
        ("bool false", "Bool", "aws:SecureTransport", &["true"], Some(&["false"]), Some(false)),
        ("bool missing", "Bool", "aws:SecureTransport", &["false"], None, Some(false)),
        ("numeric equals", "NumericEquals", "n", &["10"], Some(&["10.0"]), Some(true)),
        ("numeric equals differs", "NumericEquals", "n", &["10"], Some(&["11"]), Some(false)),
        ("numeric not equals", "NumericNotEquals", "n", &["10"], Some(&["11"]), Some(true)),
        ("numeric not equals same", "NumericNotEquals", "n", &["10"], Some(&["10"]), Some(false)),
        ("numeric less than", "NumericLessThan", "n", &["10"], Some(&["9"]), Some(true)),
        ("numeric less than equal value", "NumericLessThan", "n", &["10"], Some(&["10"]), Some(false)),
        ("numeric less than equals", "NumericLessThanEquals", "n", &["10"], Some(&["10"]), Some(true)),
        ("numeric less than equals above", "NumericLessThanEquals", "n", &["10"], Some(&["11"]), Some(false)),
        ("numeric greater than", "NumericGreaterThan", "n", &["10"], Some(&["11"]), Some(true)),
        ("numeric greater than equal value", "NumericGreaterThan", "n", &["10"], Some(&["10"]), Some(false)),
        ("numeric greater than equals", "NumericGreaterThanEquals", "n", &["10"], Some(&["10"]), Some(true)),
        ("numeric greater than equals below", "NumericGreaterThanEquals", "n", &["10"], Some(&["9"]), Some(false)),
        ("numeric request value not a number", "NumericEquals", "n", &["10"], Some(&["ten"]), Some(false)),
        ("numeric policy value not a number", "NumericEquals", "n", &["ten"], Some(&["10"]), None),
        ("if exists with a missing key", "StringEqualsIfExists", "k", &["a"], None, Some(true)),
        ("if exists with a present key", "StringEqualsIfExists", "k", &["a"], Some(&["b"]), Some(false)),
        ("negated if exists with a present key", "StringNotEqualsIfExists", "k", &["a"], Some(&["a"]), Some(false)),
        ("null true with a missing key", "Null", "k", &["true"], None, Some(true)),
        ("null true with a present key", "Null", "k", &["true"], Some(&["x"]), Some(false)),
        ("null false with a present key", "Null", "k", &["false"], Some(&["x"]), Some(true)),
        ("null false with a missing key", "Null", "k", &["false"], None, Some(false)),
        ("null with an empty value set", "Null", "k", &["true"], Some(&[]), Some(true)),
        ("condition keys are case-insensitive", "StringEquals", "AWS:SourceVpce", &["v"], Some(&["v"]), Some(true)),
        ("for any value with one matching", "ForAnyValue:StringEquals", "aws:TagKeys", &["a"], Some(&["b", "a"]), Some(true)),
        ("for any value with none matching", "ForAnyValue:StringEquals", "aws:TagKeys", &["a"], Some(&["b", "c"]), Some(false)),
        ("for any value with a missing key", "ForAnyValue:StringEquals", "aws:TagKeys", &["a"], None, Some(false)),
        ("for any value with an empty set", "ForAnyValue:StringEquals", "aws:TagKeys", &["a"], Some(&[]), Some(false)),
        ("for all values all in the policy", "ForAllValues:StringEquals", "aws:TagKeys", &["a", "b"], Some(&["b", "a"]), Some(true)),
        ("for all values one outside", "ForAllValues:StringEquals", "aws:TagKeys", &["a", "b"], Some(&["a", "c"]), Some(false)),
        ("for all values with a missing key", "ForAllValues:StringEquals", "aws:TagKeys", &["a"], None, Some(true)),
        ("for all values with an empty set", "ForAllValues:StringEquals", "aws:TagKeys", &["a"], Some(&[]), Some(true)),
        ("for all values negated", "ForAllValues:StringNotLike", "aws:TagKeys", &["x*"], Some(&["a", "b"]), Some(true)),
        ("for any value negated", "ForAnyValue:StringNotEquals", "aws:TagKeys", &["a"], Some(&["a", "b"]), Some(true)),
        ("for any value negated all excluded", "ForAnyValue:StringNotEquals", "aws:TagKeys", &["a"], Some(&["a"]), Some(false)),
        ("unqualified negated on several values", "StringNotEquals", "k", &["a"], Some(&["b", "a"]), Some(false)),
        ("unknown operator", "DateLessThan", "aws:CurrentTime", &["2030-01-01T00:00:00Z"], Some(&["2020-01-01T00:00:00Z"]), None),
        ("operators are case-sensitive", "stringequals", "k", &["a"], Some(&["a"]), None),
        ("null takes no qualifier", "ForAnyValue:Null", "k", &["true"], None, None),
        ("policy variable in a value", "StringEquals", "k", &["${aws:username}"], Some(&["alice"]), None),
        ("policy variable that cannot match", "StringLike", "k", &["team-${aws:username}"], Some(&["alice"]), Some(false)),
        ("escaped star is literal", "StringLike", "k", &["a${*}"], Some(&["ab"]), Some(false)),
        ("escaped star matches a star", "StringLike", "k", &["a${*}"], Some(&["a*"]), Some(true)),
    ];
    for (name, operator, key, policy_values, context_values, expected) in cases {
        let mut statement = Statement {
            action: Some(vec!["*".to_owned()]),
            resource: Some(vec!["*".to_owned()]),
            ..Statement::new(Effect::Allow)
        };
        let policy_values = policy_values.iter().map(|v| (*v).to_owned()).collect();
        statement.condition.insert((*operator).to_owned(), [((*key).to_owned(), policy_values)].into());
        let mut request = Request::new("ecr:BatchGetImage", REPO);
        if let Some(values) = context_values {
            request.context.insert(key.to_lowercase(), values.iter().map(|v| (*v).to_owned()).collect());
        }
        assert_eq!(statement_matches(&statement, &request), *expected, "{name}");
    }
}

#[test]
fn keys_are_anded_and_values_ored_within_an_operator() {
    let statement = r#"{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a":["1","2"],"b":"3"}}}"#;
    let cases = [
        (
            "both keys match",
            vec![("a", "2"), ("b", "3")],
            Decision::Allowed,
        ),
        (
            "one key misses",
            vec![("a", "2"), ("b", "4")],
            Decision::ImplicitDeny,
        ),
        ("one key absent", vec![("a", "1")], Decision::ImplicitDeny),
    ];
    for (name, context, expected) in cases {
        let request = context.into_iter().fold(
            Request::new("s3:GetObject", "arn:aws:s3:::b/k"),
            |r, (k, v)| r.with_context(k, [v]),
        );
        assert_eq!(
            evaluate(&[doc(statement)], None, &request),
            expected,
            "{name}"
        );
    }
}

#[test]
fn undecidable_conditions_are_never_allowed() {
    let request =
        Request::new("ecr:BatchGetImage", REPO).with_context("aws:sourcevpce", ["vpce-1"]);
    let unknown_allow = r#"{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#;
    let unknown_deny = r#"{"Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#;
    let variable_allow = r#"{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:123456789012:repository/${aws:PrincipalTag/team}"}"#;
    let cases = [
        ("unknown operator on an allow", vec![unknown_allow.to_owned()], Decision::Unknown),
        ("an undecidable deny makes allowed unknown", vec![allow("ecr:*", "*"), unknown_deny.to_owned()], Decision::Unknown),
        ("an undecidable deny leaves nothing-allowed denied", vec![unknown_deny.to_owned()], Decision::ImplicitDeny),
        ("a certain deny beats an undecidable allow", vec![unknown_allow.to_owned(), r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#.to_owned()], Decision::ExplicitDeny),
        ("a certain allow beats an undecidable allow", vec![unknown_allow.to_owned(), allow("ecr:*", REPO)], Decision::Allowed),
        ("an unknown operator on another action does not matter", vec![allow("ecr:*", "*"), unknown_deny.replace("ecr:*", "logs:*")], Decision::Allowed),
        ("policy variable in a resource", vec![variable_allow.to_owned()], Decision::Unknown),
        (
            "policy variable in a resource that cannot match",
            vec![variable_allow.replace("repository/", "repository/ci-")],
            Decision::ImplicitDeny,
        ),
        (
            "a negated condition on a missing key denies whatever the variable",
            vec![
                allow("ecr:*", "*"),
                r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/owner":"${aws:username}"}}}"#.to_owned(),
            ],
            Decision::ExplicitDeny,
        ),
    ];
    for (name, statements, expected) in cases {
        let decision = evaluate(&[doc(&statements.join(","))], None, &request);
        assert_eq!(decision, expected, "{name}");
    }
    // With the tag present the variable decides the deny, which we cannot resolve.
    let tagged = request
        .clone()
        .with_context("aws:ResourceTag/owner", ["alice"]);
    let deny_by_owner = r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:ResourceTag/owner":"${aws:username}"}}}"#;
    let policies = [doc(&allow("ecr:*", "*")), doc(deny_by_owner)];
    assert_eq!(evaluate(&policies, None, &tagged), Decision::Unknown);
}

#[test]
fn policy_variables_are_literal_text_under_the_legacy_version() {
    let statement =
        r#"{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}"}"#;
    let legacy = PolicyDocument::parse(&format!(
        r#"{{"Version":"2008-10-17","Statement":{statement}}}"#
    ))
    .expect("legacy document parses");
    let cases = [
        ("arn:aws:s3:::b/${aws:username}", Decision::Allowed),
        ("arn:aws:s3:::b/alice", Decision::ImplicitDeny),
    ];
    for (resource, expected) in cases {
        let request = Request::new("s3:GetObject", resource);
        assert_eq!(
            evaluate(std::slice::from_ref(&legacy), None, &request),
            expected,
            "{resource}"
        );
        // The same statement under 2012-10-17 depends on the variable.
        assert_eq!(
            evaluate(&[doc(statement)], None, &request),
            Decision::Unknown,
            "{resource}"
        );
    }
}

const ACCOUNT: &str = "123456789012";

/// A permission and the request that exercises it.
fn permission() -> impl Strategy<Value = Permission> {
    let name = "[a-z][a-z0-9_]{0,7}";
    let resource = prop_oneof![
        name.prop_map(|n| format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{n}")),
        name.prop_map(|n| format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/ecs/{n}:*")),
        name.prop_map(|n| format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:{n}-AbCdEf")),
    ];
    let condition = prop::option::of(prop::collection::vec("vpce-[0-9]{1,3}", 1..3));
    (resource, any::<prop::sample::Index>(), condition).prop_map(|(resource, pick, vpces)| {
        let actions = actions_for(&resource);
        let permission = Permission::new(actions[pick.index(actions.len())], resource);
        match vpces {
            Some(vpces) => permission.with_condition("StringEquals", "aws:SourceVpce", vpces),
            None => permission,
        }
    })
}

fn actions_for(resource: &str) -> &'static [&'static str] {
    if resource.contains(":ecr:") {
        &[
            "ecr:BatchCheckLayerAvailability",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
        ]
    } else if resource.contains(":logs:") {
        &["logs:CreateLogStream", "logs:PutLogEvents"]
    } else {
        &["secretsmanager:GetSecretValue"]
    }
}

/// An action of the same service that [`permission`] never generates.
fn other_action(action: &str) -> &'static str {
    match action.split(':').next() {
        Some("ecr") => "ecr:PutImage",
        Some("logs") => "logs:DeleteLogGroup",
        _ => "secretsmanager:PutSecretValue",
    }
}

/// The same ARN naming another repository, log group or secret (names never contain `-`).
fn other_resource(resource: &str) -> String {
    resource
        .replace("repository/", "repository/other-")
        .replace("/ecs/", "/ecs/other-")
        .replace("secret:", "secret:other-")
}

/// A request for `action` on `resource` whose context satisfies `permission`'s conditions.
fn request_for(permission: &Permission, action: &str, resource: &str) -> Request {
    let mut request = Request::new(action, resource);
    for keys in permission.conditions.values() {
        for (key, values) in keys {
            request = request.with_context(key, values.iter().take(1));
        }
    }
    request
}

proptest! {
    #[test]
    fn compiled_policies_allow_exactly_their_permissions(
        permissions in prop::collection::vec(permission(), 1..8),
    ) {
        let policy = [compile(&permissions)];
        for permission in &permissions {
            let (action, resource) = (permission.action.as_str(), permission.resource.as_str());
            let granted = request_for(permission, action, resource);
            prop_assert_eq!(evaluate(&policy, None, &granted), Decision::Allowed, "{:?}", granted);
            if let Some(group) = resource.strip_suffix('*') {
                let stream = request_for(permission, action, &format!("{group}log-stream:ecs/app/1"));
                prop_assert_eq!(evaluate(&policy, None, &stream), Decision::Allowed, "{:?}", stream);
            }
            let near_misses = [
                request_for(permission, action, &other_resource(resource)),
                request_for(permission, other_action(action), resource),
            ];
            for near_miss in near_misses {
                prop_assert_ne!(evaluate(&policy, None, &near_miss), Decision::Allowed, "{:?}", near_miss);
            }
            if !permission.conditions.is_empty() {
                let no_context = Request::new(action, resource);
                let unconditional = permissions.iter().any(|p| {
                    p.conditions.is_empty() && p.action == permission.action && p.resource == permission.resource
                });
                prop_assert_eq!(
                    evaluate(&policy, None, &no_context) == Decision::Allowed,
                    unconditional,
                    "{:?}",
                    no_context
                );
            }
        }
    }
}

/// The straightforward evaluation the compiled one must agree with: every statement of every policy in turn,
/// every pattern parsed on the spot (what `evaluate` did before policies were compiled).
mod reference {
    use super::super::pattern::Pattern;
    use super::super::{Decision, Request, all, any, condition, not};
    use crate::policy::{Effect, POLICY_VERSION, PolicyDocument, Statement};

    pub(super) fn evaluate(
        policies: &[PolicyDocument],
        boundary: Option<&PolicyDocument>,
        request: &Request,
    ) -> Decision {
        let identity = decide(policies, request);
        let Some(boundary) = boundary else {
            return identity;
        };
        let boundary = decide(std::slice::from_ref(boundary), request);
        if boundary.restrictiveness() > identity.restrictiveness() {
            boundary
        } else {
            identity
        }
    }

    fn decide(policies: &[PolicyDocument], request: &Request) -> Decision {
        let (mut allow, mut deny) = (Some(false), Some(false));
        for policy in policies {
            let variables = policy.version.as_deref() == Some(POLICY_VERSION);
            for statement in &policy.statements {
                let slot = match statement.effect {
                    Effect::Allow => &mut allow,
                    Effect::Deny => &mut deny,
                };
                *slot = any([*slot, matches(statement, request, variables)]);
            }
        }
        match (deny, allow) {
            (Some(true), _) => Decision::ExplicitDeny,
            (_, Some(false)) => Decision::ImplicitDeny,
            (Some(false), Some(true)) => Decision::Allowed,
            _ => Decision::Unknown,
        }
    }

    pub(super) fn matches(
        statement: &Statement,
        request: &Request,
        variables: bool,
    ) -> Option<bool> {
        let action = request.action.to_lowercase();
        let action_matches = |patterns: &Vec<String>| {
            any(patterns
                .iter()
                .map(|p| Pattern::new(&p.to_lowercase(), true, false).matches(&action)))
        };
        let resource_matches = |patterns: &Vec<String>| {
            any(patterns
                .iter()
                .map(|p| Pattern::new(p, true, variables).matches(&request.resource)))
        };
        let action = match (&statement.action, &statement.not_action) {
            (Some(actions), _) => action_matches(actions),
            (None, Some(actions)) => not(action_matches(actions)),
            (None, None) => Some(false),
        };
        let resource = match (&statement.resource, &statement.not_resource) {
            (Some(resources), _) => resource_matches(resources),
            (None, Some(resources)) => not(resource_matches(resources)),
            (None, None) => Some(false),
        };
        if action == Some(false) || resource == Some(false) {
            return Some(false);
        }
        let condition = condition::holds(&statement.condition, &request.context, variables);
        all([action, resource, condition])
    }
}

/// Small alphabets, so that random patterns and values often match: wildcards, separators, case, a character
/// that is two bytes in UTF-8, one whose lower case is longer, and policy variables and their escapes.
fn random_action() -> BoxedStrategy<String> {
    "[abAB*?:é]{0,5}|İ[ab:]{0,2}".boxed()
}

fn random_resource() -> BoxedStrategy<String> {
    let variable = prop_oneof![
        Just(""),
        Just("${aws:username}"),
        Just("${*}"),
        Just("${?}"),
        Just("${$}"),
        Just("${"),
    ];
    ("[ab*?:/é]{0,4}", variable, "[ab*?:/]{0,3}")
        .prop_map(|(a, v, b)| format!("{a}{v}{b}"))
        .boxed()
}

fn random_patterns(
    pattern: BoxedStrategy<String>,
) -> impl Strategy<Value = (Option<Vec<String>>, Option<Vec<String>>)> {
    let list = prop::collection::vec(pattern, 0..4);
    prop_oneof![
        4 => list.clone().prop_map(|l| (Some(l), None)),
        2 => list.clone().prop_map(|l| (None, Some(l))),
        1 => (list.clone(), list).prop_map(|(a, b)| (Some(a), Some(b))),
        1 => Just((None, None)),
    ]
}

fn random_statement() -> impl Strategy<Value = Statement> {
    let condition = prop::option::of((
        prop::sample::select(vec![
            "StringEquals",
            "StringLike",
            "ArnLike",
            "IpAddress",
            "StringNotEquals",
        ]),
        prop::collection::vec("[ab*]{0,2}|\\$\\{aws:username\\}", 1..3),
    ));
    (
        any::<bool>(),
        random_patterns(random_action()),
        random_patterns(random_resource()),
        condition,
    )
        .prop_map(
            |(allow, (action, not_action), (resource, not_resource), condition)| {
                let mut statement = Statement {
                    action,
                    not_action,
                    resource,
                    not_resource,
                    ..Statement::new(if allow { Effect::Allow } else { Effect::Deny })
                };
                if let Some((operator, values)) = condition {
                    statement
                        .condition
                        .insert(operator.to_owned(), [("k".to_owned(), values)].into());
                }
                statement
            },
        )
}

fn random_document() -> impl Strategy<Value = PolicyDocument> {
    let version = prop::sample::select(vec![
        Some(crate::policy::POLICY_VERSION),
        Some("2008-10-17"),
        None,
    ]);
    (version, prop::collection::vec(random_statement(), 0..5)).prop_map(|(version, statements)| {
        PolicyDocument {
            version: version.map(str::to_owned),
            statements,
        }
    })
}

fn random_request() -> impl Strategy<Value = Request> {
    let value = prop::option::of(prop::collection::vec("[ab*]{0,2}", 0..3));
    ("[abAB:é]{0,5}|İ[ab:]{0,2}", "[ab*?:/é$]{0,6}", value).prop_map(|(action, resource, value)| {
        let request = Request::new(action, resource);
        match value {
            Some(values) => request.with_context("k", values),
            None => request,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_evaluation_agrees_with_the_reference(
        policies in prop::collection::vec(random_document(), 0..4),
        boundary in prop::option::of(random_document()),
        requests in prop::collection::vec(random_request(), 1..6),
    ) {
        let evaluator = super::Evaluator::new(&policies, boundary.as_ref());
        for request in &requests {
            let expected = reference::evaluate(&policies, boundary.as_ref(), request);
            prop_assert_eq!(evaluator.evaluate(request), expected, "{:?}", request);
            prop_assert_eq!(evaluate(&policies, boundary.as_ref(), request), expected, "{:?}", request);
            for statement in policies.iter().flat_map(|p| &p.statements) {
                prop_assert_eq!(
                    statement_matches(statement, request),
                    reference::matches(statement, request, true),
                    "{:?} {:?}", statement, request
                );
            }
        }
    }

    /// `evaluate_allowed` decides as adding a policy whose `Allow` matches the request whatever the context.
    #[test]
    fn evaluating_an_allowed_request_agrees_with_adding_what_allows_it(
        policies in prop::collection::vec(random_document(), 0..4),
        boundary in prop::option::of(random_document()),
        requests in prop::collection::vec(random_request(), 1..6),
    ) {
        let evaluator = super::Evaluator::new(&policies, boundary.as_ref());
        for request in &requests {
            let allowing = PolicyDocument {
                version: None,
                statements: vec![Statement {
                    action: Some(vec![request.action.clone()]),
                    resource: Some(vec!["*".to_owned()]),
                    ..Statement::new(Effect::Allow)
                }],
            };
            let with = [policies.clone(), vec![allowing]].concat();
            let expected = reference::evaluate(&with, boundary.as_ref(), request);
            prop_assert_eq!(evaluator.evaluate_allowed(request), expected, "{:?}", request);
        }
    }
}
