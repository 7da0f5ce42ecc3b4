//! The history store and the monthly audit, end to end, without MongoDB:
//! a month of check runs and log totals is injected with chosen times, and
//! every section of the report is checked against what was injected.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use serde_json::{json, Value};
use uniqwatch::audit::{
    build_report, write_report_files, AuditReport, CurrentDuplicates, CurrentState, DuplicateSample,
    LogSourceInfo, MissingCounts, Month, TargetInfo,
};
use uniqwatch::checks::{BuildState, CheckName, DuplicatesOutcome, Figures, Group, IndexOutcome, Method, MissingKeysOutcome};
use uniqwatch::logs::{ErrorTotal, LogTotals, SourceTotals};
use uniqwatch::metrics::Metrics;
use uniqwatch::mongo::FailureReason;
use uniqwatch::store::{schema, spawn_writer, RunOutcome, RunRecord, Store, StoreError};

fn utc(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap()
}

fn october() -> Month {
    "2026-10".parse().unwrap()
}

fn record(target: &str, at: DateTime<Utc>, figures: Figures) -> RunRecord {
    RunRecord {
        at,
        target: target.into(),
        duration: Duration::from_millis(50),
        outcome: RunOutcome::Succeeded(figures),
    }
}

fn failure(target: &str, check: CheckName, at: DateTime<Utc>, reason: FailureReason) -> RunRecord {
    RunRecord {
        at,
        target: target.into(),
        duration: Duration::from_secs(30),
        outcome: RunOutcome::Failed { check, reason },
    }
}

/// What the index check reports: `name` and the options are those of the
/// closest candidate, if any.
fn index(present: bool, name: Option<&str>, unique: bool, sparse: bool) -> Figures {
    Figures::Index(IndexOutcome {
        present,
        name: name.map(str::to_string),
        unique,
        sparse,
        hidden: false,
        problem: (!present).then(|| "missing or wrong".to_string()),
        guarantees_uniqueness: unique,
        ..IndexOutcome::default()
    })
}

fn duplicates(keys: u64, documents: u64, sample: Vec<DuplicateSample>) -> Figures {
    let method = if keys == 0 { Method::UniqueIndex } else { Method::Aggregation };
    Figures::Duplicates(DuplicatesOutcome { keys, documents, method, sample })
}

fn offender(key: &str, ids: &[&str]) -> DuplicateSample {
    DuplicateSample { key: json!(key), count: ids.len() as u64, ids: ids.iter().map(|id| json!(id)).collect() }
}

fn no_duplicates() -> Figures {
    duplicates(0, 0, Vec::new())
}

fn missing_keys(absent: u64, null: u64, empty: u64, array: u64, documents: u64) -> Figures {
    Figures::MissingKeys(MissingKeysOutcome { absent, null, empty, array, documents, method: Method::Aggregation })
}

/// The runs of `chats` at one instant, following the month's story:
/// - index missing 10-05 10:00 to 21:50, wrong options 22:00 to 10-06 09:50;
/// - one duplicate from 10-05 12:00, two keys / three surplus documents from
///   10-06 00:00, cleaned on 10-08 00:00;
/// - 10 documents without the key all month, 1 empty key on 10-15, 2 null
///   keys from 10-20, 1 array key from 10-25;
/// - MongoDB unreachable 10-10 03:00 to 04:50, duplicates timing out at 10-12 08:00.
fn chats_runs(at: DateTime<Utc>) -> Vec<RunRecord> {
    if at >= utc(10, 10, 3, 0) && at < utc(10, 10, 5, 0) {
        return Group::Key.checks().iter().map(|&c| failure("chats", c, at, FailureReason::Unreachable)).collect();
    }
    let index = if at >= utc(10, 5, 10, 0) && at < utc(10, 5, 22, 0) {
        index(false, None, false, false)
    } else if at >= utc(10, 5, 22, 0) && at < utc(10, 6, 10, 0) {
        index(false, Some("participantsKey_1"), false, true)
    } else {
        index(true, Some("participantsKey_1"), true, true)
    };
    let duplicates = if at >= utc(10, 6, 0, 0) && at < utc(10, 8, 0, 0) {
        duplicates(2, 3, vec![offender("userA_userB", &["id1", "id2", "id3"]), offender("userC_userD", &["id4", "id5"])])
    } else if at >= utc(10, 5, 12, 0) && at < utc(10, 6, 0, 0) {
        duplicates(1, 1, vec![offender("userA_userB", &["id1", "id2"])])
    } else {
        no_duplicates()
    };
    let empty = u64::from(at >= utc(10, 15, 0, 0) && at < utc(10, 16, 0, 0));
    let nulls = if at >= utc(10, 20, 0, 0) { 2 } else { 0 };
    let arrays = u64::from(at >= utc(10, 25, 0, 0));
    let mut runs = vec![
        record("chats", at, index),
        record("chats", at, duplicates),
        record("chats", at, missing_keys(10, nulls, empty, arrays, 10_000)),
    ];
    if at == utc(10, 12, 8, 0) {
        runs[1] = failure("chats", CheckName::Duplicates, at, FailureReason::Timeout);
    }
    runs
}

