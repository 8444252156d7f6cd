//! Reporting logins and the `reporting` views: what a BI tool reads is
//! exactly what GraphQL shows an owner of its organization (an account
//! manager of its client), and nothing the session does widens it: not
//! `SET app.*`, `SET ROLE`, `RESET ALL` or `set_config()`, in or out of a
//! transaction, directly or through PgBouncer. Also `strata org
//! reporting-login` itself, and the plans of the views at volume.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::sqlx::{self, Connection as _, Row as _};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use strata_domain::{ClientId, OrgId};
use strata_persistence::Db;
use strata_persistence::reporting::{self, Scope};
use strata_tests::world::World;
use strata_tests::{TestApp, TestDb, ok, scalar};

/// The views, by the names BI tools use.
const VIEWS: &[&str] = &[
    "campaigns",
    "agent_runs",
    "agent_outputs",
    "brand_guidelines",
    "personas",
    "clients",
    "usage",
];

/// One connection of a reporting login. Statements go out in the simple
/// protocol, so nothing is prepared beyond a transaction (as through
/// PgBouncer in transaction mode), and every value comes back as text.
struct Reader {
    conn: sqlx::PgConnection,
}

type Rows = Vec<Vec<Option<String>>>;

impl Reader {
    async fn connect(url: &SecretString) -> Self {
        Self {
            conn: sqlx::PgConnection::connect(url.expose_secret())
                .await
                .expect("the reporting login connects"),
        }
    }

    async fn try_rows(&mut self, sql: &str) -> Result<Rows, sqlx::Error> {
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut self.conn)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get_unchecked::<Option<String>, _>(i).unwrap())
                    .collect()
            })
            .collect())
    }

    async fn rows(&mut self, sql: &str) -> Rows {
        self.try_rows(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn exec(&mut self, sql: &str) {
        self.rows(sql).await;
    }

    async fn count(&mut self, sql: &str) -> i64 {
        self.rows(sql).await[0][0]
            .as_deref()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The SQLSTATE `sql` fails with; panics if it succeeds.
    async fn refused(&mut self, sql: &str) -> String {
        match self.try_rows(sql).await {
            Ok(rows) => panic!("{sql} succeeded: {rows:?}"),
            Err(e) => e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()))
                .unwrap_or_else(|| panic!("{sql}: {e}")),
        }
    }

    /// Every view's rows, each row as its columns joined, sorted.
    async fn everything(&mut self) -> BTreeMap<&'static str, Vec<String>> {
        self.everything_or_refused(false).await
    }

    /// [`Self::everything`]; with `refused_is_nothing`, a view the database
    /// refuses because the current role may not log in counts as read
    /// empty. (On Citus a query reaches the workers as the current role: a
    /// login that set its role to the `NOLOGIN` `app_reporting` is refused
    /// there, which reads nothing too.)
    async fn everything_or_refused(
        &mut self,
        refused_is_nothing: bool,
    ) -> BTreeMap<&'static str, Vec<String>> {
        let mut out = BTreeMap::new();
        for view in VIEWS {
            let sql = format!("SELECT * FROM reporting.{view}");
            let read = match self.try_rows(&sql).await {
                Err(e)
                    if refused_is_nothing
                        && e.to_string().contains("is not permitted to log in") =>
                {
                    Vec::new()
                }
                Err(e) => panic!("{sql}: {e}"),
                Ok(rows) => rows,
            };
            let mut rows: Vec<String> = read
                .into_iter()
                .map(|r| {
                    r.into_iter()
                        .map(|c| c.unwrap_or_else(|| "NULL".into()))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            rows.sort();
            out.insert(*view, rows);
        }
        out
    }
}

/// A new reporting login of `scope` (as `strata org reporting-login`
/// creates it) and its connection string.
async fn login(db: &Db, test_db: &TestDb, scope: Scope) -> (String, SecretString) {
    let issued = reporting::issue(db, scope, false).await.unwrap();
    let url = reporting::connection_url(&test_db.url, &issued.login, &issued.password).unwrap();
    (issued.login, url)
}

fn org(org_id: OrgId) -> Scope {
    Scope {
        org_id,
        client_id: None,
    }
}

fn client(org_id: OrgId, client_id: ClientId) -> Scope {
    Scope {
        org_id,
        client_id: Some(client_id),
    }
}

