//! Rebuilds beside a serving node: the read models are folded again into new
//! tables while the node serves, and swapped in when caught up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;
use tasklog_projections::rebuild::check;

use super::*;

fn batch(from: u64, n: u64, task_type: &str) -> Value {
    let tasks: Vec<Value> = (from..from + n)
        .map(|i| task_body(&format!("t{i}"), task_type, (i % 7) as i64))
        .collect();
    json!({ "tasks": tasks })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_beside_the_serving_node_swaps_in_views_equal_to_a_fresh_fold() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(TestServer::start_in(dir.path(), start_time()).await);
    for round in 0..20 {
        let made = api
            .post("/v1/tasks/batch", batch(round * 1000, 1000, "bulk"))
            .await;
        assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
    }
    // Finished tasks leave memory: reads of them go to the stored rows.
    let mut finished = Vec::new();
    for _ in 0..20 {
        let claimed = api
            .post(
                "/v1/tasks/claim",
                json!({"types": ["bulk"], "worker": "w", "leaseSeconds": 60, "max": 10}),
            )
            .await;
        for task in claimed.body["tasks"].as_array().unwrap() {
            let id = task["id"].as_str().unwrap().to_owned();
            let done = api
                .post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w"}))
                .await;
            assert_eq!(done.status, StatusCode::OK);
            finished.push(id);
        }
    }
    assert_eq!(
        api.get("/v1/admin/rebuild").await.body["state"],
        "idle",
        "none since the start"
    );

    // Writers and readers go on throughout the rebuild.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (api, stop) = (api.clone(), stop.clone());
        async move {
            let mut made = 0;
            while !stop.load(Ordering::Relaxed) {
                let answer = api.post("/v1/tasks", task_body("live", "live", 1)).await;
                assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
                made += 1;
            }
            made
        }
    });
    let reader = tokio::spawn({
        let (api, stop, finished) = (api.clone(), stop.clone(), finished.clone());
        async move {
            let mut seen = 0;
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let page = api.get("/v1/tasks?type=live&limit=1000").await;
                assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
                let count = page.body["tasks"].as_array().unwrap().len();
                assert!(count >= seen, "a list went from {seen} to {count} tasks");
                seen = count;
                let id = &finished[reads % finished.len()];
                let task = api.get(&format!("/v1/tasks/{id}")).await;
                assert_eq!(task.status, StatusCode::OK, "{:?}", task.body);
                assert_eq!(task.body["state"], "completed");
                reads += 1;
            }
            reads
        }
    });

    let started = api
        .post_json(reqwest::Method::POST, "/v1/admin/rebuild", ADMIN, json!({}))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{:?}", started.body);
    assert_eq!(started.body["state"], "running");
    let again = api
        .post_json(reqwest::Method::POST, "/v1/admin/rebuild", ADMIN, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(again.body["reason"], "rebuild_running");
    let refused = api
        .request(
            reqwest::Method::POST,
            "/v1/admin/rebuild",
            Some(WORKER),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mut status = Value::Null;
    for _ in 0..600 {
        status = api.get("/v1/admin/rebuild").await.body;
        if status["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status["state"], "finished", "{status}");
    assert!(status["events"].as_u64().unwrap() >= 20_000, "{status}");
    // Some more writes land in the new tables before the workload stops.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let made = writer.await.unwrap();
    let reads = reader.await.unwrap();
    assert!(made > 0 && reads > 0, "{made} writes, {reads} reads");

    // The new generation is the file every later open finds; the old one is gone.
    assert!(dir.path().join("tasklog.sqlite-views-1").exists());
    assert!(!dir.path().join("tasklog.sqlite-views").exists());
    let live = api.get("/v1/tasks?type=live&limit=1000").await;
    assert_eq!(live.body["tasks"].as_array().unwrap().len(), made);

    let api = Arc::try_unwrap(api)
        .ok()
        .expect("the workload let go of the server");
    let TestServer { server, .. } = api;
    let state = server.state.clone();
    server.stop().await.unwrap();
    let differences = check(&*state.service.store, state.service.views.tables())
        .await
        .unwrap();
    assert_eq!(differences, Vec::<String>::new());

    // A restart opens the rebuilt views where they stopped, not from position 0.
    let head = state.service.head().await.unwrap();
    drop(state);
    let again = TestServer::start_in(dir.path(), start_time()).await;
    assert_eq!(again.server.state.service.views.position(), head);
    let listed = again
        .get("/v1/tasks?type=bulk&state=completed&limit=1000")
        .await;
    assert_eq!(
        listed.body["tasks"].as_array().unwrap().len(),
        finished.len()
    );
}
