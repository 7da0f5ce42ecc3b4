//! `[mongodb]`: the connection string and the time limits on every query.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::duration::{check_all, days, duration_text, millis, secs, Bounded, Bounds};
use crate::redact::{parse_uri, redact_uri};

/// `[mongodb]`: how to reach MongoDB and how long any query may take.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string. Its `readPreference` is honoured by every query, so
    /// `secondaryPreferred` keeps the checks off the primary.
    /// `UNIQWATCH_MONGODB_URI` overrides it, so the password can stay out of
    /// the file. The username and password must be percent-encoded (`%40`
    /// for `@`, `%2F` for `/`, `%3F` for `?`, `%25` for `%`); it is shown
    /// everywhere by its parts, the password and secret options as `***`.
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

impl MongoConfig {
    /// Range of `query_timeout`.
    pub const QUERY_TIMEOUT: Bounds<Duration> = Bounds {
        min: millis(1),
        max: days(1),
        why: "it is sent as maxTimeMS, which must stay below 2^31 ms, and a run longer than a day is a mistake",
    };
    /// Range of `connect_timeout`.
    pub const CONNECT_TIMEOUT: Bounds<Duration> = Bounds {
        min: millis(1),
        max: secs(3600),
        why: "a longer wait would hide an outage",
    };

    /// Every bounded field with its value.
    pub fn bounded(&self) -> [(&'static str, Bounded); 2] {
        [
            ("query_timeout", Bounded::Duration(self.query_timeout, Self::QUERY_TIMEOUT)),
            ("connect_timeout", Bounded::Duration(self.connect_timeout, Self::CONNECT_TIMEOUT)),
        ]
    }

    /// Checks the section; `uri_from_env` makes an error about the URI say where it came from.
    pub(super) fn validate(&self, uri_from_env: bool) -> Result<(), (String, String)> {
        parse_uri(&self.uri).map_err(|problem| {
            let from = if uri_from_env { format!(" (set by {})", super::MONGODB_URI_ENV) } else { String::new() };
            ("mongodb.uri".to_string(), format!("not a valid MongoDB connection string{from}: {problem}"))
        })?;
        check_all("mongodb.", self.bounded())
    }
}

/// Shows the URI by its parts only, so a `{:?}` of the config leaks nothing.
impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_uri(&self.uri))
            .field("query_timeout", &self.query_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
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

impl Default for MongoConfig {
    fn default() -> Self {
        Self {
            uri: default_uri(),
            query_timeout: default_query_timeout(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

fn serialize_redacted<S: Serializer>(uri: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_uri(uri))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::test_support::parse;
    use super::super::Config;
    use super::*;


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

    /// Issue 13 item 2: an absurd timeout passed and panicked every run; 25 days passed and failed every check.
    #[test]
    fn query_timeout_is_bounded_at_load() {
        for value in ["300000000000years", "25days", "0s"] {
            let e = parse(&format!("[mongodb]\nquery_timeout = \"{value}\"")).unwrap_err().to_string();
            assert!(e.contains("field `mongodb.query_timeout`") && e.contains("expected 1ms to 1day"), "{e}");
        }
        parse("[mongodb]\nquery_timeout = \"24h\"").unwrap();
        let e = parse("[mongodb]\nconnect_timeout = \"2h\"").unwrap_err().to_string();
        assert!(e.contains("field `mongodb.connect_timeout`"), "{e}");
    }

    #[test]
    fn bad_uri_is_rejected_without_leaking_password() {
        let e = parse("[mongodb]\nuri = \"mongodb://u:hunter2@\"").unwrap_err().to_string();
        assert!(e.contains("mongodb.uri"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn uri_errors_name_the_part_and_the_source() {
        let e = Config::from_toml("", Path::new("x"), Some("mongodb://u:p%aé@h/".into())).unwrap_err().to_string();
        assert!(e.contains("field `mongodb.uri`") && e.contains("UNIQWATCH_MONGODB_URI"), "{e}");
        assert!(e.contains("invalid percent-encoding in the password"), "{e}");
        assert!(!e.contains("p%a"), "{e}");
    }

    #[test]
    fn env_override_replaces_uri() {
        let c = Config::from_toml("", Path::new("x"), Some("mongodb://other:1/".into())).unwrap();
        assert_eq!(c.mongodb.uri, "mongodb://other:1/");
    }

    #[test]
    fn redacted_toml_and_debug_have_no_password() {
        let c = Config::from_toml("", Path::new("x"), Some("mongodb://u:topsecret@h/".into())).unwrap();
        let out = c.to_redacted_toml();
        assert!(!out.contains("topsecret"), "{out}");
        assert!(out.contains("u:***@h"), "{out}");
        let debug = format!("{c:?}");
        assert!(!debug.contains("topsecret") && debug.contains("u:***@h"), "{debug}");
    }
}
