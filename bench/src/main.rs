//! `strata-bench`: seeds a benchmark dataset, starts the release gateway
//! (and optionally a peer gateway on the same database), drives both with
//! wrk, and reports throughput, latency, errors, SQL statements, CPU and
//! memory per request shape, as a table and as JSON.

mod citus;
mod export;
mod layout;
mod load;
mod rawsql;
mod report;
mod seed;
mod shapes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use secrecy::SecretString;
use serde_json::json;
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};

use crate::layout::{Layout, Tenant};
use crate::load::{Request, Server, WrkOptions};
use crate::report::{Report, Row};
use crate::shapes::{Shape, Target};

/// Benchmark Strata (and optionally PostGraphile 5 on the same database).
#[derive(Debug, Parser)]
#[command(name = "strata-bench", version)]
struct Args {
    /// Dataset scale: 1 is 10,000 organizations, 1,000,000 campaigns and
    /// 5,000,000 outputs.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Organizations (overrides --scale).
    #[arg(long)]
    orgs: Option<u64>,
    /// Agent outputs per campaign.
    #[arg(long, default_value_t = layout::DEFAULT_OUTPUTS)]
    outputs_per_campaign: u64,
    /// PostgreSQL superuser URL of an existing server; the bench creates its
    /// own databases there. Unset: a private cluster in --data-dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Where the private cluster lives.
    #[arg(long, default_value = "target/bench/pg")]
    data_dir: PathBuf,
    /// Reach the private cluster over loopback TCP rather than its
    /// Unix-domain socket (gateway, peer and pgbench alike).
    #[arg(long)]
    tcp: bool,
    /// PostgreSQL's log file (for --raw-sql with --database-url).
    #[arg(long)]
    pg_log: Option<PathBuf>,
    /// shared_buffers of the private cluster.
    #[arg(long, default_value = "1GB")]
    shared_buffers: String,
    /// Scratch files and the report go here.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// The release gateway binary.
    #[arg(long, default_value = "target/release/strata")]
    gateway: PathBuf,
    /// Another build of the gateway to measure beside this one, alternating
    /// (as target `strata-baseline`): before/after numbers of a change in
    /// one run.
    #[arg(long)]
    baseline_gateway: Option<PathBuf>,
    /// Pool size of the gateway (and of the peer).
    #[arg(long, default_value_t = 16)]
    pool: u32,
    /// Shapes to run, of a,b,c,d,e.
    #[arg(long, default_value = "a,b,c,d,e", value_delimiter = ',')]
    shapes: Vec<String>,
    /// Measured time per shape and target.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Tenants each shape rotates over (per kind).
    #[arg(long, default_value_t = 256)]
    tenants: usize,
    /// Rounds; targets alternate within each round (A/B/A/B).
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Also run the read shapes with Row-Level Security disabled.
    #[arg(long)]
    rls_off: bool,
    /// Also measure the raw-SQL limit with pgbench.
    #[arg(long)]
    raw_sql: bool,
    /// pgbench clients (default: --connections).
    #[arg(long)]
    pgbench_clients: Option<u32>,
    /// Peer gateway to compare with: `postgraphile`.
    #[arg(long)]
    peer: Option<String>,
    /// Also measure the read shapes on a local Citus cluster (a coordinator
    /// and two workers) holding the same dataset, as target
    /// `strata-citus`, alternating with one PostgreSQL.
    #[arg(long)]
    citus: bool,
    /// Tenant scaling: organization counts to compare (e.g. 1000,100000).
    /// One gateway per dataset; the datasets alternate within each round.
    #[arg(long, value_delimiter = ',')]
    tenant_scaling: Vec<u64>,
    /// Only the tenant-scaling comparison: skip the main dataset.
    #[arg(long, requires = "tenant_scaling")]
    only_scaling: bool,
    /// Also measure a data export's memory: agencies of N/10 and N agent
    /// runs of their own, each exported and downloaded through a fresh
    /// gateway (e.g. 1000000).
    #[arg(long, default_value_t = 0)]
    export_rows: u64,
    /// Only the export measurement: skip the shapes.
    #[arg(long)]
    only_export: bool,
    /// Drop and seed the dataset even if it exists.
    #[arg(long)]
    reseed: bool,
    /// Seed the dataset and stop.
    #[arg(long)]
    seed_only: bool,
    /// Where to write the JSON report (default: `<work-dir>/report.json`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The PostgreSQL server under test.
struct Pg {
    embedded: Option<EmbeddedPostgres>,
    base: url::Url,
    postmaster: u32,
    log: Option<PathBuf>,
}

impl Pg {
    /// How clients reach PostgreSQL: `unix-socket` when the URL names a
    /// socket directory (a `host` parameter or an encoded host starting
    /// with `/`), else `tcp`.
    fn transport(&self) -> &'static str {
        let socket =
            self.base
                .query_pairs()
                .any(|(k, v)| k == "host" && v.starts_with('/'))
                || self.base.host_str().is_some_and(|h| {
                    h.starts_with('/') || h.to_ascii_lowercase().starts_with("%2f")
                });
        if socket { "unix-socket" } else { "tcp" }
    }

