//! Records what `uniqwatch_build_info` and `uniqwatch --version` report
//! beyond the crate version: the git commit built (`revision`) and the
//! rustc that built it (`rustversion`).
//!
//! The revision is `UNIQWATCH_REVISION` when set (for builds from a tarball
//! or a Docker context without `.git`), else `git rev-parse HEAD`, else
//! `unknown`: a build never fails for want of git.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=UNIQWATCH_REVISION");
    let revision = std::env::var("UNIQWATCH_REVISION")
        .ok()
        .map(|r| r.trim().to_string())
        // Only what a revision holds: a newline would inject cargo directives.
        .filter(|r| !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c)))
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=UNIQWATCH_REVISION={revision}");

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rust_version = output(Command::new(rustc).arg("--version"))
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=UNIQWATCH_RUST_VERSION={rust_version}");
}

/// The commit checked out, and the files whose change means a new one
/// (HEAD, the branch it points to, packed refs), so a commit rebuilds.
/// None unless the crate is the top of its git work tree: a tarball
/// unpacked inside another repository must not take that one's commit.
fn git_revision() -> Option<String> {
    let top = output(Command::new("git").args(["rev-parse", "--show-toplevel"]))?;
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(manifest_dir).ok()? {
        return None;
    }
    let revision = output(Command::new("git").args(["rev-parse", "HEAD"]))?;
    let branch = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"]));
    for path in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(path) = git_path(path).filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(revision)
}

/// Where git keeps `path` (worktrees keep HEAD apart from the shared refs).
fn git_path(path: &str) -> Option<PathBuf> {
    output(Command::new("git").args(["rev-parse", "--path-format=absolute", "--git-path", path])).map(PathBuf::from)
}

/// Trimmed stdout of a command that ran and succeeded, if it is not empty.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
