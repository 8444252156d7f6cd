//! Cross-tenant maintenance of agent runs: renewing the leases of the runs
//! a gateway holds, the advisory locks that mark the runs it executes, and
//! failing the runs a stopped gateway left behind. These statements reach
//! every organization's runs, so none of them runs in a tenant transaction:
//! each runs in a transaction of its own as one of the narrow maintenance
//! roles (`app_lease`, `app_maint`), which see nothing of a run but its
//! ids, status and times. This module sits beside [`crate::repo`], not in
//! it, because repositories serve one tenant and take its [`TenantTx`]
//! first, while these functions take the pool and serve the process.
//!
//! [`TenantTx`]: crate::TenantTx

use sea_orm::{DbBackend, FromQueryResult, Statement, Value};
use strata_domain::{DomainError, OrgId, OutputId};
use uuid::Uuid;

use crate::Db;
use crate::array::uuid_array;
use crate::error::map_db_err;
use crate::tx::as_role;

/// Renews the lease of runs this process holds (queued in its memory or
/// executing), in both tables at once, as the narrow `app_lease` role: it
/// sees only `org_id` and `id` of unfinished runs and may only set their
/// `heartbeat_at` to `now()`. Rows another transaction is changing right now
/// (a run ending, a cancellation) are skipped rather than waited for; the
/// next renewal catches them. Returns how many leases were renewed.
pub async fn renew_leases(db: &Db, held: &[(OrgId, OutputId)]) -> Result<u64, DomainError> {
    if held.is_empty() {
        return Ok(0);
    }
    let orgs = uuid_array(held.iter().map(|(org, _)| org.as_uuid()));
    let ids = uuid_array(held.iter().map(|(_, id)| id.as_uuid()));
    if db.is_citus() {
        return citus::renew_leases(db, orgs, ids).await;
    }
    let renew = |table: &str, name: &str| {
        format!(
            "{name}_rows AS (SELECT o.org_id, o.id FROM {table} o \
             JOIN held h ON o.org_id = h.org_id AND o.id = h.id FOR UPDATE OF o SKIP LOCKED), \
             {name} AS (UPDATE {table} o SET heartbeat_at = now() FROM {name}_rows r \
             WHERE o.org_id = r.org_id AND o.id = r.id RETURNING o.id)"
        )
    };
    let sql = format!(
        "WITH held AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS h(org_id, id)), {}, {} \
         SELECT count(*) AS n FROM (SELECT id FROM sme UNION ALL SELECT id FROM agency) r",
        renew("public.agent_outputs", "sme"),
        renew("tenant_b.outputs", "agency"),
    );
    #[derive(FromQueryResult)]
    struct Count {
        n: i64,
    }
    let renewed = as_role(db, "app_lease", |txn| async move {
        Count::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [orgs.into(), ids.into()],
        ))
        .one(&txn)
        .await
        .map(|c| (txn, c))
    })
    .await?;
    Ok(renewed.map_or(0, |c| c.n.max(0) as u64))
}

/// Fails every QUEUED or RUNNING run whose lease
/// (`coalesce(heartbeat_at, started_at, created_at)`) is at least
/// `stale_after` old, except those in `held`, in both tables at once, with
/// `reason`. It runs as the narrow `app_maint` role, which sees nothing of
/// a run but its ids, status and times and may only set an unfinished run
/// FAILED. Rows another transaction is changing right now are skipped.
/// Returns the runs it failed.
pub async fn fail_stale(
    db: &Db,
    reason: &str,
    stale_after: std::time::Duration,
    held: &[OutputId],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let held = uuid_array(held.iter().map(|id| id.as_uuid()));
    if db.is_citus() {
        return citus::fail_stale(db, reason, stale_after, held).await;
    }
    let fail = |table: &str, name: &str| {
        format!(
            "{name}_rows AS (SELECT org_id, id FROM {table} \
             WHERE status IN ('QUEUED', 'RUNNING') \
             AND coalesce(heartbeat_at, started_at, created_at) <= now() - make_interval(secs => $2) \
             AND id <> ALL ($3::uuid[]) FOR UPDATE SKIP LOCKED), \
             {name} AS (UPDATE {table} o SET status = 'FAILED', error = $1, finished_at = now() \
             FROM {name}_rows r WHERE o.org_id = r.org_id AND o.id = r.id \
             RETURNING o.org_id, o.id)"
        )
    };
    let values = [reason.into(), stale_after.as_secs_f64().into(), held.into()];
    fail_in_both_tables(db, fail, values).await
}

