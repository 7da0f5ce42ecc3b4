//! What an installer gets, checked on this machine: the version the binary
//! reports, the systemd unit (`systemd-analyze verify`), the Debian package
//! (built with `cargo deb`, installed with `dpkg -i`, checked, purged), and
//! the Kubernetes PrometheusRule generated from the shipped alert rules.
//!
//! The unit and the package need tools (`systemd-analyze`, `cargo deb`,
//! root for `dpkg`) that scripts/setup.sh installs; without them a test
//! prints `SKIP:` and passes, and under CI it fails instead.

mod common;

use std::path::{Path, PathBuf};
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

/// The path of `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `(success, stdout, stderr)` of a command, panicking only when it cannot start.
fn run(command: &mut Command) -> (bool, String, String) {
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What ExecStart names in the shipped unit: where the package puts the binary.
const INSTALLED_BIN: &str = "/usr/bin/uniqwatch";

/// `systemd-analyze verify` on `unit`, failing on its exit status and on
/// any warning about the unit (an unknown key is only a warning), then
/// `systemd-analyze security`, failing above an exposure of 2.0 ("OK").
fn verify_unit(unit: &Path) {
    let name = unit.file_name().and_then(|n| n.to_str()).expect("a unit file name");
    let (ok, stdout, stderr) = run(Command::new("systemd-analyze").arg("verify").arg(unit));
    let about_unit: Vec<&str> = stdout.lines().chain(stderr.lines()).filter(|l| l.contains(name)).collect();
    assert!(ok && about_unit.is_empty(), "systemd-analyze verify {}:\n{stdout}{stderr}", unit.display());
    // --threshold counts tenths: 20 is an overall exposure of 2.0.
    let (ok, stdout, stderr) =
        run(Command::new("systemd-analyze").args(["security", "--offline=yes", "--threshold=20"]).arg(unit));
    assert!(ok, "systemd-analyze security {} is above 2.0:\n{stdout}{stderr}", unit.display());
}

#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    const TEST: &str = "the_systemd_unit_passes_systemd_analyze";
    if which("systemd-analyze").is_none() {
        return skip(TEST, "systemd-analyze is not installed (scripts/setup.sh installs Debian's systemd)");
    }
    let shipped = std::fs::read_to_string(repo_root().join("packaging/uniqwatch.service")).expect("the unit is readable");
    let exec_start = format!("ExecStart={INSTALLED_BIN} run --config /etc/uniqwatch/uniqwatch.toml\n");
    assert!(shipped.contains(&exec_start), "the unit should start {exec_start}");
    for hardening in [
        "DynamicUser=yes",
        "StateDirectory=uniqwatch",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(shipped.contains(hardening), "the unit lacks {hardening:?}");
    }
    // verify wants ExecStart's binary to exist: point a copy at the one built.
    let dir = tempfile::tempdir().expect("a scratch directory can be made");
    let unit = dir.path().join("uniqwatch.service");
    std::fs::write(&unit, shipped.replace(&exec_start, &exec_start.replace(INSTALLED_BIN, BIN))).unwrap();
    verify_unit(&unit);

    // The check can fail: a misspelt key is caught.
    let bad = dir.path().join("uniqwatch-bad.service");
    std::fs::write(&bad, std::fs::read_to_string(&unit).unwrap().replace("ProtectSystem=", "ProtectSystm=")).unwrap();
    let (_, stdout, stderr) = run(Command::new("systemd-analyze").arg("verify").arg(&bad));
    assert!(format!("{stdout}{stderr}").contains("ProtectSystm"), "a bad key went unnoticed:\n{stdout}{stderr}");
}

/// Marks an install made by [`the_debian_package_installs_checks_and_purges`],
/// so a run killed before its purge is cleaned up by the next one, and a
/// uniqwatch installed by a person is never touched.
const TEST_INSTALL_MARKER: &str = "/var/lib/uniqwatch-packaging-test.installed";

/// Whether dpkg knows the package in any state but "not installed".
fn package_present() -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", "uniqwatch"]))
        .is_some_and(|status| !status.ends_with("not-installed"))
}

/// Purges the package, and then forgets the marker.
fn purge() {
    let (ok, stdout, stderr) = run(Command::new("dpkg").args(["--purge", "uniqwatch"]));
    assert!(ok, "dpkg --purge uniqwatch failed:\n{stdout}{stderr}");
    let _ = std::fs::remove_file(TEST_INSTALL_MARKER);
}

