//! Following application and mongod log files for duplicate-key errors.
//!
//! The tailer publishes its committed totals (the ones saved with the file
//! offsets in the checkpoint) as a [`LogTotals`] snapshot, which the history
//! store records, so both always agree.
//!
//! The layout:
//!
//! - [`matcher`] decides what a line is (error with its namespace and index,
//!   recovery, events); pure, on bytes.
//! - [`durations`] reads a duration (and a status class) from the lines
//!   of a duration event, and holds the histograms they are counted in.
//! - [`follower`] reads one file's complete lines from an offset, across
//!   truncation, with a bounded buffer.
//! - [`checkpoint`] saves offsets and totals together, atomically; it owns
//!   its on-disk types, which the follower converts to and from.
//! - `pattern` expands one `paths` pattern, within bounds (symlink loops,
//!   depth, entries, time), so no pattern can spin.
//! - `discovery` decides which files a source follows from poll to poll:
//!   patterns expanded again each time (so new files are picked up),
//!   renames, deletions and truncations noticed, copytruncate copies found.
//! - `source` reads one source's files and keeps its accounts: the pending
//!   tally, what the checkpoint holds, the counters it moves.
//! - This module runs the loop: each source is polled every
//!   `poll_interval` on tokio's blocking pool, on a thread of its own (a slow
//!   source holds up no other), and each poll ends with a commit.
//!
//! Exactly once: what the follower reads goes into a pending tally; a commit
//! writes the new offsets and the totals including that tally in one
//! checkpoint, and only once that is on disk are the Prometheus counters
//! moved, the logged notices emitted and a fresh [`LogTotals`] sent. A crash
//! before the save reads those lines again from the old offsets; a crash
//! after it resumes from the new ones with the new totals. File I/O runs on
//! tokio's blocking pool, so it never holds up the checks or `/metrics`.

pub mod checkpoint;
mod discovery;
pub mod durations;
pub mod follower;
pub mod matcher;
pub mod pattern;
mod source;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info};

use crate::config::LogSourceConfig;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use checkpoint::{Checkpoint, CheckpointError, SourceCheckpoint};
use durations::EventDurations;
use matcher::MatcherError;
use source::Source;

pub use source::MAX_ERROR_LABEL_PAIRS;

/// The tailer's pacing, with the defaults the daemon runs with; tests
/// shorten them instead of sleeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// How long a rotated or deleted file must stay unchanged before it is
    /// released: long enough for a writer to reopen its log after a rotation.
    pub release_after_quiet: Duration,
    /// How long to wait before trying again to start (state directory or
    /// checkpoint unusable).
    pub start_retry: Duration,
    /// Bounds on expanding one pattern.
    pub patterns: pattern::Limits,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            release_after_quiet: Duration::from_secs(10),
            start_retry: Duration::from_secs(10),
            patterns: pattern::Limits::default(),
        }
    }
}

/// Whether the tailer works, for readiness: sent on a `watch` after every
/// start attempt and every poll's commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailerHealth {
    /// The tailer started: its state directory and checkpoint are usable and
    /// its sources built. False while it retries.
    pub started: bool,
    /// Why the last start attempt failed, while it retries.
    pub start_error: Option<String>,
    /// The last checkpoint save failed: counters stand still, the lag grows.
    pub save_failing: bool,
    /// When the checkpoint last held everything read (it was saved, or
    /// nothing new needed saving).
    pub last_successful_save: Option<SystemTime>,
    /// Source polls completed (each followed by its commit) since start-up:
    /// what to wait on before asserting that something did not happen.
    pub polls: u64,
}

impl TailerHealth {
    /// Whether the tailer is counting and saving what it counts.
    pub fn is_ready(&self) -> bool {
        self.started && !self.save_failing
    }
}

/// Cumulative counts per log source, as persisted in the checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTotals {
    /// Source name (`[[logs]] name`) → its totals.
    pub sources: BTreeMap<String, SourceTotals>,
}

/// Cumulative counts of one source since its first checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTotals {
    /// Duplicate-key errors, one entry per (namespace, index) label pair.
    pub duplicate_key_errors: Vec<ErrorTotal>,
    /// Lines saying a duplicate-key conflict was recovered.
    pub recoveries: u64,
    /// `[[logs.events]]` name → lines matched.
    pub events: BTreeMap<String, u64>,
    /// Complete lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Duration events' name → their histograms (see [`durations`]).
    /// Absent before checkpoint version 3.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub durations: BTreeMap<String, EventDurations>,
}

