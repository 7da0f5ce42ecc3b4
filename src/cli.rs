//! The command line, declared with clap. Raw flags only; `main.rs` loads
//! and validates the config and dispatches.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// uniqwatch watches MongoDB collections whose key must be unique (for
/// example `chats.participantsKey`) and exports what it finds to Prometheus:
/// whether the unique index exists with the right options, how many key
/// values are duplicated, and how many documents have no usable key.
///
/// Start with `uniqwatch config check` to validate a config file, then
/// `uniqwatch check` for a one-off verdict, and `uniqwatch run` for the daemon.
#[derive(Debug, Parser)]
// `-V` prints the version; `--version` adds the revision and the rustc.
#[command(
    name = "uniqwatch",
    version = crate::build_info::VERSION,
    long_version = crate::build_info::LONG_VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log format on stderr: `human` for a terminal, `json` for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "UNIQWATCH_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter: a level (error, warn, info, debug, trace) or a tracing
    /// filter such as `uniqwatch=debug`. RUST_LOG is read when this is not set.
    #[arg(long, global = true, env = "UNIQWATCH_LOG_LEVEL")]
    pub log_level: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: check every target on its cron schedule (and once at
    /// start-up) and serve /metrics, /healthz, /readyz and a landing page.
    ///
    /// MongoDB being down, slow or refusing authentication does not stop the
    /// daemon: it shows as uniqwatch_up = 0 and in the failure metrics, and
    /// the next run retries. SIGTERM or SIGINT stops scheduling, lets running
    /// checks finish within web.shutdown_grace, and exits 0.
    Run(RunArgs),

    /// Run every check of every target once and print the result.
    ///
    /// Exit codes: 0 every invariant holds; 1 an invariant is violated
    /// (unique index missing or wrong, duplicate keys, documents without a
    /// key); 2 a check could not run (and nothing was found violated), or the
    /// config is invalid.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// `text`: a table for a person. `json`: one JSON document on stdout
        /// (see the README for its fields), for scripts.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },

    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Write the monthly audit report: did the uniqueness invariant hold
    /// during a calendar month (UTC), and what happened when it did not.
    ///
    /// Reads the history the daemon keeps in state.dir (it may run while
    /// the daemon writes), and runs a fresh check of every target for the
    /// "now" figures (the report says so when MongoDB cannot be reached).
    /// Prints to stdout unless --out is given. Exit 0 when written, 2 when
    /// it could not be.
    Audit {
        #[command(flatten)]
        config: ConfigArg,
        /// The month, `YYYY-MM`. Default: the month that just ended.
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<crate::audit::Month>,
        /// `markdown` for a ticket or wiki, `html` (self-contained, printable,
        /// with charts), or `json` for scripts.
        #[arg(long, value_enum, default_value_t = crate::audit::ReportFormat::Markdown)]
        format: crate::audit::ReportFormat,
        /// Write the report to this file instead of stdout (replaced atomically).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file and print the effective configuration
    /// (defaults filled in, UNIQWATCH_MONGODB_URI applied, credentials
    /// replaced by ***). Exit 0 when valid, 2 with the field and the problem
    /// when not. Does not connect to MongoDB.
    Check(RunArgs),
}

/// The config file and what may override it for the daemon.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// A web config file (Prometheus exporter toolkit format: TLS, basic
    /// auth, response headers) for every HTTP endpoint; overrides
    /// `[web] config_file`.
    #[arg(long = "web.config.file", value_name = "FILE", env = "UNIQWATCH_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,
}

impl RunArgs {
    /// Loads the config and applies `--web.config.file`.
    pub fn load(&self) -> Result<crate::config::Config, crate::config::ConfigError> {
        let mut config = crate::config::Config::load(&self.config.config)?;
        if let Some(file) = &self.web_config_file {
            config.web.config_file = Some(file.clone());
        }
        Ok(config)
    }
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The TOML config file (see examples/uniqwatch.toml).
    #[arg(long, short = 'c', env = "UNIQWATCH_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}
