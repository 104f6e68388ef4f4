//! The runner: follows the log from the projections' checkpoint and folds each
//! event in, publishing how far it got so writers can answer only once their
//! own events are visible (read-your-writes).

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::StreamExt;
use tasklog_events::{EventStore, Position};
use tokio::sync::watch;

use crate::Projections;

pub type SharedProjections = Arc<RwLock<Projections>>;

/// How many events the runner folds under one lock.
const CHUNK: usize = 1024;

#[derive(Clone)]
pub struct ProjectionRunner {
    pub projections: SharedProjections,
    applied: watch::Receiver<Position>,
}

impl ProjectionRunner {
    /// Starts folding the log into `projections`, from the position they have.
    /// The runner stops when the last clone of the returned handle is gone.
    pub fn spawn(store: Arc<dyn EventStore>, projections: Projections) -> Self {
        let start = projections.position;
        let projections = Arc::new(RwLock::new(projections));
        let (publish, applied) = watch::channel(start);
        let shared = projections.clone();
        tokio::spawn(async move {
            let closed = publish.clone();
            tokio::select! {
                _ = closed.closed() => {}
                _ = follow(store, shared, publish, start) => {}
            }
        });
        ProjectionRunner {
            projections,
            applied,
        }
    }

    /// The views, for reading; hold the guard briefly, the runner waits on it.
    pub fn read(&self) -> RwLockReadGuard<'_, Projections> {
        self.projections.read().expect("projections lock")
    }

    /// The views, for the jobs that move the queue index on with time.
    pub fn write(&self) -> RwLockWriteGuard<'_, Projections> {
        self.projections.write().expect("projections lock")
    }

    /// The last position folded in.
    pub fn position(&self) -> Position {
        *self.applied.borrow()
    }

    /// Waits until the views include `position`; false if `timeout` passed first.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, applied.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn follow(
    store: Arc<dyn EventStore>,
    views: SharedProjections,
    publish: watch::Sender<Position>,
    mut after: Position,
) {
    loop {
        let mut events = store.subscribe_all(after).ready_chunks(CHUNK);
        while let Some(chunk) = events.next().await {
            let mut failed = None;
            {
                let mut views = views.write().expect("projections lock");
                for event in chunk {
                    match event {
                        Ok(event) => {
                            views.apply(&event);
                            after = event.position;
                        }
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
            }
            publish.send_replace(after);
            if let Some(error) = failed {
                tracing::warn!(%error, "the projection runner lost the log; resubscribing");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
