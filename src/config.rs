//! The configuration file: TOML structs, their defaults and their validation.
//!
//! Every field is documented where it is declared; `docs/configuration.md`
//! follows the same order. Loading is one call, [`Config::load`], which reads
//! the file, applies environment overrides, and validates. Every failure is a
//! [`ConfigError`] that names the file, the field and what was expected, so
//! an operator can fix it without reading the source.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Environment variable that replaces `[mongodb] uri`, so the URI (and its
/// password) can stay out of the config file.
pub const MONGODB_URI_ENV: &str = "UNIQWATCH_MONGODB_URI";

/// A configuration problem, always with enough context to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown field, or a field of the wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The file parsed, but a value is not acceptable.
    #[error("invalid config file {path}: field `{field}`: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How to reach MongoDB and how long any query may take.
    #[serde(default)]
    pub mongodb: MongoConfig,
    /// Where the HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, `/`) listen.
    #[serde(default)]
    pub web: WebConfig,
    /// Collections to watch, each with the key that must be unique. None is valid:
    /// a config may only tail logs.
    #[serde(default, rename = "target")]
    pub targets: Vec<TargetConfig>,
    /// Where uniqwatch keeps what must survive a restart.
    #[serde(default)]
    pub state: StateConfig,
    /// Scheduled monthly audit reports; absent means none are written
    /// (`uniqwatch audit` still works on demand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    /// Log files to tail for duplicate-key errors and their recoveries. None is
    /// valid: a config may only check collections.
    #[serde(default, rename = "logs")]
    pub logs: Vec<LogSourceConfig>,
}

/// `[state]`: files that survive restarts: log checkpoints and the history store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory for checkpoints and history; created if missing.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// How long the history store keeps check runs and daily log totals.
    #[serde(default = "default_retention", with = "duration_text")]
    pub retention: Duration,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/uniqwatch")
}
fn default_retention() -> Duration {
    Duration::from_secs(400 * 24 * 3600)
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: default_state_dir(),
            retention: default_retention(),
        }
    }
}

// ---- [audit] -------------------------------------------------------------

/// `[audit]`: where and when the daemon writes the monthly audit report.
///
/// The section is optional: without it no report is written on a schedule.
/// With it, the report for the month that just ended is written in every
/// format (Markdown, HTML, JSON) into `dir`, named by month; an existing
/// report is never overwritten (see `docs/audit.md`).
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
    fn validate(&self) -> Result<(), (String, String)> {
        if self.dir.as_os_str().is_empty() {
            return Err(field_err(
                "audit.dir",
                "expected a directory for the reports, such as \"/var/lib/uniqwatch/reports\", found an empty path",
            ));
        }
        validate_schedule(&self.schedule).map_err(|problem| ("audit.schedule".to_string(), problem))
    }
}

// ---- end of [audit] ------------------------------------------------------

/// `[mongodb]`: the connection and the time limits on every query.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string. Its `readPreference` is honoured by every query, so
    /// `secondaryPreferred` keeps the checks off the primary.
    /// `UNIQWATCH_MONGODB_URI` overrides it.
    #[serde(default = "default_uri", serialize_with = "serialize_redacted")]
    pub uri: String,
    /// Upper bound for one run of a target's checks: sent as `maxTimeMS` with
    /// every query (the time left in the run), and enforced on the client too.
    #[serde(default = "default_query_timeout", with = "duration_text")]
    pub query_timeout: Duration,
    /// How long to wait for a server to answer before a run counts MongoDB as
    /// unreachable. Capped by `query_timeout`.
    #[serde(default = "default_connect_timeout", with = "duration_text")]
    pub connect_timeout: Duration,
}

/// `[web]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address and port for `/metrics` and the landing page. 9716 is uniqwatch's default port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// On SIGTERM or SIGINT, how long in-flight checks may take to finish before the daemon exits anyway.
    #[serde(default = "default_shutdown_grace", with = "duration_text")]
    pub shutdown_grace: Duration,
}

