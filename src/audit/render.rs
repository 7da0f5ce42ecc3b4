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

use super::{plural, AuditReport, DuplicateSample, LogReport, OptionalMissing, Status, TargetReport, Trend};

/// One block of the report.
enum Block {
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
struct Chart {
    /// Caption.
    title: String,
    /// The days on the x axis.
    days: Vec<NaiveDate>,
    /// (legend, CSS class, value per day; `None` = no data that day).
    series: Vec<(String, &'static str, Vec<Option<u64>>)>,
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

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// A JSON value as a person reads it: strings without quotes.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ids_text(ids: &[serde_json::Value]) -> String {
    ids.iter().map(value_text).collect::<Vec<_>>().join(", ")
}

fn headline(r: &AuditReport) -> String {
    match r.verdict.holds {
        Some(true) => format!("{} The uniqueness invariant held in {}.", Status::Pass.mark(), r.month),
        Some(false) => format!("{} The uniqueness invariant did not hold in {}.", Status::Fail.mark(), r.month),
        None => format!("{} No history to tell whether the uniqueness invariant held in {}.", Status::NoData.mark(), r.month),
    }
}

fn document(r: &AuditReport) -> Vec<Block> {
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
        format!("Runs that found it missing or wrong: {} (of which wrong options: {})", i.missing_runs, i.wrong_runs),
    ];
    if i.missing_runs > 0 {
        items.push(format!("First seen missing: {}", when_opt(i.first_missing)));
        items.push(format!("Last seen missing: {}", when_opt(i.last_missing)));
    }
    items.push(format!(
        "Now: {}",
        match i.present_now {
            Some(true) => "present",
            Some(false) => "missing",
            None => "not checked",
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
        vec![label, opt(c.absent), opt(c.null), opt(c.empty), opt(total)]
    };
    let current_total = match (m.current.absent, m.current.null, m.current.empty) {
        (Some(a), Some(n), Some(e)) => Some(a + n + e),
        _ => None,
    };
    let mut rows = vec![row("Most in one run".into(), m.max, m.max_total), row("Now".into(), m.current, current_total)];
    for (label, p) in [("First run", &m.first), ("Last run", &m.last)] {
        if let Some(p) = p {
            rows.push(row(
                format!("{label} ({})", when(p.at)),
                OptionalMissing { absent: Some(p.absent), null: Some(p.null), empty: Some(p.empty) },
                Some(p.total),
            ));
        }
    }
    doc.push(Block::Table {
        head: ["", "absent", "null", "empty", "total"].map(String::from).to_vec(),
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
        format!("First run: {}; last run: {}", when_opt(c.first_run), when_opt(c.last_run)),
    ]));
    doc.push(Block::Table {
        head: ["Check", "Runs", "Failed", "Failures by reason", "Longest gap without success"].map(String::from).to_vec(),
        rows: CHECKS
            .iter()
            .filter_map(|check| c.by_check.get(check.as_str()).map(|k| (check.as_str(), k)))
            .map(|(name, k)| vec![name.to_string(), k.runs.to_string(), k.failed.to_string(), reasons(&k.failures_by_reason), gap(&k.longest_gap)])
            .collect(),
        marks: None,
    });
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

use crate::html::escape as html_escape;

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #999; padding-bottom: .2rem; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
p.strong { font-size: 1.15rem; font-weight: 600; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #eee; }
td.mark { text-align: center; font-weight: 700; }
td.pass { color: #116611; } td.fail { color: #aa1111; } td.no_data { color: #666; }
figure { margin: .5rem 0 1rem; }
figcaption { font-size: .9rem; color: #333; }
svg { max-width: 100%; height: auto; }
svg text { font: 10px sans-serif; fill: #333; }
svg .axis { stroke: #666; stroke-width: 1; }
svg .dup, svg .err { fill: #b22222; }
svg .rec { fill: #4a7ab5; }
svg .none { fill: none; stroke: #bbb; stroke-dasharray: 2 2; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  h2, h3 { break-after: avoid; }
  table, figure { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
@page { margin: 1.5cm; }
"#;

pub(super) fn html(r: &AuditReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        html_escape(&format!("Uniqueness audit for {}", r.month))
    );
    for block in document(r) {
        match block {
            Block::Title(t) => {
                let _ = writeln!(out, "<h1>{}</h1>", html_escape(&t));
            }
            Block::Heading(t) => {
                let _ = writeln!(out, "<h2>{}</h2>", html_escape(&t));
            }
            Block::Sub(t) => {
                let _ = writeln!(out, "<h3>{}</h3>", html_escape(&t));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "<p>{}</p>", html_escape(&t));
            }
            Block::Strong(t) => {
                let _ = writeln!(out, "<p class=\"strong\">{}</p>", html_escape(&t));
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", html_escape(&item));
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows, marks } => {
                out.push_str("<table>\n<thead><tr>");
                for h in &head {
                    let _ = write!(out, "<th>{}</th>", html_escape(h));
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for (i, cell) in row.iter().enumerate() {
                        if marks == Some(i) {
                            let class = match cell.as_str() {
                                "✓" => "pass",
                                "✗" => "fail",
                                _ => "no_data",
                            };
                            let _ = write!(out, "<td class=\"mark {class}\">{}</td>", html_escape(cell));
                        } else {
                            let _ = write!(out, "<td>{}</td>", html_escape(cell));
                        }
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Chart(chart) => out.push_str(&svg_chart(&chart)),
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A bar chart: one group of bars per day, a dashed outline where a day
/// has no data, the maximum on the y axis, and a tooltip per bar.
fn svg_chart(chart: &Chart) -> String {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 22.0;
    const BOTTOM: f64 = 22.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = chart.days.len().max(1) as f64;
    let slot = plot_w / n;
    let k = chart.series.len().max(1) as f64;
    let bar = (slot * 0.8 / k).max(1.0);
    let max = chart
        .series
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">\n",
        html_escape(&chart.title)
    );
    let base = TOP + plot_h;
    let _ = writeln!(s, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\"/>", W - RIGHT);
    let _ = writeln!(s, "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{base}\"/>");
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", LEFT - 4.0, TOP + 4.0, max as u64);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{base}\" text-anchor=\"end\">0</text>", LEFT - 4.0);
    let mut legend_x = LEFT;
    for (name, class, _) in &chart.series {
        let _ = writeln!(
            s,
            "<rect class=\"{class}\" x=\"{legend_x}\" y=\"4\" width=\"10\" height=\"10\"/><text x=\"{}\" y=\"13\">{}</text>",
            legend_x + 14.0,
            html_escape(name)
        );
        legend_x += 22.0 + 6.5 * name.len() as f64;
    }
    for (d, day) in chart.days.iter().enumerate() {
        let x0 = LEFT + d as f64 * slot + slot * 0.1;
        if chart.series.iter().all(|(_, _, v)| v.get(d).copied().flatten().is_none()) {
            let _ = writeln!(
                s,
                "<rect class=\"none\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{day}: no data</title></rect>",
                base - 6.0,
                slot * 0.8,
                6.0
            );
        }
        for (i, (name, class, values)) in chart.series.iter().enumerate() {
            if let Some(v) = values.get(d).copied().flatten() {
                let h = plot_h * v as f64 / max;
                let _ = writeln!(
                    s,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\"><title>{day}: {v} {}</title></rect>",
                    x0 + i as f64 * bar,
                    base - h,
                    html_escape(name)
                );
            }
        }
        let day_of_month = day.format("%-d").to_string();
        if d == 0 || (d + 1) % 5 == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{day_of_month}</text>",
                LEFT + d as f64 * slot + slot / 2.0,
                H - 6.0
            );
        }
    }
    let _ = write!(s, "</svg>\n<figcaption>{}</figcaption>\n</figure>\n", html_escape(&chart.title));
    s
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

    #[test]
    fn html_escapes_user_text() {
        assert_eq!(html_escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
