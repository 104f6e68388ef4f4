//! The worker runtime: claims tasks with long polls, runs a handler on each,
//! at most `concurrency` at once, keeps their leases by heartbeats, and
//! completes or fails each with what its handler returned.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tasklog_api::body::{Ranged, Report, TaskTypes, Text};
use tasklog_api::tasks::{
    ClaimRequest, CompleteRequest, FailRequest, HeartbeatRequest, Task, MAX_BATCH,
    MAX_LEASE_SECONDS,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{Client, Error};

/// Runs a handler on the tasks of some types.
///
/// ```no_run
/// use std::time::Duration;
/// use tasklog_client::{Client, Worker};
///
/// # async fn example() -> Result<(), tasklog_client::Error> {
/// let client = Client::new("http://127.0.0.1:8080", "worker-token")?;
/// Worker::new(client, ["email"])
///     .name("mailer-1")
///     .concurrency(8)
///     .lease(Duration::from_secs(30))
///     .run(
///         |task| async move {
///             // Send the mail in task.data; an Err fails the task with its text.
///             Ok::<_, String>(Some(serde_json::json!({"sent": task.data.to_map()["to"]})))
///         },
///         async { tokio::signal::ctrl_c().await.ok(); },
///     )
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    client: Client,
    types: Vec<String>,
    name: String,
    concurrency: usize,
    lease: Duration,
    poll: Duration,
    drain: Duration,
}

/// How a [`Worker::run`] ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WorkerStopped {
    /// Tasks it completed or failed (the server took the report).
    pub finished: u64,
    /// Handlers still running when the drain time ran out: they are
    /// stopped, and their tasks go back to the queue when their leases lapse.
    pub abandoned: u64,
}

