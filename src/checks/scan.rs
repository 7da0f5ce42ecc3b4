//! The single collection pass used when no index can answer for the key.
//!
//! One aggregation groups the collection by key and then folds every key
//! held by exactly one document into a single `singles` row, so the cursor
//! returns only what matters: duplicated keys, the absent/null group, the
//! empty-string group, and one row of totals. From that one pass come both the
//! `duplicates` figures and the `missing_keys` figures (and the collection's
//! size), where the hand-run shell commands need two. The daemon streams the
//! cursor and keeps only a bounded sample, never the collection.
//!
//! The pipeline is built by a pure function, [`pipeline`], and the rows are
//! folded by another, [`Summary::add_row`], so both are unit-tested.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::AggregateOptions;
use serde::Serialize;

use super::Context;
use crate::config::SAMPLE_IDS_PER_KEY;
use crate::mongo::QueryError;

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
    pub documents: u64,
    /// The worst offenders, largest count first, at most `sample_size`.
    pub sample: Vec<DuplicateSample>,
}

/// The aggregation pipeline for `key`, keeping `ids_per_key` ids per group.
pub fn pipeline(key: &str, ids_per_key: usize) -> Vec<Document> {
    let field = format!("${key}");
    vec![
        doc! { "$group": {
            "_id": &field,
            "n": { "$sum": 1 },
            // $group puts absent and null keys in one null group; count the absent ones apart.
            "absent": { "$sum": { "$cond": [ { "$eq": [ { "$type": &field }, "missing" ] }, 1, 0 ] } },
            "ids": { "$firstN": { "n": ids_per_key as i64, "input": "$_id" } },
        }},
        doc! { "$group": {
            "_id": { "$cond": [
                { "$or": [ { "$gt": ["$n", 1] }, { "$eq": ["$_id", Bson::Null] }, { "$eq": ["$_id", ""] } ] },
                { "k": "$_id" },
                "singles",
            ]},
            "n": { "$sum": "$n" },
            "absent": { "$sum": "$absent" },
            "ids": { "$first": "$ids" },
        }},
    ]
}

impl Summary {
    /// Folds one row of the pipeline's output into the summary.
    pub fn add_row(&mut self, row: &Document, sample_size: usize) {
        let n = number(row.get("n"));
        self.documents += n;
        let key = match row.get("_id") {
            Some(Bson::Document(d)) => d.get("k").cloned().unwrap_or(Bson::Null),
            _ => return, // the "singles" row: keys held by one document each
        };
        match &key {
            Bson::Null | Bson::Undefined => {
                let absent = number(row.get("absent"));
                self.absent += absent;
                self.null += n.saturating_sub(absent);
            }
            Bson::String(s) if s.is_empty() => self.empty += n,
            _ => {
                self.duplicate_keys += 1;
                self.duplicate_documents += n.saturating_sub(1);
                let ids = match row.get("ids") {
                    Some(Bson::Array(ids)) => ids.iter().map(to_json).collect(),
                    _ => Vec::new(),
                };
                self.offer(DuplicateSample { key: to_json(&key), count: n, ids }, sample_size);
            }
        }
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

fn number(v: Option<&Bson>) -> u64 {
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

/// Runs the pass and streams its rows into a [`Summary`].
pub async fn run(ctx: &Context<'_>) -> Result<Summary, QueryError> {
    let options = AggregateOptions::builder()
        .allow_disk_use(true)
        .max_time(ctx.deadline.remaining())
        .comment(Bson::String("uniqwatch: duplicates and missing keys".into()))
        .build();
    let mut cursor = ctx
        .coll
        .aggregate(pipeline(&ctx.target.key, SAMPLE_IDS_PER_KEY))
        .with_options(options)
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let mut summary = Summary::default();
    while let Some(row) = cursor.try_next().await.map_err(|e| ctx.mongo.error(&e))? {
        summary.add_row(&row, ctx.target.sample_size);
    }
    Ok(summary)
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
        let p = pipeline("a.b", 7);
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
