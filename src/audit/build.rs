//! Building a report: a fresh check of every target, then one month of the
//! history store, combined into an [`AuditReport`].
//!
//! [`fn@build`] is what `uniqwatch audit` and the scheduled job call: it checks
//! every target now (the report's "now" figures), then reads the store on a
//! blocking thread. [`build_report`] is the pure part: the same store
//! contents and arguments give the same report. A store that does not exist
//! yet reads as an empty history, so the report says there is none.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use super::verdict::verdict;
use super::*;
use super::canonical::canonical_report;
use crate::checks::{
    self, BuildState, CanonicalDuplicatesOutcome, CheckName, DuplicatesOutcome, Figures, Group, IndexOutcome,
    KeyConsistencyOutcome, MissingKeysOutcome, TargetRun, CHECKS,
};
use crate::config::Config;
use crate::mongo::Mongo;
use crate::store::query::{Gap, MissingAt, MissingDay, SampleSeen};
use crate::store::{self, Store, StoreError};

/// Builds the report of `month`: a fresh check of every target, then the
/// month's history from the store under `state_dir`.
pub async fn build(config: &Config, mongo: &Mongo, month: Month, now: DateTime<Utc>) -> anyhow::Result<AuditReport> {
    let mut current = BTreeMap::new();
    for target in &config.targets {
        let run = checks::run_target(target, mongo).await;
        current.insert(target.name.clone(), current_state(&run));
    }
    let (targets, sources) = report_subjects(config);
    let path = store::history_path(&config.state.dir);
    let report = tokio::task::spawn_blocking(move || -> Result<AuditReport, AuditError> {
        let store = open_for_reading(&path)?;
        build_report(&store, month, &targets, &sources, &current, now)
    })
    .await??;
    Ok(report)
}

/// The store read-only; a store not created yet reads as an empty history.
fn open_for_reading(path: &Path) -> Result<Store, StoreError> {
    match Store::open_read_only(path) {
        Err(StoreError::Missing { .. }) => Store::open_in_memory(),
        other => other,
    }
}

/// What a fresh run says about "now", for the report. Every outcome is
/// taken apart field by field, so a new check or a new figure does not
/// compile until the report decides what "now" shows of it.
///
/// The key checks decide whether the target was reachable; the canonical
/// checks (only in a run of a target with `[target.canonical]`) add their
/// figures, or say why they have none, without hiding the key checks'.
pub fn current_state(run: &TargetRun) -> CurrentState {
    let (mut index_present, mut index_building, mut duplicates, mut missing) = (None, false, None, None);
    let (mut key_consistency, mut canonical_duplicates) = (None, None);
    for result in &run.results {
        match &result.outcome {
            Ok(Figures::Index(IndexOutcome {
                // A namespace that is not a collection reads as "index missing", with its problem.
                namespace: _,
                build,
                present,
                name: _,
                unique: _,
                sparse: _,
                hidden: _,
                problem: _,
                guarantees_uniqueness: _,
                queryable: _,
                lookup: _,
                shards: _,
            })) => {
                index_present = Some(*present);
                index_building = *build == Some(BuildState::Building);
            }
            Ok(Figures::Duplicates(DuplicatesOutcome { keys, documents, method: _, sample })) => {
                duplicates = Some(CurrentDuplicates { documents: *documents, keys: *keys, sample: sample.clone() })
            }
            Ok(Figures::MissingKeys(MissingKeysOutcome { absent, null, empty, array, documents: _, method: _ })) => {
                missing = Some(MissingCounts { absent: *absent, null: *null, empty: *empty, array: *array })
            }
            Ok(Figures::KeyConsistency(KeyConsistencyOutcome { mismatch, derivable, underivable, documents, sample })) => {
                key_consistency = Some(CurrentKeyConsistency {
                    mismatch: *mismatch,
                    derivable: *derivable,
                    underivable: *underivable,
                    documents: *documents,
                    sample: sample.clone(),
                })
            }
            Ok(Figures::CanonicalDuplicates(CanonicalDuplicatesOutcome { keys, documents, sample })) => {
                canonical_duplicates =
                    Some(CurrentCanonicalDuplicates { documents: *documents, values: *keys, sample: sample.clone() })
            }
            Err(_) => {}
        }
    }
    let failure = |group: Group| {
        run.errors()
            .find(|(check, _)| check.group() == group)
            .map(|(check, e)| format!("{} check failed ({}): {}", check.as_str(), e.reason, e.message))
            .unwrap_or_else(|| "the check did not complete".to_string())
    };
    let canonical = if run.results.iter().any(|r| r.check.group() == Group::Canonical) {
        Some(match (key_consistency, canonical_duplicates) {
            (Some(key_consistency), Some(duplicates)) => CurrentCanonical::Checked { key_consistency, duplicates },
            _ => CurrentCanonical::Unchecked { reason: failure(Group::Canonical) },
        })
    } else {
        None
    };
    match (index_present, duplicates, missing) {
        (Some(index_present), Some(duplicates), Some(missing)) => {
            CurrentState::Reachable { index_present, index_building, duplicates, missing, canonical }
        }
        _ => CurrentState::Unreachable { reason: failure(Group::Key) },
    }
}

