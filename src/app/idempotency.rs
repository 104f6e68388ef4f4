//! Creates made once per idempotency key: the key is reserved in its own
//! stream, naming the task, before the task is made.

use tasklog_events::idempotency_event::{
    idempotency_stream, request_hash, IdempotencyEvent, IdempotencyKeyReserved,
};
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{ExpectedRevision, Metadata, TaskId};
use tasklog_projections::TaskView;

use super::service::{Service, ServiceError};
use super::write::{self, TaskWritten};
use crate::rules::task::{Command, Rejection};

/// Enough retries for a key that several requests reserve at once.
const MAX_ATTEMPTS: usize = 8;

/// How long an idempotency key stands for the task it created: long enough
/// for any client's retries.
pub const IDEMPOTENCY_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

impl Service {
    /// Creates a task once per idempotency `key` of `actor`: a create that
    /// comes again with the key and the same request gets the first task
    /// (`true`: replayed). The key is reserved in its own stream before the
    /// task is made, under the id the reservation names, so a retry after a
    /// crash in between makes that same task, and two nodes never make two.
    pub async fn create_once(
        &self,
        key: &str,
        created: TaskCreated,
        metadata: &Metadata,
    ) -> Result<(TaskWritten, bool), ServiceError> {
        let actor = metadata.actor.as_deref().unwrap_or_default();
        let stream = idempotency_stream(actor, key).to_string();
        let request = serde_json::to_vec(&created).expect("task events serialise");
        let request_hash = request_hash(&request);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let events = self.store.read_stream(&stream, 0, usize::MAX).await?;
            let reserved = events.last().and_then(|event| {
                let decoded = IdempotencyEvent::decode(
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                );
                match decoded {
                    Ok(IdempotencyEvent::Reserved(reserved)) => Some((event.revision, reserved)),
                    Err(_) => None,
                }
            });
            let (task_id, replayed) = match reserved {
                Some((_, reserved)) if reserved.expires_at > now => {
                    if reserved.request_hash != request_hash {
                        return Err(ServiceError::KeyReused);
                    }
                    let id = reserved.task_id;
                    if let Some(task) = self.view(id).await? {
                        let position = self.views.position();
                        return Ok((TaskWritten { task, position }, true));
                    }
                    (id, true)
                }
                stale => {
                    let id = TaskId::new();
                    let reservation = IdempotencyEvent::Reserved(IdempotencyKeyReserved {
                        task_id: id,
                        request_hash: request_hash.clone(),
                        expires_at: now + IDEMPOTENCY_KEY_LIFETIME,
                    });
                    let expected = stale.map_or(ExpectedRevision::NoStream, |(revision, _)| {
                        ExpectedRevision::Exact(revision)
                    });
                    let new_event = reservation.to_new_event(now, metadata.clone());
                    match self.append(&stream, expected, vec![new_event]).await {
                        Ok(_) => (id, false),
                        // Another request reserved the key meanwhile: read it again.
                        Err(ServiceError::Contended) => continue,
                        Err(error) => return Err(error),
                    }
                }
            };
            let written = match self
                .execute(task_id, Command::Create(created.clone()), metadata)
                .await
            {
                // Made by the first request, or by a concurrent retry.
                Err(ServiceError::Rejected(Rejection::TaskExists)) => {
                    let position = self.views.position();
                    let loaded = write::Loaded::<TaskView>::from_log(self, task_id).await?;
                    let task = loaded.state.ok_or(Rejection::TaskNotFound)?;
                    TaskWritten { task, position }
                }
                outcome => outcome?,
            };
            return Ok((written, replayed));
        }
        Err(ServiceError::Contended)
    }
}
