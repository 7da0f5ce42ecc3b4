//! The canonical checks in the monthly audit, end to end, without MongoDB
//! (as tests/audit.rs does): a month of `key_consistency` and
//! `canonical_duplicates` runs is injected into a real store with chosen
//! times, and the verdict lines, worst days and samples are checked in all
//! three formats. A target without `[target.canonical]` shows nothing new.
//! One test runs the real checks against the test server and builds the
//! report as `uniqwatch audit` does.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use serde_json::{json, Value};
use uniqwatch::audit::{
    build_report, current_state, AuditReport, CurrentCanonical, CurrentCanonicalDuplicates, CurrentDuplicates,
    CurrentKeyConsistency, CurrentState, MissingCounts, Month, Status, TargetInfo,
};
use uniqwatch::checks::{
    CanonicalDuplicatesOutcome, CanonicalSample, CheckName, CheckResult, DuplicatesOutcome, Figures, Group, IndexOutcome,
    KeyConsistencyOutcome, Method, MismatchKind, MismatchSample, MissingKeysOutcome, TargetRun,
};
use uniqwatch::config::Config;
use uniqwatch::mongo::{FailureReason, Mongo, QueryError};
use uniqwatch::store::{records, RunOutcome, RunRecord, Store};

fn utc(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

fn october() -> Month {
    "2026-10".parse().unwrap()
}

fn record(target: &str, at: DateTime<Utc>, figures: Figures) -> RunRecord {
    RunRecord { at, target: target.into(), duration: Duration::from_millis(50), outcome: RunOutcome::Succeeded(figures) }
}

fn failure(target: &str, check: CheckName, at: DateTime<Utc>) -> RunRecord {
    RunRecord {
        at,
        target: target.into(),
        duration: Duration::from_secs(30),
        outcome: RunOutcome::Failed { check, reason: FailureReason::Timeout },
    }
}

/// The key checks, clean: the canonical story is told apart from them.
fn key_runs(target: &str, at: DateTime<Utc>) -> Vec<RunRecord> {
    let index = Figures::Index(IndexOutcome {
        present: true,
        name: Some("participantsKey_1".into()),
        unique: true,
        guarantees_uniqueness: true,
        ..IndexOutcome::default()
    });
    let duplicates =
        Figures::Duplicates(DuplicatesOutcome { keys: 0, documents: 0, method: Method::UniqueIndex, sample: Vec::new() });
    let missing = Figures::MissingKeys(MissingKeysOutcome {
        absent: 0,
        null: 0,
        empty: 0,
        array: 0,
        documents: 1000,
        method: Method::Aggregation,
    });
    vec![record(target, at, index), record(target, at, duplicates), record(target, at, missing)]
}

fn group(canonical: &str, ids: &[&str], keys: Value) -> CanonicalSample {
    CanonicalSample {
        canonical: json!(canonical),
        count: ids.len() as u64,
        ids: ids.iter().map(|id| json!(id)).collect(),
        keys: keys.as_array().unwrap().clone(),
    }
}

fn off(id: &str, kind: MismatchKind, stored: Value, canonical: Value) -> MismatchSample {
    MismatchSample { id: json!(id), kind, stored, canonical }
}

fn canonical_duplicates(values: u64, documents: u64, sample: Vec<CanonicalSample>) -> Figures {
    Figures::CanonicalDuplicates(CanonicalDuplicatesOutcome { keys: values, documents, sample })
}

fn key_consistency(mismatch: u64, derivable: u64, underivable: u64, sample: Vec<MismatchSample>) -> Figures {
    Figures::KeyConsistency(KeyConsistencyOutcome { mismatch, derivable, underivable, documents: 1000, sample })
}

/// The canonical runs of `chats` at one hour, following the month's story:
/// - one canonical value held by two documents all of 10-03 (their keys
///   differ: the index saw nothing), two values with three surplus documents
///   10-12 06:00 to 11:00 (the worst day);
/// - two mismatched keys 10-07 and 10-08; on 10-20 one mismatch, four
///   derivable and one underivable (the worst day);
/// - the canonical pass timing out at 10-15 02:00.
fn canonical_runs(at: DateTime<Utc>) -> Vec<RunRecord> {
    if at == utc(10, 15, 2) {
        return vec![failure("chats", CheckName::KeyConsistency, at), failure("chats", CheckName::CanonicalDuplicates, at)];
    }
    let duplicates = if at >= utc(10, 3, 0) && at < utc(10, 4, 0) {
        canonical_duplicates(1, 1, vec![group("userA_userB", &["c1", "c2"], json!(["userA_userB", "userB_userA"]))])
    } else if at >= utc(10, 12, 6) && at < utc(10, 12, 12) {
        canonical_duplicates(
            2,
            3,
            vec![
                group("userA_userB", &["c1", "c2", "c3"], json!(["userA_userB", "userB_userA", null])),
                group("userC_userD", &["c4", "c5"], json!(["userC_userD"])),
            ],
        )
    } else {
        canonical_duplicates(0, 0, Vec::new())
    };
    let c1 = off("c1", MismatchKind::Mismatch, json!("userB_userA"), json!("userA_userB"));
    let consistency = if at >= utc(10, 7, 0) && at < utc(10, 9, 0) {
        key_consistency(2, 0, 0, vec![c1, off("c6", MismatchKind::Mismatch, json!("userF_userE"), json!("userE_userF"))])
    } else if at >= utc(10, 20, 0) && at < utc(10, 21, 0) {
        key_consistency(
            1,
            4,
            1,
            vec![
                c1,
                off("c7", MismatchKind::Derivable, Value::Null, json!("userG_userH")),
                off("c8", MismatchKind::Underivable, json!("x"), Value::Null),
            ],
        )
    } else {
        key_consistency(0, 0, 0, Vec::new())
    };
    vec![record("chats", at, consistency), record("chats", at, duplicates)]
}

/// Hourly runs through October: `chats` has `[target.canonical]`, `users`
/// has not. Canonical runs just outside the month must not leak in.
fn seeded_store() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let mut at = october().start();
    while at < october().end() {
        let mut batch = key_runs("chats", at);
        batch.extend(key_runs("users", at));
        batch.extend(canonical_runs(at));
        store.record_runs(&batch).unwrap();
        at += Span::hours(1);
    }
    let outside = canonical_duplicates(40, 90, vec![group("september", &["s1", "s2"], json!(["s"]))]);
    store
        .record_runs(&[
            record("chats", utc(9, 30, 23), outside.clone()),
            record("chats", utc(11, 1, 0), outside),
            record("chats", utc(11, 1, 0), key_consistency(50, 0, 0, Vec::new())),
        ])
        .unwrap();
    store
}