/// `[[target]]`: one collection whose key must be unique.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The `target` label on every metric of this collection. Letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Database holding the collection.
    pub database: String,
    /// Collection to watch.
    pub collection: String,
    /// Field whose values must be unique, e.g. `participantsKey`. Dotted paths are allowed.
    pub key: String,
    /// Whether the unique index is expected to be sparse (or partial on
    /// `{key: {$exists: true}}`); `false` expects a plain unique index.
    #[serde(default = "default_true")]
    pub sparse: bool,
    /// Cron expression with a seconds field, in UTC: `sec min hour day month weekday`.
    /// Every target also runs once at start-up.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// How many offending keys (with their document ids) a run keeps as a
    /// sample for logs and `check --format json`. Never exported as labels.
    #[serde(default = "default_sample_size")]
    pub sample_size: usize,
}

fn default_uri() -> String {
    "mongodb://127.0.0.1:27017/".to_string()
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9716))
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_true() -> bool {
    true
}
fn default_schedule() -> String {
    "0 */5 * * * *".to_string()
}
fn default_sample_size() -> usize {
    20
}

/// The shortest history worth keeping.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// With scheduled reports, the whole previous month must survive until its report.
const MIN_RETENTION_WITH_AUDIT: Duration = Duration::from_secs(62 * 24 * 3600);

/// The largest sample a run keeps; a bound on the daemon's memory per target.
pub const MAX_SAMPLE_SIZE: usize = 1000;
/// How many document ids a sample keeps per offending key.
pub const SAMPLE_IDS_PER_KEY: usize = 20;

