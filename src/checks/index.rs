//! The `index` check: does a unique index on exactly `{<key>: 1}` (or `-1`)
//! exist, sparse as configured?
//!
//! `listIndexes` is sent as a raw cursor command with the client's read
//! preference, because the driver's helper pins it to the primary. The
//! verdict itself is a pure function, [`evaluate`], so its rules are tested
//! without a server. Its result also tells the other checks whether the
//! index already guarantees uniqueness, and whether it can answer queries.
//! Once it can, the key lookup probe ([`super::lookup_plan`]) explains the
//! application's lookup by key and the outcome keeps the plan's shape.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde::Serialize;

use super::lookup_plan::LookupProbe;
use super::Context;
use crate::mongo::QueryError;

/// What the index check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexOutcome {
    /// The expected unique index exists with the expected options.
    pub present: bool,
    /// Name of the index that matched, or of the closest candidate.
    pub name: Option<String>,
    /// The candidate's `unique` option.
    pub unique: bool,
    /// The candidate is sparse, or partial on `{<key>: {$exists: true}}`.
    pub sparse: bool,
    /// The candidate is hidden from the query planner (it still enforces uniqueness).
    pub hidden: bool,
    /// Why the index does not match, in an operator's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Some index (even one with the wrong sparse option) makes duplicates
    /// among keyed documents impossible, so no scan is needed to count them.
    #[serde(skip)]
    pub guarantees_uniqueness: bool,
    /// Name of an index that can be hinted to count missing keys without a
    /// collection scan: it guarantees uniqueness, is visible, uses the simple
    /// collation, and indexes documents without the key when `!sparse`.
    #[serde(skip)]
    pub queryable: Option<QueryableIndex>,
    /// Whether the application's lookup by key uses the index (see
    /// [`lookup_plan`](super::lookup_plan)); `None` until the probe ran.
    pub lookup: Option<LookupProbe>,
}

/// An index the `missing_keys` check may hint.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryableIndex {
    pub name: String,
    /// Documents without the key are not in the index.
    pub skips_absent: bool,
}

/// One entry of `listIndexes`, reduced to what the verdict needs.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub key: Document,
    pub unique: bool,
    pub sparse: bool,
    pub hidden: bool,
    pub partial_filter: Option<Document>,
    pub collation: Option<Document>,
}

impl IndexSpec {
    /// Reads one `listIndexes` entry; fields of unexpected types count as absent.
    pub fn from_document(d: &Document) -> Self {
        let flag = |name: &str| match d.get(name) {
            Some(Bson::Boolean(b)) => *b,
            Some(Bson::Int32(n)) => *n != 0,
            Some(Bson::Int64(n)) => *n != 0,
            Some(Bson::Double(n)) => *n != 0.0,
            _ => false,
        };
        IndexSpec {
            name: d.get_str("name").unwrap_or_default().to_string(),
            key: d.get_document("key").cloned().unwrap_or_default(),
            unique: flag("unique"),
            sparse: flag("sparse"),
            hidden: flag("hidden"),
            partial_filter: d.get_document("partialFilterExpression").ok().cloned(),
            collation: d.get_document("collation").ok().cloned(),
        }
    }

    /// The key pattern is exactly `{<key>: 1}` or `{<key>: -1}`.
    fn is_single_field_on(&self, key: &str) -> bool {
        if self.key.len() != 1 {
            return false;
        }
        match self.key.get(key) {
            Some(Bson::Int32(n)) => *n == 1 || *n == -1,
            Some(Bson::Int64(n)) => *n == 1 || *n == -1,
            Some(Bson::Double(n)) => *n == 1.0 || *n == -1.0,
            _ => false,
        }
    }

    /// The key appears somewhere in a compound (or other) pattern.
    fn mentions(&self, key: &str) -> bool {
        self.key.contains_key(key)
    }

    /// `partialFilterExpression` is exactly `{<key>: {$exists: true}}`.
    fn partial_is_exists(&self, key: &str) -> bool {
        let Some(filter) = &self.partial_filter else { return false };
        filter.len() == 1
            && filter
                .get_document(key)
                .map(|cond| cond.len() == 1 && matches!(cond.get("$exists"), Some(Bson::Boolean(true))))
                .unwrap_or(false)
    }

    fn simple_collation(&self) -> bool {
        match &self.collation {
            None => true,
            Some(c) => c.get_str("locale").map(|l| l == "simple").unwrap_or(false),
        }
    }
}

