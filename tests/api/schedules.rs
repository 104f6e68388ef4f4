//! Recurring schedules on a controlled clock: each due run makes one task,
//! across restarts too; pause, resume, delete; start modes; bad bodies.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::errors::rejected;
use super::*;

fn schedule_body(recurrence: Value, start_time: &str, start_mode: &str) -> Value {
    json!({
        "name": "nightly report",
        "task": {
            "name": "report", "type": "report", "priority": 3, "data": {"format": "pdf"},
            "expiresAfterSeconds": 600, "labels": {"env": "prod"}, "tags": ["finance"],
        },
        "recurrence": recurrence,
        "startTime": start_time,
        "startMode": start_mode,
    })
}

/// The tasks of type `report`, as (name, availableTime).
async fn runs(api: &TestServer) -> Vec<String> {
    let listed = api.get("/v1/tasks?type=report&limit=1000").await.body;
    listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["availableTime"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the schedule has made `count` runs.
async fn await_runs(api: &TestServer, id: &str, count: u64) -> Value {
    for _ in 0..100 {
        let schedule = api.get(&format!("/v1/schedules/{id}")).await.body;
        if schedule["runs"] == count {
            return schedule;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "schedule {id} never made {count} runs: {:?}",
        api.get(&format!("/v1/schedules/{id}")).await.body
    );
}

#[tokio::test]
async fn each_due_run_creates_one_task_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let api = TestServer::start_in(dir.path(), start_time()).await;
    let every = json!({"every": 15, "unit": "minutes"});
    let created = api
        .post(
            "/v1/schedules",
            schedule_body(every, "2030-01-01T00:00:00Z", "normal"),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    insta::assert_json_snapshot!("schedule_created", created.snapshot(), {".body.id" => "[id]"});
    let id = created.body["id"].as_str().unwrap().to_owned();

    let schedule = await_runs(&api, &id, 1).await;
    assert_eq!(schedule["nextRunTime"], "2030-01-01T00:15:00.000000Z");
    let task_id = schedule["lastTaskId"].as_str().unwrap();
    let task = api.get(&format!("/v1/tasks/{task_id}")).await.body;
    assert_eq!(task["scheduleId"], id.as_str());
    assert_eq!(task["labels"], json!({"env": "prod"}));
    assert_eq!(task["expirationTime"], "2030-01-01T00:10:00.000000Z");

    api.clock.advance(Duration::minutes(31));
    await_runs(&api, &id, 3).await;
    api.server.stop().await.unwrap();

    let api = TestServer::start_in(dir.path(), start_time() + Duration::minutes(31)).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        runs(&api).await,
        [
            "2030-01-01T00:00:00.000000Z",
            "2030-01-01T00:15:00.000000Z",
            "2030-01-01T00:30:00.000000Z"
        ],
        "a restart makes no run twice"
    );
    // Down for a while: the runs missed meanwhile are made late, each once.
    api.clock.advance(Duration::minutes(30));
    await_runs(&api, &id, 5).await;
    assert_eq!(runs(&api).await.len(), 5);
    let history = api.get(&format!("/v1/tasks/{task_id}/events")).await.body;
    assert_eq!(
        history["events"][0]["data"]["schedule"]["scheduleId"],
        id.as_str()
    );
    // Auditors see every run in the log, and every schedule change.
    let fired = api.get("/v1/events?eventType=ScheduleFired").await.body;
    assert_eq!(fired["events"].as_array().unwrap().len(), 5);
    assert_eq!(fired["events"][0]["subject"], format!("schedule-{id}"));
    let all = api.get("/v1/events?limit=1000").await.body;
    let types: Vec<_> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[0], "ScheduleCreated");
    let count = |wanted: &str| types.iter().filter(|t| **t == wanted).count();
    assert_eq!((count("ScheduleFired"), count("TaskCreated")), (5, 5));
}

#[tokio::test]
async fn a_paused_schedule_skips_its_runs_until_resumed_and_a_deleted_one_is_gone() {
    let api = TestServer::start().await;
    let hourly = json!({"cron": "0 * * * *"});
    let created = api
        .post(
            "/v1/schedules",
            schedule_body(hourly, "2030-01-01T00:30:00Z", "normal"),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["nextRunTime"], "2030-01-01T01:00:00.000000Z");

    let paused = api
        .post(&format!("/v1/schedules/{id}/pause"), json!({}))
        .await;
    assert_eq!(paused.body["state"], "paused");
    assert_eq!(paused.body["nextRunTime"], Value::Null);
    rejected(
        &api,
        "pause_paused_schedule",
        api.post(&format!("/v1/schedules/{id}/pause"), json!({})),
        StatusCode::CONFLICT,
    )
    .await;
    api.clock.advance(Duration::minutes(150));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(runs(&api).await.is_empty(), "no run while paused");

    let resumed = api
        .post(&format!("/v1/schedules/{id}/resume"), json!({}))
        .await;
    assert_eq!(resumed.body["state"], "active");
    assert_eq!(
        resumed.body["nextRunTime"], "2030-01-01T03:00:00.000000Z",
        "the runs missed while paused stay skipped"
    );
    api.clock.advance(Duration::minutes(30));
    await_runs(&api, &id, 1).await;

    let deleted = api
        .request(
            Method::DELETE,
            &format!("/v1/schedules/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api.get(&format!("/v1/schedules/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["reason"], "schedule_not_found");
    assert_eq!(gone.body["message"], "no such schedule");
    api.clock.advance(Duration::hours(3));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        runs(&api).await.len(),
        1,
        "a deleted schedule makes no run; its task stays"
    );
    assert_eq!(
        api.get("/v1/schedules").await.body,
        json!({"schedules": []})
    );
}

#[tokio::test]
async fn start_in_the_past_makes_the_runs_already_due_normal_mode_skips_them() {
    let api = TestServer::start().await;
    let every = json!({"every": 15, "unit": "minutes"});
    let past = api
        .post(
            "/v1/schedules",
            schedule_body(every.clone(), "2029-12-31T23:00:00Z", "startInThePast"),
        )
        .await;
    let past = past.body["id"].as_str().unwrap().to_owned();
    await_runs(&api, &past, 5).await;
    let normal = api
        .post(
            "/v1/schedules",
            schedule_body(every, "2029-12-31T23:00:00Z", "normal"),
        )
        .await;
    assert_eq!(normal.body["nextRunTime"], "2030-01-01T00:00:00.000000Z");
    let normal = normal.body["id"].as_str().unwrap().to_owned();
    await_runs(&api, &normal, 1).await;
    let mut times = runs(&api).await;
    times.sort();
    assert_eq!(times.len(), 6);
    assert_eq!(times[0], "2029-12-31T23:00:00.000000Z");
}

#[tokio::test]
async fn schedules_end_at_their_end_time() {
    let api = TestServer::start().await;
    let mut body = schedule_body(
        json!({"every": 1, "unit": "days"}),
        "2030-01-01T00:00:00Z",
        "normal",
    );
    body["endTime"] = json!("2030-01-02T12:00:00Z");
    let id = api.post("/v1/schedules", body).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.clock.advance(Duration::days(5));
    let schedule = await_runs(&api, &id, 2).await;
    assert_eq!(schedule["state"], "ended");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(runs(&api).await.len(), 2);
}

#[tokio::test]
async fn bad_schedules_are_400_with_the_fields_named_and_readers_cannot_write_them() {
    let api = TestServer::start().await;
    let mut bad = schedule_body(json!({"cron": "61 * * * *"}), "2030-01-01", "sometimes");
    bad["task"]["expiresAfterSeconds"] = json!(0);
    bad["task"]["tags"] = json!("finance");
    bad["color"] = json!("red");
    rejected(
        &api,
        "bad_schedule",
        api.post("/v1/schedules", bad),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let every_zero = schedule_body(
        json!({"every": 0, "unit": "minutes"}),
        "2030-01-01T00:00:00Z",
        "normal",
    );
    rejected(
        &api,
        "bad_interval",
        api.post("/v1/schedules", every_zero),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let fine = schedule_body(
        json!({"every": 1, "unit": "hours"}),
        "2030-01-01T00:00:00Z",
        "normal",
    );
    rejected(
        &api,
        "reader_creates_schedule",
        api.request(Method::POST, "/v1/schedules", Some(READER), Some(fine)),
        StatusCode::FORBIDDEN,
    )
    .await;
    rejected(
        &api,
        "unknown_schedule",
        api.get(&format!("/v1/schedules/{}", "0".repeat(32))),
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn only_the_newest_hundred_missed_runs_are_made_the_older_skipped_once() {
    let api = TestServer::start().await;
    let hourly = json!({"every": 1, "unit": "hours"});
    let created = api
        .post(
            "/v1/schedules",
            schedule_body(hourly, "0001-01-01T00:00:00Z", "startInThePast"),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // The newest 100 runs, 2029-12-27T21:00 to 2030-01-01T00:00, and no older one.
    await_runs(&api, &id, 100).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut times = runs(&api).await;
    times.sort();
    assert_eq!(times.len(), 100);
    assert_eq!(times[0], "2029-12-27T21:00:00.000000Z");
    let skipped = api
        .get("/v1/events?after=0&eventType=ScheduleRunsSkipped")
        .await
        .body;
    let skipped = skipped["events"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["data"]["from"], "0001-01-01T00:00:00Z");
}

#[tokio::test]
async fn a_delete_wins_over_a_schedule_catching_up() {
    let api = TestServer::start().await;
    let minutely = json!({"every": 1, "unit": "minutes"});
    let created = api
        .post(
            "/v1/schedules",
            schedule_body(minutely, "2029-12-31T01:00:00Z", "startInThePast"),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let deleted = api
        .request(
            Method::DELETE,
            &format!("/v1/schedules/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{:?}", deleted.body);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let made = runs(&api).await.len();
    assert!(
        made < 100,
        "the schedule made all it owed before the delete"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        runs(&api).await.len(),
        made,
        "runs were made after the delete"
    );
}

#[tokio::test]
async fn cron_expressions_have_exactly_the_five_documented_fields() {
    let api = TestServer::start().await;
    for (name, cron) in [("six_field_cron", "* * * * * *"), ("cron_alias", "@daily")] {
        let body = schedule_body(json!({"cron": cron}), "2030-01-01T00:00:00Z", "normal");
        rejected(
            &api,
            name,
            api.post("/v1/schedules", body),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}