impl Default for MongoConfig {
    fn default() -> Self {
        Self {
            uri: default_uri(),
            query_timeout: default_query_timeout(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

// ---------------------------------------------------------------------------
// [[logs]]: log sources tailed for duplicate-key errors (see docs/logs.md).
// ---------------------------------------------------------------------------

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
    /// e.g. requests, as the denominator of an error ratio.
    #[serde(default)]
    pub events: Vec<LogEventConfig>,
    /// The event (one of `events`) whose count stands for requests: the audit
    /// report gives the duplicate-key error ratio against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_event: Option<String>,
}

/// `[[logs.events]]`: lines counted under one `event` label. Exactly one of
/// `contains` and `regex` is set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogEventConfig {
    /// The `event` label. Letters, digits, `_`, `-`, `.`; unique within the source.
    pub name: String,
    /// A byte string the line must contain (case-sensitive). The fast choice.
    #[serde(default)]
    pub contains: Option<String>,
    /// A regular expression (Rust `regex` syntax) matched against each line's
    /// bytes, for what `contains` cannot say.
    #[serde(default)]
    pub regex: Option<String>,
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

/// Bounds on `[[logs]] max_line_bytes`: below 64 KiB reads get slow, above
/// 64 MiB the buffer stops being a small, fixed cost.
pub const MIN_MAX_LINE_BYTES: usize = 64 * 1024;
pub const MAX_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Whether `name` can be a label value and a key in state files.
fn is_label_safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Checks the `[[logs]]` sources, returning the field and the problem.
fn validate_logs(logs: &[LogSourceConfig]) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, source) in logs.iter().enumerate() {
        let at = |f: &str| format!("logs[{i}].{f}");
        if !is_label_safe_name(&source.name) {
            return Err((
                at("name"),
                format!(
                    "expected letters, digits, '_', '-' or '.' (not starting with '.'), found {:?}",
                    source.name
                ),
            ));
        }
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
        if source.poll_interval < Duration::from_millis(10) || source.poll_interval > Duration::from_secs(1) {
            return Err((
                at("poll_interval"),
                format!(
                    "expected between 10ms and 1s, found {}",
                    humantime::format_duration(source.poll_interval)
                ),
            ));
        }
        if !(MIN_MAX_LINE_BYTES..=MAX_MAX_LINE_BYTES).contains(&source.max_line_bytes) {
            return Err((
                at("max_line_bytes"),
                format!(
                    "expected between {MIN_MAX_LINE_BYTES} and {MAX_MAX_LINE_BYTES}, found {}",
                    source.max_line_bytes
                ),
            ));
        }
        let mut events = HashSet::new();
        for (j, event) in source.events.iter().enumerate() {
            let at = |f: &str| format!("logs[{i}].events[{j}].{f}");
            if !is_label_safe_name(&event.name) {
                return Err((
                    at("name"),
                    format!(
                        "expected letters, digits, '_', '-' or '.' (not starting with '.'), found {:?}",
                        event.name
                    ),
                ));
            }
            if !events.insert(event.name.as_str()) {
                return Err((at("name"), format!("{:?} is used by another event of this source", event.name)));
            }
            match (&event.contains, &event.regex) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err((
                        format!("logs[{i}].events[{j}]"),
                        "expected exactly one of `contains` or `regex`".into(),
                    ));
                }
                (Some(text), None) if text.is_empty() => {
                    return Err((at("contains"), "must not be empty (it would match every line)".into()));
                }
                (None, Some(pattern)) => {
                    if let Err(e) = regex::bytes::Regex::new(pattern) {
                        return Err((at("regex"), format!("expected a regular expression, found {pattern:?}: {e}")));
                    }
                }
                _ => {}
            }
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

// ---------------------------------------------------------------------------

impl Config {
    /// Reads, parses, applies `UNIQWATCH_MONGODB_URI`, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let uri_override = std::env::var(MONGODB_URI_ENV).ok().filter(|v| !v.is_empty());
        Self::from_toml(&text, path, uri_override)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn from_toml(
        text: &str,
        path: &Path,
        uri_override: Option<String>,
    ) -> Result<Self, ConfigError> {
        let parse_err = |message| ConfigError::Parse { path: path.to_path_buf(), message };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| parse_err(describe_toml_error(text, &e, None)))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            parse_err(describe_toml_error(text, e.inner(), Some(field)))
        })?;
        if let Some(uri) = uri_override {
            config.mongodb.uri = uri;
        }
        config.validate().map_err(|(field, problem)| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            problem,
        })?;
        Ok(config)
    }

    /// Checks every value that TOML types alone cannot, returning the field and the problem.
    fn validate(&self) -> Result<(), (String, String)> {
        let m = &self.mongodb;
        mongodb::options::ConnectionString::parse(&m.uri).map_err(|e| {
            (
                "mongodb.uri".to_string(),
                format!(
                    "not a valid MongoDB connection string ({}): {}",
                    redact_uri(&m.uri),
                    redact_text(&e.to_string(), &m.uri)
                ),
            )
        })?;
        if m.query_timeout < Duration::from_millis(1) {
            return Err(field_err("mongodb.query_timeout", "must be at least 1ms"));
        }
        if m.connect_timeout < Duration::from_millis(1) {
            return Err(field_err("mongodb.connect_timeout", "must be at least 1ms"));
        }
        let mut names = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let at = |f: &str| format!("target[{i}].{f}");
            if t.name.is_empty() {
                return Err((at("name"), "must not be empty".into()));
            }
            if !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                return Err((
                    at("name"),
                    format!("expected letters, digits, '_', '-' or '.', found {:?}", t.name),
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err((at("name"), format!("{:?} is used by another target", t.name)));
            }
            if t.database.is_empty() || t.database.contains(['/', '\\', '.', ' ', '"', '$']) {
                return Err((
                    at("database"),
                    format!("expected a MongoDB database name, found {:?}", t.database),
                ));
            }
            if t.collection.is_empty() || t.collection.starts_with("system.") || t.collection.contains('$') {
                return Err((
                    at("collection"),
                    format!("expected a MongoDB collection name, found {:?}", t.collection),
                ));
            }
            if t.key.is_empty()
                || t.key.starts_with('$')
                || t.key.split('.').any(|part| part.is_empty())
            {
                return Err((
                    at("key"),
                    format!(
                        "expected a field name or dotted path such as \"participantsKey\", found {:?}",
                        t.key
                    ),
                ));
            }
            if let Err(problem) = validate_schedule(&t.schedule) {
                return Err((at("schedule"), problem));
            }
            if t.sample_size > MAX_SAMPLE_SIZE {
                return Err((
                    at("sample_size"),
                    format!("must be at most {MAX_SAMPLE_SIZE}, found {}", t.sample_size),
                ));
            }
        }
        if self.state.retention < MIN_RETENTION {
            return Err(field_err("state.retention", "must be at least 1 day: history younger than that would be pruned"));
        }
        if let Some(audit) = &self.audit {
            audit.validate()?;
            if self.state.retention < MIN_RETENTION_WITH_AUDIT {
                return Err((
                    "state.retention".to_string(),
                    format!(
                        "must be at least 62 days with [audit]: the report of a month is written after it ends, so its history must still be there; found {}",
                        humantime::format_duration(self.state.retention)
                    ),
                ));
            }
        }
        validate_logs(&self.logs)?;
        Ok(())
    }

    /// The effective configuration as TOML, with credentials replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        // Serialising plain structs of strings, numbers and tables cannot fail.
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }
}

