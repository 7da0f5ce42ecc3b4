//! End to end: uniqwatch, a real Prometheus loading the shipped rules and a
//! real Alertmanager routing with the shipped example config, all on
//! loopback, with a webhook receiver in the test standing in for the pager
//! and the ticket system.
//!
//! One test walks the story of issue 4: on healthy data nothing fires; once
//! the unique index is dropped and a duplicate inserted,
//! `UniqwatchUniqueIndexMissing` and `UniqwatchDuplicatesFound` reach the
//! pager as critical, and so does `UniqwatchSemanticDuplicates` (the target
//! has `[target.canonical]`, and the twin shares its participants); and
//! every query of the shipped dashboards evaluates
//! against that Prometheus, the panels about targets returning data.
//!
//! Prometheus and Alertmanager come from the Debian packages `prometheus`
//! and `prometheus-alertmanager` (`scripts/setup.sh` installs them); without
//! them the test fails, it never skips. Every process it starts ends with
//! it, and on failure their logs are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use common::*;
use mongodb::bson::doc;
use serde_json::{json, Value as Json};

/// The longest any one step may take: processes starting, data reaching
/// Prometheus, a notification reaching the webhook.
const STEP: Duration = Duration::from_secs(60);

/// Prometheus scrapes and evaluates the rules this often; Grafana would
/// know it from the datasource's scrape interval.
const INTERVAL_SECONDS: u64 = 1;

/// Evaluations of the rules that must see healthy data before "nothing
/// fires" means something.
const HEALTHY_EVALUATIONS: u64 = 3;

const TARGET: &str = "chats";

/// The path of `name` on PATH, or a failure saying how to install it.
fn required_tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH: the end-to-end test needs a real {name}. \
                 Run scripts/setup.sh (it installs the Debian package {package})."
            )
        })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// Every notification the webhook received: (receiver path, JSON body).
type Notifications = Arc<Mutex<Vec<(String, Json)>>>;

