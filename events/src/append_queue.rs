//! The hand-over between appenders and a backend's single writer, which
//! commits whatever appends are waiting in one transaction (group commit).

use tokio::sync::{mpsc, oneshot};

use crate::append_checks::check_append;
use crate::envelope::NewEvent;
use crate::store::{AppendError, AppendResult, ExpectedRevision, StorageError};

/// One append waiting for the writer.
pub struct AppendRequest {
    pub stream: String,
    pub expected: ExpectedRevision,
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<Outcome>,
}

pub type Outcome = Result<AppendResult, AppendError>;

/// Checks the append, hands it to the writer and waits for its outcome.
pub async fn submit(
    writer: &mpsc::Sender<AppendRequest>,
    stream: &str,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Outcome {
    check_append(stream, &events)?;
    let (reply, outcome) = oneshot::channel();
    let request = AppendRequest {
        stream: stream.to_owned(),
        expected,
        events,
        reply,
    };
    let stopped = || AppendError::Storage(StorageError::new("the store's writer has stopped"));
    writer.send(request).await.map_err(|_| stopped())?;
    outcome.await.map_err(|_| stopped())?
}
