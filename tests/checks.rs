//! The three checks on seeded data, against a real MongoDB wire server.

mod common;

use std::path::Path;

use common::*;
use mongodb::bson::{doc, Bson, Document};
use uniqwatch::checks::scan::{pipeline, IdSample, Summary};
use uniqwatch::checks::{run_target, LookupProbe, Method, TargetRun};
use uniqwatch::config::Config;
use uniqwatch::mongo::Mongo;

fn chat(key: Option<Bson>) -> Document {
    let mut d = doc! { "participants": ["a", "b"], "createdAt": mongodb::bson::DateTime::now() };
    if let Some(k) = key {
        d.insert("participantsKey", k);
    }
    d
}

fn keyed(k: &str) -> Document {
    chat(Some(Bson::String(k.into())))
}

async fn run(db: &str, sparse: bool) -> TargetRun {
    let uri = shared_uri();
    let text = target_toml(&uri, "chats", db, "chats", "participantsKey", sparse, "0 */5 * * * *");
    let config = Config::from_toml(&text, Path::new("test.toml"), None).unwrap();
    let mongo = Mongo::new(config.mongodb.clone());
    run_target(&config.targets[0], &mongo).await
}

async fn create_index(db: &str, spec: Document) {
    command(&shared_uri(), db, doc! { "createIndexes": "chats", "indexes": [spec] }).await;
}

#[tokio::test]
async fn duplicates_and_missing_keys_without_an_index() {
    let db = unique_db("noindex");
    let mut docs = vec![keyed("u1_u2"), keyed("u1_u2"), keyed("u1_u2"), keyed("u3_u4"), keyed("u3_u4")];
    docs.extend((0..50).map(|i| keyed(&format!("solo_{i}"))));
    docs.extend([chat(None), chat(None), chat(Some(Bson::Null)), chat(Some("".into())), chat(Some("".into()))]);
    seed(&shared_uri(), &db, "chats", docs).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let index = run.index().unwrap();
    assert!(!index.present);
    assert_eq!(index.problem.as_deref(), Some("no index on {participantsKey: 1}"));

    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents), (2, 3), "absent/null/empty must not count as duplicates");
    assert_eq!(d.method, Method::Aggregation);
    assert_eq!(d.sample[0].key, serde_json::json!("u1_u2"));
    assert_eq!(d.sample[0].count, 3);
    assert_eq!(d.sample[0].ids.len(), 3);
    assert_eq!(d.sample[1].count, 2);

    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty), (2, 1, 2));
    assert_eq!(m.documents, 60);
    assert_eq!(m.method, Method::Aggregation);
    assert_eq!(run.violations().len(), 3);
    assert!(matches!(run.verdict(), uniqwatch::checks::Verdict::Violated(v) if v.len() == 3));
}

#[tokio::test]
async fn unique_sparse_index_answers_from_the_index() {
    let db = unique_db("sparse");
    let mut docs: Vec<Document> = (0..30).map(|i| keyed(&format!("k{i}"))).collect();
    docs.extend([chat(None), chat(None), chat(None), chat(Some(Bson::Null)), chat(Some("".into()))]);
    seed(&shared_uri(), &db, "chats", docs).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.unique && i.sparse && !i.hidden, "{i:?}");
    assert_eq!(i.name.as_deref(), Some("participantsKey_1"));
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents, d.method), (0, 0, Method::UniqueIndex));
    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.documents), (3, 1, 1, 35));
    assert_eq!(m.method, Method::IndexCounts);
}

#[tokio::test]
async fn plain_unique_index_when_sparse_expected_is_wrong_but_still_counts() {
    let db = unique_db("plain");
    let mut docs: Vec<Document> = (0..10).map(|i| keyed(&format!("k{i}"))).collect();
    docs.push(chat(None)); // a plain unique index allows one document without the key
    docs.push(chat(Some("".into())));
    seed(&shared_uri(), &db, "chats", docs).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true}).await;

    let wrong = run(&db, true).await;
    let i = wrong.index().unwrap();
    assert!(!i.present);
    assert!(i.problem.as_deref().unwrap().contains("not sparse"), "{i:?}");
    assert_eq!(wrong.duplicates().unwrap().method, Method::UniqueIndex);
    let m = wrong.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.documents), (1, 0, 1, 12));
    assert_eq!(m.method, Method::IndexCounts);

    let right = run(&db, false).await;
    assert!(right.index().unwrap().present);
    // The absent document's null entry in the plain index is skipped by the value filter.
    let lookup = right.index().unwrap().lookup.as_ref().and_then(LookupProbe::uses_unique_index);
    assert_eq!(lookup, Some(true), "{:?}", right.index());
}

