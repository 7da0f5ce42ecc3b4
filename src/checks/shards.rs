//! The `index` check's view through mongos: is the unique index on every
//! shard that owns chunks of the collection, and can it enforce uniqueness
//! across shards at all?
//!
//! `listIndexes` through mongos answers from one shard, so on a sharded
//! collection it can report an index that another shard lacks (a unique
//! build succeeds on the shards without duplicates and fails on the one
//! holding them) or is still building. And each shard enforces a unique
//! index only among its own documents: the index is a guarantee across the
//! cluster only when every document with a given key lives on one shard,
//! that is when the shard key's fields are a prefix of the index's fields
//! (for a compound key, of the key's fields in order).
//!
//! When the client talks to a mongos, [`check`] reads three things, each
//! with the time left as `maxTimeMS` and the client's read preference
//! (collection operations inherit it), each streamed:
//!
//! - the collection's `config.collections` entry: its shard key, or that it
//!   is not sharded (no entry, `dropped: true` before 5.0, or
//!   `unsplittable: true` on 8.0, which tracks an unsharded collection);
//! - which shards own its chunks: `config.chunks` grouped by `shard`,
//!   matched by `uuid` when the entry has a `timestamp` (5.0+ metadata) and
//!   by `ns` before, the rule MongoDB's own shell follows;
//! - every shard's copy of the indexes on the key: `$indexStats` through
//!   mongos answers one entry per index per shard, with `shard`, `spec` and
//!   `building: true` while a build runs.
//!
//! Each shard's indexes get the same verdict as `listIndexes`
//! ([`super::index::evaluate`]); a shard is `present` when its finished
//! indexes make duplicates impossible among its documents, `building` when
//! only an unfinished build would, `missing` otherwise. [`ShardsView::apply`]
//! then takes the guarantee away from the outcome unless the index is on
//! every owning shard and the shard key is a prefix of it, so the runner
//! keeps scanning for duplicates. An unsharded collection is left to
//! `listIndexes`, which already answers from the one shard holding it.
//!
//! When `config` or `$indexStats` is refused, nothing is known of the other
//! shards: the index check fails (reason `other`, see [`unverifiable`]), so
//! the run is unknown, never "holds", and the later checks scan.
//!
//! The parsing and the verdict are pure functions, tested on replies shaped
//! as MongoDB's manual shows them; the test server is not a mongos.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde::Serialize;

use super::index::{evaluate, BuildState, IndexOutcome, IndexSpec, Namespace};
use super::Context;
use crate::config::KeySpec;
use crate::metrics::Metrics;
use crate::mongo::{FailureReason, QueryError};

/// The state of the expected unique index on one shard; also the `state`
/// label of `uniqwatch_unique_index_shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardIndexState {
    /// A finished index makes duplicates impossible among the shard's documents.
    Present,
    /// No such index, or one with options that guarantee nothing.
    Missing,
    /// Only an index still being built would: it guarantees nothing until it commits.
    Building,
}

impl ShardIndexState {
    pub const ALL: [ShardIndexState; 3] = [ShardIndexState::Present, ShardIndexState::Missing, ShardIndexState::Building];

    pub fn as_str(self) -> &'static str {
        match self {
            ShardIndexState::Present => "present",
            ShardIndexState::Missing => "missing",
            ShardIndexState::Building => "building",
        }
    }
}

/// One shard owning chunks of the collection, and its copy of the index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardIndex {
    pub shard: String,
    pub state: ShardIndexState,
}

/// What mongos shows of the collection and its unique index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardsView {
    /// The collection is sharded; false for an unsharded collection seen
    /// through mongos, which `listIndexes` answers for alone.
    pub sharded: bool,
    /// The shard key from `config.collections`, when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<Document>,
    /// The shard key's fields are a prefix of the unique index's fields, so
    /// equal keys always live on one shard and the index can enforce
    /// uniqueness across shards (always true when unsharded).
    pub enforces_across_shards: bool,
    /// Every shard owning chunks of a sharded collection, by name.
    pub owners: Vec<ShardIndex>,
    /// The shard holding an unsharded collection, when it was cheap to learn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The index verdict of the owning shards (they agree when every one is
    /// present), which stands in for `listIndexes`' answer from one shard.
    #[serde(skip)]
    pub owners_verdict: Option<Box<IndexOutcome>>,
}