/// More runs than the world has: every status, tokens, outputs, and months
/// apart, in both schemas.
async fn seed_runs(su: &DatabaseConnection, w: &World) {
    let mut sql = String::new();
    let mut runs = |table: &str, org: OrgId, client: Option<ClientId>, campaign: &str| {
        let (col, val) = match client {
            Some(c) => (", client_id", format!(", '{c}'")),
            None => ("", String::new()),
        };
        for (status, agent, output, prompt, completion, age) in [
            (
                "SUCCEEDED",
                "BRAND_VOICE",
                "'{\"voice\": \"x\"}'",
                120,
                80,
                "40 days",
            ),
            ("FAILED", "PERSONA_BUILDER", "NULL", 30, 0, "1 day"),
            ("QUEUED", "CAMPAIGN_PLANNER", "NULL", 0, 0, "1 hour"),
            (
                "SUCCEEDED",
                "CAMPAIGN_PLANNER",
                "'{\"plan\": []}'",
                200,
                300,
                "70 days",
            ),
        ] {
            sql.push_str(&format!(
                "INSERT INTO {table} (org_id, id, campaign_id, agent, status, output, prompt_tokens, \
                 completion_tokens, created_at{col}) VALUES ('{org}', gen_random_uuid(), '{campaign}', \
                 '{agent}', '{status}', {output}, {prompt}, {completion}, now() - interval '{age}'{val});"
            ));
        }
    };
    for o in [&w.sme1, &w.sme2] {
        runs(
            "public.agent_outputs",
            o.id,
            None,
            &o.campaigns[1].to_string(),
        );
    }
    runs(
        "tenant_b.outputs",
        w.agency1.id,
        Some(w.nike),
        &w.nike_campaigns[1].to_string(),
    );
    runs(
        "tenant_b.outputs",
        w.agency1.id,
        Some(w.adidas),
        &w.adidas_campaigns[1].to_string(),
    );
    runs(
        "tenant_b.outputs",
        w.agency2.id,
        Some(w.puma),
        &w.agency2.campaigns[0].to_string(),
    );
    su.execute_unprepared(&sql).await.unwrap();
}

const GRAPHQL: &str = "{
  campaigns(first: 20) { edges { node { id name status clientId
    runs(first: 20) { edges { node { id status agent campaignId clientId createdAt
                                     usage { promptTokens completionTokens } } } }
    outputs(first: 20) { edges { node { runId agent campaignId } } } } } }
  clients(first: 20) { edges { node { id name slug archived brandGuidelines { clientId content } } } }
  personas(first: 20) { edges { node { id name description clientId } } }
}";

fn nodes(v: &Value) -> Vec<&Value> {
    v["edges"]
        .as_array()
        .map(|e| e.iter().map(|e| &e["node"]).collect())
        .unwrap_or_default()
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| "NULL".to_owned(), str::to_owned)
}

/// What each view must hold for `who`, from GraphQL, in the same shape as
/// the rows compared with it.
async fn from_graphql(
    app: &TestApp,
    token: &str,
    sme: bool,
) -> BTreeMap<&'static str, Vec<String>> {
    let data = ok(app, token, GRAPHQL, json!({})).await;
    let mut views: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut usage: BTreeMap<(String, String, String), [i64; 5]> = BTreeMap::new();
    for c in nodes(&data["campaigns"]) {
        views.entry("campaigns").or_default().push(format!(
            "{}|{}|{}|{}",
            s(&c["id"]),
            s(&c["name"]),
            s(&c["clientId"]),
            s(&c["status"])
        ));
        for r in nodes(&c["runs"]) {
            views.entry("agent_runs").or_default().push(format!(
                "{}|{}|{}|{}|{}",
                s(&r["id"]),
                s(&r["status"]),
                s(&r["agent"]),
                s(&r["campaignId"]),
                s(&r["clientId"])
            ));
            let month = format!("{}-01", &s(&r["createdAt"])[..7]);
            let u = usage
                .entry((s(&r["clientId"]), month, s(&r["agent"])))
                .or_default();
            let (p, q) = (
                r["usage"]["promptTokens"].as_i64().unwrap(),
                r["usage"]["completionTokens"].as_i64().unwrap(),
            );
            u[0] += 1;
            u[1] += i64::from(r["status"] == "SUCCEEDED");
            u[2] += p;
            u[3] += q;
            u[4] += p + q;
        }
        for o in nodes(&c["outputs"]) {
            views.entry("agent_outputs").or_default().push(format!(
                "{}|{}|{}|{}",
                s(&o["runId"]),
                s(&o["agent"]),
                s(&o["campaignId"]),
                s(&c["clientId"])
            ));
        }
    }
    for ((client, month, agent), u) in usage {
        views.entry("usage").or_default().push(format!(
            "{client}|{month}|{agent}|{}|{}|{}|{}|{}",
            u[0], u[1], u[2], u[3], u[4]
        ));
    }
    for c in nodes(&data["clients"]) {
        views.entry("clients").or_default().push(format!(
            "{}|{}|{}|{}",
            s(&c["id"]),
            s(&c["name"]),
            s(&c["slug"]),
            c["archived"]
        ));
        let g = &c["brandGuidelines"];
        if !g.is_null() {
            views.entry("brand_guidelines").or_default().push(format!(
                "{}|{}",
                s(&g["clientId"]),
                g["content"]
            ));
        }
    }
    if sme {
        let g = ok(
            app,
            token,
            "{ brandGuidelines { clientId content } }",
            json!({}),
        )
        .await;
        let g = &g["brandGuidelines"];
        if !g.is_null() {
            views.entry("brand_guidelines").or_default().push(format!(
                "{}|{}",
                s(&g["clientId"]),
                g["content"]
            ));
        }
    }
    for p in nodes(&data["personas"]) {
        views.entry("personas").or_default().push(format!(
            "{}|{}|{}|{}",
            s(&p["id"]),
            s(&p["name"]),
            s(&p["description"]),
            s(&p["clientId"])
        ));
    }
    for view in VIEWS {
        views.entry(view).or_default().sort();
    }
    views
}

