//! Following one file: reading its complete lines from an offset, noticing
//! truncation, and holding back what is not a whole line yet.
//!
//! A file is known by its identity (device, inode), not its name, so a
//! rename does not disturb it; the fingerprints of its first bytes and of
//! the bytes just before the read offset tell a file truncated and rewritten
//! in place (copytruncate, or a rewrite under the same banner) from the one
//! that was read. The follower keeps its file open, which also keeps a deleted file
//! readable until it is drained. Reads are positional (`pread`) into a buffer
//! the caller owns and shares between files, so a followed file costs no
//! memory of its own: a partial last line is simply read again next time,
//! from [`Follower::offset`], until its newline arrives. The buffer is
//! `max_line_bytes + 1` long; a line that fills it without a newline is a
//! long line, matched on its first `max_line_bytes` and then skipped to its
//! end, so memory stays bounded whatever the line length.
//!
//! [`super`] decides which files to follow and when; this module does not
//! look at paths or globs. It converts its state to and from the
//! checkpoint's on-disk types, the one place where the two meet.
//!
//! The file runs past 600 lines only through its unit tests,
//! which stay beside the code they pin.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::SystemTime;

use tokio::time::Instant;

use super::checkpoint::{FileCheckpoint, StoredFileId, StoredFingerprint};
use super::matcher::{Matcher, Tally};

/// How many leading bytes of a file its fingerprint covers (fewer while the
/// file is shorter).
pub const FINGERPRINT_BYTES: usize = 256;

/// How far back from the end `start_at = "end"` looks for the last newline.
const START_AT_END_LOOKBACK: u64 = 64 * 1024;

/// A file's identity, stable across renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device holding the file.
    pub dev: u64,
    /// Inode number on that device.
    pub inode: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            inode: meta.ino(),
        }
    }
}

/// A hash of up to [`FINGERPRINT_BYTES`] bytes of a file: its first ones, or
/// those just before the read offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// How many bytes were hashed (up to [`FINGERPRINT_BYTES`]).
    pub len: u32,
    /// FNV-1a 64 of those bytes: stable across builds, unlike std's hasher.
    pub hash: u64,
}

impl Fingerprint {
    /// The fingerprint of `head`, the first bytes of a file.
    pub fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in head {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Fingerprint {
            len: head.len() as u32,
            hash,
        }
    }

    /// The fingerprint of the last (up to [`FINGERPRINT_BYTES`]) bytes of `bytes`.
    pub fn of_end(bytes: &[u8]) -> Self {
        Fingerprint::of(&bytes[bytes.len().saturating_sub(FINGERPRINT_BYTES)..])
    }

    /// Whether `head` (a file's first bytes) starts with the bytes this
    /// fingerprint was taken of.
    pub fn is_prefix_of(&self, head: &[u8]) -> bool {
        head.len() >= self.len as usize && Fingerprint::of(&head[..self.len as usize]) == *self
    }

    fn read(file: &File) -> io::Result<(Fingerprint, Vec<u8>)> {
        let mut head = vec![0; FINGERPRINT_BYTES];
        let n = read_full_at(file, &mut head, 0)?;
        head.truncate(n);
        Ok((Fingerprint::of(&head), head))
    }

    /// The fingerprint of the bytes of `file` just before `offset`.
    pub fn read_before(file: &File, offset: u64) -> io::Result<Fingerprint> {
        let len = offset.min(FINGERPRINT_BYTES as u64);
        let mut bytes = vec![0; len as usize];
        let n = read_full_at(file, &mut bytes, offset - len)?;
        Ok(Fingerprint::of(&bytes[..n]))
    }

    /// Whether the bytes of `file` just before `offset` are the ones this
    /// fingerprint (taken by [`Fingerprint::read_before`]) was taken of.
    pub fn ends_at(&self, file: &File, offset: u64) -> io::Result<bool> {
        let len = u64::from(self.len);
        if len > offset {
            return Ok(false);
        }
        let mut bytes = vec![0; self.len as usize];
        let n = read_full_at(file, &mut bytes, offset - len)?;
        Ok(n == bytes.len() && Fingerprint::of(&bytes) == *self)
    }
}

