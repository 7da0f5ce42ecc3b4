//! Benchmark helper for the log tailer, driven by `scripts/bench-logs.sh`.
//!
//! - `bench_logs gen FILE MEGABYTES` writes a realistic application log:
//!   mostly request lines, and about one request in 5,000 hitting a
//!   duplicate-key conflict (a WARN, an E11000 ERROR, a recovery DEBUG line).
//! - `bench_logs read FILE [durations | route-durations]` runs the real
//!   tailer (`logs::run`) over FILE from the beginning and prints lines/s
//!   once every byte is counted; with `durations`, one more event reads
//!   every request line's status and duration into a histogram (the
//!   contract's regex, behind a `contains` prefilter every request line
//!   holds: the worst case); with `route-durations`, the contract's event as
//!   configured, on the create-or-get route (one request line in six).
//! - `bench_logs idle DIR SECONDS` follows 10 quiet files for SECONDS and
//!   prints the CPU time the process used meanwhile.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uniqwatch::config::{LogEventConfig, LogSourceConfig, StartAt};
use uniqwatch::logs::{self, LogTotals, TailerHealth, Tuning};
use uniqwatch::metrics::Metrics;
use uniqwatch::shutdown;

fn usage() -> ! {
    eprintln!("usage: bench_logs gen FILE MEGABYTES | read FILE [durations | route-durations] | idle DIR SECONDS");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", file, mb] => generate(Path::new(file), mb.parse().unwrap_or_else(|_| usage())),
        ["read", file] => read(Path::new(file), None),
        ["read", file, "durations"] => read(Path::new(file), Some("[INFO] req=")),
        ["read", file, "route-durations"] => read(Path::new(file), Some("POST /api/chats/create-or-get")),
        ["idle", dir, secs] => idle(Path::new(dir), secs.parse().unwrap_or_else(|_| usage())),
        _ => usage(),
    }
}

/// The source the benchmark reads: the default markers plus one event, as
/// an operator would configure for an error ratio.
fn source(paths: Vec<String>) -> LogSourceConfig {
    LogSourceConfig {
        name: "bench".into(),
        paths,
        start_at: StartAt::Beginning,
        namespace: Some("app.chats".into()),
        index: Some("participantsKey_1".into()),
        error_markers: vec!["E11000".into(), "Duplicate key error".into()],
        recovery_markers: vec!["Retrieved existing chat after duplicate key error".into()],
        poll_interval: Duration::from_secs(1),
        max_line_bytes: 1024 * 1024,
        events: vec![LogEventConfig {
            name: "create_or_get".into(),
            contains: Some("POST /api/chats/create-or-get".into()),
            ..LogEventConfig::default()
        }],
        request_event: Some("create_or_get".into()),
    }
}

fn generate(path: &Path, megabytes: u64) {
    let target = megabytes * 1024 * 1024;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create the log"));
    let routes = [
        "GET /api/chats?limit=20",
        "POST /api/chats/create-or-get",
        "GET /api/messages?chat=",
        "POST /api/messages",
        "GET /healthz",
        "PUT /api/users/me/presence",
    ];
    let mut seed: u64 = 0x5eed;
    let mut written = 0u64;
    let (mut lines, mut conflicts) = (0u64, 0u64);
    let mut i = 0u64;
    while written < target {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = seed >> 33;
        let (h, m, s, ms) = (
            (i / 3_600_000) % 24,
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
        );
        let ts = format!("2026-11-28T{h:02}:{m:02}:{s:02}.{ms:03}Z");
        let mut text = String::with_capacity(400);
        if r % 5000 == 0 {
            let (a, b) = (r % 9973, (r >> 7) % 9973);
            text.push_str(&format!(
                "{ts} [WARN] Duplicate key error during upsert participantsKey=user{a}_user{b}\n"
            ));
            text.push_str(&format!("{ts} [ERROR] MongoServerError: E11000 duplicate key error collection: app.chats index: participantsKey_1 dup key: {{ participantsKey: \"user{a}_user{b}\" }}\n"));
            text.push_str(&format!(
                "{ts} [DEBUG] Retrieved existing chat after duplicate key error\n"
            ));
            lines += 3;
            conflicts += 1;
        }
        let route = routes[(r % routes.len() as u64) as usize];
        text.push_str(&format!(
            "{ts} [INFO] req={:016x} user=u{} {route}{} {} {}ms ua=\"Mozilla/5.0 (X11; Linux x86_64) chat-web/4.{}\"\n",
            seed,
            r % 100_000,
            if route.ends_with('=') { format!("{}", r % 7919) } else { String::new() },
            if r % 97 == 0 { 500 } else { 200 },
            r % 250,
            r % 30,
        ));
        lines += 1;
        written += text.len() as u64;
        out.write_all(text.as_bytes()).expect("write the log");
        i += 1;
    }
    out.flush().expect("flush the log");
    println!("generated {path:?}: {written} bytes, {lines} lines, {conflicts} conflicts (each a WARN, an E11000 and a recovery line)");
}

