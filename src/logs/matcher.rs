//! Deciding what a log line is: a duplicate-key error (with its namespace and
//! index), a recovery, and which configured events it matches.
//!
//! Everything here is pure and works on bytes, so a line need not be UTF-8.
//! The follower hands [`Matcher::count_matches`] whole blocks of complete
//! lines; markers are searched over the block with `memmem` (SIMD), and only
//! the rare hits are mapped back to their line, which keeps the tailer close
//! to `grep`'s speed. [`Matcher::classify`] does the same for one line and is
//! the reference the block search is tested against.
//!
//! The file runs past 600 lines only through its unit and property tests,
//! which stay beside the code they pin.

use std::collections::BTreeMap;

use memchr::memmem::Finder;
use regex::bytes::Regex;

use crate::config::LogSourceConfig;

/// mongod's structured logs (4.4+) name the error by code; a line carrying it
/// is a duplicate-key error even when its message does not say `E11000`.
const MONGOD_ERR_CODE: &[u8] = br#""errCode":11000"#;

/// Label value for an error line that names neither its namespace nor its
/// index, on a source that configures none.
pub const UNKNOWN: &str = "unknown";

/// Longest namespace or index name taken from a line; longer ones are cut, so
/// a garbled line cannot make a huge label value.
const MAX_LABEL_BYTES: usize = 128;

/// How one line of a source is matched: built once per source from its config.
pub struct Matcher {
    /// `error_markers`: any one of them makes a line an error.
    error_markers: Vec<Finder<'static>>,
    /// The `"errCode":11000` of mongod's JSON lines, always on.
    mongod_err_code: Finder<'static>,
    /// `recovery_markers`: any one of them makes a line a recovery.
    recovery_markers: Vec<Finder<'static>>,
    /// `[[logs.events]]`, in config order; the index is the event's slot in [`Tally::events`].
    events: Vec<EventMatcher>,
    /// Locating `collection: <ns>` in an error line.
    collection_label: Finder<'static>,
    /// Locating `index: <name>` in an error line.
    index_label: Finder<'static>,
    /// Locating `"ns":"<ns>"` in a mongod JSON line without `collection:`.
    json_ns_label: Finder<'static>,
    /// `namespace` from the config, or [`UNKNOWN`].
    default_namespace: String,
    /// `index` from the config, or [`UNKNOWN`].
    default_index: String,
}

/// One `[[logs.events]]` entry.
enum EventMatcher {
    /// `contains`: a substring search over the whole block (boxed: a
    /// finder is large next to a regex handle).
    Contains(Box<Finder<'static>>),
    /// `regex`: run on each line, so a match can never span two lines.
    Regex(Regex),
}

/// A source whose config cannot be turned into a matcher.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("event {event:?}: invalid regex: {problem}")]
    Regex { event: String, problem: String },
    #[error("event {event:?}: expected exactly one of a non-empty `contains` or `regex`")]
    NoMatcher { event: String },
}

/// What one line is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineMatch {
    /// `(namespace, index)` when the line holds a duplicate-key error.
    pub error: Option<(String, String)>,
    /// Whether the line says a conflict was recovered.
    pub recovery: bool,
    /// Indexes (config order) of the events the line matches.
    pub events: Vec<usize>,
}

/// Counts over some lines, added up per read and per commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Complete lines.
    pub lines: u64,
    /// Bytes of those lines, newlines included.
    pub bytes: u64,
    /// Duplicate-key error lines by `(namespace, index)`.
    pub errors: BTreeMap<(String, String), u64>,
    /// Recovery lines.
    pub recoveries: u64,
    /// Lines per event, indexed like the source's `[[logs.events]]`.
    pub events: Vec<u64>,
}

