//! The one write path. Every change to a stream of tasklog's (a task, a
//! schedule, a queue's settings, a consumer's position) is decided on the
//! stream's current state and appended at the revision it was decided on; if
//! the stream moved meanwhile (another worker, another node), the append
//! conflicts, the state is folded again from the log and the command decided
//! again. The answer waits until the views include the write.

use std::future::Future;

use chrono::{DateTime, Utc};
use tasklog_events::consumer_event::{ConsumerAcknowledged, ConsumerEvent};
use tasklog_events::queue_event::{QueueEvent, QueueLimitSet, QueuePaused, QueueResumed};
use tasklog_events::schedule_event::{ScheduleEvent, ScheduleId};
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{
    AppendError, DomainEvent, ExpectedRevision, Metadata, Position, RecordedEvent, StreamName,
    TaskEvent, TaskId,
};
use tasklog_projections::{
    ConsumerView, ProjectionRunner, Projections, QueueSettings, ScheduleView, TaskView,
};

use super::service::{Service, ServiceError};
use crate::rules::schedules::{self, ScheduleCommand};
use crate::rules::task::{self, Command};
use crate::rules::Rejection;
use crate::telemetry::{self, metrics};

/// Enough retries for a busy stream; each one re-reads the log.
const MAX_ATTEMPTS: usize = 8;

/// The state of one stream that commands are decided on.
pub trait Aggregate: Sized + Send {
    type Id: Clone + Send;
    type Command;
    type Event: DomainEvent;

    /// The stream that holds the aggregate's events.
    fn stream(id: Self::Id) -> StreamName;

    /// The aggregate as the in-memory views show it (None: no such thing, or deleted).
    fn from_projections(views: &Projections, id: Self::Id) -> Option<Self>;

    /// The aggregate as the views show it; those kept only on disk are read there.
    fn from_views(
        views: &ProjectionRunner,
        id: Self::Id,
    ) -> impl Future<Output = Result<Option<Self>, ServiceError>> + Send {
        let found = Self::from_projections(&views.read(), id);
        async move { Ok(found) }
    }

    /// The revision of the last event folded in.
    fn revision(&self) -> u64;

    /// Whether commands are decided without looking at the state (a setting
    /// that the last write wins): then they append whatever the stream holds,
    /// with no conflict to retry and no read of the stream.
    const BLIND: bool = false;

    /// The events `command` leads to at `now`, or why it does not apply.
    fn decide(
        state: Option<&Self>,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Rejection>;

    /// Tells operators what a durable write of `events` did to `state` (as
    /// it was before): metrics and log lines. Nothing by default.
    fn written(
        _id: &Self::Id,
        _state: Option<&Self>,
        _events: &[Self::Event],
        _now: DateTime<Utc>,
    ) {
    }

    /// The aggregate folded from its stream's events, by the views' own code.
    fn fold(id: Self::Id, events: &[RecordedEvent]) -> Option<Self> {
        Self::from_projections(&Projections::rebuild(events), id)
    }
}

/// An aggregate as a write left it (None: deleted), and the log position the
/// answer reflects.
pub struct Written<A> {
    pub state: Option<A>,
    pub position: Position,
}

/// A task as a write left it, and the log position the answer reflects.
pub struct TaskWritten {
    pub task: TaskView,
    pub position: Position,
}

impl TaskWritten {
    /// A task is never deleted, so a write leaves one (unless it was not found).
    pub(super) fn of(written: Written<TaskView>) -> Result<Self, ServiceError> {
        let task = written.state.ok_or(Rejection::TaskNotFound)?;
        Ok(TaskWritten {
            task,
            position: written.position,
        })
    }
}

/// A state to decide on, and the stream revision it was read at.
pub struct Loaded<A> {
    pub state: Option<A>,
    pub expected: ExpectedRevision,
}

impl<A: Aggregate> Loaded<A> {
    /// What the views show; they may lag the log.
    pub async fn from_views(service: &Service, id: A::Id) -> Result<Self, ServiceError> {
        let state = A::from_views(&service.views, id).await?;
        let expected = state.as_ref().map_or(ExpectedRevision::NoStream, |s| {
            ExpectedRevision::Exact(s.revision())
        });
        Ok(Loaded { state, expected })
    }

    /// What the log holds now.
    pub async fn from_log(service: &Service, id: A::Id) -> Result<Self, ServiceError> {
        let events = service
            .store
            .read_stream(&A::stream(id.clone()).to_string(), 0, usize::MAX)
            .await?;
        let expected = events.last().map_or(ExpectedRevision::NoStream, |e| {
            ExpectedRevision::Exact(e.revision)
        });
        Ok(Loaded {
            state: A::fold(id, &events),
            expected,
        })
    }
}

impl Service {
    /// Runs `command` on task `id` through the one write path.
    pub async fn execute(
        &self,
        id: TaskId,
        command: Command,
        metadata: &Metadata,
    ) -> Result<TaskWritten, ServiceError> {
        TaskWritten::of(self.write::<TaskView>(id, &command, metadata).await?)
    }