fn field_err(field: &str, problem: &str) -> (String, String) {
    (field.to_string(), problem.to_string())
}

/// Checks a cron expression the way the scheduler will parse it: six fields, seconds first.
pub fn validate_schedule(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "expected a cron expression with 6 fields (sec min hour day month weekday), found {fields} in {expr:?}"
        ));
    }
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
        .map_err(|_| format!("expected a cron expression such as \"0 */5 * * * *\", found {expr:?}"))?;
    // Parsed the way the scheduler parses it; a valid expression can still never fire (31 February).
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("expected a cron expression such as \"0 */5 * * * *\", found {expr:?}: {e}"))?;
    cron.find_next_occurrence(&chrono::Utc::now(), false)
        .map(|_| ())
        .map_err(|_| format!("{expr:?} never fires (no such date); expected a schedule that does"))
}

/// Turns a toml error into one line: the field (as `section[i].key`, from
/// the deserializer's path when it has one), the line, and what is wrong.
fn describe_toml_error(text: &str, e: &toml::de::Error, field: Option<String>) -> String {
    let msg = e.message().trim().to_string();
    let field = field.filter(|f| !f.is_empty() && f != "?" && f != ".");
    let line = e.span().map(|span| {
        let start = span.start.min(text.len());
        let line_no = text[..start].matches('\n').count() + 1;
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        (line_no, text[line_start..].lines().next().unwrap_or("").trim().to_string())
    });
    match (field, line) {
        (Some(field), Some((n, _))) => format!("field `{field}` (line {n}): {msg}"),
        (Some(field), None) => format!("field `{field}`: {msg}"),
        (None, Some((n, line))) => format!("line {n} (`{line}`): {msg}"),
        (None, None) => msg,
    }
}

/// A connection string cut into its parts: `scheme://[userinfo@]hosts[/path][?query]`.
struct UriParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    hosts: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

fn split_uri(uri: &str) -> Option<UriParts<'_>> {
    let (scheme, rest) = uri.split_once("://")?;
    // The authority ends at the first '/' or '?' (`mongodb://h:1?opt=x` has no path).
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // Hosts cannot contain '@', so userinfo ends at the last one.
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    Some(UriParts { scheme, userinfo, hosts, path, query })
}

/// Replaces the password of a connection string, and the values of
/// secret-bearing options, with `***`. Safe to put in logs, pages and labels.
pub fn redact_uri(uri: &str) -> String {
    let Some(p) = split_uri(uri) else { return "***".to_string() };
    let userinfo = match p.userinfo {
        Some(info) => match info.split_once(':') {
            Some((user, _)) => format!("{user}:***@"),
            None => format!("{info}@"),
        },
        None => String::new(),
    };
    let query = match p.query {
        Some(query) => {
            let redacted: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_option(k) => format!("{k}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("?{}", redacted.join("&"))
        }
        None => String::new(),
    };
    format!("{}://{userinfo}{}{}{query}", p.scheme, p.hosts, p.path)
}

fn is_secret_option(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k == "authmechanismproperties" || k.contains("secret") || k.contains("token")
}

/// Every secret a connection string carries: the password and the values of
/// secret-bearing options, as written and percent-decoded.
fn uri_secrets(uri: &str) -> Vec<String> {
    let Some(p) = split_uri(uri) else { return Vec::new() };
    let mut secrets: Vec<String> = p
        .userinfo
        .and_then(|info| info.split_once(':'))
        .map(|(_, password)| password.to_string())
        .into_iter()
        .collect();
    for pair in p.query.unwrap_or("").split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if is_secret_option(k) {
                secrets.push(v.to_string());
                // authMechanismProperties=NAME:value,…: each value alone too.
                secrets.extend(v.split(',').filter_map(|kv| kv.split_once(':')).map(|(_, v)| v.to_string()));
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the URI and every secret it carries from a free text (an error message).
pub fn redact_text(text: &str, uri: &str) -> String {
    let mut out = text.replace(uri, &redact_uri(uri));
    for secret in uri_secrets(uri) {
        out = out.replace(&secret, "***");
    }
    out
}

fn serialize_redacted<S: Serializer>(uri: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_uri(uri))
}

/// Durations in config files: `500ms`, `30s`, `5m`, `1h`.
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"30s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                humantime::parse_duration(v).map_err(|e| {
                    E::custom(format!(
                        "expected a duration such as \"500ms\", \"30s\" or \"5m\", found {v:?} ({e})"
                    ))
                })
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), None)
    }

    const TARGET: &str = r#"
