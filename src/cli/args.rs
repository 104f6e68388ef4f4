//! The arguments the subcommands share or take.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tasklog_events::EventStore;

use crate::app::store_url::StoreUrl;
use crate::http::Limits;
use crate::server::Settings;
use crate::Failure;

/// Where the log lives; every command that reads it takes these.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The data directory: the embedded store and the tokens file.
    #[arg(long, env = "TASKLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The event store, as a URL; the default is the SQLite file in the data directory.
    #[arg(long, env = "TASKLOG_STORE")]
    pub store: Option<StoreUrl>,
}

impl StoreArgs {
    /// The store, which must exist already: a command that only reads refuses
    /// to make an empty one where a mistyped path points.
    pub async fn open_existing(&self) -> Result<Arc<dyn EventStore>, Failure> {
        let url = self.store_url();
        if let StoreUrl::Sqlite(path) = &url {
            if !path.exists() {
                let message = format!(
                    "no store at {}: check --data-dir or --store",
                    path.display()
                );
                return Err(message.into());
            }
        }
        Ok(url.open().await?)
    }

    pub fn store_url(&self) -> StoreUrl {
        match &self.store {
            Some(url) => url.clone().in_data_dir(&self.data_dir),
            None => StoreUrl::default_in(&self.data_dir),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this task's history.
    #[arg(long)]
    pub task: Option<tasklog_events::TaskId>,
    /// Only events after this position.
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// Only events up to and including this position.
    #[arg(long)]
    pub until: Option<u64>,
    /// Write here instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Start after this position; without it, only new events are shown.
    #[arg(long)]
    pub after: Option<u64>,
    /// Only events of tasks of this type.
    #[arg(long)]
    pub task_type: Option<String>,
    /// Only events of this type.
    #[arg(long)]
    pub event_type: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "TASKLOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Connections open at once; past it a new one gets 503 and is closed.
    #[arg(long, env = "TASKLOG_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request head, from its opening
    /// or its last response: slow and idle clients are closed past it.
    #[arg(long, env = "TASKLOG_HEADER_TIMEOUT", default_value_t = Limits::default().header_read_timeout.as_secs())]
    pub header_timeout: u64,
    /// Seconds a request body may take to arrive (408 past it).
    #[arg(long, env = "TASKLOG_BODY_TIMEOUT", default_value_t = Limits::default().body_read_timeout.as_secs())]
    pub body_timeout: u64,
    /// Seconds a shutdown waits for requests and event streams in flight.
    #[arg(long, env = "TASKLOG_SHUTDOWN_GRACE", default_value_t = Limits::default().shutdown_grace.as_secs())]
    pub shutdown_grace: u64,
    /// Completed and failed tasks leave the views (lists, GET) this long after
    /// they finished, like `30d` or `12h`; their history stays in the log.
    /// Off by default.
    #[arg(long, env = "TASKLOG_RETAIN_FINISHED", value_parser = humantime::parse_duration)]
    pub retain_finished: Option<Duration>,
    /// Also serve `/metrics` here, without a token (on the API's address it
    /// takes a token with `metrics:read`).
    #[arg(long, env = "TASKLOG_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            limits: self.limits(),
            retain_finished: self
                .retain_finished
                .map(|d| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)),
            view_generations: self.store.store_url().view_generations(),
            tokens_from: Some(crate::http::auth::TokenSource {
                data_dir: self.store.data_dir.clone(),
                env_token: std::env::var("TASKLOG_TOKEN").ok(),
            }),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            header_read_timeout: Duration::from_secs(self.header_timeout.max(1)),
            body_read_timeout: Duration::from_secs(self.body_timeout.max(1)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        }
    }
}
