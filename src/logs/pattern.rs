//! Expanding one `paths` pattern into the files it names, within bounds.
//!
//! The `glob` crate follows `**` through symbolic links without noticing a
//! loop (`g/l1 -> .`) and has no limit on how much it walks, so one pattern
//! could spin forever and hold up every other source and shutdown. This
//! walker matches the same patterns (each component with
//! [`glob::Pattern`], `**` as zero or more directories) and stops at a bound:
//! a directory already entered by the same `**` (by device and inode), a
//! depth, a number of directory entries, a time budget, or the tailer being
//! stopped. An expansion cut short, like one with a directory that could not
//! be listed, is *incomplete*: the caller then infers no rename or deletion
//! from a file it did not see.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::follower::FileId;

/// How far one expansion may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most directories one `**` descends below where it starts.
    pub max_depth: usize,
    /// Most directory entries looked at by one expansion.
    pub max_entries: usize,
    /// Longest one expansion may take.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_entries: 100_000,
            time_budget: Duration::from_secs(1),
        }
    }
}

/// Which bound cut an expansion short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Depth,
    Entries,
    Time,
    Stopped,
}

impl Bound {
    /// The bound as the operator reads it in a log line.
    pub fn describe(self, limits: &Limits) -> String {
        match self {
            Bound::Depth => format!("`**` deeper than {} directories", limits.max_depth),
            Bound::Entries => format!("more than {} directory entries", limits.max_entries),
            Bound::Time => format!("listing took longer than {:?}", limits.time_budget),
            Bound::Stopped => "the tailer is stopping".to_string(),
        }
    }
}

/// What one expansion found.
#[derive(Debug, Default)]
pub struct Expansion {
    /// Paths matching the pattern (files or not: the caller stats them), sorted.
    pub paths: Vec<PathBuf>,
    /// A directory that could not be listed (not one that does not exist).
    pub listing_error: Option<io::Error>,
    /// The bound that cut the expansion short; symlink loops skipped are not one.
    pub cut: Option<Bound>,
}

impl Expansion {
    /// Whether every file the pattern names was seen.
    pub fn complete(&self) -> bool {
        self.listing_error.is_none() && self.cut.is_none()
    }
}

/// Expands `pattern` within `limits`, giving up as soon as `stop` is set.
pub fn expand(pattern: &str, limits: &Limits, stop: &AtomicBool) -> Expansion {
    let mut walk = Walk {
        limits,
        stop,
        deadline: Instant::now() + limits.time_budget,
        entries: 0,
        visited: HashSet::new(),
        out: Expansion::default(),
    };
    let mut base = PathBuf::new();
    let mut parts = Vec::new();
    for component in Path::new(pattern).components() {
        match component {
            Component::Normal(part) if parts.is_empty() && !is_wild(part) => base.push(part),
            Component::Normal(part) => parts.push(Part::new(part)),
            other if parts.is_empty() => base.push(other),
            // `..` or `.` after a wildcard: kept literally, as glob does.
            other => parts.push(Part::Literal(other.as_os_str().to_os_string())),
        }
    }
    if parts.is_empty() {
        if fs::symlink_metadata(&base).is_ok() {
            walk.out.paths.push(base);
        }
        return walk.out;
    }
    walk.at(&base, &parts, 0);
    walk.out.paths.sort();
    walk.out.paths.dedup();
    walk.out
}

/// One component of a pattern after its literal base.
enum Part {
    Literal(std::ffi::OsString),
    /// `**`: zero or more directories.
    AnyDirs,
    Wild(glob::Pattern),
}

impl Part {
    fn new(part: &std::ffi::OsStr) -> Part {
        let text = part.to_string_lossy();
        if text == "**" {
            return Part::AnyDirs;
        }
        if !is_wild(part) {
            return Part::Literal(part.to_os_string());
        }
        // Patterns were validated at load; one that is not valid matches itself only.
        match glob::Pattern::new(&text) {
            Ok(p) => Part::Wild(p),
            Err(_) => Part::Literal(part.to_os_string()),
        }
    }
}

/// A relative pattern's empty base is the working directory (its matches
/// are named without a leading `./`, as glob names them).
fn or_here(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

fn is_wild(part: &std::ffi::OsStr) -> bool {
    part.to_string_lossy().contains(['*', '?', '['])
}

struct Walk<'a> {
    limits: &'a Limits,
    stop: &'a AtomicBool,
    deadline: Instant,
    /// Directory entries looked at so far.
    entries: usize,
    /// Directories entered by a `**`, with the index of that `**`: a link
    /// back to one of them is a loop, not a new directory.
    visited: HashSet<(FileId, usize)>,
    out: Expansion,
}