/// How `config.collections` describes the collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Sharding {
    /// No entry (or a dropped one): an unsharded collection on its database's primary shard.
    Untracked,
    /// Tracked but unsharded (8.0's `unsplittable: true`): one chunk on one shard.
    Unsplittable { chunks: Document },
    /// Sharded on `key`; `chunks` matches its chunk documents.
    Sharded { key: Document, chunks: Document },
}

impl Sharding {
    /// Reads the collection's `config.collections` entry, if any; `ns` is `<db>.<collection>`.
    pub fn from_entry(ns: &str, entry: Option<&Document>) -> Self {
        let Some(entry) = entry else { return Sharding::Untracked };
        let flag = |name: &str| matches!(entry.get(name), Some(Bson::Boolean(true)));
        if flag("dropped") {
            return Sharding::Untracked;
        }
        // 5.0 moved chunks from `ns` to the collection's `uuid`, and marks
        // the new format with a `timestamp` on the collection's entry.
        let chunks = match entry.get("uuid") {
            Some(uuid) if entry.contains_key("timestamp") => doc! { "uuid": uuid.clone() },
            _ => doc! { "ns": ns },
        };
        if flag("unsplittable") {
            return Sharding::Unsplittable { chunks };
        }
        match entry.get_document("key") {
            Ok(key) if !key.is_empty() => Sharding::Sharded { key: key.clone(), chunks },
            // A sharded collection always has a key; without one, the entry
            // cannot be read and the collection is treated as sharded on
            // nothing, which guarantees nothing.
            _ => Sharding::Sharded { key: Document::new(), chunks },
        }
    }
}

/// The shard names of a `$group: {_id: "$shard"}` over `config.chunks`, sorted.
pub fn chunk_owners(groups: &[Document]) -> Vec<String> {
    let mut owners: Vec<String> = groups.iter().filter_map(|g| g.get_str("_id").ok().map(str::to_string)).collect();
    owners.sort();
    owners.dedup();
    owners
}

/// Whether the shard key's fields are, in order, the first fields of the
/// index's key. A hashed shard key counts: equal values hash alike, so they
/// live on one shard (MongoDB accepts a unique `{k: 1}` on a collection
/// sharded on `{k: "hashed"}` for that reason).
pub fn shard_key_is_prefix(shard_key: &Document, index_key: &Document) -> bool {
    !shard_key.is_empty()
        && shard_key.len() <= index_key.len()
        && shard_key.keys().zip(index_key.keys()).all(|(s, i)| s == i)
}

/// Each owning shard's state of the index, from `$indexStats` entries
/// (only those whose key mentions a field of `key` are needed). `Err` says
/// why the entries cannot be attributed to shards.
pub fn shard_states(owners: &[String], stats: &[Document], key: &KeySpec, expect_sparse: bool) -> Result<Vec<ShardIndex>, String> {
    if !owners.is_empty() && !stats.is_empty() && stats.iter().all(|s| s.get_str("shard").is_err()) {
        return Err("$indexStats through mongos does not name the shard of each index (MongoDB 4.2.4 or later is needed)".into());
    }
    Ok(owners
        .iter()
        .map(|shard| {
            let state = if evaluate(&specs_on(shard, stats, true), key, expect_sparse, Namespace::Collection).guarantees_uniqueness {
                ShardIndexState::Present
            } else if evaluate(&specs_on(shard, stats, false), key, expect_sparse, Namespace::Collection).guarantees_uniqueness {
                ShardIndexState::Building
            } else {
                ShardIndexState::Missing
            };
            ShardIndex { shard: shard.clone(), state }
        })
        .collect())
}

