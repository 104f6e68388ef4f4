//! The `tasklog` binary: parses the command line and hands over to [`tasklog::cli`].

use clap::Parser;

/// mimalloc: the server allocates many small short-lived values per request,
/// where it is measurably faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tasklog::cli::run(tasklog::cli::Cli::parse())
}
