//! The `--store` setting: which backend holds the log, as a URL.
//!
//! - `sqlite:///abs/path.sqlite`, `sqlite://relative/path.sqlite` or a plain
//!   path: the embedded store (the default is `tasklog.sqlite` in the data
//!   directory).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use tasklog_events::{EventStore, SqliteStore, StorageError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
}

impl StoreUrl {
    /// The embedded store in `data_dir`.
    pub fn default_in(data_dir: &Path) -> Self {
        StoreUrl::Sqlite(data_dir.join("tasklog.sqlite"))
    }

    pub fn open(&self) -> Result<Arc<dyn EventStore>, StorageError> {
        match self {
            StoreUrl::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path)?)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unsupported store URL {0:?}: expected sqlite://<path> or a file path")]
pub struct UnsupportedStore(String);

impl FromStr for StoreUrl {
    type Err = UnsupportedStore;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        match url.split_once("://") {
            Some(("sqlite", path)) if !path.is_empty() => Ok(StoreUrl::Sqlite(path.into())),
            None if !url.is_empty() && !url.contains(':') => Ok(StoreUrl::Sqlite(url.into())),
            _ => Err(UnsupportedStore(url.to_owned())),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
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
        assert!("sqlite://".parse::<StoreUrl>().is_err());
    }
}
