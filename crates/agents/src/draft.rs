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
use crate::kind::AgentKind;
use crate::output::{
    AgentOutput, BrandVoice, BusinessStrategy, CampaignPlan, PersonaProfile, PersonaSet, Phase,
    Swot, limits,
};

/// The offline draft of `kind` for `context`. Same input, same output.
pub fn offline_draft(kind: AgentKind, context: &AgentContext) -> AgentOutput {
    let facts = Facts::new(context);
    match kind {
        AgentKind::BusinessStrategy => AgentOutput::BusinessStrategy(business_strategy(&facts)),
        AgentKind::BrandVoice => AgentOutput::BrandVoice(brand_voice(&facts)),
        AgentKind::PersonaBuilder => AgentOutput::PersonaBuilder(PersonaSet {
            personas: profiles(&facts),
        }),
        AgentKind::CampaignPlanner => AgentOutput::CampaignPlanner(campaign_plan(&facts)),
    }
}

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

fn business_strategy(f: &Facts<'_>) -> BusinessStrategy {
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
            "Business strategy by {} for the campaign \"{}\": {}, positioning {} for {}.",
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
        ]),
    }
}

fn brand_voice(f: &Facts<'_>) -> BrandVoice {
    let mut tone = f.guideline(&["tone", "tone_of_voice", "voice", "personality"]);
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

fn campaign_plan(f: &Facts<'_>) -> CampaignPlan {
    let mut channels: Vec<String> = Vec::new();
    for channel in f.context.personas.iter().flat_map(persona_channels) {
        if !channels.iter().any(|c| c.eq_ignore_ascii_case(&channel)) {
            channels.push(channel);
        }
    }
    if channels.is_empty() {
        channels = default_channels();
    }
    let audience = f.audience();
    CampaignPlan {
        summary: text(format!(
            "An eight-week plan for \"{}\" ({}): reach {} on {}, then convert and review.",
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
        phases: vec![
            Phase {
                name: "Awareness".to_owned(),
                weeks: 2,
                activities: items(vec![
                    format!("Announce \"{}\" on {}", f.campaign, channels[0]),
                    format!("Publish content on {}'s core promise", f.brand),
                ]),
            },
            Phase {
                name: "Consideration".to_owned(),
                weeks: 3,
                activities: items(vec![
                    format!("Show {audience} how {} helps them", f.brand),
                    "Retarget engaged visitors with proof and testimonials".to_owned(),
                ]),
            },
            Phase {
                name: "Conversion".to_owned(),
                weeks: 2,
                activities: items(vec![
                    "Run a time-limited offer".to_owned(),
                    "Follow up by email with those who showed interest".to_owned(),
                ]),
            },
            Phase {
                name: "Review".to_owned(),
                weeks: 1,
                activities: items(vec![
                    "Compare results with the baseline and the KPIs".to_owned(),
                    "Record what to keep for the next campaign".to_owned(),
                ]),
            },
        ],
        channels: items(channels),
        kpis: items(vec![
            format!("Progress toward the objective: {}", f.objective),
            "Reach and engagement rate per channel".to_owned(),
            "Conversion rate and cost per acquisition".to_owned(),
        ]),
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
