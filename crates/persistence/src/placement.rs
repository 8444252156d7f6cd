//! Tenant placement on Citus, for `strata org place`: which worker holds an
//! organization's rows, and moving them to another (data residency, a
//! large tenant on a node of its own). Every tenant table is distributed
//! by `org_id` in one co-location group, so an organization's rows of every
//! table live in one shard group; moving that group moves the tenant.
//! When the group holds other organizations too, the tenant is first
//! isolated into a shard group of its own, so that nobody else moves with
//! it. The work is Citus's own functions (`isolate_tenant_to_new_shard`,
//! `citus_move_shard_placement`); this module finds the shard group and the
//! nodes and checks what it is asked.
//!
//! It runs with the database URL that migrates (a superuser of the
//! coordinator, as Citus's functions need) and reads no tenant row: only
//! the organization's existence and type, and Citus's metadata.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use strata_domain::OrgId;
use thiserror::Error;

use crate::Db;

/// The table anchoring the co-location group (the migrations distribute
/// it first).
const ANCHOR: &str = "tenant_b.workspace_entities";

/// Why a placement could not be made. Each message says what to do.
#[derive(Debug, Error)]
pub enum PlacementError {
    /// Not a Citus coordinator.
    #[error(
        "the database is not a Citus coordinator: an organization's rows are all on this one PostgreSQL"
    )]
    NotCitus,
    /// No such organization.
    #[error("no organization {0}")]
    NoSuchOrg(OrgId),
    /// The node is not a worker of this cluster that holds shards.
    #[error(
        "{0} is not an active primary node that holds shards; see SELECT nodename, nodeport FROM pg_dist_node"
    )]
    NoSuchNode(String),
    /// The database refused.
    #[error("{0}")]
    Db(#[from] DbErr),
}

/// Where an organization's shard group is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The shard of the anchor table holding the organization (its
    /// group's other shards follow it).
    pub shard_id: i64,
    /// `host:port` of the node holding it.
    pub node: String,
    /// Whether the shard group holds this organization alone.
    pub isolated: bool,
}

/// What [`place`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Where the organization was.
    pub before: Location,
    /// Where it is now.
    pub after: Location,
}

/// Where `org`'s rows are.
pub async fn locate(db: &Db, org: OrgId) -> Result<Location, PlacementError> {
    check(db, org).await?;
    locate_unchecked(db.raw(), org).await
}

async fn check(db: &Db, org: OrgId) -> Result<(), PlacementError> {
    if !db.is_citus() {
        return Err(PlacementError::NotCitus);
    }
    let known = db
        .raw()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM public.organizations WHERE id = $1",
            [Value::from(org.as_uuid())],
        ))
        .await?
        .is_some();
    if known {
        Ok(())
    } else {
        Err(PlacementError::NoSuchOrg(org))
    }
}

async fn locate_unchecked(
    conn: &impl ConnectionTrait,
    org: OrgId,
) -> Result<Location, PlacementError> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT s.shardid, p.nodename || ':' || p.nodeport AS node, \
                    s.shardminvalue = s.shardmaxvalue AS isolated \
               FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid) \
              WHERE s.shardid = get_shard_id_for_distribution_column($1::regclass, $2::uuid)",
            [Value::from(ANCHOR), Value::from(org.as_uuid())],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom(format!("no shard of {ANCHOR} holds {org}")))?;
    Ok(Location {
        shard_id: row.try_get("", "shardid")?,
        node: row.try_get("", "node")?,
        isolated: row.try_get("", "isolated")?,
    })
}

/// Moves `org`'s shard group to `host:port`, isolating it first when the
/// group holds other organizations. Writes to the organization wait while
/// its shards are copied (`block_writes`: no logical replication needed);
/// reads go on. Placing an organization where it already is changes
/// nothing.
pub async fn place(db: &Db, org: OrgId, host: &str, port: u16) -> Result<Placed, PlacementError> {
    check(db, org).await?;
    let conn = db.raw();
    let target = format!("{host}:{port}");
    let node_ok = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_dist_node WHERE nodename = $1 AND nodeport = $2 \
               AND isactive AND noderole = 'primary' AND shouldhaveshards",
            [Value::from(host), Value::from(i32::from(port))],
        ))
        .await?
        .is_some();
    if !node_ok {
        return Err(PlacementError::NoSuchNode(target));
    }
    let before = locate_unchecked(conn, org).await?;
    if !before.isolated {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT isolate_tenant_to_new_shard($1::regclass, $2::uuid, 'CASCADE', \
                    shard_transfer_mode => 'block_writes')",
            [Value::from(ANCHOR), Value::from(org.as_uuid())],
        ))
        .await?;
    }
    let isolated = locate_unchecked(conn, org).await?;
    if isolated.node != target {
        let (from_host, from_port) = isolated
            .node
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<i32>().ok()?)))
            .ok_or_else(|| DbErr::Custom(format!("unreadable node {}", isolated.node)))?;
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT citus_move_shard_placement($1, $2, $3, $4, $5, \
                    shard_transfer_mode => 'block_writes')",
            [
                Value::from(isolated.shard_id),
                Value::from(from_host),
                Value::from(from_port),
                Value::from(host),
                Value::from(i32::from(port)),
            ],
        ))
        .await?;
    }
    let after = locate_unchecked(conn, org).await?;
    Ok(Placed { before, after })
}
