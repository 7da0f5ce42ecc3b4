//! `[[logs.events]]`: lines counted under one `event` label, and the
//! duration events among them, whose lines also feed a histogram (see
//! `docs/logs.md`, "Durations").
//!
//! The raw fields are deserialised here and checked by [`validate_event`];
//! [`LogEventConfig::duration`] turns a valid event into the typed
//! [`DurationSpec`] the matcher builds from, so the two never disagree on
//! what a duration event is.

use std::collections::HashSet;

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

/// Bucket bounds of a duration event that sets no `buckets`.
pub const DEFAULT_BUCKETS: [&str; 9] = ["5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms", "1s", "2.5s"];

/// Most bucket bounds one duration event may have: each is a series per
/// status class on `/metrics`.
pub const MAX_BUCKETS: usize = 30;

/// The named captures a duration regex may have. Any other name would be a
/// label taken from the line, whose cardinality nothing bounds.
pub const CAPTURE_NAMES: [&str; 3] = ["duration", "unit", "status"];

/// `[[logs.events]]`: lines counted under one `event` label. A `match` event
/// (the default) has `contains`, `regex` or both (`contains` is then a cheap
/// prefilter: the regex runs only on lines holding it); a regex with a
/// `duration` capture and a unit (a `unit` capture or a fixed `unit`) makes
/// it a duration event, also counted in a histogram (a `duration` capture
/// without a unit is an error). Without a `duration` capture named groups
/// are ignored and the event only counts lines, as it always did. `kind = "mongod_slow_query"` is a ready-made
/// duration event for mongod's "Slow query" lines on one `namespace`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogEventConfig {
    /// The `event` label. Letters, digits, `_`, `-`, `.`; unique within the source.
    pub name: String,
    /// `match` (lines matching `contains` and/or `regex`) or
    /// `mongod_slow_query` (mongod 4.4+ JSON "Slow query" lines of component
    /// COMMAND on `namespace`, or on `<database>.$cmd` for an `update`,
    /// `delete` or `insert` of the collection, timed by their `durationMillis`).
    #[serde(default)]
    pub kind: EventKind,
    /// A byte string the line must contain (case-sensitive). The fast
    /// choice; with `regex`, a prefilter: the regex runs only on lines
    /// holding it (for a duration event, a line holding it that the regex
    /// does not match counts as unparsed).
    #[serde(default)]
    pub contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) matched against each
    /// line's bytes. A `duration` capture (a number such as `12` or `2.5`)
    /// with a unit (a `unit` capture: `ns`, `us`, `µs`, `ms`, `s`; or the
    /// fixed `unit` below) makes a duration event, which may also capture
    /// `status` (an HTTP status, exported only as its class `1xx`…`5xx` or
    /// `other`) and no other names. Otherwise named groups are ignored and
    /// the event only counts lines.
    #[serde(default)]
    pub regex: Option<String>,
    /// The unit of a duration event's `duration` when the line does not say
    /// it (no `unit` capture, or one that matched nothing): `ns`, `us`, `ms` or `s`.
    #[serde(default)]
    pub unit: Option<DurationUnit>,
    /// Upper bounds of a duration event's histogram buckets, strictly
    /// increasing, at most 30. When unset: `5ms`, `10ms`, `25ms`, `50ms`,
    /// `100ms`, `250ms`, `500ms`, `1s`, `2.5s`. Changing them starts the
    /// event's histogram again from zero.
    #[serde(default)]
    pub buckets: Option<Vec<String>>,
    /// For `kind = "mongod_slow_query"` only: the namespace
    /// (`database.collection`) whose slow queries are counted.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// What an event counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Lines matching `contains` and/or `regex`.
    #[default]
    Match,
    /// mongod's JSON "Slow query" lines on one namespace, with their duration.
    MongodSlowQuery,
}

/// A unit a duration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DurationUnit {
    Ns,
    Us,
    Ms,
    S,
}

impl DurationUnit {
    /// Nanoseconds in one of this unit.
    pub fn nanos(self) -> u64 {
        match self {
            DurationUnit::Ns => 1,
            DurationUnit::Us => 1_000,
            DurationUnit::Ms => 1_000_000,
            DurationUnit::S => 1_000_000_000,
        }
    }

