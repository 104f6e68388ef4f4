//! A typed async client for tasklog's HTTP API, and a [`Worker`] runtime
//! that claims tasks and runs a handler on each.
//!
//! The request and answer types are the server's own, from
//! [`tasklog_api`] (re-exported as [`api`]), so the two cannot drift apart.
//! Answers of 429 and 503 (nothing was written) are sent again after the
//! server's `Retry-After`, a few times; other errors come back as
//! [`Error::Api`] with the server's error body.
//!
//! ```no_run
//! use tasklog_client::api::tasks::ListQuery;
//! use tasklog_client::Client;
//!
//! # async fn example() -> Result<(), tasklog_client::Error> {
//! let client = Client::new("http://127.0.0.1:8080", "my-token")?;
//! let pending = client
//!     .list_tasks(&ListQuery { state: Some("pending".into()), ..ListQuery::default() })
//!     .await?;
//! for task in pending.tasks {
//!     println!("{} {}", task.id, task.name);
//! }
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
pub use tasklog_api as api;
use tasklog_api::audit::{CloudEvent, EventPage, LogQuery, Verification};
use tasklog_api::consumers::{Acknowledge, Consumer, ConsumerList, StreamQuery};
use tasklog_api::errors::ErrorBody;
use tasklog_api::queues::{Queue, QueueList, QueueSettings};
use tasklog_api::schedules::{CreateSchedule, Schedule, ScheduleList};
use tasklog_api::tasks::*;
use tasklog_api::token::TokenInfo;

pub use worker::{Worker, WorkerStopped};

/// What a call can end with instead of its answer.
///
/// ```no_run
/// # async fn example(client: tasklog_client::Client) -> Result<(), tasklog_client::Error> {
/// match client.get_task("0123456789abcdef0123456789abcdef").await {
///     Ok(task) => println!("{}", task.state),
///     Err(error) if error.reason() == Some("task_not_found") => println!("no such task"),
///     Err(error) if error.is_transient() => println!("try again later: {error}"),
///     Err(error) => return Err(error),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: its status and body.
    #[error("{status}: {} ({})", body.message, body.reason)]
    Api {
        /// The answer's status, 400 to 599.
        status: StatusCode,
        /// The API's error body: `reason`, `message` and, for a bad
        /// request, the fields at fault.
        body: ErrorBody,
    },
    /// The server, or a proxy before it, answered an error without the
    /// API's error body.
    #[error("{status}: {text}")]
    Status {
        /// The answer's status.
        status: StatusCode,
        /// The answer's body, as text.
        text: String,
    },
    /// The request did not get an answer (connection refused, reset, timed
    /// out), or the answer could not be read.
    #[error("no answer from the server: {0}")]
    Http(#[from] reqwest::Error),
    /// The base URL or token cannot be used.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// The server's `reason`, like `task_not_found`, if it answered one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Error::Api { body, .. } => Some(&body.reason),
            _ => None,
        }
    }

    /// The answer's status, if there was an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api { status, .. } | Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the server refused for now (429, or a 5xx: nothing was
    /// written) or did not answer: the same request may be sent again.
    pub fn is_transient(&self) -> bool {
        match self.status() {
            Some(status) => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
            None => true,
        }
    }
}

/// How often and how long a refused request (429, 503) is tried again.
#[derive(Clone, Copy, Debug)]
pub struct Retries {
    /// Tries after the first.
    pub attempts: u32,
    /// The wait when the server names none; doubled on each try.
    pub first_wait: Duration,
    /// The longest wait, whatever `Retry-After` says.
    pub longest_wait: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 5,
            first_wait: Duration::from_millis(100),
            longest_wait: Duration::from_secs(10),
        }
    }
}

/// A connection to one tasklog server (or a load balancer before several).
/// Cheap to clone: clones share connections and the last position seen.
///
/// ```no_run
/// use tasklog_client::{Client, Retries};
///
/// # fn example() -> Result<(), tasklog_client::Error> {
/// let client = Client::new("http://127.0.0.1:8080", "my-token")?
///     // Behind a load balancer: reads wait for this client's own writes.
///     .read_your_writes(true)
///     .retries(Retries { attempts: 10, ..Retries::default() });
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    retries: Retries,
    /// Send `Tasklog-Min-Position` with the last position seen.
    read_your_writes: bool,
    last_position: Arc<AtomicU64>,
}

