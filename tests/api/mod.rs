//! End-to-end tests of the HTTP API, against a real server on 127.0.0.1:0 with
//! a controlled clock.

mod access;
mod analytics;
mod audit;
mod batches;
mod bulk;
mod client;
mod connections;
mod console;
mod errors;
mod lifecycle;
mod observability;
mod queueing;
mod rebuild;
mod schedules;
// Both shared stores: the default build has them.
#[cfg(all(feature = "postgres", feature = "eventstoredb"))]
mod two_nodes;
mod workers;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tasklog::app::clock::{Clock, ManualClock, SystemClock};
use tasklog::app::store_url::StoreUrl;
use tasklog::http::auth::{RateLimit, Scope, Secret, Token, Tokens};
use tasklog::http::Limits;
use tasklog::server::{Server, Settings};
use tasklog_client::api::body::{JsonObject, Ranged, TaskTypes, Text, Time};
use tasklog_client::api::queues::QueueSettings;
use tasklog_client::api::tasks::{ClaimRequest, CompleteRequest, CreateTask};
use tasklog_client::Client;

/// The clock every test starts at.
pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub struct TestServer {
    pub server: Server,
    pub clock: ManualClock,
    base: String,
    client: reqwest::Client,
    /// The data directory of a server that made its own, removed with it.
    _dir: Option<tempfile::TempDir>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub position: Option<u64>,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Status and body together, for snapshots.
    pub fn snapshot(&self) -> Value {
        json!({"status": self.status.as_u16(), "body": self.body})
    }
}

pub const ADMIN: &str = "admin-secret";
pub const READER: &str = "reader-secret";
pub const WORKER: &str = "worker-secret";
/// Three requests at once, then one a second.
pub const LIMITED: &str = "limited-secret";
/// A token with no scope at all.
pub const NOBODY: &str = "nobody-secret";
/// A token that reads the event log, and may not move a consumer.
pub const ANALYST: &str = "analyst-secret";

fn tokens() -> Tokens {
    let token = |name: &str, token: &str, scopes: Vec<Scope>| Token {
        name: name.into(),
        secret: Secret::Plain(token.into()),
        scopes,
        rate_limit: None,
    };
    let one = std::num::NonZeroU32::MIN;
    let limited = Token {
        rate_limit: Some(RateLimit {
            requests_per_second: one,
            burst: one.saturating_add(2),
        }),
        ..token("limited", LIMITED, vec![Scope::TasksRead])
    };
    Tokens {
        tokens: vec![
            token("admin", ADMIN, vec![Scope::Admin]),
            // Kept as its hash, as tasklog writes tokens; the others as written by hand.
            Token {
                secret: Secret::hashed(READER),
                ..token("reader", READER, vec![Scope::TasksRead])
            },
            token("worker", WORKER, vec![Scope::TasksWork, Scope::TasksRead]),
            token("nobody", NOBODY, vec![]),
            token("analyst", ANALYST, vec![Scope::EventsRead]),
            limited,
        ],
    }
}

impl TestServer {
    /// A server on a fresh store of its own, its clock at [`start_time`].
    pub async fn start() -> TestServer {
        TestServer::start_with(Limits::default()).await
    }

    /// [`TestServer::start`], taking at most `limits` from its clients.
    pub async fn start_with(limits: Limits) -> TestServer {
        TestServer::start_settings(Settings {
            limits,
            ..Settings::default()
        })
        .await
    }

