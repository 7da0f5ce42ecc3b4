//! The checks of one target, their explicit list, and the runner.
//!
//! A run of a target executes [`CHECKS`] in order against one [`Context`]:
//! `index` first, because its verdict decides how the others are answered
//! (a unique index is a guarantee and can be hinted; without one, a single
//! collection pass in [`scan`] answers both `duplicates` and `missing_keys`).
//! Through mongos, [`shards`] adds to the index verdict what `listIndexes`
//! cannot see from one shard: the index on every shard and the shard key.
//! Each check only computes its outcome; [`run_target`] times them under one
//! deadline (`query_timeout`), and [`record`] is the one place that turns a
//! run into metrics and log lines, so the two never drift apart.
//!
//! The checks come in two [`Group`]s with schedules of their own: the key
//! checks (`index`, `duplicates`, `missing_keys`) on the target's
//! `schedule`, and, when `[target.canonical]` is set, the canonical checks
//! (`key_consistency`, `canonical_duplicates`), which read every document
//! in one pass ([`canonical`]) on `canonical.schedule`.
//!
//! Adding a check: a new file, a variant in [`CheckName`] and [`Figures`],
//! and the compiler's complaints.

pub mod canonical;
pub mod canonical_duplicates;
pub mod duplicates;
pub mod index;
pub mod key_consistency;
pub mod lookup_plan;
pub mod missing_keys;
pub mod scan;
pub mod shards;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mongodb::bson::Document;
use mongodb::{Client, Collection, Database};
use serde::Serialize;

use crate::config::TargetConfig;
use crate::deployment::Deployment;
use crate::metrics::Metrics;
use crate::mongo::{Deadline, FailureReason, Mongo, QueryError};

pub use canonical::{CanonicalSample, MismatchKind, MismatchSample};
pub use canonical_duplicates::CanonicalDuplicatesOutcome;
pub use duplicates::DuplicatesOutcome;
pub use index::{BuildState, IndexOutcome};
pub use key_consistency::KeyConsistencyOutcome;
pub use lookup_plan::{LookupPlan, LookupProbe};
pub use missing_keys::MissingKeysOutcome;

/// The checks of a target; also the `check` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    Index,
    Duplicates,
    MissingKeys,
    KeyConsistency,
    CanonicalDuplicates,
}

/// Every check, in the order a run executes them.
pub const CHECKS: [CheckName; 5] = [
    CheckName::Index,
    CheckName::Duplicates,
    CheckName::MissingKeys,
    CheckName::KeyConsistency,
    CheckName::CanonicalDuplicates,
];

/// Checks that run together, on one schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// `index`, `duplicates`, `missing_keys`: the target's `schedule`.
    Key,
    /// `key_consistency`, `canonical_duplicates`: `canonical.schedule`.
    Canonical,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::Key, Group::Canonical];

    /// The group's checks, in the order a run executes them.
    pub fn checks(self) -> &'static [CheckName] {
        match self {
            Group::Key => &CHECKS[..3],
            Group::Canonical => &CHECKS[3..],
        }
    }

    /// The group's name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Group::Key => "key",
            Group::Canonical => "canonical",
        }
    }

    /// Whether `target` has checks of this group.
    pub fn applies_to(self, target: &TargetConfig) -> bool {
        match self {
            Group::Key => true,
            Group::Canonical => target.canonical.is_some(),
        }
    }

    /// The cron expression the group runs on for `target`.
    pub fn schedule(self, target: &TargetConfig) -> Option<&str> {
        match self {
            Group::Key => Some(target.schedule.as_str()),
            Group::Canonical => target.canonical.as_ref().map(|c| c.schedule.as_str()),
        }
    }
}

/// The checks `target` has, in run order.
pub fn checks_of(target: &TargetConfig) -> Vec<CheckName> {
    Group::ALL.iter().filter(|g| g.applies_to(target)).flat_map(|g| g.checks().iter().copied()).collect()
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Index => "index",
            CheckName::Duplicates => "duplicates",
            CheckName::MissingKeys => "missing_keys",
            CheckName::KeyConsistency => "key_consistency",
            CheckName::CanonicalDuplicates => "canonical_duplicates",
        }
    }

    pub fn group(self) -> Group {
        match self {
            CheckName::Index | CheckName::Duplicates | CheckName::MissingKeys => Group::Key,
            CheckName::KeyConsistency | CheckName::CanonicalDuplicates => Group::Canonical,
        }
    }

    async fn run(self, ctx: &mut Context<'_>) -> Result<Figures, QueryError> {
        match self {
            CheckName::Index => index::run(ctx).await.map(Figures::Index),
            CheckName::Duplicates => duplicates::run(ctx).await.map(Figures::Duplicates),
            CheckName::MissingKeys => missing_keys::run(ctx).await.map(Figures::MissingKeys),
            CheckName::KeyConsistency => key_consistency::run(ctx).await.map(Figures::KeyConsistency),
            CheckName::CanonicalDuplicates => canonical_duplicates::run(ctx).await.map(Figures::CanonicalDuplicates),
        }
    }
}

