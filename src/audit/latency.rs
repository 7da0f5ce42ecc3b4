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
    /// The median lies above the highest finite bucket bound, which
    /// `p50_seconds` then is: a lower limit (shown `≥ bound`).
    pub p50_at_least: bool,
    /// The month's 99th percentile, in seconds; `None` without samples.
    pub p99_seconds: Option<f64>,
    /// As `p50_at_least`, for the p99.
    pub p99_at_least: bool,
    /// The previous month's median, when it had samples.
    pub previous_p50_seconds: Option<f64>,
    /// The previous month's 99th percentile, when it had samples.
    pub previous_p99_seconds: Option<f64>,
    /// As `p99_at_least`, for the previous month's p99.
    pub previous_p99_at_least: bool,
    /// The month's days had more than one bucket layout (`buckets` changed):
    /// percentiles and the worst day come only from the days of the latest
    /// layout, as counts of different bounds cannot be added.
    pub mixed_layouts: bool,
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
    /// The p99 lies above the highest finite bound (`p99_seconds`).
    pub p99_at_least: bool,
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

    fn add_counts(&mut self, other: &Counts) {
        for (le, n) in &other.by_le {
            *self.by_le.entry(le.clone()).or_insert(0) += n;
        }
        self.count += other.count;
        self.unparsed += other.unparsed;
    }

    /// The bucket layout: the set of `le` bounds the rows name (empty for a
    /// day without bucket rows).
    fn layout(&self) -> Vec<&str> {
        self.by_le.keys().map(String::as_str).collect()
    }

    fn quantile(&self, q: f64) -> Option<(f64, bool)> {
        let mut buckets: Vec<(f64, u64)> =
            self.by_le.iter().filter_map(|(le, n)| Some((le.parse::<f64>().ok()?, *n))).collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        quantile(q, &buckets, self.count)
    }
}

/// The `q` quantile of a histogram given as cumulative counts per finite
/// upper bound and the total count, as Prometheus's `histogram_quantile`:
/// linear within the bucket holding the rank (from 0 for the first), the
/// highest finite bound when the rank lies above it; the flag says so (the
/// value is then a lower limit).
pub fn quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> Option<(f64, bool)> {
    if count == 0 || buckets.is_empty() {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let in_bucket = (cumulative - lower.1) as f64;
            if in_bucket == 0.0 {
                return Some((le, false));
            }
            return Some((lower.0 + (le - lower.0) * (rank - lower.1 as f64) / in_bucket, false));
        }
        lower = (le, cumulative);
    }
    Some((lower.0, true))
}

/// One event's days summed for percentiles: only the days whose bucket
/// layout is the one of the latest day with buckets (counts of different
/// bounds cannot be added by `le`); samples and unparsed lines of every day.
struct Month<'a> {
    /// The days of the latest layout, summed.
    latest: Counts,
    /// The days of the latest layout, one by one.
    days: Vec<(NaiveDate, &'a Counts)>,
    /// Samples and unparsed lines of every day.
    all: Counts,
    /// Some day with buckets had another layout.
    mixed: bool,
}

fn month(days: &BTreeMap<NaiveDate, Counts>) -> Month<'_> {
    let layout = days.values().rev().map(Counts::layout).find(|l| !l.is_empty()).unwrap_or_default();
    let mut m = Month { latest: Counts::default(), days: Vec::new(), all: Counts::default(), mixed: false };
    for (date, c) in days {
        m.all.count += c.count;
        m.all.unparsed += c.unparsed;
        let own = c.layout();
        if own.is_empty() {
            continue;
        }
        if own == layout {
            m.latest.add_counts(c);
            m.days.push((*date, c));
        } else {
            m.mixed = true;
        }
    }
    m
}

