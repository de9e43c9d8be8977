//! Policies compiled once for many requests: every action and resource pattern parsed once, the statements
//! indexed by the literal prefixes of their actions and each statement's resources by theirs, so a request is
//! tested only against the statements whose action can match it and, in those, only against the resources that
//! can match it. Planning a role evaluates each of its needs against the same policies; this keeps that linear in
//! the needs instead of needs × resources.

use super::index::PrefixIndex;
use super::pattern::Pattern;
use super::{Decision, Request, all, any, condition, not};
use crate::policy::document::{Conditions, Effect, POLICY_VERSION, PolicyDocument, Statement};

/// Identity policies and an optional permissions boundary, compiled to answer [`evaluate`](super::evaluate) for
/// many requests.
#[derive(Debug, Clone)]
pub struct Evaluator<'a> {
    identity: Compiled<'a>,
    boundary: Option<Compiled<'a>>,
}

impl<'a> Evaluator<'a> {
    /// Compile a role's identity policies and its boundary.
    pub fn new(
        policies: impl IntoIterator<Item = &'a PolicyDocument>,
        boundary: Option<&'a PolicyDocument>,
    ) -> Self {
        Evaluator {
            identity: Compiled::new(policies),
            boundary: boundary.map(|b| Compiled::new([b])),
        }
    }

    /// The decision for one request, the same as [`evaluate`](super::evaluate) on the same policies.
    pub fn evaluate(&self, request: &Request) -> Decision {
        self.decision(request, false)
    }

    /// The decision for a request that an identity policy not compiled here certainly allows (it has an `Allow`
    /// statement that matches the request whatever the context): the same as [`evaluate`](Self::evaluate) with
    /// that policy among the identity policies. Only the `Deny` statements and the boundary are tested.
    pub fn evaluate_allowed(&self, request: &Request) -> Decision {
        self.decision(request, true)
    }

    /// The identity decision (`allowed`: an `Allow` elsewhere is known to match) combined with the boundary's.
    fn decision(&self, request: &Request, allowed: bool) -> Decision {
        let action = request.action.to_lowercase();
        let identity = self.identity.decide(&action, request, allowed);
        match &self.boundary {
            None => identity,
            Some(boundary) => {
                let boundary = boundary.decide(&action, request, false);
                if boundary.restrictiveness() > identity.restrictiveness() {
                    boundary
                } else {
                    identity
                }
            }
        }
    }
}

/// The statements of some policies, indexed by action.
#[derive(Debug, Clone)]
struct Compiled<'a> {
    statements: Vec<CompiledStatement<'a>>,
    /// Every `Action` pattern (lower-cased), with the statement it belongs to.
    actions: PrefixIndex<usize>,
    /// The statements with `NotAction` (and no `Action`).
    not_actions: Vec<usize>,
}

impl<'a> Compiled<'a> {
    fn new(policies: impl IntoIterator<Item = &'a PolicyDocument>) -> Self {
        let mut statements = Vec::new();
        let (mut actions, mut not_actions) = (Vec::new(), Vec::new());
        for policy in policies {
            let variables = policy.version.as_deref() == Some(POLICY_VERSION);
            for statement in &policy.statements {
                let Some(compiled) = CompiledStatement::new(statement, variables) else {
                    continue;
                };
                let id = statements.len();
                match &statement.action {
                    Some(listed) => actions.extend(listed.iter().map(|p| (action_pattern(p), id))),
                    None => not_actions.push(id),
                }
                statements.push(compiled);
            }
        }
        Compiled {
            statements,
            actions: PrefixIndex::new(actions),
            not_actions,
        }
    }

