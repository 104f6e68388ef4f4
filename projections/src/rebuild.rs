//! Rebuilds: the stored read models folded again from the whole log, and a
//! check that the stored rows equal a fresh fold of the log.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::{StreamExt, TryStreamExt};
use tasklog_events::{read_all_pages, EventStore, Position, ReadError, RecordedEvent};
use tokio::sync::{mpsc, watch};

use tokio::task::JoinHandle;

use crate::read_model::{Changes, ReadModelError, ReadModelTables, TaskQuery};
use crate::runner::{Follower, LiveTables};
use crate::Projections;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Events per stored batch in a rebuild: large, as nobody waits on one.
const REBUILD_BATCH: usize = 16_384;

/// Empties `tables` and folds the log into them up to the head it had at the
/// start, calling `progress(at, head)` after each stored batch. Returns how
/// many events were folded. Nothing else may write to `tables` meanwhile.
pub async fn rebuild(
    store: Arc<dyn EventStore>,
    tables: Arc<dyn ReadModelTables>,
    progress: impl FnMut(Position, Position),
) -> Result<u64, Failure> {
    let head = store.head().await?;
    tables.begin_rebuild().await?;
    let (_, folded) = catch_up(
        store,
        tables.clone(),
        Projections::default(),
        head,
        progress,
    )
    .await?;
    tables.finish_rebuild().await?;
    Ok(folded)
}

/// Folds the log from `views`' position up to `head` into them and into
/// `tables` (which must be at that position), in large batches, each folded
/// while the one before is stored: how a start far behind the log catches
/// up. Returns the views and how many events were folded.
pub async fn catch_up(
    store: Arc<dyn EventStore>,
    tables: Arc<dyn ReadModelTables>,
    views: Projections,
    head: Position,
    mut progress: impl FnMut(Position, Position),
) -> Result<(Projections, u64), Failure> {
    let after = views.position;
    let follower = Follower {
        store: store.clone(),
        views: Arc::new(RwLock::new(views)),
        tables: LiveTables::new(tables.clone()),
        publish: watch::channel(after).0,
        stored: watch::channel(after).0,
    };
    // Two stages on two threads: a batch is folded while the one before is stored.
    let mut storing: Option<JoinHandle<Result<Arc<Changes>, ReadModelError>>> = None;
    let mut pages = read_ahead(store, after);
    let mut folded = 0;
    while let Some(mut page) = pages.recv().await.transpose()? {
        page.retain(|event| event.position <= head);
        if page.is_empty() {
            break;
        }
        let changes = Arc::new(follower.fold(&page).await?);
        folded += page.len() as u64;
        if let Some(stored) = storing.take() {
            let stored = stored.await??;
            follower.stored(&stored);
            progress(stored.position, head);
        }
        let tables = tables.clone();
        storing = Some(tokio::spawn(async move {
            tables.commit(changes.clone()).await.map(|()| changes)
        }));
        if page.last().is_some_and(|event| event.position >= head) {
            break;
        }
    }
    if let Some(stored) = storing {
        let stored = stored.await??;
        follower.stored(&stored);
        progress(stored.position, head);
    }
    let views = std::mem::take(&mut *follower.views.write().expect("projections lock"));
    Ok((views, folded))
}

/// The log's pages, read on a task of their own while the last is folded.
fn read_ahead(
    store: Arc<dyn EventStore>,
    after: Position,
) -> mpsc::Receiver<Result<Vec<RecordedEvent>, ReadError>> {
    let (pages, receiver) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut reader = read_all_pages(&*store, after, REBUILD_BATCH);
        while let Some(page) = reader.next().await {
            if pages.send(page).await.is_err() {
                break;
            }
        }
    });
    receiver
}

/// The differences between the stored read models and a fold of the log up
/// to their position, in words; empty when they agree.
pub async fn check(
    store: &dyn EventStore,
    tables: Arc<dyn ReadModelTables>,
) -> Result<Vec<String>, Failure> {
    let stored = tables.load().await?;
    let mut fresh = Projections::default();
    let mut pages = read_all_pages(store, Position::START, 8192);
    'log: while let Some(page) = pages.try_next().await? {
        for event in &page {
            if event.position > stored.position {
                break 'log;
            }
            fresh.apply(event);
        }
    }
    let mut differences = Vec::new();
    let mut differ = |what: String| differences.push(what);
    if fresh.position != stored.position {
        differ(format!(
            "stored at position {}, the log ends at {}",
            stored.position, fresh.position
        ));
    }
    // Every stored row, in creation order, against the fold.
    let mut query = TaskQuery {
        limit: 4096,
        ..TaskQuery::default()
    };
    let mut rows = 0;
    let mut order = fresh.by_creation.values();
    loop {
        let page = tables.list(&query).await?;
        for row in &page {
            rows += 1;
            match order.next() {
                Some(id) if *id == row.id => {
                    if *fresh.tasks[id] != *row {
                        differ(format!(
                            "task {}: stored {row:?}, folded {:?}",
                            row.id, fresh.tasks[id]
                        ));
                    }
                }
                other => differ(format!(
                    "task {} is listed where the fold has {other:?}",
                    row.id
                )),
            }
        }
        match page.last() {
            Some(last) if page.len() == query.limit => query.after = last.created_position,
            _ => break,
        }
    }
    if rows != fresh.tasks.len() {
        differ(format!(
            "{rows} task rows stored, {} tasks folded",
            fresh.tasks.len()
        ));
    }
    let hot: BTreeMap<_, _> = stored.hot.iter().map(|t| (t.id, t)).collect();
    let folded_hot: BTreeMap<_, _> = fresh
        .tasks
        .values()
        .filter(|t| !t.state.is_finished())
        .map(|t| (t.id, &**t))
        .collect();
    if hot != folded_hot {
        differ(format!(
            "{} hot tasks stored, {} folded",
            hot.len(),
            folded_hot.len()
        ));
    }
    if stored.stats != fresh.stats {
        differ(format!(
            "counts: stored {:?}, folded {:?}",
            stored.stats, fresh.stats
        ));
    }
    let schedules: BTreeMap<_, _> = stored.schedules.into_iter().map(|s| (s.id, s)).collect();
    if schedules != fresh.schedules {
        differ("schedules differ".into());
    }
    if stored
        .queues
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
        != fresh.queues
    {
        differ("queue settings differ".into());
    }
    if stored.consumers.into_iter().collect::<BTreeMap<_, _>>() != fresh.consumers {
        differ("consumers differ".into());
    }
    Ok(differences)
}
