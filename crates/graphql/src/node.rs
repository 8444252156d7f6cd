//! Relay's object identification: the `Node` interface, `node(id:)` and
//! `nodes(ids:)`.
//!
//! A node's id is the id the object already had: its UUID, unique across
//! every table, so each id a client holds is a node id and every argument
//! keeps taking it. Two objects have no UUID of their own, and get an
//! opaque id: a membership (an organization and a user) and an agent
//! output (a run that succeeded, whose UUID is its run's). Their ids are
//! `AgentOutput:<run>` and `Membership:<organization>:<user>` in base64url;
//! arguments that take a run's id take an output's too.
//!
//! Resolving reads through the same repositories and loaders as the typed
//! fields, in the caller's context: another tenant's object, a client
//! outside the caller's scope or an object its role may not list (API
//! keys, the audit log, members) is `null`, exactly like an id that exists
//! nowhere, and costs the same lookups.

use std::collections::HashMap;

use async_graphql::{Context, ErrorExtensions, ID, Interface, Object, Result};
use strata_domain::model::RunStatus;
use strata_domain::{Action, ApiKeyId, CampaignId, ClientId, OutputId, PersonaId, UserId};
use strata_persistence::repo::{api_keys, audit, clients, members, organizations, personas};
use uuid::Uuid;

use crate::api_keys::ApiKey;
use crate::audit::AuditEntry;
use crate::error::{ErrorCode, domain_error};
use crate::global_id::decode;
use crate::organization::{Membership, Organization};
use crate::runs::{AgentOutput, AgentRun};
use crate::state::RequestState;
use crate::types::{Campaign, Client, Persona};

/// An object with a global id, which `node(id:)` fetches again.
#[derive(Interface, Clone)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The object's id, unique across every type; `node(id:)` fetches the object again."
))]
pub enum Node {
    /// An organization.
    Organization(Organization),
    /// An agency's client.
    Client(Client),
    /// A campaign.
    Campaign(Campaign),
    /// A persona.
    Persona(Persona),
    /// An agent run.
    AgentRun(AgentRun),
    /// An agent output.
    AgentOutput(AgentOutput),
    /// A membership.
    Membership(Membership),
    /// An API key.
    ApiKey(ApiKey),
    /// An audit log entry.
    AuditEntry(AuditEntry),
}

/// The most ids `nodes(ids:)` takes.
pub const MAX_NODES: usize = 100;

/// Node queries.
#[derive(Debug, Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this id, of whatever type; null if it does not exist
    /// or is not visible.
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        let key = parse("id", &id)?;
        Ok(fetch(ctx, &[key]).await?.pop().flatten())
    }

    /// The objects with these ids, in their order; null for each that does
    /// not exist or is not visible (at most 100 ids).
    #[graphql(complexity = "ids.len() * child_complexity")]
    async fn nodes(&self, ctx: &Context<'_>, ids: Vec<ID>) -> Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(ErrorCode::BadUserInput
                .error(format!("ids: at most {MAX_NODES} ids"))
                .extend_with(|_, e| e.set("field", "ids")));
        }
        let keys = ids
            .iter()
            .map(|id| parse("ids", id))
            .collect::<Result<Vec<_>>>()?;
        fetch(ctx, &keys).await
    }
}

/// What a node id names.
#[derive(Clone, Copy, Debug)]
enum Key {
    /// An object's own UUID, of a type still to be found.
    Uuid(Uuid),
    Output(Uuid),
    Membership {
        org: Uuid,
        user: Uuid,
    },
    /// An opaque id of no object of ours.
    Nothing,
}

fn parse(field: &'static str, id: &ID) -> Result<Key> {
    if let Ok(u) = Uuid::parse_str(id.as_str()) {
        return Ok(Key::Uuid(u));
    }
    match decode(id.as_str()) {
        Some((kind, ids)) => Ok(match (kind.as_str(), ids.as_slice()) {
            ("AgentOutput", [run]) => Key::Output(*run),
            ("Membership", [org, user]) => Key::Membership {
                org: *org,
                user: *user,
            },
            _ => Key::Nothing,
        }),
        None => Err(ErrorCode::BadUserInput
            .error(format!("{field}: not a valid id"))
            .extend_with(|_, e| e.set("field", field))),
    }
}

