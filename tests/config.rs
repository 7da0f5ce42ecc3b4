//! The config loader, durations and connection-string redaction under
//! generated input (proptest), and the binary's handling of config paths
//! that are not regular files and of URIs that once panicked or leaked.
//!
//! The properties: loading never panics and every error names a field or a
//! line; a duration is accepted exactly when it is inside its field's range;
//! and no secret of a connection string (password, secret option), as
//! written or percent-decoded, appears in anything printed: the redacted
//! URI, `config check`'s TOML, `{:?}` of the config, or any error.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use uniqwatch::config::{Config, LogSourceConfig, MongoConfig, StateConfig, WebConfig};
use uniqwatch::redact::{parse_uri, redact_uri};

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

/// `text` as a TOML basic string (Rust's `{:?}` escapes are not all TOML).
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn from_toml(text: &str) -> Result<Config, String> {
    Config::from_toml(text, Path::new("gen.toml"), None).map_err(|e| e.to_string())
}

/// Pieces config files are made of, so generated text reaches deep into the
/// loader rather than failing on its first character.
fn toml_ish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("[mongodb]\n".to_string()),
        Just("[web]\n".to_string()),
        Just("[state]\n".to_string()),
        Just("[audit]\n".to_string()),
        Just("[[target]]\n".to_string()),
        Just("[[logs]]\n".to_string()),
        Just("[[logs.events]]\n".to_string()),
        "(uri|query_timeout|connect_timeout|listen|shutdown_grace|dir|retention|schedule|name|database|collection|key|sparse|sample_size|paths|start_at|poll_interval|max_line_bytes|contains|regex|bogus) = ".prop_map(String::from),
        "\"[ -~éß%]{0,20}\"\n".prop_map(String::from),
        "[0-9]{1,25}\n".prop_map(String::from),
        Just("true\n".to_string()),
        Just("[\"/a\", 1]\n".to_string()),
        "\\PC{0,12}".prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// Every field a config error can name, as it appears in an error.
fn names_a_field_or_line(e: &str) -> bool {
    e.contains("field `") || e.contains("line ") || e.contains("unknown field") || e.contains("missing field")
}

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Well-formed: a number and a unit, any size.
        ("[0-9]{1,13}", "(ns|us|ms|s|m|h|d|days|w|weeks|M|months|y|years)").prop_map(|(n, u)| format!("{n}{u}")),
        // Anything at all.
        "\\PC{0,16}".prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Generated TOML-ish text never panics the loader; an error names a field or a line.
    #[test]
    fn the_loader_never_panics_and_names_what_is_wrong(text in toml_ish()) {
        if let Err(e) = from_toml(&text) {
            prop_assert!(names_a_field_or_line(&e), "{e}\n--- input ---\n{text}");
        }
    }

    /// Any string as any duration field: no panic; accepted exactly when it
    /// parses and lies inside the field's range, else the error names the field.
    #[test]
    fn durations_are_accepted_exactly_inside_their_range(text in duration_text(), field in 0usize..5) {
        let (section, key, min, max) = [
            ("mongodb", "query_timeout", MongoConfig::QUERY_TIMEOUT.min, MongoConfig::QUERY_TIMEOUT.max),
            ("mongodb", "connect_timeout", MongoConfig::CONNECT_TIMEOUT.min, MongoConfig::CONNECT_TIMEOUT.max),
            ("web", "shutdown_grace", WebConfig::SHUTDOWN_GRACE.min, WebConfig::SHUTDOWN_GRACE.max),
            ("state", "retention", StateConfig::RETENTION.min, StateConfig::RETENTION.max),
            ("logs", "poll_interval", LogSourceConfig::POLL_INTERVAL.min, LogSourceConfig::POLL_INTERVAL.max),
        ][field];
        let toml = if section == "logs" {
            format!("[[logs]]\nname = \"l\"\npaths = [\"/p\"]\n{key} = {}\n", quoted(&text))
        } else {
            format!("[{section}]\n{key} = {}\n", quoted(&text))
        };
        let expected = humantime::parse_duration(&text).ok().filter(|d| (min..=max).contains(d));
        match (from_toml(&toml), expected) {
            (Ok(_), Some(_)) => {}
            (Err(e), None) => {
                let named = if section == "logs" { format!("logs[0].{key}") } else { format!("{section}.{key}") };
                prop_assert!(e.contains(&format!("field `{named}`")), "{e}");
            }
            (got, want) => prop_assert!(false, "{toml}: loaded {:?}, expected accepted = {}", got.map(|_| ()), want.is_some()),
        }
    }
}

