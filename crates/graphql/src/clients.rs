//! An agency's clients: the `clients` and `client` queries, `createClient`,
//! `updateClient`, `archiveClient`, `restoreClient` and `deleteClient`. The `Client` type is
//! in [`crate::types`], with the content that refers to it.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result};
use strata_domain::{ClientId, ClientName, Slug};
use strata_persistence::repo::clients::{self, ClientChanges, ClientFilter};

use crate::args::{bad, parse_id};
use crate::error::{ErrorCode, domain_error};
use crate::lists::{self, ListOrderInput};
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
    filter: ClientFilter,
) -> Result<ClientConnection> {
    let page = page_request(&paging)?;
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.read_tx().await?;
    let result = clients::list(tx, &page, &filter)
        .await
        .map_err(domain_error)?;
    let order = paging.order;
    Ok(connection(
        &paging,
        result,
        TotalsKind::Clients(filter),
        |c| (order.value(c.created_at, c.name.as_str()), c.id.as_uuid()),
        Client,
    ))
}

/// Which clients `clients` lists; every field given narrows the list.
#[derive(InputObject, Debug, Default)]
#[graphql(name = "ClientFilter")]
pub struct ClientFilterInput {
    /// Only clients created at or after this time.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Only clients created before this time.
    pub created_before: Option<chrono::DateTime<chrono::Utc>>,
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
    /// The client's own white-label branding, shown on its campaign briefs
    /// instead of the agency's (replaces the current one; all fields empty
    /// goes back to the agency's).
    pub branding: Option<crate::organization::BrandingInput>,
}

/// Client queries.
#[derive(Debug, Default)]
pub struct ClientQuery;

#[Object]
impl ClientQuery {
    /// The agency's clients visible to the caller (empty for SMEs), as
    /// `filter` and `search` (a case-insensitive part of the name) narrow
    /// them, in `orderBy`'s order (newest first by default); archived ones
    /// only with `includeArchived`. A cursor only pages the list it came
    /// from.
    #[graphql(complexity = "crate::pagination::list_cost(first, last, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn clients(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
        #[graphql(default_with = "Some(false)")] include_archived: Option<bool>,
        filter: Option<ClientFilterInput>,
        search: Option<String>,
        order_by: Option<ListOrderInput>,
    ) -> Result<ClientConnection> {
        let given = filter.unwrap_or_default();
        let (created_after, created_before) =
            lists::created_range(given.created_after, given.created_before)?;
        let filter = ClientFilter {
            include_archived: include_archived.unwrap_or(false),
            created_after,
            created_before,
            search: lists::search(search)?,
        };
        let order = lists::order(order_by, true)?;
        let spelt = crate::pagination::spelt(&filter);
        client_connection(
            ctx,
            Paging::new(first, after, last, before).shaped(order, spelt),
            filter,
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
            branding: input
                .branding
                .map(crate::organization::BrandingInput::parse)
                .transpose()?,
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

    /// Erases a client and everything of it, in one transaction (OWNER/
    /// ADMIN): its campaigns, runs and outputs, brand guidelines, personas,
    /// assignments, the API keys limited to it, and
    /// the audit rows about it; its runs in flight stop. One audit row
    /// remains: who erased which client id, and when. Returns the id.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::DeleteClient)"#)]
    async fn delete_client(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let client: ClientId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let erased = in_savepoint(tx, clients::delete(tx, client)).await?;
        for then in crate::session::Committed::of_erasure(erased) {
            state.record(then);
        }
        Ok(id)
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
