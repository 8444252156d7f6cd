//! Per-request state: the request's session (the resolved user, the tenant
//! context and its transaction) and the request's loaders.

use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use strata_domain::DomainError;
use strata_domain::model::{Membership, User};
use strata_persistence::context::{ResolvedUser, VerifiedContext};
use strata_persistence::{Db, TenantTx};
use tokio::sync::OnceCell;

use crate::error::ErrorCode;
use crate::loaders::{
    BrandLoader, CampaignLoader, ClientCountLoader, ClientLoader, ClientPageLoader, RunCountLoader,
    RunLoader, RunPageLoader,
};
use crate::session::{Committed, Credential, Session};

/// Everything a resolver may know about the request. Created per request by
/// the server and attached to the GraphQL request; never shared between
/// requests, and neither are its loaders.
#[derive(Clone)]
pub struct RequestState {
    session: Arc<Session>,
    loaders: Arc<Loaders>,
}

struct Loaders {
    clients: DataLoader<ClientLoader, HashMapCache>,
    campaigns: DataLoader<CampaignLoader>,
    run_pages: DataLoader<RunPageLoader, HashMapCache>,
    run_counts: DataLoader<RunCountLoader, HashMapCache>,
    runs: DataLoader<RunLoader>,
    brand: DataLoader<BrandLoader>,
    client_pages: DataLoader<ClientPageLoader, HashMapCache>,
    client_counts: DataLoader<ClientCountLoader, HashMapCache>,
}

impl std::fmt::Debug for RequestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestState")
            .field("request_id", &self.session.request_id)
            .finish_non_exhaustive()
    }
}

impl RequestState {
    /// State for a signed-in user.
    pub fn for_user(db: Db, resolved: ResolvedUser, request_id: String) -> Self {
        let credential = Credential {
            mfa: resolved.mfa,
            ..Credential::default()
        };
        Self::for_token(db, resolved, credential, request_id)
    }

    /// State for a signed-in user, with what their token said.
    pub fn for_token(
        db: Db,
        resolved: ResolvedUser,
        credential: Credential,
        request_id: String,
    ) -> Self {
        Self::new(
            db,
            Some(resolved.user),
            resolved.memberships,
            credential,
            resolved.context,
            request_id,
        )
    }

    /// State for an already resolved tenant context without a user record
    /// (API keys).
    pub fn for_context(db: Db, context: VerifiedContext, request_id: String) -> Self {
        Self::new(
            db,
            None,
            Vec::new(),
            Credential::default(),
            Some(context),
            request_id,
        )
    }

    fn new(
        db: Db,
        user: Option<User>,
        memberships: Vec<Membership>,
        credential: Credential,
        context: Option<VerifiedContext>,
        request_id: String,
    ) -> Self {
        let session = Arc::new(Session {
            committed: std::sync::Mutex::new(Vec::new()),
            durable: std::sync::Mutex::new(Vec::new()),
            db,
            user,
            memberships,
            credential,
            organization: OnceCell::new(),
            context,
            request_id,
            tx: OnceCell::new(),
        });
        let weak = || Arc::downgrade(&session);
        let loaders = Arc::new(Loaders {
            // Loaders that connections prefetch into (see `types::prefetch`)
            // keep what they were fed for the rest of the request.
            clients: DataLoader::with_cache(
                ClientLoader { session: weak() },
                tokio::spawn,
                HashMapCache::default(),
            ),
            campaigns: DataLoader::new(CampaignLoader { session: weak() }, tokio::spawn),
            run_pages: DataLoader::with_cache(
                RunPageLoader { session: weak() },
                tokio::spawn,
                HashMapCache::default(),
            ),
            run_counts: DataLoader::with_cache(
                RunCountLoader { session: weak() },
                tokio::spawn,
                HashMapCache::default(),
            ),
            client_pages: DataLoader::with_cache(
                ClientPageLoader { session: weak() },
                tokio::spawn,
                HashMapCache::default(),
            ),
            client_counts: DataLoader::with_cache(
                ClientCountLoader { session: weak() },
                tokio::spawn,
                HashMapCache::default(),
            ),
            runs: DataLoader::new(RunLoader { session: weak() }, tokio::spawn),
            brand: DataLoader::new(BrandLoader { session: weak() }, tokio::spawn),
        });
        Self { session, loaders }
    }

    /// New state for another operation of the same caller (a batch
    /// entry): the same user and context, its own transaction and loaders.
    pub fn sibling(&self) -> Self {
        Self::new(
            self.session.db.clone(),
            self.session.user.clone(),
            self.session.memberships.clone(),
            self.session.credential.clone(),
            self.session.context.clone(),
            self.session.request_id.clone(),
        )
    }

