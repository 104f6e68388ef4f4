//! `tasklog bench history`: what a long history costs a server that restarts
//! over it: memory, time until it serves, reads of finished tasks, deep list
//! pages, the console's pages, and `tasklog rebuild` of the stored views from the whole log.
//!
//! The store is filled through the task rules the API runs (create, claim,
//! complete), most tasks finished and a fixed number pending, then a
//! `tasklog serve` process of its own is started over it, once at a quarter of
//! the history and once at all of it, so memory that grows with the history
//! shows as a ratio.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use clap::Args;
use tasklog_events::envelope::recorded;
use tasklog_events::task_event::TaskCreated;
use tasklog_events::{EventStore, ExpectedRevision, Metadata, NewEvent, TaskEvent, TaskId};
use tasklog_projections::rebuild::rebuild;
use tasklog_projections::TaskView;

use super::server_process::ServerProcess;
use super::{percentile, run_concurrently, BenchStore, Figure, Output};
use crate::http::auth::new_secret;
use crate::rules::task::{decide, Command as TaskCommand};
use crate::Failure;

/// Tasks are spread over this many types, so a list by type walks a share.
const TYPES: u64 = 10;
/// Memory that follows the work in flight, not the history, grows at most
/// this much from a quarter of the history to all of it.
const FLAT_RSS_RATIO: f64 = 1.25;

