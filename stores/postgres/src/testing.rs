//! Fresh PostgreSQL schemas for tests, one per test, dropped afterwards.
//!
//! Tests reach the database at `TASKLOG_TEST_POSTGRES_URL` (default: the
//! PostgreSQL that CI runs, below). When it cannot be reached they fail if `CI`
//! is set, and otherwise say loudly that they were skipped.

use std::sync::Arc;

use crate::PostgresStore;
use tasklog_events::store::EventStore;

pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The database tests use.
pub fn test_url() -> String {
    std::env::var("TASKLOG_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

/// A schema of one test's own, dropped with the guard.
pub struct TestSchema {
    url: String,
    pub name: String,
}

impl TestSchema {
    /// A new, empty schema name in the test database, or `None` (after saying
    /// so) when the database cannot be reached outside CI.
    pub async fn create() -> Option<TestSchema> {
        let url = test_url();
        let reachable = async {
            let mut config: tokio_postgres::Config = url.parse()?;
            config.connect_timeout(std::time::Duration::from_secs(5));
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            drop(connection);
            drop(client);
            Ok::<_, tokio_postgres::Error>(())
        };
        if let Err(error) = reachable.await {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL at {url} cannot be reached and CI is set: {error}");
            }
            eprintln!(
                "SKIPPED: PostgreSQL at {url} cannot be reached ({error}); \
                 set TASKLOG_TEST_POSTGRES_URL to run the PostgreSQL tests"
            );
            return None;
        }
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        Some(TestSchema { url, name })
    }

    /// The `--store` URL of a store in this schema.
    pub fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={}", self.url, self.name)
    }

    /// A connection to the test database, for what a test checks in SQL.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client
    }

    /// The generation of the read models the nodes use (0 until a rebuild
    /// beside them was promoted).
    pub async fn views_generation(&self) -> i32 {
        let sql = format!("SELECT generation FROM {}.views_generation", self.name);
        self.client()
            .await
            .query_one(&sql, &[])
            .await
            .expect("reading the views' generation")
            .get(0)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop may run inside a runtime, which cannot block on another: use a
        // thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(connection);
                crate::drop_schemas(&client, &name)
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("dropping test schema {}: {error}", self.name);
        }
    }
}

/// A fresh store in a schema of its own, for the conformance suite.
pub async fn fresh_store() -> Option<(Arc<dyn EventStore>, TestSchema)> {
    let schema = TestSchema::create().await?;
    let store = PostgresStore::connect(&schema.store_url())
        .await
        .expect("connecting to the test database");
    Some((Arc::new(store), schema))
}
