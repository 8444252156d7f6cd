//! The real `strata` binary. These live beside the binary's crate because
//! only there does cargo build it for tests and say where it is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn strata() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    for var in [
        "DATABASE_URL",
        "STRATA_DATABASE_URL",
        "STRATA_JWT_SECRET",
        "STRATA_JWKS_URL",
        "STRATA_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("STRATA_LOG_FORMAT", "json");
    cmd
}

fn fails_with_one_line(cmd: &mut Command, expected: &str) {
    let out = cmd.output().expect("run strata");
    assert!(!out.status.success(), "should fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(lines.len(), 1, "one line of explanation, got: {stderr}");
    assert!(lines[0].contains(expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_without_a_secret_exits_non_zero_with_one_line() {
    fails_with_one_line(
        strata().args(["serve", "--listen", "127.0.0.1:0"]),
        "STRATA_JWT_SECRET",
    );
}

#[test]
fn serve_with_an_hs256_secret_under_32_bytes_exits_non_zero_with_one_line() {
    fails_with_one_line(
        strata()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("STRATA_JWT_SECRET", "only-31-bytes-of-secret-here-x!"),
        "at least 32",
    );
}

#[test]
fn serve_with_jwks_but_no_issuer_or_audience_warns_at_start() {
    // The database URL is bad so that the process stops right after the
    // checks of its configuration.
    let out = strata()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "STRATA_JWKS_URL",
            "http://127.0.0.1:9/.well-known/jwks.json",
        )
        .env("DATABASE_URL", "not a url")
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWKS is configured without --jwt-issuer or --jwt-audience"),
        "{stderr}"
    );
    let out = strata()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "STRATA_JWKS_URL",
            "http://127.0.0.1:9/.well-known/jwks.json",
        )
        .env("STRATA_JWT_ISSUER", "https://id.example.test/")
        .env("STRATA_JWT_AUDIENCE", "strata")
        .env("DATABASE_URL", "not a url")
        .output()
        .expect("run strata");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("JWKS is configured without"), "{stderr}");
}

#[test]
fn serve_with_a_bad_database_url_exits_non_zero_with_one_line() {
    fails_with_one_line(
        strata()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(
                "STRATA_JWT_SECRET",
                "a-secret-for-this-test-only-0123456789",
            )
            .env("DATABASE_URL", "not a url"),
        "database",
    );
    fails_with_one_line(
        strata()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(
                "STRATA_JWT_SECRET",
                "a-secret-for-this-test-only-0123456789",
            )
            .env(
                "DATABASE_URL",
                "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            ),
        "database",
    );
}

#[test]
fn serve_on_a_port_in_use_exits_non_zero_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with_one_line(
        strata()
            .args(["serve", "--listen", &addr])
            .env(
                "STRATA_JWT_SECRET",
                "a-secret-for-this-test-only-0123456789",
            )
            .env(
                "DATABASE_URL",
                "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
            ),
        "cannot listen",
    );
}

#[test]
fn help_names_every_command_and_its_environment_variables() {
    let out = strata().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "migrate",
        "token",
        "STRATA_DATABASE_URL",
        "STRATA_DATA_DIR",
        "STRATA_JWT_SECRET",
        "STRATA_LOG",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
    let out = strata().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--demo", "--no-migrate", "STRATA_LISTEN"] {
        assert!(help.contains(word), "serve --help lacks {word}: {help}");
    }
}

#[test]
fn token_mints_a_jwt_with_the_configured_secret() {
    let user = "5b0c1c56-4c2a-4d36-9f9e-0a6b8f0e1a11";
    let org = "0f5c7f6e-2b9d-4a3c-8d3e-6a1f2e3d4c5b";
    let out = strata()
        .args(["token", "--user", user, "--org", org, "--ttl", "2h"])
        .env(
            "STRATA_JWT_SECRET",
            "a-secret-for-this-test-only-0123456789",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "{token}");
}

