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
///
/// Linear in the size of `doc`: each statement and each resource is serialised once, and the size of a candidate
/// piece is added up from those (see [`Sizes`]) instead of serialising the growing piece again.
pub fn split(doc: &PolicyDocument, limit: usize) -> Option<Vec<PolicyDocument>> {
    let sizes = Sizes::new();
    let mut pieces: Vec<(Statement, usize)> = Vec::new();
    for statement in &doc.statements {
        let size = sizes.statement(statement);
        if sizes.document_of_one(size) <= limit {
            pieces.push((statement.clone(), size));
        } else {
            pieces.extend(split_by_resource(statement, &sizes, limit)?);
        }
    }
    let mut documents: Vec<PolicyDocument> = Vec::new();
    let mut current: Vec<Statement> = Vec::new();
    let mut current_size = 0;
    for (piece, size) in pieces {
        if !current.is_empty() && current_size + 1 + size <= limit {
            current_size += 1 + size;
        } else {
            if !current.is_empty() {
                documents.push(document(std::mem::take(&mut current)));
            }
            current_size = sizes.document_of_one(size);
        }
        current.push(piece);
    }
    if !current.is_empty() {
        documents.push(document(current));
    }
    Some(documents)
}

/// One statement too large alone, as statements of consecutive runs of its resources that each fit in a document
/// of `limit` characters, with their sizes. `None` when it has no resource list or one resource alone is too large.
fn split_by_resource(
    statement: &Statement,
    sizes: &Sizes,
    limit: usize,
) -> Option<Vec<(Statement, usize)>> {
    let resources = statement.resource.as_deref()?;
    let Some(first) = resources.first() else {
        // An empty resource list grants nothing: nothing to keep.
        return Some(Vec::new());
    };
    // The statement's size without its resource value: one resource is written as a plain string.
    let mut alone = statement.clone();
    alone.resource = Some(vec![first.clone()]);
    let bare = sizes.statement(&alone) - json_chars(first);
    let run_size = |width: usize, count: usize| match count {
        1 => bare + width,
        _ => bare + 2 + width + (count - 1),
    };
    let piece = |run: &[String], size: usize| {
        let mut piece = statement.clone();
        piece.resource = Some(run.to_vec());
        (piece, size)
    };
    let mut pieces = Vec::new();
    let (mut start, mut width) = (0, 0);
    for (i, resource) in resources.iter().enumerate() {
        let w = json_chars(resource);
        if sizes.document_of_one(run_size(width + w, i - start + 1)) <= limit {
            width += w;
            continue;
        }
        if i == start || sizes.document_of_one(run_size(w, 1)) > limit {
            return None;
        }
        pieces.push(piece(&resources[start..i], run_size(width, i - start)));
        (start, width) = (i, w);
    }
    pieces.push(piece(
        &resources[start..],
        run_size(width, resources.len() - start),
    ));
    Some(pieces)
}

/// Characters of a string written as a JSON string (quotes and escapes included).
fn json_chars(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() + 2, |j| j.chars().count())
}

/// Sizes of documents from the sizes of their statements: a document of statements `s1…sn` (n ≥ 1) is
/// `empty + Σ size(si) + (n − 1)` characters, `empty` being the document with no statement (`…"Statement":[]}`).
struct Sizes {
    empty: usize,
}

impl Sizes {
    fn new() -> Sizes {
        Sizes {
            empty: iam_size(&document(Vec::new())),
        }
    }

    /// The characters one statement adds to a document.
    fn statement(&self, statement: &Statement) -> usize {
        iam_size(&document(vec![statement.clone()])) - self.empty
    }

    /// The size of a document with one statement of `size` characters.
    fn document_of_one(&self, size: usize) -> usize {
        self.empty + size
    }
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

    /// The first implementation of [`split`], which serialised every candidate piece whole (quadratic): the
    /// linear one must give exactly its pieces.
    fn reference_split(doc: &PolicyDocument, limit: usize) -> Option<Vec<PolicyDocument>> {
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

    /// Resources of varied lengths, some with characters JSON escapes, and a condition on every third statement.
    fn varied(n: usize, seed: usize) -> PolicyDocument {
        let permissions: Vec<Permission> = (0..n)
            .map(|i| {
                let pad = "x".repeat((i * 7 + seed) % 90);
                let resource = match i % 4 {
                    0 => format!("arn:aws:s3:::bucket-{i}/{pad}"),
                    1 => format!("arn:aws:ssm:us-east-1:123456789012:parameter/p\\{pad}\"q{i}"),
                    2 => format!(
                        "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/\u{e9}{pad}{i}:*"
                    ),
                    _ => format!("arn:aws:ecr:us-east-1:123456789012:repository/r{i}{pad}"),
                };
                let action = [
                    "s3:GetObject",
                    "ssm:GetParameters",
                    "logs:PutLogEvents",
                    "ecr:BatchGetImage",
                ][i % 4];
                Permission::new(action, resource)
            })
            .collect();
        compile(&permissions)
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
        fn the_linear_split_gives_the_pieces_of_the_reference(n in 0usize..400, seed in 0usize..50, limit in 200usize..7000) {
            let doc = varied(n, seed);
            prop_assert_eq!(split(&doc, limit), reference_split(&doc, limit));
            let doc = compile(&many_repositories(n));
            prop_assert_eq!(split(&doc, limit), reference_split(&doc, limit));
        }

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