    /// [`TestServer::start`], with these settings.
    pub async fn start_settings(settings: Settings) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut server = TestServer::launch(dir.path(), start_time(), settings).await;
        server._dir = Some(dir);
        server
    }

    /// A server on the embedded store in `dir`, its clock at `now`.
    pub async fn start_in(dir: &Path, now: DateTime<Utc>) -> TestServer {
        TestServer::launch(dir, now, Settings::default()).await
    }

    /// A server on a fresh store of its own whose clock is the system's: its
    /// leases lapse in real time (its `clock` field is not its clock).
    pub async fn start_real_time() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let unused = ManualClock::new(start_time());
        let system: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut server =
            TestServer::launch_on(dir.path(), unused, system, Settings::default()).await;
        server._dir = Some(dir);
        server
    }

    async fn launch(dir: &Path, now: DateTime<Utc>, settings: Settings) -> TestServer {
        let clock = ManualClock::new(now);
        TestServer::launch_on(dir, clock.clone(), Arc::new(clock), settings).await
    }

    async fn launch_on(
        dir: &Path,
        clock: ManualClock,
        server_clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> TestServer {
        let url = StoreUrl::default_in(dir);
        let settings = Settings {
            view_generations: url.view_generations(),
            ..settings
        };
        let (store, views) = (url.open().await.unwrap(), url.open_views().await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::start(listener, store, views, tokens(), server_clock, settings)
            .await
            .unwrap();
        let base = format!("http://{}", server.addr);
        TestServer {
            server,
            clock,
            base,
            client: reqwest::Client::new(),
            _dir: None,
        }
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.unwrap()).await
    }

    /// Sends a request built on [`TestServer::client`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        read(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, Some(ADMIN), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.request(reqwest::Method::POST, path, Some(ADMIN), Some(body))
            .await
    }

    /// Sends `body` with `method` and `token`.
    pub async fn post_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Answer {
        self.request(method, path, Some(token), Some(body)).await
    }

    /// Sends raw bytes as a JSON body.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Answer {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body);
        read(request.send().await.unwrap()).await
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn client(&self) -> (&reqwest::Client, &str) {
        (&self.client, &self.base)
    }

    /// A typed client of this server with `token`: `tasklog-client`, as
    /// users have it. Tests of what goes over the wire use [`TestServer::request`].
    pub fn client_as(&self, token: &str) -> Client {
        Client::new(&self.base, token).unwrap()
    }

    /// Creates a task of `task_type` ([`new_task`]); returns its id.
    pub async fn create(&self, name: &str, task_type: &str, priority: i64) -> String {
        let admin = self.client_as(ADMIN);
        let made = admin
            .create_task(&new_task(name, task_type, priority))
            .await;
        made.unwrap().id
    }

    /// Sets (or with `None` lifts) the running limit of `task_type`.
    pub async fn set_running_limit(&self, task_type: &str, max_running: Option<u32>) {
        let settings = QueueSettings {
            max_running: max_running.map(|n| Ranged(n.into())),
            paused: None,
        };
        let admin = self.client_as(ADMIN);
        admin.set_queue(task_type, &settings).await.unwrap();
    }

    /// The head of the log, as the server reports it.
    pub async fn position(&self) -> u64 {
        self.get("/v1/tasks?limit=1").await.position.unwrap()
    }

    /// Asks again, up to a few seconds, until `done` holds of the task.
    pub async fn await_task(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..100 {
            let answer = self.get(&format!("/v1/tasks/{id}")).await;
            if done(&answer.body) {
                return answer.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "task {id} never got there: {:?}",
            self.get(&format!("/v1/tasks/{id}")).await.body
        );
    }
}

async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let position = response
        .headers()
        .get("tasklog-position")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        position,
        headers,
        body,
    }
}

/// A create body, available an hour before the start time and expiring an hour after.
pub fn task_body(name: &str, task_type: &str, priority: i64) -> Value {
    json!({
        "name": name,
        "type": task_type,
        "priority": priority,
        "data": {"to": "ada@example.com"},
        "availableTime": "2029-12-31T23:00:00Z",
        "expirationTime": "2030-01-01T01:00:00+00:00",
    })
}

/// [`task_body`], typed.
pub fn new_task(name: &str, task_type: &str, priority: i64) -> CreateTask {
    let time = |text| Time(DateTime::parse_from_rfc3339(text).unwrap().to_utc());
    CreateTask {
        name: Text(name.into()),
        task_type: Text(task_type.into()),
        priority,
        data: JsonObject(
            json!({"to": "ada@example.com"})
                .as_object()
                .unwrap()
                .clone(),
        ),
        available_time: time("2029-12-31T23:00:00Z"),
        expiration_time: time("2030-01-01T01:00:00Z"),
        labels: None,
        tags: None,
        retry: None,
    }
}

/// [`claim_body`], typed: one task of `types` for 60 s, without waiting.
pub fn claim_of(worker: &str, types: &[&str]) -> ClaimRequest {
    ClaimRequest {
        types: TaskTypes(types.iter().map(|t| t.to_string()).collect()),
        worker: Text(worker.into()),
        lease_seconds: Ranged(60),
        wait_seconds: Ranged(0),
        label_selector: None,
        tags: Vec::new(),
        max: None,
    }
}

/// A completion by `worker` without a result.
pub fn completion_by(worker: &str) -> CompleteRequest {
    CompleteRequest {
        worker: Text(worker.into()),
        result: None,
    }
}

pub fn claim_body(worker: &str, types: &[&str]) -> Value {
    json!({"types": types, "worker": worker, "leaseSeconds": 60})
}