/// `users` is clean all month.
fn users_runs(at: DateTime<Utc>) -> Vec<RunRecord> {
    vec![
        record("users", at, index(true, Some("email_1"), true, false)),
        record("users", at, no_duplicates()),
        record("users", at, missing_keys(0, 0, 0, 0, 500)),
    ]
}

/// Runs every 10 minutes through October, plus runs just outside it with
/// figures that must not leak into the report.
fn seed_runs(store: &mut Store) {
    let mut at = october().start();
    while at < october().end() {
        // One transaction per day, as a busy writer would batch them.
        let mut batch = Vec::new();
        for _ in 0..144 {
            batch.extend(chats_runs(at));
            batch.extend(users_runs(at));
            at += Span::minutes(10);
        }
        store.record_runs(&batch).unwrap();
    }
    let outside = duplicates(50, 99, vec![DuplicateSample { key: json!("sept"), count: 100, ids: vec![json!(1)] }]);
    store
        .record_runs(&[
            record("chats", utc(9, 30, 23, 59), outside.clone()),
            record("chats", utc(11, 1, 0, 0), outside),
            record("chats", utc(11, 1, 0, 0), index(false, None, false, false)),
        ])
        .unwrap();
}

/// The tailer's cumulative totals, built up as the test moves through days.
#[derive(Default)]
struct Tailer {
    errors: BTreeMap<(String, String), u64>,
    recoveries: u64,
    requests: u64,
    lines: u64,
}

impl Tailer {
    fn add(&mut self, ns: &str, index: &str, errors: u64, recoveries: u64, requests: u64) {
        *self.errors.entry((ns.into(), index.into())).or_insert(0) += errors;
        self.recoveries += recoveries;
        self.requests += requests;
        self.lines += errors + recoveries + requests;
    }

    fn totals(&self) -> LogTotals {
        let mut totals = LogTotals::default();
        totals.sources.insert(
            "chat-backend".into(),
            SourceTotals {
                duplicate_key_errors: self
                    .errors
                    .iter()
                    .map(|((ns, ix), n)| ErrorTotal { namespace: ns.clone(), index: ix.clone(), count: *n })
                    .collect(),
                recoveries: self.recoveries,
                events: [("create_or_get".to_string(), self.requests)].into(),
                lines: self.lines,
                bytes: self.lines * 100,
                durations: Default::default(),
            },
        );
        totals
    }
}

/// Log totals: history from September, October with errors on the 3rd,
/// 17th (the worst, with a tailer restart mid-day) and 25th, the daemon down
/// all of the 9th, and more errors on November 1st that must not count.
fn seed_logs(store: &mut Store) -> LogTotals {
    let mut tailer = Tailer::default();
    tailer.add("app.chats", "participantsKey_1", 100, 100, 5000);
    store.record_log_totals(utc(9, 30, 12, 0), &tailer.totals()).unwrap();
    for day in october().days() {
        let d = day.format("%d").to_string().parse::<u32>().unwrap();
        if d == 9 {
            continue;
        }
        let (errors, recoveries) = match d {
            3 => (5, 5),
            17 => (10, 9),
            25 => (2, 2),
            _ => (0, 0),
        };
        if d == 17 {
            // Half the day, then a restart that republishes the persisted
            // totals, then the rest of the day (with errors on another index).
            tailer.add("app.chats", "participantsKey_1", 5, 5, 500);
            store.record_log_totals(utc(10, d, 8, 0), &tailer.totals()).unwrap();
            store.record_log_totals(utc(10, d, 9, 0), &tailer.totals()).unwrap();
            tailer.add("app.chats", "participantsKey_1", 5, 4, 500);
            tailer.add("app.users", "email_1", 2, 2, 0);
            store.record_log_totals(utc(10, d, 20, 0), &tailer.totals()).unwrap();
        } else {
            tailer.add("app.chats", "participantsKey_1", errors, recoveries, 1000);
            store.record_log_totals(utc(10, d, 8, 0), &tailer.totals()).unwrap();
            store.record_log_totals(utc(10, d, 20, 0), &tailer.totals()).unwrap();
        }
    }
    tailer.add("app.chats", "participantsKey_1", 50, 0, 1000);
    store.record_log_totals(utc(11, 1, 8, 0), &tailer.totals()).unwrap();
    tailer.totals()
}

fn targets() -> Vec<TargetInfo> {
    vec![
        TargetInfo { name: "chats".into(), database: "app".into(), collection: "chats".into(), key: "participantsKey".into() },
        TargetInfo { name: "users".into(), database: "app".into(), collection: "users".into(), key: "email".into() },
    ]
}

fn sources() -> Vec<LogSourceInfo> {
    vec![
        LogSourceInfo { name: "chat-backend".into(), request_event: Some("create_or_get".into()), tracks_recoveries: true },
        LogSourceInfo { name: "mongod".into(), request_event: None, tracks_recoveries: false },
    ]
}

