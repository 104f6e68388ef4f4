//! Creates tasks: `cargo run -p tasklog-client --example producer -- 100`
//! makes 100 `email` tasks in one batch, available now, expiring in a day.

mod common;

use chrono::Utc;
use serde_json::json;
use tasklog_client::api::body::{JsonObject, Text, Time};
use tasklog_client::api::tasks::{CreateTask, CreateTasks};

#[tokio::main]
async fn main() -> Result<(), tasklog_client::Error> {
    let client = common::client();
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let now = Utc::now();
    let tasks = (0..count.clamp(1, 1000))
        .map(|n| CreateTask {
            name: Text(format!("welcome mail {n}")),
            task_type: Text("email".into()),
            priority: 1,
            data: JsonObject(
                json!({"to": format!("user{n}@example.com")})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            available_time: Time(now),
            expiration_time: Time(now + chrono::Duration::days(1)),
            labels: None,
            tags: None,
            retry: None,
        })
        .collect();
    let made = client.create_tasks(&CreateTasks { tasks }).await?;
    for task in &made {
        println!("{} {} {}", task.id, task.state, task.name);
    }
    eprintln!("{} tasks made", made.len());
    Ok(())
}
