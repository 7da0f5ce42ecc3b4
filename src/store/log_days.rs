//! Daily log totals: the tailer's cumulative counts, kept per UTC day.
//!
//! Each series (one counter of one log source, with its labels) has one row
//! per day holding the cumulative total at the day's start and at its last
//! write, so a day's count is an exact difference of totals the tailer
//! persisted: a restart that republishes the same totals adds nothing, and
//! the latest stored total equals the tailer's. This file writes those rows
//! ([`Store::record_log_totals`], [`Store::record_log_baseline`]) and reads
//! them back per day for the audit ([`Store::log_days`]).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

use super::query::count;
use super::{Store, StoreError};
use crate::logs::LogTotals;

/// One counter of one log source, with its labels, as stored per day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    /// `[[logs]] name`.
    source: String,
    /// duplicate_key_errors, recoveries, event, lines, bytes, or for a
    /// duration event event_duration_bucket, event_duration_count,
    /// event_duration_sum_nanos and event_unparsed.
    counter: &'static str,
    /// Namespace for errors, event name for events, else empty.
    label: String,
    /// Index for errors, the bucket's upper bound in seconds (`le`, as
    /// Prometheus writes it: `0.005`, `2.5`) for duration buckets, else empty.
    sub_label: String,
}

/// Flattens the tailer's totals into one cumulative value per series.
/// Entries repeating a (namespace, index) pair are added together.
fn log_series(totals: &LogTotals) -> BTreeMap<SeriesKey, i64> {
    let mut out = BTreeMap::new();
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    for (source, t) in &totals.sources {
        let key = |counter, label: &str, sub_label: &str| SeriesKey {
            source: source.clone(),
            counter,
            label: label.to_string(),
            sub_label: sub_label.to_string(),
        };
        for e in &t.duplicate_key_errors {
            *out.entry(key("duplicate_key_errors", &e.namespace, &e.index)).or_insert(0i64) +=
                clamp(e.count);
        }
        out.insert(key("recoveries", "", ""), clamp(t.recoveries));
        for (event, n) in &t.events {
            out.insert(key("event", event, ""), clamp(*n));
        }
        // Summed over status classes: the audit's percentiles are per event.
        for (event, d) in &t.durations {
            let mut cumulative = vec![0u64; d.bounds_nanos.len()];
            let (mut count, mut sum) = (0u64, 0u64);
            for h in d.by_status_class.values() {
                for (total, n) in cumulative.iter_mut().zip(h.cumulative(&d.bounds_nanos)) {
                    *total += n;
                }
                count += h.count;
                sum = sum.saturating_add(h.sum_nanos);
            }
            for (bound, n) in d.bounds_nanos.iter().zip(cumulative) {
                out.insert(key("event_duration_bucket", event, &le_text(*bound)), clamp(n));
            }
            out.insert(key("event_duration_count", event, ""), clamp(count));
            out.insert(key("event_duration_sum_nanos", event, ""), clamp(sum));
            out.insert(key("event_unparsed", event, ""), clamp(d.unparsed));
        }
        out.insert(key("lines", "", ""), clamp(t.lines));
        out.insert(key("bytes", "", ""), clamp(t.bytes));
    }
    out
}

/// A bucket bound in nanoseconds as the `le` Prometheus shows (`0.005`, `2.5`, `1`).
pub fn le_text(nanos: u64) -> String {
    format!("{}", nanos as f64 / 1e9)
}

/// A series' row for one day: cumulative totals at the day's start and at
/// its last write, and what was counted before a reset of the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DayRow {
    day: String,
    start_value: i64,
    end_value: i64,
    carried: i64,
}

