//! `[[target]] key`: the field, or the fields in order, whose values must be
//! unique together.
//!
//! One field is written as a string (`key = "participantsKey"`), a compound
//! key as an array (`key = ["tenantId", "email"]`) that is exactly the unique
//! index's key pattern, in its order. The checks read the fields with
//! [`KeySpec::fields`] and take their single-field paths (hinted index walks)
//! only where [`KeySpec::single`] is `Some`. The key is written back as it was
//! read: a string for one field, an array otherwise (JSON output, `config
//! check`), and shown to people by [`Display`](std::fmt::Display) as the
//! fields joined by `, `.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The field names of a target's key, in the unique index's order; never empty
/// once validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec(Vec<String>);

impl KeySpec {
    /// The key's fields in order: one for a single-field key.
    pub fn fields(&self) -> &[String] {
        &self.0
    }

    /// The field of a single-field key; `None` for a compound key.
    pub fn single(&self) -> Option<&str> {
        match self.0.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// The unique index's key pattern as an operator writes it:
    /// `{participantsKey: 1}`, `{tenantId: 1, email: 1}`.
    pub fn pattern(&self) -> String {
        let fields: Vec<String> = self.0.iter().map(|f| format!("{f}: 1")).collect();
        format!("{{{}}}", fields.join(", "))
    }

    /// Why the key is unusable, without naming the config field (the caller
    /// adds `target[N].key`): every field non-empty, not starting with `$`,
    /// without an empty dotted part, and no field twice.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |f: &str| f.is_empty() || f.starts_with('$') || f.split('.').any(str::is_empty);
        if let Some(field) = self.single() {
            if bad(field) {
                return Err(format!("expected a field name or dotted path such as \"participantsKey\", found {field:?}"));
            }
            return Ok(());
        }
        if self.0.is_empty() {
            return Err("expected a field name or a non-empty array of field names such as [\"tenantId\", \"email\"], found an empty array".into());
        }
        let mut seen = HashSet::new();
        for (i, field) in self.0.iter().enumerate() {
            if bad(field) {
                return Err(format!("field {i} of the compound key: expected a field name or dotted path such as \"tenantId\", found {field:?}"));
            }
            if !seen.insert(field.as_str()) {
                return Err(format!("field {field:?} appears twice in the compound key"));
            }
        }
        Ok(())
    }
}

impl From<&str> for KeySpec {
    fn from(field: &str) -> Self {
        KeySpec(vec![field.to_string()])
    }
}

impl From<Vec<String>> for KeySpec {
    fn from(fields: Vec<String>) -> Self {
        KeySpec(fields)
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

impl Serialize for KeySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.single() {
            Some(field) => s.serialize_str(field),
            None => self.0.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = KeySpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name or an array of field names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeySpec, E> {
                Ok(KeySpec::from(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeySpec, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = seq.next_element::<String>()? {
                    fields.push(field);
                }
                Ok(KeySpec(fields))
            }
        }
        d.deserialize_any(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(fields: &[&str]) -> KeySpec {
        KeySpec(fields.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn single_and_compound_keys_say_what_they_are() {
        let one = KeySpec::from("participantsKey");
        assert_eq!((one.single(), one.fields().len()), (Some("participantsKey"), 1));
        assert_eq!((one.to_string(), one.pattern()), ("participantsKey".into(), "{participantsKey: 1}".into()));
        let two = key(&["tenantId", "email"]);
        assert_eq!(two.single(), None);
        assert_eq!(two.fields(), ["tenantId".to_string(), "email".to_string()]);
        assert_eq!((two.to_string(), two.pattern()), ("tenantId, email".into(), "{tenantId: 1, email: 1}".into()));
    }

    #[test]
    fn the_key_is_written_back_as_it_was_read() {
        assert_eq!(serde_json::to_value(KeySpec::from("k")).unwrap(), serde_json::json!("k"));
        assert_eq!(serde_json::to_value(key(&["a", "b.c"])).unwrap(), serde_json::json!(["a", "b.c"]));
        let read: KeySpec = serde_json::from_value(serde_json::json!(["a", "b.c"])).unwrap();
        assert_eq!(read, key(&["a", "b.c"]));
    }

    #[test]
    fn every_field_is_validated() {
        assert!(key(&["a", "b.c"]).validate().is_ok());
        assert!(key(&[]).validate().unwrap_err().contains("empty array"));
        assert!(key(&["a", "a"]).validate().unwrap_err().contains("\"a\" appears twice"));
        for bad in ["", "$a", "a..b", ".a", "a."] {
            let e = key(&["ok", bad]).validate().unwrap_err();
            assert!(e.contains("field 1 of the compound key"), "{e}");
            assert!(KeySpec::from(bad).validate().is_err(), "{bad:?}");
        }
    }
}
