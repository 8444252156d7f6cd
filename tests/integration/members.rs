//! Member, campaign and client life cycles over real HTTP, each checked in
//! the database: an added account manager sees exactly the clients assigned
//! to them, follows a reassignment and loses access when removed; a deleted
//! campaign takes its outputs with it; an archived client can be restored.

use std::collections::BTreeSet;
use std::time::Duration;

use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use strata_domain::{CampaignId, UserId};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar, text};

const TTL: Duration = Duration::from_secs(1);

async fn setup() -> (TestApp, World, DatabaseConnection) {
    let app = TestApp::builder().auth_cache_ttl(TTL).spawn().await;
    let (world, su) = World::on(&app).await;
    (app, world, su)
}

fn strings<T: ToString>(items: &[T]) -> BTreeSet<String> {
    items.iter().map(ToString::to_string).collect()
}

fn node_ids(conn: &Value) -> BTreeSet<String> {
    conn["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Audit rows of `operation` on `target`.
async fn audited(su: &DatabaseConnection, operation: &str, target: &str) -> i64 {
    scalar(
        su,
        &format!(
            "SELECT count(*) FROM public.audit_log WHERE operation = '{operation}' AND target_id = '{target}'"
        ),
    )
    .await
}

async fn assignments(su: &DatabaseConnection, user: UserId) -> Option<String> {
    text(
        su,
        &format!(
            "SELECT string_agg(client_id::text, ',' ORDER BY client_id) FROM tenant_b.client_assignments WHERE user_id = '{user}'"
        ),
    )
    .await
}

/// What `token` sees of the agency: clients, campaigns, its own assignment.
async fn view(app: &TestApp, token: &str) -> (BTreeSet<String>, BTreeSet<String>, Value) {
    let data = ok(
        app,
        token,
        "{ me { role memberships { organizationId role clientIds } } clients { edges { node { id } } } campaigns(first: 100) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    (
        node_ids(&data["clients"]),
        node_ids(&data["campaigns"]),
        data["me"].clone(),
    )
}

#[tokio::test]
async fn an_added_account_manager_sees_only_the_assigned_client_until_reassigned_or_removed() {
    let (app, w, su) = setup().await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    // A new user signs in once (and is provisioned) before being added.
    let user = UserId::generate();
    let (status, body) = app
        .graphql(
            Some(&app.token(user, None)),
            "{ me { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let audit_total = "SELECT count(*) FROM public.audit_log";
    let before = scalar(&su, audit_total).await;

    let added = ok(
        &app,
        &owner,
        "mutation($u: ID!, $c: [ID!]) { addMember(input: {userId: $u, role: ACCOUNT_MANAGER, clientIds: $c}) { userId role clientIds } }",
        json!({ "u": user.to_string(), "c": [w.nike.to_string()] }),
    )
    .await;
    assert_eq!(added["addMember"]["role"], "ACCOUNT_MANAGER");
    assert_eq!(added["addMember"]["clientIds"], json!([w.nike.to_string()]));
    assert_eq!(
        text(
            &su,
            &format!(
                "SELECT role FROM public.memberships WHERE user_id = '{user}' AND org_id = '{}'",
                w.agency1.id
            )
        )
        .await
        .as_deref(),
        Some("ACCOUNT_MANAGER")
    );
    assert_eq!(assignments(&su, user).await, Some(w.nike.to_string()));
    assert_eq!(audited(&su, "addMember", &user.to_string()).await, 1);
    assert_eq!(scalar(&su, audit_total).await, before + 1);

    let token = app.token(user, Some(w.agency1.id));
    let (clients, campaigns, me) = view(&app, &token).await;
    assert_eq!(clients, strings(&[w.nike]));
    assert_eq!(campaigns, strings(&w.nike_campaigns));
    assert_eq!(me["role"], "ACCOUNT_MANAGER");
    assert_eq!(
        me["memberships"],
        json!([{ "organizationId": w.agency1.id.to_string(), "role": "ACCOUNT_MANAGER", "clientIds": [w.nike.to_string()] }])
    );

    // Reassigned to adidas: after the cache window, adidas and not nike.
    let updated = ok(
        &app,
        &owner,
        "mutation($u: ID!, $c: [ID!]) { updateMember(input: {userId: $u, clientIds: $c}) { role clientIds } }",
        json!({ "u": user.to_string(), "c": [w.adidas.to_string()] }),
    )
    .await;
    assert_eq!(updated["updateMember"]["role"], "ACCOUNT_MANAGER");
    assert_eq!(
        updated["updateMember"]["clientIds"],
        json!([w.adidas.to_string()])
    );
    assert_eq!(assignments(&su, user).await, Some(w.adidas.to_string()));
    assert_eq!(audited(&su, "updateMember", &user.to_string()).await, 1);
    assert_eq!(scalar(&su, audit_total).await, before + 2);
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let (clients, campaigns, me) = view(&app, &token).await;
    assert_eq!(clients, strings(&[w.adidas]));
    assert_eq!(campaigns, strings(&w.adidas_campaigns));
    assert_eq!(
        me["memberships"][0]["clientIds"],
        json!([w.adidas.to_string()])
    );
    let data = ok(
        &app,
        &token,
        "query($n: ID!, $c: ID!) { client(id: $n) { id } campaign(id: $c) { id } }",
        json!({ "n": w.nike.to_string(), "c": w.nike_campaigns[0].to_string() }),
    )
    .await;
    assert!(data["client"].is_null(), "{data}");
    assert!(data["campaign"].is_null(), "{data}");

    // Removed: the membership and its assignments are gone, and after the
    // cache window the token no longer opens the organization.
    ok(
        &app,
        &owner,
        "mutation($u: ID!) { removeMember(userId: $u) }",
        json!({ "u": user.to_string() }),
    )
    .await;
    assert_eq!(
        scalar(
            &su,
            &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{user}'")
        )
        .await,
        0
    );
    assert_eq!(assignments(&su, user).await, None);
    assert_eq!(audited(&su, "removeMember", &user.to_string()).await, 1);
    assert_eq!(scalar(&su, audit_total).await, before + 3);
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    let (status, body) = app
        .graphql(Some(&token), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert!(body.get("data").is_none_or(Value::is_null), "{body}");
}

#[tokio::test]
async fn deleting_a_campaign_removes_it_and_its_outputs_with_one_audit_row() {
    let (app, w, su) = setup().await;
    for (token, campaign, campaigns, outputs) in [
        (
            app.token(w.agency1.owner, Some(w.agency1.id)),
            w.nike_campaigns[0],
            "tenant_b.campaigns",
            "tenant_b.outputs",
        ),
        (
            app.token(w.sme1.owner, Some(w.sme1.id)),
            w.sme1.campaigns[0],
            "public.campaigns",
            "public.agent_outputs",
        ),
    ] {
        let count = |table: &str, column: &str, id: CampaignId| {
            format!("SELECT count(*) FROM {table} WHERE {column} = '{id}'")
        };
        assert_eq!(scalar(&su, &count(campaigns, "id", campaign)).await, 1);
        assert!(scalar(&su, &count(outputs, "campaign_id", campaign)).await >= 1);
        let other_outputs = scalar(
            &su,
            &format!("SELECT count(*) FROM {outputs} WHERE campaign_id <> '{campaign}'"),
        )
        .await;
        let audit_before = scalar(&su, "SELECT count(*) FROM public.audit_log").await;

        let data = ok(
            &app,
            &token,
            "mutation($id: ID!) { deleteCampaign(id: $id) }",
            json!({ "id": campaign.to_string() }),
        )
        .await;
        assert_eq!(data["deleteCampaign"], campaign.to_string());
        assert_eq!(scalar(&su, &count(campaigns, "id", campaign)).await, 0);
        assert_eq!(
            scalar(&su, &count(outputs, "campaign_id", campaign)).await,
            0
        );
        assert_eq!(
            scalar(
                &su,
                &format!("SELECT count(*) FROM {outputs} WHERE campaign_id <> '{campaign}'")
            )
            .await,
            other_outputs,
            "other campaigns keep their outputs"
        );
        assert_eq!(
            scalar(&su, "SELECT count(*) FROM public.audit_log").await,
            audit_before + 1
        );
        assert_eq!(
            audited(&su, "deleteCampaign", &campaign.to_string()).await,
            1
        );
        let gone = ok(
            &app,
            &token,
            "query($id: ID!) { campaign(id: $id) { id } }",
            json!({ "id": campaign.to_string() }),
        )
        .await;
        assert!(gone["campaign"].is_null());
        // Deleting it again is "not found", and writes nothing.
        let (_, again) = app
            .graphql(
                Some(&token),
                "mutation($id: ID!) { deleteCampaign(id: $id) }",
                json!({ "id": campaign.to_string() }),
            )
            .await;
        assert_eq!(error_code(&again), Some("NOT_FOUND"), "{again}");
        assert_eq!(
            scalar(&su, "SELECT count(*) FROM public.audit_log").await,
            audit_before + 1
        );
    }
}

#[tokio::test]
async fn an_archived_client_can_be_restored() {
    let (app, w, su) = setup().await;
    let admin = app.token(w.admin, Some(w.agency1.id));
    let archived_at = format!(
        "SELECT archived_at::text FROM tenant_b.workspace_entities WHERE id = '{}'",
        w.adidas
    );
    let data = ok(
        &app,
        &admin,
        "mutation($id: ID!) { archiveClient(id: $id) { id archived } }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(data["archiveClient"]["archived"], true);
    assert!(text(&su, &archived_at).await.is_some());
    assert_eq!(
        audited(&su, "archiveClient", &w.adidas.to_string()).await,
        1
    );

    let data = ok(
        &app,
        &admin,
        "mutation($id: ID!) { restoreClient(id: $id) { id archived } }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(data["restoreClient"]["archived"], false);
    assert_eq!(text(&su, &archived_at).await, None);
    assert_eq!(
        audited(&su, "restoreClient", &w.adidas.to_string()).await,
        1
    );

    // Restored with its campaigns, and as it was before.
    let read = ok(
        &app,
        &admin,
        "query($id: ID!) { client(id: $id) { slug archived campaigns { edges { node { id } } } } }",
        json!({ "id": w.adidas.to_string() }),
    )
    .await;
    assert_eq!(read["client"]["slug"], "adidas");
    assert_eq!(read["client"]["archived"], false);
    assert_eq!(
        node_ids(&read["client"]["campaigns"]),
        strings(&w.adidas_campaigns)
    );
}

#[tokio::test]
async fn an_archived_client_leaves_the_lists_unless_asked_for_and_takes_no_new_content() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let adidas = w.adidas.to_string();
    let campaign = w.adidas_campaigns[0].to_string();
    let list = "query($all: Boolean) { clients(first: 100, includeArchived: $all) { totalCount nodes { id archived } } }";
    let ids = |d: &Value| -> BTreeSet<String> {
        d["clients"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = ok(&app, &owner, list, json!({})).await;
    assert!(ids(&before).contains(&adidas));

    ok(
        &app,
        &owner,
        "mutation($id: ID!) { archiveClient(id: $id) { archived } }",
        json!({ "id": adidas }),
    )
    .await;
    let hidden = ok(&app, &owner, list, json!({})).await;
    assert!(!ids(&hidden).contains(&adidas), "{hidden}");
    assert_eq!(
        hidden["clients"]["totalCount"].as_u64(),
        Some(ids(&hidden).len() as u64)
    );
    let all = ok(&app, &owner, list, json!({ "all": true })).await;
    assert_eq!(ids(&all), ids(&before), "{all}");
    // Still readable by id, with its content.
    let read = ok(
        &app,
        &owner,
        "query($id: ID!) { client(id: $id) { archived campaigns { totalCount } } }",
        json!({ "id": adidas }),
    )
    .await;
    assert_eq!(read["client"]["archived"], true);

    // No new campaign, persona or agent run for it, and nothing written.
    let rows = format!(
        "SELECT (SELECT count(*) FROM tenant_b.campaigns WHERE client_id = '{adidas}')
              + (SELECT count(*) FROM tenant_b.entity_data WHERE client_id = '{adidas}')
              + (SELECT count(*) FROM tenant_b.outputs WHERE client_id = '{adidas}')
              + (SELECT count(*) FROM public.audit_log)"
    );
    let stored = scalar(&su, &rows).await;
    for (what, q, vars) in [
        (
            "a campaign",
            "mutation($c: ID!) { createCampaign(input: {clientId: $c, name: \"late\"}) { id } }",
            json!({ "c": adidas }),
        ),
        (
            "a persona",
            "mutation($c: ID!) { createPersona(input: {clientId: $c, name: \"late\"}) { id } }",
            json!({ "c": adidas }),
        ),
        (
            "an agent run",
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            json!({ "c": campaign }),
        ),
    ] {
        let (status, body) = app.graphql(Some(&owner), q, vars).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{what}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("archived"),
            "{what}: {body}"
        );
    }
    assert_eq!(scalar(&su, &rows).await, stored, "nothing was written");

    // Restored, it takes content again.
    ok(
        &app,
        &owner,
        "mutation($id: ID!) { restoreClient(id: $id) { archived } }",
        json!({ "id": adidas }),
    )
    .await;
    ok(
        &app,
        &owner,
        "mutation($c: ID!) { createCampaign(input: {clientId: $c, name: \"back\"}) { id } }",
        json!({ "c": adidas }),
    )
    .await;
    let back = ok(&app, &owner, list, json!({})).await;
    assert!(ids(&back).contains(&adidas));
}
