//! The `index` check: does a unique index on exactly `{<key>: 1}` (or `-1`)
//! exist, sparse as configured? For a compound key the index's key pattern
//! must be the key's fields in the key's order (each `1` or `-1`): one on the
//! same fields in another order, or on more or fewer fields, is not the
//! key's index, and the problem says which it is.
//!
//! `listIndexes` is sent as a raw cursor command with the client's read
//! preference, because the driver's helper pins it to the primary. The
//! verdict itself is a pure function, [`evaluate`], so its rules are tested
//! without a server. Its result also tells the other checks whether the
//! index already guarantees uniqueness, and whether it can answer queries.
//! Once it can, the key lookup probe ([`super::lookup_plan`]) explains the
//! application's lookup by key and the outcome keeps the plan's shape.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use serde::Serialize;

use super::shards::{self, ShardsView};
use super::lookup_plan::LookupProbe;
use super::Context;
use crate::config::KeySpec;
use crate::deployment::Deployment;
use crate::mongo::{is_command_error, QueryError};

/// What the target's namespace is, from `listCollections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Namespace {
    /// A collection: it can hold a unique index.
    #[default]
    Collection,
    /// A view: it has no indexes of its own, so nothing it shows is enforced.
    View,
    /// A time-series collection: MongoDB refuses unique indexes on it.
    Timeseries,
    /// No collection or view by that name (or no such database): never
    /// created, dropped, or renamed away.
    Missing,
}

impl Namespace {
    /// Why the other checks have nothing to count, in an operator's words;
    /// `None` for a collection.
    pub fn problem(self) -> Option<&'static str> {
        match self {
            Namespace::Collection => None,
            Namespace::View => Some("the target is a view, not a collection: a view has no indexes of its own and enforces nothing"),
            Namespace::Timeseries => Some("the target is a time-series collection: MongoDB does not allow unique indexes on one"),
            Namespace::Missing => Some("the collection does not exist (never created, dropped or renamed)"),
        }
    }

    /// Reads the `type` of a `listCollections` entry; no entry means missing.
    pub fn from_entry(entry: Option<&Document>) -> Self {
        match entry.map(|e| e.get_str("type").unwrap_or("collection")) {
            None => Namespace::Missing,
            Some("view") => Namespace::View,
            Some("timeseries") => Namespace::Timeseries,
            Some(_) => Namespace::Collection,
        }
    }
}

/// What the index check found. `Default` is "no index on a collection", for
/// tests that build outcomes by hand.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct IndexOutcome {
    /// What the target's namespace is; only a collection can be checked.
    pub namespace: Namespace,
    /// The expected unique index exists with the expected options.
    pub present: bool,
    /// Name of the index that matched, or of the closest candidate.
    pub name: Option<String>,
    /// The candidate's `unique` option.
    pub unique: bool,
    /// The candidate is sparse, or partial on `{<key>: {$exists: true}}`.
    pub sparse: bool,
    /// The candidate is hidden from the query planner (it still enforces uniqueness).
    pub hidden: bool,
    /// Whether the candidate's build has finished; `None` without a candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildState>,
    /// Why the index does not match, in an operator's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Some index (even one with the wrong sparse option) makes duplicates
    /// among keyed documents impossible, so no scan is needed to count them.
    #[serde(skip)]
    pub guarantees_uniqueness: bool,
    /// Name of an index that can be hinted to count missing keys without a
    /// collection scan: it guarantees uniqueness, is visible, uses the simple
    /// collation, and indexes documents without the key when `!sparse`.
    /// `missing_keys` hints it for a single-field key only; the lookup probe
    /// reads a key value through it for any key.
    #[serde(skip)]
    pub queryable: Option<QueryableIndex>,
    /// Through mongos: the index on each shard owning chunks, and whether
    /// the shard key lets it enforce uniqueness across shards. Boxed: it is
    /// rare, and larger than the rest of the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<Box<ShardsView>>,
    /// Whether the application's lookup by key uses the index (see
    /// [`lookup_plan`](super::lookup_plan)); `None` until the probe ran.
    pub lookup: Option<LookupProbe>,
}

impl IndexOutcome {
    /// The index in one line, without key values: what the landing page and
    /// `check`'s table show.
    pub fn summary(&self) -> String {
        let mut line = if self.present {
            format!(
                "{} (unique{}{})",
                self.name.as_deref().unwrap_or("?"),
                if self.sparse { ", sparse" } else { "" },
                if self.hidden { ", hidden" } else { "" }
            )
        } else {
            self.problem.clone().unwrap_or_else(|| "unexpected options".into())
        };
        if self.present && self.build == Some(BuildState::Unknown) {
            line.push_str("; the server cannot say whether its build has finished, so duplicates are counted by a scan");
        }
        let line = shards::annotate(line, self.shards.as_deref());
        match &self.lookup {
            Some(lookup) => format!("{line}; {}", lookup.summary()),
            None => line,
        }
    }
}

