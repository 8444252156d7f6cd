//! The isolation and role matrices over real HTTP: every principal of the
//! world reads exactly its own rows and changes only what its role allows;
//! ids of other tenants and clients behave like missing ones, and the
//! database is checked after every refused write.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_domain::{CampaignId, UserId};
use strata_tests::scalar;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};

async fn setup() -> (TestApp, World, DatabaseConnection) {
    let app = TestApp::spawn().await;
    let (world, su) = World::on(&app).await;
    (app, world, su)
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
    for p in w.principals() {
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
        // Through `node` and `nodes`: the same.
        let all: Vec<String> = everyone.iter().map(ToString::to_string).collect();
        let data = ok(
            &app,
            &token,
            "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Campaign { id } } }",
            json!({ "ids": all }),
        )
        .await;
        for (c, node) in everyone.iter().zip(data["nodes"].as_array().unwrap()) {
            assert_eq!(
                node.is_null(),
                !p.campaigns.contains(c),
                "{} node {c}",
                p.name
            );
        }
        for c in everyone.iter().filter(|c| !p.campaigns.contains(c)) {
            let data = ok(
                &app,
                &token,
                "query($id: ID!) { node(id: $id) { id } }",
                json!({ "id": c.to_string() }),
            )
            .await;
            assert!(data["node"].is_null(), "{} node {c}", p.name);
        }
    }
}

