//! The log tailer driven through `logs::run` on real files, one scratch
//! directory per test. No MongoDB needed.
//!
//! Grouped by theme: rotation schemes, line shapes, files and patterns that
//! come and go, restarts and crash safety, health, and the runtime staying
//! free. A test that asserts something did *not* happen first waits for a
//! number of polls (the tailer counts them in its health), never for a time.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uniqwatch::config::{LogEventConfig, LogSourceConfig, StartAt};
use uniqwatch::logs::{self, checkpoint, LogTotals, LogsError, TailerHealth, Tuning};
use uniqwatch::metrics::Metrics;
use uniqwatch::shutdown::{self, ShutdownTrigger};

const POLL: Duration = Duration::from_millis(20);
const PATIENCE: Duration = Duration::from_secs(10);

fn source(name: &str, paths: &[&Path], start_at: StartAt) -> LogSourceConfig {
    LogSourceConfig {
        name: name.into(),
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        start_at,
        namespace: Some("app.chats".into()),
        index: Some("participantsKey_1".into()),
        error_markers: vec!["E11000".into(), "Duplicate key error".into()],
        recovery_markers: vec!["Retrieved existing chat after duplicate key error".into()],
        poll_interval: POLL,
        max_line_bytes: 1024 * 1024,
        events: vec![LogEventConfig {
            name: "create_or_get".into(),
            contains: Some("POST /api/chats/create-or-get".into()),
            regex: None,
            ..Default::default()
        }],
        request_event: None,
    }
}

/// A tailer running in the test's runtime.
struct Running {
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), LogsError>>,
    metrics: Metrics,
    totals: watch::Receiver<LogTotals>,
    health: watch::Receiver<TailerHealth>,
}

/// The tuning of the tests: the default quiet period (rotated files stay
/// followed while a test appends to them late), quick start retries.
fn tuning() -> Tuning {
    Tuning {
        start_retry: POLL,
        ..Tuning::default()
    }
}

fn start(sources: Vec<LogSourceConfig>, state: &Path) -> Running {
    start_tuned(sources, state, tuning())
}

fn start_tuned(sources: Vec<LogSourceConfig>, state: &Path, tuning: Tuning) -> Running {
    let (trigger, shutdown) = shutdown::channel();
    let metrics = Metrics::new();
    let (tx, totals) = watch::channel(LogTotals::default());
    let (health_tx, health) = watch::channel(TailerHealth::default());
    let task = tokio::spawn(logs::run(
        sources,
        state.to_path_buf(),
        metrics.clone(),
        tx,
        health_tx,
        tuning,
        shutdown,
    ));
    Running {
        trigger,
        task,
        metrics,
        totals,
        health,
    }
}

impl Running {
    async fn stop(self) -> LogTotals {
        self.trigger.trigger();
        self.task.await.unwrap().unwrap();
        let totals = self.totals.borrow().clone();
        totals
    }

    /// Waits until the published totals satisfy `done`, or fails with them.
    async fn until(&mut self, what: &str, done: impl Fn(&LogTotals) -> bool) -> LogTotals {
        let deadline = Instant::now() + PATIENCE;
        loop {
            {
                let t = self.totals.borrow_and_update();
                if done(&t) {
                    return t.clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for {what}; totals: {:#?}",
                    *self.totals.borrow()
                );
            }
            let _ = tokio::time::timeout(left, self.totals.changed()).await;
        }
    }

    /// Waits until the tailer has completed `n` more polls (each with its
    /// commit): what a test waits for before asserting that nothing happened.
    async fn polls(&mut self, n: u64) {
        let target = self.health.borrow().polls + n;
        self.health_until(&format!("{n} polls"), |h| h.polls >= target)
            .await;
    }

    /// Waits until the tailer's health satisfies `done`, or fails with it.
    async fn health_until(&mut self, what: &str, done: impl FnMut(&TailerHealth) -> bool) {
        let waited = tokio::time::timeout(PATIENCE, self.health.wait_for(done))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(
            waited,
            "timed out waiting for {what}: {:?}",
            *self.health.borrow()
        );
    }

    /// Waits until a metric series (as written in `/metrics`) has `value`.
    async fn until_metric(&self, series: &str, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        while metric(&self.metrics, series) != Some(value) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {series} = {value}:\n{}",
                self.metrics.encode()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.metrics, series)
    }
}

/// The value of one series in the exposition text.
fn metric(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn lines(t: &LogTotals, source: &str) -> u64 {
    t.sources.get(source).map_or(0, |s| s.lines)
}

fn errors(t: &LogTotals, source: &str) -> u64 {
    t.sources
        .get(source)
        .map_or(0, |s| s.duplicate_key_errors.iter().map(|e| e.count).sum())
}

fn append(path: &Path, text: impl AsRef<[u8]>) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_ref()).unwrap();
}

/// `n` ordinary request lines, distinct by `tag`.
fn requests(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "2026-11-28T10:00:00.{i:03}Z [INFO] {tag} POST /api/chats/create-or-get 200 3ms\n"
            )
        })
        .collect()
}

const E11000: &str = "2026-11-28T10:00:02.000Z [ERROR] MongoServerError: E11000 duplicate key error collection: app.chats index: participantsKey_1 dup key: { participantsKey: \"userA_userB\" }\n";
const WARN: &str = "2026-11-28T10:00:01.123Z [WARN] Duplicate key error during upsert participantsKey=userA_userB\n";
const RECOVERED: &str =
    "2026-11-28T10:00:01.125Z [DEBUG] Retrieved existing chat after duplicate key error\n";

struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn logs(&self) -> PathBuf {
        let p = self.dir.path().join("logs");
        fs::create_dir_all(&p).unwrap();
        p
    }
    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

// --- Rotation schemes -------------------------------------------------------

