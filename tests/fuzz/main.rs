//! Fuzzing on stable Rust: every parser that reads other people's documents (task definitions and the derivation
//! on top, IAM policy documents as IAM returns them, CloudTrail events from SQS, image references, ARNs, the
//! config file) runs on generated and mutated inputs, seeded from `tests/fixtures`, `config/*.yaml` and the unit
//! tests' examples. An input fails on a panic, a hang or unbounded allocation (see `guard`); a failing input is
//! saved to a file with the command that reproduces it. See RELIABILITY.md for the long run and its figures.
//!
//! `cargo test` runs a short budget (`harness = false`, so this `main` is the test). Environment:
//! `EXECROLE_FUZZ_INPUTS` (inputs per parser, default 10 000), `EXECROLE_FUZZ_SEED` (default fixed),
//! `EXECROLE_FUZZ_SECONDS` (stop a parser earlier, after this long), `EXECROLE_FUZZ_TARGET` (run only the parser
//! of that name), `EXECROLE_FUZZ_REPRO` (run one saved input),
//! `EXECROLE_FUZZ_TIME_LIMIT_MS`, `EXECROLE_FUZZ_MAX_MIB` (per-input limits).

mod guard;
mod mutate;
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guard::{Counting, Limits};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The seed of every run unless `EXECROLE_FUZZ_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x00e8_ec01_e000_0013;
/// Inputs per parser unless `EXECROLE_FUZZ_INPUTS` says otherwise: a few seconds each under `cargo test`.
const DEFAULT_INPUTS: u64 = 10_000;
/// Findings saved per parser before it stops.
const MAX_FINDINGS: usize = 5;

/// What to run, from the environment.
struct Settings {
    seed: u64,
    inputs: u64,
    seconds: Option<Duration>,
    only: Option<String>,
    repro: Option<PathBuf>,
    limits: Limits,
    findings: PathBuf,
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.replace('_', "");
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}"))
        }
        Err(_) => default,
    }
}

fn settings() -> Settings {
    // Unoptimised code is some ten times slower: the same limit would flag slow builds, not hangs.
    let time_ms = if cfg!(debug_assertions) {
        10_000
    } else {
        1_000
    };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    Settings {
        seed: env_number("EXECROLE_FUZZ_SEED", DEFAULT_SEED),
        inputs: env_number("EXECROLE_FUZZ_INPUTS", DEFAULT_INPUTS),
        seconds: std::env::var("EXECROLE_FUZZ_SECONDS")
            .ok()
            .map(|_| Duration::from_secs(env_number("EXECROLE_FUZZ_SECONDS", 0))),
        only: std::env::var("EXECROLE_FUZZ_TARGET").ok(),
        repro: std::env::var_os("EXECROLE_FUZZ_REPRO").map(PathBuf::from),
        limits: Limits {
            time: Duration::from_millis(env_number("EXECROLE_FUZZ_TIME_LIMIT_MS", time_ms)),
            bytes: (env_number("EXECROLE_FUZZ_MAX_MIB", 64) as usize) << 20,
        },
        findings: target_dir.join("fuzz-findings"),
    }
}

/// The command that runs one saved input again.
pub fn reproduce(target: &str, file: &Path) -> String {
    format!(
        "reproduce with: EXECROLE_FUZZ_TARGET={target} EXECROLE_FUZZ_REPRO={} cargo test --test fuzz",
        file.display()
    )
}

fn main() {
    // `cargo test -- --list` and filters from `cargo test NAME` are for libtest harnesses; this one runs whole.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let settings = settings();
    guard::install(settings.limits);
    let targets: Vec<_> = targets::all()
        .into_iter()
        .filter(|t| settings.only.as_deref().is_none_or(|only| only == t.name))
        .collect();
    assert!(!targets.is_empty(), "EXECROLE_FUZZ_TARGET names no parser");
    let failed = match &settings.repro {
        Some(file) => targets.iter().any(|t| !repro(&settings, t, file)),
        None => {
            println!(
                "fuzz: seed {:#x}, {} inputs per parser, limits {:?} and {} MiB per input",
                settings.seed,
                settings.inputs,
                settings.limits.time,
                settings.limits.bytes >> 20
            );
            let results: Vec<bool> = targets.iter().map(|t| fuzz(&settings, t)).collect();
            results.contains(&false)
        }
    };
    if failed {
        std::process::exit(101);
    }
}

/// Run one saved input; false when it fails.
fn repro(settings: &Settings, target: &targets::Target, file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let input = String::from_utf8_lossy(&bytes);
    let started = Instant::now();
    let outcome = guard::run(
        target.name,
        &settings.findings,
        &input,
        settings.limits,
        target.check,
    );
    let elapsed = started.elapsed();
    match outcome {
        Ok(()) => {
            println!("{}: {} passes in {elapsed:?}", target.name, file.display());
            true
        }
        Err(failure) => {
            println!(
                "{}: {} FAILS in {elapsed:?}: {failure}",
                target.name,
                file.display()
            );
            false
        }
    }
}

/// Run `settings.inputs` inputs through one parser; false when any failed.
fn fuzz(settings: &Settings, target: &targets::Target) -> bool {
    let started = Instant::now();
    let mut findings = 0;
    let mut bytes = 0u64;
    let mut slowest = Duration::ZERO;
    let mut done = 0;
    for index in 0..settings.inputs {
        if settings
            .seconds
            .is_some_and(|budget| started.elapsed() > budget)
        {
            break;
        }
        done += 1;
        let input = target.input(settings.seed, index);
        bytes += input.len() as u64;
        let one = Instant::now();
        let outcome = guard::run(
            target.name,
            &settings.findings,
            &input,
            settings.limits,
            target.check,
        );
        slowest = slowest.max(one.elapsed());
        if let Err(failure) = outcome {
            let file = guard::save(&settings.findings, target.name, &input);
            eprintln!("FAIL {} input {index}: {failure}", target.name);
            eprintln!("  saved to {}", file.display());
            eprintln!("  {}", reproduce(target.name, &file));
            findings += 1;
            if findings == MAX_FINDINGS {
                eprintln!("{}: stopping after {MAX_FINDINGS} findings", target.name);
                break;
            }
        }
        if index > 0 && index % 100_000 == 0 {
            println!(
                "  {}: {index} inputs, {:.0?}",
                target.name,
                started.elapsed()
            );
        }
    }
    println!(
        "{:<16} {:>9} inputs {:>10.1?} ({:>6.1} MiB generated, slowest input {:.1?}): {} findings",
        target.name,
        done,
        started.elapsed(),
        bytes as f64 / (1 << 20) as f64,
        slowest,
        findings
    );
    findings == 0
}