impl SourceTotals {
    /// Adds `other` into `self`; error entries stay sorted by labels.
    pub fn add(&mut self, other: &SourceTotals) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.recoveries += other.recoveries;
        for e in &other.duplicate_key_errors {
            match self
                .duplicate_key_errors
                .iter_mut()
                .find(|mine| mine.namespace == e.namespace && mine.index == e.index)
            {
                Some(mine) => mine.count += e.count,
                None => self.duplicate_key_errors.push(e.clone()),
            }
        }
        self.duplicate_key_errors
            .sort_by(|a, b| (&a.namespace, &a.index).cmp(&(&b.namespace, &b.index)));
        for (event, count) in &other.events {
            *self.events.entry(event.clone()).or_insert(0) += count;
        }
        for (event, d) in &other.durations {
            self.durations.entry(event.clone()).or_default().add(d);
        }
    }
}

/// Duplicate-key errors for one (namespace, index) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorTotal {
    pub namespace: String,
    pub index: String,
    pub count: u64,
}

/// A problem that stops the tailer from starting; it tries again every
/// [`Tuning::start_retry`] meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("log source {name:?}: {error}")]
    Source {
        name: String,
        #[source]
        error: MatcherError,
    },
    /// A poll's blocking task panicked or was cancelled. The panic's message
    /// is not kept: it may echo configuration values.
    #[error("the log tailer stopped unexpectedly: a poll {}", if *panicked { "panicked" } else { "was cancelled" })]
    Task { panicked: bool },
}

/// Tails every source until `shutdown`, then writes a final checkpoint.
///
/// Loads the checkpoint from `state_dir` (created if missing), moves the
/// counters in `metrics` to the persisted totals and sends them on `totals`,
/// then polls each source every `poll_interval` and sends a fresh snapshot
/// after every checkpoint it commits. `health` says whether it started and
/// saves, and counts polls. When it cannot start (the state directory cannot
/// be created, the checkpoint cannot be read, a source's matcher cannot be
/// built) it says so on `health` and in `uniqwatch_log_tailer_up`, logs it
/// once, and tries again every [`Tuning::start_retry`] until `shutdown`.
/// Returns an error only when a poll panicked. A corrupt checkpoint is set
/// aside and counted, and the tailer starts afresh. With no sources it just
/// waits for `shutdown`, without touching `state_dir`.
pub async fn run(
    sources: Vec<LogSourceConfig>,
    state_dir: PathBuf,
    metrics: Metrics,
    totals: watch::Sender<LogTotals>,
    health: watch::Sender<TailerHealth>,
    tuning: Tuning,
    shutdown: Shutdown,
) -> Result<(), LogsError> {
    if sources.is_empty() {
        health.send_modify(|h| h.started = true);
        shutdown.wait().await;
        return Ok(());
    }
    let task_err = |e: tokio::task::JoinError| LogsError::Task { panicked: e.is_panic() };
    let tuning = Arc::new(tuning);
    let stop = Arc::new(AtomicBool::new(false));
    let links = Links {
        metrics,
        totals,
        health,
    };
    let mut attempt = 0u64;
    let mut tailer = loop {
        let start = {
            let (sources, state_dir, links) = (sources.clone(), state_dir.clone(), links.clone());
            let (tuning, stop) = (Arc::clone(&tuning), Arc::clone(&stop));
            tokio::task::spawn_blocking(move || {
                Tailer::start(sources, state_dir, links, tuning, stop, attempt == 0)
            })
            .await
            .map_err(task_err)?
        };
        match start {
            Ok(tailer) => {
                if attempt > 0 {
                    info!("log tailer started after {attempt} failed attempt(s)");
                }
                break tailer;
            }
            Err(e) => {
                if attempt == 0 {
                    error!(error = %e, retry_every = ?tuning.start_retry, "log tailer cannot start; log counters are not moving; trying again");
                }
                links.metrics.log_tailer_up.with_label_values::<&str>(&[]).set(0);
                links.health.send_modify(|h| {
                    h.started = false;
                    h.start_error = Some(e.to_string());
                });
                attempt += 1;
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep(tuning.start_retry) => {}
                }
            }
        }
    };

    let mut polling: JoinSet<(usize, Source)> = JoinSet::new();
    loop {
        let now = Instant::now();
        for (i, slot) in tailer.sources.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|s| s.more || s.next_due <= now) {
                let mut source = slot.take().expect("checked just above");
                source.next_due = now + source.config.poll_interval;
                polling.spawn_blocking(move || {
                    source.poll();
                    (i, source)
                });
            }
        }
        let wait = tailer.next_wait(now);
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            Some(done) = polling.join_next() => {
                let (i, source) = done.map_err(task_err)?;
                tailer.sources[i] = Some(source);
                tailer = tokio::task::spawn_blocking(move || {
                    // Gauges first: a counter moved by the commit never shows
                    // before the files and lag it goes with.
                    tailer.publish_gauges();
                    tailer.commit();
                    tailer.polls += 1;
                    tailer.report();
                    tailer
                })
                .await
                .map_err(task_err)?;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Expansions in progress give up; reads finish their (bounded) step.
    stop.store(true, Ordering::Relaxed);
    while let Some(done) = polling.join_next().await {
        let (i, source) = done.map_err(task_err)?;
        tailer.sources[i] = Some(source);
    }
    tokio::task::spawn_blocking(move || {
        tailer.commit();
        tailer.report();
    })
    .await
    .map_err(task_err)?;
    Ok(())
}