#[tokio::test]
async fn every_principal_lists_exactly_its_own_runs_through_agent_runs() {
    let (app, w, su) = setup().await;
    // A failed run beside the seeded successes, in every organization.
    su.execute_unprepared(
        "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status)
           SELECT org_id, gen_random_uuid(), id, 'BRAND_VOICE', 'FAILED' FROM public.campaigns;
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status)
           SELECT org_id, gen_random_uuid(), client_id, id, 'BRAND_VOICE', 'FAILED' FROM tenant_b.campaigns",
    )
    .await
    .unwrap();
    let everyone: Vec<CampaignId> = [&w.sme1, &w.sme2, &w.agency1, &w.agency2]
        .iter()
        .flat_map(|o| o.campaigns.clone())
        .collect();
    let list = "query($f: AgentRunFilter) { agentRuns(first: 100, filter: $f) { totalCount nodes { id campaignId status agent } } }";
    let listed = |d: &Value| -> BTreeSet<String> {
        d["agentRuns"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for p in w.principals() {
        let token = app.token(p.user, Some(p.org));
        let campaigns: Vec<String> = p.campaigns.iter().map(|c| format!("'{c}'")).collect();
        let expected: BTreeSet<String> = strata_tests::texts(
            &su,
            &format!(
                "SELECT id::text FROM public.agent_outputs WHERE campaign_id IN ({0})
                 UNION ALL SELECT id::text FROM tenant_b.outputs WHERE campaign_id IN ({0})",
                campaigns.join(", ")
            ),
        )
        .await
        .into_iter()
        .collect();
        assert!(expected.len() >= 2, "{}", p.name);
        let all = ok(&app, &token, list, json!({})).await;
        assert_eq!(listed(&all), expected, "{}", p.name);
        assert_eq!(
            all["agentRuns"]["totalCount"].as_u64(),
            Some(expected.len() as u64),
            "{}",
            p.name
        );
        // Filters narrow what the caller sees, never widen it.
        let failed = ok(
            &app,
            &token,
            list,
            json!({ "f": { "status": ["FAILED"], "agent": ["BRAND_VOICE"] } }),
        )
        .await;
        let failed_ids = listed(&failed);
        assert!(
            !failed_ids.is_empty() && failed_ids.is_subset(&expected),
            "{}",
            p.name
        );
        assert!(
            failed["agentRuns"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["status"] == "FAILED" && n["agent"] == "BRAND_VOICE")
        );
        for c in &everyone {
            let one = ok(
                &app,
                &token,
                list,
                json!({ "f": { "campaignId": c.to_string() } }),
            )
            .await;
            let ids = listed(&one);
            if p.campaigns.contains(c) {
                assert!(
                    !ids.is_empty() && ids.is_subset(&expected),
                    "{} {c}",
                    p.name
                );
            } else {
                assert!(
                    ids.is_empty(),
                    "{} sees runs of campaign {c}: {one}",
                    p.name
                );
                assert_eq!(one["agentRuns"]["totalCount"], 0, "{}", p.name);
            }
        }
        for client in [w.nike, w.adidas, w.puma] {
            let one = ok(
                &app,
                &token,
                list,
                json!({ "f": { "clientId": client.to_string() } }),
            )
            .await;
            assert!(listed(&one).is_subset(&expected), "{} {client}", p.name);
        }
        let future = ok(
            &app,
            &token,
            list,
            json!({ "f": { "createdAfter": "2999-01-01T00:00:00Z" } }),
        )
        .await;
        assert!(listed(&future).is_empty());
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

/// Tables a refused write must leave exactly as they were, each as one
/// digest of its rows, so a failure names the table that changed.
const WATCHED: &[&str] = &[
    "public.personas",
    "tenant_b.entity_data",
    "tenant_b.client_assignments",
    "public.memberships",
    "public.audit_log",
    "tenant_b.workspace_entities",
    "public.campaigns",
    "tenant_b.campaigns",
    "public.users",
];

async fn digests(su: &DatabaseConnection) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for table in WATCHED {
        let digest = strata_tests::text(
            su,
            &format!(
                "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
            ),
        )
        .await
        .unwrap_or_default();
        out.push((*table, digest));
    }
    out
}

/// An attempt with another tenant's (or client's) ids, and the same
/// operation with ids that exist nowhere: both must answer alike.
struct Foreign {
    what: String,
    token: String,
    query: &'static str,
    foreign: Value,
    missing: Value,
}

/// The response with its request-specific parts (none today) removed, for
/// comparing a foreign id's answer with a missing one's.
fn shape(body: &Value) -> Value {
    json!({
        "data": body["data"],
        "codes": body["errors"].as_array().map(|es| es.iter().map(|e| e["extensions"]["code"].clone()).collect::<Vec<_>>()),
        "messages": body["errors"].as_array().map(|es| es.iter().map(|e| e["message"].clone()).collect::<Vec<_>>()),
    })
}

#[tokio::test]
async fn persona_member_and_client_writes_with_foreign_ids_are_not_found_and_change_nothing() {
    let (app, w, su) = setup().await;
    let p = w.personas;
    // Archived clients, so that a restore that got through would show.
    su.execute_unprepared(&format!(
        "UPDATE tenant_b.workspace_entities SET archived_at = now() WHERE id IN ('{}', '{}')",
        w.puma, w.adidas
    ))
    .await
    .unwrap();
    // A user who exists but belongs nowhere, for addMember.
    let newcomer = UserId::generate();
    su.execute_unprepared(&format!(
        "INSERT INTO public.users (id) VALUES ('{newcomer}')"
    ))
    .await
    .unwrap();
    let owner1 = app.token(w.agency1.owner, Some(w.agency1.id));
    let admin1 = app.token(w.admin, Some(w.agency1.id));
    let owner2 = app.token(w.agency2.owner, Some(w.agency2.id));
    let sme1 = app.token(w.sme1.owner, Some(w.sme1.id));
    let sme2 = app.token(w.sme2.owner, Some(w.sme2.id));
    let am = app.token(w.account_manager, Some(w.agency1.id));
    let missing = || uuid::Uuid::new_v4().to_string();
    let id = |v: String| json!({ "id": v });

    // Reads: another tenant's persona is null, exactly like a missing one.
    let read = "query($id: ID!) { persona(id: $id) { id name } }";
    for (what, token, foreign) in [
        ("sme-1 reads sme-2's persona", &sme1, p.sme2),
        ("sme-2 reads sme-1's persona", &sme2, p.sme1),
        ("sme-1 reads nike's persona", &sme1, p.nike),
        ("agency-1 owner reads puma's persona", &owner1, p.puma),
        ("agency-1 owner reads sme-1's persona", &owner1, p.sme1),
        ("agency-2 owner reads nike's persona", &owner2, p.nike),
        ("account manager reads adidas's persona", &am, p.adidas),
    ] {
        let (status, body) = app
            .graphql(Some(token), read, id(foreign.to_string()))
            .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert!(body.get("errors").is_none(), "{what}: {body}");
        assert!(body["data"]["persona"].is_null(), "{what}: {body}");
        let (_, none) = app.graphql(Some(token), read, id(missing())).await;
        assert_eq!(shape(&body), shape(&none), "{what}");
    }
    // The same principals do see their own.
    for (token, own) in [(&sme1, p.sme1), (&owner1, p.adidas), (&am, p.nike)] {
        let data = ok(&app, token, read, id(own.to_string())).await;
        assert_eq!(data["persona"]["id"], own.to_string());
    }

    let update_persona =
        "mutation($id: ID!) { updatePersona(input: {id: $id, name: \"hijacked\"}) { id } }";
    let delete_persona = "mutation($id: ID!) { deletePersona(id: $id) }";
    let restore = "mutation($id: ID!) { restoreClient(id: $id) { id archived } }";
    let add_am = "mutation($u: ID!, $c: [ID!]) { addMember(input: {userId: $u, role: ACCOUNT_MANAGER, clientIds: $c}) { userId } }";
    let update_member = "mutation($u: ID!, $c: [ID!]) { updateMember(input: {userId: $u, role: ACCOUNT_MANAGER, clientIds: $c}) { userId } }";
    let update_campaign =
        "mutation($id: ID!) { updateCampaign(input: {id: $id, name: \"hijacked\"}) { id } }";
    let delete_campaign = "mutation($id: ID!) { deleteCampaign(id: $id) }";
    let mut attempts: Vec<Foreign> = Vec::new();
    for (what, token, foreign) in [
        ("sme-1 owner / sme-2's persona", &sme1, p.sme2),
        ("sme-2 owner / sme-1's persona", &sme2, p.sme1),
        ("sme-1 owner / nike's persona", &sme1, p.nike),
        ("agency-1 owner / puma's persona", &owner1, p.puma),
        ("agency-1 admin / puma's persona", &admin1, p.puma),
        ("agency-1 owner / sme-2's persona", &owner1, p.sme2),
        ("agency-2 owner / nike's persona", &owner2, p.nike),
        ("agency-2 owner / adidas's persona", &owner2, p.adidas),
        ("account manager (nike) / adidas's persona", &am, p.adidas),
    ] {
        for (op, query) in [
            ("updatePersona", update_persona),
            ("deletePersona", delete_persona),
        ] {
            attempts.push(Foreign {
                what: format!("{what}: {op}"),
                token: token.clone(),
                query,
                foreign: id(foreign.to_string()),
                missing: id(missing()),
            });
        }
    }
    let plain =
        |what: &str, token: &String, query: &'static str, foreign: Value, missing: Value| Foreign {
            what: what.to_owned(),
            token: token.clone(),
            query,
            foreign,
            missing,
        };
    attempts.extend([
        plain("agency-1 owner restores puma", &owner1, restore, id(w.puma.to_string()), id(missing())),
        plain("agency-1 admin restores puma", &admin1, restore, id(w.puma.to_string()), id(missing())),
        plain("agency-2 owner restores adidas", &owner2, restore, id(w.adidas.to_string()), id(missing())),
        plain("sme-1 owner restores puma", &sme1, restore, id(w.puma.to_string()), id(missing())),
        plain(
            "agency-1 owner adds an account manager for puma",
            &owner1,
            add_am,
            json!({ "u": newcomer.to_string(), "c": [w.puma.to_string()] }),
            json!({ "u": newcomer.to_string(), "c": [missing()] }),
        ),
        plain(
            "agency-1 admin adds an account manager for nike and puma",
            &admin1,
            add_am,
            json!({ "u": newcomer.to_string(), "c": [w.nike.to_string(), w.puma.to_string()] }),
            json!({ "u": newcomer.to_string(), "c": [w.nike.to_string(), missing()] }),
        ),
        plain(
            "agency-2 owner adds an account manager for nike",
            &owner2,
            add_am,
            json!({ "u": newcomer.to_string(), "c": [w.nike.to_string()] }),
            json!({ "u": newcomer.to_string(), "c": [missing()] }),
        ),
        plain(
            "agency-1 owner assigns puma to its own account manager",
            &owner1,
            update_member,
            json!({ "u": w.account_manager.to_string(), "c": [w.puma.to_string()] }),
            json!({ "u": w.account_manager.to_string(), "c": [missing()] }),
        ),
        plain(
            "agency-1 owner updates agency-2's owner",
            &owner1,
            update_member,
            json!({ "u": w.agency2.owner.to_string(), "c": [w.nike.to_string()] }),
            json!({ "u": missing(), "c": [w.nike.to_string()] }),
        ),
        plain(
            "agency-2 owner updates agency-1's account manager",
            &owner2,
            update_member,
            json!({ "u": w.account_manager.to_string(), "c": [w.puma.to_string()] }),
            json!({ "u": missing(), "c": [w.puma.to_string()] }),
        ),
        plain(
            "sme-2 owner updates sme-1's admin",
            &sme2,
            "mutation($u: ID!) { updateMember(input: {userId: $u, role: OWNER}) { userId } }",
            json!({ "u": w.sme1_admin.to_string() }),
            json!({ "u": missing() }),
        ),
        plain(
            "sme-2 owner removes sme-1's viewer",
            &sme2,
            "mutation($u: ID!) { removeMember(userId: $u) }",
            json!({ "u": w.sme1_viewer.to_string() }),
            json!({ "u": missing() }),
        ),
        plain(
            "agency-2 owner removes agency-1's strategist",
            &owner2,
            "mutation($u: ID!) { removeMember(userId: $u) }",
            json!({ "u": w.strategist.to_string() }),
            json!({ "u": missing() }),
        ),
        plain("sme-2 owner renames sme-1's campaign", &sme2, update_campaign, id(w.sme1.campaigns[0].to_string()), id(missing())),
        plain("sme-2 owner deletes sme-1's campaign", &sme2, delete_campaign, id(w.sme1.campaigns[0].to_string()), id(missing())),
        plain("agency-2 owner renames a nike campaign", &owner2, update_campaign, id(w.nike_campaigns[0].to_string()), id(missing())),
        plain("agency-2 owner deletes an adidas campaign", &owner2, delete_campaign, id(w.adidas_campaigns[0].to_string()), id(missing())),
        plain(
            "agency-2 owner renames nike",
            &owner2,
            "mutation($id: ID!) { updateClient(input: {id: $id, name: \"hijacked\"}) { id } }",
            id(w.nike.to_string()),
            id(missing()),
        ),
        plain(
            "agency-2 owner archives nike",
            &owner2,
            "mutation($id: ID!) { archiveClient(id: $id) { id } }",
            id(w.nike.to_string()),
            id(missing()),
        ),
        plain(
            "agency-2 owner saves nike's guidelines",
            &owner2,
            "mutation($id: ID!) { saveBrandGuidelines(input: {clientId: $id, content: {voice: \"hijacked\"}}) { updatedAt } }",
            id(w.nike.to_string()),
            id(missing()),
        ),
        plain(
            "agency-2 owner adds a persona to adidas",
            &owner2,
            "mutation($id: ID!) { createPersona(input: {clientId: $id, name: \"hijacked\"}) { id } }",
            id(w.adidas.to_string()),
            id(missing()),
        ),
        plain(
            "agency-2 owner creates a campaign for nike",
            &owner2,
            "mutation($id: ID!) { createCampaign(input: {name: \"hijacked\", clientId: $id}) { id } }",
            id(w.nike.to_string()),
            id(missing()),
        ),
    ]);

    for a in attempts {
        let before = digests(&su).await;
        let (status, body) = app.graphql(Some(&a.token), a.query, a.foreign).await;
        assert_eq!(status, 200, "{}: {body}", a.what);
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{}: {body}", a.what);
        assert!(body["data"].is_null(), "{}: {body}", a.what);
        assert_eq!(
            digests(&su).await,
            before,
            "{} changed the database",
            a.what
        );
        let (_, none) = app.graphql(Some(&a.token), a.query, a.missing).await;
        assert_eq!(
            shape(&body),
            shape(&none),
            "{}: a foreign id answers like a missing one",
            a.what
        );
        assert_eq!(
            digests(&su).await,
            before,
            "{} (missing ids) changed the database",
            a.what
        );
    }
    // Nothing of it reached the rows, checked by content too.
    assert_eq!(
        scalar(
            &su,
            "SELECT (SELECT count(*) FROM public.personas WHERE name = 'hijacked')
                  + (SELECT count(*) FROM tenant_b.entity_data WHERE name = 'hijacked')
                  + (SELECT count(*) FROM tenant_b.workspace_entities WHERE archived_at IS NULL AND slug IN ('puma', 'adidas'))"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{newcomer}'")
        )
        .await,
        0
    );
}

