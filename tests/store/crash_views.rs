//! The stored read models survive `kill -9`.
//!
//! Real `tasklog` processes on one data directory: a server taking creates,
//! claims, completions and failures from several clients is killed with
//! SIGKILL at a random moment, in some rounds while it rebuilds its views
//! beside the ones it serves, and so, in others, is `tasklog rebuild`
//! midway. After each kill, `tasklog rebuild --check` must find every task
//! row, the list order, the counts and the small models equal to a fresh fold
//! of the log up to the stored position; and the next server goes on from
//! that position instead of folding the log from its start.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ROUNDS: usize = 12;
const PG_ROUNDS: usize = 6;
const TOKEN: &str = "crash-views-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_read_models_equal_a_fold_of_the_log_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = fastrand::u64(..);
    println!("crash test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut writes = 0;
    for round in 0..ROUNDS {
        if round % 4 == 3 {
            // Killed midway through a rebuild: somewhere within the time a
            // whole one takes.
            let timed = Instant::now();
            assert!(tasklog(dir.path(), &["rebuild"])
                .output()
                .unwrap()
                .status
                .success());
            let whole = timed.elapsed().as_millis() as u64;
            let mut rebuild = tasklog(dir.path(), &["rebuild"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(rng.u64(0..whole.max(1))));
            rebuild.kill().unwrap();
            rebuild.wait().unwrap();
        } else {
            let mut server = Server::start(dir.path(), None).await;
            let load = tokio::spawn(workload(server.base.clone(), rng.u64(..), Duration::MAX));
            tokio::time::sleep(Duration::from_millis(rng.u64(200..800))).await;
            if round % 4 == 1 {
                // Killed while it rebuilds its views beside the live ones, or
                // just after it swapped them in.
                let started = reqwest::Client::new()
                    .post(format!("{}/v1/admin/rebuild", server.base))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(started.status(), reqwest::StatusCode::ACCEPTED);
                tokio::time::sleep(Duration::from_millis(rng.u64(0..300))).await;
            }
            server.child.kill().unwrap(); // SIGKILL, with requests in flight
            server.child.wait().unwrap();
            writes += load.await.unwrap();
        }
        assert_views_equal_the_log(dir.path(), &[], round);
    }
    assert!(writes > 100, "only {writes} writes were answered");
    println!("{writes} answered writes, {ROUNDS} kills, the read models agreed each time");

    // And the check sees a row that is not what the log says.
    assert!(tasklog(dir.path(), &["rebuild"])
        .output()
        .unwrap()
        .status
        .success());
    let views_file = match std::fs::read_to_string(dir.path().join("tasklog.sqlite-views-current"))
    {
        Ok(generation) => format!("tasklog.sqlite-views-{}", generation.trim()),
        Err(_) => "tasklog.sqlite-views".to_owned(),
    };
    let views = rusqlite::Connection::open(dir.path().join(views_file)).unwrap();
    let changed = views
        .execute(
            "UPDATE tasks SET view = replace(view, '\"priority\":0', '\"priority\":9')
             WHERE created_position = (SELECT min(created_position) FROM tasks WHERE view LIKE '%\"priority\":0%')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(views);
    let check = tasklog(dir.path(), &["rebuild", "--check"])
        .output()
        .unwrap();
    assert!(!check.status.success(), "the check missed a changed row");
    assert!(String::from_utf8_lossy(&check.stdout).contains("stored"));
}

/// Two nodes on one PostgreSQL schema share its stored views. Both are
/// killed with SIGKILL at random moments with writes in flight, many times,
/// in some rounds while one rebuilds the views beside both; after each round
/// the shared views equal a fold of the log: no batch was stored twice over
/// a newer one, none skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_read_models_on_postgres_equal_a_fold_after_sigkill() {
    let Some(schema) = tasklog_store_postgres::testing::TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let seed = fastrand::u64(..);
    println!("shared crash test seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut writes = 0;
    for round in 0..PG_ROUNDS {
        let mut nodes = Vec::new();
        for dir in &dirs {
            nodes.push(Server::start(dir.path(), Some(&url)).await);
        }
        let loads: Vec<_> = nodes
            .iter()
            .map(|node| tokio::spawn(workload(node.base.clone(), rng.u64(..), Duration::MAX)))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(300..900))).await;
        if round % 3 == 1 {
            // Killed while one of them rebuilds the shared views beside
            // both, or moves them to the rebuilt ones, or just after.
            let started = reqwest::Client::new()
                .post(format!("{}/v1/admin/rebuild", nodes[0].base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(started.status(), reqwest::StatusCode::ACCEPTED);
            tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
        }
        for node in &mut nodes {
            node.child.kill().unwrap(); // SIGKILL, with requests in flight
            node.child.wait().unwrap();
            tokio::time::sleep(Duration::from_millis(rng.u64(0..150))).await;
        }
        for load in loads {
            writes += load.await.unwrap();
        }
        assert_views_equal_the_log(dirs[0].path(), &["--store", &url], round);
    }
    assert!(writes > 100, "only {writes} writes were answered");
    println!(
        "{writes} answered writes on two nodes, {PG_ROUNDS} rounds of kills, the shared views \
         agreed each time; they are at generation {} (0: no rebuild beside them was promoted)",
        schema.views_generation().await
    );
}

/// A start over stored read models loads them and catches up only the events
/// the last run did not store: it does not fold the log again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_goes_on_from_the_stored_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), None).await;
    let written = workload(server.base.clone(), 7, Duration::from_millis(500)).await;
    assert!(written > 0);
    stop(&mut server.child);
    let mut again = Server::start(dir.path(), None).await;
    stop(&mut again.child);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    let loads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("loaded the stored views"))
        .collect();
    assert_eq!(loads.len(), 2, "{log}");
    assert!(loads[0].contains("position=0"), "{}", loads[0]);
    assert!(!loads[1].contains("position=0"), "{}", loads[1]);
    let catch_ups = log.lines().filter(|l| l.contains("catching up")).count();
    assert_eq!(catch_ups, 0, "a stopped server stored every event: {log}");
}

