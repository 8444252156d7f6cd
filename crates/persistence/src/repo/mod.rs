//! Repositories: per-aggregate modules of free async functions. Each takes
//! the tenant transaction first and returns domain types.
//!
//! Content that exists in both schemas (campaigns, brand guidelines,
//! personas, runs) is served by one generic implementation per statement over
//! the `two_schema` primitive: the `public` entity for SMEs, the `tenant_b`
//! entity for agencies, with typed columns. The organization type in the
//! context picks the copy; callers never do.

use sea_orm::EntityTrait;
use strata_domain::{ClientId, DomainError, OrgType, ValidationError};

use crate::tx::TenantTx;

pub mod api_keys;
pub mod audit;
pub mod brand;
pub mod campaigns;
pub mod clients;
pub mod invitations;
pub mod members;
pub mod organizations;
pub mod outputs;
pub mod personas;
pub(crate) mod two_schema;
pub mod usage;

/// What a list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SortField {
    /// When the row was created.
    #[default]
    CreatedAt,
    /// Its name.
    Name,
}

/// A list's order: a field, then the id, both in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListOrder {
    /// The field sorted by.
    pub field: SortField,
    /// Largest first.
    pub descending: bool,
}

impl Default for ListOrder {
    /// Newest first.
    fn default() -> Self {
        Self {
            field: SortField::CreatedAt,
            descending: true,
        }
    }
}

impl ListOrder {
    /// The sort value of a row with these fields, in this order.
    pub fn value(&self, created_at: chrono::DateTime<chrono::Utc>, name: &str) -> SortValue {
        match self.field {
            SortField::CreatedAt => SortValue::At(created_at),
            SortField::Name => SortValue::Text(name.to_owned()),
        }
    }
}

/// The value of a row's sort field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SortValue {
    /// A time (`created_at`).
    At(chrono::DateTime<chrono::Utc>),
    /// A text (`name`).
    Text(String),
}

impl From<SortValue> for sea_orm::Value {
    fn from(v: SortValue) -> Self {
        match v {
            SortValue::At(at) => at.into(),
            SortValue::Text(t) => t.into(),
        }
    }
}

/// A position in a list: the sort value and the id of a row.
pub type Key = (SortValue, uuid::Uuid);

/// A page request: keyset pagination on `(<sort field>, id)` in the list's
/// order (newest first unless the list says otherwise), between two
/// cursors, counted from the start (`first`) or from the end (`last`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PageRequest {
    /// Return rows strictly after this key, in the list's order.
    pub after: Option<Key>,
    /// Return rows strictly before this key, in the list's order.
    pub before: Option<Key>,
    /// At most this many rows.
    pub limit: u64,
    /// The `limit` rows nearest the end (or `before`) instead of the
    /// start (or `after`).
    pub from_end: bool,
    /// The order, for lists that may be sorted several ways; the others
    /// keep their own.
    pub order: ListOrder,
}

impl PageRequest {
    /// The page of `rows`, fetched in the page's fetch order (from the end
    /// when it counts from there) with one row more than the page holds:
    /// cut to the page, in the list's order.
    pub fn page<T>(&self, mut rows: Vec<T>) -> Page<T> {
        let more = rows.len() as u64 > self.limit;
        rows.truncate(usize::try_from(self.limit).unwrap_or(usize::MAX));
        if self.from_end {
            rows.reverse();
            Page {
                items: rows,
                // The row at `before` follows (unless deleted meanwhile).
                has_next_page: self.before.is_some(),
                has_previous_page: more,
            }
        } else {
            Page {
                items: rows,
                has_next_page: more,
                has_previous_page: self.after.is_some(),
            }
        }
    }

    /// Whether a list kept newest first is fetched newest first: yes,
    /// unless the page counts from its end.
    pub(crate) fn fetch_desc(&self) -> bool {
        !self.from_end
    }
}

/// A page of results, in the list's order.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Whether more rows follow.
    pub has_next_page: bool,
    /// Whether rows come before.
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    /// A page with no rows.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
        }
    }

    /// The same page with each row mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// The client that content written in `tx` belongs to: required (and
/// visible) for agencies, forbidden for SMEs. A client outside the context's
/// scope is "not found", like one that does not exist; an archived client
/// takes no new content.
pub(crate) async fn content_client(
    tx: &TenantTx,
    client_id: Option<ClientId>,
) -> Result<Option<ClientId>, DomainError> {
    match (tx.ctx().org_type(), client_id) {
        (OrgType::Sme, Some(_)) => Err(ValidationError::new(
            "clientId",
            "organizations without clients cannot set clientId",
        )
        .into()),
        (OrgType::Agency, None) => {
            Err(ValidationError::new("clientId", "is required for agencies").into())
        }
        (OrgType::Agency, Some(c)) => match clients::by_id(tx, c).await? {
            Some(client) if client.archived_at.is_some() => Err(DomainError::Forbidden(ARCHIVED)),
            Some(_) => Ok(Some(c)),
            None => Err(DomainError::NotFound),
        },
        (OrgType::Sme, None) => Ok(None),
    }
}