#[tokio::test]
async fn partial_index_on_exists_counts_as_sparse() {
    let db = unique_db("partial");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b"), chat(None), chat(Some(Bson::Null))]).await;
    create_index(
        &db,
        doc! {"key": {"participantsKey": 1}, "name": "pk_partial", "unique": true,
              "partialFilterExpression": {"participantsKey": {"$exists": true}}},
    )
    .await;
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.sparse, "{i:?}");
    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.documents, m.method), (1, 1, 0, 4, Method::IndexCounts));
    // `$exists: true` in the probe's filter keeps its hint inside the partial
    // index, so a key value is found and the lookup explained. (Which plan
    // wins is the server's: mongod serves `{key: value}` from this index, the
    // test server plans a collection scan, and the probe reports what it sees.)
    let Some(LookupProbe::Explained(plan)) = &i.lookup else { panic!("{i:?}") };
    // Issue 10 review: a plan that does not scan the unique index is judged
    // from its shape and never executed (it would scan the collection).
    if !plan.uses_unique_index {
        assert_eq!((plan.keys_examined, plan.docs_examined), (None, None), "{plan:?}");
    }
}

#[tokio::test]
async fn hidden_unique_index_is_present_and_figures_come_from_one_pass() {
    let db = unique_db("hidden");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b"), chat(None), chat(Some("".into()))]).await;
    create_index(
        &db,
        doc! {"key": {"participantsKey": 1}, "name": "pk_hidden", "unique": true, "sparse": true, "hidden": true},
    )
    .await;
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.hidden, "{i:?}");
    assert_eq!(run.duplicates().unwrap().method, Method::UniqueIndex);
    let m = run.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.documents, m.method), (1, 0, 1, 4, Method::CollectionCounts));
}

#[tokio::test]
async fn compound_index_does_not_count_as_the_unique_index() {
    let db = unique_db("compound");
    let mut second = keyed("a");
    second.insert("shard", 2);
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), second]).await;
    create_index(
        &db,
        doc! {"key": {"shard": 1, "participantsKey": 1}, "name": "shard_pk", "unique": true},
    )
    .await;
    let run = run(&db, true).await;
    let i = run.index().unwrap();
    assert!(!i.present);
    assert!(i.problem.as_deref().unwrap().contains("compound"), "{i:?}");
    assert_eq!(run.duplicates().unwrap().keys, 1);
}

#[tokio::test]
async fn non_unique_index_is_wrong_and_duplicates_are_scanned() {
    let db = unique_db("nonunique");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("a"), keyed("b")]).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "sparse": true}).await;
    let run = run(&db, true).await;
    let i = run.index().unwrap();
    assert!(!i.present && !i.unique, "{i:?}");
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents, d.method), (1, 1, Method::Aggregation));
}

/// Issue 10: a namespace with nothing to count is a clear state: the index
/// check says what the name is, and the counting checks fail with that
/// reason (their figures withdrawn) instead of reporting a clean zero.
fn assert_nothing_to_count(run: &TargetRun, problem: &str) {
    let i = run.index().unwrap_or_else(|| panic!("{:?}", run.results));
    assert!(!i.present, "{i:?}");
    assert!(i.problem.as_deref().unwrap().contains(problem), "{i:?}");
    let errors: Vec<_> = run.errors().collect();
    assert_eq!(errors.len(), 2, "{:?}", run.results);
    for (_, e) in errors {
        assert_eq!(e.reason, uniqwatch::mongo::FailureReason::Other);
        assert!(e.message.contains(problem), "{}", e.message);
    }
    assert!(run.reached_mongodb());
}

