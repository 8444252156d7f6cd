//! The dataset generator: a fresh database, migrated, loaded with set-based
//! SQL as the superuser, vacuumed and analyzed.

use std::time::Instant;

use anyhow::{Context, Result};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use secrecy::SecretString;

use crate::layout::{
    AGENCY_CAMPAIGNS, BIG_CLIENT_CAMPAIGNS, CAMPAIGN, CAMPAIGN_STRIDE, CLIENT, CLIENTS, Layout,
    ORG, OUTPUT, OUTPUT_STRIDE, SME_CAMPAIGNS, USER, id_sql,
};

/// Connects with a small pool and no statement logging.
pub async fn connect(url: &str, max: u32) -> Result<DatabaseConnection> {
    let mut co = ConnectOptions::new(url.to_owned());
    co.max_connections(max)
        .min_connections(0)
        .sqlx_logging(false);
    Database::connect(co)
        .await
        .context("cannot connect to PostgreSQL")
}

/// Quotes an identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Makes sure database `name` holds the dataset `layout`: reuses it when its
/// comment says so (unless `reseed`), else drops, creates, migrates and
/// loads it.
pub async fn ensure(
    admin: &DatabaseConnection,
    name: &str,
    url: &str,
    layout: Layout,
    reseed: bool,
) -> Result<()> {
    let fingerprint = layout.fingerprint();
    let found = admin
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') AS c \
                 FROM pg_database WHERE datname = {}",
                literal(name)
            ),
        ))
        .await?;
    let comment: Option<String> = match found {
        Some(row) => Some(row.try_get("", "c")?),
        None => None,
    };
    if !reseed && comment.as_deref() == Some(fingerprint.as_str()) {
        eprintln!("dataset: reusing database {name} ({fingerprint})");
        // Migrations added since it was seeded.
        let db = strata_persistence::Db::connect(
            &SecretString::from(url.to_owned()),
            &strata_persistence::PoolOptions::default(),
        )
        .await
        .context("cannot connect to the benchmark database")?;
        db.migrate()
            .await
            .context("migrating the benchmark database")?;
        db.close().await;
        return Ok(());
    }
    eprintln!(
        "dataset: seeding database {name}: {} organizations, {} campaigns, {} outputs",
        layout.orgs,
        layout.campaigns(),
        layout.outputs()
    );
    let started = Instant::now();
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(name)
        ))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {}", ident(name)))
        .await?;

    migrate_and_load(url, layout).await?;

    admin
        .execute_unprepared(&format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(name),
            literal(&fingerprint)
        ))
        .await?;
    eprintln!(
        "dataset: {name} ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Migrates the empty database at `url` and loads `layout` into it.
pub async fn migrate_and_load(url: &str, layout: Layout) -> Result<()> {
    let db = strata_persistence::Db::connect(
        &SecretString::from(url.to_owned()),
        &strata_persistence::PoolOptions::default(),
    )
    .await
    .context("cannot connect to the new database")?;
    db.migrate().await.context("migrating the new database")?;
    db.close().await;

    let conn = connect(url, 1).await?;
    load(&conn, url, layout).await?;
    conn.close().await?;
    Ok(())
}

async fn exec(conn: &DatabaseConnection, label: &str, sql: &str) -> Result<()> {
    let started = Instant::now();
    conn.execute_unprepared(sql)
        .await
        .with_context(|| format!("loading {label}"))?;
    eprintln!(
        "dataset:   {label} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows are correct by construction, so foreign-key triggers are skipped
/// for the load (`session_replication_role = replica`); CHECK constraints
/// and unique indexes still apply.
const LOAD_SETTINGS: &str = "SET session_replication_role = replica; SET synchronous_commit = off; \
     SET maintenance_work_mem = '256MB'; SET work_mem = '64MB'";

async fn load(conn: &DatabaseConnection, url: &str, layout: Layout) -> Result<()> {
    let last = layout.last_org();
    let org = id_sql(ORG, "n");
    let user = id_sql(USER, "n");
    exec(conn, "settings", LOAD_SETTINGS).await?;
    exec(
        conn,
        "organizations",
        &format!(
            "INSERT INTO public.organizations (id, type, name, slug, settings, created_at, updated_at) \
             SELECT {org}, CASE WHEN n % 2 = 0 THEN 'AGENCY' ELSE 'SME' END, \
                    CASE WHEN n % 2 = 0 THEN 'Agency ' ELSE 'Company ' END || n, 'bench-' || n, \
                    jsonb_build_object('branding', jsonb_build_object('displayName', 'Org ' || n, \
                        'primaryColor', '#' || substr(md5(n::text), 1, 6))), \
                    timestamptz '2024-01-01 00:00:00+00' + n * interval '1 minute', \
                    timestamptz '2024-01-01 00:00:00+00' + n * interval '1 minute' \
             FROM generate_series(0, {last}) AS n"
        ),
    )
    .await?;
    exec(
        conn,
        "users and memberships",
        &format!(
            "INSERT INTO public.users (id, email, created_at, last_seen_at) \
             SELECT {user}, 'owner' || n || '@bench.example', timestamptz '2024-01-01 00:00:00+00', \
                    timestamptz '2024-01-01 00:00:00+00' \
             FROM generate_series(0, {last}) AS n; \
             INSERT INTO public.memberships (org_id, user_id, org_type, role, created_at, updated_at) \
             SELECT {org}, {user}, CASE WHEN n % 2 = 0 THEN 'AGENCY' ELSE 'SME' END, 'OWNER', \
                    timestamptz '2024-01-01 00:00:00+00', timestamptz '2024-01-01 00:00:00+00' \
             FROM generate_series(0, {last}) AS n"
        ),
    )
    .await?;

    // Agencies and SMEs load on two connections at once (two tables each).
    let second = connect(url, 1).await?;
    let agency = load_agencies(conn, layout);
    let sme = async {
        exec(&second, "settings", LOAD_SETTINGS).await?;
        load_smes(&second, layout).await
    };
    tokio::try_join!(agency, sme)?;
    second.close().await?;

    exec(
        conn,
        "vacuum and analyze",
        "VACUUM (ANALYZE) public.organizations, public.users, public.memberships, \
         public.campaigns, public.agent_outputs, tenant_b.workspace_entities, \
         tenant_b.campaigns, tenant_b.outputs",
    )
    .await?;
    exec(conn, "checkpoint", "CHECKPOINT").await?;
    Ok(())
}

/// The columns both campaign tables share, for organizations `n` of one
/// parity and campaign numbers `j`.
fn campaign_values() -> String {
    "'Campaign ' || j || ' - ' || (ARRAY['Spring launch', 'Summer sale', 'Back to school', \
     'Black Friday', 'Holiday gifts', 'Brand awareness', 'Loyalty push', 'Product teaser'])[1 + (n + j) % 8], \
     'Grow ' || (ARRAY['qualified leads', 'repeat purchases', 'newsletter sign-ups', 'store visits', \
     'trial accounts'])[1 + (n * 3 + j) % 5] || ' by ' || (5 + (n + j) % 40) || ' % among ' || \
     (ARRAY['young professionals', 'families', 'small retailers', 'students', 'facility managers', \
     'first-time buyers'])[1 + (n + 2 * j) % 6] || ' before the end of the quarter, with a budget of ' || \
     (1000 + ((n * 7 + j * 13) % 90) * 500) || ' EUR.', \
     (ARRAY['DRAFT', 'ACTIVE', 'ACTIVE', 'PAUSED', 'COMPLETED', 'ARCHIVED'])[1 + (n * 7 + j) % 6]"
        .to_owned()
}

/// The created_at of campaign `j` of organization `n`: newer for smaller `j`.
const CAMPAIGN_TS: &str =
    "(timestamptz '2026-06-01 00:00:00+00' - j * interval '3 hours' - n * interval '1 second')";

/// The output columns from `agent` on, for output `m` of campaign `j` of
/// organization `n`, created by `user` at `ts`.
fn output_values(user: &str) -> String {
    format!(
        "(ARRAY['BUSINESS_STRATEGY', 'BRAND_VOICE', 'PERSONA_BUILDER', 'CAMPAIGN_PLANNER'])[1 + m % 4], \
         CASE WHEN (j + m) % 10 = 9 THEN 'FAILED' ELSE 'SUCCEEDED' END, \
         jsonb_build_object('instructions', 'Focus on ' || v.seg || ' and ' || v.chan), \
         CASE WHEN (j + m) % 10 = 9 THEN NULL ELSE jsonb_build_object( \
            'version', 1, \
            'kind', lower((ARRAY['BUSINESS_STRATEGY', 'BRAND_VOICE', 'PERSONA_BUILDER', 'CAMPAIGN_PLANNER'])[1 + m % 4]), \
            'summary', 'Draft ' || substr(v.h, 1, 12) || ' for campaign ' || j || ': reach ' || v.seg || \
                ' through ' || v.chan || ', keep every message on ' || v.theme || \
                ' and measure weekly against the baseline of the previous quarter.', \
            'positioning', 'The dependable choice for ' || v.seg || ' who value ' || v.theme || '.', \
            'objectives', jsonb_build_array( \
                'Grow qualified leads from ' || v.seg || ' by ' || (5 + (n + j) % 30) || ' %', \
                'Lift ' || v.chan || ' engagement above ' || (2 + m) || ' % within a quarter', \
                'Keep cost per acquisition under ' || (20 + j % 50) || ' EUR'), \
            'swot', jsonb_build_object( \
                'strengths', jsonb_build_array('Known brand among ' || v.seg, 'Loyal customer base'), \
                'weaknesses', jsonb_build_array('Thin ' || v.chan || ' presence'), \
                'opportunities', jsonb_build_array('Underserved ' || v.seg || ' niche', \
                    'Seasonal demand around ' || v.theme), \
                'threats', jsonb_build_array('Price competition', 'Rising ad costs on ' || v.chan)), \
            'recommendations', jsonb_build_array( \
                'Lead with ' || v.theme || ' in every ' || v.chan || ' touchpoint', \
                'Test two creatives a week and keep the winner (' || substr(v.h, 13, 8) || ')', \
                'Report to stakeholders every ' || (1 + m % 4) || ' weeks')) END, \
         CASE WHEN (j + m) % 10 = 9 THEN 'the model provider timed out' END, \
         300 + (n + j + m) % 700, 500 + (n * 3 + j + m) % 1500, {user}, \
         t.ts, t.ts + interval '1 second', t.ts + interval '21 seconds'"
    )
}

/// The lateral helpers `output_values` reads.
const OUTPUT_LATERALS: &str = "CROSS JOIN LATERAL (SELECT \
        md5(n::text || ':' || j || ':' || m) AS h, \
        (ARRAY['young professionals', 'families', 'small retailers', 'students', 'facility managers', \
               'first-time buyers'])[1 + (n + j) % 6] AS seg, \
        (ARRAY['search', 'social', 'e-mail', 'video', 'events'])[1 + (j + m) % 5] AS chan, \
        (ARRAY['reliability', 'price', 'sustainability', 'speed', 'local service', 'design', \
               'expert advice'])[1 + (n + m) % 7] AS theme) AS v \
     CROSS JOIN LATERAL (SELECT timestamptz '2026-06-01 00:00:00+00' - j * interval '3 hours' \
        - n * interval '1 second' + (m + 1) * interval '5 hours' AS ts) AS t";

async fn load_agencies(conn: &DatabaseConnection, layout: Layout) -> Result<()> {
    let last = layout.last_org();
    let org = id_sql(ORG, "n");
    let user = id_sql(USER, "n");
    let client = id_sql(CLIENT, &format!("n * {CLIENTS} + k"));
    let campaign_client = id_sql(
        CLIENT,
        &format!(
            "n * {CLIENTS} + CASE WHEN j < {BIG_CLIENT_CAMPAIGNS} THEN 0 \
             ELSE 1 + (j - {BIG_CLIENT_CAMPAIGNS}) % {} END",
            CLIENTS - 1
        ),
    );
    let campaign = id_sql(CAMPAIGN, &format!("n::bigint * {CAMPAIGN_STRIDE} + j"));
    let output = id_sql(
        OUTPUT,
        &format!("(n::bigint * {CAMPAIGN_STRIDE} + j) * {OUTPUT_STRIDE} + m"),
    );
    let values = campaign_values();
    exec(
        conn,
        "agency clients",
        &format!(
            "INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug, created_at, updated_at) \
             SELECT {org}, {client}, 'Client ' || k || ' of agency ' || n, 'client-' || k, \
                    timestamptz '2024-06-01 00:00:00+00' - k * interval '1 day', \
                    timestamptz '2024-06-01 00:00:00+00' - k * interval '1 day' \
             FROM generate_series(0, {last}, 2) AS n, generate_series(0, {}) AS k",
            CLIENTS - 1
        ),
    )
    .await?;
    exec(
        conn,
        "agency campaigns",
        &format!(
            "INSERT INTO tenant_b.campaigns (org_id, id, client_id, name, objective, status, created_at, updated_at) \
             SELECT {org}, {campaign}, {campaign_client}, {values}, {CAMPAIGN_TS}, {CAMPAIGN_TS} \
             FROM generate_series(0, {last}, 2) AS n, generate_series(0, {}) AS j",
            AGENCY_CAMPAIGNS - 1
        ),
    )
    .await?;
    if layout.outputs_per_campaign > 0 {
        exec(
            conn,
            "agency outputs",
            &format!(
                "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status, input, \
                    output, error, prompt_tokens, completion_tokens, created_by, created_at, started_at, finished_at) \
                 SELECT {org}, {output}, {campaign_client}, {campaign}, {} \
                 FROM generate_series(0, {last}, 2) AS n, generate_series(0, {}) AS j, \
                      generate_series(0, {}) AS m {OUTPUT_LATERALS}",
                output_values(&user),
                AGENCY_CAMPAIGNS - 1,
                layout.outputs_per_campaign - 1
            ),
        )
        .await?;
    }
    Ok(())
}

async fn load_smes(conn: &DatabaseConnection, layout: Layout) -> Result<()> {
    if layout.orgs < 2 {
        return Ok(());
    }
    let last = layout.last_org();
    let org = id_sql(ORG, "n");
    let user = id_sql(USER, "n");
    let campaign = id_sql(CAMPAIGN, &format!("n::bigint * {CAMPAIGN_STRIDE} + j"));
    let output = id_sql(
        OUTPUT,
        &format!("(n::bigint * {CAMPAIGN_STRIDE} + j) * {OUTPUT_STRIDE} + m"),
    );
    let values = campaign_values();
    exec(
        conn,
        "SME campaigns",
        &format!(
            "INSERT INTO public.campaigns (org_id, id, name, objective, status, created_at, updated_at) \
             SELECT {org}, {campaign}, {values}, {CAMPAIGN_TS}, {CAMPAIGN_TS} \
             FROM generate_series(1, {last}, 2) AS n, generate_series(0, {}) AS j",
            SME_CAMPAIGNS - 1
        ),
    )
    .await?;
    if layout.outputs_per_campaign > 0 {
        exec(
            conn,
            "SME outputs",
            &format!(
                "INSERT INTO public.agent_outputs (org_id, id, campaign_id, agent, status, input, output, \
                    error, prompt_tokens, completion_tokens, created_by, created_at, started_at, finished_at) \
                 SELECT {org}, {output}, {campaign}, {} \
                 FROM generate_series(1, {last}, 2) AS n, generate_series(0, {}) AS j, \
                      generate_series(0, {}) AS m {OUTPUT_LATERALS}",
                output_values(&user),
                SME_CAMPAIGNS - 1,
                layout.outputs_per_campaign - 1
            ),
        )
        .await?;
    }
    Ok(())
}