/// What an erasure must tell the rest of the server once its transaction
/// commits.
#[derive(Clone, Debug, Default)]
pub struct Erasure {
    /// Runs that were queued or running: stop them.
    pub runs: Vec<strata_domain::OutputId>,
    /// Members whose memberships or client assignments went: forget what
    /// is remembered of them.
    pub members: Vec<strata_domain::UserId>,
    /// How many API keys went (their open connections re-check).
    pub api_keys: u64,
}

/// The refusal of new content for an archived client.
pub(crate) const ARCHIVED: &str =
    "the client is archived: restore it (restoreClient) before adding to it";

/// Why an `UPDATE` or `DELETE` of one row of `table` that this transaction
/// has just read changed no row. While the row is still visible
/// (`still_visible`, run only now) the database's write policy filtered
/// what its read policy shows: drift, answered as an internal error
/// ([`crate::drift::filtered`]). When the row is gone (a concurrent
/// transaction deleted it) the answer is "not found".
pub(crate) async fn not_written<T>(
    tx: &TenantTx,
    operation: &'static str,
    table: String,
    still_visible: impl std::future::Future<Output = Result<Option<T>, DomainError>>,
) -> DomainError {
    match still_visible.await {
        Ok(Some(_)) => crate::drift::filtered(tx.ctx(), operation, table),
        Ok(None) => DomainError::NotFound,
        Err(e) => e,
    }
}

/// `schema.table` of entity `E`.
pub(crate) fn table_of<E: EntityTrait>() -> String {
    let e = E::default();
    format!(
        "{}.{}",
        sea_orm::EntityName::schema_name(&e).unwrap_or("public"),
        sea_orm::EntityName::table_name(&e)
    )
}

/// Whether a read filtered by `client_id` can match anything in `tx`: SMEs
/// have no clients, and a client outside the scope matches nothing.
pub(crate) fn client_visible(tx: &TenantTx, client_id: Option<ClientId>) -> bool {
    match (tx.ctx().org_type(), client_id) {
        (_, None) => true,
        (OrgType::Sme, Some(_)) => false,
        (OrgType::Agency, Some(c)) => tx.ctx().clients().includes(c),
    }
}

pub(crate) use crate::array::uuid_array;

/// `column = ANY($n::uuid[])`, the array bound as one parameter (see
/// [`uuid_array`]); an empty list matches nothing.
pub(crate) fn any_of<C: sea_orm::ColumnTrait>(
    column: C,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> sea_orm::sea_query::Expr {
    use sea_orm::sea_query::extension::postgres::PgFunc;
    use sea_orm::sea_query::{Expr, ExprTrait};
    Expr::col(column.as_column_ref()).eq(PgFunc::any(Expr::cust_with_values(
        "$1::uuid[]",
        [uuid_array(ids)],
    )))
}

/// The clients a limited context may see (an account manager's, a client
/// key's), or `None` when it sees every client of its organization. The
/// repositories filter by it themselves; row-level security holds the same
/// line underneath.
pub(crate) fn limited_clients(tx: &TenantTx) -> Option<impl Iterator<Item = uuid::Uuid> + '_> {
    match tx.ctx().clients() {
        strata_domain::ClientScope::All => None,
        strata_domain::ClientScope::Only(ids) => Some(ids.iter().map(|c| c.as_uuid())),
    }
}

/// Fails, with the operation's own refusal, unless the context may perform
/// `action` (the table in `strata_domain::Action`).
pub(crate) fn require(tx: &TenantTx, action: strata_domain::Action) -> Result<(), DomainError> {
    action.check(tx.ctx())
}

/// Orders `query` oldest first by `(created_at, id)`, starts after the
/// page's cursor and fetches one row more than the page holds: the keyset
/// pagination of lists read in the order they grew (members).
pub(crate) fn oldest_first<E: EntityTrait>(
    query: sea_orm::Select<E>,
    created_at: E::Column,
    id: E::Column,
    page: &PageRequest,
) -> sea_orm::Select<E> {
    keyset(query, created_at, id, page, sea_orm::Order::Asc)
}

/// Orders `query` newest first by `(created_at, id)`, starts after the
/// page's cursor and fetches one row more than the page holds (to tell
/// whether another page follows): the keyset pagination of lists with one
/// order.
pub(crate) fn newest_first<E: EntityTrait>(
    query: sea_orm::Select<E>,
    created_at: E::Column,
    id: E::Column,
    page: &PageRequest,
) -> sea_orm::Select<E> {
    keyset(query, created_at, id, page, sea_orm::Order::Desc)
}

/// Orders `query` as the page asks (`created_at` or `name`, either way,
/// then `id`), paged like [`newest_first`]: lists a caller may sort.
pub(crate) fn in_order<E: EntityTrait>(
    query: sea_orm::Select<E>,
    (created_at, name): (E::Column, E::Column),
    id: E::Column,
    page: &PageRequest,
) -> sea_orm::Select<E> {
    let column = match page.order.field {
        SortField::CreatedAt => created_at,
        SortField::Name => name,
    };
    let direction = if page.order.descending {
        sea_orm::Order::Desc
    } else {
        sea_orm::Order::Asc
    };
    keyset(query, column, id, page, direction)
}