impl Tally {
    /// An empty tally for a source with `events` events.
    pub fn new(events: usize) -> Self {
        Tally {
            events: vec![0; events],
            ..Tally::default()
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Tally) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        for (labels, n) in &other.errors {
            *self.errors.entry(labels.clone()).or_insert(0) += n;
        }
        self.recoveries += other.recoveries;
        if self.events.len() < other.events.len() {
            self.events.resize(other.events.len(), 0);
        }
        for (mine, theirs) in self.events.iter_mut().zip(&other.events) {
            *mine += theirs;
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
            && self.bytes == 0
            && self.errors.is_empty()
            && self.recoveries == 0
            && self.events.iter().all(|n| *n == 0)
    }
}

impl Matcher {
    /// Builds the matcher of a source. Fails on what config validation rules
    /// out: a regex that does not compile, an event with no matcher.
    pub fn new(config: &LogSourceConfig) -> Result<Self, MatcherError> {
        let finders = |markers: &[String]| -> Vec<Finder<'static>> {
            markers
                .iter()
                .map(|m| Finder::new(m.as_bytes()).into_owned())
                .collect()
        };
        let mut events = Vec::with_capacity(config.events.len());
        for event in &config.events {
            events.push(match (&event.contains, &event.regex) {
                (None, Some(pattern)) => {
                    EventMatcher::Regex(Regex::new(pattern).map_err(|e| MatcherError::Regex {
                        event: event.name.clone(),
                        problem: e.to_string(),
                    })?)
                }
                (Some(text), None) if !text.is_empty() => {
                    EventMatcher::Contains(Box::new(Finder::new(text.as_bytes()).into_owned()))
                }
                _ => {
                    return Err(MatcherError::NoMatcher {
                        event: event.name.clone(),
                    })
                }
            });
        }
        Ok(Matcher {
            error_markers: finders(&config.error_markers),
            mongod_err_code: Finder::new(MONGOD_ERR_CODE).into_owned(),
            recovery_markers: finders(&config.recovery_markers),
            events,
            collection_label: Finder::new(b"collection: ").into_owned(),
            index_label: Finder::new(b"index: ").into_owned(),
            json_ns_label: Finder::new(br#""ns":""#).into_owned(),
            default_namespace: config
                .namespace
                .clone()
                .unwrap_or_else(|| UNKNOWN.to_string()),
            default_index: config.index.clone().unwrap_or_else(|| UNKNOWN.to_string()),
        })
    }

    /// The number of events, the length of [`Tally::events`].
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The `(namespace, index)` an error line without names of its own gets.
    pub fn default_labels(&self) -> (String, String) {
        (self.default_namespace.clone(), self.default_index.clone())
    }

    /// Classifies one line (without its newline). The reference for
    /// [`Matcher::count_matches`], and what a long line's prefix goes through.
    pub fn classify(&self, line: &[u8]) -> LineMatch {
        let recovery = self.recovery_markers.iter().any(|f| f.find(line).is_some());
        let error = !recovery
            && (self.error_markers.iter().any(|f| f.find(line).is_some())
                || find_err_code(&self.mongod_err_code, line).is_some());
        let events = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| match e {
                EventMatcher::Contains(f) => f.find(line).is_some(),
                EventMatcher::Regex(r) => r.is_match(line),
            })
            .map(|(i, _)| i)
            .collect();
        LineMatch {
            error: error.then(|| self.error_labels(line)),
            recovery,
            events,
        }
    }