fn current() -> BTreeMap<String, CurrentState> {
    BTreeMap::from([
        (
            "chats".to_string(),
            CurrentState::Reachable {
                index_present: true,
                index_building: false,
                duplicates: CurrentDuplicates {
                    documents: 1,
                    keys: 1,
                    sample: vec![DuplicateSample { key: json!("userE_userF"), count: 2, ids: vec![json!("id9"), json!("id10")] }],
                },
                missing: MissingCounts { absent: 10, null: 2, empty: 0, array: 1 },
                canonical: None,
            },
        ),
        ("users".to_string(), CurrentState::Unreachable { reason: "unreachable".into() }),
    ])
}

fn generated_at() -> DateTime<Utc> {
    utc(11, 1, 6, 0)
}

fn seeded_store(dir: &Path) -> (Store, LogTotals) {
    let mut store = Store::open(&dir.join("history.sqlite3")).unwrap();
    seed_runs(&mut store);
    let totals = seed_logs(&mut store);
    (store, totals)
}

fn october_report(store: &Store) -> AuditReport {
    build_report(store, october(), &targets(), &sources(), &current(), generated_at()).unwrap()
}

const RUNS_PER_CHECK: u64 = 31 * 144;

#[test]
fn every_section_matches_what_was_injected() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let report = october_report(&store);
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();

    assert_eq!(j["month"], "2026-10");
    assert_eq!(j["generated_at"], "2026-11-01T06:00:00Z");
    assert_eq!(j["has_history"], true);
    assert_eq!(j["verdict"]["holds"], false);

    let chats = &j["targets"][0];
    assert_eq!(chats["name"], "chats");
    // Reliability: 3 checks per run; 12 runs unreachable (36 failures) and one timeout.
    assert_eq!(chats["checks"]["runs"], RUNS_PER_CHECK * 3);
    assert_eq!(chats["checks"]["failed"], 37);
    assert_eq!(chats["checks"]["failures_by_reason"], json!({"timeout": 1, "unreachable": 36}));
    assert_eq!(chats["checks"]["by_check"]["duplicates"]["failed"], 13);
    assert_eq!(chats["checks"]["longest_gap"]["seconds"], 2 * 3600 + 600);
    assert_eq!(chats["checks"]["longest_gap"]["from"], "2026-10-10T02:50:00Z");
    assert_eq!(chats["checks"]["longest_gap"]["to"], "2026-10-10T05:00:00Z");
    assert_eq!(chats["checks"]["first_run"], "2026-10-01T00:00:00Z");
    assert_eq!(chats["checks"]["last_run"], "2026-10-31T23:50:00Z");

    // Index: 72 runs missing, 72 with the wrong options; November's miss is excluded.
    let index = &chats["index"];
    assert_eq!(index["runs"], RUNS_PER_CHECK - 12);
    assert_eq!(index["missing_runs"], 144);
    assert_eq!(index["wrong_runs"], 72);
    assert_eq!(index["first_missing"], "2026-10-05T10:00:00Z");
    assert_eq!(index["last_missing"], "2026-10-06T09:50:00Z");
    assert_eq!(index["present_now"], true);

    // Duplicates: September's and November's 99 stay out.
    let dup = &chats["duplicates"];
    assert_eq!(dup["max_documents"], 3);
    assert_eq!(dup["max_keys"], 2);
    assert_eq!(dup["runs"], RUNS_PER_CHECK - 13);
    assert_eq!(dup["runs_with_duplicates"], 72 + 288);
    assert_eq!(dup["first_seen"], "2026-10-05T12:00:00Z");
    assert_eq!(dup["last_seen"], "2026-10-07T23:50:00Z");
    assert_eq!(dup["current"]["documents"], 1);
    assert_eq!(dup["current"]["keys"], 1);
    assert_eq!(dup["current"]["sample"][0]["key"], "userE_userF");
    assert_eq!(dup["offending_keys_total"], 2);
    let first_key = &dup["offending_keys"][0];
    assert_eq!(first_key["key"], "userA_userB");
    assert_eq!(first_key["count"], 3);
    assert_eq!(first_key["ids"], json!(["id1", "id2", "id3"]));
    assert_eq!(first_key["runs"], 360);
    assert_eq!(first_key["first_seen"], "2026-10-05T12:00:00Z");
    assert_eq!(dup["offending_keys"][1]["key"], "userC_userD");
    assert_eq!(dup["offending_keys"][1]["runs"], 288);
    let by_day = dup["by_day"].as_array().unwrap();
    assert_eq!(by_day.len(), 31);
    assert_eq!(by_day[5], json!({"date": "2026-10-06", "documents": 3, "keys": 2}));
    assert_eq!(by_day[8]["documents"], 0);

    // Documents without a key.
    let missing = &chats["missing"];
    assert_eq!(missing["max"], json!({"absent": 10, "null": 2, "empty": 1, "array": 1}));
    assert_eq!(missing["max_total"], 13);
    assert_eq!(missing["current"], json!({"absent": 10, "null": 2, "empty": 0, "array": 1}));
    assert_eq!(missing["first"]["total"], 10);
    assert_eq!(missing["last"]["total"], 13);
    assert_eq!(missing["last"]["array"], 1);
    assert_eq!(missing["trend"], "rising");

    // The clean target that could not be checked now.
    let users = &j["targets"][1];
    assert_eq!(users["name"], "users");
    assert_eq!(users["checks"]["failed"], 0);
    assert_eq!(users["checks"]["longest_gap"]["seconds"], 600);
    assert_eq!(users["now"], json!({"checked": false, "reason": "unreachable"}));
    assert_eq!(users["index"]["present_now"], Value::Null);
    assert_eq!(users["duplicates"]["max_documents"], 0);
    assert_eq!(users["duplicates"]["current"], json!({"documents": null, "keys": null, "sample": []}));
    assert_eq!(users["missing"]["current"], json!({"absent": null, "null": null, "empty": null, "array": null}));

    // Logs: day counts are differences of the tailer's totals.
    let logs = &j["logs"]["chat-backend"];
    assert_eq!(logs["duplicate_key_errors"], 19);
    assert_eq!(logs["recoveries"], 18);
    assert_eq!(logs["unrecovered"], 1);
    assert_eq!(logs["days_watched"], 30);
    assert_eq!(logs["worst_day"], json!({"date": "2026-10-17", "duplicate_key_errors": 12}));
    assert_eq!(logs["requests"], 30_000);
    assert!((logs["error_ratio"].as_f64().unwrap() - 19.0 / 30_000.0).abs() < 1e-12);
    let days = logs["by_day"].as_array().unwrap();
    assert_eq!(days.len(), 31);
    assert_eq!(days[0], json!({"date": "2026-10-01", "duplicate_key_errors": 0, "recoveries": 0, "requests": 1000, "watched": true}));
    assert_eq!(days[2]["duplicate_key_errors"], 5);
    assert_eq!(days[8]["watched"], false);
    assert_eq!(days[9]["requests"], 1000, "the day after the outage counts only its own requests");
    assert_eq!(days[16], json!({"date": "2026-10-17", "duplicate_key_errors": 12, "recoveries": 11, "requests": 1000, "watched": true}));
    assert_eq!(
        logs["by_index"],
        json!([
            {"namespace": "app.chats", "index": "participantsKey_1", "duplicate_key_errors": 17},
            {"namespace": "app.users", "index": "email_1", "duplicate_key_errors": 2}
        ])
    );
    assert_eq!(j["logs"]["mongod"]["days_watched"], 0);

    assert_eq!(j["logs"]["mongod"]["tracks_recoveries"], false);

    // The verdict, in order: three questions per target, then one per source
    // that counts recoveries (mongod's log has no recovery markers: no question).
    let items = j["verdict"]["items"].as_array().unwrap();
    let statuses: Vec<&str> = items.iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["fail", "fail", "fail", "pass", "pass", "pass", "fail"]);
    assert!(items[0]["figure"].as_str().unwrap().contains("missing or wrong in 144 of 4452 index runs"));
    assert!(items[1]["figure"].as_str().unwrap().contains("up to 3 surplus documents on 2 keys"));
    assert!(items[4]["figure"].as_str().unwrap().contains("now: not checked"));
    assert!(items[6]["figure"].as_str().unwrap().contains("19 duplicate-key errors, 18 recoveries, 1 not recovered"));
}

