//! The pure rules: no I/O, no clock but the time they are given.
//!
//! # Layout
//! - [`task`]: a task and a command in, events out (or a rejection).
//! - [`labels`]: label and tag rules, and the label selectors list and claim filter by.
//! - [`schedules`]: recurring schedules' rules, and their due runs made into tasks once.

pub mod labels;
pub mod schedules;
pub mod task;
