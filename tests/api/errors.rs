//! Every bad request gets a 4xx with the error body, and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::*;

/// Sends `request`, snapshots status and body under `name`, and checks the log did not move.
pub async fn rejected(
    api: &TestServer,
    name: &str,
    answer: impl std::future::Future<Output = Answer>,
    status: StatusCode,
) {
    let before = api.position().await;
    let answer = answer.await;
    assert_eq!(answer.status, status, "{name}: {:?}", answer.body);
    assert_eq!(
        answer.body["code"],
        status.as_u16(),
        "{name}: the body names the status"
    );
    assert!(
        answer.body["message"].is_string() && answer.body["reason"].is_string(),
        "{name}: the body has a reason and a message"
    );
    assert!(answer.position.is_some(), "{name}: no Tasklog-Position");
    insta::assert_json_snapshot!(name, answer.snapshot());
    assert_eq!(
        api.position().await,
        before,
        "{name}: a rejected request wrote to the log"
    );
}

#[tokio::test]
async fn bad_create_bodies_are_400_with_the_fields_named() {
    let api = TestServer::start().await;
    api.create("seed", "email", 1).await;
    rejected(
        &api,
        "malformed_json",
        api.post_raw("/v1/tasks", "{\"name\": "),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "not_an_object",
        api.post("/v1/tasks", json!([1, 2])),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "missing_fields",
        api.post("/v1/tasks", json!({"name": "x"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let wrong_types = json!({"name": 1, "type": [], "priority": 1.5, "data": "x", "availableTime": 5, "expirationTime": null});
    rejected(
        &api,
        "wrong_types",
        api.post("/v1/tasks", wrong_types),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut no_zone = task_body("x", "email", 1);
    no_zone["availableTime"] = json!("2030-01-01T00:00:00");
    rejected(
        &api,
        "time_without_zone",
        api.post("/v1/tasks", no_zone),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut control = task_body("a\u{0}b", "email\n", 1);
    control["data"] = json!({"kept": "a\u{0}b"});
    rejected(
        &api,
        "control_characters_in_names",
        api.post("/v1/tasks", control),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "control_character_in_queue_type",
        api.request(
            reqwest::Method::PUT,
            "/v1/queues/a%00b",
            Some(ADMIN),
            Some(json!({"maxRunning": 2})),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Names refuse control characters; the task's data keeps any valid JSON.
    let mut nul_in_data = task_body("nul", "email", 1);
    nul_in_data["data"] = json!({"kept": "a\u{0}b"});
    let created = api.post("/v1/tasks", nul_in_data).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(created.body["data"]["kept"], "a\u{0}b");
    let mut beyond_9999 = task_body("x", "email", 1);
    beyond_9999["expirationTime"] = json!("9999-12-31T23:59:59-23:59");
    beyond_9999["availableTime"] = json!("0000-06-01T00:00:00Z");
    rejected(
        &api,
        "time_outside_years_1_to_9999",
        api.post("/v1/tasks", beyond_9999),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut backwards = task_body("x", "email", 1);
    backwards["expirationTime"] = json!("2029-12-31T22:00:00Z");
    rejected(
        &api,
        "expiration_not_after_available",
        api.post("/v1/tasks", backwards),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut unknown = task_body("x", "email", 1);
    unknown["colour"] = json!("red");
    rejected(
        &api,
        "unknown_field",
        api.post("/v1/tasks", unknown),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let mut huge = task_body("x", "email", 1);
    huge["data"] = json!({"blob": "x".repeat(2 * 1024 * 1024)});
    let (client, base) = api.client();
    let as_text = client
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(task_body("x", "email", 1).to_string());
    rejected(
        &api,
        "not_sent_as_json",
        api.send(as_text),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    rejected(
        &api,
        "oversized_body",
        api.post("/v1/tasks", huge),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
}

#[tokio::test]
async fn unknown_tasks_are_404_and_bad_transitions_409_naming_the_state() {
    let api = TestServer::start().await;
    let id = api.create("seed", "email", 1).await;
    let missing = "0123456789abcdef0123456789abcdef";
    rejected(
        &api,
        "unknown_task",
        api.get(&format!("/v1/tasks/{missing}")),
        StatusCode::NOT_FOUND,
    )
    .await;
    rejected(
        &api,
        "malformed_task_id",
        api.get("/v1/tasks/not-an-id"),
        StatusCode::NOT_FOUND,
    )
    .await;
    rejected(
        &api,
        "path_not_utf8",
        api.get("/v1/tasks/%FF"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "complete_unknown_task",
        api.post(
            &format!("/v1/tasks/{missing}/complete"),
            json!({"worker": "w"}),
        ),
        StatusCode::NOT_FOUND,
    )
    .await;
    rejected(
        &api,
        "complete_pending_task",
        api.post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.post("/v1/tasks/claim", claim_body("w1", &["email"]))
        .await;
    rejected(
        &api,
        "complete_by_another_worker",
        api.post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w2"})),
        StatusCode::CONFLICT,
    )
    .await;
    api.post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w1"}))
        .await;
    rejected(
        &api,
        "cancel_completed_task",
        api.post(&format!("/v1/tasks/{id}/cancel"), json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    rejected(
        &api,
        "claim_without_types",
        api.post(
            "/v1/tasks/claim",
            json!({"types": [], "worker": "", "leaseSeconds": 0}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "claim_missing_worker",
        api.post(
            "/v1/tasks/claim",
            json!({"types": ["email"], "leaseSeconds": 5}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let every_bad_field =
        json!({"types": "email", "worker": 5, "leaseSeconds": "x", "waitSeconds": 61, "colour": 1});
    rejected(
        &api,
        "claim_every_bad_field",
        api.post("/v1/tasks/claim", every_bad_field),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "malformed_query",
        api.get("/v1/tasks?limit=many"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        &api,
        "list_bad_state",
        api.get("/v1/tasks?state=done&limit=0"),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn no_token_or_a_bad_one_is_401_and_a_missing_scope_403() {
    let api = TestServer::start().await;
    api.create("seed", "email", 1).await;
    let body = || Some(task_body("x", "email", 1));
    rejected(
        &api,
        "no_token",
        api.request(Method::POST, "/v1/tasks", None, body()),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    rejected(
        &api,
        "bad_token",
        api.request(Method::POST, "/v1/tasks", Some("nope"), body()),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    rejected(
        &api,
        "reader_creates",
        api.request(Method::POST, "/v1/tasks", Some(READER), body()),
        StatusCode::FORBIDDEN,
    )
    .await;
    rejected(
        &api,
        "reader_claims",
        api.request(
            Method::POST,
            "/v1/tasks/claim",
            Some(READER),
            Some(claim_body("w", &["email"])),
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    rejected(
        &api,
        "worker_cancels",
        api.request(
            Method::POST,
            "/v1/tasks/0123456789abcdef0123456789abcdef/cancel",
            Some(WORKER),
            Some(json!({})),
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    let listed = api
        .request(Method::GET, "/v1/tasks", Some(READER), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_the_error_body() {
    let api = TestServer::start().await;
    let (client, base) = api.client();
    let beyond_the_head = client
        .get(format!("{base}/v1/tasks"))
        .bearer_auth(ADMIN)
        .header("Tasklog-Min-Position", "1000000");
    let started = std::time::Instant::now();
    rejected(
        &api,
        "min_position_beyond_the_head",
        api.send(beyond_the_head),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "it waited"
    );
    rejected(
        &api,
        "unknown_route",
        api.get("/v2/everything"),
        StatusCode::NOT_FOUND,
    )
    .await;
    rejected(
        &api,
        "wrong_method",
        api.request(Method::DELETE, "/v1/tasks", Some(ADMIN), None),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
}