/// A role of one organization and what the contract lets it do.
struct RoleCase {
    role: &'static str,
    user: UserId,
    /// OWNER: may also add, change and remove owners.
    owner: bool,
    /// OWNER/ADMIN: members, clients, settings, the audit log.
    admin: bool,
    /// Everyone but VIEWER: content (of assigned clients, for account
    /// managers; every target below belongs to nike, which is assigned).
    content: bool,
}

/// One mutation of the role matrix: whether it is allowed, and a query over
/// the rows it would change, which must read the same after a refusal.
struct Step {
    name: &'static str,
    query: String,
    vars: Value,
    allowed: bool,
    target: String,
}

fn rows(table: &str, filter: &str) -> String {
    format!(
        "SELECT count(*) || ':' || coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM {table} t WHERE {filter}"
    )
}

/// Runs every mutation as each of `roles` in `org` (acting on `client`'s
/// content for agencies) and checks the answer, the audit log and the
/// target rows.
async fn role_matrix(
    app: &TestApp,
    su: &DatabaseConnection,
    org: &strata_tests::world::Org,
    client: Option<strata_domain::ClientId>,
    roles: &[RoleCase],
) {
    let agency = client.is_some();
    let (campaigns, personas) = if agency {
        ("tenant_b.campaigns", "tenant_b.entity_data")
    } else {
        ("public.campaigns", "public.personas")
    };
    let o = org.id;
    let c = client.map(|c| c.to_string());
    let campaign = org.campaigns[0];
    let guidelines = match client {
        Some(c) => rows(
            "tenant_b.entity_data",
            &format!("client_id = '{c}' AND kind = 'BRAND_GUIDELINES'"),
        ),
        None => rows("public.brand_guidelines", &format!("org_id = '{o}'")),
    };
    for (i, r) in roles.iter().enumerate() {
        let token = app.token(r.user, Some(o));
        // Fresh targets for this role: users to add, members to change and
        // remove (one a co-owner), a campaign and a persona to delete.
        let (newcomer, new_owner, member, co_owner, co_owner2) = (
            UserId::generate(),
            UserId::generate(),
            UserId::generate(),
            UserId::generate(),
            UserId::generate(),
        );
        let (doomed, persona) = (CampaignId::generate(), uuid::Uuid::new_v4());
        let invitation = uuid::Uuid::new_v4();
        let org_type = if agency { "AGENCY" } else { "SME" };
        let (client_col, client_val, persona_insert) = match &c {
            Some(c) => (
                ", client_id",
                format!(", '{c}'"),
                format!(
                    "INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name) VALUES ('{o}', '{persona}', '{c}', 'PERSONA', 'Target')"
                ),
            ),
            None => (
                "",
                String::new(),
                format!(
                    "INSERT INTO public.personas (org_id, id, name) VALUES ('{o}', '{persona}', 'Target')"
                ),
            ),
        };
        su.execute_unprepared(&format!(
            "INSERT INTO public.users (id) VALUES ('{newcomer}'), ('{new_owner}'), ('{member}'), ('{co_owner}'), ('{co_owner2}');
             INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES
               ('{o}', '{member}', '{org_type}', 'VIEWER'),
               ('{o}', '{co_owner}', '{org_type}', 'OWNER'),
               ('{o}', '{co_owner2}', '{org_type}', 'OWNER');
             INSERT INTO {campaigns} (org_id, id{client_col}, name) VALUES ('{o}', '{doomed}'{client_val}, 'doomed');
             INSERT INTO public.invitations (org_id, id, org_type, email, role, expires_at)
               VALUES ('{o}', '{invitation}', '{org_type}', 'seeded-{i}@example.com', 'VIEWER', now() + interval '1 day');
             {persona_insert};"
        ))
        .await
        .unwrap();
        let membership_parts = |u: UserId| {
            format!(
                "{} UNION ALL {}",
                rows(
                    "public.memberships",
                    &format!("user_id = '{u}' AND org_id = '{o}'")
                ),
                rows("tenant_b.client_assignments", &format!("user_id = '{u}'"))
            )
        };
        let membership = |u: UserId| {
            format!(
                "SELECT string_agg(x, '#') FROM ({}) s(x)",
                membership_parts(u)
            )
        };
        let campaign_row = |id: CampaignId| rows(campaigns, &format!("id = '{id}'"));
        let persona_row = rows(personas, &format!("id = '{persona}'"));
        let client_row = c
            .as_ref()
            .map(|c| rows("tenant_b.workspace_entities", &format!("id = '{c}'")))
            .unwrap_or_default();
        let own_slug = format!("own-{}-{i}", org_type.to_lowercase());
        let mut steps = vec![
            Step {
                name: "createCampaign",
                query: "mutation($c: ID) { createCampaign(input: {name: \"role test\", clientId: $c}) { id } }".into(),
                vars: json!({ "c": c }),
                allowed: r.content,
                target: rows(campaigns, &format!("org_id = '{o}' AND name = 'role test'")),
            },
            Step {
                name: "updateCampaign",
                query: "mutation($id: ID!) { updateCampaign(input: {id: $id, status: ACTIVE}) { id status } }".into(),
                vars: json!({ "id": campaign.to_string() }),
                allowed: r.content,
                target: campaign_row(campaign),
            },
            Step {
                name: "deleteCampaign",
                query: "mutation($id: ID!) { deleteCampaign(id: $id) }".into(),
                vars: json!({ "id": doomed.to_string() }),
                allowed: r.content,
                target: campaign_row(doomed),
            },
            Step {
                name: "saveBrandGuidelines",
                query: "mutation($c: ID) { saveBrandGuidelines(input: {clientId: $c, content: {voice: \"calm\"}}) { updatedAt } }".into(),
                vars: json!({ "c": c }),
                allowed: r.content,
                target: guidelines.clone(),
            },
            Step {
                name: "createPersona",
                query: "mutation($c: ID) { createPersona(input: {clientId: $c, name: \"Role Test\"}) { id } }".into(),
                vars: json!({ "c": c }),
                allowed: r.content,
                target: rows(personas, &format!("org_id = '{o}' AND name = 'Role Test'")),
            },
            Step {
                name: "updatePersona",
                query: "mutation($id: ID!) { updatePersona(input: {id: $id, name: \"Renamed\"}) { id } }".into(),
                vars: json!({ "id": persona.to_string() }),
                allowed: r.content,
                target: persona_row.clone(),
            },
            Step {
                name: "deletePersona",
                query: "mutation($id: ID!) { deletePersona(id: $id) }".into(),
                vars: json!({ "id": persona.to_string() }),
                allowed: r.content,
                target: persona_row,
            },
            Step {
                name: "addMember",
                query: "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { userId } }".into(),
                vars: json!({ "u": newcomer.to_string() }),
                allowed: r.admin,
                target: membership(newcomer),
            },
            Step {
                name: "addMember as OWNER",
                query: "mutation($u: ID!) { addMember(input: {userId: $u, role: OWNER}) { userId } }".into(),
                vars: json!({ "u": new_owner.to_string() }),
                allowed: r.owner,
                target: membership(new_owner),
            },
            Step {
                name: "updateMember",
                query: "mutation($u: ID!) { updateMember(input: {userId: $u, role: STRATEGIST}) { role } }".into(),
                vars: json!({ "u": member.to_string() }),
                allowed: r.admin,
                target: membership(member),
            },
            Step {
                name: "updateMember of an OWNER",
                query: "mutation($u: ID!) { updateMember(input: {userId: $u, role: ADMIN}) { role } }".into(),
                vars: json!({ "u": co_owner.to_string() }),
                allowed: r.owner,
                target: membership(co_owner),
            },
            Step {
                name: "updateMember to OWNER",
                query: "mutation($u: ID!) { updateMember(input: {userId: $u, role: OWNER}) { role } }".into(),
                vars: json!({ "u": member.to_string() }),
                allowed: r.owner,
                target: membership(member),
            },
            Step {
                name: "removeMember",
                query: "mutation($u: ID!) { removeMember(userId: $u) }".into(),
                vars: json!({ "u": member.to_string() }),
                allowed: r.admin,
                target: membership(member),
            },
            Step {
                name: "removeMember of an OWNER",
                query: "mutation($u: ID!) { removeMember(userId: $u) }".into(),
                vars: json!({ "u": co_owner2.to_string() }),
                allowed: r.owner,
                target: membership(co_owner2),
            },
            Step {
                name: "inviteMember",
                query: format!("mutation {{ inviteMember(input: {{email: \"Invitee-{i}@Example.com\", role: VIEWER}}) {{ id status }} }}"),
                vars: json!({}),
                allowed: r.admin,
                target: rows("public.invitations", &format!("org_id = '{o}' AND email = 'invitee-{i}@example.com'")),
            },
            Step {
                name: "revokeInvitation",
                query: "mutation($id: ID!) { revokeInvitation(id: $id) { status } }".into(),
                vars: json!({ "id": invitation.to_string() }),
                allowed: r.admin,
                target: rows("public.invitations", &format!("id = '{invitation}'")),
            },
            Step {
                name: "updateOrganization",
                query: format!("mutation {{ updateOrganization(input: {{branding: {{primaryColor: \"#1122{i:02}\"}}}}) {{ settings }} }}"),
                vars: json!({}),
                allowed: r.admin,
                target: rows("public.organizations", &format!("id = '{o}'")),
            },
            Step {
                name: "createOrganization",
                query: format!("mutation {{ createOrganization(input: {{name: \"Own\", slug: \"{own_slug}\", type: SME}}) {{ id }} }}"),
                vars: json!({}),
                allowed: true,
                target: rows("public.organizations", &format!("slug = '{own_slug}'")),
            },
        ];
        if agency {
            let slug = format!("role-client-{i}");
            steps.extend([
                Step {
                    name: "createClient",
                    query: format!("mutation {{ createClient(input: {{name: \"c{i}\", slug: \"{slug}\"}}) {{ id }} }}"),
                    vars: json!({}),
                    allowed: r.admin,
                    target: rows("tenant_b.workspace_entities", &format!("org_id = '{o}' AND slug = '{slug}'")),
                },
                Step {
                    name: "updateClient",
                    query: format!("mutation($id: ID!) {{ updateClient(input: {{id: $id, name: \"Nike {i}\"}}) {{ id }} }}"),
                    vars: json!({ "id": c }),
                    allowed: r.admin,
                    target: client_row.clone(),
                },
                Step {
                    name: "archiveClient",
                    query: "mutation($id: ID!) { archiveClient(id: $id) { archived } }".into(),
                    vars: json!({ "id": c }),
                    allowed: r.admin,
                    target: client_row.clone(),
                },
            ]);
            steps.push(Step {
                name: "restoreClient",
                query: "mutation($id: ID!) { restoreClient(id: $id) { archived } }".into(),
                vars: json!({ "id": c }),
                allowed: r.admin,
                target: client_row.clone(),
            });
        }
        let archived = |on: bool| {
            format!(
                "UPDATE tenant_b.workspace_entities SET archived_at = {} WHERE id = '{}'",
                if on { "now()" } else { "NULL" },
                c.as_deref().unwrap_or_default()
            )
        };
        if agency {
            // Whatever the previous role left: an active client.
            su.execute_unprepared(&archived(false)).await.unwrap();
        }
        for step in steps {
            if step.name == "restoreClient" && !step.allowed {
                // Give the refused restore something to restore.
                su.execute_unprepared(&archived(true)).await.unwrap();
            }
            let who = format!("{} {} {}", org_type, r.role, step.name);
            // The operation's row of the table: what it is refused with and
            // what its audit rows say.
            let op = step.name.split(' ').next().unwrap_or_default();
            let action = strata_domain::Action::by_audit_name(op)
                .unwrap_or_else(|| panic!("{op} is not in the table of operations"));
            let audit_before = scalar(su, "SELECT count(*) FROM public.audit_log").await;
            let target_before = strata_tests::text(su, &step.target).await;
            let (status, body) = app.graphql(Some(&token), &step.query, step.vars).await;
            assert_eq!(status, 200, "{who}: {body}");
            let audit_after = scalar(su, "SELECT count(*) FROM public.audit_log").await;
            let target_after = strata_tests::text(su, &step.target).await;
            if step.allowed {
                assert!(body.get("errors").is_none(), "{who}: {body}");
                assert_eq!(audit_after, audit_before + 1, "{who} writes one audit row");
                assert_ne!(target_after, target_before, "{who} changes its target");
                let logged = strata_tests::text(
                    su,
                    "SELECT operation FROM public.audit_log ORDER BY created_at DESC, id DESC LIMIT 1",
                )
                .await;
                assert_eq!(
                    logged.as_deref(),
                    action.audit_name(),
                    "{who}: its audit row"
                );
            } else {
                assert_eq!(error_code(&body), Some("FORBIDDEN"), "{who}: {body}");
                // Refused for the operation's permission (not a finer rule
                // such as "only owners touch owners"): the table's words.
                let by_permission = match action.permission() {
                    strata_domain::Permission::Write => !r.content,
                    strata_domain::Permission::Administer => !r.admin,
                    strata_domain::Permission::Own => !r.owner,
                    strata_domain::Permission::User => false,
                };
                if step.name == op && by_permission {
                    assert_eq!(
                        body["errors"][0]["message"].as_str(),
                        Some(action.refusal()),
                        "{who}: {body}"
                    );
                }
                assert!(body["data"].is_null(), "{who}: {body}");
                assert_eq!(audit_after, audit_before, "{who} writes no audit row");
                assert_eq!(
                    target_after, target_before,
                    "{who} leaves its target as it was"
                );
            }
        }
        // Reading the audit log and the invitations is for administrators.
        for read in [
            "{ auditLog { totalCount } }",
            "{ invitations(first: 5) { edges { node { email } } } }",
        ] {
            let (_, body) = app.graphql(Some(&token), read, json!({})).await;
            if r.admin {
                assert!(body.get("errors").is_none(), "{} {read}: {body}", r.role);
            } else {
                assert_eq!(
                    error_code(&body),
                    Some("FORBIDDEN"),
                    "{} {read}: {body}",
                    r.role
                );
            }
        }
    }
}

