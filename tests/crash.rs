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

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("uniqwatch.toml");
    std::fs::write(
        &path,
        format!(
            r#"[web]
listen = "127.0.0.1:{port}"

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
                    format!("2026-11-28T10:00:01.000Z [INFO] POST /api/chats/create-or-get 200 round={round} i={i}\n")
                }
            };
            text.push_str(&line);
            self.lines += 1;
        }
        f.write_all(text.as_bytes()).unwrap();
    }
}

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
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
    let port = free_port();
    let cfg = config(dir.path(), port);
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
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    let mut child = start(&cfg);
    wait_for_port(port, Duration::from_secs(20));
    let start = Instant::now();
    let metrics = loop {
        let m = scrape(port).unwrap_or_default();
        if value(&m, r#"uniqwatch_log_lines_total{source="app"}"#) >= written.lines as f64 {
            break m;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "not caught up: {} lines written\n{m}", written.lines);
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
        value(&metrics, r#"uniqwatch_log_events_total{event="create_or_get",source="app"}"#),
        written.requests as f64
    );
}

#[test]
fn running_out_of_file_descriptors_never_counts_a_line_twice() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    const FILES: u64 = 120;
    for i in 0..FILES {
        std::fs::write(logs.join(format!("app-{i:03}.log")), "2026-11-28T10:00:02.000Z [ERROR] E11000 duplicate key error\n").unwrap();
    }
    let port = free_port();
    let cfg = config(dir.path(), port);
    // Fewer descriptors than files: listing the directory fails now and then.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 100 && exec {BIN} run --config {} --log-level warn", cfg.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // /metrics may not accept connections while descriptors run out, so the
    // saved checkpoint is what is checked. Longer than the quiet period after
    // which rotated files are released and could be found again as new files.
    std::thread::sleep(Duration::from_secs(14));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait().unwrap();
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("state/logs-checkpoint.json")).unwrap()).unwrap();
    let app = &checkpoint["sources"]["app"];
    let lines = app["totals"]["lines"].as_u64().unwrap();
    assert!(lines > 0 && lines <= FILES, "{lines} lines counted from {FILES} one-line files");
    assert_eq!(app["rotations"], 0, "nothing was rotated");
}