#[tokio::test]
async fn rename_rotation_reads_late_writes_to_the_renamed_file_first() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 3));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 3).await;

    let rotated = s.logs().join("app.log.1");
    fs::rename(&log, &rotated).unwrap();
    append(&log, requests("new", 2));
    // The writer has not reopened yet: it still appends to the renamed file.
    append(&rotated, format!("{WARN}{RECOVERED}"));
    let got = t.until("all lines", |t| lines(t, "app") == 7).await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(got.sources["app"].recoveries, 1);
    t.until_metric(r#"uniqwatch_log_rotations_total{source="app"}"#, 1.0)
        .await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_files{source="app"}"#),
        Some(2.0),
        "renamed file still drained"
    );
    append(&rotated, E11000);
    let got = t
        .until("a later late line", |t| errors(t, "app") == 2)
        .await;
    assert_eq!(lines(&got, "app"), 8);
    t.stop().await;
}

#[tokio::test]
async fn a_rotated_file_being_drained_survives_a_restart_counted_once() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![source("app", &[&log], StartAt::Beginning)];
    append(&log, requests("a", 2));
    let mut t = start(logs.clone(), &s.state());
    t.until("first lines", |t| lines(t, "app") == 2).await;
    let rotated = s.logs().join("app.log.1");
    fs::rename(&log, &rotated).unwrap();
    append(&log, requests("new", 1));
    t.until("the new file", |t| lines(t, "app") == 3).await;
    t.until_metric(r#"uniqwatch_log_rotations_total{source="app"}"#, 1.0)
        .await;
    t.stop().await;

    append(&rotated, E11000);
    let mut t = start(logs, &s.state());
    let got = t.until("the late line", |t| lines(t, "app") == 4).await;
    assert_eq!(errors(&got, "app"), 1);
    t.polls(5).await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_rotations_total{source="app"}"#),
        Some(1.0)
    );
    assert_eq!(lines(&t.stop().await, "app"), 4);
}

#[tokio::test]
async fn copytruncate_is_detected_and_the_copy_drained() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 3));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 3).await;

    // copytruncate, with lines written just before the copy that the tailer
    // may or may not have read yet: either way each counts once.
    append(&log, format!("{E11000}{E11000}"));
    fs::copy(&log, s.logs().join("app.log.1")).unwrap();
    fs::write(&log, requests("after", 1)).unwrap();
    let got = t
        .until("copy and new lines", |t| lines(t, "app") == 6)
        .await;
    assert_eq!(errors(&got, "app"), 2);
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0)
        .await;
    append(&log, requests("later", 2));
    t.until("lines after truncation", |t| lines(t, "app") == 8)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn truncation_in_place_longer_than_before_is_seen_by_first_bytes() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, "short\n");
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first line", |t| lines(t, "app") == 1).await;
    // Truncated and refilled past the old offset between two polls.
    fs::write(&log, requests("refilled", 4)).unwrap();
    t.until("refilled lines", |t| lines(t, "app") == 5).await;
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn truncation_while_stopped_is_detected_at_start_up() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![source("app", &[&log], StartAt::Beginning)];
    append(&log, requests("a", 5));
    let mut t = start(logs.clone(), &s.state());
    t.until("first lines", |t| lines(t, "app") == 5).await;
    t.stop().await;

    fs::write(&log, E11000).unwrap();
    let mut t = start(logs.clone(), &s.state());
    let got = t.until("the new content", |t| lines(t, "app") == 6).await;
    assert_eq!(errors(&got, "app"), 1);
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0)
        .await;
    t.stop().await;

    // Truncated and rewritten longer than before while stopped: first bytes differ.
    fs::write(&log, requests("rewritten-with-longer-lines", 3)).unwrap();
    let mut t = start(logs, &s.state());
    t.until("the rewritten content", |t| lines(t, "app") == 9)
        .await;
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 2.0)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn rename_while_stopped_is_drained_from_the_checkpoint_offset() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![source("app", &[&log], StartAt::Beginning)];
    append(&log, requests("a", 2));
    let mut t = start(logs.clone(), &s.state());
    t.until("first lines", |t| lines(t, "app") == 2).await;
    t.stop().await;

    append(&log, E11000);
    fs::rename(&log, s.logs().join("app.log.1")).unwrap();
    append(&log, requests("new", 1));
    let mut t = start(logs, &s.state());
    let got = t.until("both files", |t| lines(t, "app") == 4).await;
    assert_eq!(errors(&got, "app"), 1);
    t.stop().await;
}

/// Regression: a file from the checkpoint found by its inode under another
/// name, holding other bytes (the drained file was deleted while the daemon
/// was down and its inode reused), was read from byte 0 and its lines
/// counted again.
#[tokio::test]
async fn an_inode_from_the_checkpoint_holding_other_bytes_is_not_read() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![source("app", &[&log], StartAt::Beginning)];
    append(&log, requests("a", 2));
    append(&log, E11000);
    let mut t = start(logs.clone(), &s.state());
    t.until("first lines", |t| lines(t, "app") == 3).await;
    t.stop().await;

    let moved = s.logs().join("app.log.1");
    fs::rename(&log, &moved).unwrap();
    // Same inode, other and longer content: what a reused inode looks like.
    fs::write(&moved, E11000.repeat(5)).unwrap();
    append(&log, requests("new", 1));
    let mut t = start(logs, &s.state());
    t.until("the new file", |t| lines(t, "app") >= 4).await;
    t.polls(3).await;
    let got = t.stop().await;
    assert_eq!((lines(&got, "app"), errors(&got, "app")), (4, 1));
}

// --- Line shapes --------------------------------------------------------------

