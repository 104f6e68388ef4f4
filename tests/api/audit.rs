//! For auditors: history, time travel, the global log, and verification over
//! HTTP and on the command line, including a store edited behind tasklog's back.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::*;

/// A task taken through create, claim, heartbeat and complete, with the
/// clock moving between steps; returns its id and its view after each step.
async fn task_with_history(api: &TestServer) -> (String, Vec<Value>) {
    let created = api
        .post("/v1/tasks", task_body("audited", "email", 3))
        .await
        .body;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut views = vec![created];
    api.clock.advance(chrono::Duration::seconds(10));
    let claim = api
        .request(
            Method::POST,
            "/v1/tasks/claim",
            Some(WORKER),
            Some(claim_body("w1", &["email"])),
        )
        .await;
    views.push(claim.body);
    api.clock.advance(chrono::Duration::seconds(10));
    let beat = json!({"worker": "w1", "leaseSeconds": 90});
    views.push(
        api.request(
            Method::POST,
            &format!("/v1/tasks/{id}/heartbeat"),
            Some(WORKER),
            Some(beat),
        )
        .await
        .body,
    );
    api.clock.advance(chrono::Duration::seconds(10));
    let done = json!({"worker": "w1"});
    views.push(
        api.request(
            Method::POST,
            &format!("/v1/tasks/{id}/complete"),
            Some(WORKER),
            Some(done),
        )
        .await
        .body,
    );
    (id, views)
}

#[tokio::test]
async fn a_tasks_history_is_every_event_in_order_with_who_did_it() {
    let api = TestServer::start().await;
    let (id, _) = task_with_history(&api).await;
    let history = api.get(&format!("/v1/tasks/{id}/events")).await;
    assert_eq!(history.status, StatusCode::OK);
    let events = history.body["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "TaskCreated",
            "TaskStarted",
            "TaskLeaseRenewed",
            "TaskCompleted"
        ]
    );
    let actors: Vec<&str> = events
        .iter()
        .map(|e| e["tasklogactor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["admin", "worker", "worker", "worker"]);
    assert!(events
        .iter()
        .all(|e| e["subject"] == id.as_str() && e["tasklogrequestid"].is_string()));
    insta::assert_json_snapshot!("history", history.body, {
        ".events[].id" => "[event id]", ".events[].subject" => "[task id]", ".events[].tasklogrequestid" => "[request id]",
        ".events[].taskloghash" => "[hash]"
    });
    let missing = api
        .get("/v1/tasks/0123456789abcdef0123456789abcdef/events")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let no_scope = api
        .request(
            Method::GET,
            &format!("/v1/tasks/{id}/events"),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn as_of_and_revision_show_the_task_exactly_as_it_stood() {
    let api = TestServer::start().await;
    let (id, views) = task_with_history(&api).await;
    for (revision, view) in views.iter().enumerate() {
        let then = api
            .get(&format!("/v1/tasks/{id}?revision={revision}"))
            .await;
        assert_eq!(&then.body, view, "revision {revision}");
        // Each step happened at the start time plus 10 s per step; a moment later it still stood so.
        let at = tasklog::http::wire::wire_time(
            start_time() + chrono::Duration::seconds(10 * revision as i64 + 5),
        );
        let then = api.get(&format!("/v1/tasks/{id}?asOf={at}")).await;
        assert_eq!(&then.body, view, "as of {at}");
    }
    let before = api
        .get(&format!("/v1/tasks/{id}?asOf=2029-12-31T23:59:59Z"))
        .await;
    assert_eq!(before.status, StatusCode::NOT_FOUND);
    let no_zone = api
        .get(&format!("/v1/tasks/{id}?asOf=2030-01-01T00:00:00"))
        .await;
    assert_eq!(no_zone.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_global_log_pages_and_filters_by_task_type_and_event_type() {
    let api = TestServer::start().await;
    for i in 0..5 {
        api.create(&format!("e{i}"), "email", 1).await;
        api.create(&format!("s{i}"), "sms", 1).await;
    }
    api.post("/v1/tasks/claim", claim_body("w", &["sms"])).await;
    let mut positions = Vec::new();
    let mut after = 0;
    loop {
        let page = api.get(&format!("/v1/events?after={after}&limit=4")).await;
        let events = page.body["events"].as_array().unwrap();
        positions.extend(
            events
                .iter()
                .map(|e| e["tasklogposition"].as_u64().unwrap()),
        );
        match page.body["nextAfter"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(positions, (1..=11).collect::<Vec<u64>>());
    let sms = api.get("/v1/events?taskType=sms").await.body;
    assert_eq!(sms["events"].as_array().unwrap().len(), 6);
    let started = api.get("/v1/events?eventType=TaskStarted").await.body;
    assert_eq!(started["events"].as_array().unwrap().len(), 1);
    let email_starts = api
        .get("/v1/events?taskType=email&eventType=TaskStarted")
        .await
        .body;
    assert!(email_starts["events"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn verify_passes_a_healthy_log_and_names_the_position_of_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    task_with_history(&api).await;
    let healthy = api.get("/v1/admin/verify").await.body;
    assert_eq!(healthy["ok"], true);
    assert_eq!(healthy["events"], 4);
    assert_eq!(healthy["head"], 4);
    // Each event shows its link in the chain: the last one's is the head's.
    let log = api.get("/v1/events").await.body;
    assert_eq!(log["events"][3]["taskloghash"], healthy["headHash"]);
    let cli = tasklog_cli(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed = String::from_utf8_lossy(&cli.stdout);
    assert!(
        printed.contains("events: 4")
            && printed.contains(&format!(
                "head_hash: {}",
                healthy["headHash"].as_str().unwrap()
            )),
        "{printed}"
    );

    let file = rusqlite::Connection::open(dir.path().join("tasklog.sqlite")).unwrap();
    file.execute(
        "UPDATE events SET payload = '{\"worker\":\"mallory\"}' WHERE position = 4",
        [],
    )
    .unwrap();
    let tampered = api.get("/v1/admin/verify").await.body;
    assert_eq!(tampered["ok"], false);
    assert_eq!(tampered["firstBadPosition"], 4);
    let cli = tasklog_cli(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(cli.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("position 4"),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let no_scope = api
        .request(Method::GET, "/v1/admin/verify", Some(WORKER), None)
        .await;
    assert_eq!(no_scope.status, StatusCode::FORBIDDEN);
}

fn tasklog_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tasklog"))
        .args(args)
        .output()
        .unwrap()
}
