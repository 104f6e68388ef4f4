//! `tasklog export` and `tasklog tail`: the log straight from the store, on a
//! stopped server's store or beside a running one.

use std::io::Write;

use futures::{StreamExt, TryStreamExt};
use tasklog_events::{read_all_pages, Position, RecordedEvent, TaskId};

use crate::app::event_filter::EventFilter;
use crate::cli::args::{ExportArgs, TailArgs};
use crate::cli::progress::Progress;
use crate::Failure;
use tasklog_api::audit::CloudEvent;

/// Writes the chosen events as JSON Lines, one CloudEvent a line.
pub async fn export(args: ExportArgs) -> Result<(), Failure> {
    let store = args.store.open_existing().await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let until = Position(args.until.unwrap_or(u64::MAX));
    let admitted =
        |event: &RecordedEvent| event.position > Position(args.after) && event.position <= until;
    let mut written = 0u64;
    match args.task {
        Some(task) => {
            for event in store
                .read_stream(&task.stream(), 0, usize::MAX)
                .await?
                .iter()
                .filter(|e| admitted(e))
            {
                write_line(&mut out, event)?;
                written += 1;
            }
        }
        None => {
            let last = until.min(store.head().await?);
            let to_go = |at: Position| {
                (
                    at.0.saturating_sub(args.after),
                    last.0.saturating_sub(args.after),
                )
            };
            let progress = Progress::new("exporting the log", "events", to_go(last).1);
            let mut pages = read_all_pages(&*store, Position(args.after), 8192);
            'pages: while let Some(page) = pages.try_next().await? {
                for event in &page {
                    if event.position > until {
                        break 'pages;
                    }
                    write_line(&mut out, event)?;
                    written += 1;
                }
                if let Some(event) = page.last() {
                    let (done, total) = to_go(event.position);
                    progress.set(done, total);
                }
            }
            progress.finish();
        }
    }
    out.flush()?;
    eprintln!("tasklog: exported {written} events");
    Ok(())
}

fn write_line(out: &mut dyn Write, event: &RecordedEvent) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &CloudEvent::of(event))?;
    out.write_all(b"\n")
}

/// Follows the task events, a line each, until interrupted.
pub async fn tail(args: TailArgs) -> Result<(), Failure> {
    let store = args.store.open_existing().await?;
    let after = match args.after {
        Some(after) => Position(after),
        None => store.head().await?,
    };
    let mut filter = EventFilter::new(args.task_type, args.event_type);
    let mut events = store.subscribe_all(after);
    let mut out = std::io::stdout();
    while let Some(event) = events.next().await {
        let event = event?;
        if !filter.admits(&event, &*store, None).await {
            continue;
        }
        writeln!(out, "{}", human_line(&event))?;
        out.flush()?;
    }
    Ok(())
}

/// `position  time  type  task  actor  payload`, for a person to read.
pub fn human_line(event: &RecordedEvent) -> String {
    let task = TaskId::from_stream(&event.stream)
        .map_or_else(|| event.stream.clone(), |id| id.to_string());
    let actor = event.metadata.actor.as_deref().unwrap_or("-");
    format!(
        "{:>8}  {}  {:<16}  {task}  {actor:<10}  {}",
        event.position,
        crate::http::wire::wire_time(event.recorded_at),
        event.event_type,
        event.payload
    )
}
