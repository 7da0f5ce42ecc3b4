//! The `canonical_duplicates` check: canonical values held by more than one
//! document, keyed or not — two chats for one set of participants, two
//! accounts for one email, whatever their stored keys say.
//!
//! A unique index cannot see these: the documents' stored keys differ (or
//! one has none). The figures come from the canonical pass
//! ([`super::canonical`]), shared with `key_consistency`; documents whose
//! canonical value cannot be computed are never grouped together.

use serde::Serialize;

use super::canonical::CanonicalSample;
use super::Context;
use crate::mongo::QueryError;

/// What the canonical duplicates check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanonicalDuplicatesOutcome {
    /// Canonical values held by more than one document.
    pub keys: u64,
    /// Surplus documents: Σ(count − 1) over those values.
    pub documents: u64,
    /// The largest groups (bounded): canonical value, count, ids, the stored keys seen.
    pub sample: Vec<CanonicalSample>,
}

pub async fn run(ctx: &mut Context<'_>) -> Result<CanonicalDuplicatesOutcome, QueryError> {
    let summary = ctx.canonical().await?;
    Ok(CanonicalDuplicatesOutcome {
        keys: summary.duplicate_keys,
        documents: summary.duplicate_documents,
        sample: summary.duplicates,
    })
}
