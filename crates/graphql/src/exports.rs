//! Data exports: `exportClient` and `exportOrganization` start one (owners
//! and admins), `dataExport` reads it, and the subscription of the same
//! name follows it until it ends. The file is downloaded from
//! `GET /exports/{id}` (the server's route) with the same credential.

use std::time::Duration;

use async_graphql::futures_util::Stream;
use async_graphql::futures_util::stream;
use async_graphql::{Context, Enum, ID, Object, Result};
use chrono::{DateTime, Utc};
use strata_domain::{ClientId, DataExportId};
use strata_persistence::context::VerifiedContext;
use strata_persistence::export::{self, ExportStatus, Scope};
use strata_persistence::{Db, TenantTx};

use crate::args::parse_id;
use crate::error::{ErrorCode, domain_error};
use crate::savepoint::in_savepoint;
use crate::session::Committed;
use crate::state::RequestState;

/// Where an export is in its life.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum DataExportStatus {
    /// Being written.
    Running,
    /// Written: download it from `downloadUrl` until `expiresAt`.
    Ready,
    /// Stopped on an error (see `error`); start another.
    Failed,
    /// Past `expiresAt`: the file is gone.
    Expired,
}

impl From<ExportStatus> for DataExportStatus {
    fn from(s: ExportStatus) -> Self {
        match s {
            ExportStatus::Running => Self::Running,
            ExportStatus::Ready => Self::Ready,
            ExportStatus::Failed => Self::Failed,
            ExportStatus::Expired => Self::Expired,
        }
    }
}

/// An export of the organization's or one client's data: a JSON Lines
/// file (see the export format's documentation), downloaded from
/// `downloadUrl` with the credential that reads this.
pub struct DataExport(pub(crate) export::DataExport);

#[Object]
impl DataExport {
    /// Its id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where it is.
    async fn status(&self) -> DataExportStatus {
        self.0.status.into()
    }

    /// Rows written so far (the header and footer lines apart); the
    /// file's rows once it is ready.
    async fn row_count(&self) -> i64 {
        self.0.row_count
    }

    /// Bytes of the file written so far; its size once it is ready.
    async fn bytes(&self) -> i64 {
        self.0.bytes
    }

    /// The client exported; null for the whole organization.
    async fn client_id(&self) -> Option<ID> {
        self.0.client_id.map(|c| ID(c.to_string()))
    }

    /// Why it failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// Where its file is downloaded from (a path of this server, `GET`
    /// with the same `Authorization`), once it is ready.
    async fn download_url(&self) -> Option<String> {
        (self.0.status == ExportStatus::Ready).then(|| format!("/exports/{}", self.0.id))
    }

    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }

    /// Until when its file can be downloaded (a day after it started).
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
}

/// Reading an export.
#[derive(Default)]
pub struct ExportQuery;

#[Object]
impl ExportQuery {
    /// An export of the active organization by id (OWNER/ADMIN); null when
    /// it does not exist here.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::ReadExport)"#)]
    async fn data_export(&self, ctx: &Context<'_>, id: ID) -> Result<Option<DataExport>> {
        let id: DataExportId = parse_id("id", &id)?;
        let state = ctx.data::<RequestState>()?;
        state.tenant()?;
        let tx = state.read_tx().await?;
        Ok(export::by_id(tx, id).await?.map(DataExport))
    }
}

/// Starting an export.
#[derive(Default)]
pub struct ExportMutation;

#[Object]
impl ExportMutation {
    /// Starts an export of everything one client of the agency holds
    /// (OWNER/ADMIN): the client, its assignments, guidelines, personas,
    /// campaigns, runs and outputs, the API keys and invitations limited
    /// to it and the audit rows about it. Follow it with `dataExport`.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::ExportClient)"#)]
    async fn export_client(&self, ctx: &Context<'_>, id: ID) -> Result<DataExport> {
        let client: ClientId = parse_id("id", &id)?;
        start(ctx, Scope::Client(client)).await
    }

