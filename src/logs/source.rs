//! One `[[logs]]` source: its poll, and what it has counted since the last
//! commit.
//!
//! Each poll (see [`Source::poll`]) finds the files to follow (the
//! path-watching half lives in [`super::discovery`]), reads what was
//! appended into the pending tally, and releases drained files. Rotations,
//! truncations and long lines become [`Notice`]s, logged and counted only
//! when the commit that includes them is saved; [`super`] does the commits
//! and then calls [`Source::publish`], which moves the counters.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::time::Instant;
use tracing::{info, warn};

use super::checkpoint::SourceCheckpoint;
use super::durations::Histogram;
use super::follower::{FileId, Follower, Presence};
use super::matcher::{Matcher, MatcherError, Tally};
use super::pattern::Bound;
use super::{ErrorTotal, SourceTotals, Tuning};
use crate::config::{DurationParse, DurationSpec, LogSourceConfig};
use crate::metrics::Metrics;

/// Most bytes one file is read per pass, so a large backlog is committed in
/// steps and other files and sources get their turn.
const READ_BUDGET_PER_PASS: u64 = 64 * 1024 * 1024;

/// Most distinct `(namespace, index)` label pairs per source; further ones
/// are counted under `other`, so a garbled log cannot blow up cardinality.
pub const MAX_ERROR_LABEL_PAIRS: usize = 100;

/// Label value for error lines past [`MAX_ERROR_LABEL_PAIRS`].
const OTHER: &str = "other";

/// One `[[logs]]` source.
pub(super) struct Source {
    /// Its config; `name` is the `source` label.
    pub(super) config: LogSourceConfig,
    /// Its line classification.
    matcher: Matcher,
    /// Per event (config order): its duration spec, `None` for an event
    /// that only counts lines.
    durations: Vec<Option<DurationSpec>>,
    /// Its read buffer, `max_line_bytes + 1` long: each source is polled on
    /// its own blocking thread, so one slow source holds up no other.
    buf: Vec<u8>,
    /// Quiet period and pattern limits.
    pub(super) tuning: Arc<Tuning>,
    /// Set when the tailer stops: a pattern expansion in progress gives up.
    pub(super) stop: Arc<AtomicBool>,
    /// Followed files by identity, rotated ones being drained included.
    pub(super) files: BTreeMap<FileId, Follower>,
    /// Totals of the last commit (files left empty: they live in `files`).
    pub(super) committed: SourceCheckpoint,
    /// Counted since the last commit, not yet on disk nor in the metrics.
    pending: Tally,
    /// Rotations, truncations and long lines since the last commit: logged
    /// and counted when the commit that includes them succeeds.
    pub(super) notices: Vec<Notice>,
    /// Whether the checkpoint had no entry for this source: `start_at`
    /// applies to the files found by its first poll.
    pub(super) fresh: bool,
    /// Whether the first poll is still to come.
    pub(super) first_poll: bool,
    /// Files found by this poll, that no checkpoint holds yet: this poll
    /// does not read them, so its commit saves their identities first (see
    /// [`Source::poll`]). The source's other files are read as usual.
    pub(super) found_new_files: HashSet<FileId>,
    /// Per pattern, whether it matched at the last poll, to log changes once.
    pub(super) pattern_matched: Vec<Option<bool>>,
    /// Per pattern: its last listing failed, so the failure is logged once.
    pub(super) listing_failed: Vec<bool>,
    /// Per pattern: the bound that cut its last expansion short, so it is
    /// logged once per episode, and `log_patterns_cut` counts it.
    pub(super) pattern_cut: Vec<Option<Bound>>,
    /// Per pattern cut short by a bound: not expanded again before this
    /// instant, so a directory too large for the bounds does not take a
    /// core through every poll.
    pub(super) pattern_retry_at: Vec<Option<std::time::Instant>>,
    /// Files that could not be opened, to log each once.
    pub(super) unreadable: HashSet<PathBuf>,
    /// Whether the error labels overflowed [`MAX_ERROR_LABEL_PAIRS`] (logged once).
    labels_overflowed: bool,
    /// When the next poll is due.
    pub(super) next_due: Instant,
    /// A file hit its read budget: poll again without waiting.
    pub(super) more: bool,
}

