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
    assert_eq!(owned[0].document.as_deref(), Some(old.as_str()));

    // Deleted (the needs shrank) and created again with another document: the same ARN and version id `v1`.
    put(&iam, 1, "ANPANEW", &new, owner_tags(Some(ROLE)), &[ROLE]);
    let owned = owned_spill_policies(&iam, ROLE, OWNED, &attached, &[], &cache)
        .await
        .unwrap();
    assert_eq!(
        owned[0].document.as_deref(),
        Some(new.as_str()),
        "the re-created policy's v1 is not the deleted one's"
    );
}