/// Purges the package when the test ends, passed or failed.
struct Installed;
impl Drop for Installed {
    fn drop(&mut self) {
        let purged = Command::new("dpkg").args(["--purge", "uniqwatch"]).output().is_ok_and(|o| o.status.success());
        if purged {
            let _ = std::fs::remove_file(TEST_INSTALL_MARKER);
        } else {
            eprintln!("could not purge uniqwatch: run `dpkg --purge uniqwatch`");
        }
    }
}

#[test]
fn the_debian_package_installs_checks_and_purges() {
    const TEST: &str = "the_debian_package_installs_checks_and_purges";
    if !is_root() {
        return skip(TEST, "dpkg -i needs root");
    }
    if which("dpkg").is_none() {
        return skip(TEST, "dpkg is not installed: not a Debian machine");
    }
    if !Command::new("cargo").args(["deb", "--version"]).output().is_ok_and(|o| o.status.success()) {
        return skip(TEST, "cargo deb is not installed (scripts/setup.sh installs it)");
    }
    // One install at a time on this machine, whatever checkout runs it.
    let lock = std::fs::File::create("/run/lock/uniqwatch-packaging-test.lock")
        .or_else(|_| std::fs::File::create(std::env::temp_dir().join("uniqwatch-packaging-test.lock")))
        .expect("a lock file can be made");
    fs4::FileExt::lock(&lock).expect("the packaging lock can be taken");
    if package_present() {
        if !Path::new(TEST_INSTALL_MARKER).exists() {
            return skip(TEST, "uniqwatch is installed on this machine, not by this test: left alone");
        }
        purge(); // left by a run that was killed
    }
    if Path::new("/etc/uniqwatch").exists() {
        return skip(TEST, "/etc/uniqwatch exists and no package owns it: left alone");
    }

    // The package from the binary this test run built, in its profile, so
    // no second build; scripts/build-deb.sh makes the release package.
    let profile = match Path::new(BIN).parent().and_then(Path::file_name).and_then(|d| d.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("{BIN} is not in a profile's directory"),
    };
    let out = tempfile::tempdir().expect("a scratch directory can be made");
    let (ok, stdout, stderr) = run(Command::new("cargo")
        .current_dir(repo_root())
        .args(["deb", "--no-build", "--profile", profile, "--fast", "--locked", "--quiet", "--output"])
        .arg(out.path()));
    assert!(ok, "cargo deb failed:\n{stdout}{stderr}");
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("cargo deb wrote no .deb:\n{stdout}{stderr}"));

    std::fs::write(TEST_INSTALL_MARKER, "installed by tests/packaging.rs; purged when it ends\n").unwrap();
    let installed = Installed;
    let (ok, stdout, stderr) = run(Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(ok, "dpkg -i {} failed:\n{stdout}{stderr}", deb.display());

    // Every file where the README says, the shipped ones unchanged.
    let repo = repo_root();
    let unit = ["/usr/lib/systemd/system/uniqwatch.service", "/lib/systemd/system/uniqwatch.service"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("the unit is installed under /usr/lib/systemd/system");
    for (installed_path, source) in [
        (unit, "packaging/uniqwatch.service"),
        (Path::new("/etc/uniqwatch/uniqwatch.toml"), "packaging/uniqwatch.toml"),
        (Path::new("/usr/share/uniqwatch/alerts/uniqwatch.rules.yml"), "alerts/uniqwatch.rules.yml"),
        (Path::new("/usr/share/uniqwatch/alerts/alertmanager.example.yml"), "alerts/alertmanager.example.yml"),
        (Path::new("/usr/share/uniqwatch/dashboards/uniqwatch-overview.json"), "dashboards/uniqwatch-overview.json"),
        (Path::new("/usr/share/uniqwatch/dashboards/uniqwatch-target.json"), "dashboards/uniqwatch-target.json"),
        (Path::new("/usr/share/uniqwatch/docs/runbook.md"), "docs/runbook.md"),
        (Path::new("/usr/share/uniqwatch/docs/configuration.md"), "docs/configuration.md"),
        (Path::new("/usr/share/uniqwatch/examples/uniqwatch.toml"), "examples/uniqwatch.toml"),
    ] {
        let found = std::fs::read(installed_path).unwrap_or_else(|e| panic!("{}: {e}", installed_path.display()));
        assert!(found == std::fs::read(repo.join(source)).unwrap(), "{} is not {source}", installed_path.display());
    }
    let conffiles = output(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "uniqwatch"])).unwrap_or_default();
    assert!(conffiles.contains("/etc/uniqwatch/uniqwatch.toml"), "not a conffile: {conffiles:?}");

    // The installed binary validates the installed config...
    let (ok, stdout, stderr) = run(Command::new(INSTALLED_BIN)
        .args(["config", "check", "--config", "/etc/uniqwatch/uniqwatch.toml"])
        .env_remove("UNIQWATCH_MONGODB_URI")
        .env_remove("UNIQWATCH_CONFIG"));
    assert!(ok, "config check of the installed config failed:\n{stdout}{stderr}");
    assert!(stdout.contains("dir = \"/var/lib/uniqwatch\""), "state is not in /var/lib/uniqwatch:\n{stdout}");
    let version = output(Command::new(INSTALLED_BIN).arg("--version")).expect("the installed uniqwatch runs");
    assert!(version.contains(uniqwatch::build_info::REVISION), "{version}");
    // ...and the installed unit, whose ExecStart now exists, verifies as is.
    if which("systemd-analyze").is_some() {
        verify_unit(unit);
    }

    drop(installed);
    assert!(!package_present(), "uniqwatch is still known to dpkg after the purge");
    for gone in [INSTALLED_BIN, "/etc/uniqwatch/uniqwatch.toml", "/usr/share/uniqwatch"] {
        assert!(!Path::new(gone).exists(), "{gone} is left after dpkg --purge");
    }
}