/// An index the `missing_keys` check may hint.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryableIndex {
    pub name: String,
    /// Documents without the key are not in the index.
    pub skips_absent: bool,
}

/// Whether an index is finished. An index still being built is listed by
/// `listIndexes` like any other, yet enforces nothing: duplicates can exist
/// and be written until the build commits (and then fails it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    /// Built and committed: it enforces what it declares.
    #[default]
    Ready,
    /// Still being built.
    Building,
    /// The server could not say (it refused to mark builds, and `$indexStats`
    /// was refused too): the index is not trusted as a guarantee.
    Unknown,
}

impl BuildState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildState::Ready => "ready",
            BuildState::Building => "building",
            BuildState::Unknown => "unknown",
        }
    }
}

/// One entry of `listIndexes`, reduced to what the verdict needs.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub key: Document,
    pub unique: bool,
    pub sparse: bool,
    pub hidden: bool,
    pub partial_filter: Option<Document>,
    pub collation: Option<Document>,
    pub build: BuildState,
}

impl IndexSpec {
    /// Reads one `listIndexes` entry in any of its documented shapes: the
    /// plain spec; `{spec, buildUUID}` for a build in progress when asked with
    /// `includeBuildUUIDs` (4.4+; ready indexes stay plain); `{spec,
    /// indexBuildInfo}` when asked with `includeIndexBuildInfo` (6.3+; every
    /// spec is wrapped, and only builds in progress carry `indexBuildInfo`).
    pub fn from_entry(entry: &Document) -> Self {
        match entry.get_document("spec") {
            Ok(spec) => {
                let building = entry.contains_key("indexBuildInfo") || entry.contains_key("buildUUID");
                IndexSpec {
                    build: if building { BuildState::Building } else { BuildState::Ready },
                    ..Self::from_document(spec)
                }
            }
            Err(_) => Self::from_document(entry),
        }
    }

    /// Reads one plain index spec; fields of unexpected types count as absent.
    pub fn from_document(d: &Document) -> Self {
        let flag = |name: &str| match d.get(name) {
            Some(Bson::Boolean(b)) => *b,
            Some(Bson::Int32(n)) => *n != 0,
            Some(Bson::Int64(n)) => *n != 0,
            Some(Bson::Double(n)) => *n != 0.0,
            _ => false,
        };
        IndexSpec {
            name: d.get_str("name").unwrap_or_default().to_string(),
            key: d.get_document("key").cloned().unwrap_or_default(),
            unique: flag("unique"),
            sparse: flag("sparse"),
            hidden: flag("hidden"),
            partial_filter: d.get_document("partialFilterExpression").ok().cloned(),
            collation: d.get_document("collation").ok().cloned(),
            build: BuildState::Ready,
        }
    }

    /// The key pattern is exactly the key's fields in order, each `1` or
    /// `-1`: `{<key>: 1}` for a single field.
    fn is_exactly_on(&self, key: &[String]) -> bool {
        self.key.len() == key.len()
            && self.key.iter().zip(key).all(|((field, direction), want)| {
                field == want
                    && match direction {
                        Bson::Int32(n) => *n == 1 || *n == -1,
                        Bson::Int64(n) => *n == 1 || *n == -1,
                        Bson::Double(n) => *n == 1.0 || *n == -1.0,
                        _ => false,
                    }
            })
    }

    /// The key appears somewhere in a compound (or other) pattern.
    fn mentions(&self, key: &str) -> bool {
        self.key.contains_key(key)
    }

    /// `partialFilterExpression` selects every document that has the key:
    /// `{<key>: {$exists: true}}` in any of its spellings (`$exists: 1`,
    /// several `$exists` conditions, wrapped in `$and`); for a compound key,
    /// such conditions on any of the key's fields (every document holding
    /// all of them passes). Such a unique index is sparse-equivalent; any
    /// other filter covers only part of the keyed documents.
    fn partial_is_exists(&self, key: &[String]) -> bool {
        self.partial_filter.as_ref().is_some_and(|f| filter_is_exists_on(f, key))
    }

    fn simple_collation(&self) -> bool {
        match &self.collation {
            None => true,
            Some(c) => c.get_str("locale").map(|l| l == "simple").unwrap_or(false),
        }
    }
}

