//! The command-line interface (clap derive): `run`, `plan`, `derive` and `check-config`. Types only; `main`
//! carries them out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Keeps Amazon ECS task execution roles exactly as permissive as their task definitions need.
#[derive(Debug, Parser)]
#[command(name = "execrole", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: a full pass every resync interval, with /metrics, /healthz and /readyz.
    Run {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Do one full pass and exit (status 1 if anything failed).
        #[arg(long)]
        once: bool,
        /// Observe only, whatever the config's mode says.
        #[arg(long)]
        dry_run: bool,
        /// Listen address for HTTP, overriding `http.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Observe, derive and diff; print the plan and write nothing. Exit 0: no changes, 2: changes pending, 1: error.
    Plan {
        /// The configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = PlanOutput::Text)]
        output: PlanOutput,
    },
    /// Print what each task definition's execution role needs and why; with `--against`, check a policy document
    /// against those needs (exit 0: in sync, 2: differences, 1: error). No AWS call unless `--online`.
    Derive {
        /// Task definition JSON files (describe-task-definition output, with or without its `{"taskDefinition": …}`
        /// wrapper, or register-task-definition input); a directory stands for its `*.json` files; `-` reads one
        /// from standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Compare the needs with this IAM policy document (repeat for several documents of the same role).
        #[arg(long, value_name = "POLICY.json")]
        against: Vec<PathBuf>,
        /// Make the read-only look-ups (DescribeSecret, DescribeParameters, DescribeKey,
        /// DescribePullThroughCacheRules; never a secret value) with the standard AWS credential chain, so
        /// kms:Decrypt and pull-through-cache needs are decided.
        #[arg(long)]
        online: bool,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = DeriveOutput::Text)]
        output: DeriveOutput,
        /// The account to assume for inputs without a taskDefinitionArn.
        #[arg(long)]
        account: Option<String>,
        /// The Region to assume for inputs without a taskDefinitionArn.
        #[arg(long)]
        region: Option<String>,
    },
    /// Validate a configuration file and print the effective settings.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
}

/// `plan --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanOutput {
    /// Human-readable, like `terraform plan`.
    Text,
    /// JSON (schema 1).
    Json,
}

/// `derive --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeriveOutput {
    /// Human-readable: statements with reasons, findings, the policy.
    Text,
    /// JSON (schema 1).
    Json,
    /// Only the IAM policy document(s) (not with `--against`).
    Policy,
}
