//! The canonical checks in the monthly audit: `canonical_duplicates` (one
//! document per canonical value?) and `key_consistency` (every key its
//! canonical value?), for a target with `[target.canonical]`.
//!
//! This file holds their part of the report model, what a fresh check at
//! report time found ([`CurrentCanonical`]), and how the month is read from
//! the store ([`canonical_report`]). A target whose month holds no run of
//! either check, and that has no canonical figures now, gets no canonical
//! section at all: `TargetReport::canonical` is `None` and absent from JSON.
//! The verdict's questions are in `verdict`; the Markdown and HTML section in
//! `canonical_section`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{push_bounded, AuditError, ChecksReport, CurrentState, NowReport, MAX_OFFENDING_KEYS};
use crate::checks::{CanonicalSample, CheckName, MismatchKind, MismatchSample};
use crate::store::query::{DuplicatesDay, KeyConsistencyDay, SampleSeen};
use crate::store::Store;

/// What the fresh canonical pass at report time found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CurrentCanonical {
    /// Both canonical checks ran.
    Checked {
        /// `key_consistency` now.
        key_consistency: CurrentKeyConsistency,
        /// `canonical_duplicates` now.
        duplicates: CurrentCanonicalDuplicates,
    },
    /// The pass could not run (the key checks did); `reason` says why.
    Unchecked { reason: String },
}

/// `key_consistency` figures of the fresh check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentKeyConsistency {
    /// Stored key present and not the canonical value.
    pub mismatch: u64,
    /// No key, canonical value known.
    pub derivable: u64,
    /// Canonical value cannot be computed.
    pub underivable: u64,
    /// Documents the pass read.
    pub documents: u64,
    /// The documents it named (bounded).
    pub sample: Vec<MismatchSample>,
}

/// `canonical_duplicates` figures of the fresh check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentCanonicalDuplicates {
    /// Surplus documents: Σ(count − 1) over the canonical values held by several.
    pub documents: u64,
    /// Canonical values held by more than one document.
    pub values: u64,
    /// The largest groups (bounded).
    pub sample: Vec<CanonicalSample>,
}

/// The canonical checks over the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonicalReport {
    /// Whether the canonical "now" figures come from a fresh check, and why not.
    pub now: NowReport,
    /// Canonical values held by several documents.
    pub duplicates: CanonicalDuplicatesReport,
    /// Documents whose key is not their canonical value.
    pub key_consistency: KeyConsistencyReport,
}

/// `canonical_duplicates` over the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CanonicalDuplicatesReport {
    /// Successful runs.
    pub runs: u64,
    /// Runs that found a canonical value held by several documents.
    pub runs_with_duplicates: u64,
    /// Most surplus documents any run saw; null without a successful run.
    pub max_documents: Option<u64>,
    /// Most canonical values held by several documents in one run; null without a successful run.
    pub max_values: Option<u64>,
    /// First run that found some.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last run that found some.
    pub last_seen: Option<DateTime<Utc>>,
    /// The day with the most surplus documents (the earliest of equals); null when none was seen.
    pub worst_day: Option<CanonicalDuplicatesDayReport>,
    /// Per day with a successful run: the most seen.
    pub by_day: Vec<CanonicalDuplicatesDayReport>,
    /// The canonical values the runs' samples named, most documents first.
    pub offending_values: Vec<OffendingValue>,
    /// How many distinct canonical values the samples named (the list may be cut).
    pub offending_values_total: u64,
    /// The fresh check's figures; nulls when it could not run.
    pub current: CurrentCanonicalDuplicatesReport,
}

/// The most canonical duplicates seen on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonicalDuplicatesDayReport {
    /// The day.
    pub date: NaiveDate,
    /// Most surplus documents.
    pub documents: u64,
    /// Most canonical values held by several documents.
    pub values: u64,
}

