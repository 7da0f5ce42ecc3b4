//! The web config file (`--web.config.file`, `[web] config_file`): the
//! Prometheus exporter toolkit's YAML format, so the file a team already
//! has for node_exporter works here unchanged.
//!
//! [`load`] reads the file and everything it names (certificates, keys,
//! CAs), validates every field and builds what serving needs: the rustls
//! server config, the users and their bcrypt hashes, the extra response
//! headers. Every error names the field (`tls_server_config.cert_file`)
//! and never quotes a key, a password hash or an inline certificate.
//! Relative paths in the file are read from the file's own directory, as
//! the exporter toolkit does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;

use super::any_cert::AnyClientCert;

/// The largest file read (the web config, a certificate, a key): far above
/// any real one, far below a memory problem.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A web config file that cannot be used, with the field at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid web config file {path}: field `{field}`: {problem}")]
pub struct WebConfigError {
    pub path: PathBuf,
    /// The field at fault, dotted (`tls_server_config.client_ca_file`), or
    /// `(file)` for the file as a whole.
    pub field: String,
    pub problem: String,
}

/// The file as written. Unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: Option<TlsServerConfig>,
    http_server_config: Option<HttpServerConfig>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    /// Accepted for compatibility; refused with a message when set (see [`build`]).
    rate_limit: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfig {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpServerConfig {
    /// Accepted and without effect: uniqwatch speaks HTTP/1.1 only (ALPN
    /// `http/1.1`), which every Prometheus scrapes by default.
    #[serde(rename = "http2")]
    _http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// What the file says, ready to serve with.
#[derive(Debug)]
pub struct Loaded {
    /// The TLS server config; `None` serves plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name → bcrypt hash; empty means no authentication.
    pub users: BTreeMap<String, String>,
    /// Extra headers set on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The files whose change means the config must be read again: the
    /// web config file and every file it names.
    pub watched: Vec<PathBuf>,
}

/// Headers the exporter toolkit lets a web config set, each with the values
/// it accepts (`None`: any valid header value).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

/// Reads and validates the web config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, WebConfigError> {
    let err = |field: &str, problem: String| WebConfigError { path: path.to_path_buf(), field: field.to_string(), problem };
    let text = read_text(path).map_err(|problem| err("(file)", problem))?;
    let raw: Option<WebConfigFile> = serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(&text)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "(file)".to_string() } else { field };
        // serde_yaml starts its message with the path, already in `field`.
        let message = e.inner().to_string();
        let message = message.strip_prefix(&format!("{field}: ")).map(str::to_string).unwrap_or(message);
        err(&field, unquoted(&message))
    })?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    build(raw.unwrap_or_default(), &dir, path).map_err(|(field, problem)| err(&field, problem))
}

/// A parser message with every quoted value cut out (`invalid type: string
/// "user:$2b$…"` becomes `invalid type: string "…"`): a value in the wrong
/// place may be a hash, a password or a key.
fn unquoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            inside = !inside;
            out.push(c);
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// Reads `path` if it is a regular file of at most [`MAX_FILE_BYTES`] of UTF-8.
fn read_text(path: &Path) -> Result<String, String> {
    use crate::config::ConfigError;
    crate::config::read_bounded(path, MAX_FILE_BYTES).map_err(|e| match e {
        ConfigError::Read { source, .. } => source.to_string(),
        ConfigError::Unreadable { problem, .. } => problem,
        other => other.to_string(),
    })
}

type Invalid = (String, String);

fn build(raw: WebConfigFile, dir: &Path, path: &Path) -> Result<Loaded, Invalid> {
    let mut watched = vec![path.to_path_buf()];
    if raw.rate_limit.is_some() {
        return Err(("rate_limit".into(), "not supported by uniqwatch; leave it out (uniqwatch bounds connections instead, see the README)".into()));
    }
    let tls = match raw.tls_server_config {
        Some(tls) => Some(Arc::new(build_tls(tls, dir, &mut watched)?)),
        None => None,
    };
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        let field = format!("basic_auth_users.{}", printable(user));
        if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
            return Err((field, "a user name must be non-empty, without `:` or control characters (HTTP basic auth cannot send them)".into()));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err((field, "expected a bcrypt hash ($2y$10$…, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`); the value is not shown".into()));
        }
    }
    let mut headers = Vec::new();
    let http = raw.http_server_config.unwrap_or_default();
    for (name, value) in http.headers.unwrap_or_default() {
        let field = format!("http_server_config.headers.{}", printable(&name));
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err((field, format!("this header cannot be configured; expected one of {}", names.join(", "))));
        };
        if value.is_empty() {
            continue;
        }
        if let Some(values) = allowed {
            if !values.contains(&value.as_str()) {
                return Err((field, format!("expected one of {}, found {:?}", values.join(", "), printable(&value))));
            }
        }
        let value = HeaderValue::from_str(&value).map_err(|_| (field, "not a valid header value (control characters or non-ASCII)".to_string()))?;
        // The allow-list holds valid header names only.
        headers.push((HeaderName::from_static(static_lowercase(&name)), value));
    }
    Ok(Loaded { tls, users, headers, watched })
}

