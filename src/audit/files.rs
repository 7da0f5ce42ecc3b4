//! Report files and the scheduled job that writes them.
//!
//! [`write_scheduled_report`] is the monthly job: it builds the report of
//! the month that just ended and writes it in every format into
//! `[audit] dir`, never overwriting an earlier report.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{build, AuditError, AuditReport, Month, ReportFormat, MAX_REPORT_SUFFIX};
use crate::config::Config;
use crate::fsutil;
use crate::metrics::Metrics;
use crate::mongo::Mongo;

/// Writes the report in every format into `dir` (created if missing), as
/// `uniqwatch-audit-YYYY-MM.{md,html,json}`.
///
/// An existing report is never overwritten: when any of the three names is
/// taken, all three get the first free suffix, `uniqwatch-audit-YYYY-MM.1.md`
/// and so on, so the files of one run always share a name. Each file is
/// written durably and under its name only if that name is still free
/// ([`fsutil::create_new_durably`]).
pub fn write_report_files(dir: &Path, report: &AuditReport) -> Result<Vec<PathBuf>, AuditError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuditError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let base = format!("uniqwatch-audit-{}", report.month);
    let bodies: Vec<(ReportFormat, String)> = ReportFormat::ALL.iter().map(|f| (*f, report.render(*f))).collect();
    'suffix: for suffix in 0..=MAX_REPORT_SUFFIX {
        let stem = if suffix == 0 { base.clone() } else { format!("{base}.{suffix}") };
        let paths: Vec<PathBuf> = ReportFormat::ALL.iter().map(|f| dir.join(format!("{stem}.{}", f.extension()))).collect();
        if paths.iter().any(|p| p.exists()) {
            continue;
        }
        let mut written = Vec::new();
        for ((_, body), path) in bodies.iter().zip(&paths) {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            match fsutil::create_new_durably(path, &temp, body.as_bytes()) {
                Ok(()) => written.push(path.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another writer took this name meanwhile: move every
                    // format to the next suffix so the set stays together.
                    for p in &written {
                        let _ = std::fs::remove_file(p);
                    }
                    continue 'suffix;
                }
                Err(e) => return Err(io(path)(e)),
            }
        }
        return Ok(written);
    }
    Err(AuditError::NoFreeName { dir: dir.to_path_buf(), month: report.month })
}

/// Records a scheduled report: sets `uniqwatch_audit_last_report_timestamp_seconds`
/// and logs where the files went.
pub fn record_report_written(metrics: &Metrics, report: &AuditReport, paths: &[PathBuf]) {
    metrics
        .audit_last_report_timestamp_seconds
        .with_label_values::<&str>(&[])
        .set(report.generated_at.timestamp_millis() as f64 / 1000.0);
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    tracing::info!(month = %report.month, holds = ?report.verdict.holds, files = ?files, "wrote the monthly audit report");
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
    let written = tokio::task::spawn_blocking(move || write_report_files(&dir, &report).map(|p| (report, p))).await;
    match written {
        Ok(Ok((report, paths))) => record_report_written(metrics, &report, &paths),
        Ok(Err(e)) => tracing::error!(month = %month, error = %e, "monthly audit report could not be written"),
        // A JoinError prints the panic message, which may echo configuration values.
        Err(e) => tracing::error!(month = %month, panicked = e.is_panic(), "monthly audit report task failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audit::build_report;
    use crate::store::Store;

    fn report_with_month(month: &str) -> AuditReport {
        let store = Store::open_in_memory().unwrap();
        let month: Month = month.parse().unwrap();
        build_report(&store, month, &[], &[], &BTreeMap::new(), month.end() + chrono::Duration::hours(6)).unwrap()
    }

    #[test]
    fn report_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let report = report_with_month("2026-10");
        let first = write_report_files(dir.path(), &report).unwrap();
        let names: Vec<String> = first.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["uniqwatch-audit-2026-10.md", "uniqwatch-audit-2026-10.html", "uniqwatch-audit-2026-10.json"]);
        std::fs::write(&first[0], "edited by hand").unwrap();
        let second = write_report_files(dir.path(), &report).unwrap();
        assert!(second[0].ends_with("uniqwatch-audit-2026-10.1.md"), "{:?}", second);
        assert!(second[2].ends_with("uniqwatch-audit-2026-10.1.json"), "{:?}", second);
        assert_eq!(std::fs::read_to_string(&first[0]).unwrap(), "edited by hand");
        // A lone leftover of one format moves the whole set to the next suffix.
        std::fs::write(dir.path().join("uniqwatch-audit-2026-10.2.html"), "x").unwrap();
        let third = write_report_files(dir.path(), &report).unwrap();
        assert!(third[0].ends_with("uniqwatch-audit-2026-10.3.md"), "{:?}", third);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