    /// The unit a line writes (`ms`, `s`, `us`, `µs`, `ns`), if known.
    pub fn from_bytes(text: &[u8]) -> Option<Self> {
        Some(match text {
            b"ns" => DurationUnit::Ns,
            b"us" | b"\xc2\xb5s" => DurationUnit::Us,
            b"ms" => DurationUnit::Ms,
            b"s" => DurationUnit::S,
            _ => return None,
        })
    }
}

/// A decimal number of `unit`s (`12`, `2.5`, `0.125`) in whole nanoseconds,
/// without floating point, so sums stay exact; digits below a nanosecond
/// are dropped. `None` when `number` is not one, or overflows.
pub fn parse_nanos(number: &[u8], unit: DurationUnit) -> Option<u64> {
    let (whole, fraction) = match memchr::memchr(b'.', number) {
        Some(dot) => (&number[..dot], &number[dot + 1..]),
        None => (number, &[][..]),
    };
    if whole.is_empty() || !whole.iter().chain(fraction).all(u8::is_ascii_digit) || (number.len() > whole.len() && fraction.is_empty()) {
        return None;
    }
    let mut nanos: u64 = 0;
    for d in whole {
        nanos = nanos.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    nanos = nanos.checked_mul(unit.nanos())?;
    let mut scale = unit.nanos();
    for d in fraction {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos = nanos.checked_add(u64::from(d - b'0') * scale)?;
    }
    Some(nanos)
}

/// A duration as config writes a bucket bound (`5ms`, `2.5s`, `250us`), in nanoseconds.
pub fn parse_bound(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    parse_nanos(number.as_bytes(), DurationUnit::from_bytes(unit.as_bytes())?)
}

/// Where a duration event finds its figures, for the matcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationSpec {
    /// Bucket upper bounds in nanoseconds, strictly increasing.
    pub bounds_nanos: Vec<u64>,
    /// What the line is parsed with.
    pub parse: DurationParse,
}

/// How a duration event reads a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationParse {
    /// The `duration`, `unit` and `status` captures of `regex`.
    Regex {
        /// The unit when no `unit` capture matched.
        unit: Option<DurationUnit>,
        /// Whether the regex captures a `status` (then `status_class` is set).
        status: bool,
    },
    /// mongod's JSON "Slow query" lines on `namespace`.
    MongodSlowQuery { namespace: String },
}

impl LogEventConfig {
    /// The duration spec of a duration event, `None` for an event that only
    /// counts lines. Call on a validated config.
    pub fn duration(&self) -> Option<DurationSpec> {
        let parse = match self.kind {
            EventKind::MongodSlowQuery => DurationParse::MongodSlowQuery {
                namespace: self.namespace.clone().unwrap_or_default(),
            },
            EventKind::Match => {
                let names = self.regex.as_deref().map(capture_names).unwrap_or_default();
                if !is_duration_event(&names, self.unit) {
                    return None;
                }
                DurationParse::Regex {
                    unit: self.unit,
                    status: names.iter().any(|n| n == "status"),
                }
            }
        };
        let bounds_nanos = match &self.buckets {
            Some(b) => b.iter().filter_map(|b| parse_bound(b)).collect(),
            None => DEFAULT_BUCKETS.iter().filter_map(|b| parse_bound(b)).collect(),
        };
        Some(DurationSpec { bounds_nanos, parse })
    }
}

