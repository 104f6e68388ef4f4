//! Several nodes, one store: two `tasklog serve` processes on one shared store
//! act as one service. Real processes, real clocks, the real database.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tasklog_client::api::body::Ranged;
use tasklog_client::api::tasks::ClaimRequest;
use tasklog_client::Client;
use tasklog_store_postgres::testing::TestSchema;

use super::{claim_of, completion_by, ADMIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_act_as_one_service() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    two_nodes_act_as_one_service(&url, Some(&schema)).await;

    // The nodes, killed, shared one set of stored views: they equal a fold
    // of the log, every row folded once and none skipped.
    let checked = Command::new(env!("CARGO_BIN_EXE_tasklog"))
        .args(["rebuild", "--check", "--store", &url])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{said}");
    assert!(said.contains("the read models equal a fold of the log"));

    // A node started again goes on from the stored position.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&url, dir.path());
    assert!(node.loaded_position > 100, "{}", node.loaded_position);
    let (status, _, listed) = node
        .call(
            reqwest::Method::GET,
            "/v1/tasks?type=race&limit=100",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 40, "{listed}");
}

/// Runs against a server when `TASKLOG_TEST_ESDB_URL` names one; otherwise
/// says it was skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_eventstoredb_act_as_one_service() {
    let Some(url) = tasklog_store_eventstoredb::testing::fresh_store_url() else {
        return;
    };
    two_nodes_act_as_one_service(&url, None).await;
}

const HOUR: Duration = Duration::from_secs(3600);

/// A create body, available a minute ago and expiring `expires_in` from now.
fn task_body(name: &str, task_type: &str, expires_in: Duration) -> Value {
    let now = Utc::now();
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "name": name,
        "type": task_type,
        "priority": 0,
        "data": {},
        "availableTime": time(now - chrono::Duration::minutes(1)),
        "expirationTime": time(now + chrono::Duration::from_std(expires_in).unwrap()),
    })
}

/// A `tasklog serve` process; killed when dropped.
struct Node {
    child: Child,
    base: String,
    http: reqwest::Client,
    /// The node's typed client, as workers and producers have it.
    client: Client,
    /// The position of the stored views the node loaded at its start.
    loaded_position: u64,
}

