//! `uniqwatch run`: wires the scheduler, the checks and the HTTP server
//! together and keeps them going until shutdown.
//!
//! [`run`] takes an already bound listener and the shutdown signal as a
//! future, so tests start it on port 0 and stop it when they like. Start-up
//! fails only for what an operator must fix (the schedule cannot be set up);
//! MongoDB being down is a metric and a log line, never a start-up failure.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::checks;
use crate::config::{redact_uri, Config};
use crate::history;
use crate::http::{self, AppState};
use crate::logs::{self, LogTotals};
use crate::metrics::Metrics;
use crate::mongo::Mongo;
use crate::scheduler::Scheduler;
use crate::shutdown;
use crate::state::State;
use crate::store;

/// Runs the daemon until `stop` resolves, then shuts down gracefully.
pub async fn run(config: Config, listener: TcpListener, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    for t in &config.targets {
        checks::init_metrics(&t.name, &metrics);
    }
    let state = Arc::new(State::new(&config.targets));
    let mongo = Arc::new(Mongo::new(config.mongodb.clone()));
    let (trigger, shutdown) = shutdown::channel();

    // Log totals flow from the tailer to the history writer and the landing page.
    let (totals_tx, totals_rx) = watch::channel(LogTotals::default());

    let addr = listener.local_addr().context("listener has no local address")?;
    let app = http::router(AppState {
        metrics: metrics.clone(),
        state: Arc::clone(&state),
        log_sources: config.logs.iter().map(|s| s.name.clone()).collect(),
        log_totals: totals_rx.clone(),
    });
    let http_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_shutdown.wait().await })
            .await
    });
    tracing::info!(
        url = %format!("http://{addr}/"),
        mongodb = %redact_uri(&config.mongodb.uri),
        targets = config.targets.len(),
        "uniqwatch {} listening",
        env!("CARGO_PKG_VERSION")
    );

    let (history_tx, history_writer) = match open_history(&config).await {
        Ok(store) => {
            let (tx, rx) = mpsc::channel(HISTORY_QUEUE);
            let writer = store::spawn_writer(store, metrics.clone(), config.state.retention, rx, totals_rx, shutdown.clone());
            (Some(tx), Some(writer))
        }
        Err(e) => {
            store::record_open_failure(&metrics, &e);
            (None, None)
        }
    };

    let tailer = (!config.logs.is_empty()).then(|| {
        // Readiness may read `tailer_health` (started, saving); polls are counted there too.
        let (health_tx, _tailer_health) = watch::channel(logs::TailerHealth::default());
        let run = logs::run(
            config.logs.clone(),
            config.state.dir.clone(),
            metrics.clone(),
            totals_tx,
            health_tx,
            logs::Tuning::default(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %e, "log tailing stopped; the checks go on");
            }
        })
    });

    let scheduler = Scheduler::start(Arc::clone(&state), Arc::clone(&mongo), metrics.clone(), history_tx).await?;
    if let Some(audit) = &config.audit {
        let (config, mongo, metrics) = (Arc::new(config.clone()), Arc::clone(&mongo), metrics.clone());
        scheduler
            .add_job("the monthly audit report", &audit.schedule, move || {
                let (config, mongo, metrics) = (Arc::clone(&config), Arc::clone(&mongo), metrics.clone());
                async move { history::write_scheduled_report(&config, &mongo, &metrics).await }
            })
            .await?;
    }

    stop.await;
    tracing::info!(grace = ?config.web.shutdown_grace, "shutting down: no new runs; waiting for runs in flight");
    if !scheduler.stop(config.web.shutdown_grace).await {
        tracing::warn!("grace period over with runs still going; they are abandoned");
    }
    trigger.trigger();
    // The tailer saves its last checkpoint and publishes its last totals
    // before the history writer takes them, so both stop in that order.
    for (task, what) in [(tailer, "log tailer"), (history_writer, "history writer")] {
        if let Some(task) = task {
            if tokio::time::timeout(config.web.shutdown_grace, task).await.is_err() {
                tracing::warn!("{what} did not finish within the grace period");
            }
        }
    }
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server ended with an error"),
        Err(e) => tracing::warn!(error = %e, "HTTP server task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// Finished runs waiting for the history writer; a full queue drops (and counts) a run.
const HISTORY_QUEUE: usize = 1024;

/// Opens (creating or migrating) the history store under `[state] dir`, and
/// records as counted before history began whatever the log checkpoint holds
/// that the store has never seen (a new store beside an old checkpoint).
async fn open_history(config: &Config) -> Result<store::Store, store::StoreError> {
    let dir = config.state.dir.clone();
    let tails_logs = !config.logs.is_empty();
    tokio::task::spawn_blocking(move || {
        let mut store = store::Store::open(&store::history_path(&dir))?;
        if tails_logs {
            store.record_log_baseline(chrono::Utc::now(), &logs::checkpoint::peek_totals(&dir))?;
        }
        Ok(store)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
