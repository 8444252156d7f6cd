//! GraphiQL in a real browser: the page at `/` renders its editor from the
//! gateway alone, with no other host asked for anything (a machine without
//! internet, an air-gapped customer), checked in headless Chromium.

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
    let script = tier::browser_dir().join("graphiql.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .arg(&app.base)
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