/// Whether `filter` is a conjunction of `{<field>: {$exists: <true>}}`
/// on fields of the key and nothing else.
fn filter_is_exists_on(filter: &Document, key: &[String]) -> bool {
    let truthy = |b: &Bson| match b {
        Bson::Boolean(v) => *v,
        Bson::Int32(n) => *n != 0,
        Bson::Int64(n) => *n != 0,
        Bson::Double(n) => *n != 0.0,
        _ => false,
    };
    !filter.is_empty()
        && filter.iter().all(|(field, cond)| match (field.as_str(), cond) {
            ("$and", Bson::Array(parts)) => {
                !parts.is_empty()
                    && parts.iter().all(|p| matches!(p, Bson::Document(d) if filter_is_exists_on(d, key)))
            }
            (f, Bson::Document(ops)) if key.iter().any(|k| k == f) => {
                !ops.is_empty() && ops.iter().all(|(op, v)| op == "$exists" && truthy(v))
            }
            _ => false,
        })
}

/// Why no index is on exactly the key's fields, pointing at the closest
/// index there is: for a single field, a compound index mentioning it; for a
/// compound key, one on the same fields in another order, then one on more
/// fields, then one on only some of them.
fn no_index_problem(indexes: &[IndexSpec], key: &KeySpec) -> String {
    let pattern = key.pattern();
    let fields = key.fields();
    if let Some(field) = key.single() {
        return match indexes.iter().find(|i| i.mentions(field) && i.key.len() > 1) {
            Some(compound) => format!(
                "no index on {pattern} alone; index {} ({}) is compound and does not make {field} unique by itself",
                compound.name, compound.key
            ),
            None => format!("no index on {pattern}"),
        };
    }
    let all = |i: &IndexSpec| fields.iter().all(|f| i.mentions(f));
    let in_order = |i: &IndexSpec| i.key.keys().zip(fields).all(|(a, b)| a == b);
    let same_fields = indexes.iter().find(|i| i.key.len() == fields.len() && all(i) && !in_order(i));
    let other_kind = indexes.iter().find(|i| i.key.len() == fields.len() && in_order(i));
    let more = indexes.iter().find(|i| i.key.len() > fields.len() && all(i));
    let some = indexes
        .iter()
        .find(|i| !i.key.is_empty() && i.key.keys().all(|f| fields.contains(f)) && i.key.len() < fields.len());
    if let Some(i) = same_fields {
        format!(
            "no index on {pattern}; {} index {} ({}) is on the same fields in another order, and a compound key must be the index's key pattern in order: list the key's fields in the index's order, or build the index in the key's",
            if i.unique { "a unique" } else { "a non-unique" },
            i.name,
            i.key
        )
    } else if let Some(i) = other_kind {
        format!(
            "no index on {pattern}; index {} ({}) is on the key's fields but not in ascending or descending order (a hashed or special index is never unique)",
            i.name, i.key
        )
    } else if let Some(i) = more {
        format!(
            "no index on {pattern}; index {} ({}) has more fields than the key and does not make ({key}) unique by itself",
            i.name, i.key
        )
    } else if let Some(i) = some {
        format!(
            "no index on {pattern}; index {} ({}) is on only some of the key's fields, so it is not the key's index",
            i.name, i.key
        )
    } else {
        format!("no index on {pattern}")
    }
}

/// The verdict over every index of the namespace.
pub fn evaluate(indexes: &[IndexSpec], key: &KeySpec, expect_sparse: bool, namespace: Namespace) -> IndexOutcome {
    if let Some(problem) = namespace.problem() {
        return IndexOutcome {
            namespace,
            problem: Some(problem.to_string()),
            ..IndexOutcome::default()
        };
    }
    let fields = key.fields();
    let candidates: Vec<&IndexSpec> = indexes.iter().filter(|i| i.is_exactly_on(fields)).collect();
    // The best candidate is the one matching most expectations; ties keep listing order.
    let score = |i: &IndexSpec| {
        let covers_all = i.partial_filter.is_none() || i.partial_is_exists(fields);
        let sparse_like = i.sparse || i.partial_is_exists(fields);
        (i.unique && covers_all) as u8 * 16
            + (i.build == BuildState::Ready) as u8 * 8
            + i.unique as u8 * 4
            + (sparse_like == expect_sparse) as u8 * 2
            + (!i.hidden) as u8
    };
    let best = candidates.iter().copied().fold(None, |best: Option<&IndexSpec>, i| match best {
        Some(b) if score(b) >= score(i) => Some(b),
        _ => Some(i),
    });

    let Some(index) = best else {
        return IndexOutcome {
            namespace,
            problem: Some(no_index_problem(indexes, key)),
            ..IndexOutcome::default()
        };
    };

    let partial_exists = index.partial_is_exists(fields);
    let sparse_like = index.sparse || partial_exists;
    let covers_all = index.partial_filter.is_none() || partial_exists;
    let enforcing = index.unique && covers_all;
    // Only a finished build enforces; one whose state is unknown is not trusted.
    let guarantees = enforcing && index.build == BuildState::Ready;
    // A build in progress matters only for an index that would be the
    // guarantee once built; any other index's real problem is told as such.
    let problem = if enforcing && index.build == BuildState::Building {
        Some(format!(
            "index {} is still being built: it enforces nothing until the build commits, and duplicates are counted by a scan meanwhile",
            index.name
        ))
    } else if !index.unique {
        let named = key.single().map_or_else(|| format!("({key})"), str::to_string);
        Some(format!("index {} on {named} is not unique", index.name))
    } else if !covers_all {
        let exists = match key.single() {
            Some(field) => format!("{{{field}: {{$exists: true}}}}"),
            None => "$exists: true on the key's fields".to_string(),
        };
        Some(format!(
            "index {} has partialFilterExpression {}: it enforces uniqueness only inside that filter (only {exists} covers every keyed document), so duplicates are counted by a scan",
            index.name,
            index.partial_filter.as_ref().map(|f| f.to_string()).unwrap_or_default()
        ))
    } else if sparse_like != expect_sparse {
        Some(if expect_sparse {
            format!("index {} is unique but not sparse; the target expects sparse = true", index.name)
        } else {
            format!("index {} is sparse; the target expects sparse = false", index.name)
        })
    } else {
        None
    };
    let queryable = (guarantees && !index.hidden && index.simple_collation()).then(|| QueryableIndex {
        name: index.name.clone(),
        skips_absent: sparse_like,
    });
    IndexOutcome {
        namespace,
        build: enforcing.then_some(index.build),
        present: problem.is_none(),
        name: Some(index.name.clone()),
        unique: index.unique,
        sparse: sparse_like,
        hidden: index.hidden,
        problem,
        guarantees_uniqueness: guarantees,
        queryable,
        shards: None,
        lookup: None,
    }
}

