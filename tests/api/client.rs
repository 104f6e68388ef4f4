//! The Rust client and its worker runtime against a real server: every
//! route through the server's own types, typed errors, retries of 429 and
//! 503, and workers that run handlers, keep leases and stop cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde_json::json;
use tasklog_client::api::body::{JsonObject, Ranged, Report, TaskTypes, Text, Time};
use tasklog_client::api::consumers::StreamQuery;
use tasklog_client::api::tasks::*;
use tasklog_client::{Error, Worker, WorkerStopped};

use super::*;

/// A create body for `task_type`, available from `available`, for a day.
fn create(name: &str, task_type: &str, available: chrono::DateTime<Utc>) -> CreateTask {
    CreateTask {
        name: Text(name.into()),
        task_type: Text(task_type.into()),
        priority: 1,
        data: JsonObject(json!({"n": name}).as_object().unwrap().clone()),
        available_time: Time(available),
        expiration_time: Time(available + chrono::Duration::days(1)),
        labels: None,
        tags: None,
        retry: None,
    }
}

fn claim(worker: &str, task_type: &str, max: Option<u64>) -> ClaimRequest {
    ClaimRequest {
        types: TaskTypes(vec![task_type.into()]),
        worker: Text(worker.into()),
        lease_seconds: Ranged(60),
        wait_seconds: Ranged(0),
        label_selector: None,
        tags: Vec::new(),
        max: max.map(Ranged),
    }
}

