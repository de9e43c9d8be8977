//! The deterministic policy compiler: [`compile`] turns wanted
//! [`Permission`]s into the smallest policy this module knows how to build,
//! and [`iam_size`] measures a document the way IAM's quotas do.
//!
//! It deliberately does not split policies that exceed IAM's size quota, nor
//! introduce wildcards to shrink them: granting exactly the input, nothing
//! more, matters more than size.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::document::{Conditions, Effect, POLICY_VERSION, Permission, PolicyDocument, Statement};
use super::normalize::{canonical_conditions, lowercase};

/// Compile permissions into the smallest deterministic policy.
///
/// First actions are grouped per (resource, conditions), then resources whose
/// (action set, conditions) are identical are merged into one statement.
/// Statements are sorted by actions, then resources, then conditions; actions
/// and resources are sorted and deduplicated. Actions (and condition keys) keep
/// the case the caller gave; for case-insensitive duplicates the spelling that
/// sorts first wins, everywhere in the document. No `Sid`; `Version` is
/// `2012-10-17`. The same input in any order and with duplicates gives a
/// byte-identical [`PolicyDocument::to_json`]. An empty input gives a document
/// with no statements, which IAM itself would reject.
///
/// `permissions` is anything that lists them twice over (a slice, or an iterator that can be cloned), so callers
/// holding permissions inside other values need not copy them.
pub fn compile<'a, I>(permissions: I) -> PolicyDocument
where
    I: IntoIterator<Item = &'a Permission> + Clone,
{
    let permissions: Vec<&Permission> = permissions.into_iter().collect();
    let lowered: Vec<Cow<'_, str>> = permissions.iter().map(|p| lowercase(&p.action)).collect();
    let mut action_spelling: BTreeMap<&str, &str> = BTreeMap::new();
    let mut key_spelling = BTreeMap::new();
    for (permission, lower) in permissions.iter().zip(&lowered) {
        let slot = action_spelling.entry(lower).or_insert(&permission.action);
        *slot = (*slot).min(permission.action.as_str());
        for keys in permission.conditions.values() {
            for key in keys.keys() {
                remember_spelling(&mut key_spelling, key);
            }
        }
    }

    // Step 1: which actions each (conditions, resource) needs: sorted, each is a run of its actions.
    let mut needs: Vec<(Conditions, &str, &str)> = permissions
        .iter()
        .zip(&lowered)
        .map(|(p, lower)| {
            (
                canonical_conditions(&p.conditions),
                p.resource.as_str(),
                &**lower,
            )
        })
        .collect();
    needs.sort_unstable();
    needs.dedup();
    let same_target =
        |a: &(Conditions, &str, &str), b: &(Conditions, &str, &str)| a.0 == b.0 && a.1 == b.1;
    let mut targets: Vec<(Vec<&str>, &Conditions, &str)> = needs
        .chunk_by(same_target)
        .map(|run| (run.iter().map(|n| n.2).collect(), &run[0].0, run[0].1))
        .collect();

    // Step 2: resources sharing the exact same (actions, conditions) share a statement: sorted, each is a run of
    // its resources.
    targets.sort_unstable();
    let mut groups: Vec<(Vec<String>, Vec<String>, Conditions)> = targets
        .chunk_by(|a, b| a.0 == b.0 && a.1 == b.1)
        .map(|run| {
            let (actions, conditions, _) = &run[0];
            let mut actions: Vec<String> = actions
                .iter()
                .map(|action| action_spelling[action].to_owned())
                .collect();
            actions.sort();
            let resources = run.iter().map(|t| t.2.to_owned()).collect();
            (actions, resources, respell_keys(conditions, &key_spelling))
        })
        .collect();
    groups.sort();
    document(groups)
}

/// The statements of the groups (actions, resources, conditions), in order, as a policy document.
fn document(groups: Vec<(Vec<String>, Vec<String>, Conditions)>) -> PolicyDocument {
    let statements = groups
        .into_iter()
        .map(|(actions, resources, condition)| Statement {
            action: Some(actions),
            resource: Some(resources),
            condition,
            ..Statement::new(Effect::Allow)
        })
        .collect();
    PolicyDocument {
        version: Some(POLICY_VERSION.to_owned()),
        statements,
    }
}

