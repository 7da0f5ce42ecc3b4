//! Markdown and HTML renderings of an [`AuditReport`].
//!
//! Both are written from one document model ([`document`]): a list of
//! headings, paragraphs, lists and tables of plain text. Each renderer only
//! escapes and lays out, so the two formats carry the same sentences and the
//! same figures. Charts (inline SVG) appear only in HTML; their numbers are
//! in the JSON `by_day` arrays and, for log sources, in the daily tables.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};

use crate::checks::CHECKS;

use super::{canonical_section, plural, AuditReport, DuplicateSample, LogReport, OptionalMissing, Status, TargetReport, Trend};

/// One block of the report.
pub(super) enum Block {
    /// The report's title.
    Title(String),
    /// A section: a target or a log source.
    Heading(String),
    /// A subsection.
    Sub(String),
    /// A paragraph.
    Para(String),
    /// A paragraph that must stand out (the headline of the verdict).
    Strong(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table; `marks` names a column holding ✓/✗/? for colouring in HTML.
    Table { head: Vec<String>, rows: Vec<Vec<String>>, marks: Option<usize> },
    /// A daily bar chart (HTML only).
    Chart(Chart),
}

/// Daily bars of one or two series.
pub(super) struct Chart {
    /// Caption.
    pub(super) title: String,
    /// The days on the x axis.
    pub(super) days: Vec<NaiveDate>,
    /// (legend, CSS class, value per day; `None` = no data that day).
    pub(super) series: Vec<(String, &'static str, Vec<Option<u64>>)>,
}

/// `2026-10-03 12:00 UTC`.
pub(super) fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`when`], or a dash.
pub(super) fn when_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_else(|| "-".to_string())
}

