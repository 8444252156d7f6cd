//! What the user asks of one agent: a typed input per agent, bounded, and
//! stored with the run beside its instructions.
//!
//! Stored form: the run's input object holds the agent's input under the
//! agent's key, as the API names it (`{"instructions": ...,
//! "personaBuilder": {"count": 3}}`). A run without one (every run queued
//! before typed inputs existed) uses the agent's defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::InputError;
use crate::kind::AgentKind;
use crate::output::{AgentOutput, OutputError};

/// Bounds on typed inputs.
pub mod limits {
    /// Strategy horizons, in months.
    pub const HORIZON_MONTHS: std::ops::RangeInclusive<u32> = 1..=36;
    /// Most goals, channels or tone words.
    pub const ITEMS: usize = 10;
    /// Longest goal, in characters.
    pub const GOAL_CHARS: usize = 200;
    /// Longest channel or tone word, in characters.
    pub const WORD_CHARS: usize = 60;
    /// Personas a persona builder may be asked for (as many as an output
    /// holds).
    pub const PERSONAS: std::ops::RangeInclusive<u32> = 1..=10;
    /// Length of a campaign plan, in weeks.
    pub const WEEKS: std::ops::RangeInclusive<u32> = 1..=52;
    /// A campaign budget, in whole units of the organization's currency.
    pub const BUDGET: std::ops::RangeInclusive<u32> = 1..=1_000_000_000;
}

/// Input of [`AgentKind::BusinessStrategy`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BusinessStrategyInput {
    /// How far ahead the strategy looks, in months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_months: Option<u32>,
    /// Business goals the strategy must serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
}

/// Input of [`AgentKind::BrandVoice`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrandVoiceInput {
    /// Channels to write sample messages for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Words for the tone to lead with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tone: Vec<String>,
}

/// Input of [`AgentKind::PersonaBuilder`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaBuilderInput {
    /// Exactly how many personas to build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

/// Input of [`AgentKind::CampaignPlanner`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignPlannerInput {
    /// The campaign's length in weeks: the phases' weeks add up to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weeks: Option<u32>,
    /// Channels the plan must use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The total budget, in whole units of the organization's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u32>,
}

/// The typed input of one run, of the run's agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AgentInput {
    /// See [`BusinessStrategyInput`].
    BusinessStrategy(BusinessStrategyInput),
    /// See [`BrandVoiceInput`].
    BrandVoice(BrandVoiceInput),
    /// See [`PersonaBuilderInput`].
    PersonaBuilder(PersonaBuilderInput),
    /// See [`CampaignPlannerInput`].
    CampaignPlanner(CampaignPlannerInput),
}

impl AgentInput {
    /// The defaults of `kind`: what a run without a typed input uses.
    pub fn default_for(kind: AgentKind) -> Self {
        match kind {
            AgentKind::BusinessStrategy => Self::BusinessStrategy(Default::default()),
            AgentKind::BrandVoice => Self::BrandVoice(Default::default()),
            AgentKind::PersonaBuilder => Self::PersonaBuilder(Default::default()),
            AgentKind::CampaignPlanner => Self::CampaignPlanner(Default::default()),
        }
    }

    /// The agent it is for.
    pub fn kind(&self) -> AgentKind {
        match self {
            Self::BusinessStrategy(_) => AgentKind::BusinessStrategy,
            Self::BrandVoice(_) => AgentKind::BrandVoice,
            Self::PersonaBuilder(_) => AgentKind::PersonaBuilder,
            Self::CampaignPlanner(_) => AgentKind::CampaignPlanner,
        }
    }

