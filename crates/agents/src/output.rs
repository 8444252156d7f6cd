//! What agents produce: typed, versioned outputs, and the validation that
//! turns a model's text into one.
//!
//! Stored form: one JSON object, `{"version": 1, "kind": "BRAND_VOICE", ...}`
//! with the kind's fields beside `version` and `kind`. A model is asked for
//! the fields only; `version` and `kind` are stamped here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kind::AgentKind;

/// The version of every output shape this crate writes.
pub const OUTPUT_VERSION: u32 = 1;

/// Bounds on an output, so that a runaway answer cannot be stored.
pub mod limits {
    /// Longest answer accepted, in bytes, before parsing.
    pub const ANSWER_BYTES: usize = 64 * 1024;
    /// Longest summary, positioning or description, in characters.
    pub const TEXT_CHARS: usize = 2_000;
    /// Longest list item, in characters.
    pub const ITEM_CHARS: usize = 500;
    /// Longest name (persona, phase), in characters.
    pub const NAME_CHARS: usize = 120;
    /// Most items in a list.
    pub const ITEMS: usize = 20;
    /// Most personas.
    pub const PERSONAS: usize = 10;
    /// Most phases.
    pub const PHASES: usize = 12;
    /// Longest phase, in weeks.
    pub const WEEKS: u32 = 52;
}

/// Output of [`AgentKind::BusinessStrategy`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessStrategy {
    /// Two or three sentences.
    pub summary: String,
    /// How the brand should be positioned.
    pub positioning: String,
    /// Measurable objectives.
    pub objectives: Vec<String>,
    /// Strengths, weaknesses, opportunities, threats.
    pub swot: Swot,
    /// What to do next.
    pub recommendations: Vec<String>,
}

/// A SWOT analysis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swot {
    /// Strengths.
    pub strengths: Vec<String>,
    /// Weaknesses.
    pub weaknesses: Vec<String>,
    /// Opportunities.
    pub opportunities: Vec<String>,
    /// Threats.
    pub threats: Vec<String>,
}

/// Output of [`AgentKind::BrandVoice`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandVoice {
    /// The voice in a few sentences.
    pub summary: String,
    /// Adjectives for the tone.
    pub tone: Vec<String>,
    /// What to do.
    #[serde(rename = "do")]
    pub dos: Vec<String>,
    /// What to avoid.
    #[serde(rename = "dont")]
    pub donts: Vec<String>,
    /// Example messages in the voice.
    pub sample_messages: Vec<String>,
}

/// Output of [`AgentKind::PersonaBuilder`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonaSet {
    /// The personas.
    pub personas: Vec<PersonaProfile>,
}

/// One persona.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonaProfile {
    /// Name.
    pub name: String,
    /// Who they are.
    pub description: String,
    /// What they want.
    pub goals: Vec<String>,
    /// What gets in their way.
    pub pain_points: Vec<String>,
    /// Where to reach them.
    pub channels: Vec<String>,
}

/// Output of [`AgentKind::CampaignPlanner`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignPlan {
    /// The plan in a few sentences.
    pub summary: String,
    /// Channels used.
    pub channels: Vec<String>,
    /// Phases, in order.
    pub phases: Vec<Phase>,
    /// How success is measured.
    pub kpis: Vec<String>,
}

/// One phase of a campaign plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Name.
    pub name: String,
    /// Duration in weeks.
    pub weeks: u32,
    /// What happens.
    pub activities: Vec<String>,
}

/// A validated output of any agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentOutput {
    /// See [`BusinessStrategy`].
    BusinessStrategy(BusinessStrategy),
    /// See [`BrandVoice`].
    BrandVoice(BrandVoice),
    /// See [`PersonaSet`].
    PersonaBuilder(PersonaSet),
    /// See [`CampaignPlan`].
    CampaignPlanner(CampaignPlan),
}