#[tokio::test]
async fn partial_line_counts_only_once_its_newline_arrives() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, "2026-11-28T10:00:01Z [WARN] Duplicate key");
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until_metric(r#"uniqwatch_log_files{source="app"}"#, 1.0)
        .await;
    t.polls(5).await;
    assert_eq!(lines(&t.totals.borrow(), "app"), 0);
    assert_eq!(
        t.metric(r#"uniqwatch_log_lag_bytes{source="app"}"#),
        Some(41.0)
    );
    append(&log, " error during upsert\n");
    let got = t
        .until("the completed line", |t| lines(t, "app") == 1)
        .await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(got.sources["app"].bytes, 62);
    t.until_metric(r#"uniqwatch_log_lag_bytes{source="app"}"#, 0.0)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn long_line_is_counted_as_long_and_the_lines_after_it_are_read() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let mut config = source("app", &[&log], StartAt::Beginning);
    config.max_line_bytes = 64 * 1024;
    let long = format!(
        "E11000 collection: app.chats index: k_1 {}\n",
        "x".repeat(1_000_000)
    );
    append(&log, &long);
    append(&log, format!("{RECOVERED}{}", requests("after", 2)));
    let mut t = start(vec![config], &s.state());
    let got = t.until("all lines", |t| lines(t, "app") == 4).await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(got.sources["app"].recoveries, 1);
    assert_eq!(got.sources["app"].bytes, fs::metadata(&log).unwrap().len());
    t.until_metric(r#"uniqwatch_log_long_lines_total{source="app"}"#, 1.0)
        .await;
    assert_eq!(t.metric(r#"uniqwatch_duplicate_key_errors_total{index="k_1",namespace="app.chats",source="app"}"#), Some(1.0));
    t.stop().await;
}

/// Regression (review of f0608be): a line cut at `max_line_bytes` gave a
/// sample read from its cut end (`12` of `1234`); it is unparsed instead.
#[tokio::test]
async fn a_duration_in_a_cut_line_is_unparsed() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let mut config = timed_source(&log);
    config.max_line_bytes = 64 * 1024;
    config.events[0].regex = Some(r"(?P<status>\d{3}) (?P<duration>\d+)".into());
    config.events[0].unit = Some(uniqwatch::config::DurationUnit::Ms);
    let head = " POST /api/chats/create-or-get 200 12";
    append(&log, format!("{}{head}34\n", "x".repeat(config.max_line_bytes - head.len())));
    append(&log, timed("after", 200, "7"));
    let mut t = start(vec![config], &s.state());
    let got = t.until("both lines", |t| lines(t, "app") == 2).await;
    let d = &got.sources["app"].durations["create_or_get"];
    assert_eq!(d.unparsed, 1, "{d:?}");
    assert_eq!((d.by_status_class["2xx"].count, d.by_status_class["2xx"].sum_nanos), (1, 7_000_000), "{d:?}");
    assert_eq!(got.sources["app"].events["create_or_get"], 1);
    t.stop().await;
}

#[tokio::test]
async fn invalid_utf8_is_matched_on_bytes() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, b"\xff\xfe\x00 E11000 duplicate key error collection: app.chats index: participantsKey_1 dup\n\xc3\x28 POST /api/chats/create-or-get\n");
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    let got = t.until("both lines", |t| lines(t, "app") == 2).await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(got.sources["app"].events["create_or_get"], 1);
    t.stop().await;
}

#[tokio::test]
async fn mongod_json_lines_count_once_with_the_labels_they_name() {
    let s = Scratch::new();
    let log = s.logs().join("mongod.log");
    let slow_query = r#"{"t":{"$date":"2026-11-28T10:00:02.001+00:00"},"s":"I","c":"COMMAND","id":51803,"ctx":"conn42","msg":"Slow query","attr":{"type":"command","ns":"app.users","command":{"insert":"users"},"ok":0,"errMsg":"E11000 duplicate key error collection: app.users index: email_1 dup key: { email: \"a@example.com\" }","errName":"DuplicateKey","errCode":11000,"reslen":245,"durationMillis":3}}"#;
    let other = r#"{"t":{"$date":"2026-11-28T10:00:03.000+00:00"},"s":"I","c":"NETWORK","id":22943,"ctx":"listener","msg":"Connection accepted"}"#;
    append(&log, format!("{slow_query}\n{other}\n"));
    let mut config = source("mongod", &[&log], StartAt::Beginning);
    config.namespace = None;
    config.index = None;
    config.recovery_markers = Vec::new();
    let mut t = start(vec![config], &s.state());
    let got = t.until("both lines", |t| lines(t, "mongod") == 2).await;
    assert_eq!(errors(&got, "mongod"), 1);
    t.until_metric(
        r#"uniqwatch_duplicate_key_errors_total{index="email_1",namespace="app.users",source="mongod"}"#,
        1.0,
    )
    .await;
    // mongod logs no recoveries: with no recovery markers there is no
    // recovery series, so an errors-versus-recoveries alert cannot misfire.
    assert!(
        !t.metrics.encode().contains("uniqwatch_duplicate_key_recoveries_total{"),
        "a source without recovery markers must not export recoveries"
    );
    t.stop().await;
}

#[tokio::test]
async fn error_labels_past_the_cap_are_counted_as_other() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let lines_text: String = (0..logs::MAX_ERROR_LABEL_PAIRS + 5)
        .map(|i| format!("E11000 duplicate key error collection: app.c{i} index: k_1 dup key\n"))
        .collect();
    append(&log, lines_text);
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    let got = t
        .until("every line", |t| {
            lines(t, "app") == logs::MAX_ERROR_LABEL_PAIRS as u64 + 5
        })
        .await;
    let app = &got.sources["app"];
    assert_eq!(errors(&got, "app"), logs::MAX_ERROR_LABEL_PAIRS as u64 + 5);
    assert_eq!(
        app.duplicate_key_errors.len(),
        logs::MAX_ERROR_LABEL_PAIRS + 1
    );
    let other = app
        .duplicate_key_errors
        .iter()
        .find(|e| e.namespace == "other")
        .unwrap();
    assert_eq!(other.count, 5);
    t.stop().await;
}

// --- Files and patterns that come and go ---------------------------------------

#[tokio::test]
async fn glob_matching_nothing_then_a_file_appearing_is_read_from_the_beginning() {
    let s = Scratch::new();
    let pattern = s.logs().join("*.log");
    let mut t = start(vec![source("app", &[&pattern], StartAt::End)], &s.state());
    t.until_metric(r#"uniqwatch_log_files{source="app"}"#, 0.0)
        .await;
    t.polls(3).await;
    // Written in one go before the tailer sees the file: still counted, even with start_at = end.
    let staged = s.dir.path().join("staged");
    append(&staged, format!("{}{E11000}", requests("a", 3)));
    fs::rename(&staged, s.logs().join("new.log")).unwrap();
    let got = t.until("the new file", |t| lines(t, "app") == 4).await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(t.metric(r#"uniqwatch_log_files{source="app"}"#), Some(1.0));
    t.stop().await;
}

#[tokio::test]
async fn directory_created_later_is_picked_up() {
    let s = Scratch::new();
    let dir = s.dir.path().join("not-yet").join("app");
    let mut t = start(
        vec![source("app", &[&dir.join("*.log")], StartAt::End)],
        &s.state(),
    );
    t.until_metric(r#"uniqwatch_log_files{source="app"}"#, 0.0)
        .await;
    t.polls(3).await;
    fs::create_dir_all(&dir).unwrap();
    append(&dir.join("a.log"), requests("a", 2));
    t.until("the file in the new directory", |t| lines(t, "app") == 2)
        .await;
    t.stop().await;
}

#[tokio::test]
async fn deleted_and_recreated_file_is_followed_again() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 2));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 2).await;
    fs::remove_file(&log).unwrap();
    t.polls(3).await;
    append(&log, format!("{}{E11000}", requests("b", 2)));
    let got = t
        .until("the recreated file", |t| lines(t, "app") == 5)
        .await;
    assert_eq!(errors(&got, "app"), 1);
    t.stop().await;
}

#[tokio::test]
async fn start_at_end_skips_history_and_beginning_counts_it() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, format!("{}{E11000}", requests("old", 3)));
    let mut t = start(
        vec![
            source("from-end", &[&log], StartAt::End),
            source("from-beginning", &[&log], StartAt::Beginning),
        ],
        &s.state(),
    );
    t.until("history", |t| lines(t, "from-beginning") == 4)
        .await;
    append(&log, WARN);
    let got = t
        .until("the new line", |t| {
            lines(t, "from-end") == 1 && lines(t, "from-beginning") == 5
        })
        .await;
    assert_eq!(errors(&got, "from-end"), 1);
    assert_eq!(errors(&got, "from-beginning"), 2);
    // A file appearing later is read from its beginning whatever start_at says.
    let other = s.logs().join("other.log");
    let mut config = source("from-end", &[&log], StartAt::End);
    config.paths.push(other.display().to_string());
    t.stop().await;
    append(&other, requests("other", 2));
    let mut t = start(vec![config], &s.state());
    t.until("the other file", |t| lines(t, "from-end") == 3)
        .await;
    t.stop().await;
}

