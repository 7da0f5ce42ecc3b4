//! `[target.canonical]`: what a target's key must equal, computed on the
//! server from other fields of the same document.
//!
//! The unique index proves stored keys are unique; the canonical value says
//! what each key *should* be (the sorted participants joined by `_`, the
//! email lowercased), so the `key_consistency` and `canonical_duplicates`
//! checks can see two documents meant to be one even when their stored keys
//! differ or are missing. The value is an aggregation expression: a preset
//! builds one ([`crate::checks::canonical`]), or `expression` is one, given
//! as Extended JSON and parsed here, at load, so a typo is a config error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use mongodb::bson::Bson;
use serde::{Deserialize, Serialize};

use super::duration::{check_all, option_duration_text, Bounded};
use super::{validate_schedule, MongoConfig};

/// How the canonical value is computed, short of a hand-written expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// `participants.map(String).sort().join(separator)`: the elements of one
    /// array field (or the values of several scalar fields), each turned into
    /// a string, sorted, joined. Needs MongoDB 5.2 (`$sortArray`).
    SortedJoin,
    /// The field's string value in lower case (`$toLower`: ASCII letters only).
    Lowercase,
    /// The field's string value without surrounding white space, in lower case.
    TrimLowercase,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::SortedJoin => "sorted_join",
            Preset::Lowercase => "lowercase",
            Preset::TrimLowercase => "trim_lowercase",
        }
    }
}

/// `[target.canonical]`: what the key must equal, computed on the server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CanonicalConfig {
    /// A ready-made derivation: `sorted_join`, `lowercase` or `trim_lowercase`.
    /// Give either `preset` or `expression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// The fields the preset reads. `sorted_join`: one array field (e.g.
    /// `["participants"]`) or several scalar fields. `lowercase` and
    /// `trim_lowercase`: one field; empty means the key itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// What `sorted_join` puts between the values.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Instead of a preset, any aggregation expression, as Extended JSON,
    /// e.g. `'{"$toLower": "$email"}'`. A result that is null, missing, `""`,
    /// `[]` or `{}` means "cannot be computed"; an expression that errors on
    /// a document (`$trim` of a number) fails the pass, so guard it with
    /// `$cond` on `$type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Cron expression (with seconds, UTC) for the two checks that read every
    /// document (`key_consistency`, `canonical_duplicates`); they also run
    /// once at start-up.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Upper bound for one canonical pass (sent as `maxTimeMS`); unset means
    /// `[mongodb] query_timeout`. A pass reads every document, so a large
    /// collection may need more than the index checks.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "option_duration_text")]
    pub query_timeout: Option<Duration>,
}

fn default_separator() -> String {
    "_".to_string()
}
fn default_schedule() -> String {
    "0 0 * * * *".to_string()
}

/// What the canonical value is made of, checked: the form the pipeline
/// builder takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Derivation {
    SortedJoin { fields: Vec<String>, separator: String },
    Lowercase { field: String, trim: bool },
    Expression(Bson),
}

impl CanonicalConfig {
    /// The checked derivation; `key` is the target's (single) key field, the
    /// default field of the case presets. Errors are `(field, problem)` with
    /// the field relative to `[target.canonical]`.
    pub fn derivation(&self, key: &str) -> Result<Derivation, (&'static str, String)> {
        match (self.preset, &self.expression) {
            (Some(_), Some(_)) => Err(("expression", "give either preset or expression, not both".into())),
            (None, None) => Err(("preset", "expected a preset (sorted_join, lowercase, trim_lowercase) or an expression".into())),
            (None, Some(text)) => {
                if !self.fields.is_empty() {
                    return Err(("fields", "fields go with a preset; an expression names its own fields".into()));
                }
                if self.separator != default_separator() {
                    return Err(("separator", "a separator goes with sorted_join; an expression writes its own".into()));
                }
                parse_expression(text).map(Derivation::Expression).map_err(|p| ("expression", p))
            }
            (Some(preset), None) => {
                for f in &self.fields {
                    check_field(f).map_err(|p| ("fields", p))?;
                }
                match preset {
                    Preset::SortedJoin => {
                        if self.fields.is_empty() {
                            return Err(("fields", "sorted_join needs the fields to join, e.g. [\"participants\"]".into()));
                        }
                        Ok(Derivation::SortedJoin {
                            fields: self.fields.clone(),
                            separator: self.separator.clone(),
                        })
                    }
                    Preset::Lowercase | Preset::TrimLowercase => {
                        if self.separator != default_separator() {
                            return Err(("separator", format!("{} takes no separator; it applies to sorted_join", preset.as_str())));
                        }
                        let field = match self.fields.as_slice() {
                            [] => key.to_string(),
                            [one] => one.clone(),
                            _ => return Err(("fields", format!("{} reads one field, found {}", preset.as_str(), self.fields.len()))),
                        };
                        Ok(Derivation::Lowercase {
                            field,
                            trim: preset == Preset::TrimLowercase,
                        })
                    }
                }
            }
        }
    }

