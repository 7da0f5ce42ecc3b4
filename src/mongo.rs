//! The MongoDB side: building the client, deadlines, and sorting driver
//! errors into the bounded failure reasons the metrics use. Errors are
//! described from their kind and structured fields ([`describe`]), never
//! from the driver's text, and the client is built from a connection string
//! checked and parsed by [`crate::redact::parse_uri`], so neither a panic
//! inside the driver's parser nor a quoted secret can come out of here.
//!
//! The client is built lazily on first use and kept, so a daemon started while
//! MongoDB is down (or while an SRV record does not resolve) starts anyway
//! and connects once it can. The URI's read preference becomes the client's
//! default, and every operation here inherits it; commands that the driver
//! would otherwise pin to the primary (`listIndexes`) are sent with it
//! explicitly.

use std::time::{Duration, Instant};

use mongodb::error::{Error as DriverError, ErrorKind};
use mongodb::options::ClientOptions;
use mongodb::Client;
use tokio::sync::OnceCell;

use crate::config::MongoConfig;
use crate::deployment::Deployment;
use crate::redact::parse_uri;

/// Why a check could not produce a figure. The label values of
/// `uniqwatch_check_failures_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The server's `maxTimeMS` or the client-side deadline ran out.
    Timeout,
    /// No server could be selected, or the connection broke.
    Unreachable,
    /// Authentication failed or the user lacks a privilege.
    Unauthorized,
    /// Anything else: a server error, an unexpected reply.
    Other,
    /// The run panicked: a bug in uniqwatch (or a library it uses), not an
    /// answer from MongoDB. Every check of the run counts it.
    Internal,
}

impl FailureReason {
    pub const ALL: [FailureReason; 5] = [
        FailureReason::Timeout,
        FailureReason::Unreachable,
        FailureReason::Unauthorized,
        FailureReason::Other,
        FailureReason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Unreachable => "unreachable",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::Other => "other",
            FailureReason::Internal => "internal",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed query, with its reason and a message safe to log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct QueryError {
    pub reason: FailureReason,
    pub message: String,
}

impl QueryError {
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Server error codes that mean "not allowed".
const UNAUTHORIZED_CODES: [i32; 3] = [13, 18, 8000];
/// `MaxTimeMSExpired` (mongod), and `ExceededTimeLimit` and
/// `NetworkInterfaceExceededTimeLimit`, which mongos answers when the time
/// runs out waiting for a shard.
const TIME_LIMIT_CODES: [i32; 3] = [50, 262, 202];

/// Sorts a driver error into a [`FailureReason`].
pub fn classify(err: &DriverError) -> FailureReason {
    match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => FailureReason::Unauthorized,
        ErrorKind::ServerSelection { message, .. } => {
            // The driver reports a failed handshake as a selection error that
            // carries the authentication failure in its text.
            if message.contains("Authentication failed") || message.contains("AuthenticationFailed") {
                FailureReason::Unauthorized
            } else {
                FailureReason::Unreachable
            }
        }
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } | ErrorKind::DnsResolve { .. } => {
            FailureReason::Unreachable
        }
        ErrorKind::Command(cmd) if TIME_LIMIT_CODES.contains(&cmd.code) => FailureReason::Timeout,
        ErrorKind::Command(cmd) if UNAUTHORIZED_CODES.contains(&cmd.code) => FailureReason::Unauthorized,
        _ if err.contains_label("NetworkError") => FailureReason::Unreachable,
        _ => FailureReason::Other,
    }
}

/// Whether the server refused a command with one of `codes`.
pub fn is_command_error(err: &DriverError, codes: &[i32]) -> bool {
    matches!(err.kind.as_ref(), ErrorKind::Command(c) if codes.contains(&c.code))
}

/// Runs an admin command (`hello`, `buildInfo`) with the client's read
/// preference, so it reaches the member the checks read from.
pub async fn admin_command(client: &Client, command: mongodb::bson::Document) -> Result<mongodb::bson::Document, DriverError> {
    let admin = client.database("admin");
    let mut action = admin.run_command(command);
    if let Some(criteria) = client.selection_criteria().cloned() {
        action = action.selection_criteria(criteria);
    }
    action.await
}

/// A driver error in one short line for logs and pages, built from its
/// kind and structured fields only: the driver's text may quote the
/// connection string or a value it was given, so it is never printed.
pub fn describe(err: &DriverError) -> String {
    match err.kind.as_ref() {
        ErrorKind::Authentication { .. } => "authentication failed".to_string(),
        ErrorKind::ServerSelection { message, .. } => describe_server_selection(message),
        ErrorKind::Io(io) => format!("I/O error: {}", describe_io(io)),
        ErrorKind::Command(cmd) => format!("command failed: {} (code {})", safe_word(&cmd.code_name), cmd.code),
        ErrorKind::DnsResolve { .. } => "DNS resolution of the hosts failed".to_string(),
        ErrorKind::ConnectionPoolCleared { .. } => "connection pool cleared after a connection failed".to_string(),
        ErrorKind::InvalidArgument { .. } => "the driver rejected an argument".to_string(),
        ErrorKind::InvalidResponse { .. } => "the server sent an invalid reply".to_string(),
        ErrorKind::InvalidTlsConfig { .. } => "invalid TLS configuration".to_string(),
        ErrorKind::IncompatibleServer { .. } => "the server does not support this operation".to_string(),
        ErrorKind::BsonDeserialization(_) => "a reply could not be decoded (BSON)".to_string(),
        ErrorKind::Internal { .. } => "internal driver error".to_string(),
        ErrorKind::Shutdown => "the client was shut down".to_string(),
        _ => "driver error".to_string(),
    }
}

/// An I/O error by its OS error code (as `Connection refused (os error 111)`) or its kind.
fn describe_io(io: &std::io::Error) -> String {
    match io.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => io.kind().to_string(),
    }
}

