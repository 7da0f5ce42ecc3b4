//! Fires each target's cron schedule and hands the run to the checks.
//!
//! Holds no check logic: a tick takes the target's run lock without waiting,
//! runs [`checks::run_group`], and stores the result in [`State`]. A tick
//! that finds the previous run still going is skipped and counted, so runs
//! of one target never overlap. Every target also runs once at start-up.
//! A target with `[target.canonical]` has a second job, on its own
//! schedule and with its own lock, for the canonical checks: an hourly pass
//! over every document never delays the five-minute index check.
//! On shutdown, no new run starts and in-flight runs get a grace period.
//!
//! A run that panics (in a check, or while its outcome is recorded) is
//! caught at the task boundary and recorded as a failure of every check of
//! the run with `reason="internal"`: `uniqwatch_up` goes to 0 and
//! `check_success` to 0, so the usual alerts page, and the next tick runs
//! again. The panic's message is never read: it may hold configuration values.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt as _};
use tokio::sync::{mpsc, Mutex};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::checks::{self, Group, TargetRun};
use crate::config::TargetConfig;
use crate::metrics::Metrics;
use crate::mongo::Mongo;
use crate::state::State;
use crate::store::{self, RunRecord};

/// A cron job could not be set up (the expression was validated with the config).
#[derive(Debug, thiserror::Error)]
#[error("cannot schedule {target}: {source}")]
pub struct ScheduleError {
    target: String,
    #[source]
    source: JobSchedulerError,
}

/// Runs the checks of one group of a target once: [`checks::run_group`] in
/// the daemon; unit tests put a fault here (nothing in the config can).
type RunChecks = for<'a> fn(&'a TargetConfig, &'a Mongo, Group) -> BoxFuture<'a, TargetRun>;

fn run_checks<'a>(target: &'a TargetConfig, mongo: &'a Mongo, group: Group) -> BoxFuture<'a, TargetRun> {
    Box::pin(checks::run_group(target, mongo, group))
}

/// What every tick needs, shared by all jobs.
struct Runner {
    /// What a run does.
    run_checks: RunChecks,
    state: Arc<State>,
    mongo: Arc<Mongo>,
    metrics: Metrics,
    /// One lock per target and group (same order as `state.targets`); held for the length of a run.
    locks: Vec<[Arc<Mutex<()>>; 2]>,
    /// Set on shutdown so late ticks start nothing.
    closed: AtomicBool,
    /// Finished runs go here too (to the history store), when one is attached.
    finished: Option<mpsc::Sender<Vec<RunRecord>>>,
}

impl Runner {
    /// Starts a run of `group` of target `i` unless one is going or the scheduler is closed.
    fn fire(self: &Arc<Self>, i: usize, group: Group) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let slot = &self.state.targets[i];
        let Ok(guard) = self.locks[i][group as usize].clone().try_lock_owned() else {
            slot.run_skipped(group, &self.metrics);
            return;
        };
        let runner = Arc::clone(self);
        tokio::spawn(async move {
            let slot = &runner.state.targets[i];
            slot.run_started(group);
            let started_at = chrono::Utc::now();
            let done = AssertUnwindSafe(async {
                let run = (runner.run_checks)(&slot.config, &runner.mongo, group).await;
                runner.record(i, run);
            })
            .catch_unwind()
            .await;
            // The payload is dropped unread: it may echo a URI or a password.
            if done.is_err() {
                runner.record(i, TargetRun::panicked(&slot.config.name, group.checks(), started_at));
            }
            drop(guard);
        });
    }

    /// Sends a finished run to the history and stores it in the state (with its metrics).
    fn record(&self, i: usize, run: TargetRun) {
        let slot = &self.state.targets[i];
        if let Some(tx) = &self.finished {
            if tx.try_send(store::records(&run)).is_err() {
                self.metrics.history_records_dropped_total.with_label_values(&["queue_full"]).inc_by(run.results.len() as u64);
                tracing::warn!(target = %slot.config.name, "history writer is behind; this run is not recorded in history");
            }
        }
        slot.run_finished(run, &self.metrics);
    }
}

/// The running schedule; [`Scheduler::stop`] ends it.
pub struct Scheduler {
    jobs: JobScheduler,
    runner: Arc<Runner>,
}

impl Scheduler {
    /// Schedules every target and starts a first run of each right away.
    pub async fn start(
        state: Arc<State>,
        mongo: Arc<Mongo>,
        metrics: Metrics,
        finished: Option<mpsc::Sender<Vec<RunRecord>>>,
    ) -> Result<Self, ScheduleError> {
        Self::start_with(state, mongo, metrics, finished, run_checks).await
    }

