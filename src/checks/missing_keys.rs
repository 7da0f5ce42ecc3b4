//! The `missing_keys` check: documents whose key is absent, null or the
//! empty string, counted apart, and the collection's size.
//!
//! With a visible unique index on the key, every figure comes from index
//! lookups (hinted, so the plan is known) and the collection's metadata:
//! `null` and `empty` are point lookups; `absent` is the collection size
//! minus the index's entries for a sparse index, or a lookup of the null
//! bracket for a plain one. Without such an index, the figures come from the
//! shared collection pass that `duplicates` already ran.

use mongodb::bson::{doc, Document};
use mongodb::options::{CountOptions, Hint};
use serde::Serialize;

use super::{Context, Method};
use crate::mongo::QueryError;

/// What the missing-keys check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingKeysOutcome {
    /// Documents without the key field.
    pub absent: u64,
    /// Documents whose key is an explicit null.
    pub null: u64,
    /// Documents whose key is the empty string.
    pub empty: u64,
    /// Documents in the collection.
    pub documents: u64,
    /// How the figures were produced.
    pub method: Method,
}

impl MissingKeysOutcome {
    /// Documents without a usable key, whatever the kind.
    pub fn total(&self) -> u64 {
        self.absent + self.null + self.empty
    }
}

pub async fn run(ctx: &mut Context<'_>) -> Result<MissingKeysOutcome, QueryError> {
    ctx.require_collection()?;
    let Some(index) = ctx.index.as_ref().and_then(|i| i.queryable.clone()) else {
        let s = ctx.scan().await?;
        return Ok(MissingKeysOutcome {
            absent: s.absent,
            null: s.null,
            empty: s.empty,
            documents: s.documents,
            method: Method::Aggregation,
        });
    };
    let key = ctx.target.key.clone();
    // `$exists: true` in every filter keeps each query inside the filter of a
    // partial index, so the hint is always accepted.
    let empty = count(ctx, &index.name, doc! { &key: { "$exists": true, "$eq": "" } }).await?;
    let null = count(ctx, &index.name, doc! { &key: { "$exists": true, "$type": "null" } }).await?;
    let documents = ctx
        .coll
        .estimated_document_count()
        .max_time(ctx.deadline.remaining())
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let absent = if index.skips_absent {
        let keyed = count(ctx, &index.name, doc! { &key: { "$exists": true } }).await?;
        documents.saturating_sub(keyed)
    } else {
        count(ctx, &index.name, doc! { &key: { "$exists": false } }).await?
    };
    Ok(MissingKeysOutcome {
        absent,
        null,
        empty,
        documents,
        method: Method::IndexCounts,
    })
}

async fn count(ctx: &Context<'_>, index: &str, filter: Document) -> Result<u64, QueryError> {
    let options = CountOptions::builder()
        .hint(Hint::Name(index.to_string()))
        .max_time(ctx.deadline.remaining())
        .build();
    ctx.coll
        .count_documents(filter)
        .with_options(options)
        .await
        .map_err(|e| ctx.mongo.error(&e))
}