/// Each duration event's month from the store's rows of the month and of
/// the month before.
pub fn events(month_rows: &[LogDayCount], previous_rows: &[LogDayCount]) -> Vec<EventLatency> {
    let by_day = |rows: &[LogDayCount]| {
        let mut days: BTreeMap<String, BTreeMap<NaiveDate, Counts>> = BTreeMap::new();
        for row in rows.iter().filter(|r| is_duration(r)) {
            days.entry(row.label.clone()).or_default().entry(row.date).or_default().add(row);
        }
        days
    };
    let before = by_day(previous_rows);
    by_day(month_rows)
        .iter()
        .map(|(event, days)| {
            let m = month(days);
            let p50 = m.latest.quantile(0.5);
            let p99 = m.latest.quantile(0.99);
            let prev = before.get(event).map(|d| month(d).latest);
            let prev_p99 = prev.as_ref().and_then(|p| p.quantile(0.99));
            let worst_day = m
                .days
                .iter()
                .filter(|(_, d)| d.count >= MIN_SAMPLES_FOR_WORST_DAY)
                .filter_map(|(date, d)| {
                    let (p99_seconds, p99_at_least) = d.quantile(0.99)?;
                    Some(LatencyDay { date: *date, p99_seconds, p99_at_least, samples: d.count })
                })
                // Of equal days the earliest: max_by keeps the last, so reverse.
                .rev()
                .max_by(|a, b| a.p99_seconds.total_cmp(&b.p99_seconds));
            EventLatency {
                event: event.clone(),
                samples: m.all.count,
                unparsed: m.all.unparsed,
                p50_seconds: p50.map(|q| q.0),
                p50_at_least: p50.is_some_and(|q| q.1),
                p99_seconds: p99.map(|q| q.0),
                p99_at_least: p99.is_some_and(|q| q.1),
                previous_p50_seconds: prev.as_ref().and_then(|p| p.quantile(0.5)).map(|q| q.0),
                previous_p99_seconds: prev_p99.map(|q| q.0),
                previous_p99_at_least: prev_p99.is_some_and(|q| q.1),
                p99_change: p99.zip(prev_p99).filter(|(_, b)| b.0 > 0.0).map(|(a, b)| a.0 / b.0 - 1.0),
                mixed_layouts: m.mixed,
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
    use chrono::Datelike;

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
        assert_eq!(quantile(0.5, &b, 100), Some((0.01 * 50.0 / 90.0, false)));
        assert!((quantile(0.99, &b, 100).unwrap().0 - 0.1).abs() < 1e-12);
        // Rank above the highest finite bound: that bound, as a lower limit.
        assert_eq!(quantile(0.99, &[(0.01, 10)], 100), Some((0.01, true)));
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

    /// Regression (review of f0608be): daily rows of two bucket layouts were
    /// added by `le`, so a month whose `buckets` changed read nonsense (a
    /// p50 near 1 s where requests took about 10 ms).
    #[test]
    fn a_month_of_two_layouts_reads_only_the_latest_one() {
        // Days 1-10 with coarse buckets (every request at most 1 s) ...
        let mut month: Vec<LogDayCount> = (1..=10)
            .flat_map(|d| {
                vec![
                    row(d, "event_duration_bucket", "1", 1000),
                    row(d, "event_duration_bucket", "2.5", 1000),
                    row(d, "event_duration_count", "", 1000),
                ]
            })
            .collect();
        // ... then the default ones: 90% at most 10 ms.
        month.extend((11..=20).flat_map(|d| day(d, 1000, false)));
        let e = &events(&month, &[])[0];
        assert!(e.mixed_layouts);
        assert_eq!(e.samples, 20_000);
        let p50 = e.p50_seconds.unwrap();
        assert!(p50 > 0.005 && p50 <= 0.01, "{e:?}");
        assert!((e.p99_seconds.unwrap() - 0.1).abs() < 1e-9, "{e:?}");
        assert!(e.worst_day.as_ref().unwrap().date.day() >= 11, "{e:?}");
        // One layout all month: not mixed.
        assert!(!events(&day(1, 1000, false), &[])[0].mixed_layouts);
    }

    #[test]
    fn a_quantile_above_the_highest_bound_is_a_lower_limit() {
        let month = vec![
            row(1, "event_duration_bucket", "0.01", 90),
            row(1, "event_duration_bucket", "0.1", 95),
            row(1, "event_duration_count", "", 100),
        ];
        let e = &events(&month, &[])[0];
        assert_eq!((e.p99_seconds, e.p99_at_least), (Some(0.1), true));
        assert!(!e.p50_at_least);
        assert!(e.worst_day.as_ref().unwrap().p99_at_least);
    }
}
