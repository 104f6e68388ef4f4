//! Generations of the shared read models, for a rebuild beside serving nodes.
//!
//! Generation 0 is the tables of migration 2 in the store's schema; a
//! rebuild fills generation n in the schema `<schema>_views_<n>` while every
//! node serves from the current one. Promoting it moves `views_generation`
//! while holding the current generation's position row, the lock every
//! node's commit takes: a commit that gets the lock after the move sees it
//! and goes again into the new generation, and so does a read that finds
//! the old tables gone. One rebuild at a time across the nodes: the
//! rebuilding node holds an advisory lock until it promotes or gives up.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_postgres::Client;

use tasklog_events::StorageError;
use tasklog_projections::{ReadModelError, ReadModelTables, ViewGenerations};

use crate::read_models::{generation_numbers, generation_schema, named_generation};
use crate::schema::READ_MODEL_TABLES;
use crate::{Connect, PostgresReadModels};

/// How long a promotion waits for the new generation to store what the
/// nodes stored into the current one meanwhile: first without locks, then
/// holding the current one's position (every node's commits wait).
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);
const LOCKED_CATCH_UP_WITHIN: Duration = Duration::from_secs(2);

/// The longest a schema name may be (PostgreSQL cuts longer ones short).
const MAX_IDENTIFIER: usize = 63;

/// Makes, promotes and discards generations of one schema's read models.
pub struct PostgresViewGenerations {
    connect: Connect,
    schema: String,
    building: Mutex<Option<Building>>,
}

/// The generation a rebuild on this node is filling.
struct Building {
    number: i32,
    tables: PostgresReadModels,
    /// A connection of its own, holding the rebuild's advisory lock.
    lock: Client,
}

impl PostgresViewGenerations {
    /// For the store at `url`; connects only when a rebuild starts.
    pub fn new(url: &str) -> Result<Self, StorageError> {
        let (connect, schema) = Connect::from_url(url)?;
        Ok(PostgresViewGenerations {
            connect,
            schema,
            building: Mutex::new(None),
        })
    }

    fn take_building(&self) -> Option<Building> {
        self.building.lock().expect("building generation").take()
    }

    /// Empty tables of the next generation, with the rebuild lock held on
    /// `lock`; leftovers of rebuilds that stopped midway are dropped first.
    async fn make_next(&self, lock: &Client) -> Result<(i32, PostgresReadModels), StorageError> {
        let named = named_generation(lock, &self.schema)
            .await
            .map_err(|e| StorageError::caused_by("reading the views' generation", e))?;
        let generations = generation_numbers(lock, &self.schema)
            .await
            .map_err(|e| StorageError::caused_by("listing the views' generations", e))?;
        for leftover in generations.into_iter().chain([0]) {
            if leftover != named {
                drop_generation(lock, &self.schema, leftover).await?;
            }
        }
        let number: i32 = lock
            .query_one(
                &format!(
                    "UPDATE {}.views_generation SET last_made = last_made + 1 RETURNING last_made",
                    self.schema
                ),
                &[],
            )
            .await
            .map_err(|e| StorageError::caused_by("numbering the views' generation", e))?
            .get(0);
        let name = generation_schema(&self.schema, number);
        if name.len() > MAX_IDENTIFIER {
            return Err(StorageError::new(format!(
                "the schema name {:?} is too long for a rebuild beside serving nodes: \
                 its generations' schemas ({name}) need at most {MAX_IDENTIFIER} characters",
                self.schema
            )));
        }
        lock.batch_execute(&format!(
            "CREATE SCHEMA {name}; SET search_path TO {name}; {READ_MODEL_TABLES}; \
             SET search_path TO {}",
            self.schema
        ))
        .await
        .map_err(|e| StorageError::caused_by(format!("creating the schema {name}"), e))?;
        let tables =
            PostgresReadModels::on(self.connect.clone(), self.schema.clone(), number, false)?;
        Ok((number, tables))
    }

    /// How many positions the new generation's stored rows are behind the
    /// current one's.
    async fn behind(
        &self,
        client: &impl tokio_postgres::GenericClient,
        new_position: &str,
        current_position: &str,
    ) -> Result<i64, StorageError> {
        let failed = |e| StorageError::caused_by("comparing the views' positions", e);
        let current: i64 = client
            .query_one(current_position, &[])
            .await
            .map_err(failed)?
            .get(0);
        let new: i64 = client
            .query_one(new_position, &[])
            .await
            .map_err(failed)?
            .get(0);
        Ok((current - new).max(0))
    }

