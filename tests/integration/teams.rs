//! Teams an organization can run: invitations by e-mail accepted on a
//! verified token's first request or explicitly, members' names and
//! e-mails, organizations in `me.memberships`, leaving, an MFA policy and
//! signing out everywhere (across two gateways with Redis), each checked
//! in the database too.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use strata_domain::UserId;
use strata_tests::world::World;
use strata_tests::{TestApp, error_code, ok, scalar, text};

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// An HS256 token with `claims` beside `sub`, `org_id` and `exp`.
fn token(user: &str, org: Option<String>, claims: Value) -> String {
    let mut all = json!({ "sub": user, "exp": now() + 600, "iat": now() });
    if let Some(org) = org {
        all["org_id"] = json!(org);
    }
    if let (Some(map), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
        for (k, v) in extra {
            map.insert(k.clone(), v.clone());
        }
    }
    strata_tests::signed(&all)
}

async fn count(su: &DatabaseConnection, sql: &str) -> i64 {
    scalar(su, sql).await
}

const INVITE: &str = "mutation($e: String!, $r: Role!, $c: [ID!]) { inviteMember(input: {email: $e, role: $r, clientIds: $c}) { id email role clientIds status expiresAt invitedBy } }";

#[tokio::test]
async fn an_invited_address_becomes_a_member_on_its_first_verified_request() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    // The world's own invitations are addressed to invited-...@example.com.
    let invitations = "SELECT count(*) FROM public.invitations WHERE email NOT LIKE 'invited-%'";

    // Bad input writes nothing: a malformed address, an owner, a client of
    // another agency (like one that exists nowhere), an unknown role.
    for (vars, code) in [
        (
            json!({"e": "not-an-address", "r": "VIEWER"}),
            "BAD_USER_INPUT",
        ),
        (json!({"e": "a@b", "r": "VIEWER"}), "BAD_USER_INPUT"),
        (
            json!({"e": "boss@example.com", "r": "OWNER"}),
            "BAD_USER_INPUT",
        ),
        (
            json!({"e": "am@example.com", "r": "ACCOUNT_MANAGER", "c": [w.puma.to_string()]}),
            "NOT_FOUND",
        ),
        (
            json!({"e": "am@example.com", "r": "ACCOUNT_MANAGER", "c": [uuid::Uuid::new_v4().to_string()]}),
            "NOT_FOUND",
        ),
        (
            json!({"e": "am@example.com", "r": "CHIEF"}),
            "BAD_USER_INPUT",
        ),
    ] {
        let (status, body) = app.graphql(Some(&owner), INVITE, vars.clone()).await;
        assert!(status == 200 || status == 400, "{vars}: {status} {body}");
        assert_eq!(error_code(&body), Some(code), "{vars}: {body}");
        assert_eq!(count(&su, invitations).await, 0, "{vars} wrote nothing");
    }
    // A viewer may not invite.
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let (_, body) = app
        .graphql(
            Some(&viewer),
            INVITE,
            json!({"e": "x@example.com", "r": "VIEWER"}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");

    let data = ok(
        &app,
        &owner,
        INVITE,
        json!({"e": "Ana.Lima@Example.COM", "r": "ACCOUNT_MANAGER", "c": [w.nike.to_string()]}),
    )
    .await;
    let inv = &data["inviteMember"];
    assert_eq!(inv["email"], "ana.lima@example.com");
    assert_eq!(inv["status"], "PENDING");
    assert_eq!(inv["clientIds"], json!([w.nike.to_string()]));
    assert_eq!(inv["invitedBy"], w.agency1.owner.to_string());
    let id = inv["id"].as_str().unwrap().to_owned();
    // The same address again is refused while pending.
    let (_, body) = app
        .graphql(
            Some(&owner),
            INVITE,
            json!({"e": "ana.lima@example.com", "r": "VIEWER"}),
        )
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(count(&su, invitations).await, 1);
    let listed = ok(
        &app,
        &owner,
        "{ invitations(first: 10, status: PENDING) { totalCount edges { node { id email } } } }",
        json!({}),
    )
    .await;
    assert_eq!(listed["invitations"]["edges"][0]["node"]["id"], id.as_str());
    let pending = count(
        &su,
        &format!(
            "SELECT count(*) FROM public.invitations WHERE org_id = '{}' AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
            w.agency1.id
        ),
    )
    .await;
    assert_eq!(listed["invitations"]["totalCount"], pending);
    // Another agency's owner sees none of it.
    let other = app.token(w.agency2.owner, Some(w.agency2.id));
    let theirs = ok(
        &app,
        &other,
        "{ invitations(first: 10) { edges { node { id email } } } }",
        json!({}),
    )
    .await;
    assert!(!theirs.to_string().contains(&id), "{theirs}");
    assert!(!theirs.to_string().contains("ana.lima"), "{theirs}");

    // The invitee signs in with an identity provider's subject. Unverified,
    // the address makes no member.
    let sub = "auth0|64f0c1d2e3";
    let unverified = token(
        sub,
        None,
        json!({"email": "ana.lima@example.com", "email_verified": false, "name": "Ana Lima"}),
    );
    let me = ok(
        &app,
        &unverified,
        "{ me { user { id } memberships { organizationId } } }",
        json!({}),
    )
    .await;
    assert_eq!(me["me"]["memberships"], json!([]));
    let user = me["me"]["user"]["id"].as_str().unwrap().to_owned();
    // Verified, it joins on the first request, with the invited role and
    // client.
    let verified = token(
        sub,
        None,
        json!({"email": "Ana.Lima@example.com", "email_verified": true, "name": "Ana Lima"}),
    );
    let me = ok(
        &app,
        &verified,
        "{ me { memberships { role clientIds organization { id name slug type requireMfa } user { id email name } } } }",
        json!({}),
    )
    .await;
    let m = &me["me"]["memberships"][0];
    assert_eq!(m["role"], "ACCOUNT_MANAGER");
    assert_eq!(m["clientIds"], json!([w.nike.to_string()]));
    assert_eq!(m["organization"]["id"], w.agency1.id.to_string());
    assert_eq!(m["organization"]["type"], "AGENCY");
    assert!(m["organization"]["slug"].is_string() && m["organization"]["name"].is_string());
    assert_eq!(m["user"]["email"], "Ana.Lima@example.com");
    assert_eq!(m["user"]["name"], "Ana Lima");
    // The database agrees: one membership, one assignment, the invitation
    // accepted by this user, and the audit rows of both steps.
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{user}' AND org_id = '{}' AND role = 'ACCOUNT_MANAGER'", w.agency1.id)).await,
        1
    );
    assert_eq!(
        text(&su, &format!("SELECT string_agg(client_id::text, ',') FROM tenant_b.client_assignments WHERE user_id = '{user}'")).await,
        Some(w.nike.to_string())
    );
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.invitations WHERE id = '{id}' AND accepted_by = '{user}' AND accepted_at IS NOT NULL")).await,
        1
    );
    for op in ["inviteMember", "acceptInvitation"] {
        assert_eq!(
            count(&su, &format!("SELECT count(*) FROM public.audit_log WHERE operation = '{op}' AND target_id = '{id}' AND org_id = '{}'", w.agency1.id)).await,
            1,
            "{op}"
        );
    }
    // The new member sees nike's campaigns and nothing of adidas.
    let am = token(
        sub,
        Some(w.agency1.id.to_string()),
        json!({"email": "ana.lima@example.com", "email_verified": true}),
    );
    let clients = ok(
        &app,
        &am,
        "{ clients(first: 10) { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        clients["clients"]["edges"],
        json!([{ "node": { "id": w.nike.to_string() } }])
    );
    // Owners see the member's e-mail and name; the invitation is accepted.
    let members = ok(
        &app,
        &owner,
        "{ members(first: 50) { edges { node { user { id email name } organization { slug } } } } }",
        json!({}),
    )
    .await;
    let listed: Vec<&Value> = members["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["user"]["id"] == user.as_str())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["node"]["user"]["name"], "Ana Lima");
    let status = ok(
        &app,
        &owner,
        "{ invitations(first: 10) { edges { node { status } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        status["invitations"]["edges"][0]["node"]["status"],
        "ACCEPTED"
    );
    // Nobody else's membership rows carry e-mails this organization could
    // read: another agency's members list has no trace of Ana.
    let theirs = ok(
        &app,
        &other,
        "{ members(first: 50) { edges { node { user { email } } } } }",
        json!({}),
    )
    .await;
    assert!(!theirs.to_string().contains("ana.lima"), "{theirs}");
}

