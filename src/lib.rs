//! uniqwatch watches MongoDB collections for a uniqueness invariant and
//! exports what it finds to Prometheus.
//!
//! The layout, following the data one way (scheduler → check → outcome →
//! metrics and history → HTTP and reports):
//!
//! - [`config`] reads and validates the TOML file, one file per section;
//!   every error names its field, every duration and size has a range, and
//!   `docs/configuration.md` is generated from its doc comments.
//! - [`scheduler`] fires each target's cron schedule, runs the target with
//!   panics caught (a panic is an `internal` failure of every check), and
//!   hands the run to [`state`] and to the history writer; it holds no check
//!   logic.
//! - [`checks`] holds the checks of a target (`index`, `duplicates`,
//!   `missing_keys`), one file each, the explicit list of them, the runner
//!   that times them under one deadline, and the one place that turns a run
//!   into metrics and log lines.
//! - [`mongo`] builds the client, classifies driver errors into bounded
//!   failure reasons, and describes them from their kind, never their text;
//!   [`deployment`] learns once per client what it talks to (version,
//!   standalone, replica set or mongos), which decides what the checks may use.
//! - [`redact`] shows a connection string by its parts, never its secrets,
//!   and checks one before the driver's parser sees it.
//! - [`state`] keeps the last outcome of every target for the landing page,
//!   and the list of components `/readyz` asks.
//! - [`metrics`] owns the registry and every metric family.
//! - [`http`] serves `/metrics`, `/healthz`, `/readyz` and the landing page
//!   from [`state`] and [`metrics`], with bounded connections; it never
//!   touches MongoDB. [`html`] escapes text for it and for the audit's page.
//!   [`websec`] adds TLS, basic auth and extra headers from an exporter
//!   toolkit web config file, reloaded when it or its certificates change.
//! - [`daemon`] wires them together for `uniqwatch run` and locks the state
//!   dir; [`shutdown`] carries SIGTERM/SIGINT to every task.
//! - [`logs`] follows log files for E11000 errors and their recoveries,
//!   counting each line exactly once across rotation, truncation and
//!   restarts (discovery, following, matching and the checkpoint, a file each).
//! - [`store`] keeps the history of every check run (typed records made
//!   from the checks' outcomes) and the daily log totals on disk (SQLite);
//!   [`audit`] builds, renders and writes the monthly audit report from it.
//! - [`report`] is what `uniqwatch check` prints and its exit code; [`cli`]
//!   declares the command line, and `main.rs` maps errors to exit codes.
//! - [`build_info`] says what this binary is (version, git revision,
//!   rustc), for `uniqwatch_build_info` and `--version`.
//! - [`fsutil`] writes files durably (temp file, fsync, rename), for the
//!   checkpoint, the state dir's lock info and the reports.

pub mod audit;
pub mod build_info;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deployment;
pub mod fsutil;
pub mod html;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod mongo;
pub mod redact;
pub mod report;
pub mod scheduler;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod websec;
