//! `tasklog task create|get|list|retry|cancel`: a server's tasks from the
//! terminal, over its HTTP API (`--url`, `--token`). Each prints the server's
//! answer as JSON; an error answer is the command's error, with its message.

use std::io::Write;

use chrono::{Duration, SecondsFormat, Utc};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::Failure;

#[derive(Debug, Args)]
pub struct TaskArgs {
    /// The server's address.
    #[arg(
        long,
        env = "TASKLOG_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// A bearer token with the scopes the command needs.
    #[arg(long, env = "TASKLOG_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: TaskCommand,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task, available now (or after `--available-in`).
    Create(CreateArgs),
    /// One task.
    Get { id: String },
    /// Tasks in creation order, one page.
    List(ListArgs),
    /// Run a failed task again, now.
    Retry { id: String },
    /// Cancel a pending or running task.
    Cancel {
        id: String,
        /// Becomes the task's error.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The task's type: what workers claim by.
    #[arg(long = "type")]
    pub task_type: String,
    #[arg(long)]
    pub name: String,
    /// The task's data, a JSON object.
    #[arg(long, default_value = "{}")]
    pub data: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
    /// Not claimable until this long from now (like `10m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub available_in: Option<std::time::Duration>,
    /// Fails if still pending this long from now.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1d")]
    pub expires_in: std::time::Duration,
    /// Made once per key: the same command again answers the same task.
    #[arg(long)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// pending, running, failed or completed.
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long = "type")]
    pub task_type: Option<String>,
    /// Like `env=prod,tier!=batch`.
    #[arg(long)]
    pub label_selector: Option<String>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// The `nextCursor` of the page before.
    #[arg(long)]
    pub cursor: Option<String>,
}

pub async fn run(args: TaskArgs) -> Result<(), Failure> {
    let base = args.url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let with_token = |request: reqwest::RequestBuilder| match &args.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let request = match args.command {
        TaskCommand::Create(create) => {
            let data: Value = serde_json::from_str(&create.data)
                .map_err(|e| format!("--data is not JSON: {e}"))?;
            let now = Utc::now();
            let duration = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
            let available = now + create.available_in.map_or(Duration::zero(), duration);
            let expires = available + duration(create.expires_in);
            let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
            let body = json!({
                "name": create.name,
                "type": create.task_type,
                "priority": create.priority,
                "data": data,
                "availableTime": time(available),
                "expirationTime": time(expires),
            });
            let request = http.post(format!("{base}/v1/tasks")).json(&body);
            match create.idempotency_key {
                Some(key) => request.header("Idempotency-Key", key),
                None => request,
            }
        }
        TaskCommand::Get { id } => http.get(format!("{base}/v1/tasks/{id}")),
        TaskCommand::List(list) => {
            let mut query = vec![("limit", list.limit.to_string())];
            let optional = [
                ("state", list.state),
                ("type", list.task_type),
                ("labelSelector", list.label_selector),
                ("cursor", list.cursor),
            ];
            query.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
            http.get(format!("{base}/v1/tasks")).query(&query)
        }
        TaskCommand::Retry { id } => http
            .post(format!("{base}/v1/tasks/{id}/retry"))
            .json(&json!({})),
        TaskCommand::Cancel { id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            http.post(format!("{base}/v1/tasks/{id}/cancel"))
                .json(&body)
        }
    };
    let response = with_token(request)
        .send()
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["message"].as_str().unwrap_or("no error body");
        let reason = answer["reason"].as_str().unwrap_or("?");
        return Err(format!("{status} {reason}: {message}").into());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(())
}
