//! Data exports: everything an organization, or one client of an agency,
//! holds, as JSON Lines (`docs/EXPORT.md`): a header line, one line per
//! row naming its table with the row's fields, and a footer with the
//! counts.
//!
//! The rows are read in one read-only, repeatable-read transaction of the
//! caller's context (one snapshot, under row-level security like any
//! request), table by table in key order and a page at a time; the
//! database turns each row into its line. Lines are gathered into chunks
//! of about a mebibyte handed one by one to a [`Sink`], so memory stays
//! flat however large the tenant. The gateway's sink ([`run`]) stores each
//! chunk as a row of `public.data_export_chunks` in a short transaction of
//! its own, with the export's progress; `strata export` writes them to a
//! file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, QueryResult, Statement, Value};
use strata_domain::{ClientId, DataExportId, DomainError, OrgId, OrgType, UserId};
use uuid::Uuid;

use crate::Db;
use crate::context::VerifiedContext;
use crate::error::map_db_err;
use crate::repo::audit::{self, AuditEntry};
use crate::tx::TenantTx;

/// The `format` of the header line.
pub const FORMAT: &str = "strata-export";
/// The version of the format (`docs/EXPORT.md`).
pub const VERSION: u32 = 1;
/// How long an export's file can be downloaded.
pub const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Rows read per statement (a run's input and output may each be tens
/// of kilobytes).
const PAGE: usize = 200;
/// The size a chunk is handed on at (it ends with the line that passed it).
pub const CHUNK_BYTES: usize = 1 << 20;
/// A running export whose progress has not moved for this long was
/// abandoned (its gateway stopped): it reads as failed.
const SILENCE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// Exports of one organization that may be ready for download at once
/// (each is a copy of its data).
const MAX_READY: i64 = 10;
/// The first key of the advisory locks that queue an organization's
/// starts (the second is the organization's).
const LOCK_SPACE: i32 = 0x5354_5845; // "STXE"
/// How often a running export says it is alive when no chunk is due.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The whole organization.
    Organization,
    /// One client of an agency.
    Client(ClientId),
}

/// Where an export is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportStatus {
    /// Being written.
    Running,
    /// Written: the file can be downloaded until it expires.
    Ready,
    /// Stopped on an error, or abandoned; nothing can be downloaded.
    Failed,
    /// Written, but past its expiry: the file is gone or about to be.
    Expired,
}

impl ExportStatus {
    /// Whether the export will change no more.
    pub const fn is_terminal(self) -> bool {
        !matches!(self, ExportStatus::Running)
    }
}

/// An export, as its owners and admins see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataExport {
    /// Its id.
    pub id: DataExportId,
    /// The client exported, or `None` for the whole organization.
    pub client_id: Option<ClientId>,
    /// Where it is.
    pub status: ExportStatus,
    /// Rows written so far (the header and footer lines apart).
    pub row_count: i64,
    /// Bytes of the file written so far.
    pub bytes: i64,
    /// Chunks of the file stored so far.
    pub chunks: i32,
    /// Why it failed.
    pub error: Option<String>,
    /// Who started it.
    pub created_by: Option<UserId>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Until when its file can be downloaded.
    pub expires_at: DateTime<Utc>,
}

impl DataExport {
    /// What was exported.
    pub fn scope(&self) -> Scope {
        self.client_id.map_or(Scope::Organization, Scope::Client)
    }
}

/// How a table's rows are tied to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientLink {
    /// They are the organization's, not a client's (left out of a
    /// client's export).
    None,
    /// A `client_id` column.
    Column,
    /// The row is the client (`id`).
    Itself,
    /// A `client_ids` list naming it.
    Listed,
}

/// One table of an export.
#[derive(Debug)]
struct Source {
    table: &'static str,
    /// The type of organization whose rows it holds (`None`: both).
    org_type: Option<OrgType>,
    /// The column naming the organization.
    org_column: &'static str,
    /// The key the rows are read in the order of, with the types of its
    /// columns.
    key: &'static [(&'static str, &'static str)],
    client: ClientLink,
    /// Columns never exported (secrets).
    omit: &'static [&'static str],
}

