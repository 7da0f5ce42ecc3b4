//! The glue between check runs and the history store, and the audit
//! report as both `uniqwatch audit` and the scheduled job produce it.
//!
//! A finished [`TargetRun`] becomes one [`RunRecord`] per check, in the
//! shape of `check --format json`. A report takes a fresh check of every
//! target ("now"), reads the month from the store on a blocking thread, and
//! renders; a store that does not exist yet gives a report that says there
//! is no history.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::audit::{self, AuditReport, CurrentDuplicates, CurrentState, LogSourceInfo, MissingCounts, Month, TargetInfo};
use crate::checks::{self, Figures, TargetRun};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mongo::Mongo;
use crate::store::{self, RunRecord, Store, StoreError};

/// One record per check of a finished run.
pub fn records(run: &TargetRun) -> Vec<RunRecord> {
    run.results
        .iter()
        .map(|r| RunRecord {
            at: r.started_at,
            target: run.target.clone(),
            check: r.check.as_str().to_string(),
            success: r.outcome.is_ok(),
            reason: r.outcome.as_ref().err().map(|e| e.reason.as_str().to_string()),
            duration_seconds: r.duration.as_secs_f64(),
            figures: r.outcome.as_ref().ok().map(|f: &Figures| {
                // Plain structs of numbers and strings always serialise.
                serde_json::to_value(f).expect("figures serialise to JSON")
            }),
        })
        .collect()
}

/// What a fresh run says about "now", for the report.
pub fn current_state(run: &TargetRun) -> CurrentState {
    match (run.index(), run.duplicates(), run.missing_keys()) {
        (Some(i), Some(d), Some(m)) => CurrentState::Reachable {
            index_present: i.present,
            duplicates: CurrentDuplicates {
                documents: d.documents,
                keys: d.keys,
                sample: d.sample.clone(),
            },
            missing: MissingCounts {
                absent: m.absent,
                null: m.null,
                empty: m.empty,
            },
        },
        _ => CurrentState::Unreachable {
            reason: run
                .errors()
                .next()
                .map(|(check, e)| format!("{} check failed ({}): {}", check.as_str(), e.reason, e.message))
                .unwrap_or_else(|| "the check did not complete".to_string()),
        },
    }
}

/// The targets and log sources of the config, as the report names them.
pub fn report_subjects(config: &Config) -> (Vec<TargetInfo>, Vec<LogSourceInfo>) {
    let targets = config
        .targets
        .iter()
        .map(|t| TargetInfo {
            name: t.name.clone(),
            database: t.database.clone(),
            collection: t.collection.clone(),
            key: t.key.clone(),
        })
        .collect();
    (targets, log_sources(config))
}

fn log_sources(config: &Config) -> Vec<LogSourceInfo> {
    config
        .logs
        .iter()
        .map(|s| LogSourceInfo {
            name: s.name.clone(),
            request_event: s.request_event.clone(),
            tracks_recoveries: !s.recovery_markers.is_empty(),
        })
        .collect()
}

/// Builds the report of `month`: a fresh check of every target, then the
/// month's history from the store under `state_dir`.
pub async fn build(config: &Config, mongo: &Mongo, month: Month, now: DateTime<Utc>) -> anyhow::Result<AuditReport> {
    let mut current = BTreeMap::new();
    for target in &config.targets {
        let run = checks::run_target(target, mongo).await;
        current.insert(target.name.clone(), current_state(&run));
    }
    let (targets, sources) = report_subjects(config);
    let path = store::history_path(&config.state.dir);
    let report = tokio::task::spawn_blocking(move || -> Result<AuditReport, audit::AuditError> {
        let store = open_for_reading(&path)?;
        audit::build_report(&store, month, &targets, &sources, &current, now)
    })
    .await??;
    Ok(report)
}

/// The store read-only; a store not created yet reads as an empty history.
fn open_for_reading(path: &Path) -> Result<Store, StoreError> {
    match Store::open_read_only(path) {
        Err(StoreError::Missing { .. }) => Store::open_in_memory(),
        other => other,
    }
}

/// The scheduled job: the report of the month that just ended, in every
/// format, into `[audit] dir`. Failures are logged; the daemon goes on.
pub async fn write_scheduled_report(config: &Config, mongo: &Mongo, metrics: &Metrics) {
    let Some(audit_config) = &config.audit else { return };
    let now = Utc::now();
    let month = Month::previous(now);
    let report = match build(config, mongo, month, now).await {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(month = %month, error = %format!("{e:#}"), "monthly audit report could not be built");
            return;
        }
    };
    let dir: PathBuf = audit_config.dir.clone();
    let written = tokio::task::spawn_blocking(move || audit::write_report_files(&dir, &report).map(|p| (report, p))).await;
    match written {
        Ok(Ok((report, paths))) => audit::record_report_written(metrics, &report, &paths),
        Ok(Err(e)) => tracing::error!(month = %month, error = %e, "monthly audit report could not be written"),
        // A JoinError prints the panic message, which may echo configuration values.
        Err(e) => tracing::error!(month = %month, panicked = e.is_panic(), "monthly audit report task failed"),
    }
}
