//! The `duplicates` check: key values held by more than one document, among
//! documents whose key is present, non-null and non-empty.
//!
//! When the `index` check found an index that makes duplicates impossible,
//! the answer is that guarantee (zero, method `unique_index`) and no query is
//! sent. Otherwise the figures come from the shared collection pass
//! ([`super::scan`], method `aggregation`), which also feeds `missing_keys`.
//! Documents whose key is an array are not duplicates here: a unique index
//! compares them element by element, which a count by whole value cannot
//! follow, so `missing_keys` counts them apart (`kind="array"`).

use serde::Serialize;

use super::scan::DuplicateSample;
use super::{Context, Method};
use crate::mongo::QueryError;

/// What the duplicates check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicatesOutcome {
    /// Key values held by more than one document.
    pub keys: u64,
    /// Surplus documents: Σ(count − 1) over those keys.
    pub documents: u64,
    /// How the figure was produced.
    pub method: Method,
    /// The worst offenders (bounded); for logs and JSON output only, never labels.
    pub sample: Vec<DuplicateSample>,
}

pub async fn run(ctx: &mut Context<'_>) -> Result<DuplicatesOutcome, QueryError> {
    ctx.require_collection()?;
    if ctx.index.as_ref().is_some_and(|i| i.guarantees_uniqueness) {
        return Ok(DuplicatesOutcome {
            keys: 0,
            documents: 0,
            method: Method::UniqueIndex,
            sample: Vec::new(),
        });
    }
    let summary = ctx.scan().await?;
    Ok(DuplicatesOutcome {
        keys: summary.duplicate_keys,
        documents: summary.duplicate_documents,
        method: Method::Aggregation,
        sample: summary.sample,
    })
}
