//! One log source's month in the report model: duplicate-key errors and
//! recoveries per day, per index, the worst day, the error ratio, and the
//! response time of its duration events.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

/// One log source's month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogReport {
    /// Whether the source is in the current configuration.
    pub configured: bool,
    /// Duplicate-key errors counted in the month.
    pub duplicate_key_errors: u64,
    /// Recoveries counted in the month.
    pub recoveries: u64,
    /// Errors beyond the recoveries: errors − recoveries, at least 0.
    pub unrecovered: u64,
    /// Whether the source counts recoveries at all (it has recovery markers).
    pub tracks_recoveries: bool,
    /// Days the store holds totals for (the source was being followed).
    pub days_watched: u64,
    /// Every day of the period, watched or not.
    pub by_day: Vec<LogDayReport>,
    /// Errors per (namespace, index).
    pub by_index: Vec<IndexErrors>,
    /// The day with the most errors.
    pub worst_day: Option<WorstDay>,
    /// The event counted as requests, when configured.
    pub request_event: Option<String>,
    /// Its count in the month.
    pub requests: Option<u64>,
    /// Errors per request, when both are known and requests > 0.
    pub error_ratio: Option<f64>,
    /// Every `[[logs.events]]` counter, by name.
    pub events: BTreeMap<String, u64>,
    /// Lines read in the month.
    pub lines: u64,
    /// Response time of each duration event (absent without any).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latency: Vec<super::latency::EventLatency>,
}

/// One day of a log source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogDayReport {
    /// The day.
    pub date: NaiveDate,
    /// Duplicate-key errors that day.
    pub duplicate_key_errors: u64,
    /// Recoveries that day.
    pub recoveries: u64,
    /// Requests that day, when a request event is configured.
    pub requests: Option<u64>,
    /// Whether the store holds totals for the day.
    pub watched: bool,
}

/// Errors of one (namespace, index) pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexErrors {
    /// Namespace, `db.collection`.
    pub namespace: String,
    /// Index name.
    pub index: String,
    /// Errors in the month.
    pub duplicate_key_errors: u64,
}

/// The day with the most errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstDay {
    /// The day.
    pub date: NaiveDate,
    /// Its errors.
    pub duplicate_key_errors: u64,
}