/// The same columns as [`from_graphql`], read through the views.
const VIEW_QUERIES: &[(&str, &str)] = &[
    (
        "campaigns",
        "SELECT id, name, client_id, status FROM reporting.campaigns",
    ),
    (
        "agent_runs",
        "SELECT id, status, agent, campaign_id, client_id FROM reporting.agent_runs",
    ),
    (
        "agent_outputs",
        "SELECT id, agent, campaign_id, client_id FROM reporting.agent_outputs",
    ),
    (
        "usage",
        "SELECT client_id, month, agent, runs, succeeded_runs, prompt_tokens, completion_tokens, tokens \
         FROM reporting.usage",
    ),
    (
        "clients",
        "SELECT client_id, name, slug, archived FROM reporting.clients",
    ),
    (
        "brand_guidelines",
        "SELECT client_id, content FROM reporting.brand_guidelines",
    ),
    (
        "personas",
        "SELECT id, name, description, client_id FROM reporting.personas",
    ),
];

async fn through_views(reader: &mut Reader) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for (view, sql) in VIEW_QUERIES {
        let mut rows: Vec<String> = reader
            .rows(sql)
            .await
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let c = c.unwrap_or_else(|| "NULL".into());
                        match (*view, i) {
                            // JSON and booleans as GraphQL prints them.
                            ("brand_guidelines", 1) => {
                                serde_json::from_str::<Value>(&c).unwrap().to_string()
                            }
                            ("clients", 3) => (c == "t").to_string(),
                            _ => c,
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        rows.sort();
        out.insert(*view, rows);
    }
    out
}

#[tokio::test]
async fn each_view_shows_a_login_exactly_what_graphql_shows_an_owner_or_the_clients_account_manager()
 {
    let app = TestApp::spawn().await;
    let (w, su) = World::on(&app).await;
    seed_runs(&su, &w).await;
    let db = app.test_db.pool(2).await;
    let cases = [
        ("sme-1", org(w.sme1.id), w.sme1.owner, w.sme1.id, true),
        ("sme-2", org(w.sme2.id), w.sme2.owner, w.sme2.id, true),
        (
            "agency-1",
            org(w.agency1.id),
            w.agency1.owner,
            w.agency1.id,
            false,
        ),
        (
            "agency-2",
            org(w.agency2.id),
            w.agency2.owner,
            w.agency2.id,
            false,
        ),
        (
            "agency-1, nike",
            client(w.agency1.id, w.nike),
            w.account_manager,
            w.agency1.id,
            false,
        ),
    ];
    for (name, scope, user, org_id, sme) in cases {
        let (_, url) = login(&db, &app.test_db, scope).await;
        let mut reader = Reader::connect(&url).await;
        let token = app.token(user, Some(org_id));
        let expected = from_graphql(&app, &token, sme).await;
        let actual = through_views(&mut reader).await;
        for view in VIEWS {
            assert_eq!(
                actual[view], expected[view],
                "{name}: reporting.{view} differs from GraphQL"
            );
        }
        // Each kind of content is there to compare (clients: agencies
        // only), and every row is the login's organization's.
        for view in VIEWS {
            let n = reader
                .count(&format!("SELECT count(*) FROM reporting.{view}"))
                .await;
            assert!(n > 0 || (sme && *view == "clients"), "{name}: no {view}");
            let others = reader
                .count(&format!(
                    "SELECT count(*) FROM reporting.{view} WHERE org_id <> '{org_id}' \
                     OR source_schema <> '{}'",
                    if sme { "public" } else { "tenant_b" }
                ))
                .await;
            assert_eq!(others, 0, "{name}: {view}");
        }
    }
    // The logins the command made are what `strata audit` expects.
    let report = strata_persistence::audit::lint(&su).await.unwrap();
    let reporting: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.id.starts_with("reporting."))
        .collect();
    assert!(reporting.is_empty(), "{reporting:#?}");
}

/// What an attempt to widen a session must leave exactly as it was.
async fn unchanged(reader: &mut Reader, before: &BTreeMap<&'static str, Vec<String>>, what: &str) {
    assert_eq!(&reader.everything().await, before, "after {what}");
}