impl Worker {
    /// A worker of `types`: by default one handler at a time, leases of 30 s,
    /// named after the host and process.
    pub fn new<T: Into<String>>(client: Client, types: impl IntoIterator<Item = T>) -> Worker {
        Worker {
            client,
            types: types.into_iter().map(Into::into).collect(),
            name: format!("worker-{}", std::process::id()),
            concurrency: 1,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }

    /// The name the server records as the tasks' worker.
    pub fn name(mut self, name: impl Into<String>) -> Worker {
        self.name = name.into();
        self
    }

    /// At most this many handlers run at once (at least 1).
    pub fn concurrency(mut self, handlers: usize) -> Worker {
        self.concurrency = handlers.max(1);
        self
    }

    /// How long a task is the worker's without a heartbeat (whole seconds,
    /// from 1 s to a day). Heartbeats go at a third of it while a handler runs.
    pub fn lease(mut self, lease: Duration) -> Worker {
        self.lease = lease.clamp(
            Duration::from_secs(1),
            Duration::from_secs(MAX_LEASE_SECONDS),
        );
        self
    }

    /// How long one claim waits for a task (at most 60 s).
    pub fn poll(mut self, wait: Duration) -> Worker {
        self.poll = wait.min(Duration::from_secs(60));
        self
    }

    /// How long a stop waits for running handlers.
    pub fn drain(mut self, wait: Duration) -> Worker {
        self.drain = wait;
        self
    }

    /// Claims and runs tasks until `shutdown` resolves, then claims no more
    /// and waits (up to the drain time) for the handlers running. A handler
    /// answers `Ok(result)` to complete its task or `Err(error)` to fail it;
    /// one that panics fails its task, and the worker goes on. A claim in
    /// flight when the stop comes is let finish (within the poll wait) and
    /// its tasks run, so none is left leased to a worker that is gone.
    /// Claims that get no answer, or a 429 or 5xx after the client's own
    /// retries, are tried again after a pause; any other error the server
    /// answers to a claim (a bad token, say) stops the worker as a shutdown
    /// does, and is returned.
    pub async fn run<H, F, E>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) -> Result<WorkerStopped, Error>
    where
        H: Fn(Task) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Option<Value>, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let handler = Arc::new(handler);
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        let mut stopped = WorkerStopped::default();
        let mut refused = None;
        tokio::pin!(shutdown);
        let mut stopping = false;
        while !stopping {
            // Wait for a free slot (or the stop), then claim as many as are free.
            let first = tokio::select! {
                biased;
                () = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
            };
            let free = (1 + slots.available_permits()).min(MAX_BATCH);
            let claim = self.claim(free);
            tokio::pin!(claim);
            let claimed = tokio::select! {
                biased;
                claimed = &mut claim => claimed,
                () = &mut shutdown => {
                    stopping = true;
                    claim.await
                }
            };
            let tasks = match claimed {
                Ok(tasks) => tasks,
                Err(error) if error.is_transient() => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            };
            let mut first = Some(first);
            for task in tasks {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => slots
                        .clone()
                        .try_acquire_owned()
                        .expect("claimed no more than free"),
                };
                let run = self.run_one(task, handler.clone());
                running.spawn(async move {
                    let reported = run.await;
                    drop(permit);
                    reported
                });
            }
            while let Some(reported) = running.try_join_next() {
                stopped.finished += u64::from(reported.unwrap_or(false));
            }
        }
        let drained = tokio::time::timeout(self.drain, async {
            while let Some(reported) = running.join_next().await {
                stopped.finished += u64::from(reported.unwrap_or(false));
            }
        })
        .await;
        if drained.is_err() {
            stopped.abandoned = running.len() as u64;
            running.abort_all(); // and with them their handlers: see `Aborted`
        }
        match refused {
            Some(error) => Err(error),
            None => Ok(stopped),
        }
    }

    async fn claim(&self, most: usize) -> Result<Vec<Task>, Error> {
        let body = ClaimRequest {
            types: TaskTypes(self.types.clone()),
            worker: Text(self.name.clone()),
            lease_seconds: Ranged(self.lease.as_secs()),
            wait_seconds: Ranged(self.poll.as_secs()),
            label_selector: None,
            tags: Vec::new(),
            max: Some(Ranged(most as u64)),
        };
        self.client.claim_many(&body).await
    }

    /// Runs the handler on `task` with heartbeats beside it, then reports;
    /// whether the report was taken. A heartbeat the server refuses (the
    /// lease lost, the task cancelled) stops the handler: the task is no
    /// longer this worker's.
    fn run_one<H, F, E>(&self, task: Task, handler: Arc<H>) -> impl Future<Output = bool> + Send
    where
        H: Fn(Task) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Option<Value>, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (client, worker, lease) = (self.client.clone(), self.name.clone(), self.lease);
        async move {
            let id = task.id.clone();
            // Called inside its own task, so a handler that panics before its
            // future exists fails its task too.
            let mut work = Aborted(tokio::spawn(async move { handler(task).await }));
            let mut beats = tokio::time::interval(lease / 3);
            beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beats.tick().await; // the first tick is now: the claim just began the lease
            let outcome = loop {
                tokio::select! {
                    joined = &mut work.0 => break joined,
                    _ = beats.tick() => {
                        let beat = HeartbeatRequest {
                            worker: Text(worker.clone()),
                            lease_seconds: Ranged(lease.as_secs()),
                            progress: None,
                        };
                        match client.heartbeat(&id, &beat).await {
                            Ok(_) => {}
                            Err(Error::Api { status, body }) if status.as_u16() == 409 || status.as_u16() == 404 => {
                                tracing::warn!(task = %id, reason = %body.reason, "the task is no longer this worker's; its handler is stopped");
                                return false;
                            }
                            Err(error) => tracing::warn!(task = %id, %error, "a heartbeat failed"),
                        }
                    }
                }
            };
            let report = match outcome {
                Ok(Ok(result)) => {
                    let body = CompleteRequest {
                        worker: Text(worker),
                        result: result.map(Report),
                    };
                    client.complete(&id, &body).await
                }
                Ok(Err(error)) => client.fail(&id, &fail(worker, error.to_string())).await,
                Err(joined) => {
                    let why = match joined.try_into_panic() {
                        Ok(panic) => panic_text(panic.as_ref()),
                        Err(_) => "the handler was cancelled".to_owned(),
                    };
                    client.fail(&id, &fail(worker, why)).await
                }
            };
            match report {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(task = %id, %error, "reporting a finished task failed");
                    false
                }
            }
        }
    }
}

/// A handler's task, aborted when its runner is dropped (a worker that stops
/// before the handler ends, or is dropped itself), so no handler goes on
/// without heartbeats for a task that will run again elsewhere.
struct Aborted<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Aborted<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn fail(worker: String, error: String) -> FailRequest {
    FailRequest {
        worker: Text(worker),
        error: Text(if error.trim().is_empty() {
            "failed".into()
        } else {
            error.chars().take(1024).collect()
        }),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned());
    format!("the handler panicked: {message}")
}
