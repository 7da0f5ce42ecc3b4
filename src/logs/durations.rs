//! Duration events: reading a duration (and a status) from a line, and the
//! histograms they are counted in.
//!
//! A duration event is a `[[logs.events]]` entry whose regex captures a
//! `duration` with a unit (a `unit` capture or a fixed `unit`; a `status`
//! too), or `kind = "mongod_slow_query"`.
//! [`DurationEvent`] reads one line; the matcher calls it only on lines
//! holding the event's prefilter (its `contains`, or mongod's
//! `"msg":"Slow query"`), found over whole blocks with `memmem`, so the
//! regex runs on few lines. Each reading goes into a [`Histogram`] per
//! [`StatusClass`], held in integer nanoseconds so sums stay exact across
//! additions, checkpoints and restarts; seconds appear only at export.
//!
//! The same [`Histogram`] and [`EventDurations`] are the tally's, the
//! checkpoint's and the history store's: one type from the line to the disk.

use std::collections::BTreeMap;

use memchr::memmem::Finder;
use regex::bytes::{CaptureLocations, Regex};
use serde::{Deserialize, Serialize};

use crate::config::{parse_nanos, DurationParse, DurationSpec, DurationUnit, LogEventConfig};

/// The class of an HTTP status, the only form in which a status becomes a
/// label: a handful of values, whatever the line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// The event captures no status: the label is empty (Prometheus drops
    /// empty labels, so such series have no `status_class` at all).
    None,
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
    /// A captured status outside 100–599, or not a number.
    Other,
}

impl StatusClass {
    /// The class of a captured status.
    pub fn of(status: &[u8]) -> Self {
        let number = (!status.is_empty() && status.len() <= 3 && status.iter().all(u8::is_ascii_digit))
            .then(|| status.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')));
        match number {
            Some(100..=199) => StatusClass::Informational,
            Some(200..=299) => StatusClass::Success,
            Some(300..=399) => StatusClass::Redirection,
            Some(400..=499) => StatusClass::ClientError,
            Some(500..=599) => StatusClass::ServerError,
            _ => StatusClass::Other,
        }
    }

    /// The `status_class` label value.
    pub fn label(self) -> &'static str {
        match self {
            StatusClass::None => "",
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Other => "other",
        }
    }
}

/// Durations counted into buckets: what a Prometheus histogram exports,
/// kept as plain integers so it can be added, saved and restored exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Histogram {
    /// Samples per bucket (not cumulative): `buckets[k]` counts durations
    /// above bound `k - 1` and at most bound `k`; the last entry, one past
    /// the bounds, counts those above every bound.
    pub buckets: Vec<u64>,
    /// Samples.
    pub count: u64,
    /// Sum of the samples in nanoseconds (saturating: 584 years of
    /// cumulated duration).
    pub sum_nanos: u64,
}

impl Histogram {
    /// Counts one duration of `nanos` against bucket bounds `bounds`.
    pub fn observe(&mut self, bounds: &[u64], nanos: u64) {
        if self.buckets.len() <= bounds.len() {
            self.buckets.resize(bounds.len() + 1, 0);
        }
        self.buckets[bounds.partition_point(|b| *b < nanos)] += 1;
        self.count += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Histogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_nanos = self.sum_nanos.saturating_add(other.sum_nanos);
    }

    /// Cumulative counts per bound (`le`), without the `+Inf` one (= `count`).
    pub fn cumulative(&self, bounds: &[u64]) -> Vec<u64> {
        let mut running = 0;
        (0..bounds.len())
            .map(|k| {
                running += self.buckets.get(k).copied().unwrap_or(0);
                running
            })
            .collect()
    }
}

/// What a duration event counted: histograms per status class, and lines it
/// could not read a duration from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDurations {
    /// The bucket bounds (nanoseconds) the histograms were counted with; a
    /// change of `buckets` in the config starts them again.
    pub bounds_nanos: Vec<u64>,
    /// Lines holding the event's prefilter that its regex did not match, or
    /// without a readable duration.
    pub unparsed: u64,
    /// `status_class` label value (empty without a status capture) → histogram.
    pub by_status_class: BTreeMap<String, Histogram>,
    /// `status_class` → lines with a duration, for `log_events_total`. Kept
    /// apart from the histograms because a change of `buckets` resets those
    /// but not this counter, which stays in step with the event's line count
    /// in the audit. Empty in checkpoints written before it existed: filled
    /// from the histograms' counts at start-up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lines_by_status_class: BTreeMap<String, u64>,
}

impl EventDurations {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &EventDurations) {
        if self.bounds_nanos.is_empty() {
            self.bounds_nanos.clone_from(&other.bounds_nanos);
        }
        self.unparsed += other.unparsed;
        for (class, h) in &other.by_status_class {
            self.by_status_class.entry(class.clone()).or_default().add(h);
        }
        for (class, n) in &other.lines_by_status_class {
            *self.lines_by_status_class.entry(class.clone()).or_default() += n;
        }
    }

    /// Starts the histograms again with new bucket bounds; the line counts
    /// (`unparsed`, `lines_by_status_class`) go on.
    pub fn reset_buckets(&mut self, bounds_nanos: &[u64]) {
        bounds_nanos.clone_into(&mut self.bounds_nanos);
        self.by_status_class.clear();
    }
}

