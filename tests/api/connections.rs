//! What a server takes from its clients at most, over raw sockets: slow and
//! idle connections are closed, connections past the cap are refused with
//! 503, and a body that does not arrive in time gets 408.

use std::time::{Duration, Instant};

use tasklog::http::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestServer, ADMIN};

fn limits(header_read_timeout: Duration) -> Limits {
    Limits {
        header_read_timeout,
        ..Limits::default()
    }
}

async fn connect(api: &TestServer) -> TcpStream {
    TcpStream::connect(api.server.addr).await.unwrap()
}

/// A connection that has sent `request` (or the start of one).
async fn sent(api: &TestServer, request: &[u8]) -> TcpStream {
    let mut stream = connect(api).await;
    stream.write_all(request).await.unwrap();
    stream
}

/// The head of an event stream request with the admin token.
fn stream_request() -> String {
    format!(
        "GET /v1/events/stream HTTP/1.1\r\nhost: tasklog\r\nauthorization: Bearer {ADMIN}\r\n\r\n"
    )
}

/// Everything the server sends until it closes the connection, or until
/// `within` runs out (then `None`: still open).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    });
    read.await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn a_client_that_sends_its_request_head_a_byte_at_a_time_is_closed() {
    let api = TestServer::start_with(limits(Duration::from_secs(1))).await;
    let mut stream = sent(&api, b"GET /healthz HTTP/1.1\r\n").await;
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        if stream.write_all(b"x").await.is_err() {
            closed = true;
            break;
        }
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut byte));
        if let Ok(Ok(0) | Err(_)) = read.await {
            closed = true;
            break;
        }
    }
    assert!(closed, "a slow client was still connected after 6 s");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let api = TestServer::start_with(limits(Duration::from_secs(1))).await;
    let mut stream = sent(&api, b"GET /healthz HTTP/1.1\r\nhost: tasklog\r\n\r\n").await;
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("the idle connection was still open after 5 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_event_stream_outlives_the_header_timeout() {
    let api = TestServer::start_with(limits(Duration::from_secs(1))).await;
    let mut stream = sent(&api, stream_request().as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let id = api.create("late", "email", 1).await;
    let mut received = String::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !received.contains(&id) && Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("the stream went quiet")
            .unwrap();
        assert!(n > 0, "the stream was closed: {received}");
        received.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    assert!(received.contains(&id), "{received}");
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_with_503_until_one_closes() {
    let api = TestServer::start_with(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let first = connect(&api).await;
    let _second = connect(&api).await;
    // The accept loop takes them in order: give it a moment to count both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect(&api).await;
    let refusal = read_until_closed(&mut third, Duration::from_secs(5))
        .await
        .expect("the connection past the cap was not closed");
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(refusal.contains("retry-after: 1"), "{refusal}");
    let body = &refusal[refusal.find("\r\n\r\n").unwrap() + 4..];
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], 503);
    assert_eq!(body["reason"], "too_many_connections");

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&api).await;
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: tasklog\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut again, Duration::from_secs(5))
            .await
            .unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_writes_nothing() {
    let api = TestServer::start_with(Limits {
        body_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut stream = connect(&api).await;
    let head = format!(
        "POST /v1/tasks HTTP/1.1\r\nhost: tasklog\r\nauthorization: Bearer {ADMIN}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"name\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let started = Instant::now();
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("no answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"reason\":\"body_timeout\""), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let listed = api.get("/v1/tasks").await;
    assert_eq!(listed.body["tasks"], serde_json::json!([]));
}

#[tokio::test]
async fn a_stop_ends_event_streams_instead_of_waiting_them_out() {
    let api = TestServer::start().await;
    let mut stream = sent(&api, stream_request().as_bytes()).await;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    let started = Instant::now();
    let TestServer { server, .. } = api;
    server.stop().await.unwrap();
    // Well within the default shutdown grace of 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    read_until_closed(&mut stream, Duration::from_secs(2))
        .await
        .expect("the stream was still open after the server stopped");
}
