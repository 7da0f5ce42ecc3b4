//! The monthly audit: did the uniqueness invariant hold last month, and what
//! happened when it did not?
//!
//! - This file is the report model: [`AuditReport`] and its sections, the
//!   inputs a report is built from ([`TargetInfo`], [`LogSourceInfo`],
//!   [`CurrentState`]), and the formats it renders to.
//! - [`month`] holds [`Month`], the calendar month (UTC) a report covers.
//! - [`mod@build`] makes a report: [`build_report`] reads one month of the
//!   history [`store`](crate::store) and combines it with the figures of a
//!   fresh check made at report time (passed in as [`CurrentState`], so the
//!   building itself never talks to MongoDB); [`fn@build`] makes
//!   that fresh check and reads the store off the runtime's threads.
//! - `canonical` is the canonical checks' part of the model and how it is
//!   read (`canonical_section` renders it); `log_report` a log source's.
//! - [`latency`] gives each duration event's p50/p99, their change
//!   against the previous month and the worst day.
//! - `verdict` turns the sections into the verdict's questions.
//! - `render` writes Markdown for a ticket or a wiki and self-contained
//!   HTML with inline SVG charts; JSON (the contract of issue 5, with more
//!   fields) is the model serialised.
//! - [`files`] writes all three for the scheduled job, never overwriting a
//!   report, and is that job ([`write_scheduled_report`]).
//!
//! Every section comes from the store; the only input from "now" is the
//! current state, and the report says plainly when it could not be checked.

pub mod build;
mod canonical;
mod canonical_section;
pub mod files;
pub mod latency;
mod log_report;
pub mod month;
mod page;
mod render;
mod verdict;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

pub use build::{build, build_report, current_state, report_subjects};
pub use canonical::{
    CanonicalDuplicatesDayReport, CanonicalDuplicatesReport, CanonicalReport, CurrentCanonical, CurrentCanonicalDuplicates,
    CurrentCanonicalDuplicatesReport, CurrentKeyConsistency, CurrentKeyConsistencyReport, KeyConsistencyDayReport,
    KeyConsistencyReport, OffendingDocument, OffendingValue, OptionalKinds,
};
pub use files::{record_report_written, write_report_files, write_scheduled_report};
pub use log_report::{IndexErrors, LogDayReport, LogReport, WorstDay};
pub use month::{Month, MonthParseError};

/// How many offending keys a report lists per target; the rest are counted.
pub const MAX_OFFENDING_KEYS: usize = 100;
/// How many document ids a report lists per offending key.
pub const MAX_IDS_PER_KEY: usize = 50;

/// Adds the values of `from` that `into` does not hold yet, keeping at most
/// [`MAX_IDS_PER_KEY`]: how a month's samples merge their ids (and keys).
fn push_bounded(into: &mut Vec<serde_json::Value>, from: &[serde_json::Value]) {
    for v in from {
        if into.len() < MAX_IDS_PER_KEY && !into.contains(v) {
            into.push(v.clone());
        }
    }
}
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
        /// Whether that index is still being built (then not present).
        #[serde(default)]
        index_building: bool,
        /// Duplicates now.
        duplicates: CurrentDuplicates,
        /// Documents without a key now.
        missing: MissingCounts,
        /// The canonical checks now; none for a target without
        /// `[target.canonical]` (and in what older versions wrote).
        #[serde(default)]
        canonical: Option<CurrentCanonical>,
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
    /// The key is an array (a scalar key is expected). Absent from what
    /// older versions wrote: zero then.
    #[serde(default)]
    pub array: u64,
}

impl MissingCounts {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.absent + self.null + self.empty + self.array
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
    /// The canonical checks; absent for a target with no canonical run in
    /// the month and no canonical figures now (no `[target.canonical]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<CanonicalReport>,
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
    /// The longest stretch without a successful run of some check (the
    /// time before the target was first checked is not one).
    pub longest_gap: Option<GapReport>,
    /// The start of the month before the store's first run of this target,
    /// when it began later: nothing was watched yet, so it is no gap.
    pub not_yet_monitored: Option<NotMonitored>,
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
    /// The longest stretch without a success of this check, counted from
    /// its first run when that came after the start of the month.
    pub longest_gap: Option<GapReport>,
    /// The start of the month before the store's first run of this check.
    pub not_yet_monitored: Option<NotMonitored>,
}

/// The start of a month before uniqwatch first ran a check (of a target, or
/// one check): not a gap in monitoring, since there was none yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotMonitored {
    /// The start of the month.
    pub from: DateTime<Utc>,
    /// The first run the store holds.
    pub to: DateTime<Utc>,
    /// Its length.
    pub seconds: i64,
}

impl NotMonitored {
    /// The stretch from `month_start` to `first_run`, if the first run came later.
    pub fn before(month_start: DateTime<Utc>, first_run: Option<DateTime<Utc>>) -> Option<Self> {
        let to = first_run.filter(|t| *t > month_start)?;
        Some(NotMonitored { from: month_start, to, seconds: (to - month_start).num_seconds() })
    }
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
    /// Of the missing runs, those that found it still being built (listed,
    /// enforcing nothing yet).
    pub building_runs: u64,
    /// Runs where the server could not say whether its build had finished
    /// (duplicates were counted by a scan then).
    pub unknown_build_runs: u64,
    /// Whether the fresh check found it; null when it could not run.
    pub present_now: Option<bool>,
    /// Whether the fresh check found it still being built; null when it
    /// could not run or found no such index.
    pub building_now: Option<bool>,
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
    /// Key an array.
    pub array: Option<u64>,
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
    /// Key an array.
    pub array: u64,
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
    /// Most arrays.
    pub array: u64,
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
        page::html(self)
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

/// `1 key`, `2 keys`.
fn plural(n: u64, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
