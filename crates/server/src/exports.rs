//! Data exports on the server's side: the exports mutations started are
//! written in the background ([`Exports`]), and their files are downloaded
//! from `GET /exports/{id}` with the credential that would read them
//! through GraphQL (owners and admins of the organization; a file
//! streams a chunk at a time, each read in a short transaction of its
//! own, so a download holds no connection between chunks and no more
//! than a chunk in memory).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_domain::{DataExportId, DomainError};
use strata_graphql::ErrorCode;
use strata_persistence::context::VerifiedContext;
use strata_persistence::export::{self, DataExport, ExportStatus};
use strata_persistence::{Db, TenantTx};
use tokio::sync::Semaphore;

use crate::pipeline::{Outcome, Rejection, credential};
use crate::routes::{AppState, request_id};

/// How often an export waiting for a slot says it is alive.
const WAITING_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes started exports in the background, a few at a time per process
/// (each holds a database connection while it reads).
#[derive(Clone)]
pub struct Exports {
    db: Db,
    permits: Arc<Semaphore>,
}

impl Exports {
    /// Exports of `db`, at most `at_once` written together.
    pub fn new(db: Db, at_once: usize) -> Self {
        Self {
            db,
            permits: Arc::new(Semaphore::new(at_once.max(1))),
        }
    }

    /// How many exports a pool of `connections` writes at once: each holds
    /// one connection for its snapshot and borrows a second for each
    /// chunk, so exports take at most a quarter of the pool (at least
    /// one), and never more than two.
    pub fn at_once_for(connections: u32) -> usize {
        usize::try_from(connections / 4).unwrap_or(1).clamp(1, 2)
    }

    /// Writes `export` with the context that started it.
    pub fn start(&self, ctx: VerifiedContext, export: DataExport) {
        let db = self.db.clone();
        let permits = self.permits.clone();
        tokio::spawn(async move {
            // While it waits for a slot (keeping its place in the queue),
            // the export says it is alive.
            let acquire = permits.acquire_owned();
            tokio::pin!(acquire);
            let mut beat = tokio::time::interval(WAITING_HEARTBEAT);
            beat.tick().await;
            let _permit = loop {
                tokio::select! {
                    permit = &mut acquire => match permit {
                        Ok(permit) => break permit,
                        Err(_) => return,
                    },
                    _ = beat.tick() => {
                        if let Err(e) = export::touch(&db, &ctx, &export).await {
                            tracing::info!(export.id = %export.id, error = %e, "data export no longer waits");
                            return;
                        }
                    }
                }
            };
            match export::run(&db, &ctx, &export).await {
                Ok(p) => tracing::info!(
                    export.id = %export.id,
                    org = %ctx.org_id(),
                    rows = p.rows,
                    bytes = p.bytes,
                    "data export written"
                ),
                Err(e) => tracing::warn!(export.id = %export.id, error = %e, "data export failed"),
            }
        });
    }
}

fn refused(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    Rejection::new(status, code, message, Outcome::BadRequest).into_response("application/json")
}

fn domain_refusal(e: DomainError) -> Response {
    match e {
        DomainError::Forbidden(why) => refused(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why),
        DomainError::NotFound => not_found(),
        other => {
            let gql = strata_graphql::domain_error(other);
            refused(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                &gql.message,
            )
        }
    }
}

fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found")
}