impl From<Fingerprint> for StoredFingerprint {
    fn from(f: Fingerprint) -> Self {
        StoredFingerprint { len: f.len, hash: f.hash }
    }
}

impl From<StoredFingerprint> for Fingerprint {
    fn from(f: StoredFingerprint) -> Self {
        Fingerprint {
            len: f.len.min(FINGERPRINT_BYTES as u32),
            hash: f.hash,
        }
    }
}

/// Whether the file is still at the path it was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// A configured path or glob leads to it.
    Current,
    /// Renamed to a name no pattern matches: drained, then released.
    Rotated,
    /// Unlinked: drained while a writer may still append, then released.
    Deleted,
}

/// What [`Follower::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing that needs the caller: the file may have grown.
    Same,
    /// Shorter than what was read, or its first bytes changed: it is read
    /// again from byte 0. The old offset and fingerprint let the caller look
    /// for the copy a copytruncate left.
    Truncated {
        /// Size found.
        size: u64,
        /// Where reading had got to.
        old_offset: u64,
        /// The fingerprint of the first bytes of the content that was being read.
        old_fingerprint: Fingerprint,
        /// The fingerprint of the bytes just before `old_offset`, as read.
        old_tail: Fingerprint,
    },
}

/// What one [`Follower::read`] did besides its tally.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Lines longer than `max_line_bytes` completed by this read.
    pub long_lines: u64,
    /// The byte budget ran out before the end of the file.
    pub more: bool,
}

/// A line longer than the buffer, being skipped to its newline.
#[derive(Debug)]
struct LongLine {
    /// How far the search for its newline has got.
    scanned_to: u64,
    /// The matches in its first `max_line_bytes`, counted when it ends.
    prefix: Tally,
}

/// One followed file.
#[derive(Debug)]
pub struct Follower {
    /// Where the file was last seen, for logs and the checkpoint.
    pub path: PathBuf,
    /// The identity it is followed by.
    pub id: FileId,
    /// The open file; `None` for an entry loaded from the checkpoint and not
    /// found again yet.
    file: Option<File>,
    /// Start of the first line not counted yet; what the checkpoint saves.
    pub offset: u64,
    /// Of the first bytes, to notice the content being replaced.
    pub fingerprint: Fingerprint,
    /// Of the bytes just before `offset` (empty at 0), to notice a rewrite
    /// that keeps the first bytes, and to tell a copytruncate copy.
    /// `None` for a version 1 checkpoint entry until the file is found.
    tail: Option<Fingerprint>,
    /// Set while skipping a line longer than the buffer.
    long_line: Option<LongLine>,
    /// Whether a pattern still leads to the file.
    pub presence: Presence,
    /// Size at the last [`Follower::check`].
    size: u64,
    /// Modification time at the last check: a rewrite to the same size still shows.
    mtime: Option<SystemTime>,
    /// Hard links at the last check: 0 once the file is deleted.
    nlink: u64,
    /// When the file last grew: a rotated file is released once quiet long enough.
    last_growth: Instant,
}

impl Follower {
    /// Starts following an open file from `offset`.
    pub fn open(path: PathBuf, file: File, meta: &Metadata, offset: u64) -> io::Result<Self> {
        let (fingerprint, _) = Fingerprint::read(&file)?;
        let tail = Fingerprint::read_before(&file, offset)?;
        Ok(Follower {
            path,
            id: FileId::of(meta),
            file: Some(file),
            offset,
            fingerprint,
            tail: Some(tail),
            long_line: None,
            presence: Presence::Current,
            size: meta.len(),
            mtime: meta.modified().ok(),
            nlink: meta.nlink(),
            last_growth: Instant::now(),
        })
    }

