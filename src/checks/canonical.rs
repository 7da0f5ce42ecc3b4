//! The canonical pass: one aggregation over the collection that answers
//! both `key_consistency` and `canonical_duplicates`.
//!
//! Each document's canonical value `c` (what its key should be, from
//! `[target.canonical]`) is computed on the server next to its stored key
//! `k`, and the document is classified:
//!
//! - `u`, underivable: `c` cannot be computed (fields missing, of the wrong
//!   type, or a result that is null or empty);
//! - `d`, derivable: `c` is known but the key is absent, null or empty (a
//!   backfill candidate);
//! - `m`, mismatch: the key is present and differs from `c`;
//! - fine otherwise.
//!
//! The first `$group` groups by `c`; the second folds every group of one
//! document with a fine key into one `fine` row, and every group of one
//! document with a bad key into one `bad` row (with a bounded sample), so
//! the cursor returns only the canonical values held by several documents,
//! the underivable row, and those two rows: what matters, never the
//! collection. The daemon keeps a bounded sample of each kind.
//!
//! The document sample of a group comes from `$topN` (MongoDB 5.2),
//! documents with a bad key first; before 5.2 the group's first and last
//! documents (`$first`/`$last`) are kept instead. `sorted_join` needs
//! `$sortArray` (5.2) and says so on an older server.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{AggregateOptions, Collation};
use serde::Serialize;

use super::scan::{is_unknown_operator, number, to_json, IdSample, FIRST_N};
use super::index::Namespace;
use super::Context;
use crate::config::{Derivation, SAMPLE_IDS_PER_KEY};
use crate::mongo::{FailureReason, QueryError};

/// BSON types `sorted_join` turns into strings (`$toString`), as the
/// application's `String(x)` would: anything else makes the value underivable.
pub const JOINABLE_TYPES: [&str; 5] = ["string", "objectId", "int", "long", "double"];

/// Why a document's stored key is not its canonical value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The key is present and differs from the canonical value.
    Mismatch,
    /// The key is absent, null or empty, and the canonical value is known.
    Derivable,
    /// The canonical value cannot be computed from the document.
    Underivable,
}

impl MismatchKind {
    pub const ALL: [MismatchKind; 3] = [MismatchKind::Mismatch, MismatchKind::Derivable, MismatchKind::Underivable];

    pub fn as_str(self) -> &'static str {
        match self {
            MismatchKind::Mismatch => "mismatch",
            MismatchKind::Derivable => "derivable",
            MismatchKind::Underivable => "underivable",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "m" => Some(MismatchKind::Mismatch),
            "d" => Some(MismatchKind::Derivable),
            "u" => Some(MismatchKind::Underivable),
            _ => None,
        }
    }
}

/// One document whose key is not its canonical value.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MismatchSample {
    /// The document's `_id`, as extended JSON.
    pub id: serde_json::Value,
    pub kind: MismatchKind,
    /// The stored key; null when absent.
    pub stored: serde_json::Value,
    /// The canonical value; null when it cannot be computed.
    pub canonical: serde_json::Value,
}

/// One canonical value held by several documents.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CanonicalSample {
    /// The canonical value, as extended JSON.
    pub canonical: serde_json::Value,
    /// Documents holding it.
    pub count: u64,
    /// Up to [`SAMPLE_IDS_PER_KEY`] of their `_id`s.
    pub ids: Vec<serde_json::Value>,
    /// The distinct stored keys among those documents (null for a document without one).
    pub keys: Vec<serde_json::Value>,
}

/// Everything one canonical pass found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub documents: u64,
    pub mismatch: u64,
    pub derivable: u64,
    pub underivable: u64,
    /// Canonical values held by more than one document.
    pub duplicate_keys: u64,
    /// Σ(count − 1) over those values.
    pub duplicate_documents: u64,
    /// Bounded: at most `sample_size`, largest groups first.
    pub duplicates: Vec<CanonicalSample>,
    /// Bounded: at most `sample_size`.
    pub mismatches: Vec<MismatchSample>,
}

