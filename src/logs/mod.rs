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
//! - [`follower`] reads one file's complete lines from an offset, across
//!   truncation, with a bounded buffer.
//! - [`checkpoint`] saves offsets and totals together, atomically.
//! - `source` follows one `[[logs]]` source's files from poll to poll:
//!   patterns expanded again each time (so new files are picked up),
//!   renames, deletions and truncations noticed, appended lines read.
//! - This module runs the loop: it polls each source every `poll_interval`
//!   on tokio's blocking pool, then commits.
//!
//! Exactly once: what the follower reads goes into a pending tally; a commit
//! writes the new offsets and the totals including that tally in one
//! checkpoint, and only once that is on disk are the Prometheus counters
//! moved, the logged notices emitted and a fresh [`LogTotals`] sent. A crash
//! before the save reads those lines again from the old offsets; a crash
//! after it resumes from the new ones with the new totals. File I/O runs on
//! tokio's blocking pool, so it never holds up the checks or `/metrics`.

pub mod checkpoint;
pub mod follower;
pub mod matcher;
mod source;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{error, info};

use crate::config::LogSourceConfig;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use checkpoint::{Checkpoint, CheckpointError, SourceCheckpoint};
use matcher::MatcherError;
use source::Source;

pub use source::{MAX_ERROR_LABEL_PAIRS, RELEASE_AFTER_QUIET};

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
}

/// Duplicate-key errors for one (namespace, index) pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorTotal {
    pub namespace: String,
    pub index: String,
    pub count: u64,
}

/// A problem that stops the tailer from starting.
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
    #[error("the log tailer stopped unexpectedly: {0}")]
    Task(String),
}

/// Tails every source until `shutdown`, then writes a final checkpoint.
///
/// Loads the checkpoint from `state_dir` (created if missing), moves the
/// counters in `metrics` to the persisted totals and sends them on `totals`,
/// then polls each source every `poll_interval` and sends a fresh snapshot
/// after every checkpoint it commits. Returns an error only when it cannot
/// start (the state directory cannot be created, the checkpoint cannot be
/// read, a source's matcher cannot be built) or a pass panicked. A corrupt
/// checkpoint is set aside and counted, and the tailer starts afresh. With
/// no sources it just waits for `shutdown`, without touching `state_dir`.
pub async fn run(
    sources: Vec<LogSourceConfig>,
    state_dir: PathBuf,
    metrics: Metrics,
    totals: watch::Sender<LogTotals>,
    shutdown: Shutdown,
) -> Result<(), LogsError> {
    if sources.is_empty() {
        shutdown.wait().await;
        return Ok(());
    }
    let task_err = |e: tokio::task::JoinError| LogsError::Task(e.to_string());
    let mut tailer =
        tokio::task::spawn_blocking(move || Tailer::start(sources, state_dir, metrics, totals))
            .await
            .map_err(task_err)??;
    loop {
        let wait = tailer.next_wait(Instant::now());
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        tailer = tokio::task::spawn_blocking(move || {
            tailer.pass(Instant::now());
            tailer
        })
        .await
        .map_err(task_err)?;
    }
    tokio::task::spawn_blocking(move || tailer.commit())
        .await
        .map_err(task_err)?;
    Ok(())
}

/// All sources, the shared read buffer, and what was last saved.
struct Tailer {
    /// `[state] dir`, holding the checkpoint.
    state_dir: PathBuf,
    /// One per `[[logs]]`, in config order.
    sources: Vec<Source>,
    /// Where committed counts and gauges go.
    metrics: Metrics,
    /// Where committed totals are published for the history store.
    totals: watch::Sender<LogTotals>,
    /// The one read buffer, as long as the largest `max_line_bytes + 1`:
    /// sources are read one after the other, so one is enough.
    buf: Vec<u8>,
    /// Generation of the last saved checkpoint.
    generation: u64,
    /// What the last successful save held, to skip saving when nothing changed.
    saved: Option<BTreeMap<String, SourceCheckpoint>>,
    /// Whether the last save failed, to log the failure and the recovery once.
    save_failing: bool,
}

impl Tailer {
    /// Loads the checkpoint, builds the sources and publishes the persisted totals.
    fn start(
        configs: Vec<LogSourceConfig>,
        state_dir: PathBuf,
        metrics: Metrics,
        totals: watch::Sender<LogTotals>,
    ) -> Result<Self, LogsError> {
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
                &metrics,
                "load",
                true,
                "cannot load the log checkpoint; not starting, so its totals are not overwritten",
                e,
            );
        })?;
        if let Some((aside, problem)) = &loaded.set_aside {
            let problem = format!("{problem} (set aside as {})", aside.display());
            checkpoint_failed(
                &metrics,
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
        for config in configs {
            let previous = saved.sources.remove(&config.name);
            let name = config.name.clone();
            let source = Source::new(config, previous, now)
                .map_err(|error| LogsError::Source { name, error })?;
            sources.push(source);
        }
        let buf_len = sources
            .iter()
            .map(|s| s.config.max_line_bytes + 1)
            .max()
            .unwrap_or(1);
        let tailer = Tailer {
            state_dir,
            metrics,
            totals,
            buf: vec![0; buf_len],
            generation: saved.generation,
            saved: None,
            save_failing: false,
            sources,
        };
        for source in &tailer.sources {
            source.resume_metrics(&tailer.metrics);
        }
        tailer.totals.send_replace(tailer.log_totals());
        Ok(tailer)
    }

    /// How long to sleep before the next pass.
    fn next_wait(&self, now: Instant) -> Duration {
        if self.sources.iter().any(|s| s.more) {
            return Duration::ZERO;
        }
        self.sources
            .iter()
            .map(|s| s.next_due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_secs(1))
    }

    /// Polls every source that is due, then commits.
    fn pass(&mut self, now: Instant) {
        for source in &mut self.sources {
            if source.more || source.next_due <= now {
                let buf = &mut self.buf[..source.config.max_line_bytes + 1];
                source.poll(buf);
                source.publish_gauges(&self.metrics);
                source.next_due = now + source.config.poll_interval;
            }
        }
        self.commit();
    }

    /// Saves offsets and totals if anything changed; once saved, moves the
    /// counters, emits the notices and publishes the totals. A failed save
    /// keeps everything pending for the next try.
    fn commit(&mut self) {
        let next: BTreeMap<String, SourceCheckpoint> = self
            .sources
            .iter()
            .map(|s| (s.config.name.clone(), s.to_checkpoint()))
            .collect();
        if self.saved.as_ref() == Some(&next) {
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
                &self.metrics,
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
        for source in &mut self.sources {
            let mut committed = checkpoint.sources[&source.config.name].clone();
            committed.files.clear();
            source.publish(committed, &self.metrics);
        }
        self.saved = Some(checkpoint.sources);
        self.totals.send_replace(self.log_totals());
    }

    /// The committed totals of every source.
    fn log_totals(&self) -> LogTotals {
        LogTotals {
            sources: self
                .sources
                .iter()
                .map(|s| (s.config.name.clone(), s.committed.totals.clone()))
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
