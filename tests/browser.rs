//! The pages a person looks at, opened in a real headless Chromium
//! (Debian's `chromium`, installed by scripts/setup.sh): the landing page
//! served by a running daemon, and the HTML audit report of a month of
//! runs. At a phone's width (390×844) and a desktop's (1366×900) each page
//! must raise no console error, render every chart, never scroll sideways
//! and use no text under 12px; the report must print to a PDF of a sensible
//! number of pages. Screenshots and the PDF stay in a temp dir whose paths
//! are printed, so a reviewer can look.
//!
//! Without chromium the tests skip loudly (and fail under CI).

#[path = "browser/cdp.rs"]
mod cdp;
mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cdp::{Browser, Page};
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use common::*;
use mongodb::bson::doc;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use uniqwatch::audit::{build_report, CurrentDuplicates, CurrentState, DuplicateSample, LogSourceInfo, MissingCounts, Month, TargetInfo};
use uniqwatch::checks::{
    CanonicalDuplicatesOutcome, CanonicalSample, DuplicatesOutcome, Figures, IndexOutcome, KeyConsistencyOutcome, Method,
    MissingKeysOutcome,
};
use uniqwatch::config::Config;
use uniqwatch::logs::{ErrorTotal, LogTotals, SourceTotals};
use uniqwatch::store::{RunOutcome, RunRecord, Store};

/// The smallest text a person should have to read, in CSS pixels.
const MIN_FONT_PX: f64 = 12.0;
/// Chart labels are drawn in the chart's own units and shrink with it on a
/// phone; below this rendered size they are no longer legible.
const MIN_CHART_TEXT_PX: f64 = 8.0;

/// Phone and desktop: (name, width, height, mobile).
const VIEWPORTS: [(&str, u32, u32, bool); 2] = [("phone", 390, 844, true), ("desktop", 1366, 900, false)];

/// What the page looks like to a reader, measured in the page.
const PROBE: &str = r#"(() => {
  const small = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest('svg, title')) continue;
    const px = parseFloat(getComputedStyle(el).fontSize);
    if (px < MIN_FONT) small.push(`${el.tagName} ${px}px: ${node.textContent.trim().slice(0, 40)}`);
  }
  const charts = [...document.querySelectorAll('svg')].map(svg => {
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    const texts = [...svg.querySelectorAll('text')].map(t => parseFloat(getComputedStyle(t).fontSize) * scale);
    return {width: box.width, height: box.height, bars: svg.querySelectorAll('rect').length,
            smallest_text: texts.length ? Math.min(...texts) : null};
  });
  const root = document.scrollingElement;
  return {scroll_width: root.scrollWidth, inner_width: innerWidth, small: small.slice(0, 10), charts,
          text: document.body.innerText.length};
})()"#;

/// The computed styles the print stylesheet sets.
const PRINT_PROBE: &str = r#"(() => {
  const style = sel => getComputedStyle(document.querySelector(sel));
  return {header_background: style('th').backgroundColor, scroll: style('.scroll').overflowX,
          figure_break: style('figure').breakInside, table_break: style('table').breakInside,
          charts_drawn: [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 100).length};
})()"#;

/// Where screenshots go: kept after the test, named by the process.
fn shots_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uniqwatch-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Straight to the process's stderr: libtest captures eprintln! of a passing test.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Opens `url` at every viewport, checks what a reader sees, saves a
/// screenshot of each, and returns the measurements. `charts` is how many
/// charts the page must show.
fn look_at(browser: &mut Browser, name: &str, url: &str, charts: usize) -> Vec<(Page, Value)> {
    let mut pages = Vec::new();
    for (viewport, width, height, mobile) in VIEWPORTS {
        let page = browser.page(width, height, mobile);
        browser.navigate(&page, url);
        let probe = browser.eval(&page, &PROBE.replace("MIN_FONT", &MIN_FONT_PX.to_string()));
        let shot = browser.screenshot(&page);
        let path = shots_dir().join(format!("{name}-{viewport}.png"));
        std::fs::write(&path, &shot).unwrap();
        say(&format!("screenshot: {}", path.display()));
        let what = format!("{name} at {viewport} ({width}px)");
        assert_eq!(browser.problems(&page), Vec::<String>::new(), "{what}: console errors");
        assert!(probe["text"].as_u64().unwrap() > 200, "{what}: the page shows text: {probe}");
        // A page without a viewport tag is laid out 980px wide on a phone
        // and shrunk to fit: every size would pass and nothing be legible.
        assert_eq!(probe["inner_width"], json!(width), "{what}: laid out for the screen's width");
        assert!(
            probe["scroll_width"].as_f64().unwrap() <= probe["inner_width"].as_f64().unwrap(),
            "{what}: the page scrolls sideways: {probe}"
        );
        assert_eq!(probe["small"], json!([]), "{what}: text under {MIN_FONT_PX}px");
        let drawn = probe["charts"].as_array().unwrap();
        assert_eq!(drawn.len(), charts, "{what}: every chart is in the page: {probe}");
        for chart in drawn {
            assert!(chart["width"].as_f64().unwrap() > 100.0 && chart["height"].as_f64().unwrap() > 20.0, "{what}: {chart}");
            assert!(chart["bars"].as_u64().unwrap() > 0, "{what}: a chart without bars: {chart}");
            assert!(
                chart["smallest_text"].as_f64().unwrap() >= MIN_CHART_TEXT_PX,
                "{what}: chart labels too small to read: {chart}"
            );
        }
        // A blank 390×844 PNG is a few kilobytes; a page of text and charts is far more.
        assert!(shot.len() > 20_000, "{what}: the screenshot looks blank ({} bytes)", shot.len());
        pages.push((page, probe));
    }
    pages
}

