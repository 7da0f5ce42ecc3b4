//! `[[target]]`: the collections whose key must be unique.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::duration::{check_all, Bounded, Bounds};
use super::key::KeySpec;
use super::{validate_name, validate_schedule, CanonicalConfig};

/// `[[target]]`: one collection whose key must be unique.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The `target` label on every metric of this collection, and its key in
    /// state files: letters, digits, `_`, `-`, `.`, not starting with `.`; unique.
    pub name: String,
    /// Database holding the collection.
    pub database: String,
    /// Collection to watch.
    pub collection: String,
    /// Field whose values must be unique, e.g. `participantsKey`, or a
    /// compound key: the fields whose values must be unique together, e.g.
    /// `["tenantId", "email"]`, exactly the unique index's key pattern in its
    /// order. Dotted paths are allowed; no field twice. A document misses a
    /// compound key when any field is absent, null, empty or an array, and
    /// is counted once, under the first of those kinds that applies.
    pub key: KeySpec,
    /// Whether the unique index is expected to be sparse (or partial on
    /// `{key: {$exists: true}}`); `false` expects a plain unique index. A
    /// compound sparse index skips a document only when all the key's fields
    /// are missing (one missing only some is indexed with nulls); a partial
    /// filter of `$exists: true` conditions on the key's fields counts as
    /// sparse too.
    #[serde(default = "default_true")]
    pub sparse: bool,
    /// Cron expression with a seconds field, in UTC: `sec min hour day month weekday`.
    /// `* * * * * *` is every second. Every target also runs once at start-up.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// How many offending keys (with their document ids) a run keeps as a
    /// sample for logs and `check --format json`. Never exported as labels.
    #[serde(default = "default_sample_size")]
    pub sample_size: usize,
    /// What the key must equal, computed from the document's other fields;
    /// absent means the key is only checked for uniqueness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<CanonicalConfig>,
    /// Where the target stands in the file (`target[N]`), for messages that
    /// name a field of it after load; set by [`super::Config::from_toml`].
    #[serde(skip)]
    pub(crate) position: usize,
}

/// The largest sample a run keeps; a bound on the daemon's memory per target.
pub const MAX_SAMPLE_SIZE: usize = 1000;
/// How many document ids a sample keeps per offending key.
pub const SAMPLE_IDS_PER_KEY: usize = 20;

impl TargetConfig {
    /// Range of `sample_size`.
    pub const SAMPLE_SIZE: Bounds<usize> = Bounds {
        min: 0,
        max: MAX_SAMPLE_SIZE,
        why: "the sample is kept in memory for every target",
    };

