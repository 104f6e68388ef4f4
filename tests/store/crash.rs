//! Acknowledged appends survive `kill -9`.
//!
//! The test runs this same test binary again as a child that appends as fast
//! as it can and prints each acknowledged event; it kills the child with
//! SIGKILL at a random moment, reopens the store and checks that every
//! acknowledged event is there, where it was acknowledged, with the hash chain
//! intact. Many rounds, on one store file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt;
use tasklog_events::task_event::{TaskCreated, TaskStarted};
use tasklog_events::{
    read_all_pages, verify, EventStore, ExpectedRevision, Metadata, Position, TaskEvent, TaskId,
};
use tasklog_store_sqlite::SqliteStore;
use uuid::Uuid;

const CHILD_STORE: &str = "TASKLOG_CRASH_CHILD_STORE";
const ROUNDS: usize = 16;

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.sqlite");
    let seed = fastrand::u64(..);
    println!("crash test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut acknowledged: Vec<(Uuid, Position)> = Vec::new();
    let mut rounds_with_acks = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "store::crash::child_appends_until_killed",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD_STORE, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, appending) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || read_acks(stdout, first_ack));
        // Kill at a random moment while the child is appending.
        let _ = appending.recv_timeout(Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(rng.u64(0..300)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        if !acks.is_empty() {
            rounds_with_acks += 1;
        }
        acknowledged.extend(acks);
        check_store(&path, &acknowledged, round);
    }
    assert_eq!(
        rounds_with_acks, ROUNDS,
        "a child was killed before it appended anything"
    );
    println!(
        "{} acknowledged events survived {ROUNDS} kills",
        acknowledged.len()
    );
}

/// Lines `ack <event id> <position> .`; a line the kill cut short has no final dot.
/// Says on `first_ack` when the first one arrives.
fn read_acks(
    stdout: impl std::io::Read,
    first_ack: std::sync::mpsc::Sender<()>,
) -> Vec<(Uuid, Position)> {
    let mut acks = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split(' ').collect();
        if let ["ack", id, position, "."] = parts[..] {
            acks.push((id.parse().unwrap(), Position(position.parse().unwrap())));
            let _ = first_ack.send(());
        }
    }
    acks
}

fn check_store(path: &Path, acknowledged: &[(Uuid, Position)], round: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let report = verify(&store)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the log does not verify: {e}"));
        let mut at_position = HashMap::new();
        let mut pages = read_all_pages(&store, Position::START, 10_000);
        while let Some(page) = pages.try_next().await.unwrap() {
            at_position.extend(page.into_iter().map(|e| (e.position, e.id)));
        }
        assert_eq!(at_position.len() as u64, report.events);
        assert_eq!(report.head, Position(report.events), "positions have a gap");
        for (id, position) in acknowledged {
            assert_eq!(
                at_position.get(position),
                Some(id),
                "round {round}: acknowledged event {id} is not at position {position}"
            );
        }
    });
}

/// The child: appends until killed, printing each acknowledged event. Run only
/// by the test above, which sets the store path.
#[test]
#[ignore = "the child process of acknowledged_appends_survive_sigkill"]
fn child_appends_until_killed() {
    let path = std::env::var_os(CHILD_STORE).expect("run by acknowledged_appends_survive_sigkill");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let appenders: Vec<_> = (0..8)
            .map(|appender| tokio::spawn(append_forever(store.clone(), appender)))
            .collect();
        for appender in appenders {
            appender.await.unwrap();
        }
    });
}

/// Creates tasks and starts some of them: single and multi-event appends,
/// new streams and existing ones.
async fn append_forever(store: SqliteStore, appender: u64) {
    let metadata = Metadata {
        actor: Some(format!("appender-{appender}")),
        ..Metadata::default()
    };
    for n in 0u64.. {
        let now = Utc::now();
        let task = TaskId::new();
        let created = TaskEvent::Created(TaskCreated {
            name: format!("crash-{appender}-{n}"),
            task_type: "crash".into(),
            priority: n as i64 % 5,
            data: Default::default(),
            available_time: now,
            expiration_time: now + chrono::Duration::hours(1),
            ..Default::default()
        });
        let mut events = vec![created.to_new_event(now, metadata.clone())];
        let result = store
            .append(&task.stream(), ExpectedRevision::NoStream, events.clone())
            .await
            .unwrap();
        print_acks(&events, result.first_position);
        if n % 3 == 0 {
            let started = |attempt| {
                TaskEvent::Started(TaskStarted {
                    worker: format!("worker-{appender}"),
                    lease_expires_at: now,
                    attempt,
                })
                .to_new_event(now, metadata.clone())
            };
            events = vec![started(1), started(2)];
            let result = store
                .append(&task.stream(), ExpectedRevision::Exact(0), events.clone())
                .await
                .unwrap();
            print_acks(&events, result.first_position);
        }
    }
}

fn print_acks(events: &[tasklog_events::NewEvent], first: Position) {
    let mut out = std::io::stdout().lock();
    for (offset, event) in events.iter().enumerate() {
        writeln!(out, "ack {} {} .", event.id, first.0 + offset as u64).unwrap();
    }
}