/// Where the tailer reports: counters and gauges, committed totals, health.
#[derive(Clone)]
struct Links {
    metrics: Metrics,
    totals: watch::Sender<LogTotals>,
    health: watch::Sender<TailerHealth>,
}

/// All sources and what was last saved.
struct Tailer {
    /// `[state] dir`, holding the checkpoint.
    state_dir: PathBuf,
    /// One per `[[logs]]`, in config order; `None` while being polled.
    sources: Vec<Option<Source>>,
    /// Where committed counts, gauges, totals and health go.
    links: Links,
    /// Generation of the last saved checkpoint.
    generation: u64,
    /// Each source's entry as last saved (or loaded): what a commit writes
    /// for a source still being polled, whose pending counts are not in it.
    saved: BTreeMap<String, SourceCheckpoint>,
    /// Whether a save has succeeded since start-up (the first commit always
    /// writes: a dropped source or an older format is then rewritten).
    saved_once: bool,
    /// Whether the last save failed, to log the failure and the recovery once.
    save_failing: bool,
    /// When the checkpoint last held everything read.
    last_successful_save: Option<SystemTime>,
    /// Source polls completed, for [`TailerHealth::polls`].
    polls: u64,
}

impl Tailer {
    /// Loads the checkpoint, builds the sources and publishes the persisted
    /// totals. `log` is false on a retry, so a failure is logged once.
    fn start(
        configs: Vec<LogSourceConfig>,
        state_dir: PathBuf,
        links: Links,
        tuning: Arc<Tuning>,
        stop: Arc<AtomicBool>,
        log: bool,
    ) -> Result<Self, LogsError> {
        let metrics = &links.metrics;
        fs::create_dir_all(&state_dir).map_err(|source| LogsError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        for operation in ["load", "save"] {
            metrics
                .log_checkpoint_failures_total
                .with_label_values(&[operation]);
        }
        let loaded = checkpoint::load(&state_dir).inspect_err(|e| {
            checkpoint_failed(
                metrics,
                "load",
                log,
                "cannot load the log checkpoint; not starting, so its totals are not overwritten",
                e,
            );
        })?;
        if let Some((aside, problem)) = &loaded.set_aside {
            let problem = format!("{problem} (set aside as {})", aside.display());
            checkpoint_failed(
                metrics,
                "load",
                true,
                "log checkpoint is corrupt; starting afresh, start_at applies again",
                &problem,
            );
        }
        if loaded.from_temp {
            info!("log checkpoint resumed from its temp file (the last save was interrupted before its rename)");
        }
        let mut saved = loaded.checkpoint.unwrap_or_default();
        for name in saved.sources.keys() {
            if !configs.iter().any(|c| &c.name == name) {
                info!(source = %name, "log checkpoint has a source no longer configured; dropping its offsets and totals");
            }
        }
        let now = Instant::now();
        let mut sources = Vec::with_capacity(configs.len());
        let mut entries = BTreeMap::new();
        for config in configs {
            let previous = saved.sources.remove(&config.name);
            if let Some(previous) = &previous {
                entries.insert(config.name.clone(), previous.clone());
            }
            let name = config.name.clone();
            let source = Source::new(config, previous, Arc::clone(&tuning), Arc::clone(&stop), now)
                .map_err(|error| LogsError::Source { name, error })?;
            sources.push(Some(source));
        }
        let tailer = Tailer {
            state_dir,
            links,
            generation: saved.generation,
            saved: entries,
            saved_once: false,
            save_failing: false,
            last_successful_save: None,
            polls: 0,
            sources,
        };
        for source in tailer.sources.iter().flatten() {
            source.resume_metrics(&tailer.links.metrics);
        }
        tailer.links.metrics.log_tailer_up.with_label_values::<&str>(&[]).set(1);
        tailer.links.totals.send_replace(tailer.log_totals());
        tailer.links.health.send_replace(TailerHealth {
            started: true,
            ..TailerHealth::default()
        });
        Ok(tailer)
    }

    /// How long to sleep before the next poll is due (a finished poll wakes
    /// the loop earlier).
    fn next_wait(&self, now: Instant) -> Duration {
        let present = self.sources.iter().flatten();
        if present.clone().any(|s| s.more) {
            return Duration::ZERO;
        }
        present
            .map(|s| s.next_due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Saves offsets and totals if anything changed; once saved, moves the
    /// counters, emits the notices and publishes the totals. A failed save
    /// keeps everything pending for the next try. A source being polled is
    /// saved as it was last saved: its pending counts wait for its return.
    fn commit(&mut self) {
        let mut next = self.saved.clone();
        for source in self.sources.iter().flatten() {
            next.insert(source.config.name.clone(), source.to_checkpoint());
        }
        if self.saved_once && self.saved == next {
            self.last_successful_save = Some(SystemTime::now());
            return;
        }
        let checkpoint = Checkpoint {
            version: checkpoint::VERSION,
            generation: self.generation + 1,
            sources: next,
        };
        if let Err(e) = checkpoint::save(&self.state_dir, &checkpoint) {
            let first = !self.save_failing;
            checkpoint_failed(
                &self.links.metrics,
                "save",
                first,
                "cannot save the log checkpoint; log counters stand still until it can be saved",
                &e,
            );
            self.save_failing = true;
            return;
        }
        if self.save_failing {
            info!("log checkpoint saved again; log counters catch up");
            self.save_failing = false;
        }
        self.generation = checkpoint.generation;
        self.saved_once = true;
        self.last_successful_save = Some(SystemTime::now());
        for source in self.sources.iter_mut().flatten() {
            let mut committed = checkpoint.sources[&source.config.name].clone();
            committed.files.clear();
            source.publish(committed, &self.links.metrics);
        }
        self.saved = checkpoint.sources;
        self.links.totals.send_replace(self.log_totals());
    }

    /// Gauges of the sources at hand, `log_tailer_up`, the last good save,
    /// and the health (polls included), after a commit.
    fn report(&self) {
        self.publish_gauges();
        let metrics = &self.links.metrics;
        metrics
            .log_tailer_up
            .with_label_values::<&str>(&[])
            .set(i64::from(!self.save_failing));
        if let Some(at) = self.last_successful_save {
            let secs = at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            metrics
                .log_checkpoint_last_success_timestamp_seconds
                .with_label_values::<&str>(&[])
                .set(secs);
        }
        self.links.health.send_replace(TailerHealth {
            started: true,
            start_error: None,
            save_failing: self.save_failing,
            last_successful_save: self.last_successful_save,
            polls: self.polls,
        });
    }

    /// Gauges of the sources at hand.
    fn publish_gauges(&self) {
        for source in self.sources.iter().flatten() {
            source.publish_gauges(&self.links.metrics);
        }
    }

    /// The committed totals of every source (as last saved for one being polled).
    fn log_totals(&self) -> LogTotals {
        LogTotals {
            sources: self
                .saved
                .iter()
                .map(|(name, c)| (name.clone(), c.totals.clone()))
                .chain(
                    self.sources
                        .iter()
                        .flatten()
                        .map(|s| (s.config.name.clone(), s.committed.totals.clone())),
                )
                .collect(),
        }
    }
}

/// Counts a checkpoint failure and, when `log` (a save failing again is
/// counted but not logged again), logs it: the one place for both.
fn checkpoint_failed(
    metrics: &Metrics,
    operation: &str,
    log: bool,
    what: &str,
    error: &dyn std::fmt::Display,
) {
    metrics
        .log_checkpoint_failures_total
        .with_label_values(&[operation])
        .inc();
    if log {
        error!(operation, error = %error, "{what}");
    }
}