    /// Creates a task under a fresh id. Its stream cannot hold anything yet,
    /// so the views are not asked (for an unknown id they would search the
    /// stored rows in vain); the append still insists that the stream is new.
    pub async fn create(
        &self,
        created: TaskCreated,
        metadata: &Metadata,
    ) -> Result<TaskWritten, ServiceError> {
        let id = TaskId::new();
        let command = Command::Create(created);
        let fresh = Loaded {
            state: None,
            expected: ExpectedRevision::NoStream,
        };
        match self.write_once(id, fresh, &command, metadata).await {
            // Only if an id ever came twice: decided again on what the log holds.
            Err(ServiceError::Contended) => self.execute(id, command, metadata).await,
            outcome => TaskWritten::of(outcome?),
        }
    }

    /// Runs `command` on aggregate `id`: decides on the views, and on a
    /// conflict, or a rejection the views may be too old for, on the log.
    pub async fn write<A: Aggregate>(
        &self,
        id: A::Id,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Written<A>, ServiceError> {
        if A::BLIND {
            let loaded = Loaded {
                state: A::from_views(&self.views, id.clone()).await?,
                expected: ExpectedRevision::Any,
            };
            return self.write_once(id, loaded, command, metadata).await;
        }
        for attempt in 0..MAX_ATTEMPTS {
            let loaded = if attempt == 0 {
                Loaded::from_views(self, id.clone()).await?
            } else {
                Loaded::from_log(self, id.clone()).await?
            };
            match self.write_once(id.clone(), loaded, command, metadata).await {
                Err(ServiceError::Contended) => continue,
                // The views may lag the log (another node wrote): check the log before saying no.
                Err(ServiceError::Rejected(_)) if attempt == 0 => continue,
                outcome => return outcome,
            }
        }
        Err(ServiceError::Contended)
    }

    /// One decision on `loaded` and one append; `Contended` if the stream
    /// moved meanwhile.
    pub async fn write_once<A: Aggregate>(
        &self,
        id: A::Id,
        loaded: Loaded<A>,
        command: &A::Command,
        metadata: &Metadata,
    ) -> Result<Written<A>, ServiceError> {
        let now = self.clock.now();
        let events = A::decide(loaded.state.as_ref(), command, now)?;
        if events.is_empty() {
            // Nothing changes (a consumer acknowledging where it is): write nothing.
            let position = self.views.position();
            return Ok(Written {
                state: loaded.state,
                position,
            });
        }
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(now, metadata.clone()))
            .collect();
        let stream = A::stream(id.clone()).to_string();
        let position = self.append(&stream, loaded.expected, new_events).await?;
        A::written(&id, loaded.state.as_ref(), &events, now);
        self.visible(id, position).await
    }

    /// Appends `events` to `stream`; the position of the last one, or
    /// `Contended` if the stream is not at `expected`.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<tasklog_events::NewEvent>,
    ) -> Result<Position, ServiceError> {
        let started = std::time::Instant::now();
        let appended = self.store.append(stream, expected, events).await;
        settle(appended.map(|a| a.last_position), started)
    }

    /// Appends to several streams, all or none; the position of the last
    /// event, or `Contended` if a stream is not at its expected revision.
    pub async fn append_many(
        &self,
        appends: Vec<tasklog_events::StreamAppend>,
    ) -> Result<Position, ServiceError> {
        let started = std::time::Instant::now();
        let appended = self.store.append_many(appends).await;
        let last = |all: Vec<tasklog_events::AppendResult>| {
            all.iter()
                .map(|a| a.last_position)
                .max()
                .unwrap_or(Position::START)
        };
        settle(appended.map(last), started)
    }

    /// The aggregate once the views include `position` (read-your-writes); from
    /// the log if they lag.
    pub(super) async fn visible<A: Aggregate>(
        &self,
        id: A::Id,
        position: Position,
    ) -> Result<Written<A>, ServiceError> {
        if self
            .views
            .wait_for(position, super::service::VISIBLE_WITHIN)
            .await
        {
            // Read the position first: the state is at least as new.
            let position = self.views.position();
            let state = A::from_views(&self.views, id).await?;
            return Ok(Written { state, position });
        }
        tracing::warn!(%position, "the views lag the log; answering from the log");
        let state = Loaded::<A>::from_log(self, id).await?.state;
        Ok(Written { state, position })
    }
}