/// A server-supplied name (`codeName`) if it is one word, else `unnamed`.
fn safe_word(word: &str) -> &str {
    if !word.is_empty() && word.len() <= 64 && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        word
    } else {
        "unnamed"
    }
}

/// Whether `address` looks like `host:port` (or an IPv6 literal), and nothing else.
fn is_address(address: &str) -> bool {
    !address.is_empty()
        && address.len() <= 255
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}

/// A failed server selection: the driver gives only text (a topology
/// dump), so it is read for the server addresses and each server's error,
/// and rebuilt from a fixed vocabulary: an address, then an OS error looked
/// up by its code, or a word for its class.
fn describe_server_selection(message: &str) -> String {
    let headline = if message.contains("No available servers") {
        "server selection timeout: no available servers"
    } else if message.contains("None of the available servers suitable") {
        "server selection timeout: no server matches the read preference"
    } else {
        "server selection failed: no compatible server"
    };
    let servers: Vec<String> = message
        .split("Address: ")
        .skip(1)
        .map(|server| {
            let address = server.split(',').next().unwrap_or("").trim();
            let address = if is_address(address) { address } else { "?" };
            let Some((_, error)) = server.split_once("Error: ") else {
                return format!("{address}: no error reported");
            };
            format!("{address}: {}", classify_server_error(error))
        })
        .collect();
    if servers.is_empty() {
        headline.to_string()
    } else {
        format!("{headline} ({})", servers.join("; "))
    }
}

