//! Connection strings shown and parsed without ever printing a secret.
//!
//! Secrets are never printed and then masked: a URI is shown only by its
//! parts ([`redact_uri`]: scheme, hosts, database, the values of non-secret
//! options), rebuilt from a split that follows the driver's own rules, so a
//! password with an unencoded `/` cannot slip into the "hosts" and a short
//! password cannot turn a mask into an oracle. Before the driver's parser
//! sees a URI, [`parse_uri`] checks what makes that parser panic or quote its
//! input (a `%` not followed by two hex digits, reserved characters in the
//! userinfo) and describes every problem by the part it is in, never by its
//! value; the driver's own parse runs under `catch_unwind` as well. The
//! config (`mongodb.uri`), the client ([`crate::mongo`]) and the daemon's
//! start-up line all go through here.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mongodb::options::{ConnectionString, ReadPreference};

/// What is shown instead of a secret.
pub const MASK: &str = "***";

/// Connection-string options the driver may accept (case-insensitive), and
/// whether their value is a secret. An option missing here is rejected as
/// unknown before the driver sees it, so the list errs on the side of more.
const OPTIONS: &[(&str, bool)] = &[
    ("adaptiveRetries", false),
    ("appName", false),
    ("authMechanism", false),
    ("authMechanismProperties", true),
    ("authSource", false),
    ("compressors", false),
    ("connectTimeoutMS", false),
    ("directConnection", false),
    ("enableOverloadRetargeting", false),
    ("heartbeatFrequencyMS", false),
    ("journal", false),
    ("loadBalanced", false),
    ("localThresholdMS", false),
    ("maxAdaptiveRetries", false),
    ("maxConnecting", false),
    ("maxIdleTimeMS", false),
    ("maxPoolSize", false),
    ("maxStalenessSeconds", false),
    ("minPoolSize", false),
    ("proxyHost", false),
    ("proxyPassword", true),
    ("proxyPort", false),
    ("proxyUsername", true),
    ("readConcernLevel", false),
    ("readPreference", false),
    ("readPreferenceTags", false),
    ("replicaSet", false),
    ("retryReads", false),
    ("retryWrites", false),
    ("serverMonitoringMode", false),
    ("serverSelectionTimeoutMS", false),
    ("socketTimeoutMS", false),
    ("srvMaxHosts", false),
    ("srvServiceName", false),
    ("ssl", false),
    ("timeoutMS", false),
    ("tls", false),
    ("tlsAllowInvalidCertificates", false),
    ("tlsAllowInvalidHostnames", false),
    ("tlsCAFile", false),
    ("tlsCertificateKeyFile", false),
    ("tlsCertificateKeyFilePassword", true),
    ("tlsInsecure", false),
    ("uuidRepresentation", false),
    ("w", false),
    ("waitQueueTimeoutMS", false),
    ("wTimeoutMS", false),
    ("zlibCompressionLevel", false),
];

/// The known option named `key` (any case): its canonical name and whether its value is secret.
fn known_option(key: &str) -> Option<(&'static str, bool)> {
    OPTIONS.iter().copied().find(|(name, _)| name.eq_ignore_ascii_case(key))
}

/// Characters that must be percent-encoded in a username or password (RFC 3986 gen-delims).
const USERINFO_RESERVED: [char; 7] = [':', '/', '?', '#', '[', ']', '@'];

/// A connection string cut the way the driver cuts it: options after the
/// first `?`; userinfo before the last `@` ahead of that; hosts up to the
/// first `/` after the userinfo. All parts as written (still percent-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParts<'a> {
    pub scheme: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub hosts: &'a str,
    pub database: Option<&'a str>,
    pub options: Option<&'a str>,
}

/// Splits `uri` into its parts; `None` without `://`.
pub fn split_uri(uri: &str) -> Option<UriParts<'_>> {
    let (scheme, rest) = uri.split_once("://")?;
    let (before_options, options) = match rest.split_once('?') {
        Some((before, options)) => (before, Some(options)),
        None => (rest, None),
    };
    let (userinfo, hosts_and_database) = match before_options.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, before_options),
    };
    let (username, password) = match userinfo.map(|u| u.split_once(':')) {
        Some(Some((user, password))) => (Some(user), Some(password)),
        Some(None) => (userinfo, None),
        None => (None, None),
    };
    let (hosts, database) = match hosts_and_database.split_once('/') {
        Some((hosts, database)) => (hosts, Some(database)),
        None => (hosts_and_database, None),
    };
    Some(UriParts { scheme, username, password, hosts, database, options })
}

