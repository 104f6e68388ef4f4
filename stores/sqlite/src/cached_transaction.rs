//! Write transactions begun and committed through cached statements.
//! rusqlite's `Transaction` runs `BEGIN` and `COMMIT` through `execute_batch`,
//! which parses them again every time: about 1,700 instructions each, twice a
//! commit on both writers, a few percent of a request.

use std::ops::Deref;

use rusqlite::Connection;

/// An open write transaction on `conn`; rolled back when dropped uncommitted.
pub(crate) struct CachedTransaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> CachedTransaction<'c> {
    /// `BEGIN IMMEDIATE` (takes the write lock now) or `BEGIN` (at the first write).
    pub(crate) fn begin(conn: &'c Connection, immediate: bool) -> rusqlite::Result<Self> {
        let begin = if immediate {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.prepare_cached(begin)?.execute([])?;
        Ok(CachedTransaction { conn, open: true })
    }

    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl Deref for CachedTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for CachedTransaction<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut rollback| rollback.execute([]));
        }
    }
}
