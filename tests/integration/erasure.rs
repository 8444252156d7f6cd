//! Erasure: `deleteClient` removes exactly the client's rows in every table
//! and writes one tombstone, for the agency's administrators only; every
//! other principal is refused and changes nothing. Checked on a digest of
//! every row of the database before and after.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};

/// Every row of every table of the database's own schemas, as
/// `(schema.table, row as JSON)`.
async fn every_row(su: &DatabaseConnection) -> BTreeSet<(String, String)> {
    let tables: Vec<String> = su
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b', 'app')
               AND c.relname <> 'seaql_migrations'"
                .to_owned(),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect();
    assert!(tables.len() >= 15, "{tables:?}");
    let mut rows = BTreeSet::new();
    for table in tables {
        for r in su
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!("SELECT row_to_json(t)::text FROM {table} t"),
            ))
            .await
            .unwrap()
        {
            rows.insert((table.clone(), r.try_get_by_index::<String>(0).unwrap()));
        }
    }
    rows
}

/// Whether a row belongs to `client`: it is the client, or names it, or
/// is one of the exports that hold its rows (`exports`: its own and the
/// organization's), or a chunk of one's file.
fn of_client(table: &str, row: &str, client: &str, exports: &BTreeSet<String>) -> bool {
    let v: Value = serde_json::from_str(row).unwrap();
    v["client_id"] == client
        || (table == "public.data_exports" && v["id"].as_str().is_some_and(|e| exports.contains(e)))
        || (table == "public.data_export_chunks"
            && v["export_id"].as_str().is_some_and(|e| exports.contains(e)))
        || (table == "tenant_b.workspace_entities" && v["id"] == client)
        // An invitation limited to this client alone.
        || (table == "public.invitations" && v["client_ids"] == serde_json::json!([client]))
}

