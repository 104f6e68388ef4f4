//! The shared store: the log in a PostgreSQL database, for several tasklog
//! nodes at once.
//!
//! Each node appends through one [`writer`] task that batches its appenders'
//! appends into transactions, which lock the log's head row so positions are
//! taken and committed in order across all nodes. A [`listener`] task turns
//! PostgreSQL notifications into head updates, which wake subscribers; reads
//! use a connection pool. The tables are in [`schema`].
//!
//! The URL is a libpq-style URL (`postgres://user:password@host:port/database`)
//! with one more optional parameter, `schema` (default `tasklog`): the schema
//! that holds tasklog's tables, created on first start.
//!
//! # Layout
//! - this module: [`PostgresStore`], the URL, the [`EventStore`] reads.
//! - `writer`: the per-node writer task (head row lock, group commit).
//! - `listener`: `LISTEN/NOTIFY` turned into head updates.
//! - `schema`: the versioned migrations, and reading rows back as events.
//! - [`read_models`]: the read models the nodes share, in the same schema.
//! - `generations`: new generations of them, for a rebuild beside serving nodes.
//! - [`testing`] (feature `testing`): a fresh schema per test.

#[cfg(any(test, feature = "testing"))]
pub mod testing;

mod generations;
mod listener;
mod read_models;
mod schema;
mod writer;

pub use generations::PostgresViewGenerations;
pub use read_models::PostgresReadModels;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{Client, NoTls};

use tasklog_events::append_queue::{self, AppendRequest};
use tasklog_events::envelope::{NewEvent, Position, RecordedEvent};
use tasklog_events::store::{
    AppendError, AppendResult, EventStore, EventStream, ExpectedRevision, ReadError, StorageError,
    StreamAppend,
};

/// The schema tasklog's tables live in unless the URL names another.
pub const DEFAULT_SCHEMA: &str = "tasklog";

/// How many read connections a node keeps at most.
const READ_CONNECTIONS: usize = 16;

/// An event store in a PostgreSQL schema. Cheap to clone; clones share the
/// writer, the listener and the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    schema: String,
    pool: Pool,
    appends: mpsc::Sender<AppendRequest>,
    head: watch::Receiver<Position>,
    _stop_listener: oneshot::Sender<()>,
}

/// How to reach the database: the connection settings (with the schema as the
/// search path) and the notification channel of this schema's log.
#[derive(Clone)]
pub(crate) struct Connect {
    config: tokio_postgres::Config,
    /// The URL's own options, before the ones tasklog adds.
    options: String,
    channel: String,
}

impl Connect {
    /// The settings for `url`, and the schema it names.
    fn from_url(url: &str) -> Result<(Connect, String), StorageError> {
        let (url, schema) = split_schema(url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StorageError::caused_by("reading the PostgreSQL URL", e))?;
        config.application_name("tasklog");
        let options = config.get_options().unwrap_or_default().to_owned();
        let connect = Connect {
            config,
            options,
            channel: format!("tasklog_{schema}"),
        }
        .on(&schema);
        Ok((connect, schema))
    }

    /// The same settings with `schema` as the search path.
    pub(crate) fn on(mut self, schema: &str) -> Connect {
        // Acknowledged appends must be on disk, whatever the server's default.
        // Statements are prepared once per connection, often while the log is
        // still empty; a plan made then (a scan of the whole table) must not
        // outlive it, so each execution is planned for the table as it is.
        self.config.options(format!(
            "{} -c search_path={schema} -c synchronous_commit=on \
             -c plan_cache_mode=force_custom_plan",
            self.options
        ));
        self
    }