#[test]
fn history_and_persisted_totals_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (store, totals) = seeded_store(dir.path());
    let source = &totals.sources["chat-backend"];
    let latest = latest_totals(&dir.path().join("history.sqlite3"), "chat-backend");
    let key = |c: &str, l: &str, s: &str| (c.to_string(), l.to_string(), s.to_string());
    assert_eq!(latest[&key("recoveries", "", "")], source.recoveries);
    assert_eq!(latest[&key("event", "create_or_get", "")], source.events["create_or_get"]);
    for e in &source.duplicate_key_errors {
        assert_eq!(latest[&key("duplicate_key_errors", &e.namespace, &e.index)], e.count);
    }
    // Summing every day since the first write gives the tailer's totals back.
    let days = store
        .log_days("chat-backend", chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(), chrono::NaiveDate::from_ymd_opt(2100, 1, 1).unwrap())
        .unwrap();
    let sum = |counter: &str| days.iter().filter(|d| d.counter == counter).map(|d| d.count).sum::<u64>();
    assert_eq!(sum("recoveries"), source.recoveries);
    assert_eq!(sum("duplicate_key_errors"), source.duplicate_key_errors.iter().map(|e| e.count).sum::<u64>());
    assert_eq!(sum("lines"), source.lines);
}

/// The latest stored cumulative total of each series of a source, as
/// (counter, label, sub_label) → total, read from the file itself.
fn latest_totals(path: &Path, source: &str) -> BTreeMap<(String, String, String), u64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT counter, label, sub_label, end_value, MAX(day) FROM log_days
             WHERE source = ?1 GROUP BY counter, label, sub_label",
        )
        .unwrap();
    let rows = stmt.query_map([source], |r| Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, i64>(3)? as u64)));
    rows.unwrap().collect::<Result<_, _>>().unwrap()
}

/// Strips the escapes Markdown needs, so a figure can be looked up in it.
fn unescape_md(text: &str) -> String {
    text.replace('\\', "")
}

