//! The key lookup probe: does the application's lookup by key use the
//! unique index?
//!
//! The runbook's check for "creating a chat is slow" is
//! `db.chats.find({participantsKey: "…"}).explain("executionStats")`, which
//! must show an index scan on the unique index. The `index` check runs it on
//! every pass once it has found an index it can query ([`probe`]):
//!
//! 1. one existing key value is read through the index itself: a `find`
//!    whose filter the index bounds answer, hinted by name, `limit 1`,
//!    projected on the key alone, so it never scans the collection;
//! 2. the application's lookup for that value is explained without a hint,
//!    first with `queryPlanner` (nothing executed), so the planner picks the
//!    plan it would pick for the application (the explain ignores the plan
//!    cache; index filters still apply); only a plan that scans the unique
//!    index is then run with `executionStats` to count what it examines. A
//!    plan that does not use the index is judged from its shape and never
//!    executed: it would scan the collection.
//!
//! A unique index the probe cannot hint (hidden, or with a non-simple
//! collation) yields no key value; the lookup of a placeholder string is then
//! only planned (`queryPlanner` verbosity: nothing is executed, nothing
//! scanned), which is enough to see that it is not served by the index.
//!
//! Every command goes with the client's read preference and they share half
//! of the time left in the run, so a slow probe leaves the other checks their
//! time. Replies are read by pure functions ([`read_explain`],
//! [`read_planned`]), tested on replies shaped as
//! MongoDB's manual shows them: classic plan trees, the slot-based engine's
//! `queryPlan`, 8.0's `EXPRESS_IXSCAN`, and mongos's per-shard plans.
//!
//! A compound key is probed the same way, with every field: the entry read
//! through the index gives one value per field, and the lookup explained is
//! the equality on all of them (`{tenantId: …, email: …}`), which a unique
//! index on exactly those fields answers by reading one entry.
//!
//! The key value found is user data: it lives only between the two commands
//! and is never kept, logged or shown. What is kept is the plan's shape (stage
//! and index names), the counts examined and the index's multikey flag.
//! A probe that cannot run says why and never fails the index check.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{FindOptions, Hint};
use serde::Serialize;

use super::index::IndexOutcome;
use super::Context;
use crate::mongo::{Deadline, QueryError};

/// What the probe learned about the application's lookup, or why it could not tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LookupProbe {
    /// The lookup of one existing key value was explained.
    Explained(LookupPlan),
    /// The probe did not run (no usable index, nothing to look up, a failed
    /// query); `uniqwatch_key_lookup_uses_unique_index` is absent meanwhile.
    NotRun {
        /// Why, in an operator's words; never holds a key value.
        reason: String,
    },
}

/// The shape of the winning plan of the application's lookup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LookupPlan {
    /// The winning plan is an index scan on the unique index, with at most
    /// one key and one document examined (through mongos: on every shard
    /// that answered). The value of `uniqwatch_key_lookup_uses_unique_index`.
    pub uses_unique_index: bool,
    /// The winning plan's stages from the root down, an index scan followed
    /// by its index's name: `FETCH > IXSCAN participantsKey_1`, `COLLSCAN`.
    /// Through mongos, the router's stage and each shard's plan:
    /// `SINGLE_SHARD [shard01: FETCH > IXSCAN participantsKey_1]`.
    pub plan: String,
    /// Index keys examined (through mongos: the most any one shard
    /// examined); `None` when the lookup was only planned, not executed.
    pub keys_examined: Option<u64>,
    /// Documents examined, like `keys_examined`.
    pub docs_examined: Option<u64>,
    /// The index's `isMultiKey`: whether some document's key is an array.
    /// `None` when the plan does not say (8.0's express path, no index scan).
    pub multikey: Option<bool>,
}

impl LookupProbe {
    fn not_run(reason: impl Into<String>) -> Self {
        LookupProbe::NotRun { reason: reason.into() }
    }

