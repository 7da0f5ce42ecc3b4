//! The monthly audit: did the uniqueness invariant hold last month, and what
//! happened when it did not?
//!
//! [`build_report`] reads one calendar month (UTC) of the history
//! [`store`](crate::store) and combines it with the figures of a fresh check
//! made at report time (passed in as [`CurrentState`], so this module never
//! talks to MongoDB). The result, an [`AuditReport`], renders as JSON (the
//! contract of issue 5, with more fields), Markdown for a ticket or a wiki,
//! and self-contained HTML with inline SVG charts. [`write_report_files`]
//! writes all three for the scheduled job, never overwriting a report.
//!
//! Every section comes from the store; the only input from "now" is the
//! current state, and the report says plainly when it could not be checked.

mod render;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::metrics::Metrics;
use crate::store::{CheckKind, Store, StoreError};

/// How many offending keys a report lists per target; the rest are counted.
pub const MAX_OFFENDING_KEYS: usize = 100;
/// How many document ids a report lists per offending key.
pub const MAX_IDS_PER_KEY: usize = 50;
/// How many suffixed names (`….1.md`, `….2.md`, …) are tried before giving up.
const MAX_REPORT_SUFFIX: u32 = 999;

/// A problem building or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The history store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A report file could not be written.
    #[error("cannot write audit report {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every suffixed name is taken already.
    #[error("audit reports for {month} already exist in {dir} under every name up to suffix .{MAX_REPORT_SUFFIX}; move old ones away")]
    NoFreeName { dir: PathBuf, month: Month },
}

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

    /// The year.
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month of the year, 1 to 12.
    pub fn month(&self) -> u32 {
        self.month
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

/// A configured target, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// `[[target]] name`.
    pub name: String,
    /// Database holding the collection.
    pub database: String,
    /// The collection.
    pub collection: String,
    /// The key that must be unique.
    pub key: String,
}

/// A configured log source, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSourceInfo {
    /// `[[logs]] name`.
    pub name: String,
    /// The `[[logs.events]]` whose count stands for requests, for the error
    /// ratio; none means the report gives no ratio.
    pub request_event: Option<String>,
    /// The source has recovery markers. Without them (mongod's log) errors
    /// are reported but "every error recovered?" is not asked.
    #[serde(default = "yes")]
    pub tracks_recoveries: bool,
}

fn yes() -> bool {
    true
}

/// What a fresh check at report time found for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CurrentState {
    /// Every check ran.
    Reachable {
        /// Whether the expected unique index exists.
        index_present: bool,
        /// Duplicates now.
        duplicates: CurrentDuplicates,
        /// Documents without a key now.
        missing: MissingCounts,
    },
    /// The check could not run; `reason` says why (timeout, unreachable, …).
    Unreachable { reason: String },
}

/// Duplicates found by the fresh check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CurrentDuplicates {
    /// Surplus documents: Σ(count − 1).
    pub documents: u64,
    /// Key values held by more than one document.
    pub keys: u64,
    /// Offending keys with their counts and document ids (bounded).
    pub sample: Vec<DuplicateSample>,
}

pub use crate::checks::scan::DuplicateSample;

/// Documents without a usable key, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingCounts {
    /// The key field is absent.
    pub absent: u64,
    /// The key is null.
    pub null: u64,
    /// The key is the empty string.
    pub empty: u64,
}

impl MissingCounts {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.absent + self.null + self.empty
    }
}

/// The audit of one month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// The month covered.
    pub month: Month,
    /// When the report was built.
    pub generated_at: DateTime<Utc>,
    /// The instants covered: the month, cut at `generated_at` if it is not over.
    pub period: Period,
    /// Whether the store holds anything for the month.
    pub has_history: bool,
    /// The first and last instants the whole store holds anything for.
    pub history_span: Option<Period>,
    /// The answer first.
    pub verdict: Verdict,
    /// One section per target: configured ones first, then any the history
    /// holds for the month that are no longer configured.
    pub targets: Vec<TargetReport>,
    /// One section per log source, by name.
    pub logs: BTreeMap<String, LogReport>,
    /// The uniqwatch version that wrote the report.
    pub uniqwatch_version: String,
}

/// A stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    /// Start, included.
    pub start: DateTime<Utc>,
    /// End.
    pub end: DateTime<Utc>,
}