    /// Every bounded field with its value.
    pub fn bounded(&self) -> [(&'static str, Bounded); 1] {
        [("sample_size", Bounded::Count(self.sample_size, Self::SAMPLE_SIZE))]
    }
}

fn default_true() -> bool {
    true
}
fn default_schedule() -> String {
    "0 */5 * * * *".to_string()
}
fn default_sample_size() -> usize {
    20
}

/// Checks every `[[target]]`, returning the field and the problem.
pub(super) fn validate_targets(targets: &[TargetConfig]) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        let at = |f: &str| format!("target[{i}].{f}");
        validate_name(&t.name).map_err(|problem| (at("name"), problem))?;
        if !names.insert(t.name.as_str()) {
            return Err((at("name"), format!("{:?} is used by another target", t.name)));
        }
        if t.database.is_empty() || t.database.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err((at("database"), format!("expected a MongoDB database name, found {:?}", t.database)));
        }
        if t.collection.is_empty() || t.collection.starts_with("system.") || t.collection.contains('$') {
            return Err((at("collection"), format!("expected a MongoDB collection name, found {:?}", t.collection)));
        }
        t.key.validate().map_err(|problem| (at("key"), problem))?;
        validate_schedule(&t.schedule).map_err(|problem| (at("schedule"), problem))?;
        check_all(&format!("target[{i}]."), t.bounded())?;
        if let Some(c) = &t.canonical {
            let Some(key) = t.key.single() else {
                return Err((
                    at("canonical"),
                    "the canonical checks compare one stored key with one computed value; a compound key has several fields (watch one field, or give the target a single-field key)".into(),
                ));
            };
            c.validate(key).map_err(|(field, problem)| (at(&format!("canonical.{field}")), problem))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, TARGET};



    #[test]
    fn target_defaults() {
        let c = parse(TARGET).unwrap();
        let t = &c.targets[0];
        assert!(t.sparse);
        assert_eq!(t.schedule, "0 */5 * * * *");
        assert_eq!(t.sample_size, 20);
    }

    #[test]
    fn type_errors_in_arrays_of_tables_name_the_element() {
        let second = TARGET.replace("name = \"chats\"", "name = \"b\"");
        let e = parse(&format!("{TARGET}{second}sparse = \"yes\"")).unwrap_err().to_string();
        assert!(e.contains("field `target[1].sparse`"), "{e}");
    }

    #[test]
    fn every_second_schedule_is_accepted() {
        parse(&format!("{TARGET}schedule = \"* * * * * *\"")).unwrap();
    }

    #[test]
    fn five_field_cron_is_rejected_with_the_field() {
        let e = parse(&format!("{TARGET}schedule = \"*/5 * * * *\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule"), "{e}");
        assert!(e.contains("6 fields"), "{e}");
    }

    #[test]
    fn nonsense_cron_is_rejected() {
        let e = parse(&format!("{TARGET}schedule = \"a b c d e f\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule"), "{e}");
    }

    #[test]
    fn schedule_that_never_fires_is_rejected() {
        let e = parse(&format!("{TARGET}schedule = \"0 0 0 31 2 *\"")).unwrap_err().to_string();
        assert!(e.contains("target[0].schedule") && e.contains("never fires"), "{e}");
    }

    #[test]
    fn typo_in_an_inline_table_target_names_the_field() {
        let e = parse("target = [{ name = \"a\", database = \"app\", collection = \"c\", key = \"k\", sprse = true }]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target[0]") && e.contains("unknown field `sprse`"), "{e}");
    }

    #[test]
    fn duplicate_target_names_are_rejected() {
        let e = parse(&format!("{TARGET}{TARGET}")).unwrap_err().to_string();
        assert!(e.contains("target[1].name"), "{e}");
    }

    /// Target names are state-file keys like log source names: one rule, a leading '.' refused.
    #[test]
    fn target_names_follow_the_log_source_rule() {
        for bad in [".hidden", "..", "a b", ""] {
            let e = parse(&TARGET.replace("name = \"chats\"", &format!("name = {bad:?}"))).unwrap_err().to_string();
            assert!(e.contains("target[0].name"), "{e}");
            assert!(bad.is_empty() || e.contains("not starting with '.'"), "{e}");
        }
        parse(&TARGET.replace("name = \"chats\"", "name = \"a.b-c_1\"")).unwrap();
    }

    #[test]
    fn missing_required_field_is_named() {
        let e = parse("[[target]]\nname = \"x\"\ndatabase = \"app\"\ncollection = \"c\"").unwrap_err().to_string();
        assert!(e.contains("missing field `key`"), "{e}");
    }

    #[test]
    fn bad_key_is_rejected() {
        let e = parse(&TARGET.replace("participantsKey", "$bad")).unwrap_err().to_string();
        assert!(e.contains("target[0].key"), "{e}");
    }

    /// Issue 9: a canonical section's errors name the field under the target, and never echo the expression.
    #[test]
    fn canonical_errors_name_the_field_under_the_target() {
        let e = parse(&format!("{TARGET}[target.canonical]\nexpression = '{{\"$toLower\": SECRETX'\n")).unwrap_err().to_string();
        assert!(e.contains("field `target[0].canonical.expression`") && e.contains("not valid JSON"), "{e}");
        assert!(!e.contains("SECRETX"), "{e}");
        let e = parse(&format!("{TARGET}[target.canonical]\npreset = \"sorted_join\"\n")).unwrap_err().to_string();
        assert!(e.contains("field `target[0].canonical.fields`"), "{e}");
        let e = parse(&format!("{TARGET}[target.canonical]\npreset = \"upper\"\n")).unwrap_err().to_string();
        assert!(e.contains("target[0].canonical.preset"), "{e}");
        let e = parse(&format!("{TARGET}[target.canonical]\npreset = \"lowercase\"\nschedule = \"0 0 0 31 2 *\"\n")).unwrap_err().to_string();
        assert!(e.contains("target[0].canonical.schedule"), "{e}");
        let compound = TARGET.replace("key = \"participantsKey\"", "key = [\"tenantId\", \"email\"]");
        let e = parse(&format!("{compound}[target.canonical]\npreset = \"lowercase\"\n")).unwrap_err().to_string();
        assert!(e.contains("field `target[0].canonical`") && e.contains("compound key"), "{e}");
        let c = parse(&format!("{TARGET}[target.canonical]\npreset = \"sorted_join\"\nfields = [\"participants\"]\n")).unwrap();
        assert_eq!(c.targets[0].canonical.as_ref().unwrap().schedule, "0 0 * * * *");
    }

    #[test]
    fn a_compound_key_is_an_array_of_fields_in_order() {
        let c = parse(&TARGET.replace("\"participantsKey\"", "[\"tenantId\", \"profile.email\"]")).unwrap();
        assert_eq!(c.targets[0].key.fields(), ["tenantId".to_string(), "profile.email".to_string()]);
        assert_eq!(c.targets[0].key.single(), None);
        assert_eq!(parse(TARGET).unwrap().targets[0].key.single(), Some("participantsKey"));
        // `config check` writes it back as it was read.
        let written: toml::Table = toml::from_str(&c.to_redacted_toml()).unwrap();
        assert_eq!(written["target"][0]["key"], toml::Value::from(vec!["tenantId", "profile.email"]));
        assert!(parse(TARGET).unwrap().to_redacted_toml().contains(r#"key = "participantsKey""#));
    }

    #[test]
    fn bad_compound_keys_name_the_field() {
        for (bad, why) in [
            ("[]", "empty array"),
            ("[\"a\", \"a\"]", "appears twice"),
            ("[\"a\", \"$b\"]", "field 1 of the compound key"),
            ("[\"a\", \"b..c\"]", "field 1 of the compound key"),
            ("[\"\", \"b\"]", "field 0 of the compound key"),
            ("[\"a\", 3]", "invalid type"),
            ("3", "invalid type"),
        ] {
            let e = parse(&TARGET.replace("\"participantsKey\"", bad)).unwrap_err().to_string();
            assert!(e.contains("target[0].key") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn sample_size_is_bounded() {
        let e = parse(&format!("{TARGET}sample_size = 1001")).unwrap_err().to_string();
        assert!(e.contains("field `target[0].sample_size`") && e.contains("0 to 1000"), "{e}");
    }
}