    fn url(&self, db: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(&format!("/{db}"));
        u.to_string()
    }

    async fn open(args: &Args) -> Result<Self> {
        if let Some(url) = &args.database_url {
            let base = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
            let mut pg = Self {
                embedded: None,
                base,
                postmaster: 0,
                log: args.pg_log.clone(),
            };
            pg.postmaster = pg.find_postmaster().await?;
            return Ok(pg);
        }
        let opts = EmbeddedOptions {
            data_dir: args.data_dir.clone(),
            remove_on_exit: false,
            database: "postgres".into(),
            ..Default::default()
        };
        let mut embedded = EmbeddedPostgres::start(&opts).await?;
        let admin = seed::connect(
            secrecy::ExposeSecret::expose_secret(embedded.admin_url()),
            1,
        )
        .await?;
        let current: String = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT current_setting('shared_buffers') AS v",
            ))
            .await?
            .ok_or_else(|| anyhow!("no answer"))?
            .try_get("", "v")?;
        if !current.eq_ignore_ascii_case(&args.shared_buffers) {
            eprintln!(
                "postgres: shared_buffers {current} -> {}, restarting",
                args.shared_buffers
            );
            admin
                .execute_unprepared(&format!(
                    "ALTER SYSTEM SET shared_buffers = {}",
                    seed::literal(&args.shared_buffers)
                ))
                .await?;
            admin.close().await?;
            let pid_file = embedded.data_dir().join("pgdata").join("postmaster.pid");
            embedded.stop().await;
            // The old postmaster removes its lock file last.
            for _ in 0..300 {
                if !pid_file.exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            embedded = EmbeddedPostgres::start(&opts).await?;
        } else {
            admin.close().await?;
        }
        let admin_url = if args.tcp {
            embedded.tcp_admin_url()
        } else {
            embedded.admin_url()
        };
        let base = url::Url::parse(secrecy::ExposeSecret::expose_secret(admin_url))?;
        let log = Some(embedded.data_dir().join("postgres.log"));
        let mut pg = Self {
            embedded: Some(embedded),
            base,
            postmaster: 0,
            log,
        };
        pg.postmaster = pg.find_postmaster().await?;
        Ok(pg)
    }

    async fn find_postmaster(&self) -> Result<u32> {
        let admin = self.admin().await?;
        let pid: i32 = admin
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_backend_pid() AS pid",
            ))
            .await?
            .ok_or_else(|| anyhow!("no answer"))?
            .try_get("", "pid")?;
        // Read while the backend lives: it exits with the connection.
        let parent = load::parent(u32::try_from(pid)?);
        admin.close().await?;
        parent.ok_or_else(|| {
            anyhow!("PostgreSQL does not run on this machine: its CPU time cannot be measured")
        })
    }

    async fn admin(&self) -> Result<DatabaseConnection> {
        seed::connect(&self.url("postgres"), 1).await
    }

    async fn stop(self) {
        if let Some(e) = self.embedded {
            e.stop().await;
        }
    }
}

