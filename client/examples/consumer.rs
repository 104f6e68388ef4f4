//! An analytics consumer: follows the event stream from where its durable
//! consumer position says, counts events by type, and acknowledges what it
//! has counted, so a restart goes on from there:
//! `cargo run -p tasklog-client --example consumer`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tasklog_client::api::consumers::StreamQuery;

const NAME: &str = "example-analytics";

#[tokio::main]
async fn main() -> Result<(), tasklog_client::Error> {
    let client = common::client();
    let query = StreamQuery {
        consumer: Some(NAME.into()),
        ..StreamQuery::default()
    };
    let mut events = Box::pin(client.stream(query));
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let (mut counted, mut acknowledged) = (None, None);
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { return Ok(()) };
                let event = event?;
                *counts.entry(event.event_type.to_string()).or_default() += 1;
                counted = Some(event.tasklogposition);
            }
            _ = every_second.tick() => {
                if let Some(position) = counted.filter(|p| Some(*p) != acknowledged) {
                    client.acknowledge(NAME, position).await?;
                    acknowledged = Some(position);
                    println!("acknowledged {position}: {counts:?}");
                }
            }
        }
    }
}
