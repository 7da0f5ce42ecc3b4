//! Tests of [`super`] (shards.rs) on replies shaped as MongoDB's manual
//! shows them, kept apart so the module reads as its logic.

use super::*;

const K: &str = "participantsKey";
const NS: &str = "app.chats";

fn pk() -> KeySpec {
    KeySpec::from(K)
}

fn owners_of(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// An `$indexStats` entry as the manual shows it through mongos.
fn stat(shard: &str, name: &str, key: Document, options: Document, building: bool) -> Document {
    let mut spec = doc! { "v": 2, "key": key.clone(), "name": name };
    spec.extend(options);
    let mut d = doc! {
        "name": name,
        "key": key,
        "host": format!("{shard}-a.example.net:27018"),
        "accesses": { "ops": 12i64, "since": mongodb::bson::DateTime::from_millis(1_581_369_083_059) },
        "shard": shard,
        "spec": spec,
    };
    if building {
        d.insert("building", true);
    }
    d
}

fn unique_on(shard: &str, building: bool) -> Document {
    stat(shard, "participantsKey_1", doc! { K: 1 }, doc! { "unique": true, "sparse": true }, building)
}

/// A 5.0+ `config.collections` entry, as in the manual's example.
fn entry(key: Document) -> Document {
    doc! {
        "_id": NS,
        "lastmodEpoch": mongodb::bson::oid::ObjectId::new(),
        "lastmod": mongodb::bson::DateTime::from_millis(1_626_966_434_301),
        "timestamp": mongodb::bson::Timestamp { time: 1_626_966_434, increment: 13 },
        "uuid": Bson::Binary(mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Uuid, bytes: vec![0xc8; 16] }),
        "key": key,
        "unique": false,
        "noBalance": false,
    }
}

fn listed_present() -> IndexOutcome {
    let spec = IndexSpec::from_document(&doc! { "key": { K: 1 }, "name": "participantsKey_1", "unique": true, "sparse": true });
    let o = evaluate(&[spec], &pk(), true, Namespace::Collection);
    assert!(o.present && o.guarantees_uniqueness && o.queryable.is_some());
    o
}

fn view(shard_key: Document, stats: &[Document]) -> ShardsView {
    let owners = owners_of(&["shardA", "shardB"]);
    ShardsView::sharded(shard_key, shard_states(&owners, stats, &pk(), true).unwrap(), &pk())
}

#[test]
fn present_on_every_owning_shard_with_the_key_as_shard_key_is_a_guarantee() {
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false), unique_on("shardB", false)]);
    assert_eq!(v.count(ShardIndexState::Present), 2);
    assert!(v.enforces_across_shards);
    let mut o = listed_present();
    v.apply(&mut o, &pk());
    assert!(o.present, "{o:?}");
    assert!(o.guarantees_uniqueness);
    assert!(o.queryable.is_some());
    assert_eq!(o.problem, None);
    assert_eq!(o.shards.as_ref().unwrap().summary(), "sharded on {participantsKey: 1}: on 2 of 2 shards");
}

#[test]
fn an_index_on_one_of_two_owning_shards_is_missing_and_no_guarantee() {
    let id = stat("shardB", "_id_", doc! { "_id": 1 }, doc! {}, false);
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false), id]);
    assert_eq!(
        v.owners,
        vec![
            ShardIndex { shard: "shardA".into(), state: ShardIndexState::Present },
            ShardIndex { shard: "shardB".into(), state: ShardIndexState::Missing },
        ]
    );
    let mut o = listed_present();
    v.apply(&mut o, &pk());
    assert!(!o.present);
    assert!(!o.guarantees_uniqueness, "the runner must scan for duplicates");
    assert_eq!(o.queryable, None, "shardB would refuse the hint");
    assert_eq!(
        o.problem.as_deref(),
        Some("the unique index is missing on 1 of 2 shards owning chunks (shardB); duplicates can be written there")
    );
}

#[test]
fn a_shard_that_reports_no_index_at_all_counts_as_missing() {
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false)]);
    assert_eq!(v.count(ShardIndexState::Missing), 1);
}

#[test]
fn a_build_in_progress_on_one_shard_is_building_and_no_guarantee() {
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false), unique_on("shardB", true)]);
    assert_eq!(v.count(ShardIndexState::Building), 1);
    assert_eq!(v.count(ShardIndexState::Present), 1);
    let mut o = listed_present();
    v.apply(&mut o, &pk());
    assert!(!o.present && !o.guarantees_uniqueness);
    assert!(o.problem.unwrap().contains("still being built on 1 of 2 shards owning chunks (shardB)"));
}