/// The attacks of one login: every read it makes sees `before`, every
/// attempt to widen it is refused or changes nothing.
async fn attack(reader: &mut Reader, other_org: OrgId, other_client: Option<ClientId>) {
    let before = reader.everything().await;
    let other = other_org.to_string();
    let other_clients = other_client.map_or_else(String::new, |c| c.to_string());

    // Through the views, naming the other organization or client.
    for view in VIEWS {
        assert_eq!(
            reader
                .count(&format!(
                    "SELECT count(*) FROM reporting.{view} WHERE org_id = '{other}'"
                ))
                .await,
            0,
            "{view} of {other}"
        );
        if let Some(c) = other_client {
            assert_eq!(
                reader
                    .count(&format!(
                        "SELECT count(*) FROM reporting.{view} WHERE client_id = '{c}'"
                    ))
                    .await,
                0,
                "{view} of client {c}"
            );
        }
    }
    // The base tables directly: the same rows (policies), or nothing at
    // all (no privilege).
    for (table, key) in [
        ("public.campaigns", "org_id"),
        ("public.agent_outputs", "org_id"),
        ("public.personas", "org_id"),
        ("public.brand_guidelines", "org_id"),
        ("tenant_b.campaigns", "org_id"),
        ("tenant_b.outputs", "org_id"),
        ("tenant_b.entity_data", "org_id"),
        ("tenant_b.workspace_entities", "org_id"),
    ] {
        assert_eq!(
            reader
                .count(&format!(
                    "SELECT count(*) FROM {table} WHERE {key} = '{other}'"
                ))
                .await,
            0,
            "{table}"
        );
    }
    for table in [
        "public.organizations",
        "public.users",
        "public.memberships",
        "public.api_keys",
        "public.audit_log",
        "public.token_usage",
        "tenant_b.client_assignments",
    ] {
        assert_eq!(
            reader
                .refused(&format!("SELECT count(*) FROM {table}"))
                .await,
            "42501",
            "{table}"
        );
    }
    assert_eq!(
        reader
            .refused("SELECT created_by FROM public.agent_outputs")
            .await,
        "42501",
        "columns the views do not show"
    );
    assert_eq!(
        reader
            .count("SELECT count(*) FROM app.reporting_logins")
            .await,
        1,
        "a login sees its own mapping only"
    );

    // Settings, at session level and transaction-locally, out of and in a
    // transaction.
    let settings = format!(
        "SET app.org_id = '{other}'; SET app.client_ids = '{{{other_clients}}}'; \
         SET app.all_clients = 'true'; SET app.can_write = 'true'; SET app.can_administer = 'true'"
    );
    reader.exec(&settings).await;
    unchanged(reader, &before, "SET app.*").await;
    reader
        .exec(&format!(
            "SELECT set_config('app.org_id', '{other}', false), set_config('app.all_clients', 'true', false)"
        ))
        .await;
    unchanged(reader, &before, "set_config(..., false)").await;
    reader.exec("RESET ALL").await;
    unchanged(reader, &before, "RESET ALL").await;
    reader.exec("BEGIN").await;
    reader
        .exec(&format!(
            "{}; SELECT set_config('app.org_id', '{other}', true)",
            settings.replace("SET ", "SET LOCAL ")
        ))
        .await;
    unchanged(reader, &before, "SET LOCAL app.* and set_config(..., true)").await;
    reader.exec("COMMIT").await;
    unchanged(reader, &before, "the transaction").await;

    // Roles: no runtime role, no owner, in or out of a transaction.
    for role in [
        "app_sme",
        "app_agency",
        "app_auth",
        "app_maint",
        "app_lease",
        "strata_gateway",
        "strata_owner",
    ] {
        assert_eq!(
            reader.refused(&format!("SET ROLE {role}")).await,
            "42501",
            "SET ROLE {role}"
        );
        reader.exec("BEGIN").await;
        assert_eq!(
            reader.refused(&format!("SET LOCAL ROLE {role}")).await,
            "42501",
            "SET LOCAL ROLE {role}"
        );
        reader.exec("ROLLBACK").await;
    }
    assert_eq!(
        reader
            .refused("SET SESSION AUTHORIZATION strata_owner")
            .await,
        "42501"
    );
    // Its own reporting role: the same rows, or none (a client's login
    // outside the role bound to its client).
    reader.exec("SET ROLE app_reporting").await;
    let as_role = reader.everything_or_refused(true).await;
    for (view, rows) in &as_role {
        assert!(
            rows == &before[view] || rows.is_empty(),
            "SET ROLE app_reporting widened {view}: {rows:?}"
        );
    }
    reader.exec("RESET ROLE").await;
    unchanged(reader, &before, "RESET ROLE").await;

    // Nothing to write, whatever the transaction's mode.
    reader.exec("SET default_transaction_read_only = off").await;
    for sql in [
        format!("INSERT INTO reporting.campaigns (org_id, id, name) VALUES ('{other}', gen_random_uuid(), 'x')"),
        "UPDATE reporting.campaigns SET name = 'x'".to_owned(),
        "DELETE FROM reporting.agent_runs".to_owned(),
        format!("INSERT INTO public.campaigns (org_id, id, name) VALUES ('{other}', gen_random_uuid(), 'x')"),
        "UPDATE tenant_b.campaigns SET name = 'x'".to_owned(),
        "DELETE FROM tenant_b.outputs".to_owned(),
        "DELETE FROM public.agent_outputs".to_owned(),
        "TRUNCATE tenant_b.campaigns".to_owned(),
        "UPDATE app.reporting_logins SET org_id = org_id".to_owned(),
        format!("INSERT INTO app.reporting_logins (login, org_id) VALUES (session_user, '{other}')"),
        "INSERT INTO public.audit_log (org_id, id, operation, target_type) \
         SELECT org_id, gen_random_uuid(), 'x', 'ReportingLogin' FROM reporting.campaigns LIMIT 1"
            .to_owned(),
        "CREATE TABLE public.probe (id int)".to_owned(),
        "CREATE VIEW reporting.probe AS SELECT 1".to_owned(),
        "CREATE FUNCTION app.reporting_org_id_probe() RETURNS uuid LANGUAGE sql AS 'SELECT NULL::uuid'".to_owned(),
    ] {
        // 55000: a view of two tables takes no write at all, whoever asks.
        let code = reader.refused(&sql).await;
        let view = sql.contains("reporting.") && !sql.starts_with("CREATE");
        assert!(
            code == "42501" || (view && code == "55000"),
            "{sql}: {code}"
        );
    }
    // Not the gateway's entry point, nor the context helpers.
    assert_eq!(
        reader
            .refused(&format!(
                "SELECT app.begin_request('app_agency', '{other}', NULL, '{{}}', true, true, NULL, 'x', true)"
            ))
            .await,
        "42501"
    );
    assert_eq!(reader.refused("SELECT app.current_org_id()").await, "42501");
    reader.exec("RESET ALL").await;
    unchanged(reader, &before, "the attempts").await;
}

