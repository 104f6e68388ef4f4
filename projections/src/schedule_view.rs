//! The schedule view: one recurring schedule, folded from its stream, with the
//! time its next run is due.

use chrono::{DateTime, Duration, Months, Timelike, Utc};
use tasklog_events::schedule_event::*;
use tasklog_events::RecordedEvent;

/// A schedule as it stands after the events folded into it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleView {
    pub id: ScheduleId,
    pub definition: ScheduleCreated,
    pub paused: bool,
    /// No run due before this is created: the start (or, in normal start mode,
    /// the creation time), and the last resume.
    pub not_before: DateTime<Utc>,
    /// The latest run created, and its task.
    pub last_run: Option<ScheduleFired>,
    pub runs: u64,
    /// When the next run is due; `None` when paused or past the end time.
    pub next_run_time: Option<DateTime<Utc>>,
    pub created_time: DateTime<Utc>,
    pub modified_time: DateTime<Utc>,
    /// The revision of the last event folded in: the next expected revision.
    pub revision: u64,
}

impl ScheduleView {
    /// Folds one event of the schedule's stream into the view; a deleted
    /// schedule becomes `None`.
    pub fn apply(view: &mut Option<ScheduleView>, recorded: &RecordedEvent, event: &ScheduleEvent) {
        let at = recorded.recorded_at;
        if let ScheduleEvent::Created(created) = event {
            let Some(id) = ScheduleId::from_stream(&recorded.stream) else {
                return;
            };
            let not_before = match created.start_mode {
                StartMode::Normal => created.start_time.max(at),
                StartMode::StartInThePast => created.start_time,
            };
            *view = Some(ScheduleView {
                id,
                definition: created.clone(),
                paused: false,
                not_before,
                last_run: None,
                runs: 0,
                next_run_time: None,
                created_time: at,
                modified_time: at,
                revision: recorded.revision,
            });
        } else {
            let Some(schedule) = view.as_mut() else {
                return;
            };
            match event {
                ScheduleEvent::Created(_) => unreachable!("handled above"),
                ScheduleEvent::Paused(_) => schedule.paused = true,
                ScheduleEvent::Resumed(_) => {
                    schedule.paused = false;
                    schedule.not_before = schedule.not_before.max(at);
                }
                ScheduleEvent::Deleted(_) => {
                    *view = None;
                    return;
                }
                ScheduleEvent::Fired(fired) => {
                    schedule.runs += 1;
                    schedule.last_run = Some(fired.clone());
                }
                ScheduleEvent::RunsSkipped(skipped) => {
                    schedule.not_before = schedule.not_before.max(skipped.until);
                }
            }
            schedule.modified_time = at;
            schedule.revision = recorded.revision;
        }
        if let Some(schedule) = view.as_mut() {
            schedule.next_run_time = schedule.next_run();
        }
    }

    /// Folds a whole stream: the schedule as of its last event.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Option<ScheduleView> {
        let mut view = None;
        for recorded in events {
            let decoded = ScheduleEvent::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.payload,
            );
            if let Ok(event) = decoded {
                ScheduleView::apply(&mut view, recorded, &event);
            }
        }
        view
    }

    fn next_run(&self) -> Option<DateTime<Utc>> {
        if self.paused {
            return None;
        }
        let after_last = self
            .last_run
            .as_ref()
            .map(|run| run.run_time + Duration::microseconds(1));
        let from = after_last.map_or(self.not_before, |t| t.max(self.not_before));
        let definition = &self.definition;
        let next = first_run_at_or_after(&definition.recurrence, definition.start_time, from)?;
        definition
            .end_time
            .is_none_or(|end| next <= end)
            .then_some(next)
    }
}

