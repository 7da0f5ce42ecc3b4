//! What an installer gets, checked on this machine: the version the binary
//! reports, the systemd unit (`systemd-analyze verify`), the Debian package
//! (built with `cargo deb`, installed with `dpkg -i`, checked, purged), and
//! the Kubernetes PrometheusRule generated from the shipped alert rules.
//!
//! The unit and the package need tools (`systemd-analyze`, `cargo deb`,
//! root for `dpkg`) that scripts/setup.sh installs; without them a test
//! prints `SKIP:` and passes, and under CI it fails instead.

mod common;

use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_uniqwatch");

/// Trimmed stdout of a command that ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit_and_the_rustc() {
    let version = output(Command::new(BIN).arg("--version")).expect("uniqwatch --version succeeds");
    let first = version.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("uniqwatch {} (revision: ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let rust = version
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust version: "))
        .unwrap_or_else(|| panic!("no rust version line in:\n{version}"));
    assert!(
        rust.split('.').count() == 3 && rust.split('.').all(|p| p.parse::<u32>().is_ok()),
        "rust version {rust:?} is not x.y.z"
    );
    // From a git checkout the revision is the commit built; the test binary
    // and the daemon are rebuilt with every commit, so it is HEAD.
    match output(Command::new("git").arg("-C").arg(repo_root()).args(["rev-parse", "HEAD"])) {
        Some(head) => assert!(first.contains(&format!("(revision: {head})")), "{version} is not HEAD {head}"),
        // Built from a tarball: `unknown`, or what UNIQWATCH_REVISION said.
        None => assert!(first.contains(&format!("(revision: {})", uniqwatch::build_info::REVISION)), "{version}"),
    }
}
