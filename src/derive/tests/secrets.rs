//! Rows 4, 5, 6, 6b and 7, and the secret and parameter grammars (offline: no facts, so every secret and
//! parameter also carries an `UnresolvedLookup` finding about kms:Decrypt).

use super::*;

const SM: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret";
const SSM: &str = "arn:aws:ssm:us-east-1:123456789012:parameter";

fn with_secret(value_from: &str) -> Derivation {
    derive(&task(&format!(
        r#"[{{"name":"app","image":"nginx","secrets":[{{"name":"S","valueFrom":"{value_from}"}}]}}]"#
    )))
}

#[test]
fn secrets_manager_value_from_grants_get_secret_value_on_the_secret_without_its_suffix() {
    let cases = [
        // 2 parts, full ARN (six-character suffix): used as is.
        (
            format!("{SM}:db-pass-AbCdEf"),
            format!("{SM}:db-pass-AbCdEf"),
        ),
        (
            format!("{SM}:prod/db/pass-q1W2e3"),
            format!("{SM}:prod/db/pass-q1W2e3"),
        ),
        // 2 parts, partial ARN (a name): the random suffix becomes `-??????`.
        (format!("{SM}:db-pass"), format!("{SM}:db-pass-??????")),
        (format!("{SM}:SecretId"), format!("{SM}:SecretId-??????")),
        (format!("{SM}:a-bc"), format!("{SM}:a-bc-??????")),
        (
            format!("{SM}:name-AbCdE"),
            format!("{SM}:name-AbCdE-??????"),
        ),
        (
            format!("{SM}:name-AbCd_f"),
            format!("{SM}:name-AbCd_f-??????"),
        ),
        // 5 parts: json-key, version-stage, version-id, empty fields allowed; never copied into the resource.
        (
            format!("{SM}:db/pass-AbCdEf:password::"),
            format!("{SM}:db/pass-AbCdEf"),
        ),
        (
            format!("{SM}:db/pass-AbCdEf:password:AWSCURRENT:"),
            format!("{SM}:db/pass-AbCdEf"),
        ),
        (
            format!("{SM}:db/pass-AbCdEf::AWSPREVIOUS:"),
            format!("{SM}:db/pass-AbCdEf"),
        ),
        (
            format!("{SM}:db/pass-AbCdEf:::f1e2d3c4-0000-1111-2222-333344445555"),
            format!("{SM}:db/pass-AbCdEf"),
        ),
        (
            format!("{SM}:db/pass-AbCdEf:::"),
            format!("{SM}:db/pass-AbCdEf"),
        ),
        (
            format!("{SM}:db/pass:password::"),
            format!("{SM}:db/pass-??????"),
        ),
        // Another Region: the ARN's, not the task's.
        (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf".to_string(),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf".to_string(),
        ),
    ];
    for (value_from, resource) in cases {
        let d = with_secret(&value_from);
        assert_eq!(
            other_grants(&d),
            vec![pair("secretsmanager:GetSecretValue", &resource)],
            "{value_from}"
        );
        let r = requirement(&d, "secretsmanager:GetSecretValue");
        assert!(
            r.permission.conditions.is_empty(),
            "no VersionStage condition: {value_from}"
        );
        assert_eq!(
            r.reasons.first().unwrap().field.to_string(),
            "containerDefinitions[0].secrets[0].valueFrom"
        );
        assert_eq!(
            kinds(&d),
            vec![FindingKind::UnresolvedLookup],
            "{value_from}"
        );
        assert!(d.role.is_some());
    }
}

#[test]
fn ssm_value_from_grants_get_parameters_on_the_parameter() {
    let cases = [
        ("/app/db/password", format!("{SSM}/app/db/password")),
        ("/password", format!("{SSM}/password")),
        ("password", format!("{SSM}/password")),
        ("my.param_name-1", format!("{SSM}/my.param_name-1")),
        // An ARN is used as is, in its own Region.
        (
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/x",
            format!("{SSM}/app/x"),
        ),
        (
            "arn:aws:ssm:eu-west-1:123456789012:parameter/x",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/x".to_string(),
        ),
        // A version or label selector is not part of the IAM resource.
        (
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/x:3",
            format!("{SSM}/app/x"),
        ),
    ];
    for (value_from, resource) in cases {
        let d = with_secret(value_from);
        assert_eq!(
            other_grants(&d),
            vec![pair("ssm:GetParameters", &resource)],
            "{value_from}"
        );
        assert_eq!(
            kinds(&d),
            vec![FindingKind::UnresolvedLookup],
            "{value_from}"
        );
    }
}