    /// The key it is given under, in the API and in storage
    /// (`personaBuilder`).
    pub const fn key(kind: AgentKind) -> &'static str {
        match kind {
            AgentKind::BusinessStrategy => "businessStrategy",
            AgentKind::BrandVoice => "brandVoice",
            AgentKind::PersonaBuilder => "personaBuilder",
            AgentKind::CampaignPlanner => "campaignPlanner",
        }
    }

    /// The input of a run of `kind` from the inputs given with it (at most
    /// one, and of `kind`), validated; the defaults when none is given.
    /// Errors name the field under `prefix` (`input.personaBuilder.count`).
    pub fn for_run(
        kind: AgentKind,
        given: Vec<AgentInput>,
        prefix: &str,
    ) -> Result<Self, InputError> {
        let mut chosen = None;
        for input in given {
            let key = format!("{prefix}{}", Self::key(input.kind()));
            if input.kind() != kind {
                return Err(InputError::new(
                    key,
                    format!(
                        "is the input of {}, not of {}: give `{prefix}{}` or nothing",
                        input.kind(),
                        kind,
                        Self::key(kind)
                    ),
                ));
            }
            if chosen.is_some() {
                return Err(InputError::new(key, "is given twice"));
            }
            chosen = Some(input);
        }
        let input = chosen.unwrap_or_else(|| Self::default_for(kind));
        input.validate(prefix)?;
        Ok(input)
    }

    /// Checks the bounds in [`limits`]; errors name the field under
    /// `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), InputError> {
        let at = |field: &str| format!("{prefix}{}.{field}", Self::key(self.kind()));
        match self {
            Self::BusinessStrategy(i) => {
                in_range(
                    at("horizonMonths"),
                    i.horizon_months,
                    limits::HORIZON_MONTHS,
                )?;
                words(at("goals"), &i.goals, limits::GOAL_CHARS)
            }
            Self::BrandVoice(i) => {
                words(at("channels"), &i.channels, limits::WORD_CHARS)?;
                words(at("tone"), &i.tone, limits::WORD_CHARS)
            }
            Self::PersonaBuilder(i) => in_range(at("count"), i.count, limits::PERSONAS),
            Self::CampaignPlanner(i) => {
                in_range(at("weeks"), i.weeks, limits::WEEKS)?;
                words(at("channels"), &i.channels, limits::WORD_CHARS)?;
                in_range(at("budget"), i.budget, limits::BUDGET)
            }
        }
    }

    /// Trims list items, as they are stored.
    pub fn normalized(mut self) -> Self {
        let trim = |items: &mut Vec<String>| {
            for item in items.iter_mut() {
                *item = item.trim().to_owned();
            }
        };
        match &mut self {
            Self::BusinessStrategy(i) => trim(&mut i.goals),
            Self::BrandVoice(i) => {
                trim(&mut i.channels);
                trim(&mut i.tone);
            }
            Self::PersonaBuilder(_) => {}
            Self::CampaignPlanner(i) => trim(&mut i.channels),
        }
        self
    }

    /// Its fields alone, as stored under [`AgentInput::key`].
    pub fn fields(&self) -> Value {
        let value = match self {
            Self::BusinessStrategy(i) => serde_json::to_value(i),
            Self::BrandVoice(i) => serde_json::to_value(i),
            Self::PersonaBuilder(i) => serde_json::to_value(i),
            Self::CampaignPlanner(i) => serde_json::to_value(i),
        };
        value.unwrap_or_else(|_| Value::Object(Map::new()))
    }

    /// Reads the input of a run of `kind` from the run's stored input
    /// object; the defaults when it holds none.
    pub fn from_stored(kind: AgentKind, stored: &Value) -> Result<Self, InputError> {
        let Some(fields) = stored.get(Self::key(kind)).filter(|v| !v.is_null()) else {
            return Ok(Self::default_for(kind));
        };
        let field = Self::key(kind);
        let bad = |e: serde_json::Error| InputError::new(field, format!("is unreadable ({e})"));
        let input = match kind {
            AgentKind::BusinessStrategy => {
                Self::BusinessStrategy(serde_json::from_value(fields.clone()).map_err(bad)?)
            }
            AgentKind::BrandVoice => {
                Self::BrandVoice(serde_json::from_value(fields.clone()).map_err(bad)?)
            }
            AgentKind::PersonaBuilder => {
                Self::PersonaBuilder(serde_json::from_value(fields.clone()).map_err(bad)?)
            }
            AgentKind::CampaignPlanner => {
                Self::CampaignPlanner(serde_json::from_value(fields.clone()).map_err(bad)?)
            }
        };
        input.validate("")?;
        Ok(input)
    }

    /// Checks that an output honours what the input fixes: the number of
    /// personas, the length of a campaign plan.
    pub fn check(&self, output: &AgentOutput) -> Result<(), OutputError> {
        match (self, output) {
            (
                Self::PersonaBuilder(PersonaBuilderInput { count: Some(n) }),
                AgentOutput::PersonaBuilder(set),
            ) if set.personas.len() != *n as usize => Err(OutputError::Invalid {
                field: "personas".to_owned(),
                problem: format!("must hold exactly {n} personas, as asked"),
            }),
            (
                Self::CampaignPlanner(CampaignPlannerInput { weeks: Some(n), .. }),
                AgentOutput::CampaignPlanner(plan),
            ) if plan.phases.iter().map(|p| u64::from(p.weeks)).sum::<u64>() != u64::from(*n) => {
                Err(OutputError::Invalid {
                    field: "phases".to_owned(),
                    problem: format!("must last {n} weeks in all, as asked"),
                })
            }
            _ => Ok(()),
        }
    }

    /// `output` made to fit what was asked where that loses nothing asked
    /// for (a model that drafted more personas than asked keeps the first
    /// ones), then [`AgentInput::check`]ed: an answer with too few personas,
    /// or a plan of another length, is refused.
    pub fn fit(&self, mut output: AgentOutput) -> Result<AgentOutput, OutputError> {
        if let (
            Self::PersonaBuilder(PersonaBuilderInput { count: Some(n) }),
            AgentOutput::PersonaBuilder(set),
        ) = (self, &mut output)
        {
            set.personas.truncate(*n as usize);
        }
        self.check(&output).map(|()| output)
    }

    /// Whether it asks for nothing beyond the agent's defaults.
    pub fn is_default(&self) -> bool {
        *self == Self::default_for(self.kind())
    }
}

