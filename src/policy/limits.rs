//! IAM's size limits, and splitting a compiled policy into documents that each fit one. IAM counts policy size
//! in characters without whitespace (so the minified JSON of [`PolicyDocument::to_json`] is what counts): 10,240
//! for all inline policies of a role together, 6,144 for one managed policy. moto enforces neither, so this is the
//! only thing standing between a large role and a `LimitExceeded` from real IAM.

use super::{PolicyDocument, Statement, iam_size};

/// The limit on all inline policies of one role, together.
pub const INLINE_LIMIT: usize = 10_240;
/// The limit on one managed policy.
pub const MANAGED_LIMIT: usize = 6_144;

fn document(statements: Vec<Statement>) -> PolicyDocument {
    PolicyDocument {
        version: Some(super::POLICY_VERSION.to_string()),
        statements,
    }
}

/// Split `doc` into documents of at most `limit` characters each, in order: statements stay whole where they
/// fit, and a statement too large alone is split by its resources. `None` when one action set on one resource
/// is already over the limit. An empty document splits into nothing.
pub fn split(doc: &PolicyDocument, limit: usize) -> Option<Vec<PolicyDocument>> {
    let mut pieces: Vec<Statement> = Vec::new();
    for statement in &doc.statements {
        if iam_size(&document(vec![statement.clone()])) <= limit {
            pieces.push(statement.clone());
            continue;
        }
        let resources = statement.resource.clone()?;
        let mut current: Vec<String> = Vec::new();
        for resource in resources {
            let mut candidate = current.clone();
            candidate.push(resource.clone());
            let mut trial = statement.clone();
            trial.resource = Some(candidate.clone());
            if iam_size(&document(vec![trial])) <= limit {
                current = candidate;
                continue;
            }
            if current.is_empty() {
                return None;
            }
            let mut piece = statement.clone();
            piece.resource = Some(std::mem::take(&mut current));
            pieces.push(piece);
            current.push(resource);
            let mut alone = statement.clone();
            alone.resource = Some(current.clone());
            if iam_size(&document(vec![alone])) > limit {
                return None;
            }
        }
        if !current.is_empty() {
            let mut piece = statement.clone();
            piece.resource = Some(current);
            pieces.push(piece);
        }
    }
    let mut documents: Vec<PolicyDocument> = Vec::new();
    let mut current: Vec<Statement> = Vec::new();
    for piece in pieces {
        let mut candidate = current.clone();
        candidate.push(piece.clone());
        if iam_size(&document(candidate.clone())) <= limit {
            current = candidate;
        } else {
            documents.push(document(std::mem::take(&mut current)));
            current.push(piece);
        }
    }
    if !current.is_empty() {
        documents.push(document(current));
    }
    Some(documents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Permission, compile, grants};
    use proptest::prelude::*;

    fn many_repositories(n: usize) -> Vec<Permission> {
        (0..n)
            .flat_map(|i| {
                let repo = format!("arn:aws:ecr:us-east-1:123456789012:repository/team-{i:04}/service-with-a-long-name");
                [
                    Permission::new("ecr:BatchGetImage", repo.clone()),
                    Permission::new("ecr:GetDownloadUrlForLayer", repo.clone()),
                    Permission::new("logs:PutLogEvents", format!("arn:aws:logs:us-east-1:123456789012:log-group:/ecs/team-{i:04}:*")),
                ]
            })
            .collect()
    }

    #[test]
    fn a_small_policy_stays_in_one_piece() {
        let doc = compile(&many_repositories(3));
        let pieces = split(&doc, MANAGED_LIMIT).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].to_json(), doc.to_json());
    }

    #[test]
    fn a_large_policy_is_split_into_pieces_within_the_limit_that_grant_exactly_the_same() {
        let doc = compile(&many_repositories(200));
        assert!(
            iam_size(&doc) > INLINE_LIMIT,
            "the test needs a policy over the inline limit"
        );
        let pieces = split(&doc, MANAGED_LIMIT).unwrap();
        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(iam_size(piece) <= MANAGED_LIMIT, "{}", iam_size(piece));
        }
        let mut union = std::collections::BTreeSet::new();
        for piece in &pieces {
            union.extend(grants(piece));
        }
        assert_eq!(union, grants(&doc));
    }

    #[test]
    fn one_resource_over_the_limit_cannot_be_split() {
        let huge = format!("arn:aws:s3:::bucket/{}", "k".repeat(MANAGED_LIMIT));
        let doc = compile(&[Permission::new("s3:GetObject", huge)]);
        assert_eq!(split(&doc, MANAGED_LIMIT), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_piece_respects_the_limit_and_the_pieces_grant_exactly_the_input(n in 1usize..300, limit in 600usize..7000) {
            let doc = compile(&many_repositories(n));
            if let Some(pieces) = split(&doc, limit) {
                let mut union = std::collections::BTreeSet::new();
                for piece in &pieces {
                    prop_assert!(iam_size(piece) <= limit);
                    union.extend(grants(piece));
                }
                prop_assert_eq!(union, grants(&doc));
            }
        }
    }
}
