//! Relay-style pagination shared by every connection: the opaque cursor,
//! `first`/`after` parsed into a page request, connections built from a
//! page, their lazily counted totals, and the complexity a list field
//! costs.

use async_graphql::connection::{Connection, Edge, EmptyFields, OpaqueCursor};
use async_graphql::{Context, ErrorExtensions, Object, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use strata_persistence::repo::campaigns::CampaignFilter;
use strata_persistence::repo::outputs::RunFilter;
use strata_persistence::repo::{
    Key, ListOrder, Page, PageRequest, SortField, SortValue, audit, campaigns, clients, members,
    personas,
};

use crate::error::{ErrorCode, domain_error};
use crate::state::RequestState;

/// A cursor position: the sort key of the last row seen and, for a list
/// sorted or filtered other than by default, a digest of that order and
/// filter, so that a cursor is only taken where it was made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CursorKey {
    /// `created_at`, in microseconds, when the list is sorted by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<i64>,
    /// The name, when the list is sorted by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    id: uuid::Uuid,
    /// The digest of the list's order and filter ([`Paging::shape`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
}

/// The cursor type of every connection.
pub type Cursor = OpaqueCursor<CursorKey>;

/// Lazily counted totals.
pub struct Totals {
    kind: TotalsKind,
}

/// What a connection's total counts.
pub(crate) enum TotalsKind {
    /// Clients, as filtered.
    Clients(strata_persistence::repo::clients::ClientFilter),
    Campaigns(CampaignFilter),
    Personas(strata_persistence::repo::personas::PersonaFilter),
    Runs(strata_domain::CampaignId, RunFilter),
    /// The organization's runs, as filtered.
    AgentRuns(strata_persistence::repo::outputs::RunListFilter),
    /// A client's campaigns or personas.
    OfClient(strata_domain::ClientId, crate::loaders::ClientList),
    Audit(strata_persistence::repo::audit::AuditFilter),
    Members,
    /// The organization's invitations, all or in one status.
    Invitations(Option<strata_domain::model::InvitationStatus>),
}

#[Object]
impl Totals {
    /// How many items the connection has in all pages.
    async fn total_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let state = ctx.data::<RequestState>()?;
        if let TotalsKind::Runs(campaign, filter) = &self.kind {
            return Ok(state
                .run_count_loader()
                .load_one((*campaign, *filter))
                .await
                .map_err(|e| (*e).clone())?
                .unwrap_or(0));
        }
        if let TotalsKind::OfClient(client, list) = &self.kind {
            return Ok(state
                .client_count_loader()
                .load_one((*client, *list))
                .await
                .map_err(|e| (*e).clone())?
                .unwrap_or(0));
        }
        let tx = state.read_tx().await?;
        match &self.kind {
            TotalsKind::Clients(f) => clients::count(tx, f).await,
            TotalsKind::Campaigns(f) => campaigns::count(tx, f).await,
            TotalsKind::Personas(f) => personas::count(tx, f).await,
            TotalsKind::Audit(f) => audit::count(tx, f).await,
            TotalsKind::AgentRuns(f) => strata_persistence::repo::outputs::count(tx, f).await,
            TotalsKind::Members => members::count(tx).await,
            TotalsKind::Invitations(s) => {
                strata_persistence::repo::invitations::count(tx, *s).await
            }
            TotalsKind::Runs(..) | TotalsKind::OfClient(..) => Ok(0),
        }
        .map_err(domain_error)
    }
}

/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 20;
/// The largest `first` accepted.
pub const MAX_PAGE: i32 = 100;

/// A connection's paging arguments, as given, with the order and filter
/// its cursors are bound to.
#[derive(Clone, Debug, Default)]
pub struct Paging {
    /// Items from the start (or `after`).
    pub first: Option<i32>,
    /// Items after this cursor.
    pub after: Option<String>,
    /// Items from the end (or `before`).
    pub last: Option<i32>,
    /// Items before this cursor.
    pub before: Option<String>,
    /// The list's order (newest first unless sorted otherwise).
    pub order: ListOrder,
    /// The list's filter, spelt stably (empty when unfiltered).
    pub filter: String,
}

impl Paging {
    /// The paging arguments of a list with one order and no filter.
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Self {
        Self {
            first,
            after,
            last,
            before,
            ..Self::default()
        }
    }

    /// The same arguments for a list in `order`, filtered as `filter`
    /// spells it.
    pub fn shaped(self, order: ListOrder, filter: String) -> Self {
        Self {
            order,
            filter,
            ..self
        }
    }

