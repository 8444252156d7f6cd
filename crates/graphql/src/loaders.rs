//! DataLoaders, created per request by [`crate::state::RequestState`]. They
//! read through the request's own tenant transaction, that of its
//! [`Session`]; a loader shared across requests would be a cross-tenant
//! cache.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_graphql::dataloader::Loader;
use strata_domain::model::{AgentRun, BrandGuidelines, Campaign, Client, Persona};
use strata_domain::{CampaignId, ClientId, OutputId};
use strata_persistence::repo::outputs::{self, RunFilter};
use strata_persistence::repo::{Page, PageRequest, brand, campaigns, clients, personas};

use crate::session::Session;

/// Loads clients by id.
pub struct ClientLoader {
    pub(crate) session: Weak<Session>,
}

/// Loads campaigns by id.
pub struct CampaignLoader {
    pub(crate) session: Weak<Session>,
}

fn gone() -> Arc<async_graphql::Error> {
    Arc::new(crate::error::ErrorCode::Internal.error("internal error"))
}

impl Loader<ClientId> for ClientLoader {
    type Value = Client;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[ClientId]) -> Result<HashMap<ClientId, Client>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
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
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let found = campaigns::by_ids(tx, keys)
            .await
            .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
        Ok(found.into_iter().map(|c| (c.id, c)).collect())
    }
}

/// A page of one campaign's runs: the campaign, which runs, and the page.
/// Keys that share filter and page are loaded in one statement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunPageKey {
    pub(crate) campaign: CampaignId,
    pub(crate) filter: RunFilter,
    pub(crate) page: PageShape,
}

/// A page request as a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageShape(PageRequest);

impl PageShape {
    /// The shape of `page`.
    pub(crate) fn of(page: &PageRequest) -> Self {
        Self(page.clone())
    }

    fn request(&self) -> PageRequest {
        self.0.clone()
    }
}

/// Loads pages of campaigns' runs.
pub struct RunPageLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<RunPageKey> for RunPageLoader {
    type Value = Page<AgentRun>;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[RunPageKey],
    ) -> Result<HashMap<RunPageKey, Page<AgentRun>>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let mut groups: HashMap<(RunFilter, PageShape), Vec<CampaignId>> = HashMap::new();
        for k in keys {
            groups
                .entry((k.filter, k.page.clone()))
                .or_default()
                .push(k.campaign);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for ((filter, shape), campaigns) in groups {
            let page = shape.request();
            let mut found = outputs::pages_for_campaigns(tx, &campaigns, filter, &page)
                .await
                .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
            for campaign in campaigns {
                let value = found
                    .remove(&campaign)
                    .unwrap_or_else(|| page.page(Vec::new()));
                out.insert(
                    RunPageKey {
                        campaign,
                        filter,
                        page: shape.clone(),
                    },
                    value,
                );
            }
        }
        Ok(out)
    }
}

/// Counts campaigns' runs.
pub struct RunCountLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<(CampaignId, RunFilter)> for RunCountLoader {
    type Value = u64;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[(CampaignId, RunFilter)],
    ) -> Result<HashMap<(CampaignId, RunFilter), u64>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let mut out = HashMap::with_capacity(keys.len());
        for filter in [RunFilter::Outputs, RunFilter::All] {
            let campaigns: Vec<CampaignId> = keys
                .iter()
                .filter(|(_, f)| *f == filter)
                .map(|(c, _)| *c)
                .collect();
            if campaigns.is_empty() {
                continue;
            }
            let counts = outputs::counts_for_campaigns(tx, &campaigns, filter)
                .await
                .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
            for c in campaigns {
                out.insert((c, filter), counts.get(&c).copied().unwrap_or(0));
            }
        }
        Ok(out)
    }
}

/// Loads agent runs by id.
pub struct RunLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<OutputId> for RunLoader {
    type Value = AgentRun;
    type Error = Arc<async_graphql::Error>;

