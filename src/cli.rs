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
    /// Offline: print what each task definition's execution role needs and why. No AWS call.
    Derive {
        /// Task definition JSON files (describe-task-definition output or register-task-definition input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Only the IAM policy document(s).
    Policy,
}
