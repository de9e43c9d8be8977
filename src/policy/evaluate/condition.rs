//! The `Condition` block: operators, `…IfExists`, `ForAnyValue:`/`ForAllValues:` and missing keys.

use std::collections::BTreeMap;

use super::pattern::Pattern;
use super::{all, any, not};
use crate::policy::Conditions;

/// Whether a whole `Condition` block holds: operators and the keys under each are ANDed.
///
/// `None` when it depends on something we cannot decide: an operator we do not implement
/// (`DateLessThan`, `IpAddress`, a misspelling…), an unresolved policy variable, or a policy value
/// that is not a number under a `Numeric…` operator. An empty block holds.
pub(super) fn holds(
    conditions: &Conditions,
    context: &BTreeMap<String, Vec<String>>,
    variables: bool,
) -> Option<bool> {
    all(conditions.iter().map(|(name, keys)| {
        let operator = Operator::parse(name)?;
        all(keys.iter().map(|(key, policy_values)| {
            let request_values = context
                .iter()
                .find(|(context_key, _)| context_key.eq_ignore_ascii_case(key))
                .map(|(_, values)| values.as_slice());
            operator.holds(request_values, policy_values, variables)
        }))
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    /// `ForAnyValue:`: at least one request value satisfies the test; false for no values.
    AnyValue,
    /// `ForAllValues:`: every request value satisfies the test; true for no values.
    AllValues,
}

#[derive(Debug, Clone, Copy)]
enum Test {
    Equals,
    EqualsIgnoreCase,
    Like,
    Arn,
    /// Request value compared with the policy value: `request < policy` for `NumericLessThan`.
    Numeric(fn(&f64, &f64) -> bool),
    Null,
}

/// A parsed operator name such as `ForAllValues:StringNotLikeIfExists`.
#[derive(Debug, Clone, Copy)]
struct Operator {
    set: Option<SetQualifier>,
    if_exists: bool,
    negated: bool,
    test: Test,
}

impl Operator {
    /// `None` for an operator this module does not implement. Names are case-sensitive.
    fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::AnyValue), rest)
        } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::AllValues), rest)
        } else {
            (None, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let (test, negated) = match base {
            "StringEquals" => (Test::Equals, false),
            "StringNotEquals" => (Test::Equals, true),
            "StringEqualsIgnoreCase" | "Bool" => (Test::EqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Test::EqualsIgnoreCase, true),
            "StringLike" => (Test::Like, false),
            "StringNotLike" => (Test::Like, true),
            // IAM documents ArnEquals and ArnLike identically: both take wildcards per component.
            "ArnEquals" | "ArnLike" => (Test::Arn, false),
            "ArnNotEquals" | "ArnNotLike" => (Test::Arn, true),
            "NumericEquals" => (Test::Numeric(f64::eq), false),
            "NumericNotEquals" => (Test::Numeric(f64::eq), true),
            "NumericLessThan" => (Test::Numeric(f64::lt), false),
            "NumericLessThanEquals" => (Test::Numeric(f64::le), false),
            "NumericGreaterThan" => (Test::Numeric(f64::gt), false),
            "NumericGreaterThanEquals" => (Test::Numeric(f64::ge), false),
            "Null" if set.is_none() && !if_exists => (Test::Null, false),
            _ => return None,
        };
        Some(Operator {
            set,
            if_exists,
            negated,
            test,
        })
    }

    /// One key: `request` is the key's values in the context (`None` or empty: not present).
    fn holds(
        &self,
        request: Option<&[String]>,
        policy: &[String],
        variables: bool,
    ) -> Option<bool> {
        let request = request.filter(|values| !values.is_empty());
        if let Test::Null = self.test {
            // `"true"`: the key must be absent; `"false"`: present.
            return any(policy
                .iter()
                .map(|value| match value.to_ascii_lowercase().as_str() {
                    "true" => Some(request.is_none()),
                    "false" => Some(request.is_some()),
                    _ => None,
                }));
        }
        let Some(request) = request else {
            // IAM: a missing key makes the condition false, except that a negated operator
            // (StringNotLike, ArnNotLike…) is then true, …IfExists is true, and the set
            // qualifiers follow their empty-set rules.
            return Some(
                self.if_exists
                    || match self.set {
                        Some(SetQualifier::AnyValue) => false,
                        Some(SetQualifier::AllValues) => true,
                        None => self.negated,
                    },
            );
        };
        // Values for one key are ORed; a negated operator is the NOT of that OR (a NOR).
        let satisfies = |value: &String| {
            let matched = any(policy.iter().map(|p| self.compare(p, value, variables)));
            if self.negated { not(matched) } else { matched }
        };
        match self.set {
            Some(SetQualifier::AnyValue) => any(request.iter().map(satisfies)),
            Some(SetQualifier::AllValues) => all(request.iter().map(satisfies)),
            // Unqualified on several request values: a positive operator needs one to match,
            // a negated one needs none to match.
            None if self.negated => all(request.iter().map(satisfies)),
            None => any(request.iter().map(satisfies)),
        }
    }

    /// Whether `value` (from the request) matches `policy` (one value from the policy), ignoring
    /// negation.
    fn compare(&self, policy: &str, value: &str, variables: bool) -> Option<bool> {
        match self.test {
            Test::Equals => Pattern::new(policy, false, variables).matches(value),
            Test::EqualsIgnoreCase => Pattern::new(&policy.to_lowercase(), false, variables)
                .matches(&value.to_lowercase()),
            Test::Like => Pattern::new(policy, true, variables).matches(value),
            Test::Arn => Pattern::new(policy, true, variables).matches_arn(value),
            Test::Numeric(compare) => {
                let policy: f64 = policy.trim().parse().ok()?;
                let value: Option<f64> = value.trim().parse().ok();
                Some(value.is_some_and(|value| compare(&value, &policy)))
            }
            Test::Null => None,
        }
    }
}
