//! The `missing_keys` check: documents whose key is absent, null, the empty
//! string or an array, counted apart, and the collection's size.
//!
//! With a visible unique index on the key (simple collation), one
//! aggregation hinted on it gives every figure in one walk of the index:
//!
//! - a plain (non-sparse) index holds every document, so the walk counts the
//!   collection and each kind directly: nothing is subtracted;
//! - a sparse (or `$exists`-partial) index holds only keyed documents, so the
//!   walk counts the keyed ones (and null, empty, array among them) and
//!   `absent = documents − keyed`. Both sides of that subtraction must come
//!   from one server at one point in time, or lag and concurrent writes
//!   fabricate or hide absent documents. On a replica-set member or a
//!   standalone server the collection size is the metadata count, read on the
//!   same member just before and just after the walk: equal, and the
//!   figure is taken; different (documents were inserted or removed during
//!   the walk), and the pass is tried again, then taken in one snapshot
//!   session where the server offers one (with the `_id` index counted
//!   before and after the walk, so a snapshot that does not hold is caught),
//!   and otherwise one counting pass over the collection gives every figure
//!   from one operation (a busy collection never leaves the check failing
//!   run after run). Through mongos the metadata count includes orphaned
//!   documents, so the size comes from a count of the `_id` index (which
//!   mongos filters), in the same snapshot as the walk (5.0+), or from one
//!   walk of the `_id` index giving every figure on older clusters.
//!
//! More keyed documents than documents is impossible; it means the metadata
//! count is wrong (after an unclean shutdown): it is never clamped, the
//! counting pass gives the figures, and the daemon says once which member's
//! count is wrong and how `validate` corrects it. In a snapshot the same
//! result is an inconsistent index and fails the check.
//!
//! Without such an index, the figures come from the collection: from the
//! light counting pass of [`scan::count_pass`] when an index (hidden, or with
//! a non-simple collation) already guarantees uniqueness, else from the
//! shared full pass that `duplicates` already ran.
//!
//! A compound key always takes those collection passes, never the index
//! walks above: a compound sparse index holds every document with *any* of
//! the key's fields, so `documents − keyed` is not the documents missing
//! their key (one missing a single field is in the index), and the walk's
//! per-kind counts would need the same per-document classification as the
//! collection pass. Each document is counted once, under the first kind
//! that applies to any of its fields: absent, null, empty, array.

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{AggregateOptions, Hint, SelectionCriteria, ServerAddress};
use mongodb::ClientSession;
use serde::Serialize;

use super::scan::{self, counts_pipeline, Counts};
use super::{Context, Method};
use crate::deployment::Topology;
use crate::mongo::{admin_command, FailureReason, QueryError};

/// What the missing-keys check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingKeysOutcome {
    /// Documents without the key field.
    pub absent: u64,
    /// Documents whose key is an explicit null.
    pub null: u64,
    /// Documents whose key is the empty string.
    pub empty: u64,
    /// Documents whose key is an array: the key is meant to be a scalar, and
    /// a unique index compares arrays element by element, so duplicates
    /// among them are invisible to a count by whole value.
    pub array: u64,
    /// Documents in the collection.
    pub documents: u64,
    /// How the figures were produced.
    pub method: Method,
}

impl MissingKeysOutcome {
    /// Documents without a usable scalar key, whatever the kind.
    pub fn total(&self) -> u64 {
        self.absent + self.null + self.empty + self.array
    }

    fn from_counts(c: Counts, method: Method) -> Self {
        MissingKeysOutcome {
            absent: c.absent,
            null: c.null,
            empty: c.empty,
            array: c.array,
            documents: c.n,
            method,
        }
    }
}

/// Keyed walks, each between two metadata counts, before the collection size
/// is taken another way (a snapshot, else a pass over the collection).
const METADATA_ATTEMPTS: usize = 2;

/// The `_id` index, which every collection has.
const ID_INDEX: &str = "_id_";

