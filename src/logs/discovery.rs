//! Which files a source follows: each poll's truncation checks, pattern
//! expansion (new files, renames that still match), files no pattern leads
//! to any more (renamed away or deleted; from the checkpoint: looked for by
//! inode where they were), and the copy a copytruncate left.
//!
//! These are the parts of [`Source`] that look at paths and directories;
//! [`super::source`] reads the files and keeps the accounts.

use std::collections::btree_map::Entry;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::time::Instant;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::follower::{self, Check, FileId, Fingerprint, Follower, Presence};
use super::pattern::{self, Bound};
use super::source::{Notice, Source};
use crate::config::StartAt;

impl Source {
    /// Notices truncation of every open file (one `fstat` each when quiet).
    pub(super) fn check_open_files(&mut self) {
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

    /// Expands every pattern (but those cooling down after being cut short),
    /// follows new files and notes renames that
    /// still match. Returns the identities found, and whether every
    /// directory could be listed.
    pub(super) fn expand_patterns(&mut self) -> (HashSet<FileId>, bool) {
        let mut seen = HashSet::new();
        let mut known = Vec::new();
        let mut new = Vec::new();
        let mut complete = true;
        for i in 0..self.config.paths.len() {
            let mut matched = 0usize;
            if self.pattern_retry_at[i].is_some_and(|at| Instant::now() < at) {
                // Cut short last time and cooling down: nothing new is
                // followed from it meanwhile, and nothing inferred.
                complete = false;
                continue;
            }
            let expansion =
                pattern::expand(&self.config.paths[i], &self.tuning.patterns, &self.stop);
            complete &= expansion.complete();
            self.note_cut(i, expansion.cut);
            self.pattern_retry_at[i] = self.pattern_cut[i]
                .map(|_| Instant::now() + CUT_PATTERN_COOLDOWN_BUDGETS * self.tuning.patterns.time_budget);
            for path in expansion.paths {
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
            match expansion.listing_error {
                Some(e) => {
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

    /// Logs a pattern's expansion being cut short by a bound, once per
    /// episode (a stop at shutdown is not one).
    fn note_cut(&mut self, i: usize, cut: Option<Bound>) {
        let cut = cut.filter(|b| *b != Bound::Stopped);
        let pattern = &self.config.paths[i];
        match (self.pattern_cut[i], cut) {
            (None, Some(bound)) => {
                warn!(source = %self.config.name, pattern, bound = %bound.describe(&self.tuning.patterns), "expanding the pattern was cut short; files it did not reach are not followed, and no file is taken as renamed or deleted until it completes");
            }
            (Some(_), None) => {
                info!(source = %self.config.name, pattern, "the pattern expands completely again");
            }
            _ => {}
        }
        self.pattern_cut[i] = cut;
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
        let file = match open_log(&path) {
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
                self.found_new_files.insert(id);
            }
            Err(e) => {
                warn!(source = %self.config.name, path = %path.display(), error = %e, "cannot read log file")
            }
        }
    }

    /// Files no pattern leads to any more: renamed away, deleted, or (from
    /// the checkpoint) renamed while the daemon was down.
    /// Marks followed files whose last link is gone as deleted. Needs no
    /// listing (the open descriptor says it), so it holds even while a
    /// pattern cannot be listed or is cut short, and a deleted file is
    /// drained and released instead of being held open.
    pub(super) fn mark_unlinked(&mut self) {
        for follower in self.files.values_mut() {
            if follower.is_open() && follower.presence == Presence::Current && follower.is_unlinked() {
                mark_deleted(&self.config.name, follower);
            }
        }
    }

    pub(super) fn handle_unseen(&mut self, seen: &HashSet<FileId>) {
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
                    // Deleted since this poll's `mark_unlinked`.
                    mark_deleted(&self.config.name, follower);
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
                // No pattern leads here, so this inode is read only as the
                // continuation of a file already counted. Other bytes where
                // reading stopped mean another file now holds the inode (the
                // drained one was deleted while the daemon was down and the
                // number reused, say by the next copytruncate copy): it is
                // not read, since reading it from 0 would count lines again.
                Ok(Check::Truncated { .. }) => {
                    warn!(source = %self.config.name, saved = %from.display(), path = %path.display(), "log file from the checkpoint was replaced by another file under the same inode while uniqwatch was down; it is not read");
                    self.files.remove(&id);
                    continue;
                }
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
    /// same directory from where reading had got to, so the lines between
    /// the last read and the copy are not lost (see [`find_copy`]).
    pub(super) fn truncated(&mut self, id: FileId, check: Check) {
        let Check::Truncated {
            size,
            old_offset,
            old_fingerprint,
            old_tail,
        } = check
        else {
            return;
        };
        let path = self.files[&id].path.clone();
        let mut copy = None;
        if old_offset > 0 && old_fingerprint.len > 0 {
            let wanted = Copy {
                head: old_fingerprint,
                tail: old_tail,
                offset: old_offset,
            };
            if let Some((copy_path, file, meta)) = find_copy(&path, id, &wanted, &self.files) {
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
}

/// A followed file whose last link is gone: drained until quiet, then released.
fn mark_deleted(source: &str, follower: &mut Follower) {
    follower.presence = Presence::Deleted;
    info!(source = %source, path = %follower.path.display(), "log file deleted; reading what its writer still appends until it is quiet");
}

/// A pattern cut short by a bound waits this many time budgets before it
/// is expanded again: at most a tenth of the tailer's time goes to it.
const CUT_PATTERN_COOLDOWN_BUDGETS: u32 = 10;

/// Opens a log file for reading, only if it is a regular file. The open
/// does not block, so a FIFO or a device put where a log was (between the
/// listing and the open) is refused instead of hanging the source's thread.
pub(super) fn open_log(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"))
    }
}

/// Opens `path` if it is still the file with identity `id`.
fn open_as(path: &Path, id: FileId) -> Option<File> {
    let file = open_log(path).ok()?;
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

/// What identifies the copy a copytruncate made of a followed file.
struct Copy {
    /// The first bytes of the content that was read.
    head: Fingerprint,
    /// The bytes just before where reading had got to.
    tail: Fingerprint,
    /// Where reading had got to: the copy holds at least that much.
    offset: u64,
}

/// The copy copytruncate made of the file `id` beside `near`: a file other
/// than `id` and than every file already followed, at least `offset` long,
/// with the same first bytes and the same bytes just before `offset`. Older
/// rotations often share the first bytes (a banner) and may be as long, so
/// the bytes at the offset are what tells the copy; of several that still
/// match, the most recently changed (by ctime, which a copy cannot inherit)
/// is taken. Lines are read from the copy from `offset` only, so taking
/// none loses the lines written since the last poll, but taking a wrong one
/// would count an old file's lines twice: when the bytes do not match, none
/// is taken.
fn find_copy(
    near: &Path,
    id: FileId,
    wanted: &Copy,
    followed: &std::collections::BTreeMap<FileId, Follower>,
) -> Option<(PathBuf, File, fs::Metadata)> {
    use std::os::unix::fs::MetadataExt;
    let dir = near.parent()?;
    let mut best: Option<((i64, i64), PathBuf, File, fs::Metadata)> = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let candidate = FileId::of(&meta);
        if !meta.is_file()
            || meta.len() < wanted.offset
            || candidate == id
            || followed.contains_key(&candidate)
        {
            continue;
        }
        let Ok(file) = open_log(&entry.path()) else {
            continue;
        };
        let mut head = vec![0; wanted.head.len as usize];
        let Ok(n) = follower::read_full_at(&file, &mut head, 0) else {
            continue;
        };
        if !wanted.head.is_prefix_of(&head[..n])
            || !wanted.tail.ends_at(&file, wanted.offset).unwrap_or(false)
        {
            continue;
        }
        let Ok(meta) = file.metadata() else { continue };
        let changed = (meta.ctime(), meta.ctime_nsec());
        if best.as_ref().is_none_or(|(newest, ..)| changed > *newest) {
            best = Some((changed, entry.path(), file, meta));
        }
    }
    best.map(|(_, path, file, meta)| (path, file, meta))
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

    /// Regression: a FIFO put where a log was hung the source's thread in
    /// open(2) forever (and with it shutdown).
    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app.log");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let (fifo_path, dir_path) = (fifo.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let _ = tx.send((open_log(&fifo_path).is_err(), open_log(&dir_path).is_err()));
        });
        let refused = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("open_log blocked on a FIFO");
        assert_eq!(refused, (true, true));
        std::fs::write(dir.path().join("real.log"), "x\n").unwrap();
        assert!(open_log(&dir.path().join("real.log")).is_ok());
    }

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
}
