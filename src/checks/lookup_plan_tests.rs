//! Explain replies shaped as MongoDB's manual ("Explain Results") shows
//! them, trimmed to the fields the reader looks at plus enough of the rest
//! to prove it is ignored. Checked against documented responses, not a live
//! cluster (the integration test covers the server the suite runs).

use super::*;

const PK: &str = "participantsKey_1";

fn ixscan(index: &str, multikey: bool) -> Document {
    doc! {
        "stage": "IXSCAN",
        "keyPattern": { "participantsKey": 1 },
        "indexName": index,
        "isMultiKey": multikey,
        "multiKeyPaths": { "participantsKey": [] },
        "isUnique": true,
        "isSparse": true,
        "isPartial": false,
        "indexVersion": 2,
        "direction": "forward",
        "indexBounds": { "participantsKey": ["[\"u1_u2\", \"u1_u2\"]"] },
    }
}

fn fetch(input: Document) -> Document {
    doc! { "stage": "FETCH", "inputStage": input }
}

/// A mongod reply: `winningPlan` and top-level execution totals.
fn mongod(winning: Document, keys: i32, docs: i32) -> Document {
    doc! {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": "app.chats",
            "indexFilterSet": false,
            "parsedQuery": { "participantsKey": { "$eq": "u1_u2" } },
            "queryHash": "244E9C29",
            "planCacheKey": "0E0F8E96",
            "winningPlan": winning,
            "rejectedPlans": [],
        },
        "executionStats": {
            "executionSuccess": true,
            "nReturned": 1,
            "executionTimeMillis": 0,
            "totalKeysExamined": keys,
            "totalDocsExamined": docs,
            "executionStages": { "stage": "FETCH", "nReturned": 1 },
        },
        "serverInfo": { "host": "db1", "port": 27017, "version": "7.0.12" },
        "ok": 1.0,
    }
}

#[test]
fn classic_fetch_over_ixscan_on_the_index_is_used() {
    let p = read_explain(&mongod(fetch(ixscan(PK, false)), 1, 1), PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.plan, "FETCH > IXSCAN participantsKey_1");
    assert_eq!((p.keys_examined, p.docs_examined, p.multikey), (Some(1), Some(1), Some(false)));
}

#[test]
fn a_lookup_of_a_value_not_there_any_more_still_counts() {
    // Between the find and the explain the document may be deleted, or a
    // lagging secondary may not have it yet: nothing examined.
    let p = read_explain(&mongod(fetch(ixscan(PK, false)), 0, 0), PK).unwrap();
    assert!(p.uses_unique_index);
}

