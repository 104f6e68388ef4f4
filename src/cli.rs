//! The `tasklog` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench;

#[derive(Debug, Parser)]
#[command(name = "tasklog", version, about = "An event-sourced task backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure tasklog on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn run(cli: Cli) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bench(command) => bench::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tasklog: {error}");
            ExitCode::FAILURE
        }
    }
}
