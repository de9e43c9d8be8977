//! Spill policies: the customer managed policies execrole owns when a role's needs pass its inline budget. This
//! file decides their writes from what was observed: the layout of a too-large policy over numbered pieces, the
//! adoption of an owned policy that an interrupted write left unattached (attached when a piece needs it, deleted
//! when none does), and the healing of a policy whose versions a half-finished write left behind (a version newer
//! than the default, five versions already).
//!
//! It never talks to IAM: the controller finds the policies (by IAM path, name and owner tag) and writes the
//! changes in the order given.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{MAX_ATTACHED_POLICIES, ObservedRole};
use crate::policy::{self, Grant, MANAGED_LIMIT, PolicyDocument};

/// The tag that marks a customer managed policy as owned by execrole (with the name prefix).
pub const OWNER_TAG: (&str, &str) = ("managed-by", "execrole");

/// The tag that names the role a spill policy was created for.
pub const ROLE_TAG: &str = "execrole:role";

/// IAM keeps at most this many versions of a managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;

/// The name of the `n`-th (1-based) spill policy of a role: `<inline name>-<role>-<n>`.
pub fn spill_policy_name(policy_name: &str, role: &str, n: usize) -> String {
    format!("{policy_name}-{role}-{n}")
}

/// Whether a managed policy name is one of the role's spill policies by name (the tag must also say so).
pub fn is_spill_policy_name(policy_name: &str, role: &str, name: &str) -> bool {
    spill_policy_role(policy_name, name) == Some(role)
}

/// The role a spill policy name belongs to (`execrole-web-exec-2` → `web-exec`), or `None` when the name is not
/// one of a spill policy. The number never holds a `-`, so the role is what lies between the prefix and the last
/// `-`.
pub fn spill_policy_role<'a>(policy_name: &str, name: &'a str) -> Option<&'a str> {
    let rest = name.strip_prefix(policy_name)?.strip_prefix('-')?;
    let (role, n) = rest.rsplit_once('-')?;
    let numbered = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    (numbered && !role.is_empty()).then_some(role)
}

/// A customer managed policy the controller owns for a role (a spill policy), as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedManagedPolicy {
    /// The policy name.
    pub name: String,
    /// The policy ARN.
    pub arn: String,
    /// The default version's document as IAM returned it.
    pub document: Option<String>,
    /// Whether it is attached to the role. An unattached one was left by an interrupted create (or attach): it
    /// grants nothing, and is adopted or deleted.
    pub is_attached: bool,
    /// Its versions, in any order.
    pub versions: Vec<OwnedVersion>,
}

/// One version of an owned spill policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedVersion {
    /// The version id (`v3`).
    pub id: String,
    /// Whether it is the default version.
    pub is_default: bool,
    /// Its document as IAM returned it; read only for versions newer than the default (which a half-finished
    /// write may have left holding the needed document).
    pub document: Option<String>,
}

impl OwnedManagedPolicy {
    /// The versions newer than the default, oldest first: what an interrupted or stray write left behind.
    fn newer_than_default(&self) -> Vec<&OwnedVersion> {
        let default = self
            .versions
            .iter()
            .find(|v| v.is_default)
            .map_or(0, |v| version_number(&v.id));
        let mut newer: Vec<&OwnedVersion> = self
            .versions
            .iter()
            .filter(|v| !v.is_default && version_number(&v.id) > default)
            .collect();
        newer.sort_by_key(|v| version_number(&v.id));
        newer
    }
}

