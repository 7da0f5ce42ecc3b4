//! What kind of MongoDB deployment the client talks to, learned once per
//! client from one `hello` and one `buildInfo`: the server's version and
//! whether it is a standalone server, a replica-set member or a mongos.
//!
//! The checks decide from these facts which commands and stages they may
//! use (`$firstN` needs 5.2, `includeIndexBuildInfo` 6.3, snapshot reads
//! 5.0 and a replica set or mongos) and which figures need a sharded
//! treatment. The facts are parsed by a pure function, [`Deployment::from_replies`],
//! so every shape MongoDB documents is tested without a server.

use mongodb::bson::{doc, Bson, Document};
use mongodb::Client;
use serde::Serialize;

use crate::mongo::{admin_command, is_command_error, Deadline, Mongo, QueryError};

/// How the client's server is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topology {
    /// A single mongod, not part of a replica set.
    Standalone,
    /// A member of a replica set (`hello` carries `setName`).
    ReplicaSet,
    /// A mongos router of a sharded cluster (`hello.msg == "isdbgrid"`).
    Mongos,
}

/// A server version, compared as `(major, minor)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor, patch: 0 }
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The facts the checks decide from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub topology: Topology,
    /// `None` when `buildInfo` gave no version it could read (then every
    /// version-gated feature is treated as absent).
    pub version: Option<Version>,
    /// The answering member's own address (`hello.me`), as the driver names
    /// it: the server the checks pin a multi-read figure to.
    pub me: Option<String>,
}

impl Deployment {
    /// Reads the facts from a `hello` reply and a `buildInfo` reply.
    pub fn from_replies(hello: &Document, build_info: &Document) -> Self {
        let topology = if hello.get_str("msg").is_ok_and(|m| m == "isdbgrid") {
            Topology::Mongos
        } else if hello.get_str("setName").is_ok() {
            Topology::ReplicaSet
        } else {
            Topology::Standalone
        };
        Deployment {
            topology,
            version: version_of(build_info),
            me: hello.get_str("me").ok().map(str::to_string),
        }
    }

    fn version_at_least(&self, major: u32, minor: u32) -> bool {
        self.version.is_some_and(|v| v.at_least(major, minor))
    }

    /// `$firstN` and its kin (5.2+).
    pub fn has_first_n(&self) -> bool {
        self.version_at_least(5, 2)
    }

    /// `listIndexes` marks in-progress builds when asked (6.3+).
    pub fn has_index_build_info(&self) -> bool {
        self.version_at_least(6, 3)
    }

    /// Reads at one point in time across operations (a snapshot session):
    /// 5.0+ on a replica set or through mongos, never on a standalone.
    pub fn has_snapshot_reads(&self) -> bool {
        self.topology != Topology::Standalone && self.version_at_least(5, 0)
    }

    pub fn is_sharded_router(&self) -> bool {
        self.topology == Topology::Mongos
    }

    /// One line for logs and the landing page.
    pub fn describe(&self) -> String {
        let kind = match self.topology {
            Topology::Standalone => "standalone",
            Topology::ReplicaSet => "replica set",
            Topology::Mongos => "mongos",
        };
        match self.version {
            Some(v) => format!("{kind}, MongoDB {v}"),
            None => format!("{kind}, version unknown"),
        }
    }

    /// Asks the server, within `deadline`, with the client's read preference.
    /// A server too old for `hello` (before 4.4.2) is asked `isMaster`.
    pub async fn discover(client: &Client, mongo: &Mongo, deadline: &Deadline) -> Result<Self, QueryError> {
        let hello = match deadline.run(ask(client, doc! { "hello": 1 })).await? {
            Err(e) if is_command_not_found(&e) => deadline.run(ask(client, doc! { "isMaster": 1 })).await?,
            other => other,
        }
        .map_err(|e| mongo.error(&e))?;
        let build_info = deadline.run(ask(client, doc! { "buildInfo": 1 })).await?.map_err(|e| mongo.error(&e))?;
        Ok(Self::from_replies(&hello, &build_info))
    }
}

