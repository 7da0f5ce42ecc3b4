//! `uniqwatch run`: wires the scheduler, the checks and the HTTP server
//! together and keeps them going until shutdown.
//!
//! [`run`] takes an already bound listener and the shutdown signal as a
//! future, so tests start it on port 0 and stop it when they like. Start-up
//! fails only for what an operator must fix (the schedule cannot be set up,
//! or the state dir exists but cannot be locked: see [`StateLock`]);
//! MongoDB being down is a metric and a log line, never a start-up failure.
//! A state dir that cannot be created is not fatal either: the daemon runs
//! unlocked, logs it, and `/readyz` answers 503 through the history's state.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Read as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::FutureExt as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::audit;
use crate::checks;
use crate::config::Config;
use crate::redact::redact_uri;
use crate::http::{self, AppState};
use crate::logs::{self, LogTotals};
use crate::metrics::Metrics;
use crate::mongo::Mongo;
use crate::scheduler::Scheduler;
use crate::shutdown;
use crate::state::{Component, Readiness, State};
use crate::store;
use crate::websec::{self, WebSecurity};

/// Runs the daemon until `stop` resolves, then shuts down gracefully.
pub async fn run(config: Config, listener: TcpListener, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    // An invalid web config stops start-up (exit 2), naming the field.
    let security = match &config.web.config_file {
        Some(path) => Some(Arc::new(WebSecurity::load(path, &metrics)?)),
        None => None,
    };
    for t in &config.targets {
        checks::init_metrics(t, &metrics);
    }
    let state = Arc::new(State::new(&config.targets));
    let mongo = Arc::new(Mongo::new(config.mongodb.clone()));
    let (trigger, shutdown) = shutdown::channel();

    // Log totals flow from the tailer to the history writer and the landing page.
    let (totals_tx, totals_rx) = watch::channel(LogTotals::default());

    let addr = listener.local_addr().context("listener has no local address")?;
    let app = http::router(AppState {
        metrics: metrics.clone(),
        readiness: Arc::new(readiness(&config, &state, &metrics)),
        state: Arc::clone(&state),
        log_sources: config.logs.iter().map(|s| s.name.clone()).collect(),
        log_totals: totals_rx.clone(),
    });
    let app = match &security {
        Some(security) => websec::protect(app, Arc::clone(security)),
        None => app,
    };
    let scheme = if security.as_ref().is_some_and(|s| s.tls()) { "https" } else { "http" };
    let http_shutdown = shutdown.clone();
    let evicted = metrics.http_connections_evicted_total.clone();
    let server = tokio::spawn(http::serve(listener, app, http::ServeLimits::default(), evicted, security, http_shutdown));
    tracing::info!(
        url = %format!("{scheme}://{addr}/"),
        mongodb = %redact_uri(&config.mongodb.uri),
        targets = config.targets.len(),
        "uniqwatch {} listening",
        env!("CARGO_PKG_VERSION")
    );

    let (history_tx, history_writer) = match open_history(&config).await {
        Ok(Ok(store)) => {
            let (tx, rx) = mpsc::channel(HISTORY_QUEUE);
            let writer = store::spawn_writer(store, metrics.clone(), config.state.retention, rx, totals_rx, shutdown.clone());
            (Some(tx), Some(writer))
        }
        Ok(Err(e)) => {
            store::record_open_failure(&metrics, &e);
            (None, None)
        }
        // The payload is dropped unread: it may echo configuration values.
        Err(_panicked) => {
            metrics.history_write_failures_total.with_label_values(&["other"]).inc();
            metrics.history_up.set(0);
            tracing::error!("opening the history store panicked; running without history");
            (None, None)
        }
    };

    let tailer = (!config.logs.is_empty()).then(|| {
        // Readiness reads the tailer's health through `uniqwatch_log_tailer_up`,
        // which the tailer sets itself; the poll count in `TailerHealth` is for tests.
        let (health_tx, _) = watch::channel(logs::TailerHealth::default());
        let run = logs::run(
            config.logs.clone(),
            config.state.dir.clone(),
            metrics.clone(),
            totals_tx,
            health_tx,
            logs::Tuning::default(),
            shutdown.clone(),
        );
        let tailer_up = metrics.log_tailer_up.with_label_values::<&str>(&[]);
        tokio::spawn(async move {
            match AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(())) => {}
                // The error carries no panic message (see `LogsError::Task`).
                Ok(Err(e)) => {
                    tailer_up.set(0);
                    tracing::error!(error = %e, "log tailing stopped; the checks go on");
                }
                // The payload is not printed: it may echo configuration values.
                Err(_) => {
                    tailer_up.set(0);
                    tracing::error!("the log tailer panicked; log tailing stopped, the checks go on");
                }
            }
        })
    });

    let scheduler = Scheduler::start(Arc::clone(&state), Arc::clone(&mongo), metrics.clone(), history_tx).await?;
    if let Some(audit) = &config.audit {
        let (config, mongo, metrics) = (Arc::new(config.clone()), Arc::clone(&mongo), metrics.clone());
        scheduler
            .add_job("the monthly audit report", &audit.schedule, move || {
                let (config, mongo, metrics) = (Arc::clone(&config), Arc::clone(&mongo), metrics.clone());
                async move {
                    let job = audit::write_scheduled_report(&config, &mongo, &metrics);
                    // The payload is dropped unread: it may echo configuration values.
                    if AssertUnwindSafe(job).catch_unwind().await.is_err() {
                        tracing::error!("the monthly audit report job panicked; no report was written");
                    }
                }
            })
            .await?;
    }

    stop.await;
    tracing::info!(grace = ?config.web.shutdown_grace, "shutting down: no new runs; waiting for runs in flight");
    if !scheduler.stop(config.web.shutdown_grace).await {
        tracing::warn!("grace period over with runs still going; they are abandoned");
    }
    trigger.trigger();
    // The tailer saves its last checkpoint and publishes its last totals
    // before the history writer takes them, so both stop in that order.
    for (task, what) in [(tailer, "log tailer"), (history_writer, "history writer")] {
        if let Some(task) = task {
            if tokio::time::timeout(config.web.shutdown_grace, task).await.is_err() {
                tracing::warn!("{what} did not finish within the grace period");
            }
        }
    }
    mongo.shutdown(config.web.shutdown_grace).await;
    if server.await.is_err() {
        tracing::warn!("HTTP server task failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// What `/readyz` asks, each in turn: every target has finished a first
/// run, the history store is open and writing, and the log tailer (when
/// `[[logs]]` are configured) runs. A component of another module plugs in
/// here as one more closure.
fn readiness(config: &Config, state: &Arc<State>, metrics: &Metrics) -> Readiness {
    let mut components: Vec<Component> = Vec::new();
    let targets = Arc::clone(state);
    components.push(Box::new(move || targets.waiting_for_first_run()));
    let history = metrics.clone();
    components.push(Box::new(move || {
        (history.history_up.get() != 1)
            .then(|| "the history store is not open or its last write failed (uniqwatch_history_up 0; see uniqwatch_history_write_failures_total)".to_string())
    }));
    if !config.logs.is_empty() {
        let tailer = metrics.clone();
        components.push(Box::new(move || {
            (tailer.log_tailer_up.with_label_values::<&str>(&[]).get() != 1)
                .then(|| "the log tailer is not running (uniqwatch_log_tailer_up 0; see the log)".to_string())
        }));
    }
    Readiness::new(components)
}

/// Finished runs waiting for the history writer; a full queue drops (and counts) a run.
const HISTORY_QUEUE: usize = 1024;

/// Opens (creating or migrating) the history store under `[state] dir`, and
/// records as counted before history began whatever the log checkpoint holds
/// that the store has never seen (a new store beside an old checkpoint).
/// `Err` when the opening thread panicked.
async fn open_history(config: &Config) -> Result<Result<store::Store, store::StoreError>, tokio::task::JoinError> {
    let dir = config.state.dir.clone();
    let tails_logs = !config.logs.is_empty();
    tokio::task::spawn_blocking(move || {
        let mut store = store::Store::open(&store::history_path(&dir))?;
        if tails_logs {
            store.record_log_baseline(chrono::Utc::now(), &logs::checkpoint::peek_totals(&dir))?;
        }
        Ok(store)
    })
    .await
}

/// The stop signal of `uniqwatch run`: resolves on SIGTERM or SIGINT.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while the daemon starts is not
/// lost and cannot kill it. SIGHUP, whose default action ends the process,
/// is caught and logged: reloading the config is not supported yet.
pub fn signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        Ok(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => tracing::warn!("reload is not supported yet; SIGHUP ignored"),
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The advisory lock on `[state] dir`, held for the life of `uniqwatch run`.
///
/// Two daemons sharing a state dir would each count every log line and
/// write the same history and temp files. The first takes an exclusive
/// `flock` on the state dir itself (its own descriptor, opened read-only),
/// so removing or replacing any file inside cannot undo the lock; it then
/// records its pid in `<dir>/daemon.pid`, written to a new temporary name
/// and renamed into place, so a symlink planted there is replaced, never
/// followed. The pid file is only for people: the lock is the `flock`,
/// which the kernel releases when the process ends, however it ends.
///
/// A dir that exists but cannot be locked (taken by another daemon, not
/// readable by this user, a file system without `flock`) stops start-up
/// with [`StateLockError`]: running unlocked is how two daemons end up
/// sharing it. A dir that cannot even be created is different: nothing can
/// be written there by anyone, so the daemon runs, the history and the
/// tailer report the failure, and `/readyz` answers 503. `uniqwatch audit`
/// only reads and takes no lock.
#[derive(Debug)]
pub struct StateLock {
    /// The open state dir; the lock lasts as long as it stays open. `None`
    /// when the state dir could not be created.
    _dir: Option<File>,
}

/// The name, inside the state dir, of the file naming the lock's holder.
const PID_FILE: &str = "daemon.pid";

/// The pid file is a decimal number and a newline; anything longer is not ours.
const PID_FILE_LIMIT: u64 = 64;

/// Why `uniqwatch run` cannot take the state dir.
#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    /// Another process holds the lock.
    #[error("state dir {dir} is in use by another uniqwatch daemon ({holder}); two daemons must not share [state] dir: stop the other one or give this one a dir of its own")]
    InUse {
        dir: PathBuf,
        /// "pid N", or why the pid is not known.
        holder: String,
    },
    /// The dir exists but could not be opened or locked.
    #[error("cannot lock state dir {dir} ({what}: {reason}); refusing to run without the lock, since another daemon could share the dir: fix its ownership or permissions, or give [state] dir a local directory")]
    Unlockable {
        dir: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// Why it failed; in the message, not a `source`, so it is printed once.
        reason: std::io::Error,
    },
}

impl StateLock {
    /// Takes the lock on `dir`, creating the dir when missing.
    pub fn acquire(dir: &Path) -> Result<Self, StateLockError> {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create the state dir; running without the state dir lock");
            return Ok(StateLock { _dir: None });
        }
        let unlockable = |what, reason| StateLockError::Unlockable { dir: dir.to_path_buf(), what, reason };
        let handle = open_dir(dir).map_err(|e| unlockable("cannot open it", e))?;
        match fs4::FileExt::try_lock(&handle) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let holder = match read_pid(&dir.join(PID_FILE)) {
                    Ok(Some(pid)) => format!("pid {pid}"),
                    Ok(None) => "pid not yet recorded".to_string(),
                    Err(e) => format!("pid unreadable: {e}"),
                };
                return Err(StateLockError::InUse { dir: dir.to_path_buf(), holder });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(unlockable("flock failed", e)),
        }
        let pid = format!("{}\n", std::process::id());
        let temp = dir.join(format!(".{PID_FILE}.tmp"));
        if let Err(e) = crate::fsutil::replace_atomically(&dir.join(PID_FILE), &temp, pid.as_bytes()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot record the pid in the state dir; the lock holds anyway");
        }
        Ok(StateLock { _dir: Some(handle) })
    }
}

/// Opens `dir` read-only for locking; fails unless it is a directory.
fn open_dir(dir: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_DIRECTORY);
    }
    options.open(dir)
}

/// The pid recorded in `path`: `None` when there is no such file (the
/// holder has not written it yet) or it holds no pid. Never follows a
/// symlink, never blocks on a FIFO, and reads a bounded amount.
fn read_pid(path: &Path) -> std::io::Result<Option<u32>> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(PID_FILE_LIMIT).read_to_string(&mut text)?;
    Ok(text.trim().parse().ok())
}