fn targets() -> Vec<TargetInfo> {
    vec![
        TargetInfo { name: "chats".into(), database: "app".into(), collection: "chats".into(), key: "participantsKey".into() },
        TargetInfo { name: "users".into(), database: "app".into(), collection: "users".into(), key: "email".into() },
    ]
}

fn reachable(canonical: Option<CurrentCanonical>) -> CurrentState {
    CurrentState::Reachable {
        index_present: true,
        index_building: false,
        duplicates: CurrentDuplicates::default(),
        missing: MissingCounts::default(),
        canonical,
    }
}

/// Now: one canonical duplicate and one mismatched key left.
fn current() -> BTreeMap<String, CurrentState> {
    let now = CurrentCanonical::Checked {
        key_consistency: CurrentKeyConsistency {
            mismatch: 1,
            derivable: 0,
            underivable: 0,
            documents: 1000,
            sample: vec![off("c9", MismatchKind::Mismatch, json!("userZ_userY"), json!("userY_userZ"))],
        },
        duplicates: CurrentCanonicalDuplicates {
            documents: 1,
            values: 1,
            sample: vec![group("userY_userZ", &["c9", "c10"], json!(["userZ_userY", "userY_userZ"]))],
        },
    };
    BTreeMap::from([("chats".to_string(), reachable(Some(now))), ("users".to_string(), reachable(None))])
}