/// The verdict over every index of the collection. `collection_exists` is
/// false when `listIndexes` answered NamespaceNotFound.
pub fn evaluate(indexes: &[IndexSpec], key: &str, expect_sparse: bool, collection_exists: bool) -> IndexOutcome {
    let candidates: Vec<&IndexSpec> = indexes.iter().filter(|i| i.is_single_field_on(key)).collect();
    // The best candidate is the one matching most expectations; ties keep listing order.
    let score = |i: &IndexSpec| {
        let covers_all = i.partial_filter.is_none() || i.partial_is_exists(key);
        let sparse_like = i.sparse || i.partial_is_exists(key);
        (i.unique && covers_all) as u8 * 8
            + i.unique as u8 * 4
            + (sparse_like == expect_sparse) as u8 * 2
            + (!i.hidden) as u8
    };
    let best = candidates.iter().copied().fold(None, |best: Option<&IndexSpec>, i| match best {
        Some(b) if score(b) >= score(i) => Some(b),
        _ => Some(i),
    });

    let Some(index) = best else {
        let problem = if !collection_exists {
            "the collection does not exist".to_string()
        } else if let Some(compound) = indexes.iter().find(|i| i.mentions(key) && i.key.len() > 1) {
            format!(
                "no index on {{{key}: 1}} alone; index {} ({}) is compound and does not make {key} unique by itself",
                compound.name, compound.key
            )
        } else {
            format!("no index on {{{key}: 1}}")
        };
        return IndexOutcome {
            present: false,
            name: None,
            unique: false,
            sparse: false,
            hidden: false,
            problem: Some(problem),
            guarantees_uniqueness: false,
            queryable: None,
            lookup: None,
        };
    };

    let partial_exists = index.partial_is_exists(key);
    let sparse_like = index.sparse || partial_exists;
    let covers_all = index.partial_filter.is_none() || partial_exists;
    let guarantees = index.unique && covers_all;
    let problem = if !index.unique {
        Some(format!("index {} on {key} is not unique", index.name))
    } else if !covers_all {
        Some(format!(
            "index {} has partialFilterExpression {}; only {{{key}: {{$exists: true}}}} covers every keyed document",
            index.name,
            index.partial_filter.as_ref().map(|f| f.to_string()).unwrap_or_default()
        ))
    } else if sparse_like != expect_sparse {
        Some(if expect_sparse {
            format!("index {} is unique but not sparse; the target expects sparse = true", index.name)
        } else {
            format!("index {} is sparse; the target expects sparse = false", index.name)
        })
    } else {
        None
    };
    let queryable = (guarantees && !index.hidden && index.simple_collation()).then(|| QueryableIndex {
        name: index.name.clone(),
        skips_absent: sparse_like,
    });
    IndexOutcome {
        present: problem.is_none(),
        name: Some(index.name.clone()),
        unique: index.unique,
        sparse: sparse_like,
        hidden: index.hidden,
        problem,
        guarantees_uniqueness: guarantees,
        queryable,
        lookup: None,
    }
}

/// MongoDB's NamespaceNotFound: `listIndexes` on a collection that does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

