//! Which customer managed policies a role owns as spill policies (`spill::owned_spill_policies`): what is adopted,
//! what is left alone, and that documents read in an earlier pass are never taken for a re-created policy's.

use super::*;
use crate::controller::spill::owned_spill_policies;

const ROLE: &str = "web-exec";

fn spill_arn(n: usize) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/execrole/execrole-{ROLE}-{n}")
}

fn owner_tags(role: Option<&str>) -> Vec<(String, String)> {
    let mut tags = vec![("managed-by".to_string(), "execrole".to_string())];
    tags.extend(role.map(|r| ("execrole:role".to_string(), r.to_string())));
    tags
}

/// Put a spill policy of `ROLE` into the fake account (replacing one of the same ARN, as a delete and a create
/// would).
fn put(
    iam: &FakeIam,
    n: usize,
    id: &str,
    document: &str,
    tags: Vec<(String, String)>,
    attached_to: &[&str],
) {
    iam.managed.lock().unwrap().insert(
        spill_arn(n),
        FakeManaged {
            id: id.to_string(),
            name: format!("execrole-{ROLE}-{n}"),
            path: "/execrole/".into(),
            document: document.into(),
            tags,
            attached_to: attached_to.iter().map(|r| r.to_string()).collect(),
        },
    );
}

fn listed(n: usize) -> crate::aws::ListedPolicy {
    crate::aws::ListedPolicy {
        name: format!("execrole-{ROLE}-{n}"),
        arn: spill_arn(n),
        path: "/execrole/".into(),
    }
}

#[tokio::test]
async fn a_policy_deleted_and_created_again_is_read_again_not_taken_from_the_cache() {
    let iam = FakeIam::default().role(ROLE, &[]);
    let cache = PolicyCache::default();
    let (old, new) = (policy_text(&needs_of("old")), policy_text(&needs_of("new")));
    put(&iam, 1, "ANPAOLD", &old, owner_tags(Some(ROLE)), &[ROLE]);
    let attached = [spill_arn(1)];
    let owned = owned_spill_policies(&iam, ROLE, OWNED, &attached, &[], &cache)
        .await
        .unwrap();
    // IAM (and the fake) answer with URL-encoded documents: compare what they say.
    let read = |doc: Option<&str>| doc.map(|d| crate::policy::PolicyDocument::parse(d).unwrap());
    assert_eq!(read(owned[0].document.as_deref()), read(Some(&old)));

    // Deleted (the needs shrank) and created again with another document: the same ARN and version id `v1`.
    put(&iam, 1, "ANPANEW", &new, owner_tags(Some(ROLE)), &[ROLE]);
    let owned = owned_spill_policies(&iam, ROLE, OWNED, &attached, &[], &cache)
        .await
        .unwrap();
    assert_eq!(
        read(owned[0].document.as_deref()),
        read(Some(&new)),
        "the re-created policy's v1 is not the deleted one's"
    );
}

#[tokio::test]
async fn an_unattached_candidate_is_adopted_only_when_tagged_for_this_role_and_attached_nowhere() {
    let doc = policy_text(&needs_of("web"));
    type Case<'a> = (Vec<(String, String)>, &'a [&'a str], bool);
    let cases: [Case; 4] = [
        (owner_tags(Some(ROLE)), &[], true),
        // No role tag: execrole always writes it, so this is not one it created for this role.
        (owner_tags(None), &[], false),
        (owner_tags(Some("api-exec")), &[], false),
        // Attached to another role: adopting it would rewrite that role's permissions.
        (owner_tags(Some(ROLE)), &["api-exec"], false),
    ];
    for (tags, attached_to, adopted) in cases {
        let iam = FakeIam::default().role(ROLE, &[]).role("api-exec", &[]);
        put(&iam, 1, "ANPA1", &doc, tags.clone(), attached_to);
        let owned = owned_spill_policies(
            &iam,
            ROLE,
            OWNED,
            &[],
            &[listed(1)],
            &PolicyCache::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            owned.len(),
            usize::from(adopted),
            "{tags:?} attached to {attached_to:?}: {owned:?}"
        );
    }
}

#[tokio::test]
async fn an_attached_spill_policy_without_a_role_tag_stays_recognised() {
    // Attached to its role under its name, with the owner tag: recognised as before, role tag or not.
    let iam = FakeIam::default().role(ROLE, &[]);
    put(
        &iam,
        1,
        "ANPA1",
        &policy_text(&needs_of("web")),
        owner_tags(None),
        &[ROLE],
    );
    let owned = owned_spill_policies(
        &iam,
        ROLE,
        OWNED,
        &[spill_arn(1)],
        &[listed(1)],
        &PolicyCache::default(),
    )
    .await
    .unwrap();
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert!(owned[0].is_attached);
}
