//! `--citus`: a local Citus cluster (a coordinator and two workers, each an
//! embedded PostgreSQL with the extension preloaded) holding the same
//! dataset, so the read shapes are measured on it beside one PostgreSQL in
//! the same run. All three nodes share the machine with the gateway and
//! wrk: the numbers are the cost of distribution on one machine (more
//! processes, a round trip from coordinator to worker per statement), not
//! what separate worker machines would give.

use std::path::Path;

use anyhow::{Context, Result};
use sea_orm::ConnectionTrait;
use secrecy::ExposeSecret;
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};

use crate::layout::Layout;
use crate::seed;

/// `dir`, emptied of what an earlier run left (a run cut short keeps its
/// nodes' directories).
fn fresh(dir: &Path) -> Result<std::path::PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// The running cluster.
pub struct Cluster {
    nodes: Vec<EmbeddedPostgres>,
    /// Superuser URL of the coordinator's `postgres` database.
    coordinator: url::Url,
}

impl Cluster {
    /// Starts the three nodes under `work_dir/citus-*` (new each run,
    /// removed when they stop) and gives the workers the coordinator's superuser password
    /// (Citus copies roles, passwords included, to the nodes it adds).
    pub async fn start(work_dir: &Path) -> Result<Self> {
        let mut nodes = Vec::new();
        for role in ["coordinator", "worker1", "worker2"] {
            let node = EmbeddedPostgres::start(&EmbeddedOptions {
                data_dir: fresh(&work_dir.join(format!("citus-{role}")))?,
                remove_on_exit: true,
                database: "postgres".into(),
                settings: vec![
                    "shared_preload_libraries=citus".into(),
                    "max_prepared_transactions=200".into(),
                    "max_connections=400".into(),
                    "max_worker_processes=32".into(),
                    "shared_buffers=256MB".into(),
                ],
                trust_loopback: true,
            })
            .await
            .with_context(|| format!("starting the Citus {role} (is the extension installed?)"))?;
            nodes.push(node);
        }
        let coordinator = url::Url::parse(nodes[0].admin_url().expose_secret())?;
        let password = coordinator.password().unwrap_or_default().to_owned();
        for node in &nodes[1..] {
            let conn = seed::connect(node.admin_url().expose_secret(), 1).await?;
            conn.execute_unprepared(&format!("ALTER ROLE postgres PASSWORD '{password}'"))
                .await?;
            conn.close().await?;
        }
        Ok(Self { nodes, coordinator })
    }

    fn url_of(&self, node: usize, db: &str) -> Result<String> {
        let mut u = url::Url::parse(self.nodes[node].admin_url().expose_secret())?;
        u.set_password(self.coordinator.password())
            .map_err(|()| anyhow::anyhow!("a password fits the URL"))?;
        u.set_path(&format!("/{db}"));
        Ok(u.to_string())
    }

    /// The coordinator's URL of database `db`.
    pub fn url(&self, db: &str) -> Result<String> {
        self.url_of(0, db)
    }

    /// Creates `db` on every node, joins the workers, and seeds `layout`
    /// through the coordinator (migrating first, which distributes it).
    pub async fn seed(&self, db: &str, layout: Layout) -> Result<()> {
        for node in 0..self.nodes.len() {
            let conn = seed::connect(&self.url_of(node, "postgres")?, 1).await?;
            conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await?;
            conn.execute_unprepared(&format!("CREATE DATABASE {db}"))
                .await?;
            conn.close().await?;
            let conn = seed::connect(&self.url_of(node, db)?, 1).await?;
            conn.execute_unprepared("CREATE EXTENSION citus").await?;
            conn.close().await?;
        }
        let conn = seed::connect(&self.url(db)?, 1).await?;
        conn.execute_unprepared(&format!(
            "SELECT citus_set_coordinator_host('127.0.0.1', {})",
            self.nodes[0].port()
        ))
        .await?;
        for node in &self.nodes[1..] {
            conn.execute_unprepared(&format!(
                "SELECT citus_add_node('127.0.0.1', {})",
                node.port()
            ))
            .await?;
        }
        conn.close().await?;
        seed::migrate_and_load(&self.url(db)?, layout).await?;
        Ok(())
    }

    /// Stops the nodes.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}
