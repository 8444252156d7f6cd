//! Validated values: parse, don't validate. Each type has one constructor
//! that returns a [`ValidationError`] naming the field, so an unchecked string
//! never reaches persistence.

use std::fmt;

use crate::error::ValidationError;

/// A URL-safe identifier, unique per scope: 1–63 of `a-z`, `0-9` and `-`,
/// neither starting nor ending with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Parses a slug for the input field `field`.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ValidationError> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if s.is_empty() || s.len() > 63 {
            return Err(ValidationError::new(
                field,
                "must be 1 to 63 characters long",
            ));
        }
        if !ok_chars {
            return Err(ValidationError::new(
                field,
                "may contain only lowercase letters, digits and '-'",
            ));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(ValidationError::new(
                field,
                "must not start or end with '-'",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_name(field: &'static str, s: &str, max: usize) -> Result<String, ValidationError> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters long"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Parses a name for the input field `field`: trimmed, non-empty,
            /// bounded, without control characters.
            pub fn parse(field: &'static str, s: &str) -> Result<Self, ValidationError> {
                parse_name(field, s, $max).map(Self)
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// An organization's display name.
    OrganizationName,
    200
);
name_type!(
    /// A client's display name.
    ClientName,
    200
);
name_type!(
    /// A campaign's name.
    CampaignName,
    200
);

name_type!(
    /// A persona's name.
    PersonaName,
    200
);

/// A JSON object given by a user (brand guidelines, persona attributes,
/// settings): an object, at most `MAX_BYTES` when serialized and at most
/// `MAX_DEPTH` levels deep, so stored documents stay small and prompts stay
/// bounded.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonDocument(serde_json::Value);

impl JsonDocument {
    /// Largest accepted document, serialized.
    pub const MAX_BYTES: usize = 64 * 1024;
    /// Deepest accepted nesting.
    pub const MAX_DEPTH: usize = 8;

    /// Parses `value` given for `field`.
    pub fn parse(field: &'static str, value: serde_json::Value) -> Result<Self, ValidationError> {
        if !value.is_object() {
            return Err(ValidationError::new(field, "must be a JSON object"));
        }
        if depth(&value) > Self::MAX_DEPTH {
            return Err(ValidationError::new(
                field,
                format!("must be nested at most {} levels deep", Self::MAX_DEPTH),
            ));
        }
        let size = serde_json::to_vec(&value)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > Self::MAX_BYTES {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} bytes", Self::MAX_BYTES),
            ));
        }
        Ok(Self(value))
    }

    /// The document.
    pub fn as_value(&self) -> &serde_json::Value {
        &self.0
    }

    /// The document, owned.
    pub fn into_value(self) -> serde_json::Value {
        self.0
    }
}

/// What a key of a document that agents read must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyShape {
    /// A text.
    Text,
    /// A list of texts (a lone text reads as a list of one).
    Texts,
}

/// A key agents read from a document: its name, the field path an error
/// names, and what it holds.
pub type KnownKey = (&'static str, &'static str, KeyShape);

/// The keys of brand guidelines that agents read and the API types; any
/// other key is kept as given.
pub const BRAND_GUIDELINE_KEYS: &[KnownKey] = &[
    ("voice", "content.voice", KeyShape::Text),
    ("tagline", "content.tagline", KeyShape::Text),
    ("audience", "content.audience", KeyShape::Text),
    ("tone", "content.tone", KeyShape::Texts),
    ("values", "content.values", KeyShape::Texts),
    ("pillars", "content.pillars", KeyShape::Texts),
    ("do", "content.do", KeyShape::Texts),
    ("dont", "content.dont", KeyShape::Texts),
    ("vocabulary", "content.vocabulary", KeyShape::Texts),
];

/// The keys of persona attributes that agents read and the API types; any
/// other key is kept as given.
pub const PERSONA_ATTRIBUTE_KEYS: &[KnownKey] = &[
    ("ageRange", "attributes.ageRange", KeyShape::Text),
    ("occupation", "attributes.occupation", KeyShape::Text),
    ("location", "attributes.location", KeyShape::Text),
    ("goals", "attributes.goals", KeyShape::Texts),
    ("painPoints", "attributes.painPoints", KeyShape::Texts),
    ("channels", "attributes.channels", KeyShape::Texts),
    ("interests", "attributes.interests", KeyShape::Texts),
];

impl JsonDocument {
    /// Parses `value` given for `field` like [`JsonDocument::parse`], and
    /// checks that each of the `known` keys it has (not null) holds what
    /// it must.
    pub fn parse_typed(
        field: &'static str,
        value: serde_json::Value,
        known: &[KnownKey],
    ) -> Result<Self, ValidationError> {
        let doc = Self::parse(field, value)?;
        for (key, path, shape) in known {
            let fits = match (doc.0.get(*key), shape) {
                (None | Some(serde_json::Value::Null), _) => true,
                (Some(serde_json::Value::String(_)), _) => true,
                (Some(serde_json::Value::Array(items)), KeyShape::Texts) => {
                    items.iter().all(serde_json::Value::is_string)
                }
                _ => false,
            };
            if !fits {
                let what = match shape {
                    KeyShape::Text => "must be a string",
                    KeyShape::Texts => "must be a string or a list of strings",
                };
                return Err(ValidationError::new(path, what));
            }
        }
        Ok(doc)
    }
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Parses an optional long text (objective, description): trimmed, at most
/// `max` characters; blank becomes `None`.
pub fn parse_optional_text(
    field: &'static str,
    s: Option<&str>,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > max => Err(ValidationError::new(
            field,
            format!("must be at most {max} characters long"),
        )),
        // PostgreSQL text cannot hold NUL.
        Some(t) if t.contains('\0') => Err(ValidationError::new(
            field,
            "must not contain NUL characters",
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_the_documented_alphabet_only() {
        assert!(Slug::parse("slug", "nike-2026").is_ok());
        for bad in [
            "",
            "-nike",
            "nike-",
            "Nike",
            "ni ke",
            "ni_ke",
            &"a".repeat(64),
        ] {
            let err = Slug::parse("slug", bad).expect_err(bad);
            assert_eq!(err.field, "slug");
        }
    }

    #[test]
    fn json_documents_must_be_small_shallow_objects() {
        assert!(JsonDocument::parse("content", serde_json::json!({"tone": ["bold"]})).is_ok());
        assert_eq!(
            JsonDocument::parse("content", serde_json::json!([1])).map_err(|e| e.field),
            Err("content")
        );
        let mut deep = serde_json::json!({});
        for _ in 0..10 {
            deep = serde_json::json!({ "a": deep });
        }
        assert!(JsonDocument::parse("content", deep).is_err());
        let big = serde_json::json!({ "a": "x".repeat(JsonDocument::MAX_BYTES) });
        assert!(JsonDocument::parse("content", big).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            CampaignName::parse("name", "  Spring launch ").map(|n| n.as_str().to_owned()),
            Ok("Spring launch".to_owned())
        );
        assert!(CampaignName::parse("name", "   ").is_err());
        assert!(CampaignName::parse("name", &"x".repeat(201)).is_err());
        assert!(CampaignName::parse("name", "a\u{0}b").is_err());
        assert!(parse_optional_text("objective", Some("a\u{0}b"), 100).is_err());
        assert_eq!(
            parse_optional_text("objective", Some(" two\nlines\t"), 100),
            Ok(Some("two\nlines".to_owned()))
        );
    }
}
