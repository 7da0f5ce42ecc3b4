//! Test harness: a real MongoDB wire server for the integration tests.
//!
//! By default each test binary starts one SecantusDB server
//! (`secantusd-py --storage-path :memory:`) on a free port, installing
//! SecantusDB into the repo's `.venv` first if it is not there. Set
//! `UNIQWATCH_TEST_MONGODB_URI` to run against a real mongod instead.
//! Every test works in a database of its own, so tests run in parallel.
//!
//! [`Proxy`] sits between uniqwatch and the server to make the database go
//! away, come back, or answer slowly, whatever the server behind it is.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mongodb::bson::Document;
use mongodb::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SECANTUS_VERSION: &str = "SecantusDB==0.7.0b3";
pub const URI_ENV: &str = "UNIQWATCH_TEST_MONGODB_URI";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port this test holds bound but never listens on, so a
/// connection to it is refused for as long as the value lives. Unlike a
/// port found free and then let go, no other process can take it meanwhile.
pub struct ClosedPort {
    /// Held only to keep the port bound.
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl ClosedPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket can be made");
        socket
            .bind("127.0.0.1:0".parse().expect("a literal address"))
            .expect("binding port 0 on loopback");
        let port = socket
            .local_addr()
            .expect("a bound socket has an address")
            .port();
        ClosedPort {
            _socket: socket,
            port,
        }
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// The `secantusd-py` command, installing SecantusDB into `.venv` when missing.
pub fn secantusd() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let venv = repo_root().join(".venv");
        let bin = venv.join("bin/secantusd-py");
        if bin.exists() {
            return bin;
        }
        // One installer at a time across test binaries.
        let lock = repo_root().join(".venv.lock");
        let _guard = FileLock::acquire(&lock);
        if !bin.exists() {
            eprintln!("installing {SECANTUS_VERSION} into {}", venv.display());
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .map(|s| s.success());
            assert!(
                matches!(ok, Ok(true)),
                "python3 -m venv failed: is python3 (with venv) installed?"
            );
            let ok = Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", SECANTUS_VERSION])
                .status()
                .map(|s| s.success());
            assert!(
                matches!(ok, Ok(true)),
                "pip install {SECANTUS_VERSION} failed"
            );
        }
        bin
    })
    .clone()
}

/// A crude cross-process lock: create a file exclusively, remove it on drop.
struct FileLock(PathBuf);
impl FileLock {
    fn acquire(path: &Path) -> Self {
        let start = Instant::now();
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(_) => return FileLock(path.to_path_buf()),
                Err(_) if start.elapsed() < Duration::from_secs(300) => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!(
                    "cannot take {}: {e} (remove it if no test is running)",
                    path.display()
                ),
            }
        }
    }
}
impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A child process that ends with its test: when dropped, and when the test
/// process is gone, even after a panic or a kill.
///
/// The program runs under a watchdog shell that polls the test process and
/// ends the program once it is gone; dropping the handle ends the shell,
/// which ends the program first.
pub struct Process {
    child: Child,
    /// Where its output goes, read by [`Process::wait_for_line`].
    log: Option<PathBuf>,
}

impl Process {
    /// Starts `program` with `args`. Its stdout and stderr go to `log`
    /// (created or truncated) when given, nowhere otherwise.
    pub fn start<S: AsRef<OsStr>>(program: &Path, args: &[S], log: Option<&Path>) -> Self {
        let script = r#"parent=$1; shift; "$@" & child=$!
trap 'kill $child 2>/dev/null; wait $child; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
kill $child 2>/dev/null; wait $child"#;
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
                let copy = file.try_clone().expect("a log file handle can be cloned");
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Process {
            child,
            log: log.map(Path::to_path_buf),
        }
    }

