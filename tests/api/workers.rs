//! Workers racing for tasks, long polls, and time: expiry and lapsed leases on
//! a controlled clock. Then a rebuild from position 0 must equal the live views.

use std::collections::HashMap;

use futures::TryStreamExt;
use reqwest::StatusCode;
use tasklog_events::{read_all_pages, Position, RecordedEvent};
use tasklog_projections::rebuild::check;
use tasklog_projections::Projections;

use tasklog_client::api::tasks::{CancelRequest, FailRequest, HeartbeatRequest};

use super::*;

async fn all_events(api: &TestServer) -> Vec<RecordedEvent> {
    read_log(&*api.server.state.service.store).await
}

async fn read_log(store: &dyn tasklog_events::EventStore) -> Vec<RecordedEvent> {
    read_all_pages(store, Position::START, 10_000)
        .try_concat()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_run_every_task_exactly_once() {
    const TASKS: usize = 200;
    const WORKERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(TestServer::start_in(dir.path(), start_time()).await);
    for i in 0..TASKS {
        api.create(&format!("t{i}"), "race", (i % 4) as i64).await;
    }
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let client = api.client_as(WORKER);
        workers.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut done = Vec::new();
            while let Some(task) = client.claim(&claim_of(&worker, &["race"])).await.unwrap() {
                let completed = client.complete(&task.id, &completion_by(&worker)).await;
                if let Err(error) = completed {
                    panic!("{worker} lost {}: {error}", task.id);
                }
                done.push(task.id);
            }
            done
        }));
    }
    let mut runs: HashMap<String, usize> = HashMap::new();
    for worker in workers {
        for id in worker.await.unwrap() {
            *runs.entry(id).or_default() += 1;
        }
    }
    assert_eq!(runs.len(), TASKS, "every task ran");
    assert!(runs.values().all(|n| *n == 1), "a task ran twice");
    let starts = all_events(&api)
        .await
        .into_iter()
        .filter(|e| e.event_type == "TaskStarted")
        .count();
    assert_eq!(starts, TASKS, "the log holds one start per task");
}

