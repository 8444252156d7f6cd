//! `Campaign.brief`: a printable HTML brief in the client's branding,
//! falling back to the agency's; tenant content escaped, no script, no
//! request but the logo; only for callers who may read the campaign.

use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok};

use crate::agents::{ended, run};

const BRIEF: &str = "query($id: ID!) { campaign(id: $id) { brief } }";

async fn brief(app: &TestApp, token: &str, campaign: &str) -> Value {
    let (_, body) = app
        .graphql(Some(token), BRIEF, json!({ "id": campaign }))
        .await;
    body
}

#[tokio::test]
async fn a_brief_is_branded_escaped_and_only_for_its_readers() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    ok(
        &app,
        &owner,
        "mutation { updateOrganization(input: {branding: {displayName: \"Stride Agency\", logoUrl: \"https://cdn.example.com/stride.png\", primaryColor: \"#112233\", supportEmail: \"help@stride.example\"}}) { id } }",
        json!({}),
    )
    .await;
    // A client's branding: a bad colour is refused, a good one kept.
    let set = "mutation($id: ID!, $b: BrandingInput!) { updateClient(input: {id: $id, branding: $b}) { branding { displayName primaryColor } } }";
    let (_, body) = app
        .graphql(
            Some(&owner),
            set,
            json!({ "id": w.nike.to_string(), "b": { "primaryColor": "red;}body{" } }),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["field"],
        "branding.primaryColor"
    );
    let data = ok(
        &app,
        &owner,
        set,
        json!({ "id": w.nike.to_string(), "b": { "displayName": "Nike Studio", "primaryColor": "#ff6600" } }),
    )
    .await;
    assert_eq!(
        data["updateClient"]["branding"]["displayName"],
        "Nike Studio"
    );

    // A campaign whose name and objective try to inject markup.
    let created = ok(
        &app,
        &owner,
        "mutation($c: ID) { createCampaign(input: {name: \"Spring <script>alert(1)</script>\", objective: \"<img src=x onerror=alert(2)> & more\", clientId: $c}) { id } }",
        json!({ "c": w.nike.to_string() }),
    )
    .await;
    let campaign = created["createCampaign"]["id"].as_str().unwrap().to_owned();
    let strategist = app.token(w.strategist, Some(w.agency1.id));
    let r = run(&app, &strategist, &campaign, "BRAND_VOICE").await;
    ended(&app, &strategist, &r).await;

    let body = brief(&app, &owner, &campaign).await;
    let html = body["data"]["campaign"]["brief"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    if let Ok(path) = std::env::var("STRATA_WRITE_BRIEF") {
        std::fs::write(path, html).unwrap();
    }
    // The client's branding, the agency's where the client sets none.
    assert!(
        html.contains("Nike Studio") && html.contains("#ff6600"),
        "{html}"
    );
    assert!(html.contains("https://cdn.example.com/stride.png"));
    assert!(html.contains("help@stride.example"));
    assert!(html.contains("Prepared for nike"));
    // The agent's latest output, and nothing executable.
    assert!(html.contains("Brand voice"), "{html}");
    assert!(
        !html.contains("BRAND_VOICE"),
        "the document's kind is for machines: {html}"
    );
    assert!(html.contains("Spring &lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt; &amp; more"));
    let lower = html.to_lowercase();
    assert!(
        !lower.contains("<script") && !lower.contains("onerror=alert(2)>"),
        "{html}"
    );
    assert!(lower.contains("content-security-policy") && lower.contains("default-src 'none'"));
    // No request but the logo: one image, no link, no other source.
    assert_eq!(lower.matches("<img").count(), 1, "{html}");
    assert_eq!(lower.matches(" src=\"").count(), 1, "{html}");
    assert!(!lower.contains("href="));

    // Another client of the agency: the agency's own branding.
    let adidas = w.adidas_campaigns[0].to_string();
    let body = brief(&app, &owner, &adidas).await;
    let html = body["data"]["campaign"]["brief"].as_str().unwrap();
    assert!(html.contains("Stride Agency") && html.contains("#112233"));
    assert!(!html.contains("Nike Studio"));
    // Only for whoever may read the campaign: nike's account manager
    // reads nike's, not adidas'; another agency reads neither.
    let am = app.token(w.account_manager, Some(w.agency1.id));
    assert!(brief(&app, &am, &campaign).await["data"]["campaign"]["brief"].is_string());
    assert!(brief(&app, &am, &adidas).await["data"]["campaign"].is_null());
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    assert!(brief(&app, &other, &campaign).await["data"]["campaign"].is_null());
    // An SME's brief: its own name, Strata's default colours.
    let sme = app.token(w.sme1.owner, Some(w.sme1.id));
    let body = brief(&app, &sme, &w.sme1.campaigns[0].to_string()).await;
    let html = body["data"]["campaign"]["brief"].as_str().unwrap();
    assert!(html.contains("No agent output yet.") || html.contains("<h2>"));
    assert!(!html.contains("Stride"));
}
