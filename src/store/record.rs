//! Check runs on their way into the store: the typed record the writer
//! takes, made from a finished [`TargetRun`], and its flattening into the
//! columns of `check_runs`.
//!
//! The record holds the checks' own outcome types, and `run_row` takes
//! every one of them apart field by field, so a new check (a new
//! [`Figures`] variant) or a new figure (a new outcome field) does not
//! compile until the store either gives it a column or says here that it is
//! not kept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{schema, target_id, Store, StoreError};
use crate::checks::{
    CanonicalDuplicatesOutcome, CheckName, DuplicatesOutcome, Figures, IndexOutcome, KeyConsistencyOutcome, MissingKeysOutcome, TargetRun,
};
use crate::checks::Method;
use crate::mongo::FailureReason;

/// One run of one check of one target, as the runner reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// When the run started.
    pub at: DateTime<Utc>,
    /// The target's name (`[[target]] name`).
    pub target: String,
    /// Wall time of the run.
    pub duration: Duration,
    /// What it found, or why it could not.
    pub outcome: RunOutcome,
}

/// What one run of a check ended with.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// The check produced its figures; their variant names the check.
    Succeeded(Figures),
    /// The check could not produce figures.
    Failed {
        /// Which check failed.
        check: CheckName,
        /// The bounded reason, as in `uniqwatch_check_failures_total{reason}`.
        reason: FailureReason,
    },
}

/// One record per check of a finished run, for the history writer.
pub fn records(run: &TargetRun) -> Vec<RunRecord> {
    run.results
        .iter()
        .map(|r| RunRecord {
            at: r.started_at,
            target: run.target.clone(),
            duration: r.duration,
            outcome: match &r.outcome {
                Ok(figures) => RunOutcome::Succeeded(figures.clone()),
                Err(e) => RunOutcome::Failed { check: r.check, reason: e.reason },
            },
        })
        .collect()
}

/// A run record flattened into the columns of `check_runs`.
#[derive(Debug, Default, PartialEq)]
struct RunRow {
    /// Which check, as its stored code ([`schema::check_kind`]).
    kind: i64,
    /// Start of the run, unix milliseconds.
    at_ms: i64,
    /// Whether the run produced figures.
    success: bool,
    /// Failure reason; `None` on success.
    reason: Option<&'static str>,
    /// Wall time in microseconds.
    duration_us: i64,
    /// How duplicates or missing keys were counted.
    method: Option<&'static str>,
    /// Index figures.
    index_present: Option<bool>,
    index_name: Option<String>,
    index_unique: Option<bool>,
    index_sparse: Option<bool>,
    index_hidden: Option<bool>,
    index_build: Option<&'static str>,
    /// Duplicates figures; `sample` only when the run found some.
    duplicate_keys: Option<i64>,
    duplicate_documents: Option<i64>,
    sample: Option<String>,
    /// Missing-key figures.
    missing_absent: Option<i64>,
    missing_null: Option<i64>,
    missing_empty: Option<i64>,
    missing_array: Option<i64>,
    documents: Option<i64>,
    /// Key-consistency figures.
    key_mismatch: Option<i64>,
    key_derivable: Option<i64>,
    key_underivable: Option<i64>,
}

/// A sample as its JSON column: only when it holds something.
fn sample_json<T: serde::Serialize>(sample: &[T]) -> Option<String> {
    // Plain structs of numbers, strings and JSON values always serialise.
    (!sample.is_empty()).then(|| serde_json::to_string(sample).expect("a sample serialises to JSON"))
}