/// Why a model's answer was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    /// Not a JSON object at all.
    #[error("the answer is not a JSON object: {reason}")]
    Malformed {
        /// What is wrong, without the answer's text.
        reason: String,
    },
    /// A JSON object, but not of the documented shape.
    #[error("the answer is invalid: `{field}` {problem}")]
    Invalid {
        /// The offending field, as a path (`swot.threats[1]`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl AgentOutput {
    /// Which agent produced it.
    pub fn kind(&self) -> AgentKind {
        match self {
            AgentOutput::BusinessStrategy(_) => AgentKind::BusinessStrategy,
            AgentOutput::BrandVoice(_) => AgentKind::BrandVoice,
            AgentOutput::PersonaBuilder(_) => AgentKind::PersonaBuilder,
            AgentOutput::CampaignPlanner(_) => AgentKind::CampaignPlanner,
        }
    }

    /// The stored form: `{"version": 1, "kind": ..., fields...}`.
    pub fn to_value(&self) -> Value {
        #[expect(
            clippy::expect_used,
            reason = "structs of strings, lists and integers always serialize"
        )]
        let mut value = serde_json::to_value(self).expect("an output serializes");
        if let Value::Object(map) = &mut value {
            map.insert("version".to_owned(), Value::from(OUTPUT_VERSION));
        }
        value
    }

    /// Parses a model's answer for `kind`: one JSON object, possibly inside a
    /// Markdown code fence, holding the kind's fields (`version`, `kind` and
    /// unknown fields are ignored). Strings are trimmed; every field is
    /// required, non-empty and bounded by [`limits`].
    pub fn parse(kind: AgentKind, answer: &str) -> Result<Self, OutputError> {
        if answer.len() > limits::ANSWER_BYTES {
            return Err(malformed(format!(
                "it is longer than {} bytes",
                limits::ANSWER_BYTES
            )));
        }
        let text = strip_fence(answer);
        if text.is_empty() {
            return Err(malformed("it is empty"));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(malformed("the JSON is not an object"));
        };
        Self::from_fields(kind, &map)
    }

    /// Reads a stored output back, checking its version and kind and
    /// validating it again.
    pub fn from_value(value: &Value) -> Result<Self, OutputError> {
        let Value::Object(map) = value else {
            return Err(malformed("the JSON is not an object"));
        };
        match map.get("version").and_then(Value::as_u64) {
            Some(v) if v == u64::from(OUTPUT_VERSION) => {}
            _ => return Err(invalid("version", format!("must be {OUTPUT_VERSION}"))),
        }
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .and_then(|k| k.parse::<AgentKind>().ok())
            .ok_or_else(|| invalid("kind", "must name an agent"))?;
        Self::from_fields(kind, map)
    }

    fn from_fields(kind: AgentKind, map: &Map<String, Value>) -> Result<Self, OutputError> {
        let root = Obj {
            map,
            path: String::new(),
        };
        Ok(match kind {
            AgentKind::BusinessStrategy => {
                let swot = root.object("swot")?;
                AgentOutput::BusinessStrategy(BusinessStrategy {
                    summary: root.text("summary", limits::TEXT_CHARS)?,
                    positioning: root.text("positioning", limits::TEXT_CHARS)?,
                    objectives: root.items("objectives")?,
                    swot: Swot {
                        strengths: swot.items("strengths")?,
                        weaknesses: swot.items("weaknesses")?,
                        opportunities: swot.items("opportunities")?,
                        threats: swot.items("threats")?,
                    },
                    recommendations: root.items("recommendations")?,
                })
            }
            AgentKind::BrandVoice => AgentOutput::BrandVoice(BrandVoice {
                summary: root.text("summary", limits::TEXT_CHARS)?,
                tone: root.items("tone")?,
                dos: root.items("do")?,
                donts: root.items("dont")?,
                sample_messages: root.items("sample_messages")?,
            }),
            AgentKind::PersonaBuilder => AgentOutput::PersonaBuilder(PersonaSet {
                personas: root
                    .objects("personas", limits::PERSONAS)?
                    .iter()
                    .map(|p| {
                        Ok(PersonaProfile {
                            name: p.text("name", limits::NAME_CHARS)?,
                            description: p.text("description", limits::TEXT_CHARS)?,
                            goals: p.items("goals")?,
                            pain_points: p.items("pain_points")?,
                            channels: p.items("channels")?,
                        })
                    })
                    .collect::<Result<_, OutputError>>()?,
            }),
            AgentKind::CampaignPlanner => AgentOutput::CampaignPlanner(CampaignPlan {
                summary: root.text("summary", limits::TEXT_CHARS)?,
                channels: root.items("channels")?,
                phases: root
                    .objects("phases", limits::PHASES)?
                    .iter()
                    .map(|p| {
                        Ok(Phase {
                            name: p.text("name", limits::NAME_CHARS)?,
                            weeks: p.weeks("weeks")?,
                            activities: p.items("activities")?,
                        })
                    })
                    .collect::<Result<_, OutputError>>()?,
                kpis: root.items("kpis")?,
            }),
        })
    }
}

/// Removes a surrounding Markdown code fence (```` ```json ... ``` ````), as
/// models often add one although asked not to.
fn strip_fence(answer: &str) -> &str {
    let text = answer.trim();
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    // The info string (`json`) runs to the end of the first line; a fence
    // on one line has no line break to end it at.
    let body = match rest.split_once('\n') {
        Some((_, body)) => body,
        None => rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()),
    };
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

