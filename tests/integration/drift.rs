//! Drift between the layers: when the database refuses (SQLSTATE 42501) a
//! write the application allowed, the request fails as `INTERNAL`, nothing
//! is written, and `strata_isolation_drift_total{operation,table}` counts
//! it.

use sea_orm::ConnectionTrait;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, scalar};

#[tokio::test]
async fn a_write_the_database_refuses_is_internal_and_counted_as_drift() {
    let app = TestApp::spawn().await;
    let su = app.test_db.superuser().await;
    let w = World::seed(&app.db, &su).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let create = "mutation { createCampaign(input: {name: \"drift\"}) { id } }";
    let series = r#"strata_isolation_drift_total{operation="insert",table="public.campaigns"}"#;

    // The layers agree: the campaign is written, nothing is counted.
    let before = app.metric(series).await;
    let (status, body) = app
        .graphql(Some(&token), create, serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(app.metric(series).await, before);

    // The database now disagrees with the application about SME-1 writing
    // campaigns (as if a policy had drifted from the code).
    su.execute_unprepared(
        "CREATE POLICY drifted ON public.campaigns AS RESTRICTIVE FOR INSERT TO app_sme WITH CHECK (false)",
    )
    .await
    .unwrap();
    let stored = "SELECT count(*) FROM public.campaigns WHERE name = 'drift'";
    let rows = scalar(&su, stored).await;
    let (status, body) = app
        .graphql(Some(&token), create, serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    let text = body.to_string();
    assert!(
        !text.contains("row-level") && !text.contains("42501") && !text.contains("campaigns"),
        "nothing of the database's refusal reaches the client: {text}"
    );
    assert_eq!(scalar(&su, stored).await, rows, "nothing was written");
    // At least once: other tests of this process may count the same
    // series (the recorder is shared).
    assert!(
        app.metric(series).await >= before + 1.0,
        "the drift is counted"
    );
}

#[tokio::test]
async fn a_write_the_database_filters_to_no_row_is_internal_and_counted_as_drift() {
    let app = TestApp::spawn().await;
    let su = app.test_db.superuser().await;
    let w = World::seed(&app.db, &su).await;
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let agency = app.token(w.agency1.owner, Some(w.agency1.id));
    let campaign = w.sme1.campaigns[0];
    let persona = w.personas.nike;
    let rename = format!(
        "mutation {{ updateCampaign(input: {{id: \"{campaign}\", name: \"drifted\"}}) {{ id }} }}"
    );
    let delete = format!("mutation {{ deletePersona(id: \"{persona}\") }}");
    let updates = r#"strata_isolation_drift_total{operation="update",table="public.campaigns"}"#;
    let deletes =
        r#"strata_isolation_drift_total{operation="delete",table="tenant_b.entity_data"}"#;
    let audit_rows = "SELECT count(*) FROM public.audit_log";

    // The database lets each role read these rows but no longer change
    // them: its write policies have drifted from its read policies.
    su.execute_unprepared(
        "CREATE POLICY drifted ON public.campaigns AS RESTRICTIVE FOR UPDATE TO app_sme USING (false); \
         CREATE POLICY drifted ON tenant_b.entity_data AS RESTRICTIVE FOR DELETE TO app_agency USING (false)",
    )
    .await
    .unwrap();
    let (before_updates, before_deletes) = (app.metric(updates).await, app.metric(deletes).await);
    let audits = scalar(&su, audit_rows).await;

    let (status, body) = app
        .graphql(Some(&sme), &rename, serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");
    let (status, body) = app
        .graphql(Some(&agency), &delete, serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_code(&body), Some("INTERNAL"), "{body}");

    assert!(
        app.metric(updates).await >= before_updates + 1.0,
        "the update is counted"
    );
    assert!(
        app.metric(deletes).await >= before_deletes + 1.0,
        "the delete is counted"
    );
    let name = format!(
        "SELECT count(*) FROM public.campaigns WHERE id = '{campaign}' AND name = 'drifted'"
    );
    assert_eq!(scalar(&su, &name).await, 0, "the campaign is unchanged");
    let kept = format!("SELECT count(*) FROM tenant_b.entity_data WHERE id = '{persona}'");
    assert_eq!(scalar(&su, &kept).await, 1, "the persona is still there");
    assert_eq!(
        scalar(&su, audit_rows).await,
        audits,
        "no audit row for what did not happen"
    );

    // A row that is really gone is still just "not found", not drift.
    let gone = format!(
        "mutation {{ updateCampaign(input: {{id: \"{}\", name: \"x\"}}) {{ id }} }}",
        uuid::Uuid::new_v4()
    );
    let (_, body) = app.graphql(Some(&sme), &gone, serde_json::json!({})).await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
}