const ID: &[(&str, &str)] = &[("id", "uuid")];

/// A table whose rows name their organization in `org_id`, with no
/// secret column.
const fn source(
    table: &'static str,
    org_type: Option<OrgType>,
    key: &'static [(&'static str, &'static str)],
    client: ClientLink,
) -> Source {
    Source {
        table,
        org_type,
        org_column: "org_id",
        key,
        client,
        omit: &[],
    }
}

const SME: Option<OrgType> = Some(OrgType::Sme);
const AGENCY: Option<OrgType> = Some(OrgType::Agency);

/// Every table an organization's or a client's rows live in; the
/// exports themselves and users (who may belong elsewhere) are not
/// exported. Members' names and e-mails are on their memberships.
const SOURCES: &[Source] = &[
    Source {
        org_column: "id",
        ..source("public.organizations", None, ID, ClientLink::None)
    },
    source(
        "public.memberships",
        None,
        &[("user_id", "uuid")],
        ClientLink::None,
    ),
    source("public.invitations", None, ID, ClientLink::Listed),
    Source {
        omit: &["key_hash", "previous_key_hash"],
        ..source("public.api_keys", None, ID, ClientLink::Listed)
    },
    source(
        "public.token_usage",
        None,
        &[("month", "date")],
        ClientLink::None,
    ),
    source("public.audit_log", None, ID, ClientLink::Column),
    source(
        "public.brand_guidelines",
        SME,
        &[("org_id", "uuid")],
        ClientLink::None,
    ),
    source("public.personas", SME, ID, ClientLink::None),
    source("public.campaigns", SME, ID, ClientLink::None),
    source("public.agent_outputs", SME, ID, ClientLink::None),
    source(
        "tenant_b.workspace_entities",
        AGENCY,
        ID,
        ClientLink::Itself,
    ),
    source(
        "tenant_b.client_assignments",
        AGENCY,
        &[("client_id", "uuid"), ("user_id", "uuid")],
        ClientLink::Column,
    ),
    source("tenant_b.entity_data", AGENCY, ID, ClientLink::Column),
    source("tenant_b.campaigns", AGENCY, ID, ClientLink::Column),
    source("tenant_b.outputs", AGENCY, ID, ClientLink::Column),
];

/// The tables an export of `scope` in an organization of `org_type`
/// reads, in the order it writes them.
fn sources(org_type: OrgType, scope: Scope) -> impl Iterator<Item = &'static Source> {
    SOURCES.iter().filter(move |s| {
        s.org_type.is_none_or(|t| t == org_type)
            && (scope == Scope::Organization || s.client != ClientLink::None)
    })
}

/// The tables an export of `scope` in an organization of `org_type`
/// holds rows of (for tests and documentation).
pub fn tables(org_type: OrgType, scope: Scope) -> Vec<&'static str> {
    sources(org_type, scope).map(|s| s.table).collect()
}