/// Something that moves a counter and deserves a log line; emitted only once
/// the checkpoint that counts it is saved, so the two never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Notice {
    /// A followed file was renamed away from its path.
    Rotated { from: PathBuf, to: Option<PathBuf> },
    /// A followed file was found shorter, or with new first bytes.
    Truncated {
        path: PathBuf,
        size: u64,
        old_offset: u64,
        copy: Option<PathBuf>,
    },
    /// Lines longer than `max_line_bytes` were read from a file.
    LongLines { path: PathBuf, count: u64 },
}

impl Notice {
    /// Adds the notice to the persisted counts.
    fn apply(&self, counts: &mut SourceCheckpoint) {
        match self {
            Notice::Rotated { .. } => counts.rotations += 1,
            Notice::Truncated { .. } => counts.truncations += 1,
            Notice::LongLines { count, .. } => counts.long_lines += count,
        }
    }

    /// Logs the notice and moves its counter: the one place for both.
    fn emit(&self, source: &str, metrics: &Metrics) {
        match self {
            Notice::Rotated { from, to } => {
                info!(source, from = %from.display(), to = ?to.as_ref().map(|p| p.display().to_string()), "log file rotated away from its path; reading it to its end");
                metrics
                    .log_rotations_total
                    .with_label_values(&[source])
                    .inc();
            }
            Notice::Truncated {
                path,
                size,
                old_offset,
                copy,
            } => {
                match copy {
                    Some(copy) => {
                        warn!(source, path = %path.display(), size, old_offset, copy = %copy.display(), "log file truncated (copytruncate); reading its copy from where reading had got to, and the file again from byte 0")
                    }
                    None => {
                        warn!(source, path = %path.display(), size, old_offset, "log file truncated or rewritten; reading it again from byte 0 (lines written between the last read and the truncation, if any, were not seen)")
                    }
                }
                metrics
                    .log_truncations_total
                    .with_label_values(&[source])
                    .inc();
            }
            Notice::LongLines { path, count } => {
                warn!(source, path = %path.display(), count, "log lines longer than max_line_bytes; matched on their first max_line_bytes only");
                metrics
                    .log_long_lines_total
                    .with_label_values(&[source])
                    .inc_by(*count);
            }
        }
    }
}

impl Source {
    /// A source resuming from its checkpoint entry (`None`: a first start).
    pub(super) fn new(
        config: LogSourceConfig,
        previous: Option<SourceCheckpoint>,
        tuning: Arc<Tuning>,
        stop: Arc<AtomicBool>,
        now: Instant,
    ) -> Result<Self, MatcherError> {
        let matcher = Matcher::new(&config)?;
        let fresh = previous.is_none();
        let mut committed = previous.unwrap_or_default();
        let files = committed
            .files
            .drain(..)
            .map(|f| {
                let follower = Follower::from_checkpoint(&f);
                (follower.id, follower)
            })
            .collect();
        let durations: Vec<Option<DurationSpec>> = config.events.iter().map(|e| e.duration()).collect();
        for (event, spec) in config.events.iter().zip(&durations) {
            committed
                .totals
                .events
                .entry(event.name.clone())
                .or_insert(0);
            let Some(spec) = spec else { continue };
            let entry = committed.totals.durations.entry(event.name.clone()).or_default();
            // A checkpoint from before line counts were kept apart: they were the histograms' counts.
            if entry.lines_by_status_class.is_empty() {
                entry.lines_by_status_class = entry.by_status_class.iter().map(|(c, h)| (c.clone(), h.count)).collect();
            }
            if entry.bounds_nanos != spec.bounds_nanos {
                if !entry.bounds_nanos.is_empty() {
                    info!(source = %config.name, event = %event.name, "the event's buckets changed; its histogram starts again from zero (its line counts go on)");
                }
                entry.reset_buckets(&spec.bounds_nanos);
            }
            // Without a status capture there is one series: it exists from the
            // start (at 0), as plain counters do; status classes appear with
            // their first line.
            if !matches!(spec.parse, DurationParse::Regex { status: true, .. }) {
                entry.by_status_class.entry(String::new()).or_insert_with(|| Histogram {
                    buckets: vec![0; spec.bounds_nanos.len() + 1],
                    ..Histogram::default()
                });
            }
        }
        Ok(Source {
            pending: Tally::new(matcher.event_count()),
            matcher,
            durations,
            buf: vec![0; config.max_line_bytes + 1],
            tuning,
            stop,
            files,
            committed,
            notices: Vec::new(),
            fresh,
            first_poll: true,
            found_new_files: HashSet::new(),
            pattern_matched: vec![None; config.paths.len()],
            listing_failed: vec![false; config.paths.len()],
            pattern_cut: vec![None; config.paths.len()],
            pattern_retry_at: vec![None; config.paths.len()],
            unreadable: HashSet::new(),
            labels_overflowed: false,
            next_due: now,
            more: false,
            config,
        })
    }