#[test]
fn a_secrets_manager_reference_parameter_needs_the_parameter_and_the_secret() {
    let cases = [
        "/aws/reference/secretsmanager/db-pass",
        "arn:aws:ssm:us-east-1:123456789012:parameter/aws/reference/secretsmanager/db-pass",
    ];
    for value_from in cases {
        let d = with_secret(value_from);
        assert_eq!(
            other_grants(&d),
            vec![
                pair(
                    "secretsmanager:GetSecretValue",
                    &format!("{SM}:db-pass-??????")
                ),
                pair(
                    "ssm:GetParameters",
                    &format!("{SSM}/aws/reference/secretsmanager/db-pass")
                ),
            ],
            "{value_from}"
        );
        // The secret is looked up (for its key); the reference parameter is not a stored parameter.
        assert_eq!(d.lookups.len(), 1, "{:?}", d.lookups);
        assert!(matches!(d.lookups[0], Lookup::Secret { .. }));
    }
    let d = with_secret("/aws/reference/secretsmanager/prod/db-AbCdEf");
    assert!(other_grants(&d).contains(&pair(
        "secretsmanager:GetSecretValue",
        &format!("{SM}:prod/db-AbCdEf")
    )));
}

#[test]
fn invalid_value_from_is_a_finding_and_grants_nothing() {
    let cases = [
        // Wrong part counts after `secret`.
        (format!("{SM}:x:a"), FindingKind::InvalidReference),
        (format!("{SM}:x:a:b"), FindingKind::InvalidReference),
        (format!("{SM}:x:a:b:c:d"), FindingKind::InvalidReference),
        (format!("{SM}:x-AbCdEf::::"), FindingKind::InvalidReference),
        (format!("{SM}:"), FindingKind::InvalidReference),
        (format!("{SM}::key::"), FindingKind::InvalidReference),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:db".to_string(),
            FindingKind::InvalidReference,
        ),
        // Documentation placeholders that are not template syntax.
        (
            "arn:aws:secretsmanager:region:aws_account_id:secret:secret_name-AbCdEf".to_string(),
            FindingKind::InvalidReference,
        ),
        (
            "arn:aws:secretsmanager:us-east-1:awsExampleAccountID:secret:awsExampleParameter"
                .to_string(),
            FindingKind::InvalidReference,
        ),
        (
            "arn:aws:ssm:us-east-1:XXXXXXXXXXXX:parameter/x".to_string(),
            FindingKind::InvalidReference,
        ),
        // The partition follows the Region.
        (
            "arn:aws:secretsmanager:cn-north-1:123456789012:secret:x".to_string(),
            FindingKind::InvalidReference,
        ),
        // SSM names.
        ("a/b".to_string(), FindingKind::InvalidReference),
        ("/a//b".to_string(), FindingKind::InvalidReference),
        ("/a/b/".to_string(), FindingKind::InvalidReference),
        ("/".to_string(), FindingKind::InvalidReference),
        ("bad name".to_string(), FindingKind::InvalidReference),
        (format!("{SSM}/"), FindingKind::InvalidReference),
        (
            "arn:aws:ssm:us-east-1:123456789012:document/x".to_string(),
            FindingKind::InvalidReference,
        ),
        (
            "/aws/reference/secretsmanager/".to_string(),
            FindingKind::InvalidReference,
        ),
        // Neither service.
        (
            "arn:aws:s3:::bucket/key".to_string(),
            FindingKind::InvalidReference,
        ),
        // Templates.
        (
            "${DB_SECRET_ARN}".to_string(),
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            format!("{SM}:{{{{ .Env }}}}-db"),
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            "<secret-arn>".to_string(),
            FindingKind::UnresolvedPlaceholder,
        ),
    ];
    for (value_from, kind) in cases {
        let d = with_secret(&value_from);
        assert!(
            other_grants(&d).is_empty(),
            "{value_from}: {:?}",
            grants(&d)
        );
        assert_eq!(kinds(&d), vec![kind], "{value_from}: {:?}", d.findings);
        assert_eq!(
            d.findings[0].field.as_deref(),
            Some("containerDefinitions[0].secrets[0].valueFrom")
        );
    }
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","secrets":[{"name":"S","valueFrom":""}]}]"#,
    ));
    assert_eq!(kinds(&d), vec![FindingKind::InvalidReference]);
}

