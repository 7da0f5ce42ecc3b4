//! Tests of [`super`] (matcher.rs), kept apart so the module reads as its logic.

use super::*;
use crate::config::{LogEventConfig, StartAt};

fn config() -> LogSourceConfig {
    LogSourceConfig {
        name: "chat-backend".into(),
        paths: vec!["/x".into()],
        start_at: StartAt::End,
        namespace: None,
        index: None,
        error_markers: vec!["E11000".into(), "Duplicate key error".into()],
        recovery_markers: vec!["Retrieved existing chat after duplicate key error".into()],
        poll_interval: std::time::Duration::from_secs(1),
        max_line_bytes: 1 << 20,
        events: vec![],
        request_event: None,
    }
}

fn labels(ns: &str, index: &str) -> Option<(String, String)> {
    Some((ns.into(), index.into()))
}

const WARN: &[u8] =
    b"2026-11-28T10:00:01.123Z [WARN] Duplicate key error during upsert participantsKey=userA_userB";
const RECOVERED: &[u8] =
    b"2026-11-28T10:00:01.125Z [DEBUG] Retrieved existing chat after duplicate key error";
const E11000: &[u8] = b"2026-11-28T10:00:02.000Z [ERROR] MongoServerError: E11000 duplicate key error collection: app.chats index: participantsKey_1 dup key: { participantsKey: \"userA_userB\" }";
const MONGOD: &[u8] = br#"{"t":{"$date":"2026-11-28T10:00:02.001+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn42","msg":"Slow query","attr":{"type":"command","ns":"app.users","command":{"insert":"users"},"ok":0,"errMsg":"E11000 duplicate key error collection: app.users index: email_1 dup key: { email: \"a@example.com\" }","errName":"DuplicateKey","errCode":11000,"reslen":245,"durationMillis":3}}"#;

#[test]
fn application_warning_is_an_error_with_default_labels() {
    let m = Matcher::new(&config()).unwrap();
    let got = m.classify(WARN);
    assert_eq!(got.error, labels("unknown", "unknown"));
    assert!(!got.recovery);
}

#[test]
fn configured_labels_apply_to_lines_that_name_none() {
    let mut c = config();
    c.namespace = Some("app.chats".into());
    c.index = Some("participantsKey_1".into());
    let m = Matcher::new(&c).unwrap();
    assert_eq!(
        m.classify(WARN).error,
        labels("app.chats", "participantsKey_1")
    );
}

#[test]
fn recovery_line_is_a_recovery_not_an_error() {
    let m = Matcher::new(&config()).unwrap();
    let got = m.classify(RECOVERED);
    assert!(got.recovery);
    assert_eq!(got.error, None);
}

#[test]
fn recovery_wins_over_error_markers_on_the_same_line() {
    let m = Matcher::new(&config()).unwrap();
    let line = b"E11000 seen; Retrieved existing chat after duplicate key error";
    assert_eq!(
        m.classify(line),
        LineMatch {
            error: None,
            recovery: true,
            events: vec![],
            durations: vec![],
        }
    );
    let mut t = Tally::new(0);
    m.count_matches(line, &mut t);
    assert_eq!((t.errors.len(), t.recoveries), (0, 1));
}

#[test]
fn e11000_line_names_its_namespace_and_index() {
    let m = Matcher::new(&config()).unwrap();
    assert_eq!(
        m.classify(E11000).error,
        labels("app.chats", "participantsKey_1")
    );
}

#[test]
fn mongod_json_line_counts_once_with_its_labels() {
    let m = Matcher::new(&config()).unwrap();
    assert_eq!(m.classify(MONGOD).error, labels("app.users", "email_1"));
    let mut t = Tally::new(0);
    m.count_matches(MONGOD, &mut t);
    assert_eq!(t.errors.values().sum::<u64>(), 1);
}

#[test]
fn mongod_err_code_alone_is_an_error_and_ns_comes_from_json() {
    let m = Matcher::new(&config()).unwrap();
    let line =
        br#"{"s":"W","attr":{"ns":"app.chats","errName":"DuplicateKey","errCode":11000}}"#;
    assert_eq!(m.classify(line).error, labels("app.chats", "unknown"));
    let other = br#"{"attr":{"errCode":110001}}"#;
    assert_eq!(m.classify(other).error, None);
}

#[test]
fn ordinary_line_matches_nothing() {
    let m = Matcher::new(&config()).unwrap();
    let got = m.classify(b"2026-11-28T10:00:03Z [INFO] POST /api/chats/create-or-get 200 3ms");
    assert_eq!(got, LineMatch::default());
}

