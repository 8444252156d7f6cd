//! `--export-rows N`: the memory of a data export. Two agencies of their
//! own are seeded beside the dataset, one with N/10 agent runs and one
//! with N; a fresh gateway exports the smaller, then the larger
//! (`exportOrganization`, followed with `dataExport`) and serves each
//! file (`GET /exports/{id}`), read to its end. The gateway's resident
//! memory is read before and after each: an export streams, so the
//! larger one should not raise the peak much above the smaller one's.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::{Bench, db_name, layout::Layout, load, seed};

/// One agency of the export bench: its ids, derived from its size.
struct Agency {
    rows: u64,
    org: uuid::Uuid,
    user: uuid::Uuid,
}

impl Agency {
    fn new(rows: u64) -> Self {
        let id = |kind: &str| {
            uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("strata-bench-export-{kind}-{rows}").as_bytes(),
            )
        };
        Self {
            rows,
            org: id("org"),
            user: id("user"),
        }
    }

    /// Seeds it unless it holds its runs already.
    async fn ensure(&self, db: &DatabaseConnection) -> Result<()> {
        let org = self.org;
        let have = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!("SELECT count(*) AS n FROM tenant_b.outputs WHERE org_id = '{org}'"),
            ))
            .await?
            .and_then(|r| r.try_get::<i64>("", "n").ok())
            .unwrap_or(0);
        if u64::try_from(have).unwrap_or(0) == self.rows {
            return Ok(());
        }
        let started = Instant::now();
        let (user, rows) = (self.user, self.rows);
        let client = uuid::Uuid::new_v5(&org, b"client");
        let campaign = uuid::Uuid::new_v5(&org, b"campaign");
        db.execute_unprepared(&format!(
            "DELETE FROM public.organizations WHERE id = '{org}';
             INSERT INTO public.users (id) VALUES ('{user}') ON CONFLICT DO NOTHING;
             INSERT INTO public.organizations (id, type, name, slug)
               VALUES ('{org}', 'AGENCY', 'Export bench {rows}', 'bench-export-{rows}');
             INSERT INTO public.memberships (org_id, user_id, org_type, role)
               VALUES ('{org}', '{user}', 'AGENCY', 'OWNER');
             INSERT INTO tenant_b.workspace_entities (org_id, id, name, slug)
               VALUES ('{org}', '{client}', 'Export client', 'export-client');
             INSERT INTO tenant_b.campaigns (org_id, id, client_id, name)
               VALUES ('{org}', '{campaign}', '{client}', 'Export campaign');"
        ))
        .await
        .context("seeding the export agency")?;
        // A run with a typical output: a few hundred bytes of JSON.
        let batch = 200_000u64;
        let mut done = 0u64;
        while done < rows {
            let n = batch.min(rows - done);
            db.execute_unprepared(&format!(
                "INSERT INTO tenant_b.outputs (org_id, id, client_id, campaign_id, agent, status,
                                               input, output, prompt_tokens, completion_tokens, finished_at)
                 SELECT '{org}', gen_random_uuid(), '{client}', '{campaign}', 'BRAND_VOICE', 'SUCCEEDED',
                        jsonb_build_object('tone', 'warm'),
                        jsonb_build_object('kind', 'BRAND_VOICE', 'n', g,
                                           'summary', 'A brand voice for run ' || g || ': ' || repeat('confident, ', 12)),
                        120, 380, now()
                 FROM generate_series(1, {n}) g"
            ))
            .await
            .context("seeding the export agency's runs")?;
            done += n;
        }
        db.execute_unprepared("ANALYZE tenant_b.outputs").await?;
        eprintln!(
            "export bench: seeded {rows} runs in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Resident memory of `pid` now, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

/// Exports each agency through one fresh gateway, smallest first, and
/// records rows, bytes, times and the gateway's memory in the report.
pub async fn measure(bench: &mut Bench, layout: Layout, rows: u64) -> Result<()> {
    let db = seed::connect(&bench.pg.url(&db_name(layout)), 1).await?;
    let agencies = [Agency::new((rows / 10).max(1)), Agency::new(rows)];
    for a in &agencies {
        a.ensure(&db).await?;
    }
    db.close().await?;
    let server = bench.start_gateway(layout, "gateway-export").await?;
    let pid = server.pid();
    let port = server.port;
    let idle_rss = mib(rss_kib(pid));
    for a in &agencies {
        let token = strata_server::auth::mint(
            &SecretString::from(bench.secret.clone()),
            strata_domain::UserId::from_uuid(a.user),
            Some(strata_domain::OrgId::from_uuid(a.org)),
            None,
            Duration::from_secs(3600),
            None,
            None,
        )
        .context("minting a token")?;
        let started = Instant::now();
        let body = json!({ "query": "mutation { exportOrganization { id } }" }).to_string();
        let (_, answer) = load::post(&bench.client, port, &token, &body, None).await?;
        let Some(id) = answer["data"]["exportOrganization"]["id"].as_str() else {
            bail!("exportOrganization failed: {answer}");
        };
        let id = id.to_owned();
        let read = json!({
            "query": "query($id: ID!) { dataExport(id: $id) { status rowCount bytes error } }",
            "variables": { "id": id },
        })
        .to_string();
        let export = loop {
            let (_, answer) = load::post(&bench.client, port, &token, &read, None).await?;
            let export = answer["data"]["dataExport"].clone();
            match export["status"].as_str() {
                Some("RUNNING") => tokio::time::sleep(Duration::from_millis(250)).await,
                Some("READY") => break export,
                _ => bail!("the export did not finish: {answer}"),
            }
        };
        let written_s = started.elapsed().as_secs_f64();
        let after_write = mib(load::peak_rss_kib(pid));
        let started = Instant::now();
        let resp = bench
            .client
            .get(format!("http://127.0.0.1:{port}/exports/{id}"))
            .bearer_auth(&token)
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("download: {}", resp.status());
        }
        let (mut bytes, mut lines) = (0u64, 0u64);
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let download_s = started.elapsed().as_secs_f64();
        let file_rows = export["rowCount"].as_u64().unwrap_or(0);
        if lines != file_rows + 2 || Some(bytes) != export["bytes"].as_u64() {
            bail!("the file has {lines} lines and {bytes} bytes; the export said {export}");
        }
        let result = json!({
            "runs": a.rows,
            "rows": file_rows,
            "bytes": bytes,
            "write_s": written_s,
            "download_s": download_s,
            "gateway_idle_rss_mib": idle_rss,
            "gateway_peak_rss_after_write_mib": after_write,
            "gateway_peak_rss_after_download_mib": mib(load::peak_rss_kib(pid)),
            "gateway_rss_now_mib": mib(rss_kib(pid)),
        });
        eprintln!("export: {result}");
        bench.report.exports.push(result);
    }
    drop(server);
    Ok(())
}

/// The export lines of the report, for people.
pub fn print(exports: &[Value]) {
    if exports.is_empty() {
        return;
    }
    println!(
        "\n{:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "runs", "rows", "MiB", "write s", "read s", "idle MiB", "peak write", "peak read"
    );
    for e in exports {
        let f = |k: &str| e[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:>9} {:>9} {:>10.1} {:>8.1} {:>8.1} {:>9.1} {:>10.1} {:>10.1}",
            e["runs"],
            e["rows"],
            f("bytes") / 1_048_576.0,
            f("write_s"),
            f("download_s"),
            f("gateway_idle_rss_mib"),
            f("gateway_peak_rss_after_write_mib"),
            f("gateway_peak_rss_after_download_mib"),
        );
    }
}
