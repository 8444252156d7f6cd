//! `strata audit`: a freshly migrated database is clean, each way an
//! operator could weaken the isolation layer by hand is reported with its
//! id (and an exit status of 1), the list of what the migrations create is
//! the migrations', and the leak probe finds a leak a hand-made policy
//! opens, leaving nothing behind.

use sea_orm::{ConnectionTrait, TransactionTrait};
use strata_persistence::audit::{self, Report};
use strata_server::audit::exit_status;
use strata_tests::world::World;
use strata_tests::{TestDb, scalar};

fn ids(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(|f| f.id).collect()
}

#[tokio::test]
async fn a_freshly_migrated_database_is_clean_and_exits_0() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let report = audit::lint(&conn).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(exit_status(&report), 0);
    assert!(
        report.notes.iter().any(|n| n.contains("superuser")),
        "the superuser login is noted, not a finding: {:?}",
        report.notes
    );
    // Through the pool, one simple-protocol message per query, as `strata
    // audit` and `strata serve` run it.
    let pool = db.pool(1).await;
    let report = audit::lint(&pool).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

/// `expected.txt` lists what the migrations create; regenerate it with
/// `UPDATE_AUDIT_EXPECTED=1 cargo test -p strata-tests audit_expected`.
#[tokio::test]
async fn audit_expected_lists_what_the_migrations_create() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let actual = audit::expected::render(&audit::expected::catalog_lines(&conn).await.unwrap());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/persistence/src/audit/expected.txt");
    if std::env::var("UPDATE_AUDIT_EXPECTED").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    assert!(
        actual == audit::expected::EXPECTED,
        "crates/persistence/src/audit/expected.txt is out of date: run `UPDATE_AUDIT_EXPECTED=1 cargo test -p strata-tests audit_expected` and commit it"
    );
    let lines = audit::expected::lines();
    assert!(lines.iter().filter(|l| l.starts_with("policy ")).count() >= 60);
    assert!(lines.contains(&"member strata_gateway of app_sme"));
    assert!(audit::expected::tables().len() >= 14);
}

/// Each tampering, made in a transaction that is rolled back (roles are
/// shared by every database of the cluster), and the ids it must produce.
#[tokio::test]
async fn each_tampering_is_reported_with_its_id_and_exit_status_1() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let cases: &[(&str, &[&str])] = &[
        (
            "ALTER TABLE public.campaigns NO FORCE ROW LEVEL SECURITY",
            &["rls.not_forced"],
        ),
        (
            "ALTER TABLE tenant_b.outputs DISABLE ROW LEVEL SECURITY",
            &["rls.disabled"],
        ),
        (
            "CREATE POLICY open_door ON tenant_b.campaigns TO app_agency USING (true)",
            &["policy.unexpected", "policy.always_true"],
        ),
        (
            "CREATE POLICY narrower ON public.campaigns AS RESTRICTIVE TO app_sme USING (org_id IS NOT NULL)",
            &["policy.unexpected"],
        ),
        (
            "ALTER POLICY sme_org ON public.personas USING (true)",
            &["policy.changed", "policy.always_true"],
        ),
        (
            "DROP POLICY client_scope ON tenant_b.campaigns",
            &["policy.missing"],
        ),
        ("ALTER ROLE app_sme BYPASSRLS", &["role.bypassrls"]),
        ("ALTER ROLE app_agency SUPERUSER", &["role.superuser"]),
        ("ALTER ROLE app_auth LOGIN", &["role.login"]),
        (
            "ALTER TABLE public.personas OWNER TO app_sme",
            &["role.owns", "table.owner"],
        ),
        (
            "CREATE VIEW public.every_campaign AS SELECT * FROM public.campaigns",
            &["view.definer"],
        ),
        (
            "GRANT TRUNCATE ON public.campaigns TO app_sme",
            &["grant.dangerous", "grant.unexpected"],
        ),
        (
            "GRANT USAGE ON SCHEMA tenant_b TO app_sme",
            &["grant.cross_type", "grant.unexpected"],
        ),
        (
            "GRANT DELETE ON public.campaigns TO app_agency",
            &["grant.cross_type", "grant.unexpected"],
        ),
        ("GRANT app_agency TO app_sme", &["grant.unexpected"]),
        (
            "CREATE FUNCTION public.every_org() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS 'SELECT count(*) FROM public.organizations'",
            &["function.security_definer"],
        ),
        (
            "CREATE POLICY peek ON public.personas AS RESTRICTIVE TO app_sme USING (EXISTS (SELECT 1 FROM public.organizations))",
            &["policy.subselect", "policy.unexpected"],
        ),
        (
            "CREATE POLICY escape ON public.personas TO app_sme USING (app.current_org_id() IS NULL)",
            &["policy.null_escape", "policy.unexpected"],
        ),
        (
            "CREATE FUNCTION public.row_ok(public.campaigns) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT true';
             CREATE POLICY by_row ON public.campaigns AS RESTRICTIVE USING (public.row_ok(campaigns))",
            &["policy.row_argument"],
        ),
        (
            "CREATE OR REPLACE FUNCTION app.current_org_id() RETURNS uuid LANGUAGE sql STABLE SET search_path = pg_catalog
               AS $$ SELECT nullif(pg_catalog.current_setting('app.org_id', true), '')::pg_catalog.uuid $$",
            &["function.not_inlinable", "policy.not_inlined"],
        ),
        (
            "CREATE TABLE tenant_b.notes (org_id uuid NOT NULL, id uuid NOT NULL, body text, PRIMARY KEY (id))",
            &["rls.disabled", "rls.not_forced", "key.primary", "key.untyped", "key.unique", "table.owner"],
        ),
        (
            "DELETE FROM seaql_migrations WHERE version = (SELECT max(version) FROM seaql_migrations)",
            &["migrations.pending"],
        ),
        (
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m29990101_000001_from_the_future', 0)",
            &["migrations.unknown"],
        ),
        // Reporting: a role slipped into the reporting group without the
        // command, a login that skips policies or is also a runtime role,
        // and the group role itself widened.
        (
            "CREATE ROLE audit_stray_reader LOGIN IN ROLE app_reporting",
            &["reporting.login"],
        ),
        (
            "CREATE ROLE audit_rpt_login LOGIN BYPASSRLS IN ROLE app_reporting;
             INSERT INTO app.reporting_logins (login, org_id) SELECT 'audit_rpt_login', id FROM public.organizations LIMIT 1",
            &["reporting.login"],
        ),
        (
            "CREATE ROLE audit_rpt_login2 LOGIN IN ROLE app_reporting, app_sme",
            &["reporting.login"],
        ),
        ("GRANT app_agency TO app_reporting", &["reporting.group"]),
        ("ALTER ROLE app_reporting_client LOGIN", &["reporting.group"]),
    ];
    for (tampering, expected) in cases {
        let txn = conn.begin().await.unwrap();
        txn.execute_unprepared(tampering).await.unwrap();
        let report = audit::lint(&txn).await.unwrap();
        txn.rollback().await.unwrap();
        let found = ids(&report);
        for id in *expected {
            assert!(
                found.contains(id),
                "{tampering}: expected {id}, found {found:?}"
            );
        }
        assert_eq!(exit_status(&report), 1, "{tampering}");
        for f in &report.findings {
            assert!(
                !f.object.is_empty() && !f.fix.is_empty() && !f.message.is_empty(),
                "{tampering}: {f:?}"
            );
        }
    }
    // Nothing stayed behind.
    let report = audit::lint(&conn).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