#[test]
fn invalid_utf8_is_matched_on_bytes() {
    let m = Matcher::new(&config()).unwrap();
    let line =
        b"\xff\xfe [ERROR] E11000 duplicate key error collection: app.\xffchats index: k_1 x";
    let (ns, index) = m.classify(line).error.unwrap();
    assert_eq!(ns, "app.\u{fffd}chats");
    assert_eq!(index, "k_1");
}

#[test]
fn overlong_label_is_cut() {
    let m = Matcher::new(&config()).unwrap();
    let line = format!("E11000 collection: {} index: i", "n".repeat(1000));
    let (ns, _) = m.classify(line.as_bytes()).error.unwrap();
    assert_eq!(ns.len(), MAX_LABEL_BYTES);
}

#[test]
fn events_contains_and_regex() {
    let mut c = config();
    c.events = vec![
        LogEventConfig {
            name: "create".into(),
            contains: Some("POST /api/chats/create-or-get".into()),
            regex: None,
            ..Default::default()
        },
        LogEventConfig {
            name: "slow".into(),
            contains: None,
            regex: Some(r"\b\d{4,}ms$".into()),
            ..Default::default()
        },
    ];
    let m = Matcher::new(&c).unwrap();
    assert_eq!(
        m.classify(b"x POST /api/chats/create-or-get 200 3ms")
            .events,
        vec![0]
    );
    assert_eq!(
        m.classify(b"x POST /api/chats/create-or-get 200 1234ms")
            .events,
        vec![0, 1]
    );
    assert_eq!(m.classify(b"GET / 200 99999ms").events, vec![1]);
}

/// Regression (review of f0608be): regexes with named groups but no
/// duration event (no `duration` capture with a unit) count lines as they
/// did before duration events existed: no histogram, nothing unparsed.
#[test]
fn named_groups_without_a_duration_event_count_as_plain_events() {
    let mut c = config();
    c.events = [r"took (?P<ms>\d{4,})ms", r" (?P<status>5\d\d) ", r"(?P<duration>\d+)ms"]
        .iter()
        .enumerate()
        .map(|(k, r)| LogEventConfig { name: format!("e{k}"), regex: Some((*r).into()), ..Default::default() })
        .collect();
    let m = Matcher::new(&c).unwrap();
    assert!((0..3).all(|e| m.bounds(e).is_empty()));
    let got = m.classify(b"GET /x 503 took 12345ms");
    assert_eq!((got.events, got.durations), (vec![0, 1, 2], vec![]));
    let got = m.classify(b"GET /x 200 took 12ms");
    assert_eq!((got.events, got.durations), (vec![2], vec![]));
    let mut t = Tally::new(3);
    m.count_matches(b"GET /x 503 took 12345ms\nGET /x 200 took 12ms\nno\n", &mut t);
    assert_eq!(t.events, vec![1, 1, 2]);
    assert!(t.durations.iter().all(|d| d.unparsed == 0 && d.by_class.is_empty()));
}