#[tokio::test]
async fn each_role_may_run_exactly_the_mutations_its_role_allows() {
    let (app, w, su) = setup().await;
    let role = |role, user, owner, admin, content| RoleCase {
        role,
        user,
        owner,
        admin,
        content,
    };
    role_matrix(
        &app,
        &su,
        &w.agency1,
        Some(w.nike),
        &[
            role("OWNER", w.agency1.owner, true, true, true),
            role("ADMIN", w.admin, false, true, true),
            role("STRATEGIST", w.strategist, false, false, true),
            role("ACCOUNT_MANAGER", w.account_manager, false, false, true),
            role("VIEWER", w.viewer, false, false, false),
        ],
    )
    .await;
    role_matrix(
        &app,
        &su,
        &w.sme1,
        None,
        &[
            role("OWNER", w.sme1.owner, true, true, true),
            role("ADMIN", w.sme1_admin, false, true, true),
            role("STRATEGIST", w.sme1_strategist, false, false, true),
            role("VIEWER", w.sme1_viewer, false, false, false),
        ],
    )
    .await;
    // Campaigns were created by exactly the four content roles of the
    // agency and the three of the SME.
    assert_eq!(
        scalar(
            &su,
            "SELECT (SELECT count(*) FROM tenant_b.campaigns WHERE name = 'role test') * 10
                  + (SELECT count(*) FROM public.campaigns WHERE name = 'role test')"
        )
        .await,
        43
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
    let principals = w.principals();
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
            &Default::default(),
            Some(w.agency1.id),
            Default::default(),
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

#[tokio::test]
async fn searches_filters_and_orders_never_reach_past_the_principals_own_rows() {
    let (app, w, su) = setup().await;
    let q = "query($s: String, $c: ID, $o: ListOrder, $f: CampaignFilter) {
               campaigns(first: 100, search: $s, clientId: $c, orderBy: $o, filter: $f) {
                 totalCount nodes { id name } } }";
    for p in w.principals() {
        let token = app.token(p.user, Some(p.org));
        let own = set(&p.campaigns);
        // The principal's own campaigns and their names, as the database
        // holds them.
        let list: Vec<String> = p.campaigns.iter().map(|c| format!("'{c}'")).collect();
        let named: Vec<(String, String)> = su
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT id::text, name FROM public.campaigns WHERE id IN ({ids})
                     UNION ALL SELECT id::text, name FROM tenant_b.campaigns WHERE id IN ({ids})",
                    ids = list.join(", ")
                ),
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).unwrap(),
                    r.try_get_by_index(1).unwrap(),
                )
            })
            .collect();
        assert_eq!(named.len(), p.campaigns.len(), "{}", p.name);
        for search in ["o", "NIKE", "puma", "e", "first", "adidas two"] {
            for order in [
                json!(null),
                json!({ "field": "NAME", "direction": "ASC" }),
                json!({ "field": "NAME", "direction": "DESC" }),
            ] {
                let data = ok(
                    &app,
                    &token,
                    q,
                    json!({ "s": search, "o": order, "f": { "status": ["DRAFT", "ACTIVE", "PAUSED", "COMPLETED", "ARCHIVED"] } }),
                )
                .await;
                let expected: BTreeSet<String> = named
                    .iter()
                    .filter(|(_, n)| n.to_lowercase().contains(&search.to_lowercase()))
                    .map(|(id, _)| id.clone())
                    .collect();
                let got: BTreeSet<String> = data["campaigns"]["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n["id"].as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(got, expected, "{} searching {search:?} {order}", p.name);
                assert!(got.is_subset(&own));
                assert_eq!(
                    data["campaigns"]["totalCount"].as_u64(),
                    Some(expected.len() as u64)
                );
            }
        }
        // Every client, searched: never another scope's campaigns.
        for client in [w.nike, w.adidas, w.puma] {
            let data = ok(
                &app,
                &token,
                q,
                json!({ "s": "o", "c": client.to_string() }),
            )
            .await;
            let got: BTreeSet<String> = data["campaigns"]["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_owned())
                .collect();
            assert!(got.is_subset(&own), "{} client {client}: {data}", p.name);
        }
        // Clients searched ("I": nike and adidas, not puma) and personas
        // by a letter every name holds.
        let data = ok(
            &app,
            &token,
            "{ clients(search: \"I\", includeArchived: true, orderBy: {field: NAME}) { totalCount nodes { name } }
               personas(search: \"a\", orderBy: {field: NAME}) { nodes { id } } }",
            json!({}),
        )
        .await;
        let clients = data["clients"]["totalCount"].as_u64().unwrap();
        let personas: BTreeSet<String> = data["personas"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        let unfiltered = ok(
            &app,
            &token,
            "{ clients(includeArchived: true) { nodes { name } } personas(first: 100) { nodes { id } } }",
            json!({}),
        )
        .await;
        let mut with_i: Vec<String> = unfiltered["clients"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .filter(|n| n.contains('i'))
            .collect();
        with_i.sort();
        let found: Vec<String> = data["clients"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(found, with_i, "{}", p.name);
        assert_eq!(clients, with_i.len() as u64, "{}", p.name);
        let all: BTreeSet<String> = unfiltered["personas"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            !personas.is_empty() && personas.is_subset(&all),
            "{}",
            p.name
        );
    }
}

#[tokio::test]
async fn a_viewer_or_strategist_limited_to_a_client_sees_and_changes_only_that_client() {
    let (app, w, _su) = setup().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let update = "mutation($u: ID!, $c: [ID!]) { updateMember(input: {userId: $u, clientIds: $c}) { role clientIds } }";
    // The agency's own customer: a read-only login limited to adidas.
    let data = ok(
        &app,
        &owner,
        update,
        json!({ "u": w.viewer.to_string(), "c": [w.adidas.to_string()] }),
    )
    .await;
    assert_eq!(data["updateMember"]["role"], "VIEWER");
    assert_eq!(
        data["updateMember"]["clientIds"],
        json!([w.adidas.to_string()])
    );
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let seen = ok(
        &app,
        &viewer,
        "{ clients { nodes { slug } } campaigns(first: 100) { nodes { id clientId } } personas { nodes { clientId } } }",
        json!({}),
    )
    .await;
    assert_eq!(seen["clients"]["nodes"], json!([{ "slug": "adidas" }]));
    let campaigns: BTreeSet<String> = ids_of(&seen["campaigns"]);
    assert_eq!(campaigns, set(&w.adidas_campaigns));
    for p in seen["personas"]["nodes"].as_array().unwrap() {
        assert_eq!(p["clientId"], w.adidas.to_string());
    }
    for c in &w.nike_campaigns {
        let one = ok(
            &app,
            &viewer,
            "query($id: ID!) { campaign(id: $id) { id } }",
            json!({ "id": c.to_string() }),
        )
        .await;
        assert!(one["campaign"].is_null());
    }
    // Row-level security holds the same line: the viewer's context, with
    // no filter of the repositories, reads adidas' rows only.
    {
        let ctx = strata_persistence::context::resolve_for(
            &app.db,
            w.viewer,
            Some(w.agency1.id),
            "limited-viewer",
        )
        .await
        .unwrap();
        assert!(
            matches!(ctx.clients(), strata_domain::ClientScope::Only(ids) if ids == &vec![w.adidas])
        );
        let tx = strata_persistence::TenantTx::begin_read_only(&app.db, &ctx)
            .await
            .unwrap();
        let rows = scalar(&tx, "SELECT count(*) FROM tenant_b.campaigns").await;
        assert_eq!(rows, w.adidas_campaigns.len() as i64);
        let clients = scalar(&tx, "SELECT count(*) FROM tenant_b.workspace_entities").await;
        assert_eq!(clients, 1);
        tx.commit().await.unwrap();
    }
    // A strategist limited to nike writes for nike only.
    ok(
        &app,
        &owner,
        update,
        json!({ "u": w.strategist.to_string(), "c": [w.nike.to_string()] }),
    )
    .await;
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let create =
        "mutation($c: ID) { createCampaign(input: {clientId: $c, name: \"limited\"}) { id } }";
    ok(
        &app,
        &strategist,
        create,
        json!({ "c": w.nike.to_string() }),
    )
    .await;
    let (_, body) = app
        .graphql(
            Some(&strategist),
            create,
            json!({ "c": w.adidas.to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    // An empty list: every client again. Owners and admins are never limited.
    ok(
        &app,
        &owner,
        update,
        json!({ "u": w.viewer.to_string(), "c": [] }),
    )
    .await;
    let seen = ok(&app, &viewer, "{ clients { totalCount } }", json!({})).await;
    assert_eq!(seen["clients"]["totalCount"], 2);
    let (_, body) = app
        .graphql(
            Some(&owner),
            update,
            json!({ "u": w.admin.to_string(), "c": [w.nike.to_string()] }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "clientIds");
}

fn ids_of(conn: &Value) -> BTreeSet<String> {
    conn["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}
