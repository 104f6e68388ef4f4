//! For analytics consumers: the event stream over Server-Sent Events, and
//! durable consumers that keep their place in the log on the server.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use futures::stream::Fuse;
use futures::{Stream, StreamExt};
use tasklog_api::audit::CloudEvent;
use tasklog_api::consumers::{Acknowledge, Consumer, ConsumerList, SseEvent, StreamQuery};
use tasklog_events::consumer_event::is_valid_consumer_name;
use tasklog_events::subscription::next_ready;
use tasklog_events::{Position, RecordedEvent, SharedEventStream};
use tasklog_projections::ConsumerView;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::body::{Json, Path, Query};
use super::error::{ApiError, ErrorBody};
use super::{Actor, AppState};
use crate::app::event_filter::EventFilter;
use crate::app::service::Service;
use crate::app::write::ConsumerCommand;
use crate::http::auth::Scope;
use crate::http::wire::wire_time;
use crate::telemetry::metrics::OpenStream;

/// Idle connections get a comment this often, so proxies keep them open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes(state: &AppState) -> Router<AppState> {
    let read = Router::new()
        .route("/v1/events/stream", get(stream))
        .route("/v1/consumers", get(list_consumers))
        .route("/v1/consumers/{name}", get(show_consumer));
    let write = Router::new().route("/v1/consumers/{name}", put(acknowledge));
    super::scoped(read, state, Scope::EventsRead).merge(super::scoped(
        write,
        state,
        Scope::ConsumersWrite,
    ))
}

/// Task events as Server-Sent Events, each a CloudEvents JSON object whose SSE
/// `id` is its log position: the log from the start point, then live. Resume
/// with `Last-Event-ID`. A slow reader is served from the log at its own pace.
#[utoipa::path(get, path = "/v1/events/stream", tag = "analytics", operation_id = "streamEvents",
    params(StreamQuery, ("Last-Event-ID" = Option<u64>, Header, description = "resume after this log position: the `id` of the last event received")),
    responses((status = 200, description = "Server-Sent Events: each `data` a CloudEvents JSON object (`CloudEvent`), each `id` its log position",
        content_type = "text/event-stream", body = SseEvent)))]
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(ApiError::InvalidHeader {
                    name: "Last-Event-ID",
                    expected: "a log position",
                })?,
        ),
    };
    let consumer_position = query.consumer.as_deref().map(|name| {
        let views = state.service.views.read();
        views.consumers.get(name).map_or(0, |c| c.position.0)
    });
    let after = Position(
        last_event_id
            .or(query.from)
            .or(consumer_position)
            .unwrap_or(0),
    );
    let filter = EventFilter::new(query.task_type, query.event_type);
    let mut stopping = state.stopping.clone();
    let frames = sse_frames(
        state.service.subscriptions.subscribe(after),
        filter,
        state.service.clone(),
        state.encoded_events.clone(),
    )
    .take_until(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response())
}

/// The most events written to a client at once.
const WRITE_MOST: usize = 256;

/// The subscription, filtered and framed: every event ready when the client
/// is written to goes in one write, and a comment goes out when nothing else
/// did for [`KEEP_ALIVE`]. A failed read ends the stream; the client resumes
/// with `Last-Event-ID`.
fn sse_frames(
    events: SharedEventStream,
    filter: EventFilter,
    service: Service,
    encoded: Arc<EncodedEvents>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let mut keep_alive = tokio::time::interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let framing = Framing {
        events: events.fuse(),
        ready: Vec::new(),
        frames: Vec::new(),
        filter,
        service,
        encoded,
        keep_alive,
        wrote: false,
        failed: false,
        _open: OpenStream::opened(),
    };
    futures::stream::unfold(framing, |mut framing| async move {
        let frames = framing.next().await?;
        Some((Ok(frames), framing))
    })
}

struct Framing {
    events: Fuse<SharedEventStream>,
    /// The events of one write, and their frames: kept from write to write.
    ready: Vec<<SharedEventStream as Stream>::Item>,
    frames: Vec<Bytes>,
    filter: EventFilter,
    service: Service,
    encoded: Arc<EncodedEvents>,
    keep_alive: Interval,
    /// Whether anything was written since the last keep-alive tick.
    wrote: bool,
    /// The subscription failed: what was framed went out, nothing more will.
    failed: bool,
    /// Counts the stream as open until it is dropped.
    _open: OpenStream,
}

impl Framing {
    async fn next(&mut self) -> Option<Bytes> {
        while !self.failed {
            let more = tokio::select! {
                more = next_ready(&mut self.events, &mut self.ready, WRITE_MOST) => more,
                _ = self.keep_alive.tick() => {
                    if std::mem::take(&mut self.wrote) {
                        continue;
                    }
                    return Some(Bytes::from_static(b":\n\n"));
                }
            };
            if !more {
                return None;
            }
            self.frames.clear();
            for event in self.ready.drain(..) {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::warn!(%error, "an event stream lost the log");
                        self.failed = true;
                        break;
                    }
                };
                let views = Some(&self.service.views.projections);
                if self
                    .filter
                    .admits(&event, &*self.service.store, views)
                    .await
                {
                    self.frames.push(self.encoded.frame(&event));
                }
            }
            if !self.frames.is_empty() {
                self.wrote = true;
                return Some(concat(&mut self.frames));
            }
        }
        None
    }
}

