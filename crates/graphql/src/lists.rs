//! What the lists a UI is built on share: the `orderBy` input, the name
//! search, and the created-at range, parsed into the repositories' types.

use async_graphql::{Enum, ErrorExtensions, InputObject, Result};
use chrono::{DateTime, Utc};
use strata_persistence::repo::{ListOrder, SortField};

use crate::error::ErrorCode;

/// A direction of an order.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq)]
pub enum OrderDirection {
    /// Smallest (oldest, A) first.
    Asc,
    /// Largest (newest, Z) first.
    Desc,
}

/// What a list can be sorted by.
#[derive(Enum, Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum ListOrderField {
    /// When the item was created.
    #[default]
    CreatedAt,
    /// The item's name.
    Name,
}

/// The order of a list: a field and a direction; ties are broken by id in
/// the same direction.
#[derive(InputObject, Clone, Copy, Debug, Default)]
#[graphql(name = "ListOrder")]
pub struct ListOrderInput {
    /// The field sorted by.
    #[graphql(default)]
    pub field: ListOrderField,
    /// The direction: by default newest first by creation, A to Z by
    /// name.
    pub direction: Option<OrderDirection>,
}

/// `orderBy` as given (newest first when absent), for a list whose items
/// have a name when `named`.
pub(crate) fn order(input: Option<ListOrderInput>, named: bool) -> Result<ListOrder> {
    let input = input.unwrap_or_default();
    let field = match input.field {
        ListOrderField::CreatedAt => SortField::CreatedAt,
        ListOrderField::Name if named => SortField::Name,
        ListOrderField::Name => {
            return Err(ErrorCode::BadUserInput
                .error("orderBy.field: this list cannot be sorted by name")
                .extend_with(|_, e| e.set("field", "orderBy.field")));
        }
    };
    let descending = match input.direction {
        Some(d) => d == OrderDirection::Desc,
        None => field == SortField::CreatedAt,
    };
    Ok(ListOrder { field, descending })
}

/// The longest search accepted, in characters (names are at most 200).
const MAX_SEARCH: usize = 200;

/// `search` as given: surrounding blanks trimmed, an empty one is no
/// search, and one longer than any name is bad input.
pub(crate) fn search(search: Option<String>) -> Result<Option<String>> {
    let Some(text) = search else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > MAX_SEARCH || text.chars().any(char::is_control) {
        return Err(ErrorCode::BadUserInput
            .error(format!(
                "search: at most {MAX_SEARCH} characters, without control characters"
            ))
            .extend_with(|_, e| e.set("field", "search")));
    }
    Ok(Some(text.to_owned()))
}

/// A range of times, either end open.
pub(crate) type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// A created-at range: `createdBefore` must come after `createdAfter`.
pub(crate) fn created_range(
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> Result<Range> {
    match (after, before) {
        (Some(a), Some(b)) if b <= a => Err(ErrorCode::BadUserInput
            .error("filter.createdBefore: must be later than createdAfter")
            .extend_with(|_, e| e.set("field", "filter.createdBefore"))),
        range => Ok(range),
    }
}
