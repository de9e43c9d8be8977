//! Golden tests: the exact bytes [`PolicyDocument::to_json`] and [`Statement::to_json`] write for a
//! representative set of documents (identity and trust policies, every statement key, string-or-list values,
//! conditions, principals, escaping, empty lists), and the pretty form the plan and offline JSON reports print
//! (which [`PolicyDocument::sorted_keys`] writes).
//!
//! They pin today's output so that the serialiser can change without the written policy bytes changing; they do
//! not test parsing (see the tests in `document.rs`).

use serde_json::{Value, json};

use super::{Conditions, Effect, LEGACY_POLICY_VERSION, POLICY_VERSION, PolicyDocument, Statement};

fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| (*s).to_owned()).collect())
}

fn conditions(entries: &[(&str, &str, &[&str])]) -> Conditions {
    let mut conditions = Conditions::new();
    for (operator, key, values) in entries {
        let block = conditions.entry((*operator).to_owned()).or_default();
        if !key.is_empty() {
            block.insert(
                (*key).to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            );
        }
    }
    conditions
}

fn document(version: Option<&str>, statements: Vec<Statement>) -> PolicyDocument {
    PolicyDocument {
        version: version.map(str::to_owned),
        statements,
    }
}

/// Control characters, quotes, backslashes, `/`, DEL and non-ASCII: everything a JSON string writer may escape.
const AWKWARD: &str = "q\"b\\s/l\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é✓😀";
/// [`AWKWARD`] as written inside a JSON string literal.
const AWKWARD_JSON: &str = "q\\\"b\\\\s/l\\n\\r\\t\\b\\f\\u0001\\u001f\u{7f}é✓😀";

fn identity_documents() -> Vec<(&'static str, PolicyDocument, String)> {
    vec![
        (
            "empty document without version",
            PolicyDocument::default(),
            r#"{"Statement":[]}"#.to_owned(),
        ),
        (
            "empty statement list with the legacy version",
            document(Some(LEGACY_POLICY_VERSION), vec![]),
            r#"{"Version":"2008-10-17","Statement":[]}"#.to_owned(),
        ),
        (
            "one statement, single action and resource as plain strings",
            document(
                Some(POLICY_VERSION),
                vec![Statement {
                    action: strings(&["logs:PutLogEvents"]),
                    resource: strings(&["arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"]),
                    ..Statement::new(Effect::Allow)
                }],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"}]}"#.to_owned(),
        ),
        (
            "two statements with Sid, lists, NotAction and NotResource",
            document(
                Some(POLICY_VERSION),
                vec![
                    Statement {
                        sid: Some("ReadLogs".to_owned()),
                        action: strings(&["logs:CreateLogStream", "logs:PutLogEvents"]),
                        resource: strings(&["arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"]),
                        ..Statement::new(Effect::Allow)
                    },
                    Statement {
                        not_action: strings(&["iam:*"]),
                        not_resource: strings(&["arn:aws:s3:::b/*", "*"]),
                        ..Statement::new(Effect::Deny)
                    },
                ],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadLogs","Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],"Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"},{"Effect":"Deny","NotAction":"iam:*","NotResource":["arn:aws:s3:::b/*","*"]}]}"#.to_owned(),
        ),
        (
            "empty Sid and empty action and resource lists",
            document(
                Some(POLICY_VERSION),
                vec![Statement {
                    sid: Some(String::new()),
                    action: strings(&[]),
                    resource: strings(&[]),
                    ..Statement::new(Effect::Allow)
                }],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Action":[],"Resource":[]}]}"#.to_owned(),
        ),
    ]
}