/// Runs `strata serve --demo` on the embedded PostgreSQL: it must become
/// ready and answer `me` for a printed demo token; stopping it stops the
/// cluster too.
#[test]
fn serve_demo_on_the_embedded_postgres_answers_readyz_and_me() {
    let dir = std::env::temp_dir().join(format!("strata-cli-{}", std::process::id()));
    let (mut child, base, tokens) =
        serve_demo_in(&std::env::temp_dir(), &[("STRATA_DATA_DIR", dir.clone())]);
    let token = tokens.first().cloned().expect("a demo token");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut ready = 0;
        for _ in 0..100 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                ready = r.status().as_u16();
                if ready == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(ready, 200);
        let body: serde_json::Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": "{ me { role organization { slug type } } }" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"]["me"]["role"], "OWNER", "{body}");
        assert_eq!(body["data"]["me"]["organization"]["slug"], "sme-one");
    });

    nix_kill_term(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    assert!(
        log.contains("database system is shut down"),
        "the embedded cluster stops with the gateway"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's first command as root in a checkout under a private
/// directory (like /root): the postgres user cannot reach `./.strata`, so the
/// cluster lives in a directory of its own; stopped by Ctrl-C and started
/// again, the demo is the same and nothing is seeded twice.
#[test]
fn serve_demo_from_a_private_directory_stops_on_ctrl_c_and_restarts_with_the_same_demo() {
    use std::os::unix::fs::PermissionsExt;
    let home = std::env::temp_dir().join(format!("strata-private-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir_name = format!("cluster-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (mut child, base, tokens) =
            serve_demo_in(&home, &[("STRATA_DATA_DIR", home.join(&dir_name))]);
        assert_eq!(tokens.len(), 18, "a token per demo user");
        let census = rt.block_on(async {
            let client = reqwest::Client::new();
            let mut counts = Vec::new();
            for token in &tokens {
                let body: serde_json::Value = client
                    .post(format!("{base}/graphql"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({
                        "query": "{ me { role organization { slug type } } campaigns { totalCount } }"
                    }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(body["errors"].is_null(), "{body}");
                counts.push(body["data"].to_string());
            }
            counts
        });
        seen.push(census);
        // Ctrl-C: a graceful stop that takes the cluster down with it.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        assert!(status.success(), "Ctrl-C exits 0: {status:?}");
    }
    assert_eq!(seen[0], seen[1], "the second start finds the same demo");
    let sme = seen[0].iter().filter(|c| c.contains("\"SME\"")).count();
    let agency = seen[0].iter().filter(|c| c.contains("\"AGENCY\"")).count();
    assert_eq!((sme, agency), (8, 10), "{:?}", seen[0]);

    // As root the cluster could not live under the private directory.
    let elsewhere: Vec<std::path::PathBuf> = std::fs::read_dir("/var/lib/strata")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{dir_name}-")))
                })
                .collect()
        })
        .unwrap_or_default();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let cluster = if root {
        assert_eq!(elsewhere.len(), 1, "{elsewhere:?}");
        elsewhere[0].clone()
    } else {
        home.join(&dir_name)
    };
    let log = std::fs::read_to_string(cluster.join("postgres.log")).unwrap_or_default();
    assert_eq!(
        log.matches("database system is shut down").count(),
        2,
        "the cluster stops with the gateway each time"
    );
    for dir in elsewhere {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// Starts `strata serve --demo` in `cwd` and returns it, its address and the
/// tokens it printed.
fn serve_demo_in(
    cwd: &std::path::Path,
    envs: &[(&str, std::path::PathBuf)],
) -> (std::process::Child, String, Vec<String>) {
    let mut cmd = strata();
    cmd.current_dir(cwd)
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tokens, base) = demo_banner(&mut child);
    (child, base, tokens)
}

/// Reads what `serve --demo` prints at start: a token per demo user, then
/// the address (the last line read).
fn demo_banner(child: &mut std::process::Child) -> (Vec<String>, String) {
    let stdout = child.stdout.take().unwrap();
    let mut tokens = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(t) = line.trim().strip_prefix("Authorization: Bearer ") {
            tokens.push(t.to_owned());
        }
        if let Some(rest) = line.strip_prefix("GraphiQL: ") {
            let base = rest.split_whitespace().next().unwrap_or_default();
            return (tokens, base.trim_end_matches('/').to_owned());
        }
    }
    panic!("serve --demo ended before printing its address");
}

fn nix_kill_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// A Redis server of the test's own on a free port, stopped when dropped.
struct Redis(std::process::Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Starts `strata serve` on a free port; with `demo`, also returns the first
/// demo token it prints.
fn serve(envs: &[(&str, String)], demo: bool) -> (std::process::Child, String, Option<String>) {
    let port = free_port();
    let mut cmd = strata();
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    if demo {
        cmd.arg("--demo");
    } else {
        cmd.arg("--no-migrate");
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let token = if demo {
        demo_banner(&mut child).0.into_iter().next()
    } else {
        None
    };
    (child, format!("http://127.0.0.1:{port}"), token)
}

/// Two gateway processes on one database and one Redis draw from the same
/// rate-limit bucket: what one allowed, the other counts.
#[test]
fn two_gateway_processes_share_one_rate_limit_through_redis() {
    let redis_port = free_port();
    let redis_bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("redis-server");
    let _redis = Redis(
        Command::new(redis_bin)
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)"),
    );
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("strata-cli-redis-{}", std::process::id()));
    let pg = rt
        .block_on(strata_embedded::EmbeddedPostgres::start(
            &strata_embedded::EmbeddedOptions {
                data_dir: dir,
                remove_on_exit: true,
                database: "strata".into(),
                ..Default::default()
            },
        ))
        .expect("start PostgreSQL");
    use secrecy::ExposeSecret as _;
    let secret = "a-shared-secret-for-both-gateway-processes".to_owned();
    let envs = vec![
        ("DATABASE_URL", pg.url().expose_secret().to_owned()),
        ("STRATA_JWT_SECRET", secret.clone()),
        (
            "STRATA_REDIS_URL",
            format!("redis://127.0.0.1:{redis_port}/"),
        ),
        // One an hour: no token comes back while the four requests run.
        ("STRATA_RATE_LIMIT_PER_USER", "1/h".into()),
        ("STRATA_RATE_LIMIT_BURST", "3".into()),
        ("STRATA_RATE_LIMIT_PER_ORG", "0".into()),
        ("STRATA_LOG", "warn".into()),
    ];
    // The first migrates and seeds the demo tenants; the second joins.
    let (mut a, base_a, token) = serve(&envs, true);
    let token = token.expect("a demo token");
    let client = reqwest::Client::new();
    let wait_ready = |base: String| {
        let client = client.clone();
        async move {
            for _ in 0..600 {
                if let Ok(r) = client.get(format!("{base}/readyz")).send().await
                    && r.status() == 200
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{base} never became ready");
        }
    };
    rt.block_on(wait_ready(base_a.clone()));
    let (mut b, base_b, _) = serve(&envs, false);
    rt.block_on(wait_ready(base_b.clone()));

    let call = |base: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let resp = client
                .post(format!("{base}/graphql"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "query": "{ me { role } }" }))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let retry = resp.headers().get("retry-after").cloned();
            (status, retry, resp.text().await.unwrap())
        }
    };
    let (results, fourth) = rt.block_on(async {
        let mut results = Vec::new();
        for base in [&base_a, &base_b, &base_a] {
            results.push(call(base.clone()).await);
        }
        (results, call(base_b.clone()).await)
    });

    nix_kill_term(a.id());
    nix_kill_term(b.id());
    let _ = a.wait();
    let _ = b.wait();
    rt.block_on(pg.stop());

    for (status, _, body) in &results {
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains("\"role\""), "{body}");
    }
    // Gateway B has served one request of the caller's three: with buckets
    // of its own it would serve this one too.
    let (status, retry, body) = fourth;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("RATE_LIMITED"), "{body}");
    assert!(retry.is_some());
}