/// The indexes `$indexStats` reports on `shard` (only the finished ones
/// with `finished_only`), as `listIndexes` specs.
fn specs_on(shard: &str, stats: &[Document], finished_only: bool) -> Vec<IndexSpec> {
    stats
        .iter()
        .filter(|s| s.get_str("shard") == Ok(shard))
        .filter(|s| !(finished_only && matches!(s.get("building"), Some(Bson::Boolean(true)))))
        .map(|s| match s.get_document("spec") {
            Ok(spec) => IndexSpec::from_document(spec),
            // Without `spec` only the key and name are known: not unique.
            Err(_) => IndexSpec::from_document(s),
        })
        .collect()
}

/// The verdict on the finished indexes of the first owning shard, for a
/// sharded collection whose `listIndexes` answered from a shard that owns
/// no chunks (or disagrees): the owners decide.
pub fn owners_verdict(owners: &[String], stats: &[Document], key: &KeySpec, expect_sparse: bool) -> Option<IndexOutcome> {
    let first = owners.first()?;
    Some(evaluate(&specs_on(first, stats, true), key, expect_sparse, Namespace::Collection))
}

/// A key pattern as an operator writes it: `{tenantId: 1}`, `{k: "hashed"}`.
fn pattern(key: &Document) -> String {
    let fields: Vec<String> = key.iter().map(|(f, v)| format!("{f}: {v}")).collect();
    format!("{{{}}}", fields.join(", "))
}

impl ShardsView {
    /// An unsharded collection seen through mongos.
    pub fn unsharded(held_by: Option<String>) -> Self {
        ShardsView {
            sharded: false,
            shard_key: None,
            enforces_across_shards: true,
            owners: Vec::new(),
            held_by,
            owners_verdict: None,
        }
    }

    /// A sharded collection: its shard key and each owning shard's state.
    pub fn sharded(shard_key: Document, owners: Vec<ShardIndex>, key: &KeySpec) -> Self {
        let pattern: Document = key.fields().iter().map(|f| (f.clone(), Bson::Int32(1))).collect();
        let enforces_across_shards = shard_key_is_prefix(&shard_key, &pattern);
        ShardsView {
            sharded: true,
            shard_key: Some(shard_key),
            enforces_across_shards,
            owners,
            held_by: None,
            owners_verdict: None,
        }
    }

    /// The owning shards' own verdict on the index (see [`owners_verdict`]).
    pub fn with_owners_verdict(mut self, verdict: Option<IndexOutcome>) -> Self {
        self.owners_verdict = verdict.map(Box::new);
        self
    }

    /// Owning shards in `state`.
    pub fn count(&self, state: ShardIndexState) -> usize {
        self.owners.iter().filter(|s| s.state == state).count()
    }

    fn names(&self, state: ShardIndexState) -> String {
        let names: Vec<&str> = self.owners.iter().filter(|s| s.state == state).map(|s| s.shard.as_str()).collect();
        names.join(", ")
    }