/// An HTTP server standing in for every Alertmanager receiver: each
/// receiver posts to `/<receiver name>`.
struct Webhook {
    port: u16,
    received: Notifications,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    async fn start() -> Self {
        let received = Notifications::default();
        let app = axum::Router::new()
            .route("/{receiver}", post(Self::receive))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook");
        let port = listener
            .local_addr()
            .expect("a bound listener has an address")
            .port();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the webhook serves");
        });
        Webhook {
            port,
            received,
            task,
        }
    }

    async fn receive(
        State(received): State<Notifications>,
        UrlPath(receiver): UrlPath<String>,
        body: String,
    ) {
        // Kept as a string when it is not JSON, so the test's assertions show it.
        let body = serde_json::from_str(&body).unwrap_or(Json::String(body));
        received
            .lock()
            .expect("no panic while holding the lock")
            .push((receiver, body));
    }

    fn url(&self, receiver: &str) -> String {
        format!("http://127.0.0.1:{}/{receiver}", self.port)
    }

    fn notifications(&self) -> Vec<(String, Json)> {
        self.received
            .lock()
            .expect("no panic while holding the lock")
            .clone()
    }

    /// Each alert of every notification, as (receiver, notification status, alert).
    fn alerts(&self) -> Vec<(String, String, Json)> {
        let mut out = Vec::new();
        for (receiver, body) in self.notifications() {
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            for alert in body["alerts"].as_array().into_iter().flatten() {
                out.push((receiver.clone(), status.clone(), alert.clone()));
            }
        }
        out
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// uniqwatch, Prometheus and Alertmanager, each on a port it chose itself
/// (port 0, read back from its log) with its files in one scratch
/// directory. Dropping it ends them all; when
/// dropped during a panic it prints their logs first.
struct Stack {
    dir: tempfile::TempDir,
    uniqwatch_port: u16,
    prometheus_port: u16,
    alertmanager_port: u16,
    http: reqwest::Client,
    /// The processes by name, held so they live as long as the stack.
    processes: Mutex<Vec<(&'static str, Process)>>,
}

impl Stack {
    async fn start(mongodb_uri: &str, database: &str, webhook: &Webhook) -> Self {
        let prometheus = required_tool("prometheus", "prometheus");
        let alertmanager = required_tool("prometheus-alertmanager", "prometheus-alertmanager");
        let uniqwatch = PathBuf::from(env!("CARGO_BIN_EXE_uniqwatch"));
        let dir = tempfile::tempdir().expect("a scratch directory can be made");
        let mut stack = Stack {
            uniqwatch_port: 0,
            prometheus_port: 0,
            alertmanager_port: 0,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
            processes: Mutex::default(),
            dir,
        };

        // uniqwatch, checking every second (the canonical checks too) so
        // the test need not wait for the default five minutes or hour.
        let mut config = target_toml(
            mongodb_uri,
            TARGET,
            database,
            "chats",
            "participantsKey",
            true,
            "* * * * * *",
        );
        config.push_str(
            "\n[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\nschedule = \"* * * * * *\"\n",
        );
        let config_path = stack.write("uniqwatch.toml", &config);
        let args = ["run", "--config", &config_path, "--log-level", "info"].map(String::from);
        stack.uniqwatch_port = stack
            .spawn("uniqwatch", &uniqwatch, &args, daemon_listening_address)
            .port();

        let am_config = stack.write("alertmanager.yml", &alertmanager_config(webhook));
        let storage = format!("--storage.path={}", stack.path("alertmanager-data"));
        let args = [
            format!("--config.file={am_config}"),
            storage,
            "--web.listen-address=127.0.0.1:0".into(),
            "--cluster.listen-address=".into(),
        ];
        stack.alertmanager_port = stack
            .spawn("alertmanager", &alertmanager, &args, exporter_listening_address)
            .port();

        let prom_config = stack.write("prometheus.yml", &stack.prometheus_config());
        let storage = format!("--storage.tsdb.path={}", stack.path("prometheus-data"));
        let args = [
            format!("--config.file={prom_config}"),
            storage,
            "--web.listen-address=127.0.0.1:0".into(),
        ];
        stack.prometheus_port = stack
            .spawn("prometheus", &prometheus, &args, exporter_listening_address)
            .port();

        let uniqwatch_ready = format!("http://127.0.0.1:{}/readyz", stack.uniqwatch_port);
        let prometheus_ready = format!("{}/-/ready", stack.prometheus());
        let alertmanager_ready = format!("http://127.0.0.1:{}/-/ready", stack.alertmanager_port);
        for url in [uniqwatch_ready, prometheus_ready, alertmanager_ready] {
            stack
                .wait(&format!("{url} to answer 200"), || async {
                    stack.status(&url).await == Some(200)
                })
                .await;
        }
        stack
    }

    fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("temp paths are UTF-8")
            .to_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
        path
    }

    /// Starts `program`, its output going to `<name>.log` in the scratch
    /// directory, and returns the address `listening` finds in that log.
    fn spawn(
        &self,
        name: &'static str,
        program: &Path,
        args: &[String],
        listening: fn(&str) -> Option<SocketAddr>,
    ) -> SocketAddr {
        let log = self.dir.path().join(format!("{name}.log"));
        let mut process = Process::start(program, args, Some(&log));
        // Blocking while the other worker thread serves the webhook.
        let addr = tokio::task::block_in_place(|| {
            process.wait_for_line(&format!("where {name} listens"), STEP, listening)
        });
        self.processes
            .lock()
            .expect("no panic while holding the lock")
            .push((name, process));
        addr
    }

    fn prometheus(&self) -> String {
        format!("http://127.0.0.1:{}", self.prometheus_port)
    }

    /// The scrape job is named `uniqwatch`, as the rules expect, and every
    /// shipped rule file is loaded unchanged.
    fn prometheus_config(&self) -> String {
        let rule_files: Vec<String> = std::fs::read_dir(repo_root().join("alerts"))
            .expect("alerts/ is readable")
            .map(|entry| entry.expect("directory entry is readable").path())
            .filter(|path| path.to_str().is_some_and(|p| p.ends_with(".rules.yml")))
            .map(|path| path.to_str().expect("repo paths are UTF-8").to_owned())
            .collect();
        assert!(!rule_files.is_empty(), "no rule files in alerts/");
        let interval = format!("{INTERVAL_SECONDS}s");
        let config = json!({
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": rule_files,
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [format!("127.0.0.1:{}", self.alertmanager_port)]}]}]},
            "scrape_configs": [{
                "job_name": "uniqwatch",
                "static_configs": [{"targets": [format!("127.0.0.1:{}", self.uniqwatch_port)]}],
            }],
        });
        // JSON is YAML.
        serde_json::to_string_pretty(&config).expect("JSON encodes")
    }

    async fn status(&self, url: &str) -> Option<u16> {
        self.http
            .get(url)
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Polls `cond` until it holds, failing after [`STEP`] or as soon as
    /// one of the processes has exited.
    async fn wait<F, Fut>(&self, what: &str, cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        assert!(
            self.try_wait(cond).await,
            "timed out after {STEP:?} waiting for {what}"
        );
    }

    /// Polls `cond` until it holds (true) or [`STEP`] passes (false),
    /// failing as soon as one of the processes has exited.
    async fn try_wait<F, Fut>(&self, mut cond: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !cond().await {
            self.check_alive();
            if start.elapsed() >= STEP {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }

    fn check_alive(&self) {
        for (name, process) in self
            .processes
            .lock()
            .expect("no panic while holding the lock")
            .iter_mut()
        {
            assert!(process.running(), "{name} exited; see its log below");
        }
    }

    /// A Prometheus API call's `data`, failing on an error answer.
    async fn api(&self, path: &str, query: &[(&str, String)]) -> Json {
        let url = format!("{}{path}", self.prometheus());
        let response = self
            .http
            .get(&url)
            .query(query)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let body: Json = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
        assert_eq!(body["status"], "success", "GET {url} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's result vector.
    async fn query(&self, promql: &str) -> Vec<Json> {
        let data = self
            .api("/api/v1/query", &[("query", promql.to_owned())])
            .await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The alerts Prometheus holds as pending or firing.
    async fn active_alerts(&self) -> Vec<Json> {
        self.api("/api/v1/alerts", &[]).await["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// When every rule group last finished an evaluation (the oldest of
    /// them), in Unix seconds.
    async fn last_evaluation(&self) -> f64 {
        let data = self.api("/api/v1/rules", &[]).await;
        let groups = data["groups"].as_array().cloned().unwrap_or_default();
        assert!(
            !groups.is_empty(),
            "Prometheus loaded no rule group: {data}"
        );
        groups
            .iter()
            .map(|g| {
                let text = g["lastEvaluation"].as_str().unwrap_or_default();
                chrono::DateTime::parse_from_rfc3339(text)
                    .map(|t| t.timestamp_millis() as f64 / 1000.0)
                    .unwrap_or(0.0)
            })
            .fold(f64::INFINITY, f64::min)
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["uniqwatch.log", "prometheus.log", "alertmanager.log"] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out += &format!("---- last lines of {name}\n");
            for line in tail.into_iter().rev() {
                out += line;
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The shipped example Alertmanager config, with its receivers pointed at
/// the webhook (`/pager`, `/ticket`) and its waits shortened so a test need
/// not wait half a minute for the first notification. Routes and inhibit
/// rules stay as shipped.
fn alertmanager_config(webhook: &Webhook) -> String {
    let path = repo_root().join("alerts/alertmanager.example.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&text).expect("the example Alertmanager config is YAML");
    let route = &mut config["route"];
    route["group_wait"] = "0s".into();
    route["group_interval"] = "1s".into();
    let receivers = config["receivers"]
        .as_sequence_mut()
        .expect("the example config lists receivers");
    for receiver in receivers {
        let name = receiver["name"]
            .as_str()
            .expect("receivers are named")
            .to_owned();
        let hooks = receiver["webhook_configs"]
            .as_sequence_mut()
            .expect("the example receivers are webhooks");
        for hook in hooks {
            hook["url"] = webhook.url(&name).into();
        }
    }
    serde_yaml::to_string(&config).expect("YAML encodes")
}

/// Healthy seed-shaped chats: every document keyed, every key distinct.
fn healthy_chats() -> Vec<mongodb::bson::Document> {
    (0..20)
        .map(|i| {
            let (a, b) = (format!("user{i:02}"), format!("user{:02}", i + 20));
            doc! {"participants": [&a, &b], "participantsKey": format!("{a}_{b}"), "createdAt": mongodb::bson::DateTime::now()}
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_and_dashboards_query_prometheus() {
    let started = Instant::now();
    let uri = shared_uri();
    let database = unique_db("e2e");
    seed(&uri, &database, "chats", healthy_chats()).await;
    command(
        &uri,
        &database,
        doc! {"createIndexes": "chats", "indexes": [{"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}]},
    )
    .await;

    let webhook = Webhook::start().await;
    let stack = Stack::start(&uri, &database, &webhook).await;
    stack.check_alive();

    // Prometheus sends to our Alertmanager, so silence at the webhook means
    // nothing fired rather than nowhere to send.
    stack
        .wait("Prometheus to discover the Alertmanager", || async {
            let data = stack.api("/api/v1/alertmanagers", &[]).await;
            data["activeAlertmanagers"]
                .as_array()
                .is_some_and(|list| !list.is_empty())
        })
        .await;

    // ---- Healthy: nothing fires.
    let healthy = format!(
        r#"uniqwatch_duplicate_documents{{job="uniqwatch", target="{TARGET}"}} == 0 and on (target) uniqwatch_canonical_duplicate_keys{{job="uniqwatch", target="{TARGET}"}} == 0"#
    );
    stack
        .wait("healthy figures in Prometheus", || async {
            !stack.query(&healthy).await.is_empty()
        })
        .await;
    let data_seen = unix_now();
    let enough = data_seen + (HEALTHY_EVALUATIONS * INTERVAL_SECONDS) as f64;
    stack
        .wait(
            &format!("{HEALTHY_EVALUATIONS} rule evaluations on healthy data"),
            || async { stack.last_evaluation().await >= enough },
        )
        .await;
    for (series, expected) in [
        ("uniqwatch_up", 1.0),
        ("uniqwatch_unique_index_present", 1.0),
        ("uniqwatch_duplicate_keys", 0.0),
        ("uniqwatch_canonical_duplicate_keys", 0.0),
    ] {
        let result = stack
            .query(&format!(
                r#"{series}{{job="uniqwatch", target="{TARGET}"}}"#
            ))
            .await;
        let value = result
            .first()
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        assert_eq!(
            value,
            Some(expected),
            "{series} on healthy data: {result:?}"
        );
    }
    let missing = stack
        .query(&format!(
            r#"sum(uniqwatch_missing_key_documents{{target="{TARGET}"}})"#
        ))
        .await;
    assert_eq!(
        missing.first().map(|s| s["value"][1].clone()),
        Some(json!("0")),
        "healthy data has every key"
    );
    let mismatched = stack
        .query(&format!(
            r#"sum(uniqwatch_key_mismatch_documents{{target="{TARGET}"}})"#
        ))
        .await;
    assert_eq!(
        mismatched.first().map(|s| s["value"][1].clone()),
        Some(json!("0")),
        "healthy data has every key equal to its canonical value"
    );
    let active = stack.active_alerts().await;
    assert!(
        active.is_empty(),
        "on healthy data no alert may be pending or firing: {active:#?}"
    );
    // Alertmanager's own view too, in case a notification is still on its way.
    let am_alerts: Json = stack
        .http
        .get(format!(
            "http://127.0.0.1:{}/api/v2/alerts",
            stack.alertmanager_port
        ))
        .send()
        .await
        .expect("Alertmanager answers")
        .json()
        .await
        .expect("Alertmanager answers JSON");
    assert_eq!(
        am_alerts,
        json!([]),
        "Alertmanager holds no alert on healthy data"
    );
    assert!(
        webhook.notifications().is_empty(),
        "nothing may be notified on healthy data: {:#?}",
        webhook.notifications()
    );
    stack.check_alive();
    let healthy_done = started.elapsed();

    // ---- Break the invariant: drop the index, insert a duplicate.
    command(
        &uri,
        &database,
        doc! {"dropIndexes": "chats", "index": "participantsKey_1"},
    )
    .await;
    let twin = doc! {"participants": ["user00", "user20"], "participantsKey": "user00_user20", "createdAt": mongodb::bson::DateTime::now()};
    seed(&uri, &database, "chats", vec![twin]).await;

    let expected: BTreeSet<&str> = [
        "UniqwatchUniqueIndexMissing",
        "UniqwatchDuplicatesFound",
        "UniqwatchSemanticDuplicates",
    ]
    .into();
    let paged = stack
        .try_wait(|| async {
            let paged: BTreeSet<String> = webhook
                .alerts()
                .into_iter()
                .filter(|(receiver, _, alert)| receiver == "pager" && alert["status"] == "firing")
                .filter_map(|(_, _, alert)| {
                    alert["labels"]["alertname"].as_str().map(str::to_owned)
                })
                .collect();
            expected.iter().all(|name| paged.contains(*name))
        })
        .await;
    assert!(
        paged,
        "timed out after {STEP:?} waiting for {expected:?} to be paged; the webhook received {:#?}; Prometheus holds {:#?}",
        webhook.notifications(),
        stack.active_alerts().await
    );
    let broken_done = started.elapsed();

    for (receiver, status, alert) in webhook.alerts() {
        let labels = &alert["labels"];
        let name = labels["alertname"].as_str().unwrap_or_default();
        assert!(
            expected.contains(name),
            "only the three invariant alerts may fire, got {name} at /{receiver}: {alert:#}"
        );
        assert_eq!(
            receiver, "pager",
            "{name} is critical and must be routed to the pager: {alert:#}"
        );
        assert_eq!(status, "firing", "{alert:#}");
        assert_eq!(alert["status"], "firing", "{alert:#}");
        assert_eq!(labels["severity"], "critical", "{alert:#}");
        assert_eq!(labels["target"], TARGET, "{alert:#}");
        assert_eq!(labels["job"], "uniqwatch", "{alert:#}");
        let runbook = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        assert!(
            runbook.ends_with(&format!("#{}", name.to_lowercase())),
            "{alert:#}"
        );
        let description = alert["annotations"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains(TARGET) && !description.contains("{{"),
            "the description names the target and is rendered: {alert:#}"
        );
    }

    // ---- Dashboards: every query evaluates; panels about targets return data.
    check_dashboards(&stack).await;
    stack.check_alive();

    // Figures, not bounds: straight to stderr, which libtest does not
    // capture, so every run shows them.
    let _ = writeln!(
        std::io::stderr(),
        "e2e: healthy phase {:.1?}, alerts paged {:.1?} after the break, whole test {:.1?}",
        healthy_done,
        broken_done - healthy_done,
        started.elapsed()
    );
}

/// Values for the dashboards' variables, as Grafana would set them for
/// this stack; the log-source and timed-event variables get their "All"
/// value since the stack tails no logs.
fn variable_values(stack: &Stack) -> BTreeMap<&'static str, String> {
    // Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval),
    // with $__interval the step of the range query below.
    let (interval, scrape_interval) = (INTERVAL_SECONDS, INTERVAL_SECONDS);
    let rate_interval = format!("{}s", (interval + scrape_interval).max(4 * scrape_interval));
    BTreeMap::from([
        ("datasource", "prometheus".to_owned()),
        ("job", "uniqwatch".to_owned()),
        ("instance", format!("127.0.0.1:{}", stack.uniqwatch_port)),
        ("target", TARGET.to_owned()),
        ("source", ".*".to_owned()),
        ("event", ".*".to_owned()),
        ("request_event", "create_or_get".to_owned()),
        ("__rate_interval", rate_interval),
        ("__interval", format!("{interval}s")),
        ("__range", "60s".to_owned()),
    ])
}

/// `expr` with Grafana's variables (`$name`, `${name}`, `${name:format}`,
/// `[[name]]`) replaced from `values`; an unknown variable fails the test,
/// so a new one is given a value here.
fn substitute(expr: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    loop {
        let dollar = rest.find('$');
        let bracket = rest.find("[[");
        let (at, name, consumed) = match (dollar, bracket) {
            (None, None) => break,
            (Some(at), b) if b.is_none_or(|b| at < b) => {
                let after = &rest[at + 1..];
                match after.strip_prefix('{') {
                    Some(braced) => {
                        let end = braced
                            .find('}')
                            .unwrap_or_else(|| panic!("unclosed ${{ in {expr}"));
                        (
                            at,
                            braced[..end].split(':').next().unwrap_or_default(),
                            end + 3,
                        )
                    }
                    None => {
                        let end = after
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .unwrap_or(after.len());
                        (at, &after[..end], end + 1)
                    }
                }
            }
            (_, Some(at)) => {
                let after = &rest[at + 2..];
                let end = after
                    .find("]]")
                    .unwrap_or_else(|| panic!("unclosed [[ in {expr}"));
                (
                    at,
                    after[..end].split(':').next().unwrap_or_default(),
                    end + 4,
                )
            }
            (Some(_), None) => unreachable!("the first arm takes a $ without [["),
        };
        if name.is_empty() {
            // A `$` of PromQL itself, such as a regex anchor.
            out.push_str(&rest[..at + 1]);
            rest = &rest[at + 1..];
            continue;
        }
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("the e2e test has no value for variable {name:?} in {expr}"));
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + consumed..];
    }
    out.push_str(rest);
    out
}

/// Every panel query of every shipped dashboard runs as a range query over
/// the last minute, as Grafana would run it, and must not fail; every panel
/// but those about log sources (the stack tails no logs) must return data.
/// Every `label_values` variable runs as a series lookup and, but for the
/// log-source ones, must offer this stack's job, instance and target.
async fn check_dashboards(stack: &Stack) {
    let values = variable_values(stack);
    let end = unix_now();
    let start = end - 60.0;
    let mut problems = Vec::new();
    let mut evaluated = 0;
    let dir = repo_root().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/ is readable")
        .map(|entry| entry.expect("directory entry is readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    for file in files {
        let name = file
            .file_name()
            .expect("a file has a name")
            .to_string_lossy()
            .into_owned();
        let dashboard: Json =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("dashboard is readable"))
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));

        for variable in common::label_values_variables(&dashboard) {
            let (variable_name, selector, label) = match variable {
                Ok(v) => v,
                Err(problem) => {
                    problems.push(format!("{name}: {problem}"));
                    continue;
                }
            };
            let selector = substitute(&selector, &values);
            let data = stack
                .api(
                    "/api/v1/series",
                    &[
                        ("match[]", selector.clone()),
                        ("start", start.to_string()),
                        ("end", end.to_string()),
                    ],
                )
                .await;
            let found: BTreeSet<&str> = data
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s[label.as_str()].as_str())
                .collect();
            evaluated += 1;
            let wanted = match variable_name.as_str() {
                "source" | "event" | "request_event" => None,
                other => Some(values[other].as_str()),
            };
            if let Some(wanted) = wanted {
                if !found.contains(wanted) {
                    problems.push(format!("{name}: variable {variable_name} ({selector}) offers {found:?}, not {wanted:?}"));
                }
            }
        }

        let mut stack_of_panels: Vec<&Json> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        while let Some(panel) = stack_of_panels.pop() {
            stack_of_panels.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str() else {
                    continue;
                };
                let where_ = format!(
                    "{name}: panel {:?} query {}",
                    panel["title"], target["refId"]
                );
                let promql = substitute(expr, &values);
                let url = format!("{}/api/v1/query_range", stack.prometheus());
                let query = [
                    ("query", promql.clone()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", format!("{INTERVAL_SECONDS}")),
                ];
                let body: Json = stack
                    .http
                    .get(&url)
                    .query(&query)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET {url}: {e}"))
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"));
                evaluated += 1;
                if body["status"] != "success" {
                    problems.push(format!(
                        "{where_}: {promql}: {} {}",
                        body["errorType"], body["error"]
                    ));
                    continue;
                }
                if let Some(warnings) = body["warnings"].as_array().filter(|w| !w.is_empty()) {
                    problems.push(format!("{where_}: {promql}: warnings {warnings:?}"));
                }
                // The stack tails no logs, so only panels about log sources may be empty.
                let about_sources = expr.contains("$source") || expr.contains("${source");
                let empty = body["data"]["result"]
                    .as_array()
                    .is_none_or(|r| r.is_empty());
                if !about_sources && empty {
                    problems.push(format!("{where_}: {promql}: no data"));
                }
            }
        }
    }
    assert!(evaluated > 0, "no dashboard query found");
    assert!(
        problems.is_empty(),
        "dashboard queries against Prometheus:\n{}",
        problems.join("\n")
    );
}

#[test]
fn grafana_variables_are_substituted() {
    let values = BTreeMap::from([
        ("job", "uniqwatch".to_owned()),
        ("__rate_interval", "4s".to_owned()),
    ]);
    assert_eq!(
        substitute(
            r#"rate(x{a=~"$job", b="${job:regex}", c="[[job]]", d=~"x$"}[$__rate_interval])"#,
            &values
        ),
        r#"rate(x{a=~"uniqwatch", b="uniqwatch", c="uniqwatch", d=~"x$"}[4s])"#
    );
}
