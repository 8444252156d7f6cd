//! What the stock tools of frontend teams send works on day one.

use serde_json::json;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code};

/// A type reference unwrapped as deep as client tools unwrap them (lists
/// and non-nulls nested eight times).
fn type_ref(depth: usize) -> String {
    if depth == 0 {
        return "kind name".into();
    }
    format!("kind name ofType {{ {} }}", type_ref(depth - 1))
}

/// An introspection query shaped like the one GraphiQL, code generators,
/// API explorers and schema fuzzers send: every type with its fields,
/// arguments, input fields, interfaces, enum values and possible types, and
/// the directives.
fn full_introspection() -> String {
    let t = type_ref(8);
    format!(
        "query IntrospectionQuery {{ __schema {{
            queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
            types {{ ...FullType }}
            directives {{ name description locations args {{ ...InputValue }} }}
          }} }}
          fragment FullType on __Type {{
            kind name description
            fields(includeDeprecated: true) {{ name description args {{ ...InputValue }} type {{ {t} }} isDeprecated deprecationReason }}
            inputFields {{ ...InputValue }}
            interfaces {{ {t} }}
            enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }}
            possibleTypes {{ {t} }}
          }}
          fragment InputValue on __InputValue {{ name description type {{ {t} }} defaultValue }}"
    )
}

#[tokio::test]
async fn the_standard_introspection_query_passes_while_tenant_queries_keep_their_limits() {
    let app = TestApp::spawn().await;
    let (w, _su) = World::on(&app).await;
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let (status, body) = app
        .graphql(Some(&token), &full_introspection(), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Campaign"), "{body}");

    // The depth limit still holds for anything that reads data, even beside
    // an introspection field.
    let deep = format!(
        "{{ __typename organization {{ {} }} }}",
        (0..14).fold("id".to_owned(), |inner, _| format!(
            "campaigns {{ edges {{ node {{ client {{ {inner} }} }} }} }}"
        ))
    );
    let (_, body) = app.graphql(Some(&token), &deep, json!({})).await;
    assert_eq!(error_code(&body), Some("QUERY_TOO_COMPLEX"), "{body}");
}
