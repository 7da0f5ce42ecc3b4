//! The task that owns the history store and does every write.
//!
//! Producers never wait on the disk: the check runner `try_send`s batches
//! of [`RunRecord`]s on a bounded channel (and counts what it has to drop),
//! and the log tailer publishes its persisted totals on a `watch` channel,
//! which keeps only the latest. This task hands each write to a blocking
//! thread, one at a time, and prunes old history once a day.
//!
//! A failed write (disk full, corrupt file, locked) moves
//! `uniqwatch_history_write_failures_total{reason}` every time and logs once
//! per transition; the writer keeps going, and the next success is logged
//! as a recovery. Log totals are retried on the next tick, so a failure
//! loses nothing there; a failed batch of runs is dropped and counted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{interval, MissedTickBehavior};

use super::{RunRecord, Store, StoreError};
use crate::logs::LogTotals;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Log totals are written at most this often; the `watch` channel keeps
/// only the latest snapshot, so nothing is lost by waiting.
const TOTALS_EVERY: Duration = Duration::from_secs(10);

/// How often old history is pruned (also once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs batches taken from the channel into one transaction at most.
const MAX_BATCHES_PER_WRITE: usize = 64;

/// Logs and counts a store that could not be opened; the daemon then runs
/// without history. One call per failed open.
pub fn record_open_failure(metrics: &Metrics, err: &StoreError) {
    metrics.history_write_failures_total.with_label_values(&[err.reason()]).inc();
    metrics.history_up.set(0);
    tracing::error!(error = %err, reason = err.reason(), "history store unavailable; running without history, audit reports will have no data for this period");
}

/// Starts the writer. It returns after `shutdown`, once the runs already
/// queued and the latest log totals are written.
pub fn spawn_writer(
    store: Store,
    metrics: Metrics,
    retention: Duration,
    runs: mpsc::Receiver<Vec<RunRecord>>,
    totals: watch::Receiver<LogTotals>,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        metrics.history_up.set(1);
        let mut writer = Writer { store: Some(store), metrics, failing: None };
        writer.run(retention, runs, totals, shutdown).await;
    })
}

/// The writer's state between writes.
struct Writer {
    /// The store; `None` only while a write holds it on the blocking thread,
    /// or for good if that thread panicked.
    store: Option<Store>,
    /// Where failures and the store's size are reported.
    metrics: Metrics,
    /// The reason of the failure in progress, so it is logged once, not per write.
    failing: Option<&'static str>,
}

