//! Table tests for the derivation rules, one test per rule family and edge case. This file holds the shared
//! helpers and the image and awslogs rules (1, 1b, 3, 8, 9); the other families have a file each.

mod files;
mod images;
mod kms;
mod properties;
mod roles;
mod secrets;

use super::*;

const TASK_ARN: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";
const ROLE: &str = "arn:aws:iam::123456789012:role/app-exec";

fn task(containers: &str) -> TaskDefinition {
    let text = format!(
        r#"{{"taskDefinitionArn":"{TASK_ARN}","family":"web","revision":3,"executionRoleArn":"{ROLE}",
            "containerDefinitions":{containers}}}"#
    );
    TaskDefinition::from_json(&text).expect("test task definition parses")
}

fn derive(td: &TaskDefinition) -> Derivation {
    required_permissions(
        td,
        &DeriveContext::default(),
        &DeriveOptions::default(),
        &Facts::new(),
    )
}

/// A task definition with extra top-level JSON (e.g. `"requiresCompatibilities":["FARGATE"],`) and its ARN in
/// `region`.
fn task_in(region: &str, extra: &str, containers: &str) -> TaskDefinition {
    let text = format!(
        r#"{{"taskDefinitionArn":"arn:{}:ecs:{region}:123456789012:task-definition/web:3","family":"web",
            "revision":3,"executionRoleArn":"arn:{}:iam::123456789012:role/app-exec",{extra}
            "containerDefinitions":{containers}}}"#,
        partition_for_region(region),
        partition_for_region(region),
    );
    TaskDefinition::from_json(&text).expect("test task definition parses")
}

fn derive_with(td: &TaskDefinition, options: &DeriveOptions, facts: &Facts) -> Derivation {
    required_permissions(td, &DeriveContext::default(), options, facts)
}

/// Grants whose action is not an ECR or logs action.
fn other_grants(d: &Derivation) -> Vec<(String, String)> {
    grants(d)
        .into_iter()
        .filter(|(a, _)| !a.starts_with("ecr:") && !a.starts_with("logs:"))
        .collect()
}

fn pair(action: &str, resource: &str) -> (String, String) {
    (action.to_string(), resource.to_string())
}

/// The requirement for `action`, which must exist.
fn requirement<'d>(d: &'d Derivation, action: &str) -> &'d Requirement {
    d.requirements
        .iter()
        .find(|r| r.permission.action == action)
        .unwrap_or_else(|| panic!("{action} not granted: {:?}", grants(d)))
}

fn grants(d: &Derivation) -> Vec<(String, String)> {
    d.requirements
        .iter()
        .map(|r| (r.permission.action.clone(), r.permission.resource.clone()))
        .collect()
}

fn kinds(d: &Derivation) -> Vec<FindingKind> {
    d.findings.iter().map(|f| f.kind).collect()
}

fn ecr_grants(repository_arn: &str) -> Vec<(String, String)> {
    let mut v = vec![("ecr:GetAuthorizationToken".to_string(), "*".to_string())];
    for action in ecr::LAYER_ACTIONS {
        v.push((action.to_string(), repository_arn.to_string()));
    }
    v.sort();
    v
}

