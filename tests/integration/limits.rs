//! IAM size limits against the emulator (which enforces none): a role whose needs pass the 10,240-character inline
//! limit spills into customer managed policies the controller owns, and a later shrink brings it back inline.

use std::collections::BTreeSet;

use execrole::config::Mode;
use execrole::policy::{self, Grant, INLINE_LIMIT, MANAGED_LIMIT, PolicyDocument};

use crate::support::*;

async fn pass(moto: &Moto) -> execrole::controller::PassReport {
    one_pass(moto, Mode::Enforce, "").await.0
}

/// Every grant the controller owns on the role: its inline policy and its attached spill policies.
async fn owned_grants(iam: &aws_sdk_iam::Client) -> (BTreeSet<Grant>, Vec<String>) {
    let mut grants = BTreeSet::new();
    if let Some(raw) = get_policy(iam, "app-exec", "execrole").await {
        grants.extend(policy::grants(&PolicyDocument::parse(&raw).unwrap()));
    }
    let attached = iam
        .list_attached_role_policies()
        .role_name("app-exec")
        .send()
        .await
        .unwrap();
    let mut names = Vec::new();
    for p in attached.attached_policies() {
        let arn = p.policy_arn().unwrap();
        names.push(p.policy_name().unwrap().to_string());
        let meta = iam.get_policy().policy_arn(arn).send().await.unwrap();
        let meta = meta.policy().unwrap();
        assert!(
            meta.tags()
                .iter()
                .any(|t| t.key() == "managed-by" && t.value() == "execrole")
        );
        let version = iam
            .get_policy_version()
            .policy_arn(arn)
            .version_id(meta.default_version_id().unwrap())
            .send()
            .await
            .unwrap();
        let doc =
            PolicyDocument::parse(version.policy_version().unwrap().document().unwrap()).unwrap();
        assert!(
            policy::iam_size(&doc) <= MANAGED_LIMIT,
            "{} is over the managed limit",
            names.last().unwrap()
        );
        grants.extend(policy::grants(&doc));
    }
    names.sort();
    (grants, names)
}

#[tokio::test]
async fn a_role_over_the_inline_limit_spills_into_owned_managed_policies_and_shrinks_back() {
    let moto = Moto::start();
    let iam = moto.iam().await;
    let ecs = moto.ecs(REGION).await;
    let arns = seed_spilling_role(&iam, &ecs).await;

    let report = pass(&moto).await;
    assert!(report.is_success(), "{:?}", report.plan.errors);
    let desired = report.plan.roles[0].desired.clone().unwrap();
    assert!(
        policy::iam_size(&desired) > INLINE_LIMIT,
        "the test must pass the inline limit"
    );
    let (grants, names) = owned_grants(&iam).await;
    assert!(
        names.len() >= 2,
        "spilled into several managed policies: {names:?}; plan: too_large={:?} managed={:?} writes={} outcomes={:?}",
        report.plan.roles[0].too_large,
        report.plan.roles[0].managed.len(),
        report.writes,
        report.outcomes
    );
    assert!(
        names.iter().all(|n| n.starts_with("execrole-app-exec-")),
        "{names:?}"
    );
    assert_eq!(
        get_policy(&iam, "app-exec", "execrole").await,
        None,
        "nothing inline while spilled"
    );
    assert_eq!(
        grants,
        policy::grants(&desired),
        "the spill policies grant exactly the needs"
    );

    // Unchanged world: nothing written.
    let again = pass(&moto).await;
    assert_eq!(again.writes, 0, "{:?}", again.plan.roles[0].managed);

    // Shrink: deregister all but one family; the needs fit inline again and the spill policies go.
    for arn in &arns[1..] {
        ecs.deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .unwrap();
    }
    let shrunk = pass(&moto).await;
    assert!(shrunk.is_success(), "{:?}", shrunk.plan.errors);
    let (grants, names) = owned_grants(&iam).await;
    assert!(names.is_empty(), "spill policies detached: {names:?}");
    assert!(get_policy(&iam, "app-exec", "execrole").await.is_some());
    assert_eq!(
        grants,
        policy::grants(shrunk.plan.roles[0].desired.as_ref().unwrap())
    );
    let listed = iam
        .list_policies()
        .scope(aws_sdk_iam::types::PolicyScopeType::Local)
        .send()
        .await
        .unwrap();
    assert!(
        listed.policies().is_empty(),
        "spill policies deleted: {:?}",
        listed.policies()
    );
}
