//! Token usage per client, agent and month (`usage`), as the database's own
//! sums give it, for the callers allowed to read it and only over their
//! scope.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};

/// `(client, agent, month) -> (prompt, completion, runs)` as SQL sums them.
async fn sums(
    su: &DatabaseConnection,
    sql: &str,
) -> BTreeMap<(String, String, String), (i64, i64, i64)> {
    su.query_all_raw(sea_orm::Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        sql.to_owned(),
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            (
                r.try_get_by_index::<Option<String>>(0)
                    .unwrap()
                    .unwrap_or_default(),
                r.try_get_by_index::<Option<String>>(1)
                    .unwrap()
                    .unwrap_or_default(),
                r.try_get_by_index::<Option<String>>(2)
                    .unwrap()
                    .unwrap_or_default(),
            ),
            (
                r.try_get_by_index(3).unwrap(),
                r.try_get_by_index(4).unwrap(),
                r.try_get_by_index(5).unwrap(),
            ),
        )
    })
    .collect()
}

fn rows(data: &Value) -> BTreeMap<(String, String, String), (i64, i64, i64)> {
    data["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                r["totalTokens"].as_i64().unwrap(),
                r["promptTokens"].as_i64().unwrap() + r["completionTokens"].as_i64().unwrap()
            );
            (
                (text("clientId"), text("agent"), text("month")),
                (
                    r["promptTokens"].as_i64().unwrap(),
                    r["completionTokens"].as_i64().unwrap(),
                    r["runs"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn usage_sums_tokens_and_runs_per_client_agent_and_month_within_the_callers_scope() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    // Runs over three months, of several agents, for every client.
    su.execute_unprepared(
        "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, prompt_tokens, completion_tokens, created_at)
           SELECT c.org_id, gen_random_uuid(), c.client_id, c.id, a, 'SUCCEEDED', 100 + i, 10 * i, timestamptz '2026-09-15T00:00:00Z' + i * interval '9 days'
           FROM tenant_b.campaigns c, unnest(ARRAY['BRAND_VOICE', 'CAMPAIGN_PLANNER']) a, generate_series(1, 8) i;
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, prompt_tokens, completion_tokens, created_at)
           SELECT c.org_id, gen_random_uuid(), c.id, 'BUSINESS_STRATEGY', 'SUCCEEDED', 7, 3, timestamptz '2026-10-02T00:00:00Z' + i * interval '1 day'
           FROM public.campaigns c, generate_series(1, 3) i",
    )
    .await
    .unwrap();
    let q = "query($by: [UsageDimension!]) { usage(from: \"2026-10-01T00:00:00Z\", to: \"2026-12-01T00:00:00Z\", groupBy: $by) {
               clientId agent month promptTokens completionTokens totalTokens runs } }";
    let range = "created_at >= '2026-10-01T00:00:00Z' AND created_at < '2026-12-01T00:00:00Z'";
    let month = "to_char(date_trunc('month', created_at AT TIME ZONE 'UTC'), 'YYYY-MM')";
    let agency = w.agency1.id;
    let owner = app.token(w.agency1.owner, Some(agency));
    let cases = [
        (
            json!(["CLIENT", "AGENT", "MONTH"]),
            format!("client_id::text, agent, {month}"),
            "1, 2, 3",
        ),
        (
            json!(["CLIENT"]),
            "client_id::text, NULL, NULL".to_owned(),
            "1",
        ),
        (
            json!(["MONTH", "AGENT"]),
            format!("NULL, agent, {month}"),
            "2, 3",
        ),
        (json!([]), "NULL, NULL, NULL".to_owned(), ""),
    ];
    for (by, cols, group) in &cases {
        let group = if group.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {group}")
        };
        let expected = sums(
            &su,
            &format!(
                "SELECT {cols}, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, count(*)
                 FROM tenant_b.outputs WHERE org_id = '{agency}' AND {range}{group}"
            ),
        )
        .await;
        let data = ok(&app, &owner, q, json!({ "by": by })).await;
        assert_eq!(rows(&data), expected, "{by}");
        assert_eq!(
            data["usage"].as_array().unwrap().len(),
            expected.len(),
            "{by}"
        );
        let totals: Vec<i64> = data["usage"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["totalTokens"].as_i64().unwrap())
            .collect();
        assert!(
            totals.windows(2).all(|w| w[0] >= w[1]),
            "{by}: not largest first: {totals:?}"
        );
        assert!(expected.values().all(|(_, _, runs)| *runs > 0), "{by}");
    }
    // Grouped by client, each row names its client.
    let named = ok(
        &app,
        &owner,
        "{ usage(from: \"2026-10-01T00:00:00Z\", to: \"2026-12-01T00:00:00Z\", groupBy: [CLIENT]) { clientId client { id slug } } }",
        json!({}),
    )
    .await;
    let groups = named["usage"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for r in groups {
        assert_eq!(r["client"]["id"], r["clientId"]);
        assert!(["nike", "adidas"].contains(&r["client"]["slug"].as_str().unwrap()));
    }
    // The account manager: nike's runs only, and nike's rows only.
    let manager = app.token(w.account_manager, Some(agency));
    let data = ok(&app, &manager, q, json!({ "by": ["CLIENT"] })).await;
    let expected = sums(
        &su,
        &format!(
            "SELECT client_id::text, NULL, NULL, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, count(*)
             FROM tenant_b.outputs WHERE org_id = '{agency}' AND client_id = '{}' AND {range} GROUP BY 1",
            w.nike
        ),
    )
    .await;
    assert_eq!(rows(&data), expected);
    assert_eq!(expected.len(), 1);
    // An SME: its own runs, no client.
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let data = ok(&app, &sme, q, json!({ "by": ["CLIENT", "AGENT"] })).await;
    let expected = sums(
        &su,
        &format!(
            "SELECT NULL, agent, NULL, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, count(*)
             FROM public.agent_outputs WHERE org_id = '{}' AND {range} GROUP BY 2",
            w.sme1.id
        ),
    )
    .await;
    assert_eq!(rows(&data), expected);
    // A range with nothing: one empty total.
    let data = ok(
        &app,
        &owner,
        "{ usage(from: \"2020-01-01T00:00:00Z\", to: \"2020-02-01T00:00:00Z\") { runs totalTokens } }",
        json!({}),
    )
    .await;
    assert_eq!(data["usage"], json!([{ "runs": 0, "totalTokens": 0 }]));
    // Who may not, and what is not a range.
    for user in [w.strategist, w.viewer] {
        let token = app.token(user, Some(agency));
        let (_, body) = app.graphql(Some(&token), q, json!({ "by": [] })).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    }
    for (from, to) in [
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2020-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
    ] {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "query($f: DateTime!, $t: DateTime!) { usage(from: $f, to: $t) { runs } }",
                json!({ "f": from, "t": to }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], "to");
    }
}