    /// The active organization, read once per request.
    pub(crate) async fn organization(
        &self,
    ) -> async_graphql::Result<&strata_domain::model::Organization> {
        self.session
            .organization
            .get_or_try_init(|| async {
                let tx = self.read_tx().await?;
                strata_persistence::repo::organizations::current(tx)
                    .await
                    .map_err(crate::error::domain_error)
            })
            .await
    }

    /// What the signed-in user's token said (empty for API keys).
    pub(crate) fn credential(&self) -> &Credential {
        &self.session.credential
    }

    /// The signed-in user's id, if a user (not a key) is calling.
    pub fn user_id(&self) -> Option<strata_domain::UserId> {
        self.session.user.as_ref().map(|u| u.id)
    }

    /// Rolls the request's transaction back, if one began (a request that
    /// ran out of time).
    pub async fn abort(&self) {
        if let Some((tx, _)) = self.session.tx.get() {
            let _ = tx.rollback().await;
        }
    }

    /// The database pool (for opening new organizations' transactions).
    pub(crate) fn db(&self) -> &Db {
        &self.session.db
    }

    /// The signed-in user, if a user (not a key) is calling.
    pub(crate) fn user(&self) -> Option<&User> {
        self.session.user.as_ref()
    }

    /// The user's memberships.
    pub(crate) fn memberships(&self) -> &[Membership] {
        &self.session.memberships
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.session.request_id
    }

    /// The tenant context, or a FORBIDDEN error explaining how to get one.
    pub(crate) fn tenant(&self) -> async_graphql::Result<&VerifiedContext> {
        self.session.context.as_ref().ok_or_else(|| {
            if self.session.memberships.is_empty() {
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
    pub fn context(&self) -> Option<&VerifiedContext> {
        self.session.context.as_ref()
    }

    /// The request's transaction for reading.
    pub(crate) async fn read_tx(&self) -> async_graphql::Result<&TenantTx> {
        self.session.tx(false).await
    }

    /// The request's transaction for writing.
    pub(crate) async fn write_tx(&self) -> async_graphql::Result<&TenantTx> {
        self.session.tx(true).await
    }

    pub(crate) fn client_loader(&self) -> &DataLoader<ClientLoader, HashMapCache> {
        &self.loaders.clients
    }

    pub(crate) fn campaign_loader(&self) -> &DataLoader<CampaignLoader> {
        &self.loaders.campaigns
    }

    pub(crate) fn run_page_loader(&self) -> &DataLoader<RunPageLoader, HashMapCache> {
        &self.loaders.run_pages
    }

    pub(crate) fn run_count_loader(&self) -> &DataLoader<RunCountLoader, HashMapCache> {
        &self.loaders.run_counts
    }

    pub(crate) fn run_loader(&self) -> &DataLoader<RunLoader> {
        &self.loaders.runs
    }

    pub(crate) fn client_page_loader(&self) -> &DataLoader<ClientPageLoader, HashMapCache> {
        &self.loaders.client_pages
    }

    pub(crate) fn client_count_loader(&self) -> &DataLoader<ClientCountLoader, HashMapCache> {
        &self.loaders.client_counts
    }

    pub(crate) fn brand_loader(&self) -> &DataLoader<BrandLoader> {
        &self.loaders.brand
    }

    /// Statements run by the request's transaction so far (0 if none began).
    pub fn statements(&self) -> u64 {
        self.session
            .tx
            .get()
            .map(|(t, _)| t.statements())
            .unwrap_or(0)
    }

    /// Notes what must happen once the transaction commits.
    pub(crate) fn record(&self, event: Committed) {
        self.session
            .committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// Notes what must happen now that a change committed in a transaction
    /// of its own (an `AuthTx`), whatever becomes of the request's.
    pub(crate) fn record_durable(&self, event: Committed) {
        self.session
            .durable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// What changes committed in transactions of their own asked for, once
    /// (the request's transaction failed or ran out of time: these still
    /// happened).
    pub fn take_durable(&self) -> Vec<Committed> {
        std::mem::take(
            &mut *self
                .session
                .durable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Ends the request's transaction, if one began: commits what succeeded
    /// (failed mutations were rolled back to their savepoints), and returns
    /// what the committed mutations asked to happen next, with what the
    /// changes committed on their own asked for.
    pub async fn finish(&self) -> Result<Vec<Committed>, DomainError> {
        if let Some((tx, _)) = self.session.tx.get() {
            // Statements sent in the request's transaction, the context
            // statement included (BEGIN and COMMIT are not counted).
            metrics::counter!("strata_sql_statements_total").increment(tx.statements());
            tx.commit().await?;
        }
        let mut events = std::mem::take(
            &mut *self
                .session
                .committed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        events.extend(self.take_durable());
        Ok(events)
    }
}