/// The canonical value as an aggregation expression: the derivation's
/// value, or null when it cannot be computed (null, missing or `""`).
pub fn canonical_expression(derivation: &Derivation) -> Bson {
    let raw = match derivation {
        Derivation::Expression(e) => e.clone(),
        Derivation::Lowercase { field, trim } => {
            let path = format!("${field}");
            let inner = if *trim { Bson::Document(doc! { "$trim": { "input": &path } }) } else { Bson::String(path.clone()) };
            Bson::Document(doc! { "$cond": [ { "$eq": [ { "$type": &path }, "string" ] }, { "$toLower": inner }, Bson::Null ] })
        }
        Derivation::SortedJoin { fields, separator } => sorted_join(fields, separator),
    };
    // Null, missing, "", [] and {} are no key: the value cannot be computed.
    let no_value = doc! { "$literal": [Bson::Null, "", Bson::Array(vec![]), Bson::Document(doc! {})] };
    Bson::Document(doc! { "$let": {
        "vars": { "c": { "$ifNull": [raw, Bson::Null] } },
        "in": { "$cond": [ { "$in": [ "$$c", no_value ] }, Bson::Null, "$$c" ] },
    }})
}

/// `values.map(String).sort().join(separator)` on the server; null unless
/// the values are a non-empty array of [`JOINABLE_TYPES`]. One field is an
/// array field; several are scalar fields read as one array (a missing one
/// becomes null, so the value is underivable).
fn sorted_join(fields: &[String], separator: &str) -> Bson {
    let values = match fields {
        [one] => Bson::String(format!("${one}")),
        many => Bson::Array(many.iter().map(|f| Bson::String(format!("${f}"))).collect()),
    };
    // In an operator's argument list an array literal must be wrapped, or it is the list.
    let is_array = doc! { "$isArray": [values.clone()] };
    let all_joinable = doc! { "$allElementsTrue": [ { "$map": {
        "input": values.clone(),
        "in": { "$in": [ { "$type": "$$this" }, JOINABLE_TYPES.to_vec() ] },
    }}]};
    let sorted = doc! { "$sortArray": {
        "input": { "$map": { "input": values.clone(), "in": { "$toString": "$$this" } } },
        "sortBy": 1,
    }};
    let joined = doc! { "$reduce": {
        "input": sorted,
        "initialValue": Bson::Null,
        "in": { "$cond": [ { "$eq": ["$$value", Bson::Null] }, "$$this", { "$concat": ["$$value", { "$literal": separator }, "$$this"] } ] },
    }};
    // Nested $cond, not $and: only an array of joinable values reaches $sortArray.
    Bson::Document(doc! { "$cond": [
        is_array,
        { "$cond": [ all_joinable, joined, Bson::Null ] },
        Bson::Null,
    ]})
}

/// The longest string a sample keeps of a key or canonical value, in characters.
pub const SHOWN_CHARS: usize = 256;

/// A value as a sample keeps it, so a sample is bounded in bytes, not only
/// in entries: a string cut to [`SHOWN_CHARS`] characters, an array or a
/// document replaced by `<array>` / `<object>`, anything else as it is.
fn shown(path: &str) -> Document {
    doc! { "$switch": {
        "branches": [
            { "case": { "$eq": [ { "$type": path }, "string" ] }, "then": { "$substrCP": [path, 0, SHOWN_CHARS as i64] } },
            { "case": { "$in": [ { "$type": path }, ["array", "object"] ] }, "then": { "$concat": ["<", { "$type": path }, ">"] } },
        ],
        "default": path,
    }}
}

/// [`shown`] on the daemon's side, for the canonical value of a group.
fn shown_json(v: &Bson) -> serde_json::Value {
    match v {
        Bson::String(s) if s.chars().count() > SHOWN_CHARS => serde_json::Value::String(s.chars().take(SHOWN_CHARS).collect()),
        Bson::Array(_) => serde_json::Value::String("<array>".into()),
        Bson::Document(_) => serde_json::Value::String("<object>".into()),
        other => to_json(other),
    }
}

