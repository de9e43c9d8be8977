//! Rows 13 and 14 (Container Insights, trust policy) and the managed policy's name.

use super::*;

fn actions(permissions: &[Permission]) -> Vec<(&str, &str)> {
    permissions
        .iter()
        .map(|p| (p.action.as_str(), p.resource.as_str()))
        .collect()
}

#[test]
fn container_insights_permissions_are_the_seeds_on_star() {
    type Case<'a> = (bool, bool, Vec<(&'a str, &'a str)>);
    let cases: [Case; 4] = [
        (false, false, vec![]),
        (
            true,
            false,
            vec![
                ("events:PutRule", "*"),
                ("events:PutTargets", "*"),
                ("logs:CreateLogGroup", "*"),
            ],
        ),
        (
            false,
            true,
            vec![
                ("events:DescribeRule", "*"),
                ("events:ListTargetsByRule", "*"),
                ("logs:DescribeLogGroups", "*"),
            ],
        ),
        (
            true,
            true,
            vec![
                ("events:DescribeRule", "*"),
                ("events:ListTargetsByRule", "*"),
                ("events:PutRule", "*"),
                ("events:PutTargets", "*"),
                ("logs:CreateLogGroup", "*"),
                ("logs:DescribeLogGroups", "*"),
            ],
        ),
    ];
    for (configure, view, want) in cases {
        let permissions = container_insights_permissions(configure, view);
        assert_eq!(actions(&permissions), want, "{configure} {view}");
        assert!(permissions.iter().all(|p| p.conditions.is_empty()));
    }
}

#[test]
fn the_trust_policy_lets_ecs_tasks_assume_the_role_optionally_hardened() {
    let cases = [
        (
            "aws",
            None,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        ),
        (
            "aws",
            Some(("123456789012", "us-east-1")),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:ecs:us-east-1:123456789012:*"},"StringEquals":{"aws:SourceAccount":"123456789012"}}}]}"#,
        ),
        (
            "aws-cn",
            Some(("123456789012", "cn-north-1")),
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws-cn:ecs:cn-north-1:123456789012:*"},"StringEquals":{"aws:SourceAccount":"123456789012"}}}]}"#,
        ),
    ];
    for (partition, hardening, want) in cases {
        let doc = trust_policy(partition, hardening);
        assert_eq!(doc.to_json(), want);
        assert_eq!(crate::policy::PolicyDocument::parse(want).unwrap(), doc);
    }
}

#[test]
fn the_managed_policy_arn_follows_the_partition() {
    assert_eq!(
        MANAGED_POLICY_NAME,
        "service-role/AmazonECSTaskExecutionRolePolicy"
    );
    for (partition, arn) in [
        (
            "aws",
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        ),
        (
            "aws-cn",
            "arn:aws-cn:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        ),
        (
            "aws-us-gov",
            "arn:aws-us-gov:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
        ),
    ] {
        assert_eq!(managed_policy_arn(partition), arn);
    }
}

#[test]
fn task_role_needs_are_never_derived() {
    // ECS Exec, FireLens outputs, EFS IAM authorization and application settings belong to the task role.
    let td = task_in(
        "us-east-1",
        r#""taskRoleArn":"arn:aws:iam::123456789012:role/app-task",
           "volumes":[{"name":"efs","efsVolumeConfiguration":{"fileSystemId":"fs-1","transitEncryption":"ENABLED",
             "authorizationConfig":{"iam":"ENABLED"}}}],"#,
        r#"[{"name":"app","image":"nginx","linuxParameters":{"initProcessEnabled":true},
             "environment":[{"name":"BUCKET","value":"arn:aws:s3:::data/x"}],
             "logConfiguration":{"logDriver":"awsfirelens","options":{"Name":"firehose","region":"us-east-1",
               "delivery_stream":"s"}}}]"#,
    );
    let d = derive(&td);
    assert!(d.requirements.is_empty(), "{:?}", grants(&d));
    assert!(d.findings.is_empty());
}