#[tokio::test]
async fn a_reporting_login_cannot_read_past_its_organization_or_client_whatever_it_sets() {
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let w = World::seed(&db, &su).await;
    seed_runs(&su, &w).await;
    for (scope, other_org, other_client) in [
        (org(w.sme1.id), w.sme2.id, None),
        (org(w.agency1.id), w.agency2.id, Some(w.puma)),
        (client(w.agency1.id, w.nike), w.agency2.id, Some(w.adidas)),
    ] {
        let (_, url) = login(&db, &test_db, scope).await;
        let mut reader = Reader::connect(&url).await;
        attack(&mut reader, other_org, other_client).await;
        // A second connection of the same login after the first one's
        // attempts: the same rows.
        let mut again = Reader::connect(&url).await;
        assert_eq!(
            again.everything().await,
            reader.everything().await,
            "{scope:?}"
        );
    }
    // A client's login in the organization-wide role reads nothing, not the
    // whole organization.
    let (_, url) = login(&db, &test_db, client(w.agency1.id, w.adidas)).await;
    let mut reader = Reader::connect(&url).await;
    reader.exec("SET ROLE app_reporting").await;
    for (view, rows) in reader.everything_or_refused(true).await {
        assert!(rows.is_empty(), "{view}: {rows:?}");
    }
    reader.exec("RESET ROLE").await;
    assert!(
        reader
            .count("SELECT count(*) FROM reporting.campaigns")
            .await
            > 0
    );
    assert_eq!(
        reader
            .count(&format!(
                "SELECT count(*) FROM reporting.campaigns WHERE client_id <> '{}'",
                w.adidas
            ))
            .await,
        0
    );
    // An organization-wide login cannot take a client's role.
    let (_, url) = login(&db, &test_db, org(w.agency2.id)).await;
    let mut reader = Reader::connect(&url).await;
    assert_eq!(
        reader.refused("SET ROLE app_reporting_client").await,
        "42501"
    );
}

