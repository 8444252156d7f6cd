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
use strata_persistence::repo::{Page, PageRequest, audit, campaigns, clients, members, personas};

use crate::error::{ErrorCode, domain_error};
use crate::state::RequestState;

/// A cursor position: the sort key of the last row seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CursorKey {
    t: i64,
    id: uuid::Uuid,
}

/// The cursor type of every connection.
pub type Cursor = OpaqueCursor<CursorKey>;

/// Lazily counted totals.
pub struct Totals {
    kind: TotalsKind,
}

/// What a connection's total counts.
pub(crate) enum TotalsKind {
    /// Clients; archived ones too when `true`.
    Clients(bool),
    Campaigns(CampaignFilter),
    Personas(Option<strata_domain::ClientId>),
    Runs(strata_domain::CampaignId, RunFilter),
    /// The organization's runs, as filtered.
    AgentRuns(strata_persistence::repo::outputs::RunListFilter),
    /// A client's campaigns or personas.
    OfClient(strata_domain::ClientId, crate::loaders::ClientList),
    Audit,
    Members,
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
            TotalsKind::Clients(archived) => clients::count(tx, *archived).await,
            TotalsKind::Campaigns(f) => campaigns::count(tx, f).await,
            TotalsKind::Personas(c) => personas::count(tx, *c).await,
            TotalsKind::Audit => audit::count(tx).await,
            TotalsKind::AgentRuns(f) => strata_persistence::repo::outputs::count(tx, f).await,
            TotalsKind::Members => members::count(tx).await,
            TotalsKind::Runs(..) | TotalsKind::OfClient(..) => Ok(0),
        }
        .map_err(domain_error)
    }
}

/// Default and maximum page sizes.
pub const DEFAULT_PAGE: i32 = 20;
/// The largest `first` accepted.
pub const MAX_PAGE: i32 = 100;

/// A connection's paging arguments, as given.
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
}

/// Parses paging arguments into a page request: `first` items after
/// `after`, or the `last` items before `before` (both cursors may bound
/// either), 20 from the start when neither count is given.
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
        after: key("after", p.after.as_deref())?,
        before: key("before", p.before.as_deref())?,
        limit,
        from_end,
    })
}

/// The position a cursor argument names.
fn key(name: &'static str, cursor: Option<&str>) -> Result<Option<strata_persistence::repo::Key>> {
    let Some(s) = cursor else {
        return Ok(None);
    };
    let bad = || {
        ErrorCode::BadUserInput
            .error(format!("{name}: not a cursor of this connection"))
            .extend_with(move |_, e| e.set("field", name))
    };
    let key =
        <Cursor as async_graphql::connection::CursorType>::decode_cursor(s).map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_micros(key.t).ok_or_else(bad)?;
    Ok(Some((at, key.id)))
}

/// The cursor of a row sorted by `(at, id)`.
pub(crate) fn cursor(at: DateTime<Utc>, id: uuid::Uuid) -> Cursor {
    OpaqueCursor(CursorKey {
        t: at.timestamp_micros(),
        id,
    })
}

/// A connection over `page`: each item wrapped by `wrap`, its cursor made
/// of the sort key `key` returns, its total counted as `kind` says.
pub(crate) fn connection<N, T>(
    page: Page<T>,
    kind: TotalsKind,
    key: impl Fn(&T) -> (DateTime<Utc>, uuid::Uuid),
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
    conn.edges = page
        .items
        .into_iter()
        .map(|item| {
            let (at, id) = key(&item);
            Edge::new(cursor(at, id), wrap(item))
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
