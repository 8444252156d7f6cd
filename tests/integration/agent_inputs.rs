//! Typed agent inputs through the API: each agent follows its own input
//! (offline drafts and a local OpenAI-compatible server's requests), the run
//! keeps it, and an input that does not fit the agent or its bounds is
//! refused naming the field, with nothing written.

use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar};

use crate::agents::{ended, provider, setup};

const RUN: &str =
    "mutation($input: RunAgentInput!) { runAgent(input: $input) { id status agent input } }";

/// Queues a run with `input`; returns its id.
async fn run_with(app: &TestApp, token: &str, input: Value) -> String {
    let data = ok(app, token, RUN, json!({ "input": input })).await;
    assert_eq!(data["runAgent"]["status"], "QUEUED", "{data}");
    data["runAgent"]["id"].as_str().unwrap().to_owned()
}

fn sme(app: &TestApp, w: &World) -> (String, String) {
    (
        app.token(w.sme1.owner, Some(w.sme1.id)),
        w.sme1.campaigns[0].to_string(),
    )
}

#[tokio::test]
async fn each_agent_follows_its_typed_input_offline_and_the_run_keeps_it() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    let (token, campaign) = sme(&app, &w);

    let id = run_with(
        &app,
        &token,
        json!({ "campaignId": campaign, "agent": "BUSINESS_STRATEGY",
                "businessStrategy": { "horizonMonths": 6, "goals": [" Open two stores "] } }),
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let objectives = done["output"]["objectives"].to_string();
    assert!(
        objectives.contains("Open two stores within 6 months"),
        "{objectives}"
    );
    assert!(
        done["output"]["summary"]
            .as_str()
            .unwrap()
            .contains("next 6 months")
    );

    let id = run_with(
        &app,
        &token,
        json!({ "campaignId": campaign, "agent": "BRAND_VOICE",
                "brandVoice": { "channels": ["Instagram", "Podcast"], "tone": ["playful"] } }),
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["tone"][0], "playful", "{done}");
    let samples: Vec<&str> = done["output"]["sample_messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for channel in ["Instagram:", "Podcast:"] {
        assert!(
            samples.iter().any(|s| s.starts_with(channel)),
            "{samples:?}"
        );
    }

    for count in [1, 3] {
        let id = run_with(
            &app,
            &token,
            json!({ "campaignId": campaign, "agent": "PERSONA_BUILDER",
                    "personaBuilder": { "count": count } }),
        )
        .await;
        let done = ended(&app, &token, &id).await;
        assert_eq!(done["status"], "SUCCEEDED", "{done}");
        assert_eq!(
            done["output"]["personas"].as_array().unwrap().len(),
            count,
            "{done}"
        );
        // Stored as asked, and shown on the run.
        assert_eq!(
            scalar(
                &su,
                &format!(
                    "SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' \
                     AND (input->'personaBuilder'->>'count')::int = {count} \
                     AND jsonb_array_length(output->'personas') = {count}"
                )
            )
            .await,
            1
        );
    }

    let id = run_with(
        &app,
        &token,
        json!({ "campaignId": campaign, "agent": "CAMPAIGN_PLANNER",
                "campaignPlanner": { "weeks": 13, "channels": ["TikTok"], "budget": 5000 } }),
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let weeks: u64 = done["output"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["weeks"].as_u64().unwrap())
        .sum();
    assert_eq!(weeks, 13, "{done}");
    assert_eq!(done["output"]["channels"][0], "TikTok");
    assert!(
        done["output"]["kpis"].to_string().contains("5000"),
        "{done}"
    );
    let run = ok(
        &app,
        &token,
        "query($id: ID!) { agentRun(id: $id) { input } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        run["agentRun"]["input"],
        json!({ "instructions": null,
                "campaignPlanner": { "weeks": 13, "channels": ["TikTok"], "budget": 5000 } })
    );

    // Without a typed input a run behaves as before and stores none.
    let data = ok(
        &app,
        &token,
        RUN,
        json!({ "input": { "campaignId": campaign, "agent": "CAMPAIGN_PLANNER" } }),
    )
    .await;
    assert_eq!(data["runAgent"]["input"], json!({ "instructions": null }));
    let id = data["runAgent"]["id"].as_str().unwrap();
    let done = ended(&app, &token, id).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    assert_eq!(done["output"]["version"], 1);
}

#[tokio::test]
async fn a_typed_input_that_does_not_fit_is_refused_naming_the_field_and_nothing_is_written() {
    let (app, w, su) = setup(TestApp::spawn().await).await;
    let (token, campaign) = sme(&app, &w);
    let cases = [
        (
            "PERSONA_BUILDER",
            json!({ "brandVoice": { "tone": ["bold"] } }),
            "input.brandVoice",
        ),
        (
            "PERSONA_BUILDER",
            json!({ "personaBuilder": { "count": 2 }, "campaignPlanner": { "weeks": 4 } }),
            "input.campaignPlanner",
        ),
        (
            "PERSONA_BUILDER",
            json!({ "personaBuilder": { "count": 0 } }),
            "input.personaBuilder.count",
        ),
        (
            "PERSONA_BUILDER",
            json!({ "personaBuilder": { "count": 11 } }),
            "input.personaBuilder.count",
        ),
        (
            "CAMPAIGN_PLANNER",
            json!({ "campaignPlanner": { "weeks": 53 } }),
            "input.campaignPlanner.weeks",
        ),
        (
            "CAMPAIGN_PLANNER",
            json!({ "campaignPlanner": { "budget": -5 } }),
            "input.campaignPlanner.budget",
        ),
        (
            "CAMPAIGN_PLANNER",
            json!({ "campaignPlanner": { "channels": ["Email", "  "] } }),
            "input.campaignPlanner.channels[1]",
        ),
        (
            "BUSINESS_STRATEGY",
            json!({ "businessStrategy": { "horizonMonths": 37 } }),
            "input.businessStrategy.horizonMonths",
        ),
        (
            "BUSINESS_STRATEGY",
            json!({ "businessStrategy": { "goals": vec!["grow"; 11] } }),
            "input.businessStrategy.goals",
        ),
        (
            "BRAND_VOICE",
            json!({ "brandVoice": { "tone": ["x".repeat(61)] } }),
            "input.brandVoice.tone[0]",
        ),
    ];
    let runs = "SELECT count(*) FROM public.agent_outputs";
    let audited = "SELECT count(*) FROM public.audit_log WHERE operation = 'runAgent'";
    let (runs_before, audited_before) = (scalar(&su, runs).await, scalar(&su, audited).await);
    for (agent, extra, field) in cases {
        let mut input = json!({ "campaignId": campaign, "agent": agent });
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        let (status, body) = app
            .graphql(Some(&token), RUN, json!({ "input": input }))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{field}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{body}"
        );
        assert!(
            body["data"].is_null() || body["data"]["runAgent"].is_null(),
            "{body}"
        );
    }
    assert_eq!(
        scalar(&su, runs).await,
        runs_before,
        "a refused run was stored"
    );
    assert_eq!(
        scalar(&su, audited).await,
        audited_before,
        "a refused run was audited"
    );
}

