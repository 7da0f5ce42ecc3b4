//! The canonical checks' part of a target's section, in the document model
//! of [`super::render`] (so Markdown and HTML carry the same sentences):
//! canonical duplicates, then keys and their canonical values, each with the
//! month's most, the worst day, first and last seen, now, and the samples.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::render::{ids_text, opt, value_text, when, when_opt, Block, Chart};
use super::{plural, AuditReport, CanonicalReport, OptionalKinds};

/// A stored key or canonical value; a dash for null (absent, or cannot be computed).
fn value_or_dash(v: &serde_json::Value) -> String {
    if v.is_null() {
        "-".to_string()
    } else {
        value_text(v)
    }
}

/// ` (showing 100 of 140)` when a list was cut.
fn shown(len: usize, total: u64) -> String {
    if (len as u64) < total {
        format!(" (showing {len} of {total})")
    } else {
        String::new()
    }
}

pub(super) fn section(doc: &mut Vec<Block>, r: &AuditReport, target: &str, c: &CanonicalReport) {
    let not_checked = || match &c.now.reason {
        Some(reason) => format!("Now: not checked ({reason})"),
        None => "Now: not checked".to_string(),
    };

    let d = &c.duplicates;
    doc.push(Block::Sub("One document per canonical value".into()));
    let mut items = vec![
        format!("Most surplus documents in one run: {}", opt(d.max_documents)),
        format!("Most canonical values held by several documents in one run: {}", opt(d.max_values)),
        format!("Runs that found canonical duplicates: {} of {}", d.runs_with_duplicates, d.runs),
    ];
    if d.runs_with_duplicates > 0 {
        items.push(format!("First seen: {}; last seen: {}", when_opt(d.first_seen), when_opt(d.last_seen)));
    }
    items.push(match &d.worst_day {
        Some(w) => format!(
            "Worst day: {} ({} on {})",
            w.date,
            plural(w.documents, "surplus document"),
            plural(w.values, "canonical value")
        ),
        None => "Worst day: none (no canonical duplicates)".to_string(),
    });
    items.push(match (d.current.documents, d.current.values) {
        (Some(docs), Some(values)) => {
            format!("Now: {} on {}", plural(docs, "surplus document"), plural(values, "canonical value"))
        }
        _ => not_checked(),
    });
    doc.push(Block::List(items));

    let k = &c.key_consistency;
    let duplicates: HashMap<NaiveDate, u64> = d.by_day.iter().map(|x| (x.date, x.documents)).collect();
    let mismatches: HashMap<NaiveDate, u64> = k.by_day.iter().map(|x| (x.date, x.total)).collect();
    let days: Vec<NaiveDate> = r.month.days().collect();
    doc.push(Block::Chart(Chart {
        title: format!("{target}: canonical duplicates and keys that are not their canonical value, most per day"),
        series: vec![
            ("surplus documents".into(), "dup", days.iter().map(|day| duplicates.get(day).copied()).collect()),
            ("keys not canonical".into(), "kc", days.iter().map(|day| mismatches.get(day).copied()).collect()),
        ],
        days,
    }));

    if !d.offending_values.is_empty() {
        doc.push(Block::Para(format!(
            "Canonical values held by several documents, as the runs' samples named them{}, most documents first:",
            shown(d.offending_values.len(), d.offending_values_total)
        )));
        doc.push(Block::Table {
            head: ["Canonical value", "Most documents", "Document ids", "Stored keys", "Runs", "First seen", "Last seen"]
                .map(String::from)
                .to_vec(),
            rows: d
                .offending_values
                .iter()
                .map(|v| {
                    vec![
                        value_text(&v.canonical),
                        v.count.to_string(),
                        ids_text(&v.ids),
                        v.keys.iter().map(value_or_dash).collect::<Vec<_>>().join(", "),
                        v.runs.to_string(),
                        when(v.first_seen),
                        when(v.last_seen),
                    ]
                })
                .collect(),
            marks: None,
        });
    }
    if !d.current.sample.is_empty() {
        doc.push(Block::Para("Canonical values held by several documents now:".into()));
        doc.push(Block::Table {
            head: ["Canonical value", "Documents", "Document ids", "Stored keys"].map(String::from).to_vec(),
            rows: d
                .current
                .sample
                .iter()
                .map(|s| {
                    vec![
                        value_text(&s.canonical),
                        s.count.to_string(),
                        ids_text(&s.ids),
                        s.keys.iter().map(value_or_dash).collect::<Vec<_>>().join(", "),
                    ]
                })
                .collect(),
            marks: None,
        });
    }

    doc.push(Block::Sub("Keys and their canonical values".into()));
    let row = |label: String, kinds: OptionalKinds, total: Option<u64>| {
        vec![label, opt(kinds.mismatch), opt(kinds.derivable), opt(kinds.underivable), opt(total)]
    };
    let mut rows = vec![row("Most in one run".into(), k.max, k.max_total)];
    if let Some(w) = &k.worst_day {
        let kinds = OptionalKinds { mismatch: Some(w.mismatch), derivable: Some(w.derivable), underivable: Some(w.underivable) };
        rows.push(row(format!("Worst day ({})", w.date), kinds, Some(w.total)));
    }
    rows.push(row("Now".into(), k.current.kinds, k.current.total));
    doc.push(Block::Table {
        head: ["", "mismatch", "derivable", "underivable", "total"].map(String::from).to_vec(),
        rows,
        marks: None,
    });
    let mut items = vec![format!(
        "Runs that found a key that is not its canonical value: {} of {}",
        k.runs_with_mismatches, k.runs
    )];
    if k.runs_with_mismatches > 0 {
        items.push(format!("First seen: {}; last seen: {}", when_opt(k.first_seen), when_opt(k.last_seen)));
    }
    items.push(match &k.worst_day {
        Some(w) => format!("Worst day: {} ({} documents whose key is not its canonical value)", w.date, w.total),
        None => "Worst day: none (every key was its canonical value)".to_string(),
    });
    items.push(match (k.current.total, k.current.documents) {
        (Some(total), Some(read)) => format!("Now: {total} of {} read", plural(read, "document")),
        _ => not_checked(),
    });
    doc.push(Block::List(items));
    doc.push(Block::Para(
        "mismatch: a key is stored and differs from the canonical value; derivable: no key, but the canonical value is known (a backfill candidate); underivable: the canonical value cannot be computed from the document.".into(),
    ));
    if !k.offending_documents.is_empty() {
        doc.push(Block::Para(format!(
            "Documents whose key was not their canonical value, as the runs' samples named them{}, first seen first:",
            shown(k.offending_documents.len(), k.offending_documents_total)
        )));
        doc.push(Block::Table {
            head: ["Document id", "Kind", "Stored key", "Canonical value", "Runs", "First seen", "Last seen"]
                .map(String::from)
                .to_vec(),
            rows: k
                .offending_documents
                .iter()
                .map(|o| {
                    vec![
                        value_text(&o.id),
                        o.kind.as_str().to_string(),
                        value_or_dash(&o.stored),
                        value_or_dash(&o.canonical),
                        o.runs.to_string(),
                        when(o.first_seen),
                        when(o.last_seen),
                    ]
                })
                .collect(),
            marks: None,
        });
    }
    if !k.current.sample.is_empty() {
        doc.push(Block::Para("Documents whose key is not their canonical value now:".into()));
        doc.push(Block::Table {
            head: ["Document id", "Kind", "Stored key", "Canonical value"].map(String::from).to_vec(),
            rows: k
                .current
                .sample
                .iter()
                .map(|s| vec![value_text(&s.id), s.kind.as_str().to_string(), value_or_dash(&s.stored), value_or_dash(&s.canonical)])
                .collect(),
            marks: None,
        });
    }
}
