//! Tests of [`super`] (durations.rs): reading durations and status classes
//! from lines, through the matcher that uses them.

use super::*;
use crate::config::{EventKind, LogSourceConfig, StartAt};
use crate::logs::matcher::{Matcher, Tally};

const CONTRACT_REGEX: &str = r"(?P<status>\d{3}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b";

/// A real-shaped mongod 4.4+ slow query line: a findAndModify on app.chats.
const SLOW_FIND_AND_MODIFY: &[u8] = br#"{"t":{"$date":"2026-11-28T10:00:03.412+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn1207","msg":"Slow query","attr":{"type":"command","ns":"app.chats","appName":"chat-backend","command":{"findAndModify":"chats","query":{"participantsKey":"userA_userB"},"update":{"$setOnInsert":{"participantsKey":"userA_userB"}},"upsert":true,"new":true,"lsid":{"id":{"$uuid":"4f8e2f54-1f3b-4b0e-9c55-2f2d4b1c9a10"}},"$db":"app"},"planSummary":"IXSCAN { participantsKey: 1 }","keysExamined":1,"docsExamined":1,"nMatched":1,"nModified":0,"nUpserted":0,"numYields":0,"reslen":312,"locks":{"ParallelBatchWriterMode":{"acquireCount":{"r":1}}},"storage":{},"protocol":"op_msg","durationMillis":187}}"#;

fn source(events: Vec<LogEventConfig>) -> LogSourceConfig {
    LogSourceConfig {
        name: "app".into(),
        paths: vec!["/x".into()],
        start_at: StartAt::End,
        namespace: None,
        index: None,
        error_markers: vec!["E11000".into()],
        recovery_markers: vec![],
        poll_interval: std::time::Duration::from_secs(1),
        max_line_bytes: 1 << 20,
        events,
        request_event: None,
    }
}

fn create_or_get() -> LogEventConfig {
    LogEventConfig {
        name: "create_or_get".into(),
        contains: Some("POST /api/chats/create-or-get".into()),
        regex: Some(CONTRACT_REGEX.into()),
        ..LogEventConfig::default()
    }
}

fn slow_chats() -> LogEventConfig {
    LogEventConfig {
        name: "slow_chats".into(),
        kind: EventKind::MongodSlowQuery,
        namespace: Some("app.chats".into()),
        ..LogEventConfig::default()
    }
}

fn reading(m: &Matcher, line: &[u8]) -> Option<Reading> {
    m.classify(line).durations.first().map(|(_, r)| *r)
}

fn sample(nanos: u64, class: StatusClass) -> Option<Reading> {
    Some(Reading::Sample { nanos, class })
}

#[test]
fn captures_duration_unit_and_status_class() {
    let m = Matcher::new(&source(vec![create_or_get()])).unwrap();
    let line = |tail: &str| format!("2026-11-28T10:00:00Z [INFO] POST /api/chats/create-or-get {tail}");
    assert_eq!(reading(&m, line("200 12ms").as_bytes()), sample(12_000_000, StatusClass::Success));
    assert_eq!(reading(&m, line("201 2.5s").as_bytes()), sample(2_500_000_000, StatusClass::Success));
    assert_eq!(reading(&m, line("302 750us").as_bytes()), sample(750_000, StatusClass::Redirection));
    assert_eq!(reading(&m, line("404 0.5ms").as_bytes()), sample(500_000, StatusClass::ClientError));
    assert_eq!(reading(&m, line("503 1ms").as_bytes()), sample(1_000_000, StatusClass::ServerError));
    assert_eq!(reading(&m, line("101 1ms").as_bytes()), sample(1_000_000, StatusClass::Informational));
    assert_eq!(reading(&m, line("999 1ms").as_bytes()), sample(1_000_000, StatusClass::Other));
    assert_eq!(reading(&m, line("042 1ms").as_bytes()), sample(1_000_000, StatusClass::Other));
    assert_eq!(m.classify(line("200 12ms").as_bytes()).events, vec![0]);
}

