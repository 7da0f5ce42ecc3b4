//! Durable file writes, shared by the log checkpoint, `audit --out` and the
//! scheduled audit reports.
//!
//! Both ways of writing go through a temporary file in the same directory
//! that is fsynced before it takes the real name, and both fsync the
//! directory after, so a crash at any instant leaves either no file, the old
//! one, or the new one whole, never a mix. They differ only in what happens
//! when the name is taken: [`replace_atomically`] replaces it,
//! [`create_new_durably`] fails with `AlreadyExists`.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably: writes `temp` (which
/// must be in the same directory), fsyncs it, renames it over `path`, and
/// fsyncs the directory.
pub fn replace_atomically(path: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    write_synced(temp, bytes)?;
    std::fs::rename(temp, path)?;
    sync_parent(path)
}

/// Creates `path` holding `bytes`, durably, and only if no file has that
/// name: writes `temp` (same directory), fsyncs it, then hard-links it to
/// `path`, which fails with `AlreadyExists` rather than replace a file that
/// appeared meanwhile. `temp` is removed whatever happens.
pub fn create_new_durably(path: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let linked = write_synced(temp, bytes).and_then(|()| std::fs::hard_link(temp, path));
    // The temporary name is not needed once linked, nor after a failure.
    let _ = std::fs::remove_file(temp);
    linked?;
    sync_parent(path)
}

/// Writes `bytes` to a new file at `path` and fsyncs it. Whatever had the
/// name (a temp left by a crash, a planted symlink) is removed first and
/// the file is created exclusively, so a symlink is never followed: the
/// write can land nowhere but in a fresh file of its own.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A new or renamed name is only durable once its directory entry is on disk.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let temp = dir.path().join("f.tmp");
        std::fs::write(&path, b"old").unwrap();
        replace_atomically(&path, &temp, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!temp.exists());
    }

    /// A symlink at the final name or at the temporary name is replaced,
    /// never followed: the file it points to keeps its bytes.
    #[cfg(unix)]
    #[test]
    fn symlinks_are_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let path = dir.path().join("f");
        let temp = dir.path().join("f.tmp");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        replace_atomically(&path, &temp, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn create_new_never_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let temp = dir.path().join(".f.tmp");
        create_new_durably(&path, &temp, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert!(!temp.exists());
        let e = create_new_durably(&path, &temp, b"second").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert!(!temp.exists());
    }
}
