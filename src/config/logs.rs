//! `[[logs]]`: log sources tailed for duplicate-key errors and their
//! recoveries (see `docs/logs.md`).

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration::{check_all, duration_text, millis, secs, Bounded, Bounds};
use super::log_events::{validate_event, LogEventConfig};
use super::validate_name;

/// `[[logs]]`: one set of log files whose lines are counted under one `source` label.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSourceConfig {
    /// The `source` label on every log metric, and this source's key in the
    /// checkpoint. Letters, digits, `_`, `-`, `.`; must not start with `.`.
    pub name: String,
    /// Files or glob patterns (`/var/log/app/*.log`). Patterns are expanded
    /// again on every poll, so files that appear later are picked up.
    pub paths: Vec<String>,
    /// Where to start in a file present at this source's very first start (no
    /// checkpoint yet): `end` skips history, `beginning` counts it. Files that
    /// appear afterwards are always read from the beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// The `namespace` label of an error line that does not name its
    /// collection (`collection: <ns>`); `unknown` when unset.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The `index` label of an error line that does not name its index
    /// (`index: <name>`); `unknown` when unset.
    #[serde(default)]
    pub index: Option<String>,
    /// Byte strings that make a line a duplicate-key error (case-sensitive).
    /// A line counts once however many of them it holds.
    #[serde(default = "default_error_markers")]
    pub error_markers: Vec<String>,
    /// Byte strings that make a line a recovery (the conflict was resolved by
    /// re-reading the winner). A recovery line is never also counted as an error.
    #[serde(default = "default_recovery_markers")]
    pub recovery_markers: Vec<String>,
    /// How often files are checked for new lines, renames, truncation and new
    /// matches of `paths`. At most 1s so changes are seen within a second.
    #[serde(default = "default_poll_interval", with = "duration_text")]
    pub poll_interval: Duration,
    /// Lines longer than this many bytes are counted as long lines
    /// (`uniqwatch_log_long_lines_total`) and matched on their first
    /// `max_line_bytes` only; it is also the size of the read buffer, which
    /// bounds the tailer's memory whatever the line length.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Extra counters of matching lines (`uniqwatch_log_events_total{event}`),
    /// e.g. requests, as the denominator of an error ratio; duration events
    /// among them also feed `uniqwatch_log_event_duration_seconds`.
    #[serde(default)]
    pub events: Vec<LogEventConfig>,
    /// The event (one of `events`) whose count stands for requests: the audit
    /// report gives the duplicate-key error ratio against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_event: Option<String>,
}

/// Where reading starts in a file seen at a source's very first start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// After the last complete line: only what is written from now on counts.
    #[default]
    End,
    /// From byte 0: the file's history counts too.
    Beginning,
}