#[tokio::test]
async fn the_probe_finds_nothing_on_a_sound_database_and_leaves_no_trace() {
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let _world = World::seed(&db, &su).await;
    let count = "SELECT (SELECT count(*) FROM public.organizations) + (SELECT count(*) FROM public.users)
                 + (SELECT count(*) FROM public.audit_log) + (SELECT count(*) FROM tenant_b.outputs)";
    let before = scalar(&su, count).await;
    let report = audit::probe(&db).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    // Every attempt was refused or found nothing, none failed otherwise,
    // and every table had canary rows.
    assert_eq!(report.notes.len(), 1, "{:#?}", report.notes);
    assert!(
        report.notes[0].starts_with("probe: 4 canary organizations, 18 tables"),
        "{:?}",
        report.notes
    );
    assert_eq!(
        scalar(&su, count).await,
        before,
        "the probe left rows behind"
    );

    // As the production login role, which can only switch to the runtime
    // roles, the probe runs the same.
    let url = test_db.url_logging_in_as("strata_gateway").await;
    let gateway = strata_persistence::Db::connect(&url, &Default::default())
        .await
        .unwrap();
    let report = audit::probe(&gateway).await.unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(scalar(&su, count).await, before);
}

#[tokio::test]
async fn the_probe_reports_what_a_hand_made_policy_leaks() {
    let test_db = TestDb::migrated().await;
    let db = test_db.pool(2).await;
    let su = test_db.superuser().await;
    let _world = World::seed(&db, &su).await;
    su.execute_unprepared(
        "CREATE POLICY open_door ON tenant_b.campaigns TO app_agency USING (true);
         DROP POLICY client_scope ON tenant_b.outputs;
         CREATE POLICY anyone_writes ON public.personas TO app_sme USING (true) WITH CHECK (true);
         GRANT SELECT ON public.agent_outputs TO app_auth;
         CREATE POLICY auth_peeks ON public.agent_outputs FOR SELECT TO app_auth USING (true)",
    )
    .await
    .unwrap();
    let report = audit::run(&db, true).await.unwrap();
    let leaks: Vec<(&str, &str)> = report
        .findings
        .iter()
        .filter(|f| f.id.starts_with("probe."))
        .map(|f| (f.id, f.object.as_str()))
        .collect();
    for expected in [
        ("probe.read", "tenant_b.campaigns"),
        ("probe.write", "tenant_b.campaigns"),
        ("probe.read", "public.personas"),
        ("probe.write", "public.personas"),
        ("probe.client_read", "tenant_b.outputs"),
        ("probe.client_write", "tenant_b.outputs"),
        ("probe.read", "public.agent_outputs"),
    ] {
        assert!(leaks.contains(&expected), "{expected:?} in {leaks:?}");
    }
    assert!(
        !leaks.iter().any(|(_, t)| *t == "public.campaigns"),
        "only the opened tables leak: {leaks:?}"
    );
    // The credential-resolving role is probed like the tenant roles.
    let peek = report
        .findings
        .iter()
        .find(|f| f.id == "probe.read" && f.object == "public.agent_outputs")
        .unwrap();
    assert!(format!("{peek:?}").contains("app_auth"), "{peek:#?}");
    assert!(report.has("policy.unexpected") && report.has("policy.missing"));
    assert_eq!(exit_status(&report), 1);
}