/// The node each key names, in order: one statement per kind of object
/// whatever the number of ids, each kind tried only for the ids the kinds
/// before it did not find, in a fixed order.
async fn fetch(ctx: &Context<'_>, keys: &[Key]) -> Result<Vec<Option<Node>>> {
    let state = ctx.data::<RequestState>()?;
    let tenant = state.tenant()?;
    let tx = state.read_tx().await?;
    let org = tenant.org_id().as_uuid();
    let loaded = |e: std::sync::Arc<async_graphql::Error>| (*e).clone();
    let mut found: HashMap<Uuid, Node> = HashMap::new();
    let mut memberships: HashMap<Uuid, Node> = HashMap::new();
    let mut outputs: HashMap<Uuid, Node> = HashMap::new();

    // Objects with a UUID of their own, kind by kind.
    let mut open: Vec<Uuid> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Uuid(u) => Some(*u),
            _ => None,
        })
        .collect();
    open.sort();
    open.dedup();
    let mut take = |open: &mut Vec<Uuid>, id: Uuid, node: Node| {
        open.retain(|u| *u != id);
        found.insert(id, node);
    };
    if open.contains(&org) {
        let o = organizations::current(tx).await.map_err(domain_error)?;
        take(&mut open, org, Node::Organization(Organization(o)));
    }
    if !open.is_empty() {
        let ids: Vec<CampaignId> = open.iter().map(|u| CampaignId::from_uuid(*u)).collect();
        for (id, c) in state
            .campaign_loader()
            .load_many(ids)
            .await
            .map_err(loaded)?
        {
            take(&mut open, id.as_uuid(), Node::Campaign(Campaign(c)));
        }
    }
    if !open.is_empty() {
        let ids: Vec<OutputId> = open.iter().map(|u| OutputId::from_uuid(*u)).collect();
        for (id, r) in state.run_loader().load_many(ids).await.map_err(loaded)? {
            take(&mut open, id.as_uuid(), Node::AgentRun(AgentRun::from(r)));
        }
    }
    if !open.is_empty() {
        let ids: Vec<PersonaId> = open.iter().map(|u| PersonaId::from_uuid(*u)).collect();
        for p in personas::by_ids(tx, &ids).await.map_err(domain_error)? {
            take(&mut open, p.id.as_uuid(), Node::Persona(Persona(p)));
        }
    }
    if !open.is_empty() {
        let ids: Vec<ClientId> = open.iter().map(|u| ClientId::from_uuid(*u)).collect();
        for c in clients::by_ids(tx, &ids).await.map_err(domain_error)? {
            take(&mut open, c.id.as_uuid(), Node::Client(Client(c)));
        }
    }
    if !open.is_empty() && Action::ListApiKeys.allows(tenant) {
        let ids: Vec<ApiKeyId> = open.iter().map(|u| ApiKeyId::from_uuid(*u)).collect();
        for k in api_keys::by_ids(tx, &ids).await.map_err(domain_error)? {
            take(&mut open, k.id.as_uuid(), Node::ApiKey(ApiKey(k)));
        }
    }
    if !open.is_empty() && Action::ReadAuditLog.allows(tenant) {
        for a in audit::by_ids(tx, &open.clone())
            .await
            .map_err(domain_error)?
        {
            take(&mut open, a.id, Node::AuditEntry(AuditEntry(a)));
        }
    }

    // Outputs: runs that succeeded.
    let runs: Vec<OutputId> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Output(u) => Some(OutputId::from_uuid(*u)),
            _ => None,
        })
        .collect();
    if !runs.is_empty() {
        for (id, r) in state.run_loader().load_many(runs).await.map_err(loaded)? {
            if r.status == RunStatus::Succeeded {
                outputs.insert(id.as_uuid(), Node::AgentOutput(AgentOutput(r)));
            }
        }
    }

    // Memberships of the caller's organization: any of them for those who
    // may list members, otherwise the caller's own, as `me.memberships`
    // shows it.
    let users: Vec<UserId> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Membership { org: o, user } if *o == org => Some(UserId::from_uuid(*user)),
            _ => None,
        })
        .collect();
    if !users.is_empty() {
        let visible: Vec<strata_domain::model::Membership> = if Action::ListMembers.allows(tenant) {
            members::by_users(tx, &users).await.map_err(domain_error)?
        } else {
            state
                .memberships()
                .iter()
                .filter(|m| m.org_id.as_uuid() == org && users.contains(&m.user_id))
                .cloned()
                .collect()
        };
        for m in visible {
            memberships.insert(m.user_id.as_uuid(), Node::Membership(Membership::from(&m)));
        }
    }

    Ok(keys
        .iter()
        .map(|k| match k {
            Key::Uuid(u) => found.get(u).cloned(),
            Key::Output(u) => outputs.get(u).cloned(),
            Key::Membership { user, .. } => memberships.get(user).cloned(),
            Key::Nothing => None,
        })
        .collect())
}
