//! The history store: every check run and the daily log totals, on disk.
//!
//! The monthly audit ([`crate::audit`]) reads what this module writes. The
//! store is one SQLite file, `<[state] dir>/history.sqlite3`, in WAL mode so
//! the audit reads through its own connection while the daemon writes.
//!
//! - [`schema`] holds the versioned schema and its ordered migrations.
//! - This file opens the store and writes to it: [`Store::record_runs`],
//!   [`Store::record_log_totals`] and [`Store::prune`].
//! - [`query`] holds the reads the audit needs; the month's figures are
//!   aggregated in SQL, never by parsing stored JSON row by row.
//! - [`writer`] runs the writes on a blocking thread fed by channels, so
//!   checks and `/metrics` never wait on the disk, and turns write failures
//!   into a metric and one log line per transition instead of a crash.
//!
//! Log totals are stored as the tailer's cumulative totals at the start and
//! end of each UTC day, so a day's count is an exact difference of totals
//! the tailer persisted: a restart that republishes the same totals adds
//! nothing, and the latest stored total equals the tailer's.

pub mod query;
pub mod schema;
pub mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::logs::LogTotals;

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
    /// A run record names a check this build does not know.
    #[error("check run of target {target:?} names check {check:?}; expected index, duplicates or missing_keys")]
    UnknownCheck { target: String, check: String },
}

impl StoreError {
    /// A bounded reason for metric labels: disk_full, corrupt, read_only,
    /// busy, io, cannot_open, too_new, other.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::TooNew { .. } => "too_new",
            StoreError::CreateDir { .. } | StoreError::Missing { .. } => "cannot_open",
            StoreError::NeedsMigration { .. } | StoreError::UnknownCheck { .. } => "other",
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

/// The three checks, as stored (a small integer per row rather than the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Index,
    Duplicates,
    MissingKeys,
}

impl CheckKind {
    /// Every check, in the order reports list them.
    pub const ALL: [CheckKind; 3] = [CheckKind::Index, CheckKind::Duplicates, CheckKind::MissingKeys];

    /// The `check` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Index => "index",
            CheckKind::Duplicates => "duplicates",
            CheckKind::MissingKeys => "missing_keys",
        }
    }

    fn code(self) -> i64 {
        match self {
            CheckKind::Index => 1,
            CheckKind::Duplicates => 2,
            CheckKind::MissingKeys => 3,
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CheckKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CheckKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("expected index, duplicates or missing_keys, found {s:?}"))
    }
}

/// One run of one check of one target, as the runner reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// When the run started.
    pub at: DateTime<Utc>,
    /// The target's name (`[[target]] name`).
    pub target: String,
    /// `index`, `duplicates` or `missing_keys`.
    pub check: String,
    /// Whether the check produced its figures.
    pub success: bool,
    /// On failure, the bounded reason: timeout, unreachable, unauthorized, other.
    pub reason: Option<String>,
    /// Wall time of the run.
    pub duration_seconds: f64,
    /// On success, what the check found, in the shape of `check --format json`:
    /// index `{present, name, unique, sparse, hidden}`; duplicates
    /// `{keys, documents, method, sample: [{key, count, ids}]}`; missing_keys
    /// `{absent, null, empty, documents, method}`.
    pub figures: Option<serde_json::Value>,
}

/// A run record flattened into the columns of `check_runs`.
#[derive(Debug, Default, PartialEq)]
struct RunRow {
    /// Which check, as its stored code.
    kind: i64,
    /// Start of the run, unix milliseconds.
    at_ms: i64,
    /// Whether the run produced figures.
    success: bool,
    /// Failure reason; `None` on success.
    reason: Option<String>,
    /// Wall time in microseconds.
    duration_us: i64,
    /// How duplicates or missing keys were counted.
    method: Option<String>,
    /// Index figures.
    index_present: Option<bool>,
    index_name: Option<String>,
    index_unique: Option<bool>,
    index_sparse: Option<bool>,
    index_hidden: Option<bool>,
    /// Duplicates figures; `sample` only when the run found some.
    duplicate_keys: Option<i64>,
    duplicate_documents: Option<i64>,
    sample: Option<String>,
    /// Missing-key figures.
    missing_absent: Option<i64>,
    missing_null: Option<i64>,
    missing_empty: Option<i64>,
    documents: Option<i64>,
}