/// How a figure was produced; shown in the JSON output and on the landing page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// A valid unique index makes duplicates impossible; no query was needed.
    UniqueIndex,
    /// One walk of an index, hinted (plus the collection's size where the
    /// index skips documents without the key).
    IndexCounts,
    /// One aggregation pass over the collection, grouping by key.
    Aggregation,
    /// One counting pass over the collection, no grouping by key: an index
    /// that cannot be hinted already guarantees uniqueness.
    CollectionCounts,
    /// The canonical pass: one aggregation computing every document's canonical value.
    Canonical,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::UniqueIndex => "unique_index",
            Method::IndexCounts => "index_counts",
            Method::Aggregation => "aggregation",
            Method::CollectionCounts => "collection_counts",
            Method::Canonical => "canonical",
        }
    }
}

/// The outcome of one successful check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Figures {
    Index(IndexOutcome),
    Duplicates(DuplicatesOutcome),
    MissingKeys(MissingKeysOutcome),
    KeyConsistency(KeyConsistencyOutcome),
    CanonicalDuplicates(CanonicalDuplicatesOutcome),
}

impl Figures {
    /// Whether the figures show the invariant holding for this check.
    pub fn healthy(&self) -> bool {
        match self {
            Figures::Index(i) => i.present,
            Figures::Duplicates(d) => d.keys == 0,
            Figures::MissingKeys(m) => m.total() == 0,
            Figures::KeyConsistency(k) => k.total() == 0,
            Figures::CanonicalDuplicates(c) => c.keys == 0,
        }
    }

    /// The figures in one line, without key values: what the landing page
    /// and `check`'s table show.
    pub fn summary(&self) -> String {
        match self {
            Figures::Index(i) => i.summary(),
            Figures::Duplicates(d) => {
                format!("{} duplicated keys, {} surplus documents ({})", d.keys, d.documents, d.method.as_str())
            }
            Figures::MissingKeys(m) => format!(
                "{} absent, {} null, {} empty, {} array of {} documents ({})",
                m.absent,
                m.null,
                m.empty,
                m.array,
                m.documents,
                m.method.as_str()
            ),
            Figures::KeyConsistency(k) => format!(
                "{} mismatch, {} derivable, {} underivable of {} documents (canonical)",
                k.mismatch, k.derivable, k.underivable, k.documents
            ),
            Figures::CanonicalDuplicates(c) => {
                format!("{} canonical values held by several documents, {} surplus documents (canonical)", c.keys, c.documents)
            }
        }
    }
}

/// One check's part of a run.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub check: CheckName,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub outcome: Result<Figures, QueryError>,
}

/// Everything one run of a target produced.
#[derive(Debug, Clone)]
pub struct TargetRun {
    pub target: String,
    pub started_at: DateTime<Utc>,
    /// One entry per check, in [`CHECKS`] order.
    pub results: Vec<CheckResult>,
}

impl TargetRun {
    pub fn result(&self, check: CheckName) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    pub fn index(&self) -> Option<&IndexOutcome> {
        match self.result(CheckName::Index)?.outcome.as_ref().ok()? {
            Figures::Index(o) => Some(o),
            _ => None,
        }
    }

    pub fn duplicates(&self) -> Option<&DuplicatesOutcome> {
        match self.result(CheckName::Duplicates)?.outcome.as_ref().ok()? {
            Figures::Duplicates(o) => Some(o),
            _ => None,
        }
    }

    pub fn missing_keys(&self) -> Option<&MissingKeysOutcome> {
        match self.result(CheckName::MissingKeys)?.outcome.as_ref().ok()? {
            Figures::MissingKeys(o) => Some(o),
            _ => None,
        }
    }

