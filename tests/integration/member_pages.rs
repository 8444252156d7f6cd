//! The members list as a Relay connection, and role guards that refuse a
//! field before its resolver runs.

use serde_json::{Value, json};
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, scalar};

const PAGE: &str = "query($first: Int, $after: String) {
    members(first: $first, after: $after) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { cursor node { userId role clientIds createdAt } }
    }
}";

async fn page(app: &TestApp, token: &str, first: Option<i64>, after: Option<&str>) -> Value {
    let (status, body) = app
        .graphql(Some(token), PAGE, json!({ "first": first, "after": after }))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn user_ids(body: &Value) -> Vec<String> {
    body["data"]["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["userId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn members_come_in_pages_oldest_first_with_cursors_and_a_total() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let token = app.token(w.agency1.owner, Some(w.agency1.id));

    // Two members joined in the same instant: the user id orders them.
    let tie = scalar(
        &su,
        &format!(
            "WITH t AS (UPDATE public.memberships SET created_at = '2030-01-01T00:00:00Z' \
             WHERE org_id = '{}' AND user_id IN ('{}', '{}') RETURNING 1) SELECT count(*) FROM t",
            w.agency1.id, w.strategist, w.viewer
        ),
    )
    .await;
    assert_eq!(tie, 2);

    // What the database holds, in the order the pages must follow.
    let expected: Vec<String> = strata_tests::texts(
        &su,
        &format!(
            "SELECT user_id::text FROM public.memberships WHERE org_id = '{}' \
             ORDER BY created_at, user_id",
            w.agency1.id
        ),
    )
    .await;
    assert!(expected.len() > 4, "{expected:?}");
    let total = expected.len();

    let first = page(&app, &token, Some(2), None).await;
    assert!(first.get("errors").is_none(), "{first}");
    let members = &first["data"]["members"];
    assert_eq!(members["totalCount"], total);
    assert_eq!(members["pageInfo"]["hasNextPage"], true);
    assert_eq!(members["pageInfo"]["hasPreviousPage"], false);
    let mut seen = user_ids(&first);
    // The owner created the organization: the oldest member.
    assert_eq!(seen[0], w.agency1.owner.to_string());
    assert_eq!(members["edges"][0]["node"]["role"], "OWNER");

    let mut cursor = members["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    loop {
        let next = page(&app, &token, Some(2), Some(&cursor)).await;
        assert!(next.get("errors").is_none(), "{next}");
        let members = &next["data"]["members"];
        assert_eq!(members["totalCount"], total);
        assert_eq!(members["pageInfo"]["hasPreviousPage"], true);
        seen.extend(user_ids(&next));
        if members["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = members["pageInfo"]["endCursor"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(seen.len() < total, "pages beyond the last member");
    }
    // The two members that joined in the same instant come last, by id.
    let mut tied = [w.strategist.to_string(), w.viewer.to_string()];
    tied.sort();
    assert_eq!(&expected[total - 2..], &tied[..]);
    assert_eq!(
        seen, expected,
        "every member once, by (created_at, user id)"
    );

    // The default page holds everyone; the account manager's clients come
    // with them.
    let all = page(&app, &token, None, None).await;
    assert_eq!(user_ids(&all), expected);
    let position = expected
        .iter()
        .position(|u| *u == w.account_manager.to_string())
        .unwrap();
    let am = &all["data"]["members"]["edges"][position]["node"];
    assert_eq!(am["role"], "ACCOUNT_MANAGER");
    assert_eq!(am["clientIds"], json!([w.nike.to_string()]));

    // Page sizes outside 0..=100 and foreign cursors are bad input.
    for (first, after) in [
        (Some(101), None),
        (Some(-1), None),
        (Some(2), Some("nonsense")),
    ] {
        let body = page(&app, &token, first, after).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    }
    let body = page(&app, &token, Some(100), None).await;
    assert!(body.get("errors").is_none(), "{body}");

    // Another agency's owner sees only their own member.
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    let body = page(&app, &other, None, None).await;
    assert_eq!(user_ids(&body), vec![w.agency2.owner.to_string()]);
    assert_eq!(body["data"]["members"]["totalCount"], 1);
}

#[tokio::test]
async fn a_role_guard_refuses_before_the_arguments_are_read_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let audit = "SELECT count(*) FROM public.audit_log";
    let before = scalar(&su, audit).await;

    // A malformed id is bad input for those the role allows; the guard
    // answers first for those it does not, with the role's refusal.
    let cases = [
        (
            w.viewer,
            r#"mutation { updateCampaign(input: { id: "not-an-id", name: "x" }) { id } }"#,
            "this role cannot change campaigns",
        ),
        (
            w.strategist,
            r#"mutation { archiveClient(id: "not-an-id") { id } }"#,
            "only owners and admins can change clients",
        ),
        (
            w.strategist,
            r#"mutation { removeMember(userId: "not-an-id") }"#,
            "only owners and admins can remove members",
        ),
    ];
    for (user, query, refusal) in cases {
        let token = app.token(user, Some(w.agency1.id));
        let (status, body) = app.graphql(Some(&token), query, json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{query}: {body}");
        assert_eq!(body["errors"][0]["message"], refusal, "{query}: {body}");
        let owner = app.token(w.agency1.owner, Some(w.agency1.id));
        let (_, body) = app.graphql(Some(&owner), query, json!({})).await;
        assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{query}: {body}");
    }

    // A refused list gives no data, and its total is never counted.
    let token = app.token(w.strategist, Some(w.agency1.id));
    let (_, body) = app
        .graphql(Some(&token), "{ members { totalCount } }", json!({}))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "only owners and admins can list members"
    );
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(scalar(&su, audit).await, before, "a refused mutation wrote");
}
