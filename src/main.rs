//! The `uniqwatch` binary: parse the command line, set up logging, dispatch,
//! and map every error to an exit code in one place.

use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use futures_util::FutureExt as _;
use tracing_subscriber::EnvFilter;

use uniqwatch::cli::{Cli, Command, ConfigCommand, LogFormat, OutputFormat};
use uniqwatch::config::{Config, ConfigError};
use uniqwatch::mongo::Mongo;
use uniqwatch::websec::WebConfigError;
use uniqwatch::audit::Month;
use uniqwatch::{audit, checks, daemon, report};

/// Our own messages at info; the cron library's start-up chatter only when it warns.
const DEFAULT_LOG_FILTER: &str = "info,tokio_cron_scheduler=warn";

/// Exit code for an invalid config, a check that could not run, or a failed start.
const EXIT_TROUBLE: u8 = 2;

/// How long a one-shot command waits for the MongoDB client to close.
const CLIENT_SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    install_panic_hook();
    let cli = Cli::parse();
    init_logging(&cli);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<WebConfigError>().is_some() {
                eprintln!("error: {e}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = match &cli.log_level {
        Some(level) => EnvFilter::try_new(level),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(DEFAULT_LOG_FILTER)),
    }
    .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Human => builder.init(),
        // Events carry their own `target` field (the watched target), so the
        // tracing target (a module path) is left out of JSON to keep keys unique.
        LogFormat::Json => builder.json().flatten_event(true).with_target(false).init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Config(ConfigCommand::Check(arg)) => {
            let config = arg.load()?;
            if let Some(web) = &config.web.config_file {
                uniqwatch::websec::file::load(web)?;
                println!("# web config {}: valid", web.display());
            }
            println!("# {}: valid", arg.config.config.display());
            print!("{}", config.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, format } => {
            let config = Config::load(&config.config)?;
            let rt = runtime()?;
            let runs = rt.block_on(async {
                let mongo = Mongo::new(config.mongodb.clone());
                let mut runs = Vec::with_capacity(config.targets.len());
                for target in &config.targets {
                    let started_at = chrono::Utc::now();
                    // A panicking run is a failed run (exit 2), as in the daemon.
                    let run = AssertUnwindSafe(checks::run_target(target, &mongo))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| checks::TargetRun::panicked(&target.name, &checks::checks_of(target), started_at));
                    runs.push(run);
                }
                mongo.shutdown(CLIENT_SHUTDOWN_LIMIT).await;
                runs
            });
            match format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&report::check_json(&config.targets, &runs))?
                ),
                OutputFormat::Text => print!("{}", report::check_text(&config.targets, &runs)),
            }
            Ok(ExitCode::from(report::verdict(&runs).exit_code()))
        }
        Command::Audit { config, month, format, out } => {
            let config = Config::load(&config.config)?;
            let now = chrono::Utc::now();
            let month = month.unwrap_or_else(|| Month::previous(now));
            let rt = runtime()?;
            let report = rt.block_on(async {
                let mongo = Mongo::new(config.mongodb.clone());
                let report = audit::build(&config, &mongo, month, now).await;
                mongo.shutdown(CLIENT_SHUTDOWN_LIMIT).await;
                report
            })?;
            let text = report.render(format);
            match out {
                Some(path) => {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let temp = path.with_file_name(format!(".{name}.tmp"));
                    uniqwatch::fsutil::replace_atomically(&path, &temp, text.as_bytes())
                        .with_context(|| format!("cannot write the report to {}", path.display()))?
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(arg) => {
            let config = arg.load()?;
            // Held until the daemon has stopped.
            let _lock = daemon::StateLock::acquire(&config.state.dir)?;
            raise_open_file_limit();
            let rt = runtime()?;
            let grace = config.web.shutdown_grace;
            let result = rt.block_on(async {
                let stop = daemon::signal().context("cannot install the signal handlers")?;
                let listener = tokio::net::TcpListener::bind(config.web.listen)
                    .await
                    .with_context(|| format!("cannot listen on {} ([web] listen)", config.web.listen))?;
                daemon::run(config, listener, stop).await
            });
            // The daemon has waited out its grace; a blocking thread still
            // stuck (a file system that does not answer) must not keep the
            // process alive, as dropping the runtime would.
            rt.shutdown_timeout(grace.min(std::time::Duration::from_secs(1)));
            result?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The tailer keeps every followed file open; raise the soft limit on open
/// files to the hard limit so hundreds of log files do not run it out.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use rlimit::Resource;
        if let Ok((soft, hard)) = Resource::NOFILE.get() {
            if soft < hard && Resource::NOFILE.set(hard, hard).is_err() {
                tracing::debug!("cannot raise the open-file limit");
            }
        }
    }
}

/// Replaces the default panic message, which prints the payload: a panic
/// message may echo a configuration value (a URI, a password), so only
/// where the panic happened is printed. The task that panicked is caught
/// and counted by its owner (a run panicking is a failure with
/// `reason="internal"`).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("{}", panic_line(info.location()));
    }));
}

/// What the panic hook prints: the location only, never the payload.
fn panic_line(location: Option<&std::panic::Location<'_>>) -> String {
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("unnamed");
    match location {
        Some(at) => format!(
            "uniqwatch: a panic in thread '{thread}' at {}:{}:{} (its message is not printed: it may hold configuration values)",
            at.file(),
            at.line(),
            at.column()
        ),
        None => format!("uniqwatch: a panic in thread '{thread}' (its message is not printed: it may hold configuration values)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Issue 13: a panic message may echo a secret; the hook prints where, not what.
    #[test]
    fn the_panic_hook_prints_the_location_and_never_the_payload() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sink.lock().unwrap().push(panic_line(info.location()));
        }));
        let result = std::panic::catch_unwind(|| panic!("password=hunter2"));
        std::panic::set_hook(previous);
        assert!(result.is_err());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].contains("main.rs:"), "{}", seen[0]);
        assert!(!seen[0].contains("hunter2"), "{}", seen[0]);
    }
}
