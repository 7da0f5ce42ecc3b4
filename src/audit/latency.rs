//! Response time in the monthly audit: for each duration event of a log
//! source, the month's p50 and p99, their change against the previous
//! month, and the worst day.
//!
//! The history store keeps, per event and UTC day, the lines counted in
//! each histogram bucket (`event_duration_bucket`, cumulative by upper
//! bound, summed over status classes) and in all (`event_duration_count`);
//! see `store::log_days`. Percentiles are computed from those counts the way
//! Prometheus's `histogram_quantile` does (linear within the bucket), so the
//! report and the dashboards agree to the bucket. Pure: [`events`] takes the
//! store's rows.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::store::LogDayCount;

/// Fewest samples a day needs to be the worst day: a p99 of a handful of
/// requests says little.
pub const MIN_SAMPLES_FOR_WORST_DAY: u64 = 20;

/// One duration event's month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventLatency {
    /// The `[[logs.events]]` name.
    pub event: String,
    /// Lines with a duration in the month.
    pub samples: u64,
    /// Lines holding the event's prefilter without a readable duration.
    pub unparsed: u64,
    /// The month's median, in seconds; `None` without samples.
    pub p50_seconds: Option<f64>,
    /// The month's 99th percentile, in seconds; `None` without samples.
    pub p99_seconds: Option<f64>,
    /// The previous month's median, when it had samples.
    pub previous_p50_seconds: Option<f64>,
    /// The previous month's 99th percentile, when it had samples.
    pub previous_p99_seconds: Option<f64>,
    /// p99 change against the previous month: 0.5 is 50% slower.
    pub p99_change: Option<f64>,
    /// The day with the highest p99 among days with at least
    /// [`MIN_SAMPLES_FOR_WORST_DAY`] samples.
    pub worst_day: Option<LatencyDay>,
}

/// One day's p99.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyDay {
    pub date: NaiveDate,
    pub p99_seconds: f64,
    pub samples: u64,
}

/// Cumulative counts by upper bound (seconds), and the total count.
#[derive(Debug, Default, Clone)]
struct Counts {
    by_le: BTreeMap<String, u64>,
    count: u64,
    unparsed: u64,
}

impl Counts {
    fn add(&mut self, row: &LogDayCount) {
        match row.counter.as_str() {
            "event_duration_bucket" => *self.by_le.entry(row.sub_label.clone()).or_insert(0) += row.count,
            "event_duration_count" => self.count += row.count,
            "event_unparsed" => self.unparsed += row.count,
            _ => {}
        }
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let mut buckets: Vec<(f64, u64)> =
            self.by_le.iter().filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, *n))).collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        quantile(q, &buckets, self.count)
    }
}

/// The `q` quantile of a histogram given as cumulative counts per finite
/// upper bound and the total count, as Prometheus's `histogram_quantile`:
/// linear within the bucket holding the rank (from 0 for the first), the
/// highest finite bound when the rank lies above it.
pub fn quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> Option<f64> {
    if count == 0 || buckets.is_empty() {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let in_bucket = (cumulative - lower.1) as f64;
            if in_bucket == 0.0 {
                return Some(le);
            }
            return Some(lower.0 + (le - lower.0) * (rank - lower.1 as f64) / in_bucket);
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}

/// Each duration event's month from the store's rows of the month and of
/// the month before.
pub fn events(month: &[LogDayCount], previous: &[LogDayCount]) -> Vec<EventLatency> {
    let mut totals: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut days: BTreeMap<(&str, NaiveDate), Counts> = BTreeMap::new();
    for row in month.iter().filter(|r| is_duration(r)) {
        totals.entry(&row.label).or_default().add(row);
        days.entry((&row.label, row.date)).or_default().add(row);
    }
    let mut before: BTreeMap<&str, Counts> = BTreeMap::new();
    for row in previous.iter().filter(|r| is_duration(r)) {
        before.entry(&row.label).or_default().add(row);
    }
    totals
        .iter()
        .map(|(event, c)| {
            let p99 = c.quantile(0.99);
            let prev = before.get(event);
            let previous_p99_seconds = prev.and_then(|p| p.quantile(0.99));
            let worst_day = days
                .iter()
                .filter(|((e, _), d)| e == event && d.count >= MIN_SAMPLES_FOR_WORST_DAY)
                .filter_map(|((_, date), d)| Some(LatencyDay { date: *date, p99_seconds: d.quantile(0.99)?, samples: d.count }))
                // Of equal days the earliest: max_by keeps the last, so reverse.
                .rev()
                .max_by(|a, b| a.p99_seconds.total_cmp(&b.p99_seconds));
            EventLatency {
                event: event.to_string(),
                samples: c.count,
                unparsed: c.unparsed,
                p50_seconds: c.quantile(0.5),
                p99_seconds: p99,
                previous_p50_seconds: prev.and_then(|p| p.quantile(0.5)),
                previous_p99_seconds,
                p99_change: p99.zip(previous_p99_seconds).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b - 1.0),
                worst_day,
            }
        })
        .collect()
}