// --- Restarts and crash safety -----------------------------------------------------

#[tokio::test]
async fn restart_resumes_counters_exactly() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![source("app", &[&log], StartAt::Beginning)];
    append(
        &log,
        format!("{}{E11000}{WARN}{RECOVERED}", requests("a", 2)),
    );
    let mut t = start(logs.clone(), &s.state());
    let before = t.until("first lines", |t| lines(t, "app") == 5).await;
    let stopped = t.stop().await;
    assert_eq!(before, stopped);

    let mut t = start(logs, &s.state());
    // The first snapshot after start-up is exactly what was saved.
    let resumed = t
        .until("the persisted totals", |t| !t.sources.is_empty())
        .await;
    assert_eq!(resumed, stopped);
    assert!(t
        .metrics
        .encode()
        .contains(r#"uniqwatch_log_lines_total{source="app"} 5"#));
    append(&log, format!("{E11000}{}", requests("b", 1)));
    let got = t.until("appended lines", |t| lines(t, "app") == 7).await;
    let app = &got.sources["app"];
    assert_eq!(app.recoveries, 1);
    assert_eq!(app.events["create_or_get"], 3);
    assert_eq!(app.duplicate_key_errors.len(), 1);
    assert_eq!(app.duplicate_key_errors[0].count, 3);
    assert_eq!(app.bytes, fs::metadata(&log).unwrap().len());
    let text = t.metrics.encode();
    assert!(
        text.contains("# TYPE uniqwatch_log_lines_total counter"),
        "{text}"
    );
    assert!(
        text.contains(r#"uniqwatch_log_lines_total{source="app"} 7"#),
        "{text}"
    );
    assert!(text.contains(r#"uniqwatch_duplicate_key_errors_total{index="participantsKey_1",namespace="app.chats",source="app"} 3"#), "{text}");
    assert!(
        text.contains(r#"uniqwatch_duplicate_key_recoveries_total{source="app"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"uniqwatch_log_events_total{event="create_or_get",source="app",status_class=""} 3"#),
        "{text}"
    );
    t.stop().await;
}

/// Runs the tailer over `log` from the checkpoint in `state` and returns the
/// totals once every byte of the file is counted.
async fn finish_from(state: &Path, log: &Path) -> LogTotals {
    let size = fs::metadata(log).unwrap().len();
    let mut t = start(vec![source("app", &[log], StartAt::Beginning)], state);
    t.until("every byte", |t| {
        t.sources.get("app").is_some_and(|s| s.bytes >= size)
    })
    .await;
    // A few more polls: a double count would show as more than the file holds.
    t.polls(5).await;
    t.stop().await
}

/// Whatever checkpoint a `kill -9` leaves on disk (any saved generation, a
/// newer temp file, a torn temp file), a restart counts every line once.
#[tokio::test]
async fn every_checkpoint_on_disk_is_a_consistent_restart_point() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let stable = s.state().join(checkpoint::FILE_NAME);
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    let mut snapshots = Vec::new();
    for round in 0..6 {
        append(
            &log,
            format!("{}{E11000}", requests(&format!("r{round}"), 50)),
        );
        t.until("the round", |t| lines(t, "app") == 51 * (round + 1))
            .await;
        snapshots.push(fs::read(&stable).unwrap());
    }
    let expected = t.stop().await;
    assert_eq!(errors(&expected, "app"), 6);

    let restore = |stable_bytes: &[u8], temp: Option<&[u8]>| {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(checkpoint::FILE_NAME), stable_bytes).unwrap();
        if let Some(temp) = temp {
            fs::write(dir.path().join(checkpoint::TEMP_FILE_NAME), temp).unwrap();
        }
        dir
    };
    for (i, snap) in snapshots.iter().enumerate() {
        let dir = restore(snap, None);
        assert_eq!(
            finish_from(dir.path(), &log).await,
            expected,
            "restart from generation snapshot {i}"
        );
    }
    // Crash after the temp file's fsync, before its rename: the temp is newer.
    let dir = restore(&snapshots[1], Some(&snapshots[4]));
    assert_eq!(
        finish_from(dir.path(), &log).await,
        expected,
        "newer temp file"
    );
    // Crash while writing the temp file: it is torn and ignored.
    let torn = &snapshots[4][..snapshots[4].len() / 2];
    let dir = restore(&snapshots[1], Some(torn));
    assert_eq!(
        finish_from(dir.path(), &log).await,
        expected,
        "torn temp file"
    );
    // Crash before the very first save: no checkpoint at all.
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        finish_from(dir.path(), &log).await,
        expected,
        "no checkpoint"
    );
}

/// Counters move only with a saved checkpoint: while saving fails they stand
/// still, and they catch up exactly once it works again.
#[tokio::test]
async fn counters_stand_still_while_the_checkpoint_cannot_be_saved() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 2));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 2).await;
    // A directory where the temp file goes makes every save fail.
    let blocker = s.state().join(checkpoint::TEMP_FILE_NAME);
    fs::create_dir(&blocker).unwrap();
    append(&log, format!("{E11000}{}", requests("b", 2)));
    let deadline = Instant::now() + PATIENCE;
    while t
        .metric(r#"uniqwatch_log_checkpoint_failures_total{operation="save"}"#)
        .unwrap_or(0.0)
        < 2.0
    {
        assert!(Instant::now() < deadline, "saves did not fail");
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(lines(&t.totals.borrow(), "app"), 2);
    assert_eq!(
        t.metric(r#"uniqwatch_log_lines_total{source="app"}"#),
        Some(2.0)
    );
    fs::remove_dir(&blocker).unwrap();
    let got = t.until("the catch-up", |t| lines(t, "app") == 5).await;
    assert_eq!(errors(&got, "app"), 1);
    assert_eq!(
        t.metric(r#"uniqwatch_log_lines_total{source="app"}"#),
        Some(5.0)
    );
    assert_eq!(lines(&t.stop().await, "app"), 5);
}

#[tokio::test]
async fn corrupt_checkpoint_is_set_aside_counted_and_the_tailer_runs() {
    let s = Scratch::new();
    fs::create_dir_all(s.state()).unwrap();
    fs::write(s.state().join(checkpoint::FILE_NAME), b"{ not json").unwrap();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 2));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("lines", |t| lines(t, "app") == 2).await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_checkpoint_failures_total{operation="load"}"#),
        Some(1.0)
    );
    let aside = fs::read_dir(s.state())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 1);
    t.stop().await;
}

