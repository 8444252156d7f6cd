//! The organization's audit log, for owners and admins: the `auditLog`
//! query and its `AuditEntry` type. Entries are written by the mutations
//! themselves, in their savepoint.

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ErrorExtensions, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use strata_domain::model;
use strata_persistence::repo::audit;

use crate::args::parse_id;
use crate::error::{ErrorCode, domain_error};
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

/// Which rows `auditLog` lists; every field given narrows the list.
#[derive(InputObject, Debug, Default)]
pub struct AuditLogFilter {
    /// Only rows about this client.
    pub client_id: Option<ID>,
    /// Only rows of this actor: a user's id or an API key's.
    pub actor_id: Option<ID>,
    /// Only rows of this operation (`createCampaign`, `runAgent`, ...).
    pub operation: Option<String>,
    /// Only rows written at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only rows written before this time.
    pub to: Option<DateTime<Utc>>,
}

impl AuditLogFilter {
    fn parse(self) -> Result<audit::AuditFilter> {
        let operation = match self.operation.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(o)
                if o.len() <= 100
                    && o.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_') =>
            {
                Some(o.to_owned())
            }
            Some(_) => {
                return Err(ErrorCode::BadUserInput
                    .error("filter.operation: an operation name, like createCampaign")
                    .extend_with(|_, e| e.set("field", "filter.operation")));
            }
        };
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to <= from
        {
            return Err(ErrorCode::BadUserInput
                .error("filter.to: must be later than from")
                .extend_with(|_, e| e.set("field", "filter.to")));
        }
        Ok(audit::AuditFilter {
            client_id: crate::args::optional_client(self.client_id.as_ref())?,
            actor_id: self
                .actor_id
                .map(|a| parse_id::<uuid::Uuid>("filter.actorId", &a))
                .transpose()?,
            operation,
            from: self.from,
            to: self.to,
        })
    }
}

/// Audit log entries, Relay style.
pub type AuditEntryConnection = Connection<Cursor, AuditEntry, Totals, EmptyFields>;

/// Audit log queries.
#[derive(Debug, Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The organization's audit log, newest first, as `filter` narrows
    /// it (owners and admins). A cursor only pages the list it came from.
    #[graphql(
        complexity = "crate::pagination::list_cost(first, last, child_complexity)",
        guard = r#"crate::guard::ActionGuard(strata_domain::Action::ReadAuditLog)"#
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditLogFilter>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<AuditEntryConnection> {
        let filter = filter
            .map(AuditLogFilter::parse)
            .transpose()?
            .unwrap_or_default();
        let spelt = crate::pagination::spelt(&filter);
        let paging = Paging::new(first, after, last, before)
            .shaped(strata_persistence::repo::ListOrder::default(), spelt);
        let page = page_request(&paging)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        let found = audit::list(tx, &filter, &page)
            .await
            .map_err(domain_error)?;
        Ok(connection(
            &paging,
            found,
            TotalsKind::Audit(filter),
            |a| at(a.created_at, a.id),
            AuditEntry,
        ))
    }
}