fn october_report(store: &Store, targets: &[TargetInfo]) -> AuditReport {
    build_report(store, october(), targets, &[], &current(), utc(11, 1, 6)).unwrap()
}

const RUNS: u64 = 31 * 24;

#[test]
fn canonical_sections_match_what_was_injected() {
    let store = seeded_store();
    let j: Value = serde_json::from_str(&october_report(&store, &targets()).to_json()).unwrap();
    assert_eq!(j["verdict"]["holds"], false);
    let c = &j["targets"][0]["canonical"];
    assert_eq!(c["now"], json!({"checked": true, "reason": null}));

    // One document per canonical value: September's and November's 90 stay out.
    let d = &c["duplicates"];
    assert_eq!(d["runs"], RUNS - 1);
    assert_eq!(d["runs_with_duplicates"], 24 + 6);
    assert_eq!((d["max_documents"].clone(), d["max_values"].clone()), (json!(3), json!(2)));
    assert_eq!(d["first_seen"], "2026-10-03T00:00:00Z");
    assert_eq!(d["last_seen"], "2026-10-12T11:00:00Z");
    assert_eq!(d["worst_day"], json!({"date": "2026-10-12", "documents": 3, "values": 2}));
    assert_eq!(d["by_day"].as_array().unwrap().len(), 31);
    assert_eq!(d["by_day"][2], json!({"date": "2026-10-03", "documents": 1, "values": 1}));
    assert_eq!(d["offending_values_total"], 2);
    let first = &d["offending_values"][0];
    assert_eq!(first["canonical"], "userA_userB");
    assert_eq!(first["count"], 3);
    assert_eq!(first["ids"], json!(["c1", "c2", "c3"]));
    assert_eq!(first["keys"], json!(["userA_userB", "userB_userA", null]));
    assert_eq!(first["runs"], 30);
    assert_eq!((first["first_seen"].clone(), first["last_seen"].clone()), (json!("2026-10-03T00:00:00Z"), json!("2026-10-12T11:00:00Z")));
    assert_eq!(d["offending_values"][1]["canonical"], "userC_userD");
    assert_eq!(d["current"]["documents"], 1);
    assert_eq!(d["current"]["values"], 1);
    assert_eq!(d["current"]["sample"][0]["ids"], json!(["c9", "c10"]));

    // Every key its canonical value.
    let k = &c["key_consistency"];
    assert_eq!(k["runs"], RUNS - 1);
    assert_eq!(k["runs_with_mismatches"], 48 + 24);
    assert_eq!(k["max"], json!({"mismatch": 2, "derivable": 4, "underivable": 1}));
    assert_eq!(k["max_total"], 6);
    assert_eq!(k["first_seen"], "2026-10-07T00:00:00Z");
    assert_eq!(k["last_seen"], "2026-10-20T23:00:00Z");
    assert_eq!(k["worst_day"], json!({"date": "2026-10-20", "mismatch": 1, "derivable": 4, "underivable": 1, "total": 6}));
    assert_eq!(k["offending_documents_total"], 4);
    let docs = k["offending_documents"].as_array().unwrap();
    let ids: Vec<&str> = docs.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", "c6", "c7", "c8"], "first seen first");
    assert_eq!(
        docs[0],
        json!({"id": "c1", "kind": "mismatch", "stored": "userB_userA", "canonical": "userA_userB", "runs": 72,
               "first_seen": "2026-10-07T00:00:00Z", "last_seen": "2026-10-20T23:00:00Z"})
    );
    assert_eq!((docs[2]["kind"].clone(), docs[2]["stored"].clone()), (json!("derivable"), Value::Null));
    assert_eq!((docs[3]["kind"].clone(), docs[3]["canonical"].clone()), (json!("underivable"), Value::Null));
    assert_eq!(
        k["current"],
        json!({"kinds": {"mismatch": 1, "derivable": 0, "underivable": 0}, "total": 1, "documents": 1000,
               "sample": [{"id": "c9", "kind": "mismatch", "stored": "userZ_userY", "canonical": "userY_userZ"}]})
    );
    assert_eq!(j["targets"][0]["checks"]["by_check"]["key_consistency"]["failed"], 1);

    // Verdict: the key checks' three questions, then the canonical two, per target.
    let items = j["verdict"]["items"].as_array().unwrap();
    let lines: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|i| (i["subject"].as_str().unwrap(), i["question"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[3], ("chats", "One document per canonical value?", "fail"));
    assert_eq!(lines[4], ("chats", "Every key its canonical value?", "fail"));
    assert!(lines[5..].iter().all(|(subject, _, status)| *subject == "users" && *status == "pass"));
    assert_eq!(
        items[3]["figure"],
        "up to 3 surplus documents on 2 canonical values, in 30 of 743 runs, worst day 2026-10-12; now: 1 surplus document on 1 canonical value"
    );
    assert_eq!(
        items[4]["figure"],
        "up to 6 documents whose key is not its canonical value (mismatch 2, derivable 4, underivable 1), in 72 of 743 runs, worst day 2026-10-20; now: 1 (mismatch 1, derivable 0, underivable 0)"
    );
}

#[test]
fn the_three_formats_carry_the_same_canonical_figures() {
    let store = seeded_store();
    let report = october_report(&store, &targets());
    let md = report.to_markdown().replace('\\', "");
    let html = report.to_html();
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();

    for item in j["verdict"]["items"].as_array().unwrap() {
        for text in [item["question"].as_str().unwrap(), item["figure"].as_str().unwrap()] {
            assert!(md.contains(text), "markdown lacks {text:?}");
            assert!(html.contains(text), "html lacks {text:?}");
        }
    }
    let d = &j["targets"][0]["canonical"]["duplicates"];
    let phrases = [
        format!("Most surplus documents in one run: {}", d["max_documents"]),
        format!("Most canonical values held by several documents in one run: {}", d["max_values"]),
        "Runs that found canonical duplicates: 30 of 743".to_string(),
        "First seen: 2026-10-03 00:00 UTC; last seen: 2026-10-12 11:00 UTC".to_string(),
        "Worst day: 2026-10-12 (3 surplus documents on 2 canonical values)".to_string(),
        "Now: 1 surplus document on 1 canonical value".to_string(),
        "Runs that found a key that is not its canonical value: 72 of 743".to_string(),
        "First seen: 2026-10-07 00:00 UTC; last seen: 2026-10-20 23:00 UTC".to_string(),
        "Worst day: 2026-10-20 (6 documents whose key is not its canonical value)".to_string(),
        "Now: 1 of 1000 documents read".to_string(),
        "c1, c2, c3".to_string(),
        "userA_userB, userB_userA, -".to_string(),
        "userZ_userY".to_string(),
    ];
    for phrase in &phrases {
        assert!(md.contains(phrase.as_str()), "markdown lacks {phrase:?}");
        assert!(html.contains(phrase.as_str()), "html lacks {phrase:?}");
    }
    // The tables, row by row: the worst day's kinds, and the samples.
    let rows: [&[&str]; 4] = [
        &["Worst day (2026-10-20)", "1", "4", "1", "6"],
        &["userA_userB", "3", "c1, c2, c3", "userA_userB, userB_userA, -", "30", "2026-10-03 00:00 UTC", "2026-10-12 11:00 UTC"],
        &["c8", "underivable", "x", "-", "24", "2026-10-20 00:00 UTC", "2026-10-20 23:00 UTC"],
        &["c9", "mismatch", "userZ_userY", "userY_userZ"],
    ];
    for row in rows {
        let in_md = format!("| {} |", row.join(" | "));
        let in_html = format!("<tr><td>{}</td></tr>", row.join("</td><td>"));
        assert!(md.contains(&in_md), "markdown lacks {in_md:?}");
        assert!(html.contains(&in_html), "html lacks {in_html:?}");
    }
    // One more chart, for the target with canonical checks only.
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(html.contains("<title>2026-10-20: 6 keys not canonical</title>"));
    assert!(html.contains("<title>2026-10-12: 3 surplus documents</title>"));
}

#[test]
fn a_target_without_canonical_checks_shows_nothing_new() {
    let store = seeded_store();
    let report = october_report(&store, &targets()[1..]);
    let users = report.targets.iter().find(|t| t.name == "users").unwrap();
    assert!(users.canonical.is_none());
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    let users = j["targets"].as_array().unwrap().iter().find(|t| t["name"] == "users").unwrap();
    assert!(users.get("canonical").is_none(), "no empty section in JSON");
    let by_check: Vec<&String> = users["checks"]["by_check"].as_object().unwrap().keys().collect();
    assert_eq!(by_check, ["duplicates", "index", "missing_keys"]);
    let users_items = report.verdict.items.iter().filter(|i| i.subject == "users").count();
    assert_eq!(users_items, 3);

    // chats is no longer configured here but its history still shows; users' section has nothing canonical.
    let md = report.to_markdown().replace('\\', "");
    let users_md = &md[md.find("## Target users").unwrap()..];
    let users_md = &users_md[..users_md.find("## Target chats").unwrap_or(users_md.len())];
    for absent in ["canonical", "key_consistency", "Every key its"] {
        assert!(!users_md.contains(absent), "users' section mentions {absent:?}: {users_md}");
    }
}

#[test]
fn canonical_lines_answer_unknown_without_a_successful_run() {
    let mut store = Store::open_in_memory().unwrap();
    // Every canonical run of the month failed; the key checks ran clean.
    for h in 0..24 {
        let at = utc(10, 2, h);
        let mut batch = key_runs("chats", at);
        batch.push(failure("chats", CheckName::KeyConsistency, at));
        batch.push(failure("chats", CheckName::CanonicalDuplicates, at));
        store.record_runs(&batch).unwrap();
    }
    let now = BTreeMap::from([(
        "chats".to_string(),
        reachable(Some(CurrentCanonical::Unchecked { reason: "key_consistency check failed (timeout): slow".into() })),
    )]);
    let report = build_report(&store, october(), &targets()[..1], &[], &now, utc(11, 1, 6)).unwrap();
    let canonical: Vec<_> = report.verdict.items.iter().skip(3).collect();
    assert_eq!(canonical.len(), 2);
    assert!(canonical.iter().all(|i| i.status == Status::NoData), "{canonical:?}");
    assert_eq!(
        canonical[0].figure,
        "no successful canonical_duplicates run this month; now: not checked"
    );
    assert_eq!(canonical[1].figure, "no successful key_consistency run this month; now: not checked");
    assert_eq!(report.verdict.holds, Some(true), "the key checks' passes stand; unknown is not a failure");
    let c = report.targets[0].canonical.as_ref().unwrap();
    assert_eq!((c.duplicates.max_documents, c.key_consistency.max_total), (None, None));
    let md = report.to_markdown().replace('\\', "");
    assert!(md.contains("Now: not checked (key_consistency check failed (timeout): slow)"), "{md}");

    // A clean month with successful runs answers yes.
    let mut store = Store::open_in_memory().unwrap();
    store
        .record_runs(&[
            record("chats", utc(10, 3, 0), key_consistency(0, 0, 0, Vec::new())),
            record("chats", utc(10, 3, 0), canonical_duplicates(0, 0, Vec::new())),
        ])
        .unwrap();
    let report = build_report(&store, october(), &targets()[..1], &[], &BTreeMap::new(), utc(11, 1, 6)).unwrap();
    let figures: Vec<(Status, &str)> = report.verdict.items.iter().skip(3).map(|i| (i.status, i.figure.as_str())).collect();
    assert_eq!(
        figures,
        [
            (Status::Pass, "0 canonical values held by several documents in 1 runs; now: not checked"),
            (Status::Pass, "0 documents whose key is not its canonical value in 1 runs; now: not checked"),
        ]
    );
    let c = report.targets[0].canonical.as_ref().unwrap();
    assert_eq!((c.duplicates.worst_day.as_ref(), c.key_consistency.worst_day.as_ref()), (None, None));
    assert_eq!(c.now.reason.as_deref(), Some("not checked at report time"));
}

#[test]
fn now_takes_the_canonical_figures_apart_and_keeps_the_key_checks_when_they_fail() {
    let at = utc(11, 1, 6);
    let result = |check, outcome| CheckResult { check, started_at: at, duration: Duration::from_secs(1), outcome };
    let key_results = || {
        [CheckName::Index, CheckName::Duplicates, CheckName::MissingKeys]
            .into_iter()
            .zip(key_runs("chats", at))
            .map(|(check, r)| match r.outcome {
                RunOutcome::Succeeded(f) => result(check, Ok(f)),
                RunOutcome::Failed { .. } => unreachable!("key_runs are successes"),
            })
            .collect::<Vec<_>>()
    };
    let sample = vec![off("c1", MismatchKind::Derivable, Value::Null, json!("a_b"))];
    let mut results = key_results();
    results.push(result(CheckName::KeyConsistency, Ok(key_consistency(0, 3, 0, sample.clone()))));
    results.push(result(CheckName::CanonicalDuplicates, Ok(canonical_duplicates(2, 5, Vec::new()))));
    let run = TargetRun { target: "chats".into(), started_at: at, results };
    let CurrentState::Reachable { canonical: Some(CurrentCanonical::Checked { key_consistency, duplicates }), .. } =
        current_state(&run)
    else {
        panic!("expected canonical figures");
    };
    assert_eq!(
        key_consistency,
        CurrentKeyConsistency { mismatch: 0, derivable: 3, underivable: 0, documents: 1000, sample }
    );
    assert_eq!((duplicates.values, duplicates.documents), (2, 5));

    let mut results = key_results();
    for check in [CheckName::KeyConsistency, CheckName::CanonicalDuplicates] {
        results.push(result(check, Err(QueryError::new(FailureReason::Timeout, "slow"))));
    }
    let run = TargetRun { target: "chats".into(), started_at: at, results };
    match current_state(&run) {
        CurrentState::Reachable { canonical: Some(CurrentCanonical::Unchecked { reason }), index_present: true, .. } => {
            assert!(reason.starts_with("key_consistency check failed"), "{reason}")
        }
        other => panic!("the key checks' figures must stand: {other:?}"),
    }

    let run = TargetRun { target: "users".into(), started_at: at, results: key_results() };
    assert!(matches!(current_state(&run), CurrentState::Reachable { canonical: None, .. }));
}

/// `uniqwatch audit` end to end on the test server: a run of every check
/// recorded by the daemon's path, then the report with a fresh check for
/// "now". A keyless chat beside the keyed one for the same pair and an
/// unsorted key: both canonical lines fail, with the same figures "now".
#[tokio::test]
async fn the_audit_of_a_canonical_target_on_a_real_server() {
    use common::{seed, shared_uri, target_toml, unique_db};
    use mongodb::bson::doc;
    let db = unique_db("audit_canon");
    seed(
        &shared_uri(),
        &db,
        "chats",
        vec![
            doc! { "participants": ["a", "b"], "participantsKey": "a_b" },
            doc! { "participants": ["b", "a"] },
            doc! { "participants": ["c", "d"], "participantsKey": "d_c" },
            doc! { "participants": ["e", "f"], "participantsKey": "e_f" },
        ],
    )
    .await;
    let mut text = target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "0 */5 * * * *");
    text.push_str("\n[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\nseparator = \"_\"\n");
    let config = Config::from_toml(&text, Path::new("test.toml"), None).unwrap();
    let mongo = Mongo::new(config.mongodb.clone());

    let run = uniqwatch::checks::run_target(&config.targets[0], &mongo).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let mut store = Store::open(&uniqwatch::store::history_path(&config.state.dir)).unwrap();
    store.record_runs(&records(&run)).unwrap();
    drop(store);

    let now = Utc::now();
    let report = uniqwatch::audit::build(&config, &mongo, Month::containing(run.started_at), now).await.unwrap();
    let c = report.targets[0].canonical.as_ref().expect("a canonical section");
    assert!(c.now.checked, "{:?}", c.now);
    assert_eq!((c.duplicates.runs, c.duplicates.max_documents, c.duplicates.current.documents), (1, Some(1), Some(1)));
    assert_eq!(c.duplicates.offending_values[0].canonical, json!("a_b"));
    assert_eq!(c.duplicates.offending_values[0].keys.len(), 2, "the stored key and none");
    let k = &c.key_consistency;
    assert_eq!((k.max.mismatch, k.max.derivable, k.max.underivable, k.max_total), (Some(1), Some(1), Some(0), Some(2)));
    assert_eq!(k.current.total, Some(2));
    assert_eq!(k.worst_day.as_ref().map(|d| d.date), Some(run.started_at.date_naive()));
    let mismatch = k.offending_documents.iter().find(|o| o.kind == MismatchKind::Mismatch).unwrap();
    assert_eq!((&mismatch.stored, &mismatch.canonical), (&json!("d_c"), &json!("c_d")));
    let lines: Vec<(&str, Status)> =
        report.verdict.items.iter().skip(3).map(|i| (i.question.as_str(), i.status)).collect();
    assert_eq!(
        lines,
        [("One document per canonical value?", Status::Fail), ("Every key its canonical value?", Status::Fail)]
    );
    assert!(report.verdict.items[3].figure.ends_with("; now: 1 surplus document on 1 canonical value"));
}

