//! What the examples share: the server's address and a token.

use tasklog_client::Client;

/// A client of `TASKLOG_URL` (default `http://127.0.0.1:8080`) with
/// `TASKLOG_TOKEN`, or else the admin token a server's first start wrote to
/// `data/admin-token`.
pub fn client() -> Client {
    let url = std::env::var("TASKLOG_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = std::env::var("TASKLOG_TOKEN")
        .or_else(|_| std::fs::read_to_string("data/admin-token").map(|t| t.trim().to_owned()))
        .expect("set TASKLOG_TOKEN, or run from the directory of the server's data/");
    Client::new(&url, &token).expect("a usable URL and token")
}
