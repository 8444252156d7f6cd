//! A small world of tenants for isolation tests: SME-1, SME-2, AGENCY-1
//! (clients "nike" and "adidas"; an owner, an admin, a strategist, an account
//! manager assigned only to nike, a viewer) and AGENCY-2 (client "puma").
//! SME-1 also has an admin, a strategist and a viewer besides its owner.
//!
//! Organizations, members, clients and campaigns are created through the
//! repositories in tenant transactions, like requests do; content that has
//! no repository yet (outputs, personas, guidelines, API keys, audit rows of
//! every kind) is written by the superuser so every tenant table has rows.

use sea_orm::{ConnectionTrait, DatabaseConnection};
use strata_domain::{
    CampaignId, CampaignName, ClientId, ClientName, OrgId, OrgType, OrganizationName, PersonaId,
    Role, Slug, UserId,
};
use strata_persistence::context::resolve_for;
use strata_persistence::repo::campaigns::{self, NewCampaign};
use strata_persistence::repo::{clients, members, organizations};
use strata_persistence::{AuthTx, Db, TenantTx};

/// One organization of the world.
#[derive(Clone, Debug)]
pub struct Org {
    /// Its id.
    pub id: OrgId,
    /// Its type.
    pub org_type: OrgType,
    /// Its owner.
    pub owner: UserId,
    /// Its campaigns (for agencies, in client order).
    pub campaigns: Vec<CampaignId>,
}

/// The one persona seeded for each SME and each agency client.
#[derive(Clone, Copy, Debug)]
pub struct Personas {
    /// SME-1's.
    pub sme1: PersonaId,
    /// SME-2's.
    pub sme2: PersonaId,
    /// nike's (AGENCY-1).
    pub nike: PersonaId,
    /// adidas's (AGENCY-1).
    pub adidas: PersonaId,
    /// puma's (AGENCY-2).
    pub puma: PersonaId,
}

/// The seeded world.
#[derive(Clone, Debug)]
pub struct World {
    /// First SME.
    pub sme1: Org,
    /// Second SME.
    pub sme2: Org,
    /// First agency.
    pub agency1: Org,
    /// Second agency.
    pub agency2: Org,
    /// AGENCY-1's client "nike".
    pub nike: ClientId,
    /// AGENCY-1's client "adidas".
    pub adidas: ClientId,
    /// AGENCY-2's client "puma".
    pub puma: ClientId,
    /// AGENCY-1's admin.
    pub admin: UserId,
    /// AGENCY-1's strategist.
    pub strategist: UserId,
    /// AGENCY-1's account manager, assigned to nike only.
    pub account_manager: UserId,
    /// AGENCY-1's viewer.
    pub viewer: UserId,
    /// Campaigns of nike.
    pub nike_campaigns: Vec<CampaignId>,
    /// Campaigns of adidas.
    pub adidas_campaigns: Vec<CampaignId>,
    /// SME-1's admin.
    pub sme1_admin: UserId,
    /// SME-1's strategist.
    pub sme1_strategist: UserId,
    /// SME-1's viewer.
    pub sme1_viewer: UserId,
    /// The seeded personas.
    pub personas: Personas,
}