/// `GET /exports/{id}`: the export's file, as `application/x-ndjson`.
pub(crate) async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: axum::http::Method,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let request_id = request_id(&headers);
    let client_ip = state.client_address(
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        &headers,
    );
    let rs = match credential(&state, &headers, client_ip, &request_id).await {
        Ok(rs) => rs,
        Err(rejection) => return rejection.into_response("application/json"),
    };
    let Some(ctx) = rs.context().cloned() else {
        return Rejection::unauthenticated().into_response("application/json");
    };
    // An id that is not one is answered like one that exists nowhere.
    let Ok(id) = id.parse::<DataExportId>() else {
        return not_found();
    };
    let opened = async {
        // A HEAD asks about the file without downloading it: no audit row.
        let tx = TenantTx::begin(&state.db, &ctx).await?;
        let export = if method == axum::http::Method::HEAD {
            export::by_id(&tx, id).await?
        } else {
            export::open(&tx, id).await?
        };
        tx.commit().await?;
        Ok::<_, DomainError>(export)
    }
    .await;
    let export = match opened {
        Ok(Some(export)) => export,
        Ok(None) => return not_found(),
        Err(e) => return domain_refusal(e),
    };
    match export.status {
        ExportStatus::Ready => {}
        ExportStatus::Running => {
            let mut resp = refused(
                StatusCode::CONFLICT,
                ErrorCode::ExportNotReady,
                "the export is still being written: follow it with dataExport and download it once it is READY",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            return resp;
        }
        ExportStatus::Failed => {
            return refused(
                StatusCode::CONFLICT,
                ErrorCode::ExportNotReady,
                "the export failed: start another",
            );
        }
        ExportStatus::Expired => {
            return refused(
                StatusCode::GONE,
                ErrorCode::ExportNotReady,
                "the export expired: start another",
            );
        }
    }
    let db = state.db.clone();
    let chunks = export.chunks;
    let body = async_graphql::futures_util::stream::unfold(0, move |seq| {
        let db = db.clone();
        let ctx = ctx.clone();
        async move {
            if seq >= chunks {
                return None;
            }
            let read = async {
                let tx = TenantTx::begin_read_only(&db, &ctx).await?;
                let data = export::chunk(&tx, id, seq).await;
                tx.commit().await?;
                data?.ok_or(DomainError::NotFound)
            }
            .await
            .map_err(|e| {
                // The body stops short of its length: the client sees a
                // broken download rather than a short file.
                tracing::warn!(export.id = %id, seq, error = %e, "data export download failed");
                std::io::Error::other("the export could not be read")
            });
            Some((read, seq + 1))
        }
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&export.bytes.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"strata-export-{}.jsonl\"",
        export.id
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    resp.into_response()
}

/// Arguments of `strata export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The organization (uuid).
    #[arg(long)]
    org: strata_domain::OrgId,
    /// Only this client of the agency (uuid).
    #[arg(long)]
    client: Option<strata_domain::ClientId>,
    /// The file to write (replaced only once the export is whole);
    /// unset: standard output.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// A sink writing the file's chunks to a file or standard output.
struct Output<W>(W);

#[async_trait::async_trait]
impl<W: tokio::io::AsyncWrite + Unpin + Send> export::Sink for Output<W> {
    async fn chunk(&mut self, data: Vec<u8>, _: export::Progress) -> Result<(), DomainError> {
        use tokio::io::AsyncWriteExt as _;
        self.0
            .write_all(&data)
            .await
            .map_err(|e| DomainError::Internal(Box::new(e)))
    }
}

/// `strata export`: the operator's export of an organization or one of
/// its clients, in the format of `GET /exports/{id}`, read as the
/// organization's owner would with the database URL (one that may switch
/// to the runtime roles: the gateway's or the one that migrates). A
/// summary goes to standard error.
pub async fn run_cli(
    database: &crate::config::DatabaseConfig,
    args: ExportArgs,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::io::AsyncWriteExt as _;
    let opened =
        crate::app::Database::open(database, &strata_persistence::PoolOptions::default()).await?;
    let result = match &args.out {
        None => {
            let mut out = Output(tokio::io::BufWriter::new(tokio::io::stdout()));
            let written =
                export::operator_export(&opened.db, args.org, args.client, &mut out).await;
            out.0.flush().await.context("write to standard output")?;
            written
        }
        Some(path) => {
            let mut partial = path.clone().into_os_string();
            partial.push(".partial");
            let partial = std::path::PathBuf::from(partial);
            let file = tokio::fs::File::create(&partial)
                .await
                .with_context(|| format!("create {}", partial.display()))?;
            let mut out = Output(tokio::io::BufWriter::new(file));
            let written =
                export::operator_export(&opened.db, args.org, args.client, &mut out).await;
            out.0.flush().await.context("write the export")?;
            drop(out);
            match &written {
                Ok(Some(_)) => tokio::fs::rename(&partial, path)
                    .await
                    .with_context(|| format!("write {}", path.display()))?,
                _ => {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
            }
            written
        }
    };
    opened.close().await;
    match result.map_err(|e| anyhow::anyhow!("{e}"))? {
        None => match args.client {
            Some(client) => anyhow::bail!("no client {client} in organization {}", args.org),
            None => anyhow::bail!("no organization {}", args.org),
        },
        Some(progress) => {
            eprintln!(
                "exported {} rows ({} bytes) of organization {}{}",
                progress.rows,
                progress.bytes,
                args.org,
                args.client
                    .map(|c| format!(", client {c}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exports;

    #[test]
    fn exports_take_at_most_a_quarter_of_the_pool_and_at_least_one_slot() {
        assert_eq!(Exports::at_once_for(1), 1);
        assert_eq!(Exports::at_once_for(7), 1);
        assert_eq!(Exports::at_once_for(8), 2);
        assert_eq!(Exports::at_once_for(64), 2);
    }
}
