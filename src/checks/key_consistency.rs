//! The `key_consistency` check: documents whose stored key is not the
//! canonical value `[target.canonical]` computes from their other fields.
//!
//! Kinds: `mismatch` (a key is stored and differs: an unsorted or
//! differently built key, or one that drifted when the participants
//! changed), `derivable` (no key, but it can be computed: a backfill
//! candidate) and `underivable` (the canonical value cannot be computed:
//! the fields are missing or of the wrong type). The figures come from the
//! canonical pass ([`super::canonical`]), shared with `canonical_duplicates`.

use serde::Serialize;

use super::canonical::MismatchSample;
use super::Context;
use crate::mongo::QueryError;

/// What the key consistency check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyConsistencyOutcome {
    /// Documents whose stored key differs from the canonical value.
    pub mismatch: u64,
    /// Documents without a usable key whose canonical value is known.
    pub derivable: u64,
    /// Documents whose canonical value cannot be computed.
    pub underivable: u64,
    /// Documents the pass read.
    pub documents: u64,
    /// A bounded sample (ids, stored key, canonical value); for logs and JSON only, never labels.
    pub sample: Vec<MismatchSample>,
}

impl KeyConsistencyOutcome {
    /// Documents whose key is not their canonical value, of every kind.
    pub fn total(&self) -> u64 {
        self.mismatch + self.derivable + self.underivable
    }
}

pub async fn run(ctx: &mut Context<'_>) -> Result<KeyConsistencyOutcome, QueryError> {
    let summary = ctx.canonical().await?;
    Ok(KeyConsistencyOutcome {
        mismatch: summary.mismatch,
        derivable: summary.derivable,
        underivable: summary.underivable,
        documents: summary.documents,
        sample: summary.mismatches,
    })
}
