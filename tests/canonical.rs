//! The canonical checks (`key_consistency`, `canonical_duplicates`) on
//! seeded data, against a real MongoDB wire server: the four ways the
//! invariant behind the key breaks while the unique index is healthy.

mod common;

use std::path::Path;

use common::*;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{doc, Bson, Document};
use serde_json::json;
use uniqwatch::checks::{run_group, run_target, CheckName, Group, MismatchKind, TargetRun};
use uniqwatch::config::Config;
use uniqwatch::mongo::{FailureReason, Mongo};

fn chat(participants: Bson, key: Option<&str>) -> Document {
    let mut d = doc! { "participants": participants };
    if let Some(k) = key {
        d.insert("participantsKey", k);
    }
    d
}

fn strings(ids: &[&str]) -> Bson {
    Bson::Array(ids.iter().map(|s| Bson::String(s.to_string())).collect())
}

fn config(db: &str, coll: &str, key: &str, canonical: &str) -> Config {
    let mut text = target_toml(&shared_uri(), coll, db, coll, key, true, "0 */5 * * * *");
    text.push_str("\n[target.canonical]\n");
    text.push_str(canonical);
    Config::from_toml(&text, Path::new("test.toml"), None).unwrap()
}

async fn canonical_run(config: &Config) -> TargetRun {
    run_group(&config.targets[0], &Mongo::new(config.mongodb.clone()), Group::Canonical).await
}

const SORTED_JOIN: &str = "preset = \"sorted_join\"\nfields = [\"participants\"]\nseparator = \"_\"\n";

