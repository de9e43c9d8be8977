//! Evaluating identity-based policies against one request, following the documented IAM policy
//! evaluation logic for a single account
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>):
//! an explicit `Deny` in any policy wins; otherwise the request is allowed only if some `Allow`
//! statement matches and, when there is a permissions boundary, the boundary allows it too.
//! Boundaries: <https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html>.
//! Conditions follow the condition operator and multi-value pages
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html>).
//!
//! This file owns that decision for identity policies and a boundary, as a pure function. It does
//! not evaluate resource-based policies, SCPs/RCPs, session policies or cross-account access; it
//! ignores `Principal`/`NotPrincipal` (they have no meaning in identity policies); it does not
//! resolve policy variables (`${aws:username}`) or implement every operator (`Date…`, `IpAddress`,
//! `Binary…`): whatever depends on those is [`Decision::Unknown`], never [`Decision::Allowed`].
//! A statement without `Resource` or `NotResource` (invalid in an identity policy) never matches.

mod compiled;
mod condition;
mod index;
mod pattern;

use std::collections::BTreeMap;

use super::document::{PolicyDocument, Statement};
use compiled::CompiledStatement;

pub use compiled::Evaluator;
pub use pattern::patterns_overlap;

/// A request to evaluate: an action (`service:Name`), a resource ARN, and the request context
/// (condition keys, lower-cased key → values). A key absent from the context is "not present";
/// a key with no values counts as not present too (IAM's "null dataset").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The action, e.g. `ecr:BatchGetImage`; compared case-insensitively.
    pub action: String,
    /// The resource ARN; compared case-sensitively.
    pub resource: String,
    /// Condition keys (matched case-insensitively) and their values.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    /// A request with an empty context.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Request {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// Adds `values` to the context under `key` (lower-cased).
    pub fn with_context(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.context
            .entry(key.to_lowercase())
            .or_default()
            .extend(values.into_iter().map(Into::into));
        self
    }
}

/// The answer: Allowed, ImplicitDeny (nothing allows), ExplicitDeny, or Unknown (a condition we
/// cannot decide could change the answer; never reported as Allowed).
///
/// Unknown is only reported when what we cannot decide could make the request allowed or not:
/// a request nothing allows stays ImplicitDeny even if an undecidable `Deny` might also match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some `Allow` matches, no `Deny` can match, and the boundary (if any) allows too.
    Allowed,
    /// No `Allow` matches (in the identity policies or in the boundary).
    ImplicitDeny,
    /// A `Deny` matches (in the identity policies or in the boundary).
    ExplicitDeny,
    /// Whether the request is allowed depends on something this module cannot decide.
    Unknown,
}

impl Decision {
    /// Ranking used to combine the identity answer with the boundary answer: the more
    /// restrictive wins.
    fn restrictiveness(self) -> u8 {
        match self {
            Decision::Allowed => 0,
            Decision::Unknown => 1,
            Decision::ImplicitDeny => 2,
            Decision::ExplicitDeny => 3,
        }
    }
}

/// Evaluate identity-based policies (all of a role's inline and attached managed policies) and an
/// optional permissions boundary (an intersection: the request must also be allowed by the
/// boundary).
///
/// Policy variables are recognised only in documents whose `Version` is `2012-10-17`; under the
/// older (or absent) version IAM treats `${…}` as literal text, and so does this. To evaluate many
/// requests against the same policies, compile them once with [`Evaluator`].
pub fn evaluate(
    policies: &[PolicyDocument],
    boundary: Option<&PolicyDocument>,
    request: &Request,
) -> Decision {
    Evaluator::new(policies, boundary).evaluate(request)
}

/// Whether one statement matches the request: Some(true/false), or None when a condition is
/// undecidable.
///
/// `Effect` is not consulted. The statement is read as policy version `2012-10-17` (policy
/// variables recognised). Action, resource and condition must all match; an undecidable part
/// gives `None` only when the other parts do not already rule the statement out.
pub fn statement_matches(statement: &Statement, request: &Request) -> Option<bool> {
    CompiledStatement::new(statement, true).map_or(Some(false), |compiled| {
        compiled.matches(&request.action.to_lowercase(), request)
    })
}

// Three-valued (Kleene) logic over `Option<bool>`, `None` being "cannot decide".

/// True if any is true, false if all are false, otherwise undecided.
fn any(items: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut result = Some(false);
    for item in items {
        match item {
            Some(true) => return Some(true),
            None => result = None,
            Some(false) => {}
        }
    }
    result
}

/// False if any is false, true if all are true, otherwise undecided.
fn all(items: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    not(any(items.into_iter().map(not)))
}

fn not(item: Option<bool>) -> Option<bool> {
    item.map(|b| !b)
}

#[cfg(test)]
mod tests;