#[test]
fn prefilter_hit_without_the_regex_is_unparsed_and_not_an_event() {
    let m = Matcher::new(&source(vec![create_or_get()])).unwrap();
    let line = b"[INFO] POST /api/chats/create-or-get 200 took a while";
    assert_eq!(reading(&m, line), Some(Reading::Unparsed));
    assert!(m.classify(line).events.is_empty());
    // Without the prefilter, the regex matching is no concern of the event.
    assert_eq!(reading(&m, b"GET /api/users 200 12ms"), None);
    let mut t = Tally::new(1);
    m.count_matches(b"GET /api/users 200 12ms\nPOST /api/chats/create-or-get 200 ?\n", &mut t);
    assert_eq!((t.events[0], t.durations[0].unparsed), (0, 1));
}

#[test]
fn a_unit_the_regex_admits_but_no_parser_knows_is_unparsed() {
    let mut e = create_or_get();
    e.regex = Some(r"(?P<duration>\d+)(?P<unit>ms|min)".into());
    let m = Matcher::new(&source(vec![e])).unwrap();
    assert_eq!(reading(&m, b"POST /api/chats/create-or-get 3min"), Some(Reading::Unparsed));
    assert_eq!(reading(&m, b"POST /api/chats/create-or-get 3ms"), sample(3_000_000, StatusClass::None));
}

#[test]
fn fixed_unit_and_an_optional_unit_capture() {
    let e = LogEventConfig {
        name: "query".into(),
        regex: Some(r"query took (?P<duration>\d+)(?P<unit>s)?".into()),
        unit: Some(crate::config::DurationUnit::Us),
        ..LogEventConfig::default()
    };
    let m = Matcher::new(&source(vec![e])).unwrap();
    assert_eq!(reading(&m, b"query took 250"), sample(250_000, StatusClass::None));
    assert_eq!(reading(&m, b"query took 2s"), sample(2_000_000_000, StatusClass::None));
    // A regex-only event has no prefilter: a line it does not match is nothing.
    assert_eq!(reading(&m, b"query failed"), None);
}