/// The verdict: one line per question, each with the figure behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// `true` when every answered question passed, `false` when one failed,
    /// `null` when no question could be answered from the history.
    pub holds: Option<bool>,
    /// The questions, targets first, then log sources.
    pub items: Vec<VerdictItem>,
}

/// One question of the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictItem {
    /// The target or log source it is about.
    pub subject: String,
    /// The question, in the seed's terms.
    pub question: String,
    /// The answer.
    pub status: Status,
    /// The figure behind the answer.
    pub figure: String,
}

/// The answer to a verdict question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// ✓
    Pass,
    /// ✗
    Fail,
    /// No history to answer from.
    NoData,
}

impl Status {
    /// The mark shown in Markdown and HTML.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail => "✗",
            Status::NoData => "?",
        }
    }
}

/// One target's month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetReport {
    /// `[[target]] name`.
    pub name: String,
    /// Database, when the target is still configured.
    pub database: Option<String>,
    /// Collection, when the target is still configured.
    pub collection: Option<String>,
    /// Key, when the target is still configured.
    pub key: Option<String>,
    /// Whether the target is in the current configuration.
    pub configured: bool,
    /// Whether "now" figures come from a fresh check, and why not.
    pub now: NowReport,
    /// Reliability of the monitor for this target.
    pub checks: ChecksReport,
    /// The unique index.
    pub index: IndexReport,
    /// Duplicated keys.
    pub duplicates: DuplicatesReport,
    /// Documents without a key.
    pub missing: MissingReport,
}

/// Whether the target could be checked at report time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NowReport {
    /// True when the fresh check ran.
    pub checked: bool,
    /// Why it did not.
    pub reason: Option<String>,
}

/// Check runs of the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChecksReport {
    /// Check runs recorded (one per check per target run).
    pub runs: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Failed runs by reason.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// The same per check.
    pub by_check: BTreeMap<String, CheckRuns>,
    /// First run of the month.
    pub first_run: Option<DateTime<Utc>>,
    /// Last run of the month.
    pub last_run: Option<DateTime<Utc>>,
    /// The longest stretch without a successful run of some check.
    pub longest_gap: Option<GapReport>,
}

/// Runs of one check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckRuns {
    /// Runs recorded.
    pub runs: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Failed runs by reason.
    pub failures_by_reason: BTreeMap<String, u64>,
    /// The longest stretch without a success of this check.
    pub longest_gap: Option<GapReport>,
}

/// A stretch without a successful run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GapReport {
    /// The check that did not succeed.
    pub check: String,
    /// The last success before it, or the start of the month.
    pub from: DateTime<Utc>,
    /// The next success, or the end of the period.
    pub to: DateTime<Utc>,
    /// Its length.
    pub seconds: i64,
}

/// The unique index over the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexReport {
    /// Successful index runs.
    pub runs: u64,
    /// Runs that found it missing or with the wrong options.
    pub missing_runs: u64,
    /// Of those, runs that found an index on the key with the wrong options.
    pub wrong_runs: u64,
    /// First run that found it missing or wrong.
    pub first_missing: Option<DateTime<Utc>>,
    /// Last run that found it missing or wrong.
    pub last_missing: Option<DateTime<Utc>>,
    /// Whether the fresh check found it; null when it could not run.
    pub present_now: Option<bool>,
}

/// Duplicates over the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DuplicatesReport {
    /// Successful duplicates runs.
    pub runs: u64,
    /// Runs that found at least one duplicate.
    pub runs_with_duplicates: u64,
    /// Most surplus documents any run saw; null without a successful run.
    pub max_documents: Option<u64>,
    /// Most duplicated keys any run saw; null without a successful run.
    pub max_keys: Option<u64>,
    /// First run that found duplicates.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last run that found duplicates.
    pub last_seen: Option<DateTime<Utc>>,
    /// The keys the runs' samples named, most documents first.
    pub offending_keys: Vec<OffendingKey>,
    /// How many distinct keys the samples named (the list may be cut).
    pub offending_keys_total: u64,
    /// Per day with a successful run: the most duplicates seen.
    pub by_day: Vec<DuplicatesDayReport>,
    /// The fresh check's figures; nulls when it could not run.
    pub current: CurrentDuplicatesReport,
}

