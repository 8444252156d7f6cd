//! The isolation and role matrices over real HTTP: every principal of the
//! world reads exactly its own rows and changes only what its role allows;
//! ids of other tenants and clients behave like missing ones, and the
//! database is checked after every refused write.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_domain::{CampaignId, OrgId, UserId};
use strata_tests::scalar;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

struct Principal {
    name: &'static str,
    user: UserId,
    org: OrgId,
    /// Campaigns it must see, exactly.
    campaigns: Vec<CampaignId>,
}

fn principals(w: &World) -> Vec<Principal> {
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

async fn setup() -> (TestApp, World, DatabaseConnection) {
    let app = TestApp::spawn().await;
    let su = app.test_db.superuser().await;
    let world = World::seed(&app.db, &su).await;
    (app, world, su)
}

async fn ok(app: &TestApp, token: &str, q: &str, vars: Value) -> Value {
    let (status, body) = app.graphql(Some(token), q, vars).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{q}: {body}");
    body["data"].clone()
}

fn ids(conn: &Value) -> BTreeSet<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[CampaignId]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

#[tokio::test]
async fn every_principal_reads_exactly_its_own_campaigns_through_every_query() {
    let (app, w, _su) = setup().await;
    let everyone: Vec<CampaignId> = [&w.sme1, &w.sme2, &w.agency1, &w.agency2]
        .iter()
        .flat_map(|o| o.campaigns.clone())
        .collect();
    for p in principals(&w) {
        let token = app.token(p.user, Some(p.org));
        let data = ok(
            &app,
            &token,
            "{ campaigns(first: 100) { totalCount edges { node { id outputs { totalCount edges { node { id campaignId } } } } } } }",
            json!({}),
        )
        .await;
        assert_eq!(ids(&data["campaigns"]), set(&p.campaigns), "{}", p.name);
        assert_eq!(
            data["campaigns"]["totalCount"].as_u64(),
            Some(p.campaigns.len() as u64),
            "{}",
            p.name
        );
        // Outputs hang only under the campaign they belong to.
        for edge in data["campaigns"]["edges"].as_array().unwrap() {
            for out in edge["node"]["outputs"]["edges"].as_array().unwrap() {
                assert_eq!(out["node"]["campaignId"], edge["node"]["id"], "{}", p.name);
            }
        }
        // By id: visible ones resolve, every other one is null.
        for c in &everyone {
            let data = ok(
                &app,
                &token,
                "query($id: ID!) { campaign(id: $id) { id } }",
                json!({ "id": c.to_string() }),
            )
            .await;
            let visible = p.campaigns.contains(c);
            assert_eq!(
                data["campaign"].is_null(),
                !visible,
                "{} campaign {c}",
                p.name
            );
        }
    }
}

#[tokio::test]
async fn clients_and_their_content_are_visible_only_inside_their_scope() {
    let (app, w, _su) = setup().await;
    let cases = [
        (w.agency1.owner, w.agency1.id, vec!["nike", "adidas"]),
        (w.strategist, w.agency1.id, vec!["nike", "adidas"]),
        (w.account_manager, w.agency1.id, vec!["nike"]),
        (w.viewer, w.agency1.id, vec!["nike", "adidas"]),
        (w.agency2.owner, w.agency2.id, vec!["puma"]),
        (w.sme1.owner, w.sme1.id, vec![]),
    ];
    let all = [("nike", w.nike), ("adidas", w.adidas), ("puma", w.puma)];
    for (user, org, visible) in cases {
        let token = app.token(user, Some(org));
        let data = ok(
            &app,
            &token,
            "{ clients { totalCount edges { node { slug personas { totalCount } brandGuidelines { content } } } } personas { totalCount } }",
            json!({}),
        )
        .await;
        let slugs: BTreeSet<String> = data["clients"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["slug"].as_str().unwrap().to_owned())
            .collect();
        let expected: BTreeSet<String> = visible.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(slugs, expected, "{user}");
        for e in data["clients"]["edges"].as_array().unwrap() {
            assert_eq!(e["node"]["personas"]["totalCount"], 1);
            assert_eq!(e["node"]["brandGuidelines"]["content"]["voice"], "bold");
        }
        // SMEs see their own single persona; agencies one per visible client.
        let personas = data["personas"]["totalCount"].as_u64().unwrap();
        assert_eq!(personas, visible.len().max(1) as u64, "{user}");

        for (slug, id) in all {
            let seen = visible.contains(&slug);
            let by_id = ok(
                &app,
                &token,
                "query($id: ID!) { client(id: $id) { id } brandGuidelines(clientId: $id) { content } personas(clientId: $id) { totalCount } campaigns(clientId: $id) { totalCount edges { node { id } } } }",
                json!({ "id": id.to_string() }),
            )
            .await;
            assert_eq!(by_id["client"].is_null(), !seen, "{user} {slug}");
            assert_eq!(by_id["brandGuidelines"].is_null(), !seen, "{user} {slug}");
            if !seen {
                assert_eq!(by_id["personas"]["totalCount"], 0, "{user} {slug}");
                assert_eq!(by_id["campaigns"]["totalCount"], 0, "{user} {slug}");
            }
            let by_slug = ok(
                &app,
                &token,
                "query($s: String!) { client(slug: $s) { id } }",
                json!({ "s": slug }),
            )
            .await;
            assert_eq!(by_slug["client"].is_null(), !seen, "{user} {slug} by slug");
        }
    }
}

#[tokio::test]
async fn writes_with_another_tenants_ids_are_not_found_and_change_nothing() {
    let (app, w, su) = setup().await;
    let owner1 = app.token(w.agency1.owner, Some(w.agency1.id));
    let sme1 = app.token(w.sme1.owner, Some(w.sme1.id));
    let am = app.token(w.account_manager, Some(w.agency1.id));
    let puma_campaign = w.agency2.campaigns[0];
    let sme2_campaign = w.sme2.campaigns[0];
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
    let campaigns_before = scalar(
        &su,
        "SELECT (SELECT count(*) FROM public.campaigns) + (SELECT count(*) FROM tenant_b.campaigns)",
    )
    .await;

    let attempts: Vec<(&str, &str, String, Value)> = vec![
        (
            "agency-1 owner updates puma's campaign",
            "mutation($id: ID!) { updateCampaign(input: {id: $id, name: \"hijacked\"}) { id } }",
            owner1.clone(),
            json!({ "id": puma_campaign.to_string() }),
        ),
        (
            "sme-1 owner updates sme-2's campaign",
            "mutation($id: ID!) { updateCampaign(input: {id: $id, name: \"hijacked\"}) { id } }",
            sme1.clone(),
            json!({ "id": sme2_campaign.to_string() }),
        ),
        (
            "sme-1 owner deletes sme-2's campaign",
            "mutation($id: ID!) { deleteCampaign(id: $id) }",
            sme1.clone(),
            json!({ "id": sme2_campaign.to_string() }),
        ),
        (
            "agency-1 owner deletes puma's campaign",
            "mutation($id: ID!) { deleteCampaign(id: $id) }",
            owner1.clone(),
            json!({ "id": puma_campaign.to_string() }),
        ),
        (
            "agency-1 owner creates a campaign for puma",
            "mutation($c: ID!) { createCampaign(input: {name: \"x\", clientId: $c}) { id } }",
            owner1.clone(),
            json!({ "c": w.puma.to_string() }),
        ),
        (
            "account manager creates a campaign for adidas",
            "mutation($c: ID!) { createCampaign(input: {name: \"x\", clientId: $c}) { id } }",
            am.clone(),
            json!({ "c": w.adidas.to_string() }),
        ),
        (
            "account manager renames an adidas campaign",
            "mutation($id: ID!) { updateCampaign(input: {id: $id, name: \"hijacked\"}) { id } }",
            am.clone(),
            json!({ "id": w.adidas_campaigns[0].to_string() }),
        ),
        (
            "agency-1 owner renames puma",
            "mutation($id: ID!) { updateClient(input: {id: $id, name: \"hijacked\"}) { id } }",
            owner1.clone(),
            json!({ "id": w.puma.to_string() }),
        ),
        (
            "agency-1 owner archives puma",
            "mutation($id: ID!) { archiveClient(id: $id) { id } }",
            owner1.clone(),
            json!({ "id": w.puma.to_string() }),
        ),
        (
            "agency-1 owner saves puma's guidelines",
            "mutation($c: ID!) { saveBrandGuidelines(input: {clientId: $c, content: {voice: \"hijacked\"}}) { updatedAt } }",
            owner1.clone(),
            json!({ "c": w.puma.to_string() }),
        ),
        (
            "account manager saves adidas's guidelines",
            "mutation($c: ID!) { saveBrandGuidelines(input: {clientId: $c, content: {voice: \"hijacked\"}}) { updatedAt } }",
            am.clone(),
            json!({ "c": w.adidas.to_string() }),
        ),
        (
            "agency-1 owner adds a persona to puma",
            "mutation($c: ID!) { createPersona(input: {clientId: $c, name: \"x\"}) { id } }",
            owner1.clone(),
            json!({ "c": w.puma.to_string() }),
        ),
        (
            "agency-1 owner assigns puma to a member",
            "mutation($u: ID!, $c: ID!) { updateMember(input: {userId: $u, role: ACCOUNT_MANAGER, clientIds: [$c]}) { userId } }",
            owner1.clone(),
            json!({ "u": w.account_manager.to_string(), "c": w.puma.to_string() }),
        ),
        (
            "agency-1 owner removes agency-2's owner",
            "mutation($u: ID!) { removeMember(userId: $u) }",
            owner1.clone(),
            json!({ "u": w.agency2.owner.to_string() }),
        ),
    ];
    for (what, q, token, vars) in attempts {
        let (status, body) = app.graphql(Some(&token), q, vars).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{what}: {body}");
        assert!(body["data"].is_null(), "{what}: {body}");
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before,
        "refused writes leave no audit rows"
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT (SELECT count(*) FROM public.campaigns) + (SELECT count(*) FROM tenant_b.campaigns)"
        )
        .await,
        campaigns_before
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM (SELECT name FROM public.campaigns UNION ALL SELECT name FROM tenant_b.campaigns UNION ALL SELECT name FROM tenant_b.workspace_entities) n WHERE name = 'hijacked'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM tenant_b.entity_data WHERE content->>'voice' = 'hijacked' OR (kind = 'PERSONA' AND name = 'x')"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM tenant_b.workspace_entities WHERE id = '{}' AND archived_at IS NULL",
                w.puma
            )
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.memberships WHERE user_id = '{}'",
                w.agency2.owner
            )
        )
        .await,
        1
    );
}