#[tokio::test]
async fn a_long_poll_returns_a_task_created_while_it_waits() {
    let dir = tempfile::tempdir().unwrap();
    let api = Arc::new(TestServer::start_in(dir.path(), start_time()).await);
    let waiting = {
        let worker = api.client_as(WORKER);
        let claim = ClaimRequest {
            wait_seconds: Ranged(10),
            ..claim_of("w", &["email"])
        };
        tokio::spawn(async move { worker.claim(&claim).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let id = api.create("late", "email", 1).await;
    let claimed = waiting.await.unwrap().unwrap();
    assert_eq!(claimed.map(|task| task.id), Some(id));
}

#[tokio::test]
async fn pending_tasks_expire_at_their_expiration_time() {
    let api = TestServer::start().await;
    let id = api.create("short", "email", 1).await;
    // 59 minutes on, the task is still pending: nothing expires early.
    api.clock.advance(chrono::Duration::minutes(59));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        api.get(&format!("/v1/tasks/{id}")).await.body["state"],
        "pending"
    );
    api.clock.advance(chrono::Duration::minutes(1));
    let expired = api.await_task(&id, |t| t["state"] == "failed").await;
    insta::assert_json_snapshot!("expired", expired, {".id" => "[id]"});
    // And it is no longer claimable.
    let none = api
        .post("/v1/tasks/claim", claim_body("w", &["email"]))
        .await;
    assert_eq!(none.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_lapsed_lease_puts_the_task_back_for_another_worker() {
    let api = TestServer::start().await;
    let id = api.create("slow", "email", 1).await;
    let worker = api.client_as(WORKER);
    let first = worker.claim(&claim_of("w1", &["email"])).await.unwrap();
    assert_eq!(first.map(|task| task.id).as_ref(), Some(&id));
    api.clock.advance(chrono::Duration::seconds(61));
    let requeued = api.await_task(&id, |t| t["state"] == "pending").await;
    assert!(requeued["error"].as_str().unwrap().contains("w1"));
    let late = worker
        .complete(&id, &completion_by("w1"))
        .await
        .unwrap_err();
    assert_eq!(late.status(), Some(StatusCode::CONFLICT), "{late}");
    let second = worker.claim(&claim_of("w2", &["email"])).await.unwrap();
    let second = second.expect("the task, back in the queue");
    assert_eq!(
        (second.id, second.attempts, second.worker),
        (id, 2, Some("w2".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_from_position_zero_equals_the_live_views_after_a_random_workload() {
    let api = TestServer::start().await;
    let seed = fastrand::u64(..);
    println!("workload seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let types = ["email", "sms", "report"];
    let admin = api.client_as(ADMIN);
    let mut ids: Vec<String> = Vec::new();
    for step in 0..600 {
        match rng.u8(0..10) {
            0..=3 => {
                let minutes = rng.i64(1..90);
                let body = CreateTask {
                    expiration_time: Time(start_time() + chrono::Duration::minutes(minutes)),
                    ..new_task(&format!("t{step}"), types[rng.usize(0..3)], rng.i64(0..5))
                };
                ids.push(admin.create_task(&body).await.unwrap().id);
            }
            4..=5 => {
                let worker = format!("w{}", rng.u8(0..4));
                let claim = ClaimRequest {
                    lease_seconds: Ranged(rng.u64(5..120)),
                    ..claim_of(&worker, &[types[rng.usize(0..3)]])
                };
                // Refusals (a lease that lapsed meanwhile) are part of the workload.
                match admin.claim(&claim).await {
                    Ok(Some(task)) if rng.bool() => {
                        if rng.bool() {
                            let _ = admin.complete(&task.id, &completion_by(&worker)).await;
                        } else {
                            let failure = FailRequest {
                                worker: Text(worker),
                                error: Text("boom".into()),
                            };
                            let _ = admin.fail(&task.id, &failure).await;
                        }
                    }
                    _ => {}
                }
            }
            6 if !ids.is_empty() => {
                let id = &ids[rng.usize(0..ids.len())];
                let cancel = CancelRequest {
                    reason: Some(Text("random".into())),
                };
                let _ = admin.cancel(id, &cancel).await;
            }
            _ => {
                api.clock
                    .advance(chrono::Duration::seconds(rng.i64(1..240)));
                tokio::time::sleep(std::time::Duration::from_millis(rng.u64(0..150))).await;
            }
        }
    }
    // Stop the server, and with it the jobs, so the log holds still while we compare.
    let now = api.clock_now();
    let TestServer { server, .. } = api;
    let state = server.state.clone();
    server.stop().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let events = read_log(&*state.service.store).await;
    assert!(
        events.iter().any(|e| e.event_type == "TaskExpired"),
        "the workload expired nothing"
    );
    assert!(
        events.iter().any(|e| e.event_type == "TaskRequeued"),
        "the workload lapsed no lease"
    );
    let views = &state.service.views;
    let last = events.last().unwrap().position;
    assert!(
        views
            .wait_stored(last, std::time::Duration::from_secs(10))
            .await
    );
    let rebuilt = Projections::rebuild(&events);
    // The stored rows, list order, counts and small models equal the fold...
    let differences = check(&*state.service.store, views.tables()).await.unwrap();
    assert_eq!(differences, Vec::<String>::new());
    // ...and memory holds the tasks in flight, as the fold has them.
    let live = views.projections.read().unwrap();
    assert_eq!(live.position, rebuilt.position);
    let in_flight = rebuilt.tasks.iter().filter(|(_, t)| !t.state.is_finished());
    assert_eq!(
        live.tasks,
        in_flight.map(|(id, t)| (*id, t.clone())).collect()
    );
    assert_eq!(live.stats, rebuilt.stats);
    assert_eq!(live.consumers, rebuilt.consumers);
    let all_types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        live.queue.candidates(&all_types, now, 10_000, |_| true),
        rebuilt.queue.candidates(&all_types, now, 10_000, |_| true)
    );
    assert_eq!(live.queue.expired(now), rebuilt.queue.expired(now));
    assert_eq!(
        live.queue.lapsed_leases(now),
        rebuilt.queue.lapsed_leases(now)
    );
}

#[tokio::test]
async fn a_lease_is_held_by_the_worker_and_the_token_that_claimed_it() {
    let api = TestServer::start().await;
    let id = api.create("a", "email", 1).await;
    let (holder, other) = (api.client_as(WORKER), api.client_as(ADMIN));
    holder.claim(&claim_of("w1", &["email"])).await.unwrap();
    // Another token that sends the same worker name does not hold the lease.
    let refused = other.complete(&id, &completion_by("w1")).await.unwrap_err();
    assert_eq!(refused.status(), Some(StatusCode::CONFLICT), "{refused}");
    assert_eq!(refused.reason(), Some("not_lease_holder"));
    let heartbeat = HeartbeatRequest {
        worker: Text("w1".into()),
        lease_seconds: Ranged(60),
        progress: None,
    };
    let refused = other.heartbeat(&id, &heartbeat).await.unwrap_err();
    assert_eq!(refused.reason(), Some("not_lease_holder"));
    let completed = holder.complete(&id, &completion_by("w1")).await.unwrap();
    assert_eq!(completed.state, "completed");
}
