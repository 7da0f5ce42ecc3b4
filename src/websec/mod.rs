//! Web security, the exporter way: TLS, client certificates, basic auth and
//! extra response headers from a Prometheus exporter toolkit web config
//! file (`--web.config.file`, `[web] config_file`).
//!
//! [`file`] parses and validates the file; [`WebSecurity`] holds the last
//! good version of it and reloads it when it or a file it names changes,
//! looked at (by size, mtime and inode, no reading) on each new
//! connection, so certificates rotate without a restart. A file that turns
//! invalid while running keeps the last good one in force, sets
//! `uniqwatch_web_config_last_reload_successful` to 0 and logs (at most
//! once a minute). Whether TLS is on is fixed at start-up: a reload that
//! adds or removes `tls_server_config` is refused the same way.
//!
//! [`protect`] puts basic auth and the extra headers in front of every
//! endpoint, `/healthz` included, as the exporter toolkit does: a health
//! probe that needs no password would tell an unauthenticated caller the
//! daemon is there, and `/healthz` is as easy to probe with credentials.

mod any_cert;
mod auth;
pub mod file;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use prometheus::{Gauge, IntCounterVec, IntGauge};
use tokio::time::Instant;

pub use auth::AuthFailure;
pub use file::{Loaded, WebConfigError};

use crate::metrics::Metrics;

/// At most one log line per this interval about a web config that cannot be
/// reloaded, and one about refused credentials; the metrics count every one.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The web config in force, reloaded when its files change.
pub struct WebSecurity {
    path: PathBuf,
    /// Whether the daemon serves TLS; fixed at start-up.
    tls: bool,
    live: Mutex<Live>,
    auth: auth::Authenticator,
    metrics: WebMetrics,
}

/// The metrics this module moves.
#[derive(Clone)]
struct WebMetrics {
    reload_successful: IntGauge,
    reload_success_time: Gauge,
    auth_failures: IntCounterVec,
    tls_handshake_failures: IntCounterVec,
}

struct Live {
    loaded: Arc<Loaded>,
    /// What the watched files looked like when `loaded` was read (or when
    /// the last failed reload was tried, so a bad file is read once, not on
    /// every connection).
    stamp: Vec<Option<Stamp>>,
    /// When the last reload failed: it is tried again after
    /// [`RETRY_INTERVAL`] even if no watched file changed, since the new
    /// file may name files the old one did not watch (a certificate not
    /// there yet).
    failed_at: Option<Instant>,
    log: RateLimited,
}

/// How often a web config that failed to load is tried again.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// What a file looks like without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp { len: meta.len(), modified: meta.modified().ok(), inode })
}

fn stamps(paths: &[PathBuf]) -> Vec<Option<Stamp>> {
    paths.iter().map(|p| stamp(p)).collect()
}

impl WebSecurity {
    /// Loads the web config at `path`; an invalid file stops start-up.
    pub fn load(path: &Path, metrics: &Metrics) -> Result<Self, WebConfigError> {
        let loaded = file::load(path)?;
        let metrics = WebMetrics {
            reload_successful: metrics.web_config_last_reload_successful.with_label_values::<&str>(&[]),
            reload_success_time: metrics.web_config_last_reload_success_timestamp_seconds.with_label_values::<&str>(&[]),
            auth_failures: metrics.http_auth_failures_total.clone(),
            tls_handshake_failures: metrics.http_tls_handshake_failures_total.clone(),
        };
        metrics.reload_successful.set(1);
        metrics.reload_success_time.set(unix_now());
        for reason in AuthFailure::ALL {
            metrics.auth_failures.with_label_values(&[reason.as_str()]);
        }
        if loaded.tls.is_some() {
            for reason in ["timeout", "error"] {
                metrics.tls_handshake_failures.with_label_values(&[reason]);
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            tls: loaded.tls.is_some(),
            live: Mutex::new(Live { stamp: stamps(&loaded.watched), loaded: Arc::new(loaded), failed_at: None, log: RateLimited::default() }),
            auth: auth::Authenticator::default(),
            metrics,
        })
    }