/// A canonical value held by several documents during the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffendingValue {
    /// The canonical value.
    pub canonical: serde_json::Value,
    /// The most documents seen holding it in one run.
    pub count: u64,
    /// Document ids seen holding it (bounded).
    pub ids: Vec<serde_json::Value>,
    /// The stored keys seen among them (bounded); null for a document without one.
    pub keys: Vec<serde_json::Value>,
    /// Runs whose sample named it.
    pub runs: u64,
    /// First such run.
    pub first_seen: DateTime<Utc>,
    /// Last such run.
    pub last_seen: DateTime<Utc>,
}

/// `canonical_duplicates` now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentCanonicalDuplicatesReport {
    /// Surplus documents now; null when not checked.
    pub documents: Option<u64>,
    /// Canonical values held by several documents now; null when not checked.
    pub values: Option<u64>,
    /// The largest groups now.
    pub sample: Vec<CanonicalSample>,
}

/// `key_consistency` over the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KeyConsistencyReport {
    /// Successful runs.
    pub runs: u64,
    /// Runs that found a document whose key is not its canonical value.
    pub runs_with_mismatches: u64,
    /// The most of each kind any run saw; nulls without a successful run.
    pub max: OptionalKinds,
    /// The most of all kinds together in one run; null without a successful run.
    pub max_total: Option<u64>,
    /// First run that found one.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last run that found one.
    pub last_seen: Option<DateTime<Utc>>,
    /// The day with the most such documents in one run (the earliest of equals); null when none was seen.
    pub worst_day: Option<KeyConsistencyDayReport>,
    /// Per day with a successful run: the most seen.
    pub by_day: Vec<KeyConsistencyDayReport>,
    /// The documents the runs' samples named, first seen first.
    pub offending_documents: Vec<OffendingDocument>,
    /// How many distinct entries the samples named (the list may be cut).
    pub offending_documents_total: u64,
    /// The fresh check's figures; nulls when it could not run.
    pub current: CurrentKeyConsistencyReport,
}

/// Key-consistency counts that may be unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OptionalKinds {
    /// Stored key differs from the canonical value.
    pub mismatch: Option<u64>,
    /// No key; canonical value known.
    pub derivable: Option<u64>,
    /// Canonical value cannot be computed.
    pub underivable: Option<u64>,
}

/// The most documents whose key is not their canonical value, on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyConsistencyDayReport {
    /// The day.
    pub date: NaiveDate,
    /// Most mismatches.
    pub mismatch: u64,
    /// Most derivable.
    pub derivable: u64,
    /// Most underivable.
    pub underivable: u64,
    /// Most of all kinds together in one run.
    pub total: u64,
}

/// A document whose key was not its canonical value, as the samples named it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffendingDocument {
    /// The document's `_id`.
    pub id: serde_json::Value,
    /// mismatch, derivable or underivable.
    pub kind: MismatchKind,
    /// The stored key; null when absent.
    pub stored: serde_json::Value,
    /// The canonical value; null when it cannot be computed.
    pub canonical: serde_json::Value,
    /// Runs whose sample named it so.
    pub runs: u64,
    /// First such run.
    pub first_seen: DateTime<Utc>,
    /// Last such run.
    pub last_seen: DateTime<Utc>,
}

/// `key_consistency` now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentKeyConsistencyReport {
    /// Each kind now; nulls when not checked.
    pub kinds: OptionalKinds,
    /// All kinds together now; null when not checked.
    pub total: Option<u64>,
    /// Documents the pass read; null when not checked.
    pub documents: Option<u64>,
    /// The documents it named now.
    pub sample: Vec<MismatchSample>,
}

