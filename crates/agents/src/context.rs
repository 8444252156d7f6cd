//! The inputs of one run: plain data, taken by the caller from one tenant
//! (and, for agencies, one client). Nothing here reads anything: what is not
//! in an [`AgentContext`] cannot reach a prompt.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_domain::JsonDocument;
use strata_domain::model::{BrandGuidelines, Campaign, Client, Organization, Persona};

use crate::input::AgentInput;
use crate::kind::AgentKind;

/// Everything an agent may know about a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentContext {
    /// The organization's display name.
    pub organization: String,
    /// The agency's client the campaign belongs to; `None` for SMEs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientInfo>,
    /// The campaign the run is for.
    pub campaign: CampaignInfo,
    /// The brand guidelines of the organization (SME) or client (agency).
    #[serde(default)]
    pub brand_guidelines: Map<String, Value>,
    /// The personas of the organization (SME) or client (agency).
    #[serde(default)]
    pub personas: Vec<PersonaInfo>,
    /// Free text from the user asking for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The typed input of the run's agent; `None` is the agent's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<AgentInput>,
}

/// An agency's client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Display name.
    pub name: String,
    /// Slug.
    pub slug: String,
}

/// A campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignInfo {
    /// Name.
    pub name: String,
    /// Objective, free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<String>,
}

/// A persona as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonaInfo {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Structured attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// Input that cannot make a prompt: a field out of bounds, or records that do
/// not all belong to the campaign's tenant and client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent input: `{field}` {problem}")]
pub struct InputError {
    /// The offending field, as a path (`personas[2].name`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl InputError {
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Bounds on what a context may hold, so that a prompt stays bounded.
pub mod limits {
    /// Longest name (organization, client, campaign, persona), in characters.
    pub const NAME_CHARS: usize = 200;
    /// Longest slug, in characters.
    pub const SLUG_CHARS: usize = 100;
    /// Longest objective or persona description, in characters.
    pub const TEXT_CHARS: usize = 2_000;
    /// Longest instructions, in characters.
    pub const INSTRUCTIONS_CHARS: usize = 4_000;
    /// Most personas in one run.
    pub const PERSONAS: usize = 20;
    /// Largest persona attributes, serialized, in bytes.
    pub const ATTRIBUTES_BYTES: usize = 8 * 1024;
}

impl AgentContext {
    /// Builds a context from repository records, checking that every record
    /// belongs to the campaign's organization and client: a record of another
    /// tenant or client is refused rather than silently included.
    pub fn from_records(
        organization: &Organization,
        client: Option<&Client>,
        campaign: &Campaign,
        guidelines: Option<&BrandGuidelines>,
        personas: &[Persona],
        instructions: Option<&str>,
    ) -> Result<Self, InputError> {
        let org_id = organization.id;
        let client_id = campaign.client_id;
        if campaign.org_id != org_id {
            return Err(mismatch("campaign"));
        }
        if client.map(|c| c.id) != client_id || client.is_some_and(|c| c.org_id != org_id) {
            return Err(mismatch("client"));
        }
        let brand_guidelines = match guidelines {
            Some(g) if g.org_id != org_id || g.client_id != client_id => {
                return Err(mismatch("brand_guidelines"));
            }
            Some(g) => object("brand_guidelines", &g.content)?,
            None => Map::new(),
        };
        let personas = personas
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if p.org_id != org_id || p.client_id != client_id {
                    return Err(mismatch(&format!("personas[{i}]")));
                }
                Ok(PersonaInfo {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    attributes: object(&format!("personas[{i}].attributes"), &p.attributes)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let context = Self {
            organization: organization.name.clone(),
            client: client.map(|c| ClientInfo {
                name: c.name.clone(),
                slug: c.slug.clone(),
            }),
            campaign: CampaignInfo {
                name: campaign.name.clone(),
                objective: campaign.objective.clone(),
            },
            brand_guidelines,
            personas,
            instructions: instructions.map(str::to_owned),
            input: None,
        };
        context.validate()?;
        Ok(context)
    }

    /// Checks the bounds in [`limits`]. [`crate::run_agent`] calls it before
    /// building a prompt.
    pub fn validate(&self) -> Result<(), InputError> {
        name("organization", &self.organization, limits::NAME_CHARS)?;
        if let Some(client) = &self.client {
            name("client.name", &client.name, limits::NAME_CHARS)?;
            name("client.slug", &client.slug, limits::SLUG_CHARS)?;
        }
        name("campaign.name", &self.campaign.name, limits::NAME_CHARS)?;
        optional_text(
            "campaign.objective",
            self.campaign.objective.as_deref(),
            limits::TEXT_CHARS,
        )?;
        bytes(
            "brand_guidelines",
            &self.brand_guidelines,
            JsonDocument::MAX_BYTES,
        )?;
        if self.personas.len() > limits::PERSONAS {
            return Err(InputError::new(
                "personas",
                format!("must hold at most {} personas", limits::PERSONAS),
            ));
        }
        for (i, persona) in self.personas.iter().enumerate() {
            name(
                &format!("personas[{i}].name"),
                &persona.name,
                limits::NAME_CHARS,
            )?;
            optional_text(
                &format!("personas[{i}].description"),
                persona.description.as_deref(),
                limits::TEXT_CHARS,
            )?;
            bytes(
                &format!("personas[{i}].attributes"),
                &persona.attributes,
                limits::ATTRIBUTES_BYTES,
            )?;
        }
        optional_text(
            "instructions",
            self.instructions.as_deref(),
            limits::INSTRUCTIONS_CHARS,
        )
    }

    /// The context with the run's typed input.
    pub fn with_input(mut self, input: AgentInput) -> Self {
        self.input = Some(input);
        self
    }

    /// The typed input of a run of `kind`: the one given (which must be of
    /// `kind` and within its bounds), else the agent's defaults.
    pub fn input_for(&self, kind: AgentKind) -> Result<AgentInput, InputError> {
        match &self.input {
            None => Ok(AgentInput::default_for(kind)),
            Some(input) if input.kind() != kind => Err(InputError::new(
                "input",
                format!("is the input of {}, not of {kind}", input.kind()),
            )),
            Some(input) => {
                input.validate("input.")?;
                Ok(input.clone())
            }
        }
    }

    /// The client's name, else the organization's: whose brand this is.
    pub fn brand_name(&self) -> &str {
        self.client
            .as_ref()
            .map_or(self.organization.as_str(), |c| c.name.as_str())
    }
}

fn mismatch(record: &str) -> InputError {
    InputError::new(
        record,
        "does not belong to the campaign's organization and client",
    )
}

fn object(field: &str, value: &Value) -> Result<Map<String, Value>, InputError> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(InputError::new(field, "must be a JSON object")),
    }
}

fn name(field: &str, value: &str, max: usize) -> Result<(), InputError> {
    if value.trim().is_empty() {
        return Err(InputError::new(field, "must not be empty"));
    }
    optional_text(field, Some(value), max)
}

fn optional_text(field: &str, value: Option<&str>, max: usize) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().count() > max => Err(InputError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

fn bytes(field: &str, value: &Map<String, Value>, max: usize) -> Result<(), InputError> {
    let size = serde_json::to_vec(value).map_or(usize::MAX, |v| v.len());
    if size > max {
        return Err(InputError::new(
            field,
            format!("must be at most {max} bytes of JSON"),
        ));
    }
    Ok(())
}
