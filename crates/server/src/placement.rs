//! `strata org place`: moves an organization's rows to a Citus worker
//! (data residency, a large tenant on a node of its own). It runs with the
//! database URL that migrates; the work is `strata_persistence::placement`'s.

use strata_domain::OrgId;
use strata_persistence::PoolOptions;
use strata_persistence::placement;

use crate::app::Database;
use crate::config::DatabaseConfig;

/// Arguments of `strata org place`.
#[derive(Debug, clap::Args)]
pub struct PlaceArgs {
    /// The organization (uuid).
    org: OrgId,
    /// The worker to hold it, as `host:port` exactly as the coordinator
    /// knows it (`SELECT nodename, nodeport FROM pg_dist_node`).
    #[arg(long, value_parser = parse_node)]
    node: (String, u16),
}

fn parse_node(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text}: expected host:port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{text}: the port is not a number from 1 to 65535"))?;
    if host.is_empty() || port == 0 {
        return Err(format!("{text}: expected host:port"));
    }
    Ok((host.to_owned(), port))
}

/// Runs the command against `database`: one line on stdout saying where
/// the organization is now.
pub async fn run(database: &DatabaseConfig, args: PlaceArgs) -> anyhow::Result<()> {
    let opened = Database::open(database, &PoolOptions::default()).await?;
    let (host, port) = &args.node;
    let result = placement::place(&opened.db, args.org, host, *port).await;
    opened.close().await;
    let placed = result?;
    if placed.before.node == placed.after.node && placed.before.isolated {
        println!(
            "organization {} is already on {} (shard group {}, its own)",
            args.org, placed.after.node, placed.after.shard_id
        );
    } else {
        println!(
            "organization {} is on {} (shard group {}, its own; it was on {}{})",
            args.org,
            placed.after.node,
            placed.after.shard_id,
            placed.before.node,
            if placed.before.isolated {
                ""
            } else {
                ", shared with other organizations"
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_node;

    #[test]
    fn a_node_is_host_and_port() {
        assert_eq!(parse_node("10.0.0.7:5432"), Ok(("10.0.0.7".into(), 5432)));
        assert_eq!(
            parse_node("worker-eu-1:6432"),
            Ok(("worker-eu-1".into(), 6432))
        );
        assert!(parse_node("worker").is_err());
        assert!(parse_node(":5432").is_err());
        assert!(parse_node("w:0").is_err());
        assert!(parse_node("w:99999").is_err());
    }
}