#[test]
fn private_ecr_images_need_the_token_and_layer_actions_on_the_exact_repository() {
    let digest = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let cases = [
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.2",
            "arn:aws:ecr:us-east-1:123456789012:repository/web",
        ),
        (
            &format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web@{digest}") as &str,
            "arn:aws:ecr:us-east-1:123456789012:repository/web",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/svc/worker:2.3",
            "arn:aws:ecr:us-east-1:123456789012:repository/team/svc/worker",
        ),
        // Region from the host, not from the task.
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web",
            "arn:aws:ecr:eu-west-1:123456789012:repository/web",
        ),
        (
            "123456789012.dkr-ecr.eu-west-1.on.aws/web",
            "arn:aws:ecr:eu-west-1:123456789012:repository/web",
        ),
        (
            "123456789012.dkr.ecr-fips.us-east-2.amazonaws.com/web",
            "arn:aws:ecr:us-east-2:123456789012:repository/web",
        ),
    ];
    for (image, repository) in cases {
        let d = derive(&task(&format!(r#"[{{"name":"app","image":"{image}"}}]"#)));
        assert_eq!(grants(&d), ecr_grants(repository), "{image}");
        assert!(d.findings.is_empty(), "{image}: {:?}", d.findings);
        let reason = d.requirements[0].reasons.first().unwrap();
        assert_eq!(&*reason.container, "app");
        assert_eq!(&*reason.field, "containerDefinitions[0].image");
        assert_eq!(&*reason.task_definition, "web:3");
    }
}

#[test]
fn china_and_govcloud_registries_use_their_partition() {
    let d = derive(&task(
        r#"[{"name":"a","image":"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app:1"},
            {"name":"b","image":"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/app:1"}]"#,
    ));
    let resources: BTreeSet<_> = grants(&d).into_iter().map(|(_, r)| r).collect();
    assert!(resources.contains("arn:aws-cn:ecr:cn-north-1:123456789012:repository/app"));
    assert!(resources.contains("arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/app"));
}

#[test]
fn cross_account_ecr_images_are_granted_and_reported() {
    let d = derive(&task(
        r#"[{"name":"api","image":"222222222222.dkr.ecr.eu-west-1.amazonaws.com/shared/base:2024.1"}]"#,
    ));
    assert_eq!(
        grants(&d),
        ecr_grants("arn:aws:ecr:eu-west-1:222222222222:repository/shared/base")
    );
    assert_eq!(kinds(&d), vec![FindingKind::CrossAccountResource]);
    assert!(d.findings[0].message.contains("222222222222"));
}

#[test]
fn images_from_other_registries_need_nothing() {
    for image in [
        "nginx",
        "nginx:1.27",
        "docker.io/library/nginx:latest",
        "public.ecr.aws/aws-observability/aws-otel-collector:latest",
        "ghcr.io/org/app:1",
        "registry.local:5000/app:1",
    ] {
        let d = derive(&task(&format!(r#"[{{"name":"app","image":"{image}"}}]"#)));
        assert!(d.requirements.is_empty(), "{image}");
        assert!(d.findings.is_empty(), "{image}");
    }
}

#[test]
fn bad_and_templated_images_are_findings_not_grants() {
    let cases = [
        (
            "aws_account_id.dkr.ecr.us-west-2.amazonaws.com/hello",
            FindingKind::InvalidReference,
        ),
        (
            "aws_account_id.dkr.ecr.region.amazonaws.com/hello:latest",
            FindingKind::InvalidReference,
        ),
        (
            "${ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/hello",
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            "<account>.dkr.ecr.us-west-2.amazonaws.com/hello",
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/{{ .Repo }}",
            FindingKind::UnresolvedPlaceholder,
        ),
    ];
    for (image, kind) in cases {
        let d = derive(&task(&format!(r#"[{{"name":"app","image":"{image}"}}]"#)));
        assert!(d.requirements.is_empty(), "{image}");
        assert_eq!(kinds(&d), vec![kind], "{image}");
    }
}

#[test]
fn awslogs_needs_stream_and_events_on_the_group_with_the_star_suffix() {
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"awslogs",
            "options":{"awslogs-group":"/ecs/web","awslogs-region":"us-east-1","awslogs-stream-prefix":"web"}}}]"#,
    ));
    let resource = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*".to_string();
    assert_eq!(
        grants(&d),
        vec![
            ("logs:CreateLogStream".to_string(), resource.clone()),
            ("logs:PutLogEvents".to_string(), resource),
        ]
    );
    assert!(d.findings.is_empty());
}

#[test]
fn awslogs_create_group_adds_create_log_group_on_the_same_resource() {
    for value in [r#""true""#, r#""TRUE""#, "true", r#""1""#, r#""t""#] {
        let d = derive(&task(&format!(
            r#"[{{"name":"app","image":"nginx","logConfiguration":{{"logDriver":"awslogs",
                "options":{{"awslogs-group":"/ecs/w","awslogs-region":"us-east-1","awslogs-create-group":{value}}}}}}}]"#
        )));
        let create = d
            .requirements
            .iter()
            .find(|r| r.permission.action == "logs:CreateLogGroup")
            .expect("CreateLogGroup granted");
        assert_eq!(
            create.permission.resource,
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/w:*"
        );
        assert_eq!(
            create.reasons.first().unwrap().field.to_string(),
            "containerDefinitions[0].logConfiguration.options.awslogs-create-group"
        );
    }
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"awslogs",
            "options":{"awslogs-group":"/ecs/w","awslogs-region":"us-east-1","awslogs-create-group":"false"}}}]"#,
    ));
    assert!(
        !d.requirements
            .iter()
            .any(|r| r.permission.action == "logs:CreateLogGroup")
    );
}