    /// Every bounded field with its value (`query_timeout` has the range of `[mongodb]`'s).
    pub fn bounded(&self) -> Vec<(&'static str, Bounded)> {
        let timeout = self.query_timeout.unwrap_or(MongoConfig::QUERY_TIMEOUT.min);
        vec![("query_timeout", Bounded::Duration(timeout, MongoConfig::QUERY_TIMEOUT))]
    }

    /// Checks the section; errors are `(field, problem)` relative to it.
    pub fn validate(&self, key: &str) -> Result<(), (String, String)> {
        let relative = |(field, problem): (&str, String)| (field.to_string(), problem);
        self.derivation(key).map_err(relative)?;
        validate_schedule(&self.schedule).map_err(|p| ("schedule".to_string(), p))?;
        check_all("", self.bounded())
    }
}

/// A field path as the presets accept it: what `key` accepts.
pub fn check_field(f: &str) -> Result<(), String> {
    if f.is_empty() || f.starts_with('$') || f.split('.').any(|part| part.is_empty()) {
        return Err(format!("expected a field name or dotted path such as \"participants\", found {f:?}"));
    }
    Ok(())
}

/// Parses an expression given as Extended JSON: an object (an operator
/// expression) or a `"$field"` path. Never panics, never echoes the text.
pub fn parse_expression(text: &str) -> Result<Bson, String> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON (line {}, column {}): expected an aggregation expression such as '{{\"$toLower\": \"$email\"}}'", e.line(), e.column()))?;
    let bson = catch_unwind(AssertUnwindSafe(|| Bson::try_from(json)))
        .map_err(|_| "not valid Extended JSON".to_string())?
        .map_err(|_| "not valid Extended JSON (a `$`-type wrapper such as $oid or $date is malformed)".to_string())?;
    match &bson {
        Bson::Document(d) if !d.is_empty() => Ok(bson),
        Bson::String(s) if s.len() > 1 && s.starts_with('$') && !s.starts_with("$$") => Ok(bson),
        _ => Err("expected an expression object such as {\"$toLower\": \"$email\"} or a field path such as \"$email\"".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> CanonicalConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn sorted_join_takes_fields_and_a_separator() {
        let c = config("preset = \"sorted_join\"\nfields = [\"participants\"]\n");
        assert_eq!(
            c.derivation("participantsKey").unwrap(),
            Derivation::SortedJoin { fields: vec!["participants".into()], separator: "_".into() }
        );
        assert_eq!(c.schedule, "0 0 * * * *");
        assert_eq!(c.query_timeout, None);
        assert!(config("preset = \"lowercase\"\nquery_timeout = \"10m\"\n").validate("k").is_ok());
        let e = config("preset = \"lowercase\"\nquery_timeout = \"2days\"\n").validate("k").unwrap_err();
        assert_eq!(e.0, "query_timeout");
        let e = config("preset = \"sorted_join\"\n").derivation("k").unwrap_err();
        assert_eq!(e.0, "fields");
    }

    #[test]
    fn case_presets_default_to_the_key_and_read_one_field() {
        let c = config("preset = \"trim_lowercase\"\n");
        assert_eq!(c.derivation("email").unwrap(), Derivation::Lowercase { field: "email".into(), trim: true });
        let e = config("preset = \"lowercase\"\nfields = [\"a\", \"b\"]\n").derivation("k").unwrap_err();
        assert_eq!(e.0, "fields");
        let e = config("preset = \"lowercase\"\nseparator = \"-\"\n").derivation("k").unwrap_err();
        assert_eq!(e.0, "separator");
    }

    #[test]
    fn exactly_one_of_preset_and_expression() {
        assert_eq!(config("").derivation("k").unwrap_err().0, "preset");
        let both = config("preset = \"lowercase\"\nexpression = '\"$a\"'\n");
        assert_eq!(both.derivation("k").unwrap_err().0, "expression");
        let separated = config("expression = '\"$a\"'\nseparator = \"-\"\n");
        assert_eq!(separated.derivation("k").unwrap_err().0, "separator");
    }

    #[test]
    fn expressions_parse_as_extended_json_or_say_why() {
        let e = parse_expression(r#"{"$toLower": {"$trim": {"input": "$email"}}}"#).unwrap();
        assert!(matches!(e, Bson::Document(_)));
        assert!(parse_expression("\"$email\"").is_ok());
        assert!(parse_expression(r#"{"$eq": ["$a", {"$oid": "5f0c8f0b9d1e8a3b4c5d6e7f"}]}"#).is_ok());
        for bad in ["{", "", "42", "\"email\"", "\"$$ROOT\"", "{}", "[1]", r#"{"$eq": [{"$oid": "zz"}, 1]}"#] {
            let p = parse_expression(bad).unwrap_err();
            assert!(p.starts_with("not valid") || p.starts_with("expected"), "{bad}: {p}");
        }
    }

    #[test]
    fn field_paths_are_checked() {
        let e = config("preset = \"sorted_join\"\nfields = [\"$p\"]\n").derivation("k").unwrap_err();
        assert_eq!(e.0, "fields");
        assert!(config("preset = \"sorted_join\"\nfields = [\"a..b\"]\n").derivation("k").is_err());
    }
}
