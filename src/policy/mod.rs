//! IAM policy documents for ECS task execution roles: parsing what IAM returns,
//! comparing documents by meaning, diffing them, and compiling the smallest
//! deterministic policy from a set of wanted permissions.
//!
//! This module is pure: it performs no I/O, talks to no AWS API and holds no
//! state. It deliberately does not evaluate policies (wildcards such as
//! `ecr:*` are compared literally, never matched against other actions) and
//! does not enforce IAM's size quotas; [`iam_size`] only measures.

mod compile;
mod document;
mod error;
mod normalize;

pub use compile::{compile, iam_size};
pub use document::{
    Conditions, Effect, LEGACY_POLICY_VERSION, POLICY_VERSION, Permission, PolicyDocument,
    Statement,
};
pub use error::PolicyError;
pub use normalize::{Grant, Normalized, PolicyDiff, diff, grants, is_equivalent, normalize};
