//! Rebuilds: the stored read models folded again from the whole log, and a
//! check that the stored rows equal a fresh fold of the log.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use futures::TryStreamExt;
use tasklog_events::{read_all_pages, EventStore, Position};
use tokio::sync::watch;

use crate::read_model::{ReadModelTables, TaskQuery};
use crate::runner::{blocking, Follower};
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
    mut progress: impl FnMut(Position, Position),
) -> Result<u64, Failure> {
    let head = store.head().await?;
    let cleared = tables.clone();
    blocking(move || cleared.clear()).await?;
    let follower = Follower {
        store: store.clone(),
        views: Arc::new(RwLock::new(Projections::default())),
        tables,
        publish: watch::channel(Position::START).0,
    };
    let mut pages = read_all_pages(&*store, Position::START, REBUILD_BATCH);
    let mut folded = 0;
    while let Some(mut page) = pages.try_next().await? {
        page.retain(|event| event.position <= head);
        let Some(last) = page.last().map(|event| event.position) else {
            break;
        };
        follower.apply(&page).await?;
        folded += page.len() as u64;
        progress(last, head);
        if last >= head {
            break;
        }
    }
    Ok(folded)
}

/// The differences between the stored read models and a fold of the log up
/// to their position, in words; empty when they agree.
pub async fn check(
    store: &dyn EventStore,
    tables: Arc<dyn ReadModelTables>,
) -> Result<Vec<String>, Failure> {
    let loader = tables.clone();
    let stored = blocking(move || loader.load()).await?;
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
        let reader = tables.clone();
        let page_query = query.clone();
        let page = blocking(move || reader.list(&page_query)).await?;
        for row in &page {
            rows += 1;
            match order.next() {
                Some(id) if *id == row.id => {
                    if fresh.tasks[id] != *row {
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
        .map(|t| (t.id, t))
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
