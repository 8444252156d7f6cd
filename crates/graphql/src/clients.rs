//! An agency's clients: the `clients` and `client` queries, `createClient`,
//! `updateClient`, `archiveClient` and `restoreClient`. The `Client` type is
//! in [`crate::types`], with the content that refers to it.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result};
use strata_domain::{ClientId, ClientName, Slug};
use strata_persistence::repo::clients::{self, ClientChanges};

use crate::args::{bad, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::pagination::Paging;
use crate::pagination::{Cursor, Totals, TotalsKind, connection, page_request};
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::Client;

/// Clients, Relay style.
pub type ClientConnection = Connection<Cursor, Client, Totals, EmptyFields>;

/// Resolves a clients connection.
pub async fn client_connection(
    ctx: &Context<'_>,
    paging: Paging,
    include_archived: bool,
) -> Result<ClientConnection> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let result = clients::list(tx, &page, include_archived)
        .await
        .map_err(domain_error)?;
    Ok(connection(
        result,
        TotalsKind::Clients(include_archived),
        |c| (c.created_at, c.id.as_uuid()),
        Client,
    ))
}

/// Input of `createClient`.
#[derive(InputObject, Debug)]
pub struct CreateClientInput {
    /// Display name.
    pub name: String,
    /// Slug, unique within the agency.
    pub slug: String,
}

/// Input of `updateClient`; omitted fields stay as they are.
#[derive(InputObject, Debug)]
pub struct UpdateClientInput {
    /// The client.
    pub id: ID,
    /// New name.
    pub name: Option<String>,
    /// New slug, unique within the agency.
    pub slug: Option<String>,
}

/// Client queries.
#[derive(Debug, Default)]
pub struct ClientQuery;

#[Object]
impl ClientQuery {
    /// The agency's clients visible to the caller (empty for SMEs),
    /// newest first; archived ones only with `includeArchived`.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    async fn clients(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] include_archived: Option<bool>,
    ) -> Result<ClientConnection> {
        client_connection(
            ctx,
            Paging {
                first,
                after,
                last,
                before,
            },
            include_archived.unwrap_or(false),
        )
        .await
    }

    /// A client by id or slug; null if it does not exist or is not visible.
    async fn client(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        slug: Option<String>,
    ) -> Result<Option<Client>> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let found = match (id, slug) {
            (Some(id), None) => {
                let id: ClientId = parse_id("id", &id)?;
                let tx = state.read_tx().await?;
                clients::by_id(tx, id).await
            }
            (None, Some(slug)) => {
                // A slug that cannot exist is simply not found.
                let Ok(slug) = Slug::parse("slug", &slug) else {
                    return Ok(None);
                };
                let tx = state.read_tx().await?;
                clients::by_slug(tx, &slug).await
            }
            _ => {
                return Err(ErrorCode::BadUserInput
                    .error("give exactly one of id and slug")
                    .extend_with(|_, e| e.set("field", "id")));
            }
        };
        Ok(found.map_err(domain_error)?.map(Client))
    }
}

/// `createClient`, a part of its own: the schema lists it before the
/// campaign mutations, and the other client mutations after them.
#[derive(Debug, Default)]
pub struct CreateClientMutation;

#[Object]
impl CreateClientMutation {
    /// Creates a client (agencies; OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::CreateClient)"#)]
    async fn create_client(&self, ctx: &Context<'_>, input: CreateClientInput) -> Result<Client> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let name = ClientName::parse("name", &input.name).map_err(bad)?;
        let slug = Slug::parse("slug", &input.slug).map_err(bad)?;
        let tx = state.write_tx().await?;
        Ok(Client(
            in_savepoint(tx, clients::create(tx, &name, &slug)).await?,
        ))
    }
}

/// Changes to clients.
#[derive(Debug, Default)]
pub struct ClientMutation;

#[Object]
impl ClientMutation {
    /// Renames a client or changes its slug (agencies; OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::UpdateClient)"#)]
    async fn update_client(&self, ctx: &Context<'_>, input: UpdateClientInput) -> Result<Client> {
        let id: ClientId = parse_id("id", &input.id)?;
        let changes = ClientChanges {
            name: input
                .name
                .map(|n| ClientName::parse("name", &n))
                .transpose()
                .map_err(bad)?,
            slug: input
                .slug
                .map(|s| Slug::parse("slug", &s))
                .transpose()
                .map_err(bad)?,
            archived: None,
        };
        client_change(ctx, id, changes, strata_domain::Action::UpdateClient).await
    }

    /// Archives a client: it stays readable, marked archived (OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::ArchiveClient)"#)]
    async fn archive_client(&self, ctx: &Context<'_>, id: ID) -> Result<Client> {
        let id: ClientId = parse_id("id", &id)?;
        let changes = ClientChanges {
            archived: Some(true),
            ..Default::default()
        };
        client_change(ctx, id, changes, strata_domain::Action::ArchiveClient).await
    }

    /// Restores an archived client (OWNER/ADMIN).
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RestoreClient)"#)]
    async fn restore_client(&self, ctx: &Context<'_>, id: ID) -> Result<Client> {
        let id: ClientId = parse_id("id", &id)?;
        let changes = ClientChanges {
            archived: Some(false),
            ..Default::default()
        };
        client_change(ctx, id, changes, strata_domain::Action::RestoreClient).await
    }
}

async fn client_change(
    ctx: &Context<'_>,
    id: ClientId,
    changes: ClientChanges,
    action: strata_domain::Action,
) -> Result<Client> {
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.write_tx().await?;
    Ok(Client(
        in_savepoint(tx, clients::update(tx, id, changes, action)).await?,
    ))
}