impl Writer {
    async fn run(
        &mut self,
        retention: Duration,
        mut runs: mpsc::Receiver<Vec<RunRecord>>,
        mut totals: watch::Receiver<LogTotals>,
        shutdown: Shutdown,
    ) {
        let mut prune = interval(PRUNE_EVERY);
        prune.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tick = interval(TOTALS_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut runs_open = true;
        let mut totals_open = true;
        // The first value is written too: it holds the totals the tailer
        // loaded from its checkpoint.
        let mut totals_pending = true;
        let mut totals_written_on: Option<chrono::NaiveDate> = None;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait() => break,
                batch = runs.recv(), if runs_open => match batch {
                    Some(first) => {
                        let mut records = first;
                        for _ in 1..MAX_BATCHES_PER_WRITE {
                            match runs.try_recv() {
                                Ok(more) => records.extend(more),
                                Err(_) => break,
                            }
                        }
                        self.record_runs(records).await;
                    }
                    None => runs_open = false,
                },
                changed = totals.changed(), if totals_open => match changed {
                    Ok(()) => totals_pending = true,
                    Err(_) => totals_open = false,
                },
                _ = prune.tick() => self.prune(retention).await,
                _ = tick.tick() => {
                    // A new UTC day gets its rows even when nothing changed,
                    // so the audit can tell a quiet day from an unwatched one.
                    let now = Utc::now();
                    if totals_pending || totals_written_on != Some(now.date_naive()) {
                        let snapshot = totals.borrow_and_update().clone();
                        if self.record_totals(now, snapshot).await {
                            totals_pending = false;
                            totals_written_on = Some(now.date_naive());
                        }
                    }
                }
            }
        }
        // Shutting down: what is queued and the latest totals still go in.
        let mut records = Vec::new();
        while let Ok(more) = runs.try_recv() {
            records.extend(more);
        }
        if !records.is_empty() {
            self.record_runs(records).await;
        }
        let snapshot = totals.borrow().clone();
        self.record_totals(Utc::now(), snapshot).await;
    }

    async fn record_runs(&mut self, records: Vec<RunRecord>) {
        let n = records.len() as u64;
        if self.write(move |store| store.record_runs(&records)).await.is_none() {
            self.metrics.history_records_dropped_total.with_label_values(&["write_failed"]).inc_by(n);
        }
    }

    async fn record_totals(&mut self, at: DateTime<Utc>, totals: LogTotals) -> bool {
        self.write(move |store| store.record_log_totals(at, &totals)).await.is_some()
    }

    async fn prune(&mut self, retention: Duration) {
        // A retention too long to subtract from now keeps everything.
        let Some(older_than) = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|keep| Utc::now().checked_sub_signed(keep))
        else {
            return;
        };
        if let Some(deleted) = self.write(move |store| store.prune(older_than)).await {
            if deleted > 0 {
                tracing::info!(deleted, %older_than, "pruned history older than the retention");
            }
        }
    }

    /// Runs one write on a blocking thread, then reports its outcome.
    async fn write<T: Send + 'static>(
        &mut self,
        op: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<T> {
        let mut store = self.store.take()?;
        let joined = tokio::task::spawn_blocking(move || {
            let result = op(&mut store);
            let size = store.size_bytes().ok();
            (store, result, size)
        })
        .await;
        let (store, result, size) = match joined {
            Ok(done) => done,
            Err(e) => {
                // Only a panic in SQLite code gets here; the store went with it.
                self.metrics.history_up.set(0);
                self.metrics.history_write_failures_total.with_label_values(&["other"]).inc();
                // A JoinError prints the panic message, which may echo configuration values.
                tracing::error!(panicked = e.is_panic(), "history writer lost its store; running without history until restart");
                return None;
            }
        };
        self.store = Some(store);
        if let Some(size) = size {
            self.metrics.history_size_bytes.set(size as i64);
        }
        match result {
            Ok(value) => {
                self.succeeded();
                Some(value)
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    /// Counts every failure; logs only when the failure starts or changes.
    fn failed(&mut self, err: &StoreError) {
        let reason = err.reason();
        self.metrics.history_write_failures_total.with_label_values(&[reason]).inc();
        self.metrics.history_up.set(0);
        if self.failing != Some(reason) {
            tracing::error!(error = %err, reason, "history store write failed; will keep retrying, audit reports will miss what is not written");
            self.failing = Some(reason);
        }
    }

    fn succeeded(&mut self) {
        if let Some(reason) = self.failing.take() {
            tracing::info!(previous_reason = reason, "history store writes succeed again");
        }
        self.metrics.history_up.set(1);
        self.metrics
            .history_last_write_timestamp_seconds
            .with_label_values::<&str>(&[])
            .set(Utc::now().timestamp_millis() as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::SourceTotals;
    use crate::shutdown;
    use crate::store::RunOutcome;

    fn record(target: &str, minute: i64) -> RunRecord {
        RunRecord {
            at: DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap(),
            target: target.into(),
            duration: Duration::from_millis(10),
            outcome: RunOutcome::Succeeded(crate::store::record::tests::index(true, None)),
        }
    }

    #[tokio::test]
    async fn queued_runs_and_latest_totals_are_written_before_exit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite3");
        let store = Store::open(&path).unwrap();
        let metrics = Metrics::new();
        let (runs_tx, runs_rx) = mpsc::channel(16);
        let (totals_tx, totals_rx) = watch::channel(LogTotals::default());
        let (trigger, shutdown) = shutdown::channel();
        let handle = spawn_writer(store, metrics.clone(), Duration::from_secs(86400 * 400), runs_rx, totals_rx, shutdown);
        runs_tx.try_send(vec![record("a", 0), record("a", 1)]).unwrap();
        runs_tx.try_send(vec![record("b", 0)]).unwrap();
        let mut totals = LogTotals::default();
        totals.sources.insert("app".into(), SourceTotals { recoveries: 3, ..Default::default() });
        totals_tx.send(totals).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.trigger();
        handle.await.unwrap();

        let read = Store::open_read_only(&path).unwrap();
        assert_eq!(read.target_names().unwrap(), vec!["a", "b"]);
        let latest = read.latest_log_totals("app").unwrap();
        assert_eq!(latest[&("recoveries".to_string(), String::new(), String::new())], 3);
        assert_eq!(metrics.history_up.get(), 1);
        assert!(metrics.history_size_bytes.get() > 0);
    }

    #[tokio::test]
    async fn failures_are_counted_and_the_writer_keeps_going() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.sqlite3")).unwrap();
        let metrics = Metrics::new();
        let mut writer = Writer { store: Some(store), metrics: metrics.clone(), failing: None };
        let rename = |writer: &Writer, from: &str, to: &str| {
            let conn = &writer.store.as_ref().unwrap().conn;
            conn.execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}")).unwrap();
        };
        // Without its table every write of runs fails.
        rename(&writer, "check_runs", "check_runs_away");
        writer.record_runs(vec![record("a", 0)]).await;
        writer.record_runs(vec![record("a", 0)]).await;
        let failures = metrics.history_write_failures_total.with_label_values(&["other"]).get();
        assert_eq!(failures, 2);
        assert_eq!(metrics.history_records_dropped_total.with_label_values(&["write_failed"]).get(), 2);
        assert_eq!(metrics.history_up.get(), 0);
        rename(&writer, "check_runs_away", "check_runs");
        writer.record_runs(vec![record("a", 0)]).await;
        assert_eq!(metrics.history_up.get(), 1);
        assert!(writer.failing.is_none());
    }
}