impl Node {
    fn start(store_url: &str, data_dir: &Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tasklog"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store", store_url])
            .arg("--data-dir")
            .arg(data_dir)
            .env("TASKLOG_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tasklog starts");
        // The address is in the log line that says the node is serving.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut loaded_position = 0;
        let addr = loop {
            let line = lines
                .next()
                .expect("the node says where it serves before it stops")
                .unwrap();
            let line = without_colours(&line);
            if line.contains("loaded the stored views") {
                loaded_position = field(&line, "position")
                    .expect("a position")
                    .parse()
                    .unwrap();
            }
            if line.contains("tasklog is serving") {
                break address_in(&line).expect("an address in the serving line");
            }
        };
        // Keep reading the log so the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Node {
            child,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            client: Client::new(&format!("http://{addr}"), ADMIN).unwrap(),
            loaded_position,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        min_position: Option<u64>,
    ) -> (StatusCode, Option<u64>, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(position) = min_position {
            request = request.header("Tasklog-Min-Position", position.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let position = response
            .headers()
            .get("tasklog-position")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let text = response.text().await.unwrap();
        (
            status,
            position,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Option<u64>, Value) {
        self.call(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    async fn create(&self, name: &str, task_type: &str, expires_in: Duration) -> (String, u64) {
        let body = task_body(name, task_type, expires_in);
        let (status, position, task) = self.post("/v1/tasks", body).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        (task["id"].as_str().unwrap().to_owned(), position.unwrap())
    }

    /// Creates `n` tasks of `task_type` in one batch, each labelled
    /// `batch=<label>`; the position the answer gave.
    async fn batch(&self, task_type: &str, label: &str, n: usize) -> u64 {
        let tasks: Vec<Value> = (0..n)
            .map(|i| {
                let mut task = task_body(&format!("{label}-{i}"), task_type, HOUR);
                task["labels"] = json!({ "batch": label });
                task
            })
            .collect();
        let (status, position, answer) = self
            .post("/v1/tasks/batch", json!({ "tasks": tasks }))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        position.unwrap()
    }

    /// The types of a task's events, in order.
    async fn history(&self, id: &str) -> Vec<String> {
        let events = self.client.history(id).await.unwrap();
        events.into_iter().map(|e| e.event_type.into()).collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `host:port` after `addr=` in a log line (which may carry colour codes).
fn address_in(line: &str) -> Option<String> {
    let start = line.find("127.0.0.1:")?;
    let rest = &line[start..];
    let end = rest
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    Some(rest[..end].to_owned())
}

/// A log line without its terminal colour codes.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The value of `name=` in a log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split_whitespace().next()
}

fn count(history: &[String], event_type: &str) -> usize {
    history.iter().filter(|t| *t == event_type).count()
}

/// `postgres`: the schema, when the store is PostgreSQL's.
pub async fn two_nodes_act_as_one_service(store_url: &str, postgres: Option<&TestSchema>) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let nodes = Arc::new([
        Node::start(store_url, dirs[0].path()),
        Node::start(store_url, dirs[1].path()),
    ]);

    // A task created on one node is readable on the other at once, given the
    // position the create answered with.
    for n in 0..10 {
        let (writer, reader) = (&nodes[n % 2], &nodes[(n + 1) % 2]);
        let (id, position) = writer
            .create(&format!("read-{n}"), "read", Duration::from_secs(3600))
            .await;
        let (status, seen_at, task) = reader
            .call(
                reqwest::Method::GET,
                &format!("/v1/tasks/{id}"),
                None,
                Some(position),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{task}");
        assert_eq!(task["name"], format!("read-{n}"));
        assert!(seen_at.unwrap() >= position);
    }

    // Workers claiming through both nodes run every task exactly once.
    const TASKS: usize = 40;
    let mut ids = HashSet::new();
    for n in 0..TASKS {
        let (id, _) = nodes[n % 2]
            .create(&format!("race-{n}"), "race", Duration::from_secs(3600))
            .await;
        ids.insert(id);
    }
    let completed = Arc::new(AtomicUsize::new(0));
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (nodes, completed, claimed) = (nodes.clone(), completed.clone(), claimed.clone());
            tokio::spawn(async move {
                let node = &nodes[w % 2].client;
                let worker = format!("worker-{w}");
                let claim = ClaimRequest {
                    lease_seconds: Ranged(300),
                    wait_seconds: Ranged(1),
                    ..claim_of(&worker, &["race"])
                };
                let deadline = Instant::now() + Duration::from_secs(60);
                while completed.load(Ordering::SeqCst) < TASKS && Instant::now() < deadline {
                    let Some(task) = node.claim(&claim).await.unwrap() else {
                        continue;
                    };
                    node.complete(&task.id, &completion_by(&worker))
                        .await
                        .unwrap();
                    claimed.lock().unwrap().push(task.id);
                    completed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let claimed = std::mem::take(&mut *claimed.lock().unwrap());
    assert_eq!(claimed.len(), TASKS, "every task was claimed once");
    assert_eq!(claimed.iter().cloned().collect::<HashSet<_>>(), ids);
    for id in &ids {
        let history = nodes[0].history(id).await;
        assert_eq!(count(&history, "TaskStarted"), 1, "{id}: {history:?}");
        assert_eq!(count(&history, "TaskCompleted"), 1, "{id}: {history:?}");
    }

    // Time moves tasks once, not once per node: a pending task expires and a
    // lapsed lease goes back to the queue, each one event.
    let (expiring, _) = nodes[0]
        .create("expires", "expire", Duration::from_secs(2))
        .await;
    let (lapsing, _) = nodes[1]
        .create("lapses", "lapse", Duration::from_secs(3600))
        .await;
    let claim = json!({"types": ["lapse"], "worker": "gone", "leaseSeconds": 1});
    let (status, _, _) = nodes[1].post("/v1/tasks/claim", claim).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let expired = nodes[0].history(&expiring).await;
        let requeued = nodes[1].history(&lapsing).await;
        if count(&expired, "TaskExpired") > 0 && count(&requeued, "TaskRequeued") > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{expired:?} {requeued:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Give the other node every chance to do it again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in nodes.iter() {
        assert_eq!(count(&node.history(&expiring).await, "TaskExpired"), 1);
        assert_eq!(count(&node.history(&lapsing).await, "TaskRequeued"), 1);
    }

    schedule_runs_are_made_once(&nodes).await;
    an_idempotency_key_makes_one_task_across_nodes(&nodes).await;
    a_batch_made_on_one_node_is_read_on_the_other(&nodes).await;

    match postgres {
        Some(schema) => a_rebuild_beside_the_nodes_moves_them_all(&nodes, schema).await,
        None => {
            let (status, _, answer) = nodes[0].post("/v1/admin/rebuild", json!({})).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        }
    }
}

/// A rebuild beside both nodes, which write and read throughout: one
/// rebuild at a time across the nodes, each node lists the other's writes
/// from its tables at once, and at the end both serve from the new
/// generation and the old one is gone.
async fn a_rebuild_beside_the_nodes_moves_them_all(nodes: &Arc<[Node; 2]>, schema: &TestSchema) {
    let sql = schema.client().await;
    let lock = "hashtext('tasklog rebuild ' || $1::text)";
    // Another node's rebuild holds the store.
    sql.execute(&format!("SELECT pg_advisory_lock({lock})"), &[&schema.name])
        .await
        .unwrap();
    let (status, _, answer) = nodes[1].post("/v1/admin/rebuild", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["reason"], "rebuild_running");
    assert!(answer["message"].as_str().unwrap().contains("another node"));
    sql.execute(
        &format!("SELECT pg_advisory_unlock({lock})"),
        &[&schema.name],
    )
    .await
    .unwrap();

    // Some history to rebuild.
    for n in 0..3 {
        nodes[n % 2].batch("bulk", &format!("bulk-{n}"), 1000).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workload: Vec<_> = (0..2)
        .map(|n| {
            let (nodes, stop) = (nodes.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut batches, mut last) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let label = format!("n{n}-{batches}");
                    let position = nodes[n].batch("beside", &label, 10).await;
                    batches += 1;
                    last = position;
                    // The other node lists the batch from its tables at
                    // once, given the position, whichever tables it is on.
                    let (status, _, page) = nodes[1 - n]
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/tasks?labelSelector=batch%3D{label}&limit=100"),
                            None,
                            Some(position),
                        )
                        .await;
                    assert_eq!(status, StatusCode::OK, "{page}");
                    assert_eq!(page["tasks"].as_array().unwrap().len(), 10, "{page}");
                }
                (batches * 10, last)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, started) = nodes[0].post("/v1/admin/rebuild", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let (_, _, status) = nodes[0]
            .call(reqwest::Method::GET, "/v1/admin/rebuild", None, None)
            .await;
        if status["state"] != "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["state"], "finished", "{finished}");
    // More writes go to the new generation through both nodes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut made, mut head) = (0, 0);
    for writer in workload {
        let (tasks, last) = writer.await.unwrap();
        made += tasks;
        head = head.max(last);
    }
    assert!(made > 0);

    assert_eq!(schema.views_generation().await, 1);
    let old_tasks: Option<String> = sql
        .query_one(
            &format!("SELECT to_regclass('{}.tasks')::text", schema.name),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old_tasks, None, "the old generation's tables are dropped");
    for node in nodes.iter() {
        let mut listed = 0;
        let mut after = None;
        loop {
            let cursor = after.map_or(String::new(), |c| format!("&cursor={c}"));
            let (status, _, page) = node
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/tasks?type=beside&limit=1000{cursor}"),
                    None,
                    Some(head),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            listed += page["tasks"].as_array().unwrap().len();
            match page["nextCursor"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(listed, made, "every task, listed by each node");
    }
}

/// A batch appended through one node is read through the other at the
/// position its answer gave, every task of it.
async fn a_batch_made_on_one_node_is_read_on_the_other(nodes: &[Node; 2]) {
    let tasks: Vec<Value> = (0..5)
        .map(|n| {
            let mut task = task_body(&format!("batch-{n}"), "batch", HOUR);
            task["priority"] = json!(n);
            task
        })
        .collect();
    let (status, position, made) = nodes[0]
        .post("/v1/tasks/batch", json!({ "tasks": tasks }))
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let made = made["tasks"].as_array().unwrap();
    assert_eq!(made.len(), 5);
    for task in made {
        let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
        let (status, _, seen) = nodes[1]
            .call(reqwest::Method::GET, &path, None, position)
            .await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        assert_eq!(seen["name"], task["name"]);
    }
}

/// Both nodes' jobs race to make a schedule's 31 past-due runs: each becomes
/// one task, and the schedule counts each once.
async fn schedule_runs_are_made_once(nodes: &[Node; 2]) {
    let start = Utc::now() - chrono::Duration::minutes(30);
    let body = json!({
        "name": "catch up",
        "task": {"name": "tick", "type": "tick", "priority": 0, "data": {}, "expiresAfterSeconds": 86400},
        "recurrence": {"every": 1, "unit": "minutes"},
        "startTime": start.to_rfc3339_opts(SecondsFormat::Secs, true),
        "startMode": "startInThePast",
    });
    let (status, _, schedule) = nodes[0].post("/v1/schedules", body).await;
    assert_eq!(status, StatusCode::OK, "{schedule}");
    let id = schedule["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, schedule) = nodes[1]
            .call(
                reqwest::Method::GET,
                &format!("/v1/schedules/{id}"),
                None,
                None,
            )
            .await;
        if schedule["runs"].as_u64().unwrap_or(0) >= 31 {
            break;
        }
        assert!(Instant::now() < deadline, "{schedule}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, position, _) = nodes[1]
        .post(&format!("/v1/schedules/{id}/pause"), json!({}))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in nodes {
        let (_, _, schedule) = node
            .call(
                reqwest::Method::GET,
                &format!("/v1/schedules/{id}"),
                None,
                position,
            )
            .await;
        let (_, _, tasks) = node
            .call(
                reqwest::Method::GET,
                "/v1/tasks?type=tick&limit=1000",
                None,
                position,
            )
            .await;
        let times: HashSet<_> = tasks["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["availableTime"].clone())
            .collect();
        let runs = schedule["runs"].as_u64().unwrap() as usize;
        assert_eq!(
            tasks["tasks"].as_array().unwrap().len(),
            runs,
            "one task per run: {schedule}"
        );
        assert_eq!(times.len(), runs, "no run time twice");
    }
}

/// The same create with the same key sent to both nodes at once makes one task.
async fn an_idempotency_key_makes_one_task_across_nodes(nodes: &Arc<[Node; 2]>) {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
    let later =
        (Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let body = json!({"name": "once", "type": "once", "priority": 0, "data": {}, "availableTime": now, "expirationTime": later});
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let (nodes, body) = (nodes.clone(), body.clone());
            tokio::spawn(async move {
                let node = &nodes[n % 2];
                let request = node
                    .http
                    .post(format!("{}/v1/tasks", node.base))
                    .bearer_auth(ADMIN);
                let response = request
                    .header("Idempotency-Key", "two-nodes")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for racer in racers {
        ids.insert(racer.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
}

/// `/readyz` says whether the node can serve: ready on a working store, 503
/// `not_ready` (with `Retry-After`) once the store stops answering, while
/// `/healthz` keeps saying the process is up. A live event stream ends then,
/// rather than waiting in silence, so its client resumes elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_store_and_liveness_the_process() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&schema.store_url(), dir.path());
    node.create("ready", "email", Duration::from_secs(60)).await;
    let ready = node
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert!(body["head"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(body["head"], body["views"]);

    let stream = node
        .http
        .get(format!("{}/v1/events/stream", node.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut stream = stream.bytes_stream();

    // The store loses its tables: the node is up, and not ready.
    drop(schema);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = futures::StreamExt::next(&mut stream).await {}
    });
    assert!(ended.await.is_ok(), "the event stream went on in silence");
    let not_ready = node
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(not_ready.headers()["retry-after"], "1");
    let body: Value = not_ready.json().await.unwrap();
    assert_eq!(body["reason"], "not_ready");
    let alive = node
        .http
        .get(format!("{}/healthz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), StatusCode::OK);
}
