//! Reads of the canonical checks' runs for the monthly audit:
//! `key_consistency` (kinds per day, and the documents its samples named)
//! and `canonical_duplicates` (read like `duplicates`, its sample typed as
//! canonical values). A target without `[target.canonical]` has no such
//! rows, and every read comes back empty.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::params;

use super::{count, date_of_day_number, time, DuplicatesDay, SampleSeen};
use crate::checks::{CanonicalSample, CheckName, MismatchSample};
use crate::store::{schema, Store, StoreError};

/// The successful `key_consistency` runs of one UTC day.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConsistencyDay {
    /// The day.
    pub date: NaiveDate,
    /// Successful runs that day.
    pub runs: u64,
    /// Most documents whose stored key differs from the canonical value.
    pub max_mismatch: u64,
    /// Most documents without a key whose canonical value is known.
    pub max_derivable: u64,
    /// Most documents whose canonical value cannot be computed.
    pub max_underivable: u64,
    /// Most documents of all three kinds together in one run.
    pub max_total: u64,
    /// Runs that found at least one such document.
    pub runs_with_mismatches: u64,
    /// First run that found one.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last run that found one.
    pub last_seen: Option<DateTime<Utc>>,
}

impl Store {
    /// Per UTC day in `[from, to)`: the canonical values held by several
    /// documents, as the successful `canonical_duplicates` runs counted them
    /// (`max_keys` counts canonical values). Days without one are absent.
    pub fn canonical_duplicates_by_day(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DuplicatesDay>, StoreError> {
        self.duplicate_days(target, CheckName::CanonicalDuplicates, from, to)
    }

    /// The distinct `canonical_duplicates` samples of `[from, to)`, read as
    /// [`Store::duplicate_samples`] reads the duplicates check's.
    pub fn canonical_samples(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleSeen<CanonicalSample>>, StoreError> {
        self.samples(target, CheckName::CanonicalDuplicates, from, to)
    }

    /// The distinct `key_consistency` samples of `[from, to)`: the
    /// documents whose key was not their canonical value, as the runs named them.
    pub fn mismatch_samples(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleSeen<MismatchSample>>, StoreError> {
        self.samples(target, CheckName::KeyConsistency, from, to)
    }

    /// Per UTC day in `[from, to)`: the documents whose key is not their
    /// canonical value, by kind, as the successful `key_consistency` runs
    /// counted them. Days without a successful run are absent.
    pub fn key_consistency_by_day(
        &self,
        target: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<KeyConsistencyDay>, StoreError> {
        let read = || -> rusqlite::Result<Vec<KeyConsistencyDay>> {
            let Some(id) = self.lookup_target(target)? else { return Ok(Vec::new()) };
            let total = "(COALESCE(key_mismatch, 0) + COALESCE(key_derivable, 0) + COALESCE(key_underivable, 0))";
            self.conn
                .prepare_cached(&format!(
                    "SELECT at_ms / 86400000 AS day, COUNT(*),
                            MAX(key_mismatch), MAX(key_derivable), MAX(key_underivable), MAX({total}),
                            SUM({total} > 0),
                            MIN(CASE WHEN {total} > 0 THEN at_ms END),
                            MAX(CASE WHEN {total} > 0 THEN at_ms END)
                     FROM check_runs
                     WHERE target_id = ?1 AND check_kind = ?2 AND at_ms >= ?3 AND at_ms < ?4
                       AND success = 1
                     GROUP BY day ORDER BY day"
                ))?
                .query_map(
                    params![id, schema::check_kind(CheckName::KeyConsistency), from.timestamp_millis(), to.timestamp_millis()],
                    |r| {
                        Ok(KeyConsistencyDay {
                            date: date_of_day_number(r.get(0)?),
                            runs: count(r.get(1)?),
                            max_mismatch: count(r.get(2)?),
                            max_derivable: count(r.get(3)?),
                            max_underivable: count(r.get(4)?),
                            max_total: count(r.get(5)?),
                            runs_with_mismatches: count(r.get(6)?),
                            first_seen: r.get::<_, Option<i64>>(7)?.map(time),
                            last_seen: r.get::<_, Option<i64>>(8)?.map(time),
                        })
                    },
                )?
                .collect()
        };
        read().map_err(|e| self.classify(e, "reading key consistency history"))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::checks::{CanonicalDuplicatesOutcome, MismatchKind, DuplicatesOutcome, Figures, KeyConsistencyOutcome, Method};
    use crate::mongo::FailureReason;
    use crate::store::{RunOutcome, RunRecord};

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
    }

    fn run(at: DateTime<Utc>, outcome: RunOutcome) -> RunRecord {
        RunRecord { at, target: "chats".into(), duration: std::time::Duration::from_millis(5), outcome }
    }

    fn consistency(mismatch: u64, derivable: u64, underivable: u64, sample: Vec<MismatchSample>) -> RunOutcome {
        RunOutcome::Succeeded(Figures::KeyConsistency(KeyConsistencyOutcome {
            mismatch,
            derivable,
            underivable,
            documents: 100,
            sample,
        }))
    }

    fn canonical_dups(keys: u64, documents: u64, sample: Vec<CanonicalSample>) -> RunOutcome {
        RunOutcome::Succeeded(Figures::CanonicalDuplicates(CanonicalDuplicatesOutcome { keys, documents, sample }))
    }

    fn mismatch(id: u64) -> MismatchSample {
        MismatchSample { id: id.into(), kind: MismatchKind::Mismatch, stored: json!("b_a"), canonical: json!("a_b") }
    }

    #[test]
    fn key_consistency_days_take_the_most_of_each_kind_and_ignore_failures() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .record_runs(&[
                run(t(2, 0), consistency(0, 0, 0, Vec::new())),
                run(t(2, 1), consistency(3, 0, 1, vec![mismatch(1)])),
                run(t(2, 2), consistency(1, 2, 0, vec![mismatch(1)])),
                run(t(2, 3), RunOutcome::Failed { check: CheckName::KeyConsistency, reason: FailureReason::Timeout }),
                run(t(4, 0), consistency(0, 0, 0, Vec::new())),
                // The other canonical check and the key checks are not counted here.
                run(t(2, 1), canonical_dups(5, 9, Vec::new())),
            ])
            .unwrap();
        let days = store.key_consistency_by_day("chats", t(1, 0), t(5, 0)).unwrap();
        assert_eq!(
            days,
            vec![
                KeyConsistencyDay {
                    date: t(2, 0).date_naive(),
                    runs: 3,
                    max_mismatch: 3,
                    max_derivable: 2,
                    max_underivable: 1,
                    max_total: 4,
                    runs_with_mismatches: 2,
                    first_seen: Some(t(2, 1)),
                    last_seen: Some(t(2, 2)),
                },
                KeyConsistencyDay {
                    date: t(4, 0).date_naive(),
                    runs: 1,
                    max_mismatch: 0,
                    max_derivable: 0,
                    max_underivable: 0,
                    max_total: 0,
                    runs_with_mismatches: 0,
                    first_seen: None,
                    last_seen: None,
                },
            ]
        );
        let seen = store.mismatch_samples("chats", t(1, 0), t(5, 0)).unwrap();
        assert_eq!(seen, vec![SampleSeen { sample: vec![mismatch(1)], runs: 2, first_seen: t(2, 1), last_seen: t(2, 2) }]);
        assert!(store.key_consistency_by_day("users", t(1, 0), t(5, 0)).unwrap().is_empty());
    }

    #[test]
    fn canonical_duplicates_read_apart_from_the_duplicates_check() {
        let mut store = Store::open_in_memory().unwrap();
        let group = CanonicalSample {
            canonical: json!("a_b"),
            count: 2,
            ids: vec![json!(1), json!(2)],
            keys: vec![json!("a_b"), json!("b_a")],
        };
        store
            .record_runs(&[
                run(t(3, 0), canonical_dups(1, 1, vec![group.clone()])),
                run(t(3, 6), canonical_dups(0, 0, Vec::new())),
                run(
                    t(3, 0),
                    RunOutcome::Succeeded(Figures::Duplicates(DuplicatesOutcome {
                        keys: 7,
                        documents: 8,
                        method: Method::Aggregation,
                        sample: Vec::new(),
                    })),
                ),
            ])
            .unwrap();
        let days = store.canonical_duplicates_by_day("chats", t(1, 0), t(5, 0)).unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!((days[0].runs, days[0].max_documents, days[0].max_keys, days[0].runs_with_duplicates), (2, 1, 1, 1));
        assert_eq!(days[0].last_seen, Some(t(3, 0)));
        let seen = store.canonical_samples("chats", t(1, 0), t(5, 0)).unwrap();
        assert_eq!(seen, vec![SampleSeen { sample: vec![group], runs: 1, first_seen: t(3, 0), last_seen: t(3, 0) }]);
        // The duplicates check's own history is untouched by the canonical rows.
        assert_eq!(store.duplicates_by_day("chats", t(1, 0), t(5, 0)).unwrap()[0].max_documents, 8);
        assert!(store.duplicate_samples("chats", t(1, 0), t(5, 0)).unwrap().is_empty());
    }
}