    /// IAM's combination over the statements that can match: a `Deny` wins, then an `Allow`; undecidable parts
    /// give `Unknown` only where they could change the answer. `action` is the request's, lower-cased; `allowed`:
    /// an `Allow` not compiled here is known to match.
    fn decide(&self, action: &str, request: &Request, allowed: bool) -> Decision {
        let (mut allow, mut deny) = (Some(allowed), Some(false));
        // The statements whose `Action` matches (certainly: actions have no variables), then those with
        // `NotAction`. A statement listed under several matching actions comes again: `any` is idempotent.
        let listed = self
            .actions
            .candidates(action)
            .filter(|(pattern, _)| pattern.matches(action) == Some(true))
            .map(|(_, id)| (*id, Some(true)));
        let all_but = self
            .not_actions
            .iter()
            .map(|&id| (id, self.statements[id].actions.test(action)));
        for (id, action_matches) in listed.chain(all_but) {
            let statement = &self.statements[id];
            let slot = match statement.effect {
                Effect::Allow => &mut allow,
                Effect::Deny => &mut deny,
            };
            // A slot that is already true stays true whatever this statement says.
            if *slot == Some(true) {
                continue;
            }
            *slot = any([*slot, statement.matches_given(action_matches, request)]);
            if deny == Some(true) {
                // An explicit Deny wins whatever else matches.
                break;
            }
        }
        match (deny, allow) {
            (Some(true), _) => Decision::ExplicitDeny,
            (_, Some(false)) => Decision::ImplicitDeny,
            (Some(false), Some(true)) => Decision::Allowed,
            _ => Decision::Unknown,
        }
    }
}

/// The patterns of `Action`/`NotAction` or `Resource`/`NotResource`.
#[derive(Debug, Clone)]
struct PatternTest {
    patterns: PrefixIndex<()>,
    /// `NotAction`/`NotResource`: the value must match none of them.
    negated: bool,
}

impl PatternTest {
    fn new(patterns: &[String], negated: bool, compile: impl Fn(&str) -> Pattern) -> Self {
        PatternTest {
            patterns: PrefixIndex::new(patterns.iter().map(|p| (compile(p), ()))),
            negated,
        }
    }

    /// Whether the value passes (three-valued), testing only the patterns whose literal prefix it starts with:
    /// the others are certainly false.
    fn test(&self, value: &str) -> Option<bool> {
        let matched = any(self
            .patterns
            .candidates(value)
            .map(|(pattern, ())| pattern.matches(value)));
        if self.negated { not(matched) } else { matched }
    }
}

/// One statement, its patterns parsed.
#[derive(Debug, Clone)]
pub(super) struct CompiledStatement<'a> {
    effect: Effect,
    actions: PatternTest,
    resources: PatternTest,
    condition: &'a Conditions,
    /// Whether `${…}` is a policy variable (policy version `2012-10-17`).
    variables: bool,
}

impl<'a> CompiledStatement<'a> {
    /// `None` for a statement that can match nothing: no `Action` nor `NotAction`, or no `Resource` nor
    /// `NotResource` (invalid in an identity policy). `Effect` is kept, not consulted here.
    pub(super) fn new(statement: &'a Statement, variables: bool) -> Option<Self> {
        let actions = match (&statement.action, &statement.not_action) {
            (Some(actions), _) => PatternTest::new(actions, false, action_pattern),
            (None, Some(actions)) => PatternTest::new(actions, true, action_pattern),
            (None, None) => return None,
        };
        let resource_pattern = |p: &str| Pattern::new(p, true, variables);
        let resources = match (&statement.resource, &statement.not_resource) {
            (Some(resources), _) => PatternTest::new(resources, false, resource_pattern),
            (None, Some(resources)) => PatternTest::new(resources, true, resource_pattern),
            (None, None) => return None,
        };
        Some(CompiledStatement {
            effect: statement.effect,
            actions,
            resources,
            condition: &statement.condition,
            variables,
        })
    }

    /// Whether the statement matches: Some(true/false), or None when a condition or a policy variable is
    /// undecidable. `action` is the request's, lower-cased.
    pub(super) fn matches(&self, action: &str, request: &Request) -> Option<bool> {
        self.matches_given(self.actions.test(action), request)
    }

    /// [`matches`](Self::matches) when the action's answer is known. Action, resource and condition must all
    /// match; an undecidable part gives `None` only when the other parts do not already rule the statement out.
    fn matches_given(&self, action: Option<bool>, request: &Request) -> Option<bool> {
        let resource = self.resources.test(&request.resource);
        if action == Some(false) || resource == Some(false) {
            return Some(false);
        }
        let condition = condition::holds(self.condition, &request.context, self.variables);
        all([action, resource, condition])
    }
}

/// An `Action` or `NotAction` pattern: actions are case-insensitive and never contain policy variables.
fn action_pattern(text: &str) -> Pattern {
    Pattern::new(&text.to_lowercase(), true, false)
}
