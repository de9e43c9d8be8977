//! Rows 10, 11 and 12: environment files, FireLens configuration files and credential specs.

use super::*;

fn s3_pair(bucket: &str, key: &str) -> Vec<(String, String)> {
    vec![
        pair("s3:GetBucketLocation", &format!("arn:aws:s3:::{bucket}")),
        pair("s3:GetObject", &format!("arn:aws:s3:::{bucket}/{key}")),
    ]
}

fn env_file(kind: &str, value: &str) -> Derivation {
    derive(&task(&format!(
        r#"[{{"name":"app","image":"nginx","environmentFiles":[{{"type":"{kind}","value":"{value}"}}]}}]"#
    )))
}

#[test]
fn s3_environment_files_need_the_object_and_its_bucket_location() {
    let cases = [
        (
            "arn:aws:s3:::qapp-dev-configs-bucket/.dev.env",
            "qapp-dev-configs-bucket",
            ".dev.env",
        ),
        (
            "arn:aws:s3:::my.bucket/path/to/app.env",
            "my.bucket",
            "path/to/app.env",
        ),
        ("arn:aws:s3:::bkt/a/b/c/d.env", "bkt", "a/b/c/d.env"),
    ];
    for (value, bucket, key) in cases {
        let d = env_file("s3", value);
        assert_eq!(grants(&d), s3_pair(bucket, key), "{value}");
        assert!(d.findings.is_empty(), "{value}: {:?}", d.findings);
        assert_eq!(
            requirement(&d, "s3:GetObject")
                .reasons
                .first()
                .unwrap()
                .field
                .to_string(),
            "containerDefinitions[0].environmentFiles[0].value"
        );
    }
}

#[test]
fn invalid_environment_files_are_findings() {
    let cases = [
        (
            "s3",
            "arn:aws:s3:::bucket-only",
            FindingKind::InvalidReference,
        ),
        ("s3", "arn:aws:s3:::bucket/", FindingKind::InvalidReference),
        ("s3", "s3://bucket/app.env", FindingKind::InvalidReference),
        (
            "s3",
            "arn:aws:s3:us-east-1:123456789012:bucket/app.env",
            FindingKind::InvalidReference,
        ),
        (
            "s3",
            "arn:aws:s3:::Bad_Bucket/app.env",
            FindingKind::InvalidReference,
        ),
        (
            "s3",
            "arn:aws:s3:::ab/app.env",
            FindingKind::InvalidReference,
        ),
        (
            "s3",
            "arn:aws:s3:::bucket/*.env",
            FindingKind::InvalidReference,
        ),
        (
            "s3",
            "arn:aws-cn:s3:::bucket/app.env",
            FindingKind::InvalidReference,
        ),
        (
            "s3",
            "arn:aws:s3:::${BUCKET}/app.env",
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            "s3",
            "arn:aws:s3:::<bucket>/app.env",
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            "file",
            "arn:aws:s3:::bucket/app.env",
            FindingKind::InvalidReference,
        ),
        ("s3", "", FindingKind::InvalidReference),
    ];
    for (kind, value, want) in cases {
        let d = env_file(kind, value);
        assert!(d.requirements.is_empty(), "{value}: {:?}", grants(&d));
        assert_eq!(kinds(&d), vec![want], "{kind} {value}: {:?}", d.findings);
    }
}

#[test]
fn s3_arns_follow_the_tasks_partition() {
    let d = derive(&task_in(
        "cn-north-1",
        "",
        r#"[{"name":"app","image":"nginx","environmentFiles":[{"type":"s3","value":"arn:aws-cn:s3:::b-cn/x.env"}]}]"#,
    ));
    assert_eq!(
        grants(&d),
        vec![
            pair("s3:GetBucketLocation", "arn:aws-cn:s3:::b-cn"),
            pair("s3:GetObject", "arn:aws-cn:s3:::b-cn/x.env"),
        ]
    );
    let d = derive(&task_in(
        "us-gov-west-1",
        "",
        r#"[{"name":"app","image":"nginx","environmentFiles":[{"type":"s3","value":"arn:aws:s3:::b/x.env"}]}]"#,
    ));
    assert_eq!(kinds(&d), vec![FindingKind::InvalidReference]);
}

fn firelens(extra: &str, options: &str) -> Derivation {
    derive(&task_in(
        "us-east-1",
        extra,
        &format!(
            r#"[{{"name":"log_router","image":"amazon/aws-for-fluent-bit:stable",
                  "firelensConfiguration":{{"type":"fluentbit","options":{options}}}}},
                {{"name":"app","image":"httpd","logConfiguration":{{"logDriver":"awsfirelens",
                  "options":{{"Name":"kinesis_firehose","region":"us-west-2","delivery_stream":"my-stream"}}}}}}]"#
        ),
    ))
}