/// The number of a version id (`v12` → 12); ids IAM did not make sort last.
pub fn version_number(id: &str) -> u64 {
    id.strip_prefix('v')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// The versions to delete before `CreatePolicyVersion` can add one: every version newer than the default (left by
/// a half-finished write), then the oldest non-default ones until there is room under IAM's five. `versions` are
/// (id, is default) as IAM lists them now.
pub fn versions_to_make_room(versions: &[(String, bool)]) -> Vec<String> {
    let default = versions
        .iter()
        .find(|(_, is_default)| *is_default)
        .map_or(0, |(id, _)| version_number(id));
    let mut others: Vec<&String> = versions
        .iter()
        .filter(|(_, is_default)| !is_default)
        .map(|(id, _)| id)
        .collect();
    others.sort_by_key(|id| version_number(id));
    let (mut delete, older): (Vec<&String>, Vec<&String>) = others
        .into_iter()
        .partition(|id| version_number(id) > default);
    let left = versions.len() - delete.len();
    let excess = (left + 1).saturating_sub(MAX_POLICY_VERSIONS);
    delete.extend(older.into_iter().take(excess));
    delete.into_iter().cloned().collect()
}

/// A write to a spill policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ManagedChange {
    /// Create the policy (under the spill path) and attach it.
    Create {
        /// Policy name.
        name: String,
        /// Minified document.
        document: String,
    },
    /// Add a new default version (deleting versions first when IAM's five are taken or a newer one is stray).
    Update {
        /// Policy name.
        name: String,
        /// Policy ARN.
        arn: String,
        /// Minified document.
        document: String,
    },
    /// A version newer than the default already holds the document: make it the default.
    SetDefault {
        /// Policy name.
        name: String,
        /// Policy ARN.
        arn: String,
        /// The version that becomes the default.
        version_id: String,
    },
    /// Delete versions newer than the default (left by a half-finished write): the default is right.
    PruneVersions {
        /// Policy name.
        name: String,
        /// Policy ARN.
        arn: String,
        /// The versions to delete.
        version_ids: Vec<String>,
    },
    /// Adopt an owned policy that is not attached: attach it to the role.
    Attach {
        /// Policy name.
        name: String,
        /// Policy ARN.
        arn: String,
    },
    /// Detach it (when attached), delete its non-default versions, and delete it.
    Delete {
        /// Policy name.
        name: String,
        /// Policy ARN.
        arn: String,
        /// Whether it is attached (an adopted orphan that is not needed is only deleted).
        is_attached: bool,
    },
}

impl ManagedChange {
    /// Whether this change deletes the policy (applied after the inline policy is written).
    pub fn is_delete(&self) -> bool {
        matches!(self, ManagedChange::Delete { .. })
    }
}

/// An owned spill policy with its default document parsed.
pub(super) type Owned<'a> = (&'a OwnedManagedPolicy, Option<PolicyDocument>);

