//! The request shapes, as Strata and as the peer spell them.

use serde_json::{Value, json};

use crate::layout::{Tenant, WRITE_CLIENT};

/// One request shape of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Shape {
    /// 50 campaigns of one client, each with its client.
    A,
    /// The same with each campaign's 10 latest outputs.
    B,
    /// One campaign by id.
    C,
    /// 50 campaigns of an SME.
    D,
    /// `createCampaign`.
    E,
}

impl Shape {
    /// Parses `a`..`e`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "a" | "A" => Some(Shape::A),
            "b" | "B" => Some(Shape::B),
            "c" | "C" => Some(Shape::C),
            "d" | "D" => Some(Shape::D),
            "e" | "E" => Some(Shape::E),
            _ => None,
        }
    }

    /// The letter.
    pub fn letter(self) -> &'static str {
        match self {
            Shape::A => "a",
            Shape::B => "b",
            Shape::C => "c",
            Shape::D => "d",
            Shape::E => "e",
        }
    }

    /// What it asks.
    pub fn describe(self) -> &'static str {
        match self {
            Shape::A => "50 campaigns of a client + client",
            Shape::B => "(a) + 10 latest outputs each",
            Shape::C => "one campaign by id",
            Shape::D => "50 campaigns of an SME",
            Shape::E => "createCampaign (+ audit row)",
        }
    }

    /// Whether it writes.
    pub fn writes(self) -> bool {
        self == Shape::E
    }

    /// The tenants it rotates over: agencies, SMEs, or both.
    pub fn tenants(self, agencies: &[Tenant], smes: &[Tenant]) -> Vec<Tenant> {
        match self {
            Shape::A | Shape::B | Shape::E => agencies.to_vec(),
            Shape::D => smes.to_vec(),
            Shape::C => {
                let mut out = Vec::with_capacity(agencies.len() + smes.len());
                for i in 0..agencies.len().max(smes.len()) {
                    out.extend(agencies.get(i));
                    out.extend(smes.get(i));
                }
                out
            }
        }
    }
}

/// Whom a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The Strata gateway.
    Strata,
    /// PostGraphile 5.
    PostGraphile,
}

const CAMPAIGN_FIELDS: &str = "id name objective status createdAt";

/// Strata's query text of a shape, for a page of `first` campaigns.
pub fn strata_query(shape: Shape, first: u32) -> String {
    match shape {
        Shape::A => format!(
            "query A($client: ID!) {{ campaigns(clientId: $client, first: {first}) {{ nodes {{ \
             {CAMPAIGN_FIELDS} client {{ id name slug }} }} }} }}"
        ),
        Shape::B => format!(
            "query B($client: ID!) {{ campaigns(clientId: $client, first: {first}) {{ nodes {{ \
             {CAMPAIGN_FIELDS} client {{ id name slug }} \
             outputs(first: 10) {{ nodes {{ id agent content createdAt }} }} }} }} }}"
        ),
        Shape::C => {
            format!("query C($id: ID!) {{ campaign(id: $id) {{ {CAMPAIGN_FIELDS} clientId }} }}")
        }
        Shape::D => {
            format!("query D {{ campaigns(first: {first}) {{ nodes {{ {CAMPAIGN_FIELDS} }} }} }}")
        }
        Shape::E => "mutation E($client: ID!, $name: String!) { createCampaign(input: \
             {clientId: $client, name: $name, objective: \"Benchmark write\"}) \
             { id name status createdAt } }"
            .to_owned(),
    }
}

/// PostGraphile's equivalent of a shape. `None` for the write: PostGraphile
/// writes no audit row, so the shapes would not be equivalent.
fn peer_query(shape: Shape, sme: bool) -> Option<&'static str> {
    Some(match shape {
        Shape::A => {
            "query A($client: UUID!) { allTenantBCampaigns(condition: {clientId: $client}, first: 50, \
             orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { rowId name objective status createdAt \
             tenantBWorkspaceEntityByOrgIdAndClientId { rowId name slug } } } }"
        }
        Shape::B => {
            "query B($client: UUID!) { allTenantBCampaigns(condition: {clientId: $client}, first: 50, \
             orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { rowId name objective status createdAt \
             tenantBWorkspaceEntityByOrgIdAndClientId { rowId name slug } \
             tenantBOutputsByOrgIdAndClientIdAndCampaignId(first: 10, condition: {status: \"SUCCEEDED\"}, \
             orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { nodes { rowId agent output createdAt } } } } }"
        }
        Shape::C if sme => {
            "query C($org: UUID!, $id: UUID!) { smeCampaignByOrgIdAndRowId(orgId: $org, rowId: $id) \
             { rowId name objective status createdAt } }"
        }
        Shape::C => {
            "query C($org: UUID!, $id: UUID!) { tenantBCampaignByOrgIdAndRowId(orgId: $org, rowId: $id) \
             { rowId name objective status createdAt clientId } }"
        }
        Shape::D => {
            "query D { allSmeCampaigns(first: 50, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) \
             { nodes { rowId name objective status createdAt } } }"
        }
        Shape::E => return None,
    })
}

/// The body of request `i` of `shape` for `tenant`.
pub fn body(target: Target, shape: Shape, tenant: Tenant, i: usize, first: u32) -> Option<Value> {
    let campaign = tenant.campaign((i as u64 * 7) % tenant.campaigns());
    let client = tenant.client(0);
    match target {
        Target::Strata => {
            let query = strata_query(shape, first);
            let variables = match shape {
                Shape::A | Shape::B => json!({ "client": client }),
                Shape::C => json!({ "id": campaign }),
                Shape::D => json!({}),
                Shape::E => json!({
                    "client": tenant.client(WRITE_CLIENT),
                    "name": format!("Benchmark campaign {i}"),
                }),
            };
            Some(json!({ "query": query, "variables": variables }))
        }
        Target::PostGraphile => {
            let query = peer_query(shape, !tenant.is_agency())?;
            let variables = match shape {
                Shape::A | Shape::B => json!({ "client": client }),
                Shape::C => json!({ "org": tenant.org(), "id": campaign }),
                _ => json!({}),
            };
            Some(json!({ "query": query, "variables": variables }))
        }
    }
}

/// What a correct answer holds: (campaigns, outputs) it should list, for a
/// sample check. `None` when the count is not fixed.
pub fn expected(shape: Shape) -> Option<(usize, usize)> {
    match shape {
        Shape::A => Some((50, 0)),
        Shape::B => None,
        Shape::C => Some((1, 0)),
        Shape::D => Some((50, 0)),
        Shape::E => Some((1, 0)),
    }
}

/// Counts campaigns (objects with `name` and `status`) and outputs (objects
/// with `agent`) in a response's data.
pub fn count(value: &Value) -> (usize, usize) {
    match value {
        Value::Object(map) => {
            let mut here = (0, 0);
            if map.contains_key("status") && map.contains_key("name") {
                here.0 += 1;
            }
            if map.contains_key("agent") {
                here.1 += 1;
            }
            map.values().fold(here, |acc, v| {
                let (c, o) = count(v);
                (acc.0 + c, acc.1 + o)
            })
        }
        Value::Array(items) => items.iter().fold((0, 0), |acc, v| {
            let (c, o) = count(v);
            (acc.0 + c, acc.1 + o)
        }),
        _ => (0, 0),
    }
}