/// Whether `role` may run each mutation, as (mutation, allowed) rows.
struct RoleCase {
    role: &'static str,
    user: UserId,
    admin: bool,
    content: bool,
}

#[tokio::test]
async fn each_role_may_run_exactly_the_mutations_its_role_allows() {
    let (app, w, su) = setup().await;
    let roles = [
        RoleCase {
            role: "OWNER",
            user: w.agency1.owner,
            admin: true,
            content: true,
        },
        RoleCase {
            role: "STRATEGIST",
            user: w.strategist,
            admin: false,
            content: true,
        },
        RoleCase {
            role: "ACCOUNT_MANAGER",
            user: w.account_manager,
            admin: false,
            content: true,
        },
        RoleCase {
            role: "VIEWER",
            user: w.viewer,
            admin: false,
            content: false,
        },
    ];
    for (i, r) in roles.iter().enumerate() {
        let token = app.token(r.user, Some(w.agency1.id));
        let newcomer = UserId::generate();
        // Newcomers need a user row before they can be members.
        su.execute_unprepared(&format!(
            "INSERT INTO public.users (id) VALUES ('{newcomer}')"
        ))
        .await
        .unwrap();
        let nike = w.nike.to_string();
        let campaign = w.nike_campaigns[0].to_string();
        let mutations: Vec<(&str, String, Value, bool)> = vec![
            (
                "createCampaign",
                "mutation($c: ID!) { createCampaign(input: {name: \"role test\", clientId: $c}) { id } }".into(),
                json!({ "c": nike }),
                r.content,
            ),
            (
                "updateCampaign",
                "mutation($id: ID!) { updateCampaign(input: {id: $id, status: ACTIVE}) { id status } }".into(),
                json!({ "id": campaign }),
                r.content,
            ),
            (
                "saveBrandGuidelines",
                "mutation($c: ID!) { saveBrandGuidelines(input: {clientId: $c, content: {voice: \"calm\"}}) { updatedAt } }".into(),
                json!({ "c": nike }),
                r.content,
            ),
            (
                "createPersona",
                "mutation($c: ID!) { createPersona(input: {clientId: $c, name: \"Role Test\"}) { id } }".into(),
                json!({ "c": nike }),
                r.content,
            ),
            (
                "createClient",
                format!("mutation {{ createClient(input: {{name: \"c{i}\", slug: \"role-client-{i}\"}}) {{ id }} }}"),
                json!({}),
                r.admin,
            ),
            (
                "updateClient",
                "mutation($id: ID!) { updateClient(input: {id: $id, name: \"Nike Inc\"}) { id } }".into(),
                json!({ "id": nike }),
                r.admin,
            ),
            (
                "addMember",
                "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { userId } }".into(),
                json!({ "u": newcomer.to_string() }),
                r.admin,
            ),
            (
                "updateOrganization",
                "mutation { updateOrganization(input: {branding: {primaryColor: \"#112233\"}}) { settings } }".into(),
                json!({}),
                r.admin,
            ),
        ];
        for (name, q, vars, allowed) in mutations {
            let before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
            let (status, body) = app.graphql(Some(&token), &q, vars).await;
            assert_eq!(status, 200, "{} {name}: {body}", r.role);
            let after = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
            if allowed {
                assert!(body.get("errors").is_none(), "{} {name}: {body}", r.role);
                assert_eq!(after, before + 1, "{} {name} writes one audit row", r.role);
            } else {
                assert_eq!(
                    error_code(&body),
                    Some("FORBIDDEN"),
                    "{} {name}: {body}",
                    r.role
                );
                assert_eq!(after, before, "{} {name} writes nothing", r.role);
            }
        }
        // Reading the audit log and the members is for administrators.
        for q in [
            "{ auditLog { totalCount } }",
            "{ members { totalCount edges { node { userId } } } }",
        ] {
            let (_, body) = app.graphql(Some(&token), q, json!({})).await;
            if r.admin {
                assert!(body.get("errors").is_none(), "{} {q}: {body}", r.role);
            } else {
                assert_eq!(
                    error_code(&body),
                    Some("FORBIDDEN"),
                    "{} {q}: {body}",
                    r.role
                );
            }
        }
    }
    // The viewer's refusals are backed by the database: nothing it tried
    // exists, and the row-level write policy holds even for direct SQL as
    // the runtime role (see the isolation tests).
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM tenant_b.campaigns WHERE name = 'role test'"
        )
        .await,
        3
    );
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_and_the_request_id() {
    let (app, w, _su) = setup().await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let created = ok(
        &app,
        &token,
        "mutation { createCampaign(input: {name: \"Audited\"}) { id } }",
        json!({}),
    )
    .await;
    let id = created["createCampaign"]["id"].as_str().unwrap().to_owned();
    let log = ok(
        &app,
        &token,
        "{ auditLog(first: 1) { edges { node { operation targetType targetId actorUserId requestId } } } }",
        json!({}),
    )
    .await;
    let entry = &log["auditLog"]["edges"][0]["node"];
    assert_eq!(entry["operation"], "createCampaign");
    assert_eq!(entry["targetType"], "Campaign");
    assert_eq!(entry["targetId"], id.as_str());
    assert_eq!(entry["actorUserId"], w.sme1.owner.to_string().as_str());
    assert!(entry["requestId"].as_str().is_some_and(|r| !r.is_empty()));
    // Another tenant's owner sees none of it.
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    let theirs = ok(
        &app,
        &other,
        "{ auditLog(first: 100) { edges { node { targetId } } } }",
        json!({}),
    )
    .await;
    assert!(
        theirs["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["targetId"] != id.as_str())
    );
}

#[tokio::test]
async fn two_hundred_concurrent_requests_from_different_tenants_see_only_their_own_rows() {
    let (app, w, _su) = setup().await;
    let principals = principals(&w);
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let p = &principals[i % principals.len()];
        let token = app.token(p.user, Some(p.org));
        let expected = set(&p.campaigns);
        let app = app.clone();
        let name = p.name;
        tasks.push(tokio::spawn(async move {
            let (status, body) = app
                .graphql(
                    Some(&token),
                    "{ campaigns(first: 100) { edges { node { id client { id } outputs(first: 10) { edges { node { campaignId } } } } } } }",
                    json!({}),
                )
                .await;
            assert_eq!(status, 200, "{name}: {body}");
            assert!(body.get("errors").is_none(), "{name}: {body}");
            assert_eq!(ids(&body["data"]["campaigns"]), expected, "{name}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn bad_input_names_the_field_and_database_errors_reveal_nothing() {
    let (app, w, su) = setup().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "duplicate client slug",
            owner.clone(),
            json!({ "q": "mutation { createClient(input: {name: \"Nike again\", slug: \"nike\"}) { id } }" }),
            "slug",
        ),
        (
            "clientId for an SME",
            sme.clone(),
            json!({ "q": format!("mutation {{ createCampaign(input: {{name: \"x\", clientId: \"{}\"}}) {{ id }} }}", w.nike) }),
            "clientId",
        ),
        (
            "no clientId for an agency",
            owner.clone(),
            json!({ "q": "mutation { createCampaign(input: {name: \"x\"}) { id } }" }),
            "clientId",
        ),
        (
            "blank campaign name",
            sme.clone(),
            json!({ "q": "mutation { createCampaign(input: {name: \"   \"}) { id } }" }),
            "name",
        ),
        (
            "guidelines that are not an object",
            sme.clone(),
            json!({ "q": "mutation { saveBrandGuidelines(input: {content: [1, 2]}) { updatedAt } }" }),
            "content",
        ),
        (
            "a malformed id",
            sme.clone(),
            json!({ "q": "mutation { updateCampaign(input: {id: \"not-a-uuid\", name: \"x\"}) { id } }" }),
            "id",
        ),
        (
            "a bad branding colour",
            sme.clone(),
            json!({ "q": "mutation { updateOrganization(input: {branding: {primaryColor: \"red\"}}) { id } }" }),
            "branding.primaryColor",
        ),
        (
            "demoting the last owner",
            sme.clone(),
            json!({ "q": format!("mutation {{ updateMember(input: {{userId: \"{}\", role: VIEWER}}) {{ role }} }}", w.sme1.owner) }),
            "role",
        ),
    ];
    let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;
    for (what, token, q, field) in cases {
        let (status, body) = app
            .graphql(Some(&token), q["q"].as_str().unwrap(), json!({}))
            .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{what}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{what}: {body}"
        );
        let text = body.to_string();
        for leak in [
            "SQLSTATE",
            "constraint",
            "violates",
            "_key",
            "duplicate key",
            "23505",
        ] {
            assert!(!text.contains(leak), "{what} leaks {leak}: {text}");
        }
    }
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.audit_log").await,
        audit_before
    );
}

#[tokio::test]
async fn content_round_trips_for_both_tenant_types_through_the_same_api() {
    let (app, w, su) = setup().await;
    for (token, client) in [
        (app.token(w.sme1.owner, Some(w.sme1.id)), None),
        (
            app.token(w.strategist, Some(w.agency1.id)),
            Some(w.adidas.to_string()),
        ),
    ] {
        let vars = json!({ "c": client });
        let saved = ok(
            &app,
            &token,
            "mutation($c: ID) { saveBrandGuidelines(input: {clientId: $c, content: {voice: \"playful\", colors: [\"#ff0000\"]}}) { clientId content } }",
            vars.clone(),
        )
        .await;
        assert_eq!(saved["saveBrandGuidelines"]["content"]["voice"], "playful");
        let persona = ok(
            &app,
            &token,
            "mutation($c: ID) { createPersona(input: {clientId: $c, name: \"Runner\", description: \"likes mornings\", attributes: {age: \"25-34\"}}) { id name description attributes } }",
            vars.clone(),
        )
        .await;
        let pid = persona["createPersona"]["id"].as_str().unwrap().to_owned();
        assert_eq!(persona["createPersona"]["attributes"]["age"], "25-34");
        let updated = ok(
            &app,
            &token,
            "mutation($id: ID!) { updatePersona(input: {id: $id, description: \"\"}) { name description } }",
            json!({ "id": pid }),
        )
        .await;
        assert_eq!(updated["updatePersona"]["name"], "Runner");
        assert!(updated["updatePersona"]["description"].is_null());
        let read = ok(
            &app,
            &token,
            "query($c: ID) { brandGuidelines(clientId: $c) { content } personas(clientId: $c) { totalCount } }",
            vars.clone(),
        )
        .await;
        assert_eq!(read["brandGuidelines"]["content"]["voice"], "playful");
        assert_eq!(read["personas"]["totalCount"], 2);
        ok(
            &app,
            &token,
            "mutation($id: ID!) { deletePersona(id: $id) }",
            json!({ "id": pid }),
        )
        .await;
        let gone = ok(
            &app,
            &token,
            "query($id: ID!) { persona(id: $id) { id } }",
            json!({ "id": pid }),
        )
        .await;
        assert!(gone["persona"].is_null());
    }
    // The agency's guidelines went to tenant_b, the SME's to public.
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM tenant_b.entity_data WHERE client_id = '{}' AND kind = 'BRAND_GUIDELINES' AND content->>'voice' = 'playful'",
                w.adidas
            )
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.brand_guidelines WHERE org_id = '{}' AND content->>'voice' = 'playful'",
                w.sme1.id
            )
        )
        .await,
        1
    );
}

