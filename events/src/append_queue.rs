//! The hand-over between appenders and a backend's single writer, which
//! commits whatever appends are waiting in one transaction (group commit).

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use crate::append_checks::check_append;
use crate::envelope::NewEvent;
use crate::store::{AppendError, AppendResult, ExpectedRevision, StorageError, StreamAppend};

/// One append waiting for the writer: to one stream, or to several all or none.
pub struct AppendRequest {
    pub appends: Vec<StreamAppend>,
    pub reply: oneshot::Sender<Outcome>,
}

/// Each part's result, in the order of the request's appends.
pub type Outcome = Result<Vec<AppendResult>, AppendError>;

/// Checks the append to one stream, hands it to the writer and waits for its outcome.
pub async fn submit(
    writer: &mpsc::Sender<AppendRequest>,
    stream: &str,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Result<AppendResult, AppendError> {
    let append = StreamAppend {
        stream: stream.to_owned(),
        expected,
        events,
    };
    let mut results = submit_many(writer, vec![append]).await?;
    Ok(results.pop().expect("one result for one append"))
}

/// Checks the appends to several streams, hands them to the writer as one
/// and waits for their outcome.
pub async fn submit_many(
    writer: &mpsc::Sender<AppendRequest>,
    appends: Vec<StreamAppend>,
) -> Outcome {
    if appends.is_empty() {
        return Err(AppendError::Invalid(
            "an append needs at least one stream".into(),
        ));
    }
    for append in &appends {
        check_append(&append.stream, &append.events)?;
    }
    if appends.len() > 1 {
        let mut ids = HashSet::new();
        let mut events = appends.iter().flat_map(|a| &a.events);
        if let Some(event) = events.find(|event| !ids.insert(event.id)) {
            return Err(AppendError::Invalid(format!(
                "event id {} appears twice",
                event.id
            )));
        }
    }
    let (reply, outcome) = oneshot::channel();
    let request = AppendRequest { appends, reply };
    let stopped = || AppendError::Storage(StorageError::new("the store's writer has stopped"));
    writer.send(request).await.map_err(|_| stopped())?;
    outcome.await.map_err(|_| stopped())?
}