    /// Names `building` the generation the nodes use, once it has stored at
    /// least what the current one has, and drops the current one.
    async fn promote_building(&self, building: &mut Building) -> Result<(), StorageError> {
        let failed = |e| StorageError::caused_by("promoting the rebuilt views", e);
        let schema = &self.schema;
        let position_of = |number| {
            format!(
                "SELECT position FROM {}.read_model",
                generation_schema(schema, number)
            )
        };
        let current = named_generation(&building.lock, schema)
            .await
            .map_err(failed)?;
        // Close to the current generation first, without holding anyone up.
        let new_position = position_of(building.number);
        let current_position = position_of(current);
        let deadline = Instant::now() + CATCH_UP_WITHIN;
        while self
            .behind(&building.lock, &new_position, &current_position)
            .await?
            > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tx = building.lock.transaction().await.map_err(failed)?;
        let locked: i32 = tx
            .query_one(
                &format!("SELECT generation FROM {schema}.views_generation FOR UPDATE"),
                &[],
            )
            .await
            .map_err(failed)?
            .get(0);
        if locked != current {
            return Err(StorageError::new(format!(
                "the views moved to generation {locked} during the rebuild"
            )));
        }
        // Held until the commit: no node stores into the current generation
        // from here on, and each one's next commit sees the move. The new
        // generation's rows are stored without it, by this node's runner.
        tx.execute(&format!("{current_position} FOR UPDATE"), &[])
            .await
            .map_err(failed)?;
        let deadline = Instant::now() + LOCKED_CATCH_UP_WITHIN;
        loop {
            let behind = self.behind(&tx, &new_position, &current_position).await?;
            if behind == 0 {
                break;
            }
            if Instant::now() >= deadline {
                return Err(StorageError::new(format!(
                    "the rebuilt views stayed {behind} positions behind the live ones"
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.execute(
            &format!("UPDATE {schema}.views_generation SET generation = $1"),
            &[&building.number],
        )
        .await
        .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        building.tables.follows.store(true, Ordering::Relaxed);
        tracing::info!(
            generation = building.number,
            "the rebuilt read models are the ones every node uses"
        );
        // Nodes still reading the old tables find them gone and move too.
        if let Err(error) = drop_generation(&building.lock, schema, current).await {
            tracing::warn!(%error, generation = current,
                "the replaced read models could not be dropped; the next rebuild drops them");
        }
        Ok(())
    }
}

#[async_trait]
impl ViewGenerations for PostgresViewGenerations {
    async fn next(&self) -> Result<Option<std::sync::Arc<dyn ReadModelTables>>, ReadModelError> {
        let failed = |e: StorageError| ReadModelError(e.to_string());
        let lock = self.connect.connect().await.map_err(failed)?;
        let locked: bool = lock
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('tasklog rebuild ' || $1::text))",
                &[&self.schema],
            )
            .await
            .map_err(|e| ReadModelError(format!("taking the rebuild lock: {e}")))?
            .get(0);
        if !locked {
            return Ok(None);
        }
        let (number, tables) = self.make_next(&lock).await.map_err(failed)?;
        *self.building.lock().expect("building generation") = Some(Building {
            number,
            tables: tables.clone(),
            lock,
        });
        Ok(Some(std::sync::Arc::new(tables)))
    }

    async fn promote(&self) -> Result<(), ReadModelError> {
        let mut building = self
            .take_building()
            .ok_or_else(|| ReadModelError("no new generation of the views to promote".into()))?;
        let promoted = self.promote_building(&mut building).await;
        // Promoted or not, the tables now go where the nodes go.
        building.tables.follows.store(true, Ordering::Relaxed);
        promoted.map_err(|e| ReadModelError(e.to_string()))
    }

    async fn discard(&self) {
        if let Some(building) = self.take_building() {
            building.tables.follows.store(true, Ordering::Relaxed);
            if let Err(error) = drop_generation(&building.lock, &self.schema, building.number).await
            {
                tracing::warn!(%error, "the unfinished rebuilt views could not be dropped; the next rebuild drops them");
            }
        }
    }
}

/// Drops generation `number`'s tables (generation 0's are in the store's
/// own schema, beside the log). `read_model` goes first: every transaction
/// that reads more than one of them takes it first, so none waits on this
/// one in the other order.
async fn drop_generation(client: &Client, schema: &str, number: i32) -> Result<(), StorageError> {
    let tables = generation_schema(schema, number);
    let mut sql = format!(
        "DROP TABLE IF EXISTS {tables}.read_model; \
         DROP TABLE IF EXISTS {tables}.tasks, {tables}.task_labels, {tables}.task_tags, \
         {tables}.small_models;"
    );
    if number != 0 {
        sql += &format!(" DROP SCHEMA IF EXISTS {tables} CASCADE;");
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| StorageError::caused_by(format!("dropping the views' generation {number}"), e))
}