/// [`admin_command`] in the shape [`Deadline::run`] bounds: the outer
/// `Result` is the deadline's, the inner one keeps the driver's error so its
/// code can be looked at.
async fn ask(client: &Client, command: Document) -> Result<Result<Document, mongodb::error::Error>, QueryError> {
    Ok(admin_command(client, command).await)
}

/// MongoDB's CommandNotFound.
const COMMAND_NOT_FOUND: i32 = 59;

fn is_command_not_found(e: &mongodb::error::Error) -> bool {
    is_command_error(e, &[COMMAND_NOT_FOUND])
}

/// `versionArray` when present (its numbers are typed), else the `version` string.
fn version_of(build_info: &Document) -> Option<Version> {
    let number = |b: &Bson| match b {
        Bson::Int32(n) => u32::try_from(*n).ok(),
        Bson::Int64(n) => u32::try_from(*n).ok(),
        Bson::Double(n) if *n >= 0.0 && n.fract() == 0.0 && *n < u32::MAX as f64 => Some(*n as u32),
        _ => None,
    };
    if let Ok(parts) = build_info.get_array("versionArray") {
        let mut it = parts.iter().map(number);
        if let (Some(Some(major)), Some(Some(minor))) = (it.next(), it.next()) {
            let patch = it.next().flatten().unwrap_or(0);
            return Some(Version { major, minor, patch });
        }
    }
    let text = build_info.get_str("version").ok()?;
    let mut parts = text.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some(Version { major, minor, patch })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_from_documented_hello_replies() {
        let info = doc! { "version": "7.0.4", "versionArray": [7, 0, 4, 0] };
        let mongos = doc! { "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21 };
        let member = doc! { "isWritablePrimary": false, "secondary": true, "setName": "rs0", "me": "db2:27017" };
        let standalone = doc! { "isWritablePrimary": true, "maxWireVersion": 21 };
        assert_eq!(Deployment::from_replies(&mongos, &info).topology, Topology::Mongos);
        let rs = Deployment::from_replies(&member, &info);
        assert_eq!(rs.topology, Topology::ReplicaSet);
        assert_eq!(rs.me.as_deref(), Some("db2:27017"));
        let single = Deployment::from_replies(&standalone, &info);
        assert_eq!(single.topology, Topology::Standalone);
        assert!(!single.has_snapshot_reads(), "a standalone has no snapshot reads");
        assert!(rs.has_snapshot_reads());
    }

    #[test]
    fn features_follow_the_version() {
        let hello = doc! { "setName": "rs0" };
        let at = |v: &str| Deployment::from_replies(&hello, &doc! { "version": v });
        assert!(!at("5.0.9").has_first_n());
        assert!(at("5.2.0").has_first_n());
        assert!(!at("6.2.1").has_index_build_info());
        assert!(at("6.3.0").has_index_build_info());
        assert!(!at("4.4.18").has_snapshot_reads());
        assert!(at("5.0.0").has_snapshot_reads());
        // Pre-release and vendor suffixes still read.
        assert_eq!(at("7.0.0-rc1").version, Some(Version { major: 7, minor: 0, patch: 0 }));
    }

    #[test]
    fn an_unreadable_version_disables_every_gated_feature() {
        let d = Deployment::from_replies(&doc! { "setName": "rs0" }, &doc! { "version": "banana" });
        assert_eq!(d.version, None);
        assert!(!d.has_first_n() && !d.has_index_build_info() && !d.has_snapshot_reads());
        assert_eq!(d.describe(), "replica set, version unknown");
    }

    #[test]
    fn version_array_wins_over_the_string() {
        let d = Deployment::from_replies(&doc! {}, &doc! { "version": "4.0.0", "versionArray": [6i64, 3i64, 1i64, 0i64] });
        assert_eq!(d.version, Some(Version { major: 6, minor: 3, patch: 1 }));
    }
}