#[tokio::test]
async fn the_command_creates_rotates_and_revokes_a_login_with_an_audit_row_each() {
    use clap::Parser as _;
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let w = World::seed(&db, &su).await;
    let cli = |args: &[&str]| {
        let mut argv = vec!["strata", "--database-url", test_db.url.expose_secret()];
        argv.extend(args);
        strata_server::cli::Cli::try_parse_from(argv).unwrap()
    };
    let org_id = w.agency1.id.to_string();
    let nike = w.nike.to_string();
    let audit = |op: &str| {
        format!(
            "SELECT count(*) FROM public.audit_log WHERE org_id = '{org_id}' AND operation = '{op}' \
             AND target_type = 'ReportingLogin' AND actor_user_id IS NULL AND details ? 'login'"
        )
    };
    let roles =
        "SELECT count(*) FROM pg_roles r JOIN app.reporting_logins l ON l.login = r.rolname";

    // Created, for the organization and for one client.
    strata_server::cli::run(cli(&["org", "reporting-login", &org_id]))
        .await
        .unwrap();
    strata_server::cli::run(cli(&["org", "reporting-login", &org_id, "--client", &nike]))
        .await
        .unwrap();
    assert_eq!(scalar(&su, &audit("createReportingLogin")).await, 2);
    assert_eq!(scalar(&su, roles).await, 2);
    let client_audit = scalar(
        &su,
        &format!(
            "SELECT count(*) FROM public.audit_log WHERE operation = 'createReportingLogin' AND client_id = '{nike}'"
        ),
    )
    .await;
    assert_eq!(client_audit, 1);
    // Again without --rotate: refused, nothing written.
    let again = strata_server::cli::run(cli(&["org", "reporting-login", &org_id])).await;
    assert!(
        format!("{:#}", again.unwrap_err()).contains("--rotate"),
        "an existing login is not silently given a new password"
    );
    assert_eq!(scalar(&su, &audit("createReportingLogin")).await, 2);
    // Rotated.
    strata_server::cli::run(cli(&["org", "reporting-login", &org_id, "--rotate"]))
        .await
        .unwrap();
    assert_eq!(scalar(&su, &audit("rotateReportingLogin")).await, 1);
    // Refused: another organization's client, a client for an SME, an
    // organization that does not exist, --rotate with --revoke.
    for (args, expected) in [
        (
            vec![
                "org".to_owned(),
                "reporting-login".into(),
                org_id.clone(),
                "--client".into(),
                w.puma.to_string(),
            ],
            "is not a client",
        ),
        (
            vec![
                "org".to_owned(),
                "reporting-login".into(),
                w.sme1.id.to_string(),
                "--client".into(),
                nike.clone(),
            ],
            "is not a client",
        ),
        (
            vec![
                "org".to_owned(),
                "reporting-login".into(),
                uuid::Uuid::new_v4().to_string(),
            ],
            "there is no organization",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = strata_server::cli::run(cli(&args)).await.unwrap_err();
        assert!(format!("{err:#}").contains(expected), "{args:?}: {err:#}");
    }
    assert!(
        strata_server::cli::Cli::try_parse_from([
            "strata",
            "org",
            "reporting-login",
            &org_id,
            "--rotate",
            "--revoke"
        ])
        .is_err()
    );
    assert_eq!(scalar(&su, roles).await, 2, "nothing half-made");

    // Revoked: the role and its mapping go, its sessions end.
    let issued = reporting::issue(&db, client(w.agency1.id, w.nike), true)
        .await
        .unwrap();
    let url = reporting::connection_url(&test_db.url, &issued.login, &issued.password).unwrap();
    let mut reader = Reader::connect(&url).await;
    assert!(
        reader
            .count("SELECT count(*) FROM reporting.campaigns")
            .await
            > 0
    );
    strata_server::cli::run(cli(&[
        "org",
        "reporting-login",
        &org_id,
        "--client",
        &nike,
        "--revoke",
    ]))
    .await
    .unwrap();
    assert_eq!(scalar(&su, &audit("revokeReportingLogin")).await, 1);
    assert_eq!(scalar(&su, roles).await, 1);
    assert_eq!(
        scalar(
            &su,
            &format!(
                "SELECT count(*) FROM pg_roles WHERE rolname = '{}'",
                issued.login
            )
        )
        .await,
        0
    );
    assert!(
        reader
            .try_rows("SELECT count(*) FROM reporting.campaigns")
            .await
            .is_err(),
        "the revoked login's session ended"
    );
    let err = sqlx::PgConnection::connect(url.expose_secret()).await;
    assert!(err.is_err(), "the revoked login cannot log in");
    let err = strata_server::cli::run(cli(&[
        "org",
        "reporting-login",
        &org_id,
        "--client",
        &nike,
        "--revoke",
    ]))
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("no reporting login"), "{err:#}");
    // The old password of a rotated login no longer works; the new one does.
    let first = reporting::issue(&db, org(w.sme2.id), false).await.unwrap();
    let old = reporting::connection_url(&test_db.url, &first.login, &first.password).unwrap();
    let second = reporting::issue(&db, org(w.sme2.id), true).await.unwrap();
    assert!(!second.created);
    let new = reporting::connection_url(&test_db.url, &second.login, &second.password).unwrap();
    assert!(
        sqlx::PgConnection::connect(old.expose_secret())
            .await
            .is_err()
    );
    assert!(
        Reader::connect(&new)
            .await
            .count("SELECT count(*) FROM reporting.campaigns")
            .await
            > 0
    );
    reporting::revoke(&db, org(w.sme2.id)).await.unwrap();
    reporting::revoke(&db, org(w.agency1.id)).await.unwrap();
}

