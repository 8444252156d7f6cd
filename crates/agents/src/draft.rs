//! Offline drafts: a useful, deterministic first version of each agent's
//! output, made from the run's context alone without any model. The offline
//! provider answers with them; they pass the same validation as a model's
//! answer.
//!
//! Brand guidelines and persona attributes are free-form JSON; the drafts
//! read the keys people commonly use (`tone`, `do`, `goals`, `channels`, ...)
//! and fall back to sensible defaults.

use serde_json::{Map, Value};

use crate::context::{AgentContext, PersonaInfo};
use crate::input::{AgentInput, BrandVoiceInput, BusinessStrategyInput, CampaignPlannerInput};
use crate::kind::AgentKind;
use crate::output::{
    AgentOutput, BrandVoice, BusinessStrategy, CampaignPlan, PersonaProfile, PersonaSet, Phase,
    Swot, limits,
};

/// The offline draft of `kind` for `context`, following the run's typed
/// input (the agent's defaults when it has none). Same input, same output.
pub fn offline_draft(kind: AgentKind, context: &AgentContext) -> AgentOutput {
    let facts = Facts::new(context);
    match crate::prompt::input_of(kind, context) {
        AgentInput::BusinessStrategy(input) => {
            AgentOutput::BusinessStrategy(business_strategy(&facts, &input))
        }
        AgentInput::BrandVoice(input) => AgentOutput::BrandVoice(brand_voice(&facts, &input)),
        AgentInput::PersonaBuilder(input) => AgentOutput::PersonaBuilder(PersonaSet {
            personas: match input.count {
                Some(n) => profiles_exactly(&facts, n as usize),
                None => profiles(&facts),
            },
        }),
        AgentInput::CampaignPlanner(input) => {
            AgentOutput::CampaignPlanner(campaign_plan(&facts, &input))
        }
    }
}

/// The default horizon of a business strategy, in months.
const HORIZON_MONTHS: u32 = 12;
/// The default length of a campaign plan, in weeks.
const PLAN_WEEKS: u32 = 8;

/// What every draft starts from.
struct Facts<'a> {
    context: &'a AgentContext,
    /// Whose brand it is: the client's, else the organization's.
    brand: &'a str,
    campaign: &'a str,
    objective: String,
    /// Who prepares it, for agencies: "Agency for Client".
    byline: String,
}

impl<'a> Facts<'a> {
    fn new(context: &'a AgentContext) -> Self {
        let objective = context
            .campaign
            .objective
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map_or_else(
                || "grow awareness and demand".to_owned(),
                |o| o.trim_end_matches('.').to_owned(),
            );
        let byline = match &context.client {
            Some(client) => format!("{} for {}", context.organization, client.name),
            None => context.organization.clone(),
        };
        Self {
            context,
            brand: context.brand_name(),
            campaign: &context.campaign.name,
            objective,
            byline,
        }
    }

    /// A guideline given as text or a list of texts, under the first of
    /// `keys` present.
    fn guideline(&self, keys: &[&str]) -> Vec<String> {
        strings(&self.context.brand_guidelines, keys)
    }

    fn persona_names(&self) -> Vec<&'a str> {
        self.context
            .personas
            .iter()
            .map(|p| p.name.as_str())
            .collect()
    }

    fn audience(&self) -> String {
        match self.persona_names().as_slice() {
            [] => format!("{}'s core customers", self.brand),
            [one] => (*one).to_owned(),
            names => format!(
                "{} and {}",
                names[..names.len() - 1].join(", "),
                names[names.len() - 1]
            ),
        }
    }
}

