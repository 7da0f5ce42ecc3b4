//! Fires each target's cron schedule and hands the run to the checks.
//!
//! Holds no check logic: a tick takes the target's run lock without waiting,
//! runs [`checks::run_target`], and stores the result in [`State`]. A tick
//! that finds the previous run still going is skipped and counted, so runs
//! of one target never overlap. Every target also runs once at start-up.
//! On shutdown, no new run starts and in-flight runs get a grace period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use crate::checks;
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

/// What every tick needs, shared by all jobs.
struct Runner {
    state: Arc<State>,
    mongo: Arc<Mongo>,
    metrics: Metrics,
    /// One lock per target (same order as `state.targets`); held for the length of a run.
    locks: Vec<Arc<Mutex<()>>>,
    /// Set on shutdown so late ticks start nothing.
    closed: AtomicBool,
    /// Finished runs go here too (to the history store), when one is attached.
    finished: Option<mpsc::Sender<Vec<RunRecord>>>,
}

impl Runner {
    /// Starts a run of target `i` unless one is going or the scheduler is closed.
    fn fire(self: &Arc<Self>, i: usize) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let slot = &self.state.targets[i];
        let Ok(guard) = self.locks[i].clone().try_lock_owned() else {
            slot.run_skipped(&self.metrics);
            return;
        };
        let runner = Arc::clone(self);
        tokio::spawn(async move {
            let slot = &runner.state.targets[i];
            slot.run_started();
            let run = checks::run_target(&slot.config, &runner.mongo).await;
            if let Some(tx) = &runner.finished {
                if tx.try_send(store::records(&run)).is_err() {
                    runner.metrics.history_records_dropped_total.with_label_values(&["queue_full"]).inc_by(run.results.len() as u64);
                    tracing::warn!(target = %slot.config.name, "history writer is behind; this run is not recorded in history");
                }
            }
            slot.run_finished(run, &runner.metrics);
            drop(guard);
        });
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
        let err = |target: &str| {
            let target = target.to_string();
            move |source| ScheduleError { target, source }
        };
        let runner = Arc::new(Runner {
            locks: state.targets.iter().map(|_| Arc::new(Mutex::new(()))).collect(),
            state,
            mongo,
            metrics,
            closed: AtomicBool::new(false),
            finished,
        });
        let jobs = JobScheduler::new().await.map_err(err("*"))?;
        for (i, slot) in runner.state.targets.iter().enumerate() {
            let r = Arc::clone(&runner);
            let job = Job::new_async(slot.config.schedule.as_str(), move |_, _| {
                r.fire(i);
                Box::pin(async {})
            })
            .map_err(err(&slot.config.name))?;
            jobs.add(job).await.map_err(err(&slot.config.name))?;
        }
        jobs.start().await.map_err(err("*"))?;
        for i in 0..runner.state.targets.len() {
            runner.fire(i);
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
            for lock in &self.runner.locks {
                let _ = lock.lock().await;
            }
        };
        tokio::time::timeout(grace, all_idle).await.is_ok()
    }
}