[[target]]
name = "chats"
database = "app"
collection = "chats"
key = "participantsKey"
"#;

    #[test]
    fn empty_file_is_valid_with_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.mongodb.query_timeout, Duration::from_secs(30));
        assert_eq!(c.web.listen.port(), 9716);
        assert!(c.targets.is_empty());
    }

    #[test]
    fn target_defaults() {
        let c = parse(TARGET).unwrap();
        let t = &c.targets[0];
        assert!(t.sparse);
        assert_eq!(t.schedule, "0 */5 * * * *");
        assert_eq!(t.sample_size, 20);
    }

    #[test]
    fn durations_parse() {
        let c = parse("[mongodb]\nquery_timeout = \"500ms\"\nconnect_timeout = \"5m\"").unwrap();
        assert_eq!(c.mongodb.query_timeout, Duration::from_millis(500));
        assert_eq!(c.mongodb.connect_timeout, Duration::from_secs(300));
    }

    #[test]
    fn bad_duration_names_field_and_expectation() {
        let e = parse("[mongodb]\nquery_timeout = \"soon\"").unwrap_err().to_string();
        assert!(e.contains("test.toml"), "{e}");
        assert!(e.contains("field `mongodb.query_timeout` (line 2)"), "{e}");
        assert!(e.contains("expected a duration"), "{e}");
    }

    #[test]
    fn type_errors_in_arrays_of_tables_name_the_element() {
        let e = parse(&format!("{TARGET}{TARGET}sparse = \"yes\"").replace("name = \"chats\"\ndatabase = \"app\"\ncollection = \"chats\"\nkey = \"participantsKey\"\nsparse", "name = \"b\"\ndatabase = \"app\"\ncollection = \"chats\"\nkey = \"participantsKey\"\nsparse"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `target[1].sparse`"), "{e}");
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = parse("[web]\nlisten = \"127.0.0.1:1\"\nport = 3").unwrap_err().to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn every_second_schedule_is_accepted() {
        parse(&format!("{TARGET}schedule = \"* * * * * *\"")).unwrap();
    }

    #[test]
    fn five_field_cron_is_rejected_with_the_field() {
        let e = parse(&format!("{TARGET}schedule = \"*/5 * * * *\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule"), "{e}");
        assert!(e.contains("6 fields"), "{e}");
    }

    #[test]
    fn nonsense_cron_is_rejected() {
        let e = parse(&format!("{TARGET}schedule = \"a b c d e f\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule"), "{e}");
    }

    #[test]
    fn retention_too_short_for_the_audit_is_rejected() {
        let e = parse("[state]\nretention = \"0s\"").unwrap_err().to_string();
        assert!(e.contains("state.retention"), "{e}");
        parse("[state]\nretention = \"30days\"").unwrap();
        let e = parse("[state]\nretention = \"30days\"\n[audit]\ndir = \"/r\"").unwrap_err().to_string();
        assert!(e.contains("state.retention") && e.contains("62 days"), "{e}");
    }

    #[test]
    fn schedule_that_never_fires_is_rejected() {
        let e = parse(&format!("{TARGET}schedule = \"0 0 0 31 2 *\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule") && e.contains("never fires"), "{e}");
    }

    #[test]
    fn type_error_inside_a_multiline_array_names_the_field() {
        let e = parse("[[logs]]\nname = \"x\"\npaths = [\n  \"/a\",\n  1,\n]\n").unwrap_err().to_string();
        assert!(e.contains("logs[0].paths"), "{e}");
    }

    #[test]
    fn typo_in_an_inline_table_target_names_the_field() {
        let e = parse("target = [{ name = \"a\", database = \"app\", collection = \"c\", key = \"k\", sprse = true }]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target[0]") && e.contains("unknown field `sprse`"), "{e}");
    }

    #[test]
    fn duplicate_target_names_are_rejected() {
        let e = parse(&format!("{TARGET}{TARGET}")).unwrap_err().to_string();
        assert!(e.contains("target[1].name"), "{e}");
    }

    #[test]
    fn missing_required_field_is_named() {
        let e = parse("[[target]]\nname = \"x\"\ndatabase = \"app\"\ncollection = \"c\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `key`"), "{e}");
    }

    #[test]
    fn bad_key_is_rejected() {
        let e = parse(&TARGET.replace("participantsKey", "$bad")).unwrap_err().to_string();
        assert!(e.contains("target[0].key"), "{e}");
    }

    #[test]
    fn bad_uri_is_rejected_without_leaking_password() {
        let e = parse("[mongodb]\nuri = \"mongodb://u:hunter2@\"").unwrap_err().to_string();
        assert!(e.contains("mongodb.uri"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn env_override_replaces_uri() {
        let c = Config::from_toml("", Path::new("x"), Some("mongodb://other:1/".into())).unwrap();
        assert_eq!(c.mongodb.uri, "mongodb://other:1/");
    }

    #[test]
    fn redaction_hides_passwords_and_secret_options() {
        assert_eq!(
            redact_uri("mongodb://admin:s3cr%40t@db1:27017,db2/app?authSource=admin&readPreference=secondary"),
            "mongodb://admin:***@db1:27017,db2/app?authSource=admin&readPreference=secondary"
        );
        assert_eq!(
            redact_uri("mongodb+srv://u:p@x.example/?authMechanismProperties=AWS_SESSION_TOKEN:abc"),
            "mongodb+srv://u:***@x.example/?authMechanismProperties=***"
        );
        assert_eq!(redact_uri("mongodb://h:1"), "mongodb://h:1");
        // No path before the options: they are still options, not part of the host.
        assert_eq!(
            redact_uri("mongodb://AKIA:secretkey@h:27017?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:XYZ"),
            "mongodb://AKIA:***@h:27017?authMechanism=MONGODB-AWS&authMechanismProperties=***"
        );
        assert_eq!(redact_uri("mongodb://user@h/"), "mongodb://user@h/");
        assert_eq!(redact_uri("garbage"), "***");
    }

    #[test]
    fn redacted_toml_has_no_password() {
        let c = Config::from_toml("", Path::new("x"), Some("mongodb://u:topsecret@h/".into())).unwrap();
        let out = c.to_redacted_toml();
        assert!(!out.contains("topsecret"), "{out}");
        assert!(out.contains("u:***@h"), "{out}");
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

    #[test]
    fn redact_text_removes_password_anywhere() {
        let uri = "mongodb://u:pw123@h/";
        assert_eq!(redact_text("failed for pw123 at h", uri), "failed for *** at h");
    }

    #[test]
    fn redact_text_removes_secret_options_and_decoded_passwords() {
        let uri = "mongodb://u:p%40ss@h?authMechanismProperties=AWS_SESSION_TOKEN:TOKEN123";
        let text = "auth failed: token TOKEN123, password p@ss, uri mongodb://u:p%40ss@h?x";
        let out = redact_text(text, uri);
        assert!(!out.contains("TOKEN123") && !out.contains("p@ss") && !out.contains("p%40ss"), "{out}");
    }

    // --- [[logs]] ---------------------------------------------------------

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
    fn logs_event_needs_exactly_one_matcher() {
        let both = format!("{LOGS}[[logs.events]]\nname = \"e\"\ncontains = \"a\"\nregex = \"b\"");
        let e = parse(&both).unwrap_err().to_string();
        assert!(e.contains("logs[0].events[0]") && e.contains("exactly one"), "{e}");
        let neither = format!("{LOGS}[[logs.events]]\nname = \"e\"");
        let e = parse(&neither).unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
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
        let c = parse(include_str!("../examples/logs.toml")).unwrap();
        assert_eq!(c.logs.len(), 2);
        assert_eq!(c.logs[0].events[0].name, "create_or_get");
    }

    #[test]
    fn logs_unknown_field_is_an_error() {
        let e = parse(&format!("{LOGS}pattern = \"x\"")).unwrap_err().to_string();
        assert!(e.contains("unknown field `pattern`"), "{e}");
    }
}