/// Every owned spill policy goes: detached when attached, and deleted.
pub(super) fn delete_all(owned: &[Owned<'_>]) -> Vec<ManagedChange> {
    owned.iter().map(|(m, _)| delete(m)).collect()
}

fn delete(m: &OwnedManagedPolicy) -> ManagedChange {
    ManagedChange::Delete {
        name: m.name.clone(),
        arn: m.arn.clone(),
        is_attached: m.is_attached,
    }
}

/// Lay a policy too large for the inline budget out over spill policies: create, heal, update or adopt one per
/// piece, delete the ones left over. Creates and updates come first, so no permission is missing in between, and
/// among them a piece that receives statements goes before the piece that gives them up (`safe_order`).
pub(super) fn spill(
    doc: &PolicyDocument,
    role: &str,
    managed_policy_arn: Option<&str>,
    owned: &[Owned<'_>],
    observed: &ObservedRole,
    policy_name: &str,
) -> Result<Vec<ManagedChange>, String> {
    let pieces = policy::split(doc, MANAGED_LIMIT).ok_or_else(|| {
        format!("one statement alone is larger than IAM's {MANAGED_LIMIT}-character limit for a managed policy")
    })?;
    let foreign_attached = observed
        .attached_policies
        .iter()
        .filter(|arn| !owned.iter().any(|(m, _)| &m.arn == *arn))
        .count()
        + usize::from(
            managed_policy_arn.is_some_and(|a| !observed.attached_policies.iter().any(|p| p == a)),
        );
    if pieces.len() + foreign_attached > MAX_ATTACHED_POLICIES {
        return Err(format!(
            "the role needs {} characters of policy: {} managed policies of at most {MANAGED_LIMIT} characters, \
             but only {} more can be attached (IAM allows {MAX_ATTACHED_POLICIES} per role by default)",
            policy::iam_size(doc),
            pieces.len(),
            MAX_ATTACHED_POLICIES.saturating_sub(foreign_attached)
        ));
    }
    // The order of the writes matters only when an owned piece already grants something (see `safe_order`).
    let any_held = owned.iter().any(|(m, doc)| m.is_attached && doc.is_some());
    let mut groups = Vec::new();
    let mut names = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let name = spill_policy_name(policy_name, role, i + 1);
        if name.len() > 128 {
            return Err(format!(
                "the spill policy name `{name}` is longer than IAM's 128 characters"
            ));
        }
        let (before, changes) = match owned.iter().find(|(m, _)| m.name == name) {
            None => {
                let create = ManagedChange::Create {
                    name: name.clone(),
                    document: piece.to_json(),
                };
                (BTreeSet::new(), vec![create])
            }
            Some((m, current)) => {
                let held = current.as_ref().filter(|_| m.is_attached);
                let before = held.map(policy::grants).unwrap_or_default();
                (before, piece_changes(m, current.as_ref(), piece))
            }
        };
        groups.push(PieceWrites {
            before,
            after: if any_held {
                policy::grants(piece)
            } else {
                BTreeSet::new()
            },
            changes,
        });
        names.push(name);
    }
    let mut changes = safe_order(groups);
    changes.extend(
        owned
            .iter()
            .filter(|(m, _)| !names.contains(&m.name))
            .map(|(m, _)| delete(m)),
    );
    Ok(changes)
}

/// One piece's writes, with the grants its policy gives the role before and after them. When no owned piece
/// grants anything yet, every `before` is empty, nothing can be taken away, and `after` is left empty too.
struct PieceWrites {
    before: BTreeSet<Grant>,
    after: BTreeSet<Grant>,
    changes: Vec<ManagedChange>,
}

/// The pieces' writes in an order that never takes a needed grant away before another piece gives it: when a
/// need grows or goes early in the layout, statements move to the next or the previous piece, and the piece that
/// receives them is written first. Each step writes the first pending piece whose dropped needs another piece
/// holds at that moment (the first pending piece when none can, as a cycle allows no safe order).
fn safe_order(groups: Vec<PieceWrites>) -> Vec<ManagedChange> {
    let needed: BTreeSet<&Grant> = groups.iter().flat_map(|g| &g.after).collect();
    let mut held: Vec<&BTreeSet<Grant>> = groups.iter().map(|g| &g.before).collect();
    let mut pending: Vec<usize> = (0..groups.len()).collect();
    let mut changes = Vec::new();
    while !pending.is_empty() {
        let drops_nothing_needed = |i: usize| {
            groups[i]
                .before
                .difference(&groups[i].after)
                .filter(|g| needed.contains(g))
                .all(|g| (0..held.len()).any(|j| j != i && held[j].contains(g)))
        };
        let at = pending
            .iter()
            .position(|&i| drops_nothing_needed(i))
            .unwrap_or(0);
        let i = pending.remove(at);
        held[i] = &groups[i].after;
        changes.extend(groups[i].changes.iter().cloned());
    }
    changes
}

/// The writes that make an owned spill policy hold `piece` as its default, newest version, and attach it.
fn piece_changes(
    m: &OwnedManagedPolicy,
    current: Option<&PolicyDocument>,
    piece: &PolicyDocument,
) -> Vec<ManagedChange> {
    let holds = |raw: Option<&str>| {
        raw.and_then(|r| PolicyDocument::parse(r).ok())
            .is_some_and(|d| policy::is_equivalent(&d, piece))
    };
    let (name, arn) = (m.name.clone(), m.arn.clone());
    let newer = m.newer_than_default();
    let mut changes = Vec::new();
    if current.is_some_and(|c| policy::is_equivalent(c, piece)) {
        if !newer.is_empty() {
            let version_ids = newer.iter().map(|v| v.id.clone()).collect();
            changes.push(ManagedChange::PruneVersions {
                name: name.clone(),
                arn: arn.clone(),
                version_ids,
            });
        }
    } else if let Some(at) = newer.iter().rposition(|v| holds(v.document.as_deref())) {
        changes.push(ManagedChange::SetDefault {
            name: name.clone(),
            arn: arn.clone(),
            version_id: newer[at].id.clone(),
        });
        if at + 1 < newer.len() {
            let version_ids = newer[at + 1..].iter().map(|v| v.id.clone()).collect();
            changes.push(ManagedChange::PruneVersions {
                name: name.clone(),
                arn: arn.clone(),
                version_ids,
            });
        }
    } else {
        changes.push(ManagedChange::Update {
            name: name.clone(),
            arn: arn.clone(),
            document: piece.to_json(),
        });
    }
    if !m.is_attached {
        changes.push(ManagedChange::Attach { name, arn });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{Reason, Requirement};
    use crate::model::RoleKey;
    use crate::plan::{Change, DesiredRole, Removals, plan_role};
    use crate::policy::{INLINE_LIMIT, Permission};

    const ROLE: &str = "app-exec";

    /// A role whose needs (`n` repositories, two actions each) spill when `n` is large.
    fn desired(n: usize) -> DesiredRole {
        let requirements = (0..n)
            .flat_map(|i| {
                let repo = format!("arn:aws:ecr:us-east-1:123456789012:repository/team-{i:04}/a-service-with-a-long-name");
                ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"].map(|action| Requirement {
                    permission: Permission::new(action, &repo),
                    reasons: vec![Reason {
                        task_definition: "web:1".into(),
                        container: "web".into(),
                        field: "containerDefinitions[0].image".into(),
                    }],
                })
            })
            .collect();
        DesiredRole {
            key: RoleKey {
                account: "123456789012".into(),
                name: ROLE.into(),
            },
            task_definitions: vec!["web:1".into()],
            requirements,
            findings: vec![],
            managed_policy_arn: None,
            trust_policy: None,
        }
    }

    fn observed(owned: Vec<OwnedManagedPolicy>) -> ObservedRole {
        ObservedRole {
            exists: true,
            owned_policy: None,
            other_inline_policies: vec![],
            attached_policies: owned
                .iter()
                .filter(|m| m.is_attached)
                .map(|m| m.arn.clone())
                .collect(),
            trust_policy: None,
            foreign_inline_size: 0,
            owned_managed: owned,
            other_policies: vec![],
            boundary: None,
            has_baseline_tag: false,
        }
    }

    /// The pieces the role's needs are laid out in, as documents.
    fn pieces(d: &DesiredRole) -> Vec<String> {
        let doc = d.policy().expect("needs");
        assert!(
            policy::iam_size(&doc) > INLINE_LIMIT,
            "the test role spills"
        );
        policy::split(&doc, MANAGED_LIMIT)
            .expect("fits")
            .iter()
            .map(PolicyDocument::to_json)
            .collect()
    }

    fn version(id: &str, is_default: bool, document: Option<&str>) -> OwnedVersion {
        OwnedVersion {
            id: id.into(),
            is_default,
            document: document.map(str::to_string),
        }
    }

    /// Owned spill policy `n` of the role holding `default` as its default version `v1`, plus `newer` versions.
    fn owned(
        n: usize,
        default: &str,
        is_attached: bool,
        newer: &[(&str, &str)],
    ) -> OwnedManagedPolicy {
        let name = spill_policy_name("execrole", ROLE, n);
        let mut versions = vec![version("v1", true, Some(default))];
        versions.extend(newer.iter().map(|(id, doc)| version(id, false, Some(doc))));
        OwnedManagedPolicy {
            arn: format!("arn:aws:iam::123456789012:policy/execrole/{name}"),
            name,
            document: Some(default.to_string()),
            is_attached,
            versions,
        }
    }

    const STALE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:BatchGetImage","Resource":"*"}]}"#;

    fn plan(d: &DesiredRole, o: &ObservedRole) -> crate::plan::RolePlan {
        plan_role(d, o, "execrole", Removals::Allowed)
    }

    #[test]
    fn a_spill_name_says_which_role_it_belongs_to() {
        let cases = [
            ("execrole-web-exec-2", Some("web-exec")),
            ("execrole-web-1-12", Some("web-1")),
            ("execrole-a-1", Some("a")),
            ("execrole-web-exec-", None),
            ("execrole-web-exec-x", None),
            ("execrole--1", None),
            ("execrole-1", None),
            ("other-web-exec-1", None),
            ("execrolex-web-1", None),
        ];
        for (name, role) in cases {
            assert_eq!(spill_policy_role("execrole", name), role, "{name}");
        }
        assert!(is_spill_policy_name(
            "execrole",
            "web-1",
            "execrole-web-1-3"
        ));
        assert!(!is_spill_policy_name("execrole", "web", "execrole-web-1-3"));
    }

    #[test]
    fn room_for_a_version_is_made_from_stray_newer_versions_then_the_oldest() {
        let v = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(id, d)| (id.to_string(), *d)).collect()
        };
        type Case<'a> = (&'a [(&'a str, bool)], &'a [&'a str]);
        let cases: [Case; 5] = [
            (&[("v1", true)], &[]),
            (
                &[("v1", false), ("v2", false), ("v3", false), ("v4", true)],
                &[],
            ),
            (
                &[
                    ("v3", false),
                    ("v1", false),
                    ("v2", false),
                    ("v4", false),
                    ("v5", true),
                ],
                &["v1"],
            ),
            // A half-finished write left v5 newer than the default v4: it goes first, and then there is room.
            (
                &[
                    ("v1", false),
                    ("v2", false),
                    ("v3", false),
                    ("v4", true),
                    ("v5", false),
                ],
                &["v5"],
            ),
            (
                &[
                    ("v9", false),
                    ("v10", false),
                    ("v11", true),
                    ("v12", false),
                    ("v13", false),
                ],
                &["v12", "v13"],
            ),
        ];
        for (versions, want) in cases {
            assert_eq!(versions_to_make_room(&v(versions)), want, "{versions:?}");
        }
    }

    #[test]
    fn an_unattached_owned_spill_policy_that_a_piece_needs_is_adopted_not_created_again() {
        let d = desired(120);
        let pieces = pieces(&d);
        let o = observed(vec![owned(1, &pieces[0], false, &[])]);
        let p = plan(&d, &o);
        let first = &o.owned_managed[0];
        assert_eq!(
            p.managed[0],
            ManagedChange::Attach {
                name: first.name.clone(),
                arn: first.arn.clone()
            },
            "{:?}",
            p.managed
        );
        assert!(matches!(p.managed[1], ManagedChange::Create { .. }));
        assert_eq!(p.managed.len(), pieces.len());
        // It granted nothing while unattached: every need is still missing, nothing is removed.
        assert!(p.removed.is_empty());
        assert_eq!(p.added.len(), d.requirements.len());
    }

    #[test]
    fn an_adopted_policy_with_the_wrong_document_gets_the_right_version_before_it_is_attached() {
        let d = desired(120);
        let o = observed(vec![owned(1, STALE, false, &[])]);
        let p = plan(&d, &o);
        assert!(
            matches!(
                p.managed.as_slice(),
                [
                    ManagedChange::Update { .. },
                    ManagedChange::Attach { .. },
                    ..
                ]
            ),
            "{:?}",
            p.managed
        );
        assert!(
            p.removed.is_empty(),
            "an unattached policy grants nothing to remove"
        );
    }

    #[test]
    fn an_unattached_owned_spill_policy_that_nothing_needs_is_deleted_without_a_detach() {
        for needs in [0, 3] {
            let d = desired(needs);
            let o = observed(vec![owned(1, STALE, false, &[])]);
            let p = plan(&d, &o);
            assert_eq!(
                p.managed,
                vec![ManagedChange::Delete {
                    name: o.owned_managed[0].name.clone(),
                    arn: o.owned_managed[0].arn.clone(),
                    is_attached: false
                }],
                "{needs} needs"
            );
            assert!(p.removed.is_empty());
            assert!(!p.removes());
        }
        // Spilling into fewer pieces than there are owned policies: the extra unattached one goes too.
        let d = desired(120);
        let pieces = pieces(&d);
        let mut all: Vec<_> = pieces
            .iter()
            .enumerate()
            .map(|(i, doc)| owned(i + 1, doc, true, &[]))
            .collect();
        all.push(owned(pieces.len() + 1, STALE, false, &[]));
        let p = plan(&d, &observed(all));
        assert!(
            matches!(
                p.managed.as_slice(),
                [ManagedChange::Delete {
                    is_attached: false,
                    ..
                }]
            ),
            "{:?}",
            p.managed
        );
    }

    #[test]
    fn half_finished_versions_heal_with_the_fewest_writes() {
        let d = desired(120);
        let pieces = pieces(&d);
        let rest: Vec<_> = pieces[1..]
            .iter()
            .enumerate()
            .map(|(i, doc)| owned(i + 2, doc, true, &[]))
            .collect();
        let with_first = |first: OwnedManagedPolicy| {
            let mut all = vec![first];
            all.extend(rest.iter().cloned());
            plan(&d, &observed(all)).managed
        };
        let name = spill_policy_name("execrole", ROLE, 1);
        let arn = format!("arn:aws:iam::123456789012:policy/execrole/{name}");
        // The default is right, a stray newer version is left over: only the stray version goes.
        assert_eq!(
            with_first(owned(1, &pieces[0], true, &[("v2", STALE)])),
            vec![ManagedChange::PruneVersions {
                name: name.clone(),
                arn: arn.clone(),
                version_ids: vec!["v2".into()]
            }]
        );
        // A newer version holds the document but is not the default: it becomes the default, the ones after go.
        assert_eq!(
            with_first(owned(1, STALE, true, &[("v2", &pieces[0]), ("v3", STALE)])),
            vec![
                ManagedChange::SetDefault {
                    name: name.clone(),
                    arn: arn.clone(),
                    version_id: "v2".into()
                },
                ManagedChange::PruneVersions {
                    name: name.clone(),
                    arn: arn.clone(),
                    version_ids: vec!["v3".into()]
                }
            ]
        );
        // Nothing holds the document: a new version (the writer makes room).
        assert!(matches!(
            with_first(owned(1, STALE, true, &[("v2", STALE)])).as_slice(),
            [ManagedChange::Update { .. }]
        ));
        // Healthy: nothing to write.
        assert_eq!(with_first(owned(1, &pieces[0], true, &[])), vec![]);
    }

    #[test]
    fn an_inline_role_with_an_unattached_spill_policy_only_deletes_it() {
        let d = desired(3);
        let p = plan(&d, &observed(vec![owned(1, STALE, false, &[])]));
        assert!(matches!(p.change, Change::Create { .. }));
        assert!(p.managed.iter().all(|c| c.is_delete()));
    }

    /// Apply `changes` one by one to the owned policies' default documents and fail when, after any write, a
    /// needed grant the role held before is held by none of them.
    fn assert_no_needed_grant_goes_missing(
        d: &DesiredRole,
        owned: &[OwnedManagedPolicy],
        changes: &[ManagedChange],
    ) {
        let needed = policy::grants(&d.policy().expect("needs"));
        let mut held: std::collections::BTreeMap<String, PolicyDocument> = owned
            .iter()
            .filter(|m| m.is_attached)
            .map(|m| {
                let doc = PolicyDocument::parse(m.document.as_deref().unwrap()).unwrap();
                (m.arn.clone(), doc)
            })
            .collect();
        let holding = |held: &std::collections::BTreeMap<String, PolicyDocument>| {
            held.values()
                .flat_map(policy::grants)
                .filter(|g| needed.contains(g))
                .collect::<BTreeSet<_>>()
        };
        let before = holding(&held);
        for (step, change) in changes.iter().enumerate() {
            if let ManagedChange::Update { arn, document, .. } = change {
                held.insert(arn.clone(), PolicyDocument::parse(document).unwrap());
            }
            let now = holding(&held);
            let missing: Vec<_> = before.difference(&now).collect();
            assert!(
                missing.is_empty(),
                "after write {step} ({change:?}): {missing:?} missing"
            );
        }
    }

    #[test]
    fn statements_moving_between_pieces_are_granted_by_their_new_piece_before_the_old_one_drops_them()
     {
        let d = desired(120);
        let pieces: Vec<PolicyDocument> = pieces(&d)
            .iter()
            .map(|p| PolicyDocument::parse(p).unwrap())
            .collect();
        assert!(
            pieces.len() >= 2,
            "the test role spills into two pieces at least"
        );
        let with = |doc: &PolicyDocument, statements: Vec<crate::policy::Statement>| {
            let mut doc = doc.clone();
            doc.statements.extend(statements);
            doc.to_json()
        };
        let without_first = |doc: &PolicyDocument| {
            let mut doc = doc.clone();
            doc.statements.remove(0);
            doc.to_json()
        };
        let without_last = |doc: &PolicyDocument| {
            let mut doc = doc.clone();
            doc.statements.pop();
            doc.to_json()
        };
        let rest = |from: usize| -> Vec<OwnedManagedPolicy> {
            pieces[from..]
                .iter()
                .enumerate()
                .map(|(i, doc)| owned(from + i + 1, &doc.to_json(), true, &[]))
                .collect()
        };
        // A need grew early: the first statement of piece 2 is still in policy 1 and moves right.
        let first_of_2 = pieces[1].statements[0].clone();
        let mut right = vec![
            owned(1, &with(&pieces[0], vec![first_of_2]), true, &[]),
            owned(2, &without_first(&pieces[1]), true, &[]),
        ];
        right.extend(rest(2));
        // A need went away early: the last statement of piece 1 is still in policy 2 and moves left.
        let last_of_1 = pieces[0].statements.last().unwrap().clone();
        let mut left = vec![
            owned(1, &without_last(&pieces[0]), true, &[]),
            owned(2, &with(&pieces[1], vec![last_of_1]), true, &[]),
        ];
        left.extend(rest(2));
        for owned in [right, left] {
            let p = plan(&d, &observed(owned.clone()));
            assert_eq!(p.managed.len(), 2, "{:?}", p.managed);
            assert_no_needed_grant_goes_missing(&d, &owned, &p.managed);
        }
    }
}
