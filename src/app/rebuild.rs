//! Rebuilds beside a serving node: new read models are folded from the log
//! into tables of their own while the node serves from the old ones, brought
//! up to the node's position, and swapped in between two of its batches, so
//! no reader ever sees a half-built view. Then they are the ones later starts
//! open ([`ViewGenerations::promote`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tasklog_events::Position;
use tasklog_projections::rebuild::catch_up;
use tasklog_projections::{Projections, ReadModelError, ReadModelTables, ViewGenerations};

use super::service::Service;
use crate::Failure;

/// Swapped in once the new views are this close to the head: the node then
/// folds the rest into them between two batches, while writes wait.
const SWAP_WITHIN: u64 = 10_000;
/// At most this many rounds of closing the gap before the swap.
const MAX_ROUNDS: usize = 8;
/// How often a running rebuild logs how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where a rebuild is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RebuildState {
    /// None ran since the server started.
    #[default]
    Idle,
    Running,
    /// The new views are the live ones.
    Finished,
    /// It stopped; the old views are still the live ones.
    Failed,
}

impl RebuildState {
    pub fn as_str(self) -> &'static str {
        match self {
            RebuildState::Idle => "idle",
            RebuildState::Running => "running",
            RebuildState::Finished => "finished",
            RebuildState::Failed => "failed",
        }
    }
}

/// The last rebuild beside this node, as far as it got.
#[derive(Clone, Debug, Default)]
pub struct RebuildStatus {
    pub state: RebuildState,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    /// The position the new views reached.
    pub position: Position,
    /// The head of the log it is catching up with.
    pub head: Position,
    /// Events folded so far.
    pub events: u64,
    pub error: Option<String>,
}

/// Why a rebuild did not start.
#[derive(Debug)]
pub enum RebuildRefused {
    /// This store's views cannot be rebuilt beside a serving node.
    NotSupported,
    /// One is running.
    Running,
    /// Another node's rebuild holds the store's views.
    Elsewhere,
    /// The store could not make tables for one.
    Failed(ReadModelError),
}

/// The rebuilds of one node: at most one at a time.
pub struct Rebuilds {
    generations: Option<Arc<dyn ViewGenerations>>,
    status: Mutex<RebuildStatus>,
}

impl Rebuilds {
    pub fn new(generations: Option<Arc<dyn ViewGenerations>>) -> Self {
        Rebuilds {
            generations,
            status: Mutex::default(),
        }
    }

    pub fn status(&self) -> RebuildStatus {
        self.status.lock().expect("rebuild status").clone()
    }

    /// Starts a rebuild beside `service`, in the background, once the store
    /// has given it empty tables.
    pub async fn start(
        self: &Arc<Self>,
        service: Service,
    ) -> Result<RebuildStatus, RebuildRefused> {
        let generations = self
            .generations
            .clone()
            .ok_or(RebuildRefused::NotSupported)?;
        let before = {
            let mut status = self.status.lock().expect("rebuild status");
            if status.state == RebuildState::Running {
                return Err(RebuildRefused::Running);
            }
            let running = RebuildStatus {
                state: RebuildState::Running,
                started: Some(service.clock.now()),
                ..RebuildStatus::default()
            };
            std::mem::replace(&mut *status, running)
        };
        // The rest runs in a task of its own: a client that goes away
        // while the store makes the tables leaves a status that is still true.
        let (answer, answered) = tokio::sync::oneshot::channel();
        let rebuilds = self.clone();
        tokio::spawn(async move {
            let tables = match generations.next().await {
                Ok(Some(tables)) => tables,
                refused => {
                    *rebuilds.status.lock().expect("rebuild status") = before;
                    // No tables and no error: another node's rebuild holds the store.
                    let why = refused
                        .err()
                        .map_or(RebuildRefused::Elsewhere, RebuildRefused::Failed);
                    let _ = answer.send(Err(why));
                    return;
                }
            };
            let _ = answer.send(Ok(rebuilds.status()));
            tracing::info!("rebuilding the read models beside the serving views");
            let outcome = rebuilds.run(&service, &*generations, tables).await;
            let mut status = rebuilds.status.lock().expect("rebuild status");
            status.finished = Some(service.clock.now());
            match outcome {
                Ok(()) => {
                    status.state = RebuildState::Finished;
                    tracing::info!(events = status.events, position = %status.position,
                        "the rebuilt read models are the live ones");
                }
                Err(error) => {
                    status.state = RebuildState::Failed;
                    tracing::warn!(%error, "the rebuild beside the serving views failed; they stay");
                    status.error = Some(error.to_string());
                }
            }
        });
        answered.await.unwrap_or_else(|_| {
            Err(RebuildRefused::Failed(ReadModelError(
                "the rebuild stopped before it started".into(),
            )))
        })
    }

    /// Folds the whole log into `tables`, the next generation, closes the gap
    /// the node made meanwhile, has the node swap it in, and promotes it. A
    /// generation that never went live is removed; one that did stays, even
    /// if it could not be promoted (a restart then opens the one before and
    /// catches up).
    async fn run(
        &self,
        service: &Service,
        generations: &dyn ViewGenerations,
        tables: Arc<dyn ReadModelTables>,
    ) -> Result<(), Failure> {
        if let Err(error) = self.fill_and_swap(service, tables).await {
            generations.discard().await;
            return Err(error);
        }
        Ok(generations.promote().await?)
    }

    /// Fills `tables` from the log, close to its head, and has the runner
    /// swap them in.
    async fn fill_and_swap(
        &self,
        service: &Service,
        tables: Arc<dyn ReadModelTables>,
    ) -> Result<(), Failure> {
        tables.begin_rebuild().await?;
        let head = service.head().await?;
        let (mut views, mut folded) = self
            .catch_up(service, &tables, Projections::default(), head)
            .await?;
        tables.finish_rebuild().await?;
        for _ in 0..MAX_ROUNDS {
            let head = service.head().await?;
            if head.0.saturating_sub(views.position.0) <= SWAP_WITHIN {
                break;
            }
            let (caught_up, more) = self.catch_up(service, &tables, views, head).await?;
            views = caught_up;
            folded += more;
        }
        self.status.lock().expect("rebuild status").events = folded;
        service.views.swap(tables, views).await?;
        let position = service.views.position();
        let mut status = self.status.lock().expect("rebuild status");
        status.position = position;
        status.head = status.head.max(position);
        Ok(())
    }

    /// [`catch_up`] into `tables`, with the status and the log kept up to date.
    async fn catch_up(
        &self,
        service: &Service,
        tables: &Arc<dyn ReadModelTables>,
        views: Projections,
        head: Position,
    ) -> Result<(Projections, u64), Failure> {
        let started = Instant::now();
        let from = views.position;
        let mut next_report = started + PROGRESS_EVERY;
        let progress = |at: Position, head: Position| {
            {
                let mut status = self.status.lock().expect("rebuild status");
                status.position = at;
                status.head = head;
            }
            if Instant::now() >= next_report {
                next_report += PROGRESS_EVERY;
                let rate = (at.0 - from.0) as f64 / started.elapsed().as_secs_f64();
                tracing::info!(%at, %head, events_per_s = rate as u64, "rebuilding the read models");
            }
        };
        catch_up(service.store.clone(), tables.clone(), views, head, progress).await
    }
}