/// Issue 14: the days of the month before uniqwatch first ran were counted
/// as the longest gap without a successful run. `chats` is first checked on
/// 10-10 at 12:00 and its canonical checks on 10-15; `users` all month.
#[test]
fn days_before_the_first_run_are_not_yet_monitored_not_a_gap() {
    let mut store = Store::open_in_memory().unwrap();
    let mut at = october().start();
    while at < october().end() {
        let mut batch = key_runs("users", at);
        if at >= utc(10, 10, 12) {
            if at >= utc(10, 20, 0) && at < utc(10, 20, 5) {
                // A real gap: the key checks fail for five hours.
                batch.extend(Group::Key.checks().iter().map(|&c| failure("chats", c, at)));
            } else {
                batch.extend(key_runs("chats", at));
            }
        }
        if at >= utc(10, 15, 0) {
            batch.extend(canonical_runs(at));
        }
        store.record_runs(&batch).unwrap();
        at += Span::hours(1);
    }
    let report = october_report(&store, &targets());
    let j: Value = serde_json::from_str(&report.to_json()).unwrap();
    let chats = &j["targets"][0]["checks"];
    assert_eq!(
        chats["not_yet_monitored"],
        json!({"from": "2026-10-01T00:00:00Z", "to": "2026-10-10T12:00:00Z", "seconds": 9 * 86400 + 12 * 3600})
    );
    assert_eq!(
        chats["longest_gap"],
        json!({"check": "index", "from": "2026-10-19T23:00:00Z", "to": "2026-10-20T05:00:00Z", "seconds": 6 * 3600}),
        "the real gap, not the days before the first run"
    );
    assert_eq!(chats["by_check"]["index"]["not_yet_monitored"]["to"], "2026-10-10T12:00:00Z");
    // A check added later is not yet monitored until its own first run.
    let canonical = &chats["by_check"]["canonical_duplicates"];
    assert_eq!(canonical["not_yet_monitored"]["to"], "2026-10-15T00:00:00Z");
    assert_ne!(canonical["longest_gap"]["from"], "2026-10-01T00:00:00Z");
    assert_eq!(j["targets"][1]["checks"]["not_yet_monitored"], Value::Null, "users ran from the start");

    let md = report.to_markdown().replace('\\', "");
    let html = report.to_html();
    for phrase in [
        "Not yet monitored: 9d 12h (2026-10-01 00:00 UTC to 2026-10-10 12:00 UTC, before the first run: not counted as a gap)",
        "Longest gap without a successful run: 6h 0m (2026-10-19 23:00 UTC to 2026-10-20 05:00 UTC), check index",
        "Not yet monitored: none (monitored from the start of the month)",
        "14d 0h (2026-10-01 00:00 UTC to 2026-10-15 00:00 UTC, before the first run: not counted as a gap)",
    ] {
        assert!(md.contains(phrase), "markdown lacks {phrase:?}");
        assert!(html.contains(phrase), "html lacks {phrase:?}");
    }
}