/// The canonical section of one target's month, or `None` when the month
/// holds no canonical run (failed or not) and the fresh check found no
/// canonical figures: a target without `[target.canonical]` shows nothing.
pub(super) fn canonical_report(
    store: &Store,
    name: &str,
    checks: &ChecksReport,
    current: Option<&CurrentState>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Option<CanonicalReport>, AuditError> {
    let runs = |check: CheckName| checks.by_check.get(check.as_str()).map_or(0, |c| c.runs);
    let now_canonical = match current {
        Some(CurrentState::Reachable { canonical, .. }) => canonical.as_ref(),
        _ => None,
    };
    if runs(CheckName::KeyConsistency) + runs(CheckName::CanonicalDuplicates) == 0 && now_canonical.is_none() {
        return Ok(None);
    }
    let (now, figures) = match (current, now_canonical) {
        (_, Some(CurrentCanonical::Checked { key_consistency, duplicates })) => {
            (NowReport { checked: true, reason: None }, Some((key_consistency, duplicates)))
        }
        (_, Some(CurrentCanonical::Unchecked { reason })) => (NowReport { checked: false, reason: Some(reason.clone()) }, None),
        (Some(CurrentState::Reachable { .. }), None) => {
            (NowReport { checked: false, reason: Some("the target has no [target.canonical] now".into()) }, None)
        }
        (Some(CurrentState::Unreachable { reason }), None) => (NowReport { checked: false, reason: Some(reason.clone()) }, None),
        (None, None) => (NowReport { checked: false, reason: Some("not checked at report time".into()) }, None),
    };

    let days = store.canonical_duplicates_by_day(name, from, to)?;
    let (offending_values, offending_values_total) = offending_values(&store.canonical_samples(name, from, to)?);
    let duplicates = duplicates_report(&days, offending_values, offending_values_total, figures.map(|(_, d)| d));

    let days = store.key_consistency_by_day(name, from, to)?;
    let (offending_documents, offending_documents_total) = offending_documents(&store.mismatch_samples(name, from, to)?);
    let key_consistency =
        key_consistency_report(&days, offending_documents, offending_documents_total, figures.map(|(k, _)| k));
    Ok(Some(CanonicalReport { now, duplicates, key_consistency }))
}

fn duplicates_report(
    days: &[DuplicatesDay],
    offending_values: Vec<OffendingValue>,
    offending_values_total: u64,
    now: Option<&CurrentCanonicalDuplicates>,
) -> CanonicalDuplicatesReport {
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let by_day: Vec<CanonicalDuplicatesDayReport> = days
        .iter()
        .map(|d| CanonicalDuplicatesDayReport { date: d.date, documents: d.max_documents, values: d.max_keys })
        .collect();
    CanonicalDuplicatesReport {
        runs,
        runs_with_duplicates: days.iter().map(|d| d.runs_with_duplicates).sum(),
        max_documents: (runs > 0).then(|| days.iter().map(|d| d.max_documents).max().unwrap_or(0)),
        max_values: (runs > 0).then(|| days.iter().map(|d| d.max_keys).max().unwrap_or(0)),
        first_seen: days.iter().filter_map(|d| d.first_seen).min(),
        last_seen: days.iter().filter_map(|d| d.last_seen).max(),
        // max_by_key keeps the last of equals; reverse so the earliest wins.
        worst_day: by_day.iter().filter(|d| d.documents > 0).rev().max_by_key(|d| d.documents).cloned(),
        by_day,
        offending_values,
        offending_values_total,
        current: match now {
            Some(CurrentCanonicalDuplicates { documents, values, sample }) => CurrentCanonicalDuplicatesReport {
                documents: Some(*documents),
                values: Some(*values),
                sample: sample.clone(),
            },
            None => CurrentCanonicalDuplicatesReport::default(),
        },
    }
}

fn key_consistency_report(
    days: &[KeyConsistencyDay],
    offending_documents: Vec<OffendingDocument>,
    offending_documents_total: u64,
    now: Option<&CurrentKeyConsistency>,
) -> KeyConsistencyReport {
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let max_of = |f: fn(&KeyConsistencyDay) -> u64| (runs > 0).then(|| days.iter().map(f).max().unwrap_or(0));
    let by_day: Vec<KeyConsistencyDayReport> = days
        .iter()
        .map(|d| KeyConsistencyDayReport {
            date: d.date,
            mismatch: d.max_mismatch,
            derivable: d.max_derivable,
            underivable: d.max_underivable,
            total: d.max_total,
        })
        .collect();
    KeyConsistencyReport {
        runs,
        runs_with_mismatches: days.iter().map(|d| d.runs_with_mismatches).sum(),
        max: OptionalKinds {
            mismatch: max_of(|d| d.max_mismatch),
            derivable: max_of(|d| d.max_derivable),
            underivable: max_of(|d| d.max_underivable),
        },
        max_total: max_of(|d| d.max_total),
        first_seen: days.iter().filter_map(|d| d.first_seen).min(),
        last_seen: days.iter().filter_map(|d| d.last_seen).max(),
        // max_by_key keeps the last of equals; reverse so the earliest wins.
        worst_day: by_day.iter().filter(|d| d.total > 0).rev().max_by_key(|d| d.total).cloned(),
        by_day,
        offending_documents,
        offending_documents_total,
        current: match now {
            Some(CurrentKeyConsistency { mismatch, derivable, underivable, documents, sample }) => {
                CurrentKeyConsistencyReport {
                    kinds: OptionalKinds {
                        mismatch: Some(*mismatch),
                        derivable: Some(*derivable),
                        underivable: Some(*underivable),
                    },
                    total: Some(mismatch + derivable + underivable),
                    documents: Some(*documents),
                    sample: sample.clone(),
                }
            }
            None => CurrentKeyConsistencyReport::default(),
        },
    }
}

/// Merges the month's distinct canonical samples into one entry per
/// canonical value: the most documents seen, the ids and stored keys seen
/// (bounded), and when. Returns the list, cut at [`MAX_OFFENDING_KEYS`],
/// and the number of distinct values.
fn offending_values(samples: &[SampleSeen<CanonicalSample>]) -> (Vec<OffendingValue>, u64) {
    let mut by_value: HashMap<String, OffendingValue> = HashMap::new();
    for seen in samples {
        for entry in &seen.sample {
            let slot = by_value.entry(entry.canonical.to_string()).or_insert_with(|| OffendingValue {
                canonical: entry.canonical.clone(),
                count: 0,
                ids: Vec::new(),
                keys: Vec::new(),
                runs: 0,
                first_seen: seen.first_seen,
                last_seen: seen.last_seen,
            });
            slot.count = slot.count.max(entry.count);
            slot.runs += seen.runs;
            slot.first_seen = slot.first_seen.min(seen.first_seen);
            slot.last_seen = slot.last_seen.max(seen.last_seen);
            push_bounded(&mut slot.ids, &entry.ids);
            push_bounded(&mut slot.keys, &entry.keys);
        }
    }
    let total = by_value.len() as u64;
    let mut values: Vec<OffendingValue> = by_value.into_values().collect();
    values.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.first_seen.cmp(&b.first_seen))
            .then(a.canonical.to_string().cmp(&b.canonical.to_string()))
    });
    values.truncate(MAX_OFFENDING_KEYS);
    (values, total)
}