fn in_range(
    field: String,
    value: Option<u32>,
    range: std::ops::RangeInclusive<u32>,
) -> Result<(), InputError> {
    match value {
        Some(v) if !range.contains(&v) => Err(InputError::new(
            field,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
        _ => Ok(()),
    }
}

fn words(field: String, items: &[String], max_chars: usize) -> Result<(), InputError> {
    if items.len() > limits::ITEMS {
        return Err(InputError::new(
            field,
            format!("must hold at most {} items", limits::ITEMS),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(InputError::new(
                format!("{field}[{i}]"),
                "must not be empty",
            ));
        }
        if item.chars().count() > max_chars {
            return Err(InputError::new(
                format!("{field}[{i}]"),
                format!("must be at most {max_chars} characters"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::output::{PersonaProfile, PersonaSet};

    fn personas(n: usize) -> AgentOutput {
        AgentOutput::PersonaBuilder(PersonaSet {
            personas: (0..n)
                .map(|i| PersonaProfile {
                    name: format!("P{i}"),
                    description: "someone".into(),
                    goals: vec!["a goal".into()],
                    pain_points: vec!["a pain".into()],
                    channels: vec!["email".into()],
                })
                .collect(),
        })
    }

    #[test]
    fn extra_personas_are_dropped_and_too_few_are_refused() {
        let input = AgentInput::PersonaBuilder(PersonaBuilderInput { count: Some(3) });
        let AgentOutput::PersonaBuilder(kept) = input.fit(personas(5)).unwrap() else {
            panic!("a persona set");
        };
        let names: Vec<&str> = kept.personas.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["P0", "P1", "P2"], "the first ones, in order");
        assert_eq!(input.fit(personas(3)).unwrap(), personas(3));
        let Err(OutputError::Invalid { field, .. }) = input.fit(personas(2)) else {
            panic!("too few personas must be refused");
        };
        assert_eq!(field, "personas");
        // Without a count, whatever the model drafted is kept.
        let any = AgentInput::PersonaBuilder(PersonaBuilderInput { count: None });
        assert_eq!(any.fit(personas(7)).unwrap(), personas(7));
    }

    #[test]
    fn a_mismatched_or_doubled_input_names_its_field() {
        let count = |n| AgentInput::PersonaBuilder(PersonaBuilderInput { count: Some(n) });
        let err = AgentInput::for_run(AgentKind::BrandVoice, vec![count(3)], "input.");
        assert_eq!(err.map_err(|e| e.field), Err("input.personaBuilder".into()));
        let err = AgentInput::for_run(AgentKind::PersonaBuilder, vec![count(3), count(2)], "");
        assert_eq!(err.map_err(|e| e.field), Err("personaBuilder".into()));
        let err = AgentInput::for_run(AgentKind::PersonaBuilder, vec![count(0)], "input.");
        assert_eq!(
            err.map_err(|e| e.field),
            Err("input.personaBuilder.count".into())
        );
        assert_eq!(
            AgentInput::for_run(AgentKind::PersonaBuilder, vec![count(10)], "input."),
            Ok(count(10))
        );
        assert_eq!(
            AgentInput::for_run(AgentKind::CampaignPlanner, Vec::new(), ""),
            Ok(AgentInput::default_for(AgentKind::CampaignPlanner))
        );
    }

    #[test]
    fn list_items_are_bounded_and_name_their_index() {
        let plan = AgentInput::CampaignPlanner(CampaignPlannerInput {
            weeks: Some(8),
            channels: vec!["Email".into(), " ".into()],
            budget: None,
        });
        assert_eq!(
            plan.validate("input.").map_err(|e| e.field),
            Err("input.campaignPlanner.channels[1]".into())
        );
        let voice = AgentInput::BrandVoice(BrandVoiceInput {
            channels: vec!["x".into(); limits::ITEMS + 1],
            tone: Vec::new(),
        });
        assert_eq!(
            voice.validate("").map_err(|e| e.field),
            Err("brandVoice.channels".into())
        );
    }

    #[test]
    fn the_stored_form_reads_back() {
        let input = AgentInput::BusinessStrategy(BusinessStrategyInput {
            horizon_months: Some(6),
            goals: vec!["Open two stores".into()],
        });
        let stored = json!({ "instructions": null, "businessStrategy": input.fields() });
        assert_eq!(
            stored["businessStrategy"],
            json!({"horizonMonths": 6, "goals": ["Open two stores"]})
        );
        assert_eq!(
            AgentInput::from_stored(AgentKind::BusinessStrategy, &stored),
            Ok(input)
        );
        assert_eq!(
            AgentInput::from_stored(AgentKind::BrandVoice, &json!({"instructions": "x"})),
            Ok(AgentInput::default_for(AgentKind::BrandVoice))
        );
        assert!(
            AgentInput::from_stored(
                AgentKind::PersonaBuilder,
                &json!({"personaBuilder": {"count": 99}})
            )
            .is_err()
        );
    }
}