/// `strata audit` on a real database: 0 when clean, 1 with a finding (its
/// id in the JSON report), 2 when it cannot run.
#[test]
fn audit_exits_0_clean_1_on_findings_and_2_when_it_cannot_run() {
    use sea_orm::ConnectionTrait as _;
    use secrecy::ExposeSecret as _;

    let out = strata()
        .args(["audit", "--format", "json"])
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none?connect_timeout=2",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["error"].is_string(), "{report}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("strata-cli-audit-{}", std::process::id()));
    let pg = rt
        .block_on(strata_embedded::EmbeddedPostgres::start(
            &strata_embedded::EmbeddedOptions {
                data_dir: dir,
                remove_on_exit: true,
                database: "strata".into(),
                ..Default::default()
            },
        ))
        .expect("start PostgreSQL");
    let url = pg.admin_url().expose_secret().to_owned();
    let run = |args: &[&str]| {
        strata()
            .args(args)
            .env("DATABASE_URL", &url)
            .env("STRATA_LOG", "warn")
            .output()
            .unwrap()
    };
    let migrated = run(&["migrate", "up"]);
    assert!(migrated.status.success(), "{migrated:?}");

    let clean = run(&["audit"]);
    let text = String::from_utf8_lossy(&clean.stdout);
    assert_eq!(clean.status.code(), Some(0), "{text}");
    assert!(text.contains("no findings"), "{text}");
    let probed = run(&["audit", "--probe", "--format", "json"]);
    assert_eq!(probed.status.code(), Some(0), "{probed:?}");

    let db = rt
        .block_on(strata_persistence::Db::connect(
            pg.admin_url(),
            &strata_persistence::PoolOptions::default(),
        ))
        .unwrap();
    rt.block_on(
        db.raw()
            .execute_unprepared("ALTER TABLE tenant_b.campaigns NO FORCE ROW LEVEL SECURITY"),
    )
    .unwrap();
    let tampered = run(&["audit", "--format", "json"]);
    assert_eq!(tampered.status.code(), Some(1), "{tampered:?}");
    let report: serde_json::Value = serde_json::from_slice(&tampered.stdout).unwrap();
    let finding = &report["findings"][0];
    assert_eq!(finding["id"], "rls.not_forced", "{report}");
    assert_eq!(finding["object"], "tenant_b.campaigns", "{report}");
    assert_eq!(finding["severity"], "critical", "{report}");
    assert!(
        finding["fix"]
            .as_str()
            .is_some_and(|f| f.contains("FORCE ROW LEVEL SECURITY")),
        "{report}"
    );

    // `serve` runs the same lint at start and logs the finding as a warning.
    let mut child = strata()
        .args(["serve", "--listen", "127.0.0.1:0", "--no-migrate"])
        .env("DATABASE_URL", &url)
        .env(
            "STRATA_JWT_SECRET",
            "a-secret-for-this-test-only-0123456789",
        )
        .env("STRATA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("rls.not_forced") {
                let _ = tx.send(line);
            }
        }
    });
    let warned = rx.recv_timeout(Duration::from_secs(60)).ok();
    nix_kill_term(child.id());
    let _ = child.wait();
    let warned = warned.expect("a warning naming the finding");
    let line: serde_json::Value = serde_json::from_str(&warned).unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["audit.object"], "tenant_b.campaigns", "{line}");

    rt.block_on(db.close());
    rt.block_on(pg.stop());
}

