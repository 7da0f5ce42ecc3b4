//! The shipped alert rules, Alertmanager example and Grafana dashboards,
//! checked with the real tools and linted against the metric contract.
//!
//! - `promtool check rules` and `promtool test rules` run on `alerts/`
//!   (Debian package `prometheus`); a missing promtool fails the test with
//!   the install command, it never skips.
//! - `amtool check-config` and a routing test run on the example
//!   Alertmanager config (Debian package `prometheus-alertmanager`); without
//!   amtool they are skipped with a message, except under CI.
//! - The rule lint holds the alert names, severities and annotations to the
//!   contract, and every runbook link to a heading of `docs/runbook.md`.
//! - The dashboard lint holds every panel to the templated datasource, a
//!   description and a unit, and every query to `$__rate_interval`, the
//!   `job`/`instance`/`target`/`source` variables and PromQL that parses
//!   (checked by promtool once Grafana's variables are substituted).
//!
//! The end-to-end proof against a running Prometheus and Alertmanager is
//! `tests/e2e.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value as Json;

/// Every alert of the contract, with its severity.
const ALERTS: &[(&str, &str)] = &[
    ("UniqwatchDuplicatesFound", "critical"),
    ("UniqwatchSemanticDuplicates", "critical"),
    ("UniqwatchUniqueIndexMissing", "critical"),
    ("UniqwatchUniqueIndexBuilding", "warning"),
    ("UniqwatchUniqueIndexBuildStuck", "critical"),
    ("UniqwatchMissingKeys", "warning"),
    ("UniqwatchKeyMismatch", "warning"),
    ("UniqwatchKeyLookupNotIndexed", "warning"),
    ("UniqwatchDuplicateKeyErrorsHigh", "warning"),
    ("UniqwatchConflictsNotRecovered", "critical"),
    ("UniqwatchRequestLatencyChanged", "warning"),
    ("UniqwatchCheckFailing", "warning"),
    ("UniqwatchDown", "critical"),
    ("UniqwatchAbsent", "critical"),
    ("UniqwatchLogTailerStalled", "warning"),
    ("UniqwatchHistoryFailing", "warning"),
];

/// The prefix every runbook_url shares, so an operator rewrites it in one
/// substitution.
const RUNBOOK_PREFIX: &str = "https://github.com/uniqwatch/uniqwatch/blob/main/docs/runbook.md#";

/// Metric families carrying the `target` label (issue 2).
const TARGET_METRICS: &[&str] = &[
    "uniqwatch_up",
    "uniqwatch_unique_index_present",
    "uniqwatch_unique_index_building",
    "uniqwatch_key_lookup_uses_unique_index",
    "uniqwatch_duplicate_keys",
    "uniqwatch_duplicate_documents",
    "uniqwatch_missing_key_documents",
    "uniqwatch_canonical_duplicate_keys",
    "uniqwatch_canonical_duplicate_documents",
    "uniqwatch_key_mismatch_documents",
    "uniqwatch_documents",
    "uniqwatch_check_success",
    "uniqwatch_check_duration_seconds",
    "uniqwatch_check_last_success_timestamp_seconds",
    "uniqwatch_check_failures_total",
    "uniqwatch_runs_skipped_total",
];

/// Metric families carrying the `source` label (issue 3; the timed events
/// of issue 15). The histogram is listed by its series (`_bucket`, `_sum`,
/// `_count`), as queries name them.
const SOURCE_METRICS: &[&str] = &[
    "uniqwatch_duplicate_key_errors_total",
    "uniqwatch_duplicate_key_recoveries_total",
    "uniqwatch_log_events_total",
    "uniqwatch_log_event_duration_seconds_bucket",
    "uniqwatch_log_event_duration_seconds_sum",
    "uniqwatch_log_event_duration_seconds_count",
    "uniqwatch_log_event_unparsed_total",
    "uniqwatch_log_lines_total",
    "uniqwatch_log_bytes_total",
    "uniqwatch_log_rotations_total",
    "uniqwatch_log_truncations_total",
    "uniqwatch_log_long_lines_total",
    "uniqwatch_log_files",
    "uniqwatch_log_lag_bytes",
];

/// Families with neither; `up` is Prometheus's own scrape health.
const INSTANCE_METRICS: &[&str] = &["uniqwatch_build_info", "uniqwatch_start_time_seconds", "up"];