/// An append's outcome for the write path, counted with the time it took.
fn settle(
    appended: Result<Position, AppendError>,
    started: std::time::Instant,
) -> Result<Position, ServiceError> {
    let (outcome, result) = match appended {
        Ok(position) => ("ok", Ok(position)),
        Err(AppendError::Conflict { .. }) => ("conflict", Err(ServiceError::Contended)),
        Err(error) => ("error", Err(ServiceError::Unavailable(error.into()))),
    };
    metrics::append(outcome, started.elapsed());
    result
}

impl Aggregate for TaskView {
    type Id = TaskId;
    type Command = Command;
    type Event = TaskEvent;

    fn stream(id: TaskId) -> StreamName {
        StreamName::Task(id)
    }

    fn from_projections(views: &Projections, id: TaskId) -> Option<Self> {
        views.task(&id).cloned()
    }

    async fn from_views(
        views: &ProjectionRunner,
        id: TaskId,
    ) -> Result<Option<Self>, ServiceError> {
        Ok(views.task(id).await?)
    }

    fn revision(&self) -> u64 {
        self.revision
    }

    fn decide(
        state: Option<&Self>,
        command: &Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskEvent>, Rejection> {
        task::decide(state, command, now)
    }

    fn written(id: &TaskId, task: Option<&Self>, events: &[TaskEvent], now: DateTime<Utc>) {
        telemetry::task_written(*id, task, events, now);
    }

    fn fold(_: TaskId, events: &[RecordedEvent]) -> Option<Self> {
        TaskView::fold(events)
    }
}

impl Aggregate for ScheduleView {
    type Id = ScheduleId;
    type Command = ScheduleCommand;
    type Event = ScheduleEvent;

    fn stream(id: ScheduleId) -> StreamName {
        StreamName::Schedule(id)
    }

    fn from_projections(views: &Projections, id: ScheduleId) -> Option<Self> {
        views.schedules.get(&id).cloned()
    }

    fn revision(&self) -> u64 {
        self.revision
    }

    fn decide(
        state: Option<&Self>,
        command: &ScheduleCommand,
        _: DateTime<Utc>,
    ) -> Result<Vec<ScheduleEvent>, Rejection> {
        schedules::decide(state, command)
    }
}

/// What an admin asks of a queue: its settings, all of them.
pub struct QueueCommand {
    /// At most this many tasks of the type run at once (None: no limit).
    pub max_running: Option<u32>,
    /// Claims hand out none of the type's tasks.
    pub paused: bool,
}

/// A task type's queue settings, by the type.
impl Aggregate for QueueSettings {
    type Id = String;
    type Command = QueueCommand;
    type Event = QueueEvent;
    const BLIND: bool = true;

    fn stream(task_type: String) -> StreamName {
        StreamName::Queue(task_type)
    }

    fn from_projections(views: &Projections, task_type: String) -> Option<Self> {
        views.queues.get(&task_type).cloned()
    }

    fn revision(&self) -> u64 {
        self.revision
    }

    /// An event for each setting that changes; none when none does, so a
    /// settings request sent again writes nothing.
    fn decide(
        settings: Option<&Self>,
        command: &QueueCommand,
        _: DateTime<Utc>,
    ) -> Result<Vec<QueueEvent>, Rejection> {
        let now = settings.cloned().unwrap_or_default();
        let mut events = Vec::new();
        if command.max_running != now.max_running {
            let max_running = command.max_running;
            events.push(QueueEvent::LimitSet(QueueLimitSet { max_running }));
        }
        match (now.paused, command.paused) {
            (false, true) => events.push(QueueEvent::Paused(QueuePaused {})),
            (true, false) => events.push(QueueEvent::Resumed(QueueResumed {})),
            _ => {}
        }
        Ok(events)
    }
}

/// What a durable consumer tells of itself.
pub enum ConsumerCommand {
    /// It has processed the log up to and including this position.
    Acknowledge(Position),
}

/// A durable consumer's position, by its name.
impl Aggregate for ConsumerView {
    type Id = String;
    type Command = ConsumerCommand;
    type Event = ConsumerEvent;
    const BLIND: bool = true;

    fn stream(name: String) -> StreamName {
        StreamName::Consumer(name)
    }

    fn from_projections(views: &Projections, name: String) -> Option<Self> {
        views.consumers.get(&name).cloned()
    }

    fn revision(&self) -> u64 {
        self.revision
    }

    fn decide(
        consumer: Option<&Self>,
        ConsumerCommand::Acknowledge(position): &ConsumerCommand,
        _: DateTime<Utc>,
    ) -> Result<Vec<ConsumerEvent>, Rejection> {
        if consumer.is_some_and(|c| c.position == *position) {
            return Ok(vec![]);
        }
        let acknowledged = ConsumerAcknowledged {
            position: position.0,
        };
        Ok(vec![ConsumerEvent::Acknowledged(acknowledged)])
    }
}
