//! `[state]` and `[audit]`: what survives restarts, and the monthly report
//! written from it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::{check_all, days, duration_text, Bounded, Bounds};
use super::validate_schedule;

/// `[state]`: where uniqwatch keeps what must survive a restart: log checkpoints and the history store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for checkpoints and history; created if missing.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// How long the history store keeps check runs and daily log totals. At
    /// least 62 days with `[audit]`, so a month's history outlives its report.
    #[serde(default = "default_retention", with = "duration_text")]
    pub retention: Duration,
}

impl StateConfig {
    /// Range of `retention`.
    pub const RETENTION: Bounds<Duration> = Bounds {
        min: days(1),
        max: days(36525),
        why: "history younger than a day would be pruned before it is read, and a hundred years is forever",
    };
    /// With scheduled reports, the whole previous month must survive until its report.
    pub const MIN_RETENTION_WITH_AUDIT: Duration = days(62);

    /// Every bounded field with its value.
    pub fn bounded(&self) -> [(&'static str, Bounded); 1] {
        [("retention", Bounded::Duration(self.retention, Self::RETENTION))]
    }

    pub(super) fn validate(&self, audit: Option<&AuditConfig>) -> Result<(), (String, String)> {
        check_all("state.", self.bounded())?;
        if audit.is_some() && self.retention < Self::MIN_RETENTION_WITH_AUDIT {
            return Err((
                "state.retention".to_string(),
                format!(
                    "must be at least 62 days with [audit]: the report of a month is written after it ends, so its history must still be there; found {}",
                    humantime::format_duration(self.retention)
                ),
            ));
        }
        Ok(())
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/uniqwatch")
}
fn default_retention() -> Duration {
    days(400)
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            retention: default_retention(),
        }
    }
}

/// `[audit]`: where and when the daemon writes the monthly audit report.
///
/// The section is optional: without it no report is written on a schedule
/// (`uniqwatch audit` still works on demand). With it, the report for the
/// month that just ended is written in every format (Markdown, HTML, JSON)
/// into `dir`, named by month; an existing report is never overwritten (see
/// `docs/audit.md`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Directory the reports are written to; created if missing. Required:
    /// reports are meant to be kept, so they get a place the operator chose.
    pub dir: PathBuf,
    /// Cron expression with a seconds field, in UTC, for writing the report
    /// of the previous calendar month. Default: 06:00 UTC on the 1st.
    #[serde(default = "default_audit_schedule")]
    pub schedule: String,
}

fn default_audit_schedule() -> String {
    "0 0 6 1 * *".to_string()
}

impl AuditConfig {
    /// Checks the `[audit]` values, returning the field and the problem.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
        if self.dir.as_os_str().is_empty() {
            return Err((
                "audit.dir".to_string(),
                "expected a directory for the reports, such as \"/var/lib/uniqwatch/reports\", found an empty path".to_string(),
            ));
        }
        validate_schedule(&self.schedule).map_err(|problem| ("audit.schedule".to_string(), problem))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::parse;
    use super::*;


    #[test]
    fn retention_too_short_for_the_audit_is_rejected() {
        let e = parse("[state]\nretention = \"0s\"").unwrap_err().to_string();
        assert!(e.contains("state.retention"), "{e}");
        parse("[state]\nretention = \"30days\"").unwrap();
        let e = parse("[state]\nretention = \"30days\"\n[audit]\ndir = \"/r\"").unwrap_err().to_string();
        assert!(e.contains("state.retention") && e.contains("62 days"), "{e}");
    }

    #[test]
    fn retention_has_an_upper_bound() {
        let e = parse("[state]\nretention = \"300000000000years\"").unwrap_err().to_string();
        assert!(e.contains("field `state.retention`") && e.contains("1day to 100years"), "{e}");
    }

    #[test]
    fn audit_section_is_optional() {
        assert!(parse("").unwrap().audit.is_none());
    }

    #[test]
    fn audit_schedule_defaults_to_the_first_of_the_month() {
        let c = parse("[audit]\ndir = \"/var/lib/uniqwatch/reports\"").unwrap();
        let audit = c.audit.unwrap();
        assert_eq!(audit.dir, PathBuf::from("/var/lib/uniqwatch/reports"));
        assert_eq!(audit.schedule, "0 0 6 1 * *");
    }

    #[test]
    fn audit_dir_is_required_and_not_empty() {
        let e = parse("[audit]\nschedule = \"0 0 6 1 * *\"").unwrap_err().to_string();
        assert!(e.contains("missing field `dir`"), "{e}");
        let e = parse("[audit]\ndir = \"\"").unwrap_err().to_string();
        assert!(e.contains("field `audit.dir`"), "{e}");
    }

    #[test]
    fn bad_audit_schedule_names_the_field() {
        let e = parse("[audit]\ndir = \"r\"\nschedule = \"0 6 1 * *\"").unwrap_err().to_string();
        assert!(e.contains("field `audit.schedule`"), "{e}");
        assert!(e.contains("6 fields"), "{e}");
    }

    #[test]
    fn unknown_audit_field_is_an_error() {
        let e = parse("[audit]\ndir = \"r\"\nformat = \"html\"").unwrap_err().to_string();
        assert!(e.contains("unknown field `format`"), "{e}");
    }
}