    /// One poll: truncation checks, pattern expansion, renames and deletions,
    /// reading, and releasing drained files.
    pub(super) fn poll(&mut self) {
        self.more = false;
        self.check_open_files();
        self.mark_unlinked();
        let (seen, complete) = self.expand_patterns();
        // A listing that failed (out of descriptors, NFS trouble) or was cut
        // short by a bound proves nothing about files it did not list: no
        // renames are inferred from it.
        if complete {
            self.handle_unseen(&seen);
        }
        // New files are saved (identity, starting offset) before any of
        // their lines is read: a large first read may take long, and a file
        // renamed while the daemon is down can be found again only through
        // a checkpoint that knows its inode. They are read from the next
        // poll, which follows at once; the other files are read now, so new
        // files appearing at every poll never stop the reading of old ones.
        let new_files = std::mem::take(&mut self.found_new_files);
        self.more = !new_files.is_empty();
        let mut buf = std::mem::take(&mut self.buf);
        self.read_all(&mut buf, &new_files);
        self.release_drained(&mut buf);
        self.buf = buf;
        self.first_poll = false;
    }

    /// Reads every open file but those in `skip`, rotated and deleted ones
    /// first (their lines came before the new file's).
    fn read_all(&mut self, buf: &mut [u8], skip: &HashSet<FileId>) {
        let mut order: Vec<(bool, FileId)> = self
            .files
            .iter()
            .filter(|(id, f)| f.is_open() && !skip.contains(id))
            .map(|(id, f)| (f.presence == Presence::Current, *id))
            .collect();
        order.sort();
        for (_, id) in order {
            let follower = self.files.get_mut(&id).expect("id taken from the map");
            let mut tally = Tally::new(self.matcher.event_count());
            let outcome = follower.read(&self.matcher, buf, READ_BUDGET_PER_PASS, &mut tally);
            let path = follower.path.clone();
            match outcome {
                Ok(outcome) => {
                    self.more |= outcome.more;
                    if outcome.long_lines > 0 {
                        self.notices.push(Notice::LongLines {
                            path,
                            count: outcome.long_lines,
                        });
                    }
                }
                Err(e) => {
                    warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot read log file; will retry")
                }
            }
            // What was read before an error is consistent with the offset.
            self.absorb(tally);
        }
    }

