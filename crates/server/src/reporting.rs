//! `strata org reporting-login`: creates, rotates or revokes the PostgreSQL
//! login with which an organization's BI tools read the `reporting` views
//! (`docs/REPORTING.md`). It runs with the database URL that migrates, since
//! it creates roles; the work itself is `strata_persistence::reporting`'s.

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use strata_domain::{ClientId, OrgId};
use strata_persistence::PoolOptions;
use strata_persistence::reporting::{self, Scope};

use crate::app::Database;
use crate::config::DatabaseConfig;

/// Arguments of `strata org reporting-login`.
#[derive(Debug, clap::Args)]
pub struct ReportingLoginArgs {
    /// The organization (uuid).
    org: OrgId,
    /// Limit the login to this client of the agency (uuid).
    #[arg(long)]
    client: Option<ClientId>,
    /// Give the existing login a new password (creating it when missing);
    /// its open sessions end.
    #[arg(long, conflicts_with = "revoke")]
    rotate: bool,
    /// Remove the login and end its open sessions.
    #[arg(long)]
    revoke: bool,
}

/// Runs the command against `database`; prints the connection string of a
/// new password on stdout (and nothing else there), the rest on stderr.
pub async fn run(database: &DatabaseConfig, args: ReportingLoginArgs) -> anyhow::Result<()> {
    let opened = Database::open(database, &PoolOptions::default()).await?;
    let result = act(database, &opened, &args).await;
    opened.close().await;
    result
}

async fn act(
    config: &DatabaseConfig,
    database: &Database,
    args: &ReportingLoginArgs,
) -> anyhow::Result<()> {
    let scope = Scope {
        org_id: args.org,
        client_id: args.client,
    };
    let whom = match args.client {
        Some(c) => format!("client {c} of organization {}", args.org),
        None => format!("organization {}", args.org),
    };
    if args.revoke {
        let revoked = reporting::revoke(&database.db, scope).await?;
        eprintln!(
            "revoked the reporting login {} of {whom}{}{}",
            revoked.login,
            sessions(revoked.sessions_ended),
            if revoked.audited {
                ""
            } else {
                " (the organization no longer exists: nothing was audited)"
            }
        );
        return Ok(());
    }
    let base = match (config, &database.embedded) {
        (DatabaseConfig::Url(url), _) => url.clone(),
        (DatabaseConfig::Embedded(_), Some(pg)) => pg.url().clone(),
        (DatabaseConfig::Embedded(_), None) => {
            anyhow::bail!("the embedded PostgreSQL is not running")
        }
    };
    let issued = reporting::issue(&database.db, scope, args.rotate).await?;
    let url = reporting::connection_url(&base, &issued.login, &issued.password)
        .context("the database URL")?;
    println!("{}", url.expose_secret());
    eprintln!(
        "{} the reporting login {} of {whom}{}: the connection string above is shown only now; \
         it reads the views of schema `reporting` (docs/REPORTING.md)",
        if issued.created {
            "created"
        } else {
            "rotated the password of"
        },
        issued.login,
        sessions(issued.sessions_ended),
    );
    if matches!(config, DatabaseConfig::Embedded(_)) {
        eprintln!(
            "note: the embedded PostgreSQL listens only while strata runs, on a port chosen at each start"
        );
    }
    Ok(())
}

fn sessions(ended: Option<u64>) -> String {
    match ended {
        Some(0) => String::new(),
        Some(n) => format!(" ({n} open session(s) ended)"),
        None => " (its open sessions could not be ended: this database role may not signal them)"
            .to_owned(),
    }
}