    async fn load(&self, keys: &[OutputId]) -> Result<HashMap<OutputId, AgentRun>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let found = outputs::by_ids(tx, keys)
            .await
            .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
        Ok(found.into_iter().map(|r| (r.id, r)).collect())
    }
}

/// Loads clients' brand guidelines.
pub struct BrandLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<ClientId> for BrandLoader {
    type Value = BrandGuidelines;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[ClientId],
    ) -> Result<HashMap<ClientId, BrandGuidelines>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let found = brand::by_clients(tx, keys)
            .await
            .map_err(|e| Arc::new(crate::error::domain_error(e)))?;
        Ok(found
            .into_iter()
            .filter_map(|b| b.client_id.map(|c| (c, b)))
            .collect())
    }
}

/// Which of a client's lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientList {
    /// Its campaigns.
    Campaigns,
    /// Its personas.
    Personas,
}

/// A page of one client's campaigns or personas. Keys that share list and
/// page are loaded in one statement.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientPageKey {
    pub(crate) client: ClientId,
    pub(crate) list: ClientList,
    pub(crate) page: PageShape,
}

/// A page of a client's list.
#[derive(Clone, Debug)]
pub enum ClientPage {
    /// Campaigns.
    Campaigns(Page<Campaign>),
    /// Personas.
    Personas(Page<Persona>),
}

/// Loads pages of clients' campaigns and personas.
pub struct ClientPageLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<ClientPageKey> for ClientPageLoader {
    type Value = ClientPage;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[ClientPageKey],
    ) -> Result<HashMap<ClientPageKey, ClientPage>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let mut groups: HashMap<(ClientList, PageShape), Vec<ClientId>> = HashMap::new();
        for k in keys {
            groups
                .entry((k.list, k.page.clone()))
                .or_default()
                .push(k.client);
        }
        let failed = |e| Arc::new(crate::error::domain_error(e));
        let mut out = HashMap::with_capacity(keys.len());
        for ((list, shape), ids) in groups {
            let page = shape.request();
            let key = |client| ClientPageKey {
                client,
                list,
                page: shape.clone(),
            };
            match list {
                ClientList::Campaigns => {
                    let mut found = campaigns::pages_for_clients(tx, &ids, &page)
                        .await
                        .map_err(failed)?;
                    for c in ids {
                        let p = found.remove(&c).unwrap_or_else(|| page.page(Vec::new()));
                        out.insert(key(c), ClientPage::Campaigns(p));
                    }
                }
                ClientList::Personas => {
                    let mut found = personas::pages_for_clients(tx, &ids, &page)
                        .await
                        .map_err(failed)?;
                    for c in ids {
                        let p = found.remove(&c).unwrap_or_else(|| page.page(Vec::new()));
                        out.insert(key(c), ClientPage::Personas(p));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Loads how many campaigns or personas clients have.
pub struct ClientCountLoader {
    pub(crate) session: Weak<Session>,
}

impl Loader<(ClientId, ClientList)> for ClientCountLoader {
    type Value = u64;
    type Error = Arc<async_graphql::Error>;

    async fn load(
        &self,
        keys: &[(ClientId, ClientList)],
    ) -> Result<HashMap<(ClientId, ClientList), u64>, Self::Error> {
        let session = self.session.upgrade().ok_or_else(gone)?;
        let tx = session.tx(false).await.map_err(Arc::new)?;
        let failed = |e| Arc::new(crate::error::domain_error(e));
        let mut out = HashMap::with_capacity(keys.len());
        for list in [ClientList::Campaigns, ClientList::Personas] {
            let ids: Vec<ClientId> = keys
                .iter()
                .filter(|(_, l)| *l == list)
                .map(|(c, _)| *c)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let counts = match list {
                ClientList::Campaigns => campaigns::counts_for_clients(tx, &ids).await,
                ClientList::Personas => personas::counts_for_clients(tx, &ids).await,
            }
            .map_err(failed)?;
            for c in ids {
                out.insert((c, list), counts.get(&c).copied().unwrap_or(0));
            }
        }
        Ok(out)
    }
}
