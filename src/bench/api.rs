//! `tasklog bench api`: a `tasklog serve` process on a fresh store, driven over
//! HTTP on loopback; its CPU time and memory are the server's alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tasklog_client::api::body::{JsonObject, Ranged, TaskTypes, Text, Time};
use tasklog_client::api::consumers::StreamQuery;
use tasklog_client::api::tasks::{ClaimRequest, CompleteRequest, CreateTask, CreateTasks};
use tasklog_client::Client;

use super::server_process::ServerProcess;
use super::{percentile, run_concurrently, BenchStore, Figure, Output};
use crate::http::auth::new_secret;
use crate::Failure;

#[derive(Debug, Args)]
pub struct ApiBench {
    /// How many tasks the create phase creates.
    #[arg(long, default_value_t = 100_000)]
    pub creates: u64,
    /// Concurrent connections in the create phase.
    #[arg(long, default_value_t = 64)]
    pub connections: u64,
    /// How many tasks each lifecycle phase takes through create, claim and
    /// complete: one worker a task from start to end, then all created first.
    #[arg(long, default_value_t = 20_000)]
    pub lifecycles: u64,
    /// Concurrent workers in the lifecycle phase.
    #[arg(long, default_value_t = 16)]
    pub workers: u64,
    /// How many creates carry an idempotency key; each is then sent again.
    #[arg(long, default_value_t = 20_000)]
    pub keyed_creates: u64,
    /// How many tasks the batch phase creates, 1,000 to a request.
    #[arg(long, default_value_t = 100_000)]
    pub batch_creates: u64,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(bench: ApiBench) -> Result<Vec<Figure>, Failure> {
    let fresh = BenchStore::open(bench.output.store.as_ref()).await?;
    let server_dir = tempfile::tempdir()?;
    let token = new_secret();
    let server = ServerProcess::start(&fresh.url, server_dir.path(), &token).await?;
    let api = server.client()?;

    // A live SSE subscriber from the head, timing when each create reaches it.
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let delivered = tokio::spawn(watch_stream(api.clone(), bench.creates));
    let rss_before = server.rss_bytes();
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let mut latencies = run_concurrently("creating tasks", bench.connections, bench.creates, {
        let (api, acked) = (api.clone(), acked.clone());
        move |n| {
            let (api, acked) = (api.clone(), acked.clone());
            async move {
                let task = api
                    .create_task(&create_body(n, "bench-create", Utc::now()))
                    .await?;
                acked.lock().expect("acks").insert(task.id, Instant::now());
                Ok(())
            }
        }
    })
    .await?;
    let create_seconds = started.elapsed().as_secs_f64();
    let create_cpu = server.cpu_seconds() - cpu_before;
    let delivered = delivered.await??;
    let acked = std::mem::take(&mut *acked.lock().expect("acks"));
    let mut lags: Vec<f64> = delivered
        .iter()
        .filter_map(|(id, at)| {
            acked
                .get(id)
                .map(|ack| at.saturating_duration_since(*ack).as_secs_f64() * 1000.0)
        })
        .collect();
    if lags.len() as u64 != bench.creates {
        return Err(format!(
            "the stream delivered {} of {} creates",
            lags.len(),
            bench.creates
        )
        .into());
    }
    let rss_growth = server.rss_bytes().saturating_sub(rss_before) as f64;

    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    run_concurrently(
        "create, claim, complete",
        bench.workers,
        bench.lifecycles,
        {
            let api = api.clone();
            move |n| {
                let api = api.clone();
                async move {
                    let worker = format!("worker-{n}");
                    api.create_task(&create_body(n, "bench-lifecycle", Utc::now()))
                        .await?;
                    let claimed = api
                        .claim(&claim_body("bench-lifecycle", &worker, 5))
                        .await?;
                    let task = claimed.ok_or("a claim returned no task")?;
                    api.complete(&task.id, &complete_body(&worker)).await?;
                    Ok(())
                }
            }
        },
    )
    .await?;
    let lifecycle_seconds = started.elapsed().as_secs_f64();
    let lifecycle_cpu = server.cpu_seconds() - cpu_before;

    // The peers' shape: producers create the tasks first, then workers claim
    // and complete until the queue is empty.
    let started = Instant::now();
    run_concurrently("creating tasks", bench.connections, bench.lifecycles, {
        let api = api.clone();
        move |n| {
            let api = api.clone();
            async move {
                let body = create_body(n, "bench-queued", Utc::now());
                api.create_task(&body).await?;
                Ok(())
            }
        }
    })
    .await?;
    let queued_create_seconds = started.elapsed().as_secs_f64();
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    for n in 0..bench.workers {
        let api = api.clone();
        workers.push(tokio::spawn(async move {
            let worker = format!("queue-worker-{n}");
            let mut done = 0u64;
            let claim = claim_body("bench-queued", &worker, 0);
            while let Some(task) = api.claim(&claim).await? {
                api.complete(&task.id, &complete_body(&worker)).await?;
                done += 1;
            }
            Ok::<_, Failure>(done)
        }));
    }
    let mut drained = 0;
    for worker in workers {
        drained += worker.await??;
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    let drain_cpu = server.cpu_seconds() - cpu_before;
    if drained != bench.lifecycles {
        return Err(format!(
            "the workers completed {drained} of {} tasks",
            bench.lifecycles
        )
        .into());
    }

    // Creates with an idempotency key each, then every one again, as a client
    // retrying after lost answers would: the second round must make nothing.
    let at = Utc::now();
    let mut keyed_seconds = [0.0; 2];
    for round in &mut keyed_seconds {
        let started = Instant::now();
        run_concurrently(
            "creating tasks with idempotency keys",
            bench.connections,
            bench.keyed_creates,
            {
                let api = api.clone();
                move |n| {
                    let api = api.clone();
                    async move {
                        let body = create_body(n, "bench-keyed", at);
                        api.create_task_once(&format!("key-{n}"), &body).await?;
                        Ok(())
                    }
                }
            },
        )
        .await?;
        *round = started.elapsed().as_secs_f64();
    }
    let queues = api.list_queues().await?;
    let keyed = queues.iter().find(|queue| queue.task_type == "bench-keyed");
    let keyed_tasks = keyed.map_or(0, |queue| queue.pending);
    if keyed_tasks != bench.keyed_creates {
        return Err(format!("{keyed_tasks} tasks for {} keys", bench.keyed_creates).into());
    }

    // Batches of 1,000 creates, a few requests at once.
    let batches = bench.batch_creates.div_ceil(BATCH);
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    run_concurrently("creating tasks in batches", BATCH_CONNECTIONS, batches, {
        let api = api.clone();
        move |n| {
            let api = api.clone();
            async move {
                let at = Utc::now();
                let tasks = (n * BATCH..(n + 1) * BATCH)
                    .map(|i| create_body(i, "bench-batch", at))
                    .collect();
                let made = api.create_tasks(&CreateTasks { tasks }).await?;
                match made.len() as u64 {
                    BATCH => Ok(()),
                    _ => Err("a batch answered without its tasks".into()),
                }
            }
        }
    })
    .await?;
    let batch_seconds = started.elapsed().as_secs_f64();
    let batch_cpu = server.cpu_seconds() - cpu_before;
    let batched = batches * BATCH;

    server.stop();
    fresh.remove().await?;

    Ok(vec![
        ("create_per_s", bench.creates as f64 / create_seconds),
        ("create_p99_ms", percentile(&mut latencies, 0.99)),
        (
            "server_cpu_us_per_create",
            create_cpu * 1e6 / bench.creates as f64,
        ),
        (
            "lifecycle_tasks_per_s",
            bench.lifecycles as f64 / lifecycle_seconds,
        ),
        (
            "server_cpu_us_per_lifecycle",
            lifecycle_cpu * 1e6 / bench.lifecycles as f64,
        ),
        (
            "queued_create_per_s",
            bench.lifecycles as f64 / queued_create_seconds,
        ),
        (
            "claim_complete_per_s",
            bench.lifecycles as f64 / drain_seconds,
        ),
        (
            "server_cpu_us_per_claim_complete",
            drain_cpu * 1e6 / bench.lifecycles as f64,
        ),
        (
            "queued_lifecycle_per_s",
            bench.lifecycles as f64 / (queued_create_seconds + drain_seconds),
        ),
        ("stream_lag_p99_ms", percentile(&mut lags, 0.99)),
        (
            "rss_mb_per_100k_tasks",
            rss_growth / 1_048_576.0 * 100_000.0 / bench.creates as f64,
        ),
        (
            "keyed_create_per_s",
            bench.keyed_creates as f64 / keyed_seconds[0],
        ),
        (
            "keyed_replay_per_s",
            bench.keyed_creates as f64 / keyed_seconds[1],
        ),
        ("batch_create_per_s", batched as f64 / batch_seconds),
        (
            "server_cpu_us_per_batched_create",
            batch_cpu * 1e6 / batched as f64,
        ),
    ])
}

/// Tasks to a batch, and batches sent at once, in the batch phase.
const BATCH: u64 = 1000;
const BATCH_CONNECTIONS: u64 = 4;

fn create_body(n: u64, task_type: &str, now: chrono::DateTime<Utc>) -> CreateTask {
    let data = json!({"to": format!("user{n}@example.com"), "template": "welcome"});
    CreateTask {
        name: Text(format!("send-welcome-{n}")),
        task_type: Text(task_type.to_owned()),
        priority: (n % 10) as i64,
        data: JsonObject(data.as_object().cloned().unwrap_or_default()),
        available_time: Time(now - Duration::seconds(1)),
        expiration_time: Time(now + Duration::hours(1)),
        labels: None,
        tags: None,
        retry: None,
    }
}

/// A claim of one task of `task_type` for `worker`, waiting up to `wait_seconds`.
fn claim_body(task_type: &str, worker: &str, wait_seconds: u64) -> ClaimRequest {
    ClaimRequest {
        types: TaskTypes(vec![task_type.to_owned()]),
        worker: Text(worker.to_owned()),
        lease_seconds: Ranged(60),
        wait_seconds: Ranged(wait_seconds),
        label_selector: None,
        tags: Vec::new(),
        max: None,
    }
}

fn complete_body(worker: &str) -> CompleteRequest {
    CompleteRequest {
        worker: Text(worker.to_owned()),
        result: None,
    }
}

/// Follows the event stream of the fresh store until `creates` creates
/// arrived; returns when each arrived, by task id.
async fn watch_stream(api: Client, creates: u64) -> Result<HashMap<String, Instant>, Failure> {
    let mut arrived = HashMap::new();
    let query = StreamQuery {
        from: Some(0),
        event_type: Some("TaskCreated".into()),
        ..StreamQuery::default()
    };
    let events = api.stream(query);
    futures::pin_mut!(events);
    while (arrived.len() as u64) < creates {
        let event = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .map_err(|_| "the event stream stalled")?
            .ok_or("the event stream ended")??;
        arrived.insert(event.subject, Instant::now());
    }
    Ok(arrived)
}