/// Each shipped dashboard and the uid links and bookmarks rely on.
const DASHBOARDS: &[(&str, &str)] = &[
    ("uniqwatch-overview.json", "uniqwatch-overview"),
    ("uniqwatch-target.json", "uniqwatch-target"),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn promtool() -> PathBuf {
    which("promtool").unwrap_or_else(|| {
        panic!(
            "promtool is not on PATH; these tests need it to check the rule files. \
             Install it with `apt-get install prometheus` (Debian) or put a Prometheus \
             release's promtool on PATH."
        )
    })
}

/// amtool, or None after saying why the test is skipped. Under CI (where
/// the setup installs it) a missing amtool is a failure.
fn amtool() -> Option<PathBuf> {
    let found = which("amtool");
    if found.is_none() {
        common::skip("amtool_checks_the_example_alertmanager_config", "amtool is not on PATH; run scripts/setup.sh (Debian package prometheus-alertmanager)");
    }
    found
}

/// Runs a command in the repository and returns its output, failing with
/// the command line and everything it printed when it exits non-zero.
fn run(program: &Path, args: &[&str]) -> Output {
    let output = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "`{} {}` failed ({}):\n{}\n{}",
        program.display(),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// Files in `dir` (relative to the repo) whose name ends with `suffix`,
/// as repo-relative paths, sorted.
fn files(dir: &str, suffix: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .map(|entry| entry.expect("directory entry is readable").file_name())
        .filter_map(|name| name.to_str().map(str::to_owned))
        .filter(|name| name.ends_with(suffix))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {suffix} files in {dir}");
    found
}

fn rule_files() -> Vec<String> {
    files("alerts", ".rules.yml")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

// ---------------------------------------------------------------- rules

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Every alerting rule of every shipped rule file, with its file.
fn alert_rules() -> Vec<(String, Rule)> {
    let mut rules = Vec::new();
    for path in rule_files() {
        let file: RuleFile = serde_yaml::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{path} is not a rule file: {e}"));
        for group in file.groups {
            for rule in group.rules {
                if rule.alert.is_some() {
                    rules.push((path.clone(), rule));
                }
            }
        }
    }
    rules
}

/// The anchors GitHub gives the headings of a Markdown file.
fn heading_anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn promtool_checks_the_rule_files() {
    let promtool = promtool();
    let mut args = vec!["check", "rules"];
    let paths = rule_files();
    args.extend(paths.iter().map(String::as_str));
    run(&promtool, &args);
}

#[test]
fn promtool_unit_tests_pass() {
    let promtool = promtool();
    let mut args = vec!["test", "rules"];
    let paths = files("alerts/tests", ".yml");
    args.extend(paths.iter().map(String::as_str));
    run(&promtool, &args);
}

#[derive(Deserialize)]
struct TestFile {
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct AlertTest {
    alertname: String,
    exp_alerts: Vec<serde_yaml::Value>,
}

/// The unit tests prove both directions for every alert: at least one
/// evaluation where it fires and one where it must stay silent.
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for path in files("alerts/tests", ".yml") {
        let file: TestFile = serde_yaml::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{path} is not a promtool test file: {e}"));
        for test in file.tests.iter().flat_map(|group| &group.alert_rule_test) {
            if test.exp_alerts.is_empty() {
                silent.insert(test.alertname.clone());
            } else {
                fires.insert(test.alertname.clone());
            }
        }
    }
    for (name, _) in ALERTS {
        assert!(
            fires.contains(*name),
            "no unit test in alerts/tests expects {name} to fire"
        );
        assert!(
            silent.contains(*name),
            "no unit test in alerts/tests expects {name} to stay silent"
        );
    }
}

#[test]
fn alert_rules_follow_the_contract() {
    let runbook = read("docs/runbook.md");
    let anchors = heading_anchors(&runbook);
    let rules = alert_rules();
    let contract: BTreeMap<&str, &str> = ALERTS.iter().copied().collect();
    let mut problems = Vec::new();

    for (path, rule) in &rules {
        let name = rule
            .alert
            .as_deref()
            .expect("only alerting rules are listed");
        let mut problem = |what: String| problems.push(format!("{path}: {name}: {what}"));
        let Some(severity) = contract.get(name) else {
            problem("not an alert of the contract".into());
            continue;
        };
        match rule.labels.get("severity") {
            Some(found) if found == severity => {}
            found => problem(format!("severity should be {severity}, is {found:?}")),
        }
        match rule.annotations.get("summary") {
            None => problem("no summary annotation".into()),
            Some(summary) => {
                if !summary.ends_with('.') {
                    problem(format!("summary should end with a period: {summary:?}"));
                }
                if summary.contains("{{") {
                    problem(format!("summary should not be templated: {summary:?}"));
                }
                if summary.trim_end_matches('.').contains(". ") || summary.contains('\n') {
                    problem(format!("summary should be one sentence: {summary:?}"));
                }
            }
        }
        match rule.annotations.get("description") {
            None => problem("no description annotation".into()),
            Some(description) => {
                if !description.contains("$labels.") {
                    problem(
                        "description should name the target or source with {{ $labels.… }}".into(),
                    );
                }
                // UniqwatchAbsent has no value worth printing (absent() is 1);
                // it names the job and instance instead.
                if name != "UniqwatchAbsent" && !description.contains("$value") {
                    problem("description should give the value with {{ $value }}".into());
                }
            }
        }
        match rule.annotations.get("runbook_url") {
            None => problem("no runbook_url annotation".into()),
            Some(url) => match url.strip_prefix(RUNBOOK_PREFIX) {
                None => problem(format!(
                    "runbook_url should start with {RUNBOOK_PREFIX}: {url}"
                )),
                Some(anchor) => {
                    if anchor != name.to_lowercase() {
                        problem(format!(
                            "runbook_url anchor should be #{}",
                            name.to_lowercase()
                        ));
                    }
                    if !anchors.contains(anchor) {
                        problem(format!(
                            "docs/runbook.md has no heading with anchor #{anchor}"
                        ));
                    }
                }
            },
        }
    }

    // Invariant breaches page on the first check that sees them.
    for (path, rule) in &rules {
        let name = rule
            .alert
            .as_deref()
            .expect("only alerting rules are listed");
        if matches!(
            name,
            "UniqwatchDuplicatesFound"
                | "UniqwatchSemanticDuplicates"
                | "UniqwatchUniqueIndexMissing"
        ) {
            if let Some(wait) = &rule.for_ {
                problems.push(format!(
                    "{path}: {name}: should page without `for` (has {wait})"
                ));
            }
        }
    }

    let present: BTreeSet<&str> = rules
        .iter()
        .filter_map(|(_, rule)| rule.alert.as_deref())
        .collect();
    for (name, _) in ALERTS {
        if !present.contains(name) {
            problems.push(format!("no rule file defines {name}"));
        }
        if !anchors.contains(&name.to_lowercase()) {
            problems.push(format!("docs/runbook.md has no section headed {name}"));
        }
    }
    assert!(
        problems.is_empty(),
        "alert rules break the contract:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------- Alertmanager

#[test]
fn amtool_checks_the_example_alertmanager_config() {
    let Some(amtool) = amtool() else { return };
    let config = "alerts/alertmanager.example.yml";
    run(&amtool, &["check-config", config]);

    let config_flag = format!("--config.file={config}");
    for (name, severity) in ALERTS {
        let receiver = match *severity {
            "critical" => "pager",
            _ => "ticket",
        };
        let output = run(
            &amtool,
            &[
                "config",
                "routes",
                "test",
                &config_flag,
                &format!("alertname={name}"),
                &format!("severity={severity}"),
            ],
        );
        let routed = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            routed.trim(),
            receiver,
            "{name} ({severity}) should go to {receiver}"
        );
    }
}

// ---------------------------------------------------------------- dashboards

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn load_dashboard(file: &str) -> Json {
    let path = format!("dashboards/{file}");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// True when a panel or target datasource is the `datasource` variable.
fn templated_datasource(datasource: &Json) -> bool {
    let uid = datasource
        .get("uid")
        .and_then(Json::as_str)
        .or_else(|| datasource.as_str());
    matches!(uid, Some("${datasource}" | "$datasource"))
}

/// The queries of a dashboard's panels, each named for messages.
fn panel_queries(dashboard: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            let title = panel["title"].as_str().unwrap_or_default();
            let reference = target["refId"].as_str().unwrap_or_default();
            let name = format!("panel {} {title:?} query {reference}", panel["id"]);
            out.push((name, expr));
        }
    }
    out
}

/// The series selector inside each `label_values(selector, label)`
/// variable query, named for messages. They narrow by the variables before
/// them, so only their syntax is checked.
fn variable_selectors(dashboard: &Json) -> Vec<(String, String)> {
    common::label_values_variables(dashboard)
        .into_iter()
        .map(|v| match v {
            Ok((name, selector, _)) => (format!("variable {name}"), selector),
            Err(problem) => (problem.clone(), problem),
        })
        .collect()
}

/// Index just past the parenthesis closing the one at `open`, skipping
/// string literals.
fn closing_paren(expr: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in expr[open..].char_indices() {
        if in_string {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => in_string = false,
                _ => escaped = false,
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Identifiers of `expr` with their byte offsets; string literals skipped.
fn identifiers(expr: &str) -> Vec<(usize, &str)> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b':' | b'$'))
            {
                i += 1;
            }
            out.push((start, &expr[start..i]));
        } else {
            i += 1;
        }
    }
    out
}

/// What is wrong with one dashboard query, if anything: ranges other than
/// `$__rate_interval` in rate()/increase(), selectors without the
/// variables, metrics outside the contract.
fn query_problems(expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if expr.trim().is_empty() {
        return vec!["empty query".into()];
    }
    for (at, word) in identifiers(expr) {
        let rest = &expr[at + word.len()..];
        if matches!(word, "rate" | "irate" | "increase") && rest.trim_start().starts_with('(') {
            let open = at + word.len() + (rest.len() - rest.trim_start().len());
            let call = closing_paren(expr, open)
                .map(|end| &expr[at..end])
                .unwrap_or(&expr[at..]);
            if !call.contains("[$__rate_interval]") {
                problems.push(format!("{word}() should use [$__rate_interval]: {call}"));
            }
            continue;
        }
        let is_metric = word.starts_with("uniqwatch_") || word == "up";
        if !is_metric {
            continue;
        }
        let known = TARGET_METRICS.contains(&word)
            || SOURCE_METRICS.contains(&word)
            || INSTANCE_METRICS.contains(&word);
        if !known {
            problems.push(format!("{word} is not a metric of the contract"));
            continue;
        }
        let Some(matchers) = rest
            .strip_prefix('{')
            .and_then(|m| m.split_once('}'))
            .map(|(m, _)| m)
        else {
            problems.push(format!(
                "{word} should carry the dashboard's label matchers"
            ));
            continue;
        };
        let mut wanted = vec!["$job", "$instance"];
        if TARGET_METRICS.contains(&word) {
            wanted.push("$target");
        }
        if SOURCE_METRICS.contains(&word) {
            wanted.push("$source");
        }
        for variable in wanted {
            let braced = format!("${{{}}}", &variable[1..]);
            if !matchers.contains(variable) && !matchers.contains(&braced) {
                problems.push(format!("{word}{{{matchers}}} should match on {variable}"));
            }
        }
    }
    problems
}

/// The query with Grafana's variables replaced by values promtool can
/// parse: intervals by a duration, everything else by a plain word (the
/// dashboards use variables only inside label matchers).
fn substitute_variables(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').expect("a ${ variable is closed");
                (braced[..end].split(':').next().unwrap_or_default(), end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        out.push_str(match name {
            "__rate_interval" | "__interval" | "__range" => "5m",
            "__interval_ms" | "__range_ms" => "300000",
            "__range_s" => "300",
            _ => "value",
        });
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[test]
fn dashboards_follow_the_conventions() {
    let mut problems = Vec::new();
    for (file, uid) in DASHBOARDS {
        let dashboard = load_dashboard(file);
        let mut problem = |what: String| problems.push(format!("{file}: {what}"));

        if dashboard["uid"] != *uid {
            problem(format!("uid should stay {uid:?}, is {}", dashboard["uid"]));
        }
        let variables = dashboard["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let variable = |name: &str| variables.iter().find(|v| v["name"] == name);
        match variable("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => {
                problem("needs a `datasource` variable of type datasource, query prometheus".into())
            }
        }
        for name in ["job", "instance", "target"] {
            match variable(name) {
                Some(v) if v["type"] == "query" => {}
                _ => problem(format!("needs a `{name}` query variable")),
            }
        }
        for v in variables.iter().filter(|v| v["type"] == "query") {
            if !templated_datasource(&v["datasource"]) {
                problem(format!(
                    "variable {} should query ${{datasource}}",
                    v["name"]
                ));
            }
        }

        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            let title = &panel["title"];
            let kind = panel["type"].as_str().unwrap_or_default();
            if !ids.insert(panel["id"].to_string()) {
                problem(format!("panel {title} reuses id {}", panel["id"]));
            }
            if kind == "row" {
                continue;
            }
            if !templated_datasource(&panel["datasource"]) {
                problem(format!(
                    "panel {title} should use the ${{datasource}} variable"
                ));
            }
            if panel["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                problem(format!("panel {title} has no description"));
            }
            if kind != "text"
                && panel["fieldConfig"]["defaults"]["unit"]
                    .as_str()
                    .is_none_or(str::is_empty)
            {
                problem(format!("panel {title} has no unit"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            if kind != "text" && targets.is_empty() {
                problem(format!("panel {title} has no query"));
            }
            for target in &targets {
                if !templated_datasource(&target["datasource"]) {
                    problem(format!(
                        "panel {title} query {} should use ${{datasource}}",
                        target["refId"]
                    ));
                }
            }
        }
        for (name, expr) in panel_queries(&dashboard) {
            for what in query_problems(&expr) {
                problem(format!("{name}: {what}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboards break the conventions:\n{}",
        problems.join("\n")
    );
}

/// Every dashboard query parses as PromQL: each becomes a recording rule
/// in a scratch rule file, one group per dashboard query, and promtool
/// checks the file.
#[test]
fn dashboard_queries_parse_as_promql() {
    let promtool = promtool();
    let mut groups = Vec::new();
    for (file, _) in DASHBOARDS {
        let dashboard = load_dashboard(file);
        let all = panel_queries(&dashboard)
            .into_iter()
            .chain(variable_selectors(&dashboard));
        for (i, (name, expr)) in all.enumerate() {
            let group = serde_json::json!({
                "name": format!("{file}: {name}"),
                "rules": [{"record": format!("dashboard_query_{i}"), "expr": substitute_variables(&expr)}],
            });
            groups.push(group);
        }
    }
    assert!(!groups.is_empty(), "no dashboard queries found");
    let scratch = tempfile::tempdir().expect("a scratch directory can be made");
    let rules = scratch.path().join("dashboard-queries.rules.yml");
    // JSON is YAML, so the rule file needs no YAML writer.
    let body = serde_json::json!({ "groups": groups });
    std::fs::write(
        &rules,
        serde_json::to_string_pretty(&body).expect("JSON encodes"),
    )
    .expect("scratch file is writable");
    run(
        &promtool,
        &[
            "check",
            "rules",
            rules.to_str().expect("temp path is UTF-8"),
        ],
    );
}

#[test]
fn the_query_lint_catches_what_it_should() {
    let good = r#"sum by (target) (rate(uniqwatch_check_failures_total{job=~"$job", instance=~"$instance", target=~"$target"}[$__rate_interval]))"#;
    assert!(
        query_problems(good).is_empty(),
        "{:?}",
        query_problems(good)
    );
    let fixed_range = good.replace("$__rate_interval", "5m");
    assert!(query_problems(&fixed_range)
        .iter()
        .any(|p| p.contains("$__rate_interval")));
    let no_target = good.replace(r#", target=~"$target""#, "");
    assert!(query_problems(&no_target)
        .iter()
        .any(|p| p.contains("$target")));
    let unknown = good.replace("check_failures_total", "check_failures");
    assert!(query_problems(&unknown)
        .iter()
        .any(|p| p.contains("not a metric of the contract")));
    assert!(!query_problems("uniqwatch_up").is_empty());
    assert_eq!(
        substitute_variables(r#"rate(x{a=~"$target", b="${job:regex}"}[$__rate_interval])"#),
        r#"rate(x{a=~"value", b="value"}[5m])"#
    );
    assert!(heading_anchors("## UniqwatchDown\n### How to confirm").contains("uniqwatchdown"));
}
