//! Retention: `updateOrganization(input: {retentionDays})` and the sweep
//! that deletes older finished runs of the organizations that set one, in
//! each organization's own transaction, once, with one audit row per
//! organization it touched; several sweeps at once delete nothing twice.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar};

/// Old and recent runs, finished and not, for every organization's first
/// campaign.
async fn seed_runs(su: &sea_orm::DatabaseConnection) {
    su.execute_unprepared(
        "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, created_at)
           SELECT org_id, gen_random_uuid(), id, 'BRAND_VOICE', s, now() - (d || ' days')::interval
           FROM public.campaigns,
                (VALUES ('SUCCEEDED', 40), ('FAILED', 40), ('QUEUED', 40), ('SUCCEEDED', 5)) v(s, d);
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, created_at)
           SELECT org_id, gen_random_uuid(), client_id, id, 'BRAND_VOICE', s, now() - (d || ' days')::interval
           FROM tenant_b.campaigns,
                (VALUES ('SUCCEEDED', 40), ('CANCELLED', 40), ('RUNNING', 40), ('SUCCEEDED', 5)) v(s, d);",
    )
    .await
    .unwrap();
}

const OLD_FINISHED: &str =
    "status IN ('SUCCEEDED', 'FAILED', 'CANCELLED') AND created_at < now() - interval '30 days'";

#[tokio::test]
async fn the_sweep_deletes_only_old_finished_runs_of_organizations_that_keep_runs_for_a_while() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    seed_runs(&su).await;
    let set =
        "mutation($d: Int!) { updateOrganization(input: {retentionDays: $d}) { retentionDays } }";
    // Bad input, and a role that may not.
    let sme_owner = app.token(w.sme1.owner, Some(w.sme1.id));
    for bad in [-1, 3651] {
        let (_, body) = app
            .graphql(Some(&sme_owner), set, json!({ "d": bad }))
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "retentionDays");
    }
    let strategist = app.token(w.sme1_strategist, Some(w.sme1.id));
    let (_, body) = app
        .graphql(Some(&strategist), set, json!({ "d": 30 }))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM public.organizations WHERE retention_days IS NOT NULL"
        )
        .await,
        0
    );
    // SME-1 and AGENCY-1 keep runs for 30 days; SME-2 and AGENCY-2 for ever.
    let on = ok(&app, &sme_owner, set, json!({ "d": 30 })).await;
    assert_eq!(on["updateOrganization"]["retentionDays"], 30);
    let agency_admin = app.token(w.admin, Some(w.agency1.id));
    ok(&app, &agency_admin, set, json!({ "d": 30 })).await;

    let count = |table: &str, org: String, filter: &str| {
        format!("SELECT count(*) FROM {table} WHERE org_id = '{org}' AND {filter}")
    };
    let kept_before = [
        scalar(
            &su,
            &count("public.agent_outputs", w.sme2.id.to_string(), OLD_FINISHED),
        )
        .await,
        scalar(
            &su,
            &count("tenant_b.outputs", w.agency2.id.to_string(), OLD_FINISHED),
        )
        .await,
    ];
    assert!(kept_before.iter().all(|n| *n > 0));
    let unfinished_before = scalar(
        &su,
        "SELECT (SELECT count(*) FROM public.agent_outputs WHERE status IN ('QUEUED', 'RUNNING'))
              + (SELECT count(*) FROM tenant_b.outputs WHERE status IN ('QUEUED', 'RUNNING'))",
    )
    .await;
    let recent_before = scalar(
        &su,
        "SELECT (SELECT count(*) FROM public.agent_outputs WHERE created_at > now() - interval '10 days')
              + (SELECT count(*) FROM tenant_b.outputs WHERE created_at > now() - interval '10 days')",
    )
    .await;
    let to_go = [
        scalar(
            &su,
            &count("public.agent_outputs", w.sme1.id.to_string(), OLD_FINISHED),
        )
        .await,
        scalar(
            &su,
            &count("tenant_b.outputs", w.agency1.id.to_string(), OLD_FINISHED),
        )
        .await,
    ];
    assert!(to_go.iter().all(|n| *n > 0));

    // Three sweeps at once, as three replicas would: each row goes once.
    let (a, b, c) = tokio::join!(
        strata_persistence::retention::sweep(&app.db),
        strata_persistence::retention::sweep(&app.db),
        strata_persistence::retention::sweep(&app.db),
    );
    let results = [a.unwrap(), b.unwrap(), c.unwrap()];
    let deleted: u64 = results
        .iter()
        .flat_map(|r| r.organizations.iter().map(|(_, n)| *n))
        .sum();
    assert_eq!(deleted, u64::try_from(to_go[0] + to_go[1]).unwrap());
    for (table, org) in [
        ("public.agent_outputs", w.sme1.id.to_string()),
        ("tenant_b.outputs", w.agency1.id.to_string()),
    ] {
        assert_eq!(
            scalar(&su, &count(table, org.clone(), OLD_FINISHED)).await,
            0
        );
        // One audit row for the organization, however many sweeps ran.
        assert_eq!(
            scalar(&su, &format!("SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' AND operation = 'retentionSweep' AND actor_user_id IS NULL AND actor_api_key_id IS NULL")).await,
            1
        );
    }
    // Nothing else changed: the other organizations' old runs, every
    // unfinished run and every recent one are still there.
    assert_eq!(
        [
            scalar(
                &su,
                &count("public.agent_outputs", w.sme2.id.to_string(), OLD_FINISHED)
            )
            .await,
            scalar(
                &su,
                &count("tenant_b.outputs", w.agency2.id.to_string(), OLD_FINISHED)
            )
            .await,
        ],
        kept_before
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT (SELECT count(*) FROM public.agent_outputs WHERE status IN ('QUEUED', 'RUNNING'))
                  + (SELECT count(*) FROM tenant_b.outputs WHERE status IN ('QUEUED', 'RUNNING'))",
        )
        .await,
        unfinished_before
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT (SELECT count(*) FROM public.agent_outputs WHERE created_at > now() - interval '10 days')
                  + (SELECT count(*) FROM tenant_b.outputs WHERE created_at > now() - interval '10 days')",
        )
        .await,
        recent_before
    );
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM public.audit_log WHERE operation = 'retentionSweep'"
        )
        .await,
        2
    );
    // A second sweep finds nothing and writes nothing.
    let again = strata_persistence::retention::sweep(&app.db).await.unwrap();
    assert!(again.organizations.is_empty(), "{again:?}");
    // Off again: 0 keeps runs for ever.
    let off = ok(&app, &sme_owner, set, json!({ "d": 0 })).await;
    assert!(off["updateOrganization"]["retentionDays"].is_null());
}

#[tokio::test]
async fn the_gateway_sweeps_in_the_background() {
    let app = TestApp::builder()
        .retention_sweep_interval(Duration::from_millis(300))
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    seed_runs(&su).await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    ok(
        &app,
        &owner,
        "mutation { updateOrganization(input: {retentionDays: 7}) { retentionDays } }",
        json!({}),
    )
    .await;
    let old = format!(
        "SELECT count(*) FROM public.agent_outputs WHERE org_id = '{}' AND {OLD_FINISHED}",
        w.sme1.id
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scalar(&su, &old).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweep did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An organization that keeps its runs keeps them.
    let kept = format!(
        "SELECT count(*) FROM public.agent_outputs WHERE org_id = '{}' AND {OLD_FINISHED}",
        w.sme2.id
    );
    assert!(scalar(&su, &kept).await > 0);
}