/// A count as SQLite stores it; counts beyond `i64::MAX` are clamped.
fn stored(n: u64) -> Option<i64> {
    Some(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Flattens a run record into its row. Every outcome struct is taken apart
/// field by field: a field that is not stored is named and ignored here.
fn run_row(run: &RunRecord) -> RunRow {
    let base = |check: CheckName| RunRow {
        kind: schema::check_kind(check),
        at_ms: run.at.timestamp_millis(),
        duration_us: i64::try_from(run.duration.as_micros()).unwrap_or(i64::MAX),
        ..RunRow::default()
    };
    let figures = match &run.outcome {
        RunOutcome::Failed { check, reason } => return RunRow { reason: Some(reason.as_str()), ..base(*check) },
        RunOutcome::Succeeded(figures) => figures,
    };
    match figures {
        Figures::Index(IndexOutcome {
            // Kept through `present` and the problem's absence; the audit
            // reports missing or wrong, not why.
            namespace: _,
            build,
            present,
            name,
            unique,
            sparse,
            hidden,
            // Derived from the stored options when it matters; the audit
            // reports missing or wrong, not why.
            problem: _,
            // Guide the other checks of the same run; nothing to keep.
            guarantees_uniqueness: _,
            queryable: _,
            // Folded into `present`; the per-shard detail is not kept.
            shards: _,
            // A plan's shape is a diagnostic of the moment, not history.
            lookup: _,
        }) => RunRow {
            success: true,
            index_present: Some(*present),
            index_name: name.clone(),
            index_unique: Some(*unique),
            index_sparse: Some(*sparse),
            index_hidden: Some(*hidden),
            index_build: build.map(|b| b.as_str()),
            ..base(CheckName::Index)
        },
        Figures::Duplicates(DuplicatesOutcome { keys, documents, method, sample }) => RunRow {
            success: true,
            duplicate_keys: stored(*keys),
            duplicate_documents: stored(*documents),
            method: Some(method.as_str()),
            sample: sample_json(sample),
            ..base(CheckName::Duplicates)
        },
        Figures::KeyConsistency(KeyConsistencyOutcome { mismatch, derivable, underivable, documents, sample }) => RunRow {
            success: true,
            key_mismatch: stored(*mismatch),
            key_derivable: stored(*derivable),
            key_underivable: stored(*underivable),
            documents: stored(*documents),
            method: Some(Method::Canonical.as_str()),
            sample: sample_json(sample),
            ..base(CheckName::KeyConsistency)
        },
        Figures::CanonicalDuplicates(CanonicalDuplicatesOutcome { keys, documents, sample }) => RunRow {
            success: true,
            duplicate_keys: stored(*keys),
            duplicate_documents: stored(*documents),
            method: Some(Method::Canonical.as_str()),
            sample: sample_json(sample),
            ..base(CheckName::CanonicalDuplicates)
        },
        Figures::MissingKeys(MissingKeysOutcome { absent, null, empty, array, documents, method }) => RunRow {
            success: true,
            missing_absent: stored(*absent),
            missing_null: stored(*null),
            missing_empty: stored(*empty),
            missing_array: stored(*array),
            documents: stored(*documents),
            method: Some(method.as_str()),
            ..base(CheckName::MissingKeys)
        },
    }
}

impl Store {
    /// Records a batch of check runs in one transaction: all or nothing.
    /// A run recorded twice (same target, check and start time) is stored once.
    pub fn record_runs(&mut self, runs: &[RunRecord]) -> Result<(), StoreError> {
        let rows: Vec<(&str, RunRow)> = runs.iter().map(|run| (run.target.as_str(), run_row(run))).collect();
        let mut new_ids = std::collections::HashMap::new();
        let result = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO check_runs (target_id, check_kind, at_ms, success, reason,
                        duration_us, method, index_present, index_name, index_unique, index_sparse,
                        index_hidden, duplicate_keys, duplicate_documents, sample, missing_absent,
                        missing_null, missing_empty, missing_array, documents, index_build,
                        key_mismatch, key_derivable, key_underivable)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                        ?22, ?23, ?24)",
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
                        r.missing_null, r.missing_empty, r.missing_array, r.documents, r.index_build,
                        r.key_mismatch, r.key_derivable, r.key_underivable,
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.classify(e, "recording check runs"))?;
        // Only ids whose insert committed may be cached.
        self.target_ids.extend(new_ids);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::checks::scan::DuplicateSample;
    use chrono::TimeZone;

    /// Index figures as the check reports them.
    pub(crate) fn index(present: bool, name: Option<&str>) -> Figures {
        Figures::Index(IndexOutcome {
            present,
            name: name.map(str::to_string),
            unique: present,
            sparse: false,
            hidden: false,
            problem: None,
            guarantees_uniqueness: present,
            ..IndexOutcome::default()
        })
    }

    fn run(outcome: RunOutcome) -> RunRecord {
        RunRecord {
            at: Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap(),
            target: "chats".into(),
            duration: Duration::from_millis(250),
            outcome,
        }
    }

    #[test]
    fn index_figures_become_columns() {
        let row = run_row(&run(RunOutcome::Succeeded(index(false, Some("participantsKey_1")))));
        assert_eq!(row.kind, 1);
        assert_eq!(row.index_present, Some(false));
        assert_eq!(row.index_name.as_deref(), Some("participantsKey_1"));
        assert_eq!(row.index_sparse, Some(false));
        assert_eq!(row.duration_us, 250_000);
        assert_eq!(row.reason, None);
    }

    #[test]
    fn duplicate_sample_is_kept_only_when_not_empty() {
        let with = run_row(&run(RunOutcome::Succeeded(Figures::Duplicates(DuplicatesOutcome {
            keys: 1,
            documents: 2,
            method: Method::Aggregation,
            sample: vec![DuplicateSample {
                key: serde_json::json!("a_b"),
                count: 3,
                ids: vec![1.into(), 2.into(), 3.into()],
            }],
        }))));
        assert_eq!(with.duplicate_documents, Some(2));
        assert_eq!(with.method, Some("aggregation"));
        assert!(with.sample.unwrap().contains("a_b"));
        let without = run_row(&run(RunOutcome::Succeeded(Figures::Duplicates(DuplicatesOutcome {
            keys: 0,
            documents: 0,
            method: Method::UniqueIndex,
            sample: Vec::new(),
        }))));
        assert_eq!(without.sample, None);
        assert_eq!(without.duplicate_keys, Some(0));
    }

    #[test]
    fn failed_run_keeps_its_reason_and_no_figures() {
        let row = run_row(&run(RunOutcome::Failed { check: CheckName::MissingKeys, reason: FailureReason::Timeout }));
        assert!(!row.success);
        assert_eq!(row.kind, 3);
        assert_eq!(row.reason, Some("timeout"));
        assert_eq!(row.missing_absent, None);
    }

    #[test]
    fn missing_key_figures_become_columns() {
        let row = run_row(&run(RunOutcome::Succeeded(Figures::MissingKeys(MissingKeysOutcome {
            absent: 5,
            null: 0,
            empty: u64::MAX,
            array: 2,
            documents: 9,
            method: Method::IndexCounts,
        }))));
        assert_eq!(row.missing_absent, Some(5));
        assert_eq!(row.missing_null, Some(0));
        assert_eq!(row.missing_empty, Some(i64::MAX), "clamped, not wrapped");
        assert_eq!(row.missing_array, Some(2));
        assert_eq!(row.method, Some("index_counts"));
    }

    #[test]
    fn a_run_gives_one_record_per_check_with_its_outcome() {
        use crate::checks::CheckResult;
        use crate::mongo::QueryError;
        let at = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let result = |check, outcome| CheckResult { check, started_at: at, duration: Duration::from_secs(1), outcome };
        let run = TargetRun {
            target: "chats".into(),
            started_at: at,
            results: vec![
                result(CheckName::Index, Ok(index(true, None))),
                result(CheckName::Duplicates, Err(QueryError::new(FailureReason::Timeout, "slow"))),
            ],
        };
        let records = records(&run);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].outcome, RunOutcome::Succeeded(index(true, None)));
        assert_eq!(
            records[1].outcome,
            RunOutcome::Failed { check: CheckName::Duplicates, reason: FailureReason::Timeout }
        );
        assert!(records.iter().all(|r| r.target == "chats" && r.at == at));
    }

    #[test]
    fn runs_round_trip_and_a_repeat_is_stored_once() {
        let mut store = Store::open_in_memory().unwrap();
        let r = run(RunOutcome::Succeeded(index(true, None)));
        store.record_runs(&[r.clone(), r.clone()]).unwrap();
        store.record_runs(&[r]).unwrap();
        let n: i64 = store.conn.query_row("SELECT count(*) FROM check_runs", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }
}