/// The first run of `recurrence`, anchored at `start`, at or after `t`.
pub fn first_run_at_or_after(
    recurrence: &Recurrence,
    start: DateTime<Utc>,
    t: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let t = t.max(start);
    match recurrence {
        Recurrence::Cron(cron) => {
            let cron: croner::Cron = cron.cron.parse().ok()?;
            // Cron times are whole seconds; a search from within a second
            // would find that second again.
            let whole = t.with_nanosecond(0)?;
            let t = if whole < t {
                whole + Duration::seconds(1)
            } else {
                t
            };
            cron.find_next_occurrence(&t, true).ok()
        }
        Recurrence::Every(Interval {
            every,
            unit: IntervalUnit::Months,
        }) => {
            // One step short of the estimate, then forward: month lengths differ.
            let mut k = months_estimate(start, t, *every).saturating_sub(1);
            loop {
                let run = month_run(start, *every, k)?;
                if run >= t {
                    return Some(run);
                }
                k += 1;
            }
        }
        Recurrence::Every(Interval { every, unit }) => {
            let step = fixed_step(*unit, *every)?;
            let since = (t - start).num_microseconds()?;
            let step_micros = step.num_microseconds()?;
            let k = (since + step_micros - 1) / step_micros;
            start.checked_add_signed(Duration::microseconds(k.checked_mul(step_micros)?))
        }
    }
}

/// The run `k` runs back from the newest at or before `t` (`k` = 1: that
/// newest one), if `recurrence`, anchored at `start`, has that many by `t`.
pub fn kth_run_back(
    recurrence: &Recurrence,
    start: DateTime<Utc>,
    t: DateTime<Utc>,
    k: u32,
) -> Option<DateTime<Utc>> {
    if t < start || k == 0 {
        return None;
    }
    let back = k - 1;
    match recurrence {
        Recurrence::Cron(cron) => {
            let cron: croner::Cron = cron.cron.parse().ok()?;
            let after_t = t.with_nanosecond(0)? + Duration::seconds(1);
            let mut runs = cron.iter_before(after_t).take_while(|run| *run >= start);
            runs.nth(back as usize)
        }
        Recurrence::Every(Interval {
            every,
            unit: IntervalUnit::Months,
        }) => {
            // The newest run at or before `t`: from the estimate, back while past `t`.
            let mut newest = months_estimate(start, t, *every) + 1;
            while month_run(start, *every, newest).is_none_or(|r| r > t) {
                newest = newest.checked_sub(1)?;
            }
            month_run(start, *every, newest.checked_sub(back)?)
        }
        Recurrence::Every(Interval { every, unit }) => {
            let step = fixed_step(*unit, *every)?.num_microseconds()?;
            let newest = (t - start).num_microseconds()? / step;
            let index = newest.checked_sub(i64::from(back)).filter(|i| *i >= 0)?;
            start.checked_add_signed(Duration::microseconds(index.checked_mul(step)?))
        }
    }
}

/// Run `n` of a schedule every `every` months from `start`: counted from the
/// start each time, so the 31st stays the 31st (or the month's last day)
/// instead of drifting.
fn month_run(start: DateTime<Utc>, every: u32, n: u32) -> Option<DateTime<Utc>> {
    start.checked_add_months(Months::new(n.checked_mul(every.max(1))?))
}

/// About how many runs every `every` months fit from `start` to `t`.
fn months_estimate(start: DateTime<Utc>, t: DateTime<Utc>, every: u32) -> u32 {
    use chrono::Datelike;
    let months = (t.year() - start.year()) * 12 + t.month() as i32 - start.month() as i32;
    months.max(0) as u32 / every.max(1)
}

