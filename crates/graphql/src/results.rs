//! Typed agent results: each agent's versioned output shape as GraphQL
//! types, one union over the four, read from the stored document. The raw
//! document stays available as `content` (outputs) and `output` (runs).

use async_graphql::{SimpleObject, Union};
use strata_agents as out;
use strata_domain::model::StoredJson;

/// What an agent produced, typed by agent. Null when the stored document
/// is of a version this server does not read (its raw form still is).
#[derive(Union, Clone, Debug)]
pub enum AgentResult {
    /// BUSINESS_STRATEGY.
    BusinessStrategy(BusinessStrategyResult),
    /// BRAND_VOICE.
    BrandVoice(BrandVoiceResult),
    /// PERSONA_BUILDER.
    PersonaSet(PersonaSetResult),
    /// CAMPAIGN_PLANNER.
    CampaignPlan(CampaignPlanResult),
}

/// The result of BUSINESS_STRATEGY.
#[derive(SimpleObject, Clone, Debug)]
pub struct BusinessStrategyResult {
    /// The version of the output's shape.
    pub version: i32,
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
#[derive(SimpleObject, Clone, Debug)]
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

/// The result of BRAND_VOICE.
#[derive(SimpleObject, Clone, Debug)]
pub struct BrandVoiceResult {
    /// The version of the output's shape.
    pub version: i32,
    /// The voice in a few sentences.
    pub summary: String,
    /// Adjectives for the tone.
    pub tone: Vec<String>,
    /// What to do.
    #[graphql(name = "do")]
    pub dos: Vec<String>,
    /// What to avoid.
    #[graphql(name = "dont")]
    pub donts: Vec<String>,
    /// Example messages in the voice.
    pub sample_messages: Vec<String>,
}

/// The result of PERSONA_BUILDER.
#[derive(SimpleObject, Clone, Debug)]
pub struct PersonaSetResult {
    /// The version of the output's shape.
    pub version: i32,
    /// The personas built.
    pub personas: Vec<GeneratedPersona>,
}

/// A persona as PERSONA_BUILDER describes it.
#[derive(SimpleObject, Clone, Debug)]
pub struct GeneratedPersona {
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

/// The result of CAMPAIGN_PLANNER.
#[derive(SimpleObject, Clone, Debug)]
pub struct CampaignPlanResult {
    /// The version of the output's shape.
    pub version: i32,
    /// The plan in a few sentences.
    pub summary: String,
    /// Channels used.
    pub channels: Vec<String>,
    /// Phases, in order.
    pub phases: Vec<CampaignPhase>,
    /// How success is measured.
    pub kpis: Vec<String>,
}

/// One phase of a campaign plan.
#[derive(SimpleObject, Clone, Debug)]
pub struct CampaignPhase {
    /// Name.
    pub name: String,
    /// Duration in weeks.
    pub weeks: i32,
    /// What happens.
    pub activities: Vec<String>,
}

/// The typed result of a stored output document, when it is of the
/// version this server writes and reads.
pub(crate) fn of(stored: Option<&StoredJson>) -> Option<AgentResult> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        version: u32,
        #[serde(flatten)]
        output: out::AgentOutput,
    }
    let doc: Versioned = serde_json::from_str(stored?.raw().get()).ok()?;
    if doc.version != out::OUTPUT_VERSION {
        return None;
    }
    let version = i32::try_from(doc.version).ok()?;
    Some(match doc.output {
        out::AgentOutput::BusinessStrategy(s) => {
            AgentResult::BusinessStrategy(BusinessStrategyResult {
                version,
                summary: s.summary,
                positioning: s.positioning,
                objectives: s.objectives,
                swot: Swot {
                    strengths: s.swot.strengths,
                    weaknesses: s.swot.weaknesses,
                    opportunities: s.swot.opportunities,
                    threats: s.swot.threats,
                },
                recommendations: s.recommendations,
            })
        }
        out::AgentOutput::BrandVoice(v) => AgentResult::BrandVoice(BrandVoiceResult {
            version,
            summary: v.summary,
            tone: v.tone,
            dos: v.dos,
            donts: v.donts,
            sample_messages: v.sample_messages,
        }),
        out::AgentOutput::PersonaBuilder(p) => AgentResult::PersonaSet(PersonaSetResult {
            version,
            personas: p
                .personas
                .into_iter()
                .map(|p| GeneratedPersona {
                    name: p.name,
                    description: p.description,
                    goals: p.goals,
                    pain_points: p.pain_points,
                    channels: p.channels,
                })
                .collect(),
        }),
        out::AgentOutput::CampaignPlanner(c) => AgentResult::CampaignPlan(CampaignPlanResult {
            version,
            summary: c.summary,
            channels: c.channels,
            phases: c
                .phases
                .into_iter()
                .map(|p| CampaignPhase {
                    name: p.name,
                    weeks: i32::try_from(p.weeks).unwrap_or(i32::MAX),
                    activities: p.activities,
                })
                .collect(),
            kpis: c.kpis,
        }),
    })
}
