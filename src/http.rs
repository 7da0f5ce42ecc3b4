//! The HTTP side: `/metrics`, `/healthz`, `/readyz` and a landing page.
//!
//! Every handler answers from [`Metrics`] and [`State`] as they are; none of
//! them touches MongoDB, so a scrape is as fast when the database is down or
//! slow as when it is healthy. The landing page shows counts and verdicts,
//! never key values, document ids or credentials.
//!
//! [`serve`] bounds what clients can hold: the time to send a request's
//! headers, a connection's age, and the connections open at once, the
//! oldest making way for the newest; so neither half-sent requests nor
//! clients that never read their answers can use up the daemon's
//! descriptors and keep the scrape out. With a web config
//! ([`crate::websec`]) connections are TLS: the handshake must finish
//! within the same header read timeout, inside the connection's slot, so a
//! client that opens TCP and never says hello holds nothing for long.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::IntCounter;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use crate::checks::{self, CheckName};
use crate::config::{CanonicalConfig, Preset};
use crate::html::escape;
use crate::logs::LogTotals;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::state::{Readiness, State};
use crate::websec::WebSecurity;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub state: Arc<State>,
    /// What `/readyz` asks.
    pub readiness: Arc<Readiness>,
    /// Configured `[[logs]]` source names, in config order.
    pub log_sources: Vec<String>,
    /// The tailer's committed totals.
    pub log_totals: watch::Receiver<LogTotals>,
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// What a client may hold of the server, so slow or idle clients cannot
/// starve the scrape.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// A request whose headers have not all arrived within this time is
    /// closed (a half-sent request held a connection for minutes before).
    pub header_read_timeout: Duration,
    /// Connections open at once. The server always accepts: a new
    /// connection beyond the limit closes the oldest open one, so the
    /// newest (the scrape) is served whatever the others send or leave
    /// unread, and the daemon's descriptors stay bounded.
    pub max_connections: usize,
    /// A connection this old is asked to close after its request in flight
    /// and cut `header_read_timeout` later if its answer still cannot be
    /// written (a client that pipelines requests and never reads).
    pub max_connection_age: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 64,
            max_connection_age: Duration::from_secs(60),
        }
    }
}

/// At most one log line per this interval about connections closed to make
/// room; the counter has every one.
const EVICTION_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `app` on `listener` within `limits` until `shutdown`, counting in
/// `evicted` the connections closed to make room, then lets the requests in
/// flight finish (for at most another `header_read_timeout`). With
/// `security` serving TLS, each new connection uses the TLS config in force
/// when it was accepted (reloaded if its files changed).
pub async fn serve(listener: TcpListener, app: Router, limits: ServeLimits, evicted: IntCounter, security: Option<Arc<WebSecurity>>, shutdown: Shutdown) {
    let mut connections = JoinSet::new();
    // Open connections, oldest first.
    let mut open: VecDeque<AbortHandle> = VecDeque::new();
    let mut log = EvictionLog::default();
    loop {
        let stream = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors: the oldest connection makes way, as
                    // at the limit, so the scrape's descriptor is found among
                    // ours. A connection reset before it was taken: wait a
                    // moment instead of spinning on the error.
                    let out_of_descriptors = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    open.retain(|c| !c.is_finished());
                    if out_of_descriptors {
                        if let Some(oldest) = open.pop_front() {
                            oldest.abort();
                            evicted.inc();
                            log.note(limits.max_connections);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                    tracing::debug!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        open.retain(|c| !c.is_finished());
        while open.len() >= limits.max_connections.max(1) {
            let Some(oldest) = open.pop_front() else { break };
            // Dropping the connection's future closes its socket.
            oldest.abort();
            evicted.inc();
            log.note(limits.max_connections);
        }
        let tls = security.as_ref().filter(|s| s.tls()).map(|s| (Arc::clone(s), s.refresh()));
        let (app, stop) = (app.clone(), shutdown.clone());
        open.push_back(connections.spawn(async move {
            match tls {
                None => serve_connection(stream, app, limits, stop).await,
                Some((security, loaded)) => {
                    // `tls()` said so: the config has a TLS part.
                    let Some(config) = loaded.tls.clone() else { return };
                    match tokio::time::timeout(limits.header_read_timeout, TlsAcceptor::from(config).accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, app, limits, stop).await,
                        Ok(Err(e)) => {
                            security.handshake_failed("error");
                            tracing::debug!(error = %e, "TLS handshake failed");
                        }
                        Err(_) => security.handshake_failed("timeout"),
                    }
                }
            }
        }));
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.header_read_timeout, drain).await.is_err() {
        connections.abort_all();
    }
}

/// One connection, until the client closes it, it grows older than
/// `max_connection_age`, or the daemon stops: then the request in flight
/// may finish within `header_read_timeout`.
async fn serve_connection<S>(stream: S, app: Router, limits: ServeLimits, stop: Shutdown)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop.wait() => {}
        _ = tokio::time::sleep(limits.max_connection_age) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.header_read_timeout, connection).await;
}