/// What to write for a series that now stands at `value` on `day`, given its
/// latest stored row; `None` when nothing changed.
///
/// A new day starts where the previous row ended, so a day's count
/// (`carried + end - start`) is an exact difference of cumulative totals. A
/// total lower than the stored one means the tailer's totals were reset
/// (its checkpoint was lost): what the day had counted is carried and
/// counting resumes from zero, as Prometheus treats a counter reset. A clock
/// that went back writes into the latest day rather than rewriting history.
fn next_day_row(latest: Option<&DayRow>, day: &str, value: i64) -> Option<DayRow> {
    let Some(prev) = latest else {
        return Some(DayRow { day: day.to_string(), start_value: 0, end_value: value, carried: 0 });
    };
    if prev.day.as_str() >= day {
        if value == prev.end_value {
            return None;
        }
        let mut row = prev.clone();
        if value < prev.end_value {
            row.carried += prev.end_value - prev.start_value;
            row.start_value = 0;
        }
        row.end_value = value;
        return Some(row);
    }
    let start_value = if value >= prev.end_value { prev.end_value } else { 0 };
    Some(DayRow { day: day.to_string(), start_value, end_value: value, carried: 0 })
}

/// The `YYYY-MM-DD` text a UTC day is stored as.
pub(super) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// The count of one log counter on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDayCount {
    /// The day.
    pub date: NaiveDate,
    /// duplicate_key_errors, recoveries, event, lines or bytes.
    pub counter: String,
    /// Namespace for errors, event name for events, else empty.
    pub label: String,
    /// Index for errors, else empty.
    pub sub_label: String,
    /// Lines counted that day: an exact difference of the tailer's totals.
    pub count: u64,
}

