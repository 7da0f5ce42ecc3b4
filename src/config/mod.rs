//! The configuration file: TOML structs, their defaults and their validation.
//!
//! Loading is one call, [`Config::load`], which reads the file (a regular
//! file of bounded size only), applies environment overrides, and validates.
//! Every failure is a [`ConfigError`] that names the file, the field and what
//! was expected, so an operator can fix it without reading the source; no
//! error quotes the connection string ([`crate::redact`] describes its
//! problems by part).
//!
//! Each section lives in a file of its own, its fields documented where they
//! are declared and every duration, size and count given a range next to
//! them ([`duration`]). `docs/configuration.md` is generated from those doc
//! comments, defaults and ranges by the `reference` test, which fails when
//! the two drift (`UNIQWATCH_REGENERATE=1` rewrites it).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod canonical;
pub mod duration;
mod key;
mod log_events;
mod logs;
mod mongodb;
#[cfg(test)]
mod reference;
mod state;
mod targets;
mod web;

pub use canonical::{parse_expression, CanonicalConfig, Derivation, Preset};
pub use duration::{duration_text, Bounded, Bounds};
pub use key::KeySpec;
pub use log_events::{parse_nanos, DurationParse, DurationSpec, DurationUnit, EventKind, LogEventConfig, DEFAULT_BUCKETS};
pub use logs::{LogSourceConfig, StartAt};
pub use mongodb::MongoConfig;
pub use state::{AuditConfig, StateConfig};
pub use targets::{TargetConfig, MAX_SAMPLE_SIZE, SAMPLE_IDS_PER_KEY};
pub use web::WebConfig;

/// Environment variable that replaces `[mongodb] uri`, so the URI (and its
/// password) can stay out of the config file.
pub const MONGODB_URI_ENV: &str = "UNIQWATCH_MONGODB_URI";

/// The largest config file read: far above any real config, far below a
/// memory problem (`--config /dev/zero` must not read forever).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

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
    /// The path is not something a config can be read from (a FIFO, a device, too large, not UTF-8).
    #[error("cannot read config file {path}: {problem}")]
    Unreadable { path: PathBuf, problem: String },
    /// An environment override is unusable.
    #[error("environment variable {name}: {problem}")]
    Env { name: &'static str, problem: String },
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

/// Reads `path` if it is a regular file of at most `limit` bytes of UTF-8.
/// Opened without blocking (a FIFO with no writer would block `open`), then
/// checked by `fstat` on the open descriptor, then read through a limit.
pub(crate) fn read_bounded(path: &Path, limit: u64) -> Result<String, ConfigError> {
    let unreadable = |problem: String| ConfigError::Unreadable { path: path.to_path_buf(), problem };
    let read_err = |source| ConfigError::Read { path: path.to_path_buf(), source };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file: File = options.open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device)" };
        return Err(unreadable(format!("it is {kind}; expected a regular file")));
    }
    if meta.len() > limit {
        return Err(unreadable(format!("it is {} bytes; expected at most {limit}", meta.len())));
    }
    let mut bytes = Vec::new();
    // The file may grow between fstat and read: the limit holds regardless.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(unreadable(format!("it is larger than {limit} bytes")));
    }
    String::from_utf8(bytes).map_err(|e| {
        unreadable(format!("expected UTF-8 text, found an invalid byte at offset {}", e.utf8_error().valid_up_to()))
    })
}

impl Config {
    /// Reads, parses, applies `UNIQWATCH_MONGODB_URI`, and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = read_bounded(path, MAX_CONFIG_BYTES)?;
        let uri_override = match std::env::var(MONGODB_URI_ENV) {
            Ok(v) if v.is_empty() => None,
            Ok(v) => Some(v),
            Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(ConfigError::Env { name: MONGODB_URI_ENV, problem: "expected UTF-8 text".into() })
            }
        };
        Self::from_toml(&text, path, uri_override)
    }

    /// Parses and validates TOML text; `path` is only used in error messages.
    pub fn from_toml(text: &str, path: &Path, uri_override: Option<String>) -> Result<Self, ConfigError> {
        let parse_err = |message| ConfigError::Parse { path: path.to_path_buf(), message };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| parse_err(describe_toml_error(text, &e, None)))?;
        let mut config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            parse_err(describe_toml_error(text, e.inner(), Some(field)))
        })?;
        for (i, t) in config.targets.iter_mut().enumerate() {
            t.position = i;
        }
        let uri_from_env = uri_override.is_some();
        if let Some(uri) = uri_override {
            config.mongodb.uri = uri;
        }
        config.validate(uri_from_env).map_err(|(field, problem)| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            problem,
        })?;
        Ok(config)
    }

    /// Checks every value that TOML types alone cannot, returning the field and the problem.
    fn validate(&self, uri_from_env: bool) -> Result<(), (String, String)> {
        self.mongodb.validate(uri_from_env)?;
        self.web.validate()?;
        targets::validate_targets(&self.targets)?;
        if let Some(audit) = &self.audit {
            audit.validate()?;
        }
        self.state.validate(self.audit.as_ref())?;
        logs::validate_logs(&self.logs)
    }

    /// The effective configuration as TOML, with credentials replaced by `***`.
    pub fn to_redacted_toml(&self) -> String {
        // Serialising plain structs of strings, numbers and tables cannot fail.
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }
}