fn business_strategy(f: &Facts<'_>, input: &BusinessStrategyInput) -> BusinessStrategy {
    let horizon = input.horizon_months.unwrap_or(HORIZON_MONTHS);
    let positioning = f
        .guideline(&[
            "positioning",
            "value_proposition",
            "promise",
            "tagline",
            "mission",
        ])
        .join(" ");
    let positioning = if positioning.is_empty() {
        format!(
            "{} as the dependable choice for {}, with one clear promise carried through \"{}\".",
            f.brand,
            f.audience(),
            f.campaign
        )
    } else {
        positioning
    };
    let mut objectives = vec![capitalized(&f.objective)];
    objectives.extend(input.goals.iter().map(|goal| {
        format!(
            "{} within {horizon} months",
            capitalized(goal.trim_end_matches('.'))
        )
    }));
    objectives.extend(
        f.persona_names()
            .iter()
            .take(3)
            .map(|name| format!("Engage {name} with messages and offers made for them")),
    );
    objectives.push(format!(
        "Set a baseline in the first two weeks of \"{}\" and review results weekly",
        f.campaign
    ));
    let mut strengths = f.guideline(&["values", "strengths", "pillars", "differentiators"]);
    if strengths.is_empty() {
        strengths.push(if f.context.brand_guidelines.is_empty() {
            format!("A focused campaign offer: \"{}\"", f.campaign)
        } else {
            format!("{} has written brand guidelines to build on", f.brand)
        });
    }
    let opportunities = if f.context.personas.is_empty() {
        vec![format!(
            "Define the audience of \"{}\" precisely to focus spend",
            f.campaign
        )]
    } else {
        f.context
            .personas
            .iter()
            .map(
                |p| match strings(&p.attributes, &["goals", "needs", "motivations"]).first() {
                    Some(goal) => format!("{} wants to {}", p.name, lowercase_first(goal)),
                    None => format!("{} is not yet reached with tailored messages", p.name),
                },
            )
            .collect()
    };
    BusinessStrategy {
        summary: text(format!(
            "Business strategy by {} for the campaign \"{}\" over the next {horizon} months: \
             {}, positioning {} for {}.",
            f.byline,
            f.campaign,
            lowercase_first(&f.objective),
            f.brand,
            f.audience()
        )),
        positioning: text(positioning),
        objectives: items(objectives),
        swot: Swot {
            strengths: items(strengths),
            weaknesses: items(vec![
                format!(
                    "\"{}\" starts without performance data of its own",
                    f.campaign
                ),
                "Budget and capacity limits call for few, focused channels".to_owned(),
            ]),
            opportunities: items(opportunities),
            threats: items(vec![
                "Competitors addressing the same audience at the same time".to_owned(),
                "Message fatigue if creative is not refreshed".to_owned(),
            ]),
        },
        recommendations: items(vec![
            format!(
                "Lead every message of \"{}\" with {}'s core promise",
                f.campaign, f.brand
            ),
            format!("Tailor one message and one offer to {}", f.audience()),
            "Test two creative variants per channel and keep the winner".to_owned(),
            "Review KPIs weekly and move budget to the best channel".to_owned(),
            format!("Revisit this strategy at the end of its {horizon}-month horizon"),
        ]),
    }
}

fn brand_voice(f: &Facts<'_>, input: &BrandVoiceInput) -> BrandVoice {
    let mut tone = input.tone.clone();
    for word in f.guideline(&["tone", "tone_of_voice", "voice", "personality"]) {
        if !tone.iter().any(|t| t.eq_ignore_ascii_case(&word)) {
            tone.push(word);
        }
    }
    if tone.is_empty() {
        tone = vec![
            "clear".to_owned(),
            "confident".to_owned(),
            "warm".to_owned(),
        ];
    }
    let mut dos = f.guideline(&["do", "dos", "principles", "guidelines"]);
    if dos.is_empty() {
        dos = vec![
            "Use short, concrete sentences".to_owned(),
            "Speak to one reader at a time".to_owned(),
            format!("Name the benefit of {} early", f.brand),
        ];
    }
    let mut donts = f.guideline(&["dont", "donts", "don't", "avoid", "never"]);
    if donts.is_empty() {
        donts = vec![
            "Use jargon or buzzwords".to_owned(),
            "Promise what the product cannot deliver".to_owned(),
        ];
    }
    let mut samples = vec![format!(
        "{}: {} starts now. Discover what it means for you.",
        f.brand, f.campaign
    )];
    samples.extend(input.channels.iter().map(|channel| {
        format!(
            "{channel}: {} from {}, made for you. Find out more today.",
            f.campaign, f.brand
        )
    }));
    samples.extend(f.persona_names().iter().take(3).map(|name| {
        format!(
            "{name}, this one is for you: {} from {}. See what's new.",
            f.campaign, f.brand
        )
    }));
    BrandVoice {
        summary: text(format!(
            "{} speaks in a {} voice. Every message of \"{}\" should sound like it comes from {}.",
            f.brand,
            tone.iter()
                .take(3)
                .map(|t| t.to_lowercase())
                .collect::<Vec<_>>()
                .join(", "),
            f.campaign,
            f.brand
        )),
        tone: items(tone),
        dos: items(dos),
        donts: items(donts),
        sample_messages: items(samples),
    }
}

fn profiles(f: &Facts<'_>) -> Vec<PersonaProfile> {
    if f.context.personas.is_empty() {
        return vec![PersonaProfile {
            name: clip(&format!("Core {} customer", f.brand), limits::NAME_CHARS),
            description: clip(
                &format!(
                    "The customer \"{}\" is for, to be refined with research.",
                    f.campaign
                ),
                limits::TEXT_CHARS,
            ),
            goals: items(vec![capitalized(&f.objective)]),
            pain_points: items(default_pain_points(f)),
            channels: items(default_channels()),
        }];
    }
    f.context
        .personas
        .iter()
        .take(limits::PERSONAS)
        .map(|p| profile(f, p))
        .collect()
}

