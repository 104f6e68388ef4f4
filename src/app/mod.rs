//! What runs: the service that takes commands to the store, its background
//! jobs, the one clock, and the wiring of `tasklog serve`.
//!
//! # Layout
//! - [`task_service`]: runs commands against the store, retrying on conflicts, and claims.
//! - [`jobs`]: expiry, lease lapses and schedule runs, driven by the [`clock`].
//! - [`server`]: `tasklog serve` wiring: store, views, jobs, HTTP.
//! - [`store_url`]: the `--store` setting, and opening the backend it names.
//! - [`event_filter`]: which events a reader wants (by task type and event type).

pub mod clock;
pub mod event_filter;
pub mod jobs;
pub mod server;
pub mod store_url;
pub mod task_service;