#[test]
fn mongod_slow_query_on_the_namespace() {
    let m = Matcher::new(&source(vec![slow_chats()])).unwrap();
    assert_eq!(reading(&m, SLOW_FIND_AND_MODIFY), sample(187_000_000, StatusClass::None));
    assert_eq!(m.classify(SLOW_FIND_AND_MODIFY).events, vec![0]);
    let other_ns = String::from_utf8_lossy(SLOW_FIND_AND_MODIFY).replace(r#""ns":"app.chats""#, r#""ns":"app.chats_archive""#);
    assert_eq!(reading(&m, other_ns.as_bytes()), None);
    // The WRITE component's line repeats a command's operation: not counted.
    let write = String::from_utf8_lossy(SLOW_FIND_AND_MODIFY).replace(r#""c":"COMMAND""#, r#""c":"WRITE""#);
    assert_eq!(reading(&m, write.as_bytes()), None);
    let no_duration = String::from_utf8_lossy(SLOW_FIND_AND_MODIFY).replace(r#""durationMillis":187"#, r#""durationMillis":"x""#);
    assert_eq!(reading(&m, no_duration.as_bytes()), Some(Reading::Unparsed));
    let not_slow = br#"{"c":"COMMAND","msg":"Connection ended","attr":{"ns":"app.chats","durationMillis":5}}"#;
    assert_eq!(reading(&m, not_slow), None);
}

/// A real-shaped slow `update` command: mongod gives write commands the
/// namespace `<db>.$cmd`; the collection is the command's first field.
const SLOW_UPDATE: &[u8] = br#"{"t":{"$date":"2026-11-28T10:00:03Z"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn9","msg":"Slow query","attr":{"type":"command","ns":"app.$cmd","command":{"update":"chats","updates":[{"q":{"participantsKey":"a_b"},"u":{"$setOnInsert":{"participantsKey":"a_b"}},"upsert":true}],"$db":"app"},"durationMillis":240}}"#;
/// The same shape for a `delete`.
const SLOW_DELETE: &[u8] = br#"{"t":{"$date":"2026-11-28T10:00:04Z"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn9","msg":"Slow query","attr":{"type":"command","ns":"app.$cmd","appName":"chat-backend","command":{"delete":"chats","deletes":[{"q":{"participantsKey":"a_b"},"limit":1}],"ordered":true,"$db":"app"},"numYields":0,"reslen":45,"protocol":"op_msg","durationMillis":130}}"#;

/// Regression (review of f0608be): update and delete commands, logged on
/// `app.$cmd`, were never counted; their WRITE lines still are not.
#[test]
fn mongod_write_commands_on_the_namespace_count_once() {
    let m = Matcher::new(&source(vec![slow_chats()])).unwrap();
    assert_eq!(reading(&m, SLOW_UPDATE), sample(240_000_000, StatusClass::None));
    assert_eq!(reading(&m, SLOW_DELETE), sample(130_000_000, StatusClass::None));
    assert_eq!(reading(&m, SLOW_FIND_AND_MODIFY), sample(187_000_000, StatusClass::None));
    let text = |l: &[u8]| String::from_utf8_lossy(l).into_owned();
    // Another collection of the same database, or the same collection name in another database.
    assert_eq!(reading(&m, text(SLOW_UPDATE).replace(r#""update":"chats""#, r#""update":"users""#).as_bytes()), None);
    assert_eq!(reading(&m, text(SLOW_UPDATE).replace(r#""update":"chats""#, r#""update":"chats_old""#).as_bytes()), None);
    assert_eq!(reading(&m, text(SLOW_UPDATE).replace("app.$cmd", "other.$cmd").as_bytes()), None);
    // mongod's WRITE line for a slow update statement: not counted (the COMMAND line is).
    let write = br#"{"t":{"$date":"2026-11-28T10:00:03Z"},"s":"I","c":"WRITE","id":51803,"ctx":"conn9","msg":"Slow query","attr":{"type":"update","ns":"app.chats","command":{"q":{"participantsKey":"a_b"},"u":{"$setOnInsert":{"participantsKey":"a_b"}},"upsert":true},"nMatched":0,"nUpserted":1,"durationMillis":239}}"#;
    assert_eq!(reading(&m, write), None);
}

/// Regression (review of f0608be): the first `"ns":"` and the first
/// `"durationMillis":` anywhere in the line were taken.
#[test]
fn mongod_namespace_is_attr_ns_and_duration_the_last_field() {
    let m = Matcher::new(&source(vec![slow_chats()])).unwrap();
    let oplog = br#"{"t":{"$date":"2026-11-28T10:00:05Z"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn3","msg":"Slow query","attr":{"type":"command","ns":"local.oplog.rs","command":{"find":"oplog.rs","filter":{"ns":"app.chats"},"tailable":true,"$db":"local"},"durationMillis":900}}"#;
    assert_eq!(reading(&m, oplog), None);
    let nested = br#"{"t":{"$date":"2026-11-28T10:00:06Z"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn9","msg":"Slow query","attr":{"type":"command","ns":"app.$cmd","command":{"update":"chats","updates":[{"q":{"participantsKey":"a_b"},"u":{"$set":{"durationMillis":5}}}],"$db":"app"},"durationMillis":310}}"#;
    assert_eq!(reading(&m, nested), sample(310_000_000, StatusClass::None));
}

/// Regression (review of f0608be): one absurd sample (9999999999 s, a
/// wrapped counter) pinned `_sum` at its maximum for good.
#[test]
fn a_sample_above_one_day_is_unparsed() {
    let m = Matcher::new(&source(vec![create_or_get(), slow_chats()])).unwrap();
    let line = |tail: &str| format!("2026-11-28T10:00:00Z [INFO] POST /api/chats/create-or-get {tail}");
    assert_eq!(reading(&m, line("200 86400s").as_bytes()), sample(MAX_SAMPLE_NANOS, StatusClass::Success));
    assert_eq!(reading(&m, line("200 86400001ms").as_bytes()), Some(Reading::Unparsed));
    assert_eq!(reading(&m, line("200 9999999999s").as_bytes()), Some(Reading::Unparsed));
    let huge = String::from_utf8_lossy(SLOW_FIND_AND_MODIFY).replace(r#""durationMillis":187"#, r#""durationMillis":18446744073709"#);
    assert_eq!(m.classify(huge.as_bytes()).durations, vec![(1, Reading::Unparsed)]);
    let mut t = Tally::new(2);
    m.count_matches(format!("{}\n{}\n", line("200 12ms"), line("500 9999999999s")).as_bytes(), &mut t);
    assert_eq!((t.durations[0].unparsed, t.events[0]), (1, 1));
    assert_eq!(t.durations[0].by_class[&StatusClass::Success].sum_nanos, 12_000_000);
}

/// The documented regex (examples/logs.toml, docs/logs.md) turns Unicode
/// off, so `\d` and `\b` stay on the lazy DFA on non-ASCII lines, and reads
/// the same samples as the contract's, non-ASCII lines included.
#[test]
fn the_documented_regex_is_ascii_and_reads_the_same() {
    let example = include_str!("../../examples/logs.toml");
    let documented = example.lines().find_map(|l| l.strip_prefix("regex = '")?.strip_suffix('\'')).unwrap();
    assert!(documented.starts_with("(?-u)"), "{documented}");
    let mut ascii = create_or_get();
    ascii.regex = Some(documented.into());
    let a = Matcher::new(&source(vec![ascii])).unwrap();
    let u = Matcher::new(&source(vec![create_or_get()])).unwrap();
    for tail in ["200 12ms", "503 2.5s user=Пётр", "201 7us ✓", "404 ٣ms", "200 12msx"] {
        let line = format!("2026-11-28T10:00:00Z [INFO] POST /api/chats/create-or-get {tail}");
        let (got, unicode) = (reading(&a, line.as_bytes()), reading(&u, line.as_bytes()));
        if tail.contains('٣') {
            // An Arabic-Indic digit: a Unicode \d, but no number parse_nanos reads either way.
            assert_eq!(got, Some(Reading::Unparsed), "{tail}");
        } else {
            assert_eq!(got, unicode, "{tail}");
        }
    }
}

#[test]
fn block_counting_fills_buckets_count_and_exact_sum() {
    let m = Matcher::new(&source(vec![create_or_get(), slow_chats()])).unwrap();
    let mut block = Vec::new();
    for tail in ["200 3ms", "200 5ms", "200 5.000001ms", "500 3s", "200 0.001ms", "200 ??"] {
        block.extend_from_slice(format!("POST /api/chats/create-or-get {tail}\n").as_bytes());
    }
    block.extend_from_slice(SLOW_FIND_AND_MODIFY);
    block.push(b'\n');
    let mut t = Tally::new(2);
    m.count_matches(&block, &mut t);
    assert_eq!(t.events, vec![5, 1]);
    assert_eq!(t.durations[0].unparsed, 1);
    let ok = &t.durations[0].by_class[&StatusClass::Success];
    // 5ms is in the 5ms bucket (le), 5.000001ms in the next.
    assert_eq!(ok.buckets, vec![3, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!((ok.count, ok.sum_nanos), (4, 3_000_000 + 5_000_000 + 5_000_001 + 1_000));
    let failed = &t.durations[0].by_class[&StatusClass::ServerError];
    assert_eq!(failed.buckets[9], 1, "3s is above every bound: +Inf only");
    assert_eq!(failed.cumulative(&[5_000_000, 2_500_000_000]), vec![0, 0]);
    let slow = &t.durations[1].by_class[&StatusClass::None];
    assert_eq!((slow.count, slow.sum_nanos, slow.buckets[5]), (1, 187_000_000, 1));
}

#[test]
fn histograms_add_and_convert_to_totals() {
    let bounds = [10, 20];
    let mut a = Histogram::default();
    a.observe(&bounds, 10);
    a.observe(&bounds, 25);
    let mut b = Histogram::default();
    b.observe(&bounds, 11);
    a.add(&b);
    assert_eq!(a, Histogram { buckets: vec![1, 1, 1], count: 3, sum_nanos: 46 });
    assert_eq!(a.cumulative(&bounds), vec![1, 2]);
    let mut t = DurationTally::default();
    t.by_class.insert(StatusClass::ClientError, a.clone());
    t.unparsed = 2;
    let totals = t.to_totals(&bounds);
    assert_eq!(totals.by_status_class["4xx"], a);
    let mut sum = totals.clone();
    sum.add(&totals);
    assert_eq!((sum.unparsed, sum.by_status_class["4xx"].count), (4, 6));
}