pub async fn run(ctx: &mut Context<'_>) -> Result<MissingKeysOutcome, QueryError> {
    ctx.require_collection()?;
    let guarantees = ctx.index.as_ref().is_some_and(|i| i.guarantees_uniqueness);
    // The index walks are exact for a single field only (see the module doc).
    let single = ctx.target.key.single().map(str::to_string);
    let queryable = ctx.index.as_ref().and_then(|i| i.queryable.clone());
    let (Some(index), Some(key)) = (queryable, single) else {
        if guarantees {
            let counts = scan::count_pass(ctx).await?;
            return Ok(MissingKeysOutcome::from_counts(counts, Method::CollectionCounts));
        }
        let s = ctx.scan().await?;
        return Ok(MissingKeysOutcome {
            absent: s.absent,
            null: s.null,
            empty: s.empty,
            array: s.array,
            documents: s.documents,
            method: Method::Aggregation,
        });
    };
    if !index.skips_absent {
        // Every document is in the index: one walk counts them all.
        let counts = aggregate(ctx, &index.name, counts_pipeline(&key, false), None, None).await?;
        return Ok(MissingKeysOutcome::from_counts(counts, Method::IndexCounts));
    }
    if ctx.deployment.is_sharded_router() {
        if ctx.deployment.has_snapshot_reads() {
            return in_snapshot(ctx, &index.name, &key, None).await;
        }
        // No snapshot to share: one walk of the `_id` index gives every
        // figure from one operation, nothing subtracted.
        let counts = aggregate(ctx, ID_INDEX, counts_pipeline(&key, false), None, None).await?;
        return Ok(MissingKeysOutcome::from_counts(counts, Method::IndexCounts));
    }
    let pin = pin(ctx).await?;
    let member = pin.as_ref().map(|(_, name)| name.clone());
    let pinned = pin.as_ref().map(|(criteria, _)| criteria);
    match pinned_counts(ctx, &index.name, &key, pinned).await {
        Ok(Some(outcome)) => Ok(outcome),
        // No exact subtraction here: one counting pass over the collection
        // gives every figure from one operation, nothing subtracted.
        Ok(None) => {
            let counts = scan::count_pass(ctx).await?;
            Ok(MissingKeysOutcome::from_counts(counts, Method::CollectionCounts))
        }
        Err(e) => Err(match member {
            Some(member) if e.reason == FailureReason::Unreachable => lost_member(&member, &e),
            _ => e,
        }),
    }
}

/// The sparse-index figures from one member: the keyed walk between two
/// metadata counts, then in one snapshot; `None` when neither gives an
/// exact subtraction (the size kept changing and no snapshot held, or the
/// metadata count is impossible), so the caller counts the collection.
async fn pinned_counts(
    ctx: &Context<'_>,
    index: &str,
    key: &str,
    pin: Option<&SelectionCriteria>,
) -> Result<Option<MissingKeysOutcome>, QueryError> {
    for _ in 0..METADATA_ATTEMPTS {
        let before = metadata_count(ctx, pin).await?;
        let keyed = aggregate(ctx, index, counts_pipeline(key, true), pin, None).await?;
        let after = metadata_count(ctx, pin).await?;
        if before != after {
            continue;
        }
        return match subtract(keyed, before, Size::Metadata, &ctx.target.collection) {
            Ok(outcome) => Ok(Some(outcome)),
            Err(impossible) => {
                if ctx.mongo.note_lacking("a correct metadata count") {
                    tracing::warn!(
                        target = ctx.target.name.as_str(),
                        problem = %impossible.message,
                        "the collection's metadata count is wrong; missing keys are counted by a pass over the collection until it is corrected"
                    );
                }
                Ok(None)
            }
        };
    }
    if !ctx.deployment.has_snapshot_reads() {
        return Ok(None);
    }
    match in_snapshot(ctx, index, key, pin).await {
        // A snapshot refused (majority reads disabled, a look-alike server)
        // or one that did not hold: counted another way, not failed.
        Err(e) if e.reason == FailureReason::Other && !e.message.starts_with(IMPOSSIBLE) => Ok(None),
        other => other.map(Some),
    }
}

/// How an impossible result's message starts.
const IMPOSSIBLE: &str = "impossible counts";

/// The failure when the member the counts were pinned to stopped answering
/// mid-run: a rolling restart, not an outage of the deployment.
fn lost_member(member: &str, e: &QueryError) -> QueryError {
    QueryError::new(
        FailureReason::Other,
        format!("the member the counts were pinned to ({member}) stopped answering during them ({}); the next run picks a member again", e.message),
    )
}

