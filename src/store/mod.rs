//! The history store: every check run and the daily log totals, on disk.
//!
//! The monthly audit ([`crate::audit`]) reads what this module writes. The
//! store is one SQLite file, `<[state] dir>/history.sqlite3`, in WAL mode so
//! the audit reads through its own connection while the daemon writes.
//!
//! - [`schema`] holds the versioned schema, its ordered migrations, and the
//!   one mapping of a check to its stored code.
//! - This file opens, migrates and prunes the store ([`Store::open`],
//!   [`Store::open_read_only`], [`Store::prune`]).
//! - [`record`] holds the typed [`RunRecord`] the runner hands over, made of
//!   the checks' own outcome types, and writes it ([`Store::record_runs`]).
//! - [`log_days`] keeps the tailer's totals per UTC day, and reads them back.
//! - [`query`] holds the reads of check runs the audit needs; the month's
//!   figures are aggregated in SQL over typed columns.
//! - [`writer`] runs the writes on a blocking thread fed by channels, so
//!   checks and `/metrics` never wait on the disk, and turns write failures
//!   into a metric and one log line per transition instead of a crash.

pub mod log_days;
pub mod query;
pub mod record;
pub mod schema;
pub mod writer;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, ErrorCode, OpenFlags};

use crate::checks::CHECKS;
use log_days::day_text;

pub use log_days::LogDayCount;
pub use record::{records, RunOutcome, RunRecord};
pub use writer::{record_open_failure, spawn_writer};

/// File name of the history store inside `[state] dir`.
pub const HISTORY_FILE: &str = "history.sqlite3";

/// How long a statement waits for a lock held by another connection (the
/// audit reading while the daemon writes) before failing with `busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The write-ahead log is truncated back to this size after a checkpoint,
/// so a burst of writes (a prune) does not leave a large file behind.
const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Where the history store lives for a given `[state] dir`.
pub fn history_path(state_dir: &Path) -> PathBuf {
    state_dir.join(HISTORY_FILE)
}

/// A problem with the history store. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory for a new store could not be created.
    #[error("cannot create the directory for history store {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A read-only open found no file.
    #[error("history store {path} does not exist (the daemon creates it on its first run)")]
    Missing { path: PathBuf },
    /// The file is not a SQLite database, or its pages are damaged.
    #[error("history store {path} is corrupt or not a SQLite database ({source}); move it away and uniqwatch starts a new one")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Written by a newer uniqwatch; left untouched.
    #[error("history store {path} has schema version {found}, newer than version {supported} that this uniqwatch knows; run a newer uniqwatch or move the file away")]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A read-only open found a store that still needs migrating.
    #[error("history store {path} has schema version {found}, older than version {supported}; the daemon migrates it when it starts")]
    NeedsMigration {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A migration step failed; the store stays at version `from`.
    #[error("migrating history store {path} from schema version {from} to {to}: {source}")]
    Migrate {
        path: PathBuf,
        from: u32,
        to: u32,
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused a statement (disk full, I/O error, locked, ...).
    #[error("history store {path}: {doing}: {source}")]
    Sqlite {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// A bounded reason for metric labels: disk_full, corrupt, read_only,
    /// busy, io, cannot_open, too_new, other.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::TooNew { .. } => "too_new",
            StoreError::CreateDir { .. } | StoreError::Missing { .. } => "cannot_open",
            StoreError::NeedsMigration { .. } => "other",
            StoreError::Migrate { source, .. } | StoreError::Sqlite { source, .. } => {
                sqlite_reason(source)
            }
        }
    }
}

