//! What runs: the service that takes commands to the store, its background
//! jobs, the one clock, and the wiring of `tasklog serve`.
//!
//! # Layout
//! - [`write`]: the one write path: decide on the current state, append at its
//!   revision, on a conflict fold again from the log and decide again; for
//!   tasks, schedules, queue settings and consumer positions alike.
//! - [`task_service`]: the service (store, views, clock), claims, and creates
//!   made once per idempotency key.
//! - [`schedules`]: schedule commands, and the job that makes each due run's task once.
//! - [`jobs`]: expiry, lease lapses and schedule runs, driven by the [`clock`].
//! - [`server`]: `tasklog serve` wiring: store, views, jobs, HTTP.
//! - [`store_url`]: the `--store` setting, and opening the backend it names.
//! - [`event_filter`]: which events a reader wants (by task type and event type).

pub mod clock;
pub mod event_filter;
pub mod jobs;
pub mod schedules;
pub mod server;
pub mod store_url;
pub mod task_service;
pub mod write;
