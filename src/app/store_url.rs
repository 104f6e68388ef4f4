//! The `--store` setting: which backend holds the log, as a URL.
//!
//! - `sqlite:///abs/path.sqlite`, `sqlite://relative/path.sqlite` or a plain
//!   path: the embedded store (the default is `tasklog.sqlite` in the data
//!   directory).
//! - `postgres://user:password@host:port/database?schema=tasklog` (or
//!   `postgresql://`): the shared store in PostgreSQL, for several nodes.
//! - `esdb://host:2113?tls=false`, `esdb+discover://..`, `kurrentdb://..`:
//!   EventStoreDB / KurrentDB, optionally with `namespace=<prefix>`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use tasklog_events::{EventStore, StorageError};
use tasklog_projections::{ReadModelTables, ViewGenerations};
use tasklog_store_sqlite::{SqliteReadModels, SqliteStore};

use super::views_files::{SqliteViewGenerations, ViewsFiles};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
    /// The server's URL, and the node's data directory, where its read
    /// models live in a file of their own (None: in memory, folded at each start).
    EventStoreDb {
        url: String,
        views_in: Option<PathBuf>,
    },
}

impl StoreUrl {
    /// The embedded store in `data_dir`.
    pub fn default_in(data_dir: &Path) -> Self {
        StoreUrl::Sqlite(data_dir.join("tasklog.sqlite"))
    }

