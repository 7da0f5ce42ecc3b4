//! Writes `docs/configuration.md` from the config's own source: the doc
//! comments of every section and field (read from `src/config/*.rs`), the
//! defaults (serialised from a parsed config) and the ranges (each section's
//! `bounded()`). The test fails when the file on disk differs;
//! `UNIQWATCH_REGENERATE=1 cargo test --lib config::reference` rewrites it.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Bounded, Config};

/// The section files, in the order the reference shows them.
const SOURCES: [&str; 7] = ["mongodb.rs", "web.rs", "state.rs", "targets.rs", "canonical.rs", "logs.rs", "log_events.rs"];

/// A config with every section present, so every default can be read off it.
const EVERY_SECTION: &str = r#"
[audit]
dir = "/var/lib/uniqwatch/reports"

[[target]]
name = "t"
database = "d"
collection = "c"
key = "k"

[target.canonical]
preset = "lowercase"

[[logs]]
name = "l"
paths = ["/p"]

[[logs.events]]
name = "e"
contains = "x"
"#;

const INTRO: &str = "\
# Configuration reference

<!-- Generated from the doc comments in src/config/ by `cargo test --lib config::reference`.
     Do not edit: change the doc comment, then run it with UNIQWATCH_REGENERATE=1. -->

A TOML file given by `--config` (or `UNIQWATCH_CONFIG`); only a regular file
of at most 1 MiB is read. Unknown fields are errors; every error names the
file, the field (as `target[1].schedule`) and what was expected. Durations
read `500ms`, `30s`, `5m`, `1h`, `2days`. Every duration, size and count has
a range, checked at load. A complete example:
[`examples/uniqwatch.toml`](../examples/uniqwatch.toml).
";

/// The web config file's format: YAML of the Prometheus exporter toolkit,
/// parsed in `src/websec/file.rs` rather than declared here.
const WEB_CONFIG_FILE: &str = "
## The web config file (`[web] config_file`, `--web.config.file`)

YAML in the [Prometheus exporter toolkit's format](https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md),
so the file written for node_exporter works unchanged; unknown fields are
errors naming the field. Relative paths are read from the file's directory.
Example: [`examples/web-config.yml`](../examples/web-config.yml); see the
README, \"Web security\".

| field | what uniqwatch does with it |
|---|---|
| `tls_server_config.cert_file`, `key_file` (or `cert`, `key` inline) | the server certificate chain and key, PEM; required with `tls_server_config` |
| `tls_server_config.client_auth_type` | `NoClientCert` (default), `RequestClientCert`, `RequireAnyClientCert`, `VerifyClientCertIfGiven`, `RequireAndVerifyClientCert`; only the last authenticates clients |
| `tls_server_config.client_ca_file` (or `client_ca`) | the CA client certificates must chain to; required with, and only allowed with, the two `Verify` types |
| `tls_server_config.min_version`, `max_version` | `TLS12` (default minimum) or `TLS13`; TLS 1.0 and 1.1 are refused |
| `tls_server_config.cipher_suites` | Go names of TLS 1.2 suites rustls has (ECDHE with AES-GCM or ChaCha20-Poly1305); others are refused; TLS 1.3 suites are always on |
| `tls_server_config.curve_preferences` | `X25519`, `CurveP256`, `CurveP384` |
| `tls_server_config.prefer_server_cipher_suites` | default `true` |
| `tls_server_config.client_allowed_sans` | refused when not empty (not supported) |
| `http_server_config.headers` | `Strict-Transport-Security`, `X-Content-Type-Options` (`nosniff`), `X-Frame-Options` (`deny`, `sameorigin`), `X-XSS-Protection`, `Content-Security-Policy`, set on every answer; any other header is refused |
| `http_server_config.http2` | accepted, no effect: uniqwatch serves HTTP/1.1 |
| `basic_auth_users` | user name: bcrypt hash; when not empty, every endpoint (`/healthz` included) asks for basic auth |
| `rate_limit` | refused (not supported) |
";

struct Field {
    key: String,
    rust_type: String,
    attrs: String,
    doc: String,
}

struct Section {
    header: String,
    doc: String,
    fields: Vec<Field>,
}

/// Doc lines joined into paragraphs (a bare `///` separates them).
fn join_doc(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        if line.is_empty() {
            out.push_str("\n\n");
        } else {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push(' ');
            }
            out.push_str(line);
        }
    }
    out
}