fn classify_server_error(error: &str) -> String {
    let os_error = error
        .split_once("(os error ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .and_then(|(code, _)| code.parse::<i32>().ok());
    if let Some(code) = os_error {
        return format!("I/O error: {}", std::io::Error::from_raw_os_error(code));
    }
    let lower = error.to_ascii_lowercase();
    let class = if lower.contains("authentication") {
        "authentication failed"
    } else if lower.contains("dns") {
        "DNS resolution failed"
    } else if lower.contains("tls") || lower.contains("certificate") {
        "TLS error"
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out"
    } else if lower.starts_with("kind: i/o error") || lower.starts_with("i/o error") {
        "I/O error"
    } else {
        "error"
    };
    class.to_string()
}

/// The client shared by every target, built on first use.
pub struct Mongo {
    config: MongoConfig,
    client: OnceCell<Client>,
    /// What the client talks to and when it was learned; asked again after
    /// [`DEPLOYMENT_TTL`], so an upgrade or a failover to another kind of
    /// server is noticed without a restart.
    deployment: std::sync::Mutex<Option<(Deployment, Instant)>>,
    /// Features the server turned out to lack (an accumulator it refused,
    /// or one its version predates), so each is noticed and logged once.
    lacking: std::sync::Mutex<Vec<&'static str>>,
    /// The URI asks for `directConnection=true`: the client talks to one
    /// server only, whatever that server calls itself.
    direct: std::sync::atomic::AtomicBool,
}

impl Mongo {
    pub fn new(config: MongoConfig) -> Self {
        Self {
            config,
            client: OnceCell::new(),
            deployment: std::sync::Mutex::new(None),
            lacking: std::sync::Mutex::new(Vec::new()),
            direct: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the server was found to lack `feature`.
    pub fn lacks(&self, feature: &str) -> bool {
        self.lacking.lock().unwrap_or_else(|p| p.into_inner()).contains(&feature)
    }

    /// Records that the server lacks `feature`; true only the first time,
    /// so the caller logs it once per client.
    pub fn note_lacking(&self, feature: &'static str) -> bool {
        let mut lacking = self.lacking.lock().unwrap_or_else(|p| p.into_inner());
        if lacking.contains(&feature) {
            return false;
        }
        lacking.push(feature);
        true
    }

    /// Whether the client talks to exactly one server (`directConnection=true`).
    pub fn is_direct(&self) -> bool {
        self.direct.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The deployment's facts: asked on first use and again once they are
    /// older than [`DEPLOYMENT_TTL`] (two cheap commands). A change is logged.
    pub async fn deployment(&self, client: &Client, deadline: &Deadline) -> Result<Deployment, QueryError> {
        if let Some((facts, at)) = self.deployment.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < DEPLOYMENT_TTL {
                return Ok(facts.clone());
            }
        }
        let facts = Deployment::discover(client, self, deadline).await?;
        let mut cached = self.deployment.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().map(|(known, _)| known) != Some(&facts) {
            tracing::info!(deployment = %facts.describe(), "MongoDB deployment");
            // Another server or version (an upgrade, say): what it lacked is asked again.
            self.lacking.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        *cached = Some((facts.clone(), Instant::now()));
        Ok(facts)
    }

    pub fn query_timeout(&self) -> Duration {
        self.config.query_timeout
    }

    /// Closes the client's pools and monitors, if one was built, within
    /// `limit`. A one-shot command calls it before its runtime goes away, so
    /// the driver's background tasks end in order instead of dying with the
    /// runtime.
    pub async fn shutdown(&self, limit: Duration) {
        if let Some(client) = self.client.get() {
            // Past the limit the runtime's drop ends what is left.
            let _ = tokio::time::timeout(limit, client.clone().shutdown()).await;
        }
    }

    /// The client, building it on first call. Failure here (a bad SRV record,
    /// say) is an `unreachable` failure of the run, retried on the next one.
    pub async fn client(&self) -> Result<&Client, QueryError> {
        self.client
            .get_or_try_init(|| async {
                // Checked first and parsed under catch_unwind: the driver's own
                // parser panics on some malformed input, and its errors quote it.
                let conn_str = parse_uri(&self.config.uri).map_err(|problem| {
                    QueryError::new(FailureReason::Other, format!("mongodb.uri: {problem}"))
                })?;
                let mut opts = ClientOptions::parse(conn_str).await.map_err(|e| self.error(&e))?;
                let connect = self.config.connect_timeout.min(self.config.query_timeout);
                opts.app_name.get_or_insert_with(|| "uniqwatch".to_string());
                opts.connect_timeout = Some(connect);
                opts.server_selection_timeout = Some(connect);
                // The checks only read; a retried read is always safe.
                opts.retry_reads = Some(true);
                self.direct
                    .store(opts.direct_connection == Some(true), std::sync::atomic::Ordering::Relaxed);
                Client::with_options(opts).map_err(|e| self.error(&e))
            })
            .await
    }

    /// Wraps a driver error: classified, in one short line built from its kind.
    pub fn error(&self, err: &DriverError) -> QueryError {
        QueryError::new(classify(err), describe(err))
    }
}

/// The end of a run: every query gets the time left as `maxTimeMS`, and the
/// client gives up shortly after the server should have.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

/// How long the deployment's facts are trusted before they are asked again.
const DEPLOYMENT_TTL: Duration = Duration::from_secs(600);

/// Slack after `maxTimeMS` before the client abandons a query, so the
/// server's own (more precise) timeout error normally arrives first.
const CLIENT_SLACK: Duration = Duration::from_millis(250);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self {
            end: Instant::now() + budget,
        }
    }

    /// Time left, at least 1ms so a `maxTimeMS` of 0 (which means "no limit") is never sent.
    pub fn remaining(&self) -> Duration {
        self.end
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    /// Runs `fut`, abandoning it when the deadline (plus slack) passes.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        if self.expired() {
            return Err(QueryError::new(
                FailureReason::Timeout,
                "no time left in this run (query_timeout reached by earlier checks)",
            ));
        }
        match tokio::time::timeout(self.remaining() + CLIENT_SLACK, fut).await {
            Ok(result) => result,
            Err(_) => Err(QueryError::new(
                FailureReason::Timeout,
                "abandoned: no answer within query_timeout",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_selection_errors_are_one_short_line() {
        let text = "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:27117, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {\"RetryableError\"} } ] }";
        assert_eq!(
            describe_server_selection(text),
            "server selection timeout: no available servers (127.0.0.1:27117: I/O error: Connection refused (os error 111))"
        );
    }

    /// Issue 13 item 12: masking a one-character password turned every
    /// message into an oracle (`SCRAM f***ilure`); and driver text that
    /// quotes its input must not be printed at all.
    #[test]
    fn messages_come_from_the_error_kind_not_its_text() {
        let auth = DriverError::from(ErrorKind::Io(std::sync::Arc::new(std::io::Error::other("password hunter2 leaked"))));
        assert_eq!(describe(&auth), "I/O error: other error");
        let text = "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: db1:27017, Type: Unknown, Error: Kind: SCRAM failure: Authentication failed for p4ss, labels: {} } ] }";
        let line = describe_server_selection(text);
        assert_eq!(line, "server selection timeout: no available servers (db1:27017: authentication failed)");
        let forged = "Server selection timeout: No available servers. Topology: { Servers: [ { Address: u:s3cret/x@y z, Error: boom } ] }";
        assert!(!describe_server_selection(forged).contains("s3cret"));
    }

    #[test]
    fn command_errors_give_code_and_code_name() {
        let cmd: mongodb::error::CommandError =
            mongodb::bson::from_document(mongodb::bson::doc! {"code": 50, "codeName": "MaxTimeMSExpired", "errmsg": "secret value x"}).unwrap();
        let err = DriverError::from(ErrorKind::Command(cmd));
        assert_eq!(describe(&err), "command failed: MaxTimeMSExpired (code 50)");
        assert_eq!(classify(&err), FailureReason::Timeout);
    }

    /// Issue 10: mongos reports a shard's expired `maxTimeMS` as ExceededTimeLimit.
    #[test]
    fn mongos_exceeded_time_limit_is_a_timeout() {
        let cmd: mongodb::error::CommandError = mongodb::bson::from_document(
            mongodb::bson::doc! {"code": 262, "codeName": "ExceededTimeLimit", "errmsg": "operation exceeded time limit"},
        )
        .unwrap();
        let err = DriverError::from(ErrorKind::Command(cmd));
        assert_eq!(classify(&err), FailureReason::Timeout);
        assert_eq!(describe(&err), "command failed: ExceededTimeLimit (code 262)");
        let cmd: mongodb::error::CommandError = mongodb::bson::from_document(
            mongodb::bson::doc! {"code": 202, "codeName": "NetworkInterfaceExceededTimeLimit", "errmsg": "x"},
        )
        .unwrap();
        assert_eq!(classify(&DriverError::from(ErrorKind::Command(cmd))), FailureReason::Timeout);
    }

    /// Issue 10: a missing server feature is noticed once per client, so
    /// its log line is written once, and remembered for later runs.
    #[test]
    fn a_lacking_feature_is_noted_once() {
        let mongo = Mongo::new(MongoConfig::default());
        assert!(!mongo.lacks("$firstN"));
        assert!(mongo.note_lacking("$firstN"));
        assert!(!mongo.note_lacking("$firstN"), "the second notice is not news");
        assert!(mongo.lacks("$firstN"));
        assert!(!Mongo::new(MongoConfig::default()).lacks("$firstN"), "another client asks again");
    }

    /// A runtime client built from a URI the driver would panic on fails the run instead.
    #[tokio::test]
    async fn a_uri_the_driver_cannot_parse_fails_the_run_without_a_panic() {
        let mongo = Mongo::new(MongoConfig { uri: "mongodb://u:p%aé@h/".into(), ..MongoConfig::default() });
        let err = mongo.client().await.err().unwrap();
        assert_eq!(err.reason, FailureReason::Other);
        assert!(err.message.contains("invalid percent-encoding in the password"), "{}", err.message);
        assert!(!err.message.contains("p%a"), "{}", err.message);
    }
}
