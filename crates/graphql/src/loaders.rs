//! DataLoaders, created per request by [`crate::RequestState`]. They read
//! through the request's own tenant transaction; a loader shared across
//! requests would be a cross-tenant cache.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_graphql::dataloader::Loader;
use strata_domain::model::{Campaign, Client};
use strata_domain::{CampaignId, ClientId};
use strata_persistence::repo::{campaigns, clients};

use crate::state::{StateInner, tx};

/// Loads clients by id.
pub struct ClientLoader {
    pub(crate) state: Weak<StateInner>,
}

/// Loads campaigns by id.
pub struct CampaignLoader {
    pub(crate) state: Weak<StateInner>,
}

fn gone() -> Arc<async_graphql::Error> {
    Arc::new(crate::error::ErrorCode::Internal.error("internal error"))
}

impl Loader<ClientId> for ClientLoader {
    type Value = Client;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[ClientId]) -> Result<HashMap<ClientId, Client>, Self::Error> {
        let state = self.state.upgrade().ok_or_else(gone)?;
        let tx = tx(&state, false).await.map_err(Arc::new)?;
        let found = clients::by_ids(tx, keys)
            .await
            .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
        Ok(found.into_iter().map(|c| (c.id, c)).collect())
    }
}

impl Loader<CampaignId> for CampaignLoader {
    type Value = Campaign;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[CampaignId],
    ) -> Result<HashMap<CampaignId, Campaign>, Self::Error> {
        let state = self.state.upgrade().ok_or_else(gone)?;
        let tx = tx(&state, false).await.map_err(Arc::new)?;
        let found = campaigns::by_ids(tx, keys)
            .await
            .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
        Ok(found.into_iter().map(|c| (c.id, c)).collect())
    }
}