#[tokio::test]
async fn removing_a_member_deletes_the_membership_and_an_archived_client_stays_readable() {
    let (app, w, su) = setup().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let archived = ok(
        &app,
        &owner,
        "mutation($id: ID!) { archiveClient(id: $id) { archived } }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(archived["archiveClient"]["archived"], true);
    let read = ok(
        &app,
        &owner,
        "query($id: ID!) { client(id: $id) { archived campaigns { totalCount } } }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(read["client"]["archived"], true);
    assert_eq!(read["client"]["campaigns"]["totalCount"], 2);
    ok(
        &app,
        &owner,
        "mutation($u: ID!) { removeMember(userId: $u) }",
        json!({ "u": w.viewer.to_string() }),
    )
    .await;
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM public.memberships WHERE user_id = '{}'",
                w.viewer
            )
        )
        .await,
        0
    );
}

#[tokio::test]
async fn statements_per_request_do_not_grow_with_the_page_size() {
    let (app, w, su) = setup().await;
    // Enough nike campaigns, each with outputs, to fill a page of 100.
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name, created_at)
           SELECT '{org}', gen_random_uuid(), '{nike}', 'bulk ' || i, now() - i * interval '1 minute'
           FROM generate_series(1, 120) AS i;
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, output, created_at)
           SELECT c.org_id, gen_random_uuid(), c.client_id, c.id, 'BRAND_VOICE', 'SUCCEEDED',
                  '{{\"version\": 1}}', now() - j * interval '1 second'
           FROM tenant_b.campaigns c, generate_series(1, 12) AS j
           WHERE c.org_id = '{org}' AND c.client_id = '{nike}';",
        org = w.agency1.id,
        nike = w.nike
    ))
    .await
    .unwrap();
    let schema = strata_graphql::schema(&strata_graphql::Limits::default());
    let query = "query($c: ID!, $n: Int!) { campaigns(clientId: $c, first: $n) { edges { node { id name client { id name } outputs(first: 10) { edges { node { id content } } } } } } }";
    let mut counts = Vec::new();
    for first in [5, 100] {
        let resolved = strata_persistence::context::resolve_user(
            &app.db,
            w.agency1.owner,
            None,
            Some(w.agency1.id),
            "statements",
        )
        .await
        .unwrap();
        let rs =
            strata_graphql::RequestState::for_user(app.db.clone(), resolved, "statements".into());
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(
                json!({ "c": w.nike.to_string(), "n": first }),
            ))
            .data(rs.clone());
        let resp = schema.execute(request).await;
        assert!(resp.errors.is_empty(), "{:?}", resp.errors);
        let data = resp.data.into_json().unwrap();
        let edges = data["campaigns"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), first);
        for e in edges {
            assert_eq!(e["node"]["outputs"]["edges"].as_array().unwrap().len(), 10);
        }
        rs.finish().await.unwrap();
        counts.push(rs.statements());
    }
    assert_eq!(counts[0], counts[1], "statements for 5 vs 100 campaigns");
    // The context, the campaigns, their clients and their outputs.
    assert!(counts[1] <= 4, "{} statements", counts[1]);
}
