//! Which tasks a list or a claim wants. The label and tag rules and the
//! selector are part of the wire contract, in `tasklog-api`.

use tasklog_projections::TaskView;

pub use tasklog_api::labels::*;

/// Which tasks a list or a claim wants: labels matching a selector, tags,
/// and text in the name.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub selector: Option<Selector>,
    /// The task must carry every one of these.
    pub tags: Vec<String>,
    /// The task's name must hold this text, in any case: kept lowercase.
    pub name_contains: Option<String>,
}

impl TaskFilter {
    pub fn admits(&self, task: &TaskView) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.matches(&task.labels))
            && self.tags.iter().all(|tag| task.tags.contains(tag))
            && self
                .name_contains
                .as_ref()
                .is_none_or(|text| task.name.to_lowercase().contains(text.as_str()))
    }
}