/// Every YAML document of `path`, parsed.
fn yaml_documents(path: &Path) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde_yaml::Value::deserialize(doc).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display())))
        .collect()
}

#[test]
fn the_prometheus_rule_is_generated_from_the_shipped_rules() {
    let root = repo_root();
    let (ok, generated, stderr) = run(Command::new("python3")
        .arg(root.join("scripts/gen-prometheusrule.py"))
        .arg("--stdout"));
    assert!(ok, "scripts/gen-prometheusrule.py failed:\n{stderr}");
    let path = root.join("packaging/kubernetes/prometheusrule.yaml");
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert!(
        on_disk == generated,
        "packaging/kubernetes/prometheusrule.yaml is stale or edited by hand: run scripts/gen-prometheusrule.py"
    );
    let [rule] = &yaml_documents(&path)[..] else { panic!("one document expected in {}", path.display()) };
    assert_eq!(rule["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    let [rules] = &yaml_documents(&root.join("alerts/uniqwatch.rules.yml"))[..] else { panic!("one rules document") };
    assert!(rules["groups"].as_sequence().is_some_and(|g| !g.is_empty()), "the rules file has no groups");
    assert!(rule["spec"]["groups"] == rules["groups"], "the PrometheusRule's groups are not the rules file's");
}

#[test]
fn the_kubernetes_example_is_consistent() {
    let dir = repo_root().join("packaging/kubernetes");
    let mut objects = std::collections::BTreeMap::new();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    for file in &files {
        for doc in yaml_documents(&dir.join(file)) {
            let kind = doc["kind"].as_str().unwrap_or_else(|| panic!("{file}: a document without kind")).to_string();
            let name = doc["metadata"]["name"].as_str().unwrap_or_else(|| panic!("{file}: {kind} without a name"));
            assert!(name.starts_with("uniqwatch"), "{file}: {kind} {name} is not named for uniqwatch");
            assert!(objects.insert(kind.clone(), doc).is_none(), "two {kind} objects");
        }
    }
    // kustomization.yaml applies every file, and only those.
    let [kustomization] = &yaml_documents(&dir.join("kustomization.yaml"))[..] else { panic!("one kustomization") };
    let mut resources: Vec<String> = kustomization["resources"]
        .as_sequence()
        .expect("kustomization resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    resources.sort();
    assert_eq!(resources, files, "kustomization.yaml resources");
    for kind in ["ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "ServiceMonitor", "PrometheusRule"] {
        assert!(objects.contains_key(kind), "no {kind} in packaging/kubernetes");
    }

    // The ConfigMap's config is valid and listens where the ports say.
    let config_text = objects["ConfigMap"]["data"]["uniqwatch.toml"].as_str().expect("ConfigMap data uniqwatch.toml");
    let scratch = tempfile::tempdir().unwrap();
    let config = scratch.path().join("uniqwatch.toml");
    std::fs::write(&config, config_text).unwrap();
    let (ok, stdout, stderr) = run(Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&config)
        .env_remove("UNIQWATCH_MONGODB_URI")
        .env_remove("UNIQWATCH_CONFIG"));
    assert!(ok, "the ConfigMap's uniqwatch.toml fails config check:\n{stdout}{stderr}");
    assert!(stdout.contains("listen = \"0.0.0.0:9716\""), "{stdout}");

    let pod = &objects["Deployment"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"].as_u64(), Some(9716));
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    // The state dir lock allows one daemon: no overlap on rollout.
    assert_eq!(objects["Deployment"]["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(objects["Deployment"]["spec"]["strategy"]["type"].as_str(), Some("Recreate"));
    let port_name = container["ports"][0]["name"].as_str().expect("a named port");
    assert_eq!(objects["Service"]["spec"]["ports"][0]["targetPort"].as_str(), Some(port_name));
    assert_eq!(objects["ServiceMonitor"]["spec"]["endpoints"][0]["port"].as_str(), Some(port_name));
    // The alerts' job="uniqwatch" is the Service's name under the operator.
    assert_eq!(objects["Service"]["metadata"]["name"].as_str(), Some("uniqwatch"));
    let labels = &objects["Deployment"]["spec"]["template"]["metadata"]["labels"];
    assert!(objects["Service"]["spec"]["selector"] == *labels, "the Service does not select the pods");
    assert!(objects["ServiceMonitor"]["spec"]["selector"]["matchLabels"] == objects["Service"]["metadata"]["labels"]);
}

/// No Docker engine here: the Dockerfile is checked for what a reading can
/// tell (its COPY sources exist and reach the build context, it runs as a
/// non-root user, HEALTHCHECK asks /healthz on the port it exposes), not built.
#[test]
fn the_dockerfile_copies_what_exists_and_runs_unprivileged() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let ignored: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.trim().to_string())
        .collect();
    // Continuation lines joined, so each instruction is one line.
    let instructions: Vec<String> = dockerfile
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let froms = instructions.iter().filter(|i| i.starts_with("FROM ")).count();
    assert!(froms >= 2, "a multi-stage build: builder and runtime");
    for copy in instructions.iter().filter(|i| i.starts_with("COPY ") && !i.contains("--from=")) {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            let source = source.trim_end_matches('/');
            if source == "." {
                continue;
            }
            assert!(root.join(source).exists(), "{copy}: {source} does not exist");
            assert!(!ignored.iter().any(|i| i == source), "{copy}: {source} is in .dockerignore");
        }
    }
    let runtime = &instructions[instructions.iter().rposition(|i| i.starts_with("FROM ")).unwrap()..];
    let user = runtime.iter().rev().find_map(|i| i.strip_prefix("USER ")).expect("the runtime stage sets USER");
    assert!(!["root", "0"].contains(&user.split(':').next().unwrap()), "runs as {user}");
    let expose = runtime.iter().find_map(|i| i.strip_prefix("EXPOSE ")).expect("EXPOSE");
    let health = runtime.iter().find(|i| i.starts_with("HEALTHCHECK ")).expect("HEALTHCHECK");
    assert!(health.contains(&format!(":{expose}/healthz")), "{health} does not ask /healthz on {expose}");
    // The image's config is the packaged one; it must listen on that port.
    let packaged = std::fs::read_to_string(root.join("packaging/uniqwatch.toml")).unwrap();
    assert!(packaged.contains(&format!("listen = \"0.0.0.0:{expose}\"")), "packaging/uniqwatch.toml does not listen on {expose}");
    for ignored_dir in [".git", "target"] {
        assert!(ignored.iter().any(|i| i == ignored_dir), ".dockerignore should exclude {ignored_dir}");
    }
}

#[test]
fn the_packaged_config_is_valid_and_keeps_state_in_var_lib() {
    let (ok, stdout, stderr) = run(Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(repo_root().join("packaging/uniqwatch.toml"))
        .env_remove("UNIQWATCH_MONGODB_URI")
        .env_remove("UNIQWATCH_CONFIG"));
    assert!(ok, "packaging/uniqwatch.toml fails config check:\n{stdout}{stderr}");
    assert!(stdout.contains("dir = \"/var/lib/uniqwatch\""), "{stdout}");
    assert!(!stdout.contains('@'), "the packaged config should hold no credentials:\n{stdout}");
}