/// MongoDB's NamespaceNotFound: `listIndexes` on a collection that does not exist.
const NAMESPACE_NOT_FOUND: i32 = 26;

/// Finds what the target's name is in its database. `listCollections` takes
/// no `maxTimeMS`; `nameOnly` keeps it lock-free and cheap, and the run's
/// deadline bounds it on the client.
pub(super) async fn namespace(ctx: &Context<'_>) -> Result<Namespace, QueryError> {
    let command = doc! {
        "listCollections": 1,
        "filter": { "name": &ctx.target.collection },
        "nameOnly": true,
        "authorizedCollections": true,
    };
    let mut action = ctx.db.run_cursor_command(command);
    if let Some(criteria) = ctx.client.selection_criteria().cloned() {
        action = action.selection_criteria(criteria);
    }
    let entries: Vec<Document> = action
        .await
        .map_err(|e| ctx.mongo.error(&e))?
        .try_collect()
        .await
        .map_err(|e| ctx.mongo.error(&e))?;
    Ok(Namespace::from_entry(entries.first()))
}

/// How `listIndexes` is asked to mark builds in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuildMarker {
    /// `includeIndexBuildInfo` (6.3+).
    IndexBuildInfo,
    /// `includeBuildUUIDs` (4.4 up to the versions that replaced it).
    BuildUuids,
    /// Not asked: the server is too old, or its version unknown.
    None,
}

impl BuildMarker {
    fn for_deployment(d: &Deployment) -> Self {
        if d.has_index_build_info() {
            BuildMarker::IndexBuildInfo
        } else if d.version.is_some_and(|v| v.at_least(4, 4)) {
            BuildMarker::BuildUuids
        } else {
            BuildMarker::None
        }
    }
}

/// Error codes of a server that refuses a command field it does not know
/// (`BSON field ... is an unknown field`; FailedToParse; InvalidOptions).
const UNKNOWN_FIELD_CODES: [i32; 3] = [40415, 9, 72];

/// Lists the collection's indexes and evaluates them.
pub async fn run(ctx: &mut Context<'_>) -> Result<IndexOutcome, QueryError> {
    let mut kind = namespace(ctx).await?;
    let mut specs = Vec::new();
    if kind == Namespace::Collection {
        match list_indexes(ctx).await? {
            Some(found) => specs = found,
            // Dropped between the two commands.
            None => kind = Namespace::Missing,
        }
    }
    let mut outcome = evaluate(&specs, &ctx.target.key, ctx.target.sparse, kind);
    if kind == Namespace::Collection && ctx.deployment.is_sharded_router() {
        shards::check(ctx, &mut outcome).await?;
    }
    outcome.lookup = Some(super::lookup_plan::probe(ctx, &outcome).await);
    ctx.index = Some(outcome.clone());
    Ok(outcome)
}

