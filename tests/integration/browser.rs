//! Stock clients against the gateway: GraphiQL in a real browser (the page
//! at `/` renders its editor from the gateway alone, with no other host
//! asked for anything: a machine without internet, an air-gapped customer),
//! and the stock `graphql-ws` client with raw frames on the WebSocket.

use strata_tests::TestApp;
use strata_tests::tier::{self, Part};

#[tokio::test]
async fn graphiql_renders_in_chromium_from_the_gateway_alone() {
    if !tier::available(
        Part::Browser,
        "graphiql_renders_in_chromium_from_the_gateway_alone",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    run_graphiql_check(&app, &[]).await;
}

#[tokio::test]
async fn with_demo_graphiql_starts_signed_in_runs_a_query_and_switches_users() {
    if !tier::available(
        Part::Browser,
        "with_demo_graphiql_starts_signed_in_runs_a_query_and_switches_users",
    ) {
        return;
    }
    let app = TestApp::builder().demo(true).spawn().await;
    let shot = std::env::temp_dir().join(format!("strata-graphiql-{}.png", uuid::Uuid::new_v4()));
    let shot_arg = shot.display().to_string();
    run_graphiql_check(&app, &["--demo", "--screenshot", &shot_arg]).await;
    assert!(shot.is_file(), "a screenshot of the demo page");
    // KEEP_SCREENSHOT=docs/graphiql-demo.png refreshes the picture in the docs.
    if let Ok(keep) = std::env::var("KEEP_SCREENSHOT") {
        std::fs::copy(
            &shot,
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(keep),
        )
        .expect("keep the screenshot");
    }
    let _ = std::fs::remove_file(shot);
}

async fn run_graphiql_check(app: &TestApp, args: &[&str]) {
    let script = tier::browser_dir().join("graphiql.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&app.base)
        .args(args)
        .env("CHROMIUM", tier::chromium())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("graphiql ok"),
        "the GraphiQL check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test]
async fn the_stock_graphql_ws_client_streams_a_run_and_the_close_codes_are_the_protocols() {
    if !tier::available(
        Part::Node,
        "the_stock_graphql_ws_client_streams_a_run_and_the_close_codes_are_the_protocols",
    ) {
        return;
    }
    let app = TestApp::builder()
        .http(strata_server::config::HttpConfig {
            ws_init_timeout: std::time::Duration::from_millis(800),
            ..Default::default()
        })
        .spawn()
        .await;
    let (w, _su) = strata_tests::world::World::on(&app).await;
    let token = app.token(w.strategist, Some(w.agency1.id));
    let (_, body) = app
        .graphql(
            Some(&token),
            "mutation($c: ID!) { runAgent(input: {campaignId: $c, agent: BRAND_VOICE}) { id } }",
            serde_json::json!({ "c": w.nike_campaigns[0].to_string() }),
        )
        .await;
    let run = body["data"]["runAgent"]["id"]
        .as_str()
        .expect("a run")
        .to_owned();
    let out = tokio::process::Command::new("node")
        .arg(tier::browser_dir().join("ws.mjs"))
        .arg(&app.base)
        .arg(&token)
        .arg(&run)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ws ok"),
        "the graphql-ws check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