/// A duplicated key seen during the month.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OffendingKey {
    /// The key value.
    pub key: serde_json::Value,
    /// The most documents seen holding it in one run.
    pub count: u64,
    /// Document ids seen holding it (bounded).
    pub ids: Vec<serde_json::Value>,
    /// Runs whose sample named it.
    pub runs: u64,
    /// First such run.
    pub first_seen: DateTime<Utc>,
    /// Last such run.
    pub last_seen: DateTime<Utc>,
}

/// The most duplicates seen on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicatesDayReport {
    /// The day.
    pub date: NaiveDate,
    /// Most surplus documents.
    pub documents: u64,
    /// Most duplicated keys.
    pub keys: u64,
}

/// Duplicates now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CurrentDuplicatesReport {
    /// Surplus documents now; null when not checked.
    pub documents: Option<u64>,
    /// Duplicated keys now; null when not checked.
    pub keys: Option<u64>,
    /// Offending keys now.
    pub sample: Vec<DuplicateSample>,
}

/// Documents without a key over the month.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MissingReport {
    /// Successful missing_keys runs.
    pub runs: u64,
    /// The most of each kind any run saw; nulls without a successful run.
    pub max: OptionalMissing,
    /// The most of all kinds together in one run.
    pub max_total: Option<u64>,
    /// The fresh check's figures; nulls when it could not run.
    pub current: OptionalMissing,
    /// The month's first successful run.
    pub first: Option<MissingPoint>,
    /// The month's last successful run.
    pub last: Option<MissingPoint>,
    /// From the first to the last run of the month: rising, falling, steady or unknown.
    pub trend: Trend,
    /// Per day with a successful run: the most seen.
    pub by_day: Vec<MissingDayReport>,
}

/// Missing-key counts that may be unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OptionalMissing {
    /// Key absent.
    pub absent: Option<u64>,
    /// Key null.
    pub null: Option<u64>,
    /// Key "".
    pub empty: Option<u64>,
}

/// Missing keys found by one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingPoint {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Key absent.
    pub absent: u64,
    /// Key null.
    pub null: u64,
    /// Key "".
    pub empty: u64,
    /// All kinds.
    pub total: u64,
}

/// The most missing keys seen on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingDayReport {
    /// The day.
    pub date: NaiveDate,
    /// Most absent.
    pub absent: u64,
    /// Most null.
    pub null: u64,
    /// Most empty.
    pub empty: u64,
    /// Most of all kinds together.
    pub total: u64,
}

/// Direction of a figure over the month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Rising,
    Falling,
    Steady,
    /// Fewer than one successful run.
    #[default]
    Unknown,
}

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