impl Client {
    /// A client of the server at `base` (like `http://127.0.0.1:8080`),
    /// sending `token` as its bearer token.
    pub fn new(base: &str, token: &str) -> Result<Client, Error> {
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Setup("the token is not a valid header value".into()))?;
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            retries: Retries::default(),
            read_your_writes: false,
            last_position: Arc::default(),
        })
    }

    /// Retries of refused requests other than the default.
    pub fn retries(mut self, retries: Retries) -> Client {
        self.retries = retries;
        self
    }

    /// With `true`, every request waits until the node answering it has
    /// seen this client's writes (it sends the last `Tasklog-Position` this
    /// client saw as `Tasklog-Min-Position`), so reads after writes agree on
    /// any node.
    pub fn read_your_writes(mut self, on: bool) -> Client {
        self.read_your_writes = on;
        self
    }

    /// The highest log position any answer to this client (or its clones)
    /// reflected.
    pub fn last_position(&self) -> u64 {
        self.last_position.load(Ordering::Relaxed)
    }

    // ---- tasks ---------------------------------------------------------

    /// `POST /v1/tasks`: creates a task.
    pub async fn create_task(&self, body: &CreateTask) -> Result<Task, Error> {
        self.call(Method::POST, "/v1/tasks", Some(body)).await
    }

    /// `POST /v1/tasks` with an `Idempotency-Key`: the same key again
    /// answers the task it made the first time.
    pub async fn create_task_once(&self, key: &str, body: &CreateTask) -> Result<Task, Error> {
        let request = self
            .request(Method::POST, "/v1/tasks")
            .header("idempotency-key", key)
            .json(body);
        self.send(request).await
    }

    /// `POST /v1/tasks/batch`: up to 1,000 tasks, all or none.
    pub async fn create_tasks(&self, body: &CreateTasks) -> Result<Vec<Task>, Error> {
        let batch: TaskBatch = self
            .call(Method::POST, "/v1/tasks/batch", Some(body))
            .await?;
        Ok(batch.tasks)
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn get_task(&self, id: &str) -> Result<Task, Error> {
        self.call(
            Method::GET,
            &format!("/v1/tasks/{}", segment(id)),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/tasks/{id}?revision=` or `?asOf=`: the task as it stood then.
    pub async fn get_task_as_of(&self, id: &str, when: &TimeTravel) -> Result<Task, Error> {
        let request = self
            .request(Method::GET, &format!("/v1/tasks/{}", segment(id)))
            .query(when);
        self.send(request).await
    }

    /// `GET /v1/tasks`: a page of tasks; pass its `next_cursor` as `cursor`
    /// for the next.
    pub async fn list_tasks(&self, query: &ListQuery) -> Result<TaskList, Error> {
        let request = self.request(Method::GET, "/v1/tasks").query(query);
        self.send(request).await
    }

    /// `POST /v1/tasks/claim`: the best available task, or `None` when none
    /// came within `waitSeconds`. `max` must be absent: see
    /// [`Client::claim_many`].
    pub async fn claim(&self, body: &ClaimRequest) -> Result<Option<Task>, Error> {
        let request = self.request(Method::POST, "/v1/tasks/claim").json(body);
        self.send_or_none(request).await
    }

    /// `POST /v1/tasks/claim` with `max`: up to that many tasks, none when
    /// none came within `waitSeconds`.
    pub async fn claim_many(&self, body: &ClaimRequest) -> Result<Vec<Task>, Error> {
        let request = self.request(Method::POST, "/v1/tasks/claim").json(body);
        let batch: Option<TaskBatch> = self.send_or_none(request).await?;
        Ok(batch.map(|b| b.tasks).unwrap_or_default())
    }

    /// `POST /v1/tasks/{id}/heartbeat`: extends the lease.
    pub async fn heartbeat(&self, id: &str, body: &HeartbeatRequest) -> Result<Task, Error> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{}/heartbeat", segment(id)),
            Some(body),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/complete`.
    pub async fn complete(&self, id: &str, body: &CompleteRequest) -> Result<Task, Error> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{}/complete", segment(id)),
            Some(body),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/fail`.
    pub async fn fail(&self, id: &str, body: &FailRequest) -> Result<Task, Error> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{}/fail", segment(id)),
            Some(body),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel(&self, id: &str, body: &CancelRequest) -> Result<Task, Error> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{}/cancel", segment(id)),
            Some(body),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/retry`.
    pub async fn retry(&self, id: &str, body: &RetryRequest) -> Result<Task, Error> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{}/retry", segment(id)),
            Some(body),
        )
        .await
    }

    /// `POST /v1/tasks/retry`: the failed tasks a selection takes run again.
    pub async fn retry_many(&self, body: &BulkRetryRequest) -> Result<BulkOutcome, Error> {
        self.call(Method::POST, "/v1/tasks/retry", Some(body)).await
    }

    /// `POST /v1/tasks/cancel`: the pending tasks a selection takes are cancelled.
    pub async fn cancel_many(&self, body: &BulkCancelRequest) -> Result<BulkOutcome, Error> {
        self.call(Method::POST, "/v1/tasks/cancel", Some(body))
            .await
    }

    // ---- schedules and queues -------------------------------------------

    /// `POST /v1/schedules`.
    pub async fn create_schedule(&self, body: &CreateSchedule) -> Result<Schedule, Error> {
        self.call(Method::POST, "/v1/schedules", Some(body)).await
    }

    /// `GET /v1/schedules`.
    pub async fn list_schedules(&self) -> Result<Vec<Schedule>, Error> {
        let list: ScheduleList = self.call(Method::GET, "/v1/schedules", None::<&()>).await?;
        Ok(list.schedules)
    }

    /// `GET /v1/schedules/{id}`.
    pub async fn get_schedule(&self, id: &str) -> Result<Schedule, Error> {
        self.call(
            Method::GET,
            &format!("/v1/schedules/{}", segment(id)),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/schedules/{id}/pause`.
    pub async fn pause_schedule(&self, id: &str) -> Result<Schedule, Error> {
        let path = format!("/v1/schedules/{}/pause", segment(id));
        self.call(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `POST /v1/schedules/{id}/resume`.
    pub async fn resume_schedule(&self, id: &str) -> Result<Schedule, Error> {
        let path = format!("/v1/schedules/{}/resume", segment(id));
        self.call(Method::POST, &path, Some(&serde_json::json!({})))
            .await
    }

    /// `DELETE /v1/schedules/{id}`.
    pub async fn delete_schedule(&self, id: &str) -> Result<(), Error> {
        let request = self.request(Method::DELETE, &format!("/v1/schedules/{}", segment(id)));
        self.send_and_drop(request).await
    }

    /// `GET /v1/queues`.
    pub async fn list_queues(&self) -> Result<Vec<Queue>, Error> {
        let list: QueueList = self.call(Method::GET, "/v1/queues", None::<&()>).await?;
        Ok(list.queues)
    }

    /// `PUT /v1/queues/{type}`: every setting of the type's queue.
    pub async fn set_queue(&self, task_type: &str, body: &QueueSettings) -> Result<Queue, Error> {
        self.call(
            Method::PUT,
            &format!("/v1/queues/{}", segment(task_type)),
            Some(body),
        )
        .await
    }

    // ---- the log ---------------------------------------------------------

    /// `GET /v1/tasks/{id}/events`: the task's whole history, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<CloudEvent<'static>>, Error> {
        let page: EventPage<'static> = self
            .call(
                Method::GET,
                &format!("/v1/tasks/{}/events", segment(id)),
                None::<&()>,
            )
            .await?;
        Ok(page.events)
    }

    /// `GET /v1/events`: a page of the log.
    pub async fn events(&self, query: &LogQuery) -> Result<EventPage<'static>, Error> {
        let request = self.request(Method::GET, "/v1/events").query(query);
        self.send(request).await
    }

    /// `GET /v1/events/stream`: the log from the query's start, then live,
    /// as typed events. A dropped connection is opened again after the last
    /// event received (`Last-Event-ID`), so no event is lost or repeated;
    /// the stream ends with an error the server answered.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use tasklog_client::api::consumers::StreamQuery;
    ///
    /// # async fn example(client: tasklog_client::Client) -> Result<(), tasklog_client::Error> {
    /// // Completions from the start of the log, then live.
    /// let query = StreamQuery {
    ///     from: Some(0),
    ///     event_type: Some("TaskCompleted".into()),
    ///     ..StreamQuery::default()
    /// };
    /// let events = client.stream(query);
    /// futures::pin_mut!(events);
    /// while let Some(event) = events.next().await {
    ///     let event = event?;
    ///     println!("{} {} {}", event.tasklogposition, event.event_type, event.subject);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn stream(
        &self,
        query: StreamQuery,
    ) -> impl Stream<Item = Result<CloudEvent<'static>, Error>> + Send + 'static {
        let state = Following {
            client: self.clone(),
            query,
            last: None,
            buffer: Vec::new(),
            response: None,
            ended: false,
            pause: self.retries.first_wait,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(event) = next_frame(&mut s.buffer, &mut s.last) {
                    return Some((event, s));
                }
                if s.ended {
                    return None;
                }
                let response = match s.response.as_mut() {
                    Some(response) => response,
                    None => match s.client.open_stream(&s.query, s.last).await {
                        Ok(opened) => s.response.insert(opened),
                        Err(error) if !error.is_transient() => {
                            s.ended = true;
                            return Some((Err(error), s));
                        }
                        Err(_) => {
                            // Refused for now or unreachable: wait longer each time.
                            tokio::time::sleep(s.pause).await;
                            s.pause = (s.pause * 2).min(s.client.retries.longest_wait);
                            continue;
                        }
                    },
                };
                match response.chunk().await {
                    Ok(Some(bytes)) => {
                        s.buffer.extend_from_slice(&bytes);
                        s.pause = s.client.retries.first_wait;
                    }
                    // Ended or broken: opened again after the last event.
                    Ok(None) | Err(_) => {
                        s.response = None;
                        s.buffer.clear();
                    }
                }
            }
        })
    }

    async fn open_stream(&self, query: &StreamQuery, last: Option<u64>) -> Result<Response, Error> {
        let mut request = self.request(Method::GET, "/v1/events/stream").query(query);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(api_error(response).await);
        }
        Ok(response)
    }

    /// `GET /v1/consumers`.
    pub async fn list_consumers(&self) -> Result<Vec<Consumer>, Error> {
        let list: ConsumerList = self.call(Method::GET, "/v1/consumers", None::<&()>).await?;
        Ok(list.consumers)
    }

    /// `PUT /v1/consumers/{name}`: the last position the consumer processed.
    pub async fn acknowledge(&self, name: &str, position: u64) -> Result<Consumer, Error> {
        let body = Acknowledge { position };
        self.call(
            Method::PUT,
            &format!("/v1/consumers/{}", segment(name)),
            Some(&body),
        )
        .await
    }

    /// `GET /v1/admin/verify`: the whole log's hash chain checked.
    pub async fn verify(&self) -> Result<Verification, Error> {
        self.call(Method::GET, "/v1/admin/verify", None::<&()>)
            .await
    }

    /// `GET /v1/token`: this client's token: its name and scopes.
    pub async fn token(&self) -> Result<TokenInfo, Error> {
        self.call(Method::GET, "/v1/token", None::<&()>).await
    }

    // ---- the wire ----------------------------------------------------------

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if self.read_your_writes {
            request = request.header("tasklog-min-position", self.last_position());
        }
        request
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Error> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        let response = self.answer(request).await?;
        Ok(response.json().await?)
    }

    /// `None` for a 204.
    async fn send_or_none<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<Option<T>, Error> {
        let response = self.answer(request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(response.json().await?))
    }

    async fn send_and_drop(&self, request: RequestBuilder) -> Result<(), Error> {
        self.answer(request).await.map(drop)
    }

    /// The successful answer to `request`, sent again after a 429 or 503.
    async fn answer(&self, request: RequestBuilder) -> Result<Response, Error> {
        let mut wait = self.retries.first_wait;
        for attempt in 0.. {
            let this = request
                .try_clone()
                .ok_or_else(|| Error::Setup("a streamed body cannot be sent again".into()))?;
            let response = this.send().await?;
            if let Some(position) = response
                .headers()
                .get("tasklog-position")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.last_position.fetch_max(position, Ordering::Relaxed);
            }
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let refused = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if !refused || attempt >= self.retries.attempts {
                return Err(api_error(response).await);
            }
            let asked = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            tokio::time::sleep(asked.unwrap_or(wait).min(self.retries.longest_wait)).await;
            wait = (wait * 2).min(self.retries.longest_wait);
        }
        unreachable!("the loop returns")
    }
}

/// The error of an answer that is not a success.
async fn api_error(response: Response) -> Error {
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(error) => return Error::Http(error),
    };
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Error::Api { status, body },
        Err(_) => Error::Status { status, text },
    }
}

/// `text` as one segment of a URL's path: `/`, `?`, `#` and the like escaped,
/// so an id cannot name another route.
fn segment(text: &str) -> String {
    let mut url = reqwest::Url::parse("http://segment/").expect("a URL");
    url.path_segments_mut()
        .expect("a base")
        .pop_if_empty()
        .push(text);
    url.path()[1..].to_owned()
}

/// Where a [`Client::stream`] is.
struct Following {
    client: Client,
    query: StreamQuery,
    /// The id of the last event given out.
    last: Option<u64>,
    buffer: Vec<u8>,
    response: Option<Response>,
    /// The server refused the stream: it is over.
    ended: bool,
    /// How long to wait before opening it again.
    pause: Duration,
}

/// The next whole event in `buffer`, taken out of it; `last` becomes its id.
fn next_frame(
    buffer: &mut Vec<u8>,
    last: &mut Option<u64>,
) -> Option<Result<CloudEvent<'static>, Error>> {
    loop {
        let end = buffer.windows(2).position(|w| w == b"\n\n")?;
        let frame: Vec<u8> = buffer.drain(..end + 2).collect();
        let frame = String::from_utf8_lossy(&frame);
        let mut data = String::new();
        let mut id = None;
        for line in frame.lines() {
            if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            } else if let Some(value) = line.strip_prefix("id:") {
                id = value.trim().parse().ok();
            }
        }
        if data.is_empty() {
            continue; // a keep-alive comment
        }
        if id.is_some() {
            *last = id;
        }
        return Some(serde_json::from_str(&data).map_err(|e| {
            Error::Setup(format!(
                "the server sent an event this client cannot read: {e}"
            ))
        }));
    }
}
