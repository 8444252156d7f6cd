//! Typed brand data: brand guidelines' and persona attributes' keys that
//! agents read are typed fields (extra keys kept as given, a known key of
//! the wrong type refused with nothing written), the organization's
//! branding is typed, and an output of a version this server does not read
//! keeps its raw form.

use sea_orm::ConnectionTrait;
use serde_json::json;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar};

#[tokio::test]
async fn brand_guidelines_and_personas_have_typed_fields_and_keep_extra_keys() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let content = json!({
        "voice": "Bold and brief",
        "tone": ["bold", "warm"],
        "values": ["craft"],
        "pillars": ["performance", "community"],
        "do": ["speak plainly"],
        "dont": ["shout"],
        "tagline": "Just move",
        "colours": { "primary": "#111111" }
    });
    let saved = ok(
        &app,
        &owner,
        "mutation($c: ID, $content: JSON!) { saveBrandGuidelines(input: {clientId: $c, content: $content}) {
           voice tagline audience tone values pillars do dont vocabulary content } }",
        json!({ "c": w.nike.to_string(), "content": content }),
    )
    .await;
    let g = &saved["saveBrandGuidelines"];
    assert_eq!(g["voice"], "Bold and brief");
    assert_eq!(g["tone"], json!(["bold", "warm"]));
    assert_eq!(g["pillars"], json!(["performance", "community"]));
    assert_eq!(g["do"], json!(["speak plainly"]));
    assert_eq!(g["dont"], json!(["shout"]));
    assert!(g["audience"].is_null() && g["vocabulary"].is_null());
    assert_eq!(g["content"], content, "extra keys are kept as given");

    // A known key of the wrong type is refused, naming it; nothing changes.
    let before = scalar(
        &su,
        &format!(
            "SELECT count(*) FROM tenant_b.entity_data WHERE client_id = '{}' AND kind = 'BRAND_GUIDELINES' AND content->>'voice' = 'Bold and brief'",
            w.nike
        ),
    )
    .await;
    assert_eq!(before, 1);
    for (bad, field) in [
        (json!({ "tone": 3 }), "content.tone"),
        (json!({ "voice": ["a"] }), "content.voice"),
        (json!({ "pillars": [1, 2] }), "content.pillars"),
    ] {
        let (_, body) = app
            .graphql(
                Some(&owner),
                "mutation($c: ID, $content: JSON!) { saveBrandGuidelines(input: {clientId: $c, content: $content}) { voice } }",
                json!({ "c": w.nike.to_string(), "content": bad }),
            )
            .await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM tenant_b.entity_data WHERE client_id = '{}' AND kind = 'BRAND_GUIDELINES' AND content->>'voice' = 'Bold and brief'",
                w.nike
            ),
        )
        .await,
        1
    );

    // Personas: typed attributes beside the raw ones.
    let attributes = json!({
        "ageRange": "25-34", "occupation": "designer", "goals": ["ship"],
        "painPoints": ["meetings"], "channels": ["newsletter"], "pets": 2
    });
    let created = ok(
        &app,
        &owner,
        "mutation($c: ID, $a: JSON) { createPersona(input: {clientId: $c, name: \"Dana\", attributes: $a}) {
           ageRange occupation location goals painPoints channels interests attributes } }",
        json!({ "c": w.nike.to_string(), "a": attributes }),
    )
    .await;
    let p = &created["createPersona"];
    assert_eq!(p["ageRange"], "25-34");
    assert_eq!(p["painPoints"], json!(["meetings"]));
    assert!(p["location"].is_null() && p["interests"].is_null());
    assert_eq!(p["attributes"], attributes);
    let personas = scalar(
        &su,
        "SELECT count(*) FROM tenant_b.entity_data WHERE kind = 'PERSONA'",
    )
    .await;
    let (_, body) = app
        .graphql(
            Some(&owner),
            "mutation($c: ID) { createPersona(input: {clientId: $c, name: \"Eve\", attributes: {goals: {first: \"one\"}}}) { id } }",
            json!({ "c": w.nike.to_string() }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["field"], "attributes.goals");
    assert_eq!(
        scalar(
            &su,
            "SELECT count(*) FROM tenant_b.entity_data WHERE kind = 'PERSONA'"
        )
        .await,
        personas
    );
}

#[tokio::test]
async fn the_organizations_branding_is_typed() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let none = ok(
        &app,
        &owner,
        "{ me { organization { branding { displayName } } } }",
        json!({}),
    )
    .await;
    assert!(none["me"]["organization"]["branding"].is_null(), "{none}");
    ok(
        &app,
        &owner,
        "mutation { updateOrganization(input: {branding: {displayName: \"Acme Agency\", primaryColor: \"#112233\", supportEmail: \"help@acme.test\"}}) { id } }",
        json!({}),
    )
    .await;
    let data = ok(
        &app,
        &owner,
        "{ me { organization { branding { displayName logoUrl primaryColor secondaryColor supportEmail } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data["me"]["organization"]["branding"],
        json!({ "displayName": "Acme Agency", "logoUrl": null, "primaryColor": "#112233",
                "secondaryColor": null, "supportEmail": "help@acme.test" })
    );
}

#[tokio::test]
async fn an_output_of_an_unknown_version_keeps_its_raw_form_and_has_no_typed_result() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    su.execute_unprepared(&format!(
        "UPDATE public.agent_outputs SET output = '{{\"version\": 2, \"kind\": \"BRAND_VOICE\", \"summary\": \"x\"}}'
         WHERE org_id = '{}' AND status = 'SUCCEEDED'",
        w.sme1.id
    ))
    .await
    .unwrap();
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let data = ok(
        &app,
        &token,
        "{ campaigns { nodes { outputs { nodes { content result { __typename } } } } } }",
        json!({}),
    )
    .await;
    let outputs: Vec<&serde_json::Value> = data["campaigns"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["outputs"]["nodes"].as_array().unwrap())
        .collect();
    assert!(!outputs.is_empty());
    for o in outputs {
        assert_eq!(o["content"]["version"], 2);
        assert!(o["result"].is_null(), "{o}");
    }
}