#[tokio::test]
async fn missing_collection_or_database_is_a_clear_state() {
    let db = unique_db("nocoll");
    assert_nothing_to_count(&run(&db, true).await, "does not exist");
    // The database exists, the collection does not.
    seed(&shared_uri(), &db, "other", vec![doc! {"x": 1}]).await;
    assert_nothing_to_count(&run(&db, true).await, "does not exist");
}

#[tokio::test]
async fn a_collection_dropped_or_renamed_while_watched_is_never_a_stale_green() {
    let db = unique_db("dropped");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b")]).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true}).await;
    let before = run(&db, true).await;
    assert!(before.index().unwrap().present && before.errors().count() == 0, "{:?}", before.results);

    command(&shared_uri(), &db, doc! {"dropIndexes": "chats", "index": "pk"}).await;
    let dropped_index = run(&db, true).await;
    assert!(!dropped_index.index().unwrap().present);
    assert_eq!(dropped_index.duplicates().unwrap().method, Method::Aggregation);
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true}).await;
    assert!(run(&db, true).await.index().unwrap().present, "a rebuilt index is seen again");

    command(&shared_uri(), "admin", doc! {"renameCollection": format!("{db}.chats"), "to": format!("{db}.chats_old")}).await;
    assert_nothing_to_count(&run(&db, true).await, "does not exist");
    seed(&shared_uri(), &db, "chats", vec![keyed("c")]).await;
    command(&shared_uri(), &db, doc! {"drop": "chats"}).await;
    assert_nothing_to_count(&run(&db, true).await, "does not exist");
}

#[tokio::test]
async fn a_view_is_not_taken_for_a_collection() {
    let db = unique_db("view");
    seed(&shared_uri(), &db, "raw", vec![keyed("a"), keyed("a")]).await;
    command(&shared_uri(), &db, doc! {"create": "chats", "viewOn": "raw", "pipeline": []}).await;
    assert_nothing_to_count(&run(&db, true).await, "is a view");
}

#[tokio::test]
async fn partial_filter_spelt_with_exists_one_counts_as_sparse() {
    let db = unique_db("partial1");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b"), chat(None)]).await;
    create_index(
        &db,
        doc! {"key": {"participantsKey": 1}, "name": "pk_partial", "unique": true,
              "partialFilterExpression": {"$and": [{"participantsKey": {"$exists": 1}}]}},
    )
    .await;
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.sparse, "{i:?}");
    assert_eq!(run.duplicates().unwrap().method, Method::UniqueIndex);
}

#[tokio::test]
async fn a_partial_filter_narrower_than_the_key_is_scanned() {
    let db = unique_db("partialnarrow");
    let mut archived = keyed("a");
    archived.insert("status", "archived");
    let mut active = keyed("a");
    active.insert("status", "active");
    seed(&shared_uri(), &db, "chats", vec![archived, active, keyed("b")]).await;
    create_index(
        &db,
        doc! {"key": {"participantsKey": 1}, "name": "pk_active", "unique": true,
              "partialFilterExpression": {"status": "active"}},
    )
    .await;
    let run = run(&db, true).await;
    let i = run.index().unwrap();
    assert!(!i.present && i.problem.as_deref().unwrap().contains("only inside that filter"), "{i:?}");
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.documents, d.method), (1, 1, Method::Aggregation));
}

#[tokio::test]
async fn unreachable_server_fails_every_check_as_unreachable() {
    let closed = ClosedPort::new();
    let text = target_toml(
        &format!("mongodb://127.0.0.1:{}/", closed.port),
        "x",
        "app",
        "chats",
        "participantsKey",
        true,
        "0 */5 * * * *",
    );
    // Also when server selection takes the whole run's budget: the later
    // checks fail as unreachable at once, not as timeouts.
    for text in [text.clone(), text.replace("query_timeout = \"5s\"", "query_timeout = \"1s\"")] {
        let config = Config::from_toml(&text, Path::new("t.toml"), None).unwrap();
        let run = run_target(&config.targets[0], &Mongo::new(config.mongodb.clone())).await;
        let errors: Vec<_> = run.errors().collect();
        assert_eq!(errors.len(), 3);
        assert!(errors.iter().all(|(_, e)| e.reason == uniqwatch::mongo::FailureReason::Unreachable), "{errors:?}");
        assert!(!run.reached_mongodb());
    }
}