#[tokio::test]
async fn a_reporting_login_through_pgbouncer_in_transaction_mode_reads_only_its_rows() {
    use strata_tests::pgbouncer::PgBouncer;
    if !strata_tests::tier::available(
        strata_tests::tier::Part::PgBouncer,
        "a_reporting_login_through_pgbouncer_in_transaction_mode_reads_only_its_rows",
    ) {
        return;
    }
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let w = World::seed(&db, &su).await;
    seed_runs(&su, &w).await;
    for (scope, other_org, other_client) in [
        (org(w.agency1.id), w.agency2.id, Some(w.puma)),
        (client(w.agency1.id, w.nike), w.agency2.id, Some(w.adidas)),
        (org(w.sme2.id), w.sme1.id, None),
    ] {
        let (_, direct) = login(&db, &test_db, scope).await;
        let expected = Reader::connect(&direct).await.everything().await;
        // One server connection for three clients: each transaction may
        // find the session state another client left.
        let bouncer = PgBouncer::start(&direct, 1).await;
        let mut a = Reader::connect(&bouncer.url).await;
        let mut b = Reader::connect(&bouncer.url).await;
        let mut c = Reader::connect(&bouncer.url).await;
        assert_eq!(a.everything().await, expected, "{scope:?}");
        // Session-level settings and roles left on the shared server
        // connection by one client never widen what the others read.
        a.exec(&format!(
            "SET app.org_id = '{other_org}'; SET app.all_clients = 'true'; \
             SELECT set_config('app.org_id', '{other_org}', false)"
        ))
        .await;
        assert_eq!(b.everything().await, expected, "{scope:?}");
        a.exec("SET ROLE app_reporting").await;
        for (view, rows) in b.everything().await {
            assert!(
                rows == expected[view] || rows.is_empty(),
                "{scope:?}: {view} widened: {rows:?}"
            );
        }
        a.exec("RESET ALL; RESET ROLE").await;
        assert_eq!(c.everything().await, expected, "{scope:?}");
        attack(&mut b, other_org, other_client).await;
        assert_eq!(c.everything().await, expected, "{scope:?}");
        let log = bouncer.log();
        assert!(!log.contains("FATAL"), "{log}");
    }
}

/// The BI query of docs/REPORTING.md: tokens and runs by client and month.
pub const BY_CLIENT_AND_MONTH: &str = "SELECT coalesce(c.name, '(organization)') AS client, u.month, \
    sum(u.runs) AS runs, sum(u.tokens) AS tokens \
    FROM reporting.usage u LEFT JOIN reporting.clients c ON c.org_id = u.org_id AND c.client_id = u.client_id \
    GROUP BY 1, 2 ORDER BY 2, 1";

