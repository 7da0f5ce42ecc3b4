//! The MongoDB side: building the client, deadlines, and sorting driver
//! errors into the four bounded failure reasons the metrics use.
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

use crate::config::{redact_text, MongoConfig};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_selection_errors_are_one_short_line() {
        let text = "Server selection timeout: No available servers. Topology: { Type: Unknown, Servers: [ { Address: 127.0.0.1:27117, Type: Unknown, Error: Kind: I/O error: Connection refused (os error 111), labels: {\"RetryableError\"} } ] }";
        assert_eq!(
            shorten(text),
            "Server selection timeout: No available servers (127.0.0.1:27117: I/O error: Connection refused (os error 111))"
        );
        assert_eq!(shorten("Command failed: x"), "Command failed: x");
    }
}

/// Server error codes that mean "not allowed".
const UNAUTHORIZED_CODES: [i32; 3] = [13, 18, 8000];
/// `MaxTimeMSExpired`.
const MAX_TIME_EXPIRED: i32 = 50;

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
        ErrorKind::Command(cmd) if cmd.code == MAX_TIME_EXPIRED => FailureReason::Timeout,
        ErrorKind::Command(cmd) if UNAUTHORIZED_CODES.contains(&cmd.code) => FailureReason::Unauthorized,
        _ if err.contains_label("NetworkError") => FailureReason::Unreachable,
        _ => FailureReason::Other,
    }
}

/// A driver error in one line for logs and pages: the error kind's own text
/// (without the driver's label and source dump), and for a failed server
/// selection the headline plus each server's error instead of the whole
/// topology description.
pub fn describe(err: &DriverError) -> String {
    shorten(&err.kind.to_string())
}

fn shorten(text: &str) -> String {
    let Some((headline, topology)) = text.split_once(". Topology:") else {
        return text.to_string();
    };
    let servers: Vec<String> = topology
        .split("Address: ")
        .skip(1)
        .map(|server| {
            let address = server.split(',').next().unwrap_or("?").trim();
            let error = server
                .split_once("Error: ")
                .map(|(_, e)| e.split(", labels:").next().unwrap_or(e).trim_start_matches("Kind: ").trim())
                .unwrap_or("no error reported");
            format!("{address}: {error}")
        })
        .collect();
    if servers.is_empty() {
        headline.to_string()
    } else {
        format!("{headline} ({})", servers.join("; "))
    }
}

/// The client shared by every target, built on first use.
pub struct Mongo {
    config: MongoConfig,
    client: OnceCell<Client>,
}

impl Mongo {
    pub fn new(config: MongoConfig) -> Self {
        Self {
            config,
            client: OnceCell::new(),
        }
    }

    pub fn query_timeout(&self) -> Duration {
        self.config.query_timeout
    }

    /// The client, building it on first call. Failure here (a bad SRV record,
    /// say) is an `unreachable` failure of the run, retried on the next one.
    pub async fn client(&self) -> Result<&Client, QueryError> {
        self.client
            .get_or_try_init(|| async {
                let mut opts = ClientOptions::parse(&self.config.uri)
                    .await
                    .map_err(|e| self.error(&e))?;
                let connect = self.config.connect_timeout.min(self.config.query_timeout);
                opts.app_name.get_or_insert_with(|| "uniqwatch".to_string());
                opts.connect_timeout = Some(connect);
                opts.server_selection_timeout = Some(connect);
                // The checks only read; a retried read is always safe.
                opts.retry_reads = Some(true);
                Client::with_options(opts).map_err(|e| self.error(&e))
            })
            .await
    }

    /// Wraps a driver error: classified, in one short line, with credentials removed.
    pub fn error(&self, err: &DriverError) -> QueryError {
        QueryError::new(classify(err), redact_text(&describe(err), &self.config.uri))
    }
}

/// The end of a run: every query gets the time left as `maxTimeMS`, and the
/// client gives up shortly after the server should have.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
}

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