/// The test server is no mongos: the index check stays with `listIndexes`,
/// and nothing sharded appears in the outcome, the JSON or `/metrics`.
#[tokio::test]
async fn a_server_that_is_not_a_mongos_shows_nothing_sharded() {
    let db = unique_db("notsharded");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b")]).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let i = run.index().unwrap();
    assert!(i.present && i.shards.is_none(), "{i:?}");
    let metrics = uniqwatch::metrics::Metrics::new();
    uniqwatch::checks::record(&run, None, &metrics);
    let text = metrics.encode();
    assert!(text.contains("uniqwatch_unique_index_present{target=\"chats\"} 1"), "{text}");
    assert!(!text.contains("uniqwatch_unique_index_shards"), "{text}");
    let json = serde_json::to_value(i).unwrap();
    assert!(json.get("shards").is_none(), "{json}");
}

/// The run's JSON object (as `check --format json` prints it) and `/metrics`
/// text after recording it.
fn json_and_metrics(run: &TargetRun, db: &str) -> (serde_json::Value, String) {
    let text = target_toml(&shared_uri(), "chats", db, "chats", "participantsKey", true, "0 */5 * * * *");
    let config = Config::from_toml(&text, Path::new("test.toml"), None).unwrap();
    let metrics = uniqwatch::metrics::Metrics::new();
    uniqwatch::checks::record(run, None, &metrics);
    (uniqwatch::report::target_json(&config.targets[0], run), metrics.encode())
}

/// The gauge's line for target `chats`, if exported.
fn lookup_gauge(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find(|l| l.starts_with("uniqwatch_key_lookup_uses_unique_index{"))
        .map(|l| l.rsplit(' ').next().unwrap_or_default())
}

#[tokio::test]
async fn key_lookup_is_explained_through_the_unique_index_and_its_value_is_never_shown() {
    let db = unique_db("lookup");
    // Distinctive values: none of them may appear in the JSON, the metrics or the summary.
    let mut docs: Vec<Document> = (0..20).map(|i| keyed(&format!("secret_user_{i:02}_peer"))).collect();
    docs.extend([chat(None), chat(Some(Bson::Null)), chat(Some("".into()))]);
    seed(&shared_uri(), &db, "chats", docs).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;

    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let index = run.index().unwrap();
    let Some(LookupProbe::Explained(plan)) = &index.lookup else { panic!("not explained: {:?}", index.lookup) };
    assert!(plan.uses_unique_index, "{plan:?}");
    assert!(plan.plan.ends_with("IXSCAN participantsKey_1"), "{plan:?}");
    assert!(plan.keys_examined <= Some(1) && plan.docs_examined <= Some(1), "{plan:?}");
    assert!(plan.keys_examined.is_some(), "{plan:?}");
    assert_eq!(plan.multikey, Some(false));

    let (json, metrics) = json_and_metrics(&run, &db);
    assert_eq!(json["index"]["lookup"]["state"], "explained");
    assert_eq!(json["index"]["lookup"]["uses_unique_index"], true);
    assert_eq!(lookup_gauge(&metrics), Some("1"));
    let summary = run.result(uniqwatch::checks::CheckName::Index).unwrap().outcome.as_ref().unwrap().summary();
    assert!(summary.contains("key lookup uses the index"), "{summary}");
    for shown in [json.to_string(), metrics, summary, format!("{:?}", run.index())] {
        assert!(!shown.contains("secret_user"), "a key value leaked: {shown}");
    }
}

#[tokio::test]
async fn key_lookup_on_array_keys_reports_the_index_multikey() {
    let db = unique_db("lookupmk");
    seed(
        &shared_uri(),
        &db,
        "chats",
        vec![chat(Some(Bson::Array(vec!["u1".into(), "u2".into()]))), keyed("u3_u4")],
    )
    .await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;
    let run = run(&db, true).await;
    let Some(LookupProbe::Explained(plan)) = &run.index().unwrap().lookup else { panic!("{:?}", run.index()) };
    assert_eq!(plan.multikey, Some(true), "{plan:?}");
    assert!(plan.uses_unique_index, "{plan:?}");
}