/// The pass's pipeline for a single-field `key`.
pub fn pipeline(key: &str, derivation: &Derivation, ids: IdSample, sample_size: usize) -> Vec<Document> {
    let field = format!("${key}");
    let project = doc! { "$project": { "_id": 1, "k": &field, "c": canonical_expression(derivation) } };
    let classify = doc! { "$addFields": { "s": { "$switch": {
        "branches": [
            { "case": { "$eq": ["$c", Bson::Null] }, "then": "u" },
            { "case": { "$in": [ { "$ifNull": ["$k", Bson::Null] }, [Bson::Null, ""] ] }, "then": "d" },
            { "case": { "$ne": ["$k", "$c"] }, "then": "m" },
        ],
        "default": "ok",
    }}}};
    let one = doc! { "i": "$_id", "k": shown("$k"), "s": "$s" };
    let count = |code: &str| doc! { "$sum": { "$cond": [ { "$eq": ["$s", code] }, 1, 0 ] } };
    let mut first = doc! { "_id": "$c", "n": { "$sum": 1 }, "m": count("m"), "d": count("d") };
    let bad = doc! { "$and": [ { "$eq": ["$n", 1] }, { "$gt": [ { "$add": ["$m", "$d"] }, 0 ] } ] };
    let mut second = doc! {
        "_id": { "$switch": {
            "branches": [
                { "case": { "$eq": ["$_id", Bson::Null] }, "then": "underivable" },
                { "case": { "$gt": ["$n", 1] }, "then": { "c": "$_id" } },
                { "case": bad.clone(), "then": "bad" },
            ],
            "default": "fine",
        }},
        "n": { "$sum": "$n" },
        "m": { "$sum": "$m" },
        "d": { "$sum": "$d" },
    };
    // A group of one document: that document, as the first stage kept it.
    let only = match ids {
        IdSample::FirstN(_) => Bson::Document(doc! { "$arrayElemAt": ["$docs", 0] }),
        IdSample::FirstAndLast => Bson::String("$first".into()),
    };
    let single = doc! { "$cond": [ bad, { "doc": only, "c": shown("$_id") }, Bson::Null ] };
    match ids {
        IdSample::FirstN(n) => {
            // A document with a bad key sorts first (`w` 1), so the sample shows them.
            first.insert("docs", doc! { "$topN": { "n": n as i64, "sortBy": { "w": -1 }, "output": one } });
            second.insert("docs", doc! { "$first": "$docs" });
            second.insert("singles", doc! { "$firstN": { "n": sample_size.max(1) as i64, "input": single } });
        }
        IdSample::FirstAndLast => {
            first.insert("first", doc! { "$first": one.clone() });
            first.insert("last", doc! { "$last": one });
            second.insert("first", doc! { "$first": "$first" });
            second.insert("last", doc! { "$first": "$last" });
            second.insert("singles", doc! { "$first": single });
        }
    }
    let weigh = doc! { "$addFields": { "w": { "$cond": [ { "$in": ["$s", ["m", "d"]] }, 1, 0 ] } } };
    let mut stages = vec![project, classify];
    if matches!(ids, IdSample::FirstN(_)) {
        stages.push(weigh);
    }
    stages.push(doc! { "$group": first });
    stages.push(doc! { "$group": second });
    stages
}