/// Only the rows whose `name` contains `search`, ignoring case (`ILIKE`
/// with the search's own wildcards escaped by a backslash, PostgreSQL's
/// default escape): a trigram index serves it.
pub(crate) fn name_contains<C: sea_orm::ColumnTrait>(
    name: C,
    search: &str,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::extension::postgres::PgExpr as _;
    use sea_orm::sea_query::{Expr, LikeExpr};
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for ch in search.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    Expr::col(name.as_column_ref()).ilike(LikeExpr::new(pattern))
}

/// The same page of `query`'s rows for each of `parents`, in one statement:
/// `query` bound to `parent = <each id>` (an `unnest` of one array
/// parameter) as a `LATERAL` subquery, paged like [`newest_first`]. The
/// rows come parent by parent, each parent's in fetch order; group them
/// and cut each group with [`PageRequest::page`].
pub(crate) async fn pages_per_parent<E, R>(
    tx: &TenantTx,
    query: sea_orm::Select<E>,
    parent: E::Column,
    parents: &[uuid::Uuid],
    (created_at, id): (E::Column, E::Column),
    page: &PageRequest,
) -> Result<Vec<R>, sea_orm::DbErr>
where
    E: EntityTrait,
    R: sea_orm::FromQueryResult,
{
    use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait as _, Func, JoinType, Query};
    use sea_orm::{ConnectionTrait, QueryFilter, QueryTrait};
    let outer = Alias::new("parent");
    let bound = query.filter(Expr::col(parent).eq(Expr::col((outer.clone(), outer.clone()))));
    let lateral = keyset(bound, created_at, id, page, sea_orm::Order::Desc).into_query();
    let ids = Expr::cust_with_values("$1::uuid[]", [uuid_array(parents.iter().copied())]);
    let row = Alias::new("row");
    let mut pages = Query::select();
    pages
        .column((row.clone(), Asterisk))
        .from_function(Func::cust("unnest").arg(ids), outer)
        .join_lateral(JoinType::InnerJoin, lateral, row, Expr::cust("TRUE"));
    R::find_by_statement(tx.get_database_backend().build(&pages))
        .all(tx)
        .await
}

/// How many of `query`'s rows each of `parents` has, in one statement.
pub(crate) async fn counts_per_parent<E: EntityTrait>(
    tx: &TenantTx,
    query: sea_orm::Select<E>,
    parent: E::Column,
    parents: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, u64>, sea_orm::DbErr> {
    use sea_orm::sea_query::Expr;
    use sea_orm::{QueryFilter, QuerySelect};
    let rows: Vec<(uuid::Uuid, i64)> = query
        .select_only()
        .column(parent)
        .column_as(Expr::cust("count(*)"), "n")
        .filter(any_of(parent, parents.iter().copied()))
        .group_by(parent)
        .into_tuple()
        .all(tx)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(p, n)| (p, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// Keyset pagination on `(sort, id)` in `order`: the rows between the
/// page's cursors in that order, one more than the page holds, fetched
/// from the end when the page counts from there.
fn keyset<E: EntityTrait>(
    query: sea_orm::Select<E>,
    sort: E::Column,
    id: E::Column,
    page: &PageRequest,
    order: sea_orm::Order,
) -> sea_orm::Select<E> {
    use sea_orm::sea_query::{Expr, ExprTrait as _};
    use sea_orm::{Order, QueryFilter, QueryOrder, QuerySelect};
    let asc = matches!(order, Order::Asc);
    // Row comparisons: bounds of the index scan, not filters. Rows past
    // `key` in the list's order (`later`), or before it.
    let beyond = |key: Key, later: bool| {
        let row = Expr::tuple([Expr::col(sort), Expr::col(id)]);
        let (value, key_id) = key;
        let key = Expr::tuple([Expr::value(value), Expr::value(key_id)]);
        if later == asc {
            row.gt(key)
        } else {
            row.lt(key)
        }
    };
    let mut query = query;
    if let Some(key) = page.after.clone() {
        query = query.filter(beyond(key, true));
    }
    if let Some(key) = page.before.clone() {
        query = query.filter(beyond(key, false));
    }
    let fetch = if page.from_end == asc {
        Order::Desc
    } else {
        Order::Asc
    };
    query
        .order_by(sort, fetch.clone())
        .order_by(id, fetch)
        .limit(page.limit + 1)
}

/// The keyset bounds of a newest-first page for raw SQL, appended to
/// `values` as parameters: rows after the `after` key are older, rows
/// before the `before` key newer, by `(created_at, id)`.
pub(crate) fn newest_first_bounds(page: &PageRequest, values: &mut Vec<sea_orm::Value>) -> String {
    let mut bounds = String::new();
    for (key, older) in [(&page.after, true), (&page.before, false)] {
        if let Some((at, id)) = key.clone() {
            let n = values.len();
            values.push(at.into());
            values.push(id.into());
            let op = if older { '<' } else { '>' };
            bounds.push_str(&format!(
                " AND (created_at, id) {op} (${}, ${})",
                n + 1,
                n + 2
            ));
        }
    }
    bounds
}