/// Lists the collection's indexes and evaluates them.
pub async fn run(ctx: &mut Context<'_>) -> Result<IndexOutcome, QueryError> {
    let command = doc! {
        "listIndexes": &ctx.target.collection,
        "maxTimeMS": ctx.max_time_ms(),
    };
    let criteria = ctx.client.selection_criteria().cloned();
    let mut action = ctx.db.run_cursor_command(command);
    if let Some(criteria) = criteria {
        action = action.selection_criteria(criteria);
    }
    let (specs, exists) = match action.await {
        Ok(cursor) => {
            let docs: Vec<Document> = cursor.try_collect().await.map_err(|e| ctx.mongo.error(&e))?;
            (docs.iter().map(IndexSpec::from_document).collect::<Vec<_>>(), true)
        }
        Err(e) if matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == NAMESPACE_NOT_FOUND) => {
            (Vec::new(), false)
        }
        Err(e) => return Err(ctx.mongo.error(&e)),
    };
    let mut outcome = evaluate(&specs, &ctx.target.key, ctx.target.sparse, exists);
    outcome.lookup = Some(super::lookup_plan::probe(ctx, &outcome).await);
    ctx.index = Some(outcome.clone());
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(d: Document) -> IndexSpec {
        IndexSpec::from_document(&d)
    }
    fn id_index() -> IndexSpec {
        spec(doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"})
    }
    const K: &str = "participantsKey";

    #[test]
    fn unique_sparse_index_is_present_and_queryable() {
        let o = evaluate(
            &[id_index(), spec(doc! {"key": {K: 1}, "name": "participantsKey_1", "unique": true, "sparse": true})],
            K,
            true,
            true,
        );
        assert!(o.present, "{o:?}");
        assert_eq!(o.name.as_deref(), Some("participantsKey_1"));
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable, Some(QueryableIndex { name: "participantsKey_1".into(), skips_absent: true }));
    }

    #[test]
    fn descending_and_int64_and_double_key_patterns_count() {
        for v in [Bson::Int32(-1), Bson::Int64(1), Bson::Double(1.0)] {
            let o = evaluate(&[spec(doc! {"key": {K: v.clone()}, "name": "x", "unique": true, "sparse": true})], K, true, true);
            assert!(o.present, "{v:?}");
        }
    }

    #[test]
    fn missing_index_is_reported() {
        let o = evaluate(&[id_index()], K, true, true);
        assert!(!o.present);
        assert!(!o.guarantees_uniqueness);
        assert_eq!(o.problem.as_deref(), Some("no index on {participantsKey: 1}"));
    }

    #[test]
    fn non_unique_index_is_wrong() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "sparse": true})], K, true, true);
        assert!(!o.present);
        assert!(!o.unique);
        assert!(!o.guarantees_uniqueness);
        assert!(o.problem.unwrap().contains("not unique"));
    }

    #[test]
    fn non_sparse_unique_when_sparse_expected_is_wrong_but_guarantees() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true})], K, true, true);
        assert!(!o.present);
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable.as_ref().map(|q| q.skips_absent), Some(false));
        assert!(o.problem.unwrap().contains("not sparse"));
    }

    #[test]
    fn plain_unique_when_plain_expected_is_present() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true})], K, false, true);
        assert!(o.present, "{o:?}");
    }

    #[test]
    fn sparse_when_plain_expected_is_wrong() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true})], K, false, true);
        assert!(!o.present);
        assert!(o.problem.unwrap().contains("expects sparse = false"));
    }

    #[test]
    fn partial_exists_counts_as_sparse() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": {K: {"$exists": true}}})],
            K,
            true,
            true,
        );
        assert!(o.present, "{o:?}");
        assert!(o.sparse);
    }

    #[test]
    fn other_partial_filter_does_not_guarantee() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": {"status": "active"}})],
            K,
            true,
            true,
        );
        assert!(!o.present);
        assert!(!o.guarantees_uniqueness);
        assert!(o.problem.unwrap().contains("partialFilterExpression"));
    }

    #[test]
    fn hidden_unique_index_is_present_but_not_queryable() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true, "hidden": true})], K, true, true);
        assert!(o.present);
        assert!(o.hidden);
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable, None);
    }

    #[test]
    fn compound_index_does_not_count() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1, "createdAt": 1}, "name": "pk_created", "unique": true, "sparse": true})],
            K,
            true,
            true,
        );
        assert!(!o.present);
        assert!(o.problem.unwrap().contains("compound"));
    }

    #[test]
    fn wrong_key_order_compound_does_not_count() {
        let o = evaluate(
            &[spec(doc! {"key": {"createdAt": 1, K: 1}, "name": "c", "unique": true})],
            K,
            true,
            true,
        );
        assert!(!o.present);
    }

    #[test]
    fn best_candidate_wins_over_listing_order() {
        let o = evaluate(
            &[
                spec(doc! {"key": {K: 1}, "name": "plain"}),
                spec(doc! {"key": {K: -1}, "name": "good", "unique": true, "sparse": true}),
            ],
            K,
            true,
            true,
        );
        assert!(o.present);
        assert_eq!(o.name.as_deref(), Some("good"));
    }

    #[test]
    fn visible_index_preferred_over_an_equal_hidden_one() {
        let o = evaluate(
            &[
                spec(doc! {"key": {K: 1}, "name": "hidden", "unique": true, "sparse": true, "hidden": true}),
                spec(doc! {"key": {K: 1}, "name": "visible", "unique": true, "partialFilterExpression": {K: {"$exists": true}}}),
            ],
            K,
            true,
            true,
        );
        assert_eq!(o.name.as_deref(), Some("visible"));
        assert!(o.queryable.is_some());
    }

    #[test]
    fn case_insensitive_collation_is_not_queryable() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "ci", "unique": true, "sparse": true, "collation": {"locale": "en", "strength": 2}})],
            K,
            true,
            true,
        );
        assert!(o.present);
        assert_eq!(o.queryable, None);
    }

    #[test]
    fn missing_collection_says_so() {
        let o = evaluate(&[], K, true, false);
        assert_eq!(o.problem.as_deref(), Some("the collection does not exist"));
    }
}
