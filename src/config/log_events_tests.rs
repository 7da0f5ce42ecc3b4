//! Tests of [`super`] (log_events.rs): duration events in the config.

use super::*;
use crate::config::test_support::parse;

const LOGS: &str = "[[logs]]\nname = \"app\"\npaths = [\"/var/log/app.log\"]\n";

fn event(body: &str) -> String {
    format!("{LOGS}[[logs.events]]\nname = \"create_or_get\"\n{body}\n")
}

fn error(body: &str) -> String {
    parse(&event(body)).unwrap_err().to_string()
}

const CONTRACT: &str = r#"contains = "POST /api/chats/create-or-get"
regex = '(?P<status>\d{3}) (?P<duration>\d+(?:\.\d+)?)(?P<unit>ms|s|us)\b'"#;

#[test]
fn the_contract_example_is_a_duration_event_with_default_buckets() {
    let c = parse(&event(CONTRACT)).unwrap();
    let spec = c.logs[0].events[0].duration().unwrap();
    assert_eq!(spec.parse, DurationParse::Regex { unit: None, status: true });
    assert_eq!(spec.bounds_nanos.len(), 9);
    assert_eq!(spec.bounds_nanos[0], 5_000_000);
    assert_eq!(spec.bounds_nanos[8], 2_500_000_000);
}

#[test]
fn a_regex_without_named_captures_stays_a_plain_event() {
    let c = parse(&event(r"regex = 'took \d{4,}ms'")).unwrap();
    assert_eq!(c.logs[0].events[0].duration(), None);
    let c = parse(&event("contains = \"POST\"")).unwrap();
    assert_eq!(c.logs[0].events[0].duration(), None);
}

#[test]
fn fixed_unit_and_own_buckets() {
    let c = parse(&event(
        "regex = 'took (?P<duration>\\d+)'\nunit = \"us\"\nbuckets = [\"250us\", \"1ms\", \"0.5s\"]",
    ))
    .unwrap();
    let spec = c.logs[0].events[0].duration().unwrap();
    assert_eq!(spec.parse, DurationParse::Regex { unit: Some(DurationUnit::Us), status: false });
    assert_eq!(spec.bounds_nanos, vec![250_000, 1_000_000, 500_000_000]);
}

/// Regression (review of f0608be): named groups made any event a duration
/// event, so configs that loaded before duration events failed to load.
#[test]
fn named_groups_without_a_duration_capture_stay_a_plain_event_as_before() {
    for regex in [r"took (?P<ms>\d{4,})ms", r" (?P<status>5\d\d) ", r"(?P<took>\d+)ms user=(?P<user>\w+)"] {
        let c = parse(&event(&format!("regex = '{regex}'"))).unwrap_or_else(|e| panic!("{regex}: {e}"));
        assert_eq!(c.logs[0].events[0].duration(), None, "{regex}");
    }
    let e = error("regex = ' (?P<status>5\\d\\d) '\nunit = \"ms\"");
    assert!(e.contains("logs[0].events[0].unit"), "{e}");
    // The one exception: a `duration` capture says the event is meant to
    // time something; without a unit it would silently time nothing.
    let e = error("regex = '(?P<duration>\\d+)ms'");
    assert!(e.contains("logs[0].events[0].unit") && e.contains("needs a unit"), "{e}");
}

#[test]
fn a_capture_that_could_explode_cardinality_is_an_error_naming_the_regex() {
    let e = error("regex = '(?P<duration>\\d+)ms user=(?P<user>\\w+)'\nunit = \"ms\"");
    assert!(e.contains("logs[0].events[0].regex") && e.contains("\"user\""), "{e}");
}

#[test]
fn buckets_without_any_unit_is_an_error_naming_unit() {
    let e = error("regex = '(?P<duration>\\d+)'\nbuckets = [\"1s\"]");
    assert!(e.contains("logs[0].events[0].unit"), "{e}");
    let e = error("regex = '(?P<duration>\\d+)'\nunit = \"minutes\"");
    assert!(e.contains("logs[0].events[0].unit"), "{e}");
}

