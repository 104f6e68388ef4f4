//! What operators see: `/metrics` after a workload, parsed as Prometheus
//! parses it, and the request id that links a response to its events.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;

/// A task type of this test's own: other tests share the process' metrics.
const TYPE: &str = "metered";

/// Every sample of the scrape, by metric name, summed over its labels for
/// those that carry `type="metered"` or carry no type at all.
fn scrape_totals(text: &str) -> BTreeMap<String, f64> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid Prometheus text scrape");
    let mut totals = BTreeMap::new();
    for sample in scrape.samples {
        if sample.labels.get("type").is_some_and(|t| t != TYPE) {
            continue;
        }
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        *totals.entry(sample.metric).or_insert(0.0) += value;
    }
    totals
}

fn body(name: &str, retry: Option<Value>) -> Value {
    let mut body = task_body(name, TYPE, 1);
    if let Some(retry) = retry {
        body["retry"] = retry;
    }
    body
}

async fn claim(api: &TestServer, worker: &str) -> String {
    let claimed = api
        .post("/v1/tasks/claim", claim_body(worker, &[TYPE]))
        .await;
    assert_eq!(claimed.status, StatusCode::OK, "{:?}", claimed.body);
    claimed.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_every_family_a_workload_touched() {
    let api = TestServer::start().await;
    // A run that completes, one failed for good, one retried, one cancelled.
    api.post("/v1/tasks", body("done", None)).await;
    let id = claim(&api, "w1").await;
    api.clock.advance(chrono::Duration::seconds(2));
    let done = api
        .post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w1"}))
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let failed = json!({"worker": "w1", "error": "mailbox full"});
    api.post("/v1/tasks", body("dead", None)).await;
    let id = claim(&api, "w1").await;
    api.post(&format!("/v1/tasks/{id}/fail"), failed.clone())
        .await;
    let retry = json!({"maxAttempts": 2, "initialBackoffSeconds": 1, "jitter": false});
    api.post("/v1/tasks", body("retried", Some(retry))).await;
    let retried = claim(&api, "w1").await;
    api.post(&format!("/v1/tasks/{retried}/fail"), failed).await;
    let cancelled = api.post("/v1/tasks", body("cancelled", None)).await;
    let id = cancelled.body["id"].as_str().unwrap();
    api.post(
        &format!("/v1/tasks/{id}/cancel"),
        json!({"reason": "not needed"}),
    )
    .await;
    // The retried task's second run loses its lease; then it and one more
    // pending task pass their expiration time.
    api.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(claim(&api, "w2").await, retried);
    api.clock.advance(chrono::Duration::seconds(61));
    api.await_task(&retried, |t| t["state"] == "pending").await;
    let expires = api.post("/v1/tasks", body("expires", None)).await;
    let expires = expires.body["id"].as_str().unwrap().to_owned();
    api.clock.advance(chrono::Duration::hours(2));
    for id in [&retried, &expires] {
        api.await_task(id, |t| t["state"] == "failed").await;
    }
    // An open event stream, a consumer behind the head, a refused request.
    let (client, base) = api.client();
    let _stream = client
        .get(format!("{base}/v1/events/stream"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let acked = client
        .put(format!("{base}/v1/consumers/metrics-test"))
        .bearer_auth(ADMIN)
        .json(&json!({"position": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(acked.status(), StatusCode::OK);
    let mut refused = false;
    for _ in 0..10 {
        let answer = api
            .request(reqwest::Method::GET, "/v1/tasks", Some(LIMITED), None)
            .await;
        refused |= answer.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(refused, "the limited token was never refused");

    let paused = api
        .post_json(
            reqwest::Method::PUT,
            &format!("/v1/queues/{TYPE}"),
            ADMIN,
            json!({"paused": true}),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK);

    let denied = api
        .request(reqwest::Method::GET, "/metrics", Some(READER), None)
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let scraped = client
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = scraped.text().await.unwrap();
    let totals = scrape_totals(&text);
    let touched = [
        "tasklog_http_requests_total",
        "tasklog_http_request_duration_seconds",
        "tasklog_http_rate_limited_total",
        "tasklog_tasks",
        "tasklog_tasks_created_total",
        "tasklog_task_claims_total",
        "tasklog_task_claim_wait_seconds",
        "tasklog_task_run_duration_seconds",
        "tasklog_task_retries_total",
        "tasklog_task_expiries_total",
        "tasklog_task_lease_lapses_total",
        "tasklog_task_dead_letters_total",
        "tasklog_task_cancellations_total",
        "tasklog_appends_total",
        "tasklog_append_duration_seconds",
        "tasklog_append_batch_size",
        "tasklog_store_sync_duration_seconds",
        "tasklog_log_head_position",
        "tasklog_views_position",
        "tasklog_event_streams_open",
        "tasklog_consumer_lag_events",
        "tasklog_queue_paused",
    ];
    let missing: Vec<_> = touched
        .iter()
        .filter(|name| totals.get(**name).is_none_or(|v| *v <= 0.0))
        .collect();
    assert!(
        missing.is_empty(),
        "no samples above 0 for {missing:?} in\n{text}"
    );
    // This test's own counts, which no other test's type can add to.
    let count = |name: &str| totals[name];
    assert_eq!(count("tasklog_tasks_created_total"), 5.0);
    assert_eq!(count("tasklog_task_claims_total"), 4.0);
    assert_eq!(count("tasklog_task_retries_total"), 1.0);
    assert_eq!(count("tasklog_task_dead_letters_total"), 1.0);
    assert_eq!(count("tasklog_task_lease_lapses_total"), 1.0);
    assert_eq!(count("tasklog_task_expiries_total"), 2.0);
    assert_eq!(count("tasklog_task_cancellations_total"), 1.0);
    // Gauges of this server's views: 5 tasks, every one accounted for once.
    let states: f64 = text
        .lines()
        .filter(|l| l.starts_with("tasklog_tasks{") && l.contains("type=\"metered\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(states, 5.0, "{text}");
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn the_request_id_comes_back_and_is_recorded_in_the_events() {
    let api = TestServer::start().await;
    let (client, base) = api.client();
    let sent = client
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(ADMIN)
        .header("x-request-id", "order-4711")
        .header("traceparent", TRACEPARENT)
        .json(&task_body("a", "email", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-request-id"], "order-4711");
    let id = sent.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Without one, the server makes one, and records that one.
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    let made = claimed.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32, "{made}");
    let history = api.get(&format!("/v1/tasks/{id}/events")).await;
    let ids: Vec<&str> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tasklogrequestid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["order-4711", made.as_str()]);
    // With no trace exporter, a caller's trace context is kept as it came.
    let traces: Vec<Option<&str>> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["traceparent"].as_str())
        .collect();
    assert_eq!(traces, [Some(TRACEPARENT), None]);
    // Unknown routes and refused tokens get one too.
    let unknown = api.get("/v1/nothing-here").await;
    assert_eq!(unknown.headers["x-request-id"].len(), 32);
}
