//! `tasklog task create|get|list|retry|cancel`: a server's tasks from the
//! terminal, through `tasklog-client` (`--url`, `--token`). Each prints the
//! server's answer as JSON; an error answer is the command's error, with its
//! message.

use std::io::Write;

use chrono::{Duration, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Map, Value};
use tasklog_client::api::body::{JsonObject, Text, Time};
use tasklog_client::api::tasks::{CancelRequest, CreateTask, ListQuery, RetryRequest};
use tasklog_client::{Client, Error};

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
    let client = Client::new(&args.url, args.token.as_deref().unwrap_or(""))?;
    let answer = match args.command {
        TaskCommand::Create(create) => {
            let data: Map<String, Value> = serde_json::from_str(&create.data)
                .map_err(|e| format!("--data is not a JSON object: {e}"))?;
            let now = Utc::now();
            let duration = |d: std::time::Duration| Duration::from_std(d).unwrap_or(Duration::MAX);
            let available = now + create.available_in.map_or(Duration::zero(), duration);
            let body = CreateTask {
                name: Text(create.name),
                task_type: Text(create.task_type),
                priority: create.priority,
                data: JsonObject(data),
                available_time: Time(available),
                expiration_time: Time(available + duration(create.expires_in)),
                labels: None,
                tags: None,
                retry: None,
            };
            match create.idempotency_key {
                Some(key) => json(client.create_task_once(&key, &body).await),
                None => json(client.create_task(&body).await),
            }
        }
        TaskCommand::Get { id } => json(client.get_task(&id).await),
        TaskCommand::List(list) => {
            let query = ListQuery {
                state: list.state,
                task_type: list.task_type,
                label_selector: list.label_selector,
                limit: Some(list.limit as usize),
                cursor: list.cursor,
                ..ListQuery::default()
            };
            json(client.list_tasks(&query).await)
        }
        TaskCommand::Retry { id } => {
            let body = RetryRequest {
                expiration_time: None,
            };
            json(client.retry(&id, &body).await)
        }
        TaskCommand::Cancel { id, reason } => {
            let body = CancelRequest {
                reason: reason.map(Text),
            };
            json(client.cancel(&id, &body).await)
        }
    };
    let answer = answer.map_err(|error| match error {
        Error::Api { status, body } => format!("{status} {}: {}", body.reason, body.message),
        other => format!("{}: {other}", args.url),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(())
}

/// The answer as JSON, to print.
fn json<T: Serialize>(answer: Result<T, Error>) -> Result<Value, Error> {
    answer.map(|a| serde_json::to_value(a).expect("answers serialise"))
}