/// Exactly `n` profiles: the context's personas first, then new ones.
fn profiles_exactly(f: &Facts<'_>, n: usize) -> Vec<PersonaProfile> {
    let mut out: Vec<PersonaProfile> = f
        .context
        .personas
        .iter()
        .take(n)
        .map(|p| profile(f, p))
        .collect();
    let mut names = [
        "Core customer",
        "New prospect",
        "Loyal advocate",
        "Budget-minded shopper",
        "Busy professional",
        "Curious newcomer",
        "Returning customer",
        "Gift buyer",
        "Local community member",
        "Online researcher",
    ]
    .iter()
    .map(|role| format!("{} {}", f.brand, lowercase_first(role)));
    while out.len() < n {
        let Some(name) = names.next() else { break };
        if out.iter().any(|p| p.name.eq_ignore_ascii_case(&name)) {
            continue;
        }
        out.push(PersonaProfile {
            name: clip(&name, limits::NAME_CHARS),
            description: clip(
                &format!(
                    "A proposed audience of \"{}\", to be refined with research.",
                    f.campaign
                ),
                limits::TEXT_CHARS,
            ),
            goals: items(vec![capitalized(&f.objective)]),
            pain_points: items(default_pain_points(f)),
            channels: items(default_channels()),
        });
    }
    out
}

fn profile(f: &Facts<'_>, persona: &PersonaInfo) -> PersonaProfile {
    let audience_of = format!(
        "A key audience of {}'s campaign \"{}\".",
        f.brand, f.campaign
    );
    let description = match persona.description.as_deref().map(str::trim) {
        Some(known) if !known.is_empty() => {
            let known = clip(
                known,
                limits::TEXT_CHARS.saturating_sub(audience_of.chars().count() + 1),
            );
            format!("{known} {audience_of}")
        }
        _ => format!("{} is a {} customer. {audience_of}", persona.name, f.brand),
    };
    let or = |found: Vec<String>, fallback: Vec<String>| {
        if found.is_empty() { fallback } else { found }
    };
    PersonaProfile {
        name: clip(&persona.name, limits::NAME_CHARS),
        description: clip(&description, limits::TEXT_CHARS),
        goals: items(or(
            strings(&persona.attributes, &["goals", "needs", "motivations"]),
            vec![capitalized(&f.objective)],
        )),
        pain_points: items(or(
            strings(
                &persona.attributes,
                &["pain_points", "pains", "frustrations", "challenges"],
            ),
            default_pain_points(f),
        )),
        channels: items(or(persona_channels(persona), default_channels())),
    }
}