/// Rate-limits the log line about connections closed to make room: nothing
/// a client sends reaches it, only counts and the configured limit.
#[derive(Default)]
struct EvictionLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl EvictionLog {
    /// Records one eviction; logs (and returns true) when no line was
    /// written in the last [`EVICTION_LOG_INTERVAL`].
    fn note(&mut self, limit: usize) -> bool {
        self.unlogged += 1;
        if self.last.is_some_and(|t| t.elapsed() < EVICTION_LOG_INTERVAL) {
            return false;
        }
        tracing::warn!(
            closed = self.unlogged,
            limit,
            "HTTP connection limit reached: closed the oldest connections to serve new ones \
             (uniqwatch_http_connections_evicted_total counts them)"
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
        true
    }
}

async fn metrics(AxumState(app): AxumState<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.encode(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(AxumState(app): AxumState<AppState>) -> Response {
    let problems = app.readiness.problems();
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{}\n", problems.join("\n"))).into_response()
    }
}

fn when(t: DateTime<Utc>) -> String {
    let ago = (Utc::now() - t).num_seconds().max(0);
    format!("{} ({ago}s ago)", t.format("%Y-%m-%d %H:%M:%S UTC"))
}

async fn landing(AxumState(app): AxumState<AppState>) -> Html<String> {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>uniqwatch</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{{font-family:system-ui,sans-serif;font-size:16px;margin:2rem auto;padding:0 1rem;color:#222;max-width:70rem;overflow-wrap:anywhere}}
.scroll{{overflow-x:auto;margin-bottom:1.5rem}}
table{{border-collapse:collapse;width:100%}}
th,td{{border:1px solid #ccc;padding:.35rem .6rem;text-align:left;vertical-align:top;overflow-wrap:normal}}
th{{background:#f3f3f3}} .ok{{color:#176f2c;font-weight:600}} .bad{{color:#b00020;font-weight:600}}
.fail{{color:#a15c00;font-weight:600}} .muted{{color:#666}} code{{background:#f3f3f3;padding:0 .2rem}}
</style></head><body>
<h1>uniqwatch {version}</h1>
<p class="muted">Started {started}. Figures come from scheduled checks; this page never queries MongoDB.</p>
<p><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></p>
"#,
        version = env!("CARGO_PKG_VERSION"),
        started = when(app.state.started_at),
    );
    if app.state.targets.is_empty() {
        h.push_str("<p>No <code>[[target]]</code> is configured.</p>");
    }
    for slot in &app.state.targets {
        let c = &slot.config;
        let st = slot.status();
        let _ = write!(
            h,
            "<h2>{name}</h2><p><code>{db}.{coll}</code> key <code>{key}</code>, unique index expected{sparse}; schedule <code>{sched}</code> (UTC). Runs: {runs}, skipped: {skipped}{running}.</p>",
            name = escape(&c.name),
            db = escape(&c.database),
            coll = escape(&c.collection),
            key = escape(&c.key.to_string()),
            sparse = if c.sparse { " (sparse)" } else { "" },
            sched = escape(&c.schedule),
            runs = st.key.runs,
            skipped = st.skipped,
            running = st.key.running_since.map(|t| format!("; a run is going since {}", when(t))).unwrap_or_default(),
        );
        if let Some(canonical) = &c.canonical {
            let _ = write!(
                h,
                "<p>Canonical key: <code>{}</code>; its checks read every document, on schedule <code>{}</code> (UTC). Passes: {}{}.</p>",
                escape(&canonical_text(canonical)),
                escape(&canonical.schedule),
                st.canonical.runs,
                st.canonical.running_since.map(|t| format!("; a pass is going since {}", when(t))).unwrap_or_default(),
            );
        }
        h.push_str("<div class=\"scroll\"><table><tr><th>check</th><th>result</th><th>ran at</th><th>took</th><th>last success</th></tr>");
        for check in checks::checks_of(c) {
            let result = st.group(check.group()).last_run.as_ref().and_then(|r| r.result(check));
            let (class, text, at, took) = match result {
                None => ("muted", "not run yet".to_string(), String::new(), String::new()),
                Some(r) => {
                    let (class, text) = match &r.outcome {
                        Ok(f) => (if f.healthy() { "ok" } else { "bad" }, f.summary()),
                        Err(e) => ("fail", format!("failed ({}): {}", e.reason, e.message)),
                    };
                    (class, text, when(r.started_at), format!("{:.1} ms", r.duration.as_secs_f64() * 1000.0))
                }
            };
            let last_ok = st.last_success.get(&check).map(|t| when(*t)).unwrap_or_else(|| "never".into());
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"{class}\">{}</td><td>{at}</td><td>{took}</td><td>{last_ok}</td></tr>",
                check_title(check),
                escape(&text)
            );
        }
        h.push_str("</table></div>");
    }
    if !app.log_sources.is_empty() {
        let totals = app.log_totals.borrow().clone();
        h.push_str("<h2>Log sources</h2><div class=\"scroll\"><table><tr><th>source</th><th>lines read</th><th>duplicate-key errors</th><th>recoveries</th><th>events</th></tr>");
        for name in &app.log_sources {
            let t = totals.sources.get(name).cloned().unwrap_or_default();
            let errors: u64 = t.duplicate_key_errors.iter().map(|e| e.count).sum();
            let events: Vec<String> = t.events.iter().map(|(e, n)| format!("{}: {n}", escape(e))).collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{errors}</td><td>{}</td><td>{}</td></tr>",
                escape(name),
                t.lines,
                t.recoveries,
                events.join(", ")
            );
        }
        h.push_str("</table></div><p class=\"muted\">Totals since the source was first followed, as saved in the checkpoint.</p>");
    }
    h.push_str("</body></html>\n");
    Html(h)
}

/// A canonical derivation in one line, as the config reads.
fn canonical_text(c: &CanonicalConfig) -> String {
    match (&c.preset, &c.expression) {
        (Some(Preset::SortedJoin), _) => format!("sorted_join of {} with {:?}", c.fields.join(", "), c.separator),
        (Some(p), _) if c.fields.is_empty() => format!("{} of the key", p.as_str()),
        (Some(p), _) => format!("{} of {}", p.as_str(), c.fields.join(", ")),
        // An expression may hold literal values: the page does not show it.
        (None, Some(_)) => "an aggregation expression (see the config)".to_string(),
        (None, None) => String::new(),
    }
}

fn check_title(check: CheckName) -> &'static str {
    match check {
        CheckName::Index => "unique index",
        CheckName::Duplicates => "duplicates",
        CheckName::MissingKeys => "missing keys",
        CheckName::KeyConsistency => "key consistency",
        CheckName::CanonicalDuplicates => "canonical duplicates",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn evictions_are_logged_at_most_once_a_minute() {
        let mut log = EvictionLog::default();
        assert!(log.note(4), "the first eviction is logged");
        assert!(!log.note(4), "a second one within the minute is not");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!log.note(4));
        assert_eq!(log.unlogged, 2, "the next line counts the unlogged ones");
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(log.note(4), "a minute later a line is written again");
        assert_eq!(log.unlogged, 0);
    }
}