/// Issue 13, item 4: while the checkpoint cannot be saved, the lag counts
/// what is read but not committed (it read 0 while lines went uncounted),
/// the tailer reports itself down, and both recover with the save.
#[tokio::test]
async fn lag_counts_what_is_not_saved_and_the_tailer_reports_down_while_saves_fail() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 2));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 2).await;
    t.polls(1).await;
    assert_eq!(t.metric("uniqwatch_log_tailer_up"), Some(1.0));
    assert!(t.health.borrow().is_ready());
    let saved_at = t.health.borrow().last_successful_save.unwrap();
    assert!(t
        .metric("uniqwatch_log_checkpoint_last_success_timestamp_seconds")
        .is_some_and(|v| v > 0.0));
    let blocker = s.state().join(checkpoint::TEMP_FILE_NAME);
    fs::create_dir(&blocker).unwrap();
    let unsaved = format!("{E11000}{}", requests("b", 2));
    append(&log, &unsaved);
    t.until_metric("uniqwatch_log_tailer_up", 0.0).await;
    t.polls(2).await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_lag_bytes{source="app"}"#),
        Some(unsaved.len() as f64),
        "read but not saved is lag"
    );
    let health = t.health.borrow().clone();
    assert!(health.started && health.save_failing && !health.is_ready());
    assert_eq!(health.last_successful_save, Some(saved_at));
    fs::remove_dir(&blocker).unwrap();
    t.until("the catch-up", |t| lines(t, "app") == 5).await;
    t.until_metric(r#"uniqwatch_log_lag_bytes{source="app"}"#, 0.0)
        .await;
    t.until_metric("uniqwatch_log_tailer_up", 1.0).await;
    t.stop().await;
}

/// Issue 13, item 4: a state directory that cannot be created stopped the
/// tailer for good, with no series at all. It now reports itself down,
/// keeps trying, and starts once the directory can be made.
#[tokio::test]
async fn unusable_state_dir_is_reported_and_retried_until_it_works() {
    let s = Scratch::new();
    let blocker = s.dir.path().join("file");
    fs::write(&blocker, b"x").unwrap();
    let log = s.logs().join("a.log");
    append(&log, requests("a", 2));
    let mut t = start(
        vec![source("app", &[&log], StartAt::Beginning)],
        &blocker.join("state"),
    );
    t.until_metric("uniqwatch_log_tailer_up", 0.0).await;
    t.health_until("a start error", |h| h.start_error.is_some())
        .await;
    let health = t.health.borrow().clone();
    assert!(!health.started && !health.is_ready());
    let e = health.start_error.unwrap();
    assert!(e.contains("cannot create state directory"), "{e}");
    assert!(!t.task.is_finished(), "the tailer gave up");

    fs::remove_file(&blocker).unwrap();
    t.until("lines once started", |t| lines(t, "app") == 2).await;
    t.until_metric("uniqwatch_log_tailer_up", 1.0).await;
    assert!(t.health.borrow().is_ready());
    t.stop().await;
}

#[tokio::test]
async fn quiet_files_cause_no_checkpoint_writes() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, requests("a", 2));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("lines", |t| lines(t, "app") == 2).await;
    t.polls(3).await;
    let generation = |dir: &Path| {
        checkpoint::load(dir)
            .unwrap()
            .checkpoint
            .unwrap()
            .generation
    };
    let before = generation(&s.state());
    t.polls(10).await;
    assert_eq!(generation(&s.state()), before);
    t.stop().await;
}

// --- Timeliness and the runtime staying free --------------------------------------------

