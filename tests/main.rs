//! tasklog's integration tests: one binary, so the crate links once.
//!
//! - `api`: the HTTP API end to end, on a real server with a controlled clock.
//! - `store`: the embedded store and its read models under `kill -9`, and the fixture of events
//!   written by earlier versions that every later version must read.

mod api;
mod cli;
mod store;
