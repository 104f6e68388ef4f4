//! Logs: lines on standard error, as text for people or JSON for a log
//! pipeline, filtered by `RUST_LOG` (default `info`). Lines are written by a
//! thread of their own, so a request never waits on the terminal or a pipe.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::traces;

/// How log lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event, the request's fields first.
    #[default]
    Text,
    /// One JSON object per line, with the request's fields beside the event's.
    Json,
}

/// Keeps the log writer and the span exporter going; dropping it writes out
/// what is queued.
pub struct Logging {
    _traces: Option<traces::Exporting>,
    _writer: tracing_appender::non_blocking::WorkerGuard,
}

/// Sends the process' logs to standard error in `format`, and its spans to
/// `export` if given.
pub fn init(format: LogFormat, export: Option<&traces::Export>) -> Result<Logging, crate::Failure> {
    let stderr = std::io::stderr();
    let ansi = std::io::IsTerminal::is_terminal(&stderr);
    // Buffered: the writer thread flushes whenever it has written all queued
    // lines, so under load one write carries many lines. If whatever reads
    // standard error stops, lines past the queue (128k) are dropped rather
    // than requests kept waiting: the log of record is the event log.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .finish(std::io::BufWriter::new(stderr));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let (spans, exporting) = match export {
        Some(export) => {
            let (layer, exporting) = traces::layer(export)?;
            (Some(layer), Some(exporting))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(spans)
        .with(filter)
        .with(lines)
        .init();
    Ok(Logging {
        _traces: exporting,
        _writer: guard,
    })
}