/// The part of a connection string a problem is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriPart {
    Username,
    Password,
    Database,
    /// The value of a known option, by its canonical name.
    Option(&'static str),
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPart::Username => f.write_str("the username"),
            UriPart::Password => f.write_str("the password"),
            UriPart::Database => f.write_str("the database name"),
            UriPart::Option(name) => write!(f, "the value of option `{name}`"),
        }
    }
}

/// Why a connection string is refused. Every message names a part or a
/// position and never quotes a value, so it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriProblem {
    #[error("expected a connection string starting with mongodb:// or mongodb+srv://")]
    Scheme,
    #[error("an '@' follows the '?' of the options: percent-encode a '?' in the username or password as %3F, and an '@' in an option value as %40")]
    AtInOptions,
    #[error("{0} holds a character that must be percent-encoded (one of : / ? # [ ] @)")]
    Reserved(UriPart),
    #[error("invalid percent-encoding in {0}: every '%' must start an escape of two hex digits (write %25 for '%' itself)")]
    BadEscape(UriPart),
    #[error("{0} does not decode to UTF-8 text")]
    NotUtf8(UriPart),
    #[error("{0} holds a character not allowed there (one of / \\ space \" $)")]
    BadDatabase(UriPart),
    #[error("expected at least one host after `//` (and after the `@` of the credentials)")]
    NoHost,
    #[error("host {0} (counting from 1) is empty or has a port that is not a number from 1 to 65535")]
    BadHost(usize),
    #[error("option {0} (counting from 1) is not a `key=value` pair")]
    NotKeyValue(usize),
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    #[error("option {0} (counting from 1) has a name that is not a known option")]
    UnknownOptionAt(usize),
    #[error("option `{0}` is given twice")]
    Repeated(&'static str),
    #[error("option `{0}` is not accepted here (a value or a combination the MongoDB driver rejects)")]
    DriverRejectsOption(&'static str),
    #[error("the MongoDB driver rejects the hosts or the database name")]
    DriverRejectsHosts,
    #[error("the MongoDB driver rejects the combination of credentials and options")]
    DriverRejectsCombination,
    #[error("the MongoDB driver failed inside its parser on this connection string")]
    DriverPanicked,
    #[error("option `{0}` {1}")]
    OutOfRange(&'static str, &'static str),
}

/// Checks the escapes of one part: every `%` starts two hex digits, and the result is UTF-8.
fn check_escapes(text: &str, part: UriPart) -> Result<(), UriProblem> {
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('%') {
        let ok = bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if !ok {
            return Err(UriProblem::BadEscape(part));
        }
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|_| ())
        .map_err(|_| UriProblem::NotUtf8(part))
}

fn check_userinfo(text: &str, part: UriPart) -> Result<(), UriProblem> {
    if text.contains(USERINFO_RESERVED) {
        return Err(UriProblem::Reserved(part));
    }
    check_escapes(text, part)
}

/// Whether `host` is `name`, `name:port`, `[ipv6]` or `[ipv6]:port` with a port in 1..=65535.
fn host_is_valid(host: &str) -> bool {
    let (name, port) = match host.strip_prefix('[') {
        Some(literal) => match literal.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, rest)) => match rest.strip_prefix(':') {
                Some(port) => (name, Some(port)),
                None => return false,
            },
            None => return false,
        },
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    !name.is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

