//! The `tasklog` command as a person runs it: a real process, its exit status
//! and what it prints.

use std::io::Read;
use std::process::{Command, Stdio};

use tasklog_events::task_event::TaskCreated;
use tasklog_events::{EventStore, ExpectedRevision, Metadata, TaskEvent, TaskId};
use tasklog_store_sqlite::SqliteStore;

fn tasklog(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasklog"));
    command.args(args).env("RUST_LOG", "warn");
    command
}

#[test]
fn commands_that_read_a_store_refuse_a_missing_one_and_make_none() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    for command in ["verify", "replay", "export"] {
        let output = tasklog(&[command, "--data-dir", typo.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{command} succeeded on no store");
        assert!(stderr.contains("no store at"), "{command}: {stderr}");
        assert!(!typo.exists(), "{command} made a store where none was");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_cut_short_by_its_reader_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tasklog.sqlite")).unwrap();
    let now = chrono::Utc::now();
    for n in 0..2_000 {
        let created = TaskEvent::Created(TaskCreated {
            name: format!("t{n}"),
            task_type: "email".into(),
            available_time: now,
            expiration_time: now,
            ..TaskCreated::default()
        });
        let event = created.to_new_event(now, Metadata::default());
        let stream = TaskId::new().stream();
        store
            .append(&stream, ExpectedRevision::NoStream, vec![event])
            .await
            .unwrap();
    }
    drop(store);
    let data_dir = dir.path().to_str().unwrap();
    // Export writes more than a pipe holds, so it meets the closed pipe while
    // writing; verify has not printed yet when the pipe closes.
    for (args, read) in [
        (["export", "--data-dir", data_dir], 1),
        (["verify", "--data-dir", data_dir], 0),
    ] {
        let mut child = tasklog(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read `read` bytes at most, then stop reading, as `| head -c1` does.
        let mut stdout = child.stdout.take().unwrap();
        let _ = stdout.read(&mut vec![0u8; read]);
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", args[0]);
        assert!(output.status.success(), "{}: {stderr}", args[0]);
    }
}

/// A first start makes the data directory and its files readable by this
/// user only, and keeps the admin token it made out of its log.
#[cfg(unix)]
#[test]
fn a_first_start_keeps_its_files_and_its_token_private() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = tasklog(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env_remove("TASKLOG_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("tasklog is serving") {
            break;
        }
    }
    let mode = |name: &str| {
        let path = data.join(name);
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777
    };
    let modes = [
        ("", mode("")),
        ("tokens.json", mode("tokens.json")),
        ("admin-token", mode("admin-token")),
        ("tasklog.sqlite", mode("tasklog.sqlite")),
        ("tasklog.sqlite-wal", mode("tasklog.sqlite-wal")),
    ];
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(modes[0].1, 0o700, "the data directory");
    for (name, mode) in &modes[1..] {
        assert_eq!(*mode, 0o600, "{name}");
    }
    // The tokens file keeps the secret's hash only; the secret is handed
    // over in a file of its own, and the log says where, not what.
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("tokens.json")).unwrap()).unwrap();
    let admin = &tokens["tokens"][0];
    assert!(
        admin.get("token").is_none(),
        "a secret in tokens.json: {admin}"
    );
    let hash = admin["tokenSha256"].as_str().unwrap();
    let secret = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let secret = secret.trim();
    assert_eq!(secret.len(), 64);
    use sha2::Digest;
    assert_eq!(hash, hex::encode(sha2::Sha256::digest(secret.as_bytes())));
    assert!(!log.contains(secret), "the token is in the log: {log}");
    assert!(!tokens.to_string().contains(secret));
    assert!(
        log.contains("admin-token"),
        "the log says where the token is: {log}"
    );
}