fn campaign_plan(f: &Facts<'_>, input: &CampaignPlannerInput) -> CampaignPlan {
    let mut channels: Vec<String> = Vec::new();
    for channel in input
        .channels
        .iter()
        .cloned()
        .chain(f.context.personas.iter().flat_map(persona_channels))
    {
        if !channels.iter().any(|c| c.eq_ignore_ascii_case(&channel)) {
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        channels = default_channels();
    }
    let audience = f.audience();
    let weeks = input.weeks.unwrap_or(PLAN_WEEKS);
    let awareness = Phase {
        name: "Awareness".to_owned(),
        weeks: 1,
        activities: items(vec![
            format!("Announce \"{}\" on {}", f.campaign, channels[0]),
            format!("Publish content on {}'s core promise", f.brand),
        ]),
    };
    let consideration = Phase {
        name: "Consideration".to_owned(),
        weeks: 1,
        activities: items(vec![
            format!("Show {audience} how {} helps them", f.brand),
            "Retarget engaged visitors with proof and testimonials".to_owned(),
        ]),
    };
    let conversion = Phase {
        name: "Conversion".to_owned(),
        weeks: 1,
        activities: items(vec![
            "Run a time-limited offer".to_owned(),
            "Follow up by email with those who showed interest".to_owned(),
        ]),
    };
    let review = Phase {
        name: "Review".to_owned(),
        weeks: 1,
        activities: items(vec![
            "Compare results with the baseline and the KPIs".to_owned(),
            "Record what to keep for the next campaign".to_owned(),
        ]),
    };
    let mut phases = match weeks {
        0 | 1 => vec![Phase {
            name: "Launch".to_owned(),
            weeks: 1,
            activities: items(
                awareness
                    .activities
                    .iter()
                    .chain(&conversion.activities)
                    .cloned()
                    .collect(),
            ),
        }],
        2 => vec![awareness, conversion],
        3 => vec![awareness, conversion, review],
        _ => vec![awareness, consideration, conversion, review],
    };
    if phases.len() == 4 {
        // Two, three, two and one parts in eight, each at least a week; the
        // rounding goes to consideration.
        for (phase, parts) in phases.iter_mut().zip([2, 3, 2, 1]) {
            phase.weeks = (weeks * parts / 8).max(1);
        }
        let planned: u32 = phases.iter().map(|p| p.weeks).sum();
        phases[1].weeks = (phases[1].weeks + weeks).saturating_sub(planned).max(1);
    }
    let mut kpis = vec![
        format!("Progress toward the objective: {}", f.objective),
        "Reach and engagement rate per channel".to_owned(),
        "Conversion rate and cost per acquisition".to_owned(),
    ];
    let budget = match input.budget {
        Some(budget) => {
            kpis.push(format!("Spend within the budget of {budget}"));
            format!(" Budget: {budget}, split by the results of each phase.")
        }
        None => String::new(),
    };
    CampaignPlan {
        summary: text(format!(
            "A {weeks}-week plan for \"{}\" ({}): reach {} on {}, then convert and review.{budget}",
            f.campaign,
            f.byline,
            audience,
            channels
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        phases,
        channels: items(channels),
        kpis: items(kpis),
    }
}

fn persona_channels(persona: &PersonaInfo) -> Vec<String> {
    strings(
        &persona.attributes,
        &["channels", "preferred_channels", "media", "platforms"],
    )
}

fn default_channels() -> Vec<String> {
    vec![
        "Email".to_owned(),
        "Social media".to_owned(),
        "Search".to_owned(),
    ]
}

fn default_pain_points(f: &Facts<'_>) -> Vec<String> {
    vec![
        "Too little time to compare options".to_owned(),
        format!("Unsure how {} differs from alternatives", f.brand),
    ]
}

/// Strings under the first of `keys` that holds any: a string, or the
/// strings of a list.
fn strings(map: &Map<String, Value>, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .filter_map(|key| map.get(*key))
        .map(|value| match value {
            Value::String(s) => vec![s.trim().to_owned()],
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|s| s.trim().to_owned())
                .collect(),
            _ => Vec::new(),
        })
        .map(|found| {
            found
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// A list within the output limits.
fn items(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .take(limits::ITEMS)
        .map(|s| clip(&s, limits::ITEM_CHARS))
        .collect()
}

/// A summary or description within the output limits.
fn text(s: String) -> String {
    clip(&s, limits::TEXT_CHARS)
}

/// `s` cut to at most `max` characters.
fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].trim_end().to_owned(),
        None => s.to_owned(),
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.clone().next()) {
        // Keep acronyms ("SEO ...") as they are.
        (Some(c), Some(next)) if next.is_uppercase() => c.to_string() + chars.as_str(),
        (Some(c), _) => c.to_lowercase().chain(chars).collect(),
        (None, _) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CampaignInfo;
    use crate::input::PersonaBuilderInput;

    fn context(input: AgentInput) -> AgentContext {
        AgentContext {
            organization: "Acme".to_owned(),
            client: None,
            campaign: CampaignInfo {
                name: "Spring".to_owned(),
                objective: None,
            },
            brand_guidelines: Map::new(),
            personas: vec![PersonaInfo {
                name: "Maya".to_owned(),
                description: None,
                attributes: Map::new(),
            }],
            instructions: None,
            input: Some(input),
        }
    }

    #[test]
    fn plans_last_the_weeks_asked_and_drafts_hold_the_personas_asked() {
        for weeks in 1..=52 {
            let input = AgentInput::CampaignPlanner(CampaignPlannerInput {
                weeks: Some(weeks),
                ..Default::default()
            });
            let draft = offline_draft(AgentKind::CampaignPlanner, &context(input.clone()));
            let AgentOutput::CampaignPlanner(plan) = &draft else {
                panic!("{draft:?}");
            };
            assert_eq!(plan.phases.iter().map(|p| p.weeks).sum::<u32>(), weeks);
            assert!(plan.phases.iter().all(|p| p.weeks >= 1));
            assert_eq!(input.check(&draft), Ok(()));
        }
        for count in 1..=10 {
            let input = AgentInput::PersonaBuilder(PersonaBuilderInput { count: Some(count) });
            let draft = offline_draft(AgentKind::PersonaBuilder, &context(input.clone()));
            let AgentOutput::PersonaBuilder(set) = &draft else {
                panic!("{draft:?}");
            };
            assert_eq!(set.personas.len(), count as usize);
            assert_eq!(set.personas[0].name, "Maya");
            assert_eq!(input.check(&draft), Ok(()));
        }
    }
}
