//! The daemon in-process: metrics appearing and withdrawn, the database
//! going away, answering slowly or refusing authentication, runs that never
//! overlap, readiness, and the landing page.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mongodb::bson::doc;
use tokio::sync::oneshot;
use uniqwatch::config::Config;

/// A daemon running in this process, stopped when dropped or on [`Daemon::stop`].
struct Daemon {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Daemon {
    async fn start(toml: &str) -> Self {
        let config = Config::from_toml(toml, Path::new("test.toml"), None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(uniqwatch::daemon::run(config, listener, async move {
            let _ = rx.await;
        }));
        Daemon { base, stop: Some(tx), task }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// The value of the series `name` whose labels include every pair of `labels`.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, v) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            return None;
        }
        labels
            .iter()
            .all(|(k, val)| rest.contains(&format!("{k}=\"{val}\"")))
            .then(|| v.parse().unwrap())
    })
}

fn t(name: &str) -> [(&str, &str); 1] {
    [("target", name)]
}

async fn wait_metric<F: Fn(&str) -> bool>(d: &Daemon, what: &str, cond: F) -> String {
    let start = std::time::Instant::now();
    loop {
        let m = d.metrics().await;
        if cond(&m) {
            return m;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}; last /metrics:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn seeded(prefix: &str) -> String {
    let db = unique_db(prefix);
    seed(
        &shared_uri(),
        &db,
        "chats",
        vec![doc! {"participantsKey": "a_b"}, doc! {"participantsKey": "a_b"}, doc! {"participantsKey": "c_d"}, doc! {"x": 1}],
    )
    .await;
    db
}

#[tokio::test]
async fn metrics_appear_after_the_first_run_and_pages_answer() {
    let db = seeded("d_first").await;
    let d = Daemon::start(&target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "0 0 0 1 1 *")).await;
    let m = wait_metric(&d, "first run", |m| value(m, "uniqwatch_duplicate_keys", &t("chats")).is_some()).await;
    assert_eq!(value(&m, "uniqwatch_up", &t("chats")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_unique_index_present", &t("chats")), Some(0.0));
    assert_eq!(value(&m, "uniqwatch_duplicate_keys", &t("chats")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_duplicate_documents", &t("chats")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_missing_key_documents", &[("target", "chats"), ("kind", "absent")]), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_missing_key_documents", &[("target", "chats"), ("kind", "null")]), Some(0.0));
    assert_eq!(value(&m, "uniqwatch_documents", &t("chats")), Some(4.0));
    for check in ["index", "duplicates", "missing_keys"] {
        let l = [("target", "chats"), ("check", check)];
        assert_eq!(value(&m, "uniqwatch_check_success", &l), Some(1.0), "{check}");
        assert!(value(&m, "uniqwatch_check_duration_seconds", &l).unwrap() >= 0.0);
        assert!(value(&m, "uniqwatch_check_last_success_timestamp_seconds", &l).unwrap() > 1.7e9);
        assert_eq!(value(&m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", check), ("reason", "timeout")]), Some(0.0));
    }
    assert_eq!(value(&m, "uniqwatch_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    assert!(m.contains("# HELP uniqwatch_duplicate_keys") && m.contains("not computed at scrape time"), "{m}");
    assert!(!m.contains("a_b"), "key values must never become labels");
    assert_eq!(value(&m, "uniqwatch_audit_last_report_timestamp_seconds", &[]), None, "no report yet: absent, not 0");

    assert_eq!(d.get("/healthz").await.0, 200);
    assert_eq!(d.get("/readyz").await.0, 200);
    let (status, page) = d.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("chats") && page.contains("1 duplicated keys"), "{page}");
    assert!(!page.contains("a_b"), "the landing page shows no key values");
    d.stop().await;
}

#[tokio::test]
async fn database_going_away_withdraws_figures_and_recovery_restores_them() {
    let db = seeded("d_away").await;
    let proxy = Proxy::start(uri_addr(&shared_uri())).await;
    let d = Daemon::start(&target_toml(&proxy.uri(), "chats", &db, "chats", "participantsKey", true, "* * * * * *")).await;
    wait_metric(&d, "first success", |m| value(m, "uniqwatch_duplicate_keys", &t("chats")) == Some(1.0)).await;

    proxy.set(ProxyMode::Down);
    let m = wait_metric(&d, "up = 0", |m| value(m, "uniqwatch_up", &t("chats")) == Some(0.0)).await;
    for series in ["uniqwatch_duplicate_keys", "uniqwatch_unique_index_present", "uniqwatch_documents"] {
        assert_eq!(value(&m, series, &t("chats")), None, "{series} must be withdrawn, not stale or 0");
    }
    assert_eq!(value(&m, "uniqwatch_check_success", &[("target", "chats"), ("check", "index")]), Some(0.0));
    assert!(value(&m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", "index"), ("reason", "unreachable")]).unwrap() >= 1.0);
    assert_eq!(d.get("/healthz").await.0, 200, "the daemon keeps serving");

    proxy.set(ProxyMode::Pass);
    let m = wait_metric(&d, "recovery", |m| value(m, "uniqwatch_up", &t("chats")) == Some(1.0) && value(m, "uniqwatch_duplicate_keys", &t("chats")).is_some()).await;
    assert_eq!(value(&m, "uniqwatch_duplicate_keys", &t("chats")), Some(1.0));
    d.stop().await;
}

/// Issue 9: the canonical checks run on their own schedule, export their
/// figures without key values, and withdraw them when they fail.
#[tokio::test]
async fn canonical_checks_run_on_their_own_schedule_and_withdraw_on_failure() {
    let db = unique_db("semantic");
    let chats = vec![
        doc! {"participants": ["a", "b"], "participantsKey": "a_b"},
        doc! {"participants": ["b", "a"]},
        doc! {"participants": ["c", "d"], "participantsKey": "d_c"},
        doc! {"participants": "nobody"},
    ];
    seed(&shared_uri(), &db, "chats", chats).await;
    // The key checks never tick again after start-up; the canonical ones every second.
    let mut toml = target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "0 0 0 1 1 *");
    toml.push_str("[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\nschedule = \"* * * * * *\"\n");
    let d = Daemon::start(&toml).await;
    let kind = |k: &'static str| [("target", "chats"), ("kind", k)];
    let m = wait_metric(&d, "canonical figures", |m| value(m, "uniqwatch_canonical_duplicate_keys", &t("chats")).is_some()).await;
    assert_eq!(value(&m, "uniqwatch_canonical_duplicate_keys", &t("chats")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_canonical_duplicate_documents", &t("chats")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_key_mismatch_documents", &kind("mismatch")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_key_mismatch_documents", &kind("derivable")), Some(1.0));
    assert_eq!(value(&m, "uniqwatch_key_mismatch_documents", &kind("underivable")), Some(1.0));
    for check in ["key_consistency", "canonical_duplicates"] {
        assert_eq!(value(&m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", check), ("reason", "other")]), Some(0.0));
    }
    assert!(!m.contains("a_b") && !m.contains("d_c"), "key values must never become labels");
    let (_, page) = d.get("/").await;
    assert!(page.contains("key consistency") && page.contains("1 mismatch, 1 derivable, 1 underivable"), "{page}");
    assert!(!page.contains("a_b") && !page.contains("d_c"), "the landing page shows no key values");

    // The collection goes away: the next canonical pass fails and its figures are withdrawn.
    client(&shared_uri()).await.database(&db).collection::<mongodb::bson::Document>("chats").drop().await.unwrap();
    let m = wait_metric(&d, "canonical failure", |m| {
        value(m, "uniqwatch_check_success", &[("target", "chats"), ("check", "key_consistency")]) == Some(0.0)
    })
    .await;
    assert_eq!(value(&m, "uniqwatch_canonical_duplicate_keys", &t("chats")), None);
    assert_eq!(value(&m, "uniqwatch_key_mismatch_documents", &kind("mismatch")), None);
    assert!(value(&m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", "canonical_duplicates"), ("reason", "other")]).unwrap() >= 1.0);
    // The key checks did not run again: their figures are those of the start-up run.
    assert_eq!(value(&m, "uniqwatch_check_success", &[("target", "chats"), ("check", "index")]), Some(1.0));
    d.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_the_first_run_while_metrics_answer() {
    let db = seeded("d_ready").await;
    let proxy = Proxy::start(uri_addr(&shared_uri())).await;
    proxy.set(ProxyMode::Slow(Duration::from_secs(60)));
    let toml = target_toml(&proxy.uri(), "chats", &db, "chats", "participantsKey", true, "0 0 0 1 1 *")
        .replace("query_timeout = \"5s\"", "query_timeout = \"3s\"");
    let d = Daemon::start(&toml).await;
    // While the first run waits on a server that does not answer, nothing is known yet and the scrape still answers.
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("chats"));
    let m = d.metrics().await;
    assert_eq!(value(&m, "uniqwatch_duplicate_keys", &t("chats")), None);
    assert_eq!(value(&m, "uniqwatch_up", &t("chats")), None);

    let m = wait_metric(&d, "first run ends", |m| value(m, "uniqwatch_up", &t("chats")).is_some()).await;
    assert_eq!(value(&m, "uniqwatch_up", &t("chats")), Some(0.0));
    assert_eq!(d.get("/readyz").await.0, 200, "a failed first run still counts as finished");
    d.stop().await;
}

#[tokio::test]
async fn slow_queries_are_abandoned_as_timeouts() {
    let db = seeded("d_slow").await;
    let proxy = Proxy::start(uri_addr(&shared_uri())).await;
    let toml = target_toml(&proxy.uri(), "chats", &db, "chats", "participantsKey", true, "* * * * * *")
        .replace("query_timeout = \"5s\"", "query_timeout = \"1s\"");
    let d = Daemon::start(&toml).await;
    wait_metric(&d, "first success", |m| value(m, "uniqwatch_up", &t("chats")) == Some(1.0)).await;
    proxy.set(ProxyMode::Slow(Duration::from_millis(1500)));
    let timeouts = |m: &str| -> f64 {
        ["index", "duplicates", "missing_keys"]
            .iter()
            .filter_map(|c| value(m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", c), ("reason", "timeout")]))
            .sum()
    };
    let m = wait_metric(&d, "a timeout", |m| timeouts(m) >= 1.0).await;
    assert_eq!(value(&m, "uniqwatch_duplicate_keys", &t("chats")), None, "a timed-out check's figures are withdrawn");
    d.stop().await;
}

#[tokio::test]
async fn runs_of_one_target_never_overlap() {
    let db = seeded("d_overlap").await;
    let proxy = Proxy::start(uri_addr(&shared_uri())).await;
    let d = Daemon::start(&target_toml(&proxy.uri(), "chats", &db, "chats", "participantsKey", true, "* * * * * *")).await;
    wait_metric(&d, "first success", |m| value(m, "uniqwatch_up", &t("chats")) == Some(1.0)).await;
    // Each reply now takes 700ms, so a run (several round trips) outlasts the one-second period.
    proxy.set(ProxyMode::Slow(Duration::from_millis(700)));
    let m = wait_metric(&d, "a skipped run", |m| value(m, "uniqwatch_runs_skipped_total", &t("chats")).unwrap_or(0.0) >= 2.0).await;
    // Skipped ticks are not failures: nothing timed out.
    let timeouts = value(&m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", "duplicates"), ("reason", "timeout")]);
    assert_eq!(timeouts, Some(0.0));
    d.stop().await;
}

#[tokio::test]
async fn refused_authentication_shows_as_unauthorized() {
    if std::env::var(URI_ENV).is_ok() {
        eprintln!("refused_authentication_shows_as_unauthorized uses its own SecantusDB with --auth");
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("db");
    let storage = storage.to_str().unwrap();
    let server = Server::start_with(&["--storage-path", storage], 0);
    let port = server.port;
    command(
        &server.uri(),
        "admin",
        doc! {"createUser": "watcher", "pwd": "right-password", "roles": [{"role": "read", "db": "app"}]},
    )
    .await;
    server.stop();
    let server = Server::start_with(&["--storage-path", storage, "--auth"], port);

    let uri = format!("mongodb://watcher:wrong-password@127.0.0.1:{}/?authSource=admin", server.port);
    let d = Daemon::start(&target_toml(&uri, "chats", "app", "chats", "participantsKey", true, "0 0 0 1 1 *")).await;
    let m = wait_metric(&d, "unauthorized failure", |m| {
        value(m, "uniqwatch_check_failures_total", &[("target", "chats"), ("check", "index"), ("reason", "unauthorized")]).unwrap_or(0.0) >= 1.0
    })
    .await;
    assert_eq!(value(&m, "uniqwatch_up", &t("chats")), Some(0.0));
    let (_, page) = d.get("/").await;
    assert!(!page.contains("wrong-password"), "credentials never reach pages");
    assert!(!m.contains("wrong-password"));
    d.stop().await;
}

#[tokio::test]
async fn runs_reach_the_history_and_the_audit_reads_them_while_the_daemon_writes() {
    let db = seeded("d_history").await;
    let toml = target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "* * * * * *");
    let state_dir = toml.lines().find_map(|l| l.strip_prefix("dir = ")).unwrap().trim_matches('"').to_string();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("uniqwatch.toml");
    std::fs::write(&cfg, &toml).unwrap();
    let d = Daemon::start(&toml).await;
    wait_metric(&d, "history written", |m| value(m, "uniqwatch_history_last_write_timestamp_seconds", &[]).is_some()).await;

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    // Reports are read while the daemon keeps writing; poll until a run is in.
    let audit = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_uniqwatch"))
            .args(["audit", "--config", cfg.to_str().unwrap(), "--month", &month, "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let start = std::time::Instant::now();
    let report = loop {
        let report = audit();
        if report["targets"][0]["checks"]["runs"].as_u64().unwrap_or(0) >= 1 {
            break report;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no run reached the history: {report}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(report["month"], month.as_str());
    let t = &report["targets"][0];
    assert_eq!(t["name"], "chats");
    assert!(t["checks"]["runs"].as_u64().unwrap() >= 1, "{t}");
    assert_eq!(t["duplicates"]["max_keys"], 1);
    assert_eq!(t["duplicates"]["current"]["keys"], 1, "now comes from a fresh check");
    assert_eq!(t["index"]["present_now"], false);
    assert!(Path::new(&state_dir).join("history.sqlite3").exists());
    d.stop().await;
}

#[tokio::test]
async fn log_sources_are_tailed_by_the_daemon_and_shown_on_the_landing_page() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    std::fs::write(
        &log,
        "2026-11-28T10:00:01.123Z [WARN] Duplicate key error during upsert participantsKey=userA_userB\n\
         2026-11-28T10:00:01.125Z [DEBUG] Retrieved existing chat after duplicate key error\n",
    )
    .unwrap();
    let toml = format!(
        "{}\n[[logs]]\nname = \"chat-backend\"\npaths = [\"{}/*.log\"]\nstart_at = \"beginning\"\nnamespace = \"app.chats\"\nindex = \"participantsKey_1\"\npoll_interval = \"50ms\"\n",
        target_toml(&shared_uri(), "chats", &unique_db("d_logs"), "chats", "participantsKey", true, "0 0 0 1 1 *"),
        logs.path().display()
    );
    let d = Daemon::start(&toml).await;
    let m = wait_metric(&d, "the error line counted", |m| {
        value(m, "uniqwatch_duplicate_key_errors_total", &[("source", "chat-backend"), ("namespace", "app.chats")]) == Some(1.0)
    })
    .await;
    assert_eq!(value(&m, "uniqwatch_duplicate_key_recoveries_total", &[("source", "chat-backend")]), Some(1.0));
    let (_, page) = d.get("/").await;
    assert!(page.contains("Log sources") && page.contains("chat-backend"), "{page}");
    d.stop().await;
}

/// Issue 13 item 4: with a state dir that cannot be created, the tailer
/// never started, no log series existed and /readyz said 200.
#[tokio::test]
async fn readiness_reflects_a_state_dir_that_cannot_be_created() {
    let scratch = tempfile::tempdir().unwrap();
    let blocker = scratch.path().join("not-a-dir");
    std::fs::write(&blocker, "a file where the state dir's parent should be").unwrap();
    let state = blocker.join("state");
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("app.log"), "hello\n").unwrap();
    let toml = target_toml(&shared_uri(), "chats", &unique_db("d_nostate"), "chats", "participantsKey", true, "0 0 0 1 1 *")
        .lines()
        .map(|l| if l.starts_with("dir = ") { format!("dir = \"{}\"", state.display()) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let toml = format!(
        "{toml}\n[[logs]]\nname = \"app\"\npaths = [\"{}/*.log\"]\nstart_at = \"beginning\"\npoll_interval = \"50ms\"\n",
        logs.path().display()
    );
    let d = Daemon::start(&toml).await;
    let m = wait_metric(&d, "the first run and the tailer's end", |m| {
        value(m, "uniqwatch_up", &t("chats")).is_some() && value(m, "uniqwatch_log_tailer_up", &[]) == Some(0.0)
    })
    .await;
    assert_eq!(value(&m, "uniqwatch_history_up", &[]), Some(0.0));
    assert!(value(&m, "uniqwatch_history_write_failures_total", &[("reason", "cannot_open")]).unwrap_or(0.0) >= 1.0, "{m}");
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("log tailer") && body.contains("history store"), "{body}");
    assert!(!body.contains("first run"), "the target did run: {body}");
    assert_eq!(d.get("/healthz").await.0, 200, "the daemon keeps serving");
    d.stop().await;
}

#[tokio::test]
async fn readiness_needs_the_tailer_and_the_history_when_they_work() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(logs.path().join("app.log"), "hello\n").unwrap();
    let toml = format!(
        "{}\n[[logs]]\nname = \"app\"\npaths = [\"{}/*.log\"]\nstart_at = \"beginning\"\npoll_interval = \"50ms\"\n",
        target_toml(&shared_uri(), "chats", &unique_db("d_ready_all"), "chats", "participantsKey", true, "0 0 0 1 1 *"),
        logs.path().display()
    );
    let d = Daemon::start(&toml).await;
    wait_metric(&d, "the first run", |m| value(m, "uniqwatch_up", &t("chats")).is_some() && value(m, "uniqwatch_history_up", &[]) == Some(1.0)).await;
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(value(&d.metrics().await, "uniqwatch_log_tailer_up", &[]), Some(1.0));
    d.stop().await;
}

/// The HTTP server alone, within `limits`, with no target ever run.
struct HttpOnly {
    addr: std::net::SocketAddr,
    trigger: uniqwatch::shutdown::ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
}

impl HttpOnly {
    async fn start(limits: uniqwatch::http::ServeLimits) -> Self {
        use std::sync::Arc;
        use uniqwatch::http::{self, AppState};

        let config = Config::from_toml(
            &target_toml("mongodb://127.0.0.1:1/", "chats", "app", "chats", "participantsKey", true, "0 0 0 1 1 *"),
            Path::new("test.toml"),
            None,
        )
        .unwrap();
        let state = Arc::new(uniqwatch::state::State::new(&config.targets));
        let (_totals_tx, totals_rx) = tokio::sync::watch::channel(Default::default());
        let metrics = uniqwatch::metrics::Metrics::new();
        let app = http::router(AppState {
            metrics: metrics.clone(),
            state,
            readiness: Arc::new(uniqwatch::state::Readiness::default()),
            log_sources: Vec::new(),
            log_totals: totals_rx,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = uniqwatch::shutdown::channel();
        let task = tokio::spawn(http::serve(listener, app, limits, metrics.http_connections_evicted_total.clone(), None, shutdown));
        HttpOnly { addr, trigger, task }
    }

    /// A scrape, which must be answered within a generous bound whatever
    /// the other clients do.
    async fn scrape(&self, why: &str) -> String {
        let scrape = tokio::time::timeout(Duration::from_secs(30), reqwest::get(format!("http://{}/metrics", self.addr)))
            .await
            .unwrap_or_else(|_| panic!("the scrape waited more than 30 s: {why}"))
            .unwrap();
        assert_eq!(scrape.status().as_u16(), 200);
        let text = scrape.text().await.unwrap();
        assert!(text.contains("uniqwatch_build_info"));
        text
    }

    async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap();
    }
}

/// A client that pipelines `GET /metrics` without end and never reads an
/// answer, so the server blocks writing to it. Its task ends when the
/// server closes the connection.
async fn pipelining_client(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move {
        let requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(256);
        while s.write_all(&requests).await.is_ok() {}
    })
}

/// Issue 13 item 9: half-sent requests were held for minutes, and with
/// more of them than descriptors /metrics failed for everyone.
#[tokio::test]
async fn half_sent_requests_are_closed_and_do_not_keep_the_scrape_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uniqwatch::http::ServeLimits;

    let limits = ServeLimits { header_read_timeout: Duration::from_millis(300), max_connections: 4, ..ServeLimits::default() };
    let server = HttpOnly::start(limits).await;

    // More slow clients than the server serves at once, each stopping mid-header.
    let mut slow = Vec::new();
    for _ in 0..12 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    // The scrape still gets its answer.
    server.scrape("slow clients").await;

    // Each half-sent request is closed by the server, without a response.
    for mut s in slow {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a half-sent request was not closed (generous bound)");
        let text = String::from_utf8_lossy(&buf);
        assert!(!text.contains("uniqwatch_"), "no metrics for a request never finished: {text}");
    }
    server.stop().await;
}

/// Hostile review of item 9: clients that pipeline requests and never read
/// the answers held every connection slot for as long as they stayed, and
/// the scrape waited in the accept queue. The oldest connection now makes
/// way for the newest.
#[tokio::test]
async fn clients_that_never_read_their_answers_do_not_keep_the_scrape_out() {
    use uniqwatch::http::ServeLimits;

    // Headers come in time and no connection grows old here: only making
    // way for the newest connection can let the scrape in.
    let limits = ServeLimits { header_read_timeout: Duration::from_secs(300), max_connections: 4, max_connection_age: Duration::from_secs(300) };
    let server = HttpOnly::start(limits).await;
    let mut hogs = Vec::new();
    for _ in 0..limits.max_connections {
        hogs.push(pipelining_client(server.addr).await);
    }
    let text = server.scrape("clients that never read").await;
    assert!(value(&text, "uniqwatch_http_connections_evicted_total", &[]).unwrap_or(0.0) >= 1.0, "{text}");
    // The hog that made way is gone: its writes fail once the server closed it.
    let first = hogs.remove(0);
    tokio::time::timeout(Duration::from_secs(30), first).await.expect("the oldest connection was closed (generous bound)").unwrap();
    for hog in hogs {
        hog.abort();
    }
    server.stop().await;
}

/// Item 9 with headers that never end and a header timeout longer than any
/// scrape: connections at the limit make way for the scrape.
#[tokio::test]
async fn half_sent_requests_at_the_limit_make_way_for_the_scrape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use uniqwatch::http::ServeLimits;

    let limits = ServeLimits { header_read_timeout: Duration::from_secs(300), max_connections: 4, max_connection_age: Duration::from_secs(300) };
    let server = HttpOnly::start(limits).await;
    let mut slow = Vec::new();
    for _ in 0..limits.max_connections {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        slow.push(s);
    }
    server.scrape("half-sent requests at the limit").await;
    // The oldest was closed to let the scrape in, without a response.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow[0].read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the oldest half-sent request was not closed (generous bound)");
    assert!(buf.is_empty(), "no answer to a request never finished");
    drop(slow);
    server.stop().await;
}

/// A connection that never reads its answers is cut once it is
/// `max_connection_age` old, even with free slots.
#[tokio::test]
async fn connections_are_cut_when_they_grow_old() {
    use uniqwatch::http::ServeLimits;

    let limits = ServeLimits { header_read_timeout: Duration::from_secs(1), max_connections: 64, max_connection_age: Duration::from_secs(1) };
    let server = HttpOnly::start(limits).await;
    let hog = pipelining_client(server.addr).await;
    tokio::time::timeout(Duration::from_secs(30), hog).await.expect("the old connection was cut (generous bound)").unwrap();
    server.scrape("after an old connection was cut").await;
    server.stop().await;
}
