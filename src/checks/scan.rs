//! The collection passes used when no index can answer for the key.
//!
//! The full pass ([`run`]) answers when nothing guarantees uniqueness. One
//! aggregation groups the collection by key and then folds every key held by
//! exactly one document into a single `singles` row, and every array-valued
//! key into one `array` row, so the cursor returns only what matters:
//! duplicated keys, the absent/null group, the empty-string group, the
//! arrays, and one row of totals. From that one pass come both the
//! `duplicates` figures and the `missing_keys` figures (and the collection's
//! size), where the hand-run shell commands need two. The daemon streams the
//! cursor and keeps only a bounded sample, never the collection.
//!
//! Array keys are not grouped as duplicates: a unique index compares arrays
//! element by element, which a `$group` by whole value cannot see, so they are
//! counted apart as a violation of the scalar-key invariant.
//!
//! Sample ids come from `$firstN` (MongoDB 5.2). On an older server, or one
//! that refuses the accumulator, the same pass keeps each key's first and
//! last id (`$first`/`$last`, bounded to two) instead, and says so once per
//! client.
//!
//! The light pass ([`count_pass`]) answers `missing_keys` when an index
//! already guarantees uniqueness but cannot be hinted (hidden, or a
//! non-simple collation): one `$group` with `_id: null` that only counts, no
//! grouping by key and no ids.
//!
//! A compound key (`key = ["tenantId", "email"]`) is grouped by all its
//! fields in the same one pass ([`compound_pipeline`]): each document is
//! classified first, by one expression ([`compound_group`]). A document
//! whose every field is usable (present, not null, not the empty string, not
//! an array) is grouped by the array of its values in key order; any other
//! is counted once, under the first kind that applies in the order absent,
//! null, empty, array (a document missing one field and holding null in
//! another is `absent`). Duplicates are documents sharing all the values;
//! a sample's `key` is then an object `{field: value, …}` in key order. The
//! light pass counts the same kinds with [`compound_counts_pipeline`].
//!
//! The pipelines are built by pure functions ([`pipeline`],
//! [`counts_pipeline`] and their compound twins) and the rows folded by
//! others ([`Summary::add_row`], [`Summary::add_compound_row`],
//! [`Counts::from_row`]), so all are unit-tested. [`counts_pipeline`] also
//! serves the index passes of `missing_keys`.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::AggregateOptions;
use serde::Serialize;

use super::Context;
use crate::config::SAMPLE_IDS_PER_KEY;
use crate::mongo::{is_command_error, QueryError};

/// One duplicated key value with its documents (a bounded list of ids).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DuplicateSample {
    /// The key value, as extended JSON (a string for string keys).
    pub key: serde_json::Value,
    /// Documents holding it.
    pub count: u64,
    /// Up to [`SAMPLE_IDS_PER_KEY`] of their `_id`s, as extended JSON.
    pub ids: Vec<serde_json::Value>,
}

/// Everything one pass over the collection found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub duplicate_keys: u64,
    pub duplicate_documents: u64,
    pub absent: u64,
    pub null: u64,
    pub empty: u64,
    /// Documents whose key is an array.
    pub array: u64,
    pub documents: u64,
    /// The worst offenders, largest count first, at most `sample_size`.
    pub sample: Vec<DuplicateSample>,
}

/// How the full pass gathers the ids of a duplicated key's documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSample {
    /// Up to this many ids per key, with `$firstN` (MongoDB 5.2+).
    FirstN(usize),
    /// The first and the last id of each key (`$first`/`$last`): two ids
    /// per duplicated key, on any server.
    FirstAndLast,
}

