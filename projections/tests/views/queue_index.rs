//! The queue index: pending tasks in claim order, leases and expirations by time.

use tasklog_events::{TaskEvent, TaskId};
use tasklog_projections::Projections;

use crate::*;

fn ids<const N: usize>() -> [TaskId; N] {
    std::array::from_fn(|_| TaskId::new())
}

/// The tasks of `types` a worker may claim at `seconds`, best first.
fn claimable(views: &Projections, types: &[&str], seconds: f64) -> Vec<TaskId> {
    let types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    views.queue.candidates(&types, at(seconds), 10, |_| true)
}

/// One task after `events`, the queue promoted to each event's time before the
/// event is folded in, as the jobs that follow the clock do.
fn one_task(events: &[(f64, TaskEvent)]) -> (TaskId, Projections) {
    let id = TaskId::new();
    let mut views = Projections::default();
    for event in Log::default().task(id, events).0 {
        views.queue.promote(event.recorded_at);
        views.apply(&event);
    }
    (id, views)
}

#[test]
fn claims_take_the_highest_priority_then_the_earliest_available_time_then_the_oldest() {
    let [low, later, earlier, earlier_but_newer] = ids();
    let mut views = Log::default()
        .task(low, &[(0.0, created("email", 1, 0.0))])
        .task(later, &[(1.0, created("email", 5, 10.0))])
        .task(earlier, &[(2.0, created("email", 5, 5.0))])
        .task(earlier_but_newer, &[(3.0, created("email", 5, 5.0))])
        .fold();
    let best_first = vec![earlier, earlier_but_newer, later, low];
    assert_eq!(claimable(&views, &["email"], 20.0), best_first);
    // The same once they are promoted into the ready set.
    views.queue.promote(at(20.0));
    assert_eq!(claimable(&views, &["email"], 20.0), best_first);
    let types = ["email".to_string()];
    assert_eq!(
        views.queue.candidates(&types, at(20.0), 2, |_| true),
        [earlier, earlier_but_newer]
    );
    assert_eq!(
        views
            .queue
            .candidates(&types, at(20.0), 10, |id| id != earlier),
        [earlier_but_newer, later, low]
    );
}

#[test]
fn a_task_is_claimable_from_its_available_time_until_it_expires() {
    let (id, mut views) = one_task(&[(0.0, created("email", 1, 10.0))]);
    assert_eq!(views.queue.next_due(), Some(at(10.0)));
    assert_eq!(claimable(&views, &["email"], 9.999999), []);
    views.queue.promote(at(9.0));
    assert_eq!(claimable(&views, &["email"], 9.999999), []);
    assert_eq!(claimable(&views, &["email"], 10.0), [id]);
    views.queue.promote(at(10.0));
    assert_eq!(views.queue.next_due(), Some(at(1000.0)));
    assert_eq!(claimable(&views, &["email"], 999.0), [id]);
    assert_eq!(claimable(&views, &["email"], 1000.0), []);
    assert_eq!(views.queue.expired(at(999.0)), []);
    assert_eq!(views.queue.expired(at(1000.0)), [id]);
}

#[test]
fn a_started_task_leaves_the_queue_and_its_lease_is_watched() {
    let create = (0.0, created("email", 1, 0.0));
    let (id, views) = one_task(&[create.clone(), (1.0, started("w1", 1, 31.0))]);
    assert_eq!(claimable(&views, &["email"], 2.0), []);
    assert_eq!(views.queue.expired(at(1000.0)), []);
    assert_eq!(views.queue.lapsed_leases(at(30.0)), []);
    assert_eq!(views.queue.lapsed_leases(at(31.0)), [id]);

    let renewed = TaskEvent::LeaseRenewed(tasklog_events::task_event::TaskLeaseRenewed {
        worker: "w1".into(),
        lease_expires_at: at(61.0),
        progress: None,
    });
    let (id, views) = one_task(&[create, (1.0, started("w1", 1, 31.0)), (20.0, renewed)]);
    assert_eq!(views.queue.lapsed_leases(at(31.0)), []);
    assert_eq!(views.queue.lapsed_leases(at(61.0)), [id]);
    assert_eq!(views.queue.next_due(), Some(at(61.0)));
}

#[test]
fn finished_cancelled_and_expired_tasks_are_nowhere_in_the_index() {
    let create = (0.0, created("email", 1, 0.0));
    let start = (1.0, started("w1", 1, 31.0));
    for history in [
        vec![create.clone(), start.clone(), (2.0, completed("w1"))],
        vec![create.clone(), start.clone(), (2.0, failed("w1", "boom"))],
        vec![create.clone(), start, (2.0, cancelled(None))],
        vec![create.clone(), (2.0, cancelled(Some("dup")))],
        vec![create, (1000.0, expired())],
    ] {
        let (_, views) = one_task(&history);
        assert_eq!(claimable(&views, &["email"], 3.0), [], "{history:?}");
        assert_eq!(views.queue.expired(at(5000.0)), [], "{history:?}");
        assert_eq!(views.queue.lapsed_leases(at(5000.0)), [], "{history:?}");
        assert_eq!(views.queue.next_due(), None, "{history:?}");
    }
}

#[test]
fn requeued_and_retried_tasks_are_claimable_again() {
    let create = (0.0, created("email", 1, 0.0));
    let start = (1.0, started("w1", 1, 31.0));
    let (id, views) = one_task(&[
        create.clone(),
        start.clone(),
        (31.0, requeued("w1", "lapsed")),
    ]);
    assert_eq!(claimable(&views, &["email"], 31.0), [id]);
    assert_eq!(views.queue.lapsed_leases(at(5000.0)), []);

    let (id, views) = one_task(&[
        create,
        start,
        (2.0, failed("w1", "boom")),
        (2.0, retried(12.0, 2000.0)),
    ]);
    assert_eq!(claimable(&views, &["email"], 11.0), []);
    assert_eq!(claimable(&views, &["email"], 12.0), [id]);
    assert_eq!(views.queue.expired(at(1000.0)), []);
    assert_eq!(views.queue.expired(at(2000.0)), [id]);
}

#[test]
fn task_types_are_kept_apart() {
    let [email, sms] = ids();
    let mut views = Log::default()
        .task(email, &[(0.0, created("email", 1, 0.0))])
        .task(sms, &[(1.0, created("sms", 9, 0.0))])
        .fold();
    views.queue.promote(at(2.0));
    assert_eq!(claimable(&views, &["email"], 2.0), [email]);
    assert_eq!(claimable(&views, &["sms"], 2.0), [sms]);
    assert_eq!(claimable(&views, &["email", "sms"], 2.0), [sms, email]);
    assert_eq!(claimable(&views, &["push"], 2.0), []);
}
