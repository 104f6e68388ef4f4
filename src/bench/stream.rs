//! `tasklog bench stream`: what live event-stream subscribers cost a server.
//!
//! A `tasklog serve` process of its own takes a steady create load three
//! times: to warm up, alone, then with many Server-Sent Events subscribers
//! following the log from its head. It prints the creates per second and their
//! p99 alone and with subscribers, how long a create took to reach a
//! subscriber, the server's memory and threads with the subscribers and after
//! they left, and checks that every subscriber got every create once. The
//! created tasks stay pending, so memory grows with them too: the alone round
//! says by how much, and the `_of_subscribers` figures take that out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use futures::StreamExt;
use serde_json::json;

use super::server_process::ServerProcess;
use super::{creates_streamed, percentile, BenchStore, Figure, Output};
use crate::http::auth::new_secret;
use crate::Failure;

#[derive(Debug, Args)]
pub struct StreamBench {
    /// How many subscribers follow the event stream in the second round.
    #[arg(long, default_value_t = 1_000)]
    pub subscribers: u64,
    /// Creates per second offered in each round.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Seconds each round lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections the creates are sent over.
    #[arg(long, default_value_t = 8)]
    pub connections: u64,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(bench: StreamBench) -> Result<Vec<Figure>, Failure> {
    let fresh = BenchStore::open(bench.output.store.as_ref()).await?;
    let server_dir = tempfile::tempdir()?;
    let token = new_secret();
    let server = Arc::new(ServerProcess::start(&fresh.url, server_dir.path(), &token).await?);

    // A first round fills the caches; the second says what the same creates
    // cost in memory without subscribers, to tell the subscribers' share.
    create_round(&server, &bench, "warm").await?;
    let rss_warm = server.rss_bytes();
    let (alone_per_s, mut alone_latencies, alone_acked) =
        create_round(&server, &bench, "alone").await?;
    let rss_before = server.rss_bytes();
    let threads_before = server.threads();

    // Subscribers from the head, each counting what it gets; the first also
    // notes when each create arrived.
    let after = server.position().await?;
    let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let counts: Vec<Arc<AtomicU64>> = (0..bench.subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let connected = Arc::new(AtomicU64::new(0));
    let mut streams = Vec::new();
    for (n, count) in counts.iter().enumerate() {
        let probe = (n == 0).then(|| arrivals.clone());
        streams.push(tokio::spawn(subscribe(
            server.clone(),
            after,
            (count.clone(), connected.clone()),
            probe,
        )));
    }
    // Every subscriber live before the creates start.
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < bench.subscribers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (with_per_s, mut with_latencies, acked) = create_round(&server, &bench, "with").await?;
    let expected = acked.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.iter().any(|c| c.load(Ordering::Relaxed) < expected) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let short = counts
        .iter()
        .filter(|c| c.load(Ordering::Relaxed) != expected)
        .count();
    let rss_with = server.rss_bytes();
    let threads_with = server.threads();
    let arrivals = std::mem::take(&mut *arrivals.lock().expect("arrivals"));
    let mut lags: Vec<f64> = acked
        .iter()
        .filter_map(|(id, ack)| {
            let at = arrivals.get(id)?;
            Some(at.saturating_duration_since(*ack).as_secs_f64() * 1000.0)
        })
        .collect();

    for stream in streams {
        stream.abort();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = server.rss_bytes();
    let threads_after = server.threads();
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop();
    }
    fresh.remove().await?;
    if short > 0 {
        return Err(format!(
            "{short} of {} subscribers did not get exactly the {expected} creates",
            bench.subscribers
        )
        .into());
    }
    let mb = |bytes: u64| bytes as f64 / 1_048_576.0;
    let growth_alone = mb(rss_before) - mb(rss_warm);
    let growth_of_creates = growth_alone * expected as f64 / alone_acked.len().max(1) as f64;
    let growth = mb(rss_with) - mb(rss_before);
    let kept = mb(rss_after) - mb(rss_before);
    Ok(vec![
        ("subscribers", bench.subscribers as f64),
        ("create_per_s_alone", alone_per_s),
        ("create_per_s_with_subscribers", with_per_s),
        ("create_ratio", with_per_s / alone_per_s),
        (
            "create_p99_ms_alone",
            percentile(&mut alone_latencies, 0.99),
        ),
        (
            "create_p99_ms_with_subscribers",
            percentile(&mut with_latencies, 0.99),
        ),
        ("delivery_lag_p99_ms", percentile(&mut lags, 0.99)),
        ("rss_growth_mb", growth),
        ("rss_growth_alone_mb", growth_alone),
        ("rss_growth_of_subscribers_mb", growth - growth_of_creates),
        ("rss_kept_after_mb", kept),
        ("rss_kept_of_subscribers_mb", kept - growth_of_creates),
        ("threads_before", threads_before as f64),
        ("threads_with_subscribers", threads_with as f64),
        ("threads_after", threads_after as f64),
    ])
}

/// Offers `bench.rate` creates a second for `bench.seconds` over
/// `bench.connections` connections; returns the creates per second made, each
/// create's milliseconds, and when each created task was acknowledged.
async fn create_round(
    server: &Arc<ServerProcess>,
    bench: &StreamBench,
    round: &str,
) -> Result<(f64, Vec<f64>, HashMap<String, Instant>), Failure> {
    let total = bench.rate * bench.seconds;
    let interval = Duration::from_secs_f64(bench.connections as f64 / bench.rate.max(1) as f64);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut loops = Vec::new();
    for _ in 0..bench.connections {
        let (server, next, round) = (server.clone(), next.clone(), round.to_owned());
        loops.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut made = Vec::new();
            loop {
                ticks.tick().await;
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, Failure>(made);
                }
                let now = Utc::now();
                let body = json!({
                    "name": format!("{round}-{n}"), "type": "bench-stream", "priority": 1,
                    "data": {"n": n}, "availableTime": now,
                    "expirationTime": now + chrono::Duration::hours(1),
                });
                let sent = Instant::now();
                let task = server.post("/v1/tasks", &body).await?;
                let acked = Instant::now();
                let id = task["id"].as_str().unwrap_or_default().to_owned();
                made.push((id, acked, (acked - sent).as_secs_f64() * 1000.0));
            }
        }));
    }
    let mut acked = HashMap::new();
    let mut latencies = Vec::new();
    for handle in loops {
        for (id, at, ms) in handle.await?? {
            acked.insert(id, at);
            latencies.push(ms);
        }
    }
    let per_s = total as f64 / started.elapsed().as_secs_f64();
    Ok((per_s, latencies, acked))
}

/// Follows the event stream after `after`, counting the task creates it gets
/// (and, once, that it is connected); the probe also notes when each arrived.
async fn subscribe(
    server: Arc<ServerProcess>,
    after: u64,
    (count, connected): (Arc<AtomicU64>, Arc<AtomicU64>),
    probe: Option<Arc<Mutex<HashMap<String, Instant>>>>,
) -> Result<(), Failure> {
    let events = creates_streamed(&server.http, &server.base, &server.token, after).await?;
    connected.fetch_add(1, Ordering::Relaxed);
    futures::pin_mut!(events);
    while let Some(data) = events.next().await {
        let data = data?;
        count.fetch_add(1, Ordering::Relaxed);
        if let Some(probe) = &probe {
            let event: serde_json::Value = serde_json::from_slice(&data)?;
            if let Some(subject) = event["subject"].as_str() {
                let mut arrivals = probe.lock().expect("arrivals");
                arrivals.insert(subject.to_owned(), Instant::now());
            }
        }
    }
    Ok(())
}