/// Checks a name that becomes a label value and a key in state files
/// (targets, log sources, log events): one rule for all of them.
pub fn validate_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.starts_with('.') || !name.chars().all(allowed) {
        return Err(format!(
            "expected letters, digits, '_', '-' or '.', not starting with '.' (the name is a key in state files), found {name:?}"
        ));
    }
    Ok(())
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
/// The line itself is never quoted (it may hold the connection string):
/// only the key it sets, when it looks like one.
fn describe_toml_error(text: &str, e: &toml::de::Error, field: Option<String>) -> String {
    let msg = without_values(e.message().trim());
    let field = field.filter(|f| !f.is_empty() && f != "?" && f != ".");
    let bytes = text.as_bytes();
    let line = e.span().map(|span| {
        let start = span.start.min(bytes.len());
        let line_no = bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = bytes[..start].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line_end = bytes[line_start..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| line_start + i);
        let line = String::from_utf8_lossy(&bytes[line_start..line_end]);
        let key = line
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|k| !k.is_empty() && k.len() <= 64 && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map(str::to_string);
        (line_no, key)
    });
    match (field, line) {
        (Some(field), Some((n, _))) => format!("field `{field}` (line {n}): {msg}"),
        (Some(field), None) => format!("field `{field}`: {msg}"),
        (None, Some((n, Some(key)))) => format!("line {n} (setting `{key}`): {msg}"),
        (None, Some((n, None))) => format!("line {n}: {msg}"),
        (None, None) => msg,
    }
}

/// A deserializer's message without the values it quotes: serde shows a
/// string of the wrong type or value (`invalid type: string "…"`) and an
/// unknown variant as written, and a misplaced password would be printed.
fn without_values(msg: &str) -> String {
    static QUOTED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let quoted = QUOTED.get_or_init(|| {
        // A literal pattern: it always compiles.
        regex::Regex::new(r#"(?:string|str|character|char) "(?:[^"\\]|\\.)*"|unknown variant `[^`]*`"#).expect("valid pattern")
    });
    quoted
        .replace_all(msg, |c: &regex::Captures| {
            if c[0].starts_with("unknown variant") { "unknown value".to_string() } else { "a string (not shown)".to_string() }
        })
        .into_owned()
}

/// What the tests of every config file share: a parser and a minimal target.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use super::{Config, ConfigError};

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), None)
    }

    pub const TARGET: &str = r#"
[[target]]
name = "chats"
database = "app"
collection = "chats"
key = "participantsKey"
"#;
}

#[cfg(test)]
mod tests {
    use super::test_support::parse;
    use super::*;

    #[test]
    fn a_value_of_the_wrong_type_is_not_echoed() {
        let e = parse("mongodb = \"mongodb://u:SECRETPW@h/\"").unwrap_err().to_string();
        assert!(!e.contains("SECRETPW"), "{e}");
        assert!(e.contains("field `mongodb`") && e.contains("invalid type"), "{e}");
        let e = parse("[web]\nshutdown_grace = \"SECRETPW\"").unwrap_err().to_string();
        assert!(!e.contains("SECRETPW") && e.contains("web.shutdown_grace"), "{e}");
        let e = parse("[[logs]]\nname = \"a\"\npaths = [\"/x\"]\nstart_at = \"SECRETPW\"").unwrap_err().to_string();
        assert!(!e.contains("SECRETPW") && e.contains("logs[0].start_at"), "{e}");
    }

    #[test]
    fn empty_file_is_valid_with_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.mongodb.query_timeout, std::time::Duration::from_secs(30));
        assert_eq!(c.web.listen.port(), 9716);
        assert!(c.targets.is_empty());
    }

    #[test]
    fn unknown_field_is_an_error() {
        let e = parse("[web]\nlisten = \"127.0.0.1:1\"\nport = 3").unwrap_err().to_string();
        assert!(e.contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn type_error_inside_a_multiline_array_names_the_field() {
        let e = parse("[[logs]]\nname = \"x\"\npaths = [\n  \"/a\",\n  1,\n]\n").unwrap_err().to_string();
        assert!(e.contains("logs[0].paths"), "{e}");
    }

    /// A syntax error on the URI's line used to quote the whole line, password included.
    #[test]
    fn syntax_errors_name_the_line_and_key_without_quoting_it() {
        let e = parse("[mongodb]\nuri = \"mongodb://u:se\"cret@h/\"\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("`uri`"), "{e}");
        assert!(!e.contains("se\"cret") && !e.contains("cret@h"), "{e}");
    }

    #[test]
    fn one_name_rule_for_targets_sources_and_events() {
        assert!(validate_name("chat-backend.v2_1").is_ok());
        for bad in ["", ".x", "..", "a b", "a/b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn load_reads_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[web]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().web.listen.port(), 1);
    }

    /// Issue 13 item 10: a FIFO blocked `load` forever, `/dev/zero` read until memory ran out.
    #[test]
    fn load_refuses_what_is_not_a_bounded_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let e = Config::load(&fifo).unwrap_err().to_string();
        assert!(e.contains(fifo.to_str().unwrap()) && e.contains("not a regular file"), "{e}");

        let e = Config::load(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("not a regular file"), "{e}");

        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");

        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_CONFIG_BYTES as usize + 1]).unwrap();
        let e = Config::load(&big).unwrap_err().to_string();
        assert!(e.contains("big.toml") && e.contains("at most 1048576"), "{e}");

        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"# caf\xe9\n").unwrap();
        let e = Config::load(&latin1).unwrap_err().to_string();
        assert!(e.contains("expected UTF-8"), "{e}");
    }
}