/// One span as the OTLP receiver got it.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    trace: String,
    id: String,
    parent: String,
    name: String,
    attributes: std::collections::HashMap<String, String>,
}

/// An OTLP/HTTP receiver in the test process: `POST /v1/traces` with a
/// protobuf `ExportTraceServiceRequest`.
async fn otlp_receiver(spans: std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>) -> u16 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;

    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let spans = spans.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body.as_ref()).unwrap();
                let mut out = spans.lock().unwrap();
                for rs in request.resource_spans {
                    for ss in rs.scope_spans {
                        for s in ss.spans {
                            let attributes = s
                                .attributes
                                .iter()
                                .map(|kv| {
                                    let value =
                                        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                            Some(Any::StringValue(v)) => v.clone(),
                                            Some(Any::IntValue(v)) => v.to_string(),
                                            Some(Any::BoolValue(v)) => v.to_string(),
                                            Some(Any::DoubleValue(v)) => v.to_string(),
                                            other => format!("{other:?}"),
                                        };
                                    (kv.key.clone(), value)
                                })
                                .collect();
                            out.push(ReceivedSpan {
                                trace: hex(&s.trace_id),
                                id: hex(&s.span_id),
                                parent: hex(&s.parent_span_id),
                                name: s.name,
                                attributes,
                            });
                        }
                    }
                }
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An OpenAI-compatible model that answers one JSON body and remembers
/// the `traceparent` of each call.
async fn model_server(seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> u16 {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen.clone();
            async move {
                if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                    seen.lock().unwrap().push(tp.to_owned());
                }
                axum::Json(serde_json::json!({
                    "model": "test-model",
                    "choices": [{ "index": 0, "finish_reason": "stop",
                                  "message": { "role": "assistant", "content": "not the JSON asked for" } }],
                    "usage": { "prompt_tokens": 12, "completion_tokens": 5 }
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the gateway continues the
/// caller's trace (`traceparent`), exports its spans (the request with
/// the tenant's attributes, parse, the operation, each SQL statement, the
/// agent run and its model call) with their parent/child links, and sends
/// the trace on to the model provider.
#[test]
fn traces_continue_the_callers_trace_and_reach_an_otlp_receiver() {
    use secrecy::ExposeSecret as _;
    use std::sync::{Arc, Mutex};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let spans = Arc::new(Mutex::new(Vec::<ReceivedSpan>::new()));
    let traceparents = Arc::new(Mutex::new(Vec::<String>::new()));
    let otlp = rt.block_on(otlp_receiver(spans.clone()));
    let model = rt.block_on(model_server(traceparents.clone()));
    let dir = std::env::temp_dir().join(format!("strata-cli-otel-{}", std::process::id()));
    let pg = rt
        .block_on(strata_embedded::EmbeddedPostgres::start(
            &strata_embedded::EmbeddedOptions {
                data_dir: dir,
                remove_on_exit: true,
                database: "strata".into(),
                ..Default::default()
            },
        ))
        .expect("start PostgreSQL");
    let envs = vec![
        ("DATABASE_URL", pg.url().expose_secret().to_owned()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp}"),
        ),
        ("OTEL_SERVICE_NAME", "strata-under-test".into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        (
            "STRATA_LLM_BASE_URL",
            format!("http://127.0.0.1:{model}/v1"),
        ),
        ("STRATA_LOG", "warn".into()),
    ];
    let (mut child, base, token) = serve(&envs, true);
    let token = token.expect("a demo token");

    let trace_a = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_a = "00f067aa0ba902b7";
    let trace_b = "5cf92f3577b34da6a3ce929d0e0e4737";
    let caller_b = "11f067aa0ba902b8";
    let client = reqwest::Client::new();
    let post = |traceparent: String, query: &'static str, variables: serde_json::Value| {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            client
                .post(format!("{base}/graphql"))
                .bearer_auth(&token)
                .header("traceparent", traceparent)
                .json(&serde_json::json!({ "query": query, "variables": variables }))
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let found = rt.block_on(async {
        let campaigns = post(
            format!("00-{trace_a}-{caller_a}-01"),
            "query Campaigns { campaigns(first: 1) { edges { node { id } } } }",
            serde_json::json!({}),
        )
        .await;
        let campaign = campaigns["data"]["campaigns"]["edges"][0]["node"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{campaigns}"))
            .to_owned();
        let run = post(
            format!("00-{trace_b}-{caller_b}-01"),
            "mutation Run($c: ID!) { runAgent(input: {campaignId: $c, agent: BUSINESS_STRATEGY}) { id } }",
            serde_json::json!({ "c": campaign }),
        )
        .await;
        assert!(run["data"]["runAgent"]["id"].is_string(), "{run}");
        for _ in 0..150 {
            let done = spans
                .lock()
                .unwrap()
                .iter()
                .any(|s| s.trace == trace_b && s.name.starts_with("chat "));
            if done {
                // The spans of the run's end follow in the next batch.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    nix_kill_term(child.id());
    let _ = child.wait();
    rt.block_on(pg.stop());
    let spans = spans.lock().unwrap().clone();
    assert!(found, "no model call span arrived: {spans:#?}");

    let one = |pred: &dyn Fn(&ReceivedSpan) -> bool, what: &str| -> ReceivedSpan {
        spans
            .iter()
            .find(|s| pred(s))
            .cloned()
            .unwrap_or_else(|| panic!("no {what} span in {spans:#?}"))
    };
    // The request continues the caller's trace, with the tenant on it.
    let request = one(
        &|s| s.trace == trace_a && s.name == "POST /graphql",
        "request",
    );
    assert_eq!(request.parent, caller_a);
    assert!(
        request.attributes.contains_key("tenant.org_id"),
        "{request:?}"
    );
    assert!(
        request.attributes.contains_key("tenant.org_type"),
        "{request:?}"
    );
    assert_eq!(request.attributes["http.response.status_code"], "200");
    let parse = one(
        &|s| s.trace == trace_a && s.name == "graphql.parse",
        "parse",
    );
    assert_eq!(parse.parent, request.id);
    let operation = one(
        &|s| s.trace == trace_a && s.name == "query Campaigns",
        "operation",
    );
    assert_eq!(operation.parent, request.id);
    assert_eq!(operation.attributes["graphql.operation.name"], "Campaigns");
    assert_eq!(operation.attributes["graphql.operation.type"], "query");
    let sql = one(
        &|s| s.trace == trace_a && s.parent == operation.id && s.name.starts_with("SELECT"),
        "SQL statement",
    );
    assert_eq!(sql.attributes["db.system.name"], "postgresql");
    assert!(!sql.attributes["db.query.text"].contains('\''), "{sql:?}");

    // The agent run is a child of the mutation that queued it, its model
    // call a child of the run, and the provider got that call's context.
    let mutation = one(
        &|s| s.trace == trace_b && s.name == "mutation Run",
        "mutation",
    );
    let run = one(
        &|s| s.trace == trace_b && s.name.starts_with("agent.run"),
        "agent run",
    );
    assert_eq!(run.parent, mutation.id);
    let call = one(
        &|s| s.trace == trace_b && s.name.starts_with("chat "),
        "model call",
    );
    assert_eq!(call.parent, run.id);
    assert_eq!(call.attributes["gen_ai.usage.input_tokens"], "12");
    let sent = traceparents.lock().unwrap().clone();
    assert!(
        sent.contains(&format!("00-{trace_b}-{}-01", call.id)),
        "traceparent sent to the model: {sent:?}, call span {}",
        call.id
    );

    // Never a credential on a span.
    let secret_part = token.rsplit('.').next().unwrap_or_default().to_owned();
    for s in &spans {
        for (k, v) in &s.attributes {
            assert!(
                !v.contains(&secret_part) && !v.contains("Bearer") && !k.contains("authorization"),
                "{s:?}"
            );
        }
    }
}

/// SIGTERM: the gateway stops accepting, finishes the request in flight,
/// closes WebSockets with 1001 and exits 0.
#[test]
fn sigterm_finishes_requests_in_flight_closes_websockets_with_1001_and_exits_0() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use secrecy::ExposeSecret as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("strata-cli-drain-{}", std::process::id()));
    let pg = rt
        .block_on(strata_embedded::EmbeddedPostgres::start(
            &strata_embedded::EmbeddedOptions {
                data_dir: dir,
                remove_on_exit: true,
                database: "strata".into(),
                ..Default::default()
            },
        ))
        .expect("start PostgreSQL");
    let envs = vec![
        ("DATABASE_URL", pg.url().expose_secret().to_owned()),
        ("STRATA_SHUTDOWN_GRACE", "15s".into()),
        ("STRATA_LOG", "warn".into()),
    ];
    let (mut child, base, token) = serve(&envs, true);
    let token = token.expect("a demo token");
    let addr = base.trim_start_matches("http://").to_owned();

    let (response, close) = rt.block_on(async {
        // A WebSocket, acknowledged.
        let mut request = format!("ws://{addr}/graphql/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket
            .send(Message::text(
                serde_json::json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
                    .to_string(),
            ))
            .await
            .unwrap();
        let ack = socket.next().await.unwrap().unwrap();
        assert!(ack.to_string().contains("connection_ack"), "{ack}");

        // A request in flight: its body half sent.
        let body = serde_json::json!({ "query": "{ me { role } }" }).to_string();
        let (first, second) = body.split_at(body.len() / 2);
        let mut http = tokio::net::TcpStream::connect(&addr).await.unwrap();
        http.write_all(
            format!(
                "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;

        nix_kill_term(child.id());
        // The socket is closed with 1001.
        let close = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(msg)) = socket.next().await {
                if let Message::Close(frame) = msg {
                    return frame.map(|f| u16::from(f.code));
                }
            }
            None
        })
        .await
        .expect("the socket was closed in time");
        // The request in flight still gets its answer.
        http.write_all(second.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), http.read_to_end(&mut response)).await;
        (String::from_utf8_lossy(&response).into_owned(), close)
    });
    let status = child.wait().unwrap();
    // New connections are refused once it stopped.
    let refused = std::net::TcpStream::connect(&addr).is_err();
    rt.block_on(pg.stop());

    assert_eq!(close, Some(1001));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"role\""), "{response}");
    assert!(status.success(), "exit status {status:?}");
    assert!(refused, "the gateway still accepts connections");
}
