//! The embedded store's read models live in a file beside the log:
//! `<log>-views` at first. A rebuild beside a serving node fills a new file,
//! `<log>-views-<n>`, and once the node serves from it, names it in
//! `<log>-views-current` (written aside and renamed over, so a crash leaves
//! the old name or the new one) and removes the old file. Every start and
//! every command opens the file that pointer names.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tasklog_projections::{ReadModelError, ReadModelTables, ViewGenerations};
use tasklog_store_sqlite::SqliteReadModels;

/// The views files of the log at `log`.
#[derive(Clone, Debug)]
pub struct ViewsFiles {
    log: PathBuf,
}

impl ViewsFiles {
    pub fn of(log: &Path) -> Self {
        ViewsFiles {
            log: log.to_path_buf(),
        }
    }

    fn named(&self, suffix: &str) -> PathBuf {
        let mut name = self.log.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    fn pointer(&self) -> PathBuf {
        self.named("-views-current")
    }

    /// The file the views live in now.
    pub fn current(&self) -> PathBuf {
        self.generation_now()
            .map_or_else(|| self.named("-views"), |n| self.generation(n))
    }

    fn generation(&self, n: u64) -> PathBuf {
        self.named(&format!("-views-{n}"))
    }

    /// The generation the pointer names (None: the first file).
    fn generation_now(&self) -> Option<u64> {
        let named = std::fs::read_to_string(self.pointer()).ok()?;
        named.trim().parse().ok()
    }

    /// The next generation and its file, with whatever a rebuild that
    /// stopped midway left there removed.
    pub fn next(&self) -> std::io::Result<(u64, PathBuf)> {
        let generation = self.generation_now().map_or(1, |n| n + 1);
        let next = self.generation(generation);
        remove_database(&next)?;
        Ok((generation, next))
    }

    /// Makes `generation`'s file the current one for every later open, and
    /// removes the one before it.
    pub fn promote(&self, generation: u64) -> std::io::Result<()> {
        let before = self.current();
        let next = self.generation(generation);
        let aside = self.named("-views-current.new");
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&aside)?;
            writeln!(file, "{generation}")?;
            file.sync_all()?;
        }
        std::fs::rename(&aside, self.pointer())?;
        if let Some(dir) = self
            .pointer()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::File::open(dir)?.sync_all()?;
        }
        if before != next {
            remove_database(&before)?;
        }
        Ok(())
    }
}

/// Removes an SQLite database file and its WAL and shared-memory files.
fn remove_database(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

/// Generations of the embedded store's views, for a rebuild beside the
/// serving node.
pub struct SqliteViewGenerations {
    files: ViewsFiles,
    /// The generation `next` gave, and its file.
    next: Mutex<Option<(u64, PathBuf)>>,
}

impl SqliteViewGenerations {
    pub fn new(files: ViewsFiles) -> Self {
        SqliteViewGenerations {
            files,
            next: Mutex::new(None),
        }
    }
}

#[async_trait]
impl ViewGenerations for SqliteViewGenerations {
    async fn next(&self) -> Result<Option<Arc<dyn ReadModelTables>>, ReadModelError> {
        let (generation, path) = self.files.next().map_err(io_failed)?;
        let tables = SqliteReadModels::open(Some(&path)).map_err(|e| {
            ReadModelError(format!(
                "opening the read models in {}: {e}",
                path.display()
            ))
        })?;
        *self.next.lock().expect("next generation") = Some((generation, path));
        Ok(Some(Arc::new(tables)))
    }

    async fn promote(&self) -> Result<(), ReadModelError> {
        let next = self.next.lock().expect("next generation").take();
        let (generation, _) =
            next.ok_or_else(|| ReadModelError("no new generation of the views to promote".into()))?;
        self.files.promote(generation).map_err(io_failed)
    }

    async fn discard(&self) {
        if let Some((_, path)) = self.next.lock().expect("next generation").take() {
            let _ = remove_database(&path);
        }
    }
}

fn io_failed(error: std::io::Error) -> ReadModelError {
    ReadModelError(format!("the views' files: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promoted_generation_is_the_current_file_and_the_old_one_goes() {
        let dir = tempfile::tempdir().unwrap();
        let files = ViewsFiles::of(&dir.path().join("tasklog.sqlite"));
        let first = files.current();
        assert_eq!(first, dir.path().join("tasklog.sqlite-views"));
        std::fs::write(&first, b"old").unwrap();
        let (generation, next) = files.next().unwrap();
        assert_eq!(next, dir.path().join("tasklog.sqlite-views-1"));
        std::fs::write(&next, b"new").unwrap();
        assert_eq!(files.current(), first, "not until promoted");
        files.promote(generation).unwrap();
        assert_eq!(files.current(), next);
        assert!(!first.exists());
        let (_, after) = files.next().unwrap();
        assert_eq!(after, dir.path().join("tasklog.sqlite-views-2"));
    }
}
