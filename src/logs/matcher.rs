//! Deciding what a log line is: a duplicate-key error (with its namespace and
//! index), a recovery, and which configured events it matches.
//!
//! Everything here is pure and works on bytes, so a line need not be UTF-8.
//! The follower hands [`Matcher::count_matches`] whole blocks of complete
//! lines; markers are searched over the block with `memmem` (SIMD), and only
//! the rare hits are mapped back to their line, which keeps the tailer close
//! to `grep`'s speed. An event's `contains` is searched the same way, and
//! its regex (a duration event's too, see [`super::durations`]) then runs
//! only on the lines holding it. [`Matcher::classify`] does the same for one
//! line and is the reference the block search is tested against.
//!
//! The file runs past 600 lines only through its unit and property tests,
//! which stay beside the code they pin.

use std::collections::BTreeMap;

use memchr::memmem::Finder;
use regex::bytes::Regex;

use super::durations::{DurationEvent, DurationTally, Reading};
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
    /// `contains` and `regex`: the regex runs only on lines holding the string.
    ContainsRegex(Box<Finder<'static>>, Regex),
    /// A duration event (regex with a `duration` capture and a unit, or mongod's slow queries).
    Duration(Box<DurationEvent>),
}

/// A source whose config cannot be turned into a matcher.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("event {event:?}: invalid regex: {problem}")]
    Regex { event: String, problem: String },
    #[error("event {event:?}: expected a non-empty `contains`, a `regex` or both, or a duration event with a `duration` capture")]
    NoMatcher { event: String },
}

/// What one line is.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineMatch {
    /// `(namespace, index)` when the line holds a duplicate-key error.
    pub error: Option<(String, String)>,
    /// Whether the line says a conflict was recovered.
    pub recovery: bool,
    /// Indexes (config order) of the events the line matches (for a
    /// duration event: with a readable duration).
    pub events: Vec<usize>,
    /// What each duration event holding its prefilter read from the line.
    pub durations: Vec<(usize, Reading)>,
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
    /// Durations per event, indexed like `events` (empty for events that
    /// only count lines).
    pub durations: Vec<DurationTally>,
}

impl Tally {
    /// An empty tally for a source with `events` events.
    pub fn new(events: usize) -> Self {
        Tally {
            events: vec![0; events],
            durations: vec![DurationTally::default(); events],
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
        if self.durations.len() < other.durations.len() {
            self.durations.resize(other.durations.len(), DurationTally::default());
        }
        for (mine, theirs) in self.durations.iter_mut().zip(&other.durations) {
            mine.add(theirs);
        }
    }

    /// Counts what duration event `event` read from a line, with its `bounds`.
    fn record(&mut self, event: usize, reading: Reading, bounds: &[u64]) {
        match reading {
            Reading::Sample { nanos, class } => {
                self.events[event] += 1;
                self.durations[event].by_class.entry(class).or_default().observe(bounds, nanos);
            }
            Reading::Unparsed => self.durations[event].unparsed += 1,
        }
    }

    /// For the first `max_line_bytes` of a longer line: a duration read
    /// there may be cut (`12` of `1234ms`), so each sample counts as
    /// unparsed instead, and not as a line of its event.
    pub fn samples_to_unparsed(&mut self) {
        for (event, d) in self.durations.iter_mut().enumerate() {
            let samples: u64 = d.by_class.values().map(|h| h.count).sum();
            if samples > 0 {
                d.by_class.clear();
                d.unparsed += samples;
                if let Some(n) = self.events.get_mut(event) {
                    *n = n.saturating_sub(samples);
                }
            }
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
            && self.bytes == 0
            && self.errors.is_empty()
            && self.recoveries == 0
            && self.events.iter().all(|n| *n == 0)
            && self.durations.iter().all(|d| d.unparsed == 0 && d.by_class.is_empty())
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
            let no_matcher = || MatcherError::NoMatcher {
                event: event.name.clone(),
            };
            let regex = match &event.regex {
                Some(pattern) => Some(Regex::new(pattern).map_err(|e| MatcherError::Regex {
                    event: event.name.clone(),
                    problem: e.to_string(),
                })?),
                None => None,
            };
            let contains = match &event.contains {
                Some(text) if text.is_empty() => return Err(no_matcher()),
                Some(text) => Some(Box::new(Finder::new(text.as_bytes()).into_owned())),
                None => None,
            };
            events.push(match (event.duration(), contains, regex) {
                (Some(spec), _, regex) => {
                    EventMatcher::Duration(Box::new(DurationEvent::new(event, spec, regex).ok_or_else(no_matcher)?))
                }
                (None, Some(finder), None) => EventMatcher::Contains(finder),
                (None, None, Some(regex)) => EventMatcher::Regex(regex),
                (None, Some(finder), Some(regex)) => EventMatcher::ContainsRegex(finder, regex),
                (None, None, None) => return Err(no_matcher()),
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

    /// The bucket bounds of duration event `event` (empty for other events).
    #[cfg(test)]
    fn bounds(&self, event: usize) -> Vec<u64> {
        match &self.events[event] {
            EventMatcher::Duration(d) => d.bounds.clone(),
            _ => Vec::new(),
        }
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
        let mut events = Vec::new();
        let mut durations = Vec::new();
        for (i, event) in self.events.iter().enumerate() {
            let matched = match event {
                EventMatcher::Contains(f) => f.find(line).is_some(),
                EventMatcher::Regex(r) => r.is_match(line),
                EventMatcher::ContainsRegex(f, r) => f.find(line).is_some() && r.is_match(line),
                EventMatcher::Duration(d) => match d.classify(line) {
                    Some(reading) => {
                        durations.push((i, reading));
                        matches!(reading, Reading::Sample { .. })
                    }
                    None => false,
                },
            };
            if matched {
                events.push(i);
            }
        }
        LineMatch {
            error: error.then(|| self.error_labels(line)),
            recovery,
            events,
            durations,
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
        if tally.durations.len() < self.events.len() {
            tally.durations.resize(self.events.len(), DurationTally::default());
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
                    for line in lines(block) {
                        count += u64::from(regex.is_match(line));
                    }
                }
                EventMatcher::ContainsRegex(finder, regex) => {
                    let mut starts = Vec::new();
                    hit_lines(block, |hay| finder.find(hay), &mut starts);
                    for start in starts {
                        count += u64::from(regex.is_match(&block[start..line_end(block, start)]));
                    }
                }
                EventMatcher::Duration(event) => {
                    let mut locations = event.locations();
                    let mut read = |line: &[u8]| {
                        if let Some(reading) = event.read(line, &mut locations) {
                            tally.record(i, reading, &event.bounds);
                        }
                    };
                    match event.prefilter() {
                        Some(finder) => {
                            let mut starts = Vec::new();
                            hit_lines(block, |hay| finder.find(hay), &mut starts);
                            for start in starts {
                                read(&block[start..line_end(block, start)]);
                            }
                        }
                        None => lines(block).for_each(read),
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

/// The lines of `block`, split at `\n`; no empty line after a final newline.
fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = block.strip_suffix(b"\n").unwrap_or(block);
    body.split(|b| *b == b'\n')
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
