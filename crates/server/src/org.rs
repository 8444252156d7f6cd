//! `strata org`: administering an organization from the command line, with
//! the database URL that migrates. Each subcommand lives in a module of its
//! own; this one only dispatches.

use crate::config::DatabaseConfig;
use crate::reporting::ReportingLoginArgs;

/// What `strata org` does.
#[derive(Debug, clap::Subcommand)]
pub enum OrgCommand {
    /// Create, rotate or revoke the PostgreSQL login an organization's BI
    /// tools read its `reporting` views with.
    ReportingLogin(ReportingLoginArgs),
}

/// Runs `command` against `database`.
pub async fn run(database: &DatabaseConfig, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::ReportingLogin(args) => crate::reporting::run(database, args).await,
    }
}
