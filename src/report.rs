//! What `uniqwatch check` prints: the JSON contract and the table for a person,
//! and the verdict that becomes the exit code.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::checks::{self, TargetRun};
use crate::config::TargetConfig;

/// The overall result of a `check` pass, in exit-code order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitVerdict {
    /// Every invariant holds and every check ran.
    Holds,
    /// A check proved an invariant broken (index missing or wrong, duplicates, missing keys).
    Violated,
    /// No violation found, but at least one check could not run.
    Incomplete,
}

impl ExitVerdict {
    /// 0, 1 or 2: see the README's exit codes.
    pub fn exit_code(self) -> u8 {
        match self {
            ExitVerdict::Holds => 0,
            ExitVerdict::Violated => 1,
            ExitVerdict::Incomplete => 2,
        }
    }
}

/// A violation outranks a failed check: what was found broken is certain.
pub fn verdict(runs: &[TargetRun]) -> ExitVerdict {
    let verdicts: Vec<checks::Verdict> = runs.iter().map(TargetRun::verdict).collect();
    if verdicts.iter().any(|v| matches!(v, checks::Verdict::Violated(_))) {
        ExitVerdict::Violated
    } else if verdicts.contains(&checks::Verdict::Unknown) {
        ExitVerdict::Incomplete
    } else {
        ExitVerdict::Holds
    }
}

/// One target's object of the JSON contract. Figures a check could not
/// produce are `null`; why is in `errors`.
pub fn target_json(target: &TargetConfig, run: &TargetRun) -> Value {
    let index = run.index().map(|i| {
        json!({
            "present": i.present, "name": i.name, "unique": i.unique,
            "sparse": i.sparse, "hidden": i.hidden, "problem": i.problem, "shards": i.shards,
            "lookup": i.lookup,
        })
    });
    let duplicates = run.duplicates().map(|d| {
        json!({ "keys": d.keys, "documents": d.documents, "method": d.method, "sample": d.sample })
    });
    let missing = run.missing_keys().map(|m| {
        json!({ "absent": m.absent, "null": m.null, "empty": m.empty, "array": m.array, "method": m.method })
    });
    let key_consistency = run.key_consistency().map(|k| {
        json!({ "mismatch": k.mismatch, "derivable": k.derivable, "underivable": k.underivable,
                "documents": k.documents, "sample": k.sample })
    });
    let canonical_duplicates = run.canonical_duplicates().map(|c| {
        json!({ "keys": c.keys, "documents": c.documents, "sample": c.sample })
    });
    let errors: Vec<Value> = run
        .errors()
        .map(|(check, e)| json!({ "check": check, "reason": e.reason, "message": e.message }))
        .collect();
    json!({
        "name": target.name,
        "database": target.database,
        "collection": target.collection,
        "key": target.key,
        "index": index,
        "duplicates": duplicates,
        "missing": missing,
        "documents": run.missing_keys().map(|m| m.documents),
        "canonical": target.canonical,
        "key_consistency": key_consistency,
        "canonical_duplicates": canonical_duplicates,
        "errors": errors,
    })
}

/// The whole JSON document of `check --format json`.
pub fn check_json(targets: &[TargetConfig], runs: &[TargetRun]) -> Value {
    json!({
        "ok": verdict(runs) == ExitVerdict::Holds,
        "targets": targets.iter().zip(runs).map(|(t, r)| target_json(t, r)).collect::<Vec<_>>(),
    })
}

/// The table of `check` for a person: one block per target.
pub fn check_text(targets: &[TargetConfig], runs: &[TargetRun]) -> String {
    let mut out = String::new();
    for (t, run) in targets.iter().zip(runs) {
        let _ = writeln!(out, "{} ({}.{} key {})", t.name, t.database, t.collection, t.key);
        for r in &run.results {
            let ms = r.duration.as_secs_f64() * 1000.0;
            let line = match &r.outcome {
                Err(e) => format!("FAILED   {}", e),
                Ok(figures) => {
                    let mut line = format!("{} {}", if figures.healthy() { "ok      " } else { "VIOLATED" }, figures.summary());
                    match figures {
                        checks::Figures::Duplicates(d) => {
                            for sample in d.sample.iter().take(5) {
                                let _ = write!(line, "\n{:>33}{} held by {} documents", "", sample.key, sample.count);
                            }
                        }
                        checks::Figures::CanonicalDuplicates(c) => {
                            for s in c.sample.iter().take(5) {
                                let keys: Vec<String> = s.keys.iter().map(|k| k.to_string()).collect();
                                let _ = write!(line, "\n{:>33}{} held by {} documents (stored keys {})", "", s.canonical, s.count, keys.join(", "));
                            }
                        }
                        checks::Figures::KeyConsistency(k) => {
                            for s in k.sample.iter().take(5) {
                                let _ = write!(line, "\n{:>33}{} {}: stored {}, canonical {}", "", s.kind.as_str(), s.id, s.stored, s.canonical);
                            }
                        }
                        _ => {}
                    }
                    line
                }
            };
            let _ = writeln!(out, "  {:<20}{:>8.1}ms  {}", r.check.as_str(), ms, line);
        }
    }
    let _ = writeln!(
        out,
        "{}",
        match verdict(runs) {
            ExitVerdict::Holds => "OK: every invariant holds",
            ExitVerdict::Violated => "VIOLATED: at least one invariant is broken",
            ExitVerdict::Incomplete => "INCOMPLETE: at least one check could not run",
        }
    );
    out
}
