//! Data exports: `exportOrganization` and `exportClient` write a JSON
//! Lines file holding exactly the rows of their scope, counted against the
//! database table by table (every table of the catalog that names an
//! organization); the file is downloaded from `GET /exports/{id}` by the
//! organization's owners and admins only, is followed by the `dataExport`
//! query and subscription, expires, goes with an erased client, and is
//! written the same way by `strata export`.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser as _;
use futures_util::SinkExt as _;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const EXPORT_ORG: &str =
    "mutation { exportOrganization { id status rowCount bytes expiresAt clientId downloadUrl } }";
const EXPORT_CLIENT: &str =
    "mutation($id: ID!) { exportClient(id: $id) { id status rowCount bytes expiresAt clientId } }";
const READ: &str = "query($id: ID!) { dataExport(id: $id) { id status rowCount bytes error downloadUrl finishedAt } }";

/// Follows an export until it is no longer running.
async fn ended(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..300 {
        let data = ok(app, token, READ, json!({ "id": id })).await;
        if data["dataExport"]["status"] != "RUNNING" {
            return data["dataExport"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("export {id} still running");
}

/// `GET /exports/{id}` with `token`: the status, the content type and the
/// body.
async fn download(app: &TestApp, token: Option<&str>, id: &str) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(format!("{}/exports/{id}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, media, resp.text().await.unwrap())
}

/// The file's lines, parsed; the header first and the footer last.
fn lines(file: &str) -> Vec<Value> {
    assert!(file.ends_with('\n'), "the file ends with a whole line");
    file.lines()
        .map(|l| serde_json::from_str(l).expect("every line is one JSON object"))
        .collect()
}

/// Every table of the database's own schemas whose rows name an
/// organization (`org_id`, or `id` for the organizations), the exports'
/// own tables apart.
async fn tenant_tables(su: &DatabaseConnection) -> Vec<String> {
    let rows = su
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT format('%I.%I', c.table_schema, c.table_name) FROM information_schema.columns c
             JOIN information_schema.tables t USING (table_schema, table_name)
             WHERE t.table_type = 'BASE TABLE' AND c.table_schema IN ('public', 'tenant_b')
               AND c.column_name = 'org_id'
               AND c.table_name NOT IN ('data_exports', 'data_export_chunks')
             ORDER BY 1"
                .to_owned(),
        ))
        .await
        .unwrap();
    let mut tables: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    tables.push("public.organizations".to_owned());
    assert!(tables.len() >= 15, "{tables:?}");
    tables
}

/// Whether `table` has a column `column`.
async fn has_column(su: &DatabaseConnection, table: &str, column: &str) -> bool {
    let (schema, name) = table.split_once('.').unwrap();
    scalar(
        su,
        &format!(
            "SELECT count(*) FROM information_schema.columns
             WHERE table_schema = '{schema}' AND table_name = '{name}' AND column_name = '{column}'"
        ),
    )
    .await
        == 1
}

/// The rows of each table the database holds for an organization, or for
/// one of its clients: the rows naming the client (`client_id`, or
/// `client_ids` listing it), and the client's own row.
async fn counts_in_database(
    su: &DatabaseConnection,
    org: &str,
    client: Option<&str>,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for table in tenant_tables(su).await {
        let org_filter = if table == "public.organizations" {
            format!("id = '{org}'")
        } else {
            format!("org_id = '{org}'")
        };
        let filter = match client {
            None => org_filter,
            Some(c) if table == "tenant_b.workspace_entities" => {
                format!("{org_filter} AND id = '{c}'")
            }
            Some(c) if has_column(su, &table, "client_id").await => {
                format!("{org_filter} AND client_id = '{c}'")
            }
            Some(c) if has_column(su, &table, "client_ids").await => {
                format!("{org_filter} AND '{c}' = ANY (client_ids)")
            }
            // Not a client's: none of it in a client's export.
            Some(_) => "false".to_owned(),
        };
        let n = scalar(su, &format!("SELECT count(*) FROM {table} WHERE {filter}")).await;
        if n > 0 {
            out.insert(table, n);
        }
    }
    out
}

/// Checks a file against the database's counts (`expected`, from
/// [`counts_in_database`]): its header, its footer, and, table by table,
/// as many rows as the database holds in the scope, each of the
/// organization (and the client), none with a secret.
fn check_file(
    file: &str,
    org: &str,
    client: Option<&str>,
    export_id: Option<&str>,
    expected: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let lines = lines(file);
    let (header, rest) = lines.split_first().unwrap();
    let (footer, rows) = rest.split_last().unwrap();
    assert_eq!(header["type"], "header", "{header}");
    assert_eq!(header["format"], "strata-export");
    assert_eq!(header["version"], 1);
    assert_eq!(header["orgId"], org);
    assert_eq!(header["clientId"], client.map_or(Value::Null, |c| json!(c)));
    if let Some(id) = export_id {
        assert_eq!(header["exportId"], id);
    }
    assert_eq!(footer["type"], "footer", "{footer}");
    assert_eq!(footer["rowCount"], rows.len());
    let mut in_file: BTreeMap<String, i64> = BTreeMap::new();
    for line in rows {
        assert_eq!(line["type"], "row", "{line}");
        let table = line["table"].as_str().unwrap();
        let row = &line["row"];
        *in_file.entry(table.to_owned()).or_default() += 1;
        let owner = if table == "public.organizations" {
            &row["id"]
        } else {
            &row["org_id"]
        };
        assert_eq!(owner, org, "a row of another organization: {line}");
        if let Some(c) = client {
            let of_client = row["client_id"] == c
                || (table == "tenant_b.workspace_entities" && row["id"] == c)
                || row["client_ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i == c));
            assert!(of_client, "a row of another client: {line}");
        }
        assert!(row.get("key_hash").is_none() && row.get("previous_key_hash").is_none());
    }
    let footer_counts: BTreeMap<String, i64> =
        serde_json::from_value::<BTreeMap<String, i64>>(footer["tables"].clone())
            .unwrap()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
    assert_eq!(footer_counts, in_file, "the footer counts the file's rows");
    assert_eq!(
        &in_file, expected,
        "the file holds the database's rows of the scope, table by table"
    );
    in_file
}

#[tokio::test]
async fn an_organizations_export_holds_exactly_its_rows_for_both_tenant_types() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    for org in [&w.sme1, &w.agency1] {
        let token = app.token(org.owner, Some(org.id));
        let started = ok(&app, &token, EXPORT_ORG, json!({})).await["exportOrganization"].clone();
        assert_eq!(started["status"], "RUNNING", "{started}");
        assert!(started["clientId"].is_null() && started["downloadUrl"].is_null());
        let id = started["id"].as_str().unwrap().to_owned();
        let done = ended(&app, &token, &id).await;
        assert_eq!(done["status"], "READY", "{done}");
        assert_eq!(done["downloadUrl"], format!("/exports/{id}"));
        // Counted before the download, which writes its own audit row (a
        // HEAD writes none).
        let expected = counts_in_database(&su, &org.id.to_string(), None).await;
        let head = reqwest::Client::new()
            .head(format!("{}/exports/{id}", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
        let (status, media, file) = download(&app, Some(&token), &id).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(media, "application/x-ndjson");
        assert_eq!(done["bytes"].as_u64(), Some(file.len() as u64));
        assert_eq!(
            done["rowCount"].as_i64(),
            Some(expected.values().sum::<i64>())
        );
        // Everything of the organization, every table it has rows in.
        let counted = check_file(&file, &org.id.to_string(), None, Some(&id), &expected);
        assert!(counted.len() >= 8, "{counted:?}");
        // Nothing of the other tenants, not even their ids.
        for other in [&w.sme1, &w.sme2, &w.agency1, &w.agency2] {
            if other.id != org.id {
                assert!(!file.contains(&other.id.to_string()));
            }
        }
        // The start and the download are audited.
        for operation in ["exportOrganization", "downloadExport"] {
            assert_eq!(
                scalar(
                    &su,
                    &format!(
                        "SELECT count(*) FROM public.audit_log WHERE org_id = '{}' \
                         AND operation = '{operation}' AND target_id = '{id}'",
                        org.id
                    )
                )
                .await,
                1,
                "{operation}"
            );
        }
    }
}

#[tokio::test]
async fn a_clients_export_holds_only_that_clients_rows() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    // An API key limited to nike and adidas is about both; one limited to
    // adidas alone is not nike's.
    for clients in [json!([w.nike, w.adidas]), json!([w.adidas])] {
        ok(
            &app,
            &owner,
            "mutation($c: [ID!]) { createApiKey(input: {name: \"feed\", clientIds: $c}) { secret } }",
            json!({ "c": clients }),
        )
        .await;
    }
    let nike = w.nike.to_string();
    let started =
        ok(&app, &owner, EXPORT_CLIENT, json!({ "id": nike })).await["exportClient"].clone();
    assert_eq!(started["clientId"], nike);
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(ended(&app, &owner, &id).await["status"], "READY");
    let org = w.agency1.id.to_string();
    let expected = counts_in_database(&su, &org, Some(&nike)).await;
    let (status, _, file) = download(&app, Some(&owner), &id).await;
    assert_eq!(status, 200, "{file}");
    let counted = check_file(&file, &org, Some(&nike), Some(&id), &expected);
    for table in [
        "tenant_b.workspace_entities",
        "tenant_b.campaigns",
        "tenant_b.entity_data",
        "public.api_keys",
        "public.audit_log",
    ] {
        assert!(counted.contains_key(table), "{table}: {counted:?}");
    }
    // Nothing of the organization's own rows, nor of other clients'.
    assert!(!counted.contains_key("public.organizations"));
    assert!(!counted.contains_key("public.memberships"));
    let adidas_rows = scalar(
        &su,
        &format!(
            "SELECT count(*) FROM tenant_b.campaigns WHERE client_id = '{}'",
            w.adidas
        ),
    )
    .await;
    assert!(adidas_rows > 0);
    for line in lines(&file) {
        assert_ne!(line["row"]["client_id"], w.adidas.to_string(), "{line}");
    }
}

#[tokio::test]
async fn only_the_organizations_owners_and_admins_export_follow_and_download() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let admin = app.token(w.admin, Some(w.agency1.id));
    let nike = w.nike.to_string();
    let id = ok(&app, &owner, EXPORT_ORG, json!({})).await["exportOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ended(&app, &owner, &id).await["status"], "READY");
    let key = ok(
        &app,
        &owner,
        "mutation($c: ID) { createApiKey(input: {name: \"nike feed\", clientId: $c}) { secret } }",
        json!({ "c": nike }),
    )
    .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let exports_before = scalar(&su, "SELECT count(*) FROM public.data_exports").await;

    // Other roles of the agency, and its client-limited key: refused.
    let members = [
        app.token(w.strategist, Some(w.agency1.id)),
        app.token(w.account_manager, Some(w.agency1.id)),
        app.token(w.viewer, Some(w.agency1.id)),
        key,
    ];
    for token in &members {
        let (_, body) = app.graphql(Some(token), EXPORT_ORG, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        let (_, body) = app
            .graphql(Some(token), EXPORT_CLIENT, json!({ "id": nike }))
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        let (_, body) = app.graphql(Some(token), READ, json!({ "id": id })).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        let (status, _, body) = download(&app, Some(token), &id).await;
        assert_eq!(status, 403, "{body}");
    }
    // Other tenants: another agency's client, a client of an SME, an
    // export of another organization, an id of nothing: all not found.
    let stranger = app.token(w.agency2.owner, Some(w.agency2.id));
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    for token in [&stranger, &sme] {
        let (_, body) = app
            .graphql(Some(token), EXPORT_CLIENT, json!({ "id": nike }))
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
        let data = ok(&app, token, READ, json!({ "id": id })).await;
        assert!(data["dataExport"].is_null());
        let (status, _, body) = download(&app, Some(token), &id).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["errors"][0]["extensions"]["code"],
            "NOT_FOUND"
        );
    }
    let nowhere = uuid::Uuid::now_v7().to_string();
    let (_, body) = app
        .graphql(Some(&owner), EXPORT_CLIENT, json!({ "id": nowhere }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    let (_, body) = app
        .graphql(Some(&owner), EXPORT_CLIENT, json!({ "id": "not-an-id" }))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    for bad in [nowhere.as_str(), "not-an-id"] {
        assert_eq!(download(&app, Some(&owner), bad).await.0, 404);
    }
    // Without a credential, or with a bad one.
    assert_eq!(download(&app, None, &id).await.0, 401);
    assert_eq!(download(&app, Some("junk"), &id).await.0, 401);
    assert_eq!(
        scalar(&su, "SELECT count(*) FROM public.data_exports").await,
        exports_before,
        "a refused export wrote a row"
    );
    // Another admin of the organization downloads it.
    let (status, _, file) = download(&app, Some(&admin), &id).await;
    assert_eq!(status, 200);
    assert_eq!(lines(&file)[0]["exportId"], id);
    // Ten exports ready for download at once are the most an
    // organization keeps: the next waits until one expires.
    su.execute_unprepared(&format!(
        "INSERT INTO public.data_exports (org_id, id, org_type, status, expires_at)
           SELECT '{}', gen_random_uuid(), 'AGENCY', 'READY', now() + interval '1 hour'
           FROM generate_series(1, 10)",
        w.agency1.id
    ))
    .await
    .unwrap();
    let (_, body) = app.graphql(Some(&owner), EXPORT_ORG, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
}

#[tokio::test]
async fn an_export_expires_fails_when_abandoned_and_goes_with_its_client() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let nike = w.nike.to_string();
    let start_org = || async {
        let id = ok(&app, &owner, EXPORT_ORG, json!({})).await["exportOrganization"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(ended(&app, &owner, &id).await["status"], "READY");
        id
    };
    // One running export at a time per organization.
    let running = ok(&app, &owner, EXPORT_ORG, json!({})).await["exportOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app.graphql(Some(&owner), EXPORT_ORG, json!({})).await;
    let refused = error_code(&body);
    assert_eq!(ended(&app, &owner, &running).await["status"], "READY");
    // (It may already have ended when the second one came.)
    assert!(matches!(refused, None | Some("BAD_USER_INPUT")), "{body}");

    // Expired: read as EXPIRED, refused with 410, deleted by the sweep.
    let expired = start_org().await;
    su.execute_unprepared(&format!(
        "UPDATE public.data_exports SET expires_at = now() - interval '1 minute' WHERE id = '{expired}'"
    ))
    .await
    .unwrap();
    assert_eq!(
        ok(&app, &owner, READ, json!({ "id": expired })).await["dataExport"]["status"],
        "EXPIRED"
    );
    let (status, _, body) = download(&app, Some(&owner), &expired).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("EXPORT_NOT_READY"), "{body}");
    let swept = strata_persistence::retention::sweep(&app.db).await.unwrap();
    assert_eq!(swept.exports, 1);
    for table in ["public.data_exports", "public.data_export_chunks"] {
        let column = if table == "public.data_exports" {
            "id"
        } else {
            "export_id"
        };
        assert_eq!(
            scalar(
                &su,
                &format!("SELECT count(*) FROM {table} WHERE {column} = '{expired}'")
            )
            .await,
            0,
            "{table}"
        );
    }

    // Abandoned (its gateway stopped while writing): read as FAILED.
    let abandoned = start_org().await;
    su.execute_unprepared(&format!(
        "UPDATE public.data_exports SET status = 'RUNNING', updated_at = now() - interval '1 hour' \
         WHERE id = '{abandoned}'"
    ))
    .await
    .unwrap();
    let read = ok(&app, &owner, READ, json!({ "id": abandoned })).await["dataExport"].clone();
    assert_eq!(read["status"], "FAILED", "{read}");
    assert!(read["error"].as_str().is_some());
    assert_eq!(download(&app, Some(&owner), &abandoned).await.0, 409);
    // One still waiting for a writer says it lives and stays running,
    // and the organization's next export waits for it; one that ended,
    // or was silent too long, cannot be touched.
    let ctx = strata_persistence::context::resolve_for(
        &app.db,
        w.agency1.owner,
        Some(w.agency1.id),
        "touch",
    )
    .await
    .unwrap();
    let read_as_owner = |id: String| {
        let (db, ctx) = (app.db.clone(), ctx.clone());
        async move {
            let tx = strata_persistence::TenantTx::begin_read_only(&db, &ctx)
                .await
                .unwrap();
            let found = strata_persistence::export::by_id(&tx, id.parse().unwrap())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            found.unwrap()
        }
    };
    let finished = read_as_owner(start_org().await).await;
    assert!(
        strata_persistence::export::touch(&app.db, &ctx, &finished)
            .await
            .is_err()
    );
    let waiting = read_as_owner(abandoned.clone()).await;
    // Silent for an hour, it stays abandoned: a writer that wakes up
    // cannot bring it back.
    assert!(
        strata_persistence::export::touch(&app.db, &ctx, &waiting)
            .await
            .is_err()
    );
    su.execute_unprepared(&format!(
        "UPDATE public.data_exports SET updated_at = now() - interval '2 minutes' \
         WHERE id = '{abandoned}'"
    ))
    .await
    .unwrap();
    strata_persistence::export::touch(&app.db, &ctx, &waiting)
        .await
        .unwrap();
    let read = ok(&app, &owner, READ, json!({ "id": abandoned })).await["dataExport"].clone();
    assert_eq!(read["status"], "RUNNING", "{read}");
    let (_, body) = app.graphql(Some(&owner), EXPORT_ORG, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    su.execute_unprepared(&format!(
        "UPDATE public.data_exports SET status = 'FAILED' WHERE id = '{abandoned}'"
    ))
    .await
    .unwrap();

    // Erasing a client takes its exports and the organization's with it.
    let of_org = start_org().await;
    let of_nike =
        ok(&app, &owner, EXPORT_CLIENT, json!({ "id": nike })).await["exportClient"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    assert_eq!(ended(&app, &owner, &of_nike).await["status"], "READY");
    let of_adidas = ok(
        &app,
        &owner,
        EXPORT_CLIENT,
        json!({ "id": w.adidas.to_string() }),
    )
    .await["exportClient"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ended(&app, &owner, &of_adidas).await["status"], "READY");
    ok(
        &app,
        &owner,
        "mutation($id: ID!) { deleteClient(id: $id) }",
        json!({ "id": nike }),
    )
    .await;
    for gone in [&of_org, &of_nike] {
        assert_eq!(download(&app, Some(&owner), gone).await.0, 404);
        assert_eq!(
            scalar(
                &su,
                &format!(
                    "SELECT count(*) FROM public.data_export_chunks WHERE export_id = '{gone}'"
                )
            )
            .await,
            0
        );
    }
    assert_eq!(download(&app, Some(&owner), &of_adidas).await.0, 200);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket signed in with `token`, subscribed to export `id`.
async fn follow(app: &TestApp, token: &str, id: &str) -> Socket {
    let url = format!("{}/graphql/ws", app.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {
        "Authorization": format!("Bearer {token}") }});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let ack = crate::agents::next_json(&mut socket).await.unwrap();
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { dataExport(id: $id) { id status rowCount bytes } }",
        "variables": { "id": id },
    }});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn the_subscription_follows_an_export_until_it_is_ready_for_its_organization_only() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let id = ok(&app, &owner, EXPORT_ORG, json!({})).await["exportOrganization"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut socket = follow(&app, &owner, &id).await;
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    loop {
        let msg = crate::agents::next_json(&mut socket).await.unwrap();
        match msg["type"].as_str() {
            Some("next") => {
                last = msg["payload"]["data"]["dataExport"].clone();
                statuses.push(last["status"].as_str().unwrap().to_owned());
            }
            Some("complete") => break,
            _ => panic!("{msg}"),
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("READY"),
        "{statuses:?}"
    );
    assert!(last["rowCount"].as_i64().unwrap() > 0, "{last}");
    assert_eq!(last["id"], id);
    // Another agency's owner is told it does not exist.
    let stranger = app.token(w.agency2.owner, Some(w.agency2.id));
    let mut socket = follow(&app, &stranger, &id).await;
    let msg = crate::agents::next_json(&mut socket).await.unwrap();
    assert_eq!(msg["type"], "next", "{msg}");
    assert!(msg["payload"]["data"].is_null(), "{msg}");
    assert_eq!(
        msg["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{msg}"
    );
}

#[tokio::test]
async fn the_operator_exports_from_the_command_line() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let dir = strata_tests::private_dir("export");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("nike.jsonl");
    let cli = |args: &[&str]| {
        let mut argv = vec!["strata", "--database-url", app.test_db.url.expose_secret()];
        argv.extend(args);
        strata_server::cli::Cli::try_parse_from(argv).unwrap()
    };
    let org = w.agency1.id.to_string();
    let nike = w.nike.to_string();
    strata_server::cli::run(cli(&[
        "export",
        "--org",
        &org,
        "--client",
        &nike,
        "--out",
        out.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    let file = std::fs::read_to_string(&out).unwrap();
    // The operator's export is audited after it is written: counted
    // without it.
    let audited = format!(
        "DELETE FROM public.audit_log WHERE org_id = '{org}' AND operation = 'exportClient'"
    );
    su.execute_unprepared(&audited).await.unwrap();
    let expected = counts_in_database(&su, &org, Some(&nike)).await;
    let counted = check_file(&file, &org, Some(&nike), None, &expected);
    assert!(counted.contains_key("tenant_b.campaigns"), "{counted:?}");
    // The whole SME organization too.
    let sme = w.sme1.id.to_string();
    let whole = dir.join("sme.jsonl");
    strata_server::cli::run(cli(&[
        "export",
        "--org",
        &sme,
        "--out",
        whole.to_str().unwrap(),
    ]))
    .await
    .unwrap();
    su.execute_unprepared(&format!(
        "DELETE FROM public.audit_log WHERE org_id = '{sme}' AND operation = 'exportOrganization'"
    ))
    .await
    .unwrap();
    let expected = counts_in_database(&su, &sme, None).await;
    check_file(
        &std::fs::read_to_string(&whole).unwrap(),
        &sme,
        None,
        None,
        &expected,
    );
    // An organization or a client that does not exist: an error, no file.
    let missing = dir.join("missing.jsonl");
    let nowhere = uuid::Uuid::now_v7().to_string();
    for args in [
        vec!["export", "--org", nowhere.as_str()],
        vec!["export", "--org", &org, "--client", nowhere.as_str()],
        vec!["export", "--org", &sme, "--client", &nike],
    ] {
        let mut args = args;
        args.extend(["--out", missing.to_str().unwrap()]);
        assert!(
            strata_server::cli::run(cli(&args)).await.is_err(),
            "{args:?}"
        );
        assert!(!missing.exists());
    }
}
