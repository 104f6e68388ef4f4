//! Time moves tasks on its own: pending tasks expire, lapsed leases go back to
//! the queue, schedules create their due runs, and finished tasks past the
//! retention leave the views. Each is an event like every other, appended with the revision it
//! was decided on, so with several nodes each happens once.

use std::time::Duration;

use tasklog_events::Metadata;
use tracing::Instrument;

use crate::app::schedules;
use crate::app::service::{Service, ServiceError};
use crate::rules::task::Command;

/// How often the jobs look at the clock.
const TICK: Duration = Duration::from_millis(100);

/// How often finished tasks past `--retain-finished` are dropped from the views.
const RETENTION_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Runs the jobs until the process ends; with `retain_finished`, tasks that
/// finished longer ago than that leave the views (not the log).
pub async fn run(service: Service, retain_finished: Option<chrono::Duration>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_drop = None;
    loop {
        tick.tick().await;
        if let Err(error) = run_due(&service).await {
            tracing::warn!(%error, "the expiry and lease jobs failed; retrying");
        }
        let now = service.clock.now();
        if let Some(retain) = retain_finished {
            if last_drop.is_none_or(|at| now - at >= RETENTION_EVERY) {
                last_drop = Some(now);
                match service.views.drop_finished(now - retain).await {
                    Ok(0) => {}
                    Ok(dropped) => tracing::info!(dropped, "finished tasks left the views"),
                    Err(error) => tracing::warn!(%error, "dropping finished tasks failed"),
                }
            }
        }
    }
}

/// What the jobs' events carry: tasklog as the actor, and the job's trace.
pub fn job_metadata(span: &tracing::Span) -> Metadata {
    Metadata {
        actor: Some("tasklog".into()),
        traceparent: crate::telemetry::traces::traceparent_of(span),
        ..Metadata::default()
    }
}

/// Expires and requeues whatever is due at the clock's now.
pub async fn run_due(service: &Service) -> Result<(), ServiceError> {
    let now = service.clock.now();
    let (expired, lapsed) = {
        let mut views = service.views.write();
        views.queue.promote(now);
        (views.queue.expired(now), views.queue.lapsed_leases(now))
    };
    let due = expired
        .into_iter()
        .map(|id| (id, Command::Expire, "expire"));
    let due = due.chain(
        lapsed
            .into_iter()
            .map(|id| (id, Command::RequeueLapsed, "requeue a lapsed lease")),
    );
    for (id, command, job) in due {
        let span = tracing::info_span!("job", job, task = %id);
        let metadata = job_metadata(&span);
        match service
            .execute(id, command, &metadata)
            .instrument(span)
            .await
        {
            Ok(_) | Err(ServiceError::Rejected(_)) => {}
            Err(error) => return Err(error),
        }
    }
    schedules::run_due(service, now).await
}