    /// Why the index is no guarantee across the cluster, in an operator's
    /// words; `None` when it is one on every owning shard.
    pub fn problem(&self, key: &KeySpec) -> Option<String> {
        if !self.sharded {
            return None;
        }
        let owners = self.owners.len();
        let mut why = Vec::new();
        if owners == 0 {
            why.push("config.chunks lists no chunk of the collection, so no shard's index could be checked".to_string());
        }
        let missing = self.count(ShardIndexState::Missing);
        if missing > 0 {
            why.push(format!(
                "the unique index is missing on {missing} of {owners} shards owning chunks ({}); duplicates can be written there",
                self.names(ShardIndexState::Missing)
            ));
        }
        let building = self.count(ShardIndexState::Building);
        if building > 0 {
            why.push(format!(
                "the unique index is still being built on {building} of {owners} shards owning chunks ({}); it guarantees nothing until the build commits",
                self.names(ShardIndexState::Building)
            ));
        }
        if !self.enforces_across_shards {
            let shard_key = self.shard_key.as_ref().filter(|k| !k.is_empty()).map(pattern).unwrap_or_else(|| "an unreadable key".into());
            why.push(format!(
                "the collection is sharded on {shard_key}, which is not a prefix of {}: each shard enforces the unique index among its own documents only, so the same key can exist on two shards",
                key.pattern()
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Folds the view into the `listIndexes` verdict: unless the index is a
    /// guarantee on every owning shard, it is not present, guarantees
    /// nothing (so duplicates are scanned for) and is not hinted (a shard
    /// without it would refuse the hint).
    pub fn apply(mut self, outcome: &mut IndexOutcome, key: &KeySpec) {
        if let Some(problem) = self.problem(key) {
            outcome.present = false;
            outcome.guarantees_uniqueness = false;
            outcome.queryable = None;
            outcome.problem = Some(match outcome.problem.take() {
                Some(first) => format!("{first}; {problem}"),
                None => problem,
            });
            // Only unfinished builds stand between the index and the
            // guarantee: that is a build in progress (which warns), not a
            // missing index (which pages).
            if self.count(ShardIndexState::Missing) == 0
                && self.count(ShardIndexState::Building) > 0
                && self.enforces_across_shards
            {
                outcome.build = Some(BuildState::Building);
            }
        } else if let Some(agreed) = self.owners_verdict.take().filter(|_| self.sharded) {
            // Every owning shard enforces it: `listIndexes` answered from one
            // shard that may own no chunks; the owners' verdict stands.
            let IndexOutcome { present, name, unique, sparse, hidden, problem, guarantees_uniqueness, queryable, build, .. } = *agreed;
            (outcome.present, outcome.name, outcome.unique, outcome.sparse, outcome.hidden) = (present, name, unique, sparse, hidden);
            (outcome.problem, outcome.guarantees_uniqueness, outcome.queryable, outcome.build) =
                (problem, guarantees_uniqueness, queryable, build);
        }
        outcome.shards = Some(Box::new(self));
    }

    /// One line for the landing page and `check`'s table.
    pub fn summary(&self) -> String {
        if !self.sharded {
            return match &self.held_by {
                Some(shard) => format!("unsharded, on shard {shard}"),
                None => "unsharded".to_string(),
            };
        }
        let shard_key = self.shard_key.as_ref().map(pattern).unwrap_or_default();
        let scope = if self.enforces_across_shards { "" } else { ", per shard only" };
        format!(
            "sharded on {shard_key}: on {} of {} shards{scope}",
            self.count(ShardIndexState::Present),
            self.owners.len()
        )
    }
}

/// An index line of the landing page and `check`'s table, with what mongos showed.
pub fn annotate(line: String, view: Option<&ShardsView>) -> String {
    match view {
        Some(v) => format!("{line}; {}", v.summary()),
        None => line,
    }
}

/// A refused (or timed-out) read of `config` or `$indexStats` leaves the
/// other shards unknown. It fails the index check, so the index is not trusted and the
/// run is unknown, but as `other`, not `unauthorized`: MongoDB answered and
/// the target itself is readable, while `unauthorized` would read as an
/// outage (`up` = 0) and stop the later checks, which can still count
/// duplicates by scanning.
pub fn unverifiable(e: QueryError) -> QueryError {
    if e.reason == FailureReason::Timeout {
        // mongos answered the index check's first commands; a shard slow to
        // answer `$indexStats` is not an outage of the target.
        return QueryError::new(
            FailureReason::Other,
            format!("the unique index could not be checked on each shard in time ({}); until then it is not trusted", e.message),
        );
    }
    if e.reason != FailureReason::Unauthorized {
        return e;
    }
    QueryError::new(
        FailureReason::Other,
        format!(
            "the unique index cannot be checked on each shard ({}): reading config.collections and config.chunks and running $indexStats need read on the config database and the indexStats action; until then the index is not trusted and duplicates are counted by scanning",
            e.message
        ),
    )
}

/// Sets `uniqwatch_unique_index_shards` from the index outcome: a count of
/// owning shards per state for a sharded collection, no series otherwise.
pub fn set_metric(target: &str, view: Option<&ShardsView>, m: &Metrics) {
    match view {
        Some(v) if v.sharded => {
            for state in ShardIndexState::ALL {
                m.unique_index_shards.with_label_values(&[target, state.as_str()]).set(v.count(state) as i64);
            }
        }
        _ => withdraw_metric(target, m),
    }
}

pub fn withdraw_metric(target: &str, m: &Metrics) {
    for state in ShardIndexState::ALL {
        // Errs only when the series does not exist: nothing to withdraw.
        let _ = m.unique_index_shards.remove_label_values(&[target, state.as_str()]);
    }
}

/// Through mongos, checks the index on every shard and folds the result
/// into `outcome` (see the module doc). Call only on a router and for a
/// collection that exists.
pub async fn check(ctx: &Context<'_>, outcome: &mut IndexOutcome) -> Result<(), QueryError> {
    let view = gather(ctx).await.map_err(unverifiable)?;
    view.apply(outcome, &ctx.target.key);
    Ok(())
}

async fn gather(ctx: &Context<'_>) -> Result<ShardsView, QueryError> {
    let ns = format!("{}.{}", ctx.target.database, ctx.target.collection);
    let config = ctx.client.database("config");
    let entry = config
        .collection::<Document>("collections")
        .find_one(doc! { "_id": &ns })
        .max_time(ctx.deadline.remaining())
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    match Sharding::from_entry(&ns, entry.as_ref()) {
        Sharding::Untracked => Ok(ShardsView::unsharded(primary_shard(ctx).await)),
        Sharding::Unsplittable { chunks } => {
            let owners = owners(ctx, chunks).await?;
            Ok(ShardsView::unsharded(owners.into_iter().next()))
        }
        Sharding::Sharded { key, chunks } => {
            let owners = owners(ctx, chunks).await?;
            let stats = index_stats(ctx).await?;
            let shards = shard_states(&owners, &stats, &ctx.target.key, ctx.target.sparse)
                .map_err(|why| QueryError::new(FailureReason::Other, why))?;
            let agreed = owners_verdict(&owners, &stats, &ctx.target.key, ctx.target.sparse);
            Ok(ShardsView::sharded(key, shards, &ctx.target.key).with_owners_verdict(agreed))
        }
    }
}

/// The shards owning chunks matched by `chunks`.
async fn owners(ctx: &Context<'_>, chunks: Document) -> Result<Vec<String>, QueryError> {
    let pipeline = [doc! { "$match": chunks }, doc! { "$group": { "_id": "$shard" } }];
    let mut cursor = ctx
        .client
        .database("config")
        .collection::<Document>("chunks")
        .aggregate(pipeline)
        .max_time(ctx.deadline.remaining())
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let mut groups = Vec::new();
    while let Some(group) = cursor.try_next().await.map_err(|e| ctx.mongo.error(&e))? {
        groups.push(group);
    }
    Ok(chunk_owners(&groups))
}

/// Every shard's entries of `$indexStats` whose key mentions a field of the target's key.
async fn index_stats(ctx: &Context<'_>) -> Result<Vec<Document>, QueryError> {
    let pipeline = [
        doc! { "$indexStats": {} },
        doc! { "$project": { "name": 1, "key": 1, "shard": 1, "spec": 1, "building": 1 } },
    ];
    let mut cursor = ctx
        .coll
        .aggregate(pipeline)
        .max_time(ctx.deadline.remaining())
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let mut stats = Vec::new();
    while let Some(entry) = cursor.try_next().await.map_err(|e| ctx.mongo.error(&e))? {
        if entry.get_document("key").is_ok_and(|k| ctx.target.key.fields().iter().any(|f| k.contains_key(f))) {
            stats.push(entry);
        }
    }
    Ok(stats)
}

/// The primary shard of the target's database, which holds an untracked
/// unsharded collection. Only shown, never relied on, so a failed read
/// leaves it unknown rather than failing the check.
async fn primary_shard(ctx: &Context<'_>) -> Option<String> {
    let entry = ctx
        .client
        .database("config")
        .collection::<Document>("databases")
        .find_one(doc! { "_id": &ctx.target.database })
        .projection(doc! { "primary": 1 })
        .max_time(ctx.deadline.remaining())
        .await
        .ok()??;
    entry.get_str("primary").ok().map(str::to_string)
}

#[cfg(test)]
#[path = "shards_tests.rs"]
mod tests;