/// The length of an interval of minutes, hours, days or weeks (months vary).
fn fixed_step(unit: IntervalUnit, every: u32) -> Option<Duration> {
    let unit_seconds: i64 = match unit {
        IntervalUnit::Minutes => 60,
        IntervalUnit::Hours => 3_600,
        IntervalUnit::Days => 86_400,
        IntervalUnit::Weeks => 604_800,
        IntervalUnit::Months => return None,
    };
    Some(Duration::seconds(unit_seconds * i64::from(every.max(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn every(every: u32, unit: IntervalUnit) -> Recurrence {
        Recurrence::Every(Interval { every, unit })
    }

    #[test]
    fn intervals_count_from_the_start() {
        let start = at("2030-01-01T00:00:00Z");
        let r = every(15, IntervalUnit::Minutes);
        assert_eq!(
            first_run_at_or_after(&r, start, at("2029-01-01T00:00:00Z")),
            Some(start)
        );
        assert_eq!(first_run_at_or_after(&r, start, start), Some(start));
        assert_eq!(
            first_run_at_or_after(&r, start, at("2030-01-01T00:00:00.000001Z")),
            Some(at("2030-01-01T00:15:00Z"))
        );
        assert_eq!(
            first_run_at_or_after(
                &every(2, IntervalUnit::Weeks),
                start,
                at("2030-01-10T00:00:00Z")
            ),
            Some(at("2030-01-15T00:00:00Z"))
        );
    }

    #[test]
    fn months_keep_the_day_of_the_start() {
        let start = at("2030-01-31T09:00:00Z");
        let r = every(1, IntervalUnit::Months);
        assert_eq!(
            first_run_at_or_after(&r, start, at("2030-02-01T00:00:00Z")),
            Some(at("2030-02-28T09:00:00Z"))
        );
        assert_eq!(
            first_run_at_or_after(&r, start, at("2030-03-01T00:00:00Z")),
            Some(at("2030-03-31T09:00:00Z"))
        );
        assert_eq!(
            first_run_at_or_after(
                &every(3, IntervalUnit::Months),
                start,
                at("2032-05-01T00:00:00Z")
            ),
            Some(at("2032-07-31T09:00:00Z"))
        );
    }

    #[test]
    fn the_kth_run_back_counts_from_the_newest_run_at_or_before_a_time() {
        let hourly = every(1, IntervalUnit::Hours);
        let start = at("2030-01-01T00:00:00Z");
        let t = at("2030-01-01T05:30:00Z");
        assert_eq!(
            kth_run_back(&hourly, start, t, 1),
            Some(at("2030-01-01T05:00:00Z"))
        );
        assert_eq!(kth_run_back(&hourly, start, t, 6), Some(start));
        assert_eq!(kth_run_back(&hourly, start, t, 7), None);
        let monthly = every(1, IntervalUnit::Months);
        let end_of_january = at("2030-01-31T12:00:00Z");
        let t = at("2030-04-15T00:00:00Z");
        assert_eq!(
            kth_run_back(&monthly, end_of_january, t, 1),
            Some(at("2030-03-31T12:00:00Z"))
        );
        assert_eq!(
            kth_run_back(&monthly, end_of_january, t, 3),
            Some(end_of_january)
        );
        assert_eq!(kth_run_back(&monthly, end_of_january, t, 4), None);
        let nightly = Recurrence::Cron(CronRecurrence {
            cron: "30 3 * * *".into(),
        });
        let t = at("2030-01-03T04:00:00Z");
        assert_eq!(
            kth_run_back(&nightly, start, t, 1),
            Some(at("2030-01-03T03:30:00Z"))
        );
        assert_eq!(
            kth_run_back(&nightly, start, t, 3),
            Some(at("2030-01-01T03:30:00Z"))
        );
        assert_eq!(kth_run_back(&nightly, start, t, 4), None);
    }

    #[test]
    fn cron_expressions_name_utc_times() {
        let r = Recurrence::Cron(CronRecurrence {
            cron: "30 3 * * 1".into(),
        });
        let start = at("2030-01-01T00:00:00Z"); // a Tuesday
        assert_eq!(
            first_run_at_or_after(&r, start, start),
            Some(at("2030-01-07T03:30:00Z"))
        );
        assert_eq!(
            first_run_at_or_after(&r, start, at("2030-01-07T03:30:00.000001Z")),
            Some(at("2030-01-14T03:30:00Z")),
            "just after a run, the next one"
        );
    }
}