#[test]
fn unit_or_buckets_on_a_plain_event_are_errors() {
    let e = error("contains = \"POST\"\nunit = \"ms\"");
    assert!(e.contains("logs[0].events[0].unit"), "{e}");
    let e = error("contains = \"POST\"\nbuckets = [\"1s\"]");
    assert!(e.contains("logs[0].events[0].buckets"), "{e}");
}

#[test]
fn buckets_must_be_durations_strictly_increasing_and_bounded() {
    let with = |b: &str| error(&format!("{CONTRACT}\nbuckets = {b}"));
    let e = with("[\"5ms\", \"fast\"]");
    assert!(e.contains("logs[0].events[0].buckets[1]"), "{e}");
    let e = with("[\"0ms\"]");
    assert!(e.contains("logs[0].events[0].buckets[0]"), "{e}");
    let e = with("[\"10ms\", \"10ms\"]");
    assert!(e.contains("logs[0].events[0].buckets[1]") && e.contains("strictly increasing"), "{e}");
    let e = with("[\"1s\", \"500ms\"]");
    assert!(e.contains("logs[0].events[0].buckets[1]"), "{e}");
    let e = with("[]");
    assert!(e.contains("logs[0].events[0].buckets"), "{e}");
    let many: Vec<String> = (1..=31).map(|n| format!("\"{n}ms\"")).collect();
    let e = with(&format!("[{}]", many.join(", ")));
    assert!(e.contains("logs[0].events[0].buckets") && e.contains("1 to 30"), "{e}");
}

#[test]
fn mongod_slow_query_needs_a_namespace_and_nothing_else() {
    let c = parse(&event("kind = \"mongod_slow_query\"\nnamespace = \"app.chats\"")).unwrap();
    assert_eq!(
        c.logs[0].events[0].duration().unwrap().parse,
        DurationParse::MongodSlowQuery { namespace: "app.chats".into() }
    );
    let e = error("kind = \"mongod_slow_query\"");
    assert!(e.contains("logs[0].events[0].namespace"), "{e}");
    let e = error("kind = \"mongod_slow_query\"\nnamespace = \"app.chats\"\nregex = 'x'");
    assert!(e.contains("logs[0].events[0].regex"), "{e}");
    let e = error("kind = \"mongod_slow_query\"\nnamespace = \"app.chats\"\ncontains = \"x\"");
    assert!(e.contains("logs[0].events[0].contains"), "{e}");
    let e = error("kind = \"slow\"\nnamespace = \"app.chats\"");
    assert!(e.contains("logs[0].events[0].kind"), "{e}");
    let e = error("contains = \"x\"\nnamespace = \"app.chats\"");
    assert!(e.contains("logs[0].events[0].namespace"), "{e}");
}

#[test]
fn parse_nanos_is_exact() {
    assert_eq!(parse_nanos(b"12", DurationUnit::Ms), Some(12_000_000));
    assert_eq!(parse_nanos(b"2.5", DurationUnit::S), Some(2_500_000_000));
    assert_eq!(parse_nanos(b"0.1234567", DurationUnit::Ms), Some(123_456));
    assert_eq!(parse_nanos(b"1.0000000009", DurationUnit::S), Some(1_000_000_000));
    assert_eq!(parse_nanos(b"7", DurationUnit::Ns), Some(7));
    for bad in [&b""[..], b".5", b"1.", b"1.2.3", b"1e3", b"-1", b"99999999999999999999"] {
        assert_eq!(parse_nanos(bad, DurationUnit::Ms), None, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(parse_bound("250us"), Some(250_000));
    assert_eq!(parse_bound("2.5s"), Some(2_500_000_000));
    assert_eq!(parse_bound("5 ms"), None);
    assert_eq!(DurationUnit::from_bytes("µs".as_bytes()), Some(DurationUnit::Us));
}
