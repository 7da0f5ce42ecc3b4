//! Exactly once across `kill -9`: the real daemon tails a log that keeps
//! growing (and rotates), is killed without warning again and again, and in
//! the end has counted every line exactly once.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use uniqwatch::config::{LogSourceConfig, StartAt};
use uniqwatch::logs::{self, LogTotals, TailerHealth, Tuning};
use uniqwatch::metrics::Metrics;

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("uniqwatch.toml");
    std::fs::write(
        &path,
        format!(
            r#"[web]
listen = "127.0.0.1:0"

[state]
dir = "{state}"

[[logs]]
name = "app"
paths = ["{logs}/*.log"]
start_at = "beginning"
namespace = "app.chats"
index = "participantsKey_1"
poll_interval = "10ms"

[[logs.events]]
name = "create_or_get"
contains = "POST /api/chats/create-or-get"

[[logs.events]]
name = "create_or_get_timed"
contains = "POST /api/chats/create-or-get"
regex = '(?P<status>\d{{3}}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b'
"#,
            state = dir.join("state").display(),
            logs = dir.join("logs").display(),
        ),
    )
    .unwrap();
    path
}

fn start(config: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Lines written so far, by kind.
#[derive(Default)]
struct Written {
    lines: u64,
    errors: u64,
    recoveries: u64,
    requests: u64,
    /// Per status class (`2xx`, `5xx`): requests, of them at most 10ms, and
    /// the sum of their durations in ms.
    timed: std::collections::BTreeMap<&'static str, (u64, u64, u64)>,
}

impl Written {
    fn append(&mut self, path: &Path, round: u64, n: u64) {
        let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
        let mut text = String::new();
        for i in 0..n {
            let line = match i % 10 {
                0 => {
                    self.errors += 1;
                    format!("2026-11-28T10:00:02.000Z [ERROR] MongoServerError: E11000 duplicate key error collection: app.chats index: participantsKey_1 dup key: {{ participantsKey: \"u{round}_{i}\" }}\n")
                }
                1 => {
                    self.recoveries += 1;
                    "2026-11-28T10:00:02.002Z [DEBUG] Retrieved existing chat after duplicate key error\n".to_string()
                }
                _ => {
                    self.requests += 1;
                    let (status, class) = if i % 7 == 0 { (503, "5xx") } else { (200, "2xx") };
                    let ms = (round * 31 + i) % 40;
                    let timed = self.timed.entry(class).or_default();
                    timed.0 += 1;
                    timed.1 += u64::from(ms <= 10);
                    timed.2 += ms;
                    format!("2026-11-28T10:00:01.000Z [INFO] POST /api/chats/create-or-get {status} {ms}ms round={round} i={i}\n")
                }
            };
            text.push_str(&line);
            self.lines += 1;
        }
        f.write_all(text.as_bytes()).unwrap();
    }
}

/// Waits (up to a minute) until the saved checkpoint names `file`.
fn wait_until_checkpointed(checkpoint: &Path, file: &Path) {
    let name = file.display().to_string();
    let start = Instant::now();
    while !std::fs::read_to_string(checkpoint).is_ok_and(|text| text.contains(&name)) {
        assert!(start.elapsed() < Duration::from_secs(60), "no checkpoint named {name}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut s, &mut body).ok()?;
    Some(body)
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn kill_9_at_any_moment_neither_loses_nor_double_counts_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = config(dir.path());
    let log = logs.join("app.log");
    let mut written = Written::default();

    for round in 0..12u64 {
        written.append(&log, round, 3000);
        if round % 4 == 3 {
            // Rotation by rename while the daemon may be down or mid-read; the
            // renamed file no longer matches the glob.
            std::fs::rename(&log, logs.join(format!("app.log.{round}"))).unwrap();
            written.append(&log, round + 100, 500);
        }
        let mut child = start(&cfg);
        // Kill at a different moment each round: before start-up is done,
        // mid-read, or after a checkpoint.
        std::thread::sleep(Duration::from_millis(20 + round * 37 % 300));
        written.append(&log, round + 1000, 700);
        std::thread::sleep(Duration::from_millis(round * 13 % 50));
        if round % 4 == 2 {
            // The next round renames app.log out of the glob while the daemon
            // is down. A file no checkpoint ever named cannot be found again
            // after that (nothing can: its path is gone and nothing recorded
            // its identity), so the daemon is killed only once one does; on
            // a loaded machine the first save can come after the fixed delay.
            wait_until_checkpointed(&dir.path().join("state").join("logs-checkpoint.json"), &log);
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    let mut child = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap(), "--log-level", "info"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = DaemonOutput::watch(&mut child, Duration::from_secs(20));
    let start = Instant::now();
    let metrics = loop {
        let m = scrape(output.addr).unwrap_or_default();
        if value(&m, r#"uniqwatch_log_lines_total{source="app"}"#) >= written.lines as f64 {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "not caught up: {} lines written\n{m}", written.lines);
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));

    assert_eq!(value(&metrics, r#"uniqwatch_log_lines_total{source="app"}"#), written.lines as f64);
    assert_eq!(
        value(&metrics, r#"uniqwatch_duplicate_key_errors_total{index="participantsKey_1",namespace="app.chats",source="app"}"#),
        written.errors as f64
    );
    assert_eq!(value(&metrics, r#"uniqwatch_duplicate_key_recoveries_total{source="app"}"#), written.recoveries as f64);
    assert_eq!(
        value(&metrics, r#"uniqwatch_log_events_total{event="create_or_get",source="app",status_class=""}"#),
        written.requests as f64
    );
    // The histograms too: every sample once, in its bucket, with an exact sum.
    for (class, (count, fast, sum_ms)) in &written.timed {
        let series = |suffix: &str, le: &str| {
            value(&metrics, &format!(r#"uniqwatch_log_event_duration_seconds_{suffix}{{event="create_or_get_timed",source="app",status_class="{class}"{le}}}"#))
        };
        assert_eq!(series("count", ""), *count as f64, "{class}");
        assert_eq!(series("bucket", r#",le="0.01""#), *fast as f64, "{class}");
        assert_eq!(series("bucket", r#",le="+Inf""#), *count as f64, "{class}");
        assert_eq!(series("sum", ""), (*sum_ms * 1_000_000) as f64 / 1e9, "{class}");
    }
    assert_eq!(written.timed.len(), 2);
}

/// Where [`tailer_short_of_descriptors`] works, set by the test that runs it.
const FD_TEST_DIR: &str = "UNIQWATCH_FD_TEST_DIR";

#[test]
fn running_out_of_file_descriptors_never_counts_a_line_twice() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    const FILES: u64 = 120;
    for i in 0..FILES {
        std::fs::write(logs.join(format!("app-{i:03}.log")), "2026-11-28T10:00:02.000Z [ERROR] E11000 duplicate key error\n").unwrap();
    }
    // This test binary again, running only the tailer, which lowers its
    // own descriptor limit below the number of files (a process of its own,
    // so the limit touches no other test).
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "tailer_short_of_descriptors", "--ignored", "--test-threads", "1"])
        .env(FD_TEST_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the tailer short of descriptors failed: {status}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/logs-checkpoint.json")).unwrap()).unwrap();
    let app = &checkpoint["sources"]["app"];
    let lines = app["totals"]["lines"].as_u64().unwrap();
    assert_eq!(lines, FILES, "lines counted from {FILES} one-line files");
    assert_eq!(app["rotations"], 0, "nothing was rotated");
}

/// The tailer over the files of [`running_out_of_file_descriptors_never_counts_a_line_twice`],
/// with a quiet period of 20 ms instead of 10 s: for 100 polls (many quiet
/// periods, long enough for a file wrongly taken as rotated to be released
/// and found again as new) with fewer descriptors than files, then with
/// enough to open them all and save. Waits on the tailer's poll count, not
/// on the clock.
#[test]
#[ignore = "run by running_out_of_file_descriptors_never_counts_a_line_twice, under a low descriptor limit"]
fn tailer_short_of_descriptors() {
    let Some(dir) = std::env::var_os(FD_TEST_DIR) else {
        eprintln!("skipped: {FD_TEST_DIR} is not set (only run by the test that sets it)");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let source = LogSourceConfig {
            name: "app".into(),
            paths: vec![dir.join("logs/*.log").display().to_string()],
            start_at: StartAt::Beginning,
            namespace: None,
            index: None,
            error_markers: vec!["E11000".into()],
            recovery_markers: vec![],
            poll_interval: Duration::from_millis(10),
            max_line_bytes: 64 * 1024,
            events: vec![],
            request_event: None,
        };
        let tuning = Tuning { release_after_quiet: Duration::from_millis(20), ..Tuning::default() };
        let (trigger, shutdown) = uniqwatch::shutdown::channel();
        let (totals, _) = tokio::sync::watch::channel(LogTotals::default());
        let (health_tx, mut health) = tokio::sync::watch::channel(TailerHealth::default());
        let normal = nofile_limit();
        set_nofile_limit(64);
        let task = tokio::spawn(logs::run(vec![source], dir.join("state"), Metrics::new(), totals, health_tx, tuning, shutdown));
        // 100 polls of 10 ms: 50 quiet periods.
        // The guard `wait_for` returns is dropped at once: the tailer writes the health.
        let polled = tokio::time::timeout(Duration::from_secs(60), health.wait_for(|h| h.polls >= 100))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(polled, "the tailer did not poll 100 times");
        set_nofile_limit(normal);
        let polled = tokio::time::timeout(Duration::from_secs(60), health.wait_for(|h| h.polls >= 200 && !h.save_failing))
            .await
            .is_ok_and(|r| r.is_ok());
        assert!(polled, "the tailer did not save again");
        trigger.trigger();
        task.await.unwrap().unwrap();
    });
}

/// The soft limit on open files of this process.
fn nofile_limit() -> libc::rlim_t {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct passed by pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    limit.rlim_cur
}

/// Sets the soft limit on open files of this process (below the hard one).
fn set_nofile_limit(soft: libc::rlim_t) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = soft.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}