/// The statement reading a page of `source`'s rows of the organization
/// (`$1`) and, for a client's export, the client (`$2`), after `after`
/// (the last key read), each row as its finished line.
fn page(source: &Source, org: OrgId, scope: Scope, after: Option<&[String]>) -> Statement {
    let mut row = "to_jsonb(t)".to_owned();
    if !source.omit.is_empty() {
        let omit: Vec<String> = source.omit.iter().map(|c| format!("'{c}'")).collect();
        row = format!("(to_jsonb(t) - ARRAY[{}]::text[])", omit.join(", "));
    }
    let mut sql = format!(
        "SELECT json_build_object('type', 'row', 'table', '{}', 'row', {row})::text AS line",
        source.table
    );
    for (i, (column, _)) in source.key.iter().enumerate() {
        sql.push_str(&format!(", t.{column}::text AS k{i}"));
    }
    sql.push_str(&format!(
        " FROM {} t WHERE t.{} = $1",
        source.table, source.org_column
    ));
    let mut values: Vec<Value> = vec![org.as_uuid().into()];
    if let Scope::Client(client) = scope {
        sql.push_str(match source.client {
            ClientLink::Column => " AND t.client_id = $2",
            ClientLink::Itself => " AND t.id = $2",
            ClientLink::Listed => " AND $2 = ANY (t.client_ids)",
            // Never read for a client (see `sources`).
            ClientLink::None => " AND false",
        });
        values.push(client.as_uuid().into());
    }
    let columns: Vec<String> = source.key.iter().map(|(c, _)| format!("t.{c}")).collect();
    if let Some(after) = after {
        let mut bounds = Vec::with_capacity(source.key.len());
        for ((_, ty), value) in source.key.iter().zip(after) {
            values.push(value.clone().into());
            bounds.push(format!("${}::{ty}", values.len()));
        }
        sql.push_str(&format!(
            " AND ({}) > ({})",
            columns.join(", "),
            bounds.join(", ")
        ));
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {PAGE}", columns.join(", ")));
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// How far an export got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Rows read.
    pub rows: u64,
    /// Bytes handed to the sink.
    pub bytes: u64,
}

/// Where an export's file goes, a chunk at a time.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Takes the next chunk of the file (whole lines); `progress` counts it.
    async fn chunk(&mut self, data: Vec<u8>, progress: Progress) -> Result<(), DomainError>;

    /// Called now and then while no chunk is due, to say the export lives.
    async fn heartbeat(&mut self, _progress: Progress) -> Result<(), DomainError> {
        Ok(())
    }
}

/// Writes the export of `scope` of `tx`'s organization, read in `tx`
/// (read-only: one snapshot), to `sink`; returns its totals. `id` names
/// the export in the header.
pub async fn write(
    tx: &TenantTx,
    scope: Scope,
    id: Option<DataExportId>,
    sink: &mut dyn Sink,
) -> Result<Progress, DomainError> {
    let ctx = tx.ctx();
    let org = ctx.org_id();
    let org_type = ctx.org_type();
    let header = serde_json::json!({
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "exportId": id,
        "orgId": org,
        "orgType": org_type.as_str(),
        "clientId": match scope {
            Scope::Organization => None,
            Scope::Client(c) => Some(c),
        },
        "createdAt": Utc::now(),
        "tables": tables(org_type, scope),
    });
    let mut buf = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4);
    push_line(&mut buf, &header);
    let mut progress = Progress::default();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut alive = Instant::now();
    for source in sources(org_type, scope) {
        let mut after: Option<Vec<String>> = None;
        let mut n = 0u64;
        loop {
            let rows = tx
                .query_all_raw(page(source, org, scope, after.as_deref()))
                .await
                .map_err(map_db_err)?;
            for row in &rows {
                let line: String = row.try_get("", "line").map_err(map_db_err)?;
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                n += 1;
                progress.rows += 1;
                // A chunk ends with the line that passed the size, even in
                // the middle of a page: runs hold large outputs.
                if buf.len() >= CHUNK_BYTES {
                    flush(&mut buf, &mut progress, sink).await?;
                    alive = Instant::now();
                }
            }
            if let Some(last) = rows.last() {
                after = Some(key_of(source, last)?);
            }
            if alive.elapsed() >= HEARTBEAT {
                sink.heartbeat(progress).await?;
                alive = Instant::now();
            }
            if rows.len() < PAGE {
                break;
            }
        }
        counts.insert(source.table, n);
    }
    let footer = serde_json::json!({
        "type": "footer",
        "rowCount": progress.rows,
        "tables": counts,
    });
    push_line(&mut buf, &footer);
    flush(&mut buf, &mut progress, sink).await?;
    Ok(progress)
}

fn push_line(buf: &mut Vec<u8>, value: &serde_json::Value) {
    buf.extend_from_slice(value.to_string().as_bytes());
    buf.push(b'\n');
}

