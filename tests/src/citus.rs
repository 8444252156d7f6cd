//! The Citus tier's cluster: a coordinator and two workers, each an
//! embedded PostgreSQL with the extension preloaded, in private
//! directories, removed when the test run ends.
//!
//! Test databases are cloned from a migrated template as on one
//! PostgreSQL, on every node under the same name: a Citus database is the
//! coordinator's metadata plus the workers' shards, and the metadata names
//! nodes by address, not by database, so the clones of one template on
//! every node form a distributed database of their own. A template must
//! have no sessions; Citus keeps a maintenance daemon in every database
//! that has the extension, so the template is closed to connections
//! before it is cloned.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret;
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};

/// What to do when the extension is missing.
pub const INSTALL: &str =
    "run ../shared/vendor/citus/build.sh (builds and installs Citus 13.2.2 into PostgreSQL 15)";

/// Whether the citus extension is installed beside the PostgreSQL server
/// binaries the embedded clusters use.
pub fn installed() -> bool {
    let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") else {
        return false;
    };
    dirs.flatten()
        .any(|d| d.path().join("lib/citus.so").is_file())
}

/// Settings every node starts with.
fn settings() -> Vec<String> {
    [
        "shared_preload_libraries=citus",
        // Citus commits multi-node writes in two phases.
        "max_prepared_transactions=200",
        // Shard moves (tenant placement) use logical replication.
        "wal_level=logical",
        // One maintenance daemon per database with the extension, and the
        // tests keep many databases at once.
        "max_worker_processes=96",
        "max_connections=400",
        // Few shards keep DDL and cloning quick; each tenant still lives on
        // one shard group, which is what the tests check.
        "citus.shard_count=4",
        "citus.max_adaptive_executor_pool_size=2",
        "citus.log_remote_commands=off",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Starts the coordinator and two workers (not yet joined: a Citus
/// cluster is per database, see [`join`]), and returns them with their
/// maintenance databases' URLs. Citus copies every role, with its
/// password, to a node it adds, so the superuser has the coordinator's
/// password everywhere from the start.
pub async fn start_nodes() -> (Vec<EmbeddedPostgres>, Vec<String>) {
    let nodes = start_each().await;
    let coordinator =
        url::Url::parse(nodes[0].admin_url().expose_secret()).expect("the coordinator's URL");
    let password = coordinator.password().unwrap_or_default().to_owned();
    let mut urls = vec![coordinator.to_string()];
    for node in &nodes[1..] {
        let own = node.admin_url().expose_secret().to_owned();
        let conn = crate::admin(&own).await;
        exec(&conn, &format!("ALTER ROLE postgres PASSWORD '{password}'")).await;
        conn.close().await.ok();
        let mut url = url::Url::parse(&own).expect("a worker's URL");
        url.set_password(Some(&password))
            .expect("a password fits the URL");
        urls.push(url.to_string());
    }
    (nodes, urls)
}

async fn start_each() -> Vec<EmbeddedPostgres> {
    let mut nodes = Vec::new();
    for role in ["coordinator", "worker1", "worker2"] {
        let node = EmbeddedPostgres::start(&EmbeddedOptions {
            data_dir: crate::private_dir(&format!("strata-citus-{role}")),
            remove_on_exit: true,
            database: "postgres".into(),
            settings: settings(),
            trust_loopback: true,
        })
        .await
        .unwrap_or_else(|e| panic!("start the Citus {role}: {e}"));
        nodes.push(node);
    }
    nodes
}

/// Creates `name` on every node (maintenance URLs in `nodes`, coordinator
/// first) and makes it one distributed database ([`join`]).
pub async fn create_database(nodes: &[String], ports: &[u16], name: &str) {
    for node in nodes {
        let conn = crate::admin(node).await;
        exec(&conn, &format!("CREATE DATABASE {name}")).await;
        conn.close().await.ok();
    }
    join(nodes, ports, name).await;
}

/// In database `name` of every node: the extension; on the coordinator,
/// its own address and the workers.
pub async fn join(nodes: &[String], ports: &[u16], name: &str) {
    for node in nodes {
        let conn = crate::admin(&crate::with_database(node, name)).await;
        exec(&conn, "CREATE EXTENSION IF NOT EXISTS citus").await;
        conn.close().await.ok();
    }
    let coordinator = crate::admin(&crate::with_database(&nodes[0], name)).await;
    exec(
        &coordinator,
        &format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {})",
            ports[0]
        ),
    )
    .await;
    for port in &ports[1..] {
        exec(
            &coordinator,
            &format!("SELECT citus_add_node('127.0.0.1', {port})"),
        )
        .await;
    }
    coordinator.close().await.ok();
}

/// Makes `name` a template on every node: no new connections, and the
/// sessions it has (the maintenance daemons, cached connections between
/// nodes) ended.
pub async fn close_to_connections(nodes: &[String], name: &str) {
    for node in nodes {
        let conn = crate::admin(node).await;
        exec(
            &conn,
            &format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"),
        )
        .await;
        terminate(&conn, name).await;
        conn.close().await.ok();
    }
}

async fn terminate(conn: &DatabaseConnection, name: &str) {
    exec(
        conn,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
}

/// Runs `sql` (a `CREATE DATABASE`), waiting out sessions that are still
/// leaving `template` (a terminated session takes a moment to go).
pub async fn retry_while_busy(conn: &DatabaseConnection, sql: &str, template: Option<&str>) {
    for attempt in 0.. {
        match conn.execute_unprepared(sql).await {
            Ok(_) => return,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                if let Some(t) = template {
                    terminate(conn, t).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

async fn exec(conn: &DatabaseConnection, sql: &str) {
    conn.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
