//! The `tasklog` command line.
//!
//! # Layout
//! - [`args`]: the arguments the subcommands share or take.
//! - [`log_commands`]: `tasklog export` and `tail`, straight from the store.
//! - [`rebuild`]: `tasklog rebuild`; [`progress`]: how far a long command is.
//! - this module: the command, `serve`, `verify` and `replay`.

pub mod args;
pub mod log_commands;
pub mod progress;
pub mod rebuild;
pub mod task;
pub mod tokens;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};
use futures::TryStreamExt;
use tasklog_events::{read_all_pages, Position};
use tasklog_projections::{Projections, TaskState};

use crate::app::clock::SystemClock;
use crate::bench;
use crate::http::auth::Tokens;
use crate::server::Server;
use crate::telemetry::logs::{self, LogFormat};
use crate::telemetry::traces;
use crate::Failure;
use args::{ExportArgs, ServeArgs, StoreArgs, TailArgs};
use progress::Progress;

#[derive(Debug, Parser)]
#[command(name = "tasklog", version, about = "An event-sourced task backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines look on standard error; `RUST_LOG` says which are written.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TASKLOG_LOG_FORMAT",
        default_value_t
    )]
    pub log_format: LogFormat,
    /// Export traces of requests and jobs to this OpenTelemetry collector
    /// (OTLP over HTTP, like `http://localhost:4318`); off without it.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (default) or `http/json`.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_parser = traces::protocol_name)]
    pub otlp_protocol: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Fold the whole log in memory and print what the views hold; the stored
    /// read models are left as they are.
    Replay(StoreArgs),
    /// Fold the whole log into the stored read models again (the server must
    /// be stopped), or with `--check` compare them with a fresh fold.
    Rebuild(rebuild::RebuildArgs),
    /// Check the whole log: positions, revisions and the hash chain. Exits 1
    /// naming the first bad position if anything was edited, removed or moved.
    Verify(StoreArgs),
    /// Write the log, one task's history or a range as JSON Lines of CloudEvents.
    Export(ExportArgs),
    /// Follow the event stream in the terminal.
    Tail(TailArgs),
    /// Create, show, list, retry and cancel a server's tasks over its API
    /// (`--url`, `--token`).
    Task(task::TaskArgs),
    /// Add, list and remove the tokens of a data directory (a running node
    /// takes the change within a second).
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Measure tasklog on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Runs `cli`; `on_idle` runs as a worker thread goes idle (the binary's
/// allocator upkeep), and at least every second on some worker.
pub fn run(cli: Cli, on_idle: fn()) -> ExitCode {
    let export = cli.otlp_endpoint.as_ref().map(|endpoint| traces::Export {
        endpoint: endpoint.clone(),
        protocol: traces::protocol(cli.otlp_protocol.as_deref()).expect("checked by clap"),
    });
    let _logging = match logs::init(cli.log_format, export.as_ref()) {
        Ok(logging) => logging,
        Err(error) => {
            eprintln!("tasklog: starting the trace exporter failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(on_idle)
        .build()
        .expect("a tokio runtime");
    // Wakes a worker every second, so that one that went idle before the
    // last frees also parks (and runs `on_idle`) again.
    runtime.spawn(async {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            ticks.tick().await;
        }
    });
    let result: Result<(), Failure> = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Replay(args) => replay(args).await,
            Command::Rebuild(args) => rebuild::rebuild(args).await,
            Command::Verify(args) => verify(args).await,
            Command::Export(args) => crate::cli::log_commands::export(args).await,
            Command::Tail(args) => crate::cli::log_commands::tail(args).await,
            Command::Task(args) => task::run(args).await,
            Command::Tokens(command) => tokens::run(command),
            Command::Bench(command) => bench::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output stopped reading (`| head`): nothing to say.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tasklog: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let url = args.store.store_url();
    tracing::info!(store = %url, "opening the store");
    let store = url.open().await?;
    let views = url.open_views_to_serve().await?;
    let tokens = Tokens::load_or_create(&args.store.data_dir, std::env::var("TASKLOG_TOKEN").ok())?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let clock = Arc::new(SystemClock);
    let server = Server::start(listener, store, views, tokens, clock, args.settings()).await?;
    if let Some(addr) = args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tokio::spawn(crate::http::observe::serve_metrics(
            listener,
            server.state.clone(),
        ));
        tracing::info!(%addr, "serving /metrics without a token");
    }
    tracing::info!(addr = %server.addr, store = %url, "tasklog is serving");
    shutdown_signal().await;
    tracing::info!("shutting down");
    server.stop().await?;
    Ok(())
}

fn is_broken_pipe(error: &Failure) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn verify(args: StoreArgs) -> Result<(), Failure> {
    let store = args.open_existing().await?;
    let started = Instant::now();
    let head = store.head().await?;
    let progress = Progress::new("verifying the log", "events", head.0);
    let report =
        tasklog_events::verify_with_progress(&*store, |at| progress.set(at.0, head.0)).await?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(out, "events: {}", report.events)?;
    writeln!(out, "streams: {}", report.streams)?;
    writeln!(out, "head: {}", report.head)?;
    if report.chained {
        let head_hash = hex::encode(report.head_hash);
        writeln!(out, "head_hash: {head_hash}")?;
    } else {
        writeln!(
            out,
            "hash_chain: not kept by this store; positions and revisions checked"
        )?;
    }
    writeln!(out, "seconds: {seconds:.3}")?;
    writeln!(
        out,
        "verify_events_per_s: {:.0}",
        report.events as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}

async fn replay(args: StoreArgs) -> Result<(), Failure> {
    let store = args.open_existing().await?;
    let started = Instant::now();
    let mut projections = Projections::default();
    let mut events = 0u64;
    let head = store.head().await?;
    let progress = Progress::new("folding the log", "events", head.0);
    let mut pages = read_all_pages(&*store, Position::START, 8192);
    while let Some(page) = pages.try_next().await? {
        events += page.len() as u64;
        page.iter().for_each(|event| projections.apply(event));
        progress.set(projections.position.0, head.0);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(out, "events: {events}")?;
    writeln!(out, "position: {}", projections.position)?;
    writeln!(out, "tasks: {}", projections.tasks.len())?;
    for state in TaskState::ALL {
        writeln!(
            out,
            "{}: {}",
            state.as_str(),
            projections.stats.total(state)
        )?;
    }
    writeln!(out, "schedules: {}", projections.schedules.len())?;
    let limits = projections
        .queues
        .values()
        .filter(|q| q.max_running.is_some());
    writeln!(out, "running_limits: {}", limits.count())?;
    writeln!(out, "seconds: {seconds:.3}")?;
    writeln!(
        out,
        "events_per_s: {:.0}",
        events as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}