/// The block search must agree with classifying each line on its own,
/// whatever mixture of lines, repeated markers and edge positions.
#[test]
fn block_search_equals_per_line_classification() {
    let mut c = config();
    c.events = vec![
        LogEventConfig {
            name: "req".into(),
            contains: Some("POST".into()),
            regex: None,
            ..Default::default()
        },
        LogEventConfig {
            name: "re".into(),
            contains: None,
            regex: Some("^E1".into()),
            ..Default::default()
        },
        LogEventConfig {
            name: "empty".into(),
            contains: None,
            regex: Some("^$".into()),
            ..Default::default()
        },
    ];
    let m = Matcher::new(&c).unwrap();
    let pieces: [&[u8]; 9] = [
        WARN,
        RECOVERED,
        E11000,
        MONGOD,
        b"POST POST E11000 E11000 Duplicate key error",
        b"",
        b"E11000",
        b"plain POST line",
        b"\xff\x00 binary",
    ];
    // A simple deterministic generator: every piece in many orders.
    let mut seed = 7u64;
    for _ in 0..200 {
        let mut block = Vec::new();
        let mut expected = Tally::new(3);
        let n = (seed % 12) as usize;
        for _ in 0..n {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let line = pieces[(seed >> 33) as usize % pieces.len()];
            block.extend_from_slice(line);
            block.push(b'\n');
            let got = m.classify(line);
            if let Some(labels) = got.error {
                *expected.errors.entry(labels).or_insert(0) += 1;
            }
            expected.recoveries += u64::from(got.recovery);
            for e in got.events {
                expected.events[e] += 1;
            }
        }
        let mut tally = Tally::new(3);
        m.count_matches(&block, &mut tally);
        assert_eq!(
            tally,
            expected,
            "block {:?}",
            String::from_utf8_lossy(&block)
        );
        seed ^= n as u64;
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Cases each property runs (the closing note of issue 13 reports them).
    const CASES: u32 = 2000;

    /// Events of [`matcher`]: four that count lines, three with durations.
    const EVENTS: usize = 7;

    /// A piece of a line: arbitrary bytes (invalid UTF-8 and NULs
    /// included, no newline) or something the matcher looks for.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40),
            1 => proptest::sample::select(vec![
                &b"E11000"[..],
                b"Duplicate key error",
                b"Retrieved existing chat after duplicate key error",
                br#""errCode":11000"#,
                br#""errCode":110001"#,
                b"collection: ",
                b"index: ",
                br#""ns":""#,
                b"POST",
                b"\xff\xfe",
                b" 200 12ms",
                b" 503 2.5s",
                b" 999 7us",
                b"12",
                br#""msg":"Slow query""#,
                br#""c":"COMMAND""#,
                br#""ns":"app.chats""#,
                br#""durationMillis":42"#,
            ])
            .prop_map(<[u8]>::to_vec),
        ]
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(piece(), 0..8).prop_map(|p| p.concat())
    }

    fn matcher() -> Matcher {
        let mut c = config();
        c.events = vec![
            LogEventConfig {
                name: "post".into(),
                contains: Some("POST".into()),
                regex: None,
                ..Default::default()
            },
            LogEventConfig {
                name: "re".into(),
                contains: None,
                regex: Some("^E1|11000$".into()),
                ..Default::default()
            },
            LogEventConfig {
                name: "empty".into(),
                contains: None,
                regex: Some("^$".into()),
                ..Default::default()
            },
            LogEventConfig {
                name: "timed".into(),
                contains: Some("POST".into()),
                regex: Some(r"(?P<status>\d{3}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b".into()),
                buckets: Some(vec!["1ms".into(), "10ms".into()]),
                ..Default::default()
            },
            LogEventConfig {
                name: "timed_everywhere".into(),
                regex: Some(r"(?P<duration>\d+)(?P<unit>ms|s)?".into()),
                unit: Some(crate::config::DurationUnit::Us),
                ..Default::default()
            },
            LogEventConfig {
                name: "post_then_e1".into(),
                contains: Some("POST".into()),
                regex: Some("E1".into()),
                ..Default::default()
            },
            LogEventConfig {
                name: "slow".into(),
                kind: crate::config::EventKind::MongodSlowQuery,
                namespace: Some("app.chats".into()),
                ..Default::default()
            },
        ];
        Matcher::new(&c).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// The block search counts what classifying each line counts,
        /// with or without a final newline, and never panics.
        #[test]
        fn block_search_equals_per_line_classify(
            lines in proptest::collection::vec(line(), 0..12),
            final_newline in any::<bool>(),
        ) {
            let m = matcher();
            let mut block = lines.join(&b'\n');
            if final_newline && !lines.is_empty() {
                block.push(b'\n');
            }
            // An empty piece after the last newline is no line.
            let mut counted = lines.as_slice();
            if !final_newline && counted.last().is_some_and(Vec::is_empty) {
                counted = &counted[..counted.len() - 1];
            }
            let mut expected = Tally::new(EVENTS);
            for line in counted {
                let got = m.classify(line);
                if let Some(labels) = got.error {
                    prop_assert!(labels.0.len() <= MAX_LABEL_BYTES * 3 && labels.1.len() <= MAX_LABEL_BYTES * 3);
                    *expected.errors.entry(labels).or_insert(0) += 1;
                }
                expected.recoveries += u64::from(got.recovery);
                for e in got.events {
                    expected.events[e] += 1;
                }
                for (e, reading) in got.durations {
                    match reading {
                        Reading::Sample { nanos, class } => {
                            expected.durations[e].by_class.entry(class).or_default().observe(&m.bounds(e), nanos)
                        }
                        Reading::Unparsed => expected.durations[e].unparsed += 1,
                    }
                }
            }
            let mut tally = Tally::new(EVENTS);
            m.count_matches(&block, &mut tally);
            prop_assert_eq!(tally, expected);
        }
    }
}

#[test]
fn tally_add_sums_everything() {
    let mut a = Tally::new(1);
    a.lines = 2;
    a.errors.insert(("a".into(), "b".into()), 1);
    let mut b = Tally::new(1);
    b.lines = 3;
    b.bytes = 10;
    b.recoveries = 1;
    b.events[0] = 4;
    b.errors.insert(("a".into(), "b".into()), 2);
    a.add(&b);
    assert_eq!((a.lines, a.bytes, a.recoveries, a.events[0]), (5, 10, 1, 4));
    assert_eq!(a.errors[&("a".to_string(), "b".to_string())], 3);
    assert!(!a.is_empty() && Tally::new(2).is_empty());
}
