//! The tailer's state on disk: for every source, where each file was read up
//! to and the totals counted up to there, in one versioned JSON file.
//!
//! Offsets and totals live in the same file and are replaced together, so
//! after a crash at any instant the tailer resumes from a pair that belong to
//! each other: lines after the offsets were not counted and are read again,
//! lines before them were counted and are not. A save writes a temp file,
//! fsyncs it, renames it over the stable file and fsyncs the directory. A
//! load prefers whichever of the two files is valid and newer (by
//! `generation`), so a crash between the fsync and the rename loses nothing,
//! and a torn temp file is ignored. A missing file is a first start; a
//! corrupt one is set aside, never deleted, and the tailer starts afresh.
//!
//! This module owns the on-disk types; the follower converts its state to
//! and from them (`Follower::checkpoint`, `Follower::from_checkpoint`), the
//! one place where the two meet, so this module depends on no follower type.
//!
//! Version 2 added each file's [`FileCheckpoint::tail`]; a version 1 file
//! is read as one without it (the tail is then taken from the file when it
//! is found again). Version 3 added the duration events' histograms
//! ([`SourceTotals::durations`]); an older file is read as one without any.
//! A version 2 uniqwatch sets a version 3 file aside rather than drop them,
//! so a file is written as version 3 only when some source has a duration
//! event; otherwise it is version 2, byte for byte what a version 2 build
//! writes, and a rollback resumes from it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SourceTotals;

/// Name of the stable checkpoint file in `[state] dir`.
pub const FILE_NAME: &str = "logs-checkpoint.json";
/// Name of the file a save writes before renaming it over [`FILE_NAME`].
pub const TEMP_FILE_NAME: &str = "logs-checkpoint.json.tmp";
/// The format this build writes.
pub const VERSION: u32 = 3;
/// The format written while no source has a duration event: version 2,
/// which version 3 only extends with `durations`.
const VERSION_WITHOUT_DURATIONS: u32 = 2;
/// Older formats this build still reads.
const READS_ALSO: &[u32] = &[1, 2];

/// Everything the tailer must remember across a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version; a file of another version is set aside, not guessed at.
    pub version: u32,
    /// Grows by one with every save, so of two valid files the newer wins.
    pub generation: u64,
    /// Source name (`[[logs]] name`) → its state.
    pub sources: BTreeMap<String, SourceCheckpoint>,
}

/// One source: its committed totals and the files they were counted from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCheckpoint {
    /// Totals up to the offsets below; what the counters resume from.
    pub totals: SourceTotals,
    /// `uniqwatch_log_rotations_total`, resumed after a restart.
    pub rotations: u64,
    /// `uniqwatch_log_truncations_total`, resumed after a restart.
    pub truncations: u64,
    /// `uniqwatch_log_long_lines_total`, resumed after a restart.
    pub long_lines: u64,
    /// Files followed at the time of the save, rotated ones being drained included.
    pub files: Vec<FileCheckpoint>,
}

/// Where one file was read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckpoint {
    /// Last path the file was seen at: for logs, and for finding it by inode
    /// in the same directory if it was renamed while the daemon was down.
    pub path: String,
    /// Device and inode: the file's identity, whatever its name.
    pub id: StoredFileId,
    /// Start of the first line not counted yet.
    pub offset: u64,
    /// Hash of the file's first bytes, to tell a truncated or replaced file
    /// (same inode, new content) from the one that was read.
    pub fingerprint: StoredFingerprint,
    /// Hash of the bytes just before `offset`: a file rewritten in place
    /// under the same first bytes, or the copy a copytruncate made, is told
    /// by them. Absent in version 1 files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<StoredFingerprint>,
}

/// A file's device and inode, as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredFileId {
    pub dev: u64,
    pub inode: u64,
}

/// A hash of some bytes of a file, as saved: how many, and their FNV-1a 64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredFingerprint {
    pub len: u32,
    pub hash: u64,
}

/// A checkpoint file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read log checkpoint {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write log checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set aside the corrupt log checkpoint {path}: {source}")]
    SetAside {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The state to resume from; `None` on a first start or after corruption.
    pub checkpoint: Option<Checkpoint>,
    /// A corrupt checkpoint moved out of the way, with what was wrong with it.
    pub set_aside: Option<(PathBuf, String)>,
    /// Whether the temp file was newer than the stable one (a save that
    /// crashed between its fsync and its rename).
    pub from_temp: bool,
}

