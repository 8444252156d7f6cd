//! The organization's audit log, for owners and admins: the `auditLog`
//! query and its `AuditEntry` type. Entries are written by the mutations
//! themselves, in their savepoint.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, Utc};
use strata_domain::model;
use strata_persistence::repo::audit;

use crate::error::domain_error;
use crate::pagination::Paging;
use crate::pagination::{Cursor, Totals, TotalsKind, at, connection, page_request};
use crate::state::RequestState;

/// One row of the audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry(pub model::AuditRecord);

#[Object]
impl AuditEntry {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The mutation (`createCampaign`, ...).
    async fn operation(&self) -> &str {
        &self.0.operation
    }
    /// The kind of object changed.
    async fn target_type(&self) -> &str {
        &self.0.target_type
    }
    /// The object changed.
    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.map(|t| ID(t.to_string()))
    }
    /// The client concerned (agencies).
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }
    /// The user who acted, if a user acted.
    async fn actor_user_id(&self) -> Option<ID> {
        self.0.actor_user_id.map(|u| ID(u.to_string()))
    }
    /// The API key that acted, if a key acted.
    async fn actor_api_key_id(&self) -> Option<ID> {
        self.0.actor_api_key_id.map(|k| ID(k.to_string()))
    }
    /// The request that did it (`X-Request-Id`).
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// Non-secret details.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Audit log entries, Relay style.
pub type AuditEntryConnection = Connection<Cursor, AuditEntry, Totals, EmptyFields>;

/// Audit log queries.
#[derive(Debug, Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The organization's audit log, newest first (owners and admins).
    #[graphql(
        complexity = "crate::pagination::list_cost(first, last, child_complexity)",
        guard = r#"crate::guard::ActionGuard(strata_domain::Action::ReadAuditLog)"#
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<AuditEntryConnection> {
        let paging = Paging::new(first, after, last, before);
        let page = page_request(&paging)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let found = audit::list(tx, &page).await.map_err(domain_error)?;
        Ok(connection(
            &paging,
            found,
            TotalsKind::Audit,
            |a| at(a.created_at, a.id),
            AuditEntry,
        ))
    }
}
