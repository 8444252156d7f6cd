//! API keys of the active organization: `apiKeys`, `createApiKey` and
//! `revokeApiKey`, for owners and admins. The secret appears in exactly one
//! place, `CreatedApiKey.secret`, in the response that created it.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use strata_domain::{ApiKeyId, ClientId};
use strata_persistence::repo::api_keys::{self, NewApiKey};

use crate::args::parse_id;
use crate::error::domain_error;
use crate::pagination::Paging;
use crate::pagination::{Cursor, at, cursor, page_request};
use crate::savepoint::in_savepoint;
use crate::state::RequestState;
use crate::types::Client;

/// An API key (never its secret).
#[derive(Clone, Debug)]
pub struct ApiKey(pub api_keys::ApiKey);

#[Object]
impl ApiKey {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// A name to recognise it by.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The first characters of the secret, to recognise it by.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// The first client the key is limited to (agencies), if any.
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// Every client the key is limited to (agencies); empty: all of them.
    async fn client_ids(&self) -> Vec<ID> {
        self.0
            .client_ids
            .iter()
            .map(|c| ID(c.to_string()))
            .collect()
    }
    /// Requests a minute the key's own bucket allows, when it has a rate of
    /// its own (the organization's limit still applies).
    async fn rate_limit_per_minute(&self) -> Option<u32> {
        self.0.rate_limit_per_minute
    }
    /// That client, if visible.
    async fn client(&self, ctx: &Context<'_>) -> Result<Option<Client>> {
        let Some(id) = self.0.client_id else {
            return Ok(None);
        };
        let state = ctx.data::<RequestState>()?;
        let found = state
            .client_loader()
            .load_one(id)
            .await
            .map_err(|e| (*e).clone())?;
        Ok(found.map(Client))
    }
    /// Every client the key is limited to that is visible, in its order.
    async fn clients(&self, ctx: &Context<'_>) -> Result<Vec<Client>> {
        let state = ctx.data::<RequestState>()?;
        let found = state
            .client_loader()
            .load_many(self.0.client_ids.iter().copied())
            .await
            .map_err(|e| (*e).clone())?;
        Ok(self
            .0
            .client_ids
            .iter()
            .filter_map(|c| found.get(c).cloned().map(Client))
            .collect())
    }
    /// Whether the key may only read.
    async fn read_only(&self) -> bool {
        self.0.read_only
    }
    /// The role it acts with: `VIEWER` for a read-only key, else
    /// `STRATEGIST`.
    async fn role(&self) -> ApiKeyRole {
        if self.0.read_only {
            ApiKeyRole::Viewer
        } else {
            ApiKeyRole::Strategist
        }
    }
    /// When it stops working, if ever.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When it was revoked, if it was.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// When it was last used (recorded at most once a minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Neither revoked nor expired.
    async fn active(&self) -> bool {
        self.0.is_active(Utc::now())
    }
}

/// A key just created, with its secret.
#[derive(SimpleObject, Debug)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKey,
    /// The secret, for `Authorization: Bearer ...`. Shown only here, once:
    /// it cannot be read again.
    pub secret: String,
}

/// The role an API key acts with.
#[derive(async_graphql::Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum ApiKeyRole {
    /// Reads content.
    Viewer,
    /// Reads and changes content (never members, clients, keys, settings
    /// or the audit log).
    Strategist,
}

/// Input of `createApiKey`.
#[derive(InputObject, Debug)]
pub struct CreateApiKeyInput {
    /// A name to recognise the key by.
    pub name: String,
    /// Limits the key to one client (agencies only); with `clientIds`, one
    /// more.
    pub client_id: Option<ID>,
    /// Limits the key to these clients (agencies only).
    pub client_ids: Option<Vec<ID>>,
    /// Requests a minute the key's own bucket allows, instead of the
    /// server's per-key rate (1 to 1,000,000; the organization's limit
    /// still applies).
    pub rate_limit_per_minute: Option<i64>,
    /// The key may only read (default false); the same as `role: VIEWER`.
    pub read_only: Option<bool>,
    /// The role the key acts with (default `STRATEGIST`, or `VIEWER` with
    /// `readOnly`).
    pub role: Option<ApiKeyRole>,
    /// When the key stops working; must be in the future.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Totals of an API key connection.
pub struct ApiKeyTotals;

#[Object]
impl ApiKeyTotals {
    /// How many items the connection has in all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let tx = ctx.data::<RequestState>()?.read_tx().await?;
        api_keys::count(tx).await.map_err(domain_error)
    }
}

/// API keys, Relay style.
pub type ApiKeyConnection = Connection<Cursor, ApiKey, ApiKeyTotals, EmptyFields>;