#[tokio::test]
async fn delete_client_erases_exactly_the_clients_rows_and_leaves_a_tombstone() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let nike = w.nike.to_string();
    // A run of nike's still queued, an API key and an assignment limited
    // to nike, and its audit rows, beside adidas' and the other tenants'.
    su.execute_unprepared(&format!(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status)
           SELECT org_id, gen_random_uuid(), client_id, id, 'BRAND_VOICE', 'QUEUED'
           FROM tenant_b.campaigns WHERE client_id = '{nike}' LIMIT 1"
    ))
    .await
    .unwrap();
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
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
    ok(&app, &key, "{ campaigns { totalCount } }", json!({})).await;
    let refused = [
        (app.token(w.strategist, Some(w.agency1.id)), "FORBIDDEN"),
        (
            app.token(w.account_manager, Some(w.agency1.id)),
            "FORBIDDEN",
        ),
        (app.token(w.viewer, Some(w.agency1.id)), "FORBIDDEN"),
        (app.token(w.agency2.owner, Some(w.agency2.id)), "NOT_FOUND"),
        (app.token(w.sme1.owner, Some(w.sme1.id)), "NOT_FOUND"),
    ];
    // Every caller has made a request (so signing in changes nothing more).
    for (token, _) in &refused {
        ok(&app, token, "{ me { role } }", json!({})).await;
    }
    ok(&app, &owner, "{ me { role } }", json!({})).await;

    let before = every_row(&su).await;
    let delete = "mutation($id: ID!) { deleteClient(id: $id) }";
    for (token, code) in &refused {
        let (_, body) = app
            .graphql(Some(token), delete, json!({ "id": nike }))
            .await;
        assert_eq!(error_code(&body), Some(*code), "{body}");
    }
    // An id that exists nowhere answers as another tenant's does.
    let (_, body) = app
        .graphql(
            Some(&owner),
            delete,
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(
        every_row(&su).await,
        before,
        "a refused erasure changed rows"
    );

    let data = ok(&app, &owner, delete, json!({ "id": nike })).await;
    assert_eq!(data["deleteClient"], nike);
    let after = every_row(&su).await;

    let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
    let agency = w.agency1.id.to_string();
    let exports: BTreeSet<String> = before
        .iter()
        .filter(|(t, _)| t == "public.data_exports")
        .filter_map(|(_, r)| {
            let v: Value = serde_json::from_str(r).unwrap();
            (v["client_id"] == nike || (v["client_id"].is_null() && v["org_id"] == agency))
                .then(|| v["id"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(!exports.is_empty());
    let expected: BTreeSet<_> = before
        .iter()
        .filter(|(t, r)| of_client(t, r, &nike, &exports))
        .cloned()
        .collect();
    assert_eq!(removed, expected, "removed rows other than nike's");
    let tables: BTreeSet<&str> = removed.iter().map(|(t, _)| t.as_str()).collect();
    for t in [
        "tenant_b.workspace_entities",
        "tenant_b.campaigns",
        "tenant_b.outputs",
        "tenant_b.entity_data",
        "tenant_b.client_assignments",
        "public.api_keys",
        "public.audit_log",
        "public.data_exports",
        "public.data_export_chunks",
    ] {
        assert!(
            tables.contains(t),
            "nothing of nike removed from {t}: {tables:?}"
        );
    }
    // One row added: the tombstone, naming only the client's id.
    let added: Vec<_> = after.difference(&before).collect();
    assert_eq!(added.len(), 1, "{added:#?}");
    let (table, row) = added[0];
    assert_eq!(table, "public.audit_log");
    let row: Value = serde_json::from_str(row).unwrap();
    assert_eq!(row["operation"], "deleteClient");
    assert_eq!(row["client_id"], nike.as_str());
    assert_eq!(row["target_id"], nike.as_str());
    assert_eq!(row["actor_user_id"], w.agency1.owner.to_string());
    assert_eq!(row["details"], json!({}));

    // The client is gone for everyone; adidas is whole.
    let data = ok(
        &app,
        &owner,
        "query($id: ID) { client(id: $id) { id } clients { nodes { slug campaigns { totalCount } } } }",
        json!({ "id": nike }),
    )
    .await;
    assert!(data["client"].is_null());
    assert_eq!(
        data["clients"]["nodes"],
        json!([{ "slug": "adidas", "campaigns": { "totalCount": 2 } }])
    );
    // In the database, the agency's administrators may delete audit rows
    // about a client, never a tombstone.
    {
        use sea_orm::ConnectionTrait as _;
        let ctx = strata_persistence::context::resolve_for(
            &app.db,
            w.agency1.owner,
            Some(w.agency1.id),
            "erasure-test",
        )
        .await
        .unwrap();
        let tx = strata_persistence::TenantTx::begin(&app.db, &ctx)
            .await
            .unwrap();
        let tombstones = tx
            .execute_unprepared("DELETE FROM public.audit_log WHERE operation = 'deleteClient'")
            .await
            .unwrap();
        assert_eq!(tombstones.rows_affected(), 0);
        let adidas = tx
            .execute_unprepared(&format!(
                "DELETE FROM public.audit_log WHERE client_id = '{}'",
                w.adidas
            ))
            .await
            .unwrap();
        assert!(adidas.rows_affected() > 0);
        tx.rollback().await.unwrap();
    }
    // Its key no longer opens anything.
    let (status, body) = app
        .graphql(Some(&key), "{ campaigns { totalCount } }", json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
    // Erasing it again: not found, nothing changes.
    let (_, body) = app
        .graphql(Some(&owner), delete, json!({ "id": nike }))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    assert_eq!(every_row(&su).await, after);
}

#[tokio::test]
async fn delete_organization_erases_exactly_its_rows_in_both_schemas_for_its_owner_only() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    su.execute_unprepared(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status)
           SELECT org_id, gen_random_uuid(), client_id, id, 'BRAND_VOICE', 'RUNNING' FROM tenant_b.campaigns;
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status)
           SELECT org_id, gen_random_uuid(), id, 'BRAND_VOICE', 'QUEUED' FROM public.campaigns",
    )
    .await
    .unwrap();
    for (org, owner, admin) in [
        (w.sme1.id, w.sme1.owner, None),
        (w.agency1.id, w.agency1.owner, Some(w.admin)),
    ] {
        let org = org.to_string();
        let token = app.token(owner, Some(org.parse().unwrap()));
        let slug = ok(&app, &token, "{ me { organization { slug } } }", json!({}))
            .await["me"]["organization"]["slug"]
            .as_str()
            .unwrap()
            .to_owned();
        let delete = "mutation($s: String!) { deleteOrganization(confirmSlug: $s) }";
        let admin = admin.map(|a| app.token(a, Some(org.parse().unwrap())));
        if let Some(admin) = &admin {
            ok(&app, admin, "{ me { role } }", json!({})).await;
        }
        let before = every_row(&su).await;
        // An admin may not; a wrong slug erases nothing.
        if let Some(admin) = &admin {
            let (_, body) = app.graphql(Some(admin), delete, json!({ "s": slug })).await;
            assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        }
        for wrong in ["", "not-it", "SME-1"] {
            let (_, body) = app
                .graphql(Some(&token), delete, json!({ "s": wrong }))
                .await;
            assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
            assert_eq!(body["errors"][0]["extensions"]["field"], "confirmSlug");
        }
        assert_eq!(
            every_row(&su).await,
            before,
            "a refused erasure changed rows"
        );

        let data = ok(&app, &token, delete, json!({ "s": slug })).await;
        assert_eq!(data["deleteOrganization"], org.as_str());
        let after = every_row(&su).await;
        let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
        let expected: BTreeSet<_> = before
            .iter()
            .filter(|(t, r)| {
                let v: Value = serde_json::from_str(r).unwrap();
                v["org_id"] == org.as_str()
                    || (t == "public.organizations" && v["id"] == org.as_str())
            })
            .cloned()
            .collect();
        assert_eq!(
            removed, expected,
            "{slug}: removed rows of other organizations"
        );
        assert!(removed.len() > 10, "{slug}: {}", removed.len());
        assert!(
            removed.iter().any(|(t, _)| t == "public.memberships")
                && removed.iter().any(|(t, _)| t == "public.audit_log"),
            "{slug}"
        );
        let added: Vec<_> = after.difference(&before).collect();
        assert!(added.is_empty(), "{slug}: {added:#?}");
        // Its owner's account stays.
        assert!(
            after
                .iter()
                .any(|(t, r)| t == "public.users" && r.contains(&owner.to_string()))
        );
    }
}

#[tokio::test]
async fn delete_account_ends_exactly_the_users_memberships_and_personal_data() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let user = w.account_manager;
    let u = user.to_string();
    // Also a co-owner of SME-1, seen with an e-mail and a name.
    su.execute_unprepared(&format!(
        "INSERT INTO public.memberships (org_id, user_id, org_type, role) VALUES ('{}', '{u}', 'SME', 'OWNER')",
        w.sme1.id
    ))
    .await
    .unwrap();
    let signed = |org: Option<String>| {
        let mut claims = json!({"sub": u, "exp": 4_000_000_000_i64, "iat": 1_700_000_000_i64,
                                "email": "am@example.com", "name": "Alex Manager"});
        if let Some(org) = org {
            claims["org_id"] = json!(org);
        }
        strata_tests::signed(&claims)
    };
    let token = signed(Some(w.agency1.id.to_string()));
    ok(
        &app,
        &token,
        "{ me { memberships { user { email name } } } }",
        json!({}),
    )
    .await;
    let delete = "mutation { deleteAccount }";

    // The last owner of an organization may not: nothing changes.
    let sole = app.token(w.sme2.owner, Some(w.sme2.id));
    let before = every_row(&su).await;
    let (_, body) = app.graphql(Some(&sole), delete, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        every_row(&su).await,
        before,
        "a refused deletion changed rows"
    );
    // An API key has no account.
    let key = ok(
        &app,
        &app.token(w.sme1.owner, Some(w.sme1.id)),
        "mutation { createApiKey(input: {name: \"k\"}) { secret } }",
        json!({}),
    )
    .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app.graphql(Some(&key), delete, json!({})).await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    let before = every_row(&su).await;
    assert!(
        before
            .iter()
            .any(|(t, r)| t == "public.users" && r.contains("am@example.com"))
    );
    let data = ok(&app, &token, delete, json!({})).await;
    assert_eq!(data["deleteAccount"], u.as_str());
    let after = every_row(&su).await;
    let removed: BTreeSet<_> = before.difference(&after).cloned().collect();
    let added: BTreeSet<_> = after.difference(&before).cloned().collect();
    let theirs = |t: &str, r: &str| {
        let v: Value = serde_json::from_str(r).unwrap();
        match t {
            "public.memberships" | "tenant_b.client_assignments" => v["user_id"] == u.as_str(),
            "public.users" => v["id"] == u.as_str(),
            _ => false,
        }
    };
    let expected: BTreeSet<_> = before
        .iter()
        .filter(|(t, r)| theirs(t, r))
        .cloned()
        .collect();
    assert_eq!(removed, expected, "removed rows other than the user's");
    let tables: BTreeSet<&str> = removed.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tables,
        BTreeSet::from([
            "public.memberships",
            "public.users",
            "tenant_b.client_assignments"
        ])
    );
    // What was added: the user's row without the e-mail, and one audit row
    // per organization left, naming the user by id only.
    for (t, r) in &added {
        let v: Value = serde_json::from_str(r).unwrap();
        match t.as_str() {
            "public.users" => {
                assert_eq!(v["id"], u.as_str());
                assert!(v["email"].is_null(), "{r}");
            }
            "public.audit_log" => {
                assert_eq!(v["operation"], "deleteAccount", "{r}");
                assert_eq!(v["actor_user_id"], u.as_str(), "{r}");
                assert!(!r.contains("am@example.com") && !r.contains("Alex"), "{r}");
            }
            other => panic!("an unexpected row in {other}: {r}"),
        }
    }
    assert_eq!(
        added
            .iter()
            .filter(|(t, _)| t == "public.audit_log")
            .count(),
        2
    );
    // Their earlier audit rows stay, under the same pseudonymous id; no
    // row anywhere holds their e-mail or name.
    assert!(
        after
            .iter()
            .all(|(_, r)| !r.contains("am@example.com") && !r.contains("Alex Manager"))
    );
    // The old token no longer works.
    let (status, _) = app
        .graphql(Some(&token), "{ me { role } }", json!({}))
        .await;
    assert_eq!(status, 401);
}
