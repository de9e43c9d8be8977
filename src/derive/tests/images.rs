//! Rules 1c and 2 (VPC endpoint conditions, pull-through cache) and the managed-policy baseline.

use super::*;

const CACHE_IMAGE: &str =
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx:1.27";

fn registry_rules(prefixes: &[&str]) -> Facts {
    let mut facts = Facts::new();
    facts.insert(
        Lookup::PullThroughCacheRules {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        },
        Fact::PullThroughCacheRules {
            rules: prefixes
                .iter()
                .map(|p| PullThroughRule {
                    prefix: p.to_string(),
                })
                .collect(),
        },
    );
    facts
}

/// The look-up of the test registry's rules, failed for `reason`.
fn failed_rules(reason: &str) -> Facts {
    let mut facts = Facts::new();
    facts.insert(
        Lookup::PullThroughCacheRules {
            region: "us-east-1".into(),
            account: "123456789012".into(),
        },
        Fact::Failed {
            reason: reason.into(),
        },
    );
    facts
}

fn image_task(image: &str) -> TaskDefinition {
    task(&format!(
        r#"[{{"name":"app","image":"{image}","logConfiguration":{{"logDriver":"awslogs",
            "options":{{"awslogs-group":"/ecs/web","awslogs-region":"us-east-1","awslogs-create-group":"true"}}}}}}]"#
    ))
}

#[test]
fn a_pull_through_cache_image_also_needs_import_and_create_under_the_prefix() {
    let repo = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/library/nginx";
    let prefix = "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/*";
    let cases = [
        (vec!["docker-hub", "ghcr"], true),
        (vec!["ghcr"], false),
        (vec!["docker"], false),
        (vec![], false),
    ];
    for (prefixes, cached) in cases {
        let d = derive_with(
            &image_task(CACHE_IMAGE),
            &DeriveOptions::default(),
            &registry_rules(&prefixes),
        );
        let mut want = super::ecr_grants(repo);
        if cached {
            want.push(pair("ecr:BatchImportUpstreamImage", prefix));
            want.push(pair("ecr:CreateRepository", prefix));
            want.sort();
        }
        let ecr: Vec<_> = grants(&d)
            .into_iter()
            .filter(|(a, _)| a.starts_with("ecr:"))
            .collect();
        assert_eq!(ecr, want, "{prefixes:?}");
        assert!(
            d.findings.is_empty() && d.lookups.is_empty(),
            "{prefixes:?}"
        );
    }
}

#[test]
fn pull_through_rules_are_asked_for_only_for_nested_paths_and_never_reported_offline() {
    let d = derive(&image_task(CACHE_IMAGE));
    assert_eq!(
        d.lookups,
        vec![Lookup::PullThroughCacheRules {
            region: "us-east-1".into(),
            account: "123456789012".into()
        }]
    );
    assert!(d.findings.is_empty(), "{:?}", d.findings);
    assert!(!grants(&d).iter().any(|(a, _)| a == "ecr:CreateRepository"));
    // A single-segment path cannot be a cache path.
    let d = derive(&image_task(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1",
    ));
    assert!(d.lookups.is_empty());
    // A failed look-up is said (the controller tried and could not read the rules).
    let facts = failed_rules("AccessDenied");
    let d = derive_with(&image_task(CACHE_IMAGE), &DeriveOptions::default(), &facts);
    assert_eq!(kinds(&d), vec![FindingKind::UnresolvedLookup]);
}

#[test]
fn vpc_endpoint_conditions_apply_only_to_the_layer_and_pull_through_statements() {
    let cases = [
        (vec!["vpce-0abc"], vec![]),
        (vec![], vec!["vpc-0123"]),
        (vec!["vpce-0abc", "vpce-0def"], vec!["vpc-0123"]),
    ];
    for (vpce, vpc) in cases {
        let options = DeriveOptions {
            vpc_endpoint: VpcEndpointCondition {
                source_vpce: vpce.iter().map(|s| s.to_string()).collect(),
                source_vpc: vpc.iter().map(|s| s.to_string()).collect(),
            },
            ..Default::default()
        };
        let d = derive_with(
            &image_task(CACHE_IMAGE),
            &options,
            &registry_rules(&["docker-hub"]),
        );
        for r in &d.requirements {
            let p = &r.permission;
            let layered = ecr::LAYER_ACTIONS.contains(&p.action.as_str())
                || ecr::PULL_THROUGH_ACTIONS.contains(&p.action.as_str());
            if !layered {
                assert!(
                    p.conditions.is_empty(),
                    "{} must stay unconditioned",
                    p.action
                );
                continue;
            }
            let equals = &p.conditions["StringEquals"];
            assert_eq!(p.conditions.len(), 1);
            assert_eq!(
                equals.get("aws:sourceVpce").cloned().unwrap_or_default(),
                vpce,
                "{}",
                p.action
            );
            assert_eq!(
                equals.get("aws:sourceVpc").cloned().unwrap_or_default(),
                vpc,
                "{}",
                p.action
            );
        }
        assert!(
            d.requirements
                .iter()
                .any(|r| r.permission.action == "ecr:GetAuthorizationToken")
        );
        assert!(
            d.requirements
                .iter()
                .any(|r| r.permission.action == "logs:PutLogEvents")
        );
    }
}