    /// Adds the errors, recoveries and events of the lines in `block` to
    /// `tally` (not `lines` or `bytes`: the caller knows those). Lines are
    /// separated by `\n`; the last one may lack it. Equivalent to
    /// [`Matcher::classify`] on each line, but searches the block as a whole.
    pub fn count_matches(&self, block: &[u8], tally: &mut Tally) {
        if block.is_empty() {
            return;
        }
        let mut recoveries = Vec::new();
        for finder in &self.recovery_markers {
            hit_lines(block, |hay| finder.find(hay), &mut recoveries);
        }
        recoveries.sort_unstable();
        recoveries.dedup();
        tally.recoveries += recoveries.len() as u64;

        let mut errors = Vec::new();
        for finder in &self.error_markers {
            hit_lines(block, |hay| finder.find(hay), &mut errors);
        }
        hit_lines(
            block,
            |hay| find_err_code(&self.mongod_err_code, hay),
            &mut errors,
        );
        errors.sort_unstable();
        errors.dedup();
        for start in errors {
            if recoveries.binary_search(&start).is_ok() {
                continue;
            }
            let line = &block[start..line_end(block, start)];
            *tally.errors.entry(self.error_labels(line)).or_insert(0) += 1;
        }

        if tally.events.len() < self.events.len() {
            tally.events.resize(self.events.len(), 0);
        }
        for (i, event) in self.events.iter().enumerate() {
            let mut count = 0u64;
            match event {
                EventMatcher::Contains(finder) => {
                    let mut starts = Vec::new();
                    hit_lines(block, |hay| finder.find(hay), &mut starts);
                    count = starts.len() as u64;
                }
                EventMatcher::Regex(regex) => {
                    for line in block.split(|b| *b == b'\n') {
                        count += u64::from(regex.is_match(line));
                    }
                    // `split` yields an empty piece after a final newline; it is not a line.
                    if block.last() == Some(&b'\n') && regex.is_match(b"") {
                        count -= 1;
                    }
                }
            }
            tally.events[i] += count;
        }
    }

    /// The `(namespace, index)` labels of an error line: what the line names,
    /// else the source's configured ones, else [`UNKNOWN`].
    fn error_labels(&self, line: &[u8]) -> (String, String) {
        let namespace = match self.collection_label.find(line) {
            Some(at) => label_token(&line[at + b"collection: ".len()..]),
            None => self
                .json_ns_label
                .find(line)
                .and_then(|at| label_token(&line[at + br#""ns":""#.len()..])),
        };
        let index = self
            .index_label
            .find(line)
            .and_then(|at| label_token(&line[at + b"index: ".len()..]));
        (
            namespace.unwrap_or_else(|| self.default_namespace.clone()),
            index.unwrap_or_else(|| self.default_index.clone()),
        )
    }
}

/// Finds `"errCode":11000` not followed by another digit (so not 110001).
fn find_err_code(finder: &Finder<'_>, hay: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = finder.find(&hay[from..]) {
        let at = from + i;
        let after = at + MONGOD_ERR_CODE.len();
        if !hay.get(after).is_some_and(u8::is_ascii_digit) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Pushes the start of every line of `block` in which `find` hits, once per
/// line however many hits it has.
fn hit_lines(block: &[u8], find: impl Fn(&[u8]) -> Option<usize>, starts: &mut Vec<usize>) {
    let mut from = 0;
    while from < block.len() {
        let Some(i) = find(&block[from..]) else { break };
        let at = from + i;
        let start = memchr::memrchr(b'\n', &block[..at]).map_or(0, |nl| nl + 1);
        starts.push(start);
        from = line_end(block, at) + 1;
    }
}

/// The index of the newline ending the line that holds `at`, or the block's end.
fn line_end(block: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &block[at..]).map_or(block.len(), |i| at + i)
}

/// The name at the start of `rest`: up to a space, quote, comma, brace or
/// backslash, at most [`MAX_LABEL_BYTES`]; `None` when empty.
fn label_token(rest: &[u8]) -> Option<String> {
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b',' | b'}' | b'\\'))
        .unwrap_or(rest.len())
        .min(MAX_LABEL_BYTES);
    (end > 0).then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
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
                events: vec![]
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
            },
            LogEventConfig {
                name: "slow".into(),
                contains: None,
                regex: Some(r"\b\d{4,}ms$".into()),
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
            },
            LogEventConfig {
                name: "re".into(),
                contains: None,
                regex: Some("^E1".into()),
            },
            LogEventConfig {
                name: "empty".into(),
                contains: None,
                regex: Some("^$".into()),
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
                },
                LogEventConfig {
                    name: "re".into(),
                    contains: None,
                    regex: Some("^E1|11000$".into()),
                },
                LogEventConfig {
                    name: "empty".into(),
                    contains: None,
                    regex: Some("^$".into()),
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
                let mut expected = Tally::new(3);
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
                }
                let mut tally = Tally::new(3);
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
}
