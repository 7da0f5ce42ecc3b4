//! Tests of [`super`] (source.rs): one source's polls, driven by hand.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tokio::time::Instant;

use super::*;
use crate::config::StartAt;

fn append(path: &Path, text: &str) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

/// Regression (review of 65bf1ca): a poll that found a new file read no
/// file of the source, so files appearing at every poll starved the reading
/// of the old ones. Only the new files wait for the next poll.
#[test]
fn a_new_file_at_every_poll_does_not_stop_an_old_file_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.log");
    append(&old, "a\n");
    let config = LogSourceConfig {
        name: "app".into(),
        paths: vec![dir.path().join("*.log").to_string_lossy().into_owned()],
        start_at: StartAt::Beginning,
        namespace: None,
        index: None,
        error_markers: vec![],
        recovery_markers: vec![],
        poll_interval: std::time::Duration::from_millis(10),
        max_line_bytes: 1 << 16,
        events: vec![],
        request_event: None,
    };
    let mut source = Source::new(config, None, Arc::new(Tuning::default()), Arc::new(AtomicBool::new(false)), Instant::now()).unwrap();
    source.poll();
    assert_eq!(source.pending.lines, 0, "the first poll saves the new file before reading it");
    for i in 0..6u64 {
        append(&dir.path().join(format!("new{i}.log")), "x\n");
        append(&old, "b\n");
        source.poll();
        // old.log to its end (i + 2 lines), and the files found before this poll (one line each).
        assert_eq!(source.pending.lines, 2 * i + 2, "poll {i}");
    }
    source.poll();
    assert_eq!(source.pending.lines, 6 + 1 + 6, "the last new file is read by the next poll");
}