/// The targets and log sources of the config, as the report names them.
pub fn report_subjects(config: &Config) -> (Vec<TargetInfo>, Vec<LogSourceInfo>) {
    let targets = config
        .targets
        .iter()
        .map(|t| TargetInfo {
            name: t.name.clone(),
            database: t.database.clone(),
            collection: t.collection.clone(),
            key: t.key.to_string(),
        })
        .collect();
    let sources = config
        .logs
        .iter()
        .map(|s| LogSourceInfo {
            name: s.name.clone(),
            request_event: s.request_event.clone(),
            tracks_recoveries: !s.recovery_markers.is_empty(),
        })
        .collect();
    (targets, sources)
}

/// Builds the report for `month` from the store and the fresh check results.
///
/// Pure over its inputs: the same store contents and arguments give the
/// same report. `current` maps target names to what a check made at report
/// time found; a target missing from it counts as not checked.
pub fn build_report(
    store: &Store,
    month: Month,
    targets: &[TargetInfo],
    log_sources: &[LogSourceInfo],
    current: &BTreeMap<String, CurrentState>,
    generated_at: DateTime<Utc>,
) -> Result<AuditReport, AuditError> {
    let _snapshot = store.snapshot()?;
    let from = month.start();
    let to = month.end().min(generated_at.max(from));
    let period = Period { start: from, end: to };

    let mut target_names: Vec<(String, Option<&TargetInfo>)> =
        targets.iter().map(|t| (t.name.clone(), Some(t))).collect();
    for name in store.target_names()? {
        if !targets.iter().any(|t| t.name == name) {
            target_names.push((name, None));
        }
    }
    let mut target_reports = Vec::new();
    for (name, info) in target_names {
        let report = target_report(store, &name, info, current.get(&name), from, to)?;
        if report.configured || report.checks.runs > 0 {
            target_reports.push(report);
        }
    }

    let mut logs = BTreeMap::new();
    let mut source_names: Vec<(String, Option<&LogSourceInfo>)> =
        log_sources.iter().map(|s| (s.name.clone(), Some(s))).collect();
    for name in store.log_source_names()? {
        if !log_sources.iter().any(|s| s.name == name) {
            source_names.push((name, None));
        }
    }
    for (name, info) in source_names {
        let report = log_report(store, &name, info, month, to)?;
        if report.configured || report.days_watched > 0 {
            logs.insert(name, report);
        }
    }

    let has_history =
        target_reports.iter().any(|t| t.checks.runs > 0) || logs.values().any(|l| l.days_watched > 0);
    let history_span = store.history_span()?.map(|s| Period { start: s.first, end: s.last });
    let verdict = verdict(&target_reports, &logs);
    Ok(AuditReport {
        month,
        generated_at,
        period,
        has_history,
        history_span,
        verdict,
        targets: target_reports,
        logs,
        uniqwatch_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

fn gap_report(check: CheckName, gap: Gap) -> GapReport {
    GapReport { check: check.as_str().to_string(), from: gap.from, to: gap.to, seconds: gap.seconds() }
}

fn target_report(
    store: &Store,
    name: &str,
    info: Option<&TargetInfo>,
    current: Option<&CurrentState>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TargetReport, AuditError> {
    let mut checks = ChecksReport::default();
    // The target's first run: the earliest first run of its checks.
    let mut monitored_from: Option<DateTime<Utc>> = None;
    for check in CHECKS {
        let counts = store.run_counts(name, check, from, to)?;
        // A target without [target.canonical] never runs these: no row for them.
        if check.group() == Group::Canonical && counts.runs == 0 {
            continue;
        }
        // Gaps count from the check's first run: before it nothing was watched.
        let first_ever = if counts.runs > 0 { store.first_run(name, check)? } else { None };
        let not_yet_monitored = NotMonitored::before(from, first_ever);
        let gap = if counts.runs > 0 {
            let start = not_yet_monitored.as_ref().map_or(from, |n| n.to);
            store.longest_gap(name, check, start, to)?.map(|g| gap_report(check, g))
        } else {
            None
        };
        monitored_from = [monitored_from, first_ever].into_iter().flatten().min();
        checks.runs += counts.runs;
        checks.failed += counts.failed;
        for (reason, n) in &counts.failures_by_reason {
            *checks.failures_by_reason.entry(reason.clone()).or_insert(0) += n;
        }
        checks.first_run = [checks.first_run, counts.first_run].into_iter().flatten().min();
        checks.last_run = [checks.last_run, counts.last_run].into_iter().flatten().max();
        if let Some(g) = &gap {
            if checks.longest_gap.as_ref().is_none_or(|l| g.seconds > l.seconds) {
                checks.longest_gap = Some(g.clone());
            }
        }
        checks.by_check.insert(
            check.as_str().to_string(),
            CheckRuns {
                runs: counts.runs,
                failed: counts.failed,
                failures_by_reason: counts.failures_by_reason,
                longest_gap: gap,
                not_yet_monitored,
            },
        );
    }
    checks.not_yet_monitored = NotMonitored::before(from, monitored_from);

    let now = match current {
        Some(CurrentState::Reachable { .. }) => NowReport { checked: true, reason: None },
        Some(CurrentState::Unreachable { reason }) => NowReport { checked: false, reason: Some(reason.clone()) },
        None => NowReport { checked: false, reason: Some("not checked at report time".to_string()) },
    };
    let reachable = match current {
        Some(CurrentState::Reachable { index_present, index_building, duplicates, missing, canonical: _ }) => {
            Some(((*index_present, *index_building), duplicates, *missing))
        }
        _ => None,
    };

    let history = store.index_history(name, from, to)?;
    let index = IndexReport {
        runs: history.runs,
        missing_runs: history.missing_runs,
        wrong_runs: history.wrong_runs,
        first_missing: history.first_missing,
        last_missing: history.last_missing,
        building_runs: history.building_runs,
        unknown_build_runs: history.unknown_build_runs,
        present_now: reachable.map(|((present, _), _, _)| present),
        building_now: reachable.map(|((_, building), _, _)| building),
    };

    let days = store.duplicates_by_day(name, from, to)?;
    let samples = store.duplicate_samples(name, from, to)?;
    let (offending_keys, offending_keys_total) = offending_keys(&samples);
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let duplicates = DuplicatesReport {
        runs,
        runs_with_duplicates: days.iter().map(|d| d.runs_with_duplicates).sum(),
        max_documents: (runs > 0).then(|| days.iter().map(|d| d.max_documents).max().unwrap_or(0)),
        max_keys: (runs > 0).then(|| days.iter().map(|d| d.max_keys).max().unwrap_or(0)),
        first_seen: days.iter().filter_map(|d| d.first_seen).min(),
        last_seen: days.iter().filter_map(|d| d.last_seen).max(),
        offending_keys,
        offending_keys_total,
        by_day: days
            .iter()
            .map(|d| DuplicatesDayReport { date: d.date, documents: d.max_documents, keys: d.max_keys })
            .collect(),
        current: match reachable {
            Some((_, d, _)) => CurrentDuplicatesReport {
                documents: Some(d.documents),
                keys: Some(d.keys),
                sample: d.sample.clone(),
            },
            None => CurrentDuplicatesReport::default(),
        },
    };

    let days = store.missing_by_day(name, from, to)?;
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let max_of = |f: fn(&MissingDay) -> u64| (runs > 0).then(|| days.iter().map(f).max().unwrap_or(0));
    let point = |m: MissingAt| MissingPoint {
        at: m.at,
        absent: m.absent,
        null: m.null,
        empty: m.empty,
        array: m.array,
        total: MissingCounts { absent: m.absent, null: m.null, empty: m.empty, array: m.array }.total(),
    };
    let first_last = store.missing_first_last(name, from, to)?;
    let (first, last) = match first_last {
        Some((f, l)) => (Some(point(f)), Some(point(l))),
        None => (None, None),
    };
    let missing = MissingReport {
        runs,
        max: OptionalMissing {
            absent: max_of(|d| d.max_absent),
            null: max_of(|d| d.max_null),
            empty: max_of(|d| d.max_empty),
            array: max_of(|d| d.max_array),
        },
        max_total: max_of(|d| d.max_total),
        current: match reachable {
            Some((_, _, m)) => OptionalMissing {
                absent: Some(m.absent),
                null: Some(m.null),
                empty: Some(m.empty),
                array: Some(m.array),
            },
            None => OptionalMissing::default(),
        },
        trend: trend(first.as_ref().map(|p| p.total), last.as_ref().map(|p| p.total)),
        first,
        last,
        by_day: days
            .iter()
            .map(|d| MissingDayReport {
                date: d.date,
                absent: d.max_absent,
                null: d.max_null,
                empty: d.max_empty,
                array: d.max_array,
                total: d.max_total,
            })
            .collect(),
    };

    let canonical = canonical_report(store, name, &checks, current, from, to)?;
    Ok(TargetReport {
        name: name.to_string(),
        database: info.map(|t| t.database.clone()),
        collection: info.map(|t| t.collection.clone()),
        key: info.map(|t| t.key.clone()),
        configured: info.is_some(),
        now,
        checks,
        index,
        duplicates,
        missing,
        canonical,
    })
}

/// Rising, falling or steady from the first to the last figure.
fn trend(first: Option<u64>, last: Option<u64>) -> Trend {
    match (first, last) {
        (Some(a), Some(b)) if b > a => Trend::Rising,
        (Some(a), Some(b)) if b < a => Trend::Falling,
        (Some(_), Some(_)) => Trend::Steady,
        _ => Trend::Unknown,
    }
}

/// Merges the distinct samples of the month into one entry per key: the
/// most documents seen, the ids seen (bounded), and when. Returns the list,
/// cut at [`MAX_OFFENDING_KEYS`], and the number of distinct keys.
fn offending_keys(samples: &[SampleSeen]) -> (Vec<OffendingKey>, u64) {
    let mut by_key: HashMap<String, OffendingKey> = HashMap::new();
    for seen in samples {
        for entry in &seen.sample {
            let slot = by_key.entry(entry.key.to_string()).or_insert_with(|| OffendingKey {
                key: entry.key.clone(),
                count: 0,
                ids: Vec::new(),
                runs: 0,
                first_seen: seen.first_seen,
                last_seen: seen.last_seen,
            });
            slot.count = slot.count.max(entry.count);
            slot.runs += seen.runs;
            slot.first_seen = slot.first_seen.min(seen.first_seen);
            slot.last_seen = slot.last_seen.max(seen.last_seen);
            push_bounded(&mut slot.ids, &entry.ids);
        }
    }
    let total = by_key.len() as u64;
    let mut keys: Vec<OffendingKey> = by_key.into_values().collect();
    keys.sort_by(|a, b| {
        b.count.cmp(&a.count).then(a.first_seen.cmp(&b.first_seen)).then(a.key.to_string().cmp(&b.key.to_string()))
    });
    keys.truncate(MAX_OFFENDING_KEYS);
    (keys, total)
}

fn log_report(
    store: &Store,
    name: &str,
    info: Option<&LogSourceInfo>,
    month: Month,
    to: DateTime<Utc>,
) -> Result<LogReport, AuditError> {
    let request_event = info.and_then(|s| s.request_event.clone());
    let rows = store.log_days(name, month.first_day(), month.next().first_day())?;
    let mut report = LogReport {
        configured: info.is_some(),
        tracks_recoveries: info.is_none_or(|s| s.tracks_recoveries),
        request_event: request_event.clone(),
        ..Default::default()
    };
    let mut days: BTreeMap<NaiveDate, LogDayReport> = BTreeMap::new();
    let mut by_index: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut requests = 0;
    for row in &rows {
        let day = days.entry(row.date).or_insert_with(|| LogDayReport {
            date: row.date,
            duplicate_key_errors: 0,
            recoveries: 0,
            requests: request_event.as_ref().map(|_| 0),
            watched: true,
        });
        match row.counter.as_str() {
            "duplicate_key_errors" => {
                day.duplicate_key_errors += row.count;
                *by_index.entry((row.label.clone(), row.sub_label.clone())).or_insert(0) += row.count;
            }
            "recoveries" => day.recoveries += row.count,
            "event" => {
                *report.events.entry(row.label.clone()).or_insert(0) += row.count;
                if request_event.as_deref() == Some(row.label.as_str()) {
                    day.requests = Some(day.requests.unwrap_or(0) + row.count);
                    requests += row.count;
                }
            }
            "lines" => report.lines += row.count,
            _ => {}
        }
    }
    let previous = store.log_days(name, month.prev().first_day(), month.first_day())?;
    report.latency = super::latency::events(&rows, &previous);
    report.days_watched = days.len() as u64;
    report.duplicate_key_errors = days.values().map(|d| d.duplicate_key_errors).sum();
    report.recoveries = days.values().map(|d| d.recoveries).sum();
    if report.tracks_recoveries {
        report.unrecovered = report.duplicate_key_errors.saturating_sub(report.recoveries);
    }
    report.worst_day = days
        .values()
        .filter(|d| d.duplicate_key_errors > 0)
        // max_by_key keeps the last of equals; reverse so the earliest wins.
        .rev()
        .max_by_key(|d| d.duplicate_key_errors)
        .map(|d| WorstDay { date: d.date, duplicate_key_errors: d.duplicate_key_errors });
    report.requests = request_event.as_ref().map(|_| requests);
    report.error_ratio = report
        .requests
        .filter(|r| *r > 0)
        .map(|r| report.duplicate_key_errors as f64 / r as f64);
    report.by_index = by_index
        .into_iter()
        .map(|((namespace, index), n)| IndexErrors { namespace, index, duplicate_key_errors: n })
        .collect();
    let last_day = (to - chrono::Duration::milliseconds(1)).date_naive();
    report.by_day = month
        .days()
        .filter(|d| *d <= last_day && to > month.start())
        .map(|date| {
            days.remove(&date).unwrap_or(LogDayReport {
                date,
                duplicate_key_errors: 0,
                recoveries: 0,
                requests: None,
                watched: false,
            })
        })
        .collect();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::month::utc;
    use super::*;

    #[test]
    fn trend_compares_first_and_last() {
        assert_eq!(trend(Some(1), Some(3)), Trend::Rising);
        assert_eq!(trend(Some(3), Some(1)), Trend::Falling);
        assert_eq!(trend(Some(2), Some(2)), Trend::Steady);
        assert_eq!(trend(None, None), Trend::Unknown);
    }

    #[test]
    fn offending_keys_merge_samples() {
        let key = |key: &str, count, ids: &[u64]| DuplicateSample {
            key: serde_json::json!(key),
            count,
            ids: ids.iter().map(|&id| id.into()).collect(),
        };
        let s = |sample, runs, d1, d2| SampleSeen {
            sample,
            runs,
            first_seen: utc(2026, 10, d1, 0),
            last_seen: utc(2026, 10, d2, 0),
        };
        let (keys, total) = offending_keys(&[
            s(vec![key("a_b", 2, &[1, 2])], 3, 2, 4),
            s(vec![key("a_b", 3, &[1, 2, 3]), key("c_d", 2, &[7, 8])], 2, 5, 6),
        ]);
        assert_eq!(total, 2);
        assert_eq!(keys[0].key, serde_json::json!("a_b"));
        assert_eq!(keys[0].count, 3);
        assert_eq!(keys[0].ids.len(), 3);
        assert_eq!(keys[0].runs, 5);
        assert_eq!(keys[0].first_seen, utc(2026, 10, 2, 0));
        assert_eq!(keys[0].last_seen, utc(2026, 10, 6, 0));
        assert_eq!(keys[1].key, serde_json::json!("c_d"));
    }
}
