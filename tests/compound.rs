//! Compound keys (`key = ["tenantId", "email"]`) on seeded data, against a
//! real MongoDB wire server: duplicates of all the fields together, missing
//! keys per kind with their priority, and the index that must be the key's
//! fields in the key's order.

mod common;

use std::path::Path;

use common::*;
use mongodb::bson::{doc, Bson, Document};
use uniqwatch::checks::{run_target, LookupProbe, Method, TargetRun};
use uniqwatch::config::Config;
use uniqwatch::mongo::Mongo;

/// The config of one target `users` on `db.users` keyed by `tenantId, email`.
fn config(db: &str, sparse: bool) -> Config {
    let text = target_toml(&shared_uri(), "users", db, "users", "participantsKey", sparse, "0 */5 * * * *")
        .replace("key = \"participantsKey\"", "key = [\"tenantId\", \"email\"]");
    Config::from_toml(&text, Path::new("test.toml"), None).unwrap()
}

async fn run(db: &str, sparse: bool) -> TargetRun {
    let config = config(db, sparse);
    let mongo = Mongo::new(config.mongodb.clone());
    run_target(&config.targets[0], &mongo).await
}

/// A user with the given fields; `None` leaves a field out.
fn user(tenant: Option<Bson>, email: Option<Bson>) -> Document {
    let mut d = doc! { "name": "someone" };
    if let Some(t) = tenant {
        d.insert("tenantId", t);
    }
    if let Some(e) = email {
        d.insert("email", e);
    }
    d
}

fn keyed(tenant: impl Into<Bson>, email: &str) -> Document {
    user(Some(tenant.into()), Some(email.into()))
}

async fn create_index(db: &str, spec: Document) {
    command(&shared_uri(), db, doc! { "createIndexes": "users", "indexes": [spec] }).await;
}

/// Documents without a usable key, each counted once under the first kind
/// that applies to any field (absent, null, empty, array): 3 absent, 2 null,
/// 2 empty, 1 array.
fn unusable() -> Vec<Document> {
    vec![
        user(None, Some("x@x".into())),
        user(None, None),
        user(Some(Bson::Null), None),
        user(Some("t1".into()), Some(Bson::Null)),
        user(Some(Bson::Null), Some("".into())),
        user(Some("".into()), Some("z@x".into())),
        user(Some("".into()), Some(Bson::Array(vec!["a@x".into()]))),
        user(Some(Bson::Array(vec!["t1".into()])), Some("a@x".into())),
    ]
}

