//! IAM policy documents for ECS task execution roles: parsing what IAM returns,
//! comparing documents by meaning, diffing them, compiling the smallest
//! deterministic policy from a set of wanted permissions, splitting it within
//! IAM's size limits (`limits`), and evaluating requests against policies and a
//! permissions boundary the way IAM does (`evaluate`).
//!
//! This module is pure: it performs no I/O, talks to no AWS API and holds no
//! state. Comparison and diff are textual by meaning (wildcards such as `ecr:*`
//! are compared literally); only `evaluate` matches wildcards and conditions.

mod compile;
mod document;
mod error;
mod evaluate;
mod limits;
mod normalize;

pub use compile::{compile, iam_size};
pub use document::{
    Conditions, Effect, LEGACY_POLICY_VERSION, MAX_POLICY_TEXT_BYTES, POLICY_VERSION, Permission,
    PolicyDocument, Statement,
};
pub use error::PolicyError;
pub use evaluate::{Decision, Evaluator, Request, evaluate, patterns_overlap, statement_matches};
pub use limits::{INLINE_LIMIT, MANAGED_LIMIT, split};
pub use normalize::{Grant, Normalized, PolicyDiff, diff, grants, is_equivalent, normalize};