/// Checks what the driver's parser must never see, and what its messages
/// would quote: the scheme, the escapes and reserved characters of every
/// part, the hosts, and that every option is known and `key=value`.
pub fn check_uri(uri: &str) -> Result<UriParts<'_>, UriProblem> {
    let parts = split_uri(uri).ok_or(UriProblem::Scheme)?;
    if !matches!(parts.scheme, "mongodb" | "mongodb+srv") {
        return Err(UriProblem::Scheme);
    }
    if parts.options.is_some_and(|o| o.contains('@')) {
        return Err(UriProblem::AtInOptions);
    }
    if let Some(user) = parts.username {
        check_userinfo(user, UriPart::Username)?;
    }
    if let Some(password) = parts.password {
        check_userinfo(password, UriPart::Password)?;
    }
    if let Some(database) = parts.database {
        check_escapes(database, UriPart::Database)?;
        let decoded = percent_encoding::percent_decode_str(database).decode_utf8_lossy();
        if decoded.contains(['/', '\\', ' ', '"', '$']) {
            return Err(UriProblem::BadDatabase(UriPart::Database));
        }
    }
    if parts.hosts.is_empty() {
        return Err(UriProblem::NoHost);
    }
    if let Some(i) = parts.hosts.split(',').position(|h| !host_is_valid(h)) {
        return Err(UriProblem::BadHost(i + 1));
    }
    let mut seen = Vec::new();
    let mut after_secret = false;
    let options = parts.options.filter(|o| !o.is_empty());
    for (i, pair) in options.into_iter().flat_map(|o| o.split('&')).enumerate() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(UriProblem::NotKeyValue(i + 1));
        };
        let Some((name, secret)) = known_option(key) else {
            // A name that looks like one is safe to quote, unless it may be the
            // tail of a secret value before it that holds an unencoded '&'.
            let quotable = !after_secret && !key.is_empty() && key.len() <= 40 && key.chars().all(|c| c.is_ascii_alphabetic());
            return Err(if quotable { UriProblem::UnknownOption(key.to_string()) } else { UriProblem::UnknownOptionAt(i + 1) });
        };
        if seen.contains(&name) && name != "readPreferenceTags" {
            return Err(UriProblem::Repeated(name));
        }
        seen.push(name);
        after_secret |= secret;
        check_escapes(value, UriPart::Option(name))?;
    }
    Ok(parts)
}

/// The driver's parse, with a panic inside it turned into an error.
fn driver_parse(uri: &str) -> Result<ConnectionString, Option<mongodb::error::Error>> {
    catch_unwind(AssertUnwindSafe(|| ConnectionString::parse(uri))).map_err(|_| None)?.map_err(Some)
}

/// Checks `uri` ([`check_uri`]) and parses it with the driver. When the
/// driver refuses it, the culprit is found by parsing again without each
/// option in turn, so the error can name it without quoting the driver.
pub fn parse_uri(uri: &str) -> Result<ConnectionString, UriProblem> {
    let parts = check_uri(uri)?;
    match driver_parse(uri) {
        Ok(parsed) => check_client_options(&parsed).map(|()| parsed),
        Err(None) => Err(UriProblem::DriverPanicked),
        Err(Some(_)) => Err(find_rejected_part(uri, &parts)),
    }
}

