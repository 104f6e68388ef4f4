//! The queue index: pending tasks ordered for claiming, so a claim is a lookup.
//!
//! Pending tasks whose `available_time` has come sit in a per-type `ready` set
//! in claim order (highest priority, then earliest available time, then oldest);
//! the others wait in `scheduled` until [`QueueIndex::promote`] moves them.
//! Running tasks are indexed by lease expiry and pending tasks by expiration
//! time, for the jobs that requeue and expire them.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use tasklog_events::{Position, TaskId};

use crate::task_view::{TaskState, TaskView};

/// Claim order: the smallest key runs first.
type ClaimKey = (Reverse<i64>, DateTime<Utc>, Position, TaskId);

#[derive(Debug, Default)]
pub struct QueueIndex {
    ready: HashMap<String, BTreeSet<ClaimKey>>,
    scheduled: BTreeSet<(DateTime<Utc>, TaskId)>,
    expiring: BTreeSet<(DateTime<Utc>, TaskId)>,
    leases: BTreeSet<(DateTime<Utc>, TaskId)>,
    /// What each indexed task is filed under, to take it out again.
    entries: HashMap<TaskId, Entry>,
    /// Everything available at or before this time is in `ready`.
    promoted_until: Option<DateTime<Utc>>,
}

#[derive(Debug)]
struct Entry {
    task_type: String,
    claim: ClaimKey,
    expires: DateTime<Utc>,
    lease: Option<DateTime<Utc>>,
    pending: bool,
}

impl QueueIndex {
    /// Files the task as its view now stands (pending, running, or neither).
    pub fn update(&mut self, view: &TaskView) {
        self.remove(view.id);
        let claim = (
            Reverse(view.priority),
            view.available_time,
            view.created_position,
            view.id,
        );
        let entry = match view.state {
            TaskState::Pending => {
                if self
                    .promoted_until
                    .is_some_and(|t| view.available_time <= t)
                {
                    self.ready
                        .entry(view.task_type.clone())
                        .or_default()
                        .insert(claim);
                } else {
                    self.scheduled.insert((view.available_time, view.id));
                }
                self.expiring.insert((view.expiration_time, view.id));
                Entry {
                    task_type: view.task_type.clone(),
                    claim,
                    expires: view.expiration_time,
                    lease: None,
                    pending: true,
                }
            }
            TaskState::Running => {
                let lease = view.lease.as_ref().map(|l| l.expires_at);
                if let Some(at) = lease {
                    self.leases.insert((at, view.id));
                }
                Entry {
                    task_type: view.task_type.clone(),
                    claim,
                    expires: view.expiration_time,
                    lease,
                    pending: false,
                }
            }
            TaskState::Completed | TaskState::Failed => return,
        };
        self.entries.insert(view.id, entry);
    }

    fn remove(&mut self, id: TaskId) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        if entry.pending {
            if let Some(ready) = self.ready.get_mut(&entry.task_type) {
                ready.remove(&entry.claim);
            }
            self.scheduled.remove(&(entry.claim.1, id));
            self.expiring.remove(&(entry.expires, id));
        }
        if let Some(at) = entry.lease {
            self.leases.remove(&(at, id));
        }
    }

    /// Moves every task available by `now` into the ready sets.
    pub fn promote(&mut self, now: DateTime<Utc>) {
        while let Some(&(at, id)) = self.scheduled.first() {
            if at > now {
                break;
            }
            self.scheduled.pop_first();
            if let Some(entry) = self.entries.get(&id) {
                let ready = self.ready.entry(entry.task_type.clone()).or_default();
                ready.insert(entry.claim);
            }
        }
        self.promoted_until = Some(self.promoted_until.map_or(now, |t| t.max(now)));
    }

    /// Up to `limit` tasks of `types` that `wanted` admits and a worker may
    /// claim at `now`, best first. Tasks that came due since the last
    /// [`promote`](Self::promote) are included; expired ones are not.
    pub fn candidates(
        &self,
        types: &[String],
        now: DateTime<Utc>,
        limit: usize,
        wanted: impl Fn(TaskId) -> bool,
    ) -> Vec<TaskId> {
        let mut best: Vec<ClaimKey> = Vec::with_capacity(limit);
        for task_type in types {
            if let Some(ready) = self.ready.get(task_type) {
                let fresh = ready
                    .iter()
                    .filter(|key| self.entries[&key.3].expires > now && wanted(key.3));
                best.extend(fresh.take(limit));
            }
        }
        for &(at, id) in &self.scheduled {
            if at > now {
                break;
            }
            let entry = &self.entries[&id];
            if entry.expires > now && types.contains(&entry.task_type) && wanted(id) {
                best.push(entry.claim);
            }
        }
        best.sort_unstable();
        best.truncate(limit);
        best.into_iter().map(|key| key.3).collect()
    }

    /// Pending tasks whose expiration time has come by `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> Vec<TaskId> {
        self.expiring
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Running tasks whose lease has lapsed by `now`.
    pub fn lapsed_leases(&self, now: DateTime<Utc>) -> Vec<TaskId> {
        self.leases
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// The next time a pending task becomes available, expires, or a lease lapses.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        [
            self.scheduled.first(),
            self.expiring.first(),
            self.leases.first(),
        ]
        .into_iter()
        .flatten()
        .map(|(at, _)| *at)
        .min()
    }
}