fn default_error_markers() -> Vec<String> {
    vec!["E11000".to_string(), "Duplicate key error".to_string()]
}
fn default_recovery_markers() -> Vec<String> {
    vec!["Retrieved existing chat after duplicate key error".to_string()]
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_line_bytes() -> usize {
    1024 * 1024
}

impl LogSourceConfig {
    /// Range of `poll_interval`.
    pub const POLL_INTERVAL: Bounds<Duration> = Bounds {
        min: millis(10),
        max: secs(1),
        why: "changes must be seen within a second, and faster than 10ms only burns CPU",
    };
    /// Range of `max_line_bytes`.
    pub const MAX_LINE_BYTES: Bounds<usize> = Bounds {
        min: 64 * 1024,
        max: 64 * 1024 * 1024,
        why: "below 64 KiB reads get slow, above 64 MiB the buffer stops being a small, fixed cost",
    };

    /// Every bounded field with its value.
    pub fn bounded(&self) -> [(&'static str, Bounded); 2] {
        [
            ("poll_interval", Bounded::Duration(self.poll_interval, Self::POLL_INTERVAL)),
            ("max_line_bytes", Bounded::Count(self.max_line_bytes, Self::MAX_LINE_BYTES)),
        ]
    }
}

/// Checks the `[[logs]]` sources, returning the field and the problem.
pub(super) fn validate_logs(logs: &[LogSourceConfig]) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, source) in logs.iter().enumerate() {
        let at = |f: &str| format!("logs[{i}].{f}");
        validate_name(&source.name).map_err(|problem| (at("name"), problem))?;
        if !names.insert(source.name.as_str()) {
            return Err((at("name"), format!("{:?} is used by another [[logs]] source", source.name)));
        }
        if source.paths.is_empty() {
            return Err((at("paths"), "expected at least one file or glob pattern".into()));
        }
        for (j, path) in source.paths.iter().enumerate() {
            if path.trim().is_empty() {
                return Err((at(&format!("paths[{j}]")), "must not be empty".into()));
            }
            if let Err(e) = glob::Pattern::new(path) {
                return Err((
                    at(&format!("paths[{j}]")),
                    format!("expected a file or glob pattern, found {path:?}: {e}"),
                ));
            }
        }
        for (field, value) in [("namespace", &source.namespace), ("index", &source.index)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err((at(field), "must not be empty when set".into()));
            }
        }
        for (field, markers) in [
            ("error_markers", &source.error_markers),
            ("recovery_markers", &source.recovery_markers),
        ] {
            if let Some(j) = markers.iter().position(|m| m.is_empty()) {
                return Err((
                    at(&format!("{field}[{j}]")),
                    "must not be empty (it would match every line)".into(),
                ));
            }
        }
        check_all(&format!("logs[{i}]."), source.bounded())?;
        let mut events = HashSet::new();
        for (j, event) in source.events.iter().enumerate() {
            let at = |f: &str| format!("logs[{i}].events[{j}].{f}");
            validate_name(&event.name).map_err(|problem| (at("name"), problem))?;
            if !events.insert(event.name.as_str()) {
                return Err((at("name"), format!("{:?} is used by another event of this source", event.name)));
            }
            validate_event(event, &at)?;
        }
        if let Some(request) = &source.request_event {
            if !events.contains(request.as_str()) {
                return Err((
                    format!("logs[{i}].request_event"),
                    format!("expected the name of one of this source's [[logs.events]], found {request:?}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, TARGET};
    use super::*;

    const LOGS: &str = r#"
[[logs]]
name = "chat-backend"
paths = ["/var/log/chat-backend/*.log"]
"#;

    #[test]
    fn logs_defaults() {
        let c = parse(LOGS).unwrap();
        let l = &c.logs[0];
        assert!(c.targets.is_empty());
        assert_eq!(l.start_at, StartAt::End);
        assert_eq!(l.error_markers, ["E11000", "Duplicate key error"]);
        assert_eq!(l.recovery_markers, ["Retrieved existing chat after duplicate key error"]);
        assert_eq!(l.poll_interval, Duration::from_secs(1));
        assert_eq!(l.max_line_bytes, 1024 * 1024);
        assert_eq!(l.namespace, None);
        assert!(l.events.is_empty());
    }

    #[test]
    fn logs_full_example_from_the_contract() {
        let c = parse(&format!(
            r#"{TARGET}
[state]
dir = "/var/lib/uniqwatch"

[[logs]]
name = "chat-backend"
paths = ["/var/log/chat-backend/*.log"]
start_at = "beginning"
namespace = "app.chats"
index = "participantsKey_1"
poll_interval = "200ms"

[[logs.events]]
name = "create_or_get"
contains = "POST /api/chats/create-or-get"

[[logs.events]]
name = "slow"
regex = 'took \d{{4,}}ms'
"#
        ))
        .unwrap();
        let l = &c.logs[0];
        assert_eq!(l.start_at, StartAt::Beginning);
        assert_eq!(l.namespace.as_deref(), Some("app.chats"));
        assert_eq!(l.poll_interval, Duration::from_millis(200));
        assert_eq!(l.events.len(), 2);
        assert_eq!(l.events[1].regex.as_deref(), Some(r"took \d{4,}ms"));
    }

    #[test]
    fn logs_request_event_must_name_an_event_of_the_source() {
        let with_event = format!("{LOGS}request_event = \"create_or_get\"\n[[logs.events]]\nname = \"create_or_get\"\ncontains = \"POST\"\n");
        assert_eq!(parse(&with_event).unwrap().logs[0].request_event.as_deref(), Some("create_or_get"));
        let e = parse(&format!("{LOGS}request_event = \"requests\"")).unwrap_err().to_string();
        assert!(e.contains("logs[0].request_event"), "{e}");
        assert!(e.contains("\"requests\""), "{e}");
    }

    #[test]
    fn logs_bad_start_at_is_named() {
        let e = parse(&format!("{LOGS}start_at = \"middle\"")).unwrap_err().to_string();
        assert!(e.contains("logs[0].start_at"), "{e}");
    }

    #[test]
    fn logs_duplicate_or_unsafe_names_are_rejected() {
        let e = parse(&format!("{LOGS}{LOGS}")).unwrap_err().to_string();
        assert!(e.contains("logs[1].name"), "{e}");
        let e = parse(&LOGS.replace("chat-backend", "chat backend")).unwrap_err().to_string();
        assert!(e.contains("logs[0].name"), "{e}");
        let e = parse(&LOGS.replace("chat-backend", "..")).unwrap_err().to_string();
        assert!(e.contains("logs[0].name"), "{e}");
    }

    #[test]
    fn logs_paths_must_be_present_and_valid() {
        let e = parse("[[logs]]\nname = \"a\"\npaths = []").unwrap_err().to_string();
        assert!(e.contains("logs[0].paths"), "{e}");
        let e = parse("[[logs]]\nname = \"a\"\npaths = [\"\"]").unwrap_err().to_string();
        assert!(e.contains("logs[0].paths[0]"), "{e}");
        let e = parse("[[logs]]\nname = \"a\"\npaths = [\"/x/[a\"]").unwrap_err().to_string();
        assert!(e.contains("logs[0].paths[0]"), "{e}");
    }

    #[test]
    fn logs_empty_marker_is_rejected() {
        let e = parse(&format!("{LOGS}error_markers = [\"E11000\", \"\"]")).unwrap_err().to_string();
        assert!(e.contains("logs[0].error_markers[1]"), "{e}");
    }

    #[test]
    fn logs_poll_interval_and_line_bound_are_bounded() {
        let e = parse(&format!("{LOGS}poll_interval = \"5s\"")).unwrap_err().to_string();
        assert!(e.contains("logs[0].poll_interval"), "{e}");
        let e = parse(&format!("{LOGS}max_line_bytes = 10")).unwrap_err().to_string();
        assert!(e.contains("logs[0].max_line_bytes"), "{e}");
    }

    #[test]
    fn logs_event_needs_contains_or_regex_and_may_have_both() {
        let both = format!("{LOGS}[[logs.events]]\nname = \"e\"\ncontains = \"a\"\nregex = \"b\"");
        let c = parse(&both).unwrap();
        assert_eq!(c.logs[0].events[0].contains.as_deref(), Some("a"));
        let neither = format!("{LOGS}[[logs.events]]\nname = \"e\"");
        let e = parse(&neither).unwrap_err().to_string();
        assert!(e.contains("logs[0].events[0]") && e.contains("`contains`, `regex` or both"), "{e}");
    }

    #[test]
    fn logs_event_regex_must_compile_and_names_be_unique() {
        let e = parse(&format!("{LOGS}[[logs.events]]\nname = \"e\"\nregex = \"(\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("logs[0].events[0].regex"), "{e}");
        let ev = "[[logs.events]]\nname = \"e\"\ncontains = \"x\"\n";
        let e = parse(&format!("{LOGS}{ev}{ev}")).unwrap_err().to_string();
        assert!(e.contains("logs[0].events[1].name"), "{e}");
    }

    #[test]
    fn logs_example_config_is_valid() {
        let c = parse(include_str!("../../examples/logs.toml")).unwrap();
        assert_eq!(c.logs.len(), 2);
        assert_eq!(c.logs[0].events[0].name, "create_or_get");
    }

    #[test]
    fn logs_unknown_field_is_an_error() {
        let e = parse(&format!("{LOGS}pattern = \"x\"")).unwrap_err().to_string();
        assert!(e.contains("unknown field `pattern`"), "{e}");
    }
}