impl Summary {
    /// Folds one row of the pipeline's output into the summary.
    pub fn add_row(&mut self, row: &Document, sample_size: usize) {
        let n = number(row.get("n"));
        self.documents += n;
        self.mismatch += number(row.get("m"));
        self.derivable += number(row.get("d"));
        let docs = documents(row);
        match row.get("_id") {
            Some(Bson::String(s)) if s == "underivable" => {
                self.underivable += n;
                for d in &docs {
                    self.offer_mismatch(d, &Bson::Null, sample_size);
                }
            }
            Some(Bson::String(s)) if s == "bad" => {
                let singles = match row.get("singles") {
                    Some(Bson::Array(a)) => a.clone(),
                    Some(Bson::Document(d)) => vec![Bson::Document(d.clone())],
                    _ => Vec::new(),
                };
                for s in singles {
                    let Bson::Document(s) = s else { continue };
                    let c = s.get("c").cloned().unwrap_or(Bson::Null);
                    if let Ok(d) = s.get_document("doc") {
                        self.offer_mismatch(d, &c, sample_size);
                    }
                }
            }
            Some(Bson::Document(group)) => {
                let c = group.get("c").cloned().unwrap_or(Bson::Null);
                self.duplicate_keys += 1;
                self.duplicate_documents += n.saturating_sub(1);
                for d in &docs {
                    self.offer_mismatch(d, &c, sample_size);
                }
                let mut keys: Vec<serde_json::Value> = Vec::new();
                for d in &docs {
                    let k = d.get("k").map(to_json).unwrap_or(serde_json::Value::Null);
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
                let mut ids: Vec<serde_json::Value> = docs.iter().filter_map(|d| d.get("i")).map(to_json).collect();
                ids.dedup();
                self.offer_duplicate(CanonicalSample { canonical: shown_json(&c), count: n, ids, keys }, sample_size);
            }
            _ => {} // the "fine" row
        }
    }

    fn offer_mismatch(&mut self, d: &Document, canonical: &Bson, sample_size: usize) {
        let Some(kind) = d.get_str("s").ok().and_then(MismatchKind::from_code) else { return };
        if self.mismatches.len() >= sample_size {
            return;
        }
        let id = d.get("i").map(to_json).unwrap_or(serde_json::Value::Null);
        if self.mismatches.iter().any(|m| m.id == id) {
            return; // the pre-5.2 sample's first and last may be one document
        }
        self.mismatches.push(MismatchSample {
            id,
            kind,
            stored: d.get("k").map(to_json).unwrap_or(serde_json::Value::Null),
            canonical: shown_json(canonical),
        });
    }

    /// Keeps the `sample_size` largest groups, in bounded memory.
    fn offer_duplicate(&mut self, candidate: CanonicalSample, sample_size: usize) {
        if sample_size == 0 {
            return;
        }
        if self.duplicates.len() == sample_size {
            if candidate.count <= self.duplicates.last().map(|s| s.count).unwrap_or(0) {
                return;
            }
            self.duplicates.pop();
        }
        let at = self.duplicates.partition_point(|s| s.count >= candidate.count);
        self.duplicates.insert(at, candidate);
    }
}

/// The documents a row carries (`{i, k, s}` each), in the pipeline's
/// order: `docs` from `$topN`, or `first` and `last` before 5.2 (one
/// document when they are the same).
fn documents(row: &Document) -> Vec<Document> {
    let list: Vec<&Bson> = match row.get("docs") {
        Some(Bson::Array(a)) => a.iter().collect(),
        _ => ["first", "last"].iter().filter_map(|f| row.get(*f)).collect(),
    };
    let mut docs: Vec<Document> = Vec::new();
    for d in list {
        if let Bson::Document(d) = d {
            if !docs.iter().any(|seen| seen.get("i") == d.get("i")) {
                docs.push(d.clone());
            }
        }
    }
    docs
}

/// Runs the pass (once per run; the two checks share it through
/// [`Context::canonical`]).
pub async fn run(ctx: &Context<'_>) -> Result<Summary, QueryError> {
    let Some(config) = &ctx.target.canonical else {
        return Err(QueryError::new(FailureReason::Other, "the target has no [target.canonical] section"));
    };
    let at = |field: &str| format!("target[{}].canonical.{field}", ctx.target.position);
    // The config refuses [target.canonical] on a compound key.
    let Some(key) = ctx.target.key.single() else {
        return Err(QueryError::new(FailureReason::Other, format!("{}: needs a single-field key", at("preset"))));
    };
    let derivation = config
        .derivation(key)
        .map_err(|(field, problem)| QueryError::new(FailureReason::Other, format!("{}: {problem}", at(field))))?;
    // A collection that is not there would read as a clean zero.
    // Views and time-series collections hold documents to read; only a missing one fails.
    let namespace = super::index::namespace(ctx).await?;
    if namespace == Namespace::Missing {
        return Err(QueryError::new(FailureReason::Other, namespace.problem().unwrap_or("the collection does not exist")));
    }
    let sorted_join = matches!(derivation, Derivation::SortedJoin { .. });
    let what = if matches!(derivation, Derivation::Expression(_)) { at("expression") } else { at("preset") };
    let too_old = || {
        QueryError::new(
            FailureReason::Other,
            format!("{}: sorted_join needs MongoDB 5.2 ($sortArray); this server is older or refused it", at("preset")),
        )
    };
    let mut modern = ctx.deployment.has_first_n() && !ctx.mongo.lacks(FIRST_N) && !ctx.mongo.lacks(TOP_N);
    if sorted_join && !modern {
        return Err(too_old());
    }
    let summary = loop {
        let ids = if modern { IdSample::FirstN(SAMPLE_IDS_PER_KEY) } else { IdSample::FirstAndLast };
        match pass(ctx, key, &derivation, ids).await {
            Ok(summary) => break summary,
            // A 5.2+ binary at an older feature compatibility version, or a
            // look-alike server: the same pass without $topN, once.
            Err(e) if modern && is_unknown_operator(&e) => {
                if ctx.mongo.note_lacking(TOP_N) {
                    tracing::warn!(
                        server = %ctx.deployment.describe(),
                        "the server refused $topN or $sortArray (MongoDB 5.2): canonical samples keep each value's first and last document"
                    );
                }
                if sorted_join {
                    return Err(too_old());
                }
                modern = false;
            }
            Err(e) => {
                let err = ctx.mongo.error(&e);
                if err.reason != FailureReason::Other {
                    return Err(err);
                }
                let why = if is_unknown_operator(&e) { "an operator it does not know" } else { "it" };
                return Err(QueryError::new(
                    FailureReason::Other,
                    format!("the server refused the pipeline built from {what} ({why}): {}", err.message),
                ));
            }
        }
    };
    // Dropped between the namespace check and the pass: an empty cursor, not a clean collection.
    if summary.documents == 0 && super::index::namespace(ctx).await? == Namespace::Missing {
        return Err(QueryError::new(FailureReason::Other, Namespace::Missing.problem().unwrap_or("the collection does not exist")));
    }
    Ok(summary)
}

/// The feature name [`crate::mongo::Mongo::lacks`] keeps for `$topN` and `$sortArray`.
const TOP_N: &str = "$topN";

/// One canonical pass, streamed into a [`Summary`]. Strings are compared
/// and sorted by the simple collation (their bytes), whatever the
/// collection's default, as the application's JavaScript does.
async fn pass(ctx: &Context<'_>, key: &str, derivation: &Derivation, ids: IdSample) -> Result<Summary, mongodb::error::Error> {
    let options = AggregateOptions::builder()
        .allow_disk_use(true)
        .max_time(ctx.deadline.remaining())
        .collation(Collation::builder().locale("simple").build())
        .comment(Bson::String("uniqwatch: key consistency and canonical duplicates".into()))
        .build();
    let sample_size = ctx.target.sample_size;
    let mut cursor = ctx.coll.aggregate(pipeline(key, derivation, ids, sample_size)).with_options(options).await?;
    let mut summary = Summary::default();
    while let Some(row) = cursor.try_next().await? {
        summary.add_row(&row, sample_size);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join() -> Derivation {
        Derivation::SortedJoin { fields: vec!["participants".into()], separator: "_".into() }
    }

    #[test]
    fn the_pipeline_computes_once_and_groups_twice() {
        let p = pipeline("participantsKey", &join(), IdSample::FirstN(5), 20);
        let names: Vec<&str> = p.iter().map(|s| s.keys().next().unwrap().as_str()).collect();
        assert_eq!(names, ["$project", "$addFields", "$addFields", "$group", "$group"]);
        let text = format!("{p:?}");
        assert!(text.contains("$sortArray") && text.contains("$topN"), "{text}");
        assert!(!text.contains("$push") && !text.contains("$addToSet"), "nothing unbounded: {text}");
        let old = format!("{:?}", pipeline("k", &Derivation::Lowercase { field: "k".into(), trim: false }, IdSample::FirstAndLast, 20));
        assert!(!old.contains("$topN") && !old.contains("$firstN") && !old.contains("$sortArray"), "{old}");
    }

    #[test]
    fn rows_fold_into_both_checks() {
        let mut s = Summary::default();
        let d = |i: i32, k: Bson, s: &str| Bson::Document(doc! {"i": i, "k": k, "s": s});
        s.add_row(&doc! {"_id": "fine", "n": 90, "m": 0, "d": 0}, 20);
        s.add_row(&doc! {"_id": "underivable", "n": 3, "m": 0, "d": 0, "docs": [d(1, Bson::Null, "u")]}, 20);
        s.add_row(
            &doc! {"_id": "bad", "n": 4, "m": 3, "d": 1, "singles": [
                {"doc": {"i": 2, "k": "b_a", "s": "m"}, "c": "a_b"}, Bson::Null,
            ]},
            20,
        );
        s.add_row(
            &doc! {"_id": {"c": "x_y"}, "n": 3, "m": 1, "d": 1, "docs": [d(5, "y_x".into(), "m"), d(6, Bson::Null, "d"), d(7, "x_y".into(), "ok")]},
            20,
        );
        assert_eq!((s.documents, s.mismatch, s.derivable, s.underivable), (100, 4, 2, 3));
        assert_eq!((s.duplicate_keys, s.duplicate_documents), (1, 2));
        assert_eq!(s.duplicates[0].keys, vec![serde_json::json!("y_x"), serde_json::Value::Null, serde_json::json!("x_y")]);
        assert_eq!(s.duplicates[0].ids.len(), 3);
        let kinds: Vec<MismatchKind> = s.mismatches.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [MismatchKind::Underivable, MismatchKind::Mismatch, MismatchKind::Mismatch, MismatchKind::Derivable]);
        assert_eq!(s.mismatches[1].canonical, serde_json::json!("a_b"));
    }

    #[test]
    fn samples_stay_within_their_bound() {
        let mut s = Summary::default();
        for i in 0..10 {
            s.add_row(&doc! {"_id": {"c": format!("v{i}")}, "n": 2 + i, "m": 2, "d": 0,
                "docs": [{"i": i, "k": "z", "s": "m"}, {"i": i + 100, "k": "z", "s": "m"}]}, 3);
        }
        assert_eq!(s.duplicates.len(), 3);
        assert_eq!(s.duplicates[0].count, 11);
        assert_eq!(s.mismatches.len(), 3);
        assert_eq!(s.duplicate_keys, 10);
    }
}