/// What a duration event read from one line holding its prefilter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A duration, in nanoseconds, with the line's status class.
    Sample { nanos: u64, class: StatusClass },
    /// The line holds the prefilter but no readable duration.
    Unparsed,
}

/// The tally of one duration event over some lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurationTally {
    /// Lines without a readable duration.
    pub unparsed: u64,
    /// Histograms per status class.
    pub by_class: BTreeMap<StatusClass, Histogram>,
}

impl DurationTally {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &DurationTally) {
        self.unparsed += other.unparsed;
        for (class, h) in &other.by_class {
            self.by_class.entry(*class).or_default().add(h);
        }
    }

    /// The stored form, with the event's bounds.
    pub fn to_totals(&self, bounds_nanos: &[u64]) -> EventDurations {
        EventDurations {
            bounds_nanos: bounds_nanos.to_vec(),
            unparsed: self.unparsed,
            by_status_class: self.by_class.iter().map(|(c, h)| (c.label().to_string(), h.clone())).collect(),
            lines_by_status_class: self.by_class.iter().map(|(c, h)| (c.label().to_string(), h.count)).collect(),
        }
    }
}

/// mongod's marker of a slow operation line (4.4+ JSON logs).
const SLOW_QUERY: &[u8] = br#""msg":"Slow query""#;
/// The component of a command's slow-query line. A write command's slow
/// statements may also be logged under `WRITE` (`"type":"update"` or
/// `"remove"`, ns the collection); only the COMMAND line is counted, so a
/// command counts once.
const COMMAND: &[u8] = br#""c":"COMMAND""#;
/// The key of a slow-query line's duration, in milliseconds.
const DURATION_MILLIS: &[u8] = br#""durationMillis":"#;
/// The start of a log line's attributes.
const ATTR: &[u8] = br#""attr":{"#;

/// The longest duration a line may give: one day. A longer one (a typo, a
/// counter that wrapped, a timestamp read as a duration) counts as unparsed,
/// so one wild value never pins `_sum` at its maximum for good (sums are
/// saturating and checkpointed). At one day per sample the sum lasts
/// 213,000 samples of a day each before saturating.
pub const MAX_SAMPLE_NANOS: u64 = 86_400 * 1_000_000_000;

/// One duration event, built from its config.
pub struct DurationEvent {
    /// Lines are read only when they hold it: `contains`, or mongod's
    /// `"msg":"Slow query"`. `None` for a regex-only event.
    prefilter: Option<Finder<'static>>,
    /// How a line is read.
    parser: Parser,
    /// Bucket bounds in nanoseconds.
    pub bounds: Vec<u64>,
}

enum Parser {
    Regex {
        regex: Regex,
        duration: usize,
        unit_capture: Option<usize>,
        unit: Option<DurationUnit>,
        status: Option<usize>,
    },
    /// Boxed: two finders and the names are large next to a regex handle.
    Mongod(Box<SlowQuery>),
}

/// The byte searches that read a mongod slow-query line.
struct SlowQuery {
    /// `"c":"COMMAND"`, looked for before `"attr":{` only.
    command: Finder<'static>,
    /// `"attr":{`: where the operation's own fields start.
    attr: Finder<'static>,
    /// The namespace counted, `database.collection`.
    namespace: Vec<u8>,
    /// `<database>.$cmd`: the namespace mongod gives write commands
    /// (`update`, `delete`, `insert`), whose collection is the value of the
    /// command's first field.
    command_namespace: Vec<u8>,
    /// The collection part of `namespace`.
    collection: Vec<u8>,
}

/// `"ns":"`, the key of a slow-query line's namespace.
const NS: &[u8] = br#""ns":""#;
/// `"command":{`, the command object of a slow-query line.
const COMMAND_OBJECT: &[u8] = br#""command":{""#;

impl SlowQuery {
    fn new(namespace: &str) -> Self {
        let (database, collection) = namespace.split_once('.').unwrap_or((namespace, ""));
        SlowQuery {
            command: Finder::new(COMMAND).into_owned(),
            attr: Finder::new(ATTR).into_owned(),
            namespace: namespace.as_bytes().to_vec(),
            command_namespace: format!("{database}.$cmd").into_bytes(),
            collection: collection.as_bytes().to_vec(),
        }
    }

