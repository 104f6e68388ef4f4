//! For analytics consumers: the SSE stream, resuming after disconnects while
//! writers keep writing, filters, durable consumers, export and tail.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tasklog_events::{read_all_pages, Position, TaskId};

use super::*;

/// One SSE frame: its id and its data.
struct Frame {
    id: u64,
    data: Value,
}

/// Reads frames from an SSE response until `stop` says so, the stream ends, or
/// no event came for a few seconds (keep-alive comments do not count).
async fn read_frames(
    response: reqwest::Response,
    mut stop: impl FnMut(&[Frame]) -> bool,
) -> Vec<Frame> {
    const QUIET: Duration = Duration::from_secs(3);
    let mut frames = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    let mut deadline = tokio::time::Instant::now() + QUIET;
    while !stop(&frames) {
        let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await else {
            break;
        };
        let before = frames.len();
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data) = (None, None);
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("id:") {
                    id = Some(value.trim().parse().unwrap());
                } else if let Some(value) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str(value.trim()).unwrap());
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                frames.push(Frame { id, data });
            }
        }
        if frames.len() > before {
            deadline = tokio::time::Instant::now() + QUIET;
        }
    }
    frames
}

async fn open_stream(
    api: &TestServer,
    query: &str,
    last_event_id: Option<u64>,
) -> reqwest::Response {
    let (client, base) = api.client();
    let mut request = client
        .get(format!("{base}/v1/events/stream{query}"))
        .bearer_auth(ADMIN);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    response
}

/// Positions of the task events in the log.
async fn task_event_positions(api: &TestServer) -> Vec<u64> {
    let store = &*api.server.state.service.store;
    read_all_pages(store, Position::START, 10_000)
        .map_ok(|page| {
            page.iter()
                .filter(|e| TaskId::from_stream(&e.stream).is_some())
                .map(|e| e.position.0)
                .collect::<Vec<_>>()
        })
        .try_concat()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_keeps_disconnecting_sees_the_log_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(TestServer::start_in(dir.path(), start_time()).await);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    let id = api.create(&format!("w{w}-{i}"), "email", 1).await;
                    if i % 3 == 0 {
                        api.post(&format!("/v1/tasks/{id}/cancel"), json!({})).await;
                    }
                }
            })
        })
        .collect();
    let mut rng = fastrand::Rng::with_seed(fastrand::u64(..));
    let mut seen: Vec<Frame> = Vec::new();
    let mut writers_done = false;
    let mut writers = Some(writers);
    loop {
        let last = seen.last().map(|f| f.id);
        let take = rng.usize(1..40);
        let response = open_stream(&api, "", last).await;
        let before = seen.len();
        // Read a random number of events, then hang up mid-stream.
        let frames = read_frames(response, |frames| frames.len() >= take).await;
        seen.extend(frames);
        if writers_done && seen.len() == before {
            break;
        }
        if !writers_done && writers.as_ref().unwrap().iter().all(|w| w.is_finished()) {
            for writer in writers.take().unwrap() {
                writer.await.unwrap();
            }
            writers_done = true;
        }
        if writers_done
            && seen.last().map(|f| f.id) == task_event_positions(&api).await.last().copied()
        {
            break;
        }
    }
    let positions: Vec<u64> = seen.iter().map(|f| f.id).collect();
    assert_eq!(
        positions,
        task_event_positions(&api).await,
        "every event once, in log order"
    );
    assert!(seen
        .iter()
        .all(|f| f.data["tasklogposition"] == f.id && f.data["specversion"] == "1.0"));
}