fn key_of(source: &Source, row: &QueryResult) -> Result<Vec<String>, DomainError> {
    (0..source.key.len())
        .map(|i| row.try_get::<String>("", &format!("k{i}")))
        .collect::<Result<_, _>>()
        .map_err(map_db_err)
}

async fn flush(
    buf: &mut Vec<u8>,
    progress: &mut Progress,
    sink: &mut dyn Sink,
) -> Result<(), DomainError> {
    let data = std::mem::replace(buf, Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 4));
    progress.bytes += data.len() as u64;
    sink.chunk(data, *progress).await
}

const COLUMNS: &str = "id, client_id, status, row_count, bytes, chunks, error, created_by, \
                       created_at, updated_at, finished_at, expires_at";

fn to_domain(row: &QueryResult, now: DateTime<Utc>) -> Result<DataExport, DomainError> {
    let get_uuid = |c: &str| row.try_get::<Option<Uuid>>("", c).map_err(map_db_err);
    let status: String = row.try_get("", "status").map_err(map_db_err)?;
    let updated_at: DateTime<Utc> = row.try_get("", "updated_at").map_err(map_db_err)?;
    let expires_at: DateTime<Utc> = row.try_get("", "expires_at").map_err(map_db_err)?;
    let mut error: Option<String> = row.try_get("", "error").map_err(map_db_err)?;
    let status = match status.as_str() {
        "READY" if expires_at <= now => ExportStatus::Expired,
        "READY" => ExportStatus::Ready,
        "RUNNING" if now - updated_at > SILENCE => {
            error = Some("the export stopped before it ended: start another".to_owned());
            ExportStatus::Failed
        }
        "RUNNING" => ExportStatus::Running,
        _ => ExportStatus::Failed,
    };
    Ok(DataExport {
        id: DataExportId::from_uuid(row.try_get("", "id").map_err(map_db_err)?),
        client_id: get_uuid("client_id")?.map(ClientId::from_uuid),
        status,
        row_count: row.try_get("", "row_count").map_err(map_db_err)?,
        bytes: row.try_get("", "bytes").map_err(map_db_err)?,
        chunks: row.try_get("", "chunks").map_err(map_db_err)?,
        error,
        created_by: get_uuid("created_by")?.map(UserId::from_uuid),
        created_at: row.try_get("", "created_at").map_err(map_db_err)?,
        finished_at: row.try_get("", "finished_at").map_err(map_db_err)?,
        expires_at,
    })
}

/// Starts an export of `scope` (owners and admins): its row, running, and
/// its audit row. Another client's id, or a client of an organization
/// that has none, is `NotFound`; an export of the organization that is
/// still running is a conflict. The caller runs it ([`run`]) once this
/// commits.
pub async fn start(tx: &TenantTx, scope: Scope) -> Result<DataExport, DomainError> {
    let ctx = tx.ctx();
    let action = match scope {
        Scope::Organization => strata_domain::Action::ExportOrganization,
        Scope::Client(_) => strata_domain::Action::ExportClient,
    };
    crate::repo::require(tx, action)?;
    let org = ctx.org_id().as_uuid();
    let client = match scope {
        Scope::Organization => None,
        Scope::Client(id) => {
            if crate::repo::clients::by_id(tx, id).await?.is_none() {
                return Err(DomainError::NotFound);
            }
            Some(id.as_uuid())
        }
    };
    // Starts of one organization's exports queue here until the request
    // that holds the lock ends, so that two cannot both find none running.
    tx.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
        [LOCK_SPACE.into(), org.to_string().into()],
    ))
    .await
    .map_err(map_db_err)?;
    let now = Utc::now();
    let live = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) FILTER (WHERE status = 'RUNNING' AND updated_at > $2) AS running, \
                    count(*) FILTER (WHERE status = 'READY' AND expires_at > $3) AS ready \
             FROM public.data_exports WHERE org_id = $1",
            [org.into(), (now - SILENCE).into(), now.into()],
        ))
        .await
        .map_err(map_db_err)?;
    let tally = |column: &str| -> Result<i64, DomainError> {
        live.as_ref()
            .map(|r| r.try_get::<i64>("", column))
            .transpose()
            .map_err(map_db_err)
            .map(Option::unwrap_or_default)
    };
    if tally("running")? > 0 {
        return Err(DomainError::Conflict {
            field: "export",
            message: "an export of this organization is still running: follow it with \
                      dataExport, or start another once it ended"
                .to_owned(),
        });
    }
    if tally("ready")? >= MAX_READY {
        return Err(DomainError::Conflict {
            field: "export",
            message: format!(
                "the organization holds {MAX_READY} exports that have not expired: \
                 download one of those, or wait until the oldest expires"
            ),
        });
    }
    let id = DataExportId::generate();
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO public.data_exports \
                 (org_id, id, org_type, client_id, created_by, created_at, updated_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING {COLUMNS}"
            ),
            [
                org.into(),
                id.as_uuid().into(),
                ctx.org_type().as_str().into(),
                client.into(),
                ctx.actor().user_id().map(|u| u.as_uuid()).into(),
                now.into(),
                (now + LIFETIME).into(),
            ],
        ))
        .await
        .map_err(map_db_err)?
        .ok_or(DomainError::NotFound)?;
    let export = to_domain(&row, now)?;
    audit::record(
        tx,
        AuditEntry {
            action,
            target_type: "DataExport",
            target_id: Some(id.as_uuid()),
            client_id: export.client_id,
            details: serde_json::json!({}),
        },
    )
    .await?;
    Ok(export)
}

