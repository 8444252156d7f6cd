//! Brand guidelines and personas: the `brandGuidelines`, `personas` and
//! `persona` queries, `saveBrandGuidelines`, `createPersona`,
//! `updatePersona` and `deletePersona`. Per organization for SMEs, per
//! client for agencies; the API is the same for both.

use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use strata_domain::values::{self, parse_optional_text};
use strata_domain::{JsonDocument, PersonaId, PersonaName};
use strata_persistence::repo::brand;
use strata_persistence::repo::personas::{self, NewPersona, PersonaChanges, PersonaFilter};

use crate::args::{bad, optional_client, parse_id};
use crate::error::domain_error;
use crate::lists::{self, ListOrderInput};
use crate::pagination::Paging;
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::{BrandGuidelines, Persona, PersonaConnection, persona_connection};

/// Which personas `personas` lists; every field given narrows the list.
#[derive(async_graphql::InputObject, Debug, Default)]
#[graphql(name = "PersonaFilter")]
pub struct PersonaFilterInput {
    /// Only personas created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only personas created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Brand guideline and persona queries.
#[derive(Debug, Default)]
pub struct ContentQuery;

#[Object]
impl ContentQuery {
    /// Brand guidelines of the SME, or of a client of the agency; null when
    /// none are saved or the client is not visible.
    async fn brand_guidelines(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
    ) -> Result<Option<BrandGuidelines>> {
        let client = optional_client(client_id.as_ref())?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(brand::get(tx, client)
            .await
            .map_err(domain_error)?
            .map(BrandGuidelines))
    }

    /// Personas of the SME, or of the agency's visible clients (optionally
    /// of one), as `filter` and `search` (a case-insensitive part of the
    /// name) narrow them, in `orderBy`'s order (newest first by default).
    /// A cursor only pages the list it came from.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn personas(
        &self,
        ctx: &Context<'_>,
        client_id: Option<ID>,
        filter: Option<PersonaFilterInput>,
        search: Option<String>,
        order_by: Option<ListOrderInput>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<PersonaConnection> {
        let given = filter.unwrap_or_default();
        let (created_after, created_before) =
            lists::created_range(given.created_after, given.created_before)?;
        let filter = PersonaFilter {
            client_id: optional_client(client_id.as_ref())?,
            created_after,
            created_before,
            search: lists::search(search)?,
        };
        let order = lists::order(order_by, true)?;
        let spelt = crate::pagination::spelt(&filter);
        persona_connection(
            ctx,
            filter,
            Paging::new(first, after, last, before).shaped(order, spelt),
        )
        .await
    }

    /// A persona by id; null if it does not exist or is not visible.
    async fn persona(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Persona>> {
        let id: PersonaId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(personas::by_id(tx, id)
            .await
            .map_err(domain_error)?
            .map(Persona))
    }
}

/// Input of `saveBrandGuidelines`.
#[derive(InputObject, Debug)]
pub struct SaveBrandGuidelinesInput {
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ID>,
    /// The guidelines: a JSON object of at most 64 KiB.
    pub content: Json<serde_json::Value>,
}

/// Input of `createPersona`.
#[derive(InputObject, Debug)]
pub struct CreatePersonaInput {
    /// Required for agencies, forbidden for SMEs.
    pub client_id: Option<ID>,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Structured attributes: a JSON object.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Input of `updatePersona`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdatePersonaInput {
    /// The persona.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New description (an empty string clears it).
    pub description: Option<String>,
    /// New attributes.
    pub attributes: Option<Json<serde_json::Value>>,
}

/// Content mutations.
#[derive(Debug, Default)]
pub struct ContentMutation;

#[Object]
impl ContentMutation {
    /// Saves (replaces) the brand guidelines of the SME or of a client.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::SaveBrandGuidelines)"#)]
    async fn save_brand_guidelines(
        &self,
        ctx: &Context<'_>,
        input: SaveBrandGuidelinesInput,
    ) -> Result<BrandGuidelines> {
        let client = optional_client(input.client_id.as_ref())?;
        let content =
            JsonDocument::parse_typed("content", input.content.0, values::BRAND_GUIDELINE_KEYS)
                .map_err(bad)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(BrandGuidelines(
            in_savepoint(tx, brand::save(tx, client, content)).await?,
        ))
    }

    /// Creates a persona (clientId required for agencies, forbidden for
    /// SMEs).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::CreatePersona)"#)]
    async fn create_persona(
        &self,
        ctx: &Context<'_>,
        input: CreatePersonaInput,
    ) -> Result<Persona> {
        let new = NewPersona {
            client_id: optional_client(input.client_id.as_ref())?,
            name: PersonaName::parse("name", &input.name).map_err(bad)?,
            description: parse_optional_text("description", input.description.as_deref(), 4000)
                .map_err(bad)?,
            attributes: input
                .attributes
                .map(|a| {
                    JsonDocument::parse_typed("attributes", a.0, values::PERSONA_ATTRIBUTE_KEYS)
                })
                .transpose()
                .map_err(bad)?,
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Persona(in_savepoint(tx, personas::create(tx, new)).await?))
    }

    /// Updates a persona.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::UpdatePersona)"#)]
    async fn update_persona(
        &self,
        ctx: &Context<'_>,
        input: UpdatePersonaInput,
    ) -> Result<Persona> {
        let id: PersonaId = parse_id("id", &input.id)?;
        let changes = PersonaChanges {
            name: input
                .name
                .map(|n| PersonaName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            description: input
                .description
                .map(|d| parse_optional_text("description", Some(&d), 4000))
                .transpose()
                .map_err(bad)?,
            attributes: input
                .attributes
                .map(|a| {
                    JsonDocument::parse_typed("attributes", a.0, values::PERSONA_ATTRIBUTE_KEYS)
                })
                .transpose()
                .map_err(bad)?,
        };
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        Ok(Persona(
            in_savepoint(tx, personas::update(tx, id, changes)).await?,
        ))
    }

    /// Deletes a persona; returns its id.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::DeletePersona)"#)]
    async fn delete_persona(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let persona: PersonaId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        in_savepoint(tx, personas::delete(tx, persona)).await?;
        Ok(id)
    }
}