/// The collection's indexes with their build state; `None` when the
/// collection does not exist.
async fn list_indexes(ctx: &Context<'_>) -> Result<Option<Vec<IndexSpec>>, QueryError> {
    let marker = BuildMarker::for_deployment(&ctx.deployment);
    let (entries, marked) = match list_index_entries(ctx, marker).await {
        // A server that reports a new version but refuses the flag (a
        // compatible implementation, say): ask plainly; the state comes from
        // `$indexStats` then.
        Err(e) if marker != BuildMarker::None && is_command_error(&e, &UNKNOWN_FIELD_CODES) => {
            (list_index_entries(ctx, BuildMarker::None).await, false)
        }
        other => (other, marker != BuildMarker::None),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(e) if is_command_error(&e, &[NAMESPACE_NOT_FOUND]) => return Ok(None),
        Err(e) => return Err(ctx.mongo.error(&e)),
    };
    let mut specs: Vec<IndexSpec> = entries.iter().map(IndexSpec::from_entry).collect();
    match trust_in_markers(if marked { marker } else { BuildMarker::None }, &entries) {
        MarkerTrust::Full => {}
        // Ready entries are plain under `includeBuildUUIDs`, so a server that
        // ignored the flag (or a 4.4 binary in FCV 4.2, SERVER-47842) looks
        // all ready: `$indexStats` is asked as well, when allowed.
        MarkerTrust::CrossCheck => {
            if let Some(building) = building_from_index_stats(ctx).await {
                mark_builds(&mut specs, Some(&building), true);
            }
        }
        MarkerTrust::None => {
            let building = building_from_index_stats(ctx).await;
            mark_builds(&mut specs, building.as_deref(), false);
        }
    }
    Ok(Some(specs))
}

/// Sends `listIndexes` with the client's read preference (the driver's
/// helper pins it to the primary), asking for build markers as `marker` says.
async fn list_index_entries(ctx: &Context<'_>, marker: BuildMarker) -> Result<Vec<Document>, mongodb::error::Error> {
    let mut command = doc! {
        "listIndexes": &ctx.target.collection,
        "maxTimeMS": ctx.max_time_ms(),
    };
    match marker {
        BuildMarker::IndexBuildInfo => command.insert("includeIndexBuildInfo", true),
        BuildMarker::BuildUuids => command.insert("includeBuildUUIDs", true),
        BuildMarker::None => None,
    };
    let mut action = ctx.db.run_cursor_command(command);
    if let Some(criteria) = ctx.client.selection_criteria().cloned() {
        action = action.selection_criteria(criteria);
    }
    action.await?.try_collect().await
}

/// The names of the indexes `$indexStats` reports as `building: true`, for a
/// server whose `listIndexes` cannot mark builds; `None` when `$indexStats`
/// is refused (the `indexStats` privilege) or fails.
async fn building_from_index_stats(ctx: &Context<'_>) -> Option<Vec<String>> {
    let options = mongodb::options::AggregateOptions::builder()
        .max_time(ctx.deadline.remaining())
        .build();
    let pipeline = vec![doc! { "$indexStats": {} }, doc! { "$project": { "name": 1, "building": 1 } }];
    let cursor = ctx.coll.aggregate(pipeline).with_options(options).await.ok()?;
    let rows: Vec<Document> = cursor.try_collect().await.ok()?;
    Some(building_names(&rows))
}

/// Names of `$indexStats` rows marked `building: true`.
pub fn building_names(rows: &[Document]) -> Vec<String> {
    rows.iter()
        .filter(|r| matches!(r.get("building"), Some(Bson::Boolean(true))))
        .filter_map(|r| r.get_str("name").ok().map(str::to_string))
        .collect()
}

/// How far the build markers of a `listIndexes` reply can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerTrust {
    /// `includeIndexBuildInfo` was honoured: every entry is wrapped in `spec`.
    Full,
    /// `includeBuildUUIDs`: builds are marked, but ready entries look like
    /// the reply of a server that ignored the flag.
    CrossCheck,
    /// No markers (not asked, refused, or visibly ignored).
    None,
}

/// Whether the reply to `listIndexes` asked with `marker` carries markers
/// that can be believed.
fn trust_in_markers(marker: BuildMarker, entries: &[Document]) -> MarkerTrust {
    match marker {
        BuildMarker::IndexBuildInfo if entries.iter().all(|e| e.get_document("spec").is_ok()) => MarkerTrust::Full,
        BuildMarker::BuildUuids => MarkerTrust::CrossCheck,
        _ => MarkerTrust::None,
    }
}