/// Parses a checkpoint, saying what is wrong when it cannot be used.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version = serde_json::from_slice::<VersionOnly>(bytes)
        .map_err(|e| format!("not a checkpoint: {e}"))?
        .version;
    if version != VERSION && !READS_ALSO.contains(&version) {
        return Err(format!(
            "expected format version {VERSION} (or {READS_ALSO:?}), found version {version}"
        ));
    }
    let mut checkpoint: Checkpoint = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a version {version} checkpoint: {e}"))?;
    checkpoint.version = VERSION;
    Ok(checkpoint)
}

/// The bytes [`save`] writes: version 2 while no source holds a duration
/// event (the same bytes as a version 2 build writes, so rolling back to
/// one loses nothing), version 3 only once one does.
pub fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    /// [`Checkpoint`] with the version written, borrowing the rest.
    #[derive(Serialize)]
    struct Written<'a> {
        version: u32,
        generation: u64,
        sources: &'a BTreeMap<String, SourceCheckpoint>,
    }
    let needs_3 = checkpoint.sources.values().any(|s| !s.totals.durations.is_empty());
    let written = Written {
        version: if needs_3 { VERSION } else { VERSION_WITHOUT_DURATIONS },
        generation: checkpoint.generation,
        sources: &checkpoint.sources,
    };
    // Plain structs of strings, numbers and maps with string keys always serialise.
    let mut bytes = serde_json::to_vec_pretty(&written).expect("checkpoint serialises to JSON");
    bytes.push(b'\n');
    bytes
}

/// The totals the checkpoint in `dir` holds, read without changing anything
/// (a corrupt file is left for [`load`] to set aside): what the tailer will
/// resume from. Empty when there is no usable checkpoint.
pub fn peek_totals(dir: &Path) -> crate::logs::LogTotals {
    let read = |name| fs::read(dir.join(name)).ok().and_then(|bytes| decode(&bytes).ok());
    let newest = match (read(FILE_NAME), read(TEMP_FILE_NAME)) {
        (Some(stable), Some(temp)) => Some(if temp.generation > stable.generation { temp } else { stable }),
        (stable, temp) => stable.or(temp),
    };
    crate::logs::LogTotals {
        sources: newest
            .map(|c| c.sources.into_iter().map(|(name, source)| (name, source.totals)).collect())
            .unwrap_or_default(),
    }
}