#[test]
fn a_collection_scan_is_not_used() {
    let winning = doc! {
        "stage": "COLLSCAN",
        "filter": { "participantsKey": { "$eq": "u1_u2" } },
        "direction": "forward",
    };
    let p = read_explain(&mongod(winning, 0, 5000), PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!(p.plan, "COLLSCAN");
    assert_eq!((p.keys_examined, p.docs_examined, p.multikey), (Some(0), Some(5000), None));
}

#[test]
fn a_scan_of_another_index_is_not_used() {
    let p = read_explain(&mongod(fetch(ixscan("participantsKey_1_createdAt_1", false)), 1, 1), PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!(p.plan, "FETCH > IXSCAN participantsKey_1_createdAt_1");
}

#[test]
fn more_than_one_key_or_document_examined_is_not_used() {
    for (keys, docs) in [(2, 1), (1, 2), (40, 40)] {
        let p = read_explain(&mongod(fetch(ixscan(PK, false)), keys, docs), PK).unwrap();
        assert!(!p.uses_unique_index, "{keys} keys, {docs} docs");
    }
}

#[test]
fn a_plan_mixing_the_index_and_a_collection_scan_is_not_used() {
    let winning = doc! {
        "stage": "SUBPLAN",
        "inputStage": { "stage": "OR", "inputStages": [ fetch(ixscan(PK, false)), { "stage": "COLLSCAN" } ] },
    };
    let p = read_explain(&mongod(winning, 1, 1), PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!(p.plan, "SUBPLAN > OR > FETCH > IXSCAN participantsKey_1 > COLLSCAN");
}

#[test]
fn the_multikey_flag_is_kept() {
    let p = read_explain(&mongod(fetch(ixscan(PK, true)), 1, 1), PK).unwrap();
    assert_eq!(p.multikey, Some(true));
    assert!(LookupProbe::Explained(p).summary().ends_with(", multikey"));
}

#[test]
fn slot_based_plans_nest_the_tree_under_query_plan() {
    let winning = doc! {
        "queryPlan": {
            "stage": "FETCH",
            "planNodeId": 2,
            "inputStage": {
                "stage": "IXSCAN",
                "planNodeId": 1,
                "keyPattern": { "participantsKey": 1 },
                "indexName": PK,
                "isMultiKey": false,
                "direction": "forward",
            },
        },
        "slotBasedPlan": { "slots": "$$RESULT=s11 env: { }", "stages": "[2] nlj inner [] [s4, s7, s8, s9, s1] ..." },
    };
    let p = read_explain(&mongod(winning, 1, 1), PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.plan, "FETCH > IXSCAN participantsKey_1");
    assert_eq!(p.multikey, Some(false));
}

#[test]
fn express_ixscan_of_8_0_is_an_index_scan() {
    // 8.0's express path: one stage, keyPattern as a string, no isMultiKey.
    let mut reply = mongod(
        doc! { "isCached": false, "stage": "EXPRESS_IXSCAN", "keyPattern": "{ participantsKey: 1 }", "indexName": PK },
        1,
        1,
    );
    reply.get_document_mut("executionStats").unwrap().insert(
        "executionStages",
        doc! {
            "isCached": false, "stage": "EXPRESS_IXSCAN", "keyPattern": "{ participantsKey: 1 }",
            "indexName": PK, "keysExamined": 1, "docsExamined": 1, "nReturned": 1,
        },
    );
    let p = read_explain(&reply, PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.plan, "EXPRESS_IXSCAN participantsKey_1");
    assert_eq!(p.multikey, None);
}

#[test]
fn counts_of_any_numeric_type_are_read() {
    let mut reply = mongod(fetch(ixscan(PK, false)), 0, 0);
    let stats = reply.get_document_mut("executionStats").unwrap();
    stats.insert("totalKeysExamined", Bson::Int64(1));
    stats.insert("totalDocsExamined", Bson::Double(1.0));
    let p = read_explain(&reply, PK).unwrap();
    assert_eq!((p.keys_examined, p.docs_examined), (Some(1), Some(1)));
}

#[test]
fn a_reply_without_the_documented_sections_is_an_error_not_a_verdict() {
    let mut no_stats = mongod(fetch(ixscan(PK, false)), 1, 1);
    no_stats.remove("executionStats");
    assert_eq!(read_explain(&no_stats, PK), Err(ExplainError::Missing("executionStats")));
    let mut no_keys = mongod(fetch(ixscan(PK, false)), 1, 1);
    no_keys.get_document_mut("executionStats").unwrap().remove("totalKeysExamined");
    assert!(read_explain(&no_keys, PK).is_err());
    assert_eq!(read_explain(&doc! {"ok": 1}, PK), Err(ExplainError::Missing("queryPlanner")));
    assert_eq!(
        read_explain(&doc! {"queryPlanner": {}, "executionStats": {}}, PK),
        Err(ExplainError::Missing("queryPlanner.winningPlan"))
    );
}

// ---- mongos

/// One entry of a mongos `queryPlanner.winningPlan.shards`.
fn shard_plan(name: &str, winning: Document) -> Document {
    doc! {
        "shardName": name,
        "connectionString": format!("{name}/db1:27018,db2:27018"),
        "serverInfo": { "host": "db1", "port": 27018, "version": "7.0.12" },
        "namespace": "app.chats",
        "indexFilterSet": false,
        "parsedQuery": { "participantsKey": { "$eq": "u1_u2" } },
        "winningPlan": winning,
        "rejectedPlans": [],
    }
}

/// One entry of a mongos `executionStats.executionStages.shards`, counts
/// only on its stages (`keysExamined` on the scan, `docsExamined` on the fetch).
fn shard_stats(name: &str, keys: i32, docs: i32) -> Document {
    doc! {
        "shardName": name,
        "executionSuccess": true,
        "executionStages": {
            "stage": "SHARDING_FILTER",
            "nReturned": 1,
            "inputStage": {
                "stage": "FETCH",
                "docsExamined": docs,
                "inputStage": { "stage": "IXSCAN", "keysExamined": keys, "indexName": PK },
            },
        },
    }
}

fn mongos(stage: &str, plans: Vec<Document>, stats: Vec<Document>) -> Document {
    doc! {
        "queryPlanner": {
            "mongosPlannerVersion": 1,
            "winningPlan": { "stage": stage, "shards": plans },
        },
        "executionStats": {
            "nReturned": 1,
            "executionTimeMillis": 1,
            "totalKeysExamined": 9,
            "totalDocsExamined": 9,
            "executionStages": {
                "stage": stage,
                "nReturned": 1,
                "executionTimeMillis": 1,
                "totalKeysExamined": 9,
                "totalDocsExamined": 9,
                "totalChildMillis": 1_i64,
                "shards": stats,
            },
        },
        "serverInfo": { "host": "mongos1", "port": 27017, "version": "7.0.12" },
        "ok": 1.0,
    }
}

fn filtered(input: Document) -> Document {
    doc! { "stage": "SHARDING_FILTER", "inputStage": input }
}

#[test]
fn single_shard_lookup_on_the_index_is_used() {
    let reply = mongos(
        "SINGLE_SHARD",
        vec![shard_plan("shard01", filtered(fetch(ixscan(PK, false))))],
        vec![shard_stats("shard01", 1, 1)],
    );
    let p = read_explain(&reply, PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.plan, "SINGLE_SHARD [shard01: SHARDING_FILTER > FETCH > IXSCAN participantsKey_1]");
    assert_eq!((p.keys_examined, p.docs_examined, p.multikey), (Some(1), Some(1), Some(false)));
}

#[test]
fn a_merge_is_used_only_when_every_shard_used_the_index() {
    let good = mongos(
        "SHARD_MERGE",
        vec![shard_plan("a", fetch(ixscan(PK, false))), shard_plan("b", fetch(ixscan(PK, true)))],
        vec![shard_stats("a", 1, 1), shard_stats("b", 0, 0)],
    );
    let p = read_explain(&good, PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.multikey, Some(true), "one multikey shard makes the index multikey");

    let scan_on_b = mongos(
        "SHARD_MERGE",
        vec![shard_plan("a", fetch(ixscan(PK, false))), shard_plan("b", doc! {"stage": "COLLSCAN"})],
        vec![shard_stats("a", 1, 1), shard_stats("b", 0, 800)],
    );
    let p = read_explain(&scan_on_b, PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!(p.plan, "SHARD_MERGE [a: FETCH > IXSCAN participantsKey_1; b: COLLSCAN]");
    assert_eq!(p.docs_examined, Some(800));
}

#[test]
fn shard_counts_are_per_shard_not_the_routers_totals() {
    // The router's totals (9) sum every shard; each shard examined one.
    let reply = mongos(
        "SHARD_MERGE",
        vec![shard_plan("a", fetch(ixscan(PK, false))), shard_plan("b", fetch(ixscan(PK, false)))],
        vec![shard_stats("a", 1, 1), shard_stats("b", 1, 1)],
    );
    assert!(read_explain(&reply, PK).unwrap().uses_unique_index);

    let too_many = mongos(
        "SINGLE_SHARD",
        vec![shard_plan("a", fetch(ixscan(PK, false)))],
        vec![shard_stats("a", 2, 2)],
    );
    assert!(!read_explain(&too_many, PK).unwrap().uses_unique_index);
}

#[test]
fn shard_totals_are_preferred_when_given() {
    let mut stats = shard_stats("a", 1, 1);
    stats.insert("totalKeysExamined", 3);
    stats.insert("totalDocsExamined", 3);
    let reply = mongos("SINGLE_SHARD", vec![shard_plan("a", fetch(ixscan(PK, false)))], vec![stats]);
    let p = read_explain(&reply, PK).unwrap();
    assert_eq!((p.keys_examined, p.docs_examined), (Some(3), Some(3)));
    assert!(!p.uses_unique_index);
}

#[test]
fn slot_based_plans_through_mongos() {
    let sbe = doc! {
        "queryPlan": { "stage": "FETCH", "inputStage": { "stage": "IXSCAN", "indexName": PK, "isMultiKey": false } },
        "slotBasedPlan": { "stages": "..." },
    };
    let reply = mongos("SINGLE_SHARD", vec![shard_plan("shard01", sbe)], vec![shard_stats("shard01", 1, 1)]);
    let p = read_explain(&reply, PK).unwrap();
    assert!(p.uses_unique_index, "{p:?}");
    assert_eq!(p.plan, "SINGLE_SHARD [shard01: FETCH > IXSCAN participantsKey_1]");
}

#[test]
fn a_shard_without_statistics_is_an_error() {
    let reply = mongos(
        "SHARD_MERGE",
        vec![shard_plan("a", fetch(ixscan(PK, false))), shard_plan("b", fetch(ixscan(PK, false)))],
        vec![shard_stats("a", 1, 1)],
    );
    assert_eq!(read_explain(&reply, PK), Err(ExplainError::ShardStats("b".into())));
    let none = mongos("SINGLE_SHARD", vec![], vec![]);
    assert!(read_explain(&none, PK).is_err());
}

// ---- planned only (an index that cannot be hinted)

/// A `queryPlanner`-verbosity reply: no `executionStats`.
fn planned(winning: Document) -> Document {
    let mut reply = mongod(winning, 0, 0);
    reply.remove("executionStats");
    reply
}

#[test]
fn a_planned_lookup_is_judged_on_its_plan_alone() {
    let p = read_planned(&planned(doc! {"stage": "COLLSCAN", "direction": "forward"}), PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!((p.plan.as_str(), p.keys_examined, p.docs_examined), ("COLLSCAN", None, None));
    assert!(LookupProbe::Explained(p).summary().contains("planned, not executed"));

    let p = read_planned(&planned(fetch(ixscan(PK, false))), PK).unwrap();
    assert!(p.uses_unique_index);
    assert_eq!(p.keys_examined, None);
}

#[test]
fn a_planned_lookup_through_mongos_needs_every_shard_on_the_index() {
    let mut reply = mongos(
        "SHARD_MERGE",
        vec![shard_plan("a", fetch(ixscan(PK, false))), shard_plan("b", doc! {"stage": "COLLSCAN"})],
        vec![],
    );
    reply.remove("executionStats");
    let p = read_planned(&reply, PK).unwrap();
    assert!(!p.uses_unique_index);
    assert_eq!(p.plan, "SHARD_MERGE [a: FETCH > IXSCAN participantsKey_1; b: COLLSCAN]");
    assert_eq!(read_planned(&doc! {"ok": 1}, PK), Err(ExplainError::Missing("queryPlanner")));
}

// ---- the key value

#[test]
fn the_value_filter_is_bounded_by_the_index() {
    assert_eq!(
        value_filter(&["participantsKey".to_string()]),
        doc! { "participantsKey": { "$exists": true, "$nin": [Bson::Null, ""] } }
    );
    assert_eq!(
        value_filter(&["tenantId".to_string(), "profile.email".to_string()]),
        doc! {
            "tenantId": { "$exists": true, "$nin": [Bson::Null, ""] },
            "profile.email": { "$exists": true, "$nin": [Bson::Null, ""] },
        }
    );
}

#[test]
fn the_lookup_is_an_equality_on_every_field_in_key_order() {
    assert_eq!(lookup_filter(&["k".to_string()], vec![Bson::String("v".into())]), doc! { "k": { "$eq": "v" } });
    let fields = ["tenantId".to_string(), "email".to_string()];
    let filter = lookup_filter(&fields, vec![Bson::Int32(7), Bson::Document(doc! { "$gt": 1 })]);
    assert_eq!(filter, doc! { "tenantId": { "$eq": 7 }, "email": { "$eq": { "$gt": 1 } } });
    assert_eq!(filter.keys().collect::<Vec<_>>(), ["tenantId", "email"]);
}

#[test]
fn scalar_values_of_any_type_are_looked_up() {
    for v in [Bson::String("u1_u2".into()), Bson::Int32(7), Bson::Int64(7), Bson::Document(doc! {"a": 1})] {
        assert_eq!(lookup_value(&doc! {"participantsKey": v.clone()}, "participantsKey"), Ok(v));
    }
}

#[test]
fn an_array_gives_its_first_usable_element() {
    let found = doc! {"participantsKey": [Bson::Null, "", "u1_u2", "u3_u4"]};
    assert_eq!(lookup_value(&found, "participantsKey"), Ok(Bson::String("u1_u2".into())));
    assert!(lookup_value(&doc! {"participantsKey": [Bson::Null, ""]}, "participantsKey").is_err());
    assert!(lookup_value(&doc! {"participantsKey": []}, "participantsKey").is_err());
}

#[test]
fn dotted_keys_are_followed_through_documents() {
    assert_eq!(lookup_value(&doc! {"chat": {"key": "u1_u2"}}, "chat.key"), Ok(Bson::String("u1_u2".into())));
    assert!(lookup_value(&doc! {"chat": [{"key": "u1_u2"}]}, "chat.key").is_err());
    assert!(lookup_value(&doc! {}, "chat.key").is_err());
}

#[test]
fn null_and_empty_are_not_looked_up() {
    assert!(lookup_value(&doc! {"participantsKey": Bson::Null}, "participantsKey").is_err());
    assert!(lookup_value(&doc! {"participantsKey": ""}, "participantsKey").is_err());
}

#[test]
fn reasons_and_summaries_never_quote_the_value() {
    let secret = "user-secret-42";
    for found in [doc! {"k": [secret]}, doc! {"k": {"x": secret}}, doc! {"other": secret}] {
        if let Err(reason) = lookup_value(&found, "k.x") {
            assert!(!reason.contains(secret));
        }
    }
    let p = read_explain(&mongod(fetch(ixscan(PK, false)), 1, 1), PK).unwrap();
    let text = format!("{} {}", LookupProbe::Explained(p.clone()).summary(), serde_json::to_string(&p).unwrap());
    assert!(!text.contains("u1_u2"), "{text}");
}

#[test]
fn the_json_says_which_state_the_probe_is_in() {
    let p = read_explain(&mongod(fetch(ixscan(PK, false)), 1, 1), PK).unwrap();
    let json = serde_json::to_value(LookupProbe::Explained(p)).unwrap();
    assert_eq!(json["state"], "explained");
    assert_eq!(json["uses_unique_index"], true);
    assert_eq!(json["plan"], "FETCH > IXSCAN participantsKey_1");
    assert_eq!(json["multikey"], false);
    let json = serde_json::to_value(LookupProbe::not_run("why")).unwrap();
    assert_eq!(json, serde_json::json!({"state": "not_run", "reason": "why"}));
}