/// A restart while the disk is full serves reads and answers writes with 503,
/// and takes writes again once space returns. The data directory is a small
/// tmpfs of its own, filled to the last byte; mounting one needs root, so
/// without it the test says it was skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_full_disk_serves_reads_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tasklog-test"])
        .arg(dir.path())
        .stderr(Stdio::piped())
        .output();
    match mounted {
        Ok(output) if output.status.success() => {}
        other => {
            eprintln!("SKIPPED: a tmpfs cannot be mounted here (root is needed): {other:?}");
            return;
        }
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let data = dir.path().join("data");
    let http = reqwest::Client::new();
    let create = |base: String| {
        let http = http.clone();
        async move {
            let body = serde_json::json!({
                "name": "full", "type": "email", "priority": 1, "data": {},
                "availableTime": "2026-01-01T00:00:00Z", "expirationTime": "2030-01-01T00:00:00Z"});
            let response = http
                .post(format!("{base}/v1/tasks"))
                .bearer_auth("full-disk-token")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };

    let mut server = Serving::start(&data);
    let (status, task) = create(server.base.clone()).await;
    assert_eq!(status, 200, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    server.stop();

    // Fill the disk to the last byte.
    let filler = dir.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    while std::io::Write::write(&mut file, &[0]).is_ok_and(|n| n == 1) {}
    drop(file);

    let mut server = Serving::start(&data);
    for path in [format!("/v1/tasks/{id}"), "/v1/tasks?limit=10".to_owned()] {
        let read = http
            .get(format!("{}{path}", server.base))
            .bearer_auth("full-disk-token")
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{path}");
    }
    let (status, refused) = create(server.base.clone()).await;
    assert_eq!(status, 503, "{refused}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, task) = create(server.base.clone()).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{task}");
        assert!(
            std::time::Instant::now() < deadline,
            "writes did not resume"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop();
}

/// Tokens added and removed with `tasklog tokens` while a server runs: the
/// server takes each change within a second or two, the file keeps hashes
/// only, and a file it cannot read leaves the tokens it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_added_and_removed_reach_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Serving::start(&data);
    let tokens = |args: &[&str]| {
        tasklog(&[&["tokens"], args].concat())
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let added = tokens(&[
        "add",
        "ci",
        "--scope",
        "tasks:read",
        "--rate-limit",
        "50/100",
    ]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let secret = String::from_utf8(added.stdout).unwrap().trim().to_owned();
    assert_eq!(
        secret.len(),
        64,
        "the secret alone on standard output: {secret:?}"
    );
    let file = std::fs::read_to_string(data.join("tokens.json")).unwrap();
    assert!(!file.contains(&secret), "the file holds the secret");
    let tasklog::http::auth::Secret::Sha256(hash) = tasklog::http::auth::Secret::hashed(&secret)
    else {
        unreachable!()
    };
    assert!(file.contains(&hash), "{file}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("tokens.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let http = reqwest::Client::new();
    let status = |token: String, method: reqwest::Method| {
        let request = http
            .request(method.clone(), format!("{}/v1/tasks", server.base))
            .bearer_auth(token);
        let request = if method == reqwest::Method::POST {
            request.json(&serde_json::json!({}))
        } else {
            request
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let within = |wanted: u16, token: String| {
        let status = &status;
        async move {
            for _ in 0..50 {
                if status(token.clone(), reqwest::Method::GET).await == wanted {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        }
    };
    assert!(
        within(200, secret.clone()).await,
        "the server never took the new token"
    );
    assert_eq!(
        status(secret.clone(), reqwest::Method::POST).await,
        403,
        "tasks:read only"
    );

    let listed = tokens(&["list"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("ci\ttasks:read\t50/s, burst 100\thashed"),
        "{listed}"
    );
    assert!(!listed.contains(&secret));
    let again = tokens(&["add", "ci", "--scope", "admin"]);
    assert!(!again.status.success(), "a second token of one name");
    let bad_scope = tokens(&["add", "x", "--scope", "tasks:everything"]);
    assert!(!bad_scope.status.success());

    // A file the server cannot read changes nothing.
    std::fs::write(data.join("tokens.json"), "{").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(status(secret.clone(), reqwest::Method::GET).await, 200);
    // Removed (from a good file again): refused.
    std::fs::write(data.join("tokens.json"), file).unwrap();
    let removed = tokens(&["remove", "ci"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert!(
        within(401, secret).await,
        "the server still takes a removed token"
    );
    assert_eq!(
        status("full-disk-token".into(), reqwest::Method::GET).await,
        200,
        "the env token stays"
    );
    assert!(!tokens(&["remove", "ci"]).status.success());
    server.stop();
}

/// `tasklog task ...` against a running server: what it prints is the
/// server's answer, and an error answer is a failed command saying why.
#[test]
fn the_task_commands_speak_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Serving::start(&dir.path().join("data"));
    let task = |args: &[&str], token: &str| {
        let output = tasklog(&[&["task", "--url", &server.base, "--token", token], args].concat())
            .env_remove("TASKLOG_TOKEN")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        let answer: serde_json::Value =
            serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        (output.status.success(), answer, said)
    };
    let token = "full-disk-token";
    let (ok, created, said) = task(
        &[
            "create",
            "--type",
            "email",
            "--name",
            "hello",
            "--data",
            r#"{"to": "ada"}"#,
            "--priority",
            "3",
        ],
        token,
    );
    assert!(ok, "{said}");
    assert_eq!(
        (created["state"].as_str(), created["priority"].as_i64()),
        (Some("pending"), Some(3))
    );
    assert_eq!(created["data"]["to"], "ada");
    let id = created["id"].as_str().unwrap();
    let (ok, shown, _) = task(&["get", id], token);
    assert!(ok);
    assert_eq!(shown["id"], id);
    let (ok, listed, _) = task(&["list", "--type", "email"], token);
    assert!(ok);
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1);
    let (ok, cancelled, _) = task(&["cancel", id, "--reason", "not needed"], token);
    assert!(ok);
    assert_eq!(
        (cancelled["state"].as_str(), cancelled["error"].as_str()),
        (Some("failed"), Some("cancelled: not needed"))
    );
    let (ok, retried, _) = task(&["retry", id], token);
    assert!(ok);
    assert_eq!(retried["state"], "pending");

    let (ok, _, said) = task(&["get", &"0".repeat(32)], token);
    assert!(
        !ok && said.contains("404 Not Found task_not_found"),
        "{said}"
    );
    let (ok, _, said) = task(&["get", id], "not-a-token");
    assert!(!ok && said.contains("401"), "{said}");
    let (ok, _, said) = task(
        &["create", "--type", "email", "--name", "x", "--data", "{"],
        token,
    );
    assert!(
        !ok && said.contains("--data is not a JSON object"),
        "{said}"
    );
    let (ok, _, said) = task(&["create", "--type", "email", "--name", " "], token);
    assert!(
        !ok && said.contains("400 Bad Request invalid_fields"),
        "{said}"
    );
    server.stop();
}

/// A `tasklog serve` on a data directory, once it says where it serves.
struct Serving {
    child: std::process::Child,
    base: String,
}

impl Serving {
    fn start(data: &std::path::Path) -> Serving {
        use std::io::BufRead;
        let mut child = tasklog(&["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("TASKLOG_TOKEN", "full-disk-token")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let mut said = String::new();
        let addr = loop {
            let Some(line) = lines.next() else {
                panic!("the server stopped before it served: {said}");
            };
            let line = line.unwrap();
            said.push_str(&line);
            said.push('\n');
            if let Some(at) = line.split("addr=").nth(1) {
                break at.split_whitespace().next().unwrap().to_owned();
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        Serving {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// SIGTERM, and wait for the server to finish.
    fn stop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--log-format json`, `--metrics-listen` and `--otlp-endpoint` on a real
/// server: every log line is JSON and the request lines carry their fields;
/// `/metrics` answers on its own address without a token; the request's span
/// reaches an OTLP collector (a small one in this test) in the trace its
/// `traceparent` named, and the event it appended names that span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_logged_counted_and_traced_to_its_events() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};

    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post({
            let received = received.clone();
            move |body: axum::body::Bytes| async move {
                received
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).expect("OTLP/JSON"));
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let dir = tempfile::tempdir().unwrap();
    let mut child = tasklog(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--otlp-protocol",
            "http/json",
        ])
        .arg("--otlp-endpoint")
        .arg(format!("http://{collector_addr}"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .env("TASKLOG_TOKEN", "trace-token")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let mut logged: Vec<serde_json::Value> = Vec::new();
    let (mut api, mut metrics) = (None, None);
    while api.is_none() || metrics.is_none() {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the server did not start: {logged:?}"));
        let line: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("a log line not JSON: {line}"));
        match line["message"].as_str() {
            Some("tasklog is serving") => api = line["addr"].as_str().map(str::to_owned),
            Some("serving /metrics without a token") => {
                metrics = line["addr"].as_str().map(str::to_owned)
            }
            _ => {}
        }
        logged.push(line);
    }
    let (api, metrics) = (api.unwrap(), metrics.unwrap());

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "name": "traced", "type": "email", "priority": 1, "data": {},
        "availableTime": "2026-01-01T00:00:00Z", "expirationTime": "2099-01-01T00:00:00Z"});
    let created = http
        .post(format!("http://{api}/v1/tasks"))
        .bearer_auth("trace-token")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .header("x-request-id", "traced-request")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let id = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history: serde_json::Value = http
        .get(format!("http://{api}/v1/tasks/{id}/events"))
        .bearer_auth("trace-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let traceparent = history["events"][0]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[1], trace, "the event is not in the request's trace");
    let span_id = parts[2].to_owned();
    assert_ne!(
        span_id, "00f067aa0ba902b7",
        "the event names the caller's span, not the server's"
    );

    let scraped = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    let scraped = scraped.text().await.unwrap();
    assert!(
        scraped.contains(
            "tasklog_http_requests_total{method=\"POST\",route=\"/v1/tasks\",status=\"200\"} 1"
        ),
        "{scraped}"
    );

    // A clean stop sends the spans still queued.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    logged.extend(lines.try_iter().map(|line| {
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("a log line not JSON: {line}"))
    }));
    let answered = logged
        .iter()
        .find(|l| l["message"] == "answered" && l["request_id"] == "traced-request")
        .unwrap_or_else(|| panic!("no request line: {logged:?}"));
    assert_eq!(answered["status"], 200);
    assert_eq!(answered["method"], "POST");
    assert_eq!(answered["route"], "/v1/tasks");
    assert_eq!(answered["trace_id"], trace);
    assert_eq!(answered["token"], "env", "{answered}");
    assert!(answered["latency_ms"].is_number(), "{answered}");

    let spans: Vec<serde_json::Value> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|export| {
            export["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect();
    let request_span = spans
        .iter()
        .find(|s| s["spanId"] == span_id.as_str())
        .unwrap_or_else(|| panic!("the event's span did not reach the collector: {spans:?}"));
    assert_eq!(request_span["traceId"], trace);
    assert_eq!(request_span["name"], "request");
    assert_eq!(request_span["parentSpanId"], "00f067aa0ba902b7");
}