/// A secret: printable ASCII and some multi-byte characters, always with a
/// distinctive core so that "does not appear" cannot pass by accident.
fn secret() -> impl Strategy<Value = String> {
    ("[!-~é€😀]{0,6}", "[A-Za-z0-9%/?@:#&=+,.é]{0,8}").prop_map(|(a, b)| format!("Zq{a}X{b}"))
}

fn maybe_encode(raw: &str, encode: bool) -> String {
    if encode {
        percent_encoding::utf8_percent_encode(raw, percent_encoding::NON_ALPHANUMERIC).to_string()
    } else {
        raw.to_string()
    }
}

/// A connection string carrying `password` and `token` as written (encoded or not), and the forms a leak could take.
fn uri_with_secrets() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        secret(),
        secret(),
        proptest::bool::weighted(0.7),
        proptest::bool::weighted(0.7),
        prop_oneof![Just("mongodb"), Just("mongodb+srv")],
        prop_oneof![Just("db1:27017"), Just("db1,db2:27018"), Just("h")],
        prop_oneof![Just(""), Just("/"), Just("/app")],
        prop_oneof![
            6 => Just("authMechanismProperties"),
            1 => Just("proxyPassword"),
            1 => Just("tlsCertificateKeyFilePassword"),
            1 => Just("proxyUsername")
        ],
        prop_oneof![Just(""), Just("&readPreference=secondary"), Just("&appName=uw")],
    )
        .prop_map(|(password, token, enc_pw, enc_tok, scheme, hosts, path, option, extra)| {
            let written_pw = maybe_encode(&password, enc_pw);
            let written_tok = maybe_encode(&token, enc_tok);
            let value = if option == "authMechanismProperties" {
                format!("ENVIRONMENT:azure,TOKEN_RESOURCE:{written_tok}")
            } else {
                written_tok.clone()
            };
            let path = if path.is_empty() { "/" } else { path };
            let uri = format!("{scheme}://user:{written_pw}@{hosts}{path}?{option}={value}{extra}");
            let mut leaks = vec![password.clone(), token.clone(), written_pw, written_tok];
            for s in [&password, &token] {
                leaks.push(percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned());
            }
            // The distinctive core of each: `Zq` plus the next two characters.
            for s in [&password, &token] {
                leaks.push(s.chars().take(4).collect());
            }
            (uri, leaks)
        })
}

