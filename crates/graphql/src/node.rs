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
#[derive(Interface)]
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
        fetch(ctx, key).await
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
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(fetch(ctx, key).await?);
        }
        Ok(out)
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

async fn fetch(ctx: &Context<'_>, key: Key) -> Result<Option<Node>> {
    let state = ctx.data::<RequestState>()?;
    let tenant = state.tenant()?;
    let tx = state.read_tx().await?;
    let run = |id: Uuid| async move {
        state
            .run_loader()
            .load_one(OutputId::from_uuid(id))
            .await
            .map_err(|e| (*e).clone())
    };
    match key {
        Key::Nothing => Ok(None),
        Key::Output(id) => Ok(run(id)
            .await?
            .filter(|r| r.status == RunStatus::Succeeded)
            .map(|r| Node::AgentOutput(AgentOutput(r)))),
        Key::Membership { org, user } => {
            if org != tenant.org_id().as_uuid() {
                return Ok(None);
            }
            // The caller's own membership, as `me.memberships` shows it.
            if !Action::ListMembers.allows(tenant) {
                return Ok(state
                    .memberships()
                    .iter()
                    .find(|m| m.org_id.as_uuid() == org && m.user_id.as_uuid() == user)
                    .map(|m| Node::Membership(Membership::from(m))));
            }
            Ok(members::by_user(tx, UserId::from_uuid(user))
                .await
                .map_err(domain_error)?
                .map(|m| Node::Membership(Membership::from(&m))))
        }
        Key::Uuid(id) => {
            // The same lookups whatever the id, in one order.
            if id == tenant.org_id().as_uuid() {
                let org = organizations::current(tx).await.map_err(domain_error)?;
                return Ok(Some(Node::Organization(Organization(org))));
            }
            if let Some(c) = state
                .campaign_loader()
                .load_one(CampaignId::from_uuid(id))
                .await
                .map_err(|e| (*e).clone())?
            {
                return Ok(Some(Node::Campaign(Campaign(c))));
            }
            if let Some(r) = run(id).await? {
                return Ok(Some(Node::AgentRun(AgentRun::from(r))));
            }
            if let Some(p) = personas::by_id(tx, PersonaId::from_uuid(id))
                .await
                .map_err(domain_error)?
            {
                return Ok(Some(Node::Persona(Persona(p))));
            }
            if let Some(c) = clients::by_id(tx, ClientId::from_uuid(id))
                .await
                .map_err(domain_error)?
            {
                return Ok(Some(Node::Client(Client(c))));
            }
            if Action::ListApiKeys.allows(tenant)
                && let Some(k) = api_keys::by_id(tx, ApiKeyId::from_uuid(id))
                    .await
                    .map_err(domain_error)?
            {
                return Ok(Some(Node::ApiKey(ApiKey(k))));
            }
            if Action::ReadAuditLog.allows(tenant)
                && let Some(a) = audit::by_id(tx, id).await.map_err(domain_error)?
            {
                return Ok(Some(Node::AuditEntry(AuditEntry(a))));
            }
            Ok(None)
        }
    }
}