/// Sets each spec's build state from `$indexStats`: building when listed as
/// such, ready otherwise; unknown for every index when it could not be read.
/// With `keep_building`, an index already marked building stays so.
pub fn mark_builds(specs: &mut [IndexSpec], building: Option<&[String]>, keep_building: bool) {
    for spec in specs {
        if keep_building && spec.build == BuildState::Building {
            continue;
        }
        spec.build = match building {
            Some(names) if names.contains(&spec.name) => BuildState::Building,
            Some(_) => BuildState::Ready,
            None => BuildState::Unknown,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(d: Document) -> IndexSpec {
        IndexSpec::from_document(&d)
    }
    fn id_index() -> IndexSpec {
        spec(doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"})
    }
    const K: &str = "participantsKey";
    fn key() -> KeySpec {
        KeySpec::from(K)
    }

    #[test]
    fn unique_sparse_index_is_present_and_queryable() {
        let o = evaluate(
            &[id_index(), spec(doc! {"key": {K: 1}, "name": "participantsKey_1", "unique": true, "sparse": true})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(o.present, "{o:?}");
        assert_eq!(o.name.as_deref(), Some("participantsKey_1"));
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable, Some(QueryableIndex { name: "participantsKey_1".into(), skips_absent: true }));
    }

    #[test]
    fn descending_and_int64_and_double_key_patterns_count() {
        for v in [Bson::Int32(-1), Bson::Int64(1), Bson::Double(1.0)] {
            let o = evaluate(&[spec(doc! {"key": {K: v.clone()}, "name": "x", "unique": true, "sparse": true})], &key(), true, Namespace::Collection);
            assert!(o.present, "{v:?}");
        }
    }

    #[test]
    fn missing_index_is_reported() {
        let o = evaluate(&[id_index()], &key(), true, Namespace::Collection);
        assert!(!o.present);
        assert!(!o.guarantees_uniqueness);
        assert_eq!(o.problem.as_deref(), Some("no index on {participantsKey: 1}"));
    }

    #[test]
    fn non_unique_index_is_wrong() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "sparse": true})], &key(), true, Namespace::Collection);
        assert!(!o.present);
        assert!(!o.unique);
        assert!(!o.guarantees_uniqueness);
        assert!(o.problem.unwrap().contains("not unique"));
    }

    #[test]
    fn non_sparse_unique_when_sparse_expected_is_wrong_but_guarantees() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true})], &key(), true, Namespace::Collection);
        assert!(!o.present);
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable.as_ref().map(|q| q.skips_absent), Some(false));
        assert!(o.problem.unwrap().contains("not sparse"));
    }

    #[test]
    fn plain_unique_when_plain_expected_is_present() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true})], &key(), false, Namespace::Collection);
        assert!(o.present, "{o:?}");
    }

    #[test]
    fn sparse_when_plain_expected_is_wrong() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true})], &key(), false, Namespace::Collection);
        assert!(!o.present);
        assert!(o.problem.unwrap().contains("expects sparse = false"));
    }

    #[test]
    fn partial_exists_counts_as_sparse() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": {K: {"$exists": true}}})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(o.present, "{o:?}");
        assert!(o.sparse);
    }

    #[test]
    fn other_partial_filter_does_not_guarantee() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": {"status": "active"}})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(!o.present);
        assert!(!o.guarantees_uniqueness);
        assert!(o.problem.unwrap().contains("partialFilterExpression"));
    }

    #[test]
    fn hidden_unique_index_is_present_but_not_queryable() {
        let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true, "hidden": true})], &key(), true, Namespace::Collection);
        assert!(o.present);
        assert!(o.hidden);
        assert!(o.guarantees_uniqueness);
        assert_eq!(o.queryable, None);
    }

    #[test]
    fn compound_index_does_not_count() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1, "createdAt": 1}, "name": "pk_created", "unique": true, "sparse": true})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(!o.present);
        assert!(o.problem.unwrap().contains("compound"));
    }

    #[test]
    fn wrong_key_order_compound_does_not_count() {
        let o = evaluate(
            &[spec(doc! {"key": {"createdAt": 1, K: 1}, "name": "c", "unique": true})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(!o.present);
    }

    #[test]
    fn best_candidate_wins_over_listing_order() {
        let o = evaluate(
            &[
                spec(doc! {"key": {K: 1}, "name": "plain"}),
                spec(doc! {"key": {K: -1}, "name": "good", "unique": true, "sparse": true}),
            ],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(o.present);
        assert_eq!(o.name.as_deref(), Some("good"));
    }

    #[test]
    fn visible_index_preferred_over_an_equal_hidden_one() {
        let o = evaluate(
            &[
                spec(doc! {"key": {K: 1}, "name": "hidden", "unique": true, "sparse": true, "hidden": true}),
                spec(doc! {"key": {K: 1}, "name": "visible", "unique": true, "partialFilterExpression": {K: {"$exists": true}}}),
            ],
            &key(),
            true,
            Namespace::Collection,
        );
        assert_eq!(o.name.as_deref(), Some("visible"));
        assert!(o.queryable.is_some());
    }

    #[test]
    fn case_insensitive_collation_is_not_queryable() {
        let o = evaluate(
            &[spec(doc! {"key": {K: 1}, "name": "ci", "unique": true, "sparse": true, "collation": {"locale": "en", "strength": 2}})],
            &key(),
            true,
            Namespace::Collection,
        );
        assert!(o.present);
        assert_eq!(o.queryable, None);
    }

    #[test]
    fn missing_collection_says_so() {
        let o = evaluate(&[], &key(), true, Namespace::Missing);
        assert_eq!(o.problem.as_deref(), Namespace::Missing.problem());
        assert!(!o.present && !o.guarantees_uniqueness);
    }

    /// Issue 10: a view (or a time-series collection) is a clear state, not
    /// an index that happens to be missing; even a view listing an `_id` index
    /// (as some servers do) guarantees nothing.
    #[test]
    fn a_view_or_timeseries_target_says_what_it_is() {
        let unique = spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true});
        for kind in [Namespace::View, Namespace::Timeseries] {
            let o = evaluate(&[id_index(), unique.clone()], &key(), true, kind);
            assert!(!o.present && !o.guarantees_uniqueness && o.queryable.is_none(), "{kind:?}");
            assert_eq!(o.problem.as_deref(), kind.problem());
        }
        assert_eq!(Namespace::from_entry(Some(&doc! {"name": "v", "type": "view"})), Namespace::View);
        assert_eq!(Namespace::from_entry(Some(&doc! {"name": "c", "type": "collection"})), Namespace::Collection);
        assert_eq!(Namespace::from_entry(Some(&doc! {"name": "c"})), Namespace::Collection);
        assert_eq!(Namespace::from_entry(None), Namespace::Missing);
    }

    /// Issue 10: an index still being built is listed like any other; each
    /// documented shape of `listIndexes` must say which one is building.
    #[test]
    fn build_markers_are_read_from_every_documented_shape() {
        let ready_wrapped = doc! {"spec": {"v": 2, "key": {K: 1}, "name": "a", "unique": true}};
        let building_info = doc! {"spec": {"v": 2, "key": {K: 1}, "name": "b", "unique": true},
            "indexBuildInfo": {"buildUUID": Bson::Binary(mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] })}};
        let building_uuid = doc! {"spec": {"v": 2, "key": {K: 1}, "name": "c", "unique": true},
            "buildUUID": Bson::Binary(mongodb::bson::Binary { subtype: mongodb::bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] })};
        let plain = doc! {"v": 2, "key": {K: 1}, "name": "d", "unique": true};
        let read = |d: &Document| IndexSpec::from_entry(d);
        assert_eq!((read(&ready_wrapped).name.as_str(), read(&ready_wrapped).build), ("a", BuildState::Ready));
        assert!(read(&ready_wrapped).unique, "the spec's options are read from inside `spec`");
        assert_eq!(read(&building_info).build, BuildState::Building);
        assert_eq!(read(&building_uuid).build, BuildState::Building);
        assert_eq!(read(&plain).build, BuildState::Ready);
    }

    #[test]
    fn a_unique_index_still_building_is_not_a_guarantee() {
        let mut building = spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true});
        building.build = BuildState::Building;
        let o = evaluate(&[id_index(), building], &key(), true, Namespace::Collection);
        assert!(!o.present, "{o:?}");
        assert_eq!(o.build, Some(BuildState::Building));
        assert!(!o.guarantees_uniqueness && o.queryable.is_none());
        assert!(o.problem.unwrap().contains("still being built"));
    }

    /// A non-unique (or narrower) index being built is not "the unique index
    /// being built": its real problem is told, and nothing is held back.
    #[test]
    fn a_building_index_that_would_not_enforce_is_not_reported_as_building() {
        for d in [
            doc! {"key": {K: 1}, "name": "pk", "sparse": true},
            doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": {"status": "active"}},
        ] {
            let mut building = spec(d);
            building.build = BuildState::Building;
            let o = evaluate(&[building], &key(), true, Namespace::Collection);
            assert!(!o.present && o.build.is_none(), "{o:?}");
            assert!(!o.problem.unwrap().contains("being built"));
        }
    }

    #[test]
    fn a_ready_index_wins_over_a_building_twin() {
        let mut building = spec(doc! {"key": {K: 1}, "name": "new", "unique": true, "sparse": true});
        building.build = BuildState::Building;
        let ready = spec(doc! {"key": {K: -1}, "name": "old", "unique": true, "sparse": true});
        let o = evaluate(&[building, ready], &key(), true, Namespace::Collection);
        assert!(o.present && o.guarantees_uniqueness);
        assert_eq!(o.name.as_deref(), Some("old"));
    }

    /// When neither `listIndexes` nor `$indexStats` can tell, the index is
    /// there (no page for a missing index) but not trusted (duplicates are scanned).
    #[test]
    fn an_unknown_build_state_is_present_but_not_trusted() {
        let mut specs = vec![spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true})];
        mark_builds(&mut specs, None, false);
        let o = evaluate(&specs, &key(), true, Namespace::Collection);
        assert!(o.present);
        assert_eq!(o.build, Some(BuildState::Unknown));
        assert!(!o.guarantees_uniqueness && o.queryable.is_none());
    }

    /// Issue 10 review: a server that accepts `includeIndexBuildInfo` but
    /// answers plain specs ignored it, so its silence is not "all ready";
    /// `includeBuildUUIDs` replies are always cross-checked.
    #[test]
    fn ignored_build_markers_are_not_believed() {
        let wrapped = [doc! {"spec": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}, doc! {"spec": {"v": 2, "key": {K: 1}, "name": "pk"}}];
        let plain = [doc! {"v": 2, "key": {"_id": 1}, "name": "_id_"}, doc! {"v": 2, "key": {K: 1}, "name": "pk"}];
        let mixed = [wrapped[0].clone(), plain[1].clone()];
        assert_eq!(trust_in_markers(BuildMarker::IndexBuildInfo, &wrapped), MarkerTrust::Full);
        assert_eq!(trust_in_markers(BuildMarker::IndexBuildInfo, &plain), MarkerTrust::None);
        assert_eq!(trust_in_markers(BuildMarker::IndexBuildInfo, &mixed), MarkerTrust::None);
        assert_eq!(trust_in_markers(BuildMarker::BuildUuids, &plain), MarkerTrust::CrossCheck);
        assert_eq!(trust_in_markers(BuildMarker::None, &wrapped), MarkerTrust::None);
        // A cross-check keeps a build the markers saw and adds the ones `$indexStats` saw.
        let mut specs = vec![spec(doc! {"key": {K: 1}, "name": "pk"}), spec(doc! {"key": {"x": 1}, "name": "x_1"})];
        specs[0].build = BuildState::Building;
        mark_builds(&mut specs, Some(&["x_1".to_string()]), true);
        assert_eq!((specs[0].build, specs[1].build), (BuildState::Building, BuildState::Building));
    }

    /// `$indexStats` rows as the manual shows them: `building: true` only on
    /// builds in progress, absent otherwise.
    #[test]
    fn index_stats_mark_the_building_index_only() {
        let rows = [
            doc! {"name": "_id_", "key": {"_id": 1}, "host": "db1:27017", "accesses": {"ops": 3i64, "since": mongodb::bson::DateTime::now()}},
            doc! {"name": "pk", "key": {K: 1}, "host": "db1:27017", "accesses": {"ops": 0i64}, "building": true,
                  "spec": {"v": 2, "key": {K: 1}, "name": "pk", "unique": true}},
        ];
        let names = building_names(&rows);
        assert_eq!(names, vec!["pk".to_string()]);
        let mut specs = vec![id_index(), spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "sparse": true})];
        mark_builds(&mut specs, Some(&names), false);
        assert_eq!(specs[0].build, BuildState::Ready);
        assert_eq!(specs[1].build, BuildState::Building);
    }

    /// Issue 10: `$exists: 1` and `$and`-wrapped spellings of "has the key"
    /// are sparse-equivalent; anything narrower is not.
    #[test]
    fn partial_filters_equivalent_to_exists_are_sparse() {
        let equivalent = [
            doc! {K: {"$exists": 1}},
            doc! {K: {"$exists": 1i64}},
            doc! {K: {"$exists": 1.0}},
            doc! {"$and": [{K: {"$exists": true}}]},
            doc! {"$and": [{K: {"$exists": true}}, {"$and": [{K: {"$exists": 1}}]}]},
        ];
        for filter in equivalent {
            let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": filter.clone()})], &key(), true, Namespace::Collection);
            assert!(o.present && o.sparse && o.guarantees_uniqueness, "{filter}: {o:?}");
        }
        let narrower = [
            doc! {K: {"$exists": false}},
            doc! {K: {"$exists": true, "$type": "string"}},
            doc! {"$and": [{K: {"$exists": true}}, {"status": "active"}]},
            doc! {"$and": []},
            doc! {"other": {"$exists": true}},
            doc! {},
        ];
        for filter in narrower {
            let o = evaluate(&[spec(doc! {"key": {K: 1}, "name": "pk", "unique": true, "partialFilterExpression": filter.clone()})], &key(), true, Namespace::Collection);
            assert!(!o.present && !o.guarantees_uniqueness, "{filter}: {o:?}");
            assert!(o.problem.unwrap().contains("only inside that filter"), "{filter}");
        }
    }
}

#[cfg(test)]
#[path = "index_compound_tests.rs"]
mod compound_tests;