/// Size as IAM counts it against its quotas: characters of the minified JSON.
///
/// IAM does not count whitespace outside strings, so this is the character
/// count of [`PolicyDocument::to_json`].
pub fn iam_size(doc: &PolicyDocument) -> usize {
    super::document::minified_chars(doc)
}

/// Records `word` as the spelling of its lowercase form if it sorts first.
fn remember_spelling(spellings: &mut BTreeMap<String, String>, word: &str) {
    let slot = spellings
        .entry(word.to_lowercase())
        .or_insert_with(|| word.to_owned());
    if word < slot.as_str() {
        *slot = word.to_owned();
    }
}

fn spelled(spellings: &BTreeMap<String, String>, lower: &str) -> String {
    spellings
        .get(lower)
        .cloned()
        .unwrap_or_else(|| lower.to_owned())
}

fn respell_keys(conditions: &Conditions, spellings: &BTreeMap<String, String>) -> Conditions {
    conditions
        .iter()
        .map(|(operator, keys)| {
            let keys = keys
                .iter()
                .map(|(key, values)| (spelled(spellings, key), values.clone()))
                .collect();
            (operator.clone(), keys)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::normalize::{Grant, diff, grants};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const REPO_A: &str = "arn:aws:ecr:us-east-1:123456789012:repository/a";
    const REPO_B: &str = "arn:aws:ecr:us-east-1:123456789012:repository/b";
    const LOGS: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*";
    const ECR_LAYERS: [&str; 3] = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ];

    fn execution_role_permissions() -> Vec<Permission> {
        let mut permissions = Vec::new();
        for repo in [REPO_A, REPO_B] {
            for action in ECR_LAYERS {
                permissions.push(Permission::new(action, repo));
            }
        }
        permissions.push(Permission::new("ecr:GetAuthorizationToken", "*"));
        permissions.push(Permission::new("logs:CreateLogStream", LOGS));
        permissions.push(Permission::new("logs:PutLogEvents", LOGS));
        permissions
    }

    #[test]
    fn compiler_merges_actions_then_resources_into_sorted_statements() {
        let doc = compile(&execution_role_permissions());
        assert_eq!(
            doc.to_json(),
            concat!(
                r#"{"Version":"2012-10-17","Statement":["#,
                r#"{"Effect":"Allow","Action":["ecr:BatchCheckLayerAvailability","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"#,
                r#""Resource":["arn:aws:ecr:us-east-1:123456789012:repository/a","arn:aws:ecr:us-east-1:123456789012:repository/b"]},"#,
                r#"{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"},"#,
                r#"{"Effect":"Allow","Action":["logs:CreateLogStream","logs:PutLogEvents"],"#,
                r#""Resource":"arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*"}]}"#,
            )
        );
        assert_eq!(iam_size(&doc), doc.to_json().len());
    }

    #[test]
    fn compiler_output_is_identical_for_shuffled_and_duplicated_input() {
        let base = execution_role_permissions();
        let expected = compile(&base).to_json();
        let mut reversed = base.clone();
        reversed.reverse();
        let mut doubled = base.clone();
        doubled.extend(base.iter().rev().cloned());
        let mut rotated = base.clone();
        rotated.rotate_left(4);
        let mut recased = base.clone();
        recased.push(Permission::new("ECR:batchgetimage", REPO_A));
        recased.push(Permission::new("ecr:batchgetimage", REPO_B));
        for (name, input) in [
            ("reversed", reversed),
            ("doubled", doubled),
            ("rotated", rotated),
        ] {
            assert_eq!(compile(&input).to_json(), expected, "{name}");
        }
        // A case-insensitive duplicate collapses to the spelling that sorts first.
        let recased = compile(&recased).to_json();
        assert!(recased.contains("ECR:batchgetimage"), "{recased}");
        assert!(!recased.contains("ecr:BatchGetImage"), "{recased}");
        assert!(
            diff(
                &compile(&base),
                &compile(
                    &[
                        base.clone(),
                        vec![Permission::new("ECR:batchgetimage", REPO_A)]
                    ]
                    .concat()
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn conditions_keep_statements_apart() {
        let vpce = |p: Permission| p.with_condition("StringEquals", "aws:SourceVpce", ["vpce-1"]);
        let cases = [
            (
                "same action and resource, one conditional",
                vec![
                    Permission::new("s3:GetObject", "arn:b"),
                    vpce(Permission::new("s3:GetObject", "arn:b")),
                ],
                2,
            ),
            (
                "same conditions merge resources",
                vec![
                    vpce(Permission::new("s3:GetObject", "arn:a")),
                    vpce(Permission::new("s3:GetObject", "arn:b")),
                ],
                1,
            ),
            (
                "condition key case does not split",
                vec![
                    vpce(Permission::new("s3:GetObject", "arn:a")),
                    Permission::new("s3:GetObject", "arn:b").with_condition(
                        "StringEquals",
                        "AWS:SOURCEVPCE",
                        ["vpce-1"],
                    ),
                ],
                1,
            ),
            (
                "different action sets stay separate",
                vec![
                    Permission::new("logs:PutLogEvents", "arn:g1"),
                    Permission::new("logs:CreateLogStream", "arn:g1"),
                    Permission::new("logs:PutLogEvents", "arn:g2"),
                ],
                2,
            ),
        ];
        for (name, permissions, statements) in cases {
            let doc = compile(&permissions);
            assert_eq!(
                doc.statements.len(),
                statements,
                "{name}: {}",
                doc.to_json()
            );
            let expected: BTreeSet<Grant> = permissions.iter().map(Grant::from).collect();
            assert_eq!(grants(&doc), expected, "{name}");
        }
    }

    #[test]
    fn empty_input_compiles_to_a_document_without_statements() {
        assert_eq!(
            compile(&[]).to_json(),
            r#"{"Version":"2012-10-17","Statement":[]}"#
        );
    }

    #[test]
    fn iam_size_counts_characters_not_bytes() {
        let doc = compile(&[Permission::new("s3:GetObject", "arn:aws:s3:::bücket/*")]);
        assert_eq!(iam_size(&doc), doc.to_json().len() - 1);
    }

    fn permission() -> impl Strategy<Value = Permission> {
        (
            "(ecr|logs|s3|ECR):(BatchGetImage|batchgetimage|PutLogEvents|GetObject|\\*)",
            "arn:(a|b|c|B)|\\*",
            prop::option::of((
                "StringEquals|StringLike",
                "aws:(SourceVpce|sourcevpce|PrincipalTag/x)",
                prop::collection::vec("v[1-3]", 0..3),
            )),
        )
            .prop_map(|(action, resource, condition)| {
                let permission = Permission::new(action, resource);
                match condition {
                    Some((operator, key, values)) => {
                        permission.with_condition(&operator, &key, values)
                    }
                    None => permission,
                }
            })
    }

    fn renormalized(doc: &PolicyDocument) -> Vec<Permission> {
        grants(doc)
            .iter()
            .filter_map(Grant::to_permission)
            .collect()
    }

    /// The compiler as it was written first, with ordered maps and sets: the reference for the faster one.
    fn reference_compile(permissions: &[Permission]) -> PolicyDocument {
        let mut action_spelling = BTreeMap::new();
        let mut key_spelling = BTreeMap::new();
        for permission in permissions {
            remember_spelling(&mut action_spelling, &permission.action);
            for key in permission.conditions.values().flat_map(|keys| keys.keys()) {
                remember_spelling(&mut key_spelling, key);
            }
        }
        let mut actions_per_target: BTreeMap<(Conditions, &str), BTreeSet<String>> =
            BTreeMap::new();
        for permission in permissions {
            actions_per_target
                .entry((
                    canonical_conditions(&permission.conditions),
                    permission.resource.as_str(),
                ))
                .or_default()
                .insert(permission.action.to_lowercase());
        }
        let mut resources_per_grant: BTreeMap<(BTreeSet<String>, Conditions), BTreeSet<&str>> =
            BTreeMap::new();
        for ((conditions, resource), actions) in actions_per_target {
            resources_per_grant
                .entry((actions, conditions))
                .or_default()
                .insert(resource);
        }
        let mut groups: Vec<(Vec<String>, Vec<String>, Conditions)> = resources_per_grant
            .into_iter()
            .map(|((actions, conditions), resources)| {
                let mut actions: Vec<String> = actions
                    .iter()
                    .map(|a| spelled(&action_spelling, a))
                    .collect();
                actions.sort();
                let resources = resources.into_iter().map(str::to_owned).collect();
                (actions, resources, respell_keys(&conditions, &key_spelling))
            })
            .collect();
        groups.sort();
        document(groups)
    }

    proptest! {
        #[test]
        fn compile_writes_what_the_reference_compiler_writes(
            permissions in prop::collection::vec(permission(), 0..16),
        ) {
            prop_assert_eq!(compile(&permissions).to_json(), reference_compile(&permissions).to_json());
        }

        #[test]
        fn diff_lists_the_grants_one_side_has_and_the_other_lacks(
            a in prop::collection::vec(permission(), 0..12),
            b in prop::collection::vec(permission(), 0..12),
        ) {
            // One statement per permission, duplicates and differently cased actions kept.
            let written = |permissions: Vec<Permission>| PolicyDocument {
                version: None,
                statements: permissions
                    .into_iter()
                    .map(|p| Statement {
                        action: Some(vec![p.action]),
                        resource: Some(vec![p.resource]),
                        condition: p.conditions,
                        ..Statement::new(Effect::Allow)
                    })
                    .collect(),
            };
            let (a, b) = (written(a), written(b));
            let (grants_a, grants_b) = (grants(&a), grants(&b));
            let d = diff(&a, &b);
            prop_assert_eq!(d.added, grants_a.difference(&grants_b).cloned().collect::<Vec<_>>());
            prop_assert_eq!(d.removed, grants_b.difference(&grants_a).cloned().collect::<Vec<_>>());
        }

        #[test]
        fn compile_grants_exactly_the_input(permissions in prop::collection::vec(permission(), 0..12)) {
            let expected: BTreeSet<Grant> = permissions.iter().map(Grant::from).collect();
            prop_assert_eq!(grants(&compile(&permissions)), expected);
        }

        #[test]
        fn compile_is_deterministic_under_shuffle_and_duplication(
            permissions in prop::collection::vec(permission(), 0..12),
            rotate in 0usize..12,
        ) {
            let mut shuffled = permissions.clone();
            shuffled.reverse();
            if !shuffled.is_empty() {
                let by = rotate % shuffled.len();
                shuffled.rotate_left(by);
            }
            shuffled.extend(permissions.iter().cloned());
            prop_assert_eq!(compile(&shuffled).to_json(), compile(&permissions).to_json());
        }

        #[test]
        fn compiling_normalised_output_is_idempotent(permissions in prop::collection::vec(permission(), 0..12)) {
            let once = compile(&renormalized(&compile(&permissions)));
            let twice = compile(&renormalized(&once));
            prop_assert_eq!(once.to_json(), twice.to_json());
            prop_assert!(diff(&once, &compile(&permissions)).is_empty());
            prop_assert!(diff(&once, &once).is_empty());
        }

        #[test]
        fn compiling_lowercase_input_round_trips_through_grants(
            permissions in prop::collection::vec(permission(), 0..12),
        ) {
            let lower: Vec<Permission> = permissions.iter().filter_map(|p| Grant::from(p).to_permission()).collect();
            let doc = compile(&lower);
            prop_assert_eq!(compile(&renormalized(&doc)).to_json(), doc.to_json());
        }
    }
}