#[test]
fn awslogs_region_other_than_the_tasks_decides_region_and_partition() {
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"awslogs",
            "options":{"awslogs-group":"g","awslogs-region":"eu-west-1"}}},
            {"name":"cn","image":"nginx","logConfiguration":{"logDriver":"awslogs",
            "options":{"awslogs-group":"g","awslogs-region":"cn-northwest-1"}}}]"#,
    ));
    let resources: BTreeSet<_> = grants(&d).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        resources,
        BTreeSet::from([
            "arn:aws:logs:eu-west-1:123456789012:log-group:g:*".to_string(),
            "arn:aws-cn:logs:cn-northwest-1:123456789012:log-group:g:*".to_string(),
        ])
    );
}

#[test]
fn missing_awslogs_region_falls_back_to_the_tasks_region_with_a_finding() {
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"g"}}}]"#,
    ));
    assert_eq!(
        grants(&d)[0].1,
        "arn:aws:logs:us-east-1:123456789012:log-group:g:*"
    );
    assert_eq!(kinds(&d), vec![FindingKind::IncompleteConfiguration]);
}

#[test]
fn awslogs_without_a_known_account_or_region_is_a_finding_never_a_made_up_arn() {
    let td = TaskDefinition::from_json(
        r#"{"containerDefinitions":[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"awslogs",
           "options":{"awslogs-group":"g"}}}]}"#,
    )
    .unwrap();
    let d = derive(&td);
    assert!(d.requirements.is_empty());
    assert_eq!(kinds(&d), vec![FindingKind::UnknownContext]);
    // The context supplied by the caller (derive --account/--region) fills the gap.
    let ctx = DeriveContext {
        account: Some("123456789012".into()),
        region: Some("ap-northeast-1".into()),
    };
    let d = required_permissions(&td, &ctx, &DeriveOptions::default(), &Facts::new());
    assert_eq!(
        grants(&d)[0].1,
        "arn:aws:logs:ap-northeast-1:123456789012:log-group:g:*"
    );
}

#[test]
fn bad_awslogs_options_are_findings() {
    let cases = [
        (
            r#"{"awslogs-region":"us-east-1"}"#,
            FindingKind::InvalidReference,
        ),
        (
            r#"{"awslogs-group":"${LOG_GROUP}","awslogs-region":"us-east-1"}"#,
            FindingKind::UnresolvedPlaceholder,
        ),
        (
            r#"{"awslogs-group":"bad*group","awslogs-region":"us-east-1"}"#,
            FindingKind::InvalidReference,
        ),
        (
            r#"{"awslogs-group":"g","awslogs-region":"region"}"#,
            FindingKind::InvalidReference,
        ),
    ];
    for (options, kind) in cases {
        let d = derive(&task(&format!(
            r#"[{{"name":"app","image":"nginx","logConfiguration":{{"logDriver":"awslogs","options":{options}}}}}]"#
        )));
        assert!(d.requirements.is_empty(), "{options}");
        assert_eq!(kinds(&d), vec![kind], "{options}");
    }
}

#[test]
fn other_log_drivers_need_nothing_from_the_awslogs_rule() {
    let d = derive(&task(
        r#"[{"name":"app","image":"nginx","logConfiguration":{"logDriver":"splunk","options":{"splunk-url":"https://x"}}}]"#,
    ));
    assert!(d.requirements.is_empty());
}

#[test]
fn a_task_that_needs_a_role_and_names_none_is_a_finding() {
    let td = TaskDefinition::from_json(
        r#"{"taskDefinitionArn":"arn:aws:ecs:us-west-2:123456789012:task-definition/hello:1",
           "containerDefinitions":[{"name":"hello","image":"123456789012.dkr.ecr.us-west-2.amazonaws.com/hello"}]}"#,
    )
    .unwrap();
    let d = derive(&td);
    assert_eq!(d.role, None);
    assert_eq!(kinds(&d), vec![FindingKind::NoExecutionRole]);
    // One that needs nothing needs no role either.
    let td =
        TaskDefinition::from_json(r#"{"containerDefinitions":[{"name":"x","image":"nginx"}]}"#)
            .unwrap();
    assert!(derive(&td).findings.is_empty());
}

