//! Time moves tasks on its own: pending tasks expire, lapsed leases go back to
//! the queue, schedules create their due runs. Each is an event like every other, appended with the revision it
//! was decided on, so with several nodes each happens once.

use std::time::Duration;

use tasklog_events::Metadata;

use crate::app::schedules;
use crate::app::service::{Service, ServiceError};
use crate::rules::task::Command;

/// How often the jobs look at the clock.
const TICK: Duration = Duration::from_millis(100);

/// Runs the jobs until the process ends.
pub async fn run(service: Service) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = run_due(&service).await {
            tracing::warn!(%error, "the expiry and lease jobs failed; retrying");
        }
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
    let metadata = Metadata {
        actor: Some("tasklog".into()),
        ..Metadata::default()
    };
    let due = expired.into_iter().map(|id| (id, Command::Expire));
    let due = due.chain(lapsed.into_iter().map(|id| (id, Command::RequeueLapsed)));
    for (id, command) in due {
        match service.execute(id, command, &metadata).await {
            Ok(_) | Err(ServiceError::Rejected(_)) => {}
            Err(error) => return Err(error),
        }
    }
    schedules::run_due(service, now).await
}
