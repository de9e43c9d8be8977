//! `execrole` keeps every Amazon ECS task execution role exactly as permissive as its task definitions need: it
//! watches task definitions through the ECS API, derives the permissions each execution role needs, diffs them
//! against the role's live IAM state, and repairs drift in its own inline policy.
//!
//! # Layout
//!
//! A functional core in an imperative shell:
//!
//! * [`config`]: the YAML configuration, raw then validated.
//! * [`model`]: our own types: ARNs, images, task definitions, role keys (pure).
//! * [`derive`]: task definition → required permissions with reasons, and findings (pure).
//! * [`policy`]: IAM policy documents: parse, normalise, compare by meaning, diff, compile, split within IAM's
//!   limits, evaluate (pure).
//! * [`plan`]: desired vs observed → the write that repairs a role; text and JSON rendering (pure).
//! * [`offline`]: the `derive` command's report over files (pure).
//! * [`events`]: CloudTrail API-call events from EventBridge → what to sweep or reconcile now (pure).
//! * [`aws`]: narrow traits over ECS and IAM, the SDK adapters behind them, error classification, retries,
//!   client-side rate limits per account and service.
//! * [`coordination`]: several replicas: shards of accounts, their leases in a DynamoDB table, fencing.
//! * [`controller`]: passes, the describe cache, per-role reconcile and apply.
//! * [`metrics`]: the Prometheus registry.
//! * [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! * [`cli`]: the command-line types.
//! * [`settings`]: rate-limit and backoff settings shared by `config` and `aws`, their defaults written once.
//! * [`allocator`]: the daemon's memory allocator (jemalloc) and its options.

#![deny(missing_docs)]

#[cfg(not(target_env = "msvc"))]
pub mod allocator;
pub mod aws;
pub mod cli;
pub mod config;
pub mod controller;
pub mod coordination;
pub mod derive;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod offline;
pub mod plan;
pub mod policy;
pub mod settings;
