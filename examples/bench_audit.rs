//! Benchmark of the history store and the monthly audit: a year of
//! one-minute runs for 3 targets, then the time to build one month's report
//! and the store's size on disk.
//!
//! A "row" of the store is one run of one check of one target, so a year of
//! one-minute runs for 3 targets is 3 × 525,600 ≈ 1.58 million target runs,
//! or 4.73 million check-run rows (index, duplicates, missing_keys).
//!
//! Run with `cargo run --release --example bench_audit [DIR]`; the store is
//! created in DIR (default: a temporary directory, removed afterwards).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use uniqwatch::audit::{build_report, CurrentDuplicates, CurrentState, DuplicateSample, LogSourceInfo, MissingCounts, Month, TargetInfo};
use uniqwatch::checks::{BuildState, DuplicatesOutcome, Figures, IndexOutcome, Method, MissingKeysOutcome, CHECKS};
use uniqwatch::logs::{ErrorTotal, LogTotals, SourceTotals};
use uniqwatch::mongo::FailureReason;
use uniqwatch::store::{RunOutcome, RunRecord, Store};

const TARGETS: [&str; 3] = ["chats", "users", "orders"];
const DAYS: i64 = 365;

fn runs_at(target: &str, at: DateTime<Utc>, minute_of_year: i64) -> Vec<RunRecord> {
    // A few hours of MongoDB outage every 30 days, duplicates for a day every 45.
    let outage = minute_of_year % (30 * 1440) < 120;
    let duplicated = minute_of_year % (45 * 1440) < 1440;
    let rec = |outcome| RunRecord {
        at,
        target: target.to_string(),
        duration: std::time::Duration::from_millis(12),
        outcome,
    };
    if outage {
        return CHECKS
            .iter()
            .map(|&check| rec(RunOutcome::Failed { check, reason: FailureReason::Unreachable }))
            .collect();
    }
    let offender = |key: &str, ids: &[&str]| DuplicateSample {
        key: json!(key),
        count: ids.len() as u64,
        ids: ids.iter().map(|id| json!(id)).collect(),
    };
    let duplicates = if duplicated {
        DuplicatesOutcome {
            keys: 2,
            documents: 3,
            method: Method::Aggregation,
            sample: vec![
                offender("userA_userB", &["65f0a1", "65f0a2", "65f0a3"]),
                offender("userC_userD", &["65f0b1", "65f0b2"]),
            ],
        }
    } else {
        DuplicatesOutcome { keys: 0, documents: 0, method: Method::UniqueIndex, sample: Vec::new() }
    };
    let index = IndexOutcome {
        present: true,
        name: Some("participantsKey_1".into()),
        unique: true,
        sparse: true,
        hidden: false,
        problem: None,
        guarantees_uniqueness: true,
        build: Some(BuildState::Ready),
        ..IndexOutcome::default()
    };
    let missing = MissingKeysOutcome {
        absent: 12,
        null: (minute_of_year % 3) as u64,
        empty: 0,
        array: 0,
        documents: 1_000_000 + minute_of_year as u64,
        method: Method::IndexCounts,
    };
    vec![
        rec(RunOutcome::Succeeded(Figures::Index(index))),
        rec(RunOutcome::Succeeded(Figures::Duplicates(duplicates))),
        rec(RunOutcome::Succeeded(Figures::MissingKeys(missing))),
    ]
}

