//! Counts per state and type, and run durations: what `/metrics` reports.

use std::collections::BTreeMap;

use crate::task_view::{TaskState, TaskView};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Tasks per (type, state).
    pub counts: BTreeMap<(String, TaskState), u64>,
    /// Finished runs per type: how many, and their total seconds.
    pub runs: BTreeMap<String, RunTotals>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTotals {
    pub count: u64,
    pub seconds: f64,
}

impl Stats {
    /// Accounts for a task moving from `before` to `after`.
    pub fn update(&mut self, before: Option<&TaskView>, after: &TaskView) {
        if let Some(before) = before {
            let key = (before.task_type.clone(), before.state);
            if let Some(count) = self.counts.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.counts.remove(&key);
                }
            }
        }
        *self
            .counts
            .entry((after.task_type.clone(), after.state))
            .or_default() += 1;
        let run_ended = after.duration.is_some() && before.is_some_and(|b| b.duration.is_none());
        if let (true, Some(seconds)) = (run_ended, after.duration) {
            let runs = self.runs.entry(after.task_type.clone()).or_default();
            runs.count += 1;
            runs.seconds += seconds;
        }
    }

    /// Tasks in `state`, of every type.
    pub fn total(&self, state: TaskState) -> u64 {
        self.counts
            .iter()
            .filter(|((_, s), _)| *s == state)
            .map(|(_, n)| n)
            .sum()
    }
}