#[tokio::test]
async fn key_lookup_without_the_index_is_absent_and_says_why() {
    let indexed = unique_db("lookupix");
    seed(&shared_uri(), &indexed, "chats", vec![keyed("a"), keyed("b")]).await;
    create_index(&indexed, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;
    let db = unique_db("lookupnoix");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b")]).await;

    // The same target first with the index, then without: the gauge is
    // withdrawn, not left at its last value.
    let metrics = uniqwatch::metrics::Metrics::new();
    let before = run(&indexed, true).await;
    uniqwatch::checks::record(&before, None, &metrics);
    assert_eq!(lookup_gauge(&metrics.encode()), Some("1"));
    let run = run(&db, true).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    uniqwatch::checks::record(&run, Some(&before), &metrics);
    assert_eq!(lookup_gauge(&metrics.encode()), None, "{}", metrics.encode());

    let (json, _) = json_and_metrics(&run, &db);
    assert_eq!(json["index"]["lookup"]["state"], "not_run");
    assert!(json["index"]["lookup"]["reason"].as_str().unwrap().contains("no unique index"), "{json}");
}

#[tokio::test]
async fn key_lookup_of_an_empty_collection_is_absent_and_says_why() {
    let empty = unique_db("lookupempty");
    seed(&shared_uri(), &empty, "chats", vec![chat(None)]).await;
    create_index(&empty, doc! {"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}).await;
    let run_empty = run(&empty, true).await;
    assert!(run_empty.index().unwrap().present);
    let (json, metrics) = json_and_metrics(&run_empty, &empty);
    assert!(json["index"]["lookup"]["reason"].as_str().unwrap().contains("no document has a key value"), "{json}");
    assert_eq!(lookup_gauge(&metrics), None);

}

#[tokio::test]
async fn key_lookup_with_a_hidden_index_is_planned_only() {
    let db = unique_db("lookuphidden");
    seed(&shared_uri(), &db, "chats", vec![keyed("a"), keyed("b")]).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true, "hidden": true}).await;
    let run = run(&db, true).await;
    let (json, metrics) = json_and_metrics(&run, &db);
    let lookup = &json["index"]["lookup"];
    // A hidden index cannot be hinted, so no key value is read; the lookup is
    // only planned. mongod never plans with a hidden index (a COLLSCAN: 0,
    // covered by the unit tests); the test server does, and the probe reports
    // the plan the server chose either way.
    assert_eq!(lookup["state"], "explained", "{json}");
    assert!(lookup["keys_examined"].is_null(), "a planned lookup is not executed: {json}");
    let uses = lookup["uses_unique_index"].as_bool().unwrap();
    assert_eq!(uses, lookup["plan"].as_str().unwrap().ends_with("IXSCAN pk"), "{json}");
    assert_eq!(lookup_gauge(&metrics), Some(if uses { "1" } else { "0" }));
}

/// The counting commands a run sent to `db.chats`, from the server's
/// profiler: the index check's own (`listIndexes`, `$indexStats`, the lookup
/// probe's hinted `find` and its `explain`) are left out.
async fn profiled(db: &str, run: impl std::future::Future<Output = TargetRun>) -> (TargetRun, Vec<Document>) {
    let uri = shared_uri();
    command(&uri, db, doc! {"profile": 2}).await;
    let result = run.await;
    command(&uri, db, doc! {"profile": 0}).await;
    let c = client(&uri).await;
    let mut entries = c.database(db).collection::<Document>("system.profile").find(doc! {"ns": format!("{db}.chats")}).await.unwrap();
    let mut commands = Vec::new();
    while entries.advance().await.unwrap() {
        if let Ok(cmd) = entries.deserialize_current().unwrap().get_document("command") {
            let index_stats = cmd
                .get_array("pipeline")
                .ok()
                .and_then(|p| p.first())
                .and_then(Bson::as_document)
                .is_some_and(|stage| stage.contains_key("$indexStats"));
            let index_check = ["listIndexes", "find", "explain"].iter().any(|k| cmd.contains_key(k)) || index_stats;
            if !index_check {
                commands.push(cmd.clone());
            }
        }
    }
    (result, commands)
}

fn array_docs() -> Vec<Document> {
    let mut docs: Vec<Document> = (0..20).map(|i| keyed(&format!("k{i}"))).collect();
    docs.extend([
        chat(Some(Bson::Array(vec!["x".into(), "y".into()]))),
        chat(Some(Bson::Array(vec!["z".into()]))),
        chat(Some(Bson::Array(vec![]))),
        chat(None),
        chat(None),
        chat(Some(Bson::Null)),
        chat(Some("".into())),
    ]);
    docs
}

/// Issue 10: documents whose key is an array are counted as `array` on
/// every path: the index walk (sparse and plain) and the collection pass,
/// where they are kept out of the duplicates.
#[tokio::test]
async fn array_keys_are_counted_on_every_path() {
    let scanned = unique_db("arrays_scan");
    let mut docs = array_docs();
    docs.push(chat(Some(Bson::Array(vec!["x".into(), "y".into()]))));
    seed(&shared_uri(), &scanned, "chats", docs).await;
    let scan = run(&scanned, true).await;
    assert_eq!(scan.errors().count(), 0, "{:?}", scan.results);
    let m = scan.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents, m.method), (2, 1, 1, 4, 28, Method::Aggregation));
    assert_eq!(scan.duplicates().unwrap().keys, 0, "equal arrays are arrays, not duplicated scalar keys");
    assert!(scan.violations().iter().any(|(_, v)| v.contains("4 array")), "{:?}", scan.violations());
    // The landing page and the check table show the summary; the JSON carries the figure.
    let figures = scan.result(uniqwatch::checks::CheckName::MissingKeys).unwrap().outcome.clone().unwrap();
    assert!(figures.summary().contains("1 empty, 4 array of 28 documents"), "{}", figures.summary());
    let text = target_toml(&shared_uri(), "chats", &scanned, "chats", "participantsKey", true, "0 */5 * * * *");
    let config = Config::from_toml(&text, Path::new("test.toml"), None).unwrap();
    let json = uniqwatch::report::target_json(&config.targets[0], &scan);
    assert_eq!(json["missing"]["array"], 4, "{json}");

    let sparse = unique_db("arrays_sparse");
    seed(&shared_uri(), &sparse, "chats", array_docs()).await;
    create_index(&sparse, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true}).await;
    let (done, commands) = profiled(&sparse, run(&sparse, true)).await;
    assert_eq!(done.errors().count(), 0, "{:?}", done.results);
    let m = done.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents, m.method), (2, 1, 1, 3, 27, Method::IndexCounts));
    // One walk of the index gives every figure; the size is the metadata
    // count read before and after it, on the same member.
    let aggregates: Vec<&Document> = commands.iter().filter(|c| c.contains_key("aggregate")).collect();
    assert_eq!(aggregates.len(), 1, "{commands:?}");
    assert_eq!(aggregates[0].get_str("hint").ok(), Some("pk"), "{commands:?}");
    assert_eq!(commands.iter().filter(|c| c.contains_key("count")).count(), 2, "{commands:?}");

    let plain = unique_db("arrays_plain");
    let mut docs = array_docs();
    docs.retain(|d| !matches!(d.get("participantsKey"), None | Some(Bson::Null)));
    docs.push(chat(None));
    seed(&shared_uri(), &plain, "chats", docs).await;
    create_index(&plain, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true}).await;
    let (done, commands) = profiled(&plain, run(&plain, false)).await;
    assert_eq!(done.errors().count(), 0, "{:?}", done.results);
    let m = done.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents, m.method), (1, 0, 1, 3, 25, Method::IndexCounts));
    assert_eq!(commands.len(), 1, "a plain index holds every document: one walk, no count: {commands:?}");
}

