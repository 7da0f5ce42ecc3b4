//! The verdict: one question per target and check, and one per log source
//! that counts recoveries, each answered with the figure behind it.

use std::collections::BTreeMap;

use super::{plural, render, LogReport, MissingCounts, Status, TargetReport, Verdict, VerdictItem};

pub(super) fn verdict(targets: &[TargetReport], logs: &BTreeMap<String, LogReport>) -> Verdict {
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