#[test]
fn a_non_unique_copy_on_a_shard_is_missing_there() {
    let plain = stat("shardB", "participantsKey_1", doc! { K: 1 }, doc! { "sparse": true }, false);
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false), plain]);
    assert_eq!(v.count(ShardIndexState::Missing), 1);
}

#[test]
fn shards_not_owning_chunks_are_not_counted() {
    let owners = owners_of(&["shardA"]);
    let stats = [unique_on("shardA", false), stat("shardC", "_id_", doc! { "_id": 1 }, doc! {}, false)];
    let v = ShardsView::sharded(doc! { K: 1 }, shard_states(&owners, &stats, &pk(), true).unwrap(), &pk());
    assert_eq!(v.owners.len(), 1);
    assert_eq!(v.problem(&pk()), None);
}

#[test]
fn a_hashed_shard_key_on_the_key_is_a_guarantee() {
    let v = view(doc! { K: "hashed" }, &[unique_on("shardA", false), unique_on("shardB", false)]);
    assert!(v.enforces_across_shards);
    let mut o = listed_present();
    v.apply(&mut o, &pk());
    assert!(o.present && o.guarantees_uniqueness, "{o:?}");
}

#[test]
fn another_shard_key_makes_the_index_per_shard_only() {
    for shard_key in [doc! { "_id": 1 }, doc! { "tenantId": 1 }, doc! { "_id": "hashed" }, doc! { K: 1, "tenantId": 1 }] {
        let v = view(shard_key.clone(), &[unique_on("shardA", false), unique_on("shardB", false)]);
        assert!(!v.enforces_across_shards, "{shard_key}");
        let mut o = listed_present();
        v.apply(&mut o, &pk());
        assert!(!o.present, "{shard_key}");
        assert!(!o.guarantees_uniqueness, "{shard_key}: the runner must keep scanning");
        let problem = o.problem.unwrap();
        assert!(problem.contains("not a prefix of {participantsKey: 1}"), "{problem}");
        assert!(problem.contains("the same key can exist on two shards"), "{problem}");
    }
    let v = view(doc! { "tenantId": 1 }, &[unique_on("shardA", false), unique_on("shardB", false)]);
    assert!(v.problem(&pk()).unwrap().starts_with("the collection is sharded on {tenantId: 1},"));
    assert_eq!(v.summary(), "sharded on {tenantId: 1}: on 2 of 2 shards, per shard only");
}

#[test]
fn prefix_rule_follows_field_order() {
    assert!(shard_key_is_prefix(&doc! { "a": 1 }, &doc! { "a": -1, "b": 1 }));
    assert!(shard_key_is_prefix(&doc! { "a": "hashed" }, &doc! { "a": 1 }));
    assert!(!shard_key_is_prefix(&doc! { "b": 1 }, &doc! { "a": 1, "b": 1 }));
    assert!(!shard_key_is_prefix(&doc! { "a": 1, "b": 1 }, &doc! { "a": 1 }));
    assert!(!shard_key_is_prefix(&doc! {}, &doc! { "a": 1 }));
}

#[test]
fn an_existing_problem_is_kept_and_the_shards_add_to_it() {
    let v = view(doc! { "tenantId": 1 }, &[unique_on("shardA", false), unique_on("shardB", false)]);
    let mut o = evaluate(&[], &pk(), true, Namespace::Collection);
    v.apply(&mut o, &pk());
    assert!(o.problem.as_deref().unwrap().starts_with("no index on {participantsKey: 1}; the collection is sharded on"));
}

#[test]
fn chunks_are_matched_by_uuid_on_5_0_metadata() {
    let e = entry(doc! { K: 1 });
    let Sharding::Sharded { key, chunks } = Sharding::from_entry(NS, Some(&e)) else { panic!("sharded") };
    assert_eq!(key, doc! { K: 1 });
    assert_eq!(chunks, doc! { "uuid": e.get("uuid").unwrap().clone() });
}

#[test]
fn chunks_are_matched_by_ns_before_5_0() {
    // 4.4's entry, as in the manual of that release: a uuid, but no
    // timestamp, and chunk documents that carry `ns`.
    let e = doc! {
        "_id": NS,
        "lastmod": mongodb::bson::DateTime::from_millis(1_000),
        "dropped": false,
        "key": { K: 1 },
        "unique": false,
        "lastmodEpoch": mongodb::bson::oid::ObjectId::new(),
        "uuid": Bson::Binary(mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Uuid, bytes: vec![0xf8; 16] }),
    };
    let Sharding::Sharded { chunks, .. } = Sharding::from_entry(NS, Some(&e)) else { panic!("sharded") };
    assert_eq!(chunks, doc! { "ns": NS });
    // The owners of a `$group` by shard over such chunks.
    let groups = [doc! { "_id": "shard0004" }, doc! { "_id": "shard0001" }];
    assert_eq!(chunk_owners(&groups), owners_of(&["shard0001", "shard0004"]));
}

