//! `strata org set-quota`: an organization's own monthly token quota for
//! agent runs, set by the operator with the database URL that migrates.

use strata_domain::OrgId;
use strata_persistence::PoolOptions;
use strata_persistence::repo::organizations;

use crate::app::Database;
use crate::config::DatabaseConfig;

/// Arguments of `strata org set-quota`.
#[derive(Debug, clap::Args)]
pub struct SetQuotaArgs {
    /// The organization (uuid).
    org: OrgId,
    /// Tokens per calendar month (UTC), prompt and completion together; 0
    /// stops its runs; `default` returns it to the server's
    /// `--agent-monthly-token-quota`.
    #[arg(value_parser = parse_tokens)]
    tokens: Quota,
}

/// A quota as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quota {
    /// This many tokens a month.
    Tokens(u64),
    /// The server's default.
    Default,
}

fn parse_tokens(text: &str) -> Result<Quota, String> {
    if text == "default" {
        return Ok(Quota::Default);
    }
    text.replace('_', "")
        .parse::<u64>()
        .ok()
        .filter(|t| i64::try_from(*t).is_ok())
        .map(Quota::Tokens)
        .ok_or_else(|| format!("{text}: expected a number of tokens (0 or more) or `default`"))
}

/// Runs the command: one line on stdout saying the organization's quota.
pub async fn run(database: &DatabaseConfig, args: SetQuotaArgs) -> anyhow::Result<()> {
    let opened = Database::open(database, &PoolOptions::default()).await?;
    let tokens = match args.tokens {
        Quota::Tokens(t) => Some(t),
        Quota::Default => None,
    };
    let result = organizations::set_monthly_quota(&opened.db, args.org, tokens).await;
    opened.close().await;
    if !result.map_err(|e| anyhow::anyhow!("{e}"))? {
        anyhow::bail!("no organization {}", args.org);
    }
    match tokens {
        Some(t) => println!("organization {}: {t} tokens a month", args.org),
        None => println!("organization {}: the server's default quota", args.org),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Quota, parse_tokens};

    #[test]
    fn a_quota_is_a_count_of_tokens_or_the_default() {
        assert_eq!(parse_tokens("2000000"), Ok(Quota::Tokens(2_000_000)));
        assert_eq!(parse_tokens("2_000_000"), Ok(Quota::Tokens(2_000_000)));
        assert_eq!(parse_tokens("0"), Ok(Quota::Tokens(0)));
        assert_eq!(parse_tokens("default"), Ok(Quota::Default));
        assert!(parse_tokens("-1").is_err());
        assert!(parse_tokens("lots").is_err());
        assert!(parse_tokens("18446744073709551615").is_err());
    }
}