/// The full pass's pipeline for `key`.
pub fn pipeline(key: &str, ids: IdSample) -> Vec<Document> {
    let field = format!("${key}");
    let mut first = doc! {
        "_id": &field,
        "n": { "$sum": 1 },
        // $group puts absent and null keys in one null group; count the absent ones apart.
        "absent": { "$sum": { "$cond": [ { "$eq": [ { "$type": &field }, "missing" ] }, 1, 0 ] } },
    };
    let mut second = doc! {
        "_id": { "$cond": [
            { "$isArray": "$_id" },
            "array",
            { "$cond": [
                { "$or": [ { "$gt": ["$n", 1] }, { "$eq": ["$_id", Bson::Null] }, { "$eq": ["$_id", ""] } ] },
                { "k": "$_id" },
                "singles",
            ]},
        ]},
        "n": { "$sum": "$n" },
        "absent": { "$sum": "$absent" },
    };
    add_id_sample(&mut first, &mut second, ids);
    vec![doc! { "$group": first }, doc! { "$group": second }]
}

/// The kinds of a document without a usable compound key, in priority
/// order: a document is counted under the first that applies.
const COMPOUND_KINDS: [&str; 4] = ["absent", "null", "empty", "array"];

/// The expression that classifies one document by a compound key: the
/// first of [`COMPOUND_KINDS`] that applies to any of its fields, else the
/// array of the fields' values in key order (the group of its key).
pub fn compound_group(fields: &[String]) -> Bson {
    let any = |test: fn(String) -> Document| {
        let tests: Vec<Bson> = fields.iter().map(|f| Bson::Document(test(format!("${f}")))).collect();
        doc! { "$or": tests }
    };
    let tests: [fn(String) -> Document; 4] = [
        |f| doc! { "$eq": [ { "$type": f }, "missing" ] },
        |f| doc! { "$eq": [ { "$type": f }, "null" ] },
        |f| doc! { "$eq": [ f, "" ] },
        |f| doc! { "$isArray": f },
    ];
    let mut expr = Bson::Array(fields.iter().map(|f| Bson::String(format!("${f}"))).collect());
    for (kind, test) in COMPOUND_KINDS.iter().zip(tests).rev() {
        expr = Bson::Document(doc! { "$cond": [ any(test), *kind, expr ] });
    }
    expr
}

/// The full pass's pipeline for a compound key: documents grouped by
/// [`compound_group`], then every key held by one document folded into one
/// `singles` row; duplicated keys come back as `{k: [values]}`, the kinds of
/// missing keys as `{m: <kind>}`.
pub fn compound_pipeline(fields: &[String], ids: IdSample) -> Vec<Document> {
    let mut first = doc! { "_id": compound_group(fields), "n": { "$sum": 1 } };
    let mut second = doc! {
        "_id": { "$cond": [
            { "$isArray": "$_id" },
            { "$cond": [ { "$gt": ["$n", 1] }, { "k": "$_id" }, "singles" ] },
            { "m": "$_id" },
        ]},
        "n": { "$sum": "$n" },
    };
    add_id_sample(&mut first, &mut second, ids);
    vec![doc! { "$group": first }, doc! { "$group": second }]
}

/// The accumulators that keep a group's document ids, in both stages.
fn add_id_sample(first: &mut Document, second: &mut Document, ids: IdSample) {
    match ids {
        IdSample::FirstN(n) => {
            first.insert("ids", doc! { "$firstN": { "n": n as i64, "input": "$_id" } });
            second.insert("ids", doc! { "$first": "$ids" });
        }
        IdSample::FirstAndLast => {
            first.insert("first", doc! { "$first": "$_id" });
            first.insert("last", doc! { "$last": "$_id" });
            second.insert("first", doc! { "$first": "$first" });
            second.insert("last", doc! { "$first": "$last" });
        }
    }
}

/// The light pass's pipeline for a compound key: every document classified
/// by [`compound_group`], then one `$group` with `_id: null` counting the
/// documents and each kind; the same row as [`counts_pipeline`]'s.
pub fn compound_counts_pipeline(fields: &[String]) -> Vec<Document> {
    let mut group = doc! { "_id": Bson::Null, "n": { "$sum": 1 } };
    for kind in COMPOUND_KINDS {
        group.insert(kind, doc! { "$sum": { "$cond": [ { "$eq": ["$g", kind] }, 1, 0 ] } });
    }
    vec![doc! { "$project": { "_id": 0, "g": compound_group(fields) } }, doc! { "$group": group }]
}