    async fn connect(&self) -> Result<Client, StorageError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| StorageError::caused_by("connecting to PostgreSQL", e))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A client on `schema`, created or migrated to the latest version first.
    async fn migrated(&self, schema: &str) -> Result<Client, StorageError> {
        let mut client = self.connect().await?;
        schema::migrate(&mut client, schema)
            .await
            .map_err(|e| StorageError::caused_by(format!("migrating schema {schema}"), e))?;
        Ok(client)
    }

    /// A pool of up to `size` connections.
    fn pool(&self, size: usize) -> Result<Pool, StorageError> {
        let manager = Manager::from_config(
            self.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .build()
            .map_err(|e| StorageError::caused_by("making the connection pool", e))
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, creating or migrating the schema.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let (connect, schema) = Connect::from_url(url)?;
        let client = connect.migrated(&schema).await?;
        let head_position: i64 = client
            .query_one("SELECT position FROM log_head", &[])
            .await
            .map_err(|e| StorageError::caused_by("reading the head", e))?
            .get(0);
        drop(client);

        let pool = connect.pool(READ_CONNECTIONS)?;
        let (head_sender, head) = watch::channel(Position(head_position as u64));
        let stop_listener = listener::spawn(connect.clone(), head_sender.clone());
        let appends = writer::spawn(connect, head_sender);
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                schema,
                pool,
                appends,
                head,
                _stop_listener: stop_listener,
            }),
        })
    }

    /// The schema that holds this store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The bytes the log takes in the database, indexes included.
    pub async fn disk_bytes(&self) -> Result<u64, ReadError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT pg_total_relation_size('events') + pg_total_relation_size('log_head')",
                &[],
            )
            .await
            .map_err(|e| ReadError::Storage(StorageError::caused_by("measuring the log", e)))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Deletes the schema and the whole log in it. For benchmarks, which make
    /// a schema of their own; never called by the server.
    pub async fn drop_schema(self) -> Result<(), StorageError> {
        let client = self.client().await.map_err(|ReadError::Storage(e)| e)?;
        drop_schemas(&client, &self.inner.schema)
            .await
            .map_err(|e| StorageError::caused_by("dropping the schema", e))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ReadError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| ReadError::Storage(StorageError::caused_by("connecting to PostgreSQL", e)))
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let failed = |e| ReadError::Storage(StorageError::caused_by("reading the log", e));
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(failed)?;
        let rows = client.query(&statement, params).await.map_err(failed)?;
        rows.iter()
            .map(|row| schema::event_from_row(row).map_err(ReadError::Storage))
            .collect()
    }
}

/// Takes tasklog's own `schema` parameter out of the URL.
fn split_schema(url: &str) -> Result<(String, String), StorageError> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut schema = DEFAULT_SCHEMA.to_owned();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = name.to_owned(),
            None => rest.push(pair),
        }
    }
    if !schema::is_plain_identifier(&schema) {
        return Err(StorageError::new(format!(
            "schema {schema:?} must be lower-case letters, digits and underscores"
        )));
    }
    if read_models::is_generation_schema(&schema) {
        return Err(StorageError::new(format!(
            "schema {schema:?} ends like the name of another store's generation of views \
             (`<schema>_views_<n>`): choose another name"
        )));
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

/// Drops `schema` and the schemas of its views' generations.
pub(crate) async fn drop_schemas(
    client: &Client,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    let generations = read_models::generation_numbers(client, schema).await?;
    for number in generations.into_iter().chain([0]) {
        let name = read_models::generation_schema(schema, number);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await?;
    }
    Ok(())
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, AppendError> {
        append_queue::submit(&self.inner.appends, stream, expected, events).await
    }

    async fn append_many(
        &self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<AppendResult>, AppendError> {
        append_queue::submit_many(&self.inner.appends, appends).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let sql = format!(
            "SELECT {} FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3",
            schema::EVENT_COLUMNS
        );
        self.query_events(&sql, &[&stream, &(from as i64), &sql_limit(limit)])
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let sql = format!(
            "SELECT {} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            schema::EVENT_COLUMNS
        );
        self.query_events(&sql, &[&(after.0 as i64), &sql_limit(limit)])
            .await
    }

    fn subscribe_all(&self, after: Position) -> EventStream {
        tasklog_events::subscription::follow(self.clone(), after)
    }

    async fn head(&self) -> Result<Position, ReadError> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT position FROM log_head", &[])
            .await
            .map_err(|e| ReadError::Storage(StorageError::caused_by("reading the head", e)))?;
        Ok(Position(row.get::<_, i64>(0) as u64))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.clone()
    }
}

#[cfg(test)]
mod tests;