/// Every documented `pub struct` whose doc starts with its TOML header (`` `[mongodb]`: ``).
fn sections(source: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut attrs = String::new();
    let mut current: Option<Section> = None;
    for line in source.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim().to_string());
        } else if line.starts_with("#[") {
            attrs.push_str(line);
        } else if line.starts_with("pub struct ") && line.ends_with('{') {
            let text = join_doc(&doc);
            current = text.strip_prefix('`').and_then(|rest| rest.split_once("`:")).map(|(header, rest)| Section {
                header: header.to_string(),
                doc: capitalise(rest.trim()),
                fields: Vec::new(),
            });
            doc.clear();
            attrs.clear();
        } else if let (Some(section), Some(decl)) = (current.as_mut(), line.strip_prefix("pub ")) {
            if let Some((name, rust_type)) = decl.split_once(": ") {
                let key = attrs
                    .split_once("rename = \"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map_or(name, |(renamed, _)| renamed);
                section.fields.push(Field {
                    key: key.to_string(),
                    rust_type: rust_type.trim_end_matches(',').to_string(),
                    attrs: attrs.clone(),
                    doc: join_doc(&doc),
                });
            }
            doc.clear();
            attrs.clear();
        } else if line == "}" {
            out.extend(current.take());
            doc.clear();
            attrs.clear();
        } else if !line.is_empty() {
            doc.clear();
            attrs.clear();
        }
    }
    out
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn type_name(field: &Field) -> Option<&'static str> {
    if field.attrs.contains("duration_text") {
        return Some("duration");
    }
    Some(match field.rust_type.as_str() {
        "String" | "Option<String>" => "string",
        "bool" => "boolean",
        "usize" => "integer",
        "PathBuf" | "Option<PathBuf>" => "path",
        "SocketAddr" => "address",
        "Vec<String>" => "list of strings",
        "KeySpec" => "string or list of strings",
        "StartAt" => "`end` or `beginning`",
        "EventKind" => "`match` or `mongod_slow_query`",
        "Option<DurationUnit>" => "`ns`, `us`, `ms` or `s`",
        "Option<Vec<String>>" => "list of durations",
        "Option<Preset>" => "`sorted_join`, `lowercase` or `trim_lowercase`",
        // A nested array of tables is a section of its own.
        _ => return None,
    })
}

fn show_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("`{s:?}`"),
        other => format!("`{other}`"),
    }
}

/// Each section's bounded fields, by section header.
type Ranges = BTreeMap<&'static str, Vec<(&'static str, Bounded)>>;

/// The parsed example as TOML tables (one per section header), and its ranges.
fn defaults() -> (BTreeMap<&'static str, toml::Table>, Ranges) {
    let config = Config::from_toml(EVERY_SECTION, Path::new("reference"), None).expect("the reference config is valid");
    let value = toml::Table::try_from(&config).expect("config serialises to TOML");
    let table = |v: &toml::Value| v.as_table().cloned().unwrap_or_default();
    let first = |v: &toml::Value| v.as_array().and_then(|a| a.first()).map(table).unwrap_or_default();
    let mut tables = BTreeMap::new();
    tables.insert("[mongodb]", table(&value["mongodb"]));
    tables.insert("[web]", table(&value["web"]));
    tables.insert("[state]", table(&value["state"]));
    tables.insert("[audit]", table(&value["audit"]));
    tables.insert("[[target]]", first(&value["target"]));
    tables.insert("[target.canonical]", first(&value["target"]).get("canonical").map(table).unwrap_or_default());
    tables.insert("[[logs]]", first(&value["logs"]));
    let events = first(&value["logs"]).get("events").map(first).unwrap_or_default();
    tables.insert("[[logs.events]]", events);
    let mut bounds = BTreeMap::new();
    bounds.insert("[mongodb]", config.mongodb.bounded().to_vec());
    bounds.insert("[web]", config.web.bounded().to_vec());
    bounds.insert("[state]", config.state.bounded().to_vec());
    bounds.insert("[[target]]", config.targets[0].bounded().to_vec());
    bounds.insert("[target.canonical]", config.targets[0].canonical.as_ref().map(|c| c.bounded()).unwrap_or_default());
    bounds.insert("[[logs]]", config.logs[0].bounded().to_vec());
    (tables, bounds)
}

fn render() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config");
    let (tables, bounds) = defaults();
    let mut out = INTRO.to_string();
    for file in SOURCES {
        let source = std::fs::read_to_string(dir.join(file)).expect("config source is readable");
        for section in sections(&source) {
            out.push_str(&format!("\n## `{}`\n\n{}\n\n", section.header, section.doc));
            out.push_str("| field | type | default | range | meaning |\n|---|---|---|---|---|\n");
            let table = tables.get(section.header.as_str()).unwrap_or_else(|| panic!("no defaults for {}", section.header));
            let ranges = bounds.get(section.header.as_str()).cloned().unwrap_or_default();
            for field in &section.fields {
                let Some(kind) = type_name(field) else { continue };
                let default = if !field.attrs.contains("default") {
                    "required".to_string()
                } else if field.rust_type.starts_with("Option<") {
                    "none".to_string()
                } else {
                    table.get(&field.key).map_or_else(|| "none".to_string(), show_value)
                };
                let range = ranges.iter().find(|(name, _)| *name == field.key).map(|(_, b)| b.range()).unwrap_or_default();
                let meaning = field.doc.replace("\n\n", " ").replace('|', "\\|");
                out.push_str(&format!("| `{}` | {kind} | {default} | {range} | {meaning} |\n", field.key));
            }
        }
    }
    out.push_str(WEB_CONFIG_FILE);
    out
}

#[test]
fn the_reference_matches_the_source() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let expected = render();
    if std::env::var("UNIQWATCH_REGENERATE").as_deref() == Ok("1") {
        std::fs::write(&path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "docs/configuration.md differs from the config's doc comments; run UNIQWATCH_REGENERATE=1 cargo test --lib config::reference"
    );
}

#[test]
fn every_section_and_bounded_field_is_in_the_reference() {
    let text = render();
    for header in ["[mongodb]", "[web]", "[state]", "[audit]", "[[target]]", "[target.canonical]", "[[logs]]", "[[logs.events]]"] {
        assert!(text.contains(&format!("## `{header}`")), "{header} missing");
    }
    assert!(text.contains("| `query_timeout` | duration | `\"30s\"` | 1ms to 1day |"), "{text}");
    assert!(text.contains("| `name` | string | required |"), "{text}");
}