/// A counting pass's pipeline: one `$group` with `_id: null` summing the
/// documents seen (`n`) and those whose key is absent, null, the empty
/// string or an array. With `keyed_only`, a `$match` on `$exists: true`
/// keeps the pass inside a sparse (or `$exists`-partial) index, so that a
/// hint on it is accepted and `n` counts the keyed documents.
pub fn counts_pipeline(key: &str, keyed_only: bool) -> Vec<Document> {
    let field = format!("${key}");
    let when = |cond: Document| doc! { "$sum": { "$cond": [cond, 1, 0] } };
    let group = doc! { "$group": {
        "_id": Bson::Null,
        "n": { "$sum": 1 },
        "absent": when(doc! { "$eq": [ { "$type": &field }, "missing" ] }),
        "null": when(doc! { "$eq": [ { "$type": &field }, "null" ] }),
        "empty": when(doc! { "$eq": [ &field, "" ] }),
        "array": when(doc! { "$isArray": &field }),
    }};
    if keyed_only {
        vec![doc! { "$match": { key: { "$exists": true } } }, group]
    } else {
        vec![group]
    }
}

/// What one counting pass found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Documents the pass saw.
    pub n: u64,
    pub absent: u64,
    pub null: u64,
    pub empty: u64,
    pub array: u64,
}

impl Counts {
    /// Reads the pass's one row; no row means nothing was seen.
    pub fn from_row(row: Option<&Document>) -> Self {
        let Some(row) = row else { return Self::default() };
        Counts {
            n: number(row.get("n")),
            absent: number(row.get("absent")),
            null: number(row.get("null")),
            empty: number(row.get("empty")),
            array: number(row.get("array")),
        }
    }
}

impl Summary {
    /// Folds one row of the pipeline's output into the summary.
    pub fn add_row(&mut self, row: &Document, sample_size: usize) {
        let n = number(row.get("n"));
        self.documents += n;
        let key = match row.get("_id") {
            Some(Bson::Document(d)) => d.get("k").cloned().unwrap_or(Bson::Null),
            Some(Bson::String(s)) if s == "array" => {
                self.array += n;
                return;
            }
            _ => return, // the "singles" row: keys held by one document each
        };
        match &key {
            Bson::Null | Bson::Undefined => {
                let absent = number(row.get("absent"));
                self.absent += absent;
                self.null += n.saturating_sub(absent);
            }
            Bson::String(s) if s.is_empty() => self.empty += n,
            _ => self.add_duplicate(to_json(&key), n, row, sample_size),
        }
    }

    /// Folds one row of [`compound_pipeline`]'s output into the summary; a
    /// duplicated key's sample is the object `{field: value, …}` in key order.
    pub fn add_compound_row(&mut self, row: &Document, fields: &[String], sample_size: usize) {
        let n = number(row.get("n"));
        self.documents += n;
        let Some(Bson::Document(group)) = row.get("_id") else {
            return; // the "singles" row
        };
        match (group.get("k"), group.get_str("m")) {
            (Some(Bson::Array(values)), _) => {
                let key = fields.iter().cloned().zip(values.iter().map(to_json)).collect();
                self.add_duplicate(serde_json::Value::Object(key), n, row, sample_size);
            }
            (_, Ok("absent")) => self.absent += n,
            (_, Ok("null")) => self.null += n,
            (_, Ok("empty")) => self.empty += n,
            (_, Ok("array")) => self.array += n,
            _ => {}
        }
    }

    /// Counts one duplicated key held by `n` documents and offers it to the sample.
    fn add_duplicate(&mut self, key: serde_json::Value, n: u64, row: &Document, sample_size: usize) {
        self.duplicate_keys += 1;
        self.duplicate_documents += n.saturating_sub(1);
        let ids = match row.get("ids") {
            Some(Bson::Array(ids)) => ids.iter().map(to_json).collect(),
            _ => {
                let mut ids: Vec<serde_json::Value> = ["first", "last"].iter().filter_map(|f| row.get(f)).map(to_json).collect();
                ids.dedup();
                ids
            }
        };
        self.offer(DuplicateSample { key, count: n, ids }, sample_size);
    }

