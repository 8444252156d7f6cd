//! Opaque ids, for the objects without a UUID of their own: a membership
//! (an organization and a user) and an agent output (a run that succeeded,
//! whose UUID is its run's). An opaque id is `<Kind>:<uuid>[:<uuid>]` in
//! base64url; `node(id:)` reads them back, and arguments that take a run's
//! id take an output's too.

use async_graphql::{ID, Result};
use base64::Engine as _;
use strata_domain::OutputId;
use uuid::Uuid;

/// The opaque id of an object without a UUID of its own.
pub(crate) fn opaque(kind: &str, parts: &[Uuid]) -> ID {
    let mut text = kind.to_owned();
    for p in parts {
        text.push(':');
        text.push_str(&p.to_string());
    }
    ID(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
}

/// The kind and UUIDs of an opaque id, if `id` is one.
pub(crate) fn decode(id: &str) -> Option<(String, Vec<Uuid>)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split(':');
    let kind = parts.next()?.to_owned();
    let ids = parts
        .map(|p| Uuid::parse_str(p).ok())
        .collect::<Option<Vec<_>>>()?;
    Some((kind, ids))
}

/// A run's id from an argument that takes one: the run's UUID, or the id
/// of the output it produced.
pub(crate) fn run_id(field: &'static str, id: &ID) -> Result<OutputId> {
    if let Some(("AgentOutput", [run])) = decode(id.as_str())
        .as_ref()
        .map(|(k, ids)| (k.as_str(), ids.as_slice()))
    {
        return Ok(OutputId::from_uuid(*run));
    }
    crate::args::parse_id(field, id)
}
