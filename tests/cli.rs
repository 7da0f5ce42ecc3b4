//! The `uniqwatch` binary: exit codes, the JSON contract, config errors,
//! redaction, and SIGTERM.

mod common;

use std::path::Path;
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mongodb::bson::doc;

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

fn uniqwatch(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("UNIQWATCH_MONGODB_URI")
        .env_remove("UNIQWATCH_CONFIG")
        .output()
        .expect("run uniqwatch")
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("uniqwatch.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn healthy_db() -> String {
    let db = unique_db("cli_ok");
    let uri = shared_uri();
    seed(&uri, &db, "chats", vec![doc! {"participantsKey": "a_b"}, doc! {"participantsKey": "a_c"}]).await;
    command(
        &uri,
        &db,
        doc! {"createIndexes": "chats", "indexes": [{"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}]},
    )
    .await;
    db
}

#[tokio::test]
async fn check_exits_0_when_every_invariant_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = healthy_db().await;
    let cfg = write_config(dir.path(), &target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "0 */5 * * * *"));
    let out = uniqwatch(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK: every invariant holds"), "{}", stdout(&out));
}

/// Issue 9: the index healthy, the invariant behind the key broken: exit 1,
/// both canonical checks in the JSON contract and in the table.
#[tokio::test]
async fn check_exits_1_on_semantic_duplicates_behind_a_healthy_index() {
    let dir = tempfile::tempdir().unwrap();
    let db = unique_db("cli_canon");
    let uri = shared_uri();
    seed(
        &uri,
        &db,
        "chats",
        vec![
            doc! {"participants": ["a", "b"], "participantsKey": "a_b"},
            doc! {"participants": ["b", "a"]},
            doc! {"participants": ["d", "c"], "participantsKey": "d_c"},
        ],
    )
    .await;
    command(
        &uri,
        &db,
        doc! {"createIndexes": "chats", "indexes": [{"key": {"participantsKey": 1}, "name": "participantsKey_1", "unique": true, "sparse": true}]},
    )
    .await;
    let mut text = target_toml(&uri, "chats", &db, "chats", "participantsKey", true, "0 */5 * * * *");
    text.push_str("[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\n");
    let cfg = write_config(dir.path(), &text);
    let out = uniqwatch(&["check", "--config", &cfg, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    let t = &v["targets"][0];
    assert_eq!(t["index"]["present"], true);
    assert_eq!(t["duplicates"]["keys"], 0);
    assert_eq!(t["canonical_duplicates"]["keys"], 1);
    assert_eq!(t["canonical_duplicates"]["sample"][0]["canonical"], "a_b");
    assert_eq!(t["key_consistency"]["mismatch"], 1);
    assert_eq!(t["key_consistency"]["derivable"], 1);
    assert_eq!(t["key_consistency"]["underivable"], 0);
    assert_eq!(t["canonical"]["preset"], "sorted_join");

    let out = uniqwatch(&["check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let table = stdout(&out);
    assert!(table.contains("key_consistency") && table.contains("1 mismatch, 1 derivable, 0 underivable"), "{table}");
    assert!(table.contains("canonical_duplicates") && table.contains("\"a_b\" held by 2 documents"), "{table}");
    assert!(table.contains("mismatch") && table.contains("stored \"d_c\", canonical \"c_d\""), "{table}");
}

#[tokio::test]
async fn check_exits_1_on_duplicates_and_prints_the_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = unique_db("cli_dup");
    let uri = shared_uri();
    seed(
        &uri,
        &db,
        "chats",
        vec![
            doc! {"participantsKey": "a_b"},
            doc! {"participantsKey": "a_b"},
            doc! {"participantsKey": "c_d"},
            doc! {"other": 1},
            doc! {"participantsKey": null},
            doc! {"participantsKey": ""},
        ],
    )
    .await;
    let cfg = write_config(dir.path(), &target_toml(&uri, "chats", &db, "chats", "participantsKey", true, "0 */5 * * * *"));
    let out = uniqwatch(&["check", "--config", &cfg, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is one JSON document");
    assert_eq!(v["ok"], false);
    let t = &v["targets"][0];
    for field in ["name", "database", "collection", "key", "index", "duplicates", "missing", "documents", "errors"] {
        assert!(t.get(field).is_some(), "missing {field} in {t}");
    }
    assert_eq!(t["name"], "chats");
    assert_eq!(t["database"], db.as_str());
    for field in ["present", "name", "unique", "sparse", "hidden", "lookup"] {
        assert!(t["index"].get(field).is_some(), "missing index.{field}");
    }
    assert_eq!(t["index"]["present"], false);
    assert_eq!(t["duplicates"]["keys"], 1);
    assert_eq!(t["duplicates"]["documents"], 1);
    assert_eq!(t["duplicates"]["method"], "aggregation");
    assert_eq!(t["duplicates"]["sample"][0]["key"], "a_b");
    assert_eq!(t["duplicates"]["sample"][0]["count"], 2);
    assert_eq!(t["duplicates"]["sample"][0]["ids"].as_array().unwrap().len(), 2);
    assert_eq!(t["missing"]["absent"], 1);
    assert_eq!(t["missing"]["null"], 1);
    assert_eq!(t["missing"]["empty"], 1);
    assert_eq!(t["documents"], 6);
    assert_eq!(t["errors"].as_array().unwrap().len(), 0);
}

#[test]
fn check_exits_2_when_mongodb_is_unreachable_and_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let closed = ClosedPort::new();
    let uri = format!("mongodb://watcher:pa55word@127.0.0.1:{}/", closed.port);
    let cfg = write_config(dir.path(), &target_toml(&uri, "chats", "app", "chats", "participantsKey", true, "0 */5 * * * *"));
    let out = uniqwatch(&["check", "--config", &cfg, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let errors = v["targets"][0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["check"], "index");
    assert_eq!(errors[0]["reason"], "unreachable");
    assert!(v["targets"][0]["index"].is_null());
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("pa55word"), "{all}");
}

#[test]
fn invalid_config_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[[target]]\nname = \"chats\"\ndatabase = \"app\"\ncollection = \"chats\"\nkey = \"participantsKey\"\nschedule = \"every five minutes\"\n",
    );
    for args in [vec!["check", "--config", &cfg], vec!["run", "--config", &cfg], vec!["config", "check", "--config", &cfg]] {
        let out = uniqwatch(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("uniqwatch.toml"), "{err}");
        assert!(err.contains("target[0].schedule"), "{err}");
        assert!(err.contains("expected a cron expression"), "{err}");
    }
}

#[test]
fn unknown_field_and_missing_file_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "[mongodb]\nurl = \"mongodb://x\"\n");
    let out = uniqwatch(&["config", "check", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown field `url`"), "{}", stderr(&out));

    let out = uniqwatch(&["check", "--config", "/nonexistent/uniqwatch.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read config file /nonexistent/uniqwatch.toml"), "{}", stderr(&out));
}

#[test]
fn config_check_prints_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[mongodb]\nuri = \"mongodb://filed:filepass@db:27017/\"\n[[target]]\nname = \"chats\"\ndatabase = \"app\"\ncollection = \"chats\"\nkey = \"participantsKey\"\n",
    );
    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("UNIQWATCH_CONFIG", &cfg)
        .env("UNIQWATCH_MONGODB_URI", "mongodb://envuser:envpass@db2:27017/?authSource=admin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("mongodb://envuser:***@db2:27017/?authSource=admin"), "{text}");
    assert!(!text.contains("envpass") && !text.contains("filepass"), "{text}");
    assert!(text.contains("query_timeout = \"30s\""), "{text}");
    assert!(text.contains("schedule = \"0 */5 * * * *\""), "{text}");
}

#[test]
fn help_texts_explain_exit_codes() {
    let out = uniqwatch(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("Exit codes"), "{text}");
    assert!(text.contains("UNIQWATCH_CONFIG"), "{text}");
}

#[test]
fn sigterm_stops_the_daemon_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let text = target_toml(&shared_uri(), "chats", "app", "chats", "participantsKey", true, "* * * * * *");
    let cfg = write_config(dir.path(), &text);
    let mut child = Command::new(BIN)
        .args(["run", "--config", &cfg, "--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = DaemonOutput::watch(&mut child, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "daemon did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let lines = output.lines();
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("\"stopped\"")), "{lines:?}");
}

/// The daemon binary started with `config`, its stderr lines arriving on a channel.
struct RunningDaemon {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line received so far, for failure messages.
    seen: Vec<String>,
}

impl RunningDaemon {
    fn start(cfg: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(["run", "--config", cfg, "--log-format", "json"])
            .env_remove("UNIQWATCH_MONGODB_URI")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        RunningDaemon { child, lines, seen: Vec::new() }
    }

    /// Waits for a stderr line containing `text`; fails after a generous bound.
    fn wait_for_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?} on stderr; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Waits for the start-up line and returns the address the daemon bound.
    fn wait_for_address(&mut self) -> std::net::SocketAddr {
        let line = self.wait_for_line("listening");
        daemon_listening_address(&line).unwrap_or_else(|| panic!("no address in the start-up line: {line}"))
    }

    /// Every stderr line, once the process has ended.
    fn rest_of_stderr(&mut self) -> String {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// The exit code, waiting a generous bound for it.
    fn exit_code(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "daemon did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config for the daemon on port 0 (it reports the port it bound), with
/// `state` as its state dir.
fn daemon_config(dir: &Path, state: &Path) -> String {
    let text = target_toml(&shared_uri(), "chats", "app", "chats", "participantsKey", true, "0 0 0 1 1 *");
    let text = text
        .lines()
        .map(|l| if l.starts_with("dir = ") { format!("dir = \"{}\"", state.display()) } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    write_config(dir, &text)
}

/// Two daemon configs under `dir` sharing one state dir: (state dir, first, second).
fn two_daemon_configs(dir: &Path) -> (std::path::PathBuf, String, String) {
    let state = dir.join("state");
    let configs: Vec<String> = ["first", "second"]
        .iter()
        .map(|name| {
            let own = dir.join(name);
            std::fs::create_dir_all(&own).unwrap();
            daemon_config(&own, &state)
        })
        .collect();
    let [first, second] = <[String; 2]>::try_from(configs).expect("two configs");
    (state, first, second)
}

/// Issue 13: SIGHUP killed the daemon (exit 129, no log line).
#[test]
fn sighup_is_logged_and_ignored_and_sigterm_still_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = daemon_config(dir.path(), &dir.path().join("state"));
    let mut daemon = RunningDaemon::start(&cfg);
    let addr = daemon.wait_for_address();
    daemon.signal("HUP");
    let line = daemon.wait_for_line("SIGHUP ignored");
    assert!(line.contains("reload is not supported yet"), "{line}");
    assert!(daemon.child.try_wait().unwrap().is_none(), "the daemon must survive SIGHUP");
    // Still serving after the signal.
    let answer = std::net::TcpStream::connect(addr).and_then(|mut s| {
        use std::io::{Read, Write};
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut body = String::new();
        s.read_to_string(&mut body)?;
        Ok(body)
    });
    assert!(answer.as_deref().unwrap_or_default().starts_with("HTTP/1.1 200"), "{answer:?}");
    daemon.signal("TERM");
    assert_eq!(daemon.exit_code(), Some(0));
}

/// Issue 13 item 7: two daemons on one state dir each counted every log
/// line and wrote the same files.
#[test]
fn a_second_daemon_on_the_same_state_dir_exits_2_naming_the_holder_and_audit_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (state, first_cfg, second_cfg) = two_daemon_configs(dir.path());
    let mut first = RunningDaemon::start(&first_cfg);
    first.wait_for_address();

    let mut second = RunningDaemon::start(&second_cfg);
    assert_eq!(second.exit_code(), Some(2), "the second daemon must not run");
    let err = second.rest_of_stderr();
    assert!(err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert!(err.contains(state.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read_to_string(state.join("daemon.pid")).unwrap().trim(), first.child.id().to_string());

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let out = uniqwatch(&["audit", "--config", &first_cfg, "--month", &month, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "the audit reads without the lock: {}", stderr(&out));

    first.signal("TERM");
    assert_eq!(first.exit_code(), Some(0));
    // The lock goes with the process: the dir can be used again.
    let mut again = RunningDaemon::start(&second_cfg);
    again.wait_for_address();
    again.signal("TERM");
    assert_eq!(again.exit_code(), Some(0));
}

/// Issue 13 item 7, review: removing the lock file while a daemon ran let
/// a second daemon create a new one, lock it and run beside the first.
#[test]
fn removing_every_file_in_the_state_dir_does_not_let_a_second_daemon_in() {
    let dir = tempfile::tempdir().unwrap();
    let (state, first_cfg, second_cfg) = two_daemon_configs(dir.path());
    let mut first = RunningDaemon::start(&first_cfg);
    first.wait_for_address();
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }

    let mut second = RunningDaemon::start(&second_cfg);
    assert_eq!(second.exit_code(), Some(2), "the second daemon must not run");
    let err = second.rest_of_stderr();
    assert!(err.contains("is in use by another uniqwatch daemon"), "{err}");
    assert!(err.contains(state.to_str().unwrap()), "{err}");
    first.signal("TERM");
    assert_eq!(first.exit_code(), Some(0));
}

/// Issue 13 item 7, review: a symlink planted as the lock file made the
/// daemon truncate the file it pointed to and write its pid there.
#[test]
fn a_symlink_in_the_state_dir_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    // Every name the lock has used, its pid file and that file's temporary name.
    for name in ["lock", "daemon.pid", ".daemon.pid.tmp"] {
        std::os::unix::fs::symlink(&victim, state.join(name)).unwrap();
    }
    let mut daemon = RunningDaemon::start(&daemon_config(dir.path(), &state));
    daemon.wait_for_address();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let pid_file = state.join("daemon.pid");
    assert!(!std::fs::symlink_metadata(&pid_file).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), daemon.child.id().to_string());
    daemon.signal("TERM");
    assert_eq!(daemon.exit_code(), Some(0));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn shipped_example_configs_are_valid() {
    let dir = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            let out = uniqwatch(&["config", "check", "--config", path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), stderr(&out));
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected the example configs in {}", dir.display());
}
