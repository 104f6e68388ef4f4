//! Operator actions on many tasks in one request: retry the failed tasks a
//! selection takes, cancel the pending ones.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::errors::rejected;
use super::*;

/// A task of `task_type` labelled `env=<env>`, claimed and failed for good.
async fn failed(api: &TestServer, name: &str, task_type: &str, env: &str) -> String {
    let mut body = task_body(name, task_type, 1);
    body["labels"] = json!({ "env": env });
    let id = api.post("/v1/tasks", body).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &[task_type]))
        .await;
    assert_eq!(claimed.body["id"], id.as_str());
    let fail = json!({"worker": "w", "error": "the file was empty"});
    let answer = api.post(&format!("/v1/tasks/{id}/fail"), fail).await;
    assert_eq!(answer.body["state"], "failed");
    id
}

/// The request id of each event of the task's history of `event_type`.
async fn request_ids(api: &TestServer, id: &str, event_type: &str) -> Vec<String> {
    let history = api.get(&format!("/v1/tasks/{id}/events")).await.body;
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == event_type)
        .map(|e| e["tasklogrequestid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn failed_tasks_a_selection_takes_are_retried_a_limit_at_a_time() {
    let api = TestServer::start().await;
    let mut prod = Vec::new();
    for i in 0..5 {
        prod.push(failed(&api, &format!("p{i}"), "import", "prod").await);
    }
    let dev = failed(&api, "d", "import", "dev").await;
    let other = failed(&api, "o", "export", "prod").await;

    let select = json!({"type": "import", "labelSelector": "env=prod"});
    let retry = || api.post("/v1/tasks/retry", json!({"select": select, "limit": 3}));
    let first = retry().await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    insta::assert_json_snapshot!("bulk_retry", first.snapshot(), {".body.requestId" => "[id]"});
    let request_id = first.body["requestId"].as_str().unwrap();
    // The oldest three, each retried by an event that carries the request's id.
    for id in &prod[..3] {
        let task = api.get(&format!("/v1/tasks/{id}")).await.body;
        assert_eq!(task["state"], "pending", "{task}");
        assert_eq!(request_ids(&api, id, "TaskRetried").await, [request_id]);
    }
    let second = retry().await.body;
    assert_eq!(
        (second["changed"].as_u64(), second["more"].as_bool()),
        (Some(2), Some(false))
    );
    let third = retry().await.body;
    assert_eq!(third["changed"], 0, "sent again, it finds nothing left");
    for id in [&dev, &other] {
        let task = api.get(&format!("/v1/tasks/{id}")).await.body;
        assert_eq!(task["state"], "failed", "outside the selection: {task}");
    }

    // By ids; past its expiration time a task needs a new one.
    api.clock.advance(chrono::Duration::hours(2));
    let by_id = json!({"select": {"ids": [dev]}});
    let expired = api.post("/v1/tasks/retry", by_id.clone()).await.body;
    assert_eq!(expired["changed"], 0, "{expired}");
    let mut with_time = by_id;
    with_time["expirationTime"] = json!("2030-01-02T00:00:00Z");
    let retried = api.post("/v1/tasks/retry", with_time).await.body;
    assert_eq!(retried["changed"], 1, "{retried}");
    let task = api.get(&format!("/v1/tasks/{dev}")).await.body;
    assert_eq!(task["state"], "pending");
    assert_eq!(task["expirationTime"], "2030-01-02T00:00:00.000000Z");
}

#[tokio::test]
async fn pending_tasks_a_selection_takes_are_cancelled_and_others_are_left() {
    let api = TestServer::start().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut body = task_body(&format!("t{i}"), "render", 1);
        body["tags"] = json!(if i % 2 == 0 { ["nightly"] } else { ["adhoc"] });
        ids.push(
            api.post("/v1/tasks", body).await.body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The first is running: not pending, so not cancelled.
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["render"]))
        .await;
    let running = claimed.body["id"].as_str().unwrap().to_owned();
    let cancel = json!({"select": {"tags": ["nightly"]}, "reason": "the report moved"});
    let answer = api.post("/v1/tasks/cancel", cancel).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let nightly_pending: Vec<&String> = ids
        .iter()
        .enumerate()
        .filter(|(i, id)| i % 2 == 0 && **id != running)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(answer.body["changed"], nightly_pending.len());
    for (i, id) in ids.iter().enumerate() {
        let task = api.get(&format!("/v1/tasks/{id}")).await.body;
        let expected = if *id == running {
            "running"
        } else if i % 2 == 0 {
            "failed"
        } else {
            "pending"
        };
        assert_eq!(task["state"], expected, "{task}");
        if expected == "failed" {
            assert_eq!(task["error"], "cancelled: the report moved");
        }
    }

    rejected(
        &api,
        "bulk_cancel_bad_id",
        api.post(
            "/v1/tasks/cancel",
            json!({"select": {"ids": [running, "nope"]}}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "bulk_cancel_without_selection",
        api.post("/v1/tasks/cancel", json!({"limit": 0})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let by_reader = api
        .post_json(
            Method::POST,
            "/v1/tasks/cancel",
            READER,
            json!({"select": {}}),
        )
        .await;
    assert_eq!(by_reader.status, StatusCode::FORBIDDEN);
}