#[test]
fn bare_names_use_the_tasks_region_account_and_partition() {
    let cases = [
        (
            "cn-north-1",
            "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/app/x",
        ),
        (
            "us-gov-west-1",
            "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/app/x",
        ),
        (
            "ap-northeast-1",
            "arn:aws:ssm:ap-northeast-1:123456789012:parameter/app/x",
        ),
    ];
    for (region, resource) in cases {
        let d = derive(&task_in(
            region,
            "",
            r#"[{"name":"app","image":"nginx","secrets":[{"name":"S","valueFrom":"/app/x"}]}]"#,
        ));
        assert_eq!(
            other_grants(&d),
            vec![pair("ssm:GetParameters", resource)],
            "{region}"
        );
    }
    let d = derive(&task_in(
        "cn-northwest-1",
        "",
        r#"[{"name":"app","image":"nginx","secrets":[
            {"name":"A","valueFrom":"arn:aws-cn:secretsmanager:cn-northwest-1:123456789012:secret:db:k::"}]}]"#,
    ));
    assert_eq!(
        other_grants(&d),
        vec![pair(
            "secretsmanager:GetSecretValue",
            "arn:aws-cn:secretsmanager:cn-northwest-1:123456789012:secret:db-??????"
        )]
    );
    // Without a known Region and account a bare name is a finding, never a made-up ARN.
    let td = TaskDefinition::from_json(
        r#"{"containerDefinitions":[{"name":"app","image":"nginx","secrets":[{"name":"S","valueFrom":"/x"}]}]}"#,
    )
    .unwrap();
    let d = derive(&td);
    assert!(d.requirements.is_empty());
    assert_eq!(kinds(&d), vec![FindingKind::UnknownContext]);
    let ctx = DeriveContext {
        account: Some("123456789012".into()),
        region: Some("us-gov-east-1".into()),
    };
    let d = required_permissions(&td, &ctx, &DeriveOptions::default(), &Facts::new());
    assert_eq!(
        grants(&d),
        vec![pair(
            "ssm:GetParameters",
            "arn:aws-us-gov:ssm:us-gov-east-1:123456789012:parameter/x"
        )]
    );
}

#[test]
fn repository_credentials_grant_get_secret_value_on_the_secret() {
    let cases = [
        (
            format!("{SM}:dockerhub-AbCdEf"),
            Ok(format!("{SM}:dockerhub-AbCdEf")),
        ),
        (
            format!("{SM}:dockerhub"),
            Ok(format!("{SM}:dockerhub-??????")),
        ),
        (
            "dockerhub/creds".to_string(),
            Ok(format!("{SM}:dockerhub/creds-??????")),
        ),
        (
            format!("{SM}:dockerhub-AbCdEf:username::"),
            Err(FindingKind::InvalidReference),
        ),
        (format!("{SSM}/x"), Err(FindingKind::InvalidReference)),
        (
            "${CREDS}".to_string(),
            Err(FindingKind::UnresolvedPlaceholder),
        ),
    ];
    for (parameter, want) in cases {
        let d = derive(&task(&format!(
            r#"[{{"name":"app","image":"ghcr.io/org/app:1","repositoryCredentials":{{"credentialsParameter":"{parameter}"}}}}]"#
        )));
        match want {
            Ok(resource) => {
                assert_eq!(
                    other_grants(&d),
                    vec![pair("secretsmanager:GetSecretValue", &resource)],
                    "{parameter}"
                );
                let r = requirement(&d, "secretsmanager:GetSecretValue");
                assert_eq!(
                    r.reasons.first().unwrap().field.to_string(),
                    "containerDefinitions[0].repositoryCredentials.credentialsParameter"
                );
            }
            Err(kind) => {
                assert!(d.requirements.is_empty(), "{parameter}");
                assert_eq!(kinds(&d), vec![kind], "{parameter}");
            }
        }
    }
}