/// At the default poll interval a line is counted by the first poll that
/// starts after it is written: within two polls, whatever the machine's load.
#[tokio::test]
async fn a_new_line_is_counted_by_the_next_poll_at_the_default_interval() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, "");
    let mut config = source("app", &[&log], StartAt::Beginning);
    config.poll_interval = Duration::from_secs(1);
    let mut t = start(vec![config], &s.state());
    t.until_metric(r#"uniqwatch_log_files{source="app"}"#, 1.0)
        .await;
    let before = t.health.borrow().polls;
    append(&log, E11000);
    t.until("the line", |t| errors(t, "app") == 1).await;
    let polls = t.health.borrow().polls - before;
    assert!(polls <= 2, "counted after {polls} polls");
    t.stop().await;
}

/// On a single-threaded runtime, a long read must not stall other tasks:
/// the tailer's file I/O runs on the blocking pool. A task on the runtime
/// keeps running while the first poll reads the backlog.
#[tokio::test(flavor = "current_thread")]
async fn reading_a_large_backlog_does_not_block_the_runtime() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let chunk = requests("bulk", 10_000);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    for _ in 0..60 {
        f.write_all(chunk.as_bytes()).unwrap();
    }
    drop(f);
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    // The first poll only saves the new file's identity; the second reads.
    t.health_until("the file saved", |h| h.started && h.polls >= 1).await;
    assert_eq!(lines(&t.totals.borrow(), "app"), 0);
    // Turns of this loop while the second poll (reading the whole backlog)
    // is in progress: none if it held the only runtime thread.
    let mut turns_during_the_read = 0u32;
    let deadline = Instant::now() + PATIENCE;
    while t.health.borrow().polls < 2 {
        assert!(Instant::now() < deadline, "backlog not read in time");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let _ = t.metrics.encode();
        turns_during_the_read += 1;
    }
    assert_eq!(lines(&t.totals.borrow(), "app"), 600_000);
    assert!(
        turns_during_the_read >= 3,
        "the runtime ran {turns_during_the_read} times while the backlog was read"
    );
    t.stop().await;
}

// --- Faults from the review (issue 13) ---------------------------------------------

/// A 300-byte banner line: every generation of the log shares its first
/// 256 bytes.
fn banner() -> String {
    format!("# app log {}\n", "=".repeat(289))
}

/// Issue 13, item 5: with older rotations sharing the banner and at least
/// as long, copytruncate took one of them as the copy (app.log.3: 31
/// errors counted where 11 were written). The copy is told by the bytes
/// where reading had got to, and by being the newest.
#[tokio::test]
async fn copytruncate_takes_the_copy_not_an_older_rotation_with_the_same_banner() {
    let s = Scratch::new();
    let dir = s.logs();
    let log = dir.join("app.log");
    assert_eq!(banner().len(), 300);
    for n in 2..=4 {
        let old = format!("{}{}", banner(), E11000.repeat(10));
        fs::write(dir.join(format!("app.log.{n}")), old + &requests(&format!("old{n}"), 20)).unwrap();
    }
    append(&log, format!("{}{}", banner(), E11000.repeat(10)));
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first errors", |t| errors(t, "app") == 10).await;
    append(&log, E11000);
    // `cp app.log app.log.1 && truncate -s0 app.log`, between two polls or not.
    fs::copy(&log, dir.join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0)
        .await;
    t.until("the error written before the copy", |t| errors(t, "app") == 11)
        .await;
    t.polls(5).await;
    assert_eq!(errors(&t.totals.borrow(), "app"), 11, "an old rotation was counted");
    assert_eq!(lines(&t.stop().await, "app"), 12);
}

/// Issue 13, item 6: truncated and rewritten between two polls, longer and
/// under the same first 256 bytes: the lines before the old offset were
/// taken as already counted (30 counted instead of 40, no truncation).
#[tokio::test]
async fn rewrite_in_place_under_the_same_banner_is_a_truncation() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let first = format!("{}{}", banner(), requests("first", 10));
    append(&log, &first);
    let mut t = start(vec![source("app", &[&log], StartAt::Beginning)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 11).await;
    // Written over in one write from byte 0, so no poll can see it shorter.
    let second = format!("{}{}", banner(), requests("again", 30));
    assert!(second.len() > first.len());
    std::os::unix::fs::FileExt::write_all_at(
        &OpenOptions::new().write(true).open(&log).unwrap(),
        second.as_bytes(),
        0,
    )
    .unwrap();
    t.until("the rewritten lines", |t| lines(t, "app") == 11 + 31)
        .await;
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0)
        .await;
    t.polls(3).await;
    assert_eq!(lines(&t.stop().await, "app"), 42);
}