#[tokio::test]
async fn a_revoked_expired_or_foreign_invitation_does_nothing_and_a_pending_one_is_accepted_explicitly()
 {
    let app = TestApp::builder()
        .auth_cache_ttl(Duration::from_secs(60))
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    let owner = app.token(w.sme1.owner, Some(w.sme1.id));
    let invite = |e: &str| {
        let e = e.to_owned();
        let owner = owner.clone();
        let app = &app;
        async move {
            ok(app, &owner, INVITE, json!({"e": e, "r": "STRATEGIST"})).await["inviteMember"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let revoked = invite("revoked@example.com").await;
    let expired = invite("expired@example.com").await;
    let pending = invite("pending@example.com").await;
    let revoked_now = ok(
        &app,
        &owner,
        "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
        json!({"id": revoked}),
    )
    .await;
    assert_eq!(revoked_now["revokeInvitation"]["status"], "REVOKED");
    su.execute_unprepared(&format!(
        "UPDATE public.invitations SET expires_at = now() - interval '1 minute' WHERE id = '{expired}'"
    ))
    .await
    .unwrap();
    // Another SME's invitation to the same address as the caller's.
    let foreign_owner = app.token(w.sme2.owner, Some(w.sme2.id));
    let foreign = ok(
        &app,
        &foreign_owner,
        INVITE,
        json!({"e": "pending@example.com", "r": "VIEWER"}),
    )
    .await["inviteMember"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // revokeInvitation of another organization's invitation is not found.
    let (_, body) = app
        .graphql(
            Some(&owner),
            "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
            json!({"id": foreign}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");

    let accept = "mutation($id: ID!) { acceptInvitation(id: $id) }";
    // Someone already a member elsewhere (remembered by the auth cache)
    // accepts explicitly.
    let member = w.sme2.owner;
    for (address, id) in [
        ("revoked@example.com", &revoked),
        ("expired@example.com", &expired),
        // Verified for another address: not theirs.
        ("someone@example.com", &pending),
    ] {
        let t = token(
            &member.to_string(),
            Some(w.sme2.id.to_string()),
            json!({"email": address, "email_verified": true}),
        );
        let (_, body) = app.graphql(Some(&t), accept, json!({"id": id})).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{address}: {body}");
    }
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{member}' AND org_id = '{}'", w.sme1.id)).await,
        0
    );
    // The right address, unverified: not found either.
    let unverified = token(
        &member.to_string(),
        Some(w.sme2.id.to_string()),
        json!({"email": "pending@example.com"}),
    );
    let (_, body) = app
        .graphql(Some(&unverified), accept, json!({"id": pending}))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    let t = token(
        &member.to_string(),
        Some(w.sme2.id.to_string()),
        json!({"email": "pending@example.com", "email_verified": true}),
    );
    let joined = ok(&app, &t, accept, json!({"id": pending})).await;
    assert_eq!(joined["acceptInvitation"], w.sme1.id.to_string());
    // At once, in the organization joined.
    let there = token(
        &member.to_string(),
        Some(w.sme1.id.to_string()),
        json!({"email": "pending@example.com", "email_verified": true}),
    );
    let me = ok(
        &app,
        &there,
        "{ me { role organization { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(me["me"]["role"], "STRATEGIST");
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{member}' AND org_id = '{}' AND role = 'STRATEGIST'", w.sme1.id)).await,
        1
    );
    // Accepting twice answers the same, and changes nothing. The other
    // organization's invitation to the same address went with the same
    // verified request: its invitee was already a member there, and stays
    // the owner they were.
    let again = ok(&app, &t, accept, json!({"id": pending})).await;
    assert_eq!(again["acceptInvitation"], w.sme1.id.to_string());
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.audit_log WHERE operation = 'acceptInvitation' AND target_id = '{pending}'")).await,
        1
    );
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.invitations WHERE id = '{foreign}' AND accepted_by = '{member}'")).await,
        1
    );
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.memberships WHERE user_id = '{member}' AND org_id = '{}' AND role = 'OWNER'", w.sme2.id)).await,
        1
    );
    // An API key cannot accept.
    let key = ok(
        &app,
        &owner,
        "mutation { createApiKey(input: {name: \"k\"}) { secret } }",
        json!({}),
    )
    .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app
        .graphql(Some(&key), accept, json!({"id": pending}))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
}

#[tokio::test]
async fn members_leave_but_the_last_owner_stays() {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    let leave = "mutation { leaveOrganization }";
    let membership = |u: UserId| {
        format!(
            "SELECT count(*) FROM public.memberships WHERE user_id = '{u}' AND org_id = '{}'",
            w.agency1.id
        )
    };
    // A viewer (who may write nothing) leaves.
    let viewer = app.token(w.viewer, Some(w.agency1.id));
    let data = ok(&app, &viewer, leave, json!({})).await;
    assert_eq!(data["leaveOrganization"], w.agency1.id.to_string());
    assert_eq!(count(&su, &membership(w.viewer)).await, 0);
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.audit_log WHERE operation = 'leaveOrganization' AND actor_user_id = '{}' AND org_id = '{}'", w.viewer, w.agency1.id)).await,
        1
    );
    // Gone: the same token no longer reaches the organization.
    let (status, _) = app
        .graphql(Some(&viewer), "{ me { role } }", json!({}))
        .await;
    assert_eq!(status, 401);
    // An account manager leaves, their client assignments with them.
    let am = app.token(w.account_manager, Some(w.agency1.id));
    ok(&app, &am, leave, json!({})).await;
    assert_eq!(
        count(
            &su,
            &format!(
                "SELECT count(*) FROM tenant_b.client_assignments WHERE user_id = '{}'",
                w.account_manager
            )
        )
        .await,
        0
    );
    // The last owner cannot.
    let owner = app.token(w.agency1.owner, Some(w.agency1.id));
    let (_, body) = app.graphql(Some(&owner), leave, json!({})).await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    assert_eq!(count(&su, &membership(w.agency1.owner)).await, 1);
    // With a second owner, they can.
    ok(
        &app,
        &owner,
        "mutation($u: ID!) { updateMember(input: {userId: $u, role: OWNER}) { role } }",
        json!({"u": w.admin.to_string()}),
    )
    .await;
    ok(&app, &owner, leave, json!({})).await;
    assert_eq!(count(&su, &membership(w.agency1.owner)).await, 0);
    assert_eq!(
        count(
            &su,
            &format!(
                "SELECT count(*) FROM public.memberships WHERE org_id = '{}' AND role = 'OWNER'",
                w.agency1.id
            )
        )
        .await,
        1
    );
}

#[tokio::test]
async fn an_organization_that_requires_mfa_refuses_tokens_without_a_second_factor() {
    // A long auth cache: the change must reach members remembered in it.
    let app = TestApp::builder()
        .auth_cache_ttl(Duration::from_secs(60))
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    let org = w.sme1.id.to_string();
    let require = "mutation { updateOrganization(input: {requireMfa: true}) { requireMfa } }";
    let mfa =
        |user: UserId, amr: Value| token(&user.to_string(), Some(org.clone()), json!({"amr": amr}));
    let flag =
        format!("SELECT count(*) FROM public.organizations WHERE id = '{org}' AND require_mfa");

    let remembered = app.token(w.sme1_strategist, Some(w.sme1.id));
    ok(&app, &remembered, "{ me { role } }", json!({})).await;
    // The owner without a second factor cannot turn it on (no lock-out).
    let (_, body) = app
        .graphql(Some(&mfa(w.sme1.owner, json!(["pwd"]))), require, json!({}))
        .await;
    assert_eq!(error_code(&body), Some("MFA_REQUIRED"), "{body}");
    assert_eq!(count(&su, &flag).await, 0);
    // An admin cannot, even with one.
    let (_, body) = app
        .graphql(Some(&mfa(w.sme1_admin, json!(["otp"]))), require, json!({}))
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    assert_eq!(count(&su, &flag).await, 0);
    // The owner with one can; the change is audited.
    let on = ok(
        &app,
        &mfa(w.sme1.owner, json!(["pwd", "otp"])),
        require,
        json!({}),
    )
    .await;
    assert_eq!(on["updateOrganization"]["requireMfa"], true);
    assert_eq!(count(&su, &flag).await, 1);
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.audit_log WHERE org_id = '{org}' AND operation = 'updateOrganization' AND details->>'requireMfa' = 'true'")).await,
        1
    );

    // From now on a token without a second factor is refused: 403, the
    // one remembered a moment ago too.
    for t in [
        remembered,
        mfa(w.sme1_strategist, json!(["pwd"])),
        mfa(w.sme1_strategist, json!("pwd")),
    ] {
        let (status, body) = app
            .graphql(
                Some(&t),
                "{ campaigns(first: 1) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(error_code(&body), Some("MFA_REQUIRED"), "{body}");
    }
    for amr in [json!(["mfa"]), json!(["pwd", "hwk"]), json!("otp")] {
        let t = mfa(w.sme1_strategist, amr.clone());
        let (status, body) = app
            .graphql(
                Some(&t),
                "{ campaigns(first: 1) { totalCount } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{amr}: {body}");
    }
    // Another organization is not affected, nor is an API key of this one.
    let other = app.token(w.sme2.owner, Some(w.sme2.id));
    ok(
        &app,
        &other,
        "{ campaigns(first: 1) { totalCount } }",
        json!({}),
    )
    .await;
    let key = ok(
        &app,
        &mfa(w.sme1.owner, json!(["mfa"])),
        "mutation { createApiKey(input: {name: \"ci\"}) { secret } }",
        json!({}),
    )
    .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &app,
        &key,
        "{ campaigns(first: 1) { totalCount } }",
        json!({}),
    )
    .await;
    // A member of two organizations, signed in without naming one, lists
    // both with their policies; a member of only this one is refused.
    ok(
        &app,
        &mfa(w.sme1.owner, json!(["mfa"])),
        "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { role } }",
        json!({"u": w.sme2.owner.to_string()}),
    )
    .await;
    let both = ok(
        &app,
        &token(&w.sme2.owner.to_string(), None, json!({})),
        "{ me { memberships { organization { id requireMfa } } } }",
        json!({}),
    )
    .await;
    assert!(both.to_string().contains("\"requireMfa\":true"), "{both}");
    assert!(both.to_string().contains("\"requireMfa\":false"), "{both}");
    let (status, _) = app
        .graphql(
            Some(&token(&w.sme1_strategist.to_string(), None, json!({}))),
            "{ me { role } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403);

    // The methods that count are the operator's choice.
    let strict = TestApp::builder()
        .claims(strata_server::config::ClaimNames {
            mfa_methods: vec!["hwk".into()],
            ..Default::default()
        })
        .spawn_beside(&app)
        .await;
    let (status, _) = strict
        .graphql(
            Some(&mfa(w.sme1_strategist, json!(["otp"]))),
            "{ me { role } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = strict
        .graphql(
            Some(&mfa(w.sme1_strategist, json!(["hwk"]))),
            "{ me { role } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn revoked_sessions_refuse_every_earlier_token() {
    let app = TestApp::builder()
        .auth_cache_ttl(Duration::from_secs(60))
        .spawn()
        .await;
    let (w, su) = World::on(&app).await;
    let revoke = "mutation($u: ID!) { revokeSessions(userId: $u) }";
    let issued = |user: UserId, org: Option<String>, at: i64| {
        let mut t = json!({"sub": user.to_string(), "exp": now() + 600, "iat": at});
        if let Some(org) = org {
            t["org_id"] = json!(org);
        }
        strata_tests::signed(&t)
    };
    let org = Some(w.agency1.id.to_string());
    let read = "{ campaigns(first: 1) { totalCount } }";

    // A strategist signs themself out everywhere.
    let old = issued(w.strategist, org.clone(), now() - 30);
    ok(&app, &old, read, json!({})).await;
    ok(&app, &old, revoke, json!({"u": w.strategist.to_string()})).await;
    let (status, _) = app.graphql(Some(&old), read, json!({})).await;
    assert_eq!(
        status, 401,
        "an earlier token is refused at once, cache or not"
    );
    let (status, _) = app
        .graphql(
            Some(&issued(w.strategist, None, now() - 30)),
            "{ me { user { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 401, "everywhere, with or without an organization");
    let fresh = issued(w.strategist, org.clone(), now() + 2);
    ok(&app, &fresh, read, json!({})).await;
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.users WHERE id = '{}' AND sessions_valid_after IS NOT NULL", w.strategist)).await,
        1
    );

    // An admin signs a member out of their organization.
    let admin = issued(w.admin, org.clone(), now() - 30);
    let viewer_old = issued(w.viewer, org.clone(), now() - 30);
    ok(&app, &viewer_old, read, json!({})).await;
    ok(&app, &admin, revoke, json!({"u": w.viewer.to_string()})).await;
    let (status, _) = app.graphql(Some(&viewer_old), read, json!({})).await;
    assert_eq!(status, 401);
    ok(
        &app,
        &issued(w.viewer, org.clone(), now() + 2),
        read,
        json!({}),
    )
    .await;
    assert_eq!(
        count(&su, &format!("SELECT count(*) FROM public.audit_log WHERE operation = 'revokeSessions' AND target_id = '{}'", w.viewer)).await,
        1
    );
    // An admin may not sign out an owner; nobody may sign out a user of
    // another organization (not found, like a user that does not exist);
    // a viewer may not sign out others.
    let (_, body) = app
        .graphql(
            Some(&admin),
            revoke,
            json!({"u": w.agency1.owner.to_string()}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    for stranger in [w.agency2.owner, UserId::generate()] {
        let (_, body) = app
            .graphql(Some(&admin), revoke, json!({"u": stranger.to_string()}))
            .await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    }
    let (_, body) = app
        .graphql(
            Some(&issued(w.viewer, org.clone(), now() + 2)),
            revoke,
            json!({"u": w.admin.to_string()}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
    let (_, body) = app
        .graphql(Some(&admin), revoke, json!({"u": "nope"}))
        .await;
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"), "{body}");
    // The other organization's owner was not signed out.
    ok(
        &app,
        &app.token(w.agency2.owner, Some(w.agency2.id)),
        read,
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn with_redis_a_revocation_reaches_every_gateway_at_once() {
    if !strata_tests::tier::available(
        strata_tests::tier::Part::Redis,
        "with_redis_a_revocation_reaches_every_gateway_at_once",
    ) {
        return;
    }
    let redis = strata_tests::redis::RedisServer::start().await;
    // Long auth caches: without the published revocation, the second
    // gateway would keep accepting the old token for a minute.
    let a = TestApp::builder()
        .auth_cache_ttl(Duration::from_secs(60))
        .redis_url(redis.url.clone())
        .spawn()
        .await;
    let (w, _su) = World::on(&a).await;
    let b = TestApp::builder()
        .auth_cache_ttl(Duration::from_secs(60))
        .redis_url(redis.url.clone())
        .spawn_beside(&a)
        .await;
    let old = {
        let t = json!({"sub": w.strategist.to_string(), "org_id": w.agency1.id.to_string(), "exp": now() + 600, "iat": now() - 30});
        strata_tests::signed(&t)
    };
    let read = "{ campaigns(first: 1) { totalCount } }";
    ok(&b, &old, read, json!({})).await;
    ok(
        &a,
        &old,
        "mutation($u: ID!) { revokeSessions(userId: $u) }",
        json!({"u": w.strategist.to_string()}),
    )
    .await;
    // The message crosses Redis in a moment; give it a second at most.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (status, _) = b.graphql(Some(&old), read, json!({})).await;
        if status == 401 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second gateway still accepts the revoked token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
