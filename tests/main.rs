//! tasklog's integration tests: one binary, so the crate links once.
//!
//! - `store`: the embedded store under `kill -9`, and the fixture of events
//!   written by earlier versions that every later version must read.

mod store;
