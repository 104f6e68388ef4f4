//! Creates made once per idempotency key: the key is reserved in its own
//! stream, naming the task (or a batch's tasks), before the tasks are made.

use tasklog_events::idempotency_event::{
    idempotency_stream, request_hash, IdempotencyEvent, IdempotencyKeyReserved,
    IdempotencyKeyReservedForBatch,
};
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{ExpectedRevision, Metadata, TaskId};
use tasklog_projections::TaskView;

use super::batch::BatchWritten;
use super::service::{Service, ServiceError};
use super::write::{self, TaskWritten};
use crate::rules::task::{Command, Rejection};

/// Enough retries for a key that several requests reserve at once.
const MAX_ATTEMPTS: usize = 8;

/// How long an idempotency key stands for the tasks it created: long enough
/// for any client's retries.
pub const IDEMPOTENCY_KEY_LIFETIME: chrono::Duration = chrono::Duration::hours(24);

/// The tasks a key stands for: one create's, or a batch's in order.
#[derive(Clone, Debug, PartialEq)]
enum Reserved {
    Task(TaskId),
    Batch(Vec<TaskId>),
}

impl Reserved {
    fn event(
        self,
        request_hash: String,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> IdempotencyEvent {
        match self {
            Reserved::Task(task_id) => IdempotencyEvent::Reserved(IdempotencyKeyReserved {
                task_id,
                request_hash,
                expires_at,
            }),
            Reserved::Batch(task_ids) => {
                IdempotencyEvent::ReservedForBatch(IdempotencyKeyReservedForBatch {
                    task_ids,
                    request_hash,
                    expires_at,
                })
            }
        }
    }
}

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
        let request = serde_json::to_vec(&created).expect("task events serialise");
        let fresh = || Reserved::Task(TaskId::new());
        let (Reserved::Task(task_id), replayed) =
            self.reserve(key, &request, fresh, metadata).await?
        else {
            return Err(ServiceError::KeyReused);
        };
        if replayed {
            if let Some(task) = self.view(task_id).await? {
                let position = self.views.position();
                return Ok((TaskWritten { task, position }, true));
            }
        }
        let written = match self
            .execute(task_id, Command::Create(created), metadata)
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
        Ok((written, replayed))
    }

    /// Creates a batch of tasks once per idempotency `key`, as
    /// [`create_once`](Self::create_once) does one: the key names every task
    /// of the batch, and a retry gets the same tasks (`true`: replayed).
    pub async fn create_many_once(
        &self,
        key: &str,
        created: Vec<TaskCreated>,
        metadata: &Metadata,
    ) -> Result<(BatchWritten, bool), ServiceError> {
        let request = serde_json::to_vec(&created).expect("task events serialise");
        let fresh = || Reserved::Batch(created.iter().map(|_| TaskId::new()).collect());
        let (Reserved::Batch(ids), replayed) = self.reserve(key, &request, fresh, metadata).await?
        else {
            return Err(ServiceError::KeyReused);
        };
        if ids.len() != created.len() {
            return Err(ServiceError::KeyReused);
        }
        if replayed {
            let position = self.views.position();
            let mut tasks = Vec::with_capacity(ids.len());
            for &id in &ids {
                match self.view(id).await? {
                    Some(task) => tasks.push(task),
                    None => break,
                }
            }
            if tasks.len() == ids.len() {
                return Ok((BatchWritten { tasks, position }, true));
            }
        }
        let written = self.create_many_as(ids, created, metadata).await?;
        Ok((written, replayed))
    }

    /// The tasks `key` of `metadata`'s actor stands for, reserving it for
    /// `fresh()` ids if it stands for none (or has expired); `true` if an
    /// earlier request reserved it. The same key with another request is
    /// `KeyReused`.
    async fn reserve(
        &self,
        key: &str,
        request: &[u8],
        fresh: impl Fn() -> Reserved,
        metadata: &Metadata,
    ) -> Result<(Reserved, bool), ServiceError> {
        let actor = metadata.actor.as_deref().unwrap_or_default();
        let stream = idempotency_stream(actor, key).to_string();
        let request_hash = request_hash(request);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let events = self.store.read_stream(&stream, 0, usize::MAX).await?;
            let last = events.last().and_then(|event| {
                let decoded = IdempotencyEvent::decode(
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                );
                let (reserved, hash, expires_at) = match decoded.ok()? {
                    IdempotencyEvent::Reserved(r) => {
                        (Reserved::Task(r.task_id), r.request_hash, r.expires_at)
                    }
                    IdempotencyEvent::ReservedForBatch(r) => {
                        (Reserved::Batch(r.task_ids), r.request_hash, r.expires_at)
                    }
                };
                Some((event.revision, reserved, hash, expires_at))
            });
            let expected = match last {
                Some((_, reserved, hash, expires_at)) if expires_at > now => {
                    if hash != request_hash {
                        return Err(ServiceError::KeyReused);
                    }
                    return Ok((reserved, true));
                }
                Some((revision, ..)) => ExpectedRevision::Exact(revision),
                None => ExpectedRevision::NoStream,
            };
            let reserved = fresh();
            let reservation = reserved
                .clone()
                .event(request_hash.clone(), now + IDEMPOTENCY_KEY_LIFETIME);
            let new_event = reservation.to_new_event(now, metadata.clone());
            match self.append(&stream, expected, vec![new_event]).await {
                Ok(_) => return Ok((reserved, false)),
                // Another request reserved the key meanwhile: read it again.
                Err(ServiceError::Contended) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(ServiceError::Contended)
    }
}
