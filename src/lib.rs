//! uniqwatch watches MongoDB collections for a uniqueness invariant and
//! exports what it finds to Prometheus.
//!
//! The layout, following the data one way:
//!
//! - [`config`] reads and validates the TOML file; every error names its field.
//! - [`scheduler`] fires each target's cron schedule and calls the runner; it
//!   holds no check logic.
//! - [`checks`] holds the three checks of a target (`index`, `duplicates`,
//!   `missing_keys`), one file each, the explicit list of them, and the
//!   runner that times them and records their outcomes.
//! - [`mongo`] builds the client, classifies driver errors into bounded
//!   failure reasons, and describes them from their kind, never their text.
//! - [`redact`] shows a connection string by its parts, never its secrets,
//!   and checks one before the driver's parser sees it.
//! - [`state`] keeps the last outcome of every check, for the landing page,
//!   and the list of components `/readyz` asks.
//! - [`metrics`] owns the registry and every metric family.
//! - [`html`] escapes text for the landing page and the audit's HTML.
//! - [`http`] serves `/metrics`, `/healthz`, `/readyz` and the landing page
//!   from [`state`] and [`metrics`]; it never touches MongoDB.
//! - [`daemon`] wires them together for `uniqwatch run` (and locks the state
//!   dir), and [`shutdown`] carries SIGTERM/SIGINT to every task.
//! - [`cli`] declares the command line; `main.rs` maps errors to exit codes.
//! - [`logs`] follows log files for E11000 errors and their recoveries,
//!   counting each line exactly once across rotation and restarts.
//! - [`store`] keeps the history of every check run (typed records made
//!   from the checks' outcomes) and the daily log totals on disk (SQLite);
//!   [`audit`] builds, renders and writes the monthly audit report from it.

pub mod audit;
pub mod checks;
pub mod cli;
pub mod config;
pub mod daemon;
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