/// Issue 10: a hidden unique index guarantees uniqueness but cannot be
/// hinted; the figures then come from one counting pass, never the full
/// pass that groups by key and gathers ids.
#[tokio::test]
async fn a_hidden_unique_index_gets_the_light_pass() {
    let db = unique_db("hidden_light");
    seed(&shared_uri(), &db, "chats", array_docs()).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true, "hidden": true}).await;
    let (done, commands) = profiled(&db, run(&db, true)).await;
    assert_eq!(done.errors().count(), 0, "{:?}", done.results);
    let m = done.missing_keys().unwrap();
    assert_eq!((m.absent, m.null, m.empty, m.array, m.documents, m.method), (2, 1, 1, 3, 27, Method::CollectionCounts));
    assert_eq!(commands.len(), 1, "{commands:?}");
    let pipeline = commands[0].get_array("pipeline").unwrap();
    assert_eq!(pipeline.len(), 1, "{pipeline:?}");
    let group = pipeline[0].as_document().unwrap().get_document("$group").unwrap();
    assert_eq!(group.get("_id"), Some(&Bson::Null), "no grouping by key: {group:?}");
    assert!(!format!("{pipeline:?}").contains("$firstN"));
}

/// Issue 10: the pipeline used before MongoDB 5.2 (no `$firstN`) runs and
/// finds what the `$firstN` one finds, with each key's first and last id.
#[tokio::test]
async fn the_pre_5_2_pass_finds_the_same_figures() {
    let db = unique_db("first_last");
    let mut docs = array_docs();
    docs.extend([keyed("d1"), keyed("d1"), keyed("d1"), keyed("d2"), keyed("d2")]);
    seed(&shared_uri(), &db, "chats", docs).await;
    let coll = client(&shared_uri()).await.database(&db).collection::<Document>("chats");
    let mut summaries = Vec::new();
    for ids in [IdSample::FirstN(10), IdSample::FirstAndLast] {
        let mut cursor = coll.aggregate(pipeline("participantsKey", ids)).await.unwrap();
        let mut s = Summary::default();
        while cursor.advance().await.unwrap() {
            s.add_row(&cursor.deserialize_current().unwrap(), 20);
        }
        summaries.push(s);
    }
    let (with, without) = (&summaries[0], &summaries[1]);
    assert_eq!((with.duplicate_keys, with.duplicate_documents, with.array, with.absent), (2, 3, 3, 2));
    assert_eq!(
        (with.duplicate_keys, with.duplicate_documents, with.absent, with.null, with.empty, with.array, with.documents),
        (without.duplicate_keys, without.duplicate_documents, without.absent, without.null, without.empty, without.array, without.documents)
    );
    assert_eq!(with.sample[0].ids.len(), 3);
    assert_eq!(without.sample[0].ids.len(), 2, "{:?}", without.sample);
    assert_ne!(without.sample[0].ids[0], without.sample[0].ids[1]);
}