/// Reads the checkpoint in `dir`, preferring the newer valid one of the
/// stable and temp files. Only an I/O error other than "not found" fails:
/// starting afresh then could overwrite totals that are merely unreadable.
pub fn load(dir: &Path) -> Result<Loaded, CheckpointError> {
    let stable_path = dir.join(FILE_NAME);
    let temp_path = dir.join(TEMP_FILE_NAME);
    let stable = read_optional(&stable_path)?;
    let temp = read_optional(&temp_path)?;
    let stable_parsed = stable.as_deref().map(decode);
    let temp_valid = temp.as_deref().and_then(|bytes| decode(bytes).ok());

    let mut loaded = Loaded::default();
    match (stable_parsed, temp_valid) {
        (Some(Ok(stable)), Some(temp)) if temp.generation > stable.generation => {
            loaded.checkpoint = Some(temp);
            loaded.from_temp = true;
        }
        (Some(Ok(stable)), _) => loaded.checkpoint = Some(stable),
        (_, Some(temp)) => {
            loaded.checkpoint = Some(temp);
            loaded.from_temp = true;
        }
        (Some(Err(problem)), None) => {
            let aside = dir.join(format!(
                "{FILE_NAME}.corrupt-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ));
            fs::rename(&stable_path, &aside).map_err(|source| CheckpointError::SetAside {
                path: stable_path.clone(),
                source,
            })?;
            loaded.set_aside = Some((aside, problem));
        }
        (None, None) => {}
    }
    Ok(loaded)
}

/// Replaces the checkpoint in `dir` atomically and durably: temp file,
/// fsync, rename over the stable file, fsync of the directory.
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let stable_path = dir.join(FILE_NAME);
    crate::fsutil::replace_atomically(&stable_path, &dir.join(TEMP_FILE_NAME), &encode(checkpoint))
        .map_err(|source| CheckpointError::Write { path: stable_path, source })
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CheckpointError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(generation: u64, lines: u64) -> Checkpoint {
        let mut sources = BTreeMap::new();
        sources.insert(
            "app".to_string(),
            SourceCheckpoint {
                totals: SourceTotals {
                    lines,
                    ..Default::default()
                },
                files: vec![FileCheckpoint {
                    path: "/var/log/app.log".into(),
                    id: StoredFileId { dev: 1, inode: 2 },
                    offset: lines * 10,
                    fingerprint: StoredFingerprint { len: 3, hash: 99 },
                    tail: Some(StoredFingerprint { len: 2, hash: 7 }),
                }],
                ..Default::default()
            },
        );
        Checkpoint {
            version: VERSION,
            generation,
            sources,
        }
    }

    fn lines(loaded: &Loaded) -> u64 {
        loaded.checkpoint.as_ref().unwrap().sources["app"]
            .totals
            .lines
    }

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load(dir.path()).unwrap();
        assert!(loaded.checkpoint.is_none() && loaded.set_aside.is_none());
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &checkpoint(1, 5)).unwrap();
        assert!(!dir.path().join(TEMP_FILE_NAME).exists());
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.checkpoint, Some(checkpoint(1, 5)));
        assert!(!loaded.from_temp);
    }

    /// A crash after the temp file's fsync but before the rename.
    #[test]
    fn newer_valid_temp_wins() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &checkpoint(1, 5)).unwrap();
        fs::write(dir.path().join(TEMP_FILE_NAME), encode(&checkpoint(2, 8))).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(lines(&loaded), 8);
        assert!(loaded.from_temp);
    }

    /// A crash in the middle of writing the temp file.
    #[test]
    fn torn_temp_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &checkpoint(1, 5)).unwrap();
        let bytes = encode(&checkpoint(2, 8));
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 3] {
            fs::write(dir.path().join(TEMP_FILE_NAME), &bytes[..cut]).unwrap();
            assert_eq!(lines(&load(dir.path()).unwrap()), 5, "temp cut at {cut}");
        }
    }

    #[test]
    fn stale_temp_older_than_stable_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &checkpoint(5, 50)).unwrap();
        fs::write(dir.path().join(TEMP_FILE_NAME), encode(&checkpoint(4, 40))).unwrap();
        assert_eq!(lines(&load(dir.path()).unwrap()), 50);
    }

    /// A crash before the very first rename: only the temp file exists.
    #[test]
    fn temp_alone_is_used() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TEMP_FILE_NAME), encode(&checkpoint(1, 3))).unwrap();
        assert_eq!(lines(&load(dir.path()).unwrap()), 3);
    }

    #[test]
    fn corrupt_stable_is_set_aside_and_start_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            b"{\"version\":1,\"generation\":",
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        assert!(loaded.checkpoint.is_none());
        let (aside, problem) = loaded.set_aside.unwrap();
        assert!(aside.exists(), "{aside:?}");
        assert!(!dir.path().join(FILE_NAME).exists());
        assert!(problem.contains("not a checkpoint"), "{problem}");
    }

    #[test]
    fn corrupt_stable_with_valid_temp_uses_temp() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        fs::write(dir.path().join(TEMP_FILE_NAME), encode(&checkpoint(3, 7))).unwrap();
        assert_eq!(lines(&load(dir.path()).unwrap()), 7);
    }

    #[test]
    fn other_version_is_refused_with_both_versions_named() {
        let mut c = checkpoint(1, 1);
        c.version = 9;
        let problem = decode(&serde_json::to_vec(&c).unwrap()).unwrap_err();
        assert!(
            problem.contains("expected format version 3 (or [1, 2]), found version 9"),
            "{problem}"
        );
    }

    /// A version 1 file (no tails) is read, and saved again as version 2.
    #[test]
    fn version_1_is_read_without_tails() {
        let v1 = br#"{"version":1,"generation":4,"sources":{"app":{"totals":{"duplicate_key_errors":[],"recoveries":0,"events":{},"lines":3,"bytes":30},"rotations":0,"truncations":0,"long_lines":0,"files":[{"path":"/a.log","id":{"dev":1,"inode":2},"offset":30,"fingerprint":{"len":30,"hash":5}}]}}}"#;
        let c = decode(v1).unwrap();
        assert_eq!(c.version, VERSION);
        assert_eq!(c.sources["app"].files[0].tail, None);
        assert_eq!(c.sources["app"].files[0].offset, 30);
    }

    /// A version 2 file (no histograms) is read, and saved again as version 3.
    #[test]
    fn version_2_is_read_without_histograms() {
        let v2 = br#"{"version":2,"generation":4,"sources":{"app":{"totals":{"duplicate_key_errors":[],"recoveries":0,"events":{"create_or_get":7},"lines":3,"bytes":30},"rotations":0,"truncations":0,"long_lines":0,"files":[{"path":"/a.log","id":{"dev":1,"inode":2},"offset":30,"fingerprint":{"len":30,"hash":5},"tail":{"len":30,"hash":5}}]}}}"#;
        let c = decode(v2).unwrap();
        assert_eq!(c.version, VERSION);
        assert!(c.sources["app"].totals.durations.is_empty());
        assert_eq!(c.sources["app"].totals.events["create_or_get"], 7);
        assert_eq!(decode(&encode(&c)).unwrap(), c);
    }

    /// Regression (review of f0608be): every file became version 3, which a
    /// version 2 build sets aside; without duration events it stays version 2.
    #[test]
    fn version_2_is_written_until_a_source_has_durations() {
        let c = checkpoint(3, 5);
        let bytes = encode(&c);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], 2);
        assert!(!String::from_utf8_lossy(&bytes).contains("durations"));
        assert_eq!(decode(&bytes).unwrap(), c);
        let mut with = c.clone();
        with.sources.get_mut("app").unwrap().totals.durations.insert("e".into(), Default::default());
        let json: serde_json::Value = serde_json::from_slice(&encode(&with)).unwrap();
        assert_eq!(json["version"], 3);
        assert_eq!(decode(&encode(&with)).unwrap(), with);
    }

    /// Histograms (buckets, count, exact sum per status class) survive a
    /// save and a load unchanged.
    #[test]
    fn histograms_round_trip() {
        use crate::logs::durations::{EventDurations, Histogram};
        let dir = tempfile::tempdir().unwrap();
        let mut c = checkpoint(1, 5);
        let h = Histogram { buckets: vec![1, 0, 2, 1], count: 4, sum_nanos: 18_446_744_073_709_551_615 };
        let d = EventDurations {
            bounds_nanos: vec![5_000_000, 10_000_000, 2_500_000_000],
            unparsed: 3,
            by_status_class: [("2xx".to_string(), h.clone()), ("5xx".to_string(), Histogram::default())].into(),
            ..Default::default()
        };
        c.sources.get_mut("app").unwrap().totals.durations.insert("create_or_get".into(), d);
        save(dir.path(), &c).unwrap();
        let loaded = load(dir.path()).unwrap().checkpoint.unwrap();
        assert_eq!(loaded, c);
        assert_eq!(loaded.sources["app"].totals.durations["create_or_get"].by_status_class["2xx"], h);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Cases each property runs (the closing note of issue 13 reports them).
        const CASES: u32 = 1000;

        /// A valid checkpoint's bytes, then damaged: cut short, bytes
        /// overwritten, bytes inserted.
        fn damaged() -> impl Strategy<Value = Vec<u8>> {
            let valid = encode(&checkpoint(3, 7));
            let len = valid.len();
            (
                0..=len,
                proptest::collection::vec((0..len, any::<u8>()), 0..6),
                proptest::collection::vec((0..len, any::<u8>()), 0..3),
            )
                .prop_map(move |(cut, overwrite, insert)| {
                    let mut bytes = valid.clone();
                    for (at, b) in overwrite {
                        bytes[at] = b;
                    }
                    for (at, b) in insert {
                        bytes.insert(at.min(bytes.len()), b);
                    }
                    bytes.truncate(cut);
                    bytes
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            /// Arbitrary bytes: an error or a checkpoint, never a panic.
            #[test]
            fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(c) = decode(&bytes) {
                    prop_assert_eq!(decode(&encode(&c)).unwrap(), c);
                }
            }

            /// A damaged stable file, beside a damaged temp file or none:
            /// loading never panics, and gives a checkpoint that saves and
            /// loads again as itself, or a fresh start with the damaged
            /// file set aside.
            #[test]
            fn load_of_damaged_files_never_panics(
                stable in damaged(),
                temp in proptest::option::of(damaged()),
            ) {
                let dir = tempfile::tempdir().unwrap();
                fs::write(dir.path().join(FILE_NAME), &stable).unwrap();
                if let Some(temp) = &temp {
                    fs::write(dir.path().join(TEMP_FILE_NAME), temp).unwrap();
                }
                let loaded = load(dir.path()).unwrap();
                match loaded.checkpoint {
                    Some(c) => prop_assert_eq!(decode(&encode(&c)).unwrap(), c),
                    None => prop_assert!(loaded.set_aside.is_some()),
                }
            }
        }
    }

    #[test]
    fn save_into_missing_directory_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = save(&missing, &checkpoint(1, 1)).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains(FILE_NAME), "{e}");
    }
}
