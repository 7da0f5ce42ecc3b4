//! Web security (issue 14): the daemon behind an exporter toolkit web
//! config, spoken to by curl and scraped by a real Prometheus.
//!
//! Certificates are made in each test with rcgen: a CA, a server
//! certificate for 127.0.0.1 and a client certificate. The daemons here
//! watch no target, so no database is needed: what is tested is the HTTP
//! side alone.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");
const PASSWORD: &str = "correct horse battery staple";
const STEP: Duration = Duration::from_secs(60);

/// A CA and what it signed, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    /// Files named `<prefix>-…` in `dir`.
    fn new(dir: &Path, prefix: &str) -> Self {
        let write = |name: &str, text: &str| {
            let path = dir.join(format!("{prefix}-{name}"));
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("{prefix} test CA"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name.push(DnType::CommonName, "prometheus");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        Pki {
            ca: write("ca.pem", &ca_cert.pem()),
            server_cert: write("server.pem", &server_cert.pem()),
            server_key: write("server.key", &server_key.serialize_pem()),
            client_cert: write("client.pem", &client_cert.pem()),
            client_key: write("client.key", &client_key.serialize_pem()),
        }
    }
}

/// A uniqwatch config watching nothing, listening on a free loopback port.
fn daemon_config(dir: &Path) -> PathBuf {
    let state = dir.join("state");
    let text = format!("[web]\nlisten = \"127.0.0.1:0\"\n\n[state]\ndir = {:?}\n", state.to_str().unwrap());
    let path = dir.join("uniqwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replaces `path` the way an operator's tooling would: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// `uniqwatch run` with `web_config`, its log in `dir`.
struct Daemon {
    addr: SocketAddr,
    log: PathBuf,
    _process: Process,
}

impl Daemon {
    fn start(dir: &Path, web_config: &Path) -> Self {
        let config = daemon_config(dir);
        let log = dir.join("uniqwatch.log");
        let args = ["run", "--config", config.to_str().unwrap(), "--web.config.file", web_config.to_str().unwrap(), "--log-level", "info"];
        let mut process = Process::start(Path::new(BIN), &args, Some(&log));
        let addr = process.wait_for_line("where uniqwatch listens", STEP, daemon_listening_address);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(&format!("url=https://{addr}/")), "the start-up line says https: {text}");
        Daemon { addr, log, _process: process }
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// curl's answer: the status code (`000` when no HTTP answer came), the
/// headers and body, and whether curl itself succeeded.
struct Curl {
    code: String,
    text: String,
    ok: bool,
}

fn curl(url: &str, extra: &[&str]) -> Curl {
    let out: Output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-i", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl { code: code.trim().to_string(), text: format!("{text}\n{}", String::from_utf8_lossy(&out.stderr)), ok: out.status.success() }
}

/// The value of the sample `series` (exact, labels included) in a scrape.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

#[test]
fn tls_and_basic_auth_guard_every_endpoint_healthz_included() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\nbasic_auth_users:\n  alice: {}\n",
            hash(PASSWORD)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), &web);
    let ca = pki.ca.to_str().unwrap();
    let creds = format!("alice:{PASSWORD}");

    for path in ["/metrics", "/healthz", "/readyz", "/"] {
        let r = curl(&daemon.url(path), &["--cacert", ca]);
        assert_eq!(r.code, "401", "{path} without credentials: {}", r.text);
        assert!(r.text.to_lowercase().contains("www-authenticate: basic"), "{}", r.text);
        assert!(r.text.to_lowercase().contains("x-frame-options: deny"), "headers on refusals too: {}", r.text);
    }
    let wrong = curl(&daemon.url("/metrics"), &["--cacert", ca, "-u", "mallory-user:not-the-password"]);
    assert_eq!(wrong.code, "401", "{}", wrong.text);

    let ok = curl(&daemon.url("/healthz"), &["--cacert", ca, "-u", &creds]);
    assert_eq!(ok.code, "200", "{}", ok.text);
    assert!(ok.text.to_lowercase().contains("x-content-type-options: nosniff"), "{}", ok.text);
    let metrics = curl(&daemon.url("/metrics"), &["--cacert", ca, "-u", &creds]);
    assert_eq!(metrics.code, "200", "{}", metrics.text);
    assert_eq!(sample(&metrics.text, r#"uniqwatch_http_auth_failures_total{reason="missing"}"#), Some(4.0), "{}", metrics.text);
    assert_eq!(sample(&metrics.text, r#"uniqwatch_http_auth_failures_total{reason="invalid"}"#), Some(1.0));
    assert_eq!(sample(&metrics.text, "uniqwatch_web_config_last_reload_successful"), Some(1.0));

    let plain = curl(&format!("http://{}/healthz", daemon.addr), &[]);
    assert_ne!(plain.code, "200", "plain HTTP is not served: {}", plain.text);
    let untrusted = curl(&daemon.url("/healthz"), &["-u", &creds]);
    assert!(!untrusted.ok, "curl refuses a server whose CA it was not given");

    // Review finding: a file rewritten in place and read half-written (the
    // TLS part only) turned basic auth off. Protection is switched by a restart only.
    std::fs::write(&web, "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\n").unwrap();
    let r = curl(&daemon.url("/metrics"), &["--cacert", ca]);
    assert_eq!(r.code, "401", "a reload without users must not open the endpoints: {}", r.text);
    let metrics = curl(&daemon.url("/metrics"), &["--cacert", ca, "-u", &creds]);
    assert_eq!(sample(&metrics.text, "uniqwatch_web_config_last_reload_successful"), Some(0.0), "{}", metrics.text);

    let log = daemon.log();
    let refusals = log.lines().filter(|l| l.contains("refused for missing or wrong credentials")).count();
    assert_eq!(refusals, 1, "one line a minute, however many refusals: {log}");
    for secret in [PASSWORD, "not-the-password", "mallory-user"] {
        assert!(!log.contains(secret), "the log holds {secret:?}: {log}");
    }
}

#[test]
fn required_client_certificates_refuse_a_client_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let other = Pki::new(dir.path(), "other");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: a-ca.pem\n  min_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n",
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), &web);
    let ca = pki.ca.to_str().unwrap();

    let without = curl(&daemon.url("/healthz"), &["--cacert", ca]);
    assert!(!without.ok && without.code == "000", "no client certificate, no answer: {}", without.text);
    let foreign = curl(&daemon.url("/healthz"), &["--cacert", ca, "--cert", other.client_cert.to_str().unwrap(), "--key", other.client_key.to_str().unwrap()]);
    assert!(!foreign.ok && foreign.code == "000", "a certificate of another CA is refused: {}", foreign.text);
    let with = curl(&daemon.url("/healthz"), &["--cacert", ca, "--cert", pki.client_cert.to_str().unwrap(), "--key", pki.client_key.to_str().unwrap()]);
    assert_eq!(with.code, "200", "{}", with.text);
    let tls12 = curl(&daemon.url("/healthz"), &["--cacert", ca, "--cert", pki.client_cert.to_str().unwrap(), "--key", pki.client_key.to_str().unwrap(), "--tls-max", "1.2"]);
    assert_eq!(tls12.code, "200", "the configured TLS 1.2 suite works: {}", tls12.text);
}

#[test]
fn certificates_rotate_without_a_restart_and_a_bad_reload_keeps_the_last_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::new(dir.path(), "first");
    let second = Pki::new(dir.path(), "second");
    let web = dir.path().join("web.yml");
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    replace(&cert, &std::fs::read_to_string(&first.server_cert).unwrap());
    replace(&key, &std::fs::read_to_string(&first.server_key).unwrap());
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n").unwrap();
    let daemon = Daemon::start(dir.path(), &web);
    let (ca1, ca2) = (first.ca.to_str().unwrap(), second.ca.to_str().unwrap());
    assert_eq!(curl(&daemon.url("/healthz"), &["--cacert", ca1]).code, "200");
    assert!(!curl(&daemon.url("/healthz"), &["--cacert", ca2]).ok);

    replace(&key, &std::fs::read_to_string(&second.server_key).unwrap());
    replace(&cert, &std::fs::read_to_string(&second.server_cert).unwrap());
    let r = curl(&daemon.url("/healthz"), &["--cacert", ca2]);
    assert_eq!(r.code, "200", "a new connection sees the new certificate: {}", r.text);
    assert!(!curl(&daemon.url("/healthz"), &["--cacert", ca1]).ok, "the old one is gone");

    replace(&web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: Sometimes\n");
    let metrics = curl(&daemon.url("/metrics"), &["--cacert", ca2]);
    assert_eq!(metrics.code, "200", "the last good config stays in force: {}", metrics.text);
    assert_eq!(sample(&metrics.text, "uniqwatch_web_config_last_reload_successful"), Some(0.0), "{}", metrics.text);
    let log = daemon.log();
    assert!(log.contains("cannot reload the web config") && log.contains("tls_server_config.client_auth_type"), "{log}");

    replace(&web, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
    let metrics = curl(&daemon.url("/metrics"), &["--cacert", ca2]);
    assert_eq!(sample(&metrics.text, "uniqwatch_web_config_last_reload_successful"), Some(1.0), "{}", metrics.text);
}

/// `uniqwatch config check` with a web config: exit 2 and the field named.
fn check_web_config(dir: &Path, yaml: &str) -> (i32, String) {
    let web = dir.join("bad-web.yml");
    std::fs::write(&web, yaml).unwrap();
    let config = daemon_config(dir);
    let out = Command::new(BIN)
        .args(["config", "check", "--config", config.to_str().unwrap(), "--web.config.file", web.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn bad_web_config_files_stop_start_up_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    Pki::new(dir.path(), "a");
    let tls = "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\n";
    let secret_hash = "$2y$10$notAHashButASecretValue";
    let cases: Vec<(String, &str)> = vec![
        ("tls_server_config:\n  cert_fil: a.pem\n".into(), "unknown field `cert_fil`"),
        ("tls_config:\n  cert_file: a.pem\n".into(), "unknown field `tls_config`"),
        ("tls_server_config:\n  cert_file: a-server.pem\n".into(), "tls_server_config.key_file"),
        ("tls_server_config:\n  cert_file: missing.pem\n  key_file: a-server.key\n".into(), "tls_server_config.cert_file"),
        ("tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-client.key\n".into(), "tls_server_config.key_file"),
        (format!("{tls}  client_auth_type: Sometimes\n"), "tls_server_config.client_auth_type"),
        (format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"), "tls_server_config.client_ca_file"),
        (format!("{tls}  client_ca_file: a-ca.pem\n"), "tls_server_config.client_ca_file"),
        (format!("{tls}  min_version: TLS11\n"), "tls_server_config.min_version"),
        (format!("{tls}  max_version: TLS99\n"), "tls_server_config.max_version"),
        (format!("{tls}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"), "tls_server_config.cipher_suites"),
        (format!("{tls}  curve_preferences: [CurveP521]\n"), "tls_server_config.curve_preferences"),
        ("http_server_config:\n  headers:\n    Authorization: x\n".into(), "http_server_config.headers.Authorization"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n".into(), "http_server_config.headers.X-Frame-Options"),
        (format!("basic_auth_users:\n  alice: \"{secret_hash}\"\n"), "basic_auth_users.alice"),
        ("basic_auth_users: [alice]\n".into(), "basic_auth_users"),
    ];
    for (yaml, field) in cases {
        let (code, stderr) = check_web_config(dir.path(), &yaml);
        assert_eq!(code, 2, "{yaml}: {stderr}");
        assert!(stderr.contains(field), "{yaml}: expected {field:?} in: {stderr}");
        assert!(!stderr.contains(secret_hash), "the hash is not echoed: {stderr}");
    }
    let (code, stderr) = check_web_config(dir.path(), &format!("{tls}basic_auth_users:\n  alice: {}\n", hash(PASSWORD)));
    assert_eq!(code, 0, "{stderr}");

    // `run` refuses to start on the same errors.
    let web = dir.path().join("bad-web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: a-server.pem\n").unwrap();
    let config = daemon_config(dir.path());
    let out = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap(), "--web.config.file", web.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls_server_config.key_file"), "{stderr}");
}

/// A client that opens TCP and never starts the TLS handshake is closed
/// after the header read timeout and counted; it holds no slot for ever.
#[tokio::test]
async fn a_silent_client_cannot_hold_a_tls_connection() {
    use tokio::io::AsyncReadExt;
    use uniqwatch::http::{serve, ServeLimits};

    let dir = tempfile::tempdir().unwrap();
    Pki::new(dir.path(), "a");
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\n").unwrap();
    let metrics = uniqwatch::metrics::Metrics::new();
    let security = Arc::new(uniqwatch::websec::WebSecurity::load(&web, &metrics).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServeLimits { header_read_timeout: Duration::from_millis(300), ..ServeLimits::default() };
    let (trigger, shutdown) = uniqwatch::shutdown::channel();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = tokio::spawn(serve(listener, app, limits, metrics.http_connections_evicted_total.clone(), Some(security), shutdown));

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the server closed the silent connection: {read:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "closed after about the header read timeout, took {:?}", start.elapsed());
    let text = metrics.encode();
    assert_eq!(sample(&text, r#"uniqwatch_http_tls_handshake_failures_total{reason="timeout"}"#), Some(1.0), "{text}");
    trigger.trigger();
    server.await.unwrap();
}

/// The issue's proof: a real Prometheus scrapes uniqwatch over TLS with
/// basic auth and a client certificate, from its own scrape config, and
/// `up` is 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_over_tls_with_basic_auth() {
    let Some(prometheus) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("prometheus")).find(|p| p.is_file()) else {
        panic!("prometheus is not on PATH: run scripts/setup.sh (Debian package prometheus)");
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "a");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: a-server.pem\n  key_file: a-server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: a-ca.pem\nbasic_auth_users:\n  prometheus: {}\n",
            hash(PASSWORD)
        ),
    )
    .unwrap();
    let daemon = tokio::task::block_in_place(|| Daemon::start(dir.path(), &web));
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).unwrap();
    let scrape = serde_json::json!({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{
            "job_name": "uniqwatch",
            "scheme": "https",
            "tls_config": {
                "ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key,
            },
            "basic_auth": {"username": "prometheus", "password_file": password_file},
            "static_configs": [{"targets": [daemon.addr.to_string()]}],
        }],
    });
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(&prom_config, serde_json::to_string_pretty(&scrape).unwrap()).unwrap();
    let prom_log = dir.path().join("prometheus.log");
    let args = [
        format!("--config.file={}", prom_config.display()),
        format!("--storage.tsdb.path={}", dir.path().join("prometheus-data").display()),
        "--web.listen-address=127.0.0.1:0".to_string(),
    ];
    let mut process = Process::start(&prometheus, &args, Some(&prom_log));
    let prom_addr = tokio::task::block_in_place(|| process.wait_for_line("where prometheus listens", STEP, exporter_listening_address));

    let http = reqwest::Client::new();
    let query = format!("http://{prom_addr}/api/v1/query");
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    loop {
        if let Ok(r) = http.get(&query).query(&[("query", "up{job=\"uniqwatch\"}")]).send().await {
            last = r.json().await.unwrap_or_default();
            if last["data"]["result"][0]["value"][1] == "1" {
                break;
            }
        }
        assert!(
            start.elapsed() < STEP,
            "up{{job=\"uniqwatch\"}} never became 1: {last}\nprometheus log:\n{}\nuniqwatch log:\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default(),
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // And what it scraped is uniqwatch's, through the same door.
    let r = http.get(&query).query(&[("query", "uniqwatch_web_config_last_reload_successful")]).send().await.unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"]["result"][0]["value"][1], "1", "{body}");
    // curl without credentials (but with a client certificate) is refused.
    let refused = curl(&daemon.url("/metrics"), &["--cacert", pki.ca.to_str().unwrap(), "--cert", pki.client_cert.to_str().unwrap(), "--key", pki.client_key.to_str().unwrap()]);
    assert_eq!(refused.code, "401", "{}", refused.text);
}