fn tasklog(data_dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasklog"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("TASKLOG_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// `tasklog rebuild --check` (on `store_args`' store) finds the stored views
/// equal to a fold of the log.
fn assert_views_equal_the_log(data_dir: &Path, store_args: &[&str], round: usize) {
    let check = tasklog(data_dir, &[&["rebuild", "--check"], store_args].concat())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "round {round}: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// SIGTERM, and wait for the server to finish.
fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    child.wait().unwrap();
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// A `tasklog serve` on a free port (on the embedded store in
    /// `data_dir`, or on `store`), once it answers; its log is appended to
    /// `serve.log` in the data directory.
    async fn start(data_dir: &Path, store: Option<&str>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("serve.log"))
            .unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen];
        args.extend(store.iter().flat_map(|url| ["--store", url]));
        let child = tasklog(data_dir, &args)
            .stderr(log.try_clone().unwrap())
            .stdout(log)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        let http = reqwest::Client::new();
        while !http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }
}

/// Four clients creating, claiming, completing and failing tasks until the
/// server goes away or `lasting` has passed; how many writes were answered.
async fn workload(base: String, seed: u64, lasting: Duration) -> u64 {
    let started = Instant::now();
    let clients = (0..4u64).map(|n| {
        let base = base.clone();
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed ^ n);
            let http = reqwest::Client::new();
            let mut answered = 0;
            let now = chrono::Utc::now();
            for i in 0.. {
                if started.elapsed() >= lasting {
                    break;
                }
                let task_type = ["email", "resize"][rng.usize(0..2)];
                let body = json!({
                    "name": format!("c{n}-{i}"),
                    "type": task_type,
                    "priority": rng.i64(0..3),
                    "data": {"n": i},
                    "labels": {"client": format!("c{n}")},
                    "tags": ["crash"],
                    "availableTime": (now - chrono::Duration::hours(1)).to_rfc3339(),
                    "expirationTime": (now + chrono::Duration::days(1)).to_rfc3339(),
                });
                let Some(_) = post(&http, &base, "/v1/tasks", body).await else {
                    return answered;
                };
                answered += 1;
                if rng.u8(0..10) == 0 {
                    continue; // left pending
                }
                let claim =
                    json!({"types": [task_type], "worker": format!("w{n}"), "leaseSeconds": 60});
                let Some(task) = post(&http, &base, "/v1/tasks/claim", claim).await else {
                    return answered;
                };
                answered += 1;
                let Some(id) = task["id"].as_str() else {
                    continue;
                };
                let (path, body) = match rng.u8(0..4) {
                    0 => ("fail", json!({"worker": format!("w{n}"), "error": "boom"})),
                    1 => continue, // left running
                    _ => ("complete", json!({"worker": format!("w{n}")})),
                };
                if post(&http, &base, &format!("/v1/tasks/{id}/{path}"), body)
                    .await
                    .is_none()
                {
                    return answered;
                }
                answered += 1;
            }
            answered
        })
    });
    let mut answered = 0;
    for client in clients.collect::<Vec<_>>() {
        answered += client.await.unwrap();
    }
    answered
}

