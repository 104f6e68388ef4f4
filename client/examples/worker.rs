//! Runs `email` tasks, four at a time, until Ctrl-C:
//! `cargo run -p tasklog-client --example worker`.

mod common;

use std::time::Duration;

use serde_json::json;
use tasklog_client::api::tasks::Task;
use tasklog_client::Worker;

#[tokio::main]
async fn main() -> Result<(), tasklog_client::Error> {
    let stopped = Worker::new(common::client(), ["email"])
        .name("example-mailer")
        .concurrency(4)
        .lease(Duration::from_secs(30))
        .run(send, async {
            tokio::signal::ctrl_c().await.ok();
            eprintln!("stopping: finishing the mails in flight");
        })
        .await?;
    eprintln!("{} tasks finished", stopped.finished);
    Ok(())
}

/// The handler: its `Ok` completes the task with that result, its `Err`
/// fails it with that error.
async fn send(task: Task) -> Result<Option<serde_json::Value>, String> {
    let data = task.data.to_map();
    let to = data
        .get("to")
        .and_then(|to| to.as_str())
        .ok_or("no address")?;
    tokio::time::sleep(Duration::from_millis(200)).await; // the mail server's time
    println!("sent {} to {to}", task.name);
    Ok(Some(json!({"sentTo": to})))
}
