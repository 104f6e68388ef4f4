//! tasklog: an event-sourced task backend.
//!
//! Every task create and state change is an immutable event in an append-only
//! log ([`tasklog_events`]); projections fold the log into the current views
//! ([`tasklog_projections`]); this crate takes commands over HTTP and answers
//! from the views.
//!
//! # Layout
//! - [`cli`]: the `tasklog` command and its subcommands (`main.rs` only calls
//!   it), with `export` and `tail` straight from the store.
//! - [`http`]: the axum router ([`http::app`], [`http::run`]), handlers, wire
//!   types, errors, OpenAPI, bearer tokens and CloudEvents.
//! - [`app`]: what runs: the service (the one write path, claims, idempotent
//!   creates), schedules and background jobs, the clock, the `--store` setting.
//! - [`server`]: `tasklog serve` wiring: store, views, jobs and HTTP together.
//! - [`rules`]: the pure rules: a task and a command in, events out; labels and
//!   selectors; recurring schedules.
//! - [`telemetry`]: logs and Prometheus metrics, for operators.
//! - [`bench`]: `tasklog bench`, the figures the project is measured by.

pub mod app;
pub mod bench;
pub mod cli;
pub mod http;
pub mod rules;
pub mod server;
pub mod telemetry;

/// What a command that can fail in many ways returns: its cause, for the terminal.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;
