//! Tests of [`super`] (scan.rs) for compound keys: one pass grouping by
//! every field, each document without a usable key counted once.

use super::*;

fn fields() -> Vec<String> {
    vec!["tenantId".to_string(), "email".to_string()]
}

/// A compound key is grouped by all its fields in one pass: documents
/// are classified by the first missing kind in priority order, else
/// grouped by the array of their values in key order.
#[test]
fn the_compound_pipeline_groups_by_every_field_with_a_fixed_priority() {
    let p = compound_pipeline(&fields(), IdSample::FirstN(5));
    assert_eq!(p.len(), 2);
    let first = p[0].get_document("$group").unwrap();
    let group = Bson::Document(first.get_document("_id").unwrap().clone());
    assert_eq!(group, compound_group(&fields()));
    // Outermost condition first: absent, then null, empty, array, then the values.
    let mut kinds = Vec::new();
    let mut expr = &group;
    while let Bson::Document(d) = expr {
        let cond = d.get_array("$cond").unwrap();
        let tests = cond[0].as_document().unwrap().get_array("$or").unwrap();
        assert_eq!(tests.len(), 2, "one test per field");
        kinds.push(cond[1].as_str().unwrap().to_string());
        expr = &cond[2];
    }
    assert_eq!(kinds, COMPOUND_KINDS);
    assert_eq!(expr, &Bson::Array(vec!["$tenantId".into(), "$email".into()]));
    assert_eq!(first.get_document("ids").unwrap().get_document("$firstN").unwrap().get_i64("n").unwrap(), 5);
    let without = format!("{:?}", compound_pipeline(&fields(), IdSample::FirstAndLast));
    assert!(!without.contains("$firstN") && without.contains("$last"), "{without}");
}

#[test]
fn compound_rows_fold_into_duplicates_with_an_object_key_and_kinds() {
    let fields = fields();
    let mut s = Summary::default();
    s.add_compound_row(&doc! {"_id": "singles", "n": 40}, &fields, 20);
    s.add_compound_row(&doc! {"_id": {"k": ["t1", "a@x"]}, "n": 3, "ids": [1, 2, 3]}, &fields, 20);
    s.add_compound_row(&doc! {"_id": {"k": [7, "b@x"]}, "n": 2, "first": 4, "last": 5}, &fields, 20);
    for (kind, n) in [("absent", 4), ("null", 3), ("empty", 2), ("array", 1)] {
        s.add_compound_row(&doc! {"_id": {"m": kind}, "n": n, "ids": [9]}, &fields, 20);
    }
    assert_eq!((s.duplicate_keys, s.duplicate_documents), (2, 3));
    assert_eq!((s.absent, s.null, s.empty, s.array), (4, 3, 2, 1));
    assert_eq!(s.documents, 40 + 3 + 2 + 10);
    assert_eq!(s.sample[0].key, serde_json::json!({"tenantId": "t1", "email": "a@x"}));
    let order: Vec<&String> = s.sample[0].key.as_object().unwrap().keys().collect();
    assert_eq!(order, ["tenantId", "email"], "the key object keeps the key's order");
    assert_eq!(s.sample[0].ids.len(), 3);
    assert_eq!(s.sample[1].key, serde_json::json!({"tenantId": 7, "email": "b@x"}));
    assert_eq!(s.sample[1].ids, vec![serde_json::json!(4), serde_json::json!(5)]);
}

#[test]
fn the_compound_counting_pipeline_counts_each_kind_once() {
    let p = compound_counts_pipeline(&fields());
    assert_eq!(p[0], doc! {"$project": {"_id": 0, "g": compound_group(&fields())}});
    let group = p[1].get_document("$group").unwrap();
    assert_eq!(group.get("_id"), Some(&Bson::Null), "no grouping by key");
    for kind in COMPOUND_KINDS {
        assert_eq!(group.get_document(kind).unwrap(), &doc! {"$sum": {"$cond": [{"$eq": ["$g", kind]}, 1, 0]}});
    }
    assert!(!format!("{p:?}").contains("$firstN"));
}
