//! tasklog's read models: pure folds of the event log.
//!
//! Each projection is an `apply(&mut self, &RecordedEvent)` over the events of
//! [`tasklog_events`], with no HTTP and no SQL, so the live views and a rebuild
//! from position 0 are produced by the same code.
//!
//! # Layout
//! Empty for now; the task view, the queue index, the stats and the runner with
//! its checkpoint arrive with the task API.