#[test]
fn the_three_formats_carry_the_same_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let report = october_report(&store);
    let md = unescape_md(&report.to_markdown());
    let html = report.to_html();
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();

    // Every verdict figure, word for word.
    for item in j["verdict"]["items"].as_array().unwrap() {
        let figure = item["figure"].as_str().unwrap();
        assert!(md.contains(figure), "markdown lacks {figure:?}");
        assert!(html.contains(figure), "html lacks {figure:?}");
    }
    let chats = &j["targets"][0];
    let logs = &j["logs"]["chat-backend"];
    let phrases = [
        format!("Most surplus documents in one run: {}", chats["duplicates"]["max_documents"]),
        format!("Most duplicated keys in one run: {}", chats["duplicates"]["max_keys"]),
        "Now: 1 surplus document on 1 key".to_string(),
        format!("Runs that found it missing or wrong: {}", chats["index"]["missing_runs"]),
        "First seen missing: 2026-10-05 10:00 UTC".to_string(),
        "Last seen missing: 2026-10-06 09:50 UTC".to_string(),
        format!("Check runs: {}, failed: {}", chats["checks"]["runs"], chats["checks"]["failed"]),
        "Failures by reason: timeout 1, unreachable 36".to_string(),
        "Longest gap without a successful run: 2h 10m (2026-10-10 02:50 UTC to 2026-10-10 05:00 UTC), check index".to_string(),
        "Trend over the month: rising (from 10 to 13 documents without a key)".to_string(),
        format!("Duplicate-key errors: {}", logs["duplicate_key_errors"]),
        format!("Recoveries: {}", logs["recoveries"]),
        "Worst day: 2026-10-17 (12 duplicate-key errors)".to_string(),
        "Error ratio: 19 errors / 30000 requests (event create_or_get) = 0.0633%".to_string(),
        "Days followed: 30 of 31".to_string(),
        "userA_userB".to_string(),
        "id1, id2, id3".to_string(),
        "userE_userF".to_string(),
        "could not be checked when this report was generated (unreachable)".to_string(),
        "The uniqueness invariant did not hold in 2026-10.".to_string(),
    ];
    for phrase in &phrases {
        let in_html = phrase.replace('"', "&quot;");
        assert!(md.contains(phrase.as_str()), "markdown lacks {phrase:?}");
        assert!(html.contains(&in_html), "html lacks {phrase:?}");
    }
    // HTML stands alone: no external assets, charts inline.
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("@import"));
    assert_eq!(html.matches("<svg").count(), 3, "one chart per target and one per followed source");
    assert!(html.contains("<title>2026-10-17: 12 duplicate-key errors</title>"));
    assert!(html.contains("@media print"));
}

#[test]
fn a_month_without_history_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let june: Month = "2026-06".parse().unwrap();
    let report = build_report(&store, june, &targets(), &sources(), &current(), generated_at()).unwrap();
    assert!(!report.has_history);
    assert_eq!(report.verdict.holds, None);
    assert!(report.verdict.items.iter().all(|i| i.status == uniqwatch::audit::Status::NoData));
    let md = unescape_md(&report.to_markdown());
    assert!(md.contains("No history was recorded for 2026-06"), "{md}");
    assert!(md.contains("The history store holds data from 2026-09-30"), "{md}");
    assert!(md.contains("No check of this target ran in 2026-06."), "{md}");
    assert!(report.to_html().contains("No history was recorded for 2026-06"));
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(j["targets"][0]["checks"]["runs"], 0);
    assert_eq!(j["targets"][0]["duplicates"]["max_documents"], Value::Null);
    assert_eq!(j["logs"]["chat-backend"]["duplicate_key_errors"], 0);

    let empty = Store::open_in_memory().unwrap();
    let report = build_report(&empty, june, &targets(), &sources(), &BTreeMap::new(), generated_at()).unwrap();
    assert!(unescape_md(&report.to_markdown()).contains("The history store is empty."));
}

#[test]
fn a_month_in_progress_covers_up_to_now() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let report = build_report(&store, october(), &targets(), &sources(), &current(), utc(10, 6, 0, 0)).unwrap();
    assert_eq!(report.period.end, utc(10, 6, 0, 0));
    let chats = &report.targets[0];
    assert_eq!(chats.duplicates.max_documents, Some(1));
    assert_eq!(chats.checks.runs, 5 * 144 * 3);
    assert_eq!(report.logs["chat-backend"].by_day.len(), 5);
    assert!(unescape_md(&report.to_markdown()).contains("The month was not over"));
}

#[test]
fn targets_no_longer_configured_still_appear() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let report = build_report(&store, october(), &targets()[..1], &[], &current(), generated_at()).unwrap();
    let names: Vec<&str> = report.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["chats", "users"]);
    assert!(!report.targets[1].configured);
    assert!(!report.logs["chat-backend"].configured);
    assert_eq!(report.logs["chat-backend"].error_ratio, None);
}