    async fn start_with(
        state: Arc<State>,
        mongo: Arc<Mongo>,
        metrics: Metrics,
        finished: Option<mpsc::Sender<Vec<RunRecord>>>,
        run_checks: RunChecks,
    ) -> Result<Self, ScheduleError> {
        let err = |target: &str| {
            let target = target.to_string();
            move |source| ScheduleError { target, source }
        };
        let runner = Arc::new(Runner {
            run_checks,
            locks: state.targets.iter().map(|_| [Arc::new(Mutex::new(())), Arc::new(Mutex::new(()))]).collect(),
            state,
            mongo,
            metrics,
            closed: AtomicBool::new(false),
            finished,
        });
        let jobs = JobScheduler::new().await.map_err(err("*"))?;
        for (i, slot) in runner.state.targets.iter().enumerate() {
            for group in Group::ALL {
                let Some(schedule) = group.schedule(&slot.config) else { continue };
                let r = Arc::clone(&runner);
                let job = Job::new_async(schedule, move |_, _| {
                    r.fire(i, group);
                    Box::pin(async {})
                })
                .map_err(err(&slot.config.name))?;
                jobs.add(job).await.map_err(err(&slot.config.name))?;
            }
        }
        jobs.start().await.map_err(err("*"))?;
        for (i, slot) in runner.state.targets.iter().enumerate() {
            for group in Group::ALL {
                if group.applies_to(&slot.config) {
                    runner.fire(i, group);
                }
            }
        }
        Ok(Self { jobs, runner })
    }

    /// Adds a job of the daemon's own (the monthly audit report) on a cron
    /// schedule; `job` is started on every tick, unless the scheduler is closed.
    pub async fn add_job<F, Fut>(&self, name: &str, schedule: &str, job: F) -> Result<(), ScheduleError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let err = |source| ScheduleError { target: name.to_string(), source };
        let runner = Arc::clone(&self.runner);
        let job = Arc::new(job);
        let cron = Job::new_async(schedule, move |_, _| {
            if !runner.closed.load(Ordering::SeqCst) {
                tokio::spawn((job.as_ref())());
            }
            Box::pin(async {})
        })
        .map_err(err)?;
        self.jobs.add(cron).await.map_err(err)?;
        Ok(())
    }

    /// Stops scheduling and waits up to `grace` for in-flight runs. Returns
    /// false when some run was still going when the grace period ended.
    pub async fn stop(mut self, grace: Duration) -> bool {
        self.runner.closed.store(true, Ordering::SeqCst);
        if let Err(e) = self.jobs.shutdown().await {
            tracing::warn!(error = %e, "cron scheduler did not stop cleanly");
        }
        let all_idle = async {
            for lock in self.runner.locks.iter().flatten() {
                let _ = lock.lock().await;
            }
        };
        tokio::time::timeout(grace, all_idle).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::config::Config;

    /// Log output captured for assertions.
    #[derive(Clone, Default)]
    struct Captured(Arc<StdMutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// The fault: a run that panics with a secret in its message, as the
    /// redaction code did on a URI with `%` before a non-ASCII character.
    fn panicking<'a>(_: &'a TargetConfig, _: &'a Mongo, _: Group) -> BoxFuture<'a, TargetRun> {
        Box::pin(async { panic!("cannot redact mongodb://u:hunter2@db/") })
    }

    async fn runs_finished(state: &State, n: u64) {
        for _ in 0..2000 {
            let status = state.targets[0].status();
            if status.key.runs >= n && status.canonical.runs >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {n} never finished");
    }

    /// Issue 13 item 1: a panicking run stalled its target forever, exported
    /// nothing and counted nothing.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_run_is_an_internal_failure_of_every_check_logged_once_without_its_message() {
        let logs = Captured::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
        let _default = tracing::subscriber::set_default(subscriber);

        let toml = "[mongodb]\nuri = \"mongodb://u:hunter2@db/\"\n[[target]]\nname = \"chats\"\ndatabase = \"app\"\ncollection = \"chats\"\nkey = \"k\"\nschedule = \"0 0 0 1 1 *\"\n[target.canonical]\npreset = \"lowercase\"\nschedule = \"0 0 0 1 1 *\"\n";
        let config = Config::from_toml(toml, Path::new("test.toml"), None).unwrap();
        let state = Arc::new(State::new(&config.targets));
        let metrics = Metrics::new();
        checks::init_metrics(&config.targets[0], &metrics);
        let mongo = Arc::new(Mongo::new(config.mongodb.clone()));
        let scheduler = Scheduler::start_with(Arc::clone(&state), mongo, metrics.clone(), None, panicking).await.unwrap();
        runs_finished(&state, 1).await;
        // The target is not stalled: the next tick runs (and panics) again.
        scheduler.runner.fire(0, Group::Key);
        scheduler.runner.fire(0, Group::Canonical);
        runs_finished(&state, 2).await;
        assert!(scheduler.stop(Duration::from_secs(5)).await);

        assert_eq!(metrics.up.with_label_values(&["chats"]).get(), 0, "a panicked run pages as down");
        for check in checks::CHECKS {
            let labels = ["chats", check.as_str()];
            assert_eq!(metrics.check_success.with_label_values(&labels).get(), 0, "{check:?}");
            let internal = metrics.check_failures_total.with_label_values(&["chats", check.as_str(), "internal"]).get();
            assert_eq!(internal, 2, "{check:?}");
        }
        let text = logs.text();
        assert_eq!(text.matches("a check panicked").count(), checks::CHECKS.len(), "once per check, not per run:\n{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("check=\"missing_keys\"") || text.contains("check=missing_keys"), "{text}");
    }
}