    /// The URL as given, password and all, for a process of tasklog's own
    /// (what it displays leaves the password out).
    pub fn with_secrets(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreUrl::Postgres(url) | StoreUrl::EventStoreDb { url, .. } => url.clone(),
        }
    }

    /// This URL for a node whose data directory is `data_dir`: an
    /// EventStoreDB node keeps its read models in a file there.
    pub fn in_data_dir(self, data_dir: &Path) -> Self {
        match self {
            StoreUrl::EventStoreDb { url, .. } => StoreUrl::EventStoreDb {
                url,
                views_in: Some(data_dir.to_path_buf()),
            },
            other => other,
        }
    }

    /// The path the views files of this store are named after: the embedded
    /// store's log, or for an EventStoreDB node, a name in its data directory
    /// made from the server's URL (the password left out), so a node pointed
    /// at another server or namespace starts views of its own.
    fn views_base(&self) -> Option<PathBuf> {
        match self {
            StoreUrl::Sqlite(path) => Some(path.clone()),
            StoreUrl::EventStoreDb {
                url,
                views_in: Some(dir),
            } => {
                let digest = <sha2::Sha256 as sha2::Digest>::digest(without_password(url));
                Some(dir.join(format!("eventstoredb-{}", hex::encode(&digest[..8]))))
            }
            StoreUrl::Postgres(_) | StoreUrl::EventStoreDb { views_in: None, .. } => None,
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn EventStore>, StorageError> {
        match self {
            StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(url) => Ok(Arc::new(
                tasklog_store_postgres::PostgresStore::connect(url).await?,
            )),
            #[cfg(feature = "eventstoredb")]
            StoreUrl::EventStoreDb { url, .. } => Ok(Arc::new(
                tasklog_store_eventstoredb::EventStoreDbStore::connect(url).await?,
            )),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => Err(not_built_in("postgres")),
            #[cfg(not(feature = "eventstoredb"))]
            StoreUrl::EventStoreDb { .. } => Err(not_built_in("eventstoredb")),
        }
    }
}

impl StoreUrl {
    /// Where the read models of this store live when they are a file of the
    /// node's own: beside the embedded store's file, or in an EventStoreDB
    /// node's data directory. PostgreSQL keeps them in the store's schema,
    /// shared by the nodes (docs/read-models.md).
    pub fn views_path(&self) -> Option<PathBuf> {
        self.views_base()
            .map(|base| ViewsFiles::of(&base).current())
    }

    /// Where a rebuild beside serving nodes builds new views and swaps them
    /// in: files of the node's own, or tables in the schema the PostgreSQL
    /// nodes share. None where the views live in memory.
    pub fn view_generations(&self) -> Option<Arc<dyn ViewGenerations>> {
        #[cfg(feature = "postgres")]
        if let StoreUrl::Postgres(url) = self {
            let generations = tasklog_store_postgres::PostgresViewGenerations::new(url).ok()?;
            return Some(Arc::new(generations));
        }
        let files = ViewsFiles::of(&self.views_base()?);
        Some(Arc::new(SqliteViewGenerations::new(files)))
    }

    /// Whether the read models outlive a server: in a file or in the database.
    pub fn keeps_views(&self) -> bool {
        !matches!(self, StoreUrl::EventStoreDb { views_in: None, .. })
    }

    /// [`open_views`](Self::open_views) for a server, which keeps serving
    /// reads with its views in memory when the disk is too full to open
    /// their file.
    pub async fn open_views_to_serve(&self) -> Result<Arc<dyn ReadModelTables>, StorageError> {
        match self.views_path() {
            Some(path) => {
                let tables = SqliteReadModels::open_to_serve(&path).map_err(|e| {
                    StorageError::caused_by(
                        format!("opening the read models in {}", path.display()),
                        e,
                    )
                })?;
                Ok(Arc::new(tables))
            }
            None => self.open_views().await,
        }
    }

    /// Opens (or creates) this store's read-model tables.
    pub async fn open_views(&self) -> Result<Arc<dyn ReadModelTables>, StorageError> {
        #[cfg(feature = "postgres")]
        if let StoreUrl::Postgres(url) = self {
            let tables = tasklog_store_postgres::PostgresReadModels::connect(url).await?;
            return Ok(Arc::new(tables));
        }
        let path = self.views_path();
        let tables = SqliteReadModels::open(path.as_deref()).map_err(|e| {
            let place = path.map_or("memory".into(), |p| p.display().to_string());
            StorageError::caused_by(format!("opening the read models in {place}"), e)
        })?;
        Ok(Arc::new(tables))
    }
}

/// A store this build left out (its cargo feature was off).
pub fn not_built_in(feature: &str) -> StorageError {
    StorageError::new(format!(
        "this build of tasklog has no {feature} store: build it with the `{feature}` feature"
    ))
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported store URL {0:?}: expected sqlite://<path>, a file path, postgres://.. or esdb://..")]
pub struct UnsupportedStore(String);

impl FromStr for StoreUrl {
    type Err = UnsupportedStore;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        match url.split_once("://") {
            Some(("sqlite", path)) if !path.is_empty() => Ok(StoreUrl::Sqlite(path.into())),
            Some(("postgres" | "postgresql", rest)) if !rest.is_empty() => {
                Ok(StoreUrl::Postgres(url.to_owned()))
            }
            Some(("esdb" | "esdb+discover" | "kurrentdb" | "kurrentdb+discover", rest))
                if !rest.is_empty() =>
            {
                Ok(StoreUrl::EventStoreDb {
                    url: url.to_owned(),
                    views_in: None,
                })
            }
            None if !url.is_empty() && !url.contains(':') => Ok(StoreUrl::Sqlite(url.into())),
            _ => Err(UnsupportedStore(url.to_owned())),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // Without the password, which logs must not show.
            StoreUrl::Postgres(url) | StoreUrl::EventStoreDb { url, .. } => {
                f.write_str(&without_password(url))
            }
        }
    }
}

/// `scheme://user:password@host..` as `scheme://user@host..`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_and_plain_paths_name_the_embedded_store() {
        let parse = |s: &str| s.parse::<StoreUrl>().unwrap();
        assert_eq!(
            parse("sqlite:///var/lib/t.sqlite"),
            StoreUrl::Sqlite("/var/lib/t.sqlite".into())
        );
        assert_eq!(
            parse("sqlite://data/t.sqlite"),
            StoreUrl::Sqlite("data/t.sqlite".into())
        );
        assert_eq!(parse("./t.sqlite"), StoreUrl::Sqlite("./t.sqlite".into()));
        assert!("mysql://x".parse::<StoreUrl>().is_err());
        assert!("postgres://".parse::<StoreUrl>().is_err());
        assert!("sqlite://".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn an_eventstoredb_node_keeps_its_views_in_its_data_directory_by_server() {
        let parse = |s: &str| s.parse::<StoreUrl>().unwrap();
        let bare = parse("esdb://admin:changeit@db:2113?tls=false");
        assert_eq!(
            bare.views_path(),
            None,
            "in memory without a data directory"
        );
        assert!(!bare.keeps_views());
        let node = bare.clone().in_data_dir(Path::new("/var/lib/tasklog"));
        let path = node.views_path().unwrap();
        assert!(node.keeps_views());
        assert_eq!(path.parent(), Some(Path::new("/var/lib/tasklog")));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("eventstoredb-") && name.ends_with("-views"),
            "{name}"
        );
        let same_server = parse("esdb://admin:other@db:2113?tls=false")
            .in_data_dir(Path::new("/var/lib/tasklog"));
        assert_eq!(
            same_server.views_path().unwrap(),
            path,
            "the password is not part of it"
        );
        let other = parse("esdb://db:2113?tls=false&namespace=b.")
            .in_data_dir(Path::new("/var/lib/tasklog"));
        assert_ne!(other.views_path().unwrap(), path);
        let sqlite = StoreUrl::default_in(Path::new("/d"));
        assert_eq!(sqlite.clone().in_data_dir(Path::new("/e")), sqlite);
    }

    #[test]
    fn postgres_urls_are_kept_whole_and_shown_without_the_password() {
        let url = "postgres://tasklog:secret@db:5432/tasks?schema=prod";
        let parsed: StoreUrl = url.parse().unwrap();
        assert_eq!(parsed, StoreUrl::Postgres(url.to_owned()));
        assert_eq!(
            parsed.to_string(),
            "postgres://tasklog@db:5432/tasks?schema=prod"
        );
        assert!(matches!(
            "postgresql://localhost/test".parse::<StoreUrl>(),
            Ok(StoreUrl::Postgres(_))
        ));
        let esdb: StoreUrl = "esdb://admin:changeit@db:2113?tls=false".parse().unwrap();
        assert!(matches!(esdb, StoreUrl::EventStoreDb { .. }));
        assert_eq!(esdb.to_string(), "esdb://admin@db:2113?tls=false");
    }
}
