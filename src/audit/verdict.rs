//! The verdict: one question per target and check, and one per log source
//! that counts recoveries, each answered with the figure behind it.
//!
//! Every question is answered the same way: ? when no run of its check
//! succeeded in the month, ✗ when a successful run found what it asks
//! about, ✓ otherwise; the figure adds what the fresh check found now.

use std::collections::BTreeMap;

use super::{plural, render, CanonicalReport, LogReport, MissingCounts, Status, TargetReport, Verdict, VerdictItem};

/// `; now: …`, or `; now: not checked`.
fn now_note(value: Option<String>) -> String {
    match value {
        Some(v) => format!("; now: {v}"),
        None => "; now: not checked".to_string(),
    }
}

pub(super) fn verdict(targets: &[TargetReport], logs: &BTreeMap<String, LogReport>) -> Verdict {
    let mut items = Vec::new();
    for t in targets {
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
        let missing_now = match (m.current.absent, m.current.null, m.current.empty, m.current.array) {
            (Some(absent), Some(null), Some(empty), Some(array)) => {
                Some(MissingCounts { absent, null, empty, array }.total().to_string())
            }
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
                    "up to {total} documents without a key (absent {}, null {}, empty {}, array {}){}",
                    m.max.absent.unwrap_or(0),
                    m.max.null.unwrap_or(0),
                    m.max.empty.unwrap_or(0),
                    m.max.array.unwrap_or(0),
                    now_note(missing_now)
                ),
            },
        });
        if let Some(c) = &t.canonical {
            canonical_items(&mut items, &t.name, c);
        }
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

/// The canonical checks' two questions, for a target that has them.
fn canonical_items(items: &mut Vec<VerdictItem>, subject: &str, c: &CanonicalReport) {
    let status = |max: Option<u64>| match max {
        None => Status::NoData,
        Some(0) => Status::Pass,
        Some(_) => Status::Fail,
    };
    let worst = |date: Option<chrono::NaiveDate>| date.map(|d| format!(", worst day {d}")).unwrap_or_default();

    let d = &c.duplicates;
    let dup_now = d.current.documents.zip(d.current.values).map(|(docs, values)| {
        format!("{} on {}", plural(docs, "surplus document"), plural(values, "canonical value"))
    });
    items.push(VerdictItem {
        subject: subject.to_string(),
        question: "One document per canonical value?".into(),
        status: status(d.max_documents),
        figure: match (d.max_documents, d.max_values) {
            (Some(0), _) => format!("0 canonical values held by several documents in {} runs{}", d.runs, now_note(dup_now)),
            (Some(docs), Some(values)) => format!(
                "up to {} on {}, in {} of {} runs{}{}",
                plural(docs, "surplus document"),
                plural(values, "canonical value"),
                d.runs_with_duplicates,
                d.runs,
                worst(d.worst_day.as_ref().map(|w| w.date)),
                now_note(dup_now)
            ),
            _ => format!("no successful canonical_duplicates run this month{}", now_note(dup_now)),
        },
    });

    let k = &c.key_consistency;
    let kinds = |m: Option<u64>, d: Option<u64>, u: Option<u64>| {
        format!("mismatch {}, derivable {}, underivable {}", m.unwrap_or(0), d.unwrap_or(0), u.unwrap_or(0))
    };
    let now = &k.current;
    let kc_now =
        now.total.map(|total| format!("{total} ({})", kinds(now.kinds.mismatch, now.kinds.derivable, now.kinds.underivable)));
    items.push(VerdictItem {
        subject: subject.to_string(),
        question: "Every key its canonical value?".into(),
        status: status(k.max_total),
        figure: match k.max_total {
            None => format!("no successful key_consistency run this month{}", now_note(kc_now)),
            Some(0) => format!("0 documents whose key is not its canonical value in {} runs{}", k.runs, now_note(kc_now)),
            Some(total) => format!(
                "up to {total} documents whose key is not its canonical value ({}), in {} of {} runs{}{}",
                kinds(k.max.mismatch, k.max.derivable, k.max.underivable),
                k.runs_with_mismatches,
                k.runs,
                worst(k.worst_day.as_ref().map(|w| w.date)),
                now_note(kc_now)
            ),
        },
    });
}