    /// Releases rotated and deleted files quiet for [`Tuning::release_after_quiet`],
    /// counting an unterminated last line as their last line.
    fn release_drained(&mut self, buf: &mut [u8]) {
        if self.more {
            return;
        }
        let done: Vec<FileId> = self
            .files
            .iter()
            .filter(|(_, f)| {
                f.is_open()
                    && f.presence != Presence::Current
                    && f.is_quiet_for(self.tuning.release_after_quiet)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let mut follower = self.files.remove(&id).expect("id taken from the map");
            let mut tally = Tally::new(self.matcher.event_count());
            match follower.finish(&self.matcher, buf, &mut tally) {
                Ok(0) => {}
                Ok(count) => self.notices.push(Notice::LongLines {
                    path: follower.path.clone(),
                    count,
                }),
                Err(e) => {
                    // Not read to its end: kept, and tried again next poll.
                    warn!(source = %self.config.name, path = %follower.path.display(), error = %e, "cannot read the end of a rotated log file; keeping it");
                    self.files.insert(id, follower);
                    continue;
                }
            }
            self.absorb(tally);
            info!(source = %self.config.name, path = %follower.path.display(), "released rotated log file: read to its end and quiet");
        }
    }

    /// Adds a follower's tally to the pending one, folding error labels past
    /// [`MAX_ERROR_LABEL_PAIRS`] into `other`.
    fn absorb(&mut self, mut tally: Tally) {
        let errors = std::mem::take(&mut tally.errors);
        for (labels, count) in errors {
            let committed = &self.committed.totals.duplicate_key_errors;
            let known = self.pending.errors.contains_key(&labels)
                || committed
                    .iter()
                    .any(|e| e.namespace == labels.0 && e.index == labels.1);
            let distinct = committed.len()
                + self
                    .pending
                    .errors
                    .keys()
                    .filter(|(ns, ix)| {
                        !committed
                            .iter()
                            .any(|e| &e.namespace == ns && &e.index == ix)
                    })
                    .count();
            let labels = if known || distinct < MAX_ERROR_LABEL_PAIRS {
                labels
            } else {
                if !self.labels_overflowed {
                    warn!(source = %self.config.name, "more than {MAX_ERROR_LABEL_PAIRS} (namespace, index) pairs in error lines; counting further ones as \"{OTHER}\"");
                    self.labels_overflowed = true;
                }
                (OTHER.to_string(), OTHER.to_string())
            };
            *self.pending.errors.entry(labels).or_insert(0) += count;
        }
        self.pending.add(&tally);
    }

    /// What the pending tally adds to the totals.
    fn pending_totals(&self) -> SourceTotals {
        let p = &self.pending;
        SourceTotals {
            duplicate_key_errors: p
                .errors
                .iter()
                .map(|((namespace, index), count)| ErrorTotal {
                    namespace: namespace.clone(),
                    index: index.clone(),
                    count: *count,
                })
                .collect(),
            recoveries: p.recoveries,
            events: self
                .config
                .events
                .iter()
                .zip(&p.events)
                .map(|(event, count)| (event.name.clone(), *count))
                .collect(),
            lines: p.lines,
            bytes: p.bytes,
            durations: self
                .config
                .events
                .iter()
                .zip(&self.durations)
                .zip(&p.durations)
                .filter_map(|((event, spec), tally)| {
                    let spec = spec.as_ref()?;
                    Some((event.name.clone(), tally.to_totals(&spec.bounds_nanos)))
                })
                .collect(),
        }
    }

    /// What the checkpoint would hold for this source now: committed totals
    /// plus pending ones, and the files' current offsets.
    pub(super) fn to_checkpoint(&self) -> SourceCheckpoint {
        let mut next = self.committed.clone();
        next.totals.add(&self.pending_totals());
        for notice in &self.notices {
            notice.apply(&mut next);
        }
        next.files = self.files.values().map(Follower::checkpoint).collect();
        next
    }

    /// After a successful save: moves the counters by what was pending,
    /// emits the notices, and makes `committed` the saved state.
    pub(super) fn publish(&mut self, committed: SourceCheckpoint, metrics: &Metrics) {
        self.move_counters(&self.pending_totals(), metrics);
        self.pending = Tally::new(self.matcher.event_count());
        for notice in std::mem::take(&mut self.notices) {
            notice.emit(&self.config.name, metrics);
        }
        self.committed = committed;
        self.publish_histograms(metrics);
    }

    /// Sets this source's histograms to the committed totals (the saved
    /// ones, so they never run ahead of the checkpoint), configured events only.
    fn publish_histograms(&self, metrics: &Metrics) {
        let durations = &self.committed.totals.durations;
        let configured = self
            .config
            .events
            .iter()
            .zip(&self.durations)
            .filter(|(_, spec)| spec.is_some())
            .filter_map(|(e, _)| Some((e.name.clone(), durations.get(&e.name)?.clone())))
            .collect();
        metrics.log_event_duration_seconds.set(&self.config.name, configured);
    }

    /// At start-up: every counter of this source at its persisted total, so
    /// each series exists (at 0 on a first start) and resumes where it was.
    pub(super) fn resume_metrics(&self, metrics: &Metrics) {
        let name = self.config.name.as_str();
        let (namespace, index) = self.matcher.default_labels();
        metrics
            .duplicate_key_errors_total
            .with_label_values(&[name, &namespace, &index]);
        for (event, spec) in self.config.events.iter().zip(&self.durations) {
            match spec {
                // A status class series appears with its first line.
                Some(DurationSpec { parse: DurationParse::Regex { status: true, .. }, .. }) => {}
                _ => {
                    metrics.log_events_total.with_label_values(&[name, &event.name, ""]);
                }
            }
            if spec.is_some() {
                metrics.log_event_unparsed_total.with_label_values(&[name, &event.name]);
            }
        }
        self.move_counters(&self.committed.totals, metrics);
        self.publish_histograms(metrics);
        let c = &self.committed;
        for (counter, by) in [
            (&metrics.log_rotations_total, c.rotations),
            (&metrics.log_truncations_total, c.truncations),
            (&metrics.log_long_lines_total, c.long_lines),
        ] {
            counter.with_label_values(&[name]).inc_by(by);
        }
        self.publish_gauges(metrics);
    }

    /// Adds `totals` to this source's counters: the one place that moves
    /// them, for a commit (the pending tally) and a start (the saved totals).
    fn move_counters(&self, totals: &SourceTotals, metrics: &Metrics) {
        let name = self.config.name.as_str();
        metrics
            .log_lines_total
            .with_label_values(&[name])
            .inc_by(totals.lines);
        metrics
            .log_bytes_total
            .with_label_values(&[name])
            .inc_by(totals.bytes);
        // A source without recovery markers (mongod's log) has no recovery
        // series at all, so alerts comparing errors with recoveries skip it.
        if !self.config.recovery_markers.is_empty() {
            metrics
                .duplicate_key_recoveries_total
                .with_label_values(&[name])
                .inc_by(totals.recoveries);
        }
        for e in &totals.duplicate_key_errors {
            metrics
                .duplicate_key_errors_total
                .with_label_values(&[name, &e.namespace, &e.index])
                .inc_by(e.count);
        }
        for (event, count) in &totals.events {
            // A checkpoint may hold events no longer configured.
            let Some(i) = self.config.events.iter().position(|e| &e.name == event) else {
                continue;
            };
            if self.durations[i].is_none() {
                metrics
                    .log_events_total
                    .with_label_values(&[name, event, ""])
                    .inc_by(*count);
                continue;
            }
            // A duration event's lines, by status class (not the histograms'
            // counts, which a change of buckets resets).
            let Some(durations) = totals.durations.get(event) else { continue };
            for (class, n) in &durations.lines_by_status_class {
                metrics
                    .log_events_total
                    .with_label_values(&[name, event, class])
                    .inc_by(*n);
            }
            metrics
                .log_event_unparsed_total
                .with_label_values(&[name, event])
                .inc_by(durations.unparsed);
        }
    }

    /// `log_files`, `log_lag_bytes` and `log_patterns_cut`: not totals, so
    /// not tied to commits. The lag is every byte not in the committed
    /// totals: unread bytes of open files, and bytes read but not yet saved
    /// (while the checkpoint cannot be saved, the lag grows).
    pub(super) fn publish_gauges(&self, metrics: &Metrics) {
        let name = self.config.name.as_str();
        let open = self.files.values().filter(|f| f.is_open());
        let (files, unread) = open.fold((0i64, 0u64), |(n, lag), f| (n + 1, lag + f.lag()));
        let lag = unread.saturating_add(self.pending.bytes);
        metrics.log_files.with_label_values(&[name]).set(files);
        metrics
            .log_lag_bytes
            .with_label_values(&[name])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        let cut = self.pattern_cut.iter().flatten().count();
        metrics
            .log_patterns_cut
            .with_label_values(&[name])
            .set(i64::try_from(cut).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