fn assert_no_leak(what: &str, text: &str, leaks: &[String]) -> Result<(), TestCaseError> {
    for leak in leaks.iter().filter(|l| l.chars().count() >= 4) {
        prop_assert!(!text.contains(leak.as_str()), "{what} shows {leak:?}: {text}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    /// No secret in any output, and no panic, for generated URIs, including
    /// the driver's parser (reached through `parse_uri` and the loader).
    #[test]
    fn no_secret_appears_in_any_output((uri, leaks) in uri_with_secrets()) {
        assert_no_leak("redact_uri", &redact_uri(&uri), &leaks)?;
        if let Err(problem) = parse_uri(&uri) {
            assert_no_leak("parse_uri error", &problem.to_string(), &leaks)?;
        }
        let text = format!("[mongodb]\nuri = {}\n", quoted(&uri));
        match from_toml(&text) {
            Ok(config) => {
                assert_no_leak("config check", &config.to_redacted_toml(), &leaks)?;
                assert_no_leak("Debug", &format!("{config:?}"), &leaks)?;
            }
            Err(e) => {
                prop_assert!(e.contains("mongodb.uri"), "{e}");
                assert_no_leak("config error", &e, &leaks)?;
            }
        }
        let via_env = Config::from_toml("", Path::new("gen.toml"), Some(uri.clone()));
        if let Err(e) = via_env {
            assert_no_leak("env error", &e.to_string(), &leaks)?;
        }
    }

    /// Arbitrary text as a URI: no panic anywhere, and whatever is not a valid URI is never shown.
    #[test]
    fn arbitrary_text_as_a_uri_never_panics(uri in "\\PC{0,40}|mongodb://[ -~é]{0,40}") {
        let shown = redact_uri(&uri);
        if uniqwatch::redact::check_uri(&uri).is_err() {
            prop_assert!(shown.starts_with("***"), "{shown}");
        }
        let _ = parse_uri(&uri);
        let _ = from_toml(&format!("[mongodb]\nuri = {}\n", quoted(&uri)));
    }
}

fn uniqwatch_config_check(config: &Path, env_uri: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["config", "check", "--config"]).arg(config).env_remove("UNIQWATCH_CONFIG");
    match env_uri {
        Some(uri) => cmd.env("UNIQWATCH_MONGODB_URI", uri),
        None => cmd.env_remove("UNIQWATCH_MONGODB_URI"),
    };
    cmd.output().expect("run uniqwatch")
}

/// Issue 13 item 10: a FIFO blocked forever; `/dev/zero` read until memory ran out.
#[test]
fn config_check_refuses_a_fifo_and_a_device_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("config.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let out = uniqwatch_config_check(path, None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(path.to_str().unwrap()) && err.contains("not a regular file"), "{err}");
    }
}

/// Issue 13 items 1, 11: URIs that panicked (in our decoder or the driver's)
/// or printed their password are refused at load, naming the part, quoting nothing.
#[test]
fn config_check_refuses_uris_that_panicked_or_leaked_without_quoting_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("uniqwatch.toml");
    std::fs::write(&config, "").unwrap();
    let cases = [
        ("mongodb://u:p%aé@h/", "invalid percent-encoding in the password", "p%a"),
        (
            "mongodb://h/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:azure,TOKEN_RESOURCE:ab%cé",
            "invalid percent-encoding in the value of option `authMechanismProperties`",
            "ab%c",
        ),
        ("mongodb://h/?proxyHost=p&proxyPassword=Secr%aéTail", "`proxyPassword`", "Secr"),
        ("mongodb://u:hun/ter2@host/", "the password holds a character that must be percent-encoded", "hun"),
        ("mongodb://u:Zm9v/YmFy+cXV4=@host/", "the password holds a character", "Zm9v"),
    ];
    for (uri, said, secret) in cases {
        let out = uniqwatch_config_check(&config, Some(uri));
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{uri}: {all}");
        assert!(all.contains("mongodb.uri") && all.contains("UNIQWATCH_MONGODB_URI") && all.contains(said), "{uri}: {all}");
        assert!(!all.contains(secret) && !all.contains("panicked"), "{uri}: {all}");
    }
}

/// The secrets property is only worth something if the generator reaches
/// both sides: URIs the loader accepts (whose redacted form is printed) and
/// URIs it refuses (whose error is printed).
#[test]
fn the_uri_generator_reaches_accepted_and_refused_uris() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = uri_with_secrets();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..500 {
        let (uri, _) = strategy.new_tree(&mut runner).unwrap().current();
        match from_toml(&format!("[mongodb]\nuri = {}\n", quoted(&uri))) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!("of 500 generated URIs: {accepted} accepted, {refused} refused");
    assert!(accepted >= 50 && refused >= 50, "{accepted} accepted, {refused} refused");
}