    pub fn key_consistency(&self) -> Option<&KeyConsistencyOutcome> {
        match self.result(CheckName::KeyConsistency)?.outcome.as_ref().ok()? {
            Figures::KeyConsistency(o) => Some(o),
            _ => None,
        }
    }

    pub fn canonical_duplicates(&self) -> Option<&CanonicalDuplicatesOutcome> {
        match self.result(CheckName::CanonicalDuplicates)?.outcome.as_ref().ok()? {
            Figures::CanonicalDuplicates(o) => Some(o),
            _ => None,
        }
    }

    /// The group of the run's checks (a run holds one group's, or, from
    /// [`run_target`], every group's in order: then the first).
    pub fn group(&self) -> Group {
        self.results.first().map(|r| r.check.group()).unwrap_or(Group::Key)
    }

    /// Another run's results after this one's, as `check` shows a target's
    /// every group in one report.
    pub fn extend(&mut self, other: TargetRun) {
        self.results.extend(other.results);
    }

    /// A run in which every check failed the same way before any could start.
    fn failed(target: &str, checks: &[CheckName], started_at: DateTime<Utc>, duration: Duration, e: QueryError) -> Self {
        let results = checks
            .iter()
            .map(|&check| CheckResult {
                check,
                started_at,
                duration,
                outcome: Err(e.clone()),
            })
            .collect();
        TargetRun {
            target: target.to_string(),
            started_at,
            results,
        }
    }

    /// A run that panicked: every check failed with `internal`. The panic's
    /// message is not kept (it may hold configuration values), and the run
    /// counts as not having reached MongoDB, so it pages like an outage.
    pub fn panicked(target: &str, checks: &[CheckName], started_at: DateTime<Utc>) -> Self {
        let duration = (Utc::now() - started_at).to_std().unwrap_or_default();
        Self::failed(target, checks, started_at, duration, QueryError::new(FailureReason::Internal, PANICKED))
    }

    /// Whether the run got answers from MongoDB: false when any check could
    /// not connect or authenticate, when even the first (cheapest) query
    /// did not finish in time, or when the run panicked (nothing it got can
    /// be trusted).
    pub fn reached_mongodb(&self) -> bool {
        self.results.iter().all(|r| match &r.outcome {
            Err(e) => match e.reason {
                FailureReason::Unreachable | FailureReason::Unauthorized | FailureReason::Internal => false,
                FailureReason::Timeout => r.check != CheckName::Index,
                FailureReason::Other => true,
            },
            Ok(_) => true,
        })
    }

    /// The checks that could not produce a figure.
    pub fn errors(&self) -> impl Iterator<Item = (CheckName, &QueryError)> {
        self.results.iter().filter_map(|r| r.outcome.as_ref().err().map(|e| (r.check, e)))
    }

    /// What this run proves is wrong, per check, in an operator's words;
    /// empty when every figure it produced is healthy.
    pub fn violations(&self) -> Vec<(CheckName, String)> {
        let mut v = Vec::new();
        if let Some(i) = self.index() {
            if !i.present {
                v.push((
                    CheckName::Index,
                    format!("unique index missing or wrong: {}", i.problem.as_deref().unwrap_or("unexpected options")),
                ));
            }
        }
        if let Some(d) = self.duplicates() {
            if d.keys > 0 {
                v.push((CheckName::Duplicates, format!("{} duplicated keys, {} surplus documents", d.keys, d.documents)));
            }
        }
        if let Some(m) = self.missing_keys() {
            if m.total() > 0 {
                v.push((
                    CheckName::MissingKeys,
                    format!(
                        "documents without a usable key: {} absent, {} null, {} empty, {} array",
                        m.absent, m.null, m.empty, m.array
                    ),
                ));
            }
        }
        if let Some(k) = self.key_consistency() {
            if k.total() > 0 {
                v.push((
                    CheckName::KeyConsistency,
                    format!(
                        "keys that are not their canonical value: {} mismatch, {} derivable, {} underivable",
                        k.mismatch, k.derivable, k.underivable
                    ),
                ));
            }
        }
        if let Some(c) = self.canonical_duplicates() {
            if c.keys > 0 {
                v.push((
                    CheckName::CanonicalDuplicates,
                    format!("{} canonical values held by several documents, {} surplus documents", c.keys, c.documents),
                ));
            }
        }
        v
    }

