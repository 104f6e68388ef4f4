//! `tasklog bench`: the figures tasklog is measured by, printed as
//! `name: value` lines, or one JSON object with `--json`.

mod api;
mod history;
mod server_process;
mod store;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Subcommand};
use tasklog_events::EventStore;

use crate::app::store_url::StoreUrl;
use crate::cli::progress::Progress;
use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append events from concurrent appenders to a fresh store, then replay them.
    Store(store::StoreBench),
    /// Start a server on a fresh store and drive it over HTTP.
    Api(api::ApiBench),
    /// Fill a fresh store with a long history, then restart a server over it.
    History(history::HistoryBench),
    /// A steady create load, alone and with many event-stream subscribers.
    Stream(stream::StreamBench),
}

/// Options every benchmark takes.
#[derive(Debug, Args)]
pub struct Output {
    /// Print one JSON object instead of `name: value` lines.
    #[arg(long)]
    pub json: bool,
    /// The backend to measure, as a URL: the default is a new embedded store
    /// in a temporary directory; with `postgres://..`, a new schema in that
    /// database, dropped afterwards; with `esdb://..`, a new namespace of
    /// streams on that server (left there: EventStoreDB does not delete).
    #[arg(long, env = "TASKLOG_BENCH_STORE")]
    pub store: Option<StoreUrl>,
}

/// A new, empty store for one run, and what to remove afterwards.
pub struct BenchStore {
    pub store: Arc<dyn EventStore>,
    /// The store's URL, for a server process of its own.
    pub url: StoreUrl,
    place: Place,
}

enum Place {
    Directory(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Schema(tasklog_store_postgres::PostgresStore),
    Namespace,
}

impl BenchStore {
    pub async fn open(url: Option<&StoreUrl>) -> Result<Self, Failure> {
        match url {
            None | Some(StoreUrl::Sqlite(_)) => {
                let dir = tempfile::tempdir()?;
                let url = StoreUrl::default_in(dir.path());
                Ok(BenchStore {
                    store: url.open().await?,
                    url,
                    place: Place::Directory(dir),
                })
            }
            #[cfg(feature = "postgres")]
            Some(StoreUrl::Postgres(url)) => {
                let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let base = url.split_once('?').map_or(url.as_str(), |(base, _)| base);
                let url = format!("{base}?schema={schema}");
                let store = tasklog_store_postgres::PostgresStore::connect(&url).await?;
                Ok(BenchStore {
                    store: Arc::new(store.clone()),
                    url: StoreUrl::Postgres(url),
                    place: Place::Schema(store),
                })
            }
            #[cfg(not(feature = "postgres"))]
            Some(StoreUrl::Postgres(_)) => {
                Err(crate::app::store_url::not_built_in("postgres").into())
            }
            Some(StoreUrl::EventStoreDb { url: base, .. }) => {
                let separator = if base.contains('?') { '&' } else { '?' };
                let namespace = format!("bench{}.", uuid::Uuid::new_v4().simple());
                let url = StoreUrl::EventStoreDb {
                    url: format!("{base}{separator}namespace={namespace}"),
                    views_in: None,
                };
                Ok(BenchStore {
                    store: url.open().await?,
                    url,
                    place: Place::Namespace,
                })
            }
        }
    }

    /// The bytes the log takes: files on disk, or tables and indexes; unknown
    /// for a namespace on a shared EventStoreDB.
    pub async fn disk_bytes(&self) -> Result<Option<u64>, Failure> {
        match &self.place {
            Place::Directory(dir) => {
                let mut total = 0;
                for entry in std::fs::read_dir(dir.path())? {
                    total += entry?.metadata()?.len();
                }
                Ok(Some(total))
            }
            #[cfg(feature = "postgres")]
            Place::Schema(store) => Ok(Some(store.disk_bytes().await?)),
            Place::Namespace => Ok(None),
        }
    }