/// Builds the report for `month` from the store and the fresh check results.
///
/// Pure over its inputs: the same store contents and arguments give the
/// same report. `current` maps target names to what a check made at report
/// time found; a target missing from it counts as not checked.
pub fn build_report(
    store: &Store,
    month: Month,
    targets: &[TargetInfo],
    log_sources: &[LogSourceInfo],
    current: &BTreeMap<String, CurrentState>,
    generated_at: DateTime<Utc>,
) -> Result<AuditReport, AuditError> {
    let _snapshot = store.snapshot()?;
    let from = month.start();
    let to = month.end().min(generated_at.max(from));
    let period = Period { start: from, end: to };

    let mut target_names: Vec<(String, Option<&TargetInfo>)> =
        targets.iter().map(|t| (t.name.clone(), Some(t))).collect();
    for name in store.target_names()? {
        if !targets.iter().any(|t| t.name == name) {
            target_names.push((name, None));
        }
    }
    let mut target_reports = Vec::new();
    for (name, info) in target_names {
        let report = target_report(store, &name, info, current.get(&name), from, to)?;
        if report.configured || report.checks.runs > 0 {
            target_reports.push(report);
        }
    }

    let mut logs = BTreeMap::new();
    let mut source_names: Vec<(String, Option<&LogSourceInfo>)> =
        log_sources.iter().map(|s| (s.name.clone(), Some(s))).collect();
    for name in store.log_source_names()? {
        if !log_sources.iter().any(|s| s.name == name) {
            source_names.push((name, None));
        }
    }
    for (name, info) in source_names {
        let report = log_report(store, &name, info, month, to)?;
        if report.configured || report.days_watched > 0 {
            logs.insert(name, report);
        }
    }

    let has_history =
        target_reports.iter().any(|t| t.checks.runs > 0) || logs.values().any(|l| l.days_watched > 0);
    let history_span = store.history_span()?.map(|s| Period { start: s.first, end: s.last });
    let verdict = verdict(&target_reports, &logs);
    Ok(AuditReport {
        month,
        generated_at,
        period,
        has_history,
        history_span,
        verdict,
        targets: target_reports,
        logs,
        uniqwatch_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

fn gap_report(check: CheckKind, gap: crate::store::query::Gap) -> GapReport {
    GapReport { check: check.as_str().to_string(), from: gap.from, to: gap.to, seconds: gap.seconds() }
}

fn target_report(
    store: &Store,
    name: &str,
    info: Option<&TargetInfo>,
    current: Option<&CurrentState>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<TargetReport, AuditError> {
    let mut checks = ChecksReport::default();
    for check in CheckKind::ALL {
        let counts = store.run_counts(name, check, from, to)?;
        let gap = if counts.runs > 0 {
            store.longest_gap(name, check, from, to)?.map(|g| gap_report(check, g))
        } else {
            None
        };
        checks.runs += counts.runs;
        checks.failed += counts.failed;
        for (reason, n) in &counts.failures_by_reason {
            *checks.failures_by_reason.entry(reason.clone()).or_insert(0) += n;
        }
        checks.first_run = [checks.first_run, counts.first_run].into_iter().flatten().min();
        checks.last_run = [checks.last_run, counts.last_run].into_iter().flatten().max();
        if let Some(g) = &gap {
            if checks.longest_gap.as_ref().is_none_or(|l| g.seconds > l.seconds) {
                checks.longest_gap = Some(g.clone());
            }
        }
        checks.by_check.insert(
            check.as_str().to_string(),
            CheckRuns {
                runs: counts.runs,
                failed: counts.failed,
                failures_by_reason: counts.failures_by_reason,
                longest_gap: gap,
            },
        );
    }

    let now = match current {
        Some(CurrentState::Reachable { .. }) => NowReport { checked: true, reason: None },
        Some(CurrentState::Unreachable { reason }) => NowReport { checked: false, reason: Some(reason.clone()) },
        None => NowReport { checked: false, reason: Some("not checked at report time".to_string()) },
    };
    let reachable = match current {
        Some(CurrentState::Reachable { index_present, duplicates, missing }) => {
            Some((*index_present, duplicates, *missing))
        }
        _ => None,
    };

    let history = store.index_history(name, from, to)?;
    let index = IndexReport {
        runs: history.runs,
        missing_runs: history.missing_runs,
        wrong_runs: history.wrong_runs,
        first_missing: history.first_missing,
        last_missing: history.last_missing,
        present_now: reachable.map(|(present, _, _)| present),
    };

    let days = store.duplicates_by_day(name, from, to)?;
    let samples = store.duplicate_samples(name, from, to)?;
    let (offending_keys, offending_keys_total) = offending_keys(&samples);
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let duplicates = DuplicatesReport {
        runs,
        runs_with_duplicates: days.iter().map(|d| d.runs_with_duplicates).sum(),
        max_documents: (runs > 0).then(|| days.iter().map(|d| d.max_documents).max().unwrap_or(0)),
        max_keys: (runs > 0).then(|| days.iter().map(|d| d.max_keys).max().unwrap_or(0)),
        first_seen: days.iter().filter_map(|d| d.first_seen).min(),
        last_seen: days.iter().filter_map(|d| d.last_seen).max(),
        offending_keys,
        offending_keys_total,
        by_day: days
            .iter()
            .map(|d| DuplicatesDayReport { date: d.date, documents: d.max_documents, keys: d.max_keys })
            .collect(),
        current: match reachable {
            Some((_, d, _)) => CurrentDuplicatesReport {
                documents: Some(d.documents),
                keys: Some(d.keys),
                sample: d.sample.clone(),
            },
            None => CurrentDuplicatesReport::default(),
        },
    };

    let days = store.missing_by_day(name, from, to)?;
    let runs: u64 = days.iter().map(|d| d.runs).sum();
    let max_of = |f: fn(&crate::store::query::MissingDay) -> u64| (runs > 0).then(|| days.iter().map(f).max().unwrap_or(0));
    let point = |m: crate::store::query::MissingAt| MissingPoint {
        at: m.at,
        absent: m.absent,
        null: m.null,
        empty: m.empty,
        total: m.absent + m.null + m.empty,
    };
    let first_last = store.missing_first_last(name, from, to)?;
    let (first, last) = match first_last {
        Some((f, l)) => (Some(point(f)), Some(point(l))),
        None => (None, None),
    };
    let missing = MissingReport {
        runs,
        max: OptionalMissing { absent: max_of(|d| d.max_absent), null: max_of(|d| d.max_null), empty: max_of(|d| d.max_empty) },
        max_total: max_of(|d| d.max_total),
        current: match reachable {
            Some((_, _, m)) => OptionalMissing { absent: Some(m.absent), null: Some(m.null), empty: Some(m.empty) },
            None => OptionalMissing::default(),
        },
        trend: trend(first.as_ref().map(|p| p.total), last.as_ref().map(|p| p.total)),
        first,
        last,
        by_day: days
            .iter()
            .map(|d| MissingDayReport { date: d.date, absent: d.max_absent, null: d.max_null, empty: d.max_empty, total: d.max_total })
            .collect(),
    };

    Ok(TargetReport {
        name: name.to_string(),
        database: info.map(|t| t.database.clone()),
        collection: info.map(|t| t.collection.clone()),
        key: info.map(|t| t.key.clone()),
        configured: info.is_some(),
        now,
        checks,
        index,
        duplicates,
        missing,
    })
}

/// `1 key`, `2 keys`.
fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// Rising, falling or steady from the first to the last figure.
fn trend(first: Option<u64>, last: Option<u64>) -> Trend {
    match (first, last) {
        (Some(a), Some(b)) if b > a => Trend::Rising,
        (Some(a), Some(b)) if b < a => Trend::Falling,
        (Some(_), Some(_)) => Trend::Steady,
        _ => Trend::Unknown,
    }
}

/// Merges the distinct samples of the month into one entry per key: the
/// most documents seen, the ids seen (bounded), and when. Returns the list,
/// cut at [`MAX_OFFENDING_KEYS`], and the number of distinct keys.
fn offending_keys(samples: &[crate::store::query::SampleSeen]) -> (Vec<OffendingKey>, u64) {
    let mut by_key: HashMap<String, OffendingKey> = HashMap::new();
    for seen in samples {
        // A sample that does not parse was written by a newer or broken
        // runner; the run's counts still stand, only its keys are skipped.
        let Ok(entries) = serde_json::from_str::<Vec<DuplicateSample>>(&seen.sample) else { continue };
        for entry in entries {
            let slot = by_key.entry(entry.key.to_string()).or_insert_with(|| OffendingKey {
                key: entry.key.clone(),
                count: 0,
                ids: Vec::new(),
                runs: 0,
                first_seen: seen.first_seen,
                last_seen: seen.last_seen,
            });
            slot.count = slot.count.max(entry.count);
            slot.runs += seen.runs;
            slot.first_seen = slot.first_seen.min(seen.first_seen);
            slot.last_seen = slot.last_seen.max(seen.last_seen);
            for id in entry.ids {
                if slot.ids.len() < MAX_IDS_PER_KEY && !slot.ids.contains(&id) {
                    slot.ids.push(id);
                }
            }
        }
    }
    let total = by_key.len() as u64;
    let mut keys: Vec<OffendingKey> = by_key.into_values().collect();
    keys.sort_by(|a, b| {
        b.count.cmp(&a.count).then(a.first_seen.cmp(&b.first_seen)).then(a.key.to_string().cmp(&b.key.to_string()))
    });
    keys.truncate(MAX_OFFENDING_KEYS);
    (keys, total)
}

fn log_report(
    store: &Store,
    name: &str,
    info: Option<&LogSourceInfo>,
    month: Month,
    to: DateTime<Utc>,
) -> Result<LogReport, AuditError> {
    let request_event = info.and_then(|s| s.request_event.clone());
    let rows = store.log_days(name, month.first_day(), month.next().first_day())?;
    let mut report = LogReport {
        configured: info.is_some(),
        tracks_recoveries: info.is_none_or(|s| s.tracks_recoveries),
        request_event: request_event.clone(),
        ..Default::default()
    };
    let mut days: BTreeMap<NaiveDate, LogDayReport> = BTreeMap::new();
    let mut by_index: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut requests = 0;
    for row in &rows {
        let day = days.entry(row.date).or_insert_with(|| LogDayReport {
            date: row.date,
            duplicate_key_errors: 0,
            recoveries: 0,
            requests: request_event.as_ref().map(|_| 0),
            watched: true,
        });
        match row.counter.as_str() {
            "duplicate_key_errors" => {
                day.duplicate_key_errors += row.count;
                *by_index.entry((row.label.clone(), row.sub_label.clone())).or_insert(0) += row.count;
            }
            "recoveries" => day.recoveries += row.count,
            "event" => {
                *report.events.entry(row.label.clone()).or_insert(0) += row.count;
                if request_event.as_deref() == Some(row.label.as_str()) {
                    day.requests = Some(day.requests.unwrap_or(0) + row.count);
                    requests += row.count;
                }
            }
            "lines" => report.lines += row.count,
            _ => {}
        }
    }
    report.days_watched = days.len() as u64;
    report.duplicate_key_errors = days.values().map(|d| d.duplicate_key_errors).sum();
    report.recoveries = days.values().map(|d| d.recoveries).sum();
    if report.tracks_recoveries {
        report.unrecovered = report.duplicate_key_errors.saturating_sub(report.recoveries);
    }
    report.worst_day = days
        .values()
        .filter(|d| d.duplicate_key_errors > 0)
        // max_by_key keeps the last of equals; reverse so the earliest wins.
        .rev()
        .max_by_key(|d| d.duplicate_key_errors)
        .map(|d| WorstDay { date: d.date, duplicate_key_errors: d.duplicate_key_errors });
    report.requests = request_event.as_ref().map(|_| requests);
    report.error_ratio = report
        .requests
        .filter(|r| *r > 0)
        .map(|r| report.duplicate_key_errors as f64 / r as f64);
    report.by_index = by_index
        .into_iter()
        .map(|((namespace, index), n)| IndexErrors { namespace, index, duplicate_key_errors: n })
        .collect();
    let last_day = (to - chrono::Duration::milliseconds(1)).date_naive();
    report.by_day = month
        .days()
        .filter(|d| *d <= last_day && to > month.start())
        .map(|date| {
            days.remove(&date).unwrap_or(LogDayReport {
                date,
                duplicate_key_errors: 0,
                recoveries: 0,
                requests: None,
                watched: false,
            })
        })
        .collect();
    Ok(report)
}

fn verdict(targets: &[TargetReport], logs: &BTreeMap<String, LogReport>) -> Verdict {
    let mut items = Vec::new();
    for t in targets {
        let now_note = |value: Option<String>| match value {
            Some(v) => format!("; now: {v}"),
            None => "; now: not checked".to_string(),
        };
        let i = &t.index;
        let present_now = i.present_now.map(|p| if p { "present".to_string() } else { "missing".to_string() });
        items.push(VerdictItem {
            subject: t.name.clone(),
            question: "Unique index present throughout?".into(),
            status: if i.runs == 0 { Status::NoData } else if i.missing_runs == 0 { Status::Pass } else { Status::Fail },
            figure: if i.runs == 0 {
                format!("no successful index run this month{}", now_note(present_now))
            } else if i.missing_runs == 0 {
                format!("present in all {} index runs{}", i.runs, now_note(present_now))
            } else {
                format!(
                    "missing or wrong in {} of {} index runs, first {}, last {}{}",
                    i.missing_runs,
                    i.runs,
                    render::when_opt(i.first_missing),
                    render::when_opt(i.last_missing),
                    now_note(present_now)
                )
            },
        });
        let d = &t.duplicates;
        let dup_now = d
            .current
            .documents
            .zip(d.current.keys)
            .map(|(docs, keys)| format!("{} on {}", plural(docs, "surplus document"), plural(keys, "key")));
        items.push(VerdictItem {
            subject: t.name.clone(),
            question: "No duplicates?".into(),
            status: match d.max_documents {
                None => Status::NoData,
                Some(0) => Status::Pass,
                Some(_) => Status::Fail,
            },
            figure: match (d.max_documents, d.max_keys) {
                (Some(0), _) => format!("0 duplicates in {} runs{}", d.runs, now_note(dup_now)),
                (Some(docs), Some(keys)) => format!(
                    "up to {} on {}, in {} of {} runs{}",
                    plural(docs, "surplus document"),
                    plural(keys, "key"),
                    d.runs_with_duplicates,
                    d.runs,
                    now_note(dup_now)
                ),
                _ => format!("no successful duplicates run this month{}", now_note(dup_now)),
            },
        });
        let m = &t.missing;
        let missing_now = match (m.current.absent, m.current.null, m.current.empty) {
            (Some(a), Some(n), Some(e)) => Some(format!("{}", a + n + e)),
            _ => None,
        };
        items.push(VerdictItem {
            subject: t.name.clone(),
            question: "Every document has a key?".into(),
            status: match m.max_total {
                None => Status::NoData,
                Some(0) => Status::Pass,
                Some(_) => Status::Fail,
            },
            figure: match m.max_total {
                None => format!("no successful missing_keys run this month{}", now_note(missing_now)),
                Some(0) => format!("0 documents without a key in {} runs{}", m.runs, now_note(missing_now)),
                Some(total) => format!(
                    "up to {total} documents without a key (absent {}, null {}, empty {}){}",
                    m.max.absent.unwrap_or(0),
                    m.max.null.unwrap_or(0),
                    m.max.empty.unwrap_or(0),
                    now_note(missing_now)
                ),
            },
        });
    }
    for (name, l) in logs.iter().filter(|(_, l)| l.tracks_recoveries) {
        items.push(VerdictItem {
            subject: name.clone(),
            question: "Every duplicate-key error recovered?".into(),
            status: if l.days_watched == 0 {
                Status::NoData
            } else if l.unrecovered == 0 {
                Status::Pass
            } else {
                Status::Fail
            },
            figure: if l.days_watched == 0 {
                "the source was not followed this month".to_string()
            } else {
                format!(
                    "{} duplicate-key errors, {} recoveries, {} not recovered",
                    l.duplicate_key_errors, l.recoveries, l.unrecovered
                )
            },
        });
    }
    let holds = if items.iter().any(|i| i.status == Status::Fail) {
        Some(false)
    } else if items.iter().any(|i| i.status == Status::Pass) {
        Some(true)
    } else {
        None
    };
    Verdict { holds, items }
}

/// The formats a report renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// For a ticket or a wiki.
    Markdown,
    /// Self-contained, printable, with charts.
    Html,
    /// For machines: the contract of the audit.
    Json,
}

impl ReportFormat {
    /// Every format, in the order files are written.
    pub const ALL: [ReportFormat; 3] = [ReportFormat::Markdown, ReportFormat::Html, ReportFormat::Json];

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Html => "html",
            ReportFormat::Json => "json",
        }
    }
}

impl AuditReport {
    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises to JSON")
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        render::markdown(self)
    }

    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        render::html(self)
    }

    /// The report in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Markdown => self.to_markdown(),
            ReportFormat::Html => self.to_html(),
            ReportFormat::Json => self.to_json(),
        }
    }
}

