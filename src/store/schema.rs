//! The history store's schema, built by ordered migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Opening a
//! store read-write applies the missing ones in order, each in its own
//! transaction together with the version bump, so a crash mid-migration
//! leaves the store at the previous version, never half-migrated. A store
//! whose version is newer than [`CURRENT_VERSION`] is left untouched.
//!
//! Migrations are append-only: once released, a migration is never edited;
//! a change to the schema is a new entry at the end of [`MIGRATIONS`].
//!
//! [`check_kind`] is the one place that maps a check to the integer its rows
//! carry in `check_runs.check_kind`.

use crate::checks::CheckName;

/// The schema version this build writes and reads.
pub const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// The stored code of a check (`check_runs.check_kind`). Codes are on disk:
/// a new check takes the next unused number, and a number is never reused.
pub fn check_kind(check: CheckName) -> i64 {
    match check {
        CheckName::Index => 1,
        CheckName::Duplicates => 2,
        CheckName::MissingKeys => 3,
        CheckName::KeyConsistency => 4,
        CheckName::CanonicalDuplicates => 5,
    }
}

/// Migration `i` (0-based) takes a store from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: check runs. One row per run of one check of one target, keyed by
    // (target, check, time) so a month of one target's check is one range of
    // the clustered primary key, and a run recorded twice is stored once.
    // Figures live in typed columns so the audit aggregates them in SQL; the
    // duplicate sample (JSON) is kept only when a run found duplicates.
    r#"
    CREATE TABLE targets (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE check_runs (
        target_id           INTEGER NOT NULL REFERENCES targets(id),
        check_kind          INTEGER NOT NULL,  -- 1 index, 2 duplicates, 3 missing_keys
        at_ms               INTEGER NOT NULL,  -- unix milliseconds, UTC
        success             INTEGER NOT NULL,
        reason              TEXT,              -- failures: timeout, unreachable, unauthorized, other
        duration_us         INTEGER NOT NULL,
        method              TEXT,              -- how duplicates or missing keys were counted
        index_present       INTEGER,
        index_name          TEXT,
        index_unique        INTEGER,
        index_sparse        INTEGER,
        index_hidden        INTEGER,
        duplicate_keys      INTEGER,
        duplicate_documents INTEGER,
        sample              TEXT,              -- JSON [{key, count, ids}], only when non-empty
        missing_absent      INTEGER,
        missing_null        INTEGER,
        missing_empty       INTEGER,
        documents           INTEGER,
        PRIMARY KEY (target_id, check_kind, at_ms)
    ) WITHOUT ROWID;
    "#,
    // 2: daily log totals. One row per (source, counter, labels, UTC day)
    // holding the tailer's cumulative total at the day's start and at its
    // last write; the day's count is `carried + end_value - start_value`,
    // where `carried` keeps what was counted before a reset of the totals.
    r#"
    CREATE TABLE log_days (
        source      TEXT NOT NULL,
        counter     TEXT NOT NULL,             -- duplicate_key_errors, recoveries, event, lines, bytes
        label       TEXT NOT NULL DEFAULT '',  -- namespace, or the event name
        sub_label   TEXT NOT NULL DEFAULT '',  -- index
        day         TEXT NOT NULL,             -- YYYY-MM-DD, UTC
        start_value INTEGER NOT NULL,
        end_value   INTEGER NOT NULL,
        carried     INTEGER NOT NULL DEFAULT 0,
        updated_ms  INTEGER NOT NULL,
        PRIMARY KEY (source, counter, label, sub_label, day)
    ) WITHOUT ROWID;
    "#,
    // 3: the unique index's build state on index runs that found a
    // candidate: ready, building (listed but enforcing nothing yet) or
    // unknown (the server could not say). NULL on older rows and failures.
    r#"
    ALTER TABLE check_runs ADD COLUMN index_build TEXT;
    "#,
    // 4: documents whose key is an array, next to absent/null/empty. Runs
    // recorded before it have NULL: not counted then, not zero.
    r#"
    ALTER TABLE check_runs ADD COLUMN missing_array INTEGER;
    "#,
    // 5: the canonical checks. key_consistency rows (kind 4) keep their
    // kinds in three columns, the documents read in `documents` and a
    // sample of {id, kind, stored, canonical}; canonical_duplicates rows
    // (kind 5) use duplicate_keys/duplicate_documents and a sample of
    // {canonical, count, ids, keys}.
    r#"
    ALTER TABLE check_runs ADD COLUMN key_mismatch INTEGER;
    ALTER TABLE check_runs ADD COLUMN key_derivable INTEGER;
    ALTER TABLE check_runs ADD COLUMN key_underivable INTEGER;
    "#,
];