/// The lowercase static name of an allowed header.
fn static_lowercase(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

/// At most 64 characters of `s`, control characters replaced, for an
/// error message about a name the file's author wrote.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn build_tls(tls: TlsServerConfig, dir: &Path, watched: &mut Vec<PathBuf>) -> Result<ServerConfig, Invalid> {
    let f = |name: &str| format!("tls_server_config.{name}");
    if tls.client_allowed_sans.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err((f("client_allowed_sans"), "not supported by uniqwatch; give the clients certificates of a CA of their own (client_ca_file)".into()));
    }
    let cert_pem = pem_source(tls.cert, tls.cert_file, "cert", dir, watched)?
        .ok_or_else(|| (f("cert_file"), "required: the server certificate (PEM), or `cert` inline".to_string()))?;
    let key_pem = pem_source(tls.key, tls.key_file, "key", dir, watched)?
        .ok_or_else(|| (f("key_file"), "required: the server's private key (PEM), or `key` inline".to_string()))?;
    let ca_pem = pem_source(tls.client_ca, tls.client_ca_file, "client_ca", dir, watched)?;

    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| (f(&cert_pem.field), "not a PEM certificate".to_string()))?;
    if certs.is_empty() {
        return Err((f(&cert_pem.field), "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.text.as_bytes())
        .map_err(|_| (f(&key_pem.field), "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_string()))?;

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = tls.cipher_suites.filter(|n| !n.is_empty()) {
        let mut suites: Vec<_> = provider.cipher_suites.iter().filter(|s| s.version() == &rustls::version::TLS13).copied().collect();
        for name in &names {
            let suite = provider
                .cipher_suites
                .iter()
                .find(|s| s.version() == &rustls::version::TLS12 && go_suite_names(s).contains(&name.as_str()))
                .ok_or_else(|| (f("cipher_suites"), format!("{:?} is not a cipher suite uniqwatch supports; expected TLS 1.2 ECDHE suites with AES-GCM or ChaCha20-Poly1305 (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, …); TLS 1.3 suites are always on", printable(name))))?;
            suites.push(*suite);
        }
        provider.cipher_suites = suites;
    }
    if let Some(names) = tls.curve_preferences.filter(|n| !n.is_empty()) {
        let mut groups = Vec::new();
        for name in &names {
            let group = match name.as_str() {
                "X25519" => rustls::crypto::ring::kx_group::X25519,
                "CurveP256" => rustls::crypto::ring::kx_group::SECP256R1,
                "CurveP384" => rustls::crypto::ring::kx_group::SECP384R1,
                other => return Err((f("curve_preferences"), format!("{:?} is not supported; expected X25519, CurveP256 or CurveP384", printable(other)))),
            };
            groups.push(group);
        }
        provider.kx_groups = groups;
    }
    let min = version(tls.min_version.as_deref(), &f("min_version"), 12)?;
    let max = version(tls.max_version.as_deref(), &f("max_version"), 13)?;
    if min > max {
        return Err((f("min_version"), "is above max_version".into()));
    }
    let versions: Vec<&'static SupportedProtocolVersion> = [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, v)| v)
        .collect();

    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let roots = |ca: &PemText| -> Result<Arc<RootCertStore>, Invalid> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca.text.as_bytes()) {
            let cert = cert.map_err(|_| (f(&ca.field), "not a PEM certificate".to_string()))?;
            roots.add(cert).map_err(|_| (f(&ca.field), "holds a certificate that is not a valid CA certificate".to_string()))?;
        }
        if roots.is_empty() {
            return Err((f(&ca.field), "holds no PEM certificate".into()));
        }
        Ok(Arc::new(roots))
    };
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|_| (f("cipher_suites"), "leaves no cipher suite for the allowed TLS versions".to_string()))?;
    let verifying = matches!(auth_type, "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert");
    if ca_pem.is_some() && !verifying {
        return Err((f("client_ca_file"), format!("is set but client_auth_type is {auth_type}, which does not verify client certificates; use RequireAndVerifyClientCert")));
    }
    let builder = match auth_type {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequestClientCert" | "RequireAnyClientCert" => builder.with_client_cert_verifier(Arc::new(AnyClientCert {
            mandatory: auth_type == "RequireAnyClientCert",
            provider: Arc::clone(&provider),
        })),
        "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert" => {
            let ca = ca_pem.as_ref().ok_or_else(|| (f("client_ca_file"), format!("required with client_auth_type {auth_type}")))?;
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, Arc::clone(&provider));
            if auth_type == "VerifyClientCertIfGiven" {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|_| (f(&ca.field), "cannot be used to verify client certificates".to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err((
                f("client_auth_type"),
                format!("{:?} is not a client auth type; expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert", printable(other)),
            ))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|_| (f(&key_pem.field), "does not match the certificate, or is a key type rustls cannot use".to_string()))?;
    // Go's default is to follow the server's order (the field is ignored since Go 1.17).
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// PEM text and the field it came from.
struct PemText {
    text: String,
    field: String,
}

/// The PEM given inline as `inline_name` or in a file, never both.
fn pem_source(inline: Option<String>, file: Option<PathBuf>, inline_name: &str, dir: &Path, watched: &mut Vec<PathBuf>) -> Result<Option<PemText>, Invalid> {
    let file_field = format!("{inline_name}_file");
    match (inline, file) {
        (Some(_), Some(_)) => Err((format!("tls_server_config.{inline_name}"), format!("give either {inline_name} or {file_field}, not both"))),
        (Some(text), None) => Ok(Some(PemText { text, field: inline_name.to_string() })),
        (None, Some(file)) if file.as_os_str().is_empty() => Ok(None),
        (None, Some(file)) => {
            let full = dir.join(&file);
            let text = read_text(&full).map_err(|problem| (format!("tls_server_config.{file_field}"), format!("{}: {problem}", full.display())))?;
            watched.push(full);
            Ok(Some(PemText { text, field: file_field }))
        }
        (None, None) => Ok(None),
    }
}

/// `TLS12` → 12, `TLS13` → 13; `None` gives `default`.
fn version(name: Option<&str>, field: &str, default: u8) -> Result<u8, Invalid> {
    match name {
        None | Some("") => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some("TLS10" | "TLS11") => Err((field.to_string(), "TLS 1.0 and 1.1 are not supported (rustls); expected TLS12 or TLS13".into())),
        Some(other) => Err((field.to_string(), format!("{:?} is not a TLS version; expected TLS12 or TLS13", printable(other)))),
    }
}

/// The names Go gives a TLS 1.2 suite (with the older alias of the ChaCha20 ones).
fn go_suite_names(suite: &rustls::SupportedCipherSuite) -> &'static [&'static str] {
    use rustls::CipherSuite as S;
    match suite.suite() {
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => &["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => &["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => &["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => &["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"],
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => &["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"],
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => &["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parser_messages_never_quote_a_value() {
        let m = super::unquoted(r#"invalid type: string "prometheus:$2b$10$heJX", expected a map"#);
        assert_eq!(m, r#"invalid type: string "…", expected a map"#);
    }

    use super::*;

    /// Writes a self-signed certificate and its key as `server.crt` and `server.key` in `dir`.
    fn self_signed(dir: &Path) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn the_shipped_example_loads_and_its_password_is_change_me() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path());
        let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web-config.yml")).unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, example.replace("/etc/uniqwatch/tls/", "")).unwrap();
        let loaded = load(&path).unwrap();
        assert!(loaded.tls.is_some());
        assert_eq!(loaded.headers.len(), 3);
        assert_eq!(loaded.watched.len(), 3, "the file, the certificate and the key");
        assert!(bcrypt::verify("change-me", &loaded.users["prometheus"]).unwrap());
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "# nothing yet\n").unwrap();
        let loaded = load(&path).unwrap();
        assert!(loaded.tls.is_none() && loaded.users.is_empty() && loaded.headers.is_empty());
    }

    #[test]
    fn go_cipher_suite_names_and_inline_pem_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        self_signed(dir.path());
        let cert = std::fs::read_to_string(dir.path().join("server.crt")).unwrap();
        let indented = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
        let yaml = format!(
            "tls_server_config:\n  cert: |\n{}  key_file: server.key\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  curve_preferences: [X25519, CurveP256]\n  max_version: TLS13\n  prefer_server_cipher_suites: false\nhttp_server_config:\n  http2: true\n",
            indented(&cert)
        );
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        let tls = load(&path).unwrap().tls.unwrap();
        let suites = &tls.crypto_provider().cipher_suites;
        assert_eq!(suites.len(), 5, "the three TLS 1.3 suites and the two named");
        assert!(!tls.ignore_client_order);
    }

    #[test]
    fn a_password_hash_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, "basic_auth_users:\n  bob: plaintext-password\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("basic_auth_users.bob") && !e.contains("plaintext-password"), "{e}");
    }
}
