//! The queue features teams know from other job queues: retries with backoff
//! and a dead letter, idempotent creates, labels and tags with selectors,
//! per-type running limits, and paused queues.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tasklog_client::api::audit::LogQuery;
use tasklog_client::api::tasks::Task;

use super::errors::rejected;
use super::*;

fn with(mut body: Value, extra: Value) -> Value {
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

async fn event_types(api: &TestServer, id: &str) -> Vec<String> {
    let history = api.get(&format!("/v1/tasks/{id}/events")).await.body;
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_failed_run_is_retried_after_its_backoff_then_dead_lettered_then_retried_on_request() {
    let api = TestServer::start().await;
    let policy = json!({"retry": {"maxAttempts": 2, "initialBackoffSeconds": 30, "jitter": false}});
    let created = api
        .post("/v1/tasks", with(task_body("flaky", "email", 1), policy))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    assert_eq!(created.body["maxAttempts"], 2);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let claim = || api.post("/v1/tasks/claim", claim_body("w", &["email"]));
    let fail_path = format!("/v1/tasks/{id}/fail");
    let fail = || api.post(&fail_path, json!({"worker": "w", "error": "smtp down"}));

    assert_eq!(claim().await.body["attempts"], 1);
    let retried = fail().await;
    insta::assert_json_snapshot!("retried_after_failure", retried.snapshot(), {".body.id" => "[id]"});
    assert_eq!(retried.body["state"], "pending");
    assert_eq!(retried.body["availableTime"], "2030-01-01T00:00:30.000000Z");
    assert_eq!(
        claim().await.status,
        StatusCode::NO_CONTENT,
        "not before the backoff"
    );

    api.clock.advance(Duration::seconds(30));
    assert_eq!(claim().await.body["attempts"], 2);
    let dead = fail().await;
    assert_eq!(
        dead.body["state"], "failed",
        "no attempts left: the dead letter"
    );
    assert_eq!(dead.body["lastError"], "smtp down");
    assert_eq!(claim().await.status, StatusCode::NO_CONTENT);

    let again = api.post(&format!("/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["state"], "pending");
    assert_eq!(claim().await.body["attempts"], 3);
    let done = api
        .post(&format!("/v1/tasks/{id}/complete"), json!({"worker": "w"}))
        .await;
    assert_eq!(done.body["state"], "completed");
    assert_eq!(
        done.body["lastError"], "smtp down",
        "the last error stays on record"
    );
    assert_eq!(
        event_types(&api, &id).await,
        [
            "TaskCreated",
            "TaskStarted",
            "TaskFailed",
            "TaskRetried",
            "TaskStarted",
            "TaskFailed",
            "TaskRetried",
            "TaskStarted",
            "TaskCompleted"
        ]
    );
    rejected(
        &api,
        "retry_completed_task",
        api.post(&format!("/v1/tasks/{id}/retry"), json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    rejected(
        &api,
        "bad_retry_policy",
        api.post(
            "/v1/tasks",
            with(
                task_body("x", "email", 1),
                json!({"retry": {"maxAttempts": 0}}),
            ),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn an_expired_dead_letter_needs_a_new_expiration_time_to_retry() {
    let api = TestServer::start().await;
    let id = api.create("late", "email", 1).await;
    api.clock.advance(Duration::hours(2));
    api.await_task(&id, |t| t["state"] == "failed").await;
    let retry_path = format!("/v1/tasks/{id}/retry");
    let retry = |body| api.post(&retry_path, body);
    rejected(
        &api,
        "retry_expired_task",
        retry(json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    let again = retry(json!({"expirationTime": "2030-01-02T00:00:00Z"})).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["expirationTime"], "2030-01-02T00:00:00.000000Z");
    let claimed = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    assert_eq!(claimed.body["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_retried_create_answer_the_first_task() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(TestServer::start_in(dir.path(), start_time()).await);
    let create = |key: &str, body: Value| {
        let (client, base) = api.client();
        let request = client
            .post(format!("{base}/v1/tasks"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", key)
            .json(&body);
        api.send(request)
    };
    let first = create("order-1", task_body("charge", "billing", 1)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = create("order-1", task_body("charge", "billing", 1)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let before = api.position().await;
    let other = create("order-1", task_body("charge twice", "billing", 1)).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    insta::assert_json_snapshot!("idempotency_key_reused", other.snapshot());
    assert_eq!(api.position().await, before, "nothing written");
    let bad = create(&"k".repeat(256), task_body("charge", "billing", 1)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Racing retries of one create make one task.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let (client, base) = api.client();
                let request = client
                    .post(format!("{base}/v1/tasks"))
                    .bearer_auth(ADMIN)
                    .header("Idempotency-Key", "order-2")
                    .json(&task_body("refund", "billing", 1));
                api.send(request).await
            })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for racer in racers {
        let answer = racer.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
        ids.insert(answer.body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one task for one key: {ids:?}");
    let keys = api
        .get("/v1/events?eventType=IdempotencyKeyReserved")
        .await
        .body;
    assert_eq!(
        keys["events"],
        json!([]),
        "keys are bookkeeping, not in the feed"
    );
    let listed = api.get("/v1/tasks?type=billing").await.body;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 2);

    // A key stands for its task for 24 hours, then makes a new one.
    api.clock.advance(Duration::hours(24));
    let later = create("order-1", task_body("charge", "billing", 1)).await;
    assert_eq!(later.status, StatusCode::OK);
    assert_ne!(later.body["id"], first.body["id"]);
}

#[tokio::test]
async fn lists_and_claims_select_by_labels_and_tags() {
    let api = TestServer::start().await;
    let make = |name: &str, labels: Value, tags: Value| {
        api.post(
            "/v1/tasks",
            with(
                task_body(name, "report", 1),
                json!({"labels": labels, "tags": tags}),
            ),
        )
    };
    let web = make(
        "web",
        json!({"env": "prod", "tier": "web"}),
        json!(["finance", "q3"]),
    )
    .await;
    assert_eq!(web.status, StatusCode::OK, "{:?}", web.body);
    assert_eq!(web.body["labels"], json!({"env": "prod", "tier": "web"}));
    assert_eq!(web.body["tags"], json!(["finance", "q3"]));
    make(
        "batch",
        json!({"env": "prod", "tier": "batch"}),
        json!(["finance"]),
    )
    .await;
    make("dev", json!({"env": "dev"}), json!([])).await;

    let names = |answer: Answer| -> Vec<String> {
        answer.body["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let api = &api;
    let list = |query: &str| {
        let path = format!("/v1/tasks?{query}");
        async move { api.get(&path).await }
    };
    assert_eq!(
        names(list("labelSelector=env%3Dprod%2Ctier!%3Dbatch").await),
        ["web"]
    );
    assert_eq!(
        names(list("labelSelector=env%20in%20(prod,dev)").await),
        ["web", "batch", "dev"]
    );
    assert_eq!(names(list("labelSelector=!tier").await), ["dev"]);
    assert_eq!(names(list("tags=finance").await), ["web", "batch"]);
    assert_eq!(names(list("tags=finance,q3").await), ["web"]);
    rejected(
        api,
        "bad_label_selector",
        list("labelSelector=env%20in%20prod"),
        StatusCode::BAD_REQUEST,
    )
    .await;

    let claim = |selector: &str, tags: Value| {
        let body = json!({"types": ["report"], "worker": "w", "leaseSeconds": 60, "labelSelector": selector, "tags": tags});
        api.post("/v1/tasks/claim", body)
    };
    assert_eq!(claim("env=prod", json!(["q3"])).await.body["name"], "web");
    assert_eq!(
        claim("env=prod", json!(["q3"])).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(claim("env=dev", json!([])).await.body["name"], "dev");

    rejected(
        api,
        "bad_labels_and_tags",
        make(
            "bad",
            json!({"-env": "prod"}),
            json!(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
    rejected(
        api,
        "tag_too_long",
        make("bad", json!({}), json!(["x".repeat(51)])),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_type_at_its_running_limit_hands_out_no_more_until_a_run_ends() {
    let api = TestServer::start().await;
    for i in 0..4 {
        api.create(&format!("t{i}"), "render", 1).await;
    }
    api.create("other", "email", 0).await;
    api.set_running_limit("render", Some(2)).await;
    let worker = api.client_as(WORKER);
    let claim = || async {
        let claimed = worker.claim(&claim_of("w", &["render", "email"])).await;
        claimed.unwrap()
    };
    let type_of = |task: Option<Task>| task.map(|task| task.task_type);
    let first = claim().await.expect("a render task");
    let second = claim().await.expect("another render task");
    assert_eq!(
        (&*first.task_type, &*second.task_type),
        ("render", "render")
    );
    assert_eq!(
        type_of(claim().await).as_deref(),
        Some("email"),
        "render is at its limit; other types still run"
    );
    assert_eq!(claim().await, None);
    let queues = api.get("/v1/queues").await;
    insta::assert_json_snapshot!("queues", queues.snapshot());

    worker
        .complete(&first.id, &completion_by("w"))
        .await
        .unwrap();
    assert_eq!(
        type_of(claim().await).as_deref(),
        Some("render"),
        "a run ended: room for one more"
    );
    api.set_running_limit("render", None).await;
    let lifted = type_of(claim().await);
    assert_eq!(lifted.as_deref(), Some("render"), "the limit is lifted");

    rejected(
        &api,
        "queue_limit_by_reader",
        api.post_json(
            Method::PUT,
            "/v1/queues/render",
            READER,
            json!({"maxRunning": 1}),
        ),
        StatusCode::FORBIDDEN,
    )
    .await;
    rejected(
        &api,
        "bad_queue_limit",
        api.post_json(
            Method::PUT,
            "/v1/queues/render",
            ADMIN,
            json!({"maxRunning": 0}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_paused_queue_hands_out_nothing_until_it_is_resumed() {
    let api = TestServer::start().await;
    let running = api.create("started before", "render", 9).await;
    let (admin, worker) = (api.client_as(ADMIN), api.client_as(WORKER));
    let claim = |types: &'static [&'static str]| {
        let worker = worker.clone();
        async move { worker.claim(&claim_of("w", types)).await.unwrap() }
    };
    assert_eq!(
        claim(&["render"]).await.map(|task| task.id),
        Some(running.clone())
    );
    let waiting = api.create("waits", "render", 1).await;
    api.create("other", "email", 0).await;

    let settings = |paused: Option<bool>| QueueSettings {
        max_running: Some(Ranged(5)),
        paused,
    };
    let paused = admin
        .set_queue("render", &settings(Some(true)))
        .await
        .unwrap();
    assert!(paused.paused);
    assert_eq!(paused.max_running, Some(5));
    let both: &[&str] = &["render", "email"];
    let other = claim(both).await.map(|task| task.task_type);
    assert_eq!(other.as_deref(), Some("email"), "other types still run");
    assert_eq!(claim(both).await, None, "a paused type hands out nothing");
    let done = worker.complete(&running, &completion_by("w")).await;
    assert!(done.is_ok(), "a run goes on to its end: {done:?}");
    let queues = admin.list_queues().await.unwrap();
    let render = queues.iter().find(|queue| queue.task_type == "render");
    assert!(render.unwrap().paused, "{queues:?}");

    // The same settings again write nothing; each change is one event.
    admin
        .set_queue("render", &settings(Some(true)))
        .await
        .unwrap();
    let resumed = admin.set_queue("render", &settings(None)).await.unwrap();
    assert!(!resumed.paused);
    let query = LogQuery {
        limit: Some(100),
        ..LogQuery::default()
    };
    let events = admin.events(&query).await.unwrap().events;
    let queue_events: Vec<&str> = events
        .iter()
        .filter(|event| event.subject == "queue-render")
        .map(|event| &*event.event_type)
        .collect();
    assert_eq!(
        queue_events,
        ["QueueLimitSet", "QueuePaused", "QueueResumed"],
        "{events:?}"
    );
    let resumed = claim(both).await.map(|task| task.id);
    assert_eq!(resumed, Some(waiting), "resumed");

    rejected(
        &api,
        "bad_queue_pause",
        api.post_json(
            Method::PUT,
            "/v1/queues/render",
            ADMIN,
            json!({"paused": "yes"}),
        ),
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_search_by_name_reads_a_bounded_share_of_the_tasks_per_page() {
    let api = TestServer::start().await;
    // 12,000 tasks, two of them named with "Needle": more than one page reads.
    for batch in 0..12 {
        let tasks: Vec<Value> = (0..1000)
            .map(|n| {
                let name = match batch * 1000 + n {
                    5 => "a Needle early".to_owned(),
                    11_990 => "needle late".to_owned(),
                    other => format!("hay-{other}"),
                };
                task_body(&name, "search", 1)
            })
            .collect();
        let answer = api.post("/v1/tasks/batch", json!({ "tasks": tasks })).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    }
    let mut found = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/tasks?nameContains=NEEDLE&limit=10".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = api.get(&path).await.body;
        let names = page["tasks"].as_array().unwrap().iter();
        let names: Vec<String> = names.map(|t| t["name"].as_str().unwrap().into()).collect();
        pages.push(names.len());
        found.extend(names);
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(found, ["a Needle early", "needle late"]);
    // The first page read its share, found one and said where to go on.
    assert_eq!(pages[0], 1, "pages: {pages:?}");
    assert!(pages.len() >= 2, "pages: {pages:?}");
    // A page that is full before its bound ends at its last task as before.
    let full = api.get("/v1/tasks?nameContains=hay&limit=3").await.body;
    assert_eq!(full["tasks"].as_array().unwrap().len(), 3);
    let next = full["nextCursor"].as_str().unwrap();
    let after = api
        .get(&format!("/v1/tasks?nameContains=hay&limit=1&cursor={next}"))
        .await
        .body;
    assert_eq!(after["tasks"][0]["name"], "hay-3");
}
