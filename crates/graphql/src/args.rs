//! Arguments as resolvers parse them: ids, lists of client ids, and the
//! error a validation failure becomes. Every resolver
//! parses its arguments into domain types before touching the database,
//! and a malformed one is bad input naming the field.

use std::str::FromStr;

use async_graphql::{ErrorExtensions, ID, Result};
use strata_domain::{ClientId, ValidationError};

use crate::error::{ErrorCode, domain_error};

/// Parses an id argument; a malformed one is bad input naming the field.
pub(crate) fn parse_id<T: FromStr>(field: &'static str, id: &ID) -> Result<T> {
    T::from_str(id.as_str()).map_err(|_| {
        ErrorCode::BadUserInput
            .error(format!("{field}: not a valid id"))
            .extend_with(|_, e| e.set("field", field))
    })
}

/// Parses an optional `clientId` argument.
pub(crate) fn optional_client(client_id: Option<&ID>) -> Result<Option<ClientId>> {
    client_id.map(|c| parse_id("clientId", c)).transpose()
}

/// Parses an optional `clientIds` argument.
pub(crate) fn client_ids(ids: Option<Vec<ID>>) -> Result<Option<Vec<ClientId>>> {
    ids.map(|ids| {
        ids.iter()
            .map(|c| parse_id::<ClientId>("clientIds", c))
            .collect::<Result<Vec<_>>>()
    })
    .transpose()
}

/// The error a value that failed validation becomes: bad input naming the
/// field.
pub(crate) fn bad(e: ValidationError) -> async_graphql::Error {
    domain_error(e.into())
}