/// The four breakages and every edge of `participants.map(String).sort().join("_")`.
#[tokio::test]
async fn sorted_join_finds_legacy_wrong_and_drifted_keys_and_semantic_duplicates() {
    let db = unique_db("canon");
    let (o1, o2) = (ObjectId::new(), ObjectId::new());
    let mut hex = [o1.to_hex(), o2.to_hex()];
    hex.sort();
    let oid_key = hex.join("_");
    let mut docs = vec![
        // 1. legacy: a keyless chat for a pair that has a keyed one
        chat(strings(&["a", "b"]), Some("a_b")),
        chat(strings(&["b", "a"]), None),
        // 2. wrong derivation: unsorted, another separator, ids of another type
        chat(strings(&["c", "d"]), Some("c_d")),
        chat(strings(&["d", "c"]), Some("d_c")),
        chat(strings(&["e", "f"]), Some("e-f")),
        chat(Bson::Array(vec![1.into(), 2.into()]), Some("1_2")),
        chat(strings(&["1", "2"]), None),
        // 3. drift: the participants changed, the key did not
        chat(strings(&["a", "g"]), Some("a_c")),
        // edges that are fine: ObjectIds as hex, numbers as JavaScript prints
        // them (and sorts them, as strings), repeats kept, one participant
        chat(Bson::Array(vec![o1.into(), o2.into()]), Some(&oid_key)),
        chat(Bson::Array(vec![12.into(), 5.into()]), Some("12_5")),
        chat(Bson::Array(vec![Bson::Double(5.5), "x".into()]), Some("5.5_x")),
        chat(strings(&["h", "h"]), Some("h_h")),
        chat(strings(&["solo"]), Some("solo")),
        // underivable: empty array, no participants, not an array, a null id
        chat(Bson::Array(vec![]), None),
        doc! { "participantsKey": "zz" },
        chat("a_b".into(), None),
        chat(Bson::Array(vec![Bson::Null, "a".into()]), None),
    ];
    docs.extend((0..20).map(|i| chat(strings(&[&format!("q{i}"), &format!("p{i}")]), Some(&format!("p{i}_q{i}")))));
    seed(&shared_uri(), &db, "chats", docs).await;
    command(
        &shared_uri(),
        &db,
        doc! {"createIndexes": "chats", "indexes": [{"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}]},
    )
    .await;

    let config = config(&db, "chats", "participantsKey", SORTED_JOIN);
    let run = canonical_run(&config).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let k = run.key_consistency().unwrap();
    assert_eq!((k.mismatch, k.derivable, k.underivable, k.documents), (3, 2, 4, 37), "{k:?}");
    let c = run.canonical_duplicates().unwrap();
    assert_eq!((c.keys, c.documents), (3, 3), "{c:?}");
    let mut groups: Vec<String> = c.sample.iter().map(|s| s.canonical.as_str().unwrap().to_string()).collect();
    groups.sort();
    assert_eq!(groups, ["1_2", "a_b", "c_d"]);
    let ab = c.sample.iter().find(|s| s.canonical == json!("a_b")).unwrap();
    assert_eq!(ab.count, 2);
    assert_eq!(ab.ids.len(), 2);
    assert!(ab.keys.contains(&json!("a_b")) && ab.keys.contains(&serde_json::Value::Null), "{ab:?}");
    let cd = c.sample.iter().find(|s| s.canonical == json!("c_d")).unwrap();
    assert!(cd.keys.contains(&json!("d_c")) && cd.keys.contains(&json!("c_d")), "{cd:?}");

    let by_kind = |kind| k.sample.iter().filter(|s| s.kind == kind).count();
    assert_eq!(by_kind(MismatchKind::Mismatch), 3, "{:?}", k.sample);
    assert_eq!(by_kind(MismatchKind::Derivable), 2);
    assert_eq!(by_kind(MismatchKind::Underivable), 4);
    let drift = k.sample.iter().find(|s| s.stored == json!("a_c")).unwrap();
    assert_eq!((drift.kind, &drift.canonical), (MismatchKind::Mismatch, &json!("a_g")));
    let separator = k.sample.iter().find(|s| s.stored == json!("e-f")).unwrap();
    assert_eq!(separator.canonical, json!("e_f"));
    assert!(k.sample.iter().all(|s| s.stored != json!("12_5") && s.stored != json!(oid_key.as_str())), "{:?}", k.sample);
    let violations: Vec<CheckName> = run.violations().into_iter().map(|(c, _)| c).collect();
    assert_eq!(violations, [CheckName::KeyConsistency, CheckName::CanonicalDuplicates]);
}

/// `users.email` unique but case-sensitive: two accounts for one person.
#[tokio::test]
async fn case_insensitive_emails_with_an_expression_and_with_the_preset() {
    let db = unique_db("email");
    let user = |email: Option<&str>| match email {
        Some(e) => doc! { "email": e },
        None => doc! { "name": "no email" },
    };
    seed(
        &shared_uri(),
        &db,
        "users",
        vec![
            user(Some("ann@x.org")),
            user(Some("Ann@X.org ")),
            user(Some("bob@x.org")),
            user(Some("Carl@x.org")),
            user(None),
        ],
    )
    .await;
    for canonical in [
        "expression = '{\"$toLower\": {\"$trim\": {\"input\": \"$email\"}}}'\n",
        "preset = \"trim_lowercase\"\n",
    ] {
        let config = config(&db, "users", "email", canonical);
        let run = canonical_run(&config).await;
        assert_eq!(run.errors().count(), 0, "{canonical}: {:?}", run.results);
        let c = run.canonical_duplicates().unwrap();
        assert_eq!((c.keys, c.documents), (1, 1), "{canonical}");
        assert_eq!(c.sample[0].canonical, json!("ann@x.org"));
        let k = run.key_consistency().unwrap();
        // "Ann@X.org " and "Carl@x.org" are stored otherwise than their canonical value.
        assert_eq!((k.mismatch, k.derivable, k.underivable), (2, 0, 1), "{canonical}: {k:?}");
    }
}

/// The server refuses an expression that parsed: the check fails, naming the field.
#[tokio::test]
async fn an_expression_the_server_refuses_fails_the_checks_naming_the_field() {
    let db = unique_db("badexpr");
    seed(&shared_uri(), &db, "users", vec![doc! {"email": "a@x.org"}]).await;
    let config = config(&db, "users", "email", "expression = '{\"$noSuchOperator\": \"$email\"}'\n");
    let run = canonical_run(&config).await;
    for check in [CheckName::KeyConsistency, CheckName::CanonicalDuplicates] {
        let e = run.result(check).unwrap().outcome.as_ref().unwrap_err();
        assert_eq!(e.reason, FailureReason::Other, "{e:?}");
        assert!(e.message.contains("target[0].canonical.expression"), "{}", e.message);
    }
}

/// A collection that is not there is not a clean zero.
#[tokio::test]
async fn a_missing_collection_fails_instead_of_reading_as_clean() {
    let db = unique_db("nocoll");
    let config = config(&db, "chats", "participantsKey", SORTED_JOIN);
    let run = canonical_run(&config).await;
    let e = run.result(CheckName::KeyConsistency).unwrap().outcome.as_ref().unwrap_err();
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

/// `check` runs both groups: the key checks and the canonical ones.
#[tokio::test]
async fn run_target_reports_every_group() {
    let db = unique_db("both");
    seed(&shared_uri(), &db, "chats", vec![chat(strings(&["b", "a"]), Some("b_a"))]).await;
    let config = config(&db, "chats", "participantsKey", SORTED_JOIN);
    let run = run_target(&config.targets[0], &Mongo::new(config.mongodb.clone())).await;
    let checks: Vec<CheckName> = run.results.iter().map(|r| r.check).collect();
    assert_eq!(checks, uniqwatch::checks::CHECKS);
    assert_eq!(run.key_consistency().unwrap().mismatch, 1);
}

/// Before MongoDB 5.2 there is no `$topN`: the same pass keeps each group's
/// first and last document. Run on the test server, it gives the same figures.
#[tokio::test]
async fn the_pre_5_2_pipeline_gives_the_same_figures() {
    use futures_util::TryStreamExt;
    use uniqwatch::checks::canonical::{pipeline, Summary};
    use uniqwatch::checks::scan::IdSample;
    use uniqwatch::config::Derivation;

    let db = unique_db("canon_old");
    let emails = ["ann@x.org", "ANN@x.org", "Ann@X.org", "bob@x.org", "Carl@x.org"];
    let mut docs: Vec<Document> = emails.iter().map(|e| doc! {"email": *e}).collect();
    docs.push(doc! {"email": 7});
    seed(&shared_uri(), &db, "users", docs).await;
    let coll = client(&shared_uri()).await.database(&db).collection::<Document>("users");
    let derivation = Derivation::Lowercase { field: "email".into(), trim: false };
    let mut figures = Vec::new();
    for ids in [IdSample::FirstN(20), IdSample::FirstAndLast] {
        let mut cursor = coll.aggregate(pipeline("email", &derivation, ids, 20)).await.unwrap();
        let mut s = Summary::default();
        while let Some(row) = cursor.try_next().await.unwrap() {
            s.add_row(&row, 20);
        }
        assert_eq!(s.duplicates[0].canonical, json!("ann@x.org"));
        // Carl's key is a group of one: its sample comes from the folded row.
        let carl = s.mismatches.iter().find(|m| m.stored == json!("Carl@x.org"));
        assert_eq!(carl.map(|m| &m.canonical), Some(&json!("carl@x.org")), "{ids:?}: {:?}", s.mismatches);
        figures.push((s.documents, s.mismatch, s.derivable, s.underivable, s.duplicate_keys, s.duplicate_documents));
    }
    assert_eq!(figures[0], (6, 3, 0, 1, 1, 2), "ANN@x.org, Ann@X.org, Carl@x.org differ; 7 is no string");
    assert_eq!(figures[0], figures[1]);
}

/// Review findings: several scalar fields, a separator that looks like a
/// field path, empty arrays and documents as values, and samples bounded in bytes.
#[tokio::test]
async fn scalar_fields_literal_separators_empty_values_and_long_keys() {
    let db = unique_db("canon_edges");
    let long: String = "x".repeat(5000);
    seed(
        &shared_uri(),
        &db,
        "pairs",
        vec![
            doc! {"userA": "b", "userB": "a", "pairKey": "a$bb"},
            doc! {"userA": "a", "userB": "b"},
            doc! {"userA": "c", "userB": 7, "pairKey": "7$bc"},
            doc! {"userA": "d", "pairKey": "d"},
            doc! {"userA": &long, "userB": "z", "pairKey": "wrong"},
        ],
    )
    .await;
    let pairs = config(&db, "pairs", "pairKey", "preset = \"sorted_join\"\nfields = [\"userA\", \"userB\"]\nseparator = \"$b\"\n");
    let run = canonical_run(&pairs).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    let k = run.key_consistency().unwrap();
    // "a$bb" is right (the separator "$b" is literal), "7$bc" too; the document
    // without userB cannot be computed; the long one is a mismatch.
    assert_eq!((k.mismatch, k.derivable, k.underivable), (1, 1, 1), "{k:?}");
    let c = run.canonical_duplicates().unwrap();
    assert_eq!((c.keys, c.documents), (1, 1));
    assert_eq!(c.sample[0].canonical, json!("a$bb"));
    let wrong = k.sample.iter().find(|s| s.stored == json!("wrong")).unwrap();
    let shown = wrong.canonical.as_str().unwrap();
    assert_eq!(shown.chars().count(), 256, "a sample keeps at most 256 characters of a value");

    // An expression whose result is [] or {} has no value: underivable, never one big group.
    let tags = config(&db, "pairs", "pairKey", "expression = '{\"$ifNull\": [\"$tags\", []]}'\n");
    let run = canonical_run(&tags).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);
    assert_eq!(run.canonical_duplicates().unwrap().keys, 0);
    assert_eq!(run.key_consistency().unwrap().underivable, 5);
}