fn malformed(reason: impl Into<String>) -> OutputError {
    OutputError::Malformed {
        reason: reason.into(),
    }
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> OutputError {
    OutputError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A JSON object being read, with its path for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&self, key: &str) -> Result<&'a Value, OutputError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Err(invalid(self.field(key), "is missing")),
            Some(value) => Ok(value),
        }
    }

    fn text(&self, key: &str, max: usize) -> Result<String, OutputError> {
        string(self.field(key), self.get(key)?, max)
    }

    fn items(&self, key: &str) -> Result<Vec<String>, OutputError> {
        let field = self.field(key);
        list(&field, self.get(key)?, limits::ITEMS)?
            .iter()
            .enumerate()
            .map(|(i, item)| string(format!("{field}[{i}]"), item, limits::ITEM_CHARS))
            .collect()
    }

    fn object(&self, key: &str) -> Result<Obj<'a>, OutputError> {
        let field = self.field(key);
        match self.get(key)? {
            Value::Object(map) => Ok(Obj { map, path: field }),
            _ => Err(invalid(field, "must be an object")),
        }
    }

    fn objects(&self, key: &str, max: usize) -> Result<Vec<Obj<'a>>, OutputError> {
        let field = self.field(key);
        list(&field, self.get(key)?, max)?
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(map) => Ok(Obj {
                    map,
                    path: format!("{field}[{i}]"),
                }),
                _ => Err(invalid(format!("{field}[{i}]"), "must be an object")),
            })
            .collect()
    }

    fn weeks(&self, key: &str) -> Result<u32, OutputError> {
        let field = self.field(key);
        self.get(key)?
            .as_u64()
            .and_then(|w| u32::try_from(w).ok())
            .filter(|w| (1..=limits::WEEKS).contains(w))
            .ok_or_else(|| {
                invalid(
                    field,
                    format!("must be a whole number from 1 to {}", limits::WEEKS),
                )
            })
    }
}

fn string(field: String, value: &Value, max: usize) -> Result<String, OutputError> {
    let Value::String(s) = value else {
        return Err(invalid(field, "must be a string"));
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(s.to_owned())
}

fn list<'v>(field: &str, value: &'v Value, max: usize) -> Result<&'v Vec<Value>, OutputError> {
    let Value::Array(items) = value else {
        return Err(invalid(field, "must be a list"));
    };
    if items.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if items.len() > max {
        return Err(invalid(field, format!("must hold at most {max} items")));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn voice() -> Value {
        json!({
            "summary": " Warm and direct. ",
            "tone": ["warm", "direct"],
            "do": ["use short sentences"],
            "dont": ["use jargon"],
            "sample_messages": ["Hello there."]
        })
    }

    #[test]
    fn a_fenced_answer_is_accepted_and_trimmed() {
        let answer = format!("```json\n{}\n```", voice());
        let output = AgentOutput::parse(AgentKind::BrandVoice, &answer);
        let Ok(AgentOutput::BrandVoice(v)) = output else {
            panic!("expected a brand voice, got {output:?}");
        };
        assert_eq!(v.summary, "Warm and direct.");
        assert!(AgentOutput::parse(AgentKind::BrandVoice, &format!("```\n{}```", voice())).is_ok());
    }

    #[test]
    fn the_stored_form_is_versioned_and_reads_back() {
        let output = AgentOutput::parse(AgentKind::BrandVoice, &voice().to_string());
        let Ok(output) = output else {
            panic!("{output:?}");
        };
        let stored = output.to_value();
        assert_eq!(stored["version"], json!(1));
        assert_eq!(stored["kind"], json!("BRAND_VOICE"));
        assert_eq!(stored["do"], json!(["use short sentences"]));
        assert_eq!(AgentOutput::from_value(&stored), Ok(output));

        let mut future = stored.clone();
        future["version"] = json!(2);
        assert!(AgentOutput::from_value(&future).is_err());
    }

    #[test]
    fn problems_name_the_field() {
        let field_of = |kind, value: Value| match AgentOutput::parse(kind, &value.to_string()) {
            Err(OutputError::Invalid { field, .. }) => field,
            other => panic!("expected invalid output, got {other:?}"),
        };
        let mut v = voice();
        v["tone"] = json!([]);
        assert_eq!(field_of(AgentKind::BrandVoice, v), "tone");
        let mut v = voice();
        v["dont"] = json!(["ok", "  "]);
        assert_eq!(field_of(AgentKind::BrandVoice, v), "dont[1]");
        let mut v = voice();
        v["sample_messages"] = json!(vec!["x"; limits::ITEMS + 1]);
        assert_eq!(field_of(AgentKind::BrandVoice, v), "sample_messages");
        let mut v = voice();
        v["summary"] = json!("x".repeat(limits::TEXT_CHARS + 1));
        assert_eq!(field_of(AgentKind::BrandVoice, v), "summary");
        let plan = json!({
            "summary": "s", "channels": ["email"], "kpis": ["ctr"],
            "phases": [{"name": "launch", "weeks": 0, "activities": ["go"]}]
        });
        assert_eq!(
            field_of(AgentKind::CampaignPlanner, plan),
            "phases[0].weeks"
        );
        let strategy = json!({
            "summary": "s", "positioning": "p", "objectives": ["o"],
            "recommendations": ["r"],
            "swot": {"strengths": ["a"], "weaknesses": ["b"], "opportunities": ["c"]}
        });
        assert_eq!(
            field_of(AgentKind::BusinessStrategy, strategy),
            "swot.threats"
        );
    }

    #[test]
    fn non_objects_are_malformed() {
        for answer in [
            "",
            "   ",
            "not json",
            "[1, 2]",
            "{\"summary\": ",
            "```json\n```",
        ] {
            assert!(
                matches!(
                    AgentOutput::parse(AgentKind::BrandVoice, answer),
                    Err(OutputError::Malformed { .. })
                ),
                "{answer:?}"
            );
        }
    }
}
