//! What this binary is: the crate version, the git commit it was built
//! from and the rustc that built it, recorded by `build.rs`. The same three
//! appear as the labels of `uniqwatch_build_info` and in `uniqwatch
//! --version`, so a metric and a terminal never disagree.
//!
//! Go exporters also carry `goversion`, `branch`, `tags`, `goos`/`goarch`:
//! `rustversion` stands for `goversion`; the rest have no Rust counterpart
//! worth a label (a commit names the build better than a branch; there are
//! no build tags), so they are left out rather than filled with guesses.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built (`git rev-parse HEAD`), `UNIQWATCH_REVISION` when
/// set at build time, or `unknown` when built without git (a tarball).
pub const REVISION: &str = env!("UNIQWATCH_REVISION");

/// The version of the rustc that built the binary, e.g. `1.85.0`.
pub const RUST_VERSION: &str = env!("UNIQWATCH_RUST_VERSION");

/// What `uniqwatch --version` prints after the program name, in the shape
/// of the Prometheus exporters' `--version`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision: ",
    env!("UNIQWATCH_REVISION"),
    ")\n  rust version: ",
    env!("UNIQWATCH_RUST_VERSION"),
);
