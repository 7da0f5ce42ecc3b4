//! Durable file replacement, shared by the log checkpoint and `audit --out`.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` atomically and durably: writes `temp` (which
/// must be in the same directory), fsyncs it, renames it over `path`, and
/// fsyncs the directory, so a crash at any instant leaves either the old
/// file or the new one, never a mix.
pub fn replace_atomically(path: &Path, temp: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(temp, path)?;
    // The rename is only durable once the directory entry is on disk.
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
}
