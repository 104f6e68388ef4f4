//! tasklog: an event-sourced task backend.
//!
//! Every task create and state change is an immutable event in an append-only
//! log ([`tasklog_events`]); projections fold the log into the current views
//! ([`tasklog_projections`]); this crate takes commands over HTTP and answers
//! from the views.
//!
//! # Layout
//! - [`cli`]: the `tasklog` command and its subcommands; `main.rs` only calls it.
//! - [`log_commands`]: `tasklog export` and `tasklog tail`, straight from the store.
//! - [`server`]: `tasklog serve` wiring: store, views, jobs, HTTP.
//! - [`api`]: the axum router ([`api::app`], [`api::run`]), handlers, wire types, errors, OpenAPI.
//! - [`auth`]: bearer tokens and their scopes.
//! - [`cloud_event`]: events as auditors and consumers see them (CloudEvents JSON).
//! - [`event_filter`]: which task events a reader wants (by task type and event type).
//! - [`labels`]: label and tag rules, and the label selectors list and claim filter by.
//! - [`commands`]: the pure rules: a task and a command in, events out.
//! - [`task_service`]: runs commands against the store, retrying on conflicts, and claims.
//! - [`schedules`]: recurring schedules' rules, and their due runs made into tasks once.
//! - [`jobs`]: expiry, lease lapses and schedule runs, driven by the [`clock`].
//! - [`store_url`]: the `--store` setting, and opening the backend it names.
//! - [`bench`]: `tasklog bench`, the figures the project is measured by.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod cloud_event;
pub mod commands;
pub mod event_filter;
pub mod jobs;
pub mod labels;
pub mod log_commands;
pub mod schedules;
pub mod server;
pub mod store_url;
pub mod task_service;