/// The named captures of a regex (empty when it does not compile).
fn capture_names(pattern: &str) -> Vec<String> {
    Regex::new(pattern)
        .map(|r| r.capture_names().flatten().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Whether a `match` event with these named captures and fixed `unit` is a
/// duration event: it needs a `duration` capture and a unit (a `unit`
/// capture or the fixed `unit`). A regex without a `duration` capture only
/// counts lines, whatever its named groups, exactly as before duration
/// events existed (`took (?P<ms>\d{4,})ms` keeps loading and its meaning);
/// a `duration` capture without a unit is refused by validation.
fn is_duration_event(names: &[String], unit: Option<DurationUnit>) -> bool {
    names.iter().any(|n| n == "duration") && (unit.is_some() || names.iter().any(|n| n == "unit"))
}

/// Checks one event; `at` makes the field's name (`logs[0].events[1].regex`).
pub(super) fn validate_event(event: &LogEventConfig, at: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
    let whole = || at("").trim_end_matches('.').to_string();
    if event.contains.as_deref() == Some("") {
        return Err((at("contains"), "must not be empty (it would match every line)".into()));
    }
    if let Some(pattern) = &event.regex {
        if let Err(e) = Regex::new(pattern) {
            return Err((at("regex"), format!("expected a regular expression, found {pattern:?}: {e}")));
        }
    }
    let names = event.regex.as_deref().map(capture_names).unwrap_or_default();
    match event.kind {
        EventKind::MongodSlowQuery => {
            for (field, set) in [("contains", event.contains.is_some()), ("regex", event.regex.is_some()), ("unit", event.unit.is_some())] {
                if set {
                    return Err((at(field), "not used by kind = \"mongod_slow_query\", which reads mongod's own JSON lines".into()));
                }
            }
            match event.namespace.as_deref().map(str::trim) {
                None | Some("") => {
                    return Err((at("namespace"), "expected the namespace (\"database.collection\") whose slow queries are counted".into()));
                }
                Some(ns) if ns.contains('"') || ns.contains('\\') => {
                    return Err((at("namespace"), "expected a namespace without quotes or backslashes".into()));
                }
                Some(_) => {}
            }
        }
        EventKind::Match => {
            if event.contains.is_none() && event.regex.is_none() {
                return Err((whole(), "expected `contains`, `regex` or both".into()));
            }
            if event.namespace.is_some() {
                return Err((at("namespace"), "only for kind = \"mongod_slow_query\"".into()));
            }
            // Opt-in (see `is_duration_event`): every older config keeps its meaning.
            if !is_duration_event(&names, event.unit) {
                if event.unit.is_some() {
                    return Err((at("unit"), "only for a duration event: a `regex` with a `(?P<duration>…)` capture".into()));
                }
                // A `duration` capture says what the event is for: without a
                // unit it would silently count lines and time nothing.
                if names.iter().any(|n| n == "duration") {
                    return Err((at("unit"), "a `(?P<duration>…)` capture needs a unit: a `(?P<unit>…)` capture in the regex or a fixed `unit` (ns, us, ms, s)".into()));
                }
                if event.buckets.is_some() {
                    return Err((at("buckets"), "only for a duration event: a `regex` with `(?P<duration>…)` and a unit".into()));
                }
                return Ok(());
            }
            if let Some(bad) = names.iter().find(|n| !CAPTURE_NAMES.contains(&n.as_str())) {
                return Err((
                    at("regex"),
                    format!("named capture {bad:?} is not allowed in a duration event: only {CAPTURE_NAMES:?} (any other would be a label of unbounded cardinality; use an unnamed group)"),
                ));
            }
        }
    }
    validate_buckets(event.buckets.as_deref(), at)
}

fn validate_buckets(buckets: Option<&[String]>, at: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
    let Some(buckets) = buckets else { return Ok(()) };
    if buckets.is_empty() || buckets.len() > MAX_BUCKETS {
        return Err((at("buckets"), format!("expected 1 to {MAX_BUCKETS} bucket bounds, found {}", buckets.len())));
    }
    let mut previous: Option<u64> = None;
    let mut seen = HashSet::new();
    for (k, text) in buckets.iter().enumerate() {
        let field = at(&format!("buckets[{k}]"));
        let Some(nanos) = parse_bound(text).filter(|n| *n > 0) else {
            return Err((field, format!("expected a positive duration such as \"5ms\", \"2.5s\" or \"250us\", found {text:?}")));
        };
        if previous.is_some_and(|p| nanos <= p) || !seen.insert(nanos) {
            return Err((field, format!("bucket bounds must be strictly increasing; {text:?} is not above the one before")));
        }
        previous = Some(nanos);
    }
    Ok(())
}

#[cfg(test)]
#[path = "log_events_tests.rs"]
mod tests;