    /// Whether `line` is a COMMAND slow-query line on the namespace: its
    /// `attr.ns` (the first `"ns":"` after `"attr":{`, so a filter such as
    /// `{"ns":"app.chats"}` inside the command never counts) equals the
    /// namespace, or is `<database>.$cmd` with a command whose first field
    /// is `"<verb>":"<collection>"` (a write command).
    fn on_namespace(&self, line: &[u8]) -> bool {
        let Some(attr) = self.attr.find(line) else { return false };
        if self.command.find(&line[..attr]).is_none() {
            return false;
        }
        let attr = &line[attr + ATTR.len()..];
        let Some(ns) = string_after(attr, NS) else { return false };
        if ns == self.namespace.as_slice() {
            return true;
        }
        if ns != self.command_namespace.as_slice() {
            return false;
        }
        // {"command":{"update":"chats",...}: the first key, then its string value.
        let Some(at) = memchr::memmem::find(attr, COMMAND_OBJECT) else { return false };
        let rest = &attr[at + COMMAND_OBJECT.len()..];
        let Some(key_end) = memchr::memchr(b'"', rest) else { return false };
        let value = &rest[key_end..];
        value.starts_with(br#"":""#) && string_after(value, br#"":""#).is_some_and(|c| c == self.collection.as_slice())
    }
}

/// The JSON string whose opening quote ends the first `key` in `text`, up
/// to its closing quote (escapes are not decoded: names are compared raw).
fn string_after<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = memchr::memmem::find(text, key)? + key.len();
    let len = memchr::memchr(b'"', &text[start..])?;
    Some(&text[start..start + len])
}

/// The duration of a slow-query line: the last `"durationMillis":` (mongod
/// writes it last, so a document in the command holding the same key is
/// never read instead), in whole milliseconds.
fn duration_millis(line: &[u8]) -> Option<u64> {
    let at = memchr::memmem::rfind(line, DURATION_MILLIS)?;
    let rest = &line[at + DURATION_MILLIS.len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_nanos(&rest[..digits], DurationUnit::Ms)
}

impl DurationEvent {
    /// Builds a duration event; `regex` is the event's compiled regex.
    pub fn new(event: &LogEventConfig, spec: DurationSpec, regex: Option<Regex>) -> Option<Self> {
        let (prefilter, parser) = match spec.parse {
            DurationParse::Regex { unit, .. } => {
                let regex = regex?;
                let index = |name: &str| regex.capture_names().position(|n| n == Some(name));
                let parser = Parser::Regex {
                    duration: index("duration")?,
                    unit_capture: index("unit"),
                    status: index("status"),
                    unit,
                    regex,
                };
                (event.contains.as_ref().map(|c| Finder::new(c.as_bytes()).into_owned()), parser)
            }
            DurationParse::MongodSlowQuery { namespace } => {
                let parser = Parser::Mongod(Box::new(SlowQuery::new(&namespace)));
                (Some(Finder::new(SLOW_QUERY).into_owned()), parser)
            }
        };
        Some(DurationEvent { prefilter, parser, bounds: spec.bounds_nanos })
    }

    /// The prefilter lines must hold, if any.
    pub fn prefilter(&self) -> Option<&Finder<'static>> {
        self.prefilter.as_ref()
    }

    /// Fresh capture slots for [`DurationEvent::read`], reused across lines.
    pub fn locations(&self) -> Option<CaptureLocations> {
        match &self.parser {
            Parser::Regex { regex, .. } => Some(regex.capture_locations()),
            Parser::Mongod(_) => None,
        }
    }

    /// What the event reads from `line`; `None` when the line is not one of
    /// the event's. The caller checks the prefilter (see [`Self::classify`]).
    pub fn read(&self, line: &[u8], locations: &mut Option<CaptureLocations>) -> Option<Reading> {
        match (&self.parser, locations) {
            (Parser::Regex { regex, duration, unit_capture, unit, status }, Some(locs)) => {
                if regex.captures_read(locs, line).is_none() {
                    return self.prefilter.is_some().then_some(Reading::Unparsed);
                }
                let text = |i: usize| locs.get(i).map(|(s, e)| &line[s..e]);
                let unit = match unit_capture.and_then(text) {
                    Some(u) => DurationUnit::from_bytes(u),
                    None => *unit,
                };
                let nanos = unit.and_then(|u| text(*duration).and_then(|d| parse_nanos(d, u))).filter(|n| *n <= MAX_SAMPLE_NANOS);
                let class = match status {
                    Some(i) => text(*i).map_or(StatusClass::Other, StatusClass::of),
                    None => StatusClass::None,
                };
                Some(nanos.map_or(Reading::Unparsed, |nanos| Reading::Sample { nanos, class }))
            }
            (Parser::Mongod(q), _) => {
                if !q.on_namespace(line) {
                    return None;
                }
                Some(duration_millis(line).filter(|n| *n <= MAX_SAMPLE_NANOS).map_or(Reading::Unparsed, |nanos| Reading::Sample { nanos, class: StatusClass::None }))
            }
            (Parser::Regex { .. }, None) => None,
        }
    }

    /// What the event reads from one line, the prefilter included.
    pub fn classify(&self, line: &[u8]) -> Option<Reading> {
        if self.prefilter.as_ref().is_some_and(|f| f.find(line).is_none()) {
            return None;
        }
        self.read(line, &mut self.locations())
    }
}

#[cfg(test)]
#[path = "durations_tests.rs"]
mod tests;