    /// The probe in a few words, for the landing page and `check`'s table.
    pub fn summary(&self) -> String {
        match self {
            LookupProbe::Explained(p) => format!(
                "key lookup {}: {}, {}{}",
                if p.uses_unique_index { "uses the index" } else { "does NOT use the index" },
                p.plan,
                match (p.keys_examined, p.docs_examined) {
                    (Some(keys), Some(docs)) => format!("{keys} keys and {docs} documents examined"),
                    _ => "planned, not executed".to_string(),
                },
                match p.multikey {
                    Some(true) => ", multikey",
                    _ => "",
                }
            ),
            LookupProbe::NotRun { reason } => format!("key lookup not checked: {reason}"),
        }
    }

    /// The metric's value: `None` when the probe did not run.
    pub fn uses_unique_index(&self) -> Option<bool> {
        match self {
            LookupProbe::Explained(p) => Some(p.uses_unique_index),
            LookupProbe::NotRun { .. } => None,
        }
    }
}

/// Finds one key value through the index of `outcome` and explains the
/// application's lookup of it. Never fails: a failure is a reason not to have run.
pub async fn probe(ctx: &Context<'_>, outcome: &IndexOutcome) -> LookupProbe {
    let budget = Deadline::after(ctx.deadline.remaining() / 2);
    let probed = match (&outcome.queryable, &outcome.name) {
        (Some(index), _) => budget.run(find_and_explain(ctx, &index.name, &budget)).await,
        // Hidden, or a non-simple collation: no value can be read through it.
        (None, Some(name)) if outcome.guarantees_uniqueness => budget.run(plan_only(ctx, name, &budget)).await,
        (None, Some(name)) => {
            return LookupProbe::not_run(format!(
                "index {name} is not (yet) a guarantee of uniqueness (see the index problem), so the lookup is not judged against it"
            ))
        }
        (None, None) => return LookupProbe::not_run("no unique index on the key to look it up through"),
    };
    probed.unwrap_or_else(|e| LookupProbe::not_run(format!("the probe failed: {e}")))
}

/// The stand-in key value of a lookup that is only planned: a string, as the
/// application's keys are (for other key types a collated index may still
/// serve the lookup; the plan of a string lookup does not show that).
const PLACEHOLDER: &str = "uniqwatch-lookup-plan";

async fn find_and_explain(ctx: &Context<'_>, index: &str, budget: &Deadline) -> Result<LookupProbe, QueryError> {
    let fields = ctx.target.key.fields();
    let mut projection = doc! { "_id": 0 };
    for field in fields {
        projection.insert(field, 1);
    }
    let options = FindOptions::builder()
        .hint(Hint::Name(index.to_string()))
        .limit(1)
        .projection(projection)
        .max_time(budget.remaining())
        .build();
    let mut cursor = ctx
        .coll
        .find(value_filter(fields))
        .with_options(options)
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let Some(found) = cursor.try_next().await.map_err(|e| ctx.mongo.error(&e))? else {
        return Ok(LookupProbe::not_run("no document has a key value to look up (the collection is empty or no key is set)"));
    };
    let mut values = Vec::with_capacity(fields.len());
    for field in fields {
        match lookup_value(&found, field) {
            Ok(value) => values.push(value),
            Err(reason) => return Ok(LookupProbe::not_run(reason)),
        }
    }
    let filter = lookup_filter(fields, values);
    // Planned first: a lookup the planner would not serve from the index is
    // judged from its plan alone, never executed (executing it would scan
    // the collection on every run, and time out exactly when it matters).
    let planned = read_planned(&explain(ctx, filter.clone(), "queryPlanner", budget).await?, index);
    if !matches!(planned, Ok(LookupPlan { uses_unique_index: true, .. })) {
        return Ok(judged(planned));
    }
    let reply = explain(ctx, filter, "executionStats", budget).await?;
    Ok(judged(read_explain(&reply, index)))
}

