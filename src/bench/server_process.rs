//! A `tasklog serve` process of the bench's own, over the bench's store: its
//! start time, memory and threads are the server's alone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::rss_bytes;
use crate::app::store_url::StoreUrl;
use crate::Failure;

/// A `tasklog serve` process of its own over the bench's store; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    /// From the process's start until it answered its first request.
    pub started_in: Duration,
}

/// The `tasklog` whose `serve` the benches start: `TASKLOG_BENCH_SERVER`, to
/// measure another build with this one's clients, or else this one.
fn server_binary() -> std::io::Result<std::path::PathBuf> {
    match std::env::var_os("TASKLOG_BENCH_SERVER") {
        Some(path) => Ok(path.into()),
        None => std::env::current_exe(),
    }
}

impl ServerProcess {
    pub async fn start(store: &StoreUrl, data_dir: &Path, token: &str) -> Result<Self, Failure> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let started = Instant::now();
        let child = Command::new(server_binary()?)
            .args([
                "serve",
                "--listen",
                &listen,
                "--store",
                &store.with_secrets(),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .env("TASKLOG_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut server = ServerProcess {
            child,
            base: format!("http://{listen}"),
            token: token.to_owned(),
            http: reqwest::Client::new(),
            started_in: Duration::ZERO,
        };
        let health = format!("{}/healthz", server.base);
        loop {
            if let Ok(response) = server.http.get(&health).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("the server exited before it served: {status}").into());
            }
            if started.elapsed() > Duration::from_secs(3600) {
                return Err("the server did not serve within an hour".into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.started_in = started.elapsed();
        Ok(server)
    }

    /// A client of this server with its token. Refusals are not tried
    /// again: a bench reports them.
    pub fn client(&self) -> Result<tasklog_client::Client, Failure> {
        let once = tasklog_client::Retries {
            attempts: 0,
            ..tasklog_client::Retries::default()
        };
        Ok(tasklog_client::Client::new(&self.base, &self.token)?.retries(once))
    }

    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(&self.child.id().to_string())
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(path, self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(path, request).await
    }

    /// Sends `request` (to `path`) with the token: the answer's JSON, or an
    /// error naming the path, the status and the answer.
    pub async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, Failure> {
        let response = request.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}").into());
        }
        Ok(body)
    }

    /// The log position the server's views have reached.
    pub async fn position(&self) -> Result<u64, Failure> {
        let response = self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await?;
        let position = response
            .headers()
            .get("tasklog-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        position.ok_or_else(|| "the server answered without Tasklog-Position".into())
    }

    /// The CPU time the process has used so far, user and system, in seconds
    /// (from /proc; 0 where there is none).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        let stat = stat.unwrap_or_default();
        // After the command name, which may hold spaces: fields 3 onwards,
        // of which utime and stime are the 14th and 15th, in USER_HZ (100/s).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        (ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0)) as f64 / 100.0
    }

    /// How many threads the process runs, from /proc (0 where there is none).
    pub fn threads(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        status
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