#[derive(Debug, Args)]
pub struct HistoryBench {
    /// How many tasks the history holds.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// How many of them are pending; the others are completed.
    #[arg(long, default_value_t = 10_000)]
    pub pending: u64,
    /// How many appenders fill the store at once.
    #[arg(long, default_value_t = 64)]
    pub appenders: u64,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(bench: HistoryBench) -> Result<Vec<Figure>, Failure> {
    let fresh = BenchStore::open(bench.output.store.as_ref()).await?;
    let store = fresh.store.clone();
    let server_dir = tempfile::tempdir()?;
    let token = new_secret();
    let finished: Arc<Mutex<Vec<TaskId>>> = Arc::default();
    let now = Utc::now();

    // A quarter of the history, with every pending task. Each server is
    // started twice: the first start folds what is new into the stored views,
    // the second is the restart a deployment sees.
    let quarter = (bench.tasks / 4).max(bench.pending);
    let started = Instant::now();
    fill(&store, 0, bench.pending, false, now, &bench, &finished).await?;
    fill(&store, bench.pending, quarter, true, now, &bench, &finished).await?;
    ServerProcess::start(&fresh.url, server_dir.path(), &token)
        .await?
        .stop();
    let server = ServerProcess::start(&fresh.url, server_dir.path(), &token).await?;
    let rss_quarter = server.rss_bytes();
    server.stop();

    // The rest of the history, all of it finished.
    fill(&store, quarter, bench.tasks, true, now, &bench, &finished).await?;
    let fill_seconds = started.elapsed().as_secs_f64();
    let server = ServerProcess::start(&fresh.url, server_dir.path(), &token).await?;
    let catch_up_seconds = server.started_in.as_secs_f64();
    server.stop();
    let server = ServerProcess::start(&fresh.url, server_dir.path(), &token).await?;
    let restart_seconds = server.started_in.as_secs_f64();
    let finished = std::mem::take(&mut *finished.lock().expect("finished"));
    let mut gets = server.get_finished(&finished).await?;
    let mut pages = server.list_pages().await?;
    let rss_all = server.rss_bytes();
    let mut console = server.console_pages(&finished).await?;
    let rss_after_console = server.rss_bytes();
    let beside = match fresh.url.view_generations() {
        Some(_) => Some(server.rebuild_beside(&finished).await?),
        None => None,
    };
    server.stop();

    // `tasklog rebuild`: the whole log folded into emptied tables.
    let started = Instant::now();
    let rebuilt = rebuild(store.clone(), fresh.url.open_views().await?, |_, _| {}).await?;
    let rebuild_seconds = started.elapsed().as_secs_f64();
    let views_bytes = fresh.url.views_path().map(|path| {
        ["", "-wal"]
            .iter()
            .filter_map(|end| std::fs::metadata(format!("{}{end}", path.display())).ok())
            .map(|m| m.len())
            .sum::<u64>()
    });
    drop(store);
    fresh.remove().await?;

    let ratio = rss_all as f64 / rss_quarter.max(1) as f64;
    if ratio > FLAT_RSS_RATIO {
        eprintln!(
            "memory grows with the history: {:.0} MB at {} tasks, {:.0} MB at {}",
            mb(rss_quarter),
            quarter,
            mb(rss_all),
            bench.tasks
        );
    }
    Ok(vec![
        ("tasks", bench.tasks as f64),
        ("fill_tasks_per_s", bench.tasks as f64 / fill_seconds),
        ("rss_mb", mb(rss_all)),
        ("rss_mb_at_quarter", mb(rss_quarter)),
        ("rss_ratio_to_quarter", ratio),
        ("rss_mb_after_console_pages", mb(rss_after_console)),
        ("rss_flat", f64::from(u8::from(ratio <= FLAT_RSS_RATIO))),
        ("catch_up_to_serving_s", catch_up_seconds),
        ("restart_to_serving_s", restart_seconds),
        ("get_finished_p99_ms", percentile(&mut gets, 0.99)),
        ("list_page_p99_ms", percentile(&mut pages, 0.99)),
        (
            "console_tasks_page_p99_ms",
            percentile(&mut console.tasks, 0.99),
        ),
        (
            "console_filtered_page_p99_ms",
            percentile(&mut console.filtered, 0.99),
        ),
        (
            "console_search_page_p99_ms",
            percentile(&mut console.search, 0.99),
        ),
        (
            "console_task_page_p99_ms",
            percentile(&mut console.task, 0.99),
        ),
        ("rebuild_events_per_s", rebuilt as f64 / rebuild_seconds),
        (
            "rebuild_beside_serving_events_per_s",
            beside.as_ref().map_or(f64::NAN, |b| b.events_per_s),
        ),
        (
            "get_finished_during_rebuild_p99_ms",
            beside.map_or(f64::NAN, |mut b| percentile(&mut b.gets, 0.99)),
        ),
        ("views_mb", views_bytes.map_or(f64::NAN, mb)),
    ])
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// Appends tasks `from..to`, pending or completed, each in one append.
async fn fill(
    store: &Arc<dyn EventStore>,
    from: u64,
    to: u64,
    finish: bool,
    now: DateTime<Utc>,
    bench: &HistoryBench,
    finished: &Arc<Mutex<Vec<TaskId>>>,
) -> Result<(), Failure> {
    let count = to.saturating_sub(from);
    run_concurrently("filling the history", bench.appenders, count, {
        let (store, finished) = (store.clone(), finished.clone());
        move |n| {
            let (store, finished) = (store.clone(), finished.clone());
            async move {
                let id = TaskId::new();
                let events = task_events(id, from + n, finish, now)?;
                let stream = id.stream();
                store
                    .append(&stream, ExpectedRevision::NoStream, events)
                    .await?;
                if finish {
                    finished.lock().expect("finished").push(id);
                }
                Ok(())
            }
        }
    })
    .await?;
    Ok(())
}

/// Task `n`'s events as the API would make them: created, and if `finish`,
/// claimed and completed.
fn task_events(
    id: TaskId,
    n: u64,
    finish: bool,
    now: DateTime<Utc>,
) -> Result<Vec<NewEvent>, Failure> {
    let created = TaskCreated {
        name: format!("history-{n}"),
        task_type: format!("history-{}", n % TYPES),
        priority: (n % 10) as i64,
        data: serde_json::from_value(serde_json::json!({"order": n})).expect("an object"),
        available_time: now - chrono::Duration::hours(1),
        expiration_time: now + chrono::Duration::days(365),
        ..TaskCreated::default()
    };
    let worker = "history".to_owned();
    let mut commands = vec![TaskCommand::Create(created)];
    if finish {
        commands.push(TaskCommand::Claim {
            worker: worker.clone(),
            lease: chrono::Duration::minutes(5),
        });
        commands.push(TaskCommand::Complete {
            worker,
            token: None,
            result: None,
        });
    }
    let mut events: Vec<NewEvent> = Vec::new();
    for command in &commands {
        let task = TaskView::fold(&recorded(&id.stream(), 1, events.clone()));
        let decided: Vec<TaskEvent> = decide(task.as_ref(), command, now)?;
        events.extend(
            decided
                .iter()
                .map(|e| e.to_new_event(now, Metadata::default())),
        );
    }
    Ok(events)
}

/// Milliseconds of each load of a console page: every request the browser
/// makes for it, one after another (the shell, its script and style
/// revalidated by ETag, the token check, the page's API reads).
#[derive(Default)]
struct ConsolePages {
    /// The first page of all tasks.
    tasks: Vec<f64>,
    /// Pending tasks of one type.
    filtered: Vec<f64>,
    /// Text in the name that no task holds, the slowest search: each page
    /// reads its bound of stored tasks and answers none with a cursor.
    search: Vec<f64>,
    /// A finished task with its timeline.
    task: Vec<f64>,
}

/// A rebuild beside the serving node, and the reads it served meanwhile.
struct Beside {
    events_per_s: f64,
    /// Milliseconds of each GET of a finished task during the rebuild.
    gets: Vec<f64>,
}

impl ServerProcess {
    /// Rebuilds the views beside the serving ones (`POST /v1/admin/rebuild`),
    /// reading finished tasks until it has swapped them in.
    async fn rebuild_beside(&self, finished: &[TaskId]) -> Result<Beside, Failure> {
        let started = Instant::now();
        self.post("/v1/admin/rebuild", &serde_json::json!({}))
            .await?;
        let mut gets = Vec::new();
        loop {
            gets.extend(
                self.get_finished(&finished[..finished.len().min(100)])
                    .await?,
            );
            let status = self.get("/v1/admin/rebuild").await?;
            match status["state"].as_str() {
                Some("running") => continue,
                Some("finished") => {
                    let events = status["events"].as_u64().unwrap_or(0) as f64;
                    let events_per_s = events / started.elapsed().as_secs_f64();
                    return Ok(Beside { events_per_s, gets });
                }
                _ => return Err(format!("the rebuild beside the server stopped: {status}").into()),
            }
        }
    }

    /// Milliseconds of each GET of 2,000 finished tasks drawn at random.
    async fn get_finished(&self, finished: &[TaskId]) -> Result<Vec<f64>, Failure> {
        let mut latencies = Vec::new();
        for _ in 0..2_000.min(finished.len()) {
            let pick = uuid::Uuid::new_v4().as_u128() % finished.len() as u128;
            let started = Instant::now();
            let task = self
                .get(&format!("/v1/tasks/{}", finished[pick as usize]))
                .await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            if task["state"] != "completed" {
                return Err(format!("a finished task answered {task}").into());
            }
        }
        Ok(latencies)
    }

    /// Loads each console page 200 times (see [`ConsolePages`]).
    async fn console_pages(&self, finished: &[TaskId]) -> Result<ConsolePages, Failure> {
        let mut etags = Vec::new();
        for asset in ["/ui/assets/console.js", "/ui/assets/console.css"] {
            let response = self
                .http
                .get(format!("{}{asset}", self.base))
                .send()
                .await?;
            let etag = response.headers().get("etag").cloned();
            etags.push((asset, etag.ok_or("the console's assets have no ETag")?));
        }
        let load = |shell: String, reads: Vec<String>| {
            let etags = &etags;
            async move {
                let started = Instant::now();
                self.http
                    .get(format!("{}{shell}", self.base))
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                for (asset, etag) in etags {
                    let url = format!("{}{asset}", self.base);
                    let response = self
                        .http
                        .get(url)
                        .header("if-none-match", etag)
                        .send()
                        .await?;
                    if response.status() != reqwest::StatusCode::NOT_MODIFIED {
                        return Err(
                            format!("{asset}: {} to a revalidation", response.status()).into()
                        );
                    }
                }
                self.get("/v1/token").await?;
                for read in &reads {
                    self.get(read).await?;
                }
                Ok::<f64, Failure>(started.elapsed().as_secs_f64() * 1000.0)
            }
        };
        let mut pages = ConsolePages::default();
        for round in 0..200 {
            let tasks = vec!["/v1/tasks?limit=50".to_owned()];
            pages.tasks.push(load("/ui/tasks".into(), tasks).await?);
            let filtered = vec![format!(
                "/v1/tasks?state=pending&type=history-{}&limit=50",
                round % TYPES
            )];
            pages
                .filtered
                .push(load("/ui/tasks".into(), filtered).await?);
            let search = vec![format!(
                "/v1/tasks?nameContains=history-{}x&limit=50",
                round
            )];
            pages.search.push(load("/ui/tasks".into(), search).await?);
            let pick = uuid::Uuid::new_v4().as_u128() % finished.len().max(1) as u128;
            let id = finished
                .get(pick as usize)
                .ok_or("no finished task to open")?;
            let task = vec![format!("/v1/tasks/{id}"), format!("/v1/tasks/{id}/events")];
            pages
                .task
                .push(load(format!("/ui/tasks/{id}"), task).await?);
        }
        Ok(pages)
    }

    /// Milliseconds of each page of 100 completed tasks of one type, walking
    /// the list from its start up to 1,000 pages deep.
    async fn list_pages(&self) -> Result<Vec<f64>, Failure> {
        let mut latencies = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1_000 {
            let mut path = "/v1/tasks?state=completed&type=history-0&limit=100".to_owned();
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let started = Instant::now();
            let page = self.get(&path).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(latencies)
    }
}