/// Where the collection size subtracted from came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The metadata count, equal before and after the keyed walk.
    Metadata,
    /// A count of the `_id` index in the keyed walk's snapshot.
    Snapshot,
}

/// `absent = documents − keyed`, or the failure that says why it cannot be:
/// more keyed documents than documents is never clamped.
pub fn subtract(keyed: Counts, documents: u64, size: Size, collection: &str) -> Result<MissingKeysOutcome, QueryError> {
    let Some(absent) = documents.checked_sub(keyed.n) else {
        let message = match size {
            Size::Metadata => format!(
                "{IMPOSSIBLE}: the unique index holds {} keyed documents but the collection's metadata count is {documents} on the member read; \
                 the count is wrong (typically after an unclean shutdown of that member): db.runCommand({{validate: \"{collection}\"}}) on that member corrects it, \
                 but locks the collection while it runs: do it in a maintenance window",
                keyed.n
            ),
            Size::Snapshot => format!(
                "{IMPOSSIBLE}: in one snapshot the unique index holds {} keyed documents but the _id index only {documents}; \
                 an index is inconsistent: run db.runCommand({{validate: \"{collection}\", full: true}})",
                keyed.n
            ),
        };
        return Err(QueryError::new(FailureReason::Other, message));
    };
    Ok(MissingKeysOutcome {
        absent,
        null: keyed.null,
        empty: keyed.empty,
        array: keyed.array,
        documents,
        method: Method::IndexCounts,
    })
}

/// The keyed walk between two counts of the `_id` index, all in one
/// snapshot session: one point in time. `count` is refused in a snapshot,
/// and the `_id` index is walked instead of the collection. The two counts
/// can only differ if the server's snapshot did not hold (look-alike servers
/// accept snapshot sessions without pinning reads); then no figure is given.
async fn in_snapshot(
    ctx: &Context<'_>,
    index: &str,
    key: &str,
    pin: Option<&SelectionCriteria>,
) -> Result<MissingKeysOutcome, QueryError> {
    let mut session = ctx
        .client
        .start_session()
        .snapshot(true)
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    let size = || vec![doc! { "$group": { "_id": Bson::Null, "n": { "$sum": 1 } } }];
    let before = aggregate(ctx, ID_INDEX, size(), pin, Some(&mut session)).await?.n;
    let keyed = aggregate(ctx, index, counts_pipeline(key, true), pin, Some(&mut session)).await?;
    let after = aggregate(ctx, ID_INDEX, size(), pin, Some(&mut session)).await?.n;
    if before != after {
        return Err(snapshot_did_not_hold(before, after));
    }
    subtract(keyed, before, Size::Snapshot, &ctx.target.collection)
}

/// The failure when two counts in one snapshot session differ.
pub fn snapshot_did_not_hold(before: u64, after: u64) -> QueryError {
    QueryError::new(
        FailureReason::Other,
        format!(
            "two counts of the _id index in one snapshot session differ ({before} then {after}): the server's snapshot reads \
             do not hold one point in time, so absent documents cannot be counted exactly and no figure is given"
        ),
    )
}

/// The replica-set member every read of this run's figure goes to: the one
/// the client's read preference picks now, by the name it gives itself
/// (`hello.me`), asked afresh each run so a member that left is not chased.
/// `None` where there is one server to read from anyway (a standalone, a
/// direct connection) or the topology has no members to choose between.
async fn pin(ctx: &Context<'_>) -> Result<Option<(SelectionCriteria, String)>, QueryError> {
    if ctx.deployment.topology != Topology::ReplicaSet || ctx.mongo.is_direct() {
        return Ok(None);
    }
    let reply = admin_command(ctx.client, doc! { "hello": 1 }).await.map_err(|e| ctx.mongo.error(&e))?;
    let me = reply.get_str("me").ok().or(ctx.deployment.me.as_deref());
    let Some((address, name)) = me.and_then(|m| ServerAddress::parse(m).ok().map(|a| (a, m.to_string()))) else {
        return Err(QueryError::new(
            FailureReason::Other,
            "the replica-set member did not name itself (hello.me), so the counts cannot be pinned to one member",
        ));
    };
    let criteria = SelectionCriteria::Predicate(std::sync::Arc::new(move |server| server.address() == &address));
    Ok(Some((criteria, name)))
}

