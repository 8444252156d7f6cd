//! The agents Strata offers, by name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which agent to run. The SCREAMING_CASE spelling is stable: it is stored
/// with every run and exposed in the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentKind {
    /// Positioning, objectives, SWOT and recommendations for a campaign.
    BusinessStrategy,
    /// Tone, do's and don'ts and sample messages in the brand's voice.
    BrandVoice,
    /// Detailed personas: goals, pain points, channels.
    PersonaBuilder,
    /// Channels, phases and KPIs for a campaign.
    CampaignPlanner,
}

impl AgentKind {
    /// Every agent.
    pub const ALL: [AgentKind; 4] = [
        AgentKind::BusinessStrategy,
        AgentKind::BrandVoice,
        AgentKind::PersonaBuilder,
        AgentKind::CampaignPlanner,
    ];

    /// The stable spelling (`BUSINESS_STRATEGY`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentKind::BusinessStrategy => "BUSINESS_STRATEGY",
            AgentKind::BrandVoice => "BRAND_VOICE",
            AgentKind::PersonaBuilder => "PERSONA_BUILDER",
            AgentKind::CampaignPlanner => "CAMPAIGN_PLANNER",
        }
    }

    /// A human name, for prompts and messages.
    pub const fn title(self) -> &'static str {
        match self {
            AgentKind::BusinessStrategy => "business strategy",
            AgentKind::BrandVoice => "brand voice",
            AgentKind::PersonaBuilder => "persona builder",
            AgentKind::CampaignPlanner => "campaign planner",
        }
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no agent's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown agent kind `{0}`: expected BUSINESS_STRATEGY, BRAND_VOICE, PERSONA_BUILDER or CAMPAIGN_PLANNER"
)]
pub struct UnknownAgentKind(String);

impl FromStr for AgentKind {
    type Err = UnknownAgentKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownAgentKind(s.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for kind in AgentKind::ALL {
            assert_eq!(kind.as_str().parse::<AgentKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.as_str().to_owned()))
            );
        }
        assert!("business_strategy".parse::<AgentKind>().is_err());
        assert!("".parse::<AgentKind>().is_err());
    }
}