/// The plan of the lookup of [`PLACEHOLDER`] (in every field of a compound
/// key), not executed.
async fn plan_only(ctx: &Context<'_>, index: &str, budget: &Deadline) -> Result<LookupProbe, QueryError> {
    let fields = ctx.target.key.fields();
    let filter = lookup_filter(fields, fields.iter().map(|_| Bson::String(PLACEHOLDER.into())).collect());
    let reply = explain(ctx, filter, "queryPlanner", budget).await?;
    Ok(judged(read_planned(&reply, index)))
}

fn judged(read: Result<LookupPlan, ExplainError>) -> LookupProbe {
    match read {
        Ok(plan) => LookupProbe::Explained(plan),
        Err(e) => LookupProbe::not_run(format!("the explain reply could not be read: {e}")),
    }
}

/// The application's lookup: `{<key>: {$eq: value}}`, one equality per
/// field of a compound key. `$eq` is parsed by the server to the same query
/// (and plan) as the bare value, so a stored value that looks like an
/// operator document or a regular expression is still compared as a value.
pub fn lookup_filter(fields: &[String], values: Vec<Bson>) -> Document {
    fields.iter().zip(values).map(|(field, value)| (field.clone(), Bson::Document(doc! { "$eq": value }))).collect()
}

/// Explains the application's lookup `filter` (see [`lookup_filter`]), without a hint.
async fn explain(ctx: &Context<'_>, filter: Document, verbosity: &str, budget: &Deadline) -> Result<Document, QueryError> {
    let max_time_ms = budget.remaining().as_millis().min(i64::MAX as u128) as i64;
    let command = doc! {
        "explain": {
            "find": &ctx.target.collection,
            "filter": filter,
            "maxTimeMS": max_time_ms,
        },
        "verbosity": verbosity,
        "maxTimeMS": max_time_ms,
    };
    let mut action = ctx.db.run_command(command);
    if let Some(criteria) = ctx.client.selection_criteria().cloned() {
        action = action.selection_criteria(criteria);
    }
    action.await.map_err(|e| ctx.mongo.error(&e))
}

/// The filter that reads a usable key value from the index: every bound it
/// sets (key present, not null, not the empty string; on every field of a
/// compound key) is an index bound, so with `limit 1` the scan stops at the
/// first usable entry. `$exists: true` also keeps the query inside a partial
/// index on `{<key>: {$exists: true}}`, so the hint is accepted; a sparse
/// index holds only such entries anyway.
pub fn value_filter(fields: &[String]) -> Document {
    fields
        .iter()
        .map(|field| (field.clone(), Bson::Document(doc! { "$exists": true, "$nin": [Bson::Null, ""] })))
        .collect()
}

/// The key value to look up, from the projected document the index gave.
/// A key path is followed through embedded documents; an array (a multikey
/// entry) gives its first usable element, which is what an equality lookup
/// on that element finds through the index. Errors say why no value fits,
/// without quoting it.
pub fn lookup_value(found: &Document, key: &str) -> Result<Bson, &'static str> {
    let mut parts = key.split('.');
    let first = parts.next().unwrap_or(key);
    let mut value = found.get(first);
    for part in parts {
        value = match value {
            Some(Bson::Document(d)) => d.get(part),
            Some(Bson::Array(_)) => return Err("the key path crosses an array, so there is no single value to look up"),
            _ => None,
        };
    }
    let usable = |v: &Bson| !matches!(v, Bson::Null | Bson::Undefined | Bson::Array(_)) && v.as_str() != Some("");
    match value {
        None => Err("the entry read through the index has no key value"),
        Some(Bson::Array(items)) => items
            .iter()
            .find(|v| usable(v))
            .cloned()
            .ok_or("the first key found is an array without a usable element"),
        Some(v) if usable(v) => Ok(v.clone()),
        Some(_) => Err("the first key found is null or empty"),
    }
}

/// An explain reply that does not have the shape MongoDB documents.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExplainError {
    #[error("no {0} in the reply")]
    Missing(&'static str),
    #[error("no execution statistics for shard {0}")]
    ShardStats(String),
}