#[test]
fn unsharded_collections_seen_through_mongos_change_nothing() {
    assert_eq!(Sharding::from_entry(NS, None), Sharding::Untracked);
    let mut dropped = entry(doc! { K: 1 });
    dropped.insert("dropped", true);
    assert_eq!(Sharding::from_entry(NS, Some(&dropped)), Sharding::Untracked);
    let mut tracked = entry(doc! { "_id": 1 });
    tracked.insert("unsplittable", true);
    assert!(matches!(Sharding::from_entry(NS, Some(&tracked)), Sharding::Unsplittable { .. }));

    let mut o = listed_present();
    let before = o.clone();
    ShardsView::unsharded(Some("shardA".into())).apply(&mut o, &pk());
    assert_eq!((o.present, o.guarantees_uniqueness, &o.problem, &o.queryable), (before.present, true, &None, &before.queryable));
    assert_eq!(o.shards.unwrap().summary(), "unsharded, on shard shardA");
}

#[test]
fn an_entry_without_a_shard_key_guarantees_nothing() {
    let mut e = entry(doc! { K: 1 });
    e.remove("key");
    let Sharding::Sharded { key, .. } = Sharding::from_entry(NS, Some(&e)) else { panic!("sharded") };
    let v = ShardsView::sharded(key, shard_states(&owners_of(&["shardA"]), &[unique_on("shardA", false)], &pk(), true).unwrap(), &pk());
    assert!(!v.enforces_across_shards);
    assert!(v.problem(&pk()).unwrap().starts_with("the collection is sharded on an unreadable key,"));
}

#[test]
fn no_chunks_for_a_sharded_collection_is_no_guarantee() {
    let v = ShardsView::sharded(doc! { K: 1 }, Vec::new(), &pk());
    let mut o = listed_present();
    v.apply(&mut o, &pk());
    assert!(!o.guarantees_uniqueness);
    assert!(o.problem.unwrap().contains("config.chunks lists no chunk"));
}

#[test]
fn index_stats_without_shard_names_cannot_be_read_per_shard() {
    let old = doc! { "name": "participantsKey_1", "key": { K: 1 }, "host": "h:27018", "accesses": { "ops": 0i64 } };
    let err = shard_states(&owners_of(&["shardA"]), &[old], &pk(), true).unwrap_err();
    assert!(err.contains("4.2.4"), "{err}");
}

/// A refused `config` read: the index check fails as `other`, so the run
/// is unknown (never "holds"), MongoDB still counts as reached, and the
/// later checks still run and scan.
#[test]
fn a_refused_config_read_makes_the_guarantee_unknown_not_an_outage() {
    use super::super::{CheckName, CheckResult, DuplicatesOutcome, Figures, Method, TargetRun, Verdict};
    let refused = QueryError::new(FailureReason::Unauthorized, "command failed: Unauthorized (code 13)");
    let e = unverifiable(refused);
    assert_eq!(e.reason, FailureReason::Other);
    assert!(e.message.contains("not trusted") && e.message.contains("indexStats"), "{}", e.message);
    assert!(e.message.contains("Unauthorized (code 13)"));

    let at = chrono::Utc::now();
    let result = |check, outcome| CheckResult { check, started_at: at, duration: std::time::Duration::ZERO, outcome };
    let run = TargetRun {
        target: "chats".into(),
        started_at: at,
        results: vec![
            result(CheckName::Index, Err(e)),
            result(
                CheckName::Duplicates,
                Ok(Figures::Duplicates(DuplicatesOutcome { keys: 0, documents: 0, method: Method::Aggregation, sample: Vec::new() })),
            ),
        ],
    };
    assert_eq!(run.verdict(), Verdict::Unknown);
    assert!(run.reached_mongodb(), "a refused config read is not an outage");

    let unreachable = QueryError::new(FailureReason::Unreachable, "x");
    assert_eq!(unverifiable(unreachable).reason, FailureReason::Unreachable, "a lost connection stays one");
}