fn condition_and_escaping_documents() -> Vec<(&'static str, PolicyDocument, String)> {
    vec![
        (
            "conditions with several operators, keys and values, an empty list and an empty block",
            document(
                Some(POLICY_VERSION),
                vec![Statement {
                    action: strings(&["kms:Decrypt"]),
                    resource: strings(&["arn:aws:kms:us-east-1:123456789012:key/k1"]),
                    condition: conditions(&[
                        ("StringEquals", "kms:ViaService", &["secretsmanager.us-east-1.amazonaws.com"]),
                        ("StringEquals", "aws:SourceVpce", &["vpce-2", "vpce-1"]),
                        ("Bool", "aws:SecureTransport", &["true"]),
                        ("ArnLike", "aws:SourceArn", &[]),
                        ("Null", "", &[]),
                    ]),
                    ..Statement::new(Effect::Allow)
                }],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:us-east-1:123456789012:key/k1","Condition":{"ArnLike":{"aws:SourceArn":[]},"Bool":{"aws:SecureTransport":"true"},"Null":{},"StringEquals":{"aws:SourceVpce":["vpce-2","vpce-1"],"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com"}}}]}"#.to_owned(),
        ),
        (
            "escaping in Sid, action, resource and condition key and value",
            document(
                None,
                vec![Statement {
                    sid: Some(AWKWARD.to_owned()),
                    action: strings(&[AWKWARD]),
                    resource: strings(&[AWKWARD, "arn:aws:s3:::b/ü ber/\"x\""]),
                    condition: conditions(&[("StringLike", AWKWARD, &[AWKWARD])]),
                    ..Statement::new(Effect::Deny)
                }],
            ),
            format!(
                r#"{{"Statement":[{{"Sid":"{a}","Effect":"Deny","Action":"{a}","Resource":["{a}","arn:aws:s3:::b/ü ber/\"x\""],"Condition":{{"StringLike":{{"{a}":"{a}"}}}}}}]}}"#,
                a = AWKWARD_JSON
            ),
        ),
    ]
}

fn trust_documents() -> Vec<(&'static str, PolicyDocument, String)> {
    let assume = |principal: Value| Statement {
        principal: Some(principal),
        action: strings(&["sts:AssumeRole"]),
        ..Statement::new(Effect::Allow)
    };
    vec![
        (
            "service principal",
            document(
                Some(POLICY_VERSION),
                vec![Statement {
                    sid: Some(String::new()),
                    ..assume(json!({"Service": "ecs-tasks.amazonaws.com"}))
                }],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#.to_owned(),
        ),
        (
            "AWS, Federated and Service principals, keys sorted, lists kept as written",
            document(
                Some(POLICY_VERSION),
                vec![assume(json!({
                    "Service": ["ecs-tasks.amazonaws.com"],
                    "Federated": "cognito-identity.amazonaws.com",
                    "AWS": ["arn:aws:iam::222233334444:root", "arn:aws:iam::111122223333:role/a"],
                }))],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::222233334444:root","arn:aws:iam::111122223333:role/a"],"Federated":"cognito-identity.amazonaws.com","Service":["ecs-tasks.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#.to_owned(),
        ),
        (
            "star principal, NotPrincipal and a condition",
            document(
                Some(POLICY_VERSION),
                vec![
                    assume(json!("*")),
                    Statement {
                        not_principal: Some(json!({"AWS": "arn:aws:iam::111122223333:root"})),
                        condition: conditions(&[("StringEquals", "aws:SourceAccount", &["111122223333"])]),
                        ..assume(json!("*"))
                    },
                ],
            ),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"},{"Effect":"Allow","Principal":"*","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"aws:SourceAccount":"111122223333"}}}]}"#.to_owned(),
        ),
        (
            "principal values of every JSON type, nested objects sorted, escaping",
            document(
                Some(POLICY_VERSION),
                vec![assume(json!({
                    "Zeta": [1, true, false, null, 2.5, -3, {"z": 1, "a": [{}], "M": []}],
                    "AWS": AWKWARD,
                    "Federated": [],
                }))],
            ),
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{a}","Federated":[],"Zeta":[1,true,false,null,2.5,-3,{{"M":[],"a":[{{}}],"z":1}}]}},"Action":"sts:AssumeRole"}}]}}"#,
                a = AWKWARD_JSON
            ),
        ),
    ]
}

#[test]
fn documents_serialise_to_the_pinned_bytes() {
    for (name, doc, expected) in identity_documents()
        .into_iter()
        .chain(condition_and_escaping_documents())
        .chain(trust_documents())
    {
        assert_eq!(doc.to_json(), expected, "{name}");
    }
}

#[test]
fn each_statement_serialises_to_its_slice_of_the_document() {
    for (name, doc, _) in identity_documents()
        .into_iter()
        .chain(condition_and_escaping_documents())
        .chain(trust_documents())
    {
        let statements: Vec<String> = doc.statements.iter().map(Statement::to_json).collect();
        let expected = match &doc.version {
            Some(version) => format!(
                r#"{{"Version":"{version}","Statement":[{}]}}"#,
                statements.join(",")
            ),
            None => format!(r#"{{"Statement":[{}]}}"#, statements.join(",")),
        };
        assert_eq!(doc.to_json(), expected, "{name}");
    }
    let statement = Statement {
        sid: Some("S\"1".to_owned()),
        not_action: strings(&["a:B", "a:C"]),
        resource: strings(&["*"]),
        ..Statement::new(Effect::Deny)
    };
    assert_eq!(
        statement.to_json(),
        r#"{"Sid":"S\"1","Effect":"Deny","NotAction":["a:B","a:C"],"Resource":"*"}"#
    );
}

#[test]
fn the_pretty_form_of_reports_is_pinned() {
    // What `plan --output json` and `derive --output json` print for a policy: to_json read back as a Value, which
    // `sorted_keys` writes directly (see below).
    let (_, doc, _) = trust_documents().remove(0);
    let value: Value = match serde_json::from_str(&doc.to_json()) {
        Ok(value) => value,
        Err(e) => panic!("to_json must be valid JSON: {e}"),
    };
    let pretty = match serde_json::to_string_pretty(&value) {
        Ok(pretty) => pretty,
        Err(e) => panic!("a Value always serialises: {e}"),
    };
    assert_eq!(
        pretty,
        r#"{
  "Statement": [
    {
      "Action": "sts:AssumeRole",
      "Effect": "Allow",
      "Principal": {
        "Service": "ecs-tasks.amazonaws.com"
      },
      "Sid": ""
    }
  ],
  "Version": "2012-10-17"
}"#
    );
}

#[test]
fn sorted_keys_write_what_the_document_read_back_as_a_value_writes() {
    // The JSON reports once printed `to_json` read back as a `Value`; `sorted_keys` writes the same bytes directly.
    for (name, doc, _) in identity_documents()
        .into_iter()
        .chain(condition_and_escaping_documents())
        .chain(trust_documents())
    {
        let value: Value = match serde_json::from_str(&doc.to_json()) {
            Ok(value) => value,
            Err(e) => panic!("{name}: to_json must be valid JSON: {e}"),
        };
        assert_eq!(
            serde_json::to_string(&doc.sorted_keys()).ok(),
            serde_json::to_string(&value).ok(),
            "{name}"
        );
        assert_eq!(
            serde_json::to_string_pretty(&doc.sorted_keys()).ok(),
            serde_json::to_string_pretty(&value).ok(),
            "{name}"
        );
    }
}
