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
#[path = "matcher_tests.rs"]
mod tests;