#[test]
fn a_firelens_config_file_in_s3_needs_the_object_and_its_bucket_location() {
    let s3 = r#"{"config-file-type":"s3","config-file-value":"arn:aws:s3:::yourbucket/yourdirectory/extra.conf"}"#;
    for extra in [
        "",
        r#""requiresCompatibilities":["EC2"],"#,
        r#""requiresCompatibilities":["EXTERNAL"],"#,
    ] {
        let d = firelens(extra, s3);
        assert_eq!(
            grants(&d),
            s3_pair("yourbucket", "yourdirectory/extra.conf"),
            "{extra}"
        );
        assert!(d.findings.is_empty(), "{extra}: {:?}", d.findings);
        assert_eq!(
            requirement(&d, "s3:GetObject")
                .reasons
                .first()
                .unwrap()
                .field
                .to_string(),
            "containerDefinitions[0].firelensConfiguration.options.config-file-value"
        );
    }
    // Fargate only supports `file`: reported, and still granted.
    let d = firelens(r#""requiresCompatibilities":["FARGATE"],"#, s3);
    assert_eq!(
        grants(&d),
        s3_pair("yourbucket", "yourdirectory/extra.conf")
    );
    assert_eq!(kinds(&d), vec![FindingKind::UnsupportedConfiguration]);
    assert!(kinds(&d)[0].is_blocking());
}

#[test]
fn other_firelens_configurations_need_nothing_or_are_findings() {
    let cases = [
        (
            r#"{"config-file-type":"file","config-file-value":"/extra.conf"}"#,
            vec![],
        ),
        (r#"{"enable-ecs-log-metadata":"true"}"#, vec![]),
        (
            r#"{"config-file-type":"s3"}"#,
            vec![FindingKind::InvalidReference],
        ),
        (
            r#"{"config-file-type":"s3","config-file-value":"/extra.conf"}"#,
            vec![FindingKind::InvalidReference],
        ),
        (
            r#"{"config-file-type":"http","config-file-value":"x"}"#,
            vec![FindingKind::InvalidReference],
        ),
    ];
    for (options, want) in cases {
        let d = firelens("", options);
        // FireLens output destinations (firehose here) belong to the task role: never derived.
        assert!(d.requirements.is_empty(), "{options}: {:?}", grants(&d));
        assert_eq!(kinds(&d), want, "{options}");
    }
}

fn credspec(spec: &str) -> Derivation {
    derive(&task(&format!(
        r#"[{{"name":"win","image":"mcr.microsoft.com/windows/servercore/iis","credentialSpecs":["{spec}"]}}]"#
    )))
}

#[test]
fn credential_specs_in_s3_or_ssm_need_read_access_and_local_files_nothing() {
    let ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/credspec";
    let cases = [
        (
            "credentialspec:arn:aws:s3:::gmsa-bucket/specs/webapp.json",
            s3_pair("gmsa-bucket", "specs/webapp.json"),
            vec![],
        ),
        (
            "credentialspec:arn:aws:ssm:us-east-1:123456789012:parameter/gmsa/credspec",
            vec![pair("ssm:GetParameters", ssm)],
            vec![FindingKind::UnresolvedLookup],
        ),
        (
            "credentialspecdomainless:arn:aws:s3:::ecs-domainless-gmsa-credspec/gmsa-cred-spec.json",
            s3_pair("ecs-domainless-gmsa-credspec", "gmsa-cred-spec.json"),
            vec![FindingKind::UnresolvedLookup],
        ),
        ("credentialspec:file://gmsa-cred-spec.json", vec![], vec![]),
        (
            "credentialspecdomainless:file://gmsa.json",
            vec![],
            vec![FindingKind::UnresolvedLookup],
        ),
        (
            "arn:aws:s3:::bucket/spec.json",
            vec![],
            vec![FindingKind::InvalidReference],
        ),
        (
            "credentialspec:arn:aws:s3:::bucket",
            vec![],
            vec![FindingKind::InvalidReference],
        ),
        (
            "credentialspec:arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            vec![],
            vec![FindingKind::InvalidReference],
        ),
        (
            "credentialspec:arn:aws:ssm:us-east-1:123456789012:parameter/a//b",
            vec![],
            vec![FindingKind::InvalidReference],
        ),
        (
            "credentialspec:${CREDSPEC_ARN}",
            vec![],
            vec![FindingKind::UnresolvedPlaceholder],
        ),
    ];
    for (spec, want, findings) in cases {
        let d = credspec(spec);
        assert_eq!(grants(&d), want, "{spec}");
        assert_eq!(kinds(&d), findings, "{spec}: {:?}", d.findings);
        if let Some(r) = d.requirements.first() {
            assert_eq!(
                r.reasons.first().unwrap().field.to_string(),
                "containerDefinitions[0].credentialSpecs[0]"
            );
        }
    }
    let d = credspec("credentialspecdomainless:arn:aws:s3:::b-1/s.json");
    assert!(
        d.findings[0].message.contains("not derived"),
        "{}",
        d.findings[0].message
    );
}