    /// Keeps the `sample_size` largest groups, in bounded memory.
    fn offer(&mut self, candidate: DuplicateSample, sample_size: usize) {
        if sample_size == 0 {
            return;
        }
        if self.sample.len() == sample_size {
            let smallest = self.sample.last().map(|s| s.count).unwrap_or(0);
            if candidate.count <= smallest {
                return;
            }
            self.sample.pop();
        }
        let at = self.sample.partition_point(|s| s.count >= candidate.count);
        self.sample.insert(at, candidate);
    }
}

/// A count from a pipeline row (any numeric type; absent or negative is 0).
pub(super) fn number(v: Option<&Bson>) -> u64 {
    match v {
        Some(Bson::Int32(n)) => (*n).max(0) as u64,
        Some(Bson::Int64(n)) => (*n).max(0) as u64,
        Some(Bson::Double(n)) if *n > 0.0 => *n as u64,
        _ => 0,
    }
}

/// A key or id as JSON: strings stay strings, ObjectIds become their hex
/// string, anything else relaxed extended JSON.
pub fn to_json(v: &Bson) -> serde_json::Value {
    match v {
        Bson::ObjectId(id) => serde_json::Value::String(id.to_hex()),
        other => other.clone().into_relaxed_extjson(),
    }
}

/// Server error codes meaning "no such accumulator or stage": MongoDB's
/// `unknown group operator` (15952), InvalidPipelineOperator (168),
/// `Unrecognized pipeline stage name` (40324), QueryFeatureNotAllowed (224:
/// a 6.0+ binary still at an older featureCompatibilityVersion, as during
/// an upgrade), and NotImplemented (238, which look-alike servers are
/// expected to answer; not verified against one).
const UNKNOWN_OPERATOR_CODES: [i32; 5] = [15952, 168, 40324, 224, 238];

/// The feature name [`crate::mongo::Mongo::lacks`] keeps for `$firstN`.
pub const FIRST_N: &str = "$firstN";

/// Whether a server error says the pipeline used something it does not know.
pub fn is_unknown_operator(err: &mongodb::error::Error) -> bool {
    is_command_error(err, &UNKNOWN_OPERATOR_CODES)
}

/// Runs the full pass and streams its rows into a [`Summary`]. Uses
/// `$firstN` unless the server is older than 5.2 or has refused it before;
/// a refusal now is remembered for the client and the pass runs again
/// without it.
pub async fn run(ctx: &Context<'_>) -> Result<Summary, QueryError> {
    if !ctx.deployment.has_first_n() {
        let why = if ctx.deployment.version.is_some() { "it predates MongoDB 5.2" } else { "its version is unknown" };
        lacks_first_n(ctx, why);
    }
    if !ctx.mongo.lacks(FIRST_N) {
        match full_pass(ctx, IdSample::FirstN(SAMPLE_IDS_PER_KEY)).await {
            Err(Refused::Operator) => lacks_first_n(ctx, "it refused the accumulator"),
            other => return other.map_err(Refused::into_error),
        }
    }
    full_pass(ctx, IdSample::FirstAndLast).await.map_err(Refused::into_error)
}

/// Remembers for the client that `$firstN` is missing; says so once.
fn lacks_first_n(ctx: &Context<'_>, why: &str) {
    if ctx.mongo.note_lacking(FIRST_N) {
        tracing::warn!(
            server = %ctx.deployment.describe(),
            "the server has no $firstN ({why}; it needs MongoDB 5.2): duplicate samples keep each key's first and last document id"
        );
    }
}

/// Why a pass failed: the server did not know an operator, or anything else.
enum Refused {
    Operator,
    Other(QueryError),
}

impl Refused {
    fn into_error(self) -> QueryError {
        match self {
            Refused::Other(e) => e,
            // Only the fallback pipeline can fail this way once `$firstN` is
            // out, and it uses nothing newer than MongoDB 3.4.
            Refused::Operator => QueryError::new(
                crate::mongo::FailureReason::Other,
                "the server refused a pipeline operator of MongoDB 3.4 ($group with $first/$last/$isArray)",
            ),
        }
    }
}

