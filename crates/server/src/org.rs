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
    ///
    /// Creates (or with --rotate gives a new password to) a PostgreSQL login
    /// that reads the views of schema `reporting`: only this organization's
    /// rows, only one client's with --client. Prints its connection string
    /// once, on stdout. --revoke removes it. Each action is recorded in the
    /// organization's audit log. Run it with the database URL that migrates:
    /// it creates roles.
    ReportingLogin(ReportingLoginArgs),
    /// Move an organization's rows to a Citus worker.
    ///
    /// On a Citus coordinator, moves the shard group holding the
    /// organization's rows of every table to the worker --node names,
    /// isolating it into a shard group of its own first when it shares one.
    /// Writes to that organization wait while its shards are copied. Run it
    /// with the database URL that migrates.
    Place(crate::placement::PlaceArgs),
    /// Set an organization's monthly token quota for agent runs.
    ///
    /// Tokens per calendar month (UTC), prompt and completion together, for
    /// every run of the organization; `default` returns it to the server's
    /// --agent-monthly-token-quota. Recorded in the organization's audit
    /// log. Run it with the database URL that migrates.
    SetQuota(crate::quota::SetQuotaArgs),
}

/// Runs `command` against `database`.
pub async fn run(database: &DatabaseConfig, command: OrgCommand) -> anyhow::Result<()> {
    match command {
        OrgCommand::ReportingLogin(args) => crate::reporting::run(database, args).await,
        OrgCommand::Place(args) => crate::placement::run(database, args).await,
        OrgCommand::SetQuota(args) => crate::quota::run(database, args).await,
    }
}