/// The collection's metadata count (`count` without a query).
async fn metadata_count(ctx: &Context<'_>, pin: Option<&SelectionCriteria>) -> Result<u64, QueryError> {
    let mut count = ctx.coll.estimated_document_count().max_time(ctx.deadline.remaining());
    if let Some(pin) = pin {
        count = count.selection_criteria(pin.clone());
    }
    count.await.map_err(|e| ctx.mongo.error(&e))
}

/// Runs a counting pipeline hinted on `index` and reads its one row.
async fn aggregate(
    ctx: &Context<'_>,
    index: &str,
    pipeline: Vec<Document>,
    pin: Option<&SelectionCriteria>,
    session: Option<&mut ClientSession>,
) -> Result<Counts, QueryError> {
    let mut options = AggregateOptions::builder()
        .hint(Hint::Name(index.to_string()))
        .max_time(ctx.deadline.remaining())
        .comment(Bson::String("uniqwatch: missing keys".into()))
        .build();
    options.selection_criteria = pin.cloned();
    let action = ctx.coll.aggregate(pipeline).with_options(options);
    let failed = |e: mongodb::error::Error| ctx.mongo.error(&e);
    let row = match session {
        Some(session) => {
            let mut cursor = action.session(&mut *session).await.map_err(failed)?;
            cursor.next(session).await.transpose().map_err(failed)?
        }
        None => {
            use futures_util::TryStreamExt;
            action.await.map_err(failed)?.try_next().await.map_err(failed)?
        }
    };
    Ok(Counts::from_row(row.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(n: u64) -> Counts {
        Counts { n, null: 1, empty: 2, array: 3, absent: 0 }
    }

    #[test]
    fn absent_is_the_size_minus_the_keyed_documents() {
        let o = subtract(keyed(7), 10, Size::Metadata, "chats").unwrap();
        assert_eq!((o.absent, o.null, o.empty, o.array, o.documents), (3, 1, 2, 3, 10));
        assert_eq!(o.total(), 9, "arrays count towards the total");
        assert_eq!(subtract(keyed(10), 10, Size::Snapshot, "chats").unwrap().absent, 0);
    }

    /// Issue 10: a metadata count below the index's keyed documents was
    /// clamped to zero absent, hiding a wrong count (a missed page).
    #[test]
    fn more_keyed_documents_than_documents_is_an_impossible_result() {
        let e = subtract(keyed(11), 10, Size::Metadata, "chats").unwrap_err();
        assert_eq!(e.reason, FailureReason::Other);
        assert!(e.message.starts_with("impossible counts"), "{}", e.message);
        assert!(e.message.contains("validate: \"chats\""), "{}", e.message);
        assert!(e.message.contains("11 keyed") && e.message.contains("is 10"), "{}", e.message);
        let e = subtract(keyed(11), 10, Size::Snapshot, "chats").unwrap_err();
        assert!(e.message.contains("one snapshot"), "{}", e.message);
    }

    /// Review of issue 10: a pinned member restarting mid-run is not an outage.
    #[test]
    fn losing_the_pinned_member_is_not_an_outage() {
        let e = lost_member("db2:27017", &QueryError::new(FailureReason::Unreachable, "server selection timeout"));
        assert_eq!(e.reason, FailureReason::Other);
        assert!(e.message.contains("db2:27017") && e.message.contains("server selection timeout"), "{}", e.message);
    }

    #[test]
    fn a_snapshot_that_did_not_hold_is_a_failure() {
        let e = snapshot_did_not_hold(340, 346);
        assert_eq!(e.reason, FailureReason::Other);
        assert!(e.message.contains("340 then 346") && e.message.contains("no figure"), "{}", e.message);
    }

    #[test]
    fn a_plain_index_walk_is_taken_as_it_is() {
        let c = Counts { n: 12, absent: 1, null: 0, empty: 1, array: 2 };
        let o = MissingKeysOutcome::from_counts(c, Method::IndexCounts);
        assert_eq!((o.absent, o.null, o.empty, o.array, o.documents), (1, 0, 1, 2, 12));
    }
}
