//! The Prometheus registry and every metric family uniqwatch exports.
//!
//! All families live in one [`Metrics`] value, under the `uniqwatch_`
//! namespace. Values are written by the check runner (and the log tailer)
//! after each scheduled run; `/metrics` only encodes what is here, so a
//! scrape never waits on MongoDB. Labels are bounded: target names, check
//! names, failure reasons and missing-key kinds come from config or from
//! fixed lists; key values and document ids never become labels.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::build_info;
use crate::logs::durations::EventDurations;

/// Suffix on every HELP text of a result gauge, so a reader of `/metrics`
/// knows the value is not computed by the scrape.
const FROM_CHECKS: &str = "Set by the last scheduled check, not computed at scrape time.";

/// Every metric family, registered once in [`Metrics::registry`].
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// 1 when the last run of a target reached MongoDB.
    pub up: IntGaugeVec,
    /// 1 when the expected unique index exists with the expected options.
    pub unique_index_present: IntGaugeVec,
    /// 1 while the unique index is still being built, 0 once it is ready.
    pub unique_index_building: IntGaugeVec,
    /// Through mongos, for a sharded collection: shards owning chunks by the
    /// state of the unique index on them (present, missing, building).
    pub unique_index_shards: IntGaugeVec,
    /// 1 when the application's lookup by key is an index scan on the
    /// unique index examining at most one key and one document; absent
    /// when the probe could not run.
    pub key_lookup_uses_unique_index: IntGaugeVec,
    /// Key values held by more than one document.
    pub duplicate_keys: IntGaugeVec,
    /// Surplus documents: Σ(count − 1) over duplicated keys.
    pub duplicate_documents: IntGaugeVec,
    /// Documents whose key is absent, null, empty or an array.
    pub missing_key_documents: IntGaugeVec,
    /// Documents in the collection.
    pub canonical_duplicate_keys: IntGaugeVec,
    pub canonical_duplicate_documents: IntGaugeVec,
    pub key_mismatch_documents: IntGaugeVec,
    pub documents: IntGaugeVec,
    /// 1 when the last run of a check succeeded.
    pub check_success: IntGaugeVec,
    /// Wall time of the last run of a check.
    pub check_duration_seconds: GaugeVec,
    /// When a check last succeeded.
    pub check_last_success_timestamp_seconds: GaugeVec,
    /// Failed check runs, by bounded reason.
    pub check_failures_total: IntCounterVec,
    /// Scheduled runs skipped because the previous run of the target was still going.
    pub runs_skipped_total: IntCounterVec,
    /// Total time spent in each check, for rate() over runs.
    pub check_seconds_total: CounterVec,
    /// The version, git revision and rustc, as labels on a constant 1.
    pub build_info: IntGaugeVec,
    /// When the daemon started.
    pub start_time_seconds: Gauge,

    // ---- history store and audit reports ----
    /// 1 while the history store is open and its last write succeeded, so an
    /// alert can tell that the monthly audit will have holes.
    pub history_up: IntGauge,
    /// Failed writes to the history store, by bounded reason (disk_full,
    /// corrupt, read_only, busy, io, cannot_open, too_new, other).
    pub history_write_failures_total: IntCounterVec,
    /// Check-run records that never reached the history store, by reason
    /// (queue_full when the writer lagged, write_failed when SQLite refused).
    pub history_records_dropped_total: IntCounterVec,
    /// Bytes the history store takes on disk (database and write-ahead log).
    pub history_size_bytes: IntGauge,
    /// When the history store last committed a write.
    pub history_last_write_timestamp_seconds: GaugeVec,
    /// When the last scheduled audit report was written.
    pub audit_last_report_timestamp_seconds: GaugeVec,
    // --- Log tailer (src/logs). Counters move only when the checkpoint
    // holding them is committed, and resume from it after a restart. ---
    /// Log lines holding a duplicate-key error: how often the safety net fired.
    pub duplicate_key_errors_total: IntCounterVec,
    /// Log lines saying a conflict was recovered, to compare with the errors.
    pub duplicate_key_recoveries_total: IntCounterVec,
    /// Lines matching a configured `[[logs.events]]`, e.g. requests for a
    /// ratio; `status_class` is empty (dropped at ingestion) for events
    /// without a `status` capture.
    pub log_events_total: IntCounterVec,
    /// Lines holding a duration event's prefilter without a readable
    /// duration: the regex no longer fits the log format.
    pub log_event_unparsed_total: IntCounterVec,
    /// Duration events' histograms, exported from the committed totals.
    pub log_event_duration_seconds: DurationHistograms,
    /// Complete lines read: the tailer is alive and keeping up.
    pub log_lines_total: IntCounterVec,
    /// Bytes of complete lines read, for throughput.
    pub log_bytes_total: IntCounterVec,
    /// Followed files renamed away from their path (rename + create rotation).
    pub log_rotations_total: IntCounterVec,
    /// Followed files found shorter than what was read, or rewritten from the start (copytruncate).
    pub log_truncations_total: IntCounterVec,
    /// Lines longer than `max_line_bytes`, matched on their first bytes only.
    pub log_long_lines_total: IntCounterVec,
    /// Files being followed, so an empty glob or a missing directory shows as 0.
    pub log_files: IntGaugeVec,
    /// Bytes not yet in the saved totals (unread, or read but unsaved): whether the tailer keeps up.
    pub log_lag_bytes: IntGaugeVec,
    /// Failures to load or save the log checkpoint; while saving fails, log counters stand still.
    pub log_checkpoint_failures_total: IntCounterVec,
    /// 1 while the tailer runs and saves its checkpoint; 0 while it cannot
    /// start or cannot save: readiness and `UniqwatchLogTailerStalled`.
    pub log_tailer_up: IntGaugeVec,
    /// When the checkpoint last held everything read (saved, or nothing new):
    /// a stalled tailer shows as this time growing old.
    pub log_checkpoint_last_success_timestamp_seconds: GaugeVec,
    /// Patterns whose last expansion was cut short by a bound (symlink
    /// depth, entries, time): files they lead to may be missed.
    pub log_patterns_cut: IntGaugeVec,
    /// HTTP connections closed to make room for a new one at the
    /// connection limit: clients are holding every connection.
    pub http_connections_evicted_total: IntCounter,
    /// Web config (`--web.config.file`) reloads: an invalid file keeps the
    /// last good one in force, so the failure must show somewhere.
    pub web_config_last_reload_successful: IntGaugeVec,
    pub web_config_last_reload_success_timestamp_seconds: GaugeVec,
    /// Requests refused by basic auth, by reason (missing, malformed, invalid).
    pub http_auth_failures_total: IntCounterVec,
    /// TLS handshakes that failed or did not finish in time.
    pub http_tls_handshake_failures_total: IntCounterVec,
}