    /// Starts an export of everything the organization holds
    /// (OWNER/ADMIN), in both schemas: the organization, its members,
    /// invitations, API keys (never their secrets), usage, audit log and
    /// all content. Follow it with `dataExport`.
    #[graphql(guard = r#"crate::guard::ActionGuard(strata_domain::Action::ExportOrganization)"#)]
    async fn export_organization(&self, ctx: &Context<'_>) -> Result<DataExport> {
        start(ctx, Scope::Organization).await
    }
}

async fn start(ctx: &Context<'_>, scope: Scope) -> Result<DataExport> {
    let state = ctx.data::<RequestState>()?;
    state.tenant()?;
    let tx = state.write_tx().await?;
    let started = in_savepoint(tx, export::start(tx, scope)).await?;
    state.record(Committed::ExportStarted(Box::new(started.clone())));
    Ok(DataExport(started))
}

/// How often a subscription reads its export again.
const POLL: Duration = Duration::from_secs(1);

async fn read(
    db: &Db,
    ctx: &VerifiedContext,
    id: DataExportId,
) -> Result<Option<export::DataExport>, strata_domain::DomainError> {
    let tx = TenantTx::begin_read_only(db, ctx).await?;
    let found = export::by_id(&tx, id).await;
    tx.commit().await?;
    found
}

/// Following an export.
struct Follow {
    db: Db,
    ctx: VerifiedContext,
    id: DataExportId,
    last: Option<export::DataExport>,
    done: bool,
    check: Option<std::sync::Arc<dyn crate::limits::Revalidate>>,
}

impl Follow {
    async fn next(&mut self) -> Option<Result<DataExport>> {
        loop {
            if self.done {
                return None;
            }
            if self.last.is_some() {
                tokio::time::sleep(POLL).await;
            }
            // On a WebSocket each read takes a turn and checks the
            // credential again, like `agentRun`.
            let _turn = match &self.check {
                Some(check) => match check.turn().await {
                    Some(turn) => Some(turn),
                    None => {
                        // Out of turns for now: wait before asking again.
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                },
                None => None,
            };
            if let Some(check) = &self.check {
                match check.current().await {
                    Some(ctx) => self.ctx = ctx,
                    None => {
                        self.done = true;
                        return Some(Err(crate::limits::revoked()));
                    }
                }
            }
            let first = self.last.is_none();
            match read(&self.db, &self.ctx, self.id).await {
                Ok(Some(now)) => {
                    if self.last.as_ref() == Some(&now) {
                        continue;
                    }
                    self.done = now.status.is_terminal();
                    self.last = Some(now.clone());
                    return Some(Ok(DataExport(now)));
                }
                Ok(None) if first => {
                    self.done = true;
                    return Some(Err(ErrorCode::NotFound.error("not found")));
                }
                // Gone (its client or organization erased): the stream ends.
                Ok(None) => return None,
                Err(e) => {
                    self.done = true;
                    return Some(Err(domain_error(e)));
                }
            }
        }
    }
}

/// `dataExport`, the subscription: the export as it is now, then each
/// change of its progress, until it is ready or failed.
pub(crate) async fn follow(
    ctx: &Context<'_>,
    id: ID,
) -> Result<impl Stream<Item = Result<DataExport>> + use<>> {
    let id: DataExportId = parse_id("id", &id)?;
    let state = ctx.data::<RequestState>()?;
    let tenant = state.tenant()?.clone();
    strata_domain::Action::ReadExport
        .check(&tenant)
        .map_err(domain_error)?;
    let session = ctx.data_opt::<crate::limits::SocketSession>();
    let check = session.and_then(crate::limits::SocketSession::check);
    let slot = crate::limits::subscription_slot(session)?;
    let follow = Follow {
        db: state.db().clone(),
        ctx: tenant,
        id,
        last: None,
        done: false,
        check,
    };
    Ok(stream::unfold((follow, slot), |(mut f, slot)| async move {
        let item = f.next().await?;
        Some((item, (f, slot)))
    }))
}
