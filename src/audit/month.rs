//! The calendar month a report covers: UTC, written `YYYY-MM`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar month in UTC, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    /// The year, four digits.
    year: i32,
    /// 1 to 12.
    month: u32,
}

/// A month that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a month as YYYY-MM, such as 2026-10, found {input:?}: {problem}")]
pub struct MonthParseError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Month {
    /// The month `year`-`month`; `None` unless `month` is 1 to 12 and the year has four digits.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=12).contains(&month) && (1000..=9999).contains(&year)).then_some(Month { year, month })
    }

    /// The month before the one `now` falls in: the month a report written
    /// on the 1st covers.
    pub fn previous(now: DateTime<Utc>) -> Month {
        Month::containing(now).prev()
    }

    /// The month `at` falls in.
    pub fn containing(at: DateTime<Utc>) -> Month {
        Month { year: at.year(), month: at.month() }
    }

    /// The month after this one.
    pub fn next(&self) -> Month {
        if self.month == 12 {
            Month { year: self.year + 1, month: 1 }
        } else {
            Month { year: self.year, month: self.month + 1 }
        }
    }

    /// The month before this one.
    pub fn prev(&self) -> Month {
        if self.month == 1 {
            Month { year: self.year - 1, month: 12 }
        } else {
            Month { year: self.year, month: self.month - 1 }
        }
    }

    /// The first day.
    pub fn first_day(&self) -> NaiveDate {
        // Month values are validated on construction.
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }

    /// Midnight UTC on the first day.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day().and_time(chrono::NaiveTime::MIN))
    }

    /// Midnight UTC on the first day of the next month (exclusive end).
    pub fn end(&self) -> DateTime<Utc> {
        self.next().start()
    }

    /// Every day of the month.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let next = self.next().first_day();
        self.first_day().iter_days().take_while(move |d| *d < next)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| MonthParseError { input: s.to_string(), problem: problem.to_string() };
        let (y, m) = s.trim().split_once('-').ok_or_else(|| fail("no '-' between year and month"))?;
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("the year must be four digits"));
        }
        if m.len() != 2 || !m.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("the month must be two digits, 01 to 12"));
        }
        // Both parts are all digits of bounded length, hence parse.
        let year: i32 = y.parse().map_err(|_| fail("the year must be four digits"))?;
        let month: u32 = m.parse().map_err(|_| fail("the month must be two digits, 01 to 12"))?;
        Month::new(year, month).ok_or_else(|| fail("the month must be between 01 and 12"))
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `y-m-d h:00:00 UTC`, for the audit's tests.
#[cfg(test)]
pub(super) fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    // Tests pass real calendar dates.
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_parses_and_prints() {
        let m: Month = "2026-10".parse().unwrap();
        assert_eq!((m.year, m.month), (2026, 10));
        assert_eq!(m.to_string(), "2026-10");
        assert_eq!(m.start(), utc(2026, 10, 1, 0));
        assert_eq!(m.end(), utc(2026, 11, 1, 0));
        assert_eq!(m.days().count(), 31);
        assert_eq!("2024-02".parse::<Month>().unwrap().days().count(), 29);
    }

    #[test]
    fn bad_months_say_what_is_expected() {
        for (input, problem) in [
            ("2026-13", "between 01 and 12"),
            ("2026-00", "between 01 and 12"),
            ("2026-1", "two digits"),
            ("26-10", "four digits"),
            ("2026/10", "no '-'"),
            ("october", "no '-'"),
            ("2026-10-01", "two digits"),
        ] {
            let e = input.parse::<Month>().unwrap_err().to_string();
            assert!(e.contains("expected a month as YYYY-MM"), "{input}: {e}");
            assert!(e.contains(problem), "{input}: {e}");
        }
    }

    #[test]
    fn previous_month_wraps_the_year() {
        assert_eq!(Month::previous(utc(2027, 1, 1, 6)).to_string(), "2026-12");
        assert_eq!(Month::previous(utc(2026, 11, 1, 6)).to_string(), "2026-10");
        assert_eq!("2026-12".parse::<Month>().unwrap().next().to_string(), "2027-01");
    }

    #[test]
    fn month_serialises_as_text() {
        let m: Month = "2026-10".parse().unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2026-10\"");
        assert_eq!(serde_json::from_str::<Month>("\"2026-10\"").unwrap(), m);
    }
}
