//! The seed's own application shape, for real: a mongoose app
//! (tests/mongoose/app.js) creates chats by create-or-get on the sorted
//! participants key, with racing requests, and one code path that writes
//! the key unsorted. The unique index stays healthy throughout; uniqwatch
//! must find exactly the pairs that got a second chat, and exactly the
//! chats stored with a wrong key.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;
use uniqwatch::checks::{run_target, Method};
use uniqwatch::config::Config;
use uniqwatch::mongo::Mongo;

#[tokio::test]
async fn a_mongoose_app_writing_unsorted_keys_on_one_path_is_found_exactly() {
    const TEST: &str = "a_mongoose_app_writing_unsorted_keys_on_one_path_is_found_exactly";
    let app = repo_root().join("tests/mongoose");
    if !app.join("node_modules/mongoose").is_dir() {
        return skip(TEST, "tests/mongoose/node_modules is missing; scripts/setup.sh installs it (npm ci)");
    }
    let db = unique_db("mongoose");
    let uri = shared_uri();
    let out = match Command::new("node").arg(app.join("app.js")).arg(&uri).arg(&db).output() {
        Ok(out) => out,
        Err(e) => return skip(TEST, &format!("cannot run node: {e}")),
    };
    assert!(out.status.success(), "app failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    let mut expected: Vec<String> = report["duplicated"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    expected.sort();
    assert!(!expected.is_empty(), "the app must produce some duplicated pairs: {report}");

    let mut text = target_toml(&uri, "chats", &db, "chats", "participantsKey", true, "0 */5 * * * *");
    text.push_str("sample_size = 1000\n\n[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\n");
    let config = Config::from_toml(&text, Path::new("test.toml"), None).unwrap();
    let run = run_target(&config.targets[0], &Mongo::new(config.mongodb.clone())).await;
    assert_eq!(run.errors().count(), 0, "{:?}", run.results);

    // The mechanism holds: the index mongoose built is there, no stored key twice.
    assert!(run.index().unwrap().present, "{:?}", run.index());
    let d = run.duplicates().unwrap();
    assert_eq!((d.keys, d.method), (0, Method::UniqueIndex));

    // The invariant does not: one extra chat per pair the buggy path reached.
    let c = run.canonical_duplicates().unwrap();
    assert_eq!((c.keys, c.documents), (expected.len() as u64, expected.len() as u64));
    let mut found: Vec<String> = c.sample.iter().map(|s| s.canonical.as_str().unwrap().to_string()).collect();
    found.sort();
    assert_eq!(found, expected);
    for s in &c.sample {
        assert_eq!((s.count, s.keys.len()), (2, 2), "{s:?}");
    }
    let k = run.key_consistency().unwrap();
    assert_eq!((k.mismatch, k.derivable, k.underivable), (report["wrongKeys"].as_u64().unwrap(), 0, 0));
    assert_eq!(k.documents, report["chats"].as_u64().unwrap());
}