/// The schema as version 1 created it: check runs only. Written out here
/// so the test keeps pinning it whatever later versions do.
const V1_SCHEMA: &str = r#"
    CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE check_runs (
        target_id INTEGER NOT NULL REFERENCES targets(id), check_kind INTEGER NOT NULL,
        at_ms INTEGER NOT NULL, success INTEGER NOT NULL, reason TEXT, duration_us INTEGER NOT NULL,
        method TEXT, index_present INTEGER, index_name TEXT, index_unique INTEGER,
        index_sparse INTEGER, index_hidden INTEGER, duplicate_keys INTEGER,
        duplicate_documents INTEGER, sample TEXT, missing_absent INTEGER, missing_null INTEGER,
        missing_empty INTEGER, documents INTEGER,
        PRIMARY KEY (target_id, check_kind, at_ms)
    ) WITHOUT ROWID;
    INSERT INTO targets (id, name) VALUES (1, 'chats');
    INSERT INTO check_runs (target_id, check_kind, at_ms, success, duration_us, duplicate_keys, duplicate_documents, method)
        VALUES (1, 2, 1791331200000, 1, 1000, 4, 7, 'group');  -- 2026-10-07T00:00:00Z
    PRAGMA user_version = 1;
"#;

#[test]
fn a_version_1_store_is_migrated_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    rusqlite::Connection::open(&path).unwrap().execute_batch(V1_SCHEMA).unwrap();

    match Store::open_read_only(&path) {
        Err(StoreError::NeedsMigration { found: 1, .. }) => {}
        other => panic!("expected NeedsMigration, got {other:?}"),
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::CURRENT_VERSION);
    assert_eq!(schema::CURRENT_VERSION, 5);
    // The old run is still there, and the new table takes writes.
    let mut tailer = Tailer::default();
    tailer.add("app.chats", "participantsKey_1", 1, 1, 10);
    store.record_log_totals(utc(10, 7, 1, 0), &tailer.totals()).unwrap();
    store.record_runs(&users_runs(utc(10, 7, 0, 0))).unwrap();
    drop(store);
    let store = Store::open_read_only(&path).unwrap();
    let report = build_report(&store, october(), &targets(), &sources(), &BTreeMap::new(), generated_at()).unwrap();
    assert_eq!(report.targets[0].duplicates.max_documents, Some(7));
    assert_eq!(report.targets[1].checks.runs, 3);
    assert_eq!(report.logs["chat-backend"].duplicate_key_errors, 1);
}

/// Issue 10: versions 3 and 4 add `index_build` and `missing_array`. A version 2 store keeps its
/// missing-key runs (their array figure unknown, read as none), and takes
/// runs with arrays afterwards.
#[test]
fn a_version_2_store_gains_the_build_and_array_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let v2 = V1_SCHEMA.replace("PRAGMA user_version = 1;", "")
        + "INSERT INTO check_runs (target_id, check_kind, at_ms, success, duration_us, missing_absent, missing_null,
               missing_empty, documents, method)
           VALUES (1, 3, 1791331200000, 1, 1000, 4, 1, 0, 90, 'aggregation');  -- 2026-10-07T00:00:00Z
           CREATE TABLE log_days (source TEXT NOT NULL, counter TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',
               sub_label TEXT NOT NULL DEFAULT '', day TEXT NOT NULL, start_value INTEGER NOT NULL,
               end_value INTEGER NOT NULL, carried INTEGER NOT NULL DEFAULT 0, updated_ms INTEGER NOT NULL,
               PRIMARY KEY (source, counter, label, sub_label, day)) WITHOUT ROWID;
           PRAGMA user_version = 2;";
    rusqlite::Connection::open(&path).unwrap().execute_batch(&v2).unwrap();
    match Store::open_read_only(&path) {
        Err(StoreError::NeedsMigration { found: 2, .. }) => {}
        other => panic!("expected NeedsMigration, got {other:?}"),
    }
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), schema::CURRENT_VERSION);
    let report = build_report(&store, october(), &targets(), &sources(), &BTreeMap::new(), generated_at()).unwrap();
    let m = &report.targets[0].missing;
    assert_eq!((m.max.absent, m.max.null, m.max.array, m.max_total), (Some(4), Some(1), Some(0), Some(5)));
    store.record_runs(&[record("chats", utc(10, 8, 0, 0), missing_keys(4, 1, 0, 3, 93))]).unwrap();
    drop(store);
    let store = Store::open_read_only(&path).unwrap();
    let report = build_report(&store, october(), &targets(), &sources(), &BTreeMap::new(), generated_at()).unwrap();
    let m = &report.targets[0].missing;
    assert_eq!((m.max.array, m.max_total, m.last.as_ref().map(|p| p.array)), (Some(3), Some(8), Some(3)));
    assert!(unescape_md(&report.to_markdown()).contains("| array |"), "the table has an array column");
}

#[test]
fn a_store_from_a_newer_version_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    rusqlite::Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.reason(), "too_new");
    assert!(err.to_string().contains("schema version 99"), "{err}");
    let version: u32 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