fn sqlite_reason(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "disk_full",
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => "corrupt",
        Some(ErrorCode::ReadOnly) => "read_only",
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => "busy",
        Some(ErrorCode::SystemIoFailure) => "io",
        Some(ErrorCode::CannotOpen) => "cannot_open",
        _ => "other",
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// The write-ahead log beside a store file.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A path as the path part of an SQLite `file:` URI.
fn uri_escape(path: &str) -> String {
    path.replace('%', "%25").replace('?', "%3f").replace('#', "%23")
}

/// An open history store. Not `Sync`: one owner writes (the [`writer`]
/// task); the audit opens its own handle.
pub struct Store {
    /// The SQLite connection.
    conn: Connection,
    /// The file, for error messages.
    path: PathBuf,
    /// Target name → row id in `targets`, so each run does not look it up.
    target_ids: HashMap<String, i64>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `path` read-write, creating it (and its directory)
    /// if missing and migrating an older schema. A corrupt file or one from
    /// a newer uniqwatch is an error; the file is never modified then.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| open_error(path, source))?;
        let mut store = Store { conn, path: path.to_path_buf(), target_ids: HashMap::new() };
        store.configure(true)?;
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing store for reading only, e.g. for `uniqwatch audit`
    /// while the daemon writes. Never creates or migrates.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing { path: path.to_path_buf() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |target: &str, flags: OpenFlags| -> Result<Store, StoreError> {
            let conn = Connection::open_with_flags(target, flags).map_err(|source| open_error(path, source))?;
            let store = Store { conn, path: path.to_path_buf(), target_ids: HashMap::new() };
            store.configure(false)?;
            store.schema_version()?;
            Ok(store)
        };
        let store = match open(&path.to_string_lossy(), flags) {
            Ok(store) => store,
            // WAL mode needs the -shm file, which a reader that cannot write
            // the directory cannot create. With no -wal file no writer is
            // running, so the file can be read as immutable instead.
            Err(e) if !wal_path(path).exists() => {
                let uri = format!("file:{}?immutable=1", uri_escape(&path.to_string_lossy()));
                open(&uri, flags | OpenFlags::SQLITE_OPEN_URI).map_err(|_| e)?
            }
            Err(e) => return Err(e),
        };
        let found = store.schema_version()?;
        if found > schema::CURRENT_VERSION {
            return Err(StoreError::TooNew {
                path: store.path,
                found,
                supported: schema::CURRENT_VERSION,
            });
        }
        if found < schema::CURRENT_VERSION {
            return Err(StoreError::NeedsMigration {
                path: store.path,
                found,
                supported: schema::CURRENT_VERSION,
            });
        }
        Ok(store)
    }

    /// An empty store in memory: for tests, and for an audit when no history
    /// file exists (the report then says the month has no history).
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| open_error(&path, source))?;
        let mut store = Store { conn, path, target_ids: HashMap::new() };
        store.migrate()?;
        Ok(store)
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, u32>(0))
            .map_err(|source| self.classify(source, "reading the schema version"))
    }

    /// Connection settings. The first statement reads the file header, so
    /// this is where a file that is not a database is found out.
    fn configure(&self, writable: bool) -> Result<(), StoreError> {
        let doing = "configuring the connection";
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.classify(e, doing))?;
        if writable {
            // WAL lets the audit read while the daemon writes; NORMAL
            // synchronous is durable across a process crash, and loses at
            // most the last commits on power loss.
            self.conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
                .map_err(|e| self.classify(e, doing))?;
            self.conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| self.classify(e, doing))?;
            self.conn
                .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
                .map_err(|e| self.classify(e, doing))?;
        } else {
            self.conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
                .map_err(|e| self.classify(e, doing))?;
        }
        Ok(())
    }

    /// Applies every migration the file lacks, each with its version bump
    /// in one transaction.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let found = self.schema_version()?;
        if found > schema::CURRENT_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                supported: schema::CURRENT_VERSION,
            });
        }
        for (from, sql) in schema::MIGRATIONS.iter().enumerate().skip(found as usize) {
            let from = from as u32;
            let to = from + 1;
            let path = self.path.clone();
            let err = |source| StoreError::Migrate { path: path.clone(), from, to, source };
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", to).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Turns a SQLite error into the store's error, singling out corruption.
    fn classify(&self, source: rusqlite::Error, doing: &'static str) -> StoreError {
        if is_corruption(&source) {
            StoreError::Corrupt { path: self.path.clone(), source }
        } else {
            StoreError::Sqlite { path: self.path.clone(), doing, source }
        }
    }

    /// Deletes check runs that started before `older_than` and daily log
    /// totals of days before its date. Returns the rows deleted. Freed pages
    /// are reused by later writes, so the file stops growing once retention
    /// is reached rather than shrinking.
    pub fn prune(&mut self, older_than: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff_ms = older_than.timestamp_millis();
        let cutoff_day = day_text(older_than.date_naive());
        let result = (|| {
            let tx = self.conn.transaction()?;
            let mut deleted = 0u64;
            {
                let ids: Vec<i64> = tx
                    .prepare("SELECT id FROM targets")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                // Per (target, check) so each delete is a range of the primary key.
                let mut delete = tx.prepare(
                    "DELETE FROM check_runs WHERE target_id = ?1 AND check_kind = ?2 AND at_ms < ?3",
                )?;
                for id in ids {
                    for check in CHECKS {
                        deleted += delete.execute(params![id, schema::check_kind(check), cutoff_ms])? as u64;
                    }
                }
                deleted += tx.execute("DELETE FROM log_days WHERE day < ?1", params![cutoff_day])? as u64;
            }
            tx.commit()?;
            Ok(deleted)
        })();
        result.map_err(|e| self.classify(e, "pruning old history"))
    }

    /// Bytes on disk: database pages plus the write-ahead log.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let pages = |pragma: &str| {
            self.conn
                .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, i64>(0))
                .map_err(|e| self.classify(e, "reading the store size"))
        };
        let db = pages("page_count")? * pages("page_size")?;
        let wal = std::fs::metadata(wal_path(&self.path)).map(|m| m.len()).unwrap_or(0);
        Ok(db.max(0) as u64 + wal)
    }
}

