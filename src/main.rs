//! The `tasklog` binary: parses the command line and hands over to [`tasklog::cli`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    tasklog::cli::run(tasklog::cli::Cli::parse())
}
