//! Reads of the history store for the monthly audit.
//!
//! Each function answers one question about one target (or log source) over
//! a time range, aggregating in SQL over one range of the clustered primary
//! key (target, check, time). The audit wraps its reads in one
//! [`Store::snapshot`], so a report is consistent while the daemon writes.
//! The canonical checks' reads are in `canonical`; the longest gap between
//! successes is found by [`GapFinder`] in `gaps`.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, Transaction};

use super::{schema, Store, StoreError};
use crate::checks::scan::DuplicateSample;
use crate::checks::{CheckName, CHECKS};

mod canonical;
mod gaps;

pub use canonical::KeyConsistencyDay;
pub use gaps::{Gap, GapFinder};

const MS_PER_DAY: i64 = 86_400_000;

/// A read transaction: every query made while it lives sees the same state.
pub struct Snapshot<'a> {
    /// Rolled back on drop; it never writes.
    _tx: Transaction<'a>,
}

/// How often one check of one target ran in a range, and how it failed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCounts {
    /// Runs recorded.
    pub runs: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Failed runs by reason; a failure recorded without one counts as `other`.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// First run in the range.
    pub first_run: Option<DateTime<Utc>>,
    /// Last run in the range.
    pub last_run: Option<DateTime<Utc>>,
}

/// What the successful `index` runs of a range found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexHistory {
    /// Successful index runs.
    pub runs: u64,
    /// Runs that did not find the expected unique index.
    pub missing_runs: u64,
    /// Of those, runs that found an index on the key with the wrong options
    /// (an index still being built is not counted here).
    pub wrong_runs: u64,
    /// Earliest run that found it missing or wrong.
    pub first_missing: Option<DateTime<Utc>>,
    /// Latest run that found it missing or wrong.
    pub last_missing: Option<DateTime<Utc>>,
    /// Of the missing runs, those that found it still being built.
    pub building_runs: u64,
    /// Runs where the server could not say whether its build had finished.
    pub unknown_build_runs: u64,
}

/// The successful runs of one UTC day of a check that counts duplicates
/// (`duplicates`, or `canonical_duplicates` counting canonical values).
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatesDay {
    /// The day.
    pub date: NaiveDate,
    /// Successful runs that day.
    pub runs: u64,
    /// Most surplus documents any run saw.
    pub max_documents: u64,
    /// Most duplicated keys (canonical values) any run saw.
    pub max_keys: u64,
    /// Runs that found at least one duplicate.
    pub runs_with_duplicates: u64,
    /// First run that found duplicates.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last run that found duplicates.
    pub last_seen: Option<DateTime<Utc>>,
}

/// One distinct sample and the runs that reported it: by default the
/// duplicates check's; the canonical checks' samples read the same way.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSeen<T = DuplicateSample> {
    /// The entries the runs named, as the check reported them.
    pub sample: Vec<T>,
    /// Runs that reported exactly this sample.
    pub runs: u64,
    /// First of those runs.
    pub first_seen: DateTime<Utc>,
    /// Last of those runs.
    pub last_seen: DateTime<Utc>,
}

/// The successful `missing_keys` runs of one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingDay {
    /// The day.
    pub date: NaiveDate,
    /// Successful runs that day.
    pub runs: u64,
    /// Most documents with the key absent.
    pub max_absent: u64,
    /// Most documents with the key null.
    pub max_null: u64,
    /// Most documents with the key "".
    pub max_empty: u64,
    /// Most documents whose key is an array.
    pub max_array: u64,
    /// Most documents without a usable key, all kinds together.
    pub max_total: u64,
}

/// The missing-key figures of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissingAt {
    /// When the run started.
    pub at: DateTime<Utc>,
    /// Documents with the key absent.
    pub absent: u64,
    /// Documents with the key null.
    pub null: u64,
    /// Documents with the key "".
    pub empty: u64,
    /// Documents whose key is an array.
    pub array: u64,
}