    /// What the run says about the invariant as a whole.
    pub fn verdict(&self) -> Verdict {
        let violations = self.violations();
        if !violations.is_empty() {
            Verdict::Violated(violations.into_iter().map(|(_, text)| text).collect())
        } else if self.errors().next().is_some() {
            Verdict::Unknown
        } else {
            Verdict::Holds
        }
    }
}

/// The message of a check that failed because its run panicked.
const PANICKED: &str = "a check panicked";

/// The invariant as one run saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every check ran and found nothing wrong.
    Holds,
    /// Something is proven wrong (whatever else could not run).
    Violated(Vec<String>),
    /// Nothing proven wrong, but some check could not run.
    Unknown,
}

/// What one run of the checks works with. Outcomes of earlier checks are
/// kept here for the later ones.
pub struct Context<'a> {
    pub target: &'a TargetConfig,
    /// What the client talks to; decides which commands and stages the checks use.
    pub deployment: Deployment,
    pub mongo: &'a Mongo,
    pub client: &'a Client,
    pub db: Database,
    pub coll: Collection<Document>,
    pub deadline: Deadline,
    /// The `index` check's verdict, once it has run.
    pub index: Option<IndexOutcome>,
    /// The shared collection pass, once run (or failed), so it runs at most once per run.
    scan: Option<Result<scan::Summary, QueryError>>,
    /// The canonical pass, once run (or failed), shared the same way.
    canonical: Option<Result<canonical::Summary, QueryError>>,
}

impl Context<'_> {
    /// The time left in the run as a `maxTimeMS` value.
    pub fn max_time_ms(&self) -> i64 {
        self.deadline.remaining().as_millis().min(i64::MAX as u128) as i64
    }

    /// Fails a counting check at once when the `index` check found no
    /// collection to count in (a view, a time-series collection, nothing),
    /// so its figures are withdrawn instead of reading as a clean zero.
    pub fn require_collection(&self) -> Result<(), QueryError> {
        match self.index.as_ref().and_then(|i| i.namespace.problem()) {
            Some(problem) => Err(QueryError::new(FailureReason::Other, problem)),
            None => Ok(()),
        }
    }

    /// The collection pass, run on first use and shared by later checks.
    pub async fn scan(&mut self) -> Result<scan::Summary, QueryError> {
        if let Some(done) = &self.scan {
            return done.clone();
        }
        let result = scan::run(self).await;
        self.scan = Some(result.clone());
        result
    }

    /// The canonical pass, run on first use and shared by later checks.
    pub async fn canonical(&mut self) -> Result<canonical::Summary, QueryError> {
        if let Some(done) = &self.canonical {
            return done.clone();
        }
        let result = canonical::run(self).await;
        self.canonical = Some(result.clone());
        result
    }
}

/// Runs every check of `target` once, each group within its own
/// `query_timeout`: what `uniqwatch check` reports.
pub async fn run_target(target: &TargetConfig, mongo: &Mongo) -> TargetRun {
    let mut run = run_group(target, mongo, Group::Key).await;
    if Group::Canonical.applies_to(target) {
        run.extend(run_group(target, mongo, Group::Canonical).await);
    }
    run
}

/// Runs the checks of one group of `target` once, within `query_timeout`
/// (the canonical group: `canonical.query_timeout` when set).
pub async fn run_group(target: &TargetConfig, mongo: &Mongo, group: Group) -> TargetRun {
    let checks = group.checks();
    let timeout = match (group, &target.canonical) {
        (Group::Canonical, Some(c)) => c.query_timeout.unwrap_or(mongo.query_timeout()),
        _ => mongo.query_timeout(),
    };
    let deadline = Deadline::after(timeout);
    let started_at = Utc::now();
    let clock = Instant::now();
    let client = match deadline.run(mongo.client()).await {
        Ok(client) => client,
        Err(e) => return TargetRun::failed(&target.name, checks, started_at, clock.elapsed(), e),
    };
    let deployment = match mongo.deployment(client, &deadline).await {
        Ok(d) => d,
        Err(e) => return TargetRun::failed(&target.name, checks, started_at, clock.elapsed(), e),
    };
    let db = client.database(&target.database);
    let mut ctx = Context {
        deployment,
        target,
        mongo,
        client,
        coll: db.collection(&target.collection),
        db,
        deadline,
        index: None,
        scan: None,
        canonical: None,
    };
    let mut results = Vec::with_capacity(checks.len());
    // Once MongoDB proved unreachable or refused us, later checks fail the
    // same way at once instead of waiting out another server selection.
    let mut down: Option<QueryError> = None;
    for &check in checks {
        let at = Utc::now();
        let t0 = Instant::now();
        let outcome = match &down {
            Some(e) => Err(e.clone()),
            None => deadline.run(check.run(&mut ctx)).await,
        };
        if let Err(e) = &outcome {
            if matches!(e.reason, FailureReason::Unreachable | FailureReason::Unauthorized) {
                down = Some(e.clone());
            }
        }
        results.push(CheckResult {
            check,
            started_at: at,
            duration: t0.elapsed(),
            outcome,
        });
    }
    TargetRun {
        target: target.name.clone(),
        started_at,
        results,
    }
}