/// The id of a target's row, inserting it on first sight.
fn target_id(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.execute("INSERT OR IGNORE INTO targets (name) VALUES (?1)", params![name])?;
    conn.query_row("SELECT id FROM targets WHERE name = ?1", params![name], |r| r.get(0))
}

fn open_error(path: &Path, source: rusqlite::Error) -> StoreError {
    if is_corruption(&source) {
        StoreError::Corrupt { path: path.to_path_buf(), source }
    } else {
        StoreError::Sqlite { path: path.to_path_buf(), doing: "opening", source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{LogTotals, SourceTotals};
    use chrono::TimeZone;
    use record::tests::index;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
    }

    fn index_run(at: DateTime<Utc>) -> RunRecord {
        RunRecord {
            at,
            target: "chats".into(),
            duration: Duration::from_millis(250),
            outcome: RunOutcome::Succeeded(index(true, None)),
        }
    }

    #[test]
    fn prune_deletes_only_older_rows() {
        let mut store = Store::open_in_memory().unwrap();
        store.record_runs(&[index_run(at(1, 0)), index_run(at(20, 0))]).unwrap();
        let mut totals = LogTotals::default();
        totals.sources.insert("app".into(), SourceTotals { recoveries: 1, ..Default::default() });
        store.record_log_totals(at(1, 5), &totals).unwrap();
        totals.sources.get_mut("app").unwrap().recoveries = 2;
        store.record_log_totals(at(20, 5), &totals).unwrap();
        // One check run and the first day's 3 series (recoveries, lines, bytes).
        assert_eq!(store.prune(at(10, 0)).unwrap(), 4);
        assert_eq!(store.prune(at(10, 0)).unwrap(), 0);
    }

    #[test]
    fn the_size_counts_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let mut store = Store::open(&path).unwrap();
        store.record_runs(&[index_run(at(1, 0))]).unwrap();
        let wal = std::fs::metadata(wal_path(&path)).unwrap().len();
        assert!(wal > 0, "the write is still in the log");
        let db = std::fs::metadata(&path).unwrap().len();
        assert!(store.size_bytes().unwrap() >= wal.max(db));
        assert_eq!(wal_path(&path), dir.path().join("history.sqlite3-wal"));
    }
}
