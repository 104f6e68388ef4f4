//! `tasklog serve`: opens the store, loads the views, starts the background
//! jobs and the HTTP API.

use std::net::SocketAddr;
use std::sync::Arc;

use tasklog_events::EventStore;
use tasklog_projections::{ReadModelTables, ViewGenerations};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::clock::Clock;
use crate::app::jobs;
use crate::app::rebuild::Rebuilds;
use crate::app::service::Service;
use crate::http::auth::{TokenSource, TokenTable, Tokens};
use crate::http::{self, AppState, Limits, Shared};

/// How a server runs: the limits on its clients, and how long finished tasks
/// stay in the views (`None`: for good).
#[derive(Clone, Default)]
pub struct Settings {
    pub limits: Limits,
    pub retain_finished: Option<chrono::Duration>,
    /// Where a rebuild beside this node builds new views (None: not here).
    pub view_generations: Option<Arc<dyn ViewGenerations>>,
    /// Where the tokens came from, read again when the file changes (None:
    /// the tokens given stay).
    pub tokens_from: Option<TokenSource>,
}

/// A running server: its address, its state, and the way to stop it.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    stopping: watch::Sender<bool>,
    http: JoinHandle<std::io::Result<()>>,
    jobs: JoinHandle<()>,
    following_tokens: JoinHandle<()>,
}

impl Server {
    /// Serves on `listener` (bind port 0 in tests) until [`Server::stop`].
    pub async fn start(
        listener: TcpListener,
        store: Arc<dyn EventStore>,
        views: Arc<dyn ReadModelTables>,
        tokens: Tokens,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        let addr = listener.local_addr()?;
        crate::telemetry::metrics::install();
        let service = Service::start(store, views, clock).await?;
        let tokens = Arc::new(TokenTable::new(tokens, settings.tokens_from));
        let following_tokens = tokio::spawn(tokens.clone().follow_file());
        let (stopping, stopped) = watch::channel(false);
        let state = AppState::new(Shared {
            service: service.clone(),
            tokens: tokens.clone(),
            limits: settings.limits,
            stopping: stopped.clone(),
            encoded_events: Arc::default(),
            rebuilds: Arc::new(Rebuilds::new(settings.view_generations)),
        });
        let jobs = tokio::spawn(jobs::run(service, settings.retain_finished));
        let mut stopped = stopped;
        let http = tokio::spawn(http::run(listener, state.clone(), async move {
            let _ = stopped.wait_for(|stopping| *stopping).await;
        }));
        Ok(Server {
            addr,
            state,
            stopping,
            http,
            jobs,
            following_tokens,
        })
    }

    /// Stops taking requests, lets those in flight finish, stops the jobs.
    pub async fn stop(self) -> std::io::Result<()> {
        // Event streams end on this too, so the drain need not wait them out.
        let _ = self.stopping.send(true);
        let served = self.http.await.map_err(std::io::Error::other)?;
        self.jobs.abort();
        let _ = self.jobs.await;
        self.following_tokens.abort();
        // Stores what the log holds, so a clean stop leaves nothing to catch
        // up, then lets go of the read models, so a server may open them again.
        let views = &self.state.service.views;
        if let Ok(head) = self.state.service.head().await {
            views
                .wait_stored(head, std::time::Duration::from_secs(5))
                .await;
        }
        views.stop().await;
        served
    }
}
