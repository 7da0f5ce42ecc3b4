//! The daemon's whole `/metrics` exposition for a fixed scenario, compared
//! with `tests/golden/metrics.txt`, in the style of node_exporter's
//! end-to-end test: a renamed metric, a changed label or a new series is a
//! visible diff, not something a targeted assertion happens to miss.
//!
//! The scenario: the real `uniqwatch run` against SecantusDB with
//! - target `indexed`: a unique sparse index and healthy data;
//! - target `unindexed`: no index, two keys held by two documents each and
//!   one document without the key;
//! - log source `app`: a fixed log file of requests, duplicate-key errors
//!   and recoveries.
//!
//! Every target runs once at start-up (its schedule never fires during the
//! test); once both runs and the whole log are counted, `/metrics` is read
//! and normalised: the values of series that depend on time, on the machine
//! or on the process (timestamps, durations, sizes on disk, histogram
//! buckets) become `<volatile>`, the crate version `<version>`; names,
//! labels and every other value stay.
//!
//! After a change to the metrics, regenerate the file and review its diff:
//!
//! ```sh
//! UNIQWATCH_REGENERATE=1 cargo test --test golden
//! ```
//!
//! This file also holds the test that log notices (rotation, truncation,
//! long lines) reach the persisted checkpoint and come back after a restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use mongodb::bson::{doc, Document};

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

/// The longest the daemon may take to start, run its checks or count a
/// log: generous, so a loaded two-core machine never trips it.
const LIMIT: Duration = Duration::from_secs(60);

const REGENERATE: &str = "UNIQWATCH_REGENERATE";

/// Placeholder for a value that changes from run to run.
const VOLATILE: &str = "<volatile>";

