//! The arguments the subcommands share or take.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::app::store_url::StoreUrl;

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
    pub fn store_url(&self) -> StoreUrl {
        self.store
            .clone()
            .unwrap_or_else(|| StoreUrl::default_in(&self.data_dir))
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
}