/// Records a finished run: metrics for every check, and one log line per
/// change of state (a check starting or stopping to fail, MongoDB becoming
/// unreachable or reachable, an invariant breaking or holding again).
/// `previous` is the target's previous run, if any.
///
/// `uniqwatch_up` and the reachability lines follow the key checks alone: an
/// hourly canonical pass, which may end in a timeout during an outage, must
/// neither raise `up` nor log reachability an hour late.
pub fn record(run: &TargetRun, previous: Option<&TargetRun>, metrics: &Metrics) {
    let target = run.target.as_str();
    if run.group() == Group::Key {
        record_reachability(run, previous, metrics);
    }
    for result in &run.results {
        record_check(target, result, previous.and_then(|p| p.result(result.check)), metrics);
    }

    log_verdict(run, previous);
}

/// `uniqwatch_up`, and one line when MongoDB becomes reachable or unreachable.
fn record_reachability(run: &TargetRun, previous: Option<&TargetRun>, metrics: &Metrics) {
    let target = run.target.as_str();
    let up = run.reached_mongodb();
    metrics.up.with_label_values(&[target]).set(up as i64);
    let was_up = previous.map(TargetRun::reached_mongodb);
    if was_up != Some(up) {
        if up {
            tracing::info!(target = target, "MongoDB reachable");
        } else if let Some((_, e)) = run.errors().find(|(_, e)| e.reason != FailureReason::Internal) {
            // A panicked run is logged by each check (below), not as an outage.
            tracing::error!(target = target, reason = %e.reason, error = %e.message, "MongoDB not reachable; checks will retry on schedule");
        }
    }
}

/// One log line when the invariant's state changes: it starts holding, a
/// violation appears or changes. A run that could not check everything says
/// nothing about the invariant unless it proves something new is wrong, so an
/// outage never reads as "holds" or as "got better".
fn log_verdict(run: &TargetRun, previous: Option<&TargetRun>) {
    let target = run.target.as_str();
    let now = run.verdict();
    let complete = run.errors().next().is_none();
    if !worth_logging(&now, previous.map(TargetRun::verdict).as_ref(), complete) {
        return;
    }
    match (now, run.group()) {
        (Verdict::Holds, Group::Key) => tracing::info!(target = target, "uniqueness invariant holds"),
        (Verdict::Holds, Group::Canonical) => {
            tracing::info!(target = target, "one document per canonical value, every key its canonical value: holds")
        }
        (Verdict::Violated(violations), Group::Key) => {
            let sample: Vec<String> = run
                .duplicates()
                .map(|d| d.sample.iter().take(5).map(|s| format!("{}×{}", s.key, s.count)).collect())
                .unwrap_or_default();
            tracing::warn!(target = target, violations = ?violations, sample = ?sample, "uniqueness invariant violated");
        }
        (Verdict::Violated(violations), Group::Canonical) => {
            let duplicates: Vec<String> = run
                .canonical_duplicates()
                .map(|d| d.sample.iter().take(5).map(|s| format!("{}×{}", s.canonical, s.count)).collect())
                .unwrap_or_default();
            let keys: Vec<String> = run
                .key_consistency()
                .map(|k| k.sample.iter().take(5).map(|s| format!("{} {}: {} ≠ {}", s.kind.as_str(), s.id, s.stored, s.canonical)).collect())
                .unwrap_or_default();
            tracing::warn!(target = target, violations = ?violations, duplicates = ?duplicates, keys = ?keys, "canonical invariant violated");
        }
        (Verdict::Unknown, _) => {}
    }
}