/// The class of the advisory locks that mark runs being executed (the first
/// key of PostgreSQL's two-key advisory locks, so that they cannot meet
/// locks other code takes with one key).
pub const RUN_LOCK_CLASS: i32 = 0x5352_554e;

/// The second key of a run's advisory lock: the last four bytes of its id.
/// Two runs may share one; that only delays failing one of them, because a
/// lock someone holds spares its runs.
pub fn run_lock_key(id: OutputId) -> i32 {
    let b = id.as_uuid().into_bytes();
    i32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

/// The same key computed by the database from a run's `id`.
const SQL_LOCK_KEY: &str = "('x' || right(replace(id::text, '-', ''), 8))::bit(32)::int";

/// Session-level advisory locks, on one connection of the pool, marking the
/// runs this process executes: a run is RUNNING only while its executor
/// holds its lock, and the lock goes with the executor's connection when the
/// process stops, however it stops. [`fail_orphaned`] fails the RUNNING runs
/// whose lock nobody holds. The connection is taken while at least one run
/// is held and goes back to the pool, its locks released, when none is.
///
/// Behind a pooler in transaction mode a session outlives nothing but a
/// transaction: the connection then stays inside a transaction while it
/// holds locks (an idle one, holding no snapshot), which keeps the pooler
/// from handing its server session to anyone else, and commits once the
/// last lock is released.
#[derive(Debug)]
pub struct RunLocks {
    db: Db,
    state: tokio::sync::Mutex<LockState>,
}

#[derive(Debug, Default)]
struct LockState {
    conn: Option<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>>,
    held: std::collections::HashSet<OutputId>,
}

impl RunLocks {
    /// No locks yet, over `db`'s pool.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            state: tokio::sync::Mutex::new(LockState::default()),
        }
    }

    /// Takes run `id`'s lock (waiting while a sweep looks at it). On a
    /// connection newly taken, every run held is locked again.
    pub async fn hold(&self, id: OutputId) -> Result<(), DomainError> {
        let mut state = self.state.lock().await;
        state.held.insert(id);
        let ids: Vec<OutputId> = match state.conn {
            Some(_) => vec![id],
            None => {
                let mut conn = self.db.pool().acquire().await.map_err(lock_err)?;
                if self.db.transaction_pooling() {
                    crate::tx::begin_plain(&mut conn).await.map_err(lock_err)?;
                    // The transaction stays open while runs execute: a
                    // server-wide idle-in-transaction timeout must not end
                    // it (and with it the locks that spare these runs).
                    sea_orm::sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
                        .persistent(false)
                        .execute(&mut *conn)
                        .await
                        .map_err(lock_err)?;
                }
                state.conn = Some(conn);
                state.held.iter().copied().collect()
            }
        };
        let keys: Vec<i32> = ids.into_iter().map(run_lock_key).collect();
        let Some(conn) = state.conn.as_mut() else {
            return Ok(());
        };
        let locked =
            sea_orm::sqlx::query("SELECT pg_advisory_lock($1, k) FROM unnest($2::int[]) AS k")
                .bind(RUN_LOCK_CLASS)
                .bind(keys)
                .persistent(!self.db.transaction_pooling())
                .execute(&mut **conn)
                .await;
        if let Err(e) = locked {
            // A broken connection lost its locks: the next call starts over.
            if let Some(conn) = state.conn.take() {
                let _ = conn.close().await;
            }
            return Err(lock_err(e));
        }
        Ok(())
    }

    /// Releases run `id`'s lock; with no run left, the connection too.
    pub async fn release(&self, id: OutputId) {
        let mut state = self.state.lock().await;
        if !state.held.remove(&id) {
            return;
        }
        let empty = state.held.is_empty();
        let Some(conn) = state.conn.as_mut() else {
            return;
        };
        let sql = if empty {
            "SELECT pg_advisory_unlock_all()"
        } else {
            "SELECT pg_advisory_unlock($1, $2)"
        };
        let pooled = self.db.transaction_pooling();
        let mut done = sea_orm::sqlx::query(sql)
            .bind(RUN_LOCK_CLASS)
            .bind(run_lock_key(id))
            .persistent(!pooled)
            .execute(&mut **conn)
            .await;
        if empty && pooled && done.is_ok() {
            done = crate::tx::commit_plain(conn)
                .await
                .map(|()| Default::default());
        }
        match done {
            Ok(_) if empty => drop(state.conn.take()),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot release an agent run's lock; closing its connection");
                if let Some(conn) = state.conn.take() {
                    let _ = conn.close().await;
                }
                // The locks went with the connection; re-take the others'.
                drop(state);
                let rest: Vec<OutputId> = self.state.lock().await.held.drain().collect();
                for id in rest {
                    if let Err(e) = self.hold(id).await {
                        tracing::warn!(error = %e, "cannot re-take an agent run's lock");
                    }
                }
            }
        }
    }
}