impl Walk<'_> {
    /// Matches `parts[i..]` below `dir`.
    fn at(&mut self, dir: &Path, parts: &[Part], i: usize) {
        if self.out.cut.is_some() {
            return;
        }
        let Some(part) = parts.get(i) else {
            self.out.paths.push(dir.to_path_buf());
            return;
        };
        let last = i + 1 == parts.len();
        match part {
            Part::Literal(name) => {
                let next = dir.join(name);
                if last {
                    if fs::symlink_metadata(&next).is_ok() {
                        self.out.paths.push(next);
                    }
                } else if or_here(&next).is_dir() {
                    self.at(&next, parts, i + 1);
                }
            }
            Part::Wild(pattern) => {
                for (path, name, is_dir) in self.list(dir) {
                    if pattern.matches(&name) {
                        if last {
                            self.out.paths.push(path);
                        } else if is_dir {
                            self.at(&path, parts, i + 1);
                        }
                    }
                }
            }
            Part::AnyDirs => self.any_dirs(dir, parts, i, 0),
        }
    }

    /// `**` at `parts[i]`, `depth` directories below where it started.
    fn any_dirs(&mut self, dir: &Path, parts: &[Part], i: usize, depth: usize) {
        let Ok(meta) = fs::metadata(or_here(dir)) else { return };
        if !self.visited.insert((FileId::of(&meta), i)) {
            return;
        }
        // Zero directories: the rest of the pattern right here.
        self.at(dir, parts, i + 1);
        if i + 1 == parts.len() {
            // A trailing `**` matches every file below too, as glob does.
            for (path, _, is_dir) in self.list(dir) {
                if !is_dir {
                    self.out.paths.push(path);
                }
            }
        }
        let subdirs: Vec<PathBuf> = self
            .list(dir)
            .into_iter()
            .filter(|(_, _, is_dir)| *is_dir)
            .map(|(path, _, _)| path)
            .collect();
        for sub in subdirs {
            if self.out.cut.is_some() {
                return;
            }
            if depth >= self.limits.max_depth {
                self.out.cut = Some(Bound::Depth);
                return;
            }
            self.any_dirs(&sub, parts, i, depth + 1);
        }
    }

    /// The entries of `dir` (path, name, whether it leads to a directory),
    /// sorted; counted against the bounds.
    fn list(&mut self, dir: &Path) -> Vec<(PathBuf, String, bool)> {
        if self.stop.load(Ordering::Relaxed) {
            self.out.cut.get_or_insert(Bound::Stopped);
            return Vec::new();
        }
        if Instant::now() >= self.deadline {
            self.out.cut.get_or_insert(Bound::Time);
            return Vec::new();
        }
        let read = match fs::read_dir(or_here(dir)) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                self.out.listing_error.get_or_insert(e);
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for entry in read {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.out.listing_error.get_or_insert(e);
                    continue;
                }
            };
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                self.out.cut.get_or_insert(Bound::Entries);
                break;
            }
            let path = dir.join(entry.file_name());
            let name = entry.file_name().to_string_lossy().into_owned();
            // Follows links, as glob does; a dangling link is no directory.
            let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
            found.push((path, name, is_dir));
        }
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(e: &Expansion, root: &Path) -> Vec<String> {
        e.paths
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x\n").unwrap();
    }

    #[test]
    fn matches_like_glob() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["a.log", "b.txt", "x/c.log", "x/y/d.log", "z/e.log"] {
            touch(&root.join(f));
        }
        let go = |p: &str| {
            let pattern = root.join(p).display().to_string();
            let e = expand(&pattern, &Limits::default(), &AtomicBool::new(false));
            assert!(e.complete());
            let mut ours = names(&e, root);
            ours.retain(|n| root.join(n).is_file());
            let mut theirs: Vec<String> = glob::glob(&pattern)
                .unwrap()
                .flatten()
                .filter(|p| p.is_file())
                .map(|p| p.strip_prefix(root).unwrap().display().to_string())
                .collect();
            theirs.sort();
            assert_eq!(ours, theirs, "{p}");
            ours
        };
        assert_eq!(go("*.log"), ["a.log"]);
        assert_eq!(go("**/*.log"), ["a.log", "x/c.log", "x/y/d.log", "z/e.log"]);
        assert_eq!(go("x/**/*.log"), ["x/c.log", "x/y/d.log"]);
        assert_eq!(go("*/c.log"), ["x/c.log"]);
        assert_eq!(go("x/y/d.log"), ["x/y/d.log"]);
        assert_eq!(go("?.txt"), ["b.txt"]);
        assert!(go("nope/*.log").is_empty());
    }

    /// Issue 13, item 8: two links back to their own directory made `**`
    /// walk forever. Each directory is entered once; the loop is no bound.
    #[test]
    fn symlink_loops_are_entered_once() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("g");
        touch(&g.join("app.log"));
        symlink(".", g.join("l1")).unwrap();
        symlink(".", g.join("l2")).unwrap();
        let e = expand(
            &g.join("**/*.log").display().to_string(),
            &Limits::default(),
            &AtomicBool::new(false),
        );
        assert_eq!(names(&e, &g), ["app.log"]);
        assert!(e.complete(), "{:?}", e.cut);
    }

    #[test]
    fn depth_and_entry_limits_cut_the_expansion_short() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().to_path_buf();
        for i in 0..6 {
            deep.push(format!("d{i}"));
        }
        touch(&deep.join("a.log"));
        let pattern = dir.path().join("**/*.log").display().to_string();
        let stop = AtomicBool::new(false);
        let shallow = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert_eq!(expand(&pattern, &shallow, &stop).cut, Some(Bound::Depth));
        let few = Limits {
            max_entries: 2,
            ..Limits::default()
        };
        assert_eq!(expand(&pattern, &few, &stop).cut, Some(Bound::Entries));
        let e = expand(&pattern, &Limits::default(), &stop);
        assert_eq!(e.paths.len(), 1);
        assert!(e.complete());
    }

    #[test]
    fn a_stop_or_a_spent_budget_cuts_the_expansion_short() {
        let dir = tempfile::tempdir().unwrap();
        touch(&dir.path().join("a/a.log"));
        let pattern = dir.path().join("**/*.log").display().to_string();
        let stopped = expand(&pattern, &Limits::default(), &AtomicBool::new(true));
        assert_eq!(stopped.cut, Some(Bound::Stopped));
        let no_time = Limits {
            time_budget: Duration::ZERO,
            ..Limits::default()
        };
        let e = expand(&pattern, &no_time, &AtomicBool::new(false));
        assert_eq!(e.cut, Some(Bound::Time));
        assert!(!e.complete());
    }
}
