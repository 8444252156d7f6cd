//! `schema.sql` at the repository's root is the schema the migrations
//! build, normalized from the catalog: tables and views with their columns,
//! keys, indexes, Row-Level Security, policies and grants (of columns too),
//! and the functions of the `app` schema. It lets a reader see the policies
//! on a table in one place; this test keeps it true (`UPDATE_SCHEMA_SQL=1`
//! rewrites it).

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use strata_tests::TestDb;

const SCHEMAS: &str = "('public', 'tenant_b', 'app', 'reporting')";

async fn lines(conn: &DatabaseConnection, sql: &str) -> Vec<String> {
    conn.query_all_raw(Statement::from_string(
        sea_orm::DbBackend::Postgres,
        sql.to_owned(),
    ))
    .await
    .expect("read the catalog")
    .into_iter()
    .map(|r| r.try_get_by_index::<String>(0).expect("a text column"))
    .collect()
}

/// The normalized schema of the database `conn` is on.
async fn normalized(conn: &DatabaseConnection) -> String {
    let mut out = String::from(
        "-- The schema the migrations build, normalized from the catalog (tables,\n\
         -- keys, indexes, Row-Level Security, policies, grants, functions).\n\
         -- Generated: UPDATE_SCHEMA_SQL=1 cargo test -p strata-tests schema_sql\n",
    );
    let tables = lines(
        conn,
        &format!(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v') AND n.nspname IN {SCHEMAS} \
             AND c.relname <> 'seaql_migrations' ORDER BY 1"
        ),
    )
    .await;
    for table in tables {
        let q = |sql: String| sql.replace("$T", &format!("'{table}'::regclass"));
        let head = lines(
            conn,
            &q("SELECT CASE c.relkind WHEN 'v' THEN 'CREATE VIEW ' ELSE 'CREATE TABLE ' END || n.nspname || '.' || c.relname \
                || ' -- owner ' || pg_get_userbyid(c.relowner) \
                || CASE WHEN c.relrowsecurity THEN ', row level security' ELSE '' END \
                || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END \
                || coalesce(', ' || array_to_string(c.reloptions, ', '), '') \
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $T"
                .into()),
        )
        .await;
        out.push('\n');
        out.push_str(&head.join("\n"));
        out.push('\n');
        for (sql, indent) in [
            (
                "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
                 || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END \
                 || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '') \
                 FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
                 WHERE a.attrelid = $T AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                "    ",
            ),
            (
                "SELECT 'CONSTRAINT ' || conname || ' ' || pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE conrelid = $T ORDER BY conname",
                "  ",
            ),
            (
                "SELECT pg_get_indexdef(indexrelid) || ';' FROM pg_index WHERE indrelid = $T \
                 ORDER BY 1",
                "  ",
            ),
            (
                "SELECT 'POLICY ' || policyname || ' AS ' || permissive || ' FOR ' || cmd \
                 || ' TO ' || array_to_string(roles, ', ') \
                 || coalesce(' USING (' || qual || ')', '') \
                 || coalesce(' WITH CHECK (' || with_check || ')', '') \
                 FROM pg_policies WHERE (schemaname || '.' || tablename) = $T::regclass::text \
                    OR (schemaname = 'public' AND tablename = $T::regclass::text) ORDER BY policyname",
                "  ",
            ),
            (
                "SELECT 'GRANT ' || string_agg(privilege_type, ', ' ORDER BY privilege_type) || ' TO ' || grantee \
                 FROM information_schema.role_table_grants \
                 WHERE (table_schema || '.' || table_name) = $T::regclass::text \
                    OR (table_schema = 'public' AND table_name = $T::regclass::text) \
                 GROUP BY grantee ORDER BY grantee",
                "  ",
            ),
            (
                "SELECT 'GRANT ' || c.privilege_type || ' (' || string_agg(c.column_name, ', ' ORDER BY c.column_name) \
                 || ') TO ' || c.grantee \
                 FROM information_schema.column_privileges c \
                 WHERE ((c.table_schema || '.' || c.table_name) = $T::regclass::text \
                        OR (c.table_schema = 'public' AND c.table_name = $T::regclass::text)) \
                   AND NOT EXISTS (SELECT 1 FROM information_schema.role_table_grants t \
                                   WHERE t.table_schema = c.table_schema AND t.table_name = c.table_name \
                                     AND t.grantee = c.grantee AND t.privilege_type = c.privilege_type) \
                 GROUP BY c.grantee, c.privilege_type ORDER BY c.grantee, c.privilege_type",
                "  ",
            ),
        ] {
            for line in lines(conn, &q(sql.into())).await {
                out.push_str(indent);
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out.push('\n');
    for def in lines(
        conn,
        &format!(
            "SELECT pg_get_functiondef(p.oid) || ';' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname IN {SCHEMAS} ORDER BY n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)"
        ),
    )
    .await
    {
        out.push_str(def.trim_end());
        out.push_str("\n\n");
    }
    out
}

#[tokio::test]
async fn the_checked_in_schema_sql_matches_the_migrated_database() {
    let db = TestDb::migrated().await;
    let conn = db.superuser().await;
    let actual = normalized(&conn).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema.sql");
    if std::env::var("UPDATE_SCHEMA_SQL").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &actual).expect("write schema.sql");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == actual,
        "schema.sql is out of date: run `UPDATE_SCHEMA_SQL=1 cargo test -p strata-tests schema_sql` and commit it"
    );
}