/// Issue 10: absent is `documents − keyed`; with keyed documents inserted
/// while the checks run, a figure taken from two moments under-reports it
/// (and a clamp hides a negative). Every run must give the exact absent
/// count: when the size keeps changing around the keyed walk and no
/// snapshot holds (the test server's snapshots do not), the figures come
/// from one counting pass instead of a failure, so a busy collection never
/// leaves the check failing run after run.
#[tokio::test]
async fn absent_stays_exact_under_concurrent_inserts() {
    let db = unique_db("concurrent");
    let mut docs: Vec<Document> = (0..300).map(|i| keyed(&format!("seed{i}"))).collect();
    docs.extend((0..7).map(|_| chat(None)));
    seed(&shared_uri(), &db, "chats", docs).await;
    create_index(&db, doc! {"key": {"participantsKey": 1}, "name": "pk", "unique": true, "sparse": true}).await;

    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let coll = client(&shared_uri()).await.database(&db).collection::<Document>("chats");
            for i in 0..400 {
                coll.insert_one(keyed(&format!("live{i}"))).await.unwrap();
            }
        })
    };
    let mut runs = 0;
    while !writer.is_finished() || runs == 0 {
        let done = run(&db, true).await;
        match done.result(uniqwatch::checks::CheckName::MissingKeys).unwrap().outcome.as_ref() {
            Ok(uniqwatch::checks::Figures::MissingKeys(m)) => assert_eq!(m.absent, 7, "absent must be exact: {m:?}"),
            Ok(other) => panic!("unexpected figures {other:?}"),
            Err(e) => panic!("a busy collection must still give figures: {e:?}"),
        }
        runs += 1;
    }
    writer.await.unwrap();
    // Once the writes stop, the figure is there and exact.
    let m = run(&db, true).await.missing_keys().cloned().expect("figures once the writes stopped");
    assert_eq!((m.absent, m.documents), (7, 707));
}