async fn full_pass(ctx: &Context<'_>, ids: IdSample) -> Result<Summary, Refused> {
    let failed = |e: mongodb::error::Error| {
        if is_unknown_operator(&e) {
            Refused::Operator
        } else {
            Refused::Other(ctx.mongo.error(&e))
        }
    };
    let options = AggregateOptions::builder()
        .allow_disk_use(true)
        .max_time(ctx.deadline.remaining())
        .comment(Bson::String("uniqwatch: duplicates and missing keys".into()))
        .build();
    let key = &ctx.target.key;
    let stages = match key.single() {
        Some(field) => pipeline(field, ids),
        None => compound_pipeline(key.fields(), ids),
    };
    let mut cursor = ctx.coll.aggregate(stages).with_options(options).await.map_err(failed)?;
    let mut summary = Summary::default();
    while let Some(row) = cursor.try_next().await.map_err(failed)? {
        match key.single() {
            Some(_) => summary.add_row(&row, ctx.target.sample_size),
            None => summary.add_compound_row(&row, key.fields(), ctx.target.sample_size),
        }
    }
    Ok(summary)
}

/// The light pass: counts only, one row back.
pub async fn count_pass(ctx: &Context<'_>) -> Result<Counts, QueryError> {
    let options = AggregateOptions::builder()
        .max_time(ctx.deadline.remaining())
        .comment(Bson::String("uniqwatch: missing keys (counts only)".into()))
        .build();
    let stages = match ctx.target.key.single() {
        Some(field) => counts_pipeline(field, false),
        None => compound_counts_pipeline(ctx.target.key.fields()),
    };
    let mut cursor = ctx
        .coll
        .aggregate(stages)
        .with_options(options)
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let row = cursor.try_next().await.map_err(|e| ctx.mongo.error(&e))?;
    Ok(Counts::from_row(row.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::oid::ObjectId;

    fn row(id: Bson, n: i32, absent: i32) -> Document {
        doc! {"_id": id, "n": n, "absent": absent, "ids": [ObjectId::new()]}
    }

    #[test]
    fn pipeline_groups_on_the_configured_key_and_bounds_ids() {
        let p = pipeline("a.b", IdSample::FirstN(7));
        let first = p[0].get_document("$group").unwrap();
        assert_eq!(first.get_str("_id").unwrap(), "$a.b");
        assert_eq!(first.get_document("ids").unwrap().get_document("$firstN").unwrap().get_i64("n").unwrap(), 7);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn rows_fold_into_separate_duplicate_and_missing_figures() {
        let mut s = Summary::default();
        s.add_row(&row(Bson::String("singles".into()), 90, 0), 20);
        s.add_row(&row(Bson::Document(doc! {"k": "a_b"}), 3, 0), 20);
        s.add_row(&row(Bson::Document(doc! {"k": "c_d"}), 2, 0), 20);
        s.add_row(&row(Bson::Document(doc! {"k": Bson::Null}), 5, 2), 20);
        s.add_row(&row(Bson::Document(doc! {"k": ""}), 4, 0), 20);
        assert_eq!(s.duplicate_keys, 2);
        assert_eq!(s.duplicate_documents, 3);
        assert_eq!((s.absent, s.null, s.empty), (2, 3, 4));
        assert_eq!(s.documents, 90 + 3 + 2 + 5 + 4);
        assert_eq!(s.sample[0].key, serde_json::json!("a_b"));
        assert_eq!(s.sample[0].count, 3);
    }

    /// Issue 10: arrays are counted apart, never grouped as duplicates by
    /// whole value, and folded into one row whatever their number.
    #[test]
    fn array_keys_are_one_row_counted_apart_from_duplicates() {
        let p = pipeline("k", IdSample::FirstN(3));
        let second = p[1].get_document("$group").unwrap();
        let by = second.get_document("_id").unwrap().get_array("$cond").unwrap();
        assert_eq!(by[0], Bson::Document(doc! {"$isArray": "$_id"}));
        assert_eq!(by[1], Bson::String("array".into()));
        let mut s = Summary::default();
        s.add_row(&row(Bson::String("array".into()), 4, 0), 20);
        s.add_row(&row(Bson::Document(doc! {"k": "a"}), 2, 0), 20);
        assert_eq!((s.array, s.duplicate_keys, s.documents), (4, 1, 6));
    }

    /// Issue 10: before MongoDB 5.2 the pass may not use `$firstN`, and may
    /// not `$push` ids without bound; it keeps a key's first and last id.
    #[test]
    fn the_pre_5_2_pipeline_keeps_two_ids_without_first_n() {
        let p = pipeline("k", IdSample::FirstAndLast);
        let text = format!("{p:?}");
        assert!(!text.contains("$firstN") && !text.contains("$push") && !text.contains("$addToSet"), "{text}");
        let first = p[0].get_document("$group").unwrap();
        assert_eq!(first.get_document("first").unwrap(), &doc! {"$first": "$_id"});
        assert_eq!(first.get_document("last").unwrap(), &doc! {"$last": "$_id"});
        let mut s = Summary::default();
        s.add_row(&doc! {"_id": {"k": "a"}, "n": 5, "absent": 0, "first": 1, "last": 9}, 20);
        assert_eq!(s.sample[0].ids, vec![serde_json::json!(1), serde_json::json!(9)]);
        assert_eq!(s.sample[0].count, 5);
    }

    #[test]
    fn a_refused_accumulator_is_told_apart_from_other_errors() {
        let error = |code: i32| {
            let cmd: mongodb::error::CommandError =
                mongodb::bson::from_document(doc! {"code": code, "codeName": "X", "errmsg": "unknown group operator '$firstN'"}).unwrap();
            mongodb::error::Error::from(mongodb::error::ErrorKind::Command(cmd))
        };
        for code in [15952, 168, 40324, 224, 238] {
            assert!(is_unknown_operator(&error(code)), "{code}");
        }
        assert!(!is_unknown_operator(&error(50)));
        assert!(!is_unknown_operator(&error(2)));
    }

    #[test]
    fn the_counting_pipeline_counts_every_kind_without_grouping_by_key() {
        let p = counts_pipeline("k", false);
        assert_eq!(p.len(), 1);
        let group = p[0].get_document("$group").unwrap();
        assert_eq!(group.get("_id"), Some(&Bson::Null), "no grouping by key");
        for field in ["n", "absent", "null", "empty", "array"] {
            assert!(group.contains_key(field), "{field}");
        }
        assert!(!format!("{p:?}").contains("$firstN"));
        let keyed = counts_pipeline("k", true);
        assert_eq!(keyed[0], doc! {"$match": {"k": {"$exists": true}}});
        assert_eq!(keyed[1], p[0]);
        let c = Counts::from_row(Some(&doc! {"_id": Bson::Null, "n": 9i64, "absent": 1, "null": 2, "empty": 3, "array": 1.0}));
        assert_eq!(c, Counts { n: 9, absent: 1, null: 2, empty: 3, array: 1 });
        assert_eq!(Counts::from_row(None), Counts::default(), "an empty collection gives no row");
    }

    #[test]
    fn sample_keeps_the_largest_groups_within_its_bound() {
        let mut s = Summary::default();
        for (i, n) in [2, 9, 3, 7, 2, 8].iter().enumerate() {
            s.add_row(&row(Bson::Document(doc! {"k": format!("k{i}")}), *n, 0), 3);
        }
        let counts: Vec<u64> = s.sample.iter().map(|d| d.count).collect();
        assert_eq!(counts, vec![9, 8, 7]);
        assert_eq!(s.duplicate_keys, 6);
    }

    #[test]
    fn zero_sample_size_keeps_nothing() {
        let mut s = Summary::default();
        s.add_row(&row(Bson::Document(doc! {"k": "x"}), 2, 0), 0);
        assert!(s.sample.is_empty());
        assert_eq!(s.duplicate_keys, 1);
    }
}

#[cfg(test)]
#[path = "scan_compound_tests.rs"]
mod compound_tests;