/// The longest time option accepted: longer ones are mistakes, and some
/// overflow the driver's clock arithmetic.
const MAX_TIME_OPTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What the driver refuses only when the client is built (after the string
/// parsed), checked here so that `config check` refuses it instead of every
/// run failing later.
fn check_client_options(cs: &ConnectionString) -> Result<(), UriProblem> {
    use mongodb::options::HostInfo;
    if cs.max_pool_size == Some(0) {
        return Err(UriProblem::OutOfRange("maxPoolSize", "must be at least 1"));
    }
    if cs.max_connecting == Some(0) {
        return Err(UriProblem::OutOfRange("maxConnecting", "must be at least 1"));
    }
    if cs.heartbeat_frequency.is_some_and(|d| d < std::time::Duration::from_millis(500)) {
        return Err(UriProblem::OutOfRange("heartbeatFrequencyMS", "must be at least 500"));
    }
    // The driver ignores socketTimeoutMS, but still parses it into a duration.
    #[allow(deprecated)]
    let socket_timeout = cs.socket_timeout;
    let times = [
        ("connectTimeoutMS", cs.connect_timeout),
        ("socketTimeoutMS", socket_timeout),
        ("serverSelectionTimeoutMS", cs.server_selection_timeout),
        ("heartbeatFrequencyMS", cs.heartbeat_frequency),
        ("localThresholdMS", cs.local_threshold),
        ("maxIdleTimeMS", cs.max_idle_time),
    ];
    if let Some((name, _)) = times.iter().find(|(_, d)| d.is_some_and(|d| d > MAX_TIME_OPTION)) {
        return Err(UriProblem::OutOfRange(name, "must be at most 86400000 (one day)"));
    }
    let hosts = match &cs.host_info {
        HostInfo::HostIdentifiers(hosts) => hosts.len(),
        _ => 1,
    };
    if cs.direct_connection == Some(true) && hosts > 1 {
        return Err(UriProblem::OutOfRange("directConnection", "cannot be true with more than one host"));
    }
    if cs.load_balanced == Some(true) {
        if hosts > 1 {
            return Err(UriProblem::OutOfRange("loadBalanced", "cannot be true with more than one host"));
        }
        if cs.replica_set.is_some() {
            return Err(UriProblem::OutOfRange("loadBalanced", "cannot be true with replicaSet"));
        }
        if cs.direct_connection == Some(true) {
            return Err(UriProblem::OutOfRange("loadBalanced", "cannot be true with directConnection=true"));
        }
    }
    let staleness = cs.read_preference.as_ref().and_then(|rp| match rp {
        ReadPreference::Secondary { options }
        | ReadPreference::PrimaryPreferred { options }
        | ReadPreference::SecondaryPreferred { options }
        | ReadPreference::Nearest { options } => options.as_ref().and_then(|o| o.max_staleness),
        // Primary, or a mode added later: no staleness bound.
        _ => None,
    });
    if let Some(staleness) = staleness {
        let heartbeat = cs.heartbeat_frequency.unwrap_or(std::time::Duration::from_secs(10));
        if staleness < std::time::Duration::from_secs(90) || staleness < heartbeat + std::time::Duration::from_secs(10) {
            return Err(UriProblem::OutOfRange(
                "maxStalenessSeconds",
                "must be at least 90 and at least heartbeatFrequencyMS + 10 seconds (or -1 for none)",
            ));
        }
    }
    Ok(())
}

fn find_rejected_part(uri: &str, parts: &UriParts<'_>) -> UriProblem {
    let options: Vec<&str> = parts.options.unwrap_or("").split('&').filter(|p| !p.is_empty()).collect();
    let prefix = match uri.find('?') {
        Some(at) => &uri[..at],
        None => uri,
    };
    for (i, pair) in options.iter().enumerate() {
        let rest: Vec<&str> = options.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect();
        if driver_parse(&format!("{prefix}?{}", rest.join("&"))).is_ok() {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            if let Some((name, _)) = known_option(key) {
                return UriProblem::DriverRejectsOption(name);
            }
        }
    }
    let bare = format!("{}://{}/{}", parts.scheme, parts.hosts, parts.database.unwrap_or(""));
    if driver_parse(&bare).is_err() {
        UriProblem::DriverRejectsHosts
    } else {
        UriProblem::DriverRejectsCombination
    }
}

/// The connection string by its parts, safe for logs, pages and labels: the
/// password and the values of secret options become `***`. A string that
/// does not pass [`check_uri`] is not shown at all, as its parts cannot be
/// told apart with certainty.
pub fn redact_uri(uri: &str) -> String {
    let Ok(parts) = check_uri(uri) else {
        return format!("{MASK} (not a valid connection string)");
    };
    let mut out = format!("{}://", parts.scheme);
    if let Some(user) = parts.username {
        out.push_str(user);
        if parts.password.is_some() {
            out.push(':');
            out.push_str(MASK);
        }
        out.push('@');
    }
    out.push_str(parts.hosts);
    if let Some(database) = parts.database {
        out.push('/');
        out.push_str(database);
    }
    if let Some(options) = parts.options {
        let shown: Vec<String> = options
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if known_option(key).is_some_and(|(_, secret)| !secret) => format!("{key}={value}"),
                Some((key, _)) => format!("{key}={MASK}"),
                None => MASK.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&shown.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_the_client_builder_refuses_are_refused_at_load() {
        for (uri, option) in [
            ("mongodb://h:1/?heartbeatFrequencyMS=0", "heartbeatFrequencyMS"),
            ("mongodb://h:1/?socketTimeoutMS=18446744073709551615", "socketTimeoutMS"),
            ("mongodb://h:1/?serverSelectionTimeoutMS=18446744073709551615", "serverSelectionTimeoutMS"),
            ("mongodb://h:1/?maxPoolSize=0", "maxPoolSize"),
            ("mongodb://a:1,b:2/?directConnection=true", "directConnection"),
            ("mongodb://h:1/?readPreference=secondary&maxStalenessSeconds=5", "maxStalenessSeconds"),
        ] {
            match parse_uri(uri) {
                Err(UriProblem::OutOfRange(name, _)) => assert_eq!(name, option, "{uri}"),
                other => panic!("{uri}: expected {option} out of range, got {other:?}"),
            }
        }
        for uri in [
            "mongodb://h:1/?heartbeatFrequencyMS=500&maxPoolSize=1&socketTimeoutMS=86400000",
            "mongodb://h:1/?readPreference=secondary&maxStalenessSeconds=-1",
            "mongodb://h:1/?readPreference=secondary&maxStalenessSeconds=90",
        ] {
            assert!(parse_uri(uri).is_ok(), "{uri}: {:?}", parse_uri(uri).err());
        }
    }

    #[test]
    fn redaction_shows_parts_but_no_secret() {
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
        assert_eq!(redact_uri("garbage"), "*** (not a valid connection string)");
    }

    /// Issue 11: an unencoded '/' or '?' in the password printed the whole URI.
    #[test]
    fn unencoded_slash_or_question_mark_in_the_password_never_shows_it() {
        for uri in ["mongodb://u:hun/ter2@host/", "mongodb://u:Zm9v/YmFy+cXV4=@host/", "mongodb://u:hun?ter2@host/", "mongodb://u:a/b?c@h"] {
            let shown = redact_uri(uri);
            for fragment in ["hun", "ter2", "Zm9v", "YmFy", "cXV4"] {
                assert!(!shown.contains(fragment), "{uri} -> {shown}");
            }
            let problem = check_uri(uri).unwrap_err().to_string();
            assert!(!problem.contains("hun") && !problem.contains("Zm9v"), "{problem}");
        }
        assert_eq!(check_uri("mongodb://u:hun/ter2@host/").unwrap_err(), UriProblem::Reserved(UriPart::Password));
        assert_eq!(check_uri("mongodb://u:hun?ter2@host/").unwrap_err(), UriProblem::AtInOptions);
    }

    /// Issue 13 item 1: `%`, an ASCII character, then a multi-byte one panicked
    /// our decoder (secret options) and the driver's (password).
    #[test]
    fn percent_before_a_multibyte_character_is_a_named_error_not_a_panic() {
        let cases = [
            ("mongodb://u:p%aé@h/", UriPart::Password),
            ("mongodb://h/?authMechanism=MONGODB-OIDC&authMechanismProperties=ENVIRONMENT:azure,TOKEN_RESOURCE:ab%cé", UriPart::Option("authMechanismProperties")),
            ("mongodb://h/?proxyHost=p&proxyPassword=Secr%aéTail", UriPart::Option("proxyPassword")),
        ];
        for (uri, part) in cases {
            assert_eq!(parse_uri(uri).unwrap_err(), UriProblem::BadEscape(part.clone()), "{uri}");
            assert!(redact_uri(uri).starts_with(MASK));
        }
        assert_eq!(check_uri("mongodb://u:%ff@h/").unwrap_err(), UriProblem::NotUtf8(UriPart::Password));
        assert_eq!(check_uri("mongodb://u:100%@h/").unwrap_err(), UriProblem::BadEscape(UriPart::Password));
        assert!(parse_uri("mongodb://u:p%25a%C3%A9@h/").is_ok());
    }

    #[test]
    fn a_panic_inside_the_driver_parser_becomes_an_error() {
        // Given straight to the driver (skipping check_uri), this input panics inside it.
        assert!(matches!(driver_parse("mongodb://u:p%aé@h/"), Err(None)));
    }

    #[test]
    fn problems_name_the_part_without_quoting_it() {
        assert_eq!(check_uri("mongodb://h/?fancyOption=1").unwrap_err().to_string(), "unknown option `fancyOption`");
        assert_eq!(check_uri("mongodb://h/?s3cr3t!=1").unwrap_err(), UriProblem::UnknownOptionAt(1));
        // After a secret option, an unknown name may be the secret's tail (an unencoded '&').
        assert_eq!(check_uri("mongodb://h/?proxyPassword=ab&cdef=1").unwrap_err(), UriProblem::UnknownOptionAt(2));
        assert_eq!(check_uri("mongodb://h/?appName").unwrap_err(), UriProblem::NotKeyValue(1));
        assert_eq!(check_uri("mongodb://u:p@").unwrap_err(), UriProblem::NoHost);
        assert_eq!(check_uri("mongodb://a,b:x/").unwrap_err(), UriProblem::BadHost(2));
        assert_eq!(check_uri("mongodb://h/?w=1&W=2").unwrap_err(), UriProblem::Repeated("w"));
        assert_eq!(check_uri("postgres://h/").unwrap_err(), UriProblem::Scheme);
        assert_eq!(
            parse_uri("mongodb://h/?appName=x&readPreference=sometimes").unwrap_err(),
            UriProblem::DriverRejectsOption("readPreference")
        );
        assert!(parse_uri("mongodb://h/?appName=x&readPreference=secondary&readPreferenceTags=dc:ny").is_ok());
    }
}