    /// A file known from the checkpoint, to be found and opened again.
    pub fn from_checkpoint(saved: &FileCheckpoint) -> Self {
        Follower {
            path: PathBuf::from(&saved.path),
            id: FileId {
                dev: saved.id.dev,
                inode: saved.id.inode,
            },
            file: None,
            offset: saved.offset,
            fingerprint: saved.fingerprint.into(),
            tail: saved.tail.map(Fingerprint::from),
            long_line: None,
            presence: Presence::Current,
            size: 0,
            mtime: None,
            nlink: 1,
            last_growth: Instant::now(),
        }
    }

    /// Whether the file is open (not just an entry from the checkpoint).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Opens a checkpoint entry on the file found with its identity, at
    /// `path`. Returns what [`Follower::check`] says about it, so a file
    /// truncated while the daemon was down is noticed.
    pub fn reopen(&mut self, path: PathBuf, file: File) -> io::Result<Check> {
        if self.tail.is_none() && file.metadata()?.len() >= self.offset {
            // A version 1 entry: the tail is taken from the file as found.
            self.tail = Some(Fingerprint::read_before(&file, self.offset)?);
        }
        self.path = path;
        self.file = Some(file);
        self.check()
    }

    /// Looks at the file's size, links, first bytes and the bytes just
    /// before the offset. Cheap when nothing changed: one `fstat`.
    pub fn check(&mut self) -> io::Result<Check> {
        let Some(file) = &self.file else {
            return Ok(Check::Same);
        };
        let meta = file.metadata()?;
        let size = meta.len();
        let mtime = meta.modified().ok();
        self.nlink = meta.nlink();
        let mut truncated = size < self.read_to();
        if !truncated && (size != self.size || mtime != self.mtime) {
            let (now, head) = Fingerprint::read(file)?;
            truncated = !self.fingerprint.is_prefix_of(&head);
            // Same first bytes (a shared banner) but other bytes where reading
            // stopped: rewritten in place, not appended to.
            if !truncated {
                truncated = match self.tail {
                    Some(tail) => !tail.ends_at(file, self.offset)?,
                    None => size < self.offset,
                };
            }
            if !truncated {
                self.fingerprint = now;
            }
        }
        if size > self.size {
            self.last_growth = Instant::now();
        }
        self.size = size;
        self.mtime = mtime;
        if !truncated {
            return Ok(Check::Same);
        }
        let old_offset = self.offset;
        let old_fingerprint = self.fingerprint;
        let old_tail = self.tail.unwrap_or_default();
        self.offset = 0;
        self.tail = Some(Fingerprint::of(&[]));
        self.long_line = None;
        self.fingerprint = Fingerprint::read(file)?.0;
        self.last_growth = Instant::now();
        Ok(Check::Truncated {
            size,
            old_offset,
            old_fingerprint,
            old_tail,
        })
    }

