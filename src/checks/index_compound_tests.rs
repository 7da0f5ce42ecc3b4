//! Tests of [`super`] (index.rs) for compound keys: the index must be the
//! key's fields in the key's order, with the single-field rules for
//! uniqueness, sparseness and partial filters.

use super::*;

fn spec(d: Document) -> IndexSpec {
    IndexSpec::from_document(&d)
}
fn id_index() -> IndexSpec {
    spec(doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"})
}

fn tenant_email() -> KeySpec {
    KeySpec::from(vec!["tenantId".to_string(), "email".to_string()])
}

#[test]
fn a_compound_unique_index_in_key_order_is_the_guarantee() {
    for directions in [(1, 1), (1, -1), (-1, 1)] {
        let ix = spec(doc! {"key": {"tenantId": directions.0, "email": directions.1}, "name": "te", "unique": true, "sparse": true});
        let o = evaluate(&[id_index(), ix], &tenant_email(), true, Namespace::Collection);
        assert!(o.present && o.guarantees_uniqueness, "{directions:?}: {o:?}");
        assert_eq!(o.queryable.as_ref().map(|q| q.name.as_str()), Some("te"));
    }
}

#[test]
fn a_compound_index_in_another_order_is_not_the_keys_index() {
    let ix = spec(doc! {"key": {"email": 1, "tenantId": 1}, "name": "et", "unique": true, "sparse": true});
    let o = evaluate(&[id_index(), ix], &tenant_email(), true, Namespace::Collection);
    assert!(!o.present && !o.guarantees_uniqueness && o.queryable.is_none(), "{o:?}");
    let problem = o.problem.unwrap();
    assert!(problem.starts_with("no index on {tenantId: 1, email: 1}; a unique index et ("), "{problem}");
    assert!(problem.contains("on the same fields in another order"), "{problem}");
}

#[test]
fn more_or_fewer_fields_or_a_hashed_pattern_are_not_the_keys_index() {
    let cases = [
        (doc! {"tenantId": 1, "email": 1, "createdAt": 1}, "has more fields than the key"),
        (doc! {"tenantId": 1}, "only some of the key's fields"),
        (doc! {"tenantId": 1, "email": "hashed"}, "not in ascending or descending order"),
    ];
    for (pattern, why) in cases {
        let ix = spec(doc! {"key": pattern.clone(), "name": "x", "unique": true});
        let o = evaluate(&[ix], &tenant_email(), true, Namespace::Collection);
        assert!(!o.present && !o.guarantees_uniqueness, "{pattern}: {o:?}");
        assert!(o.problem.as_deref().unwrap().contains(why), "{pattern}: {o:?}");
    }
    let single = evaluate(&[], &tenant_email(), true, Namespace::Collection);
    assert_eq!(single.problem.as_deref(), Some("no index on {tenantId: 1, email: 1}"));
}

/// A compound key keeps the single-field rules: unique, sparse as
/// expected, and a partial filter counts only when made of `$exists`
/// conditions on the key's fields (every fully keyed document passes).
#[test]
fn compound_sparse_and_partial_rules_follow_the_single_field_ones() {
    let key = tenant_email();
    let plain = spec(doc! {"key": {"tenantId": 1, "email": 1}, "name": "te", "unique": true});
    let o = evaluate(std::slice::from_ref(&plain), &key, true, Namespace::Collection);
    assert!(!o.present && o.guarantees_uniqueness && o.problem.unwrap().contains("not sparse"));
    assert!(evaluate(&[plain], &key, false, Namespace::Collection).present);
    let not_unique = spec(doc! {"key": {"tenantId": 1, "email": 1}, "name": "te", "sparse": true});
    let o = evaluate(&[not_unique], &key, true, Namespace::Collection);
    assert_eq!(o.problem.as_deref(), Some("index te on (tenantId, email) is not unique"));
    for filter in [
        doc! {"tenantId": {"$exists": true}, "email": {"$exists": true}},
        doc! {"$and": [{"tenantId": {"$exists": 1}}, {"email": {"$exists": true}}]},
        doc! {"email": {"$exists": true}},
    ] {
        let ix = spec(doc! {"key": {"tenantId": 1, "email": 1}, "name": "te", "unique": true, "partialFilterExpression": filter.clone()});
        let o = evaluate(&[ix], &key, true, Namespace::Collection);
        assert!(o.present && o.sparse && o.guarantees_uniqueness, "{filter}: {o:?}");
    }
    let narrower = spec(doc! {"key": {"tenantId": 1, "email": 1}, "name": "te", "unique": true,
        "partialFilterExpression": {"tenantId": {"$exists": true}, "status": "active"}});
    let o = evaluate(&[narrower], &key, true, Namespace::Collection);
    assert!(!o.guarantees_uniqueness);
    assert!(o.problem.unwrap().contains("only $exists: true on the key's fields covers every keyed document"));
}

/// Through mongos the shard key must be a prefix of the compound key, in
/// order, for each shard's unique index to be a guarantee across shards.
#[test]
fn through_mongos_the_shard_key_must_prefix_the_compound_key() {
    use crate::checks::shards::ShardsView;
    let key = tenant_email();
    for (shard_key, enforces) in [
        (doc! {"tenantId": 1}, true),
        (doc! {"tenantId": "hashed"}, true),
        (doc! {"tenantId": 1, "email": 1}, true),
        (doc! {"email": 1}, false),
        (doc! {"tenantId": 1, "email": 1, "x": 1}, false),
    ] {
        let view = ShardsView::sharded(shard_key.clone(), Vec::new(), &key);
        assert_eq!(view.enforces_across_shards, enforces, "{shard_key}");
    }
    let problem = ShardsView::sharded(doc! {"email": 1}, Vec::new(), &key).problem(&key).unwrap();
    assert!(problem.contains("sharded on {email: 1}, which is not a prefix of {tenantId: 1, email: 1}"), "{problem}");
}