/// Whether a run's verdict is news: `complete` says every check of the run produced figures.
fn worth_logging(now: &Verdict, before: Option<&Verdict>, complete: bool) -> bool {
    match (now, before) {
        (Verdict::Unknown, _) => false,
        (Verdict::Holds, before) => before != Some(&Verdict::Holds),
        (Verdict::Violated(now), Some(Verdict::Violated(was))) if complete => was != now,
        // A partial run only tells what it saw: news if something new is wrong.
        (Verdict::Violated(now), Some(Verdict::Violated(was))) => now.iter().any(|v| !was.contains(v)),
        (Verdict::Violated(_), _) => true,
    }
}

/// Metrics and transition logs of one check's result.
fn record_check(target: &str, result: &CheckResult, previous: Option<&CheckResult>, metrics: &Metrics) {
    let check = result.check.as_str();
    let labels = [target, check];
    let seconds = result.duration.as_secs_f64();
    metrics.check_duration_seconds.with_label_values(&labels).set(seconds);
    metrics.check_seconds_total.with_label_values(&labels).inc_by(seconds);
    match &result.outcome {
        Ok(figures) => {
            metrics.check_success.with_label_values(&labels).set(1);
            let finished = result.started_at + chrono::Duration::from_std(result.duration).unwrap_or_default();
            metrics
                .check_last_success_timestamp_seconds
                .with_label_values(&labels)
                .set(finished.timestamp_millis() as f64 / 1000.0);
            set_figures(target, figures, metrics);
            if matches!(previous.map(|p| &p.outcome), Some(Err(_))) {
                tracing::info!(target = target, check = check, "check succeeds again");
            }
        }
        Err(e) => {
            metrics.check_success.with_label_values(&labels).set(0);
            metrics
                .check_failures_total
                .with_label_values(&[target, check, e.reason.as_str()])
                .inc();
            withdraw_figures(target, result.check, metrics);
            let same_as_before = matches!(previous.map(|p| &p.outcome), Some(Err(p)) if p.reason == e.reason);
            if !same_as_before {
                if e.reason == FailureReason::Internal {
                    tracing::error!(target = target, check = check, reason = %e.reason, "a check panicked");
                } else {
                    tracing::warn!(target = target, check = check, reason = %e.reason, error = %e.message, "check failed");
                }
            }
        }
    }
}

fn set_figures(target: &str, figures: &Figures, m: &Metrics) {
    match figures {
        Figures::Index(i) => {
            m.unique_index_present.with_label_values(&[target]).set(i.present as i64);
            match i.build {
                Some(BuildState::Ready) => m.unique_index_building.with_label_values(&[target]).set(0),
                Some(BuildState::Building) => m.unique_index_building.with_label_values(&[target]).set(1),
                Some(BuildState::Unknown) | None => {
                    let _ = m.unique_index_building.remove_label_values(&[target]);
                }
            }
            shards::set_metric(target, i.shards.as_deref(), m);
            // Absent while the probe cannot tell: no index, nothing to look up, a failure.
            match i.lookup.as_ref().and_then(LookupProbe::uses_unique_index) {
                Some(uses) => m.key_lookup_uses_unique_index.with_label_values(&[target]).set(uses as i64),
                None => {
                    let _ = m.key_lookup_uses_unique_index.remove_label_values(&[target]);
                }
            }
        }
        Figures::Duplicates(d) => {
            m.duplicate_keys.with_label_values(&[target]).set(d.keys as i64);
            m.duplicate_documents.with_label_values(&[target]).set(d.documents as i64);
        }
        Figures::MissingKeys(k) => {
            for (kind, n) in [("absent", k.absent), ("null", k.null), ("empty", k.empty), ("array", k.array)] {
                m.missing_key_documents.with_label_values(&[target, kind]).set(n as i64);
            }
            m.documents.with_label_values(&[target]).set(k.documents as i64);
        }
        Figures::KeyConsistency(k) => {
            for (kind, n) in [(MismatchKind::Mismatch, k.mismatch), (MismatchKind::Derivable, k.derivable), (MismatchKind::Underivable, k.underivable)] {
                m.key_mismatch_documents.with_label_values(&[target, kind.as_str()]).set(n as i64);
            }
        }
        Figures::CanonicalDuplicates(c) => {
            m.canonical_duplicate_keys.with_label_values(&[target]).set(c.keys as i64);
            m.canonical_duplicate_documents.with_label_values(&[target]).set(c.documents as i64);
        }
    }
}

