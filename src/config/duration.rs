//! Durations as config files write them (`500ms`, `30s`, `5m`), and the
//! accepted range of every duration, size and count read from the config.
//!
//! Each section declares its ranges next to its fields (as associated
//! constants) and lists them in a `bounded()` method; validation and the
//! generated reference (`docs/configuration.md`) both read that list, so a
//! range is checked at load and documented from one place.

use std::fmt;
use std::time::Duration;

use serde::{Deserializer, Serializer};

/// Serde glue for [`Duration`] fields: `with = "duration_text"`.
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&show_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"30s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                // The value itself is not echoed: a misplaced secret must not reach the error.
                humantime::parse_duration(v).map_err(|e| {
                    let why = match e {
                        humantime::DurationError::UnknownUnit { .. } => "unknown unit".to_string(),
                        other => other.to_string(),
                    };
                    E::custom(format!(
                        "expected a duration such as \"500ms\", \"30s\" or \"5m\", found a string that is not one ({why})"
                    ))
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// Serde glue for optional [`Duration`] fields: `with = "option_duration_text"`
/// together with `default` and `skip_serializing_if = "Option::is_none"`.
pub mod option_duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration_text::deserialize(d).map(Some)
    }
}

/// The accepted range of one value, with the reason for its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds<T> {
    pub min: T,
    pub max: T,
    /// Why the range is what it is, shown with an out-of-range value.
    pub why: &'static str,
}

/// A value read from the config together with its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounded {
    Duration(Duration, Bounds<Duration>),
    Count(usize, Bounds<usize>),
}

/// A duration in the largest unit that divides it exactly (`400days`, not
/// humantime's `1year 1month 4days 7h 26m 24s`); what it prints parses back.
pub fn show_duration(d: Duration) -> String {
    const UNITS: [(u128, &str, &str); 6] = [
        (31_557_600_000, "year", "years"),
        (86_400_000, "day", "days"),
        (3_600_000, "h", "h"),
        (60_000, "m", "m"),
        (1_000, "s", "s"),
        (1, "ms", "ms"),
    ];
    let ms = d.as_millis();
    if ms == 0 || d.subsec_nanos() % 1_000_000 != 0 {
        return humantime::format_duration(d).to_string();
    }
    let (unit, one, many) = UNITS.into_iter().find(|(unit, _, _)| ms % unit == 0).expect("1ms divides every whole number of ms");
    let n = ms / unit;
    format!("{n}{}", if n == 1 { one } else { many })
}

impl Bounded {
    /// The range as the reference shows it: `1ms to 1day`.
    pub fn range(&self) -> String {
        match self {
            Bounded::Duration(_, b) => format!("{} to {}", show_duration(b.min), show_duration(b.max)),
            Bounded::Count(_, b) => format!("{} to {}", b.min, b.max),
        }
    }

    /// `Err(problem)` when the value is outside its range.
    pub fn check(&self) -> Result<(), String> {
        let (inside, found, why) = match self {
            Bounded::Duration(v, b) => ((b.min..=b.max).contains(v), show_duration(*v), b.why),
            Bounded::Count(v, b) => ((b.min..=b.max).contains(v), v.to_string(), b.why),
        };
        if inside {
            Ok(())
        } else {
            Err(format!("expected {} ({why}), found {found}", self.range()))
        }
    }
}

/// Checks every `(field, value)` of a section, naming the first field out of range.
pub fn check_all(prefix: &str, values: impl IntoIterator<Item = (&'static str, Bounded)>) -> Result<(), (String, String)> {
    for (field, value) in values {
        value.check().map_err(|problem| (format!("{prefix}{field}"), problem))?;
    }
    Ok(())
}

pub const fn millis(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds<Duration> = Bounds { min: millis(1), max: days(1), why: "a reason" };

    #[test]
    fn durations_show_in_their_largest_exact_unit_and_parse_back() {
        for (d, text) in [(days(400), "400days"), (days(36525), "100years"), (secs(90), "90s"), (millis(1500), "1500ms"), (Duration::ZERO, "0s"), (secs(7200), "2h")] {
            assert_eq!(show_duration(d), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), d);
        }
    }

    #[test]
    fn out_of_range_says_range_reason_and_value() {
        assert_eq!(Bounded::Duration(secs(5), B).check(), Ok(()));
        assert_eq!(Bounded::Duration(days(1), B).check(), Ok(()));
        assert_eq!(
            Bounded::Duration(days(2), B).check().unwrap_err(),
            "expected 1ms to 1day (a reason), found 2days"
        );
        let e = check_all("mongodb.", [("query_timeout", Bounded::Duration(Duration::ZERO, B))]).unwrap_err();
        assert_eq!(e.0, "mongodb.query_timeout");
    }
}
