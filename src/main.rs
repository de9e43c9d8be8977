//! The `execrole` binary: parse the command line, load the config, start tracing, build clients, run, and wait for
//! shutdown (SIGTERM or SIGINT). All logic lives in the library; this file only wires it together.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;

use execrole::aws::{BackoffSettings, ClientFactory};
use execrole::cli::{Cli, Command, DeriveOutput, PlanOutput};
use execrole::config::{Config, LogFormat, Mode};
use execrole::controller::{Controller, Coordinated, Health};
use execrole::coordination::{Elector, LeaseSettings, Leases, SystemClock};
use execrole::derive::DeriveContext;
use execrole::http::{self, HttpState};
use execrole::metrics::Metrics;
use execrole::model::{is_account_id, is_region};
use execrole::{offline, plan};

#[cfg(not(target_env = "msvc"))]
execrole::use_jemalloc!();

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Derive {
            files,
            against,
            online,
            output,
            account,
            region,
        } => derive(DeriveArgs {
            files,
            against,
            online,
            output,
            ctx: DeriveContext { account, region },
        }),
        Command::Plan { config, output } => with_runtime(|| plan_command(config, output)),
        Command::Run {
            config,
            once,
            dry_run,
            listen,
        } => with_runtime(|| run_command(config, once, dry_run, listen)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("execrole: error: {err:#}");
            ExitCode::from(1)
        }
    }
}

fn with_runtime<T, F, Fut>(f: F) -> Result<T>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(f())
}

fn check_config(file: &std::path::Path) -> Result<ExitCode> {
    let config = Config::load(file)?;
    println!("# {}: valid. Effective settings:", file.display());
    print!("{}", config.to_effective_yaml());
    Ok(ExitCode::SUCCESS)
}

/// `execrole derive`'s arguments, as parsed.
struct DeriveArgs {
    files: Vec<PathBuf>,
    against: Vec<PathBuf>,
    online: bool,
    output: DeriveOutput,
    ctx: DeriveContext,
}

