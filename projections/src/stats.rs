//! Counts per state and type, and run durations: what `/metrics` reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::task_view::{TaskState, TaskView};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Tasks per (type, state).
    #[serde(with = "counts_as_list")]
    pub counts: BTreeMap<(String, TaskState), u64>,
    /// Finished runs per type: how many, and their total seconds.
    pub runs: BTreeMap<String, RunTotals>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunTotals {
    pub count: u64,
    pub seconds: f64,
}

/// What the stats need of a task before an event changes it.
pub struct Before {
    state: TaskState,
    running: bool,
}

impl Before {
    pub fn of(view: &TaskView) -> Self {
        Before {
            state: view.state,
            running: view.duration.is_none(),
        }
    }
}

impl Stats {
    /// Accounts for a task moving from `before` (None: new) to `after`; a task
    /// keeps its type.
    pub fn update(&mut self, before: Option<Before>, after: &TaskView) {
        if let Some(before) = &before {
            let key = (after.task_type.clone(), before.state);
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
        let run_ended = after.duration.is_some() && before.is_some_and(|b| b.running);
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

/// JSON maps need string keys: the counts are stored as `[type, state, count]` rows.
mod counts_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::task_view::TaskState;

    type Counts = BTreeMap<(String, TaskState), u64>;

    pub fn serialize<S: Serializer>(counts: &Counts, serializer: S) -> Result<S::Ok, S::Error> {
        let rows: Vec<_> = counts.iter().map(|((t, s), n)| (t, s, n)).collect();
        rows.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Counts, D::Error> {
        let rows = Vec::<(String, TaskState, u64)>::deserialize(deserializer)?;
        Ok(rows.into_iter().map(|(t, s, n)| ((t, s), n)).collect())
    }
}