#[test]
fn an_execution_role_that_is_not_a_role_arn_is_a_finding() {
    let td = TaskDefinition::from_json(
        r#"{"executionRoleArn":"ecsTaskExecutionRole","containerDefinitions":[{"name":"x","image":"nginx"}]}"#,
    )
    .unwrap();
    assert_eq!(kinds(&derive(&td)), vec![FindingKind::InvalidExecutionRole]);
}

#[test]
fn ec2_only_tasks_skip_ecr_and_logs_when_told_to() {
    let td = TaskDefinition::from_json(&format!(
        r#"{{"taskDefinitionArn":"{TASK_ARN}","executionRoleArn":"{ROLE}","requiresCompatibilities":["EC2"],
            "containerDefinitions":[{{"name":"a","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web"}}]}}"#
    ))
    .unwrap();
    assert!(!derive(&td).requirements.is_empty());
    let options = DeriveOptions {
        ecr_and_logs_on_ec2: false,
        ..Default::default()
    };
    let d = required_permissions(&td, &DeriveContext::default(), &options, &Facts::new());
    assert!(d.requirements.is_empty());
}

#[test]
fn reasons_from_several_containers_and_task_definitions_merge_per_permission() {
    let a = derive(&task(
        r#"[{"name":"a","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web"},
            {"name":"b","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2"}]"#,
    ));
    let token = a
        .requirements
        .iter()
        .find(|r| r.permission.action == "ecr:GetAuthorizationToken")
        .unwrap();
    assert_eq!(token.reasons.len(), 2);
    let merged = merge_requirements(a.requirements.iter().chain(a.requirements.iter()));
    assert_eq!(merged, a.requirements);
}

#[test]
fn secret_ids_ending_in_a_lowercase_word_are_names_and_mixed_case_endings_are_suffixes() {
    let sm = "arn:aws:secretsmanager:us-east-1:123456789012:secret";
    let d = derive(&task(&format!(
        r#"[{{"name":"c","image":"ghcr.io/o/a","repositoryCredentials":{{"credentialsParameter":"ghcr-access"}},
            "secrets":[{{"name":"A","valueFrom":"{sm}:prod/db-config"}},
                       {{"name":"B","valueFrom":"/aws/reference/secretsmanager/prod/api-Tok3n5"}},
                       {{"name":"C","valueFrom":"{sm}:prod/db-AbC123:password::"}}]}}]"#
    )));
    let resources: BTreeSet<String> = grants(&d)
        .into_iter()
        .filter(|(action, _)| action == "secretsmanager:GetSecretValue")
        .map(|(_, resource)| resource)
        .collect();
    assert_eq!(
        resources,
        BTreeSet::from([
            format!("{sm}:ghcr-access-??????"),
            format!("{sm}:prod/db-config-??????"),
            format!("{sm}:prod/api-Tok3n5"),
            format!("{sm}:prod/db-AbC123"),
        ])
    );
}

#[test]
fn a_task_arn_whose_region_is_a_placeholder_never_puts_it_into_an_arn() {
    for region in ["region", "${AWS_REGION}", "<region>"] {
        let td = TaskDefinition::from_json(&format!(
            r#"{{"taskDefinitionArn":"arn:aws:ecs:{region}:123456789012:task-definition/t:1",
                "executionRoleArn":"{ROLE}",
                "containerDefinitions":[{{"name":"c","image":"nginx","secrets":[{{"name":"A","valueFrom":"/a/b"}}],
                  "logConfiguration":{{"logDriver":"awslogs","options":{{"awslogs-group":"g"}}}}}}]}}"#
        ))
        .unwrap();
        let d = derive(&td);
        for (_, resource) in grants(&d) {
            assert!(!resource.contains(region), "{region}: {resource}");
        }
        assert!(
            d.findings
                .iter()
                .any(|f| f.kind == FindingKind::UnknownContext),
            "{region}: {:?}",
            d.findings
        );
    }
}