const NO_CHROMIUM: &str = "chromium is not installed (scripts/setup.sh installs it)";

#[tokio::test]
async fn the_landing_page_reads_well_on_a_phone_and_a_desktop() {
    let Some(chromium) = cdp::chromium() else {
        return skip("the_landing_page_reads_well_on_a_phone_and_a_desktop", NO_CHROMIUM);
    };
    let db = unique_db("browser");
    let chats = vec![
        doc! {"participants": ["a", "b"], "participantsKey": "a_b"},
        doc! {"participants": ["b", "a"], "participantsKey": "b_a"},
        doc! {"participants": ["c", "d"], "participantsKey": "c_d"},
        doc! {"x": 1},
    ];
    seed(&shared_uri(), &db, "chats", chats).await;
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("app.log"),
        "2026-11-28T10:00:01.123Z [WARN] Duplicate key error during upsert participantsKey=userA_userB\n\
         2026-11-28T10:00:01.125Z [DEBUG] Retrieved existing chat after duplicate key error\n",
    )
    .unwrap();
    let mut toml = target_toml(&shared_uri(), "chats", &db, "chats", "participantsKey", true, "0 0 0 1 1 *");
    toml.push_str("[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\nschedule = \"* * * * * *\"\n");
    toml.push_str(&format!(
        "\n[[logs]]\nname = \"chat-backend\"\npaths = [\"{}/*.log\"]\nstart_at = \"beginning\"\nnamespace = \"app.chats\"\nindex = \"participantsKey_1\"\npoll_interval = \"50ms\"\n",
        logs.path().display()
    ));
    let config = Config::from_toml(&toml, Path::new("test.toml"), None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let daemon = tokio::spawn(uniqwatch::daemon::run(config, listener, async move {
        let _ = stopped.await;
    }));
    // Every check has a result and the log line is counted before the page is looked at.
    let url = base.clone();
    eventually(Duration::from_secs(20), "every check run and the log read", || {
        let url = url.clone();
        async move {
            let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
            !page.contains("not run yet") && page.contains("canonical duplicates") && page.contains("<td>chat-backend</td><td>2</td>")
        }
    })
    .await;

    tokio::task::spawn_blocking(move || look_at(&mut Browser::start(&chromium), "landing", &base, 0)).await.unwrap();
    let _ = stop.send(());
    daemon.await.unwrap().unwrap();
}

#[test]
fn the_audit_report_reads_well_and_prints() {
    let Some(chromium) = cdp::chromium() else { return skip("the_audit_report_reads_well_and_prints", NO_CHROMIUM) };
    let mut browser = Browser::start(&chromium);
    let store = month_of_runs();
    let report = build_report(&store, october(), &targets(), &sources(), &current(), utc(11, 1, 6)).unwrap();
    let html = report.to_html();
    let charts = html.matches("<svg").count();
    assert_eq!(charts, 3, "duplicates, canonical duplicates with mismatched keys, and the log source's");
    let path = shots_dir().join("audit-2026-10.html");
    std::fs::write(&path, &html).unwrap();
    say(&format!("report: {}", path.display()));

    let pages = look_at(&mut browser, "audit", &format!("file://{}", path.display()), charts);
    let (desktop, _) = &pages[1];
    let pdf = browser.print_to_pdf(desktop);
    let pdf_path = shots_dir().join("audit-2026-10.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    say(&format!("pdf: {}", pdf_path.display()));
    assert!(pdf.starts_with(b"%PDF-"), "Chromium printed a PDF");
    // What the print stylesheet does, as the printer sees it.
    browser.call(Some(&desktop.session), "Emulation.setEmulatedMedia", json!({"media": "print"}));
    let print = browser.eval(desktop, PRINT_PROBE);
    assert_eq!(
        print,
        json!({"header_background": "rgba(0, 0, 0, 0)", "scroll": "visible", "figure_break": "avoid", "table_break": "avoid",
               "charts_drawn": charts}),
        "printed: no header backgrounds, nothing cut off in a scroll box, no chart or table split, every chart drawn"
    );
    let pages = pdf_pages(&pdf);
    say(&format!("pdf: {pages} pages, {} bytes", pdf.len()));
    assert!((2..=20).contains(&pages), "a month's report prints on a few pages, not {pages}");
}

/// Pages of a PDF: its `/Type /Page` objects (not `/Pages`).
fn pdf_pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    text.match_indices("/Type /Page").filter(|(i, _)| !text[i + 11..].starts_with('s')).count()
        + text.match_indices("/Type/Page").filter(|(i, _)| !text[i + 10..].starts_with('s')).count()
}