/// Merges the month's distinct key-consistency samples into one entry per
/// document as it was seen (id, kind, stored key, canonical value): a
/// document fixed by half shows once per state. Returns the list, first seen
/// first and cut at [`MAX_OFFENDING_KEYS`], and the number of distinct entries.
fn offending_documents(samples: &[SampleSeen<MismatchSample>]) -> (Vec<OffendingDocument>, u64) {
    let mut by_entry: HashMap<String, OffendingDocument> = HashMap::new();
    for seen in samples {
        for entry in &seen.sample {
            let identity = format!("{}\u{0}{}\u{0}{}\u{0}{}", entry.id, entry.kind.as_str(), entry.stored, entry.canonical);
            let slot = by_entry.entry(identity).or_insert_with(|| OffendingDocument {
                id: entry.id.clone(),
                kind: entry.kind,
                stored: entry.stored.clone(),
                canonical: entry.canonical.clone(),
                runs: 0,
                first_seen: seen.first_seen,
                last_seen: seen.last_seen,
            });
            slot.runs += seen.runs;
            slot.first_seen = slot.first_seen.min(seen.first_seen);
            slot.last_seen = slot.last_seen.max(seen.last_seen);
        }
    }
    let total = by_entry.len() as u64;
    let mut documents: Vec<OffendingDocument> = by_entry.into_values().collect();
    documents.sort_by(|a, b| {
        a.first_seen
            .cmp(&b.first_seen)
            .then(a.kind.cmp(&b.kind))
            .then(a.id.to_string().cmp(&b.id.to_string()))
            .then(a.stored.to_string().cmp(&b.stored.to_string()))
    });
    documents.truncate(MAX_OFFENDING_KEYS);
    (documents, total)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::month::utc;
    use super::*;

    fn seen<T>(sample: Vec<T>, runs: u64, d1: u32, d2: u32) -> SampleSeen<T> {
        SampleSeen { sample, runs, first_seen: utc(2026, 10, d1, 0), last_seen: utc(2026, 10, d2, 0) }
    }

    #[test]
    fn offending_values_merge_samples_and_bound_ids_and_keys() {
        let group = |canonical: &str, count, ids: std::ops::Range<u64>, keys: &[&str]| CanonicalSample {
            canonical: json!(canonical),
            count,
            ids: ids.map(|id| json!(id)).collect(),
            keys: keys.iter().map(|k| json!(k)).collect(),
        };
        let (values, total) = offending_values(&[
            seen(vec![group("a_b", 2, 0..2, &["a_b", "b_a"])], 3, 2, 4),
            seen(vec![group("a_b", 3, 0..80, &["a_b", "B_A"]), group("c_d", 2, 7..9, &["c_d"])], 2, 5, 6),
        ]);
        assert_eq!(total, 2);
        assert_eq!(values[0].canonical, json!("a_b"));
        assert_eq!(values[0].count, 3);
        assert_eq!(values[0].ids.len(), super::super::MAX_IDS_PER_KEY, "ids are bounded");
        assert_eq!(values[0].keys, vec![json!("a_b"), json!("b_a"), json!("B_A")]);
        assert_eq!(values[0].runs, 5);
        assert_eq!((values[0].first_seen, values[0].last_seen), (utc(2026, 10, 2, 0), utc(2026, 10, 6, 0)));
        assert_eq!(values[1].canonical, json!("c_d"));
    }

    #[test]
    fn offending_documents_keep_each_state_of_a_document() {
        let doc = |id: u64, kind, stored: serde_json::Value| MismatchSample { id: json!(id), kind, stored, canonical: json!("a_b") };
        let many: Vec<MismatchSample> = (100..300).map(|id| doc(id, MismatchKind::Mismatch, json!("b_a"))).collect();
        let (documents, total) = offending_documents(&[
            seen(vec![doc(1, MismatchKind::Derivable, json!(null))], 2, 1, 2),
            seen(vec![doc(1, MismatchKind::Mismatch, json!("b_a")), doc(1, MismatchKind::Derivable, json!(null))], 1, 3, 3),
            seen(many, 1, 4, 4),
        ]);
        assert_eq!(total, 202);
        assert_eq!(documents.len(), MAX_OFFENDING_KEYS, "the list is bounded");
        assert_eq!((documents[0].kind, documents[0].runs), (MismatchKind::Derivable, 3));
        assert_eq!(documents[0].last_seen, utc(2026, 10, 3, 0));
        assert_eq!((documents[1].kind, &documents[1].stored), (MismatchKind::Mismatch, &json!("b_a")));
    }

    #[test]
    fn the_worst_day_is_the_earliest_of_the_largest() {
        let day = |d: u32, documents| DuplicatesDay {
            date: utc(2026, 10, d, 0).date_naive(),
            runs: 1,
            max_documents: documents,
            max_keys: 1,
            runs_with_duplicates: u64::from(documents > 0),
            first_seen: None,
            last_seen: None,
        };
        let report = duplicates_report(&[day(1, 0), day(2, 4), day(3, 4), day(4, 1)], Vec::new(), 0, None);
        assert_eq!(report.worst_day.map(|d| d.date), Some(utc(2026, 10, 2, 0).date_naive()));
        assert_eq!(report.current, CurrentCanonicalDuplicatesReport::default());
        let clean = duplicates_report(&[day(1, 0)], Vec::new(), 0, None);
        assert_eq!((clean.worst_day, clean.max_documents), (None, Some(0)));
    }
}
