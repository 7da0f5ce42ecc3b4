//! One `[[logs]]` source: which files it follows and what it has counted
//! since the last commit.
//!
//! Each poll (see [`Source::poll`]) checks the open files for truncation,
//! expands the patterns (new files are followed, renames that still match are
//! noted), deals with files no pattern leads to any more (renamed away or
//! deleted: drained, then released once quiet; from the checkpoint: looked
//! for by inode where they were), reads what was appended into the pending
//! tally, and releases drained files. Rotations, truncations and long lines
//! become [`Notice`]s, logged and counted only when the commit that includes
//! them is saved; [`super`] does the commits.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::checkpoint::SourceCheckpoint;
use super::follower::{self, Check, FileId, Fingerprint, Follower, Presence};
use super::matcher::{Matcher, MatcherError, Tally};
use super::ErrorTotal;
use crate::config::{LogSourceConfig, StartAt};
use crate::metrics::Metrics;

/// Most bytes one file is read per pass, so a large backlog is committed in
/// steps and other files and sources get their turn.
const READ_BUDGET_PER_PASS: u64 = 64 * 1024 * 1024;

/// How long a rotated or deleted file must stay unchanged before it is
/// released: long enough for a writer to reopen its log after a rotation.
pub const RELEASE_AFTER_QUIET: Duration = Duration::from_secs(10);

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
    /// Followed files by identity, rotated ones being drained included.
    files: BTreeMap<FileId, Follower>,
    /// Totals of the last commit (files left empty: they live in `files`).
    pub(super) committed: SourceCheckpoint,
    /// Counted since the last commit, not yet on disk nor in the metrics.
    pending: Tally,
    /// Rotations, truncations and long lines since the last commit: logged
    /// and counted when the commit that includes them succeeds.
    notices: Vec<Notice>,
    /// Whether the checkpoint had no entry for this source: `start_at`
    /// applies to the files found by its first poll.
    fresh: bool,
    /// Whether the first poll is still to come.
    first_poll: bool,
    /// Per pattern, whether it matched at the last poll, to log changes once.
    pattern_matched: Vec<Option<bool>>,
    /// Per pattern: its last listing failed, so the failure is logged once.
    listing_failed: Vec<bool>,
    /// Files that could not be opened, to log each once.
    unreadable: HashSet<PathBuf>,
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
enum Notice {
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
        now: Instant,
    ) -> Result<Self, MatcherError> {
        let matcher = Matcher::new(&config)?;
        let fresh = previous.is_none();
        let mut committed = previous.unwrap_or_default();
        let files = committed
            .files
            .drain(..)
            .map(|f| (f.id, Follower::from_checkpoint(&f)))
            .collect();
        for event in &config.events {
            committed
                .totals
                .events
                .entry(event.name.clone())
                .or_insert(0);
        }
        Ok(Source {
            pending: Tally::new(matcher.event_count()),
            matcher,
            files,
            committed,
            notices: Vec::new(),
            fresh,
            first_poll: true,
            pattern_matched: vec![None; config.paths.len()],
            listing_failed: vec![false; config.paths.len()],
            unreadable: HashSet::new(),
            labels_overflowed: false,
            next_due: now,
            more: false,
            config,
        })
    }

    /// One poll: truncation checks, pattern expansion, renames and deletions,
    /// reading, and releasing drained files.
    pub(super) fn poll(&mut self, buf: &mut [u8]) {
        self.more = false;
        self.check_open_files();
        let (seen, complete) = self.expand_patterns();
        // A listing that failed (out of descriptors, NFS trouble) proves
        // nothing about files it did not list: no renames are inferred from it.
        if complete {
            self.handle_unseen(&seen);
        }
        self.read_all(buf);
        self.release_drained(buf);
        self.first_poll = false;
    }

    /// Notices truncation of every open file (one `fstat` each when quiet).
    fn check_open_files(&mut self) {
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let follower = self.files.get_mut(&id).expect("id taken from the map");
            if !follower.is_open() {
                continue;
            }
            match follower.check() {
                Ok(Check::Same) => {}
                Ok(truncated) => self.truncated(id, truncated),
                Err(e) => {
                    warn!(source = %self.config.name, path = %follower.path.display(), error = %e, "cannot stat followed log file")
                }
            }
        }
    }

    /// Expands every pattern, follows new files and notes renames that
    /// still match. Returns the identities found, and whether every
    /// directory could be listed.
    fn expand_patterns(&mut self) -> (HashSet<FileId>, bool) {
        let mut seen = HashSet::new();
        let mut known = Vec::new();
        let mut new = Vec::new();
        let mut complete = true;
        for i in 0..self.config.paths.len() {
            let mut matched = 0usize;
            let mut listing_error = None;
            // Patterns were validated at load; an invalid one just matches nothing.
            let entries = glob::glob(&self.config.paths[i]).into_iter().flatten();
            for entry in entries {
                let path = match entry {
                    Ok(path) => path,
                    Err(e) => {
                        listing_error = Some(e);
                        continue;
                    }
                };
                let Ok(meta) = fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                matched += 1;
                let id = FileId::of(&meta);
                if seen.insert(id) {
                    if self.files.contains_key(&id) {
                        known.push((path, id));
                    } else {
                        new.push(path);
                    }
                }
            }
            match listing_error {
                Some(e) => {
                    complete = false;
                    if !self.listing_failed[i] {
                        warn!(source = %self.config.name, pattern = %self.config.paths[i], error = %e, "cannot list the files of a pattern; followed files are kept as they are until it can");
                    }
                    self.listing_failed[i] = true;
                }
                None => {
                    if std::mem::take(&mut self.listing_failed[i]) {
                        info!(source = %self.config.name, pattern = %self.config.paths[i], "files of the pattern can be listed again");
                    }
                    self.note_pattern(i, matched);
                }
            }
        }
        // Known files first: reopening one found truncated may register its
        // copytruncate copy, which must then not count as a new file.
        for (path, id) in known {
            self.found_known(path, id);
        }
        for path in new {
            self.found_new(path, &mut seen);
        }
        (seen, complete)
    }

    /// Logs a pattern starting or stopping to match, once per change.
    fn note_pattern(&mut self, i: usize, matched: usize) {
        let pattern = &self.config.paths[i];
        let now = matched > 0;
        match (self.pattern_matched[i], now) {
            (None | Some(true), false) => {
                let why = missing_directory(pattern)
                    .map(|d| format!(" (directory {} does not exist)", d.display()))
                    .unwrap_or_default();
                info!(source = %self.config.name, pattern, "no file matches {pattern} yet{why}; it will be picked up when it appears");
            }
            (Some(false), true) => {
                info!(source = %self.config.name, pattern, files = matched, "{pattern} now matches {matched} file(s)")
            }
            _ => {}
        }
        self.pattern_matched[i] = Some(now);
    }

    /// A pattern leads to a file already followed (or known from the checkpoint).
    fn found_known(&mut self, path: PathBuf, id: FileId) {
        let follower = self
            .files
            .get_mut(&id)
            .expect("caller checked the id is known");
        if !follower.is_open() {
            let Some(file) = open_as(&path, id) else {
                return;
            };
            let old_path = follower.path.clone();
            match follower.reopen(path.clone(), file) {
                Ok(Check::Same) => {
                    info!(source = %self.config.name, path = %path.display(), offset = follower.offset, "resuming log file from the checkpoint");
                }
                Ok(truncated) => self.truncated(id, truncated),
                Err(e) => {
                    warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot stat log file")
                }
            }
            if old_path != path {
                self.notices.push(Notice::Rotated {
                    from: old_path,
                    to: Some(path),
                });
            }
            return;
        }
        if follower.path != path {
            let from = std::mem::replace(&mut follower.path, path.clone());
            if follower.presence == Presence::Current {
                self.notices.push(Notice::Rotated {
                    from,
                    to: Some(path),
                });
            }
        }
        follower.presence = Presence::Current;
    }

    /// A pattern leads to a file not followed yet: from the beginning, or
    /// per `start_at` on the first poll of a source without checkpoint.
    fn found_new(&mut self, path: PathBuf, seen: &mut HashSet<FileId>) {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                if self.unreadable.insert(path.clone()) {
                    warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot open log file; will retry");
                }
                return;
            }
        };
        self.unreadable.remove(&path);
        let Ok(meta) = file.metadata() else { return };
        let id = FileId::of(&meta);
        // Replaced between the stat and the open, or a copy just registered.
        seen.insert(id);
        if self.files.contains_key(&id) {
            return;
        }
        let offset = if self.fresh && self.first_poll && self.config.start_at == StartAt::End {
            match follower::end_of_last_line(&file, meta.len()) {
                Ok(offset) => offset,
                Err(e) => {
                    warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot read log file");
                    return;
                }
            }
        } else {
            0
        };
        match Follower::open(path.clone(), file, &meta, offset) {
            Ok(follower) => {
                info!(source = %self.config.name, path = %path.display(), offset, "following log file");
                self.files.insert(id, follower);
            }
            Err(e) => {
                warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot read log file")
            }
        }
    }

    /// Files no pattern leads to any more: renamed away, deleted, or (from
    /// the checkpoint) renamed while the daemon was down.
    fn handle_unseen(&mut self, seen: &HashSet<FileId>) {
        let unseen: Vec<FileId> = self
            .files
            .keys()
            .filter(|id| !seen.contains(id))
            .copied()
            .collect();
        for id in unseen {
            let follower = self.files.get_mut(&id).expect("id taken from the map");
            if follower.is_open() {
                if follower.presence != Presence::Current {
                    continue;
                }
                // Still at its path: the pattern's listing missed it, it did not move.
                if fs::metadata(&follower.path).is_ok_and(|m| FileId::of(&m) == id) {
                    continue;
                }
                if follower.is_unlinked() {
                    follower.presence = Presence::Deleted;
                    info!(source = %self.config.name, path = %follower.path.display(), "log file deleted; reading what its writer still appends until it is quiet");
                } else {
                    follower.presence = Presence::Rotated;
                    let to = find_in_dir(&follower.path, id);
                    // Saved under its new name, so a restart does not see a second rename.
                    let from = match &to {
                        Some(to) => std::mem::replace(&mut follower.path, to.clone()),
                        None => follower.path.clone(),
                    };
                    self.notices.push(Notice::Rotated { from, to });
                }
                continue;
            }
            // From the checkpoint, and no pattern leads to it: look for it by
            // inode where it was, as a rotation while the daemon was down.
            let Some(path) = find_in_dir(&follower.path, id) else {
                warn!(source = %self.config.name, path = %follower.path.display(), offset = follower.offset, "log file from the checkpoint is gone; anything written to it after that offset was not read");
                self.files.remove(&id);
                continue;
            };
            let Some(file) = open_as(&path, id) else {
                self.files.remove(&id);
                continue;
            };
            let from = follower.path.clone();
            follower.presence = Presence::Rotated;
            match follower.reopen(path.clone(), file) {
                Ok(Check::Same) => {}
                Ok(truncated) => self.truncated(id, truncated),
                Err(e) => {
                    warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot stat log file")
                }
            }
            // Renamed while the daemon was down (a file saved while being
            // drained is found at the path it was saved under: no new rename).
            if from != path {
                self.notices.push(Notice::Rotated {
                    from,
                    to: Some(path),
                });
            }
        }
    }

    /// Records a truncation, and follows the copy a copytruncate left in the
    /// same directory (same first bytes, at least as long as what was read)
    /// from where reading had got to, so the lines between the last read and
    /// the copy are not lost.
    fn truncated(&mut self, id: FileId, check: Check) {
        let Check::Truncated {
            size,
            old_offset,
            old_fingerprint,
        } = check
        else {
            return;
        };
        let path = self.files[&id].path.clone();
        let mut copy = None;
        if old_offset > 0 && old_fingerprint.len > 0 {
            if let Some((copy_path, file, meta)) = find_copy(&path, id, old_fingerprint, old_offset)
            {
                if let Entry::Vacant(slot) = self.files.entry(FileId::of(&meta)) {
                    if let Ok(mut follower) =
                        Follower::open(copy_path.clone(), file, &meta, old_offset)
                    {
                        follower.presence = Presence::Rotated;
                        slot.insert(follower);
                        copy = Some(copy_path);
                    }
                }
            }
        }
        self.notices.push(Notice::Truncated {
            path,
            size,
            old_offset,
            copy,
        });
    }

    /// Reads every open file, rotated and deleted ones first (their lines
    /// came before the new file's).
    fn read_all(&mut self, buf: &mut [u8]) {
        let mut order: Vec<(bool, FileId)> = self
            .files
            .iter()
            .filter(|(_, f)| f.is_open())
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

    /// Releases rotated and deleted files quiet for [`RELEASE_AFTER_QUIET`],
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
                    && f.is_quiet_for(RELEASE_AFTER_QUIET)
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

    /// What the checkpoint would hold for this source now: committed totals
    /// plus pending ones, and the files' current offsets.
    pub(super) fn to_checkpoint(&self) -> SourceCheckpoint {
        let mut next = self.committed.clone();
        let totals = &mut next.totals;
        totals.lines += self.pending.lines;
        totals.bytes += self.pending.bytes;
        totals.recoveries += self.pending.recoveries;
        for ((namespace, index), count) in &self.pending.errors {
            match totals
                .duplicate_key_errors
                .iter_mut()
                .find(|e| &e.namespace == namespace && &e.index == index)
            {
                Some(e) => e.count += count,
                None => totals.duplicate_key_errors.push(ErrorTotal {
                    namespace: namespace.clone(),
                    index: index.clone(),
                    count: *count,
                }),
            }
        }
        totals
            .duplicate_key_errors
            .sort_by(|a, b| (&a.namespace, &a.index).cmp(&(&b.namespace, &b.index)));
        for (event, count) in self.config.events.iter().zip(&self.pending.events) {
            *totals.events.entry(event.name.clone()).or_insert(0) += count;
        }
        for notice in &self.notices {
            notice.apply(&mut next);
        }
        next.files = self.files.values().map(Follower::checkpoint).collect();
        next
    }

    /// After a successful save: moves the counters by what was pending,
    /// emits the notices, and makes `committed` the saved state.
    pub(super) fn publish(&mut self, committed: SourceCheckpoint, metrics: &Metrics) {
        let name = self.config.name.as_str();
        let pending = std::mem::replace(&mut self.pending, Tally::new(self.matcher.event_count()));
        metrics
            .log_lines_total
            .with_label_values(&[name])
            .inc_by(pending.lines);
        metrics
            .log_bytes_total
            .with_label_values(&[name])
            .inc_by(pending.bytes);
        // A source without recovery markers (mongod's log) has no recovery
        // series at all, so alerts comparing errors with recoveries skip it.
        if self.tracks_recoveries() {
            metrics
                .duplicate_key_recoveries_total
                .with_label_values(&[name])
                .inc_by(pending.recoveries);
        }
        for ((namespace, index), count) in &pending.errors {
            metrics
                .duplicate_key_errors_total
                .with_label_values(&[name, namespace, index])
                .inc_by(*count);
        }
        for (event, count) in self.config.events.iter().zip(&pending.events) {
            metrics
                .log_events_total
                .with_label_values(&[name, &event.name])
                .inc_by(*count);
        }
        for notice in std::mem::take(&mut self.notices) {
            notice.emit(name, metrics);
        }
        self.committed = committed;
    }

    fn tracks_recoveries(&self) -> bool {
        !self.config.recovery_markers.is_empty()
    }

    /// At start-up: every counter of this source at its persisted total, so
    /// each series exists (at 0 on a first start) and resumes where it was.
    pub(super) fn resume_metrics(&self, metrics: &Metrics) {
        let name = self.config.name.as_str();
        let c = &self.committed;
        metrics
            .log_lines_total
            .with_label_values(&[name])
            .inc_by(c.totals.lines);
        metrics
            .log_bytes_total
            .with_label_values(&[name])
            .inc_by(c.totals.bytes);
        if self.tracks_recoveries() {
            metrics
                .duplicate_key_recoveries_total
                .with_label_values(&[name])
                .inc_by(c.totals.recoveries);
        }
        metrics
            .log_rotations_total
            .with_label_values(&[name])
            .inc_by(c.rotations);
        metrics
            .log_truncations_total
            .with_label_values(&[name])
            .inc_by(c.truncations);
        metrics
            .log_long_lines_total
            .with_label_values(&[name])
            .inc_by(c.long_lines);
        let (namespace, index) = self.matcher.default_labels();
        metrics
            .duplicate_key_errors_total
            .with_label_values(&[name, &namespace, &index]);
        for e in &c.totals.duplicate_key_errors {
            metrics
                .duplicate_key_errors_total
                .with_label_values(&[name, &e.namespace, &e.index])
                .inc_by(e.count);
        }
        for (event, count) in &c.totals.events {
            if self.config.events.iter().any(|e| &e.name == event) {
                metrics
                    .log_events_total
                    .with_label_values(&[name, event])
                    .inc_by(*count);
            }
        }
        self.publish_gauges(metrics);
    }

    /// `log_files` and `log_lag_bytes`: not totals, so not tied to commits.
    pub(super) fn publish_gauges(&self, metrics: &Metrics) {
        let name = self.config.name.as_str();
        let open = self.files.values().filter(|f| f.is_open());
        let (files, lag) = open.fold((0i64, 0u64), |(n, lag), f| (n + 1, lag + f.lag()));
        metrics.log_files.with_label_values(&[name]).set(files);
        metrics
            .log_lag_bytes
            .with_label_values(&[name])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
}

/// Opens `path` if it is still the file with identity `id`.
fn open_as(path: &Path, id: FileId) -> Option<File> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    (FileId::of(&meta) == id).then_some(file)
}