/// A failed check's figures are withdrawn rather than left stale or set to 0.
fn withdraw_figures(target: &str, check: CheckName, m: &Metrics) {
    // remove_label_values errs only when the series does not exist: nothing to withdraw.
    match check {
        CheckName::Index => {
            let _ = m.unique_index_present.remove_label_values(&[target]);
            let _ = m.unique_index_building.remove_label_values(&[target]);
            shards::withdraw_metric(target, m);
            let _ = m.key_lookup_uses_unique_index.remove_label_values(&[target]);
        }
        CheckName::Duplicates => {
            let _ = m.duplicate_keys.remove_label_values(&[target]);
            let _ = m.duplicate_documents.remove_label_values(&[target]);
        }
        CheckName::MissingKeys => {
            for kind in ["absent", "null", "empty", "array"] {
                let _ = m.missing_key_documents.remove_label_values(&[target, kind]);
            }
            let _ = m.documents.remove_label_values(&[target]);
        }
        CheckName::KeyConsistency => {
            for kind in MismatchKind::ALL {
                let _ = m.key_mismatch_documents.remove_label_values(&[target, kind.as_str()]);
            }
        }
        CheckName::CanonicalDuplicates => {
            let _ = m.canonical_duplicate_keys.remove_label_values(&[target]);
            let _ = m.canonical_duplicate_documents.remove_label_values(&[target]);
        }
    }
}

/// Creates every failure-counter series of a target at zero, so that
/// `rate()` and `increase()` see the first failure.
pub fn init_metrics(target: &TargetConfig, m: &Metrics) {
    for check in checks_of(target) {
        for reason in FailureReason::ALL {
            m.check_failures_total.with_label_values(&[&target.name, check.as_str(), reason.as_str()]);
        }
    }
    m.runs_skipped_total.with_label_values(&[&target.name]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violated(items: &[&str]) -> Verdict {
        Verdict::Violated(items.iter().map(|s| s.to_string()).collect())
    }

    /// Review finding: an hourly canonical pass ending in a timeout during an
    /// outage raised `uniqwatch_up` to 1 and restarted UniqwatchDown's wait.
    #[test]
    fn only_the_key_checks_set_up() {
        let metrics = Metrics::new();
        let at = Utc::now();
        let timeout = QueryError::new(FailureReason::Timeout, "slow");
        let canonical = TargetRun::failed("chats", Group::Canonical.checks(), at, Duration::ZERO, timeout.clone());
        record(&canonical, None, &metrics);
        assert!(metrics.up.remove_label_values(&["chats"]).is_err(), "a canonical run sets no up series");
        let unreachable = QueryError::new(FailureReason::Unreachable, "down");
        let key = TargetRun::failed("chats", Group::Key.checks(), at, Duration::ZERO, unreachable);
        record(&key, None, &metrics);
        assert_eq!(metrics.up.with_label_values(&["chats"]).get(), 0);
        record(&canonical, None, &metrics);
        assert_eq!(metrics.up.with_label_values(&["chats"]).get(), 0, "a timed-out pass does not raise it");
    }

    #[test]
    fn an_outage_after_a_violation_is_not_news() {
        assert!(!worth_logging(&Verdict::Unknown, Some(&violated(&["dups"])), false));
    }

    #[test]
    fn holding_is_news_after_an_outage_or_a_violation_or_at_start() {
        assert!(worth_logging(&Verdict::Holds, Some(&Verdict::Unknown), true));
        assert!(worth_logging(&Verdict::Holds, Some(&violated(&["dups"])), true));
        assert!(worth_logging(&Verdict::Holds, None, true));
        assert!(!worth_logging(&Verdict::Holds, Some(&Verdict::Holds), true));
    }

    #[test]
    fn a_partial_run_seeing_fewer_violations_is_not_an_improvement() {
        assert!(!worth_logging(&violated(&["index"]), Some(&violated(&["index", "dups"])), false));
        assert!(worth_logging(&violated(&["index", "keys"]), Some(&violated(&["index"])), false));
    }

    #[test]
    fn a_complete_run_with_changed_violations_is_news() {
        assert!(worth_logging(&violated(&["index"]), Some(&violated(&["index", "dups"])), true));
        assert!(!worth_logging(&violated(&["index"]), Some(&violated(&["index"])), true));
        assert!(worth_logging(&violated(&["index"]), Some(&Verdict::Unknown), false));
    }
}