/// The view reaches the landing page's line, `check --format json` and
/// `/metrics` through the runner, and a failed index check withdraws it.
#[test]
fn the_view_reaches_the_summary_the_json_and_the_metrics() {
    use super::super::{record, CheckName, CheckResult, Figures, TargetRun};
    let mut o = listed_present();
    let id = stat("shardB", "_id_", doc! { "_id": 1 }, doc! {}, false);
    view(doc! { K: 1 }, &[unique_on("shardA", false), id]).apply(&mut o, &pk());
    let figures = Figures::Index(o);
    assert!(figures.summary().ends_with("; sharded on {participantsKey: 1}: on 1 of 2 shards"), "{}", figures.summary());

    let at = chrono::Utc::now();
    let run = |outcome| TargetRun {
        target: "chats".into(),
        started_at: at,
        results: vec![CheckResult { check: CheckName::Index, started_at: at, duration: std::time::Duration::ZERO, outcome }],
    };
    let target = crate::config::TargetConfig {
        name: "chats".into(),
        database: "app".into(),
        collection: "chats".into(),
        key: K.into(),
        sparse: true,
        schedule: "0 * * * * *".into(),
        sample_size: 20,
        canonical: None,
        position: 0,
    };
    let ok = run(Ok(figures));
    let json = crate::report::target_json(&target, &ok);
    assert_eq!(json["index"]["shards"]["owners"][1], serde_json::json!({"shard": "shardB", "state": "missing"}));
    assert_eq!(json["index"]["shards"]["shard_key"], serde_json::json!({K: 1}));

    let m = Metrics::new();
    record(&ok, None, &m);
    assert_eq!(m.unique_index_shards.with_label_values(&["chats", "missing"]).get(), 1);
    record(&run(Err(QueryError::new(FailureReason::Timeout, "x"))), Some(&ok), &m);
    assert!(!m.encode().contains("uniqwatch_unique_index_shards{"), "withdrawn with the failed check");
}

#[test]
fn the_metric_counts_shards_per_state_and_only_for_sharded_collections() {
    let m = Metrics::new();
    let v = view(doc! { K: 1 }, &[unique_on("shardA", false), unique_on("shardB", true)]);
    set_metric("chats", Some(&v), &m);
    let get = |state: &str| m.unique_index_shards.with_label_values(&["chats", state]).get();
    assert_eq!((get("present"), get("missing"), get("building")), (1, 0, 1));
    set_metric("chats", Some(&ShardsView::unsharded(None)), &m);
    assert!(!m.encode().contains("uniqwatch_unique_index_shards{"), "unsharded: no series");
    set_metric("chats", Some(&v), &m);
    withdraw_metric("chats", &m);
    assert!(!m.encode().contains("uniqwatch_unique_index_shards{"));
}

/// Review of issue 10: `listIndexes` through mongos answers from one shard,
/// which may own no chunks and lack the index; when every owning shard
/// enforces it across the cluster, the owners' verdict stands (no false page).
#[test]
fn the_owning_shards_decide_over_listindexes_from_another_shard() {
    let mut o = evaluate(&[], &pk(), true, Namespace::Collection);
    assert!(!o.present);
    let stats = [unique_on("shardA", false), unique_on("shardB", false)];
    let owners = owners_of(&["shardA", "shardB"]);
    let agreed = owners_verdict(&owners, &stats, &pk(), true);
    ShardsView::sharded(doc! { K: 1 }, shard_states(&owners, &stats, &pk(), true).unwrap(), &pk())
        .with_owners_verdict(agreed)
        .apply(&mut o, &pk());
    assert!(o.present && o.guarantees_uniqueness && o.problem.is_none(), "{o:?}");
    assert_eq!(o.name.as_deref(), Some("participantsKey_1"));
}

/// A build that has committed on some owning shards and runs on others is a
/// build in progress (a warning), not a missing index (a page).
#[test]
fn a_build_still_running_on_one_shard_is_reported_as_building() {
    let mut o = listed_present();
    view(doc! { K: 1 }, &[unique_on("shardA", false), unique_on("shardB", true)]).apply(&mut o, &pk());
    assert!(!o.present && !o.guarantees_uniqueness);
    assert_eq!(o.build, Some(BuildState::Building));
    // Missing on one shard as well: that is missing, whatever else builds.
    let mut o = listed_present();
    let id = stat("shardB", "_id_", doc! { "_id": 1 }, doc! {}, false);
    view(doc! { K: 1 }, &[unique_on("shardA", true), id]).apply(&mut o, &pk());
    assert_ne!(o.build, Some(BuildState::Building));
}

/// A shard slow to answer `$indexStats` is not an outage of the target.
#[test]
fn a_timeout_reading_the_shards_is_not_an_outage() {
    let e = unverifiable(QueryError::new(FailureReason::Timeout, "command failed: ExceededTimeLimit (code 262)"));
    assert_eq!(e.reason, FailureReason::Other);
    assert!(e.message.contains("in time"), "{}", e.message);
}