fn is_duration(row: &LogDayCount) -> bool {
    matches!(row.counter.as_str(), "event_duration_bucket" | "event_duration_count" | "event_unparsed")
}

/// Seconds as the report writes them: `12.5 ms`, `1.25 s`.
pub fn show_seconds(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: u32, counter: &str, le: &str, count: u64) -> LogDayCount {
        LogDayCount {
            date: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            counter: counter.into(),
            label: "create_or_get".into(),
            sub_label: le.into(),
            count,
        }
    }

    /// A day of `n` requests: 90% at most 10ms, 9% at most 100ms, 1% at most 1s.
    fn day(d: u32, n: u64, slow: bool) -> Vec<LogDayCount> {
        let (fast, mid) = if slow { (n * 50 / 100, n * 40 / 100) } else { (n * 90 / 100, n * 9 / 100) };
        vec![
            row(d, "event_duration_bucket", "0.01", fast),
            row(d, "event_duration_bucket", "0.1", fast + mid),
            row(d, "event_duration_bucket", "1", n),
            row(d, "event_duration_count", "", n),
            row(d, "event_duration_sum_nanos", "", 0),
        ]
    }

    #[test]
    fn quantile_interpolates_like_histogram_quantile() {
        let b = [(0.01, 90), (0.1, 99), (1.0, 100)];
        assert_eq!(quantile(0.5, &b, 100), Some(0.01 * 50.0 / 90.0));
        assert!((quantile(0.99, &b, 100).unwrap() - 0.1).abs() < 1e-12);
        // Rank above the highest finite bound: that bound.
        assert_eq!(quantile(0.99, &[(0.01, 10)], 100), Some(0.01));
        assert_eq!(quantile(0.5, &b, 0), None);
    }

    #[test]
    fn month_change_and_worst_day() {
        let mut month: Vec<LogDayCount> = (1..=5).flat_map(|d| day(d, 1000, d == 3)).collect();
        month.extend(day(6, 10, true)); // too few samples to be the worst day
        month.push(row(2, "event_unparsed", "", 7));
        let previous: Vec<LogDayCount> = day(1, 1000, false).into_iter().map(|mut r| {
            r.date = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
            r
        }).collect();
        let got = events(&month, &previous);
        assert_eq!(got.len(), 1);
        let e = &got[0];
        assert_eq!((e.samples, e.unparsed), (5010, 7));
        assert_eq!(e.worst_day.as_ref().unwrap().date, NaiveDate::from_ymd_opt(2026, 11, 3).unwrap());
        assert!(e.p99_seconds.unwrap() > e.previous_p99_seconds.unwrap());
        assert!(e.p99_change.unwrap() > 0.0, "{e:?}");
        assert!(e.p50_seconds.unwrap() <= 0.01);
        // No previous month: no change.
        assert_eq!(events(&month, &[])[0].p99_change, None);
    }
}