/// The frames as one write: a lone frame as it is, several copied once into
/// a buffer of their size.
fn concat(frames: &mut Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.pop().expect("one frame");
    }
    let mut write = Vec::with_capacity(frames.iter().map(Bytes::len).sum());
    for frame in frames.drain(..) {
        write.extend_from_slice(&frame);
    }
    Bytes::from(write)
}

/// Recent events as Server-Sent Events frames (`id`, then the CloudEvents
/// JSON as `data`): every live stream sends the same new events, so each is
/// framed once, by the first stream to send it, not once per stream. A ring
/// of slots by position, each behind its own lock.
pub struct EncodedEvents {
    slots: Vec<Mutex<Option<Encoded>>>,
}

/// An event's position and its frame.
type Encoded = (Position, Bytes);

impl EncodedEvents {
    const SLOTS: usize = 4096;

    fn frame(&self, event: &RecordedEvent) -> Bytes {
        let slot = &self.slots[(event.position.0 % Self::SLOTS as u64) as usize];
        if let Some((position, frame)) = &*slot.lock().expect("encoded event") {
            if *position == event.position {
                return frame.clone();
            }
        }
        // Compact JSON has no line breaks, so it is one `data` line.
        let json = serde_json::to_string(&CloudEvent::of(event)).expect("events serialise");
        let frame = Bytes::from(format!("id: {}\ndata: {json}\n\n", event.position.0));
        *slot.lock().expect("encoded event") = Some((event.position, frame.clone()));
        frame
    }
}

impl Default for EncodedEvents {
    fn default() -> Self {
        EncodedEvents {
            slots: (0..Self::SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

fn consumer(service: &Service, name: &str) -> Option<Consumer> {
    let views = service.views.read();
    let head = views.position.0;
    views.consumers.get(name).map(|c| Consumer {
        name: name.to_owned(),
        position: c.position.0,
        acknowledged_time: wire_time(c.acknowledged_time),
        head,
        lag: head.saturating_sub(c.position.0),
    })
}

/// Every durable consumer, with its lag.
#[utoipa::path(get, path = "/v1/consumers", tag = "analytics", operation_id = "listConsumers",
    responses((status = 200, description = "every durable consumer", body = ConsumerList)))]
pub async fn list_consumers(State(state): State<AppState>) -> Response {
    let names: Vec<String> = {
        let views = state.service.views.read();
        views.consumers.keys().cloned().collect()
    };
    let consumers = names
        .iter()
        .filter_map(|name| consumer(&state.service, name))
        .collect();
    axum::Json(ConsumerList { consumers }).into_response()
}

/// One durable consumer.
#[utoipa::path(get, path = "/v1/consumers/{name}", tag = "analytics", operation_id = "getConsumer",
    params(("name" = String, Path, description = "the consumer")),
    responses((status = 200, description = "the consumer", body = Consumer),
        (status = 404, description = "`consumer_not_found`", body = ErrorBody)))]
pub async fn show_consumer(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let found = consumer(&state.service, &name).ok_or(ApiError::ConsumerNotFound)?;
    Ok(axum::Json(found).into_response())
}

/// Records how far a consumer has processed the log: an event of its own stream.
#[utoipa::path(put, path = "/v1/consumers/{name}", tag = "analytics", operation_id = "acknowledgeConsumer", request_body = Acknowledge,
    params(("name" = String, Path, description = "the consumer: 1 to 64 of a-z, 0-9, - and _")),
    responses((status = 200, description = "the consumer at its new position", body = Consumer)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    actor: axum::Extension<Actor>,
    Path(name): Path<String>,
    Json(body): Json<Acknowledge>,
) -> Result<Response, ApiError> {
    let mut problems = serde_json::Map::new();
    if !is_valid_consumer_name(&name) {
        problems.insert("name".into(), "must be 1 to 64 of a-z, 0-9, - and _".into());
    }
    let head = state.service.head().await?;
    if body.position > head.0 {
        problems.insert(
            "position".into(),
            format!("must not be past the head of the log ({head})").into(),
        );
    }
    if !problems.is_empty() {
        return Err(ApiError::InvalidFields(problems));
    }
    let command = ConsumerCommand::Acknowledge(Position(body.position));
    let written = state
        .service
        .write::<ConsumerView>(name.clone(), &command, &actor.metadata())
        .await?;
    let found = consumer(&state.service, &name)
        .ok_or_else(|| ApiError::unavailable("the views lag the log"))?;
    Ok((super::PositionHeader(written.position), axum::Json(found)).into_response())
}