fn lock_err(e: sea_orm::sqlx::Error) -> DomainError {
    map_db_err(crate::tx::query_err(e))
}

/// Fails every RUNNING run whose advisory lock (see [`RunLocks`]) nobody
/// holds, except those in `held`, in both tables at once, with `reason`:
/// the process executing it stopped, however recently it renewed its
/// lease. As the narrow `app_maint` role. Rows another transaction is
/// changing right now are skipped; the locks it takes to look are
/// transaction-level and go at its commit. Returns the runs it failed.
pub async fn fail_orphaned(
    db: &Db,
    reason: &str,
    held: &[OutputId],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let held = uuid_array(held.iter().map(|id| id.as_uuid()));
    if db.is_citus() {
        return citus::fail_orphaned(db, reason, held).await;
    }
    let fail = |table: &str, name: &str| {
        format!(
            "{name}_rows AS MATERIALIZED (SELECT org_id, id FROM {table} \
             WHERE status = 'RUNNING' AND id <> ALL ($2::uuid[]) FOR UPDATE SKIP LOCKED), \
             {name}_free AS MATERIALIZED (SELECT org_id, id FROM {name}_rows \
             WHERE pg_try_advisory_xact_lock($3, {SQL_LOCK_KEY})), \
             {name} AS (UPDATE {table} o SET status = 'FAILED', error = $1, finished_at = now() \
             FROM {name}_free r WHERE o.org_id = r.org_id AND o.id = r.id \
             AND o.status = 'RUNNING' RETURNING o.org_id, o.id)"
        )
    };
    let values = [reason.into(), held.into(), RUN_LOCK_CLASS.into()];
    fail_in_both_tables(db, fail, values).await
}

/// Runs, as `app_maint`, the failing statement `fail(table, name)` builds
/// for each run table (a CTE named `name` returning the failed runs' ids)
/// with `values`, and returns the runs failed in both.
async fn fail_in_both_tables(
    db: &Db,
    fail: impl Fn(&str, &str) -> String,
    values: [Value; 3],
) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
    let sql = format!(
        "WITH {}, {} SELECT org_id, id FROM sme UNION ALL SELECT org_id, id FROM agency",
        fail("public.agent_outputs", "sme"),
        fail("tenant_b.outputs", "agency"),
    );
    #[derive(FromQueryResult)]
    struct Failed {
        org_id: Uuid,
        id: Uuid,
    }
    let failed = as_role(db, "app_maint", |txn| async move {
        Failed::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .all(&txn)
        .await
        .map(|rows| (txn, rows))
    })
    .await?;
    Ok(failed
        .into_iter()
        .map(|r| (OrgId::from_uuid(r.org_id), OutputId::from_uuid(r.id)))
        .collect())
}

/// The sweeps on a Citus coordinator, where the run tables are distributed:
/// Citus runs no `FOR UPDATE` across shards, so rows another transaction is
/// changing are waited for rather than skipped (a run's end is one short
/// transaction), and the advisory locks that mark executing runs, which
/// live on the coordinator, are tried there, on the candidates the workers
/// returned, before the update names those runs one by one.
mod citus {
    use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
    use strata_domain::{DomainError, OrgId, OutputId};
    use uuid::Uuid;

