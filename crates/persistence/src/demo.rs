//! Demo tenants for `strata serve --demo`: two SMEs and two agencies with two
//! clients each, a member of every role, a few campaigns. Seeding is
//! idempotent (ids derive from names) and goes through the same tenant
//! transactions and repositories as requests do.

use strata_domain::{
    CampaignName, ClientId, ClientName, DomainError, OrgId, OrgType, OrganizationName, Role, Slug,
    UserId,
};
use uuid::Uuid;

use crate::auth;
use crate::context::resolve_for;
use crate::db::Db;
use crate::repo::campaigns::{self, CampaignFilter, NewCampaign};
use crate::repo::{clients, members, organizations};
use crate::tx::{AuthTx, TenantTx};

/// A seeded user, for printing a token.
#[derive(Clone, Debug)]
pub struct DemoUser {
    /// Organization slug and role, e.g. `agency-one/ACCOUNT_MANAGER`.
    pub label: String,
    /// The user.
    pub user_id: UserId,
    /// E-mail.
    pub email: String,
    /// Their organization.
    pub org_id: OrgId,
    /// Their role.
    pub role: Role,
}

const NAMESPACE: Uuid = Uuid::from_u128(0x5f1a_7a00_0000_4000_8000_5354_5241_5441);

fn demo_id(kind: &str, name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, format!("{kind}:{name}").as_bytes())
}

struct DemoOrg {
    slug: &'static str,
    name: &'static str,
    org_type: OrgType,
    clients: &'static [(&'static str, &'static str)],
}

const ORGS: &[DemoOrg] = &[
    DemoOrg {
        slug: "sme-one",
        name: "Bloom Bakery",
        org_type: OrgType::Sme,
        clients: &[],
    },
    DemoOrg {
        slug: "sme-two",
        name: "Northwind Cycles",
        org_type: OrgType::Sme,
        clients: &[],
    },
    DemoOrg {
        slug: "agency-one",
        name: "Brightside Agency",
        org_type: OrgType::Agency,
        clients: &[("nike", "Nike"), ("adidas", "Adidas")],
    },
    DemoOrg {
        slug: "agency-two",
        name: "Copperleaf Agency",
        org_type: OrgType::Agency,
        clients: &[("puma", "Puma"), ("reebok", "Reebok")],
    },
];

fn parse<T>(r: Result<T, strata_domain::ValidationError>) -> Result<T, DomainError> {
    r.map_err(DomainError::from)
}

/// Seeds the demo tenants (if absent) and returns their users.
pub async fn seed(db: &Db) -> Result<Vec<DemoUser>, DomainError> {
    let mut users = Vec::new();
    for org in ORGS {
        let org_id = OrgId::from_uuid(demo_id("org", org.slug));
        let roles: &[Role] = match org.org_type {
            OrgType::Sme => &[Role::Owner, Role::Admin, Role::Strategist, Role::Viewer],
            OrgType::Agency => &Role::ALL,
        };
        let mut org_users = Vec::new();
        for role in roles {
            let name = role.as_str().to_ascii_lowercase().replace('_', "-");
            let email = format!("{name}@{}.example", org.slug);
            let user_id = UserId::from_uuid(demo_id("user", &email));
            let tx = AuthTx::for_user(db, user_id, "demo-seed").await?;
            auth::provision_user(&tx, user_id, Some(&email)).await?;
            tx.commit().await?;
            org_users.push(DemoUser {
                label: format!("{}/{}", org.slug, role.as_str()),
                user_id,
                email,
                org_id,
                role: *role,
            });
        }
        let owner = org_users[0].user_id;
        // The organization and its owner come first, in one transaction; the
        // rest (clients, members, campaigns) in a second one. The owner's
        // membership says whether the first happened, a campaign whether the
        // second did, so a seeding cut short part-way resumes where it
        // stopped and a finished one is left alone.
        let tx = AuthTx::for_user(db, owner, "demo-seed").await?;
        let existing = auth::memberships(&tx, owner).await?;
        tx.commit().await?;
        if !existing.iter().any(|m| m.org_id == org_id) {
            organizations::create_with_id(
                db,
                owner,
                org_id,
                org.org_type,
                &parse(OrganizationName::parse("name", org.name))?,
                &parse(Slug::parse("slug", org.slug))?,
                "demo-seed",
            )
            .await?;
        }

        let ctx = resolve_for(db, owner, Some(org_id), "demo-seed").await?;
        let tx = TenantTx::begin(db, &ctx).await?;
        if campaigns::count(&tx, &CampaignFilter::default()).await? > 0 {
            tx.commit().await?;
            users.extend(org_users);
            continue;
        }
        let mut client_ids = Vec::new();
        for (slug, name) in org.clients {
            let c = clients::create(
                &tx,
                &parse(ClientName::parse("name", name))?,
                &parse(Slug::parse("slug", slug))?,
            )
            .await?;
            client_ids.push(c.id);
        }
        for u in org_users.iter().skip(1) {
            let assigned: Vec<ClientId> = if u.role == Role::AccountManager {
                client_ids.first().copied().into_iter().collect()
            } else {
                Vec::new()
            };
            members::add(&tx, u.user_id, u.role, &assigned).await?;
        }
        let targets: Vec<Option<ClientId>> = if client_ids.is_empty() {
            vec![None]
        } else {
            client_ids.iter().copied().map(Some).collect()
        };
        for client in targets {
            for (name, objective) in [
                (
                    "Spring launch",
                    "Introduce the new range to first-time buyers",
                ),
                ("Loyalty push", "Bring lapsed customers back within 90 days"),
            ] {
                let label = match client {
                    Some(c) => {
                        let slug = org
                            .clients
                            .iter()
                            .zip(&client_ids)
                            .find(|(_, id)| **id == c)
                            .map(|((s, _), _)| *s)
                            .unwrap_or("client");
                        format!("{name} ({slug})")
                    }
                    None => name.to_owned(),
                };
                campaigns::create(
                    &tx,
                    NewCampaign {
                        name: parse(CampaignName::parse("name", &label))?,
                        client_id: client,
                        objective: Some(objective.to_owned()),
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
        users.extend(org_users);
    }
    Ok(users)
}