#[test]
fn the_managed_policy_baseline_drops_exactly_the_six_actions_it_grants() {
    let td = task(
        r#"[{"name":"app","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub/library/nginx",
             "secrets":[{"name":"S","valueFrom":"/app/s"}],
             "environmentFiles":[{"type":"s3","value":"arn:aws:s3:::cfg-bucket/app.env"}],
             "logConfiguration":{"logDriver":"awslogs",
               "options":{"awslogs-group":"/ecs/web","awslogs-region":"us-east-1","awslogs-create-group":"true"}}}]"#,
    );
    let facts = registry_rules(&["docker-hub"]);
    for vpce in [vec![], vec!["vpce-0abc".to_string()]] {
        let least = DeriveOptions {
            vpc_endpoint: VpcEndpointCondition {
                source_vpce: vpce.clone(),
                source_vpc: vec![],
            },
            ..Default::default()
        };
        let managed = DeriveOptions {
            baseline: Baseline::ManagedPolicy,
            ..least.clone()
        };
        let all = derive_with(&td, &least, &facts);
        let rest = derive_with(&td, &managed, &facts);
        let dropped: BTreeSet<String> = all
            .requirements
            .iter()
            .filter(|r| !rest.requirements.contains(r))
            .map(|r| r.permission.action.clone())
            .collect();
        assert_eq!(
            dropped,
            MANAGED_POLICY_ACTIONS
                .iter()
                .map(|a| a.to_string())
                .collect()
        );
        let kept: BTreeSet<String> = rest
            .requirements
            .iter()
            .map(|r| r.permission.action.clone())
            .collect();
        assert_eq!(
            kept,
            [
                "ecr:BatchImportUpstreamImage",
                "ecr:CreateRepository",
                "logs:CreateLogGroup",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "ssm:GetParameters",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect()
        );
        assert_eq!(all.findings, rest.findings);
    }
    // Nothing but the managed policy's actions: nothing left, and the role is still needed.
    let td = TaskDefinition::from_json(
        r#"{"taskDefinitionArn":"arn:aws:ecs:us-east-1:123456789012:task-definition/x:1",
           "containerDefinitions":[{"name":"x","image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/x"}]}"#,
    )
    .unwrap();
    let options = DeriveOptions {
        baseline: Baseline::ManagedPolicy,
        ..Default::default()
    };
    let d = derive_with(&td, &options, &Facts::new());
    assert!(d.requirements.is_empty());
    assert_eq!(kinds(&d), vec![FindingKind::NoExecutionRole]);
}

#[test]
fn a_failed_cache_rule_look_up_holds_back_only_the_import_grants_of_its_prefix() {
    let facts = failed_rules("HTTP 500");
    let d = derive_with(&image_task(CACHE_IMAGE), &DeriveOptions::default(), &facts);
    assert_eq!(d.findings.len(), 1, "{:?}", d.findings);
    assert_eq!(
        d.findings[0].holds,
        Some(HoldScope::PullThroughCache {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            prefix: "docker-hub".into(),
        })
    );
}

#[test]
fn another_accounts_cache_rules_are_not_looked_up_and_the_finding_holds_nothing_back() {
    let image = "222222222222.dkr.ecr.eu-west-1.amazonaws.com/docker-hub/library/nginx:1.27";
    let d = derive(&image_task(image));
    assert!(d.lookups.is_empty(), "{:?}", d.lookups);
    assert_eq!(kinds(&d), vec![FindingKind::CrossAccountResource]);
    let finding = &d.findings[0];
    assert!(finding.holds.is_none());
    for words in [
        "account 222222222222: its repository policy must also allow the execution role to pull",
        "cannot read that registry's pull-through-cache rules, so if `docker-hub` is a cache prefix there",
        // A grant added to execrole's own policy would be removed: the finding sends it elsewhere.
        "allow them to the role in a policy execrole does not own",
    ] {
        assert!(finding.message.contains(words), "{}", finding.message);
    }
    // No import grant is guessed for it.
    assert!(
        !grants(&d)
            .iter()
            .any(|(a, _)| a == "ecr:BatchImportUpstreamImage")
    );
    // Without pull-through look-ups (or for a single-segment path) the finding is about the pull only.
    let options = DeriveOptions {
        pull_through_lookups: false,
        ..DeriveOptions::default()
    };
    let d = derive_with(&image_task(image), &options, &Facts::new());
    assert!(
        !d.findings[0].message.contains("pull-through"),
        "{:?}",
        d.findings
    );
    let d = derive(&image_task(
        "222222222222.dkr.ecr.eu-west-1.amazonaws.com/base:1",
    ));
    assert!(
        !d.findings[0].message.contains("pull-through"),
        "{:?}",
        d.findings
    );
}
