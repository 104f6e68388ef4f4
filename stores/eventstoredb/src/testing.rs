//! EventStoreDB / KurrentDB for tests: a server named by
//! `TASKLOG_TEST_ESDB_URL` (e.g. `esdb://localhost:2113?tls=false`), each test
//! in a namespace of its own. Without the variable the tests say loudly that
//! they were skipped: no server is faked.

use std::sync::Arc;

use crate::EventStoreDbStore;
use tasklog_events::store::EventStore;

/// A `--store` URL for a new, empty namespace on the test server, or `None`
/// (after saying so) when no server is configured.
pub fn fresh_store_url() -> Option<String> {
    let Ok(url) = std::env::var("TASKLOG_TEST_ESDB_URL") else {
        eprintln!(
            "SKIPPED: TASKLOG_TEST_ESDB_URL is not set, so this EventStoreDB / KurrentDB \
             test did not run (see the README to run it against a server)"
        );
        return None;
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    let namespace = format!("test{}.", uuid::Uuid::new_v4().simple());
    Some(format!("{url}{separator}namespace={namespace}"))
}

/// A fresh store for the conformance suite.
pub async fn fresh_store() -> Option<(Arc<dyn EventStore>, ())> {
    let url = fresh_store_url()?;
    let store = EventStoreDbStore::connect(&url)
        .await
        .expect("connecting to the EventStoreDB test server");
    Some((Arc::new(store), ()))
}
