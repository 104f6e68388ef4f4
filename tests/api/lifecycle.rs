//! A task's life over HTTP: create, read, list, claim, heartbeat, complete,
//! fail, cancel, and a restart that keeps everything.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::errors::rejected;

use super::*;

#[tokio::test]
async fn create_then_read_answers_the_seed_task_object() {
    let api = TestServer::start().await;
    let created = api
        .post("/v1/tasks", task_body("welcome", "email", 7))
        .await;
    assert!(created.position.unwrap() >= 1);
    insta::assert_json_snapshot!("create", created.snapshot(), {".body.id" => "[id]"});
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    let read = api.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(read.body, created.body);
    assert!(read.position.unwrap() >= created.position.unwrap());
}

#[tokio::test]
async fn a_worker_claims_heartbeats_and_completes_a_task() {
    let api = TestServer::start().await;
    let id = api.create("welcome", "email", 1).await;
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w1", &["email"]))
        .await;
    insta::assert_json_snapshot!("claim", claimed.snapshot(), {".body.id" => "[id]"});
    api.clock.advance(chrono::Duration::seconds(30));
    let renewed = api
        .post(
            &format!("/v1/tasks/{id}/heartbeat"),
            json!({"worker": "w1", "leaseSeconds": 120}),
        )
        .await;
    assert_eq!(
        renewed.body["leaseExpirationTime"],
        "2030-01-01T00:02:30.000000Z"
    );
    api.clock.advance(chrono::Duration::milliseconds(1500));
    let done = api
        .post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w1"}))
        .await;
    insta::assert_json_snapshot!("complete", done.snapshot(), {".body.id" => "[id]"});
    assert_eq!(done.body["duration"], 31.5);
    // Nothing left to claim.
    let none = api
        .post("/v1/tasks/claim", claim_body("w1", &["email"]))
        .await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn heartbeats_report_progress_and_a_completion_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    let id = api.create("resize", "image", 1).await;
    let claim = || api.post("/v1/tasks/claim", claim_body("w1", &["image"]));
    claim().await;
    let beat_path = format!("/v1/tasks/{id}/heartbeat");
    let beat = |body: Value| api.post(&beat_path, body);
    let beaten =
        beat(json!({"worker": "w1", "leaseSeconds": 60, "progress": {"done": 3, "of": 10}})).await;
    assert_eq!(beaten.status, StatusCode::OK, "{:?}", beaten.body);
    assert_eq!(beaten.body["progress"], json!({"done": 3, "of": 10}));
    // A heartbeat that says nothing of progress keeps the last that did.
    let quiet = beat(json!({"worker": "w1", "leaseSeconds": 60})).await;
    assert_eq!(quiet.body["progress"], json!({"done": 3, "of": 10}));
    let too_large = json!({"worker": "w1", "result": "x".repeat(70_000)});
    rejected(
        &api,
        "result_too_large",
        api.post(&format!("/v1/tasks/{id}/complete"), too_large),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let result = json!({"url": "https://example.com/a.png", "bytes": 5120});
    let done = api
        .post(
            &format!("/v1/tasks/{id}/complete"),
            json!({"worker": "w1", "result": result}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    assert_eq!(done.body["result"], result);
    assert_eq!(
        api.get(&format!("/v1/tasks/{id}")).await.body["result"],
        result
    );
    // Both are in the history, as their events say them.
    let history = api.get(&format!("/v1/tasks/{id}/events")).await.body;
    let data_of = |event_type: &str| {
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == event_type)
            .map(|e| e["data"].clone())
            .unwrap()
    };
    assert_eq!(data_of("TaskCompleted")["result"], result);
    assert_eq!(
        data_of("TaskLeaseRenewed")["progress"],
        json!({"done": 3, "of": 10})
    );
    // A new run starts with no progress.
    let again = api.create("again", "image", 1).await;
    claim().await;
    let started = api.get(&format!("/v1/tasks/{again}")).await.body;
    assert_eq!(started["progress"], Value::Null);

    // And the stored views keep both across a restart.
    api.server.stop().await.unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    let task = api.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(task["result"], result);
    assert_eq!(task["progress"], json!({"done": 3, "of": 10}));
}

#[tokio::test]
async fn a_failed_run_keeps_its_error_and_a_cancel_its_reason() {
    let api = TestServer::start().await;
    let id = api.create("a", "email", 1).await;
    api.post("/v1/tasks/claim", claim_body("w1", &["email"]))
        .await;
    let failed = api
        .post(
            &format!("/v1/tasks/{id}/fail"),
            json!({"worker": "w1", "error": "mailbox full"}),
        )
        .await;
    insta::assert_json_snapshot!("fail", failed.snapshot(), {".body.id" => "[id]"});
    let other = api.create("b", "email", 1).await;
    let cancelled = api
        .post(
            &format!("/v1/tasks/{other}/cancel"),
            json!({"reason": "sent twice"}),
        )
        .await;
    assert_eq!(cancelled.body["state"], "failed");
    assert_eq!(cancelled.body["error"], "cancelled: sent twice");
}

#[tokio::test]
async fn claims_take_the_highest_priority_then_the_earliest_available_then_the_oldest() {
    let api = TestServer::start().await;
    let low = api.create("low", "email", 1).await;
    let mut later = task_body("high-later", "email", 5);
    later["availableTime"] = json!("2029-12-31T23:30:00Z");
    let high_later = api.post("/v1/tasks", later).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let high_first = api.create("high-first", "email", 5).await;
    let high_second = api.create("high-second", "email", 5).await;
    let mut future = task_body("future", "email", 99);
    future["availableTime"] = json!("2030-01-01T00:10:00Z");
    let future = api.post("/v1/tasks", future).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_type = api.create("sms", "sms", 100).await;

    let mut order = Vec::new();
    loop {
        let claimed = api
            .post("/v1/tasks/claim", claim_body("w", &["email"]))
            .await;
        if claimed.status == StatusCode::NO_CONTENT {
            break;
        }
        order.push(claimed.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order, vec![high_first, high_second, high_later, low]);
    // The future task comes available when the clock gets there.
    api.clock.advance(chrono::Duration::minutes(10));
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email", "sms"]))
        .await;
    assert_eq!(claimed.body["id"], other_type.as_str());
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    assert_eq!(claimed.body["id"], future.as_str());
}

#[tokio::test]
async fn lists_filter_by_state_and_type_and_page_with_a_cursor() {
    let api = TestServer::start().await;
    let mut emails = Vec::new();
    for i in 0..7 {
        emails.push(api.create(&format!("e{i}"), "email", 1).await);
        api.create(&format!("s{i}"), "sms", 1).await;
    }
    api.post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    let mut seen = Vec::new();
    let mut path = "/v1/tasks?type=email&limit=3".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let tasks = page.body["tasks"].as_array().unwrap();
        assert!(tasks.len() <= 3);
        seen.extend(tasks.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        match page.body["nextCursor"].as_str() {
            Some(cursor) => path = format!("/v1/tasks?type=email&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, emails, "every email task once, in creation order");
    let running = api.get("/v1/tasks?state=running").await;
    assert_eq!(running.body["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(running.body["tasks"][0]["id"], emails[0].as_str());
    let pending_sms = api.get("/v1/tasks?state=pending&type=sms&limit=100").await;
    assert_eq!(pending_sms.body["tasks"].as_array().unwrap().len(), 7);
}

/// Writers answer once their events are in memory, before the rows are
/// stored; a list, which reads the rows, must still show every write answered
/// before it, while other writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_shows_every_write_answered_before_it() {
    let api = std::sync::Arc::new(TestServer::start().await);
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let api = api.clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let mut body = task_body(&format!("c{c}-{i}"), "email", 1);
                    body["labels"] = json!({"client": format!("c{c}")});
                    let created = api.post("/v1/tasks", body).await;
                    assert_eq!(created.status, StatusCode::OK);
                    let listed = api
                        .get(&format!("/v1/tasks?labelSelector=client%3Dc{c}&limit=1000"))
                        .await;
                    let tasks = listed.body["tasks"].as_array().unwrap();
                    assert_eq!(tasks.len(), i + 1, "client {c} after its write {i}");
                    assert!(listed.position.unwrap() >= created.position.unwrap());
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

#[tokio::test]
async fn reads_wait_for_a_minimum_position_and_say_the_position_they_reflect() {
    let api = TestServer::start().await;
    let created = api.post("/v1/tasks", task_body("a", "email", 1)).await;
    let position = created.position.unwrap();
    let (client, base) = api.client();
    let id = created.body["id"].as_str().unwrap();
    let seen = client
        .get(format!("{base}/v1/tasks/{id}"))
        .bearer_auth(ADMIN)
        .header("tasklog-min-position", position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), StatusCode::OK);
    let started = std::time::Instant::now();
    let ahead = client
        .get(format!("{base}/v1/tasks/{id}"))
        .bearer_auth(ADMIN)
        .header("tasklog-min-position", (position + 100).to_string())
        .send()
        .await
        .unwrap();
    // No write has that position yet: no wait would make the read true.
    assert_eq!(ahead.status(), StatusCode::BAD_REQUEST);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "the read waited for a position past the head of the log"
    );
}

#[tokio::test]
async fn a_restarted_server_keeps_every_task() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    let mut before = Vec::new();
    for i in 0..20 {
        before.push(api.create(&format!("t{i}"), "email", i % 3).await);
    }
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await
        .body;
    let listed = api.get("/v1/tasks?limit=100").await.body;
    api.server.stop().await.unwrap();

    let again = TestServer::start_in(dir.path(), start_time()).await;
    assert_eq!(again.get("/v1/tasks?limit=100").await.body, listed);
    let id = claimed["id"].as_str().unwrap();
    assert_eq!(
        again.get(&format!("/v1/tasks/{id}")).await.body["state"],
        "running"
    );
    // And it goes on from there.
    let done = again
        .post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w"}))
        .await;
    assert_eq!(done.body["state"], "completed");
}

#[tokio::test]
async fn health_and_openapi_need_no_token_and_the_document_is_the_checked_in_one() {
    let api = TestServer::start().await;
    let health = api.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let served = api.request(Method::GET, "/openapi.json", None, None).await;
    let checked_in: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(served.body, checked_in);
}

/// With `--retain-finished`, a task that finished longer ago than that leaves
/// the views: lists skip it and GET says where its history is, which still
/// reads, as does the task as it was. Tasks that finished since stay.
#[tokio::test]
async fn finished_tasks_past_the_retention_leave_the_views_and_keep_their_history() {
    let api = TestServer::start_settings(Settings {
        retain_finished: Some(chrono::Duration::hours(1)),
        ..Settings::default()
    })
    .await;
    api.clock.advance(chrono::Duration::hours(-1)); // before the tasks are available
    let old = api.create("old", "email", 0).await;
    api.clock.advance(chrono::Duration::hours(1));
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    assert_eq!(claimed.body["id"], old.as_str());
    let done = api
        .post(&format!("/v1/tasks/{old}/complete"), json!({"worker": "w"}))
        .await;
    assert_eq!(done.body["state"], "completed");
    let recent = api.create("recent", "email", 0).await;
    api.clock.advance(chrono::Duration::minutes(61)); // `recent` expires: it finishes now

    let mut gone = api.get(&format!("/v1/tasks/{old}")).await;
    for _ in 0..100 {
        if gone.status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gone = api.get(&format!("/v1/tasks/{old}")).await;
    }
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.body);
    assert_eq!(gone.body["reason"], "task_not_retained");
    assert_eq!(
        gone.body["details"]["events"],
        format!("/v1/tasks/{old}/events")
    );

    let listed = api.get("/v1/tasks?limit=100").await.body;
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [recent.as_str()]);
    assert_eq!(
        api.get(&format!("/v1/tasks/{recent}")).await.body["state"],
        "failed"
    );

    let history = api.get(&format!("/v1/tasks/{old}/events")).await;
    assert_eq!(history.status, StatusCode::OK);
    let as_it_was = api.get(&format!("/v1/tasks/{old}?revision=2")).await;
    assert_eq!(as_it_was.body["state"], "completed");
    let unknown = api.get("/v1/tasks/0123456789abcdef0123456789abcdef").await;
    assert_eq!(unknown.body["reason"], "task_not_found");
}