    /// Reads and tallies complete lines from [`Follower::offset`], at most
    /// about `budget` bytes. `buf` is `max_line_bytes + 1` long.
    pub fn read(
        &mut self,
        matcher: &Matcher,
        buf: &mut [u8],
        budget: u64,
        tally: &mut Tally,
    ) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        let Some(file) = &self.file else {
            return Ok(outcome);
        };
        if self.size <= self.read_to() {
            return Ok(outcome);
        }
        let max_line = buf.len() - 1;
        let mut read = 0u64;
        loop {
            if read >= budget {
                outcome.more = true;
                break;
            }
            if let Some(long) = &mut self.long_line {
                let n = read_full_at(file, buf, long.scanned_to)?;
                read += n as u64;
                match memchr::memchr(b'\n', &buf[..n]) {
                    Some(i) => {
                        let end = long.scanned_to + i as u64 + 1;
                        tally.add(&long.prefix);
                        tally.lines += 1;
                        tally.bytes += end - self.offset;
                        outcome.long_lines += 1;
                        self.offset = end;
                        self.tail = Some(Fingerprint::of_end(&buf[..=i]));
                        self.long_line = None;
                    }
                    None => {
                        long.scanned_to += n as u64;
                        if n < buf.len() {
                            break;
                        }
                    }
                }
                continue;
            }
            let n = read_full_at(file, buf, self.offset)?;
            read += n as u64;
            match memchr::memrchr(b'\n', &buf[..n]) {
                Some(last) => {
                    let block = &buf[..=last];
                    tally.lines += memchr::memchr_iter(b'\n', block).count() as u64;
                    tally.bytes += block.len() as u64;
                    matcher.count_matches(block, tally);
                    self.offset += block.len() as u64;
                    self.tail = Some(Fingerprint::of_end(block));
                    if n < buf.len() {
                        // End of file; any rest is a partial line, held until its newline.
                        break;
                    }
                }
                None if n == buf.len() => {
                    let mut prefix = Tally::new(matcher.event_count());
                    matcher.count_matches(&buf[..max_line], &mut prefix);
                    prefix.samples_to_unparsed();
                    self.long_line = Some(LongLine {
                        scanned_to: self.offset + n as u64,
                        prefix,
                    });
                }
                None => break,
            }
        }
        Ok(outcome)
    }

    /// Counts an unterminated last line as a line, for a rotated or deleted
    /// file being released: its writer has moved on, the newline will never
    /// come. Call after [`Follower::read`]. Returns the long lines counted.
    pub fn finish(
        &mut self,
        matcher: &Matcher,
        buf: &mut [u8],
        tally: &mut Tally,
    ) -> io::Result<u64> {
        let Some(file) = &self.file else {
            return Ok(0);
        };
        if let Some(long) = self.long_line.take() {
            tally.add(&long.prefix);
            tally.lines += 1;
            tally.bytes += self.size.max(long.scanned_to) - self.offset;
            self.offset = self.size.max(long.scanned_to);
            self.tail = Some(Fingerprint::read_before(file, self.offset)?);
            return Ok(1);
        }
        if self.size > self.offset {
            let n = read_full_at(file, buf, self.offset)?;
            if n > 0 {
                tally.lines += 1;
                tally.bytes += n as u64;
                matcher.count_matches(&buf[..n], tally);
                self.offset += n as u64;
                self.tail = Some(Fingerprint::of_end(&buf[..n]));
            }
        }
        Ok(0)
    }

    /// Bytes in the file beyond what was counted.
    pub fn lag(&self) -> u64 {
        self.size.saturating_sub(self.offset)
    }

    /// Whether the file has no links left (deleted while open).
    pub fn is_unlinked(&self) -> bool {
        self.nlink == 0
    }

    /// Whether the file has not grown for `quiet`.
    pub fn is_quiet_for(&self, quiet: std::time::Duration) -> bool {
        self.last_growth.elapsed() >= quiet
    }

    /// The entry saved in the checkpoint.
    pub fn checkpoint(&self) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.to_string_lossy().into_owned(),
            id: StoredFileId {
                dev: self.id.dev,
                inode: self.id.inode,
            },
            offset: self.offset,
            fingerprint: self.fingerprint.into(),
            tail: self.tail.map(StoredFingerprint::from),
        }
    }

    /// Where reading has got to, a long line being skipped included.
    fn read_to(&self) -> u64 {
        self.long_line
            .as_ref()
            .map_or(self.offset, |l| l.scanned_to)
    }
}

/// Where `start_at = "end"` starts: after the file's last newline, so a
/// line being written is counted once it is complete. A file whose tail has
/// no newline in the last 64 KiB starts at its end; one with no newline at
/// all (and smaller) starts at 0.
pub fn end_of_last_line(file: &File, size: u64) -> io::Result<u64> {
    let from = size.saturating_sub(START_AT_END_LOOKBACK);
    let mut tail = vec![0; (size - from) as usize];
    let n = read_full_at(file, &mut tail, from)?;
    Ok(match memchr::memrchr(b'\n', &tail[..n]) {
        Some(i) => from + i as u64 + 1,
        None if from == 0 => 0,
        None => size,
    })
}

/// Reads from `offset` until `buf` is full or the file ends.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