#[test]
fn secret_options_of_any_log_driver_are_read_like_secrets() {
    let d = derive(&task(&format!(
        r#"[{{"name":"app","image":"nginx","logConfiguration":{{"logDriver":"splunk",
              "options":{{"splunk-url":"https://splunk:8088"}},
              "secretOptions":[{{"name":"splunk-token","valueFrom":"{SM}:splunk-AbCdEf"}}]}}}},
            {{"name":"fb","image":"nginx","logConfiguration":{{"logDriver":"awsfirelens",
              "options":{{"Name":"datadog"}},"secretOptions":[{{"name":"apikey","valueFrom":"/dd/apikey"}}]}}}}]"#
    )));
    assert_eq!(
        other_grants(&d),
        vec![
            pair(
                "secretsmanager:GetSecretValue",
                &format!("{SM}:splunk-AbCdEf")
            ),
            pair("ssm:GetParameters", &format!("{SSM}/dd/apikey")),
        ]
    );
    let field = |action| {
        requirement(&d, action)
            .reasons
            .first()
            .unwrap()
            .field
            .to_string()
    };
    assert_eq!(
        field("secretsmanager:GetSecretValue"),
        "containerDefinitions[0].logConfiguration.secretOptions[0].valueFrom"
    );
    assert_eq!(
        field("ssm:GetParameters"),
        "containerDefinitions[1].logConfiguration.secretOptions[0].valueFrom"
    );
    // logConfiguration given as a list: the path says so.
    let d = derive(&task(&format!(
        r#"[{{"name":"app","image":"nginx","logConfiguration":[{{"logDriver":"fluentd",
              "secretOptions":[{{"name":"t","valueFrom":"{SM}:t"}}]}}]}}]"#
    )));
    assert_eq!(
        requirement(&d, "secretsmanager:GetSecretValue")
            .reasons
            .first()
            .unwrap()
            .field
            .to_string(),
        "containerDefinitions[0].logConfiguration[0].secretOptions[0].valueFrom"
    );
}

#[test]
fn field_paths_name_the_container_and_entry() {
    let d = derive(&task(
        r#"[{"name":"a","image":"nginx"},
            {"name":"b","image":"nginx","secrets":[{"name":"X","valueFrom":"/x"},{"name":"Y","valueFrom":"/y"}]}]"#,
    ));
    let y = d
        .requirements
        .iter()
        .find(|r| r.permission.resource.ends_with("parameter/y"))
        .unwrap();
    let reason = y.reasons.first().unwrap();
    assert_eq!(
        (&*reason.container, &*reason.field),
        ("b", "containerDefinitions[1].secrets[1].valueFrom")
    );
}

#[test]
fn cross_account_secrets_and_parameters_are_granted_and_reported() {
    let d = with_secret("arn:aws:secretsmanager:us-east-1:222222222222:secret:shared-AbCdEf");
    assert_eq!(
        other_grants(&d),
        vec![pair(
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:222222222222:secret:shared-AbCdEf"
        )]
    );
    assert!(kinds(&d).contains(&FindingKind::CrossAccountResource));
    let d = with_secret("arn:aws:ssm:us-east-1:222222222222:parameter/shared");
    assert!(kinds(&d).contains(&FindingKind::CrossAccountResource));
}

#[test]
fn a_task_that_only_reads_secrets_still_needs_an_execution_role() {
    let td = TaskDefinition::from_json(
        r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/x:1",
           "containerDefinitions":[{"name":"x","image":"nginx","secrets":[{"name":"S","valueFrom":"/x"}]}]}"#,
    )
    .unwrap();
    assert!(kinds(&derive(&td)).contains(&FindingKind::NoExecutionRole));
}

#[test]
fn the_reference_grammar_recognises_the_random_suffix() {
    use crate::derive::references::has_random_suffix;
    let cases = [
        ("db-AbCdEf", true),
        ("a-123456", true),
        ("-AbCdEf", false),
        ("db-AbCdE", false),
        ("db_AbCdEf", false),
        ("db-AbCd-f", false),
        ("db-AbCdEfG", false),
        ("", false),
        ("é-AbCdEf", true),
        ("x-ÄbCdE", false),
    ];
    for (id, want) in cases {
        assert_eq!(has_random_suffix(id), want, "{id}");
    }
}