/// The fixed application log: 4 requests, 2 duplicate-key errors, 1 recovery.
const APP_LOG: &str = "\
2026-11-28T10:00:00.000Z [INFO] POST /api/chats/create-or-get 200 12ms
2026-11-28T10:00:01.000Z [INFO] POST /api/chats/create-or-get 200 9ms
2026-11-28T10:00:02.000Z [ERROR] MongoServerError: E11000 duplicate key error collection: app.chats index: participantsKey_1 dup key: { participantsKey: \"u1_u2\" }
2026-11-28T10:00:02.002Z [DEBUG] Retrieved existing chat after duplicate key error
2026-11-28T10:00:03.000Z [INFO] POST /api/chats/create-or-get 200 11ms
2026-11-28T10:00:04.000Z [WARN] Duplicate key error during upsert participantsKey=u3_u4
2026-11-28T10:00:05.000Z [INFO] POST /api/chats/create-or-get 200 10ms
";
const APP_LOG_LINES: usize = 7;

fn golden_path() -> PathBuf {
    repo_root().join("tests/golden/metrics.txt")
}

fn chat(key: Option<&str>) -> Document {
    let mut d = doc! {"participants": ["a", "b"]};
    if let Some(key) = key {
        d.insert("participantsKey", key);
    }
    d
}

/// A `uniqwatch run` on `config`, its output going to `log`.
struct Daemon {
    process: Process,
    base: String,
}

impl Daemon {
    fn start(config: &Path, log: &Path) -> Self {
        let args = [
            "run",
            "--config",
            config.to_str().expect("temp paths are UTF-8"),
            "--log-level",
            "info",
        ];
        let mut process = Process::start(Path::new(BIN), &args, Some(log));
        let addr = process.wait_for_line("where uniqwatch listens", LIMIT, daemon_listening_address);
        Daemon {
            process,
            base: format!("http://{addr}"),
        }
    }

    async fn metrics(&mut self) -> String {
        assert!(self.process.running(), "the daemon exited");
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics is text")
    }

    /// `/metrics` once `cond` holds of it.
    async fn metrics_when(&mut self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if cond(&m) {
                return m;
            }
            assert!(start.elapsed() < LIMIT, "timed out after {LIMIT:?} waiting for {what}; last /metrics:\n{m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of the series written exactly `series` (name and labels as exposed).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exposition_matches_the_golden_file() {
    let uri = shared_uri();
    let database = unique_db("golden");
    seed(&uri, &database, "indexed", ["k1", "k2", "k3"].map(|k| chat(Some(k))).to_vec()).await;
    command(
        &uri,
        &database,
        doc! {"createIndexes": "indexed", "indexes": [{"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}]},
    )
    .await;
    let unindexed = [Some("a"), Some("a"), Some("b"), Some("b"), Some("c"), None];
    seed(&uri, &database, "unindexed", unindexed.map(chat).to_vec()).await;

    let dir = tempfile::tempdir().expect("a scratch directory can be made");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("app.log"), APP_LOG).unwrap();
    let config = dir.path().join("uniqwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"[mongodb]
uri = "{uri}"
query_timeout = "10s"
connect_timeout = "5s"

[web]
listen = "127.0.0.1:0"

[state]
dir = "{state}"

[[target]]
name = "indexed"
database = "{database}"
collection = "indexed"
key = "participantsKey"
sparse = true
schedule = "0 0 0 1 1 *"

[[target]]
name = "unindexed"
database = "{database}"
collection = "unindexed"
key = "participantsKey"
sparse = true
schedule = "0 0 0 1 1 *"

[[logs]]
name = "app"
paths = ["{logs}/*.log"]
start_at = "beginning"
namespace = "app.chats"
index = "participantsKey_1"
request_event = "create_or_get"

[[logs.events]]
name = "create_or_get"
contains = "POST /api/chats/create-or-get"

[[logs.events]]
name = "create_or_get_timed"
contains = "POST /api/chats/create-or-get"
regex = '(?P<status>\d{{3}}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b'
buckets = ["10ms", "100ms"]
"#,
            state = dir.path().join("state").display(),
            logs = logs.display(),
        ),
    )
    .unwrap();

    let mut daemon = Daemon::start(&config, &dir.path().join("uniqwatch.log"));
    // Every check of both targets has run, its history is written, and the
    // whole log is read and committed.
    let done = |m: &str| {
        let checks_done = ["indexed", "unindexed"].iter().all(|t| {
            ["index", "duplicates", "missing_keys"].iter().all(|c| {
                value(m, &format!(r#"uniqwatch_check_success{{check="{c}",target="{t}"}}"#)).is_some()
            }) && value(m, &format!(r#"uniqwatch_up{{target="{t}"}}"#)).is_some()
        });
        checks_done
            && value(m, "uniqwatch_history_last_write_timestamp_seconds").is_some()
            && value(m, r#"uniqwatch_log_lines_total{source="app"}"#) == Some(APP_LOG_LINES as f64)
            && value(m, r#"uniqwatch_log_lag_bytes{source="app"}"#) == Some(0.0)
    };
    let metrics = daemon.metrics_when("both targets' first run and the whole log", done).await;
    compare_with_golden(&normalise(&metrics));
}

/// Whether the value of `series` (name and labels) changes from run to run.
/// Anything in seconds is a time or a duration (a histogram's `_count`
/// excepted: it counts runs), but for durations read from the fixed log;
/// the store's size depends on the file system.
/// A new metric of that kind joins this list, or the golden file flaps.
fn is_volatile(series: &str) -> bool {
    let name = series.split('{').next().unwrap_or(series);
    (name.contains("_seconds") && !name.ends_with("_count") && !name.starts_with("uniqwatch_log_event_duration_seconds"))
        || name == "uniqwatch_history_size_bytes"
        || name.starts_with("process_")
}

/// The exposition with volatile values replaced (see [`is_volatile`]) and
/// the build's labels (crate version, git revision, rustc) masked, so the
/// file changes only when names, labels or stable values do.
fn normalise(metrics: &str) -> String {
    let build_labels = [
        ("version", uniqwatch::build_info::VERSION),
        ("revision", uniqwatch::build_info::REVISION),
        ("rustversion", uniqwatch::build_info::RUST_VERSION),
    ];
    let mut out = String::new();
    for line in metrics.lines() {
        let mut line = line.to_string();
        if line.starts_with("uniqwatch_build_info{") {
            for (label, value) in build_labels {
                line = line.replace(&format!(r#"{label}="{value}""#), &format!(r#"{label}="<{label}>""#));
            }
        }
        match line.rsplit_once(' ') {
            Some((series, _)) if !line.starts_with('#') && is_volatile(series) => {
                out.push_str(series);
                out.push(' ');
                out.push_str(VOLATILE);
            }
            _ => out.push_str(&line),
        }
        out.push('\n');
    }
    out
}

/// Passes when `actual` is the golden file's text; rewrites the file
/// instead when [`REGENERATE`] is set; otherwise fails with a line diff.
fn compare_with_golden(actual: &str) {
    let path = golden_path();
    if std::env::var_os(REGENERATE).is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::create_dir_all(path.parent().expect("the golden file is in a directory")).unwrap();
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("golden: rewrote {}; review it with `git diff`", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; create it with {REGENERATE}=1 cargo test --test golden", path.display())
    });
    if expected != actual {
        panic!(
            "/metrics differs from {} (- golden, + now):\n{}\n\
             If the change is intended, regenerate the file and review its diff:\n    \
             {REGENERATE}=1 cargo test --test golden",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// The lines of `old` and `new` that differ, as `-`/`+` lines with two
/// lines of context, from their longest common subsequence.
fn line_diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // common[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut common = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || common[i + 1][j] >= common[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut out = String::new();
    let mut last_shown = None;
    for (k, (sign, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&c| c.abs_diff(k) <= CONTEXT);
        if !near {
            continue;
        }
        if last_shown.is_some_and(|l: usize| l + 1 != k) {
            out.push_str("   ...\n");
        }
        out.push_str(&format!("{sign} {line}\n"));
        last_shown = Some(k);
    }
    out
}

#[test]
fn line_diff_shows_changes_with_context() {
    let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let new = "a\nB\nc\nd\ne\nf\ng\nh\ni\nJ\n";
    assert_eq!(
        line_diff(old, new),
        "  a\n- b\n+ B\n  c\n  d\n   ...\n  h\n  i\n- j\n+ J\n"
    );
    assert_eq!(line_diff(old, old), "");
}

#[test]
fn normalise_masks_volatile_values_only() {
    let text = "# HELP uniqwatch_start_time_seconds Unix time.\n\
                uniqwatch_start_time_seconds 1795952882.658\n\
                uniqwatch_check_duration_seconds{check=\"index\",target=\"t\"} 0.01\n\
                uniqwatch_run_seconds_bucket{le=\"0.1\"} 3\n\
                uniqwatch_run_seconds_count 3\n\
                uniqwatch_history_size_bytes 74072\n\
                uniqwatch_documents{target=\"t\"} 3\n";
    let version = format!(
        "uniqwatch_build_info{{revision=\"{}\",rustversion=\"{}\",version=\"{}\"}} 1\n",
        uniqwatch::build_info::REVISION,
        uniqwatch::build_info::RUST_VERSION,
        uniqwatch::build_info::VERSION
    );
    assert_eq!(
        normalise(&format!("{text}{version}")),
        "# HELP uniqwatch_start_time_seconds Unix time.\n\
         uniqwatch_start_time_seconds <volatile>\n\
         uniqwatch_check_duration_seconds{check=\"index\",target=\"t\"} <volatile>\n\
         uniqwatch_run_seconds_bucket{le=\"0.1\"} <volatile>\n\
         uniqwatch_run_seconds_count 3\n\
         uniqwatch_history_size_bytes <volatile>\n\
         uniqwatch_documents{target=\"t\"} 3\n\
         uniqwatch_build_info{revision=\"<revision>\",rustversion=\"<rustversion>\",version=\"<version>\"} 1\n"
    );
}

/// Regression for a unit test that only restated `Notice::apply`: the
/// counts of rotations, truncations and long lines must reach the saved
/// checkpoint through the real tailer, so that a restarted daemon resumes
/// them. Without `apply` on the tailer's path the restart shows zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_notices_are_persisted_and_resumed_after_a_restart() {
    let dir = tempfile::tempdir().expect("a scratch directory can be made");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let app = logs.join("app.log");
    std::fs::write(&app, "first\nsecond\n").unwrap();
    let config = dir.path().join("uniqwatch.toml");
    std::fs::write(
        &config,
        format!(
            r#"[web]
listen = "127.0.0.1:0"

[state]
dir = "{state}"

[[logs]]
name = "app"
paths = ["{logs}/*.log"]
start_at = "beginning"
poll_interval = "10ms"
max_line_bytes = 65536
"#,
            state = dir.path().join("state").display(),
            logs = logs.display(),
        ),
    )
    .unwrap();
    let series = |name: &str| format!(r#"uniqwatch_log_{name}{{source="app"}}"#);
    let counts = |m: &str| {
        ["lines_total", "rotations_total", "truncations_total", "long_lines_total"]
            .map(|name| value(m, &series(name)).unwrap_or(-1.0))
    };

    let mut daemon = Daemon::start(&config, &dir.path().join("first.log"));
    daemon.metrics_when("2 lines", |m| counts(m) == [2.0, 0.0, 0.0, 0.0]).await;
    // Rotation by rename: the old name no longer matches the glob.
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    std::fs::write(&app, "third\n").unwrap();
    daemon.metrics_when("a rotation", |m| counts(m) == [3.0, 1.0, 0.0, 0.0]).await;
    // Truncation: shorter than what was read.
    std::fs::write(&app, "4\n").unwrap();
    daemon.metrics_when("a truncation", |m| counts(m) == [4.0, 1.0, 1.0, 0.0]).await;
    let long = format!("{}\n", "x".repeat(70_000));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&app)
        .and_then(|mut f| std::io::Write::write_all(&mut f, long.as_bytes()))
        .unwrap();
    daemon.metrics_when("a long line", |m| counts(m) == [5.0, 1.0, 1.0, 1.0]).await;
    drop(daemon); // SIGTERM: a clean stop

    let mut daemon = Daemon::start(&config, &dir.path().join("second.log"));
    daemon
        .metrics_when("every count resumed from the checkpoint", |m| counts(m) == [5.0, 1.0, 1.0, 1.0])
        .await;
}