#[test]
fn a_corrupt_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let garbage = "this is not a database, it is a text file that someone put here\n".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert_eq!(err.reason(), "corrupt", "{err}");
    assert!(err.to_string().contains("corrupt or not a SQLite database"), "{err}");
    assert!(err.to_string().contains("history.sqlite3"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), garbage, "the file is left as it was");
    assert_eq!(Store::open_read_only(&path).unwrap_err().reason(), "corrupt");

    let metrics = Metrics::new();
    uniqwatch::store::record_open_failure(&metrics, &err);
    assert_eq!(metrics.history_write_failures_total.with_label_values(&["corrupt"]).get(), 1);
    assert_eq!(metrics.history_up.get(), 0);

    // Damaged pages in a real store: every use fails cleanly.
    let path = dir.path().join("damaged.sqlite3");
    {
        let mut store = Store::open(&path).unwrap();
        seed_runs(&mut store);
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    for b in bytes.iter_mut().skip(4096).take(half) {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("damaged.sqlite3-wal"));
    match Store::open(&path) {
        Err(e) => assert_eq!(e.reason(), "corrupt", "{e}"),
        Ok(store) => {
            let result = build_report(&store, october(), &targets(), &sources(), &BTreeMap::new(), generated_at());
            let e = result.unwrap_err();
            assert!(e.to_string().contains("corrupt") || e.to_string().contains("malformed"), "{e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_reads_while_the_daemon_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let store = Store::open(&path).unwrap();
    let metrics = Metrics::new();
    let (runs_tx, runs_rx) = tokio::sync::mpsc::channel(1024);
    let (totals_tx, totals_rx) = tokio::sync::watch::channel(LogTotals::default());
    let (trigger, shutdown) = uniqwatch::shutdown::channel();
    let writer = spawn_writer(store, metrics.clone(), Duration::from_secs(400 * 86400), runs_rx, totals_rx, shutdown);

    // The reader opens once the writer has created the store.
    let reader = tokio::task::spawn_blocking({
        let path = path.clone();
        move || {
            let store = Store::open_read_only(&path).unwrap();
            let mut last = 0;
            let mut reports = 0;
            while last < 3000 * 3 {
                let report = build_report(&store, october(), &targets()[..1], &[], &BTreeMap::new(), generated_at()).unwrap();
                let runs = report.targets[0].checks.runs;
                assert!(runs >= last, "runs went back from {last} to {runs}");
                assert_eq!(runs % 3, 0, "a batch is visible whole or not at all");
                last = runs;
                reports += 1;
            }
            reports
        }
    });
    let mut tailer = Tailer::default();
    for i in 0..3000 {
        runs_tx.send(chats_runs(october().start() + Span::minutes(10 * i))).await.unwrap();
        if i % 500 == 0 {
            tailer.add("app.chats", "participantsKey_1", 1, 1, 1);
            totals_tx.send(tailer.totals()).unwrap();
        }
        if i % 100 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let reports = reader.await.unwrap();
    assert!(reports >= 1);
    trigger.trigger();
    writer.await.unwrap();
    assert_eq!(metrics.history_up.get(), 1);
    assert!(metrics.history_last_write_timestamp_seconds.with_label_values::<&str>(&[]).get() > 0.0);
    assert_eq!(latest_totals(&path, "chat-backend")[&("recoveries".into(), String::new(), String::new())], 6);
}

#[tokio::test]
async fn the_writer_prunes_history_beyond_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let mut store = Store::open(&path).unwrap();
    let now = Utc::now();
    let old = now - Span::days(500);
    let recent = now - Span::days(10);
    store.record_runs(&users_runs(old)).unwrap();
    store.record_runs(&users_runs(recent)).unwrap();
    let mut tailer = Tailer::default();
    tailer.add("app.chats", "participantsKey_1", 1, 1, 1);
    store.record_log_totals(old, &tailer.totals()).unwrap();
    tailer.add("app.chats", "participantsKey_1", 1, 1, 1);
    store.record_log_totals(recent, &tailer.totals()).unwrap();

    let (_runs_tx, runs_rx) = tokio::sync::mpsc::channel(1);
    let (_totals_tx, totals_rx) = tokio::sync::watch::channel(LogTotals::default());
    let (trigger, shutdown) = uniqwatch::shutdown::channel();
    let writer = spawn_writer(store, Metrics::new(), Duration::from_secs(400 * 86400), runs_rx, totals_rx, shutdown);
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.trigger();
    writer.await.unwrap();

    let store = Store::open_read_only(&path).unwrap();
    let span = store.history_span().unwrap().unwrap();
    assert!(span.first > now - Span::days(400), "oldest left: {}", span.first);
    let month = Month::containing(recent);
    let report = build_report(&store, month, &targets(), &sources(), &BTreeMap::new(), now).unwrap();
    assert_eq!(report.targets[1].checks.runs, 3);
    // What is left still sums to the day's increase: pruning never rewrites kept days.
    assert_eq!(report.logs["chat-backend"].duplicate_key_errors, 1);
}

#[test]
fn scheduled_files_hold_the_same_report() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = seeded_store(dir.path());
    let report = october_report(&store);
    let out = dir.path().join("reports");
    let paths = write_report_files(&out, &report).unwrap();
    assert_eq!(std::fs::read_to_string(&paths[2]).unwrap(), report.to_json());
    assert_eq!(std::fs::read_to_string(&paths[0]).unwrap(), report.to_markdown());
    let again = write_report_files(&out, &report).unwrap();
    assert!(again[1].ends_with("uniqwatch-audit-2026-10.1.html"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 6);
}

/// Issue 10: a unique index still being built is missing (it enforces
/// nothing), but not "wrong options"; runs whose build state the server could
/// not give are counted apart, and "now" says the build is running.
#[test]
fn index_builds_are_kept_in_history_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.sqlite3")).unwrap();
    let with_build = |present: bool, build: BuildState| {
        Figures::Index(IndexOutcome {
            present,
            name: Some("participantsKey_1".into()),
            unique: true,
            sparse: true,
            build: Some(build),
            guarantees_uniqueness: build == BuildState::Ready,
            ..IndexOutcome::default()
        })
    };
    let mut runs = Vec::new();
    for h in 0..3 {
        runs.push(record("chats", utc(10, 2, h, 0), with_build(false, BuildState::Building)));
    }
    for h in 3..5 {
        runs.push(record("chats", utc(10, 2, h, 0), with_build(true, BuildState::Unknown)));
    }
    runs.push(record("chats", utc(10, 2, 6, 0), index(false, Some("participantsKey_1"), false, true)));
    runs.push(record("chats", utc(10, 2, 7, 0), with_build(true, BuildState::Ready)));
    store.record_runs(&runs).unwrap();
    let mut now = current();
    now.insert(
        "chats".into(),
        CurrentState::Reachable {
            index_present: false,
            index_building: true,
            duplicates: CurrentDuplicates { documents: 0, keys: 0, sample: Vec::new() },
            missing: MissingCounts { absent: 0, null: 0, empty: 0, array: 0 },
            canonical: None,
        },
    );
    let report = build_report(&store, october(), &targets(), &sources(), &now, generated_at()).unwrap();
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    let index = &j["targets"][0]["index"];
    assert_eq!(index["runs"], 7);
    assert_eq!(index["missing_runs"], 4);
    assert_eq!(index["wrong_runs"], 1, "a build in progress is not a wrong option");
    assert_eq!(index["building_runs"], 3);
    assert_eq!(index["unknown_build_runs"], 2);
    assert_eq!(index["building_now"], true);
    let text = report.to_markdown();
    assert!(text.contains("still being built: 3"), "{text}");
    assert!(text.contains("could not say whether its build had finished (duplicates were scanned): 2"), "{text}");
    assert!(text.contains("Now: still being built (enforces nothing yet)"), "{text}");
}

/// Response time in the report: a duration event's daily histograms,
/// recorded as the tailer's cumulative totals through September and
/// October, give October's p50/p99, the change against September and the
/// worst day (the 20th, when a tenth of the requests took up to a second).
#[test]
fn response_time_per_duration_event_month_over_month() {
    use uniqwatch::logs::durations::{EventDurations, Histogram};
    let mut store = Store::open_in_memory().unwrap();
    // Cumulative per bucket (10ms, 100ms, 1s, above), as the checkpoint holds it.
    let mut buckets = [0u64; 4];
    let mut at = utc(9, 1, 12, 0);
    while at < utc(11, 1, 0, 0) {
        let slow_day = at.date_naive() == utc(10, 20, 0, 0).date_naive();
        let october = at >= october().start();
        // 1000 requests a day; October's are slower than September's.
        let day = match (october, slow_day) {
            (_, true) => [500, 400, 100, 0],
            (true, false) => [900, 95, 5, 0],
            (false, false) => [980, 20, 0, 0],
        };
        for (total, n) in buckets.iter_mut().zip(day) {
            *total += n;
        }
        let count = buckets.iter().sum();
        let durations = EventDurations {
            bounds_nanos: vec![10_000_000, 100_000_000, 1_000_000_000],
            unparsed: 0,
            by_status_class: [("2xx".to_string(), Histogram { buckets: buckets.to_vec(), count, sum_nanos: 0 })].into(),
            ..Default::default()
        };
        let mut totals = LogTotals::default();
        totals.sources.insert(
            "chat-backend".into(),
            SourceTotals { durations: [("create_or_get_latency".to_string(), durations)].into(), ..Default::default() },
        );
        store.record_log_totals(at, &totals).unwrap();
        at += Span::days(1);
    }
    let report = build_report(&store, october(), &targets(), &sources(), &BTreeMap::new(), generated_at()).unwrap();
    let latency = &report.logs["chat-backend"].latency;
    assert_eq!(latency.len(), 1, "{latency:?}");
    let e = &latency[0];
    assert_eq!(e.event, "create_or_get_latency");
    assert_eq!(e.samples, 31_000);
    let worst = e.worst_day.as_ref().unwrap();
    assert_eq!(worst.date, utc(10, 20, 0, 0).date_naive());
    // September: 98% at most 10ms, the rest at most 100ms; the 99th
    // percentile lies halfway through the 10ms–100ms bucket.
    assert!((e.previous_p99_seconds.unwrap() - 0.055).abs() < 1e-9, "{e:?}");
    assert!(e.p99_seconds.unwrap() > e.previous_p99_seconds.unwrap(), "{e:?}");
    assert!(e.p99_change.unwrap() > 0.5, "{e:?}");
    assert!((worst.p99_seconds - 0.91).abs() < 1e-9, "{e:?}");
    let md = unescape_md(&report.to_markdown());
    assert!(md.contains("create_or_get_latency") && md.contains("2026-10-20"), "{md}");
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(j["logs"]["chat-backend"]["latency"][0]["samples"], 31_000);
}
