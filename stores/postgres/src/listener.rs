//! Follows the head of the shared log: every append's transaction notifies
//! the new head on commit, and this task, one per store, moves the head watch
//! on. Notifications only wake subscribers; they read the log itself, so a
//! lost notification (a dropped connection, say) delays them, never skips.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

use tasklog_events::envelope::Position;
use tasklog_events::subscription::advance_head;

/// How long to wait before connecting again after the connection is lost.
const RECONNECT: Duration = Duration::from_secs(1);

/// Starts the listener. It stops when the returned sender is dropped.
pub(super) fn spawn(
    config: super::Connect,
    head: watch::Sender<Position>,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            _ = listen_forever(&config, &head) => {}
        }
    });
    stop
}

async fn listen_forever(config: &super::Connect, head: &watch::Sender<Position>) {
    loop {
        if let Err(error) = listen(config, head).await {
            tracing::warn!(%error, "listening for new events failed; connecting again");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Listens until the connection is lost.
async fn listen(
    config: &super::Connect,
    head: &watch::Sender<Position>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.config.connect(tokio_postgres::NoTls).await?;
    // The connection must be polled for the client's queries to run, so one
    // task drives it and hands the notifications over.
    let (notifications, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = notifications.send(Ok(n.payload().to_owned()));
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = notifications.send(Err(error));
                    return;
                }
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN \"{}\"", config.channel))
            .await?;
        // Appends committed while no one was listening.
        let position: i64 = client
            .query_one("SELECT position FROM log_head", &[])
            .await?
            .get(0);
        advance_head(head, Position(position as u64));
        while let Some(notification) = received.recv().await {
            if let Ok(position) = notification?.parse() {
                advance_head(head, Position(position));
            }
        }
        Ok(())
    }
    .await;
    driver.abort();
    result
}