#[tokio::test]
async fn duplicates_of_a_compound_key_share_every_field() {
    let db = unique_db("compound_dups");
    let mut docs = vec![keyed("t1", "a@x"), keyed("t1", "a@x"), keyed("t1", "a@x"), keyed(2, "a@x"), keyed(2, "a@x")];
    // The same email in another tenant, the same tenant with another email: no duplicates.
    docs.extend([keyed("t2", "a@x"), keyed("t1", "b@x")]);
    docs.extend((0..10).map(|i| keyed("t3", &format!("u{i}@x"))));
    docs.extend(unusable());
    seed(&shared_uri(), &db, "users", docs).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert_eq!(i.problem.as_deref(), Some("no index on {tenantId: 1, email: 1}"));

    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents, d.method), (2, 3, Method::Aggregation));
    assert_eq!(d.sample[0].key, serde_json::json!({"tenantId": "t1", "email": "a@x"}));
    assert_eq!(d.sample[0].key.to_string(), r#"{"tenantId":"t1","email":"a@x"}"#, "key order");
    assert_eq!((d.sample[0].count, d.sample[0].ids.len()), (3, 3));
    assert_eq!(d.sample[1].key, serde_json::json!({"tenantId": 2, "email": "a@x"}));
    assert_eq!(d.sample[1].count, 2);

    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array), (3, 2, 2, 1), "one kind per document, by priority");
    assert_eq!((m.documents, m.method), (25, Method::Aggregation));

    // The key is shown as its fields, and written back as an array.
    let config = config(&db, true);
    let json = uniqwatch::report::target_json(&config.targets[0], &run);
    assert_eq!(json["key"], serde_json::json!(["tenantId", "email"]));
    assert_eq!(json["duplicates"]["sample"][0]["key"], serde_json::json!({"tenantId": "t1", "email": "a@x"}));
    let text = uniqwatch::report::check_text(&config.targets, std::slice::from_ref(&run));
    assert!(text.starts_with(&format!("users ({db}.users key tenantId, email)")), "{text}");
    assert!(text.contains(r#"{"tenantId":"t1","email":"a@x"} held by 3 documents"#), "{text}");
}

/// A document missing one field is missing its key even when the other
/// field is set; the priority decides the one kind it is counted under.
#[tokio::test]
async fn each_missing_kind_of_a_compound_key_is_counted_per_field() {
    let db = unique_db("compound_kinds");
    let docs = vec![
        user(Some("t".into()), None),
        user(None, Some("e".into())),
        user(Some("t".into()), Some(Bson::Null)),
        user(Some(Bson::Null), Some("e".into())),
        user(Some("t".into()), Some("".into())),
        user(Some("t".into()), Some(Bson::Array(vec![]))),
        user(Some(Bson::Array(vec!["t".into()])), Some(Bson::Null)),
        keyed("t", "e"),
    ];
    seed(&shared_uri(), &db, "users", docs).await;
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents), (2, 3, 1, 1, 8), "null outranks array");
    assert_eq!(run.duplicates().unwrap().keys, 0);
}

#[tokio::test]
async fn a_compound_unique_index_in_key_order_is_the_guarantee() {
    let db = unique_db("compound_ix");
    let mut docs: Vec<Document> = (0..20).map(|i| keyed(format!("t{}", i % 3), &format!("u{i}@x"))).collect();
    docs.extend([keyed("t0", "shared@x"), keyed("t1", "shared@x")]);
    docs.extend([user(None, Some("x@x".into())), user(Some("t1".into()), Some(Bson::Null)), user(Some("".into()), Some("z@x".into()))]);
    seed(&shared_uri(), &db, "users", docs).await;
    create_index(&db, doc! {"key": {"tenantId": 1, "email": -1}, "name": "tenant_email", "unique": true, "sparse": true}).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.unique && i.sparse, "{i:?}");
    assert_eq!(i.name.as_deref(), Some("tenant_email"));
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents, d.method), (0, 0, Method::UniqueIndex));
    // No hinted walk for a compound key: one counting pass over the collection.
    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents), (1, 1, 1, 0, 25));
    assert_eq!(m.method, Method::CollectionCounts);
    // The lookup is explained with an equality on both fields of one document.
    assert!(matches!(i.lookup, Some(LookupProbe::Explained(_))), "{:?}", i.lookup);
    let json = serde_json::to_string(i).unwrap();
    assert!(!json.contains("@x"), "a key value leaked: {json}");
}

#[tokio::test]
async fn a_unique_index_on_the_fields_in_another_order_is_not_the_guarantee() {
    let db = unique_db("compound_order");
    seed(&shared_uri(), &db, "users", vec![keyed("t1", "a@x"), keyed("t2", "a@x"), keyed("t1", "b@x")]).await;
    create_index(&db, doc! {"key": {"email": 1, "tenantId": 1}, "name": "email_tenant", "unique": true, "sparse": true}).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(!i.present, "{i:?}");
    let problem = i.problem.as_deref().unwrap();
    assert!(problem.starts_with("no index on {tenantId: 1, email: 1}; a unique index email_tenant ("), "{problem}");
    assert!(problem.contains("is on the same fields in another order"), "{problem}");
    assert!(matches!(&i.lookup, Some(LookupProbe::NotRun { .. })), "{:?}", i.lookup);
    // Not a guarantee: duplicates are scanned for.
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.method), (0, Method::Aggregation));
    assert_eq!(run.missing_keys().unwrap().method, Method::Aggregation);
}
