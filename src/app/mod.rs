//! What runs: the service that takes commands to the store, and its
//! background jobs, on the one clock. No HTTP here.
//!
//! # Layout
//! - [`service`]: the service (store, views, clock) the API and the jobs share.
//! - [`write`]: the one write path: decide on the current state, append at its
//!   revision, on a conflict fold again from the log and decide again; for
//!   tasks, schedules, queue settings and consumer positions alike.
//! - [`batch`]: many tasks created in one append, all or none.
//! - [`bulk`]: operator actions on many tasks at once (retry the failed, cancel the pending).
//! - [`claims`]: the best available task to one worker, within running limits.
//! - [`idempotency`]: creates (and batches) made once per idempotency key.
//! - [`schedules`]: schedule commands, and the job that makes each due run's task once.
//! - [`jobs`]: expiry, lease lapses and schedule runs, driven by the [`clock`].
//! - [`rebuild`]: the read models rebuilt beside the serving node and swapped in.
//! - [`store_url`]: the `--store` setting, and opening the backend it names.
//! - [`views_files`]: the embedded store's views file, one per generation.
//! - [`event_filter`]: which events a reader wants (by task type and event type).

pub mod batch;
pub mod bulk;
pub mod claims;
pub mod clock;
pub mod event_filter;
pub mod idempotency;
pub mod jobs;
pub mod rebuild;
pub mod schedules;
pub mod service;
pub mod store_url;
pub mod views_files;
pub mod write;
