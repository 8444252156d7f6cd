//! Mutations run inside a savepoint of the request's transaction, so that a
//! failed mutation leaves nothing behind while earlier ones in the same
//! document stand.

use std::future::Future;

use async_graphql::Result;
use strata_domain::DomainError;
use strata_persistence::TenantTx;

use crate::error::domain_error;

/// Runs `work` inside a savepoint of `tx`: released when it succeeds,
/// rolled back to when it fails.
pub(crate) async fn in_savepoint<T>(
    tx: &TenantTx,
    work: impl Future<Output = Result<T, DomainError>>,
) -> Result<T> {
    tx.savepoint().await.map_err(domain_error)?;
    let result = work.await;
    tx.end_savepoint(result.is_ok())
        .await
        .map_err(domain_error)?;
    result.map_err(domain_error)
}