/// API key queries.
#[derive(Debug, Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// The active organization's API keys, newest first (OWNER/ADMIN).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, last, child_complexity)",
        guard = r#"crate::guard::ActionGuard(strata_domain::Action::ListApiKeys)"#
    )]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<ApiKeyConnection> {
        let paging = Paging::new(first, after, last, before);
        let page = page_request(&paging)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let result = api_keys::list(tx, &page).await.map_err(domain_error)?;
        let mut conn = Connection::with_additional_fields(
            result.has_previous_page,
            result.has_next_page,
            ApiKeyTotals,
        );
        conn.edges = result
            .items
            .into_iter()
            .map(|k| Edge::new(cursor(&paging, at(k.created_at, k.id.as_uuid())), ApiKey(k)))
            .collect();
        Ok(conn)
    }
}

/// API key mutations.
#[derive(Debug, Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates an API key for the active organization (OWNER/ADMIN),
    /// optionally limited to clients, read-only, expiring, or with a rate
    /// of its own.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::CreateApiKey)"#)]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let mut clients: Vec<ClientId> = input
            .client_id
            .map(|c| parse_id::<ClientId>("clientId", &c))
            .transpose()?
            .into_iter()
            .collect();
        let many = input.client_ids.as_ref().is_some_and(|c| !c.is_empty());
        for c in input.client_ids.unwrap_or_default() {
            clients.push(parse_id::<ClientId>("clientIds", &c)?);
        }
        if state.tenant()?.org_type() == strata_domain::OrgType::Sme && !clients.is_empty() {
            let field = if many { "clientIds" } else { "clientId" };
            return Err(crate::error::ErrorCode::BadUserInput
                .error(format!(
                    "{field}: organizations without clients cannot limit a key to clients"
                ))
                .extend_with(|_, e| e.set("field", field)));
        }
        let read_only = match (input.role, input.read_only) {
            (Some(role), Some(read_only)) if (role == ApiKeyRole::Viewer) != read_only => {
                return Err(crate::error::ErrorCode::BadUserInput
                    .error("role: a VIEWER key is read-only and a STRATEGIST key is not: give one of role and readOnly, or both alike")
                    .extend_with(|_, e| e.set("field", "role")));
            }
            (Some(role), _) => role == ApiKeyRole::Viewer,
            (None, read_only) => read_only.unwrap_or(false),
        };
        let new = NewApiKey::parse(
            &input.name,
            &clients,
            read_only,
            input.expires_at,
            input.rate_limit_per_minute,
            Utc::now(),
        )
        .map_err(|e| domain_error(e.into()))?;
        let tx = state.write_tx().await?;
        let created = in_savepoint(tx, api_keys::create(tx, new)).await?;
        let secret = created.expose_secret().to_owned();
        Ok(CreatedApiKey {
            key: ApiKey(created.key),
            secret,
        })
    }

    /// Revokes an API key of the active organization (OWNER/ADMIN); it stops
    /// working at once.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RevokeApiKey)"#)]
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let id: ApiKeyId = parse_id("id", &id)?;
        let tx = state.write_tx().await?;
        let key = ApiKey(in_savepoint(tx, api_keys::revoke(tx, id)).await?);
        state.record(crate::session::Committed::ApiKeyRevoked);
        Ok(key)
    }

    /// Gives an API key of the active organization a new secret
    /// (OWNER/ADMIN), shown once in the answer. The previous secret keeps
    /// working for `graceSeconds` (at most a week; 0, the default, stops it
    /// at once), so that its users can switch without a gap; the one
    /// before that stops now. A revoked or expired key is not found.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::RotateApiKey)"#)]
    async fn rotate_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(default)] grace_seconds: i32,
    ) -> Result<CreatedApiKey> {
        const MAX_GRACE: i32 = 7 * 24 * 3600;
        let id: ApiKeyId = parse_id("id", &id)?;
        if !(0..=MAX_GRACE).contains(&grace_seconds) {
            return Err(crate::error::ErrorCode::BadUserInput
                .error(format!("graceSeconds: must be between 0 and {MAX_GRACE}"))
                .extend_with(|_, e| e.set("field", "graceSeconds")));
        }
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.write_tx().await?;
        let grace = std::time::Duration::from_secs(u64::try_from(grace_seconds).unwrap_or(0));
        let rotated = in_savepoint(tx, api_keys::rotate(tx, id, grace)).await?;
        // Connections opened with the previous secret check it again.
        state.record(crate::session::Committed::ApiKeyRevoked);
        let secret = rotated.expose_secret().to_owned();
        Ok(CreatedApiKey {
            key: ApiKey(rotated.key),
            secret,
        })
    }
}