fn log_totals(day: i64) -> LogTotals {
    let mut totals = LogTotals::default();
    for source in ["chat-backend", "mongod"] {
        totals.sources.insert(
            source.to_string(),
            SourceTotals {
                duplicate_key_errors: vec![ErrorTotal {
                    namespace: "app.chats".into(),
                    index: "participantsKey_1".into(),
                    count: day as u64 * 3,
                }],
                recoveries: day as u64 * 3,
                events: [("create_or_get".to_string(), day as u64 * 200_000)].into(),
                lines: day as u64 * 1_000_000,
                bytes: day as u64 * 150_000_000,
                durations: Default::default(),
            },
        );
    }
    totals
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn main() {
    let (dir, _guard) = match std::env::args().nth(1) {
        Some(d) => (PathBuf::from(d), None),
        None => {
            let tmp = tempfile::tempdir().expect("temporary directory");
            (tmp.path().to_path_buf(), Some(tmp))
        }
    };
    let path = dir.join("history.sqlite3");
    let _ = std::fs::remove_file(&path);
    let start = Utc.with_ymd_and_hms(2025, 11, 1, 0, 0, 0).unwrap();

    let mut store = Store::open(&path).expect("open store");
    let t = Instant::now();
    let mut rows = 0u64;
    let mut target_runs = 0u64;
    for day in 0..DAYS {
        // One transaction per hour of runs, roughly what the writer sees when it lags.
        for hour in 0..24 {
            let mut batch = Vec::with_capacity(60 * 9);
            for minute in 0..60 {
                let m = day * 1440 + hour * 60 + minute;
                let at = start + Duration::minutes(m);
                for target in TARGETS {
                    batch.extend(runs_at(target, at, m));
                    target_runs += 1;
                }
            }
            rows += batch.len() as u64;
            store.record_runs(&batch).expect("record runs");
        }
        for hour in [6, 18] {
            store
                .record_log_totals(start + Duration::days(day) + Duration::hours(hour), &log_totals(day * 2 + hour / 18))
                .expect("record log totals");
        }
    }
    let load = t.elapsed();

    // The writer's steady state: one minute's runs (3 targets × 3 checks) into the full store.
    let t = Instant::now();
    let samples = 200;
    for i in 0..samples {
        let m = DAYS * 1440 + i;
        let mut batch = Vec::new();
        for target in TARGETS {
            batch.extend(runs_at(target, start + Duration::minutes(m), m));
        }
        store.record_runs(&batch).expect("record runs");
    }
    let per_batch = t.elapsed() / samples as u32;
    drop(store);
    let size = dir_size(&dir);

    let targets: Vec<TargetInfo> = TARGETS
        .iter()
        .map(|n| TargetInfo { name: n.to_string(), database: "app".into(), collection: n.to_string(), key: "participantsKey".into() })
        .collect();
    let sources = vec![
        LogSourceInfo { name: "chat-backend".into(), request_event: Some("create_or_get".into()), tracks_recoveries: true },
        LogSourceInfo { name: "mongod".into(), request_event: None, tracks_recoveries: false },
    ];
    let current: BTreeMap<String, CurrentState> = TARGETS
        .iter()
        .map(|n| {
            (
                n.to_string(),
                CurrentState::Reachable {
                    index_present: true,
                    index_building: false,
                    duplicates: CurrentDuplicates::default(),
                    missing: MissingCounts { absent: 12, null: 0, empty: 0, array: 0 },
                    canonical: None,
                },
            )
        })
        .collect();
    let month: Month = "2026-03".parse().expect("month");
    let generated_at = Utc.with_ymd_and_hms(2026, 11, 1, 6, 0, 0).unwrap();

    let mut times = Vec::new();
    let mut sizes = (0, 0, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let reader = Store::open_read_only(&path).expect("open read-only");
        let report = build_report(&reader, month, &targets, &sources, &current, generated_at).expect("report");
        let (md, html, json) = (report.to_markdown(), report.to_html(), report.to_json());
        times.push(t.elapsed());
        sizes = (md.len(), html.len(), json.len());
    }
    times.sort();

    let mut store = Store::open(&path).expect("reopen");
    let t = Instant::now();
    let pruned = store.prune(start + Duration::days(30)).expect("prune");
    let prune = t.elapsed();

    println!("history store benchmark: {} targets, one-minute runs for {DAYS} days", TARGETS.len());
    println!("  target runs:                 {target_runs}");
    println!("  check-run rows:              {rows}");
    println!("  load time:                   {:.1} s ({:.0} rows/s)", load.as_secs_f64(), rows as f64 / load.as_secs_f64());
    println!("  store size on disk:          {:.1} MiB ({:.1} bytes per check-run row)", size as f64 / 1048576.0, size as f64 / rows as f64);
    println!("  one minute's runs (9 rows):  {:.2} ms per transaction into the full store", per_batch.as_secs_f64() * 1000.0);
    println!(
        "  audit of one month ({month}): min {:.0} ms, median {:.0} ms, max {:.0} ms (open, query, render md+html+json)",
        times[0].as_secs_f64() * 1000.0,
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
    println!("  report sizes:                markdown {} B, html {} B, json {} B", sizes.0, sizes.1, sizes.2);
    println!("  prune of the oldest 30 days: {pruned} rows in {:.2} s", prune.as_secs_f64());
}
