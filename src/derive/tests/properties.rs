//! Property tests: the reference parsers never panic, and derivation is deterministic and independent of the order
//! of the containers.

use super::*;
use crate::derive::credspec::parse_credential_spec;
use crate::derive::references::{Place, parse_credentials_parameter, parse_value_from};
use crate::derive::s3::parse_s3_object;
use proptest::prelude::*;

fn container() -> impl Strategy<Value = String> {
    let image = prop_oneof![
        Just("nginx".to_string()),
        "[a-z]{1,5}(/[a-z]{1,5}){0,2}"
            .prop_map(|r| format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{r}:1")),
        "[a-z]{1,5}".prop_map(|r| format!("222222222222.dkr.ecr.eu-west-1.amazonaws.com/{r}")),
    ];
    let log = prop_oneof![
        Just(String::new()),
        ("[a-z/]{1,8}", any::<bool>()).prop_map(|(g, create)| format!(
            r#","logConfiguration":{{"logDriver":"awslogs","options":{{"awslogs-group":"{g}","awslogs-region":"us-east-1","awslogs-create-group":"{create}"}}}}"#
        )),
    ];
    let value_from = prop_oneof![
        "(/[a-z]{1,4}){1,3}",
        "[a-z]{1,6}",
        "[a-z]{1,6}(-[A-Za-z0-9]{6})?"
            .prop_map(|s| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{s}")),
        "[a-z]{1,6}-[A-Za-z0-9]{6}"
            .prop_map(|s| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{s}:k::")),
        "[a-z]{1,4}".prop_map(|s| format!("/aws/reference/secretsmanager/{s}")),
        "[a-z/]{1,6}",
    ];
    let secrets = proptest::collection::vec(value_from, 0..3).prop_map(|v| {
        let entries: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, s)| format!(r#"{{"name":"S{i}","valueFrom":"{s}"}}"#))
            .collect();
        format!(r#","secrets":[{}]"#, entries.join(","))
    });
    let env_files = proptest::collection::vec("[a-z]{3,6}/[a-z.]{1,6}", 0..2).prop_map(|v| {
        let entries: Vec<String> = v
            .iter()
            .map(|s| format!(r#"{{"type":"s3","value":"arn:aws:s3:::{s}"}}"#))
            .collect();
        format!(r#","environmentFiles":[{}]"#, entries.join(","))
    });
    ("[a-z]{1,6}", image, log, secrets, env_files).prop_map(|(name, image, log, secrets, env)| {
        format!(r#"{{"name":"{name}","image":"{image}"{log}{secrets}{env}}}"#)
    })
}

fn permissions(d: &Derivation) -> Vec<Permission> {
    d.requirements
        .iter()
        .map(|r| r.permission.clone())
        .collect()
}

fn finding_kinds_and_messages(d: &Derivation) -> BTreeSet<(FindingKind, String)> {
    d.findings
        .iter()
        .map(|f| (f.kind, f.message.clone()))
        .collect()
}

proptest! {
    #[test]
    fn derivation_is_deterministic_and_independent_of_container_order(
        containers in proptest::collection::vec(container(), 1..6)
    ) {
        let forward = derive(&task(&format!("[{}]", containers.join(","))));
        let mut reversed = containers.clone();
        reversed.reverse();
        let backward = derive(&task(&format!("[{}]", reversed.join(","))));
        prop_assert_eq!(permissions(&forward), permissions(&backward));
        prop_assert_eq!(finding_kinds_and_messages(&forward), finding_kinds_and_messages(&backward));
        prop_assert_eq!(&forward.lookups, &backward.lookups);
        let again = derive(&task(&format!("[{}]", containers.join(","))));
        prop_assert_eq!(forward, again);
    }

    #[test]
    fn derived_resources_never_hold_placeholders_or_bare_wildcards(
        containers in proptest::collection::vec(container(), 1..4)
    ) {
        let d = derive(&task(&format!("[{}]", containers.join(","))));
        for p in permissions(&d) {
            prop_assert!(!crate::model::has_placeholder(&p.resource), "{}", p.resource);
            let wildcard_ok = p.resource == "*" && p.action == "ecr:GetAuthorizationToken";
            prop_assert!(wildcard_ok || !p.resource.contains('*') || p.resource.ends_with(":*"), "{}", p.resource);
            // A secret's json-key / version suffix never stays in its ARN (other resources, e.g. an S3 bucket the
            // generator named `json`, may contain the same letters).
            if p.resource.contains(":secretsmanager:") {
                prop_assert!(!p.resource.contains(":json") && !p.resource.contains(":k::"), "{}", p.resource);
            }
        }
    }

    #[test]
    fn reference_parsers_never_panic(text in ".{0,120}") {
        let place = Place { region: "us-east-1".into(), account: "123456789012".into() };
        let _ = parse_value_from(&text, Some(&place));
        let _ = parse_value_from(&text, None);
        let _ = parse_credentials_parameter(&text, Some(&place));
        let _ = parse_credential_spec(&text, Some("us-east-1"));
        let _ = parse_credential_spec(&format!("credentialspec:{text}"), None);
        let _ = parse_s3_object(&text, None);
        let _ = parse_s3_object(&format!("arn:aws:s3:::{text}"), Some("cn-north-1"));
        let _ = crate::model::ImageRef::parse(&text);
    }

    #[test]
    fn secret_arn_shaped_text_never_panics_or_keeps_its_suffix(
        id in "[A-Za-z0-9/_+=.@-]{0,12}",
        suffix in proptest::collection::vec("[A-Za-z0-9_-]{0,4}", 0..6),
    ) {
        let text = format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}{}",
            suffix.iter().map(|s| format!(":{s}")).collect::<String>());
        let d = derive(&task(&format!(r#"[{{"name":"a","image":"nginx","secrets":[{{"name":"S","valueFrom":"{text}"}}]}}]"#)));
        for p in permissions(&d) {
            prop_assert_eq!(p.resource.matches(':').count(), 6, "{}", p.resource);
        }
    }

    #[test]
    fn task_definition_parsing_never_panics(text in ".{0,200}") {
        let _ = TaskDefinition::from_json(&text);
    }
}
