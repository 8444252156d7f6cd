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