/// The duration event of `read … durations`: the status and duration of
/// every line holding `prefilter`, with the default buckets.
fn request_durations(prefilter: &str) -> LogEventConfig {
    LogEventConfig {
        name: "request".into(),
        contains: Some(prefilter.into()),
        regex: Some(r"(?-u)(?P<status>\d{3}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b".into()),
        ..LogEventConfig::default()
    }
}

fn read(path: &Path, durations: Option<&str>) {
    let mut config = source(vec![path.display().to_string()]);
    if let Some(prefilter) = durations {
        config.events.push(request_durations(prefilter));
    }
    let size = std::fs::metadata(path).expect("the log exists").len();
    let state = tempfile_dir();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (trigger, shutdown) = shutdown::channel();
        let (tx, mut rx) = watch::channel(LogTotals::default());
        let started = Instant::now();
        let (health, _) = watch::channel(TailerHealth::default());
        let task = tokio::spawn(logs::run(
            vec![config],
            state.clone(),
            Metrics::new(),
            tx,
            health,
            Tuning::default(),
            shutdown,
        ));
        let totals = loop {
            rx.changed().await.expect("the tailer runs");
            let t = rx.borrow_and_update().clone();
            if t.sources.get("bench").is_some_and(|s| s.bytes >= size) {
                break t;
            }
        };
        let secs = started.elapsed().as_secs_f64();
        trigger.trigger();
        task.await.expect("the tailer task").expect("the tailer");
        let s = &totals.sources["bench"];
        let errors: u64 = s.duplicate_key_errors.iter().map(|e| e.count).sum();
        println!(
            "{} lines, {} bytes in {secs:.3}s: {:.0} lines/s, {:.0} MB/s; errors={errors} recoveries={} create_or_get={}",
            s.lines,
            s.bytes,
            s.lines as f64 / secs,
            s.bytes as f64 / secs / 1e6,
            s.recoveries,
            s.events["create_or_get"],
        );
        if let Some(d) = s.durations.get("request") {
            for (class, h) in &d.by_status_class {
                let le: Vec<String> = h.cumulative(&d.bounds_nanos).iter().map(u64::to_string).collect();
                println!(
                    "request status_class={class}: count={} sum={:.3}s buckets(le)={} unparsed={}",
                    h.count,
                    h.sum_nanos as f64 / 1e9,
                    le.join(","),
                    d.unparsed,
                );
            }
        }
    });
    let _ = std::fs::remove_dir_all(&state);
}

fn idle(dir: &Path, seconds: u64) {
    std::fs::create_dir_all(dir).expect("create the directory");
    let paths: Vec<String> = (0..10)
        .map(|i| {
            let p = dir.join(format!("quiet-{i}.log"));
            std::fs::write(&p, "2026-11-28T10:00:00.000Z [INFO] started\n")
                .expect("write a quiet file");
            p.display().to_string()
        })
        .collect();
    let state = tempfile_dir();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let (trigger, shutdown) = shutdown::channel();
        let (tx, _rx) = watch::channel(LogTotals::default());
        let metrics = Metrics::new();
        let (health, _) = watch::channel(TailerHealth::default());
        let task = tokio::spawn(logs::run(
            vec![source(paths)],
            state.clone(),
            metrics.clone(),
            tx,
            health,
            Tuning::default(),
            shutdown,
        ));
        // Let the first poll open the files, then measure the quiet part only.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = cpu_seconds();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let used = cpu_seconds() - before;
        trigger.trigger();
        task.await.expect("the tailer task").expect("the tailer");
        let files = metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("uniqwatch_log_files{"))
            .map(str::to_string)
            .unwrap_or_default();
        println!(
            "{used:.3}s CPU over {seconds}s following 10 quiet files ({:.3}% of one core); {files}",
            used / seconds as f64 * 100.0
        );
    });
    let _ = std::fs::remove_dir_all(&state);
}

/// User + system CPU time of this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on every Linux architecture uniqwatch targets.
    ticks / 100.0
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uniqwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a state directory");
    dir
}