    use super::{RUN_LOCK_CLASS, SQL_LOCK_KEY};
    use crate::Db;
    use crate::array::uuid_array;
    use crate::tx::as_role;

    const TABLES: [&str; 2] = ["public.agent_outputs", "tenant_b.outputs"];

    #[derive(FromQueryResult)]
    struct Run {
        org_id: Uuid,
        id: Uuid,
    }

    fn statement(sql: String, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    pub(super) async fn renew_leases(
        db: &Db,
        orgs: String,
        ids: String,
    ) -> Result<u64, DomainError> {
        as_role(db, "app_lease", |txn| async move {
            let mut n = 0;
            for table in TABLES {
                n += txn
                    .execute_raw(statement(
                        format!(
                            "UPDATE {table} SET heartbeat_at = now() \
                             WHERE org_id = ANY ($1::uuid[]) AND id = ANY ($2::uuid[])"
                        ),
                        vec![orgs.clone().into(), ids.clone().into()],
                    ))
                    .await?
                    .rows_affected();
            }
            Ok((txn, n))
        })
        .await
    }

    pub(super) async fn fail_stale(
        db: &Db,
        reason: &str,
        stale_after: std::time::Duration,
        held: String,
    ) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
        let reason = reason.to_owned();
        as_role(db, "app_maint", |txn| async move {
            let mut failed = Vec::new();
            for table in TABLES {
                failed.extend(
                    Run::find_by_statement(statement(
                        format!(
                            "UPDATE {table} SET status = 'FAILED', error = $1, finished_at = now() \
                             WHERE status IN ('QUEUED', 'RUNNING') \
                             AND coalesce(heartbeat_at, started_at, created_at) \
                                 <= now() - make_interval(secs => $2) \
                             AND id <> ALL ($3::uuid[]) RETURNING org_id, id"
                        ),
                        vec![
                            reason.clone().into(),
                            stale_after.as_secs_f64().into(),
                            held.clone().into(),
                        ],
                    ))
                    .all(&txn)
                    .await?,
                );
            }
            Ok((txn, pairs(failed)))
        })
        .await
    }

    pub(super) async fn fail_orphaned(
        db: &Db,
        reason: &str,
        held: String,
    ) -> Result<Vec<(OrgId, OutputId)>, DomainError> {
        let reason = reason.to_owned();
        as_role(db, "app_maint", |txn| async move {
            let mut failed = Vec::new();
            for table in TABLES {
                let running = Run::find_by_statement(statement(
                    format!(
                        "SELECT org_id, id FROM {table} \
                         WHERE status = 'RUNNING' AND id <> ALL ($1::uuid[])"
                    ),
                    vec![held.clone().into()],
                ))
                .all(&txn)
                .await?;
                if running.is_empty() {
                    continue;
                }
                // On the coordinator: a lock taken here is held to commit,
                // so the run's executor cannot take it meanwhile.
                let free = Run::find_by_statement(statement(
                    format!(
                        "SELECT org_id, id FROM unnest($1::uuid[], $2::uuid[]) AS r(org_id, id) \
                         WHERE pg_try_advisory_xact_lock($3, {SQL_LOCK_KEY})"
                    ),
                    vec![
                        uuid_array(running.iter().map(|r| r.org_id)).into(),
                        uuid_array(running.iter().map(|r| r.id)).into(),
                        RUN_LOCK_CLASS.into(),
                    ],
                ))
                .all(&txn)
                .await?;
                for run in free {
                    failed.extend(
                        Run::find_by_statement(statement(
                            format!(
                                "UPDATE {table} SET status = 'FAILED', error = $1, finished_at = now() \
                                 WHERE org_id = $2 AND id = $3 AND status = 'RUNNING' \
                                 RETURNING org_id, id"
                            ),
                            vec![reason.clone().into(), run.org_id.into(), run.id.into()],
                        ))
                        .all(&txn)
                        .await?,
                    );
                }
            }
            Ok((txn, pairs(failed)))
        })
        .await
    }

    fn pairs(runs: Vec<Run>) -> Vec<(OrgId, OutputId)> {
        runs.into_iter()
            .map(|r| (OrgId::from_uuid(r.org_id), OutputId::from_uuid(r.id)))
            .collect()
    }
}
