//! Batches: many creates in one request, all or none, and claims of many
//! tasks at once.

use reqwest::StatusCode;
use serde_json::json;

use super::*;

fn batch(tasks: Vec<Value>) -> Value {
    json!({ "tasks": tasks })
}

fn names(answer: &Answer) -> Vec<String> {
    answer.body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks: {:?}", answer.body))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_makes_every_task_in_the_order_given_or_none() {
    let api = TestServer::start().await;
    let made = api
        .post(
            "/v1/tasks/batch",
            batch(
                (0..3)
                    .map(|i| task_body(&format!("t{i}"), "email", i))
                    .collect(),
            ),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
    assert_eq!(names(&made), ["t0", "t1", "t2"]);
    assert!(made.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "pending"));
    // Read-your-writes: the answer's position covers every task.
    let position = made.position.unwrap();
    for id in ids(&made) {
        let shown = api.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(shown.status, StatusCode::OK);
        assert!(shown.position.unwrap_or(position) >= position);
    }
    let listed = api.get("/v1/tasks?type=email").await;
    assert_eq!(
        names(&listed),
        ["t0", "t1", "t2"],
        "created in the order given"
    );
    // One request: the same request id on every task's event.
    let request_ids: std::collections::BTreeSet<String> = {
        let mut seen = std::collections::BTreeSet::new();
        for id in ids(&made) {
            let history = api.get(&format!("/v1/tasks/{id}/events")).await.body;
            seen.insert(
                history["events"][0]["tasklogrequestid"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        seen
    };
    assert_eq!(request_ids.len(), 1, "{request_ids:?}");

    // One bad task: a 400 naming it by index, and nothing written.
    let before = api.position().await;
    let mut bad_priority = task_body("bad", "email", 1);
    bad_priority["priority"] = json!("high");
    let mut no_name = task_body("nameless", "email", 1);
    no_name.as_object_mut().unwrap().remove("name");
    let refused = api
        .post(
            "/v1/tasks/batch",
            batch(vec![task_body("good", "email", 1), bad_priority, no_name]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!("batch_with_bad_tasks", refused.snapshot());
    for (body, why) in [
        (batch(vec![]), "none"),
        (batch(vec![task_body("t", "email", 1); 1001]), "too many"),
        (json!({"tasks": "all"}), "not an array"),
        (
            json!({"tasks": [task_body("t", "email", 1)], "extra": 1}),
            "an unknown field",
        ),
    ] {
        let answer = api.post("/v1/tasks/batch", body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{why}: {:?}",
            answer.body
        );
        assert_eq!(answer.body["reason"], "invalid_fields", "{why}");
    }
    assert_eq!(api.position().await, before, "nothing written");
    assert_eq!(names(&api.get("/v1/tasks?type=email").await).len(), 3);
}

#[tokio::test]
async fn an_idempotency_key_covers_the_whole_batch() {
    let api = TestServer::start().await;
    let send = |key: &str, body: Value| {
        let (client, base) = api.client();
        let request = client
            .post(format!("{base}/v1/tasks/batch"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", key)
            .json(&body);
        api.send(request)
    };
    let body = batch(vec![
        task_body("a", "billing", 1),
        task_body("b", "billing", 2),
    ]);
    let first = send("import-7", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let before = api.position().await;
    let again = send("import-7", body).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(
        ids(&again),
        ids(&first),
        "the same tasks, in the same order"
    );
    let other = send("import-7", batch(vec![task_body("a", "billing", 1)])).await;
    assert_eq!(
        other.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        other.body
    );
    assert_eq!(other.body["reason"], "idempotency_key_reused");
    // A key of a single create is not a batch's.
    let single = {
        let (client, base) = api.client();
        let request = client
            .post(format!("{base}/v1/tasks"))
            .bearer_auth(ADMIN)
            .header("Idempotency-Key", "import-7")
            .json(&task_body("a", "billing", 1));
        api.send(request).await
    };
    assert_eq!(
        single.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        single.body
    );
    assert_eq!(api.position().await, before, "nothing written");
    assert_eq!(names(&api.get("/v1/tasks?type=billing").await), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_with_max_hands_out_up_to_that_many_tasks() {
    let api = TestServer::start().await;
    let made = api
        .post(
            "/v1/tasks/batch",
            batch(
                (0..5)
                    .map(|i| task_body(&format!("p{i}"), "email", i))
                    .collect(),
            ),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{:?}", made.body);
    let claim = |max: u64| {
        let mut body = claim_body("w", &["email"]);
        body["max"] = json!(max);
        api.post("/v1/tasks/claim", body)
    };
    let three = claim(3).await;
    assert_eq!(three.status, StatusCode::OK, "{:?}", three.body);
    let mut claimed = names(&three);
    assert_eq!(claimed[0], "p4", "the best task first");
    claimed.sort();
    assert_eq!(claimed, ["p2", "p3", "p4"], "the three best");
    assert!(three.body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "running" && t["worker"] == "w"));
    let rest = claim(10).await;
    let mut rest_names = names(&rest);
    rest_names.sort();
    assert_eq!(rest_names, ["p0", "p1"], "what is left, not more");
    assert_eq!(claim(5).await.status, StatusCode::NO_CONTENT);
    for max in [json!(0), json!(1001), json!("2")] {
        let mut body = claim_body("w", &["email"]);
        body["max"] = max.clone();
        let answer = api.post("/v1/tasks/claim", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "max {max}");
        assert!(
            answer.body["details"]["max"].is_string(),
            "{:?}",
            answer.body
        );
    }

    // A running limit holds for a claim of many.
    for i in 0..4 {
        api.create(&format!("r{i}"), "render", 1).await;
    }
    api.set_running_limit("render", Some(2)).await;
    let mut body = claim_body("w", &["render"]);
    body["max"] = json!(4);
    assert_eq!(names(&api.post("/v1/tasks/claim", body).await).len(), 2);

    // The wait is for the first task; what else is there comes with it.
    let waiting = {
        let mut body = claim_body("w2", &["sms"]);
        body["max"] = json!(3);
        body["waitSeconds"] = json!(10);
        api.post("/v1/tasks/claim", body)
    };
    let create = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let tasks = (0..2)
            .map(|i| task_body(&format!("s{i}"), "sms", 1))
            .collect();
        api.post("/v1/tasks/batch", batch(tasks)).await
    };
    let (claimed, created) = tokio::join!(waiting, create);
    assert_eq!(created.status, StatusCode::OK);
    assert_eq!(claimed.status, StatusCode::OK, "{:?}", claimed.body);
    assert_eq!(
        names(&claimed).len(),
        2,
        "both tasks of the batch: {:?}",
        claimed.body
    );
}