#[tokio::test]
async fn the_views_use_org_id_indexes_without_subplans_at_volume() {
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let orgs = 200;
    // `enable_local_execution`: see `catalog.rs`'s `seed_volume`.
    su.execute_unprepared(&format!(
        "SET citus.enable_local_execution TO off;
         INSERT INTO public.organizations (id, type, name, slug)
           SELECT md5('sme-' || o)::uuid, 'SME', 'sme ' || o, 'rpt-sme-' || o FROM generate_series(1, {orgs}) o
           UNION ALL
           SELECT md5('agency-' || o)::uuid, 'AGENCY', 'agency ' || o, 'rpt-agency-' || o FROM generate_series(1, {orgs}) o;
         INSERT INTO public.campaigns (org_id, id, name, created_at)
           SELECT md5('sme-' || o)::uuid, md5('sme-' || o || '-' || c)::uuid, 'c' || c, now() - c * interval '1 day'
           FROM generate_series(1, {orgs}) o, generate_series(1, 50) c;
         INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, prompt_tokens, completion_tokens, created_at)
           SELECT md5('sme-' || o)::uuid, gen_random_uuid(), md5('sme-' || o || '-' || c)::uuid,
                  'BUSINESS_STRATEGY', (ARRAY['SUCCEEDED', 'FAILED'])[1 + r % 2], 100, 200, now() - (c + r) * interval '1 day'
           FROM generate_series(1, {orgs}) o, generate_series(1, 50) c, generate_series(1, 4) r;
         INSERT INTO public.personas (org_id, id, name)
           SELECT md5('sme-' || o)::uuid, gen_random_uuid(), 'p' || p FROM generate_series(1, {orgs}) o, generate_series(1, 10) p;
         INSERT INTO public.brand_guidelines (org_id) SELECT md5('sme-' || o)::uuid FROM generate_series(1, {orgs}) o;
         INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug)
           SELECT md5('agency-' || o)::uuid, md5('client-' || o || '-' || k)::uuid, 'client ' || k, 'client-' || k
           FROM generate_series(1, {orgs}) o, generate_series(0, 9) k;
         INSERT INTO tenant_b.campaigns (org_id, id, client_id, name, created_at)
           SELECT md5('agency-' || o)::uuid, md5('agency-' || o || '-' || c)::uuid, md5('client-' || o || '-' || c % 10)::uuid,
                  'c' || c, now() - c * interval '1 day'
           FROM generate_series(1, {orgs}) o, generate_series(1, 50) c;
         INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, prompt_tokens, completion_tokens, created_at)
           SELECT md5('agency-' || o)::uuid, gen_random_uuid(), md5('client-' || o || '-' || c % 10)::uuid,
                  md5('agency-' || o || '-' || c)::uuid, 'BUSINESS_STRATEGY', (ARRAY['SUCCEEDED', 'FAILED'])[1 + r % 2],
                  100, 200, now() - (c + r) * interval '1 day'
           FROM generate_series(1, {orgs}) o, generate_series(1, 50) c, generate_series(1, 4) r;
         INSERT INTO tenant_b.entity_data (org_id, id, client_id, kind, name)
           SELECT md5('agency-' || o)::uuid, gen_random_uuid(), md5('client-' || o || '-' || k)::uuid,
                  CASE WHEN p = 0 THEN 'BRAND_GUIDELINES' ELSE 'PERSONA' END, 'p' || p
           FROM generate_series(1, {orgs}) o, generate_series(0, 9) k, generate_series(0, 3) p;
         ANALYZE public.organizations, public.campaigns, public.agent_outputs, public.personas,
                 public.brand_guidelines, tenant_b.workspace_entities, tenant_b.campaigns,
                 tenant_b.outputs, tenant_b.entity_data;"
    ))
    .await
    .unwrap();
    let uuid = async |key: &str| -> uuid::Uuid {
        strata_tests::text(&su, &format!("SELECT md5('{key}')::uuid::text"))
            .await
            .unwrap()
            .parse()
            .unwrap()
    };
    let org_id_indexes: BTreeSet<String> = strata_tests::texts(
        &su,
        "SELECT i.relname::text FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_namespace n ON n.oid = i.relnamespace
         JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
         WHERE n.nspname IN ('public', 'tenant_b') AND a.attname = 'org_id'",
    )
    .await
    .into_iter()
    .collect();
    let sme = OrgId::from_uuid(uuid("sme-100").await);
    let agency = OrgId::from_uuid(uuid("agency-100").await);
    let one_client = ClientId::from_uuid(uuid("client-100-3").await);
    let mut queries: Vec<String> = VIEWS
        .iter()
        .map(|v| format!("SELECT * FROM reporting.{v}"))
        .collect();
    queries.push(BY_CLIENT_AND_MONTH.to_owned());
    queries.push(
        "SELECT client_id, date_trunc('month', created_at) AS month, count(*) FROM reporting.agent_runs \
         WHERE status = 'SUCCEEDED' GROUP BY 1, 2"
            .to_owned(),
    );
    for (name, scope) in [
        ("SME", org(sme)),
        ("agency", org(agency)),
        ("agency client", client(agency, one_client)),
    ] {
        let (_, url) = login(&db, &test_db, scope).await;
        let mut reader = Reader::connect(&url).await;
        for query in &queries {
            let found = reader
                .count(&format!("SELECT count(*) FROM ({query}) q"))
                .await;
            assert!(
                found > 0 || (name == "SME" && query.contains("reporting.clients")),
                "{name}: no rows for {query}"
            );
            let plan: Value = serde_json::from_str(
                reader.rows(&format!("EXPLAIN (FORMAT JSON) {query}")).await[0][0]
                    .as_deref()
                    .unwrap(),
            )
            .unwrap();
            let text = plan.to_string();
            assert!(
                !text.contains("SubPlan") && !text.contains("InitPlan"),
                "{name}: sub-plan in the plan of {query}:\n{plan:#}"
            );
            let mut used = Vec::new();
            for node in strata_tests::plan::nodes(&plan) {
                assert_ne!(
                    node["Node Type"], "Seq Scan",
                    "{name}: sequential scan in {query}:\n{plan:#}"
                );
                if let Some(index) = node["Index Name"]
                    .as_str()
                    .map(strata_tests::plan::unsharded)
                {
                    used.push(index.to_owned());
                }
                // The helpers are index keys, evaluated once per scan:
                // never a filter run on every row.
                let filter = node["Filter"].as_str().unwrap_or_default();
                assert!(
                    !filter.contains("reporting_"),
                    "{name}: a helper filters row by row in {query}:\n{plan:#}"
                );
            }
            assert!(
                !used.is_empty() && used.iter().all(|i| org_id_indexes.contains(i)),
                "{name}: indexes {used:?} in {query}:\n{plan:#}"
            );
        }
        if std::env::var("REPORTING_PLAN").is_ok() {
            let plan = reader
                .rows(&format!(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {BY_CLIENT_AND_MONTH}"
                ))
                .await;
            eprintln!("-- {name}\n{BY_CLIENT_AND_MONTH};");
            for row in reader.rows(BY_CLIENT_AND_MONTH).await.iter().take(12) {
                eprintln!("{row:?}");
            }
            for line in plan {
                eprintln!("{}", line[0].as_deref().unwrap_or_default());
            }
        }
    }
}
