//! A small Chrome DevTools Protocol client for the browser tests: Debian's
//! `chromium`, headless, driven over `--remote-debugging-pipe` (requests on
//! fd 3, answers and events on fd 4, each a JSON text ended by a NUL byte),
//! so no websocket library is needed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one request may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The chromium binary, if the machine has one.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().ok()?;
        let path = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (!path.is_empty()).then(|| PathBuf::from(path))
    })
}

/// A headless chromium, killed when dropped.
pub struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    next_id: u64,
    /// Events received while waiting for answers, in order.
    pub events: Vec<Value>,
    /// Keeps the profile until the browser is gone.
    _profile: tempfile::TempDir,
}

/// One open page (a target with its flattened session).
pub struct Page {
    pub session: String,
}

impl Browser {
    /// Starts `chromium` headless with a fresh profile and nothing that
    /// reaches the network on its own.
    pub fn start(chromium: &Path) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut to_child = [0; 2];
        let mut from_child = [0; 2];
        // SAFETY: pipe2() fills the two arrays with new descriptors. They are
        // close-on-exec, so a browser started by another test at the same
        // time never holds this one's pipes open; dup2 clears the flag on 3 and 4.
        unsafe {
            assert_eq!(libc::pipe2(to_child.as_mut_ptr(), libc::O_CLOEXEC), 0);
            assert_eq!(libc::pipe2(from_child.as_mut_ptr(), libc::O_CLOEXEC), 0);
        }
        // The child's ends move above 3 and 4 first, so that dup2 onto 3 and
        // 4 never overwrites one with the other nor leaves close-on-exec set.
        // SAFETY: fcntl duplicates descriptors this function owns.
        let (child_reads, child_writes) = unsafe {
            let high = |fd| {
                let moved = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                assert!(moved >= 10);
                libc::close(fd);
                moved
            };
            (high(to_child[0]), high(from_child[1]))
        };
        let (we_write, we_read) = (to_child[1], from_child[0]);
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(profile.path().join("stderr.log")).unwrap());
        // SAFETY: only async-signal-safe calls (dup2, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(child_reads, 3) < 0 || libc::dup2(child_writes, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        // SAFETY: the descriptors were just made by pipe() and are owned here only.
        let (to_browser, reader) = unsafe {
            libc::close(child_reads);
            libc::close(child_writes);
            (File::from_raw_fd(we_write), File::from_raw_fd(we_read))
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            while matches!(reader.read_until(0, &mut buf), Ok(n) if n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser { child, to_browser, from_browser: rx, next_id: 0, events: Vec::new(), _profile: profile }
    }

    /// Sends `method` (to the page's session when given) and returns its
    /// result; an error answer fails the test.
    pub fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        if let Err(e) = self.to_browser.write_all(&bytes) {
            let log = std::fs::read_to_string(self._profile.path().join("stderr.log")).unwrap_or_default();
            panic!("chromium does not read its pipe ({e}); its stderr:\n{log}");
        }
        let start = Instant::now();
        loop {
            let left = TIMEOUT.checked_sub(start.elapsed()).unwrap_or_default();
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer from chromium to {method} ({e})"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Waits for the event `method` on `session`, keeping what comes before.
    pub fn wait_event(&mut self, session: &str, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method && e["sessionId"] == session) {
            return self.events.remove(i);
        }
        let start = Instant::now();
        loop {
            let left = TIMEOUT.checked_sub(start.elapsed()).unwrap_or_default();
            let v = self.from_browser.recv_timeout(left).unwrap_or_else(|e| panic!("no {method} from chromium ({e})"));
            if v["method"] == method && v["sessionId"] == session {
                return v;
            }
            self.events.push(v);
        }
    }

    /// A new page of `width`×`height` CSS pixels (a phone's when `mobile`),
    /// with console messages, exceptions and log entries reported.
    pub fn page(&mut self, width: u32, height: u32, mobile: bool) -> Page {
        let target = self.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached =
            self.call(None, "Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}));
        let session = attached["sessionId"].as_str().expect("a session id").to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(Some(&session), domain, json!({}));
        }
        self.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
        Page { session }
    }

    /// Opens `url` in `page` and waits for its load event.
    pub fn navigate(&mut self, page: &Page, url: &str) {
        let s = page.session.clone();
        let nav = self.call(Some(&s), "Page.navigate", json!({"url": url}));
        assert!(nav.get("errorText").is_none(), "navigating to {url}: {nav}");
        self.wait_event(&s, "Page.loadEventFired");
    }

    /// The value of a JavaScript expression evaluated in `page`.
    pub fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let r = self.call(
            Some(&page.session),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "evaluating the probe: {r}");
        r["result"]["value"].clone()
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, page: &Page) -> Vec<u8> {
        let r = self.call(
            Some(&page.session),
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        base64_decode(r["data"].as_str().expect("screenshot data"))
    }

    /// The page printed to PDF on A4, as a person printing it would get it
    /// (the print stylesheet, no background graphics).
    pub fn print_to_pdf(&mut self, page: &Page) -> Vec<u8> {
        let r = self.call(
            Some(&page.session),
            "Page.printToPDF",
            json!({"paperWidth": 8.27, "paperHeight": 11.69, "printBackground": false, "preferCSSPageSize": true}),
        );
        base64_decode(r["data"].as_str().expect("pdf data"))
    }

    /// Console errors and warnings, uncaught exceptions and error log
    /// entries (a failed request, a blocked resource) of `page` so far.
    pub fn problems(&mut self, page: &Page) -> Vec<String> {
        // A round trip, so every event sent before it has arrived.
        self.eval(page, "1");
        self.events
            .iter()
            .filter(|e| e["sessionId"] == page.session.as_str())
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => Some(format!("exception: {}", p["exceptionDetails"])),
                    "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "warning" | "assert")) => {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded" if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) => {
                        Some(format!("log {}: {} ({})", p["entry"]["level"], p["entry"]["text"], p["entry"]["url"]))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64, as CDP sends binary data.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        let len = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..=len]);
    }
    out
}