fn db_name(layout: Layout) -> String {
    format!(
        "strata_bench_o{}_x{}",
        layout.orgs, layout.outputs_per_campaign
    )
}

/// Everything a measurement needs.
struct Bench {
    args: Args,
    pg: Pg,
    secret: String,
    client: reqwest::Client,
    ticks: f64,
    wrk: WrkOptions,
    report: Report,
}

/// A running server and how to talk to it.
struct Running {
    server: Server,
    target: Target,
    /// The name rows and scripts carry.
    label: String,
    scripts: Vec<(Shape, PathBuf, Request)>,
}

impl Bench {
    fn strata_token(&self, t: Tenant) -> Result<String> {
        strata_server::auth::mint(
            &SecretString::from(self.secret.clone()),
            strata_domain::UserId::from_uuid(t.user()),
            Some(strata_domain::OrgId::from_uuid(t.org())),
            None,
            Duration::from_secs(24 * 3600),
            None,
            None,
        )
        .context("minting a token")
    }

    /// The peer reads the tenant context from its token, as PostGraphile
    /// deployments usually do: it gets the runtime role and organization
    /// without a membership lookup.
    fn peer_token(&self, t: Tenant) -> Result<String> {
        let exp = chrono_now() + 24 * 3600;
        let claims = json!({
            "sub": t.user(),
            "org_id": t.org(),
            "role": if t.is_agency() { "app_agency" } else { "app_sme" },
            "exp": exp,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .context("minting a peer token")
    }

    fn requests(
        &self,
        target: Target,
        shape: Shape,
        layout: Layout,
        first: u32,
    ) -> Result<Vec<Request>> {
        let agencies = layout::spread(layout.orgs, true, self.args.tenants);
        let smes = layout::spread(layout.orgs, false, self.args.tenants);
        let mut out = Vec::new();
        for (i, t) in shape.tenants(&agencies, &smes).into_iter().enumerate() {
            let Some(body) = shapes::body(target, shape, t, i, first) else {
                continue;
            };
            let token = match target {
                Target::Strata => self.strata_token(t)?,
                Target::PostGraphile => self.peer_token(t)?,
            };
            out.push(Request {
                token,
                body: body.to_string(),
            });
        }
        Ok(out)
    }

    fn shapes(&self) -> Result<Vec<Shape>> {
        let mut out = Vec::new();
        for s in &self.args.shapes {
            out.push(Shape::parse(s).ok_or_else(|| anyhow!("unknown shape {s:?}"))?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn gateway_command(&self, binary: &Path, url: &str, port: u16) -> Command {
        let mut cmd = Command::new(binary);
        cmd.args(["serve", "--no-migrate"])
            .env_remove("DATABASE_URL")
            .env("STRATA_DATABASE_URL", url)
            .env("STRATA_JWT_SECRET", &self.secret)
            .env("STRATA_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "STRATA_LOG",
                std::env::var("BENCH_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("STRATA_LOG_FORMAT", "json")
            .env("STRATA_DB_MAX_CONNECTIONS", self.args.pool.to_string())
            .env("STRATA_RATE_LIMIT_PER_KEY", "0")
            .env("STRATA_RATE_LIMIT_PER_USER", "0")
            .env("STRATA_RATE_LIMIT_PER_ORG", "0");
        cmd
    }

    async fn start_gateway(&self, layout: Layout, label: &str) -> Result<Server> {
        self.start_gateway_from(&self.args.gateway, layout, label)
            .await
    }

    /// A gateway from `binary` on the database at `url`.
    async fn start_gateway_at(&self, binary: &Path, url: &str, label: &str) -> Result<Server> {
        if !binary.is_file() {
            bail!(
                "{} not found: build it with cargo build --release -p strata-server",
                binary.display()
            );
        }
        let port = load::free_port()?;
        let log = self.args.work_dir.join(format!("{label}.log"));
        Server::start(
            label,
            self.gateway_command(binary, url, port),
            port,
            "/readyz",
            &log,
            true,
            Duration::from_secs(60),
        )
        .await
    }

    async fn start_gateway_from(
        &self,
        binary: &Path,
        layout: Layout,
        label: &str,
    ) -> Result<Server> {
        self.start_gateway_at(binary, &self.pg.url(&db_name(layout)), label)
            .await
    }

    async fn start_peer(&self, layout: Layout) -> Result<Server> {
        let Some(peer) = &self.args.peer else {
            bail!("no peer");
        };
        if peer != "postgraphile" {
            bail!("unknown peer {peer:?}: only postgraphile is supported");
        }
        let port = load::free_port()?;
        let mut cmd = Command::new("bash");
        cmd.arg("bench/peer/postgraphile.sh")
            .env("DATABASE_URL", self.pg.url(&db_name(layout)))
            .env("PEER_PORT", port.to_string())
            .env("PEER_JWT_SECRET", &self.secret)
            .env("PEER_POOL", self.args.pool.to_string());
        let log = self.args.work_dir.join("postgraphile.log");
        Server::start(
            "postgraphile",
            cmd,
            port,
            "/graphql",
            &log,
            false,
            Duration::from_secs(300),
        )
        .await
    }

    /// Writes the wrk scripts of `target` and checks a sample answer of
    /// each shape; shapes whose sample fails are left out (and reported).
    async fn prepare(
        &mut self,
        server: Server,
        target: Target,
        label: &str,
        layout: Layout,
        shapes: &[Shape],
    ) -> Result<Running> {
        let mut scripts = Vec::new();
        for &shape in shapes {
            let reqs = self.requests(target, shape, layout, 50)?;
            let Some(first) = reqs.first().cloned() else {
                continue;
            };
            let name = format!("{label}-{}-{}.lua", shape.letter(), layout.orgs);
            let path = self.args.work_dir.join(name);
            load::write_lua(&path, "/graphql", &reqs)?;
            match self.check(&server, shape, &first).await {
                Ok(summary) => {
                    eprintln!("check: {label} ({}) {summary}", shape.letter());
                    scripts.push((shape, path, first));
                }
                Err(e) => {
                    let msg = format!("{label} ({}): sample failed: {e:#}", shape.letter());
                    eprintln!("check: {msg}");
                    self.report.notes.push(msg);
                }
            }
        }
        Ok(Running {
            server,
            target,
            label: label.to_owned(),
            scripts,
        })
    }

    async fn check(&self, server: &Server, shape: Shape, req: &Request) -> Result<String> {
        let (status, body) =
            load::post(&self.client, server.port, &req.token, &req.body, None).await?;
        if status != 200 {
            bail!("HTTP {status}: {body}");
        }
        if body.get("errors").is_some_and(|e| !e.is_null()) {
            bail!("errors: {}", body["errors"]);
        }
        let data = body
            .get("data")
            .filter(|d| !d.is_null())
            .ok_or_else(|| anyhow!("no data: {body}"))?;
        let (campaigns, outputs) = shapes::count(data);
        if let Some((c, o)) = shapes::expected(shape)
            && (campaigns != c || outputs < o)
        {
            bail!("expected {c} campaigns, got {campaigns}");
        }
        if shape == Shape::B && (campaigns != 50 || outputs == 0) {
            bail!("expected 50 campaigns with outputs, got {campaigns} and {outputs} outputs");
        }
        Ok(format!(
            "ok: {campaigns} campaigns, {outputs} outputs, {} bytes",
            body.to_string().len()
        ))
    }

    /// One measurement: warm-up, then wrk with counters around it.
    async fn measure(
        &mut self,
        run: &Running,
        shape: Shape,
        mode: &str,
        round: u32,
        orgs: u64,
    ) -> Result<()> {
        let Some((_, script, _)) = run.scripts.iter().find(|(s, ..)| *s == shape) else {
            return Ok(());
        };
        let port = run.server.port;
        let pid = run.server.pid();
        let strata = run.target == Target::Strata;
        if !self.args.warmup.is_zero() {
            load::wrk(&self.wrk, port, script, self.args.warmup).await?;
        }
        let c0 = if strata {
            Some(load::counters(&self.client, port).await?)
        } else {
            None
        };
        let (cpu0, pg0) = (load::cpu_ticks(pid), load::pg_cpu_ticks(self.pg.postmaster));
        let w = load::wrk(&self.wrk, port, script, self.args.duration).await?;
        let (cpu1, pg1) = (load::cpu_ticks(pid), load::pg_cpu_ticks(self.pg.postmaster));
        let c1 = if strata {
            Some(load::counters(&self.client, port).await?)
        } else {
            None
        };
        let n = w.requests.max(1) as f64;
        let ms = |ticks: u64| ticks as f64 / self.ticks * 1000.0;
        let (graphql_errors, sql, answered) = match (c0, c1) {
            (Some(a), Some(b)) => {
                let answered = (b.ok + b.failed - a.ok - a.failed).max(1.0);
                (
                    Some((b.failed - a.failed).max(0.0) as u64),
                    Some((b.statements - a.statements) / answered),
                    Some(answered as u64),
                )
            }
            _ => (None, None, None),
        };
        let row = Row {
            target: run.label.clone(),
            mode: mode.to_owned(),
            shape: shape.letter().to_owned(),
            round,
            orgs,
            requests: w.requests,
            server_requests: answered,
            rps: w.rps(),
            p50_ms: w.p50_us as f64 / 1000.0,
            p90_ms: w.p90_us as f64 / 1000.0,
            p99_ms: w.p99_us as f64 / 1000.0,
            non_2xx: w.status,
            socket_errors: w.transport_errors() - w.status,
            graphql_errors,
            sql_per_request: sql,
            server_cpu_ms_per_request: Some(ms(cpu1.saturating_sub(cpu0)) / n),
            pg_cpu_ms_per_request: ms(pg1.saturating_sub(pg0)) / n,
            server_peak_rss_mib: load::peak_rss_kib(pid).map(|k| k as f64 / 1024.0),
        };
        eprintln!("{}", row.line());
        self.report.rows.push(row);
        Ok(())
    }

    /// Statements per request of the read shapes at two page sizes, one
    /// request each, nothing else running.
    async fn page_size_statements(&mut self, server: &Server, layout: Layout) -> Result<()> {
        for shape in [Shape::A, Shape::B, Shape::D] {
            for first in [5u32, 50] {
                let reqs = self.requests(Target::Strata, shape, layout, first)?;
                let Some(req) = reqs.get(1).or(reqs.first()) else {
                    continue;
                };
                // Once to warm the credential cache, then measured.
                load::post(&self.client, server.port, &req.token, &req.body, None).await?;
                let a = load::counters(&self.client, server.port).await?;
                load::post(&self.client, server.port, &req.token, &req.body, None).await?;
                let b = load::counters(&self.client, server.port).await?;
                self.report.statements_by_page_size.push(json!({
                    "shape": shape.letter(),
                    "first": first,
                    "statements": b.statements - a.statements,
                }));
                eprintln!(
                    "statements: ({}) first={first}: {}",
                    shape.letter(),
                    b.statements - a.statements
                );
            }
        }
        Ok(())
    }

    async fn set_rls(&self, db: &str, on: bool) -> Result<()> {
        let conn = seed::connect(&self.pg.url(db), 1).await?;
        let verb = if on { "ENABLE" } else { "DISABLE" };
        conn.execute_unprepared(&format!(
            "DO $rls$ DECLARE t regclass; BEGIN \
             FOR t IN SELECT c.oid::regclass FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('public', 'tenant_b') \
                   AND c.relowner = 'strata_owner'::regrole \
             LOOP EXECUTE format('ALTER TABLE %s {verb} ROW LEVEL SECURITY', t); END LOOP; END $rls$"
        ))
        .await?;
        conn.close().await?;
        Ok(())
    }

    /// Captures the gateway's SQL for the read shapes and replays it with
    /// pgbench.
    async fn raw_sql(&mut self, layout: Layout, shapes: &[Shape]) -> Result<()> {
        let Some(log_path) = self.pg.log.clone() else {
            self.report
                .notes
                .push("raw-SQL limit skipped: PostgreSQL's log file is unknown (--pg-log)".into());
            return Ok(());
        };
        let db = db_name(layout);
        let admin = self.pg.admin().await?;
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {} SET log_statement = 'all'",
                seed::ident(&db)
            ))
            .await?;
        let from = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let captured = async {
            let mut server = self.start_gateway(layout, "gateway-capture").await?;
            let mut ids = Vec::new();
            for &shape in shapes.iter().filter(|s| !s.writes()) {
                let reqs = self.requests(Target::Strata, shape, layout, 50)?;
                let Some(req) = reqs.first() else { continue };
                let rid = format!(
                    "bench-capture-{}-{}",
                    shape.letter(),
                    uuid::Uuid::new_v4().simple()
                );
                load::post(&self.client, server.port, &req.token, &req.body, Some(&rid)).await?;
                ids.push((shape, rid));
            }
            server.stop();
            Ok::<_, anyhow::Error>(ids)
        }
        .await;
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE {} RESET log_statement",
                seed::ident(&db)
            ))
            .await?;
        admin.close().await?;
        let ids = captured?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = std::fs::read(&log_path)?;
        let text =
            String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned();
        let clients = self.args.pgbench_clients.unwrap_or(self.args.connections);
        for (shape, rid) in ids {
            let statements = match rawsql::transaction(&text, &rid) {
                Ok(s) => s,
                Err(e) => {
                    self.report
                        .notes
                        .push(format!("raw-SQL ({}): {e:#}", shape.letter()));
                    continue;
                }
            };
            let agencies = layout::spread(layout.orgs, true, 64);
            let smes = layout::spread(layout.orgs, false, 64);
            let tenants = shape.tenants(&agencies, &smes);
            let Some(sample) = tenants.first() else {
                continue;
            };
            let mut ns: Vec<u64> = tenants.iter().map(|t| t.n).collect();
            ns.truncate(64);
            let scripts = rawsql::write_scripts(
                &self.args.work_dir,
                shape.letter(),
                &statements,
                sample.n,
                &ns,
            )?;
            self.report.captured_sql.push(json!({
                "shape": shape.letter(),
                "statements": statements,
            }));
            let url = self.pg.url(&db);
            // Warm-up, then measured.
            if !self.args.warmup.is_zero() {
                rawsql::pgbench(&url, &scripts, clients, self.args.threads, self.args.warmup)
                    .await?;
            }
            let pg0 = load::pg_cpu_ticks(self.pg.postmaster);
            let r = rawsql::pgbench(
                &url,
                &scripts,
                clients,
                self.args.threads,
                self.args.duration,
            )
            .await?;
            let pg1 = load::pg_cpu_ticks(self.pg.postmaster);
            let n = r.transactions.max(1) as f64;
            let row = Row {
                target: "pgbench".into(),
                mode: "raw-sql".into(),
                shape: shape.letter().to_owned(),
                round: 0,
                orgs: layout.orgs,
                requests: r.transactions,
                server_requests: None,
                rps: r.tps,
                p50_ms: r.latency_ms,
                p90_ms: 0.0,
                p99_ms: 0.0,
                non_2xx: 0,
                socket_errors: r.failed,
                graphql_errors: None,
                sql_per_request: Some(statements.len() as f64),
                server_cpu_ms_per_request: None,
                pg_cpu_ms_per_request: (pg1.saturating_sub(pg0)) as f64 / self.ticks * 1000.0 / n,
                server_peak_rss_mib: None,
            };
            eprintln!("{}", row.line());
            self.report.rows.push(row);
        }
        Ok(())
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("strata-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<()> {
    let orgs = match args.orgs {
        Some(n) => n,
        None => ((layout::DEFAULT_ORGS as f64) * args.scale).round() as u64,
    }
    .max(2);
    let layout = Layout {
        orgs,
        outputs_per_campaign: args.outputs_per_campaign,
    };
    std::fs::create_dir_all(&args.work_dir)?;
    let pg = Pg::open(&args).await?;
    let result = bench(args, pg, layout).await;
    if let Err(e) = &result {
        eprintln!("strata-bench: {e:#}");
    }
    result
}

async fn bench(args: Args, pg: Pg, layout: Layout) -> Result<()> {
    // The main dataset, unless only tenant scaling is asked for; with
    // --seed-only, the tenant-scaling datasets too.
    let mut datasets = Vec::new();
    if !args.only_scaling {
        datasets.push(layout);
    }
    if args.seed_only {
        datasets.extend(args.tenant_scaling.iter().map(|&orgs| Layout {
            orgs: orgs.max(2),
            outputs_per_campaign: layout.outputs_per_campaign,
        }));
    }
    let admin = pg.admin().await?;
    let mut seeded = Ok(());
    for l in datasets {
        let db = db_name(l);
        seeded = seed::ensure(&admin, &db, &pg.url(&db), l, args.reseed).await;
        if seeded.is_err() {
            break;
        }
    }
    admin.close().await?;
    if let Err(e) = seeded {
        pg.stop().await;
        return Err(e);
    }
    if args.seed_only {
        pg.stop().await;
        return Ok(());
    }
    let wrk = WrkOptions {
        threads: args.threads,
        connections: args.connections,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.work_dir.join("report.json"));
    let mut bench = Bench {
        report: Report::new(&args, load::machine(), layout, pg.transport()),
        secret: uuid::Uuid::new_v4().simple().to_string(),
        client: reqwest::Client::new(),
        ticks: load::clock_ticks(),
        wrk,
        pg,
        args,
    };
    let result = drive(&mut bench, layout).await;
    // Whatever happened, RLS is back on.
    if bench.args.rls_off && !bench.args.only_scaling {
        let _ = bench.set_rls(&db_name(layout), true).await;
    }
    if let Err(e) = &result {
        bench.report.notes.push(format!("run failed: {e:#}"));
    }
    bench.report.print();
    bench.report.write(&out)?;
    eprintln!("report: {}", out.display());
    let Bench { pg, .. } = bench;
    pg.stop().await;
    result
}

async fn drive(bench: &mut Bench, layout: Layout) -> Result<()> {
    let shapes = bench.shapes()?;
    if !bench.args.only_scaling && !bench.args.only_export {
        main_dataset(bench, layout, &shapes).await?;
    }
    if !bench.args.tenant_scaling.is_empty() && !bench.args.only_export {
        tenant_scaling(bench, layout, &shapes).await?;
    }
    if bench.args.export_rows > 0 {
        export::measure(bench, layout, bench.args.export_rows).await?;
    }
    Ok(())
}

/// Every target on the main dataset, alternating within each round; then
/// the raw-SQL limit.
async fn main_dataset(bench: &mut Bench, layout: Layout, shapes: &[Shape]) -> Result<()> {
    let db = db_name(layout);
    if bench.args.rls_off {
        bench.set_rls(&db, true).await?;
    }
    let gateway = bench.start_gateway(layout, "gateway").await?;
    let strata = bench
        .prepare(gateway, Target::Strata, "strata", layout, shapes)
        .await?;
    bench.page_size_statements(&strata.server, layout).await?;
    let baseline = match bench.args.baseline_gateway.clone() {
        Some(binary) => {
            let server = bench
                .start_gateway_from(&binary, layout, "gateway-baseline")
                .await?;
            Some(
                bench
                    .prepare(server, Target::Strata, "strata-baseline", layout, shapes)
                    .await?,
            )
        }
        None => None,
    };
    let citus = match bench.args.citus {
        true => {
            let cluster = citus::Cluster::start(&bench.args.work_dir).await?;
            cluster.seed(&db, layout).await?;
            let server = bench
                .start_gateway_at(
                    &bench.args.gateway.clone(),
                    &cluster.url(&db)?,
                    "gateway-citus",
                )
                .await?;
            let read: Vec<Shape> = shapes.iter().copied().filter(|s| !s.writes()).collect();
            let run = bench
                .prepare(server, Target::Strata, "strata-citus", layout, &read)
                .await?;
            Some((cluster, run))
        }
        false => None,
    };
    let peer = match &bench.args.peer {
        Some(_) => {
            let server = bench.start_peer(layout).await?;
            Some(
                bench
                    .prepare(server, Target::PostGraphile, "postgraphile", layout, shapes)
                    .await?,
            )
        }
        None => None,
    };
    for round in 0..bench.args.rounds {
        for &shape in shapes {
            bench
                .measure(&strata, shape, "rls-on", round, layout.orgs)
                .await?;
            if let Some(baseline) = &baseline {
                bench
                    .measure(baseline, shape, "rls-on", round, layout.orgs)
                    .await?;
            }
            if let Some((_, run)) = &citus
                && !shape.writes()
            {
                bench
                    .measure(run, shape, "rls-on", round, layout.orgs)
                    .await?;
            }
            if bench.args.rls_off && !shape.writes() {
                bench.set_rls(&db, false).await?;
                let r = bench
                    .measure(&strata, shape, "rls-off", round, layout.orgs)
                    .await;
                bench.set_rls(&db, true).await?;
                r?;
            }
            if let Some(peer) = &peer {
                bench
                    .measure(peer, shape, "rls-on", round, layout.orgs)
                    .await?;
            }
        }
    }
    drop(peer);
    drop(baseline);
    drop(strata);
    if let Some((cluster, run)) = citus {
        drop(run);
        cluster.stop().await;
    }
    if bench.args.raw_sql {
        bench.raw_sql(layout, shapes).await?;
    }
    Ok(())
}

/// The read shapes on one dataset per organization count, a gateway on
/// each, the datasets alternating within each round so that the machine's
/// drift falls on all of them alike.
async fn tenant_scaling(bench: &mut Bench, layout: Layout, shapes: &[Shape]) -> Result<()> {
    let mut sizes = bench.args.tenant_scaling.clone();
    sizes.sort_unstable();
    sizes.dedup();
    let read: Vec<Shape> = shapes.iter().copied().filter(|s| !s.writes()).collect();
    let mut runs = Vec::new();
    for orgs in sizes {
        let l = Layout {
            orgs: orgs.max(2),
            outputs_per_campaign: layout.outputs_per_campaign,
        };
        let name = db_name(l);
        let admin = bench.pg.admin().await?;
        seed::ensure(&admin, &name, &bench.pg.url(&name), l, bench.args.reseed).await?;
        admin.close().await?;
        let server = bench.start_gateway(l, &format!("gateway-{orgs}")).await?;
        let run = bench
            .prepare(server, Target::Strata, "strata", l, &read)
            .await?;
        runs.push((l, run));
    }
    for round in 0..bench.args.rounds {
        for &shape in &read {
            for (l, run) in &runs {
                bench.measure(run, shape, "scaling", round, l.orgs).await?;
            }
        }
    }
    Ok(())
}