/// Writes the report in every format into `dir` (created if missing), as
/// `uniqwatch-audit-YYYY-MM.{md,html,json}`.
///
/// An existing report is never overwritten: when any of the three names is
/// taken, all three get the first free suffix, `uniqwatch-audit-YYYY-MM.1.md`
/// and so on, so the files of one run always share a name. Each file is
/// written to a temporary file, fsynced, then linked to its name, which
/// fails rather than replaces if the name appeared meanwhile.
pub fn write_report_files(dir: &Path, report: &AuditReport) -> Result<Vec<PathBuf>, AuditError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let base = format!("uniqwatch-audit-{}", report.month);
    let bodies: Vec<(ReportFormat, String)> = ReportFormat::ALL.iter().map(|f| (*f, report.render(*f))).collect();
    'suffix: for suffix in 0..=MAX_REPORT_SUFFIX {
        let stem = if suffix == 0 { base.clone() } else { format!("{base}.{suffix}") };
        let paths: Vec<PathBuf> = ReportFormat::ALL.iter().map(|f| dir.join(format!("{stem}.{}", f.extension()))).collect();
        if paths.iter().any(|p| p.exists()) {
            continue;
        }
        let mut written = Vec::new();
        for ((_, body), path) in bodies.iter().zip(&paths) {
            match write_new_file(path, body.as_bytes()) {
                Ok(()) => written.push(path.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another writer took this name meanwhile: move every
                    // format to the next suffix so the set stays together.
                    for p in &written {
                        let _ = std::fs::remove_file(p);
                    }
                    continue 'suffix;
                }
                Err(e) => return Err(io(path)(e)),
            }
        }
        if let Ok(d) = std::fs::File::open(dir) {
            // Makes the new names durable; not every platform can sync a directory.
            let _ = d.sync_all();
        }
        return Ok(written);
    }
    Err(AuditError::NoFreeName { dir: dir.to_path_buf(), month: report.month })
}

