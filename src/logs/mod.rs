//! Following application and mongod log files for duplicate-key errors.
//!
//! The tailer publishes its committed totals (the ones saved with the file
//! offsets in the checkpoint) as a [`LogTotals`] snapshot, which the history
//! store records, so both always agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Cumulative counts per log source, as persisted in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTotals {
    /// Source name (`[[logs]] name`) → its totals.
    pub sources: BTreeMap<String, SourceTotals>,
}

/// Cumulative counts of one source since its first checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTotals {
    /// Duplicate-key errors, one entry per (namespace, index) label pair.
    pub duplicate_key_errors: Vec<ErrorTotal>,
    /// Lines saying a duplicate-key conflict was recovered.
    pub recoveries: u64,
    /// `[[logs.events]]` name → lines matched.
    pub events: BTreeMap<String, u64>,
    /// Complete lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// Duplicate-key errors for one (namespace, index) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorTotal {
    pub namespace: String,
    pub index: String,
    pub count: u64,
}
