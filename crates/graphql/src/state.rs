//! Per-request state: the resolved user, the tenant context and its
//! transaction, and the request's loaders.

use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use strata_domain::model::{Membership, User};
use strata_domain::{DomainError, TenantContext};
use strata_persistence::context::ResolvedUser;
use strata_persistence::{Db, TenantTx};
use tokio::sync::OnceCell;

use crate::error::ErrorCode;
use crate::loaders::{CampaignLoader, ClientLoader};

pub(crate) struct Inner {
    db: Db,
    user: Option<User>,
    memberships: Vec<Membership>,
    context: Option<TenantContext>,
    request_id: String,
    tx: OnceCell<(Arc<TenantTx>, bool)>,
}

/// Everything a resolver may know about the request. Created per request by
/// the server and attached to the GraphQL request; never shared between
/// requests, and neither are its loaders.
#[derive(Clone)]
pub struct RequestState {
    inner: Arc<Inner>,
    clients: Arc<DataLoader<ClientLoader>>,
    campaigns: Arc<DataLoader<CampaignLoader>>,
}

impl std::fmt::Debug for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestState")
            .field("request_id", &self.inner.request_id)
            .finish_non_exhaustive()
    }
}

impl RequestState {
    /// State for a signed-in user.
    pub fn for_user(db: Db, resolved: ResolvedUser, request_id: String) -> Self {
        Self::new(
            db,
            Some(resolved.user),
            resolved.memberships,
            resolved.context,
            request_id,
        )
    }

    /// State for an already resolved tenant context without a user record
    /// (API keys).
    pub fn for_context(db: Db, context: TenantContext, request_id: String) -> Self {
        Self::new(db, None, Vec::new(), Some(context), request_id)
    }

    fn new(
        db: Db,
        user: Option<User>,
        memberships: Vec<Membership>,
        context: Option<TenantContext>,
        request_id: String,
    ) -> Self {
        let inner = Arc::new(Inner {
            db,
            user,
            memberships,
            context,
            request_id,
            tx: OnceCell::new(),
        });
        let clients = Arc::new(DataLoader::new(
            ClientLoader {
                state: Arc::downgrade(&inner),
            },
            tokio::spawn,
        ));
        let campaigns = Arc::new(DataLoader::new(
            CampaignLoader {
                state: Arc::downgrade(&inner),
            },
            tokio::spawn,
        ));
        Self {
            inner,
            clients,
            campaigns,
        }
    }

    /// The database pool (for opening new organizations' transactions).
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The signed-in user, if a user (not a key) is calling.
    pub(crate) fn user(&self) -> Option<&User> {
        self.inner.user.as_ref()
    }

    /// The user's memberships.
    pub(crate) fn memberships(&self) -> &[Membership] {
        &self.inner.memberships
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.inner.request_id
    }

    /// The tenant context, or a FORBIDDEN error explaining how to get one.
    pub(crate) fn tenant(&self) -> async_graphql::Result<&TenantContext> {
        self.inner.context.as_ref().ok_or_else(|| {
            if self.inner.memberships.is_empty() {
                ErrorCode::Forbidden.error(
                    "you are not a member of any organization: create one or ask to be added",
                )
            } else {
                ErrorCode::Forbidden.error(
                    "no active organization: send the X-Strata-Org header or an org_id claim",
                )
            }
        })
    }

    /// The tenant context, if any.
    pub fn context(&self) -> Option<&TenantContext> {
        self.inner.context.as_ref()
    }

    /// The request's transaction for reading.
    pub(crate) async fn read_tx(&self) -> async_graphql::Result<&TenantTx> {
        tx(&self.inner, false).await
    }

    /// The request's transaction for writing.
    pub(crate) async fn write_tx(&self) -> async_graphql::Result<&TenantTx> {
        tx(&self.inner, true).await
    }

    pub(crate) fn client_loader(&self) -> &DataLoader<ClientLoader> {
        &self.clients
    }

    pub(crate) fn campaign_loader(&self) -> &DataLoader<CampaignLoader> {
        &self.campaigns
    }

    /// Statements run by the request's transaction so far (0 if none began).
    pub fn statements(&self) -> u64 {
        self.inner
            .tx
            .get()
            .map(|(t, _)| t.statements())
            .unwrap_or(0)
    }

    /// Ends the request's transaction, if one began: commits what succeeded
    /// (failed mutations were rolled back to their savepoints).
    pub async fn finish(&self) -> Result<(), DomainError> {
        match self.inner.tx.get() {
            Some((tx, _)) => tx.commit().await,
            None => Ok(()),
        }
    }
}

/// The transaction of `inner`, begun on first use. The first use decides its
/// mode: a query only reads (READ ONLY), a mutation writes.
pub(crate) async fn tx(inner: &Inner, write: bool) -> async_graphql::Result<&TenantTx> {
    let ctx = inner
        .context
        .as_ref()
        .ok_or_else(|| ErrorCode::Forbidden.error("no active organization"))?;
    let (tx, writable) = inner
        .tx
        .get_or_try_init(|| async {
            let tx = if write {
                TenantTx::begin(&inner.db, ctx).await?
            } else {
                TenantTx::begin_read_only(&inner.db, ctx).await?
            };
            Ok::<_, DomainError>((Arc::new(tx), write))
        })
        .await
        .map_err(crate::error::domain_error)?;
    if write && !writable {
        return Err(ErrorCode::Internal.error("internal error"));
    }
    Ok(tx)
}

pub(crate) type StateInner = Inner;