/// An export by id (owners and admins; `None` when it is not visible).
pub async fn by_id(tx: &TenantTx, id: DataExportId) -> Result<Option<DataExport>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ReadExport)?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT {COLUMNS} FROM public.data_exports WHERE org_id = $1 AND id = $2"),
            [tx.ctx().org_id().as_uuid().into(), id.as_uuid().into()],
        ))
        .await
        .map_err(map_db_err)?;
    row.map(|r| to_domain(&r, Utc::now())).transpose()
}

/// Opens an export's file for download (owners and admins), writing the
/// audit row of the download: the export when it is ready, `None` when
/// it is not visible.
pub async fn open(tx: &TenantTx, id: DataExportId) -> Result<Option<DataExport>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::DownloadExport)?;
    let Some(export) = by_id(tx, id).await? else {
        return Ok(None);
    };
    if export.status == ExportStatus::Ready {
        audit::record(
            tx,
            AuditEntry {
                action: strata_domain::Action::DownloadExport,
                target_type: "DataExport",
                target_id: Some(id.as_uuid()),
                client_id: export.client_id,
                details: serde_json::json!({ "bytes": export.bytes }),
            },
        )
        .await?;
    }
    Ok(Some(export))
}

/// Chunk `seq` of an export's file (`None` when it is not visible).
pub async fn chunk(
    tx: &TenantTx,
    id: DataExportId,
    seq: i32,
) -> Result<Option<Vec<u8>>, DomainError> {
    crate::repo::require(tx, strata_domain::Action::ReadExport)?;
    let row = tx
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT data FROM public.data_export_chunks \
             WHERE org_id = $1 AND export_id = $2 AND seq = $3",
            [
                tx.ctx().org_id().as_uuid().into(),
                id.as_uuid().into(),
                seq.into(),
            ],
        ))
        .await
        .map_err(map_db_err)?;
    row.map(|r| r.try_get::<Vec<u8>>("", "data").map_err(map_db_err))
        .transpose()
}

/// The gateway's sink: each chunk a row of `public.data_export_chunks`,
/// stored with the export's progress in a transaction of its own.
struct Store<'a> {
    db: &'a Db,
    ctx: &'a VerifiedContext,
    export: &'a DataExport,
    seq: i32,
}