    /// The digest cursors of this list carry: none for the default order
    /// without a filter (so that cursors of such lists stay as they were),
    /// otherwise the first 16 hex digits of the SHA-256 of the order and
    /// filter.
    fn shape(&self) -> Option<String> {
        use sha2::Digest as _;
        if self.order == ListOrder::default() && self.filter.is_empty() {
            return None;
        }
        let order = format!("{:?}:{}", self.order.field, self.order.descending);
        let digest = sha2::Sha256::digest(format!("{order}|{}", self.filter).as_bytes());
        Some(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }
}

/// A list's filter as its cursors' digest spells it: nothing for the
/// default filter, so that an unfiltered list in its default order keeps
/// cursors without a digest.
pub(crate) fn spelt<F: Default + PartialEq + std::fmt::Debug>(filter: &F) -> String {
    if *filter == F::default() {
        String::new()
    } else {
        format!("{filter:?}")
    }
}

/// Parses paging arguments into a page request: `first` items after
/// `after`, or the `last` items before `before` (both cursors may bound
/// either), 20 from the start when neither count is given; a cursor made
/// for another order or filter is refused.
pub fn page_request(p: &Paging) -> Result<PageRequest> {
    let count = |name: &'static str, n: i32| {
        if (0..=MAX_PAGE).contains(&n) {
            Ok(n as u64)
        } else {
            Err(ErrorCode::BadUserInput
                .error(format!("{name}: must be between 0 and {MAX_PAGE}"))
                .extend_with(move |_, e| e.set("field", name)))
        }
    };
    let (limit, from_end) = match (p.first, p.last) {
        (Some(_), Some(_)) => {
            return Err(ErrorCode::BadUserInput
                .error("last: give first or last, not both")
                .extend_with(|_, e| e.set("field", "last")));
        }
        (None, Some(n)) => (count("last", n)?, true),
        (first, None) => (count("first", first.unwrap_or(DEFAULT_PAGE))?, false),
    };
    Ok(PageRequest {
        after: key(p, "after", p.after.as_deref())?,
        before: key(p, "before", p.before.as_deref())?,
        limit,
        from_end,
        order: p.order,
    })
}

/// The position a cursor argument names.
fn key(
    paging: &Paging,
    name: &'static str,
    cursor: Option<&str>,
) -> Result<Option<strata_persistence::repo::Key>> {
    let Some(s) = cursor else {
        return Ok(None);
    };
    let bad = |why: &str| {
        ErrorCode::BadUserInput
            .error(format!("{name}: {why}"))
            .extend_with(move |_, e| e.set("field", name))
    };
    let not_ours = || bad("not a cursor of this connection");
    let key = <Cursor as async_graphql::connection::CursorType>::decode_cursor(s)
        .map_err(|_| not_ours())?;
    if key.q != paging.shape() {
        return Err(bad(
            "the cursor was made for another order or filter: use the same orderBy, filter and search as the page it came from",
        ));
    }
    let value = match (paging.order.field, key.t, key.n.clone()) {
        (SortField::CreatedAt, Some(t), None) => {
            SortValue::At(DateTime::<Utc>::from_timestamp_micros(t).ok_or_else(not_ours)?)
        }
        (SortField::Name, None, Some(n)) => SortValue::Text(n),
        _ => return Err(not_ours()),
    };
    Ok(Some((value, key.id)))
}

/// The cursor of a row at `key` in a list shaped as `paging` says.
pub(crate) fn cursor(paging: &Paging, key: Key) -> Cursor {
    shaped_cursor(paging.shape(), key)
}

/// The cursor of a row at `key` in a list of shape digest `q`.
fn shaped_cursor(q: Option<String>, (value, id): Key) -> Cursor {
    let (t, n) = match value {
        SortValue::At(at) => (Some(at.timestamp_micros()), None),
        SortValue::Text(name) => (None, Some(name)),
    };
    OpaqueCursor(CursorKey { t, n, id, q })
}

/// The sort key of a row of a list with one order, newest first.
pub(crate) fn at(created_at: DateTime<Utc>, id: uuid::Uuid) -> Key {
    (SortValue::At(created_at), id)
}

/// A connection over `page` of a list shaped as `paging` says: each item
/// wrapped by `wrap`, its cursor made of the sort key `key` returns, its
/// total counted as `kind` says.
pub(crate) fn connection<N, T>(
    paging: &Paging,
    page: Page<T>,
    kind: TotalsKind,
    key: impl Fn(&T) -> Key,
    wrap: impl Fn(T) -> N,
) -> Connection<Cursor, N, Totals, EmptyFields>
where
    N: async_graphql::OutputType,
{
    let mut conn = Connection::with_additional_fields(
        page.has_previous_page,
        page.has_next_page,
        Totals { kind },
    );
    let q = paging.shape();
    conn.edges = page
        .items
        .into_iter()
        .map(|item| {
            let at = key(&item);
            Edge::new(shaped_cursor(q.clone(), at), wrap(item))
        })
        .collect();
    conn
}

/// The complexity of a list field: its children once per item it may
/// return (`first` or `last`, or the default page), plus the field itself.
pub(crate) fn list_cost(first: Option<i32>, last: Option<i32>, child_complexity: usize) -> usize {
    let items = first.or(last).unwrap_or(DEFAULT_PAGE).clamp(0, MAX_PAGE);
    1 + usize::try_from(items).unwrap_or(0) * child_complexity
}