/// One server's part of the plan: its stage tree and execution counts.
#[derive(Debug, Clone, PartialEq)]
struct ServerPlan {
    /// Stages from the root down.
    stages: Vec<String>,
    /// Every leaf is an index scan on the unique index.
    on_index: bool,
    keys: u64,
    docs: u64,
    multikey: Option<bool>,
}

impl ServerPlan {
    fn uses(&self) -> bool {
        self.on_index && self.keys <= 1 && self.docs <= 1
    }
}

/// Reads an `explain` reply of the lookup (verbosity `queryPlanner`): the
/// plan without counts. The lookup uses the index when every server's
/// winning plan is an index scan on it (a unique index's equality lookup
/// reads at most one entry).
pub fn read_planned(reply: &Document, index: &str) -> Result<LookupPlan, ExplainError> {
    let winning = winning_plan(reply)?;
    let servers: Vec<(Option<String>, ServerPlan)> = match winning.get_array("shards") {
        Ok(shards) => shards
            .iter()
            .filter_map(Bson::as_document)
            .map(|shard| (Some(shard_name(shard)), server_plan(shard.get_document("winningPlan").unwrap_or(shard), index)))
            .collect(),
        Err(_) => vec![(None, server_plan(winning, index))],
    };
    if servers.is_empty() {
        return Err(ExplainError::Missing("queryPlanner.winningPlan.shards[]"));
    }
    let mut plan = combine(winning, &servers);
    plan.uses_unique_index = servers.iter().all(|(_, s)| s.on_index);
    plan.keys_examined = None;
    plan.docs_examined = None;
    Ok(plan)
}

fn winning_plan(reply: &Document) -> Result<&Document, ExplainError> {
    reply
        .get_document("queryPlanner")
        .map_err(|_| ExplainError::Missing("queryPlanner"))?
        .get_document("winningPlan")
        .map_err(|_| ExplainError::Missing("queryPlanner.winningPlan"))
}

fn shard_name(shard: &Document) -> String {
    shard.get_str("shardName").unwrap_or("?").to_string()
}

/// Reads an `explain` reply (verbosity `executionStats`) of the lookup,
/// from a mongod or a mongos, judged against the index named `index`.
pub fn read_explain(reply: &Document, index: &str) -> Result<LookupPlan, ExplainError> {
    let winning = winning_plan(reply)?;
    let stats = reply.get_document("executionStats").map_err(|_| ExplainError::Missing("executionStats"))?;

    let Ok(shards) = winning.get_array("shards") else {
        let mut server = server_plan(winning, index);
        server.keys = count(stats, "totalKeysExamined").ok_or(ExplainError::Missing("executionStats.totalKeysExamined"))?;
        server.docs = count(stats, "totalDocsExamined").ok_or(ExplainError::Missing("executionStats.totalDocsExamined"))?;
        return Ok(combine(winning, &[(None, server)]));
    };

    // mongos: the router's stage, then one plan and one set of counts per shard.
    let shard_stats: Vec<&Document> = stats
        .get_document("executionStages")
        .and_then(|s| s.get_array("shards"))
        .map(|list| list.iter().filter_map(Bson::as_document).collect())
        .unwrap_or_default();
    let mut servers = Vec::new();
    for (i, shard) in shards.iter().filter_map(Bson::as_document).enumerate() {
        let name = shard_name(shard);
        let plan = shard.get_document("winningPlan").unwrap_or(shard);
        let mut server = server_plan(plan, index);
        let own = shard_stats
            .iter()
            .find(|s| s.get_str("shardName").is_ok_and(|n| n == name))
            .or_else(|| shard_stats.get(i))
            .ok_or_else(|| ExplainError::ShardStats(name.clone()))?;
        let (keys, docs) = shard_counts(own).ok_or_else(|| ExplainError::ShardStats(name.clone()))?;
        server.keys = keys;
        server.docs = docs;
        servers.push((Some(name), server));
    }
    if servers.is_empty() {
        return Err(ExplainError::Missing("queryPlanner.winningPlan.shards[]"));
    }
    Ok(combine(winning, &servers))
}