    pub async fn remove(self) -> Result<(), Failure> {
        match self.place {
            Place::Directory(dir) => Ok(dir.close()?),
            #[cfg(feature = "postgres")]
            Place::Schema(store) => Ok(store.drop_schema().await?),
            Place::Namespace => Ok(()),
        }
    }
}

pub async fn run(command: BenchCommand) -> Result<(), Failure> {
    let json = match &command {
        BenchCommand::Store(bench) => bench.output.json,
        BenchCommand::Api(bench) => bench.output.json,
        BenchCommand::History(bench) => bench.output.json,
        BenchCommand::Stream(bench) => bench.output.json,
    };
    let figures = match command {
        BenchCommand::Store(bench) => store::run(bench).await?,
        BenchCommand::Api(bench) => api::run(bench).await?,
        BenchCommand::History(bench) => history::run(bench).await?,
        BenchCommand::Stream(bench) => stream::run(bench).await?,
    };
    print_figures(&figures, json);
    Ok(())
}

/// A measured figure: its name and value.
pub type Figure = (&'static str, f64);

fn print_figures(figures: &[Figure], json: bool) {
    if json {
        let object: serde_json::Map<String, serde_json::Value> = figures
            .iter()
            .map(|(name, value)| (name.to_string(), rounded(*value).into()))
            .collect();
        println!("{}", serde_json::Value::Object(object));
    } else {
        for (name, value) in figures {
            println!("{name}: {}", rounded(*value));
        }
    }
}

/// Figures keep three decimals: enough for milliseconds, no noise beyond.
fn rounded(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// The task creates after position `after` on the event stream at `base`,
/// each a CloudEvent's JSON text, as they arrive.
pub async fn creates_streamed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    after: u64,
) -> Result<impl futures::Stream<Item = Result<Vec<u8>, Failure>> + Send, Failure> {
    let url = format!("{base}/v1/events/stream?from={after}&eventType=TaskCreated");
    let response = http.get(url).bearer_auth(token).send().await?;
    Ok(sse_data(response))
}

/// The `data` of each Server-Sent Event in `response`, as it arrives. Reads
/// the lines of each chunk in place (a bench shares the CPU with the server).
pub fn sse_data(
    response: reqwest::Response,
) -> impl futures::Stream<Item = Result<Vec<u8>, Failure>> + Send {
    let body = response.bytes_stream();
    // What was received, and where its first unread line starts.
    futures::stream::try_unfold(
        (body, Vec::<u8>::new(), 0usize),
        |(mut body, mut pending, mut start)| async move {
            loop {
                if let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                    let line = &pending[start..start + end];
                    start += end + 1;
                    if let Some(data) = line.strip_prefix(b"data:") {
                        let data = data.trim_ascii().to_vec();
                        return Ok(Some((data, (body, pending, start))));
                    }
                    continue;
                }
                match futures::StreamExt::next(&mut body).await {
                    Some(chunk) => {
                        pending.drain(..start);
                        start = 0;
                        pending.extend_from_slice(&chunk?);
                    }
                    None => return Ok(None),
                }
            }
        },
    )
}

/// The resident memory of process `pid` ("self": this one), from /proc (0
/// where there is none).
pub fn rss_bytes(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The `fraction` percentile of `samples` (sorted in place).
pub fn percentile(samples: &mut [f64], fraction: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    let index = ((samples.len() as f64 * fraction).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[index]
}

/// `concurrency` loops share `total` calls of `call`, which are `what` (shown
/// as progress); returns each call's milliseconds.
pub async fn run_concurrently<F, Fut>(
    what: &str,
    concurrency: u64,
    total: u64,
    call: F,
) -> Result<Vec<f64>, Failure>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Failure>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let progress = Progress::new(what, "calls", total);
    let mut loops = Vec::new();
    for _ in 0..concurrency {
        let (next, call, progress) = (next.clone(), call.clone(), progress.clone());
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, Failure>(latencies);
                }
                let started = Instant::now();
                call(n).await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                progress.add(1);
            }
        }));
    }
    let mut all = Vec::with_capacity(total as usize);
    for handle in loops {
        all.extend(handle.await??);
    }
    progress.finish();
    Ok(all)
}