#[tokio::test]
async fn the_stream_filters_and_goes_live() {
    let api = TestServer::start().await;
    api.create("a", "email", 1).await;
    api.create("b", "sms", 1).await;
    let response = open_stream(&api, "?from=0&taskType=sms&eventType=TaskStarted", None).await;
    let reader = tokio::spawn(read_frames(response, |frames| !frames.is_empty()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    let started = api.post("/v1/tasks/claim", claim_body("w", &["sms"])).await;
    let frames = reader.await.unwrap();
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data["type"], "TaskStarted");
    assert_eq!(frames[0].data["subject"], started.body["id"]);
}

#[tokio::test]
async fn durable_consumers_keep_their_place_and_show_their_lag() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    for i in 0..5 {
        api.create(&format!("t{i}"), "email", 1).await;
    }
    let (client, base) = api.client();
    let put = |name: &str, body: Value| {
        client
            .put(format!("{base}/v1/consumers/{name}"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let acked = put("warehouse", json!({"position": 3})).await.unwrap();
    assert_eq!(acked.status(), StatusCode::OK);
    let acked: Value = acked.json().await.unwrap();
    assert_eq!(
        (acked["position"].as_u64(), acked["name"].as_str()),
        (Some(3), Some("warehouse"))
    );
    assert_eq!(
        acked["lag"].as_u64().unwrap(),
        acked["head"].as_u64().unwrap() - 3
    );
    assert_eq!(
        put("warehouse", json!({"position": 1_000}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        put("Bad Name", json!({"position": 1}))
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let listed = api.get("/v1/consumers").await.body;
    assert_eq!(listed["consumers"].as_array().unwrap().len(), 1);
    // The consumer resumes after its acknowledged position.
    let frames = read_frames(open_stream(&api, "?consumer=warehouse", None).await, |f| {
        f.len() >= 2
    })
    .await;
    assert_eq!(frames.iter().map(|f| f.id).collect::<Vec<_>>(), vec![4, 5]);
    // And its place survives a restart: it is in the log.
    api.server.stop().await.unwrap();
    let again = TestServer::start_in(dir.path(), start_time()).await;
    assert_eq!(
        again.get("/v1/consumers/warehouse").await.body["position"],
        3
    );
    assert_eq!(
        again.get("/v1/consumers/nobody").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_tail_read_the_store_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    let first = api.create("first", "email", 1).await;
    api.create("second", "sms", 1).await;
    let data_dir = dir.path().to_str().unwrap().to_owned();

    let export = std::process::Command::new(env!("CARGO_BIN_EXE_tasklog"))
        .args(["export", "--data-dir", &data_dir])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["subject"], first.as_str());
    assert_eq!(lines[0]["type"], "TaskCreated");
    assert_eq!(lines[0]["data"]["name"], "first");
    let one = std::process::Command::new(env!("CARGO_BIN_EXE_tasklog"))
        .args(["export", "--data-dir", &data_dir, "--task", &first])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(one.stdout).unwrap().lines().count(), 1);

    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_tasklog"))
        .args([
            "tail",
            "--data-dir",
            &data_dir,
            "--after",
            "0",
            "--task-type",
            "email",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tail.stdout.take().unwrap()));
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.contains("TaskCreated") && line.contains(&first),
        "{line}"
    );
    // A write by the server reaches the tail in the other process.
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    assert_eq!(claimed.status, StatusCode::OK);
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        line.contains("TaskStarted") && line.contains(&first),
        "{line}"
    );
    tail.kill().await.unwrap();
}

#[tokio::test]
async fn an_idle_stream_gets_keep_alive_comments() {
    let api = TestServer::start().await;
    let mut body = open_stream(&api, "", None).await.bytes_stream();
    let interval = tasklog::http::KEEP_ALIVE;
    let chunk = tokio::time::timeout(interval + Duration::from_secs(5), body.next()).await;
    let chunk = chunk.expect("no keep-alive came").unwrap().unwrap();
    assert!(chunk.starts_with(b":"), "{chunk:?}");
}

#[tokio::test]
async fn moving_a_consumer_needs_its_own_scope_and_writes_only_when_it_moves() {
    let api = TestServer::start().await;
    api.create("a", "email", 1).await;
    let ack = |token: &'static str| {
        api.request(
            reqwest::Method::PUT,
            "/v1/consumers/warehouse",
            Some(token),
            Some(json!({"position": 1})),
        )
    };
    let refused = ack(ANALYST).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let listed = api
        .request(reqwest::Method::GET, "/v1/consumers", Some(ANALYST), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);

    assert_eq!(ack(ADMIN).await.status, StatusCode::OK);
    let head = api.position().await;
    for _ in 0..3 {
        assert_eq!(ack(ADMIN).await.status, StatusCode::OK);
    }
    assert_eq!(
        api.position().await,
        head,
        "acknowledging the same position wrote"
    );
}