    /// True while the program (or rather its watchdog) still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The first value `find` draws from a line of the program's log, such
    /// as the port it reports having bound. Fails when the program exits
    /// first or `limit` passes, showing the log.
    pub fn wait_for_line<T>(
        &mut self,
        what: &str,
        limit: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> T {
        let log = self
            .log
            .clone()
            .expect("wait_for_line needs a process started with a log file");
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(found) = text.lines().find_map(&find) {
                return found;
            }
            assert!(
                self.running(),
                "{} exited before its log showed {what}; its log:\n{text}",
                log.display()
            );
            assert!(
                start.elapsed() < limit,
                "{} did not show {what} within {limit:?}; its log:\n{text}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A SecantusDB process, killed when dropped (or when the test process exits).
pub struct Server {
    pub port: u16,
    process: Process,
}

impl Server {
    /// Starts a server on a port of its choosing with in-memory storage.
    pub fn start() -> Self {
        Self::start_with(&["--storage-path", ":memory:"], 0)
    }

    /// Starts a server with extra arguments on `port`, or on a port it
    /// chooses when `port` is 0, and waits until it listens. (A nonzero port
    /// is for restarting a server on the port it chose before.)
    pub fn start_with(args: &[&str], port: u16) -> Self {
        let port_text = port.to_string();
        // INFO is the level of the one line saying where it listens; the
        // server logs nothing else at INFO in normal operation.
        let mut all = vec![
            "--host",
            "127.0.0.1",
            "--port",
            &port_text,
            "--log-level",
            "INFO",
        ];
        all.extend_from_slice(args);
        let log_dir = tempfile::tempdir().expect("a scratch directory can be made");
        let log = log_dir.path().join("secantusd.log");
        let mut process = Process::start(&secantusd(), &all, Some(&log));
        // Logged once the socket listens and the accept loop runs.
        let port = process.wait_for_line(
            "secantus listening on <address>",
            Duration::from_secs(60),
            secantus_listening_port,
        );
        // The log was only for the port (it used to go nowhere); the shared
        // server is never dropped, so its directory goes now.
        drop(log_dir);
        Server { port, process }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    pub fn stop(self) {
        drop(self.process);
    }
}

/// The port of SecantusDB's `secantus listening on HOST:PORT` log line.
pub fn secantus_listening_port(line: &str) -> Option<u16> {
    let (_, address) = line.split_once("secantus listening on ")?;
    address.trim().rsplit_once(':')?.1.parse().ok()
}

/// The address of Prometheus' or Alertmanager's `msg="Listening on"
/// address=HOST:PORT` log line (exporter-toolkit), which names the port
/// bound when the flag asked for port 0.
pub fn exporter_listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(r#"msg="Listening on""#)?;
    let (_, address) = rest.split_once("address=")?;
    address.split_whitespace().next()?.parse().ok()
}

/// The address in uniqwatch's start-up line (`url=http://ADDR/` in the
/// human format, `"url":"http://ADDR/"` in JSON, `https` with TLS): where
/// `[web] listen` bound, port 0 included.
pub fn daemon_listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line
        .split_once("url=http://")
        .or_else(|| line.split_once("url=https://"))
        .or_else(|| line.split_once(r#""url":"http://"#))
        .or_else(|| line.split_once(r#""url":"https://"#))?;
    rest.split('/').next()?.parse().ok()
}

/// The stderr of a `uniqwatch run` child (started with stderr piped and a
/// log level showing INFO), read on a thread: the address the daemon
/// reports having bound, and every line it wrote.
pub struct DaemonOutput {
    pub addr: SocketAddr,
    lines: std::thread::JoinHandle<Vec<String>>,
}

impl DaemonOutput {
    /// Waits until the daemon reports its address; fails when its stderr
    /// ends first (it exited) or after `limit`.
    pub fn watch(child: &mut Child, limit: Duration) -> Self {
        let stderr: ChildStderr = child
            .stderr
            .take()
            .expect("the daemon is started with stderr piped");
        let (tx, rx) = mpsc::channel();
        let lines = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = daemon_listening_address(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                lines.push(line);
            }
            lines
        });
        match rx.recv_timeout(limit) {
            Ok(addr) => DaemonOutput { addr, lines },
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the daemon's stderr ended before it reported its address:\n{}",
                lines.join().unwrap_or_default().join("\n")
            ),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the daemon did not report its address within {limit:?}")
            }
        }
    }

    /// Every line the daemon wrote to stderr, once it has exited.
    pub fn lines(self) -> Vec<String> {
        self.lines.join().expect("the stderr reader does not panic")
    }
}

/// True when running under CI: `CI` is set to anything but `false` or `0`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Reports that `test` is skipped because of `reason` with a `SKIP:` line
/// that shows even when the test passes; under CI, where scripts/setup.sh
/// installs every tool, fails instead. A test calls it, then returns.
pub fn skip(test: &str, reason: &str) {
    assert!(!in_ci(), "{test}: {reason} (CI is set: nothing may be skipped)");
    // Straight to the process's stderr: libtest captures eprintln! of a passing test.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {test}: {reason}");
}

/// The URI of the server shared by every test of this binary.
pub fn shared_uri() -> String {
    static SHARED: OnceLock<String> = OnceLock::new();
    static SERVER: OnceLock<Mutex<Server>> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var(URI_ENV) {
            Ok(uri) if !uri.is_empty() => uri,
            _ => {
                let server = SERVER.get_or_init(|| Mutex::new(Server::start()));
                server.lock().unwrap().uri()
            }
        })
        .clone()
}

/// A database name no other test uses.
pub fn unique_db(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "uw_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub async fn client(uri: &str) -> Client {
    Client::with_uri_str(uri).await.expect("client")
}

/// Inserts `docs` into `db.coll` (creating it).
pub async fn seed(uri: &str, db: &str, coll: &str, docs: Vec<Document>) {
    let c = client(uri).await;
    let coll = c.database(db).collection::<Document>(coll);
    if !docs.is_empty() {
        coll.insert_many(docs).await.expect("insert");
    }
}

/// Runs a database command on `db`.
pub async fn command(uri: &str, db: &str, cmd: Document) -> Document {
    client(uri)
        .await
        .database(db)
        .run_command(cmd)
        .await
        .expect("command")
}

/// A config file text for one target on `uri`.
pub fn target_toml(
    uri: &str,
    name: &str,
    db: &str,
    coll: &str,
    key: &str,
    sparse: bool,
    schedule: &str,
) -> String {
    format!(
        r#"[mongodb]
uri = "{uri}"
query_timeout = "5s"
connect_timeout = "1s"

[web]
listen = "127.0.0.1:0"
shutdown_grace = "5s"

[state]
dir = "{state}"

[[target]]
name = "{name}"
database = "{db}"
collection = "{coll}"
key = "{key}"
sparse = {sparse}
schedule = "{schedule}"
"#,
        state = scratch_state_dir().display()
    )
}

/// A state directory of its own under the system temp dir, so tests never
/// write to `/var/lib/uniqwatch` nor share a history store.
pub fn scratch_state_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique_db("state"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `cond` every 50ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the proxy treats traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProxyMode {
    /// Forward everything.
    Pass,
    /// Drop every connection and refuse new ones: the database is gone.
    Down,
    /// Forward, but hold each server reply this long: a slow database.
    Slow(Duration),
}

/// A TCP proxy in front of a MongoDB server, switchable at run time.
pub struct Proxy {
    pub port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    /// Bumped on every switch to Down, so open connections notice and close.
    epoch: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(ProxyMode::Pass));
        let epoch = Arc::new(AtomicU64::new(0));
        let (m, e) = (mode.clone(), epoch.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let current = *m.lock().unwrap();
                if current == ProxyMode::Down {
                    drop(inbound);
                    continue;
                }
                let (m, e) = (m.clone(), e.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    pipe(inbound, outbound, m, e).await;
                });
            }
        });
        Proxy {
            port,
            mode,
            epoch,
            task,
        }
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
        if mode == ProxyMode::Down {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    inbound: TcpStream,
    outbound: TcpStream,
    mode: Arc<Mutex<ProxyMode>>,
    epoch: Arc<AtomicU64>,
) {
    let start_epoch = epoch.load(Ordering::SeqCst);
    let (mut ci, mut co) = inbound.into_split();
    let (mut si, mut so) = outbound.into_split();
    let e1 = epoch.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match ci.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if e1.load(Ordering::SeqCst) != start_epoch || so.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match si.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let current = *mode.lock().unwrap();
            if let ProxyMode::Slow(d) = current {
                tokio::time::sleep(d).await;
            }
            if epoch.load(Ordering::SeqCst) != start_epoch || co.write_all(&buf[..n]).await.is_err()
            {
                return;
            }
        }
    };
    // Whichever side ends first ends the connection.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Host and port of a `mongodb://host:port/...` URI (first host only).
pub fn uri_addr(uri: &str) -> SocketAddr {
    let rest = uri.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = rest.split(['/', '?', ',']).next().unwrap();
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:27017")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host.replace("localhost", "127.0.0.1"))
        .unwrap()
        .next()
        .unwrap()
}

/// A dashboard's query variables of the form `label_values(selector, label)`,
/// as (variable name, selector, label); `Err` describes a query variable of
/// another form.
pub fn label_values_variables(dashboard: &serde_json::Value) -> Vec<Result<(String, String, String), String>> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|variable| variable["type"] == "query")
        .map(|variable| {
            let name = variable["name"].as_str().unwrap_or_default().to_string();
            let query = variable["query"]["query"]
                .as_str()
                .or_else(|| variable["query"].as_str())
                .unwrap_or_default();
            query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .and_then(|q| q.rsplit_once(','))
                .map(|(selector, label)| (name.clone(), selector.to_string(), label.trim().to_string()))
                .ok_or_else(|| format!("variable {name}: not label_values(…): {query}"))
        })
        .collect()
}
