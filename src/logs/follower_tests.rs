//! Tests of [`super`] (follower.rs), kept apart so the module reads as its logic.

use super::*;
use crate::config::{LogSourceConfig, StartAt};
use std::io::Write;

fn matcher() -> Matcher {
    Matcher::new(&LogSourceConfig {
        name: "t".into(),
        paths: vec!["/x".into()],
        start_at: StartAt::Beginning,
        namespace: None,
        index: None,
        error_markers: vec!["E11000".into()],
        recovery_markers: vec!["recovered".into()],
        poll_interval: std::time::Duration::from_secs(1),
        max_line_bytes: 16,
        events: vec![],
        request_event: None,
    })
    .unwrap()
}

fn follower(path: &std::path::Path) -> Follower {
    let file = File::open(path).unwrap();
    let meta = file.metadata().unwrap();
    Follower::open(path.to_path_buf(), file, &meta, 0).unwrap()
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn step(f: &mut Follower, m: &Matcher, buf: &mut [u8]) -> (Tally, ReadOutcome) {
    f.check().unwrap();
    let mut t = Tally::new(0);
    let o = f.read(m, buf, u64::MAX, &mut t).unwrap();
    (t, o)
}

#[test]
fn fingerprint_prefix() {
    let fp = Fingerprint::of(b"abc");
    assert!(fp.is_prefix_of(b"abcdef"));
    assert!(!fp.is_prefix_of(b"ab"));
    assert!(!fp.is_prefix_of(b"xbcdef"));
    assert_eq!(Fingerprint::of(&[7; 1000]).len, FINGERPRINT_BYTES as u32);
}

#[test]
fn partial_line_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, b"one\ntw");
    let m = matcher();
    let mut buf = vec![0; 17];
    let mut f = follower(&path);
    let (t, _) = step(&mut f, &m, &mut buf);
    assert_eq!((t.lines, t.bytes, f.offset), (1, 4, 4));
    append(&path, b"o E11000\n");
    let (t, _) = step(&mut f, &m, &mut buf);
    assert_eq!((t.lines, t.bytes, t.errors.len()), (1, 11, 1));
}

#[test]
fn long_line_is_counted_once_with_its_prefix_matched_and_the_next_line_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let m = matcher();
    let mut buf = vec![0; 17];
    append(&path, b"E11000 and then a very long tail");
    let mut f = follower(&path);
    let (t, o) = step(&mut f, &m, &mut buf);
    assert_eq!(
        (t.lines, o.long_lines, f.offset),
        (0, 0, 0),
        "not complete yet"
    );
    append(&path, &[b'x'; 100]);
    append(&path, b"\nrecovered\n");
    let (t, o) = step(&mut f, &m, &mut buf);
    assert_eq!(o.long_lines, 1);
    assert_eq!(t.lines, 2);
    assert_eq!(t.errors.values().sum::<u64>(), 1);
    assert_eq!(t.recoveries, 1);
    assert_eq!(f.offset, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn line_of_exactly_max_line_bytes_is_not_long() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, &[b'a'; 16]);
    append(&path, b"\n");
    append(&path, &[b'b'; 17]);
    append(&path, b"\n");
    let m = matcher();
    let mut buf = vec![0; 17];
    let (t, o) = step(&mut follower(&path), &m, &mut buf);
    assert_eq!((t.lines, o.long_lines), (2, 1));
}

#[test]
fn truncation_is_seen_by_size_and_by_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, b"first line\nsecond\n");
    let m = matcher();
    let mut buf = vec![0; 17];
    let mut f = follower(&path);
    step(&mut f, &m, &mut buf);
    std::fs::write(&path, b"x\n").unwrap();
    assert!(matches!(
        f.check().unwrap(),
        Check::Truncated {
            size: 2,
            old_offset: 18,
            ..
        }
    ));
    assert_eq!(f.offset, 0);
    step(&mut f, &m, &mut buf);
    std::fs::write(&path, b"rewritten longer than before\n").unwrap();
    assert!(matches!(
        f.check().unwrap(),
        Check::Truncated { old_offset: 2, .. }
    ));
}

/// A rotated file is released once quiet: measured on tokio's clock,
/// so the quiet period passes here without waiting for it.
#[tokio::test(start_paused = true)]
async fn quiet_period_restarts_when_the_file_grows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, b"one\n");
    let quiet = std::time::Duration::from_secs(10);
    let mut f = follower(&path);
    assert!(!f.is_quiet_for(quiet));
    tokio::time::advance(quiet).await;
    f.check().unwrap();
    assert!(f.is_quiet_for(quiet), "unchanged for the whole period");
    append(&path, b"two\n");
    f.check().unwrap();
    assert!(!f.is_quiet_for(quiet), "grew: the period starts again");
    tokio::time::advance(quiet / 2).await;
    assert!(!f.is_quiet_for(quiet));
    tokio::time::advance(quiet / 2).await;
    assert!(f.is_quiet_for(quiet));
}

/// Issue 13, item 6, on one follower: rewritten from byte 0 with more
/// bytes and the same first 256, so neither size nor first bytes tell.
#[test]
fn rewrite_keeping_the_first_bytes_is_seen_by_the_bytes_before_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let banner = [b'='; 300];
    append(&path, &banner);
    append(&path, b"\nfirst\n");
    let m = matcher();
    let mut buf = vec![0; 1024];
    let mut f = follower(&path);
    step(&mut f, &m, &mut buf);
    assert_eq!(f.offset, 307);
    let mut rewritten = banner.to_vec();
    rewritten.extend_from_slice(b"\nagain\nand more\n");
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
        &rewritten,
        0,
    )
    .unwrap();
    assert!(matches!(
        f.check().unwrap(),
        Check::Truncated { old_offset: 307, .. }
    ));
    assert_eq!(f.offset, 0);
    // Appending after the offset is no rewrite.
    step(&mut f, &m, &mut buf);
    append(&path, b"appended\n");
    assert_eq!(f.check().unwrap(), Check::Same);
}

#[test]
fn budget_stops_early_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, "line\n".repeat(100).as_bytes());
    let m = matcher();
    let mut buf = vec![0; 17];
    let mut f = follower(&path);
    f.check().unwrap();
    let mut t = Tally::new(0);
    let o = f.read(&m, &mut buf, 40, &mut t).unwrap();
    assert!(o.more);
    assert!(t.lines < 100);
    let o = f.read(&m, &mut buf, u64::MAX, &mut t).unwrap();
    assert!(!o.more);
    assert_eq!(t.lines, 100);
}

#[test]
fn finish_counts_the_unterminated_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, b"a\nE11000 tail");
    let m = matcher();
    let mut buf = vec![0; 17];
    let mut f = follower(&path);
    let (mut t, _) = step(&mut f, &m, &mut buf);
    f.finish(&m, &mut buf, &mut t).unwrap();
    assert_eq!((t.lines, t.bytes, t.errors.len()), (2, 13, 1));
}

#[test]
fn start_at_end_skips_to_after_the_last_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    append(&path, b"a\nbb\nparti");
    let file = File::open(&path).unwrap();
    assert_eq!(end_of_last_line(&file, 10).unwrap(), 5);
    std::fs::write(&path, b"no newline").unwrap();
    assert_eq!(end_of_last_line(&file, 10).unwrap(), 0);
}
