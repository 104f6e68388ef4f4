//! `tasklog bench store`: append throughput and latency, replay speed, size on disk.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use clap::Args;
use futures::{future, TryStreamExt};
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{
    read_all_pages, EventStore, ExpectedRevision, Metadata, Position, TaskEvent, TaskId,
};

use super::{percentile, run_concurrently, BenchStore, Figure, Output};
use crate::Failure;

#[derive(Debug, Args)]
pub struct StoreBench {
    /// How many events to append.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// How many appenders run at once, each waiting for its append to be durable.
    #[arg(long, default_value_t = 64)]
    pub appenders: u64,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(bench: StoreBench) -> Result<Vec<Figure>, Failure> {
    let fresh = BenchStore::open(bench.output.store.as_ref()).await?;
    let store = fresh.store.clone();

    let started = Instant::now();
    let latencies_ms = append_concurrently(&store, bench.events, bench.appenders).await?;
    let append_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let replayed = replay(&*store).await?;
    let replay_seconds = started.elapsed().as_secs_f64();
    if replayed != bench.events {
        return Err(format!("replayed {replayed} events of {}", bench.events).into());
    }
    let started = Instant::now();
    let verified = tasklog_events::verify(&*store).await?.events;
    let verify_seconds = started.elapsed().as_secs_f64();

    // Measured while the store is open: the WAL counts too.
    let bytes = fresh.disk_bytes().await?;
    drop(store);
    fresh.remove().await?;

    let mut latencies_ms = latencies_ms;
    let mut figures = vec![
        ("append_events_per_s", bench.events as f64 / append_seconds),
        ("append_p99_ms", percentile(&mut latencies_ms, 0.99)),
        ("replay_events_per_s", replayed as f64 / replay_seconds),
    ];
    if let Some(bytes) = bytes {
        figures.push(("db_bytes_per_event", bytes as f64 / bench.events as f64));
    }
    figures.push(("verify_events_per_s", verified as f64 / verify_seconds));
    Ok(figures)
}

/// `appenders` loops share `events` appends, one new task stream each, as
/// creates do; returns every append's latency in milliseconds.
async fn append_concurrently(
    store: &Arc<dyn EventStore>,
    events: u64,
    appenders: u64,
) -> Result<Vec<f64>, Failure> {
    let store = store.clone();
    run_concurrently("appending", appenders, events, move |n| {
        let store = store.clone();
        async move {
            let event = sample_task(n).to_new_event(Utc::now(), Metadata::default());
            store
                .append(
                    &TaskId::new().stream(),
                    ExpectedRevision::NoStream,
                    vec![event],
                )
                .await?;
            Ok(())
        }
    })
    .await
}

/// A create like the seed's example: a small task with a little data.
fn sample_task(n: u64) -> TaskEvent {
    let now = Utc::now();
    let data = serde_json::json!({"to": format!("user{n}@example.com"), "template": "welcome"});
    TaskEvent::Created(TaskCreated {
        name: format!("send-welcome-{n}"),
        task_type: "email".into(),
        priority: (n % 10) as i64,
        data: serde_json::from_value(data).expect("an object"),
        available_time: now,
        expiration_time: now + Duration::hours(1),
        ..Default::default()
    })
}

/// Reads the whole log with `read_all`; returns how many events it held.
async fn replay(store: &dyn EventStore) -> Result<u64, Failure> {
    let count = read_all_pages(store, Position::START, 8192)
        .try_fold(0, |count, page| future::ok(count + page.len() as u64))
        .await?;
    Ok(count)
}