/// Writes `bytes` to a temporary file next to `path`, fsyncs it, and links
/// it to `path`; fails with `AlreadyExists` rather than replace a file.
fn write_new_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Records a scheduled report: sets `uniqwatch_audit_last_report_timestamp_seconds`
/// and logs where the files went.
pub fn record_report_written(metrics: &Metrics, report: &AuditReport, paths: &[PathBuf]) {
    metrics
        .audit_last_report_timestamp_seconds
        .with_label_values::<&str>(&[])
        .set(report.generated_at.timestamp_millis() as f64 / 1000.0);
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    tracing::info!(month = %report.month, holds = ?report.verdict.holds, files = ?files, "wrote the monthly audit report");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn month_parses_and_prints() {
        let m: Month = "2026-10".parse().unwrap();
        assert_eq!((m.year(), m.month()), (2026, 10));
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

    #[test]
    fn trend_compares_first_and_last() {
        assert_eq!(trend(Some(1), Some(3)), Trend::Rising);
        assert_eq!(trend(Some(3), Some(1)), Trend::Falling);
        assert_eq!(trend(Some(2), Some(2)), Trend::Steady);
        assert_eq!(trend(None, None), Trend::Unknown);
    }

    #[test]
    fn offending_keys_merge_samples() {
        use crate::store::query::SampleSeen;
        let s = |json: &str, runs, d1, d2| SampleSeen {
            sample: json.to_string(),
            runs,
            first_seen: utc(2026, 10, d1, 0),
            last_seen: utc(2026, 10, d2, 0),
        };
        let (keys, total) = offending_keys(&[
            s(r#"[{"key":"a_b","count":2,"ids":[1,2]}]"#, 3, 2, 4),
            s(r#"[{"key":"a_b","count":3,"ids":[1,2,3]},{"key":"c_d","count":2,"ids":[7,8]}]"#, 2, 5, 6),
            s("not json", 1, 7, 7),
        ]);
        assert_eq!(total, 2);
        assert_eq!(keys[0].key, serde_json::json!("a_b"));
        assert_eq!(keys[0].count, 3);
        assert_eq!(keys[0].ids.len(), 3);
        assert_eq!(keys[0].runs, 5);
        assert_eq!(keys[0].first_seen, utc(2026, 10, 2, 0));
        assert_eq!(keys[0].last_seen, utc(2026, 10, 6, 0));
        assert_eq!(keys[1].key, serde_json::json!("c_d"));
    }

    fn report_with_month(month: &str) -> AuditReport {
        let store = Store::open_in_memory().unwrap();
        let month: Month = month.parse().unwrap();
        build_report(&store, month, &[], &[], &BTreeMap::new(), month.end() + chrono::Duration::hours(6)).unwrap()
    }

    #[test]
    fn report_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let report = report_with_month("2026-10");
        let first = write_report_files(dir.path(), &report).unwrap();
        let names: Vec<String> = first.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["uniqwatch-audit-2026-10.md", "uniqwatch-audit-2026-10.html", "uniqwatch-audit-2026-10.json"]);
        std::fs::write(&first[0], "edited by hand").unwrap();
        let second = write_report_files(dir.path(), &report).unwrap();
        assert!(second[0].ends_with("uniqwatch-audit-2026-10.1.md"), "{:?}", second);
        assert!(second[2].ends_with("uniqwatch-audit-2026-10.1.json"), "{:?}", second);
        assert_eq!(std::fs::read_to_string(&first[0]).unwrap(), "edited by hand");
        // A lone leftover of one format moves the whole set to the next suffix.
        std::fs::write(dir.path().join("uniqwatch-audit-2026-10.2.html"), "x").unwrap();
        let third = write_report_files(dir.path(), &report).unwrap();
        assert!(third[0].ends_with("uniqwatch-audit-2026-10.3.md"), "{:?}", third);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