/// The first and last instants the store holds anything for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistorySpan {
    /// The earliest check run or the start of the earliest day of log totals.
    pub first: DateTime<Utc>,
    /// The latest check run or the end of the latest day of log totals.
    pub last: DateTime<Utc>,
}

pub(super) fn time(ms: i64) -> DateTime<Utc> {
    // Stored times were written from valid DateTimes, hence in range.
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) fn date_of_day_number(day: i64) -> NaiveDate {
    time(day * MS_PER_DAY).date_naive()
}

pub(super) fn count(n: Option<i64>) -> u64 {
    n.unwrap_or(0).max(0) as u64
}

impl Store {
    /// Begins a read snapshot; hold it across every query of one report.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.classify(e, "starting a read"))?;
        // A deferred transaction takes its snapshot at the first read.
        tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))
            .map_err(|e| self.classify(e, "starting a read"))?;
        Ok(Snapshot { _tx: tx })
    }

    /// Every target name the store has ever recorded, sorted.
    pub fn target_names(&self) -> Result<Vec<String>, StoreError> {
        let read = || -> rusqlite::Result<Vec<String>> {
            self.conn
                .prepare_cached("SELECT name FROM targets ORDER BY name")?
                .query_map([], |r| r.get(0))?
                .collect()
        };
        read().map_err(|e| self.classify(e, "listing targets"))
    }

    /// The earliest and latest instants the store holds anything for.
    pub fn history_span(&self) -> Result<Option<HistorySpan>, StoreError> {
        let read = || -> rusqlite::Result<Option<(i64, i64)>> {
            let ids: Vec<i64> = self
                .conn
                .prepare_cached("SELECT id FROM targets")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut span: Option<(i64, i64)> = None;
            let mut widen = |lo: Option<i64>, hi: Option<i64>| {
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    span = Some(span.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                }
            };
            // One MIN and one MAX per (target, check): each is a seek on the primary key.
            let mut min = self.conn.prepare_cached(
                "SELECT MIN(at_ms) FROM check_runs WHERE target_id = ?1 AND check_kind = ?2",
            )?;
            let mut max = self.conn.prepare_cached(
                "SELECT MAX(at_ms) FROM check_runs WHERE target_id = ?1 AND check_kind = ?2",
            )?;
            for id in ids {
                for check in CHECKS {
                    let kind = schema::check_kind(check);
                    let lo: Option<i64> = min.query_row(params![id, kind], |r| r.get(0))?;
                    let hi: Option<i64> = max.query_row(params![id, kind], |r| r.get(0))?;
                    widen(lo, hi);
                }
            }
            let (lo, hi): (Option<String>, Option<String>) = self
                .conn
                .query_row("SELECT MIN(day), MAX(day) FROM log_days", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
            let day_ms = |d: Option<String>, end: bool| {
                d.and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()).map(|d| {
                    let start = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
                    start.unwrap_or(0) + if end { MS_PER_DAY - 1 } else { 0 }
                })
            };
            widen(day_ms(lo, false), day_ms(hi, true));
            Ok(span)
        };
        read()
            .map(|s| s.map(|(lo, hi)| HistorySpan { first: time(lo), last: time(hi) }))
            .map_err(|e| self.classify(e, "reading the history span"))
    }

    /// The target's row id, looked up each time: another connection (the
    /// daemon) may have added it since this one opened.
    pub(super) fn lookup_target(&self, target: &str) -> rusqlite::Result<Option<i64>> {
        self.conn
            .prepare_cached("SELECT id FROM targets WHERE name = ?1")?
            .query_row(params![target], |r| r.get(0))
            .optional()
    }

    /// The earliest run of one check of one target the store holds, at
    /// any time: before it uniqwatch was not watching that check yet.
    pub fn first_run(&self, target: &str, check: CheckName) -> Result<Option<DateTime<Utc>>, StoreError> {
        let read = || -> rusqlite::Result<Option<i64>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(None) };
            self.conn
                .prepare_cached("SELECT MIN(at_ms) FROM check_runs WHERE target_id = ?1 AND check_kind = ?2")?
                .query_row(params![id, schema::check_kind(check)], |r| r.get(0))
        };
        read().map(|t| t.map(time)).map_err(|e| self.classify(e, "finding the first check run"))
    }

    /// Runs, failures and their reasons for one check of one target in `[from, to)`.
    pub fn run_counts(
        &self,
        target: &str,
        check: CheckName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<RunCounts, StoreError> {
        let read = || -> rusqlite::Result<RunCounts> {
            let mut out = RunCounts::default();
            let Some(id) = self.lookup_target(target)? else { return Ok(out) };
            let mut stmt = self.conn.prepare_cached(
                "SELECT success, COALESCE(reason, 'other'), COUNT(*), MIN(at_ms), MAX(at_ms)
                 FROM check_runs
                 WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                 GROUP BY success, COALESCE(reason, 'other')",
            )?;
            let mut rows =
                stmt.query(params![id, schema::check_kind(check), from.timestamp_millis(), to.timestamp_millis()])?;
            while let Some(r) = rows.next()? {
                let success: bool = r.get(0)?;
                let n = count(r.get(2)?);
                out.runs += n;
                if !success {
                    out.failed += n;
                    *out.failures_by_reason.entry(r.get(1)?).or_insert(0) += n;
                }
                let (lo, hi) = (time(r.get(3)?), time(r.get(4)?));
                out.first_run = Some(out.first_run.map_or(lo, |t| t.min(lo)));
                out.last_run = Some(out.last_run.map_or(hi, |t| t.max(hi)));
            }
            Ok(out)
        };
        read().map_err(|e| self.classify(e, "counting check runs"))
    }

    /// Successful index runs in `[from, to)` and those that found the
    /// unique index missing or wrong.
    pub fn index_history(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<IndexHistory, StoreError> {
        let read = || -> rusqlite::Result<IndexHistory> {
            let Some(id) = self.lookup_target(target)? else { return Ok(IndexHistory::default()) };
            self.conn
                .prepare_cached(
                    "SELECT COUNT(*),
                            SUM(index_present = 0),
                            SUM(index_present = 0 AND index_name IS NOT NULL AND index_build IS NOT 'building'),
                            MIN(CASE WHEN index_present = 0 THEN at_ms END),
                            MAX(CASE WHEN index_present = 0 THEN at_ms END),
                            SUM(index_build = 'building'),
                            SUM(index_build = 'unknown')
                     FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1",
                )?
                .query_row(
                    params![id, schema::check_kind(CheckName::Index), from.timestamp_millis(), to.timestamp_millis()],
                    |r| {
                        Ok(IndexHistory {
                            runs: count(r.get(0)?),
                            missing_runs: count(r.get(1)?),
                            wrong_runs: count(r.get(2)?),
                            first_missing: r.get::<_, Option<i64>>(3)?.map(time),
                            last_missing: r.get::<_, Option<i64>>(4)?.map(time),
                            building_runs: count(r.get(5)?),
                            unknown_build_runs: count(r.get(6)?),
                        })
                    },
                )
        };
        read().map_err(|e| self.classify(e, "reading index history"))
    }

    /// Per UTC day in `[from, to)`: the duplicates the successful runs saw.
    /// Days without a successful run are absent.
    pub fn duplicates_by_day(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DuplicatesDay>, StoreError> {
        self.duplicate_days(target, CheckName::Duplicates, from, to)
    }

    /// The distinct duplicate samples reported in `[from, to)`. Identical
    /// samples (the same duplicates seen run after run) come back once. A
    /// stored sample that does not read back as the check's sample (written
    /// by a newer or broken uniqwatch) is left out; its runs' counts stand.
    pub fn duplicate_samples(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleSeen>, StoreError> {
        self.samples(target, CheckName::Duplicates, from, to)
    }

    /// [`Store::duplicates_by_day`] for any check whose rows fill
    /// `duplicate_keys` and `duplicate_documents`.
    fn duplicate_days(
        &self,
        target: &str,
        check: CheckName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DuplicatesDay>, StoreError> {
        let read = || -> rusqlite::Result<Vec<DuplicatesDay>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(Vec::new()) };
            self.conn
                .prepare_cached(
                    "SELECT at_ms / 86400000 AS day, COUNT(*),
                            MAX(duplicate_documents), MAX(duplicate_keys),
                            SUM(duplicate_documents > 0),
                            MIN(CASE WHEN duplicate_documents > 0 THEN at_ms END),
                            MAX(CASE WHEN duplicate_documents > 0 THEN at_ms END)
                     FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1
                     GROUP BY day ORDER BY day",
                )?
                .query_map(params![id, schema::check_kind(check), from.timestamp_millis(), to.timestamp_millis()], |r| {
                    Ok(DuplicatesDay {
                        date: date_of_day_number(r.get(0)?),
                        runs: count(r.get(1)?),
                        max_documents: count(r.get(2)?),
                        max_keys: count(r.get(3)?),
                        runs_with_duplicates: count(r.get(4)?),
                        first_seen: r.get::<_, Option<i64>>(5)?.map(time),
                        last_seen: r.get::<_, Option<i64>>(6)?.map(time),
                    })
                })?
                .collect()
        };
        read().map_err(|e| self.classify(e, "reading duplicate history"))
    }

    /// The distinct samples of `check` in `[from, to)`, read back as `T`, as
    /// [`Store::duplicate_samples`] reads the duplicates check's.
    fn samples<T: serde::de::DeserializeOwned>(
        &self,
        target: &str,
        check: CheckName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleSeen<T>>, StoreError> {
        let read = || -> rusqlite::Result<Vec<(String, SampleSeen<T>)>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(Vec::new()) };
            self.conn
                .prepare_cached(
                    "SELECT sample, COUNT(*), MIN(at_ms), MAX(at_ms)
                     FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1 AND sample IS NOT NULL
                     GROUP BY sample ORDER BY MIN(at_ms)",
                )?
                .query_map(params![id, schema::check_kind(check), from.timestamp_millis(), to.timestamp_millis()], |r| {
                    let seen = SampleSeen {
                        sample: Vec::new(),
                        runs: count(r.get(1)?),
                        first_seen: time(r.get(2)?),
                        last_seen: time(r.get(3)?),
                    };
                    Ok((r.get(0)?, seen))
                })?
                .collect()
        };
        let rows = read().map_err(|e| self.classify(e, "reading samples"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(text, seen)| Some(SampleSeen { sample: serde_json::from_str(&text).ok()?, ..seen }))
            .collect())
    }

    /// Per UTC day in `[from, to)`: the most documents without a key.
    pub fn missing_by_day(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<MissingDay>, StoreError> {
        let read = || -> rusqlite::Result<Vec<MissingDay>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(Vec::new()) };
            self.conn
                .prepare_cached(
                    "SELECT at_ms / 86400000 AS day, COUNT(*),
                            MAX(missing_absent), MAX(missing_null), MAX(missing_empty), MAX(missing_array),
                            MAX(COALESCE(missing_absent, 0) + COALESCE(missing_null, 0) + COALESCE(missing_empty, 0)
                                + COALESCE(missing_array, 0))
                     FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1
                     GROUP BY day ORDER BY day",
                )?
                .query_map(
                    params![id, schema::check_kind(CheckName::MissingKeys), from.timestamp_millis(), to.timestamp_millis()],
                    |r| {
                        Ok(MissingDay {
                            date: date_of_day_number(r.get(0)?),
                            runs: count(r.get(1)?),
                            max_absent: count(r.get(2)?),
                            max_null: count(r.get(3)?),
                            max_empty: count(r.get(4)?),
                            max_array: count(r.get(5)?),
                            max_total: count(r.get(6)?),
                        })
                    },
                )?
                .collect()
        };
        read().map_err(|e| self.classify(e, "reading missing-key history"))
    }

    /// The first and last successful missing_keys runs in `[from, to)`.
    pub fn missing_first_last(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<(MissingAt, MissingAt)>, StoreError> {
        let read = || -> rusqlite::Result<Option<(MissingAt, MissingAt)>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(None) };
            let one = |order: &str| -> rusqlite::Result<Option<MissingAt>> {
                self.conn
                    .prepare_cached(&format!(
                        "SELECT at_ms, missing_absent, missing_null, missing_empty, missing_array
                         FROM check_runs
                         WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                           AND success = 1
                         ORDER BY at_ms {order} LIMIT 1"
                    ))?
                    .query_row(
                        params![id, schema::check_kind(CheckName::MissingKeys), from.timestamp_millis(), to.timestamp_millis()],
                        |r| {
                            Ok(MissingAt {
                                at: time(r.get(0)?),
                                absent: count(r.get(1)?),
                                null: count(r.get(2)?),
                                empty: count(r.get(3)?),
                                array: count(r.get(4)?),
                            })
                        },
                    )
                    .optional()
            };
            Ok(one("ASC")?.zip(one("DESC")?))
        };
        read().map_err(|e| self.classify(e, "reading missing-key history"))
    }

    /// The longest stretch in `[from, to)` without a successful run of `check`.
    /// `None` when successes leave no gap at all.
    pub fn longest_gap(
        &self,
        target: &str,
        check: CheckName,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<Gap>, StoreError> {
        let read = || -> rusqlite::Result<Option<Gap>> {
            let mut finder = GapFinder::new(from);
            if let Some(id) = self.lookup_target(target)? {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT at_ms FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1
                     ORDER BY at_ms",
                )?;
                let mut rows =
                    stmt.query(params![id, schema::check_kind(check), from.timestamp_millis(), to.timestamp_millis()])?;
                while let Some(r) = rows.next()? {
                    finder.success(time(r.get(0)?));
                }
            }
            Ok(finder.finish(to))
        };
        read().map_err(|e| self.classify(e, "finding gaps between successful runs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hour: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, hour, min, 0).unwrap()
    }

    #[test]
    fn samples_come_back_typed_and_unreadable_ones_are_left_out() {
        use crate::checks::{DuplicatesOutcome, Figures, Method};
        use crate::store::{RunOutcome, RunRecord};
        let mut store = Store::open_in_memory().unwrap();
        let sample = vec![DuplicateSample { key: serde_json::json!("a_b"), count: 2, ids: vec![1.into(), 2.into()] }];
        let run = |at| RunRecord {
            at,
            target: "chats".into(),
            duration: std::time::Duration::from_millis(5),
            outcome: RunOutcome::Succeeded(Figures::Duplicates(DuplicatesOutcome {
                keys: 1,
                documents: 1,
                method: Method::Aggregation,
                sample: sample.clone(),
            })),
        };
        store.record_runs(&[run(t(1, 0)), run(t(2, 0))]).unwrap();
        // A row as a newer or broken writer might have left it.
        store
            .conn
            .execute(
                "INSERT INTO check_runs (target_id, check_kind, at_ms, success, duration_us, duplicate_keys, duplicate_documents, sample)
                 VALUES (1, ?1, ?2, 1, 1, 1, 1, 'not json')",
                params![schema::check_kind(CheckName::Duplicates), t(3, 0).timestamp_millis()],
            )
            .unwrap();
        let seen = store.duplicate_samples("chats", t(0, 0), t(4, 0)).unwrap();
        assert_eq!(seen, vec![SampleSeen { sample, runs: 2, first_seen: t(1, 0), last_seen: t(2, 0) }]);
        // The unreadable run still counts.
        let days = store.duplicates_by_day("chats", t(0, 0), t(4, 0)).unwrap();
        assert_eq!(days[0].runs_with_duplicates, 3);
    }
}
