//! The last known outcome of every target, shared by the runner (which
//! writes it) and the HTTP handlers (which only read it).
//!
//! Locks are held only to copy or swap a run, never across an await, so a
//! page or a scrape never waits on a check.
//!
//! [`Readiness`] is what `/readyz` asks: a list of components (the first
//! runs here, the history store, the log tailer), each a closure saying
//! what keeps it from being ready, so another part plugs in as one more.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use crate::checks::{self, CheckName, Group, TargetRun};
use crate::config::TargetConfig;
use crate::metrics::Metrics;

/// Everything the daemon knows about its targets.
pub struct State {
    /// When the daemon started, for the landing page.
    pub started_at: DateTime<Utc>,
    /// One slot per `[[target]]`, in config order.
    pub targets: Vec<TargetSlot>,
}

/// One target: its config and what its runs found.
pub struct TargetSlot {
    pub config: TargetConfig,
    status: RwLock<TargetStatus>,
}

/// What the landing page and `/readyz` need of a target.
#[derive(Debug, Clone, Default)]
pub struct TargetStatus {
    /// Scheduled runs skipped (both groups) because the previous one was still going.
    pub skipped: u64,
    /// The key checks' runs (`schedule`).
    pub key: GroupStatus,
    /// The canonical checks' runs (`canonical.schedule`).
    pub canonical: GroupStatus,
    /// When each check last succeeded.
    pub last_success: BTreeMap<CheckName, DateTime<Utc>>,
}

/// The runs of one group of checks of a target.
#[derive(Debug, Clone, Default)]
pub struct GroupStatus {
    /// Runs finished since start-up.
    pub runs: u64,
    /// Ticks skipped while the current run goes on, so only the first is logged.
    pub skipped_this_run: u64,
    /// When the run now going started, if one is.
    pub running_since: Option<DateTime<Utc>>,
    /// The last finished run.
    pub last_run: Option<TargetRun>,
}

impl TargetStatus {
    pub fn group(&self, group: Group) -> &GroupStatus {
        match group {
            Group::Key => &self.key,
            Group::Canonical => &self.canonical,
        }
    }

    fn group_mut(&mut self, group: Group) -> &mut GroupStatus {
        match group {
            Group::Key => &mut self.key,
            Group::Canonical => &mut self.canonical,
        }
    }
}

impl State {
    pub fn new(targets: &[TargetConfig]) -> Self {
        Self {
            started_at: Utc::now(),
            targets: targets
                .iter()
                .map(|t| TargetSlot {
                    config: t.clone(),
                    status: RwLock::new(TargetStatus::default()),
                })
                .collect(),
        }
    }

    /// The targets still waiting for their first run to finish, as a
    /// readiness problem; `None` once every target has run once.
    pub fn waiting_for_first_run(&self) -> Option<String> {
        let waiting: Vec<&str> = self
            .targets
            .iter()
            .filter(|t| t.status().key.runs == 0)
            .map(|t| t.config.name.as_str())
            .collect();
        (!waiting.is_empty()).then(|| format!("waiting for the first run of: {}", waiting.join(", ")))
    }
}

/// One part of the daemon `/readyz` asks: `None` when it is ready, or
/// what is wrong, in one line without configuration values.
pub type Component = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// `/readyz`: ready when every component is.
#[derive(Default)]
pub struct Readiness {
    components: Vec<Component>,
}

impl Readiness {
    pub fn new(components: Vec<Component>) -> Self {
        Self { components }
    }

    /// What keeps the daemon from being ready; empty when it is.
    pub fn problems(&self) -> Vec<String> {
        self.components.iter().filter_map(|c| c()).collect()
    }
}

impl TargetSlot {
    /// A copy of the target's status.
    pub fn status(&self) -> TargetStatus {
        // A poisoned lock means a panic while copying a struct: the data is still whole.
        self.status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Notes that a run of `group` started, for the landing page.
    pub fn run_started(&self, group: Group) {
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        status.group_mut(group).running_since = Some(Utc::now());
    }

    /// Counts a tick that found the previous run still going; logs the first
    /// one of a run only (the counter has the rest).
    pub fn run_skipped(&self, group: Group, metrics: &Metrics) {
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        status.skipped += 1;
        metrics.runs_skipped_total.with_label_values(&[&self.config.name]).inc();
        let g = status.group_mut(group);
        g.skipped_this_run += 1;
        if g.skipped_this_run == 1 {
            tracing::warn!(target = %self.config.name, checks = group.name(), "previous run still going; scheduled runs are skipped until it ends");
        }
    }

    /// Stores a finished run and records its metrics and transition logs.
    pub fn run_finished(&self, run: TargetRun, metrics: &Metrics) {
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        let group = run.group();
        checks::record(&run, status.group(group).last_run.as_ref(), metrics);
        for r in &run.results {
            if r.outcome.is_ok() {
                status.last_success.insert(r.check, r.started_at);
            }
        }
        let g = status.group_mut(group);
        if g.skipped_this_run > 0 {
            tracing::info!(target = %self.config.name, checks = group.name(), skipped = g.skipped_this_run, "long run ended; scheduled runs resume");
            g.skipped_this_run = 0;
        }
        g.runs += 1;
        g.running_since = None;
        g.last_run = Some(run);
    }
}