/// Issue 13, item 8: a `**` pattern over a directory with two links to
/// itself spun forever, froze every other source and never let shutdown
/// finish. The other source keeps counting, and the tailer stops.
#[tokio::test]
async fn symlink_loops_under_double_star_neither_spin_nor_hold_up_other_sources() {
    let s = Scratch::new();
    let g = s.logs().join("g");
    fs::create_dir_all(&g).unwrap();
    std::os::unix::fs::symlink(".", g.join("l1")).unwrap();
    std::os::unix::fs::symlink(".", g.join("l2")).unwrap();
    append(&g.join("looped.log"), requests("looped", 2));
    let other = s.logs().join("other.log");
    append(&other, requests("other", 3));
    let mut t = start(
        vec![
            source("looped", &[&g.join("**").join("*.log")], StartAt::Beginning),
            source("other", &[&other], StartAt::Beginning),
        ],
        &s.state(),
    );
    t.until("both sources", |t| {
        lines(t, "looped") == 2 && lines(t, "other") == 3
    })
    .await;
    append(&other, requests("later", 2));
    t.until("the other source goes on", |t| lines(t, "other") == 5)
        .await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_files{source="looped"}"#),
        Some(1.0),
        "the file is followed once, not once per path through the loops"
    );
    assert_eq!(t.metric(r#"uniqwatch_log_patterns_cut{source="looped"}"#), Some(0.0));
    tokio::time::timeout(PATIENCE, t.stop())
        .await
        .expect("shutdown finishes");
}

/// A pattern that reaches a bound is cut short: reported in a gauge, and no
/// source is held up; shutdown completes.
#[tokio::test]
async fn a_pattern_over_a_bound_is_reported_and_holds_up_nothing() {
    let s = Scratch::new();
    let mut deep = s.logs().join("deep");
    for i in 0..5 {
        deep.push(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    append(&deep.join("a.log"), requests("deep", 1));
    let other = s.logs().join("other.log");
    append(&other, requests("other", 2));
    let mut tuning = tuning();
    tuning.patterns.max_depth = 2;
    let mut t = start_tuned(
        vec![
            source("deep", &[&s.logs().join("deep/**/*.log")], StartAt::Beginning),
            source("other", &[&other], StartAt::Beginning),
        ],
        &s.state(),
        tuning,
    );
    t.until("the other source", |t| lines(t, "other") == 2).await;
    t.until_metric(r#"uniqwatch_log_patterns_cut{source="deep"}"#, 1.0)
        .await;
    t.polls(3).await;
    assert_eq!(lines(&t.totals.borrow(), "deep"), 0);
    tokio::time::timeout(PATIENCE, t.stop())
        .await
        .expect("shutdown finishes");
}

// --- Duration events --------------------------------------------------------

/// The contract's duration event: create-or-get lines with status and duration.
fn timed_source(log: &Path) -> LogSourceConfig {
    let mut s = source("app", &[log], StartAt::Beginning);
    s.events = vec![LogEventConfig {
        name: "create_or_get".into(),
        contains: Some("POST /api/chats/create-or-get".into()),
        regex: Some(r"(?P<status>\d{3}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b".into()),
        ..Default::default()
    }];
    s
}

/// A create-or-get line with its status and duration, distinct by `tag`.
fn timed(tag: &str, status: u16, duration: &str) -> String {
    format!("2026-11-28T10:00:00.000Z [INFO] {tag} POST /api/chats/create-or-get {status} {duration}\n")
}

/// The histogram series of `class` as /metrics shows them.
fn histogram(metrics: &Metrics, class: &str) -> (Vec<f64>, f64, f64) {
    let series = |suffix: &str, le: Option<&str>| {
        let le = le.map_or(String::new(), |le| format!(",le=\"{le}\""));
        metric(
            metrics,
            &format!(r#"uniqwatch_log_event_duration_seconds_{suffix}{{event="create_or_get",source="app",status_class="{class}"{le}}}"#),
        )
        .unwrap_or(f64::NAN)
    };
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    (les.iter().map(|le| series("bucket", Some(le))).collect(), series("count", None), series("sum", None))
}

/// Durations across a rotation (with a late write to the renamed file), a
/// truncation in place and a restart with lines written while stopped:
/// every sample lands once in its bucket, count and sum, by status class.
#[tokio::test]
async fn durations_are_counted_once_across_rotation_truncation_and_restart() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let logs = vec![timed_source(&log)];
    append(&log, format!("{}{}{}", timed("a", 200, "3ms"), timed("b", 200, "7ms"), timed("c", 503, "30ms")));
    append(&log, format!("2026-11-28T10:00:00.000Z [INFO] POST /api/chats/create-or-get 200 -\n{E11000}"));
    let mut t = start(logs.clone(), &s.state());
    t.until("first lines", |t| lines(t, "app") == 5).await;

    let rotated = s.logs().join("app.log.1");
    fs::rename(&log, &rotated).unwrap();
    append(&log, timed("d", 404, "100ms"));
    append(&rotated, timed("late", 200, "1s"));
    t.until("rotation", |t| lines(t, "app") == 7).await;
    t.until_metric(r#"uniqwatch_log_rotations_total{source="app"}"#, 1.0).await;

    fs::write(&log, format!("{}{}", timed("rewritten", 200, "2.5s"), timed("f", 200, "4ms"))).unwrap();
    t.until("truncation", |t| lines(t, "app") == 9).await;
    t.until_metric(r#"uniqwatch_log_truncations_total{source="app"}"#, 1.0).await;
    let before = t.stop().await;

    append(&log, timed("while-stopped", 500, "12ms"));
    let mut t = start(logs, &s.state());
    let got = t.until("the line written while stopped", |t| lines(t, "app") == 10).await;
    t.polls(5).await;
    assert_eq!(got, t.totals.borrow().clone(), "nothing counted twice after the restart");
    let d = &got.sources["app"].durations["create_or_get"];
    assert_eq!(d.unparsed, 1);
    assert_eq!(d.by_status_class["2xx"].sum_nanos, 3_514_000_000);
    assert_eq!(d.by_status_class["5xx"].sum_nanos, 42_000_000);
    assert_eq!(got.sources["app"].events["create_or_get"], 8);
    assert_ne!(before, got);

    let (buckets, count, sum) = histogram(&t.metrics, "2xx");
    assert_eq!(buckets, [2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0]);
    assert_eq!((count, sum), (5.0, 3.514));
    let (buckets, count, sum) = histogram(&t.metrics, "5xx");
    assert_eq!(buckets, [0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]);
    assert_eq!((count, sum), (2.0, 0.042));
    // 100ms is in the le="0.1" bucket: bounds are inclusive, as Prometheus's.
    let (buckets, count, sum) = histogram(&t.metrics, "4xx");
    assert_eq!(buckets, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!((count, sum), (1.0, 0.1));
    let events = |class: &str| {
        t.metric(&format!(r#"uniqwatch_log_events_total{{event="create_or_get",source="app",status_class="{class}"}}"#))
    };
    assert_eq!((events("2xx"), events("4xx"), events("5xx")), (Some(5.0), Some(1.0), Some(2.0)));
    assert_eq!(t.metric(r#"uniqwatch_log_event_unparsed_total{event="create_or_get",source="app"}"#), Some(1.0));
    t.stop().await;
}

/// Regression (review of f0608be): a change of `buckets` reset the
/// histograms, and `log_events_total` of the event, rebuilt from their
/// counts, went back while the event's line count (the audit's) went on.
#[tokio::test]
async fn a_change_of_buckets_resets_the_histogram_but_not_the_line_counts() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    append(&log, format!("{}{}{}", timed("a", 200, "3ms"), timed("b", 200, "7ms"), timed("c", 503, "30ms")));
    let mut t = start(vec![timed_source(&log)], &s.state());
    t.until("first lines", |t| lines(t, "app") == 3).await;
    t.stop().await;

    let mut changed = timed_source(&log);
    changed.events[0].buckets = Some(vec!["10ms".into(), "1s".into()]);
    append(&log, timed("d", 200, "40ms"));
    let mut t = start(vec![changed], &s.state());
    let got = t.until("the line after the change", |t| lines(t, "app") == 4).await;
    t.polls(3).await;
    let events = |class: &str| {
        t.metric(&format!(r#"uniqwatch_log_events_total{{event="create_or_get",source="app",status_class="{class}"}}"#))
    };
    assert_eq!((events("2xx"), events("5xx")), (Some(3.0), Some(1.0)));
    assert_eq!(got.sources["app"].events["create_or_get"], 4);
    let count = |class: &str| {
        t.metric(&format!(r#"uniqwatch_log_event_duration_seconds_count{{event="create_or_get",source="app",status_class="{class}"}}"#))
    };
    assert_eq!(count("2xx"), Some(1.0), "the histogram starts again with the new buckets");
    assert_eq!(
        t.metric(r#"uniqwatch_log_event_duration_seconds_bucket{event="create_or_get",source="app",status_class="2xx",le="1"}"#),
        Some(1.0)
    );
    t.stop().await;
}

/// As for plain counters: whatever checkpoint a `kill -9` leaves, a restart
/// ends with the same histograms, bucket by bucket, and the same exact sums.
#[tokio::test]
async fn every_checkpoint_on_disk_restarts_to_the_same_histograms() {
    let s = Scratch::new();
    let log = s.logs().join("app.log");
    let stable = s.state().join(checkpoint::FILE_NAME);
    let mut t = start(vec![timed_source(&log)], &s.state());
    let mut snapshots = Vec::new();
    for round in 0..4u64 {
        let text: String = (0..40u64)
            .map(|i| timed(&format!("r{round}-{i}"), [200, 201, 404, 503][(i % 4) as usize], &format!("{}.{}ms", i * 7 % 300, round)))
            .collect();
        append(&log, text);
        t.until("the round", |t| lines(t, "app") == 40 * (round + 1)).await;
        snapshots.push(fs::read(&stable).unwrap());
    }
    let expected = t.stop().await;
    assert_eq!(expected.sources["app"].events["create_or_get"], 160);
    for (i, snap) in snapshots.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(checkpoint::FILE_NAME), snap).unwrap();
        let size = fs::metadata(&log).unwrap().len();
        let mut t = start(vec![timed_source(&log)], dir.path());
        t.until("every byte", |t| t.sources.get("app").is_some_and(|s| s.bytes >= size)).await;
        t.polls(5).await;
        let (buckets, count, _) = histogram(&t.metrics, "2xx");
        let got = t.stop().await;
        assert_eq!(got, expected, "restart from generation snapshot {i}");
        let h = &expected.sources["app"].durations["create_or_get"].by_status_class["2xx"];
        assert_eq!(count, h.count as f64, "snapshot {i}");
        assert_eq!(buckets[9], h.count as f64, "snapshot {i}");
    }
}

/// mongod's own slow-query lines on the configured namespace: the series
/// exists at 0 from the start, and only the COMMAND line of `app.chats`
/// counts (not its WRITE twin, not another namespace).
#[tokio::test]
async fn mongod_slow_queries_of_the_namespace_feed_a_histogram() {
    let s = Scratch::new();
    let log = s.logs().join("mongod.log");
    let mut mongod = source("mongod", &[&log], StartAt::Beginning);
    mongod.recovery_markers = vec![];
    mongod.events = vec![LogEventConfig {
        name: "chats_slow_query".into(),
        kind: uniqwatch::config::EventKind::MongodSlowQuery,
        namespace: Some("app.chats".into()),
        ..Default::default()
    }];
    append(&log, "{\"t\":{\"$date\":\"2026-11-28T10:00:00.000+00:00\"},\"s\":\"I\",\"c\":\"NETWORK\",\"msg\":\"Connection accepted\"}\n");
    let mut t = start(vec![mongod], &s.state());
    t.until("first line", |t| lines(t, "mongod") == 1).await;
    let count = r#"uniqwatch_log_event_duration_seconds_count{event="chats_slow_query",source="mongod",status_class=""}"#;
    assert_eq!(t.metric(count), Some(0.0));
    let slow = |c: &str, ns: &str, ms: u64| {
        format!("{{\"t\":{{\"$date\":\"2026-11-28T10:00:03.412+00:00\"}},\"s\":\"I\",\"c\":\"{c}\",\"id\":51803,\"ctx\":\"conn1207\",\"msg\":\"Slow query\",\"attr\":{{\"type\":\"command\",\"ns\":\"{ns}\",\"command\":{{\"findAndModify\":\"chats\",\"upsert\":true,\"$db\":\"app\"}},\"planSummary\":\"IXSCAN {{ participantsKey: 1 }}\",\"keysExamined\":1,\"docsExamined\":1,\"numYields\":0,\"reslen\":312,\"protocol\":\"op_msg\",\"durationMillis\":{ms}}}}}\n")
    };
    append(&log, format!("{}{}{}", slow("COMMAND", "app.chats", 187), slow("WRITE", "app.chats", 187), slow("COMMAND", "app.users", 900)));
    t.until("slow queries", |t| lines(t, "mongod") == 4).await;
    t.until_metric(count, 1.0).await;
    assert_eq!(
        t.metric(r#"uniqwatch_log_event_duration_seconds_sum{event="chats_slow_query",source="mongod",status_class=""}"#),
        Some(0.187)
    );
    assert_eq!(
        t.metric(r#"uniqwatch_log_event_duration_seconds_bucket{event="chats_slow_query",source="mongod",status_class="",le="0.25"}"#),
        Some(1.0)
    );
    assert_eq!(
        t.metric(r#"uniqwatch_log_events_total{event="chats_slow_query",source="mongod",status_class=""}"#),
        Some(1.0)
    );
    t.stop().await;
}