/// Flattens a run record into its row. Figures of a failed run are ignored;
/// figures missing from a successful run stay NULL (unknown), never 0.
fn run_row(run: &RunRecord) -> Result<RunRow, StoreError> {
    let kind: CheckKind = run.check.parse().map_err(|_| StoreError::UnknownCheck {
        target: run.target.clone(),
        check: run.check.clone(),
    })?;
    let mut row = RunRow {
        kind: kind.code(),
        at_ms: run.at.timestamp_millis(),
        success: run.success,
        reason: if run.success { None } else { run.reason.clone() },
        duration_us: (run.duration_seconds.max(0.0) * 1e6).round() as i64,
        ..RunRow::default()
    };
    let Some(f) = run.figures.as_ref().filter(|_| run.success) else {
        return Ok(row);
    };
    let boolean = |name: &str| f.get(name).and_then(serde_json::Value::as_bool);
    let count = |name: &str| {
        f.get(name)
            .and_then(serde_json::Value::as_u64)
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
    };
    let text = |name: &str| f.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
    match kind {
        CheckKind::Index => {
            row.index_present = boolean("present");
            row.index_name = text("name");
            row.index_unique = boolean("unique");
            row.index_sparse = boolean("sparse");
            row.index_hidden = boolean("hidden");
        }
        CheckKind::Duplicates => {
            row.duplicate_keys = count("keys");
            row.duplicate_documents = count("documents");
            row.method = text("method");
            row.sample = f
                .get("sample")
                .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
                .map(serde_json::Value::to_string);
        }
        CheckKind::MissingKeys => {
            row.missing_absent = count("absent");
            row.missing_null = count("null");
            row.missing_empty = count("empty");
            row.documents = count("documents");
            row.method = text("method");
        }
    }
    Ok(row)
}

/// One counter of one log source, with its labels, as stored per day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    /// `[[logs]] name`.
    source: String,
    /// duplicate_key_errors, recoveries, event, lines or bytes.
    counter: &'static str,
    /// Namespace for errors, event name for events, else empty.
    label: String,
    /// Index for errors, else empty.
    sub_label: String,
}

/// Flattens the tailer's totals into one cumulative value per series.
/// Entries repeating a (namespace, index) pair are added together.
fn log_series(totals: &LogTotals) -> BTreeMap<SeriesKey, i64> {
    let mut out = BTreeMap::new();
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for (source, t) in &totals.sources {
        let key = |counter, label: &str, sub_label: &str| SeriesKey {
            source: source.clone(),
            counter,
            label: label.to_string(),
            sub_label: sub_label.to_string(),
        };
        for e in &t.duplicate_key_errors {
            *out.entry(key("duplicate_key_errors", &e.namespace, &e.index)).or_insert(0i64) +=
                clamp(e.count);
        }
        out.insert(key("recoveries", "", ""), clamp(t.recoveries));
        for (event, n) in &t.events {
            out.insert(key("event", event, ""), clamp(*n));
        }
        out.insert(key("lines", "", ""), clamp(t.lines));
        out.insert(key("bytes", "", ""), clamp(t.bytes));
    }
    out
}

/// A series' row for one day: cumulative totals at the day's start and at
/// its last write, and what was counted before a reset of the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DayRow {
    day: String,
    start_value: i64,
    end_value: i64,
    carried: i64,
}

