//! The accept loop: how many connections are open at once, how long one may
//! take to send a request, and how a shutdown drains them.
//!
//! A connection past the cap gets a 503 with `Retry-After` (once its request
//! head is in, or after a second) and is closed; past [`MAX_REFUSING`] such
//! connections at once, a new one is closed without an answer, so a flood of
//! sockets cannot take the file descriptors the open ones need. A connection that has not sent a whole request head within the header
//! timeout, counted from its opening and again from each response, is closed:
//! that reaps clients that send a byte now and then, and idle keep-alive
//! connections alike. Streaming responses (SSE) are not waiting for a request,
//! so the timeout leaves them be; their keep-alive comments keep proxies open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::error::ApiError;

/// What one server takes from its clients at most.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once; the next one is refused with 503.
    pub max_connections: usize,
    /// How long a connection may take to send a request head, from its
    /// opening or its last response.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive (408 past it).
    pub body_read_timeout: Duration,
    /// How long a shutdown waits for requests and streams in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then
/// lets what is in flight finish for up to the shutdown grace.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1.1 only: hyper has no idle timeout for HTTP/2, so an HTTP/2
    // connection without TLS could hold its place under the cap for ever.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(refusing) = refusing.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusing);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // A timed-out or reset connection is the client's business.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace; closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Connections past the cap answered at once; more are closed unanswered.
pub const MAX_REFUSING: usize = 64;

/// Answers a connection past the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    // Wait (briefly) for the request's head first: an HTTP client reads an
    // answer that comes before its request as a broken connection, not as
    // the 503 it can retry after `Retry-After`.
    let mut head = Vec::new();
    let read_head = async {
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut buffer).await {
                Ok(n) if n > 0 => head.extend_from_slice(&buffer[..n]),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read_head).await;
    let (status, retry_after, body) = ApiError::TooManyConnections.parts();
    let body = serde_json::to_string(&body).expect("error bodies serialise");
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         retry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        retry_after.unwrap_or(1),
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read what the client sent before closing: closing with unread bytes
    // would reset the connection, and a reset can discard the answer.
    let drain = async {
        let mut buffer = [0u8; 1024];
        while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}