impl Store<'_> {
    /// Records `progress` (and the chunk count) on the export's row, in
    /// `tx`; an export that is gone (its client or organization erased)
    /// stops here.
    async fn record(&self, tx: &TenantTx, progress: Progress) -> Result<(), DomainError> {
        let updated = tx
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE public.data_exports SET chunks = $3, row_count = $4, bytes = $5, updated_at = $6 \
                 WHERE org_id = $1 AND id = $2 AND status = 'RUNNING' AND updated_at > $7",
                [
                    self.ctx.org_id().as_uuid().into(),
                    self.export.id.as_uuid().into(),
                    self.seq.into(),
                    count(progress.rows).into(),
                    count(progress.bytes).into(),
                    Utc::now().into(),
                    (Utc::now() - SILENCE).into(),
                ],
            ))
            .await
            .map_err(map_db_err)?;
        // Gone (its client or organization erased), or silent so long
        // that it reads as abandoned: it stops here.
        if updated.rows_affected() == 0 {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl Sink for Store<'_> {
    async fn chunk(&mut self, data: Vec<u8>, progress: Progress) -> Result<(), DomainError> {
        let tx = TenantTx::begin(self.db, self.ctx).await?;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO public.data_export_chunks (org_id, export_id, seq, org_type, data) \
             VALUES ($1, $2, $3, $4, $5)",
            [
                self.ctx.org_id().as_uuid().into(),
                self.export.id.as_uuid().into(),
                self.seq.into(),
                self.ctx.org_type().as_str().into(),
                data.into(),
            ],
        ))
        .await
        .map_err(map_db_err)?;
        self.seq += 1;
        self.record(&tx, progress).await?;
        tx.commit().await
    }

    async fn heartbeat(&mut self, progress: Progress) -> Result<(), DomainError> {
        let tx = TenantTx::begin(self.db, self.ctx).await?;
        self.record(&tx, progress).await?;
        tx.commit().await
    }
}

/// Says that an export [`start`] made is still alive while it waits to be
/// written (its progress is touched), so that it does not read as
/// abandoned; an export that is gone or no longer running is `NotFound`.
pub async fn touch(db: &Db, ctx: &VerifiedContext, export: &DataExport) -> Result<(), DomainError> {
    let tx = TenantTx::begin(db, ctx).await?;
    let updated = tx
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE public.data_exports SET updated_at = $3 \
             WHERE org_id = $1 AND id = $2 AND status = 'RUNNING' AND updated_at > $4",
            [
                ctx.org_id().as_uuid().into(),
                export.id.as_uuid().into(),
                Utc::now().into(),
                (Utc::now() - SILENCE).into(),
            ],
        ))
        .await
        .map_err(map_db_err)?;
    tx.commit().await?;
    if updated.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// Runs an export [`start`] made, with the context that started it: its
/// file is written chunk by chunk, then it is marked ready for a day (or
/// failed, with what the caller may be told, its chunks deleted). Returns
/// its totals.
pub async fn run(
    db: &Db,
    ctx: &VerifiedContext,
    export: &DataExport,
) -> Result<Progress, DomainError> {
    let mut store = Store {
        db,
        ctx,
        export,
        seq: 0,
    };
    let written = async {
        let snapshot = TenantTx::begin_read_only(db, ctx).await?;
        let written = write(&snapshot, export.scope(), Some(export.id), &mut store).await;
        snapshot.commit().await?;
        written
    }
    .await;
    let (progress, error) = match &written {
        Ok(p) => (*p, None),
        Err(e) => {
            tracing::warn!(export.id = %export.id, error = %e, "data export failed");
            (
                Progress::default(),
                Some("the export failed: start another".to_owned()),
            )
        }
    };
    let tx = TenantTx::begin(db, ctx).await?;
    let org = ctx.org_id().as_uuid();
    let id = export.id.as_uuid();
    let now = Utc::now();
    let statement = match &written {
        // Ready for a day from now, unless it fell silent so long that it
        // already reads as abandoned (a paused writer stays stopped).
        Ok(_) => Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE public.data_exports SET status = 'READY', finished_at = $3, updated_at = $3, \
             expires_at = $4, row_count = $5, bytes = $6 \
             WHERE org_id = $1 AND id = $2 AND status = 'RUNNING' AND updated_at > $7",
            [
                org.into(),
                id.into(),
                now.into(),
                (now + LIFETIME).into(),
                count(progress.rows).into(),
                count(progress.bytes).into(),
                (now - SILENCE).into(),
            ],
        ),
        // Failed: what it wrote goes at once.
        Err(_) => {
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "DELETE FROM public.data_export_chunks WHERE org_id = $1 AND export_id = $2",
                [org.into(), id.into()],
            ))
            .await
            .map_err(map_db_err)?;
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                "UPDATE public.data_exports SET status = 'FAILED', error = $3, finished_at = $4, \
                 updated_at = $4 WHERE org_id = $1 AND id = $2 AND status = 'RUNNING'",
                [org.into(), id.into(), error.into(), now.into()],
            )
        }
    };
    let ended = tx
        .execute_raw(statement)
        .await
        .map_err(map_db_err)?
        .rows_affected();
    tx.commit().await?;
    if written.is_ok() && ended == 0 {
        // Erased meanwhile, or abandoned while it was silent.
        return Err(DomainError::NotFound);
    }
    written
}