/// The path of the file with identity `id` in the directory of `near`, if
/// any: where a rotated file went.
fn find_in_dir(near: &Path, id: FileId) -> Option<PathBuf> {
    let dir = near.parent()?;
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|entry| {
            entry
                .metadata()
                .is_ok_and(|m| m.is_file() && FileId::of(&m) == id)
        })
        .map(|entry| entry.path())
}

/// A file beside `near`, other than `id`, that starts with the bytes of
/// `fingerprint` and holds at least `min_len` bytes: the copy copytruncate made.
fn find_copy(
    near: &Path,
    id: FileId,
    fingerprint: Fingerprint,
    min_len: u64,
) -> Option<(PathBuf, File, fs::Metadata)> {
    let dir = near.parent()?;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.len() < min_len || FileId::of(&meta) == id {
            continue;
        }
        let Ok(file) = File::open(entry.path()) else {
            continue;
        };
        let mut head = vec![0; fingerprint.len as usize];
        let Ok(n) = follower::read_full_at(&file, &mut head, 0) else {
            continue;
        };
        if fingerprint.is_prefix_of(&head[..n]) {
            let meta = file.metadata().ok()?;
            return Some((entry.path(), file, meta));
        }
    }
    None
}

/// The deepest literal directory of `pattern`, when it does not exist.
fn missing_directory(pattern: &str) -> Option<PathBuf> {
    let mut dir = PathBuf::new();
    for part in Path::new(pattern).parent()?.components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        dir.push(part);
    }
    (!dir.as_os_str().is_empty() && !dir.is_dir()).then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_names_the_literal_part() {
        assert_eq!(
            missing_directory("/nonexistent/a/*.log"),
            Some(PathBuf::from("/nonexistent/a"))
        );
        assert_eq!(
            missing_directory("/nonexistent/*/x.log"),
            Some(PathBuf::from("/nonexistent"))
        );
        assert_eq!(missing_directory("/tmp/*.log"), None);
    }

    #[test]
    fn notices_move_the_persisted_counts() {
        let mut counts = SourceCheckpoint::default();
        Notice::Rotated {
            from: "a".into(),
            to: None,
        }
        .apply(&mut counts);
        Notice::Truncated {
            path: "a".into(),
            size: 0,
            old_offset: 3,
            copy: None,
        }
        .apply(&mut counts);
        Notice::LongLines {
            path: "a".into(),
            count: 4,
        }
        .apply(&mut counts);
        assert_eq!(
            (counts.rotations, counts.truncations, counts.long_lines),
            (1, 1, 4)
        );
    }
}
