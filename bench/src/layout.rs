//! The shape of the generated dataset and its deterministic ids.
//!
//! Organization `n` (0-based) is an agency when `n` is even and an SME when
//! it is odd. Every id is a UUID whose first group names the kind of row and
//! whose last group is a row number, so the Rust side and the SQL side
//! compute the same ids without looking anything up, and rows are loaded in
//! key order.

use uuid::Uuid;

/// Kind prefixes of the generated ids.
pub const ORG: u32 = 1;
/// Users (one owner per organization).
pub const USER: u32 = 2;
/// Agency clients.
pub const CLIENT: u32 = 3;
/// Campaigns of both kinds.
pub const CAMPAIGN: u32 = 4;
/// Agent outputs of both kinds.
pub const OUTPUT: u32 = 5;

/// Clients per agency.
pub const CLIENTS: u64 = 10;
/// Campaigns per agency: the first client (a key account) has
/// [`BIG_CLIENT_CAMPAIGNS`], the other nine share the rest.
pub const AGENCY_CAMPAIGNS: u64 = 141;
/// Campaigns of an agency's first client.
pub const BIG_CLIENT_CAMPAIGNS: u64 = 60;
/// Campaigns per SME.
pub const SME_CAMPAIGNS: u64 = 59;
/// Campaign row numbers are `org * CAMPAIGN_STRIDE + j`.
pub const CAMPAIGN_STRIDE: u64 = 1000;
/// Output row numbers are `campaign row * OUTPUT_STRIDE + m`.
pub const OUTPUT_STRIDE: u64 = 8;
/// The client that `createCampaign` writes to, so the read shapes (which
/// read client 0) see the same data in every round.
pub const WRITE_CLIENT: u64 = 9;

/// Organizations at scale 1.
pub const DEFAULT_ORGS: u64 = 10_000;
/// Outputs per campaign at scale 1.
pub const DEFAULT_OUTPUTS: u64 = 5;

/// Dataset parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Organizations (half agencies, half SMEs).
    pub orgs: u64,
    /// Agent outputs per campaign.
    pub outputs_per_campaign: u64,
}

impl Layout {
    /// What the database comment records, to reuse a seeded database.
    pub fn fingerprint(&self) -> String {
        format!(
            "strata-bench dataset v1 orgs={} outputs_per_campaign={}",
            self.orgs, self.outputs_per_campaign
        )
    }

    /// Index of the last organization.
    pub fn last_org(&self) -> u64 {
        self.orgs.saturating_sub(1)
    }

    /// Campaigns in all.
    pub fn campaigns(&self) -> u64 {
        let agencies = self.orgs.div_ceil(2);
        let smes = self.orgs / 2;
        agencies * AGENCY_CAMPAIGNS + smes * SME_CAMPAIGNS
    }

    /// Outputs in all.
    pub fn outputs(&self) -> u64 {
        self.campaigns() * self.outputs_per_campaign
    }
}

/// Whether organization `n` is an agency.
pub fn is_agency(n: u64) -> bool {
    n.is_multiple_of(2)
}

/// The id of row `idx` of `kind`.
pub fn id(kind: u32, idx: u64) -> Uuid {
    let v = (u128::from(kind) << 96)
        | (0x7000u128 << 64)
        | (0x8000u128 << 48)
        | u128::from(idx & 0xffff_ffff_ffff);
    Uuid::from_u128(v)
}

/// The SQL expression computing `id(kind, expr)`.
pub fn id_sql(kind: u32, expr: &str) -> String {
    format!("('{kind:08x}-0000-7000-8000-' || lpad(to_hex({expr}), 12, '0'))::uuid")
}

/// Splits a generated id into its kind and row number.
pub fn parse(id: &str) -> Option<(u32, u64)> {
    let u = Uuid::parse_str(id).ok()?.as_u128();
    let kind = (u >> 96) as u32;
    let fixed = (u >> 48) & 0xffff_ffff_ffff;
    if !(ORG..=OUTPUT).contains(&kind) || fixed != 0x0000_7000_8000 {
        return None;
    }
    Some((kind, (u & 0xffff_ffff_ffff) as u64))
}

/// Ids of one organization, as the load shapes use them.
#[derive(Clone, Copy, Debug)]
pub struct Tenant {
    /// Organization number.
    pub n: u64,
}

impl Tenant {
    /// The organization.
    pub fn org(&self) -> Uuid {
        id(ORG, self.n)
    }
    /// Its owner.
    pub fn user(&self) -> Uuid {
        id(USER, self.n)
    }
    /// Its `k`-th client (agencies).
    pub fn client(&self, k: u64) -> Uuid {
        id(CLIENT, self.n * CLIENTS + k)
    }
    /// Its `j`-th campaign.
    pub fn campaign(&self, j: u64) -> Uuid {
        id(CAMPAIGN, self.n * CAMPAIGN_STRIDE + j)
    }
    /// Campaigns it has.
    pub fn campaigns(&self) -> u64 {
        if is_agency(self.n) {
            AGENCY_CAMPAIGNS
        } else {
            SME_CAMPAIGNS
        }
    }
    /// Whether it is an agency.
    pub fn is_agency(&self) -> bool {
        is_agency(self.n)
    }
}

/// Moves a generated id of tenant `from` to the same row of tenant `to`;
/// any other id is returned unchanged.
pub fn rebase(id_text: &str, from: u64, to: u64) -> Option<Uuid> {
    let (kind, idx) = parse(id_text)?;
    let per = match kind {
        ORG | USER => 1,
        CLIENT => CLIENTS,
        CAMPAIGN => CAMPAIGN_STRIDE,
        OUTPUT => CAMPAIGN_STRIDE * OUTPUT_STRIDE,
        _ => return None,
    };
    let base = from * per;
    if idx < base || idx >= base + per {
        return None;
    }
    Some(id(kind, idx - base + to * per))
}

/// `count` tenants of one kind spread evenly over `orgs` organizations.
pub fn spread(orgs: u64, agencies: bool, count: usize) -> Vec<Tenant> {
    let all: Vec<u64> = (0..orgs).filter(|n| is_agency(*n) == agencies).collect();
    if all.is_empty() {
        return Vec::new();
    }
    let count = count.clamp(1, all.len());
    let step = all.len() as f64 / count as f64;
    (0..count)
        .map(|i| Tenant {
            n: all[((i as f64 * step) as usize).min(all.len() - 1)],
        })
        .collect()
}