/// The operator's export (`strata export`): `org`'s rows, or those of its
/// client `client`, read as the organization's owner would, written to
/// `sink`. `Ok(None)` when the organization (or the client) does not
/// exist. The export is audited in the organization once written.
pub async fn operator_export(
    db: &Db,
    org: OrgId,
    client: Option<ClientId>,
    sink: &mut dyn Sink,
) -> Result<Option<Progress>, DomainError> {
    let Some(ctx) = operator_context(db, org).await? else {
        return Ok(None);
    };
    let scope = client.map_or(Scope::Organization, Scope::Client);
    let snapshot = TenantTx::begin_read_only(db, &ctx).await?;
    if let Scope::Client(id) = scope
        && crate::repo::clients::by_id(&snapshot, id).await?.is_none()
    {
        snapshot.commit().await?;
        return Ok(None);
    }
    let progress = write(&snapshot, scope, None, sink).await?;
    snapshot.commit().await?;
    let tx = TenantTx::begin(db, &ctx).await?;
    audit::record(
        &tx,
        AuditEntry {
            action: match scope {
                Scope::Organization => strata_domain::Action::ExportOrganization,
                Scope::Client(_) => strata_domain::Action::ExportClient,
            },
            target_type: "DataExport",
            target_id: None,
            client_id: client,
            details: serde_json::json!({
                "operator": true,
                "rows": progress.rows,
                "bytes": progress.bytes,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(progress))
}

/// The operator's context in `org`, of the type the organization's own
/// row says (read as each type in turn: a context of the wrong type sees
/// no row of it).
async fn operator_context(db: &Db, org: OrgId) -> Result<Option<VerifiedContext>, DomainError> {
    for org_type in [OrgType::Sme, OrgType::Agency] {
        let ctx = VerifiedContext::for_operator(org, org_type);
        let tx = TenantTx::begin_read_only(db, &ctx).await?;
        let row = tx
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT type FROM public.organizations WHERE id = $1",
                [org.as_uuid().into()],
            ))
            .await
            .map_err(map_db_err)?;
        tx.commit().await?;
        let found: Option<String> = row
            .map(|r| r.try_get("", "type"))
            .transpose()
            .map_err(map_db_err)?;
        if found.as_deref() == Some(org_type.as_str()) {
            return Ok(Some(ctx));
        }
    }
    Ok(None)
}

/// Deletes the exports past their expiry, with their files, in every
/// organization (as the narrow `app_maint` role, which sees nothing of
/// them but their ids and expiry); returns how many went.
pub async fn delete_expired(db: &Db) -> Result<u64, DomainError> {
    crate::tx::as_role(db, "app_maint", |txn| async move {
        let deleted = txn
            .execute_unprepared("DELETE FROM public.data_exports WHERE expires_at < now()")
            .await?
            .rows_affected();
        Ok((txn, deleted))
    })
    .await
}