fn utc(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, m, d, h, 0, 0).unwrap()
}

fn october() -> Month {
    "2026-10".parse().unwrap()
}

fn record(at: DateTime<Utc>, figures: Figures) -> RunRecord {
    RunRecord { at, target: "chats".into(), duration: Duration::from_millis(50), outcome: RunOutcome::Succeeded(figures) }
}

/// Hourly runs of every check of `chats` through October, from the 3rd (the
/// days before are not yet monitored): duplicates on the 5th to 7th, a
/// canonical duplicate on the 12th, mismatched keys on the 20th; and a
/// log source with errors on three days.
fn month_of_runs() -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let mut at = utc(10, 3, 0);
    while at < october().end() {
        let dup = at >= utc(10, 5, 0) && at < utc(10, 8, 0);
        let sample = vec![DuplicateSample { key: json!("userA_userB"), count: 2, ids: vec![json!("id1"), json!("id2")] }];
        let canonical = at >= utc(10, 12, 0) && at < utc(10, 13, 0);
        let mismatch = u64::from(at >= utc(10, 20, 0) && at < utc(10, 21, 0));
        store
            .record_runs(&[
                record(at, Figures::Index(IndexOutcome { present: true, name: Some("participantsKey_1".into()), unique: true, guarantees_uniqueness: true, ..IndexOutcome::default() })),
                record(at, Figures::Duplicates(DuplicatesOutcome { keys: u64::from(dup), documents: u64::from(dup), method: Method::Aggregation, sample: if dup { sample } else { Vec::new() } })),
                record(at, Figures::MissingKeys(MissingKeysOutcome { absent: 3, null: 0, empty: 0, array: 0, documents: 1000, method: Method::Aggregation })),
                record(at, Figures::CanonicalDuplicates(CanonicalDuplicatesOutcome {
                    keys: u64::from(canonical),
                    documents: u64::from(canonical),
                    sample: if canonical {
                        vec![CanonicalSample { canonical: json!("userA_userB"), count: 2, ids: vec![json!("c1"), json!("c2")], keys: vec![json!("userA_userB"), json!("userB_userA")] }]
                    } else {
                        Vec::new()
                    },
                })),
                record(at, Figures::KeyConsistency(KeyConsistencyOutcome { mismatch, derivable: 0, underivable: 0, documents: 1000, sample: Vec::new() })),
            ])
            .unwrap();
        at += Span::hours(1);
    }
    let mut errors = 0;
    for (day, add) in october().days().zip([0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]) {
        errors += add;
        let totals = LogTotals {
            sources: BTreeMap::from([(
                "chat-backend".to_string(),
                SourceTotals {
                    duplicate_key_errors: vec![ErrorTotal { namespace: "app.chats".into(), index: "participantsKey_1".into(), count: errors }],
                    recoveries: errors,
                    lines: errors * 2 + 100,
                    ..SourceTotals::default()
                },
            )]),
        };
        store.record_log_totals(day.and_hms_opt(20, 0, 0).unwrap().and_utc(), &totals).unwrap();
    }
    store
}

fn targets() -> Vec<TargetInfo> {
    vec![TargetInfo { name: "chats".into(), database: "app".into(), collection: "chats".into(), key: "participantsKey".into() }]
}

fn sources() -> Vec<LogSourceInfo> {
    vec![LogSourceInfo { name: "chat-backend".into(), request_event: None, tracks_recoveries: true }]
}

fn current() -> BTreeMap<String, CurrentState> {
    BTreeMap::from([(
        "chats".to_string(),
        CurrentState::Reachable {
            index_present: true,
            index_building: false,
            duplicates: CurrentDuplicates::default(),
            missing: MissingCounts { absent: 3, null: 0, empty: 0, array: 0 },
            canonical: None,
        },
    )])
}