/// The plan of one server (`name` `None`: a mongod), or of a mongos's
/// shards (each named) under the router's stage, judged on every server.
fn combine(winning: &Document, servers: &[(Option<String>, ServerPlan)]) -> LookupPlan {
    let plan = match servers {
        [(None, server)] => server.stages.join(" > "),
        _ => format!(
            "{} [{}]",
            winning.get_str("stage").unwrap_or("?"),
            servers
                .iter()
                .map(|(name, s)| format!("{}: {}", name.as_deref().unwrap_or("?"), s.stages.join(" > ")))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let multikeys: Vec<Option<bool>> = servers.iter().map(|(_, s)| s.multikey).collect();
    LookupPlan {
        uses_unique_index: servers.iter().all(|(_, s)| s.uses()),
        plan,
        keys_examined: servers.iter().map(|(_, s)| s.keys).max(),
        docs_examined: servers.iter().map(|(_, s)| s.docs).max(),
        multikey: if multikeys.contains(&Some(true)) {
            Some(true)
        } else if multikeys.iter().all(|m| *m == Some(false)) {
            Some(false)
        } else {
            None
        },
    }
}

/// A shard's counts: its `totalKeysExamined`/`totalDocsExamined` when given,
/// else the sum of its stages' `keysExamined`/`docsExamined`.
fn shard_counts(shard: &Document) -> Option<(u64, u64)> {
    if let (Some(keys), Some(docs)) = (count(shard, "totalKeysExamined"), count(shard, "totalDocsExamined")) {
        return Some((keys, docs));
    }
    let stages = shard.get_document("executionStages").ok()?;
    let mut keys = 0;
    let mut docs = 0;
    walk(stages, &mut |stage| {
        keys += count(stage, "keysExamined").unwrap_or(0);
        docs += count(stage, "docsExamined").unwrap_or(0);
    });
    Some((keys, docs))
}

/// One server's winning plan, classic (`stage` at the root) or slot-based
/// (the tree under `queryPlan`, next to `slotBasedPlan`).
fn server_plan(winning: &Document, index: &str) -> ServerPlan {
    let tree = winning.get_document("queryPlan").unwrap_or(winning);
    let mut stages = Vec::new();
    let mut leaves = 0;
    let mut on_index = true;
    let mut multikey = None;
    walk(tree, &mut |stage| {
        let name = stage.get_str("stage").unwrap_or("?");
        let scans_index = matches!(name, "IXSCAN" | "EXPRESS_IXSCAN");
        match stage.get_str("indexName") {
            Ok(ix) if scans_index => stages.push(format!("{name} {ix}")),
            _ => stages.push(name.to_string()),
        }
        if !stage.contains_key("inputStage") && !stage.contains_key("inputStages") {
            leaves += 1;
            on_index &= scans_index && stage.get_str("indexName").is_ok_and(|ix| ix == index);
            if scans_index {
                multikey = stage.get_bool("isMultiKey").ok();
            }
        }
    });
    ServerPlan { stages, on_index: on_index && leaves > 0, keys: 0, docs: 0, multikey }
}

/// Visits a stage tree root first, following `inputStage` and `inputStages`.
fn walk<'a>(stage: &'a Document, visit: &mut impl FnMut(&'a Document)) {
    visit(stage);
    if let Ok(child) = stage.get_document("inputStage") {
        walk(child, visit);
    }
    if let Ok(children) = stage.get_array("inputStages") {
        for child in children.iter().filter_map(Bson::as_document) {
            walk(child, visit);
        }
    }
}

/// A non-negative count of any numeric BSON type.
fn count(d: &Document, field: &str) -> Option<u64> {
    match d.get(field)? {
        Bson::Int32(n) => u64::try_from(*n).ok(),
        Bson::Int64(n) => u64::try_from(*n).ok(),
        Bson::Double(n) if *n >= 0.0 && n.fract() == 0.0 => Some(*n as u64),
        _ => None,
    }
}

#[cfg(test)]
#[path = "lookup_plan_tests.rs"]
mod tests;