    /// Whether connections are TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The config in force, reloaded first when a watched file changed.
    pub fn refresh(&self) -> Arc<Loaded> {
        // A poisoned lock only means a panic elsewhere; the data is whole.
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamps(&live.loaded.watched);
        let retry = live.failed_at.is_some_and(|t| t.elapsed() >= RETRY_INTERVAL);
        if now == live.stamp && !retry {
            return Arc::clone(&live.loaded);
        }
        live.stamp = now;
        live.failed_at = Some(Instant::now());
        match file::load(&self.path) {
            // A file caught half-written must never turn protection off:
            // TLS and basic auth are switched on or off by a restart only.
            Ok(loaded) if loaded.tls.is_some() != self.tls || loaded.users.is_empty() != live.loaded.users.is_empty() => {
                self.metrics.reload_successful.set(0);
                let problem = "adding or removing tls_server_config or basic_auth_users needs a restart";
                if live.log.note() {
                    tracing::error!(path = %self.path.display(), problem, failures = live.log.taken(), "cannot reload the web config; the last good one stays in force");
                }
            }
            Ok(loaded) => {
                // The stamps taken before reading, when the same files are
                // watched: a write landing after the read is seen next time.
                if loaded.watched != live.loaded.watched {
                    live.stamp = stamps(&loaded.watched);
                }
                live.loaded = Arc::new(loaded);
                live.failed_at = None;
                self.auth.clear();
                self.metrics.reload_successful.set(1);
                self.metrics.reload_success_time.set(unix_now());
                tracing::info!(path = %self.path.display(), "web config reloaded");
            }
            Err(e) => {
                self.metrics.reload_successful.set(0);
                if live.log.note() {
                    tracing::error!(error = %e, failures = live.log.taken(), "cannot reload the web config; the last good one stays in force (uniqwatch_web_config_last_reload_successful 0)");
                }
            }
        }
        Arc::clone(&live.loaded)
    }

    /// Counts a TLS handshake that failed (`error`) or did not finish in time (`timeout`).
    pub fn handshake_failed(&self, reason: &'static str) {
        self.metrics.tls_handshake_failures.with_label_values(&[reason]).inc();
    }
}

fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// Puts basic auth (when users are configured) and the extra headers in
/// front of every route of `router`.
pub fn protect(router: Router, security: Arc<WebSecurity>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(security, guard))
}

async fn guard(State(security): State<Arc<WebSecurity>>, request: Request, next: Next) -> Response {
    let loaded = security.refresh();
    let mut response = match security.auth.check(&loaded.users, request.headers()).await {
        Ok(()) => next.run(request).await,
        Err(reason) => {
            security.metrics.auth_failures.with_label_values(&[reason.as_str()]).inc();
            security.auth.log_failure(reason);
            let mut r = (StatusCode::UNAUTHORIZED, "401 Unauthorized\n").into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            r
        }
    };
    for (name, value) in &loaded.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Allows one log line per [`LOG_INTERVAL`] and counts the ones held back.
#[derive(Default)]
struct RateLimited {
    last: Option<Instant>,
    /// Events since the last line, that one included.
    unlogged: u64,
}

impl RateLimited {
    /// Records one event; true when a line may be written now (then
    /// [`RateLimited::taken`] says how many it stands for).
    fn note(&mut self) -> bool {
        self.unlogged += 1;
        if self.last.is_some_and(|t| t.elapsed() < LOG_INTERVAL) {
            return false;
        }
        self.last = Some(Instant::now());
        true
    }

    /// The events the line about to be written stands for; resets the count.
    fn taken(&mut self) -> u64 {
        std::mem::take(&mut self.unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn lines_are_written_at_most_once_a_minute_with_the_count() {
        let mut log = RateLimited::default();
        assert!(log.note(), "the first is logged");
        assert_eq!(log.taken(), 1);
        assert!(!log.note());
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!log.note());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(log.note(), "a minute later a line is written again");
        assert_eq!(log.taken(), 3, "standing for the two held back and itself");
    }
}