async fn user(db: &Db) -> UserId {
    let id = UserId::generate();
    let tx = AuthTx::for_user(db, id, "seed").await.unwrap();
    strata_persistence::auth::provision_user(&tx, id, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn org(db: &Db, slug: &str, org_type: OrgType) -> (OrgId, UserId) {
    let owner = user(db).await;
    let (created, _) = organizations::create(
        db,
        owner,
        org_type,
        &OrganizationName::parse("name", slug).unwrap(),
        &Slug::parse("slug", slug).unwrap(),
        "seed",
    )
    .await
    .unwrap();
    (created.id, owner)
}

async fn campaign(tx: &TenantTx, name: &str, client: Option<ClientId>) -> CampaignId {
    campaigns::create(
        tx,
        NewCampaign {
            name: CampaignName::parse("name", name).unwrap(),
            client_id: client,
            objective: Some(format!("objective of {name}")),
        },
    )
    .await
    .unwrap()
    .id
}

async fn client(tx: &TenantTx, slug: &str) -> ClientId {
    clients::create(
        tx,
        &ClientName::parse("name", slug).unwrap(),
        &Slug::parse("slug", slug).unwrap(),
    )
    .await
    .unwrap()
    .id
}

impl World {
    /// Seeds the world into `db`; `su` is a superuser connection to the same
    /// database.
    pub async fn seed(db: &Db, su: &DatabaseConnection) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let mut orgs = Vec::new();
        for (slug, t) in [
            ("sme-1", OrgType::Sme),
            ("sme-2", OrgType::Sme),
            ("agency-1", OrgType::Agency),
            ("agency-2", OrgType::Agency),
        ] {
            let (id, owner) = org(db, &format!("{slug}-{tag}"), t).await;
            orgs.push(Org {
                id,
                org_type: t,
                owner,
                campaigns: Vec::new(),
            });
        }
        let (admin, strategist, account_manager, viewer) = (
            user(db).await,
            user(db).await,
            user(db).await,
            user(db).await,
        );
        let (sme1_admin, sme1_strategist, sme1_viewer) =
            (user(db).await, user(db).await, user(db).await);

        // SMEs: two campaigns each.
        for o in orgs.iter_mut().take(2) {
            let ctx = resolve_for(db, o.owner, Some(o.id), "seed").await.unwrap();
            let tx = TenantTx::begin(db, &ctx).await.unwrap();
            o.campaigns.push(campaign(&tx, "first", None).await);
            o.campaigns.push(campaign(&tx, "second", None).await);
            tx.commit().await.unwrap();
        }
        let ctx = resolve_for(db, orgs[0].owner, Some(orgs[0].id), "seed")
            .await
            .unwrap();
        let tx = TenantTx::begin(db, &ctx).await.unwrap();
        for (u, role) in [
            (sme1_admin, Role::Admin),
            (sme1_strategist, Role::Strategist),
            (sme1_viewer, Role::Viewer),
        ] {
            members::add(&tx, u, role, &[]).await.unwrap();
        }
        tx.commit().await.unwrap();

        // AGENCY-1: nike and adidas, members of every role.
        let a1 = &orgs[2];
        let ctx = resolve_for(db, a1.owner, Some(a1.id), "seed")
            .await
            .unwrap();
        let tx = TenantTx::begin(db, &ctx).await.unwrap();
        let nike = client(&tx, "nike").await;
        let adidas = client(&tx, "adidas").await;
        members::add(&tx, admin, Role::Admin, &[]).await.unwrap();
        members::add(&tx, strategist, Role::Strategist, &[])
            .await
            .unwrap();
        members::add(&tx, account_manager, Role::AccountManager, &[nike])
            .await
            .unwrap();
        members::add(&tx, viewer, Role::Viewer, &[]).await.unwrap();
        let nike_campaigns = vec![
            campaign(&tx, "nike one", Some(nike)).await,
            campaign(&tx, "nike two", Some(nike)).await,
        ];
        let adidas_campaigns = vec![
            campaign(&tx, "adidas one", Some(adidas)).await,
            campaign(&tx, "adidas two", Some(adidas)).await,
        ];
        tx.commit().await.unwrap();
        orgs[2].campaigns = nike_campaigns
            .iter()
            .chain(&adidas_campaigns)
            .copied()
            .collect();

        // AGENCY-2: puma.
        let a2 = &orgs[3];
        let ctx = resolve_for(db, a2.owner, Some(a2.id), "seed")
            .await
            .unwrap();
        let tx = TenantTx::begin(db, &ctx).await.unwrap();
        let puma = client(&tx, "puma").await;
        let puma_campaign = campaign(&tx, "puma one", Some(puma)).await;
        tx.commit().await.unwrap();
        orgs[3].campaigns.push(puma_campaign);

        let world = World {
            sme1: orgs[0].clone(),
            sme2: orgs[1].clone(),
            agency1: orgs[2].clone(),
            agency2: orgs[3].clone(),
            nike,
            adidas,
            puma,
            admin,
            strategist,
            account_manager,
            viewer,
            nike_campaigns,
            adidas_campaigns,
            sme1_admin,
            sme1_strategist,
            sme1_viewer,
            personas: Personas {
                sme1: PersonaId::generate(),
                sme2: PersonaId::generate(),
                nike: PersonaId::generate(),
                adidas: PersonaId::generate(),
                puma: PersonaId::generate(),
            },
        };
        world.seed_content(su, puma_campaign).await;
        world
    }

    async fn seed_content(&self, su: &DatabaseConnection, puma_campaign: CampaignId) {
        let mut sql = String::new();
        let p = self.personas;
        for (o, persona) in [(&self.sme1, p.sme1), (&self.sme2, p.sme2)] {
            sql.push_str(&format!(
                "INSERT INTO public.brand_guidelines (org_id, content) VALUES ('{org}', '{{\"voice\": \"warm\"}}');
                 INSERT INTO public.personas (org_id, id, name) VALUES ('{org}', '{persona}', 'Pat');
                 INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status) VALUES ('{org}', gen_random_uuid(), '{c}', 'BUSINESS_STRATEGY', 'SUCCEEDED');
                 INSERT INTO public.api_keys (org_id, org_type, id, name, prefix, key_hash) VALUES ('{org}', 'SME', gen_random_uuid(), 'k', 'strata_x', md5(random()::text));
                 INSERT INTO public.invitations (org_id, id, org_type, email, role, expires_at) VALUES ('{org}', gen_random_uuid(), 'SME', 'invited-' || md5(random()::text) || '@example.com', 'VIEWER', now() + interval '7 days');
                 INSERT INTO public.data_exports (org_id, id, org_type, status, expires_at) VALUES ('{org}', '{export}', 'SME', 'READY', now() + interval '1 day');
                 INSERT INTO public.data_export_chunks (org_id, export_id, seq, org_type, data) VALUES ('{org}', '{export}', 0, 'SME', convert_to('{{}}' || chr(10), 'UTF8'));",
                org = o.id,
                c = o.campaigns[0],
                export = uuid::Uuid::now_v7()
            ));
        }
        for (org, client, camp, persona) in [
            (self.agency1.id, self.nike, self.nike_campaigns[0], p.nike),
            (
                self.agency1.id,
                self.adidas,
                self.adidas_campaigns[0],
                p.adidas,
            ),
            (self.agency2.id, self.puma, puma_campaign, p.puma),
        ] {
            sql.push_str(&format!(
                "INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, content) VALUES ('{org}', gen_random_uuid(), '{client}', 'BRAND_GUIDELINES', '{{\"voice\": \"bold\"}}');
                 INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name) VALUES ('{org}', '{persona}', '{client}', 'PERSONA', 'Sam');
                 INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status) VALUES ('{org}', gen_random_uuid(), '{client}', '{camp}', 'BUSINESS_STRATEGY', 'SUCCEEDED');
                 INSERT INTO public.api_keys (org_id, org_type, id, client_id, client_ids, name, prefix, key_hash) VALUES ('{org}', 'AGENCY', gen_random_uuid(), '{client}', ARRAY['{client}'::uuid], 'k', 'strata_y', md5(random()::text));
                 INSERT INTO public.invitations (org_id, id, org_type, email, role, client_ids, expires_at) VALUES ('{org}', gen_random_uuid(), 'AGENCY', 'invited-' || md5(random()::text) || '@example.com', 'ACCOUNT_MANAGER', ARRAY['{client}'::uuid], now() + interval '7 days');
                 INSERT INTO public.data_exports (org_id, id, org_type, client_id, status, expires_at) VALUES ('{org}', '{export}', 'AGENCY', '{client}', 'READY', now() + interval '1 day');
                 INSERT INTO public.data_export_chunks (org_id, export_id, seq, org_type, data) VALUES ('{org}', '{export}', 0, 'AGENCY', convert_to('{{}}' || chr(10), 'UTF8'));",
                export = uuid::Uuid::now_v7()
            ));
        }
        su.execute_unprepared(&sql).await.unwrap();
    }
}