/// `3d 4h`, `2h 10m`, `5m 30s`, `45s`.
fn length(seconds: i64) -> String {
    let (d, h, m, s) = (seconds / 86400, seconds % 86400 / 3600, seconds % 3600 / 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub(super) fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// A JSON value as a person reads it: strings without quotes.
pub(super) fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn ids_text(ids: &[serde_json::Value]) -> String {
    ids.iter().map(value_text).collect::<Vec<_>>().join(", ")
}

pub(super) fn headline(r: &AuditReport) -> String {
    match r.verdict.holds {
        Some(true) => format!("{} The uniqueness invariant held in {}.", Status::Pass.mark(), r.month),
        Some(false) => format!("{} The uniqueness invariant did not hold in {}.", Status::Fail.mark(), r.month),
        None => format!("{} No history to tell whether the uniqueness invariant held in {}.", Status::NoData.mark(), r.month),
    }
}

pub(super) fn document(r: &AuditReport) -> Vec<Block> {
    let mut doc = vec![Block::Title(format!("Uniqueness audit for {}", r.month))];
    doc.push(Block::Para(format!(
        "Period: {} to {} (calendar month, UTC). Generated {} by uniqwatch {}.",
        when(r.month.start()),
        when(r.month.end()),
        when(r.generated_at),
        r.uniqwatch_version
    )));
    if r.period.end < r.month.end() {
        doc.push(Block::Para(format!(
            "The month was not over when this report was generated: it covers {} to {}.",
            when(r.period.start),
            when(r.period.end)
        )));
    }
    doc.push(Block::Heading("Verdict".into()));
    doc.push(Block::Strong(headline(r)));
    if !r.has_history {
        let span = match &r.history_span {
            Some(s) => format!("The history store holds data from {} to {}.", when(s.start), when(s.end)),
            None => "The history store is empty.".to_string(),
        };
        doc.push(Block::Para(format!(
            "No history was recorded for {}: uniqwatch was not running then, or its history does not reach back that far. {span}",
            r.month
        )));
    }
    if !r.verdict.items.is_empty() {
        doc.push(Block::Table {
            head: vec!["".into(), "Subject".into(), "Question".into(), "Figure".into()],
            rows: r
                .verdict
                .items
                .iter()
                .map(|i| vec![i.status.mark().into(), i.subject.clone(), i.question.clone(), i.figure.clone()])
                .collect(),
            marks: Some(0),
        });
    }
    for t in &r.targets {
        target_section(&mut doc, r, t);
    }
    for (name, l) in &r.logs {
        log_section(&mut doc, r, name, l);
    }
    doc.push(Block::Para(
        "Key values and document ids appear in this report for the people reading it; uniqwatch never exports them as metric labels.".into(),
    ));
    doc
}

fn target_section(doc: &mut Vec<Block>, r: &AuditReport, t: &TargetReport) {
    let place = match (&t.database, &t.collection, &t.key) {
        (Some(db), Some(coll), Some(key)) => format!("{db}.{coll}, key {key}"),
        _ => "no longer configured".to_string(),
    };
    doc.push(Block::Heading(format!("Target {} ({place})", t.name)));
    doc.push(Block::Para(if t.now.checked {
        "\"Now\" figures come from a check made when this report was generated.".to_string()
    } else {
        format!(
            "\"Now\" could not be checked when this report was generated ({}): every \"now\" figure below is missing.",
            t.now.reason.as_deref().unwrap_or("unknown reason")
        )
    }));
    if t.checks.runs == 0 {
        doc.push(Block::Para(format!("No check of this target ran in {}.", r.month)));
        return;
    }

    let i = &t.index;
    doc.push(Block::Sub("Unique index".into()));
    let mut items = vec![
        format!("Successful index runs: {}", i.runs),
        format!(
            "Runs that found it missing or wrong: {} (of which wrong options: {}; still being built: {})",
            i.missing_runs, i.wrong_runs, i.building_runs
        ),
    ];
    if i.unknown_build_runs > 0 {
        items.push(format!(
            "Runs where the server could not say whether its build had finished (duplicates were scanned): {}",
            i.unknown_build_runs
        ));
    }
    if i.missing_runs > 0 {
        items.push(format!("First seen missing: {}", when_opt(i.first_missing)));
        items.push(format!("Last seen missing: {}", when_opt(i.last_missing)));
    }
    items.push(format!(
        "Now: {}",
        match (i.present_now, i.building_now) {
            (Some(true), _) => "present",
            (Some(false), Some(true)) => "still being built (enforces nothing yet)",
            (Some(false), _) => "missing",
            (None, _) => "not checked",
        }
    ));
    doc.push(Block::List(items));

    let d = &t.duplicates;
    doc.push(Block::Sub("Duplicates".into()));
    let mut items = vec![
        format!("Most surplus documents in one run: {}", opt(d.max_documents)),
        format!("Most duplicated keys in one run: {}", opt(d.max_keys)),
        format!("Runs that found duplicates: {} of {}", d.runs_with_duplicates, d.runs),
    ];
    if d.runs_with_duplicates > 0 {
        items.push(format!("First seen: {}; last seen: {}", when_opt(d.first_seen), when_opt(d.last_seen)));
    }
    items.push(match (d.current.documents, d.current.keys) {
        (Some(docs), Some(keys)) => {
            format!("Now: {} on {}", plural(docs, "surplus document"), plural(keys, "key"))
        }
        _ => "Now: not checked".to_string(),
    });
    doc.push(Block::List(items));
    let by_day: std::collections::HashMap<NaiveDate, u64> =
        d.by_day.iter().map(|x| (x.date, x.documents)).collect();
    let days: Vec<NaiveDate> = r.month.days().collect();
    doc.push(Block::Chart(Chart {
        title: format!("{}: most surplus documents per day", t.name),
        series: vec![("surplus documents".into(), "dup", days.iter().map(|day| by_day.get(day).copied()).collect())],
        days,
    }));
    if !d.offending_keys.is_empty() {
        let shown = if (d.offending_keys.len() as u64) < d.offending_keys_total {
            format!(" (showing {} of {})", d.offending_keys.len(), d.offending_keys_total)
        } else {
            String::new()
        };
        doc.push(Block::Para(format!(
            "Offending keys named by the runs' samples{shown}, most documents first:"
        )));
        doc.push(Block::Table {
            head: ["Key", "Most documents", "Document ids", "Runs", "First seen", "Last seen"].map(String::from).to_vec(),
            rows: d
                .offending_keys
                .iter()
                .map(|k| {
                    vec![
                        value_text(&k.key),
                        k.count.to_string(),
                        ids_text(&k.ids),
                        k.runs.to_string(),
                        when(k.first_seen),
                        when(k.last_seen),
                    ]
                })
                .collect(),
            marks: None,
        });
    }
    if !d.current.sample.is_empty() {
        doc.push(Block::Para("Offending keys now:".into()));
        doc.push(sample_table(&d.current.sample));
    }

    let m = &t.missing;
    doc.push(Block::Sub("Documents without a key".into()));
    let row = |label: String, c: OptionalMissing, total: Option<u64>| {
        vec![label, opt(c.absent), opt(c.null), opt(c.empty), opt(c.array), opt(total)]
    };
    let current_total = match (m.current.absent, m.current.null, m.current.empty, m.current.array) {
        (Some(a), Some(n), Some(e), Some(r)) => Some(a + n + e + r),
        _ => None,
    };
    let mut rows = vec![row("Most in one run".into(), m.max, m.max_total), row("Now".into(), m.current, current_total)];
    for (label, p) in [("First run", &m.first), ("Last run", &m.last)] {
        if let Some(p) = p {
            rows.push(row(
                format!("{label} ({})", when(p.at)),
                OptionalMissing { absent: Some(p.absent), null: Some(p.null), empty: Some(p.empty), array: Some(p.array) },
                Some(p.total),
            ));
        }
    }
    doc.push(Block::Table {
        head: ["", "absent", "null", "empty", "array", "total"].map(String::from).to_vec(),
        rows,
        marks: None,
    });
    doc.push(Block::Para(match (m.trend, &m.first, &m.last) {
        (Trend::Unknown, _, _) | (_, None, _) | (_, _, None) => "Trend over the month: unknown (no successful run).".to_string(),
        (trend, Some(first), Some(last)) => format!(
            "Trend over the month: {} (from {} to {} documents without a key).",
            match trend {
                Trend::Rising => "rising",
                Trend::Falling => "falling",
                _ => "steady",
            },
            first.total,
            last.total
        ),
    }));

    if let Some(c) = &t.canonical {
        canonical_section::section(doc, r, &t.name, c);
    }

    let c = &t.checks;
    doc.push(Block::Sub("Monitor reliability".into()));
    let reasons = |by: &std::collections::BTreeMap<String, u64>| {
        if by.is_empty() {
            "none".to_string()
        } else {
            by.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        }
    };
    let gap = |g: &Option<super::GapReport>| match g {
        Some(g) => format!("{} ({} to {})", length(g.seconds), when(g.from), when(g.to)),
        None => "none".to_string(),
    };
    doc.push(Block::List(vec![
        format!("Check runs: {}, failed: {}", c.runs, c.failed),
        format!("Failures by reason: {}", reasons(&c.failures_by_reason)),
        match &c.longest_gap {
            Some(g) => format!("Longest gap without a successful run: {}, check {}", gap(&c.longest_gap), g.check),
            None => "Longest gap without a successful run: none".to_string(),
        },
        format!("Not yet monitored: {}", not_monitored(&c.not_yet_monitored)),
        format!("First run: {}; last run: {}", when_opt(c.first_run), when_opt(c.last_run)),
    ]));
    doc.push(Block::Table {
        head: ["Check", "Runs", "Failed", "Failures by reason", "Longest gap without success", "Not yet monitored"]
            .map(String::from)
            .to_vec(),
        rows: CHECKS
            .iter()
            .filter_map(|check| c.by_check.get(check.as_str()).map(|k| (check.as_str(), k)))
            .map(|(name, k)| {
                vec![
                    name.to_string(),
                    k.runs.to_string(),
                    k.failed.to_string(),
                    reasons(&k.failures_by_reason),
                    gap(&k.longest_gap),
                    not_monitored(&k.not_yet_monitored),
                ]
            })
            .collect(),
        marks: None,
    });
}

/// The start of the month before the first run, told apart from gaps.
fn not_monitored(n: &Option<super::NotMonitored>) -> String {
    match n {
        Some(n) => format!("{} ({} to {}, before the first run: not counted as a gap)", length(n.seconds), when(n.from), when(n.to)),
        None => "none (monitored from the start of the month)".to_string(),
    }
}

fn sample_table(sample: &[DuplicateSample]) -> Block {
    Block::Table {
        head: ["Key", "Documents", "Document ids"].map(String::from).to_vec(),
        rows: sample.iter().map(|s| vec![value_text(&s.key), s.count.to_string(), ids_text(&s.ids)]).collect(),
        marks: None,
    }
}

fn log_section(doc: &mut Vec<Block>, r: &AuditReport, name: &str, l: &LogReport) {
    let suffix = if l.configured { "" } else { " (no longer configured)" };
    doc.push(Block::Heading(format!("Log source {name}{suffix}")));
    if l.days_watched == 0 {
        doc.push(Block::Para(format!("The source was not followed in {}.", r.month)));
        return;
    }
    let mut items = vec![
        format!("Duplicate-key errors: {}", l.duplicate_key_errors),
        if l.tracks_recoveries {
            format!("Recoveries: {}", l.recoveries)
        } else {
            "Recoveries: not counted (the source has no recovery markers)".to_string()
        },
        if l.tracks_recoveries {
            format!("Not recovered: {}", l.unrecovered)
        } else {
            "Not recovered: not applicable".to_string()
        },
        match &l.worst_day {
            Some(w) => format!("Worst day: {} ({})", w.date, plural(w.duplicate_key_errors, "duplicate-key error")),
            None => "Worst day: none (no duplicate-key errors)".to_string(),
        },
    ];
    items.push(match (&l.request_event, l.requests, l.error_ratio) {
        (Some(event), Some(requests), Some(ratio)) => format!(
            "Error ratio: {} errors / {requests} requests (event {event}) = {:.4}%",
            l.duplicate_key_errors,
            ratio * 100.0
        ),
        (Some(event), _, _) => format!("Error ratio: unknown, no request counted by event {event}"),
        _ => "Error ratio: no request event configured".to_string(),
    });
    items.push(format!("Days followed: {} of {}", l.days_watched, l.by_day.len()));
    items.push(format!("Lines read: {}", l.lines));
    doc.push(Block::List(items));
    let days: Vec<NaiveDate> = l.by_day.iter().map(|d| d.date).collect();
    let watched = |f: fn(&super::LogDayReport) -> u64| l.by_day.iter().map(|d| d.watched.then(|| f(d))).collect();
    doc.push(Block::Chart(Chart {
        title: format!("{name}: duplicate-key errors and recoveries per day"),
        days,
        series: vec![
            ("duplicate-key errors".into(), "err", watched(|d| d.duplicate_key_errors)),
            ("recoveries".into(), "rec", watched(|d| d.recoveries)),
        ],
    }));
    let with_requests = l.request_event.is_some();
    let mut head: Vec<String> = ["Date", "Duplicate-key errors", "Recoveries"].map(String::from).to_vec();
    if with_requests {
        head.push("Requests".into());
    }
    doc.push(Block::Table {
        head,
        rows: l
            .by_day
            .iter()
            .map(|d| {
                let mut row = if d.watched {
                    vec![d.date.to_string(), d.duplicate_key_errors.to_string(), d.recoveries.to_string()]
                } else {
                    vec![d.date.to_string(), "not followed".into(), "-".into()]
                };
                if with_requests {
                    row.push(if d.watched { opt(d.requests) } else { "-".into() });
                }
                row
            })
            .collect(),
        marks: None,
    });
    if !l.latency.is_empty() {
        doc.push(Block::Table {
            head: ["Event", "Requests", "p50", "p99", "p50 previous month", "p99 previous month", "p99 change", "Worst day (p99)", "Unparsed lines"]
                .map(String::from)
                .to_vec(),
            rows: l.latency.iter().map(latency_row).collect(),
            marks: None,
        });
        let mixed: Vec<&str> = l.latency.iter().filter(|e| e.mixed_layouts).map(|e| e.event.as_str()).collect();
        if !mixed.is_empty() {
            doc.push(Block::Para(format!(
                "The buckets of {} changed this month: their percentiles and worst day come from the days counted with the latest buckets only (counts of different bounds cannot be added); ≥ marks a percentile above the highest bound.",
                mixed.join(", ")
            )));
        }
    }
    if !l.by_index.is_empty() {
        doc.push(Block::Table {
            head: ["Namespace", "Index", "Duplicate-key errors"].map(String::from).to_vec(),
            rows: l
                .by_index
                .iter()
                .map(|i| vec![i.namespace.clone(), i.index.clone(), i.duplicate_key_errors.to_string()])
                .collect(),
            marks: None,
        });
    }
}

/// One duration event's row of the response-time table.
fn latency_row(e: &super::latency::EventLatency) -> Vec<String> {
    use super::latency::show_seconds;
    let seconds = |s: Option<f64>, at_least: bool| {
        s.map_or_else(|| "-".to_string(), |s| if at_least { format!("≥ {}", show_seconds(s)) } else { show_seconds(s) })
    };
    vec![
        if e.mixed_layouts { format!("{} (buckets changed)", e.event) } else { e.event.clone() },
        e.samples.to_string(),
        seconds(e.p50_seconds, e.p50_at_least),
        seconds(e.p99_seconds, e.p99_at_least),
        seconds(e.previous_p50_seconds, false),
        seconds(e.previous_p99_seconds, e.previous_p99_at_least),
        e.p99_change.map_or_else(|| "-".to_string(), |c| format!("{:+.0}%", c * 100.0)),
        e.worst_day.as_ref().map_or_else(
            || "-".to_string(),
            |d| format!("{} ({}, {} requests)", d.date, seconds(Some(d.p99_seconds), d.p99_at_least), d.samples),
        ),
        e.unparsed.to_string(),
    ]
}

/// Escapes Markdown's special characters; digits, dates and times stay as they are.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn markdown(r: &AuditReport) -> String {
    let mut out = String::new();
    for block in document(r) {
        match block {
            Block::Title(t) => writeln!(out, "# {}\n", md(&t)),
            Block::Heading(t) => writeln!(out, "## {}\n", md(&t)),
            Block::Sub(t) => writeln!(out, "### {}\n", md(&t)),
            Block::Para(t) => writeln!(out, "{}\n", md(&t)),
            Block::Strong(t) => writeln!(out, "**{}**\n", md(&t)),
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", md(&item));
                }
                writeln!(out)
            }
            Block::Table { head, rows, .. } => {
                let line = |cells: &[String]| format!("| {} |", cells.iter().map(|c| md(c)).collect::<Vec<_>>().join(" | "));
                let _ = writeln!(out, "{}", line(&head));
                let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
                for row in rows {
                    let _ = writeln!(out, "{}", line(&row));
                }
                writeln!(out)
            }
            Block::Chart(_) => Ok(()),
        }
        .expect("writing to a String cannot fail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_read_naturally() {
        assert_eq!(length(45), "45s");
        assert_eq!(length(330), "5m 30s");
        assert_eq!(length(7800), "2h 10m");
        assert_eq!(length(3 * 86400 + 4 * 3600 + 59), "3d 4h");
    }

    #[test]
    fn markdown_escapes_user_text_but_not_figures() {
        assert_eq!(md("a|b_c *x* <y>"), "a\\|b\\_c \\*x\\* \\<y\\>");
        assert_eq!(md("2026-10-03 12:00 UTC: 42"), "2026-10-03 12:00 UTC: 42");
    }
}