#[tokio::test]
async fn the_typed_input_reaches_the_providers_messages() {
    let (p, base) = provider().await;
    let (app, w, su) = setup(
        TestApp::builder()
            .llm(crate::agents::patient_llm(&base))
            .spawn()
            .await,
    )
    .await;
    let (token, campaign) = sme(&app, &w);
    let id = run_with(
        &app,
        &token,
        json!({ "campaignId": campaign, "agent": "BRAND_VOICE",
                "brandVoice": { "channels": ["Instagram"], "tone": ["playful"] } }),
    )
    .await;
    assert_eq!(ended(&app, &token, &id).await["status"], "SUCCEEDED");
    let sent = p.requests.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let user = sent[0]["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains("\"channels\": [\n      \"Instagram\"\n    ]"),
        "{user}"
    );
    assert!(
        user.contains("\"tone\": [\n      \"playful\"\n    ]"),
        "{user}"
    );
    assert!(user.contains("sample message for each channel"), "{user}");

    // A plan of 13 weeks is asked for in so many words; the server answers
    // with a brand voice, which fails the run.
    let id = run_with(
        &app,
        &token,
        json!({ "campaignId": campaign, "agent": "CAMPAIGN_PLANNER",
                "campaignPlanner": { "weeks": 13 } }),
    )
    .await;
    let done = ended(&app, &token, &id).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    let sent = p.requests.lock().unwrap().clone();
    let user = sent[1]["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("The campaign lasts 13 weeks"), "{user}");
    assert!(user.contains("\"weeks\": 13"), "{user}");
    assert_eq!(
        scalar(&su, &format!("SELECT count(*) FROM public.agent_outputs WHERE id = '{id}' AND input->'campaignPlanner'->>'weeks' = '13'")).await,
        1
    );
}