/// Someone acting in the world, with the campaigns they must see, exactly.
#[derive(Clone, Debug)]
pub struct Principal {
    /// For messages.
    pub name: &'static str,
    /// Who acts.
    pub user: UserId,
    /// Where.
    pub org: OrgId,
    /// Campaigns it must see, exactly.
    pub campaigns: Vec<CampaignId>,
}

impl World {
    /// One principal per tenant and, in AGENCY-1, per kind of client scope.
    pub fn principals(&self) -> Vec<Principal> {
        let w = self;
        let all_agency1: Vec<_> = w.agency1.campaigns.clone();
        vec![
            Principal {
                name: "sme-1 owner",
                user: w.sme1.owner,
                org: w.sme1.id,
                campaigns: w.sme1.campaigns.clone(),
            },
            Principal {
                name: "sme-2 owner",
                user: w.sme2.owner,
                org: w.sme2.id,
                campaigns: w.sme2.campaigns.clone(),
            },
            Principal {
                name: "agency-1 owner",
                user: w.agency1.owner,
                org: w.agency1.id,
                campaigns: all_agency1.clone(),
            },
            Principal {
                name: "agency-1 strategist",
                user: w.strategist,
                org: w.agency1.id,
                campaigns: all_agency1.clone(),
            },
            Principal {
                name: "agency-1 account manager (nike)",
                user: w.account_manager,
                org: w.agency1.id,
                campaigns: w.nike_campaigns.clone(),
            },
            Principal {
                name: "agency-1 viewer",
                user: w.viewer,
                org: w.agency1.id,
                campaigns: all_agency1,
            },
            Principal {
                name: "agency-2 owner",
                user: w.agency2.owner,
                org: w.agency2.id,
                campaigns: w.agency2.campaigns.clone(),
            },
        ]
    }
}

impl World {
    /// The world seeded in `app`'s database, and a superuser connection to
    /// that database.
    pub async fn on(app: &crate::TestApp) -> (World, DatabaseConnection) {
        let su = app.test_db.superuser().await;
        let world = World::seed(&app.db, &su).await;
        (world, su)
    }
}