#[tokio::test]
async fn the_client_speaks_the_api_with_the_servers_types() {
    let api = TestServer::start().await;
    let admin = api.client_as(ADMIN).read_your_writes(true);
    let worker = api.client_as(WORKER);
    let hour_ago = api.clock_now() - chrono::Duration::hours(1);

    assert_eq!(admin.token().await.unwrap().name, "admin");
    let made = admin
        .create_task(&create("one", "email", hour_ago))
        .await
        .unwrap();
    assert_eq!(
        (made.name.as_str(), made.state.as_str()),
        ("one", "pending")
    );
    assert!(admin.last_position() > 0);
    let again = admin
        .create_task_once("key-1", &create("keyed", "email", hour_ago))
        .await
        .unwrap();
    let replayed = admin
        .create_task_once("key-1", &create("keyed", "email", hour_ago))
        .await
        .unwrap();
    assert_eq!(again.id, replayed.id);
    let batch = CreateTasks {
        tasks: vec![
            create("two", "email", hour_ago),
            create("three", "email", hour_ago),
        ],
    };
    assert_eq!(admin.create_tasks(&batch).await.unwrap().len(), 2);
    let listed = admin
        .list_tasks(&ListQuery {
            name_contains: Some("thr".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.tasks.len(), 1);
    assert_eq!(listed.tasks[0].name, "three");

    // A worker's round: one claimed, heartbeaten with progress, completed with a result.
    let claimed = worker.claim(&claim("w1", "email", None)).await.unwrap();
    let claimed = claimed.expect("a pending task");
    assert_eq!(claimed.id, made.id, "the oldest of equal priority first");
    let beat = HeartbeatRequest {
        worker: Text("w1".into()),
        lease_seconds: Ranged(60),
        progress: Some(Report(json!({"done": 1}))),
    };
    let beaten = worker.heartbeat(&made.id, &beat).await.unwrap();
    assert_eq!(beaten.progress, Some(json!({"done": 1})));
    let done = CompleteRequest {
        worker: Text("w1".into()),
        result: Some(Report(json!({"sent": true}))),
    };
    let completed = worker.complete(&made.id, &done).await.unwrap();
    assert_eq!(completed.result, Some(json!({"sent": true})));
    let many = worker
        .claim_many(&claim("w2", "email", Some(10)))
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    assert!(worker
        .claim_many(&claim("w2", "email", Some(10)))
        .await
        .unwrap()
        .is_empty());
    assert!(worker
        .claim(&claim("w2", "email", None))
        .await
        .unwrap()
        .is_none());
    let failure = FailRequest {
        worker: Text("w2".into()),
        error: Text("the disk was full".into()),
    };
    let failed = worker.fail(&many[0].id, &failure).await.unwrap();
    assert_eq!(failed.state, "failed");
    let retried = admin
        .retry(
            &many[0].id,
            &RetryRequest {
                expiration_time: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(retried.state, "pending");

    // The task's history, typed; the same task as of its first event.
    let history = admin.history(&made.id).await.unwrap();
    let types: Vec<&str> = history.iter().map(|e| e.event_type.as_ref()).collect();
    assert_eq!(
        types,
        [
            "TaskCreated",
            "TaskStarted",
            "TaskLeaseRenewed",
            "TaskCompleted"
        ]
    );
    let first = TimeTravel {
        revision: Some(0),
        ..TimeTravel::default()
    };
    let then = admin.get_task_as_of(&made.id, &first).await.unwrap();
    assert_eq!(then.state, "pending");
    assert!(admin.verify().await.unwrap().ok);

    // The server's error, typed.
    let escaped = admin.get_task("../admin/verify").await.unwrap_err();
    assert_eq!(
        escaped.reason(),
        Some("task_not_found"),
        "an id names no other route"
    );
    let missing = admin.get_task(&"0".repeat(32)).await.unwrap_err();
    assert_eq!(missing.reason(), Some("task_not_found"));
    assert!(matches!(missing, Error::Api { status, .. } if status == StatusCode::NOT_FOUND));
    let forbidden = worker
        .create_task(&create("nope", "email", hour_ago))
        .await
        .unwrap_err();
    assert_eq!(forbidden.reason(), Some("forbidden"));
}

#[tokio::test]
async fn the_event_stream_is_typed_and_goes_on_live() {
    let api = TestServer::start().await;
    let admin = api.client_as(ADMIN);
    let hour_ago = api.clock_now() - chrono::Duration::hours(1);
    let first = admin
        .create_task(&create("before", "report", hour_ago))
        .await
        .unwrap();
    let mut events = admin.stream(StreamQuery::default()).boxed();
    let seen = events.next().await.unwrap().unwrap();
    assert_eq!(seen.subject, first.id);
    assert_eq!(seen.event_type, "TaskCreated");
    let later = admin
        .create_task(&create("after", "report", hour_ago))
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a live event")
        .unwrap()
        .unwrap();
    assert_eq!(live.subject, later.id);
    assert!(live.tasklogposition > seen.tasklogposition);
}

#[tokio::test]
async fn refusals_are_sent_again_after_retry_after() {
    // 429: three requests at once, then one a second; six all answer.
    let api = TestServer::start().await;
    let limited = api.client_as(LIMITED);
    let started = std::time::Instant::now();
    for _ in 0..6 {
        limited.list_tasks(&ListQuery::default()).await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the budget was spent and waited for"
    );

    // 503: a server at its connection cap refuses a new connection until
    // the one it holds closes.
    let capped = TestServer::start_with(Limits {
        max_connections: 1,
        ..Limits::default()
    })
    .await;
    let addr = capped.server.addr;
    let held = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
    });
    let admin = capped.client_as(ADMIN);
    let started = std::time::Instant::now();
    let answered = admin.list_tasks(&ListQuery::default()).await;
    release.await.unwrap();
    assert!(answered.is_ok(), "{answered:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered at once: the 503's Retry-After (1 s) was not waited for"
    );
}

/// A real-time server's worker client and a way to make `n` tasks of `task_type`.
async fn real_time_tasks(api: &TestServer, task_type: &str, names: &[&str]) -> Vec<String> {
    let admin = api.client_as(ADMIN);
    let now = Utc::now() - chrono::Duration::seconds(1);
    let mut ids = Vec::new();
    for name in names {
        ids.push(
            admin
                .create_task(&create(name, task_type, now))
                .await
                .unwrap()
                .id,
        );
    }
    ids
}

/// Waits until every task of `ids` is in `state`.
async fn until_all(api: &TestServer, ids: &[String], state: &str) -> Vec<Task> {
    let admin = api.client_as(ADMIN);
    for _ in 0..200 {
        let mut tasks = Vec::new();
        for id in ids {
            tasks.push(admin.get_task(id).await.unwrap());
        }
        if tasks.iter().all(|t| t.state == state) {
            return tasks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every task became {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_n_handlers_at_once_and_never_more() {
    let api = TestServer::start_real_time().await;
    let names: Vec<String> = (0..9).map(|n| format!("t{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let ids = real_time_tasks(&api, "render", &names).await;
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(api.client_as(WORKER), ["render"])
        .name("renderer")
        .concurrency(3)
        .poll(Duration::from_secs(1));
    let handler = {
        let (running, most) = (running.clone(), most.clone());
        move |task: Task| {
            let (running, most) = (running.clone(), most.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, String>(Some(json!({"rendered": task.name})))
            }
        }
    };
    let run = tokio::spawn(worker.run(handler, async {
        stopped.await.ok();
    }));
    let tasks = until_all(&api, &ids, "completed").await;
    stop.send(()).unwrap();
    let ended = run.await.unwrap().unwrap();
    assert_eq!(
        ended,
        WorkerStopped {
            finished: 9,
            abandoned: 0
        }
    );
    assert_eq!(most.load(Ordering::SeqCst), 3, "three at once, never more");
    for task in tasks {
        assert_eq!(task.result, Some(json!({"rendered": task.name})));
        assert_eq!(task.attempts, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_lease_and_a_panic_fails_only_its_task() {
    let api = TestServer::start_real_time().await;
    let ids = real_time_tasks(&api, "slow", &["slow", "boom", "quick"]).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(api.client_as(WORKER), ["slow"])
        .concurrency(3)
        .lease(Duration::from_secs(1))
        .poll(Duration::from_secs(1));
    let run = tokio::spawn(worker.run(
        |task: Task| async move {
            match task.name.as_str() {
                // Four lease lengths, kept by heartbeats.
                "slow" => tokio::time::sleep(Duration::from_millis(4000)).await,
                "boom" => panic!("the input was empty"),
                _ => {}
            }
            Ok::<_, String>(None)
        },
        async {
            stopped.await.ok();
        },
    ));
    let admin = api.client_as(ADMIN);
    let boom = loop {
        let task = admin.get_task(&ids[1]).await.unwrap();
        if task.state == "failed" {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(boom
        .error
        .unwrap()
        .contains("the handler panicked: the input was empty"));
    let done = until_all(&api, &[ids[0].clone(), ids[2].clone()], "completed").await;
    assert_eq!(done[0].attempts, 1, "the slow task's lease never lapsed");
    let history = admin.history(&ids[0]).await.unwrap();
    let renewals = history
        .iter()
        .filter(|e| e.event_type == "TaskLeaseRenewed")
        .count();
    assert!(renewals >= 8, "only {renewals} heartbeats in four seconds");
    assert!(history.iter().all(|e| e.event_type != "TaskRequeued"));
    stop.send(()).unwrap();
    assert_eq!(run.await.unwrap().unwrap().finished, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_task_runs_again_elsewhere_and_a_stop_finishes_running_handlers() {
    let api = TestServer::start_real_time().await;
    let ids = real_time_tasks(&api, "import", &["import"]).await;
    // The first worker takes the task and is killed mid-run: no report, no heartbeats.
    let started = Arc::new(tokio::sync::Notify::new());
    let first = Worker::new(api.client_as(WORKER), ["import"])
        .name("doomed")
        .lease(Duration::from_secs(1))
        .poll(Duration::from_secs(1));
    let killed = tokio::spawn(first.run(
        {
            let started = started.clone();
            move |_task: Task| {
                let started = started.clone();
                async move {
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Ok::<_, String>(None)
                }
            }
        },
        std::future::pending(),
    ));
    started.notified().await;
    killed.abort();
    // The second takes it once the lease lapses; stopped while its handler
    // runs, it finishes that handler first.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let picked = Arc::new(tokio::sync::Notify::new());
    let second = Worker::new(api.client_as(WORKER), ["import"])
        .name("survivor")
        .lease(Duration::from_secs(1))
        .poll(Duration::from_secs(1));
    let run = tokio::spawn(second.run(
        {
            let picked = picked.clone();
            move |_task: Task| {
                let picked = picked.clone();
                async move {
                    picked.notify_one();
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok::<_, String>(Some(json!("imported")))
                }
            }
        },
        async {
            stopped.await.ok();
        },
    ));
    tokio::time::timeout(Duration::from_secs(10), picked.notified())
        .await
        .expect("the lapsed task was claimed again");
    stop.send(()).unwrap();
    let ended = run.await.unwrap().unwrap();
    assert_eq!(
        ended,
        WorkerStopped {
            finished: 1,
            abandoned: 0
        }
    );
    let task = api.client_as(ADMIN).get_task(&ids[0]).await.unwrap();
    assert_eq!(task.state, "completed", "finished before the stop returned");
    assert_eq!(task.attempts, 2);
    assert_eq!(task.result, Some(json!("imported")));
}
