//! Logs: lines on standard error, as text for people or JSON for a log
//! pipeline, filtered by `RUST_LOG` (default `info`). Lines are gathered in
//! memory and written by a thread of their own a few times a second, so a
//! request never waits on the terminal or a pipe, nor wakes a thread.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
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
    _writer: Writing,
}

/// Sends the process' logs to standard error in `format`, and its spans to
/// `export` if given.
pub fn init(format: LogFormat, export: Option<&traces::Export>) -> Result<Logging, crate::Failure> {
    let stderr = std::io::stderr();
    let ansi = std::io::IsTerminal::is_terminal(&stderr);
    let (writer, guard) = Lines::to(stderr);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(PlainFields)
            .with_timer(CachedSecondsTime)
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

/// Text lines' fields: the message, then `name=value` for each other field,
/// strings as they are unless they need quotes. tracing-subscriber's own
/// visitor styles and escapes every field through several `write!`s, which
/// made the request line cost as much as a tenth of a create.
struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Starts a field: a space before any but the first, and its name
    /// (none for the message).
    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if field.name() != "message" {
            self.writer.write_str(field.name())?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field).and_then(|()| value(&mut self.writer));
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let bare = field.name() == "message"
            || (!value.is_empty()
                && !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '='));
        self.field(field, |w| {
            if bare {
                w.write_str(value)
            } else {
                write!(w, "{value:?}")
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, |w| write!(w, "{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |w| write!(w, "{value:?}"));
    }
}

/// The time of a line, UTC to the microsecond, with the part up to the
/// seconds formatted once a second per thread.
struct CachedSecondsTime;

impl FormatTime for CachedSecondsTime {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        thread_local! {
            static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
        }
        let now = chrono::Utc::now();
        let (seconds, micros) = (now.timestamp(), now.timestamp_subsec_micros().min(999_999));
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != seconds {
                *second = seconds;
                text.clear();
                let _ = write!(text, "{}", now.format("%Y-%m-%dT%H:%M:%S"));
            }
            w.write_str(text)
        })?;
        let mut digits = *b".000000Z";
        let mut rest = micros;
        for digit in digits[1..7].iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        w.write_str(std::str::from_utf8(&digits).expect("ASCII digits"))
    }
}

/// Bytes a buffer of lines keeps between lingers (what one holds under a
/// busy load, at about 200 bytes a line).
const KEPT: usize = 1 << 20;
/// How long a line may wait in memory before it is written.
const LINGER: Duration = Duration::from_millis(50);
/// Lines waiting past this many bytes are dropped rather than requests kept
/// waiting on a reader of standard error that stopped: the log of record is
/// the event log.
const MAX_WAITING: usize = 16 << 20;

/// The lines waiting to be written. A line costs its caller a copy under a
/// lock; the writing thread wakes on its own every [`LINGER`], so under load
/// one write carries hundreds of lines and no request pays for a wake-up.
#[derive(Clone)]
struct Lines(Arc<Shared>);

struct Shared {
    waiting: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stopping: AtomicBool,
}

/// Writes out what waits when dropped, and stops the writing thread.
struct Writing {
    lines: Lines,
    thread: Option<JoinHandle<()>>,
}

impl Lines {
    /// Lines for `out`, and the guard of the thread that writes them there.
    fn to(out: impl Write + Send + 'static) -> (Lines, Writing) {
        let lines = Lines(Arc::new(Shared {
            waiting: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }));
        let shared = lines.0.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_out(&shared, out))
            .expect("a thread for the log writer");
        (
            lines.clone(),
            Writing {
                lines,
                thread: Some(thread),
            },
        )
    }
}

/// The writing thread: every [`LINGER`], what waits goes to `out` in one write.
fn write_out(shared: &Shared, mut out: impl Write) {
    let mut writing = Vec::new();
    loop {
        let stopping = shared.stopping.load(Ordering::Acquire);
        if !stopping {
            std::thread::park_timeout(LINGER);
        }
        std::mem::swap(
            &mut *shared.waiting.lock().expect("log lines"),
            &mut writing,
        );
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "{dropped} log lines were dropped: standard error was not read fast enough"
            );
        }
        if !writing.is_empty() {
            let _ = out.write_all(&writing);
            let _ = out.flush();
            writing.clear();
            // Buffers swap places, so each keeps what a linger's lines
            // need and lines are not copied as it grows; only a burst's
            // buffer is not kept for the quiet that follows it.
            writing.shrink_to(KEPT);
        }
        if stopping {
            return;
        }
    }
}

impl Write for Lines {
    /// Takes one whole line (the formatter writes each in one call).
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut waiting = self.0.waiting.lock().expect("log lines");
        if waiting.len() + line.len() <= MAX_WAITING {
            waiting.extend_from_slice(line);
        } else {
            self.0.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        self.lines.0.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_lines_carry_the_time_the_message_and_each_field() {
        let sink = Sink::default();
        let (lines, writing) = Lines::to(sink.clone());
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(PlainFields)
            .with_timer(CachedSecondsTime)
            .with_writer(lines)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "tasklog::request", method = %"POST", route = "/v1/tasks",
                status = 200u16, latency_ms = 0.25, token = "ci", error = "two words",
                empty = "", "answered");
        });
        drop(writing);
        let line = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{line}");
        assert_eq!(time.len(), "2026-11-28T01:15:39.123456Z".len(), "{line}");
        assert_eq!(
            rest.trim_start(),
            "INFO tasklog::request: answered method=POST route=/v1/tasks status=200 \
             latency_ms=0.25 token=ci error=\"two words\" empty=\"\"\n"
        );
    }

    #[test]
    fn lines_are_written_in_order_within_the_linger_and_all_at_the_end() {
        let sink = Sink::default();
        let (lines, writing) = Lines::to(sink.clone());
        lines.make_writer().write_all(b"first\n").unwrap();
        std::thread::sleep(LINGER * 4);
        assert_eq!(&*sink.0.lock().unwrap(), b"first\n");
        for i in 0..1000 {
            writeln!(lines.make_writer(), "line {i}").unwrap();
        }
        drop(writing);
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let expected: String = std::iter::once("first\n".to_owned())
            .chain((0..1000).map(|i| format!("line {i}\n")))
            .collect();
        assert_eq!(written, expected);
    }
}