fn int_gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("uniqwatch"), labels)
        .expect("metric definition is valid");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let g = GaugeVec::new(Opts::new(name, help).namespace("uniqwatch"), labels)
        .expect("metric definition is valid");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn int_counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("uniqwatch"), labels)
        .expect("metric definition is valid");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn plain_int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("uniqwatch"))
        .expect("metric definition is valid");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn plain_int_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help).namespace("uniqwatch"))
        .expect("metric definition is valid");
    r.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn plain_gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::with_opts(Opts::new(name, help).namespace("uniqwatch"))
        .expect("metric definition is valid");
    r.register(Box::new(g.clone())).expect("metric registered once");
    g
}

impl Metrics {
    /// Builds and registers every family. Each call makes a fresh registry,
    /// so tests can run several daemons in one process.
    pub fn new() -> Self {
        let r = Registry::new();
        let help = |s: &str| format!("{s} {FROM_CHECKS}");
        let metrics = Metrics {
            up: int_gauge(&r, "up", &help("1 when the last run of the target reached MongoDB, 0 when it could not (unreachable, refused authentication, or timed out)."), &["target"]),
            unique_index_present: int_gauge(&r, "unique_index_present", &help("1 when the expected unique index on the target's key exists with the expected options, 0 when it is missing or wrong."), &["target"]),
            unique_index_building: int_gauge(&r, "unique_index_building", &help("1 while the unique index on the target's key is still being built (it enforces nothing until the build commits), 0 once it is ready; absent when there is no such index or the server cannot say."), &["target"]),
            unique_index_shards: int_gauge(&r, "unique_index_shards", &help("Sharded collections seen through mongos: shards owning chunks of the collection, by the state of the expected unique index on each (present, missing, building); absent for unsharded collections and other deployments."), &["target", "state"]),
            key_lookup_uses_unique_index: int_gauge(&r, "key_lookup_uses_unique_index", &help("1 when the explained lookup of one existing key value is an index scan on the unique index examining at most one key and one document, 0 when it is not; absent when the lookup could not be explained (no usable index, no key value, a failed query)."), &["target"]),
            duplicate_keys: int_gauge(&r, "duplicate_keys", &help("Key values held by more than one document (documents without a usable key excluded)."), &["target"]),
            duplicate_documents: int_gauge(&r, "duplicate_documents", &help("Surplus documents sharing a key: the sum of (count - 1) over duplicated key values."), &["target"]),
            missing_key_documents: int_gauge(&r, "missing_key_documents", &help("Documents without a usable scalar key, by kind: absent, null, empty string, or array."), &["target", "kind"]),
            canonical_duplicate_keys: int_gauge(&r, "canonical_duplicate_keys", &help("Canonical values ([target.canonical]) held by more than one document, keyed or not: two documents meant to be one. Absent without [target.canonical]."), &["target"]),
            canonical_duplicate_documents: int_gauge(&r, "canonical_duplicate_documents", &help("Surplus documents sharing a canonical value: the sum of (count - 1) over those values."), &["target"]),
            key_mismatch_documents: int_gauge(&r, "key_mismatch_documents", &help("Documents whose stored key is not their canonical value, by kind: mismatch (stored and different), derivable (no key; it can be computed), underivable (the canonical value cannot be computed)."), &["target", "kind"]),
            documents: int_gauge(&r, "documents", &help("Documents in the target collection."), &["target"]),
            check_success: int_gauge(&r, "check_success", &help("1 when the last run of the check succeeded, 0 when it failed."), &["target", "check"]),
            check_duration_seconds: gauge(&r, "check_duration_seconds", &help("Wall time of the last run of the check, in seconds."), &["target", "check"]),
            check_last_success_timestamp_seconds: gauge(&r, "check_last_success_timestamp_seconds", &help("Unix time of the last successful run of the check."), &["target", "check"]),
            check_failures_total: int_counter(&r, "check_failures_total", "Failed check runs by reason: timeout, unreachable, unauthorized, other, internal (a check that panicked).", &["target", "check", "reason"]),
            runs_skipped_total: int_counter(&r, "runs_skipped_total", "Scheduled runs of a target skipped because its previous run was still going.", &["target"]),
            check_seconds_total: {
                let c = CounterVec::new(Opts::new("check_seconds_total", "Total wall time spent running the check, in seconds.").namespace("uniqwatch"), &["target", "check"])
                    .expect("metric definition is valid");
                r.register(Box::new(c.clone())).expect("metric registered once");
                c
            },
            build_info: int_gauge(&r, "build_info", "Always 1; the labels say which uniqwatch is running: version, git revision (unknown when built without git) and the rustc that built it.", &["version", "revision", "rustversion"]),
            start_time_seconds: plain_gauge(&r, "start_time_seconds", "Unix time the daemon started."),
            history_up: plain_int_gauge(&r, "history_up", "1 while the history store is open and its last write succeeded; 0 when it could not be opened or a write failed."),
            history_write_failures_total: int_counter(&r, "history_write_failures_total", "Failed writes to the history store, by reason: disk_full, corrupt, read_only, busy, io, cannot_open, too_new, other.", &["reason"]),
            history_records_dropped_total: int_counter(&r, "history_records_dropped_total", "Check-run records not stored in history, by reason: queue_full (the writer lagged) or write_failed.", &["reason"]),
            history_size_bytes: plain_int_gauge(&r, "history_size_bytes", "Bytes the history store takes on disk, database and write-ahead log together."),
            // Label-less vectors, so the series is absent until there is a time to report, never 0.
            history_last_write_timestamp_seconds: gauge(&r, "history_last_write_timestamp_seconds", "Unix time the history store last committed a write; absent before the first.", &[]),
            audit_last_report_timestamp_seconds: gauge(&r, "audit_last_report_timestamp_seconds", "Unix time the last scheduled monthly audit report was written; absent before the first.", &[]),
            duplicate_key_errors_total: int_counter(&r, "duplicate_key_errors_total", "Log lines holding a duplicate-key error (E11000), counted once per line, by the namespace and index the line names.", &["source", "namespace", "index"]),
            duplicate_key_recoveries_total: int_counter(&r, "duplicate_key_recoveries_total", "Log lines saying a duplicate-key conflict was recovered by re-reading the existing document.", &["source"]),
            log_events_total: int_counter(&r, "log_events_total", "Log lines matching a configured [[logs.events]] entry; status_class (1xx..5xx, other) only for events capturing a status, empty otherwise.", &["source", "event", "status_class"]),
            log_event_unparsed_total: int_counter(&r, "log_event_unparsed_total", "Log lines holding a duration event's prefilter but no duration its regex could read.", &["source", "event"]),
            log_event_duration_seconds: {
                let h = DurationHistograms::new();
                r.register(Box::new(h.clone())).expect("metric registered once");
                h
            },
            log_lines_total: int_counter(&r, "log_lines_total", "Complete log lines read.", &["source"]),
            log_bytes_total: int_counter(&r, "log_bytes_total", "Bytes of complete log lines read.", &["source"]),
            log_rotations_total: int_counter(&r, "log_rotations_total", "Followed log files renamed away from their path (rotation by rename).", &["source"]),
            log_truncations_total: int_counter(&r, "log_truncations_total", "Followed log files truncated or rewritten from the start (copytruncate), then read again from byte 0.", &["source"]),
            log_long_lines_total: int_counter(&r, "log_long_lines_total", "Log lines longer than max_line_bytes, matched on their first max_line_bytes only.", &["source"]),
            log_files: int_gauge(&r, "log_files", "Log files being followed, including rotated files still being drained.", &["source"]),
            log_lag_bytes: int_gauge(&r, "log_lag_bytes", "Bytes not yet in the saved log totals: written to followed files but not read yet, or read but not yet saved in the checkpoint.", &["source"]),
            log_checkpoint_failures_total: int_counter(&r, "log_checkpoint_failures_total", "Failures to load or save the log checkpoint, by operation; log counters stand still while saving fails.", &["operation"]),
            // Label-less, and set only with [[logs]] sources: absent when no log is tailed.
            log_tailer_up: int_gauge(&r, "log_tailer_up", "1 while the log tailer runs and saves its checkpoint; 0 while it cannot start (state directory or checkpoint unusable), cannot save its checkpoint, or stopped; absent without [[logs]].", &[]),
            log_checkpoint_last_success_timestamp_seconds: gauge(&r, "log_checkpoint_last_success_timestamp_seconds", "Unix time the log checkpoint last held everything read (saved, or nothing new to save); absent before the first.", &[]),
            log_patterns_cut: int_gauge(&r, "log_patterns_cut", "Log path patterns whose last expansion was cut short by a bound (depth, directory entries, time); files they lead to may not be followed.", &["source"]),
            http_connections_evicted_total: plain_int_counter(&r, "http_connections_evicted_total", "HTTP connections closed, oldest first, to serve a new one when the connection limit was reached or descriptors ran out."),
            // Label-less vectors: absent unless a web config file is used.
            web_config_last_reload_successful: int_gauge(&r, "web_config_last_reload_successful", "1 when the last load of the web config file (--web.config.file) succeeded, 0 when it failed and the last good one stays in force; absent without a web config file.", &[]),
            web_config_last_reload_success_timestamp_seconds: gauge(&r, "web_config_last_reload_success_timestamp_seconds", "Unix time the web config file was last loaded successfully; absent without a web config file.", &[]),
            http_auth_failures_total: int_counter(&r, "http_auth_failures_total", "HTTP requests refused by basic auth (web config basic_auth_users), by reason: missing (no credentials), malformed, invalid (unknown user or wrong password).", &["reason"]),
            http_tls_handshake_failures_total: int_counter(&r, "http_tls_handshake_failures_total", "TLS handshakes on the HTTP listener that failed (error) or did not finish within the header read timeout (timeout).", &["reason"]),
            registry: r,
        };
        metrics
            .build_info
            .with_label_values(&[build_info::VERSION, build_info::REVISION, build_info::RUST_VERSION])
            .set(1);
        // The process_* families every exporter has (CPU, memory, file
        // descriptors, start time, threads), read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        metrics
            .registry
            .register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))
            .expect("process metrics registered once");
        metrics.start_time_seconds.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        metrics
    }

    /// The text exposition format of every family.
    pub fn encode(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed families.
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding succeeds");
        String::from_utf8(buf).expect("exposition format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `uniqwatch_log_event_duration_seconds{source,event,status_class}`: the
/// duration events' histograms. The prometheus crate's `Histogram` can only
/// observe, not be set, so this collector exports the tailer's committed
/// totals (the very numbers of its checkpoint) as they stand: a scrape
/// never double counts, never waits on the tailer, and a restart resumes
/// from the checkpoint like every other log counter.
#[derive(Clone)]
pub struct DurationHistograms {
    desc: Desc,
    /// Source → event → committed durations.
    committed: Arc<RwLock<BTreeMap<String, BTreeMap<String, EventDurations>>>>,
}

impl DurationHistograms {
    const NAME: &'static str = "uniqwatch_log_event_duration_seconds";

    fn new() -> Self {
        let help = "Durations read from log lines of duration events ([[logs.events]] regex with a duration capture, or mongod slow queries), in seconds; status_class (1xx..5xx, other) only for events capturing a status, empty otherwise.";
        let labels = ["source", "event", "status_class"].map(String::from).to_vec();
        DurationHistograms {
            desc: Desc::new(Self::NAME.into(), help.into(), labels, Default::default()).expect("metric definition is valid"),
            committed: Arc::default(),
        }
    }

    /// Replaces a source's histograms by its committed totals.
    pub fn set(&self, source: &str, durations: BTreeMap<String, EventDurations>) {
        // A poisoned lock only means a panic elsewhere mid-write of a plain map.
        let mut committed = self.committed.write().unwrap_or_else(|e| e.into_inner());
        committed.insert(source.to_string(), durations);
    }
}

impl Collector for DurationHistograms {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let committed = self.committed.read().unwrap_or_else(|e| e.into_inner());
        let label = |name: &str, value: &str| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_string());
            pair.set_value(value.to_string());
            pair
        };
        let mut metrics = Vec::new();
        for (source, events) in committed.iter() {
            for (event, durations) in events {
                for (class, h) in &durations.by_status_class {
                    let buckets = durations
                        .bounds_nanos
                        .iter()
                        .zip(h.cumulative(&durations.bounds_nanos))
                        .map(|(bound, count)| {
                            let mut b = Bucket::default();
                            b.set_upper_bound(*bound as f64 / 1e9);
                            b.set_cumulative_count(count);
                            b
                        })
                        .collect();
                    let mut histogram = Histogram::default();
                    histogram.set_bucket(buckets);
                    histogram.set_sample_count(h.count);
                    histogram.set_sample_sum(h.sum_nanos as f64 / 1e9);
                    let mut metric = Metric::default();
                    metric.set_label(vec![label("event", event), label("source", source), label("status_class", class)]);
                    metric.set_histogram(histogram);
                    metrics.push(metric);
                }
            }
        }
        let mut family = MetricFamily::default();
        family.set_name(Self::NAME.to_string());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::HISTOGRAM);
        family.set_metric(metrics);
        vec![family]
    }
}
