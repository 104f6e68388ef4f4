//! tasklog: an event-sourced task backend.
//!
//! Every task create and state change is an immutable event in an append-only
//! log ([`tasklog_events`]); projections fold the log into the current views
//! ([`tasklog_projections`]); this crate wires them to the command line.
//!
//! # Layout
//! - [`cli`]: the `tasklog` command and its subcommands.
//! - [`store_url`]: the `--store` setting, and opening the backend it names.
//! - [`bench`]: `tasklog bench`, the figures the project is measured by.

pub mod bench;
pub mod cli;
pub mod store_url;
