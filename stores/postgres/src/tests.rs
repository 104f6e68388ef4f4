use std::time::Duration;

use futures::StreamExt;
use tokio::sync::oneshot;

use super::writer::{write_batch, Statements, Wrapped};
use super::{Connect, PostgresStore};
use crate::testing::{fresh_store, TestSchema};
use tasklog_events::append_queue::AppendRequest;
use tasklog_events::envelope::{Position, RecordedEvent};
use tasklog_events::store::{EventStore, ExpectedRevision, StreamAppend};
use tasklog_events::verify;
use tasklog_store_testkit::event;

tasklog_store_testkit::conformance_tests!(fresh_store());

/// A connection of a writer's own, to drive `write_batch` by hand.
async fn raw_writer(url: &str) -> (Connect, tokio_postgres::Client, Statements) {
    let (connect, _) = Connect::from_url(url).unwrap();
    let client = connect.connect().await.unwrap();
    let statements = Statements::prepare(&client).await.unwrap();
    (connect, client, statements)
}

async fn next(subscription: &mut tasklog_events::store::EventStream) -> RecordedEvent {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("an event within 10 s")
        .expect("the subscription goes on")
        .expect("no read error")
}

/// The classic gap: a transaction takes position N and commits late, while
/// appends after it commit early; a subscriber that read N+1 would never look
/// at N again. Here a writer on a raw connection takes the next position and
/// holds it uncommitted while two nodes append; the subscriber must see
/// nothing until it commits, and then every event in position order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_committed_late_is_never_skipped() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    let node_a = PostgresStore::connect(&url).await.unwrap();
    let node_b = PostgresStore::connect(&url).await.unwrap();
    node_a
        .append("task-0", ExpectedRevision::Any, vec![event(0)])
        .await
        .unwrap();
    let mut subscription = node_b.subscribe_all(Position::START);
    assert_eq!(next(&mut subscription).await.position, Position(1));

    // The slow writer takes position 2 and does not commit yet.
    let (connect, mut client, statements) = raw_writer(&url).await;
    let tx = client.transaction().await.unwrap();
    let (reply, _) = oneshot::channel();
    let slow = AppendRequest {
        appends: vec![StreamAppend {
            stream: "task-slow".into(),
            expected: ExpectedRevision::NoStream,
            events: vec![event(1)],
        }],
        reply,
    };
    let (outcomes, head) = write_batch(
        &tx,
        &statements,
        &connect.channel,
        &[slow],
        Wrapped::ByCaller,
    )
    .await
    .unwrap();
    assert_eq!(head, Position(2));
    assert!(outcomes[0].is_ok());

    // Both nodes append meanwhile; their appends wait for the slow one.
    let appends: Vec<_> = (0..8u64)
        .map(|n| {
            let node = if n % 2 == 0 { &node_a } else { &node_b }.clone();
            tokio::spawn(async move {
                node.append(&format!("task-{n}"), ExpectedRevision::Any, vec![event(n)])
                    .await
                    .unwrap()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        node_b.read_all(Position(1), 100).await.unwrap().is_empty(),
        "nothing after position 1 is visible while position 2 is uncommitted"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), subscription.next())
            .await
            .is_err(),
        "the subscriber waits for position 2"
    );
    assert!(appends.iter().all(|append| !append.is_finished()));

    tx.commit().await.unwrap();
    for append in appends {
        append.await.unwrap();
    }
    let mut positions = Vec::new();
    for _ in 0..9 {
        positions.push(next(&mut subscription).await.position);
    }
    assert_eq!(positions, (2..=10).map(Position).collect::<Vec<_>>());
    verify(&node_a).await.expect("the chain holds across nodes");
}

/// Two nodes append from many tasks at once while a subscriber on a third
/// follows live: it sees every event exactly once, in log order, and the log's
/// positions are dense and its hash chain whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_append_into_one_order() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    let nodes = [
        PostgresStore::connect(&url).await.unwrap(),
        PostgresStore::connect(&url).await.unwrap(),
    ];
    let observer = PostgresStore::connect(&url).await.unwrap();
    let mut subscription = observer.subscribe_all(Position::START);
    const APPENDERS: u64 = 16;
    const APPENDS: u64 = 40;
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|appender| {
            let node = nodes[appender as usize % 2].clone();
            tokio::spawn(async move {
                for n in 0..APPENDS {
                    let stream = format!("task-{}", (appender * APPENDS + n) % 7);
                    node.append(&stream, ExpectedRevision::Any, vec![event(n), event(n)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let total = (APPENDERS * APPENDS * 2) as usize;
    let mut seen = Vec::with_capacity(total);
    while seen.len() < total {
        seen.push(next(&mut subscription).await);
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    let positions: Vec<Position> = seen.iter().map(|e| e.position).collect();
    assert_eq!(
        positions,
        (1..=total as u64).map(Position).collect::<Vec<_>>()
    );
    let log = observer.read_all(Position::START, total + 1).await.unwrap();
    assert_eq!(log, seen);
    let report = verify(&observer).await.unwrap();
    assert_eq!(report.events, total as u64);
}

/// One batch holds a retry of an old append to a stream and a new append to
/// it: the retry answers with its old revision, and the new append still sees
/// the stream at its newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_in_a_batch_does_not_set_its_stream_back() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.store_url();
    let store = PostgresStore::connect(&url).await.unwrap();
    let first = vec![event(0), event(1)];
    store
        .append("task-a", ExpectedRevision::NoStream, first.clone())
        .await
        .unwrap();
    store
        .append("task-a", ExpectedRevision::Exact(1), vec![event(2)])
        .await
        .unwrap();

    let (connect, mut client, statements) = raw_writer(&url).await;
    let tx = client.transaction().await.unwrap();
    let request = |expected, events| AppendRequest {
        appends: vec![StreamAppend {
            stream: "task-a".into(),
            expected,
            events,
        }],
        reply: oneshot::channel().0,
    };
    let batch = [
        request(ExpectedRevision::NoStream, first),
        request(ExpectedRevision::Exact(2), vec![event(3)]),
    ];
    let (outcomes, _) = write_batch(
        &tx,
        &statements,
        &connect.channel,
        &batch,
        Wrapped::ByCaller,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        outcomes[0].as_ref().unwrap()[0].revision,
        1,
        "the retry's own answer"
    );
    assert_eq!(
        outcomes[1].as_ref().unwrap()[0].revision,
        3,
        "the new append follows revision 2"
    );
    verify(&store).await.unwrap();
}

#[test]
fn a_store_schema_cannot_be_named_like_a_generation_of_another_stores_views() {
    assert!(Connect::from_url("postgres://h/db?schema=tasks").is_ok());
    assert!(Connect::from_url("postgres://h/db?schema=tasks_views").is_ok());
    assert!(Connect::from_url("postgres://h/db?schema=tasks_views_x1").is_ok());
    let refused = Connect::from_url("postgres://h/db?schema=tasks_views_12").err();
    assert!(refused.unwrap().to_string().contains("generation"));
}