/// What to write for a series that now stands at `value` on `day`, given its
/// latest stored row; `None` when nothing changed.
///
/// A new day starts where the previous row ended, so a day's count
/// (`carried + end - start`) is an exact difference of cumulative totals. A
/// total lower than the stored one means the tailer's totals were reset
/// (its checkpoint was lost): what the day had counted is carried and
/// counting resumes from zero, as Prometheus treats a counter reset. A clock
/// that went back writes into the latest day rather than rewriting history.
fn next_day_row(latest: Option<&DayRow>, day: &str, value: i64) -> Option<DayRow> {
    let Some(prev) = latest else {
        return Some(DayRow { day: day.to_string(), start_value: 0, end_value: value, carried: 0 });
    };
    if prev.day.as_str() >= day {
        if value == prev.end_value {
            return None;
        }
        let mut row = prev.clone();
        if value < prev.end_value {
            row.carried += prev.end_value - prev.start_value;
            row.start_value = 0;
        }
        row.end_value = value;
        return Some(row);
    }
    let start_value = if value >= prev.end_value { prev.end_value } else { 0 };
    Some(DayRow { day: day.to_string(), start_value, end_value: value, carried: 0 })
}

/// The `YYYY-MM-DD` text a UTC day is stored as.
fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
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

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Records a batch of check runs in one transaction: all or nothing.
    /// A run recorded twice (same target, check and start time) is stored once.
    pub fn record_runs(&mut self, runs: &[RunRecord]) -> Result<(), StoreError> {
        let rows = runs
            .iter()
            .map(|run| run_row(run).map(|row| (run.target.as_str(), row)))
            .collect::<Result<Vec<_>, _>>()?;
        let doing = "recording check runs";
        let mut new_ids = HashMap::new();
        let result = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO check_runs (target_id, check_kind, at_ms, success, reason,
                        duration_us, method, index_present, index_name, index_unique, index_sparse,
                        index_hidden, duplicate_keys, duplicate_documents, sample, missing_absent,
                        missing_null, missing_empty, documents)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                )?;
                for (target, r) in &rows {
                    let id = match self.target_ids.get(*target).or(new_ids.get(*target)) {
                        Some(id) => *id,
                        None => {
                            let id = target_id(&tx, target)?;
                            new_ids.insert(target.to_string(), id);
                            id
                        }
                    };
                    insert.execute(params![
                        id, r.kind, r.at_ms, r.success, r.reason, r.duration_us, r.method,
                        r.index_present, r.index_name, r.index_unique, r.index_sparse, r.index_hidden,
                        r.duplicate_keys, r.duplicate_documents, r.sample, r.missing_absent,
                        r.missing_null, r.missing_empty, r.documents,
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.classify(e, doing))?;
        // Only ids whose insert committed may be cached.
        self.target_ids.extend(new_ids);
        Ok(())
    }

    /// Records the tailer's cumulative totals as of `at` into that UTC day's
    /// rows. Writes only series that changed, plus one row per series on the
    /// first write of a day (so a quiet day shows as watched with zero
    /// counts). Returns the rows written.
    pub fn record_log_totals(&mut self, at: DateTime<Utc>, totals: &LogTotals) -> Result<usize, StoreError> {
        let day = day_text(at.date_naive());
        let updated_ms = at.timestamp_millis();
        let doing = "recording log totals";
        let result = (|| {
            let tx = self.conn.transaction()?;
            let mut written = 0;
            {
                let mut latest = tx.prepare_cached(
                    "SELECT day, start_value, end_value, carried FROM log_days
                     WHERE source = ?1 AND counter = ?2 AND label = ?3 AND sub_label = ?4
                     ORDER BY day DESC LIMIT 1",
                )?;
                let mut upsert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO log_days
                       (source, counter, label, sub_label, day, start_value, end_value, carried, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (key, value) in log_series(totals) {
                    let prev = latest
                        .query_row(params![key.source, key.counter, key.label, key.sub_label], |r| {
                            Ok(DayRow {
                                day: r.get(0)?,
                                start_value: r.get(1)?,
                                end_value: r.get(2)?,
                                carried: r.get(3)?,
                            })
                        })
                        .optional()?;
                    if let Some(row) = next_day_row(prev.as_ref(), &day, value) {
                        upsert.execute(params![
                            key.source, key.counter, key.label, key.sub_label, row.day,
                            row.start_value, row.end_value, row.carried, updated_ms,
                        ])?;
                        written += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        result.map_err(|e| self.classify(e, doing))
    }

    /// Records totals counted before history began (the tailer's checkpoint
    /// at start-up): every series the store has no row of gets one for the
    /// day of `at` that starts at its total, so those lines count on no day.
    /// Series the store already follows are left alone. Call it before the
    /// first [`Store::record_log_totals`] of a run.
    pub fn record_log_baseline(&mut self, at: DateTime<Utc>, totals: &LogTotals) -> Result<usize, StoreError> {
        let day = day_text(at.date_naive());
        let updated_ms = at.timestamp_millis();
        let result = (|| {
            let tx = self.conn.transaction()?;
            let mut written = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO log_days
                       (source, counter, label, sub_label, day, start_value, end_value, carried, updated_ms)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, 0, ?7
                     WHERE NOT EXISTS (SELECT 1 FROM log_days
                                       WHERE source = ?1 AND counter = ?2 AND label = ?3 AND sub_label = ?4)",
                )?;
                for (key, value) in log_series(totals) {
                    written += insert.execute(params![
                        key.source, key.counter, key.label, key.sub_label, day, value, updated_ms
                    ])?;
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        result.map_err(|e| self.classify(e, "recording log totals counted before history began"))
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
                    for kind in CheckKind::ALL {
                        deleted += delete.execute(params![id, kind.code(), cutoff_ms])? as u64;
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
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
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
    use crate::logs::{ErrorTotal, SourceTotals};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
    }

    fn run(check: &str, success: bool, figures: Option<serde_json::Value>) -> RunRecord {
        RunRecord {
            at: at(1, 0),
            target: "chats".into(),
            check: check.into(),
            success,
            reason: (!success).then(|| "timeout".to_string()),
            duration_seconds: 0.25,
            figures,
        }
    }

    #[test]
    fn index_figures_become_columns() {
        let row = run_row(&run(
            "index",
            true,
            Some(json!({"present": false, "name": "participantsKey_1", "unique": true, "sparse": false, "hidden": false})),
        ))
        .unwrap();
        assert_eq!(row.kind, 1);
        assert_eq!(row.index_present, Some(false));
        assert_eq!(row.index_name.as_deref(), Some("participantsKey_1"));
        assert_eq!(row.index_sparse, Some(false));
        assert_eq!(row.duration_us, 250_000);
        assert_eq!(row.reason, None);
    }

    #[test]
    fn duplicate_sample_is_kept_only_when_not_empty() {
        let with = run_row(&run(
            "duplicates",
            true,
            Some(json!({"keys": 1, "documents": 2, "method": "group", "sample": [{"key": "a_b", "count": 3, "ids": [1, 2, 3]}]})),
        ))
        .unwrap();
        assert_eq!(with.duplicate_documents, Some(2));
        assert_eq!(with.method.as_deref(), Some("group"));
        assert!(with.sample.unwrap().contains("a_b"));
        let without = run_row(&run(
            "duplicates",
            true,
            Some(json!({"keys": 0, "documents": 0, "method": "unique_index", "sample": []})),
        ))
        .unwrap();
        assert_eq!(without.sample, None);
        assert_eq!(without.duplicate_keys, Some(0));
    }

    #[test]
    fn failed_run_keeps_its_reason_and_no_figures() {
        let row = run_row(&run("missing_keys", false, Some(json!({"absent": 5})))).unwrap();
        assert!(!row.success);
        assert_eq!(row.reason.as_deref(), Some("timeout"));
        assert_eq!(row.missing_absent, None);
    }

    #[test]
    fn missing_figures_stay_unknown() {
        let row = run_row(&run("missing_keys", true, Some(json!({"absent": 5})))).unwrap();
        assert_eq!(row.missing_absent, Some(5));
        assert_eq!(row.missing_null, None);
    }

    #[test]
    fn unknown_check_is_an_error() {
        let e = run_row(&run("indexes", true, None)).unwrap_err().to_string();
        assert!(e.contains("\"indexes\""), "{e}");
    }

    fn row(day: &str, start: i64, end: i64, carried: i64) -> DayRow {
        DayRow { day: day.into(), start_value: start, end_value: end, carried }
    }

    #[test]
    fn first_sight_counts_from_zero() {
        assert_eq!(next_day_row(None, "2026-10-01", 7), Some(row("2026-10-01", 0, 7, 0)));
    }

    #[test]
    fn same_day_moves_the_end_only_when_changed() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 7), None);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 9), Some(row("2026-10-01", 3, 9, 0)));
    }

    #[test]
    fn new_day_starts_where_the_last_row_ended() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-03", 7), Some(row("2026-10-03", 7, 7, 0)));
        assert_eq!(next_day_row(Some(&prev), "2026-10-03", 10), Some(row("2026-10-03", 7, 10, 0)));
    }

    #[test]
    fn reset_within_a_day_carries_what_was_counted() {
        let prev = row("2026-10-01", 3, 7, 0);
        // Counted 4 before the reset, then 2 after it.
        let next = next_day_row(Some(&prev), "2026-10-01", 2).unwrap();
        assert_eq!(next, row("2026-10-01", 0, 2, 4));
        assert_eq!(next.carried + next.end_value - next.start_value, 6);
    }

    #[test]
    fn reset_across_days_counts_from_zero() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-02", 2), Some(row("2026-10-02", 0, 2, 0)));
    }

    #[test]
    fn clock_going_back_writes_into_the_latest_day() {
        let prev = row("2026-10-02", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 8), Some(row("2026-10-02", 3, 8, 0)));
    }

    #[test]
    fn log_series_flattens_and_adds_repeated_labels() {
        let mut totals = LogTotals::default();
        totals.sources.insert(
            "app".into(),
            SourceTotals {
                duplicate_key_errors: vec![
                    ErrorTotal { namespace: "app.chats".into(), index: "k_1".into(), count: 2 },
                    ErrorTotal { namespace: "app.chats".into(), index: "k_1".into(), count: 3 },
                ],
                recoveries: 4,
                events: [("create".to_string(), 100)].into(),
                lines: 1000,
                bytes: 50_000,
            },
        );
        let series = log_series(&totals);
        assert_eq!(series.len(), 5);
        let errors = series.iter().find(|(k, _)| k.counter == "duplicate_key_errors").unwrap();
        assert_eq!(*errors.1, 5);
        assert_eq!(errors.0.label, "app.chats");
        assert_eq!(errors.0.sub_label, "k_1");
    }

    #[test]
    fn runs_round_trip_and_a_repeat_is_stored_once() {
        let mut store = Store::open_in_memory().unwrap();
        let r = run("index", true, Some(json!({"present": true})));
        store.record_runs(&[r.clone(), r.clone()]).unwrap();
        store.record_runs(&[r]).unwrap();
        let n: i64 = store.conn.query_row("SELECT count(*) FROM check_runs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_batch_with_an_unknown_check_writes_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        let good = run("index", true, None);
        let bad = run("nope", true, None);
        assert!(store.record_runs(&[good, bad]).is_err());
        let n: i64 = store.conn.query_row("SELECT count(*) FROM check_runs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn prune_deletes_only_older_rows() {
        let mut store = Store::open_in_memory().unwrap();
        let mut old = run("index", true, None);
        old.at = at(1, 0);
        let mut new = run("index", true, None);
        new.at = at(20, 0);
        store.record_runs(&[old, new]).unwrap();
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
    fn totals_counted_before_history_began_count_on_no_day() {
        let mut store = Store::open_in_memory().unwrap();
        let mut totals = LogTotals::default();
        totals.sources.insert("app".into(), SourceTotals { recoveries: 5, ..Default::default() });
        // A new store beside a checkpoint that already counted 5 recoveries.
        assert_eq!(store.record_log_baseline(at(20, 0), &totals).unwrap(), 3);
        totals.sources.get_mut("app").unwrap().recoveries = 7;
        store.record_log_totals(at(20, 5), &totals).unwrap();
        // A restart: the baseline leaves series the store follows alone.
        assert_eq!(store.record_log_baseline(at(20, 6), &totals).unwrap(), 0);
        let from = at(1, 0).date_naive();
        let days = store.log_days("app", from, at(30, 0).date_naive()).unwrap();
        let recoveries: u64 = days.iter().filter(|d| d.counter == "recoveries").map(|d| d.count).sum();
        assert_eq!(recoveries, 2, "{days:?}");
    }
}