impl Store {
    /// Records the tailer's cumulative totals as of `at` into that UTC day's
    /// rows. Writes only series that changed, plus one row per series on the
    /// first write of a day (so a quiet day shows as watched with zero
    /// counts). Returns the rows written.
    pub fn record_log_totals(&mut self, at: DateTime<Utc>, totals: &LogTotals) -> Result<usize, StoreError> {
        let day = day_text(at.date_naive());
        let updated_ms = at.timestamp_millis();
        let doing = "recording log totals";
        let result = (|| {
            let tx = self.conn.transaction()?;
            let mut written = 0;
            {
                let mut latest = tx.prepare_cached(
                    "SELECT day, start_value, end_value, carried FROM log_days
                     WHERE source = ?1 AND counter = ?2 AND label = ?3 AND sub_label = ?4
                     ORDER BY day DESC LIMIT 1",
                )?;
                let mut upsert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO log_days
                       (source, counter, label, sub_label, day, start_value, end_value, carried, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for (key, value) in log_series(totals) {
                    let prev = latest
                        .query_row(params![key.source, key.counter, key.label, key.sub_label], |r| {
                            Ok(DayRow {
                                day: r.get(0)?,
                                start_value: r.get(1)?,
                                end_value: r.get(2)?,
                                carried: r.get(3)?,
                            })
                        })
                        .optional()?;
                    if let Some(row) = next_day_row(prev.as_ref(), &day, value) {
                        upsert.execute(params![
                            key.source, key.counter, key.label, key.sub_label, row.day,
                            row.start_value, row.end_value, row.carried, updated_ms,
                        ])?;
                        written += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        result.map_err(|e| self.classify(e, doing))
    }

    /// Records totals counted before history began (the tailer's checkpoint
    /// at start-up): every series the store has no row of gets one for the
    /// day of `at` that starts at its total, so those lines count on no day.
    /// Series the store already follows are left alone. Call it before the
    /// first [`Store::record_log_totals`] of a run.
    pub fn record_log_baseline(&mut self, at: DateTime<Utc>, totals: &LogTotals) -> Result<usize, StoreError> {
        let day = day_text(at.date_naive());
        let updated_ms = at.timestamp_millis();
        let result = (|| {
            let tx = self.conn.transaction()?;
            let mut written = 0;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO log_days
                       (source, counter, label, sub_label, day, start_value, end_value, carried, updated_ms)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, 0, ?7
                     WHERE NOT EXISTS (SELECT 1 FROM log_days
                                       WHERE source = ?1 AND counter = ?2 AND label = ?3 AND sub_label = ?4)",
                )?;
                for (key, value) in log_series(totals) {
                    written += insert.execute(params![
                        key.source, key.counter, key.label, key.sub_label, day, value, updated_ms
                    ])?;
                }
            }
            tx.commit()?;
            Ok(written)
        })();
        result.map_err(|e| self.classify(e, "recording log totals counted before history began"))
    }

    /// Every log source the store has daily totals for, sorted.
    pub fn log_source_names(&self) -> Result<Vec<String>, StoreError> {
        let read = || -> rusqlite::Result<Vec<String>> {
            self.conn
                .prepare_cached("SELECT DISTINCT source FROM log_days ORDER BY source")?
                .query_map([], |r| r.get(0))?
                .collect()
        };
        read().map_err(|e| self.classify(e, "listing log sources"))
    }

    /// Daily counts of one log source for the days in `[from, to)`.
    /// A day with a row was watched, even when its counts are zero.
    pub fn log_days(
        &self,
        source: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<LogDayCount>, StoreError> {
        let read = || -> rusqlite::Result<Vec<LogDayCount>> {
            self.conn
                .prepare_cached(
                    "SELECT day, counter, label, sub_label, carried + end_value - start_value
                     FROM log_days
                     WHERE source = ?1 AND day >= ?2 AND day < ?3
                     ORDER BY day, counter, label, sub_label",
                )?
                .query_map(params![source, day_text(from), day_text(to)], |r| {
                    let day: String = r.get(0)?;
                    let date = NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
                    })?;
                    Ok(LogDayCount {
                        date,
                        counter: r.get(1)?,
                        label: r.get(2)?,
                        sub_label: r.get(3)?,
                        count: count(r.get(4)?),
                    })
                })?
                .collect()
        };
        read().map_err(|e| self.classify(e, "reading daily log totals"))
    }

    /// The latest stored cumulative total of each series of a source, as
    /// (counter, label, sub_label) → total: what the tailer had persisted
    /// at the store's last write.
    #[cfg(test)]
    pub(crate) fn latest_log_totals(
        &self,
        source: &str,
    ) -> Result<BTreeMap<(String, String, String), u64>, StoreError> {
        let read = || -> rusqlite::Result<BTreeMap<(String, String, String), u64>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT counter, label, sub_label, end_value, MAX(day)
                 FROM log_days WHERE source = ?1
                 GROUP BY counter, label, sub_label",
            )?;
            let rows = stmt.query_map(params![source], |r| {
                Ok(((r.get(0)?, r.get(1)?, r.get(2)?), count(r.get(3)?)))
            })?;
            rows.collect()
        };
        read().map_err(|e| self.classify(e, "reading log totals"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{ErrorTotal, SourceTotals};
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
    }

    fn row(day: &str, start: i64, end: i64, carried: i64) -> DayRow {
        DayRow { day: day.into(), start_value: start, end_value: end, carried }
    }

    #[test]
    fn first_sight_counts_from_zero() {
        assert_eq!(next_day_row(None, "2026-10-01", 7), Some(row("2026-10-01", 0, 7, 0)));
    }

    #[test]
    fn same_day_moves_the_end_only_when_changed() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 7), None);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 9), Some(row("2026-10-01", 3, 9, 0)));
    }

    #[test]
    fn new_day_starts_where_the_last_row_ended() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-03", 7), Some(row("2026-10-03", 7, 7, 0)));
        assert_eq!(next_day_row(Some(&prev), "2026-10-03", 10), Some(row("2026-10-03", 7, 10, 0)));
    }

    #[test]
    fn reset_within_a_day_carries_what_was_counted() {
        let prev = row("2026-10-01", 3, 7, 0);
        // Counted 4 before the reset, then 2 after it.
        let next = next_day_row(Some(&prev), "2026-10-01", 2).unwrap();
        assert_eq!(next, row("2026-10-01", 0, 2, 4));
        assert_eq!(next.carried + next.end_value - next.start_value, 6);
    }

    #[test]
    fn reset_across_days_counts_from_zero() {
        let prev = row("2026-10-01", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-02", 2), Some(row("2026-10-02", 0, 2, 0)));
    }

    #[test]
    fn clock_going_back_writes_into_the_latest_day() {
        let prev = row("2026-10-02", 3, 7, 0);
        assert_eq!(next_day_row(Some(&prev), "2026-10-01", 8), Some(row("2026-10-02", 3, 8, 0)));
    }

    #[test]
    fn log_series_flattens_and_adds_repeated_labels() {
        let mut totals = LogTotals::default();
        totals.sources.insert(
            "app".into(),
            SourceTotals {
                duplicate_key_errors: vec![
                    ErrorTotal { namespace: "app.chats".into(), index: "k_1".into(), count: 2 },
                    ErrorTotal { namespace: "app.chats".into(), index: "k_1".into(), count: 3 },
                ],
                recoveries: 4,
                events: [("create".to_string(), 100)].into(),
                lines: 1000,
                bytes: 50_000,
                durations: Default::default(),
            },
        );
        let series = log_series(&totals);
        assert_eq!(series.len(), 5);
        let errors = series.iter().find(|(k, _)| k.counter == "duplicate_key_errors").unwrap();
        assert_eq!(*errors.1, 5);
        assert_eq!(errors.0.label, "app.chats");
        assert_eq!(errors.0.sub_label, "k_1");
    }

    #[test]
    fn duration_histograms_are_stored_per_day_summed_over_status_classes() {
        use crate::logs::durations::{EventDurations, Histogram};
        let histogram = |buckets: Vec<u64>, sum_nanos| Histogram { count: buckets.iter().sum(), buckets, sum_nanos };
        let totals = |ok: Vec<u64>, failed: Vec<u64>| {
            let d = EventDurations {
                bounds_nanos: vec![5_000_000, 2_500_000_000],
                unparsed: 1,
                by_status_class: [
                    ("2xx".to_string(), histogram(ok, 7_000_000)),
                    ("5xx".to_string(), histogram(failed, 3_000_000_000)),
                ]
                .into(),
                ..Default::default()
            };
            let mut t = LogTotals::default();
            t.sources.insert("app".into(), SourceTotals { durations: [("create_or_get".to_string(), d)].into(), ..Default::default() });
            t
        };
        let mut store = Store::open_in_memory().unwrap();
        store.record_log_totals(at(20, 1), &totals(vec![2, 1, 0], vec![0, 0, 1])).unwrap();
        store.record_log_totals(at(21, 1), &totals(vec![5, 1, 0], vec![0, 1, 1])).unwrap();
        let days = store.log_days("app", at(21, 0).date_naive(), at(22, 0).date_naive()).unwrap();
        let get = |counter: &str, sub: &str| {
            days.iter().find(|d| d.counter == counter && d.label == "create_or_get" && d.sub_label == sub).map(|d| d.count)
        };
        // The 21st added three 2xx lines at most 5ms and one 5xx at most 2.5s.
        assert_eq!(get("event_duration_bucket", "0.005"), Some(3), "{days:?}");
        assert_eq!(get("event_duration_bucket", "2.5"), Some(4), "{days:?}");
        assert_eq!(get("event_duration_count", ""), Some(4), "{days:?}");
        // The sums did not move in this example: the same totals, kept exactly.
        assert_eq!(get("event_duration_sum_nanos", ""), Some(0), "{days:?}");
        assert_eq!(get("event_unparsed", ""), Some(0), "{days:?}");
    }

    #[test]
    fn totals_counted_before_history_began_count_on_no_day() {
        let mut store = Store::open_in_memory().unwrap();
        let mut totals = LogTotals::default();
        totals.sources.insert("app".into(), SourceTotals { recoveries: 5, ..Default::default() });
        // A new store beside a checkpoint that already counted 5 recoveries.
        assert_eq!(store.record_log_baseline(at(20, 0), &totals).unwrap(), 3);
        totals.sources.get_mut("app").unwrap().recoveries = 7;
        store.record_log_totals(at(20, 5), &totals).unwrap();
        // A restart: the baseline leaves series the store follows alone.
        assert_eq!(store.record_log_baseline(at(20, 6), &totals).unwrap(), 0);
        let from = at(1, 0).date_naive();
        let days = store.log_days("app", from, at(30, 0).date_naive()).unwrap();
        let recoveries: u64 = days.iter().filter(|d| d.counter == "recoveries").map(|d| d.count).sum();
        assert_eq!(recoveries, 2, "{days:?}");
    }
}