/// The answer's body when it is a 2xx; `None` once the server is gone.
async fn post(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Option<Value> {
    let response = http
        .post(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    let text = response.text().await.ok()?;
    assert!(status.is_success(), "{path}: {status} {text}");
    Some(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A start far behind the log catches up in bulk from the stored position:
/// folded in two legs, the stored views equal one fold of the whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_catch_up_resumes_from_the_stored_position() {
    use tasklog_events::task_event::{TaskCompleted, TaskCreated, TaskStarted};
    use tasklog_events::{ExpectedRevision, Metadata, Position, TaskEvent, TaskId};
    use tasklog_projections::rebuild::{catch_up, check};

    let dir = tempfile::tempdir().unwrap();
    let url = tasklog::app::store_url::StoreUrl::default_in(dir.path());
    let store = url.open().await.unwrap();
    let now = chrono::Utc::now();
    for n in 0..600 {
        let mut events = vec![TaskEvent::Created(TaskCreated {
            name: format!("t{n}"),
            task_type: ["email", "resize"][n % 2].into(),
            available_time: now,
            expiration_time: now + chrono::Duration::days(1),
            ..TaskCreated::default()
        })];
        if n % 5 != 0 {
            events.push(TaskEvent::Started(TaskStarted {
                worker: "w".into(),
                attempt: 1,
                lease_expires_at: now + chrono::Duration::minutes(5),
            }));
        }
        if n % 5 > 1 {
            events.push(TaskEvent::Completed(TaskCompleted {
                worker: "w".into(),
                result: None,
            }));
        }
        let events = events
            .iter()
            .map(|e| e.to_new_event(now, Metadata::default()))
            .collect();
        let stream = TaskId::new().stream();
        store
            .append(&stream, ExpectedRevision::NoStream, events)
            .await
            .unwrap();
    }
    let head = store.head().await.unwrap();
    let tables = url.open_views().await.unwrap();
    let half = Position(head.0 / 2);
    let (first, _) = catch_up(
        store.clone(),
        tables.clone(),
        Default::default(),
        half,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(first.position, half);
    let loaded = tables.load().await.unwrap();
    assert_eq!(loaded.position, half);
    let (all, folded) = catch_up(
        store.clone(),
        tables.clone(),
        loaded.into_projections(),
        head,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(all.position, head);
    assert_eq!(folded, head.0 - half.0);
    assert_eq!(check(&*store, tables).await.unwrap(), Vec::<String>::new());
}