fn derive(args: DeriveArgs) -> Result<ExitCode> {
    if let Some(account) = &args.ctx.account {
        anyhow::ensure!(
            is_account_id(account),
            "--account `{account}` is not a 12-digit account id"
        );
    }
    if let Some(region) = &args.ctx.region {
        anyhow::ensure!(
            is_region(region),
            "--region `{region}` is not a Region name"
        );
    }
    anyhow::ensure!(
        args.against.is_empty() || args.output != DeriveOutput::Policy,
        "--output policy prints the needed policy; it cannot be combined with --against"
    );
    if args.against.is_empty() && !args.online {
        return derive_streamed(&args);
    }
    // Load the documents first: a malformed one is an error before any look-up is made.
    let against = args
        .against
        .iter()
        .map(|path| offline::check::Against::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = offline::read_inputs(&args.files, &mut std::io::stdin().lock());
    let reports = if args.online {
        with_runtime(|| derive_online(&inputs, &args.ctx))?
    } else {
        offline::derive_files(&inputs, &args.ctx, &Default::default())
    };
    if args.against.is_empty() {
        print_derivations(&reports, args.output)
    } else {
        print_check(&reports, &against, args.output)
    }
}

/// Offline `derive` without `--against`: each file is read, derived and printed before the next one is read, so
/// memory does not grow with the number of files.
fn derive_streamed(args: &DeriveArgs) -> Result<ExitCode> {
    let sources = offline::sources(&args.files, &mut std::io::stdin().lock());
    let mut reader = offline::Reader::default();
    let reports = sources
        .into_iter()
        .map(|source| reader.derive(source, &args.ctx, &Default::default()));
    print_derivations(reports, args.output)
}

async fn derive_online(
    inputs: &[offline::Input],
    ctx: &DeriveContext,
) -> Result<Vec<offline::FileReport>> {
    let metrics = Arc::new(Metrics::new());
    // No config here: the SDK adapters' former default, which retries one look-up for up to two minutes.
    let retry = BackoffSettings {
        max_elapsed: std::time::Duration::from_secs(120),
        ..BackoffSettings::DEFAULT
    };
    let factory = ClientFactory::from_env(metrics.clone(), retry).await;
    Ok(
        offline::online::derive_files_online(inputs, ctx, &Default::default(), &factory, &metrics)
            .await,
    )
}

/// Print each report as it comes (the iterator may derive them lazily); exit 1 when a file could not be read as a
/// task definition.
fn print_derivations<R: std::borrow::Borrow<offline::FileReport>>(
    reports: impl IntoIterator<Item = R>,
    output: DeriveOutput,
) -> Result<ExitCode> {
    let failed = std::cell::Cell::new(false);
    let reports = reports.into_iter().inspect(|r| {
        failed.set(failed.get() || r.borrow().result.is_err());
    });
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    match output {
        DeriveOutput::Text => offline::write_text(reports, &mut out)?,
        DeriveOutput::Json => offline::write_json(reports, &mut out)?,
        DeriveOutput::Policy => offline::write_policies(reports, &mut out)?,
    }
    out.flush()?;
    Ok(if failed.get() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--against`: exit 1 when an input cannot be read (nothing is compared), 2 on differences, 0 in sync.
fn print_check(
    reports: &[offline::FileReport],
    against: &[offline::check::Against],
    output: DeriveOutput,
) -> Result<ExitCode> {
    let unreadable: Vec<String> = reports
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|e| format!("{}: {e}", r.file)))
        .collect();
    anyhow::ensure!(
        unreadable.is_empty(),
        "cannot read every task definition, so nothing was compared:\n  {}",
        unreadable.join("\n  ")
    );
    let check = offline::check::check(reports, against)?;
    match output {
        DeriveOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&offline::check::render_json(&check))?
        ),
        _ => print!("{}", offline::check::render_text(&check)),
    }
    Ok(if check.is_in_sync() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Logs go to stderr (stdout is for plans and reports). `EXECROLE_LOG` overrides the configured level.
fn init_tracing(config: &Config, level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXECROLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_target(false).init(),
    }
}

async fn client_factory(config: &Config, metrics: Arc<Metrics>) -> ClientFactory {
    ClientFactory::from_env(metrics, config.backoff)
        .await
        .with_rate_limits(config.rate_limits)
}

async fn build_controller(
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Controller {
    let factory = client_factory(&config, metrics.clone()).await;
    Controller::new(config, &factory, metrics, health).await
}

async fn plan_command(config: PathBuf, output: PlanOutput) -> Result<ExitCode> {
    let config = Config::load(&config)?;
    // The plan is the output; only warnings and errors go to the log unless asked.
    init_tracing(&config, "warn");
    let metrics = Arc::new(Metrics::new());
    let controller = build_controller(config, metrics, Arc::new(Health::default())).await;
    let report = controller
        .pass(Mode::DryRun, &CancellationToken::new())
        .await;
    match output {
        PlanOutput::Text => print!("{}", plan::render_text(&report.plan)),
        PlanOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&plan::render_json(&report.plan))?
        ),
    }
    if !report.is_success() {
        for error in &report.observe_errors {
            eprintln!("execrole: could not observe: {error}");
        }
        for (role, error) in &report.plan.errors {
            eprintln!("execrole: could not read role {role}: {error}");
        }
        return Ok(ExitCode::from(1));
    }
    Ok(if report.plan.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_command(
    config: PathBuf,
    once: bool,
    dry_run: bool,
    listen: Option<std::net::SocketAddr>,
) -> Result<ExitCode> {
    // The config stays as the file says (so a reload compares like with like); the command-line overrides are
    // applied beside it.
    let config = Config::load(&config)?;
    init_tracing(&config, &config.log_level);
    let mode = if dry_run { Mode::DryRun } else { config.mode };
    let listen = listen.unwrap_or(config.http_listen);
    tracing::info!(
        ?mode,
        targets = config.targets.len(),
        resync = %humantime::format_duration(config.resync_interval),
        "execrole starting"
    );
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(wait_for_signal(shutdown.clone()));
    let reload_requests = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(wait_for_hangups(reload_requests.clone()));

    if once {
        let factory = client_factory(&config, metrics.clone()).await;
        let elector = coordination(&config, &factory, &metrics);
        let mut controller = Controller::new(config, &factory, metrics, health).await;
        if let Some((coordinated, elector)) = &elector {
            // One round takes this replica's fair share of the shards; the pass works on those only.
            elector.round().await;
            controller.coordinate(coordinated.clone());
        }
        let report = controller.pass(mode, &shutdown).await;
        if let Some((_, elector)) = &elector {
            elector.release_all().await;
        }
        return Ok(if report.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let state = HttpState {
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let server = tokio::spawn(http::serve(listener, state, shutdown.clone()));
    let factory = client_factory(&config, metrics.clone()).await;
    let elector = coordination(&config, &factory, &metrics);
    let mut controller = Controller::new(config, &factory, metrics, health).await;
    let leases = elector.map(|(coordinated, elector)| {
        controller.coordinate(coordinated);
        // Outside the controller's generations: a reload keeps the leases; shutdown gives them up at once.
        let shutdown = shutdown.clone();
        tokio::spawn(async move { elector.run(shutdown).await })
    });
    if dry_run {
        controller.force_dry_run();
    }
    controller
        .run(shutdown.clone(), &factory, reload_requests)
        .await;
    shutdown.cancel();
    if let Some(leases) = leases {
        leases.await.context("the lease elector panicked")?;
    }
    server.await.context("the HTTP server panicked")??;
    tracing::info!("execrole stopped");
    Ok(ExitCode::SUCCESS)
}

/// With `coordination`: this replica's leases over the configured table, and the elector that keeps them.
fn coordination(
    config: &Config,
    factory: &ClientFactory,
    metrics: &Arc<Metrics>,
) -> Option<(Coordinated, Elector)> {
    let settings = config.coordination.as_ref()?;
    let replica = if settings.replica_id.is_empty() {
        execrole::coordination::default_replica_id()
    } else {
        settings.replica_id.clone()
    };
    tracing::info!(
        replica = %replica,
        table = %settings.dynamodb_table,
        shards = settings.shards,
        lease = %humantime::format_duration(settings.lease_duration),
        "running as one of several replicas"
    );
    let table = factory.lease_table(settings);
    let leases = Leases::new(&replica, settings.shards);
    let clock = Arc::new(SystemClock);
    let elector = Elector::new(
        table.clone(),
        clock.clone(),
        LeaseSettings::from(settings),
        leases.clone(),
        metrics.clone(),
    );
    Some((
        Coordinated {
            leases,
            table,
            clock,
        },
        elector,
    ))
}

/// Ask for a config reload on every SIGHUP.
async fn wait_for_hangups(requests: Arc<tokio::sync::Notify>) {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut signal) => {
            while signal.recv().await.is_some() {
                requests.notify_one();
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGHUP; reload by editing the file instead")
        }
    }
}

/// Cancel `shutdown` on SIGTERM or SIGINT.
async fn wait_for_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing work in flight");
    shutdown.cancel();
}
