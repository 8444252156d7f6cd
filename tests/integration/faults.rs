//! Surviving faults: PostgreSQL stopped and started again under a load of
//! reads and writes. The gateway is not restarted: `/graphql` answers
//! again once the database is back, every request of the outage got a
//! quick `UNAVAILABLE` answer (no hang, no `INTERNAL`),
//! and no mutation is half written (each campaign has its audit row).
//!
//! Redis stopped under load: each replica's own buckets limit, and the
//! shared buckets decide again once Redis is back.
//!
//! The database is a private cluster of this test, reached through a TCP
//! relay of the test's own with a fixed port, so that the cluster started
//! again (on whatever port it gets) is found at the same URL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};
use strata_tests::world::World;
use strata_tests::{TestApp, TestDb, scalar};

/// Relays connections on a loopback port to `backend`'s current port.
async fn relay(backend: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let to = backend.load(Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    port
}

/// What a request got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Ok,
    /// Unavailable: every error coded `UNAVAILABLE` (HTTP 503 when no data
    /// could be returned).
    Unavailable,
    Other(String),
}

fn judge(status: u16, body: &serde_json::Value) -> Got {
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    let all_unavailable = !errors.is_empty()
        && errors
            .iter()
            .all(|e| e["extensions"]["code"] == "UNAVAILABLE");
    if status == 200 && body.get("errors").is_none() {
        Got::Ok
    } else if all_unavailable && (status == 503 || (status == 200 && body.get("data").is_some())) {
        Got::Unavailable
    } else {
        Got::Other(format!("{status} {body}"))
    }
}

#[tokio::test]
async fn postgres_stopped_and_started_under_load_the_gateway_recovers_and_writes_nothing_half() {
    let dir = std::env::temp_dir().join(format!("strata-faults-{}", uuid::Uuid::new_v4().simple()));
    let options = |remove_on_exit| EmbeddedOptions {
        data_dir: dir.clone(),
        remove_on_exit,
        database: "strata".into(),
        ..Default::default()
    };
    let first = EmbeddedPostgres::start(&options(false)).await.unwrap();
    let direct = url::Url::parse(first.admin_url().expose_secret()).unwrap();
    let backend = Arc::new(AtomicU16::new(direct.port().unwrap()));
    let port = relay(backend.clone()).await;
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{port}/strata",
        direct.password().unwrap()
    );
    let app = TestApp::builder()
        .try_spawn_migrating(TestDb::empty().await, SecretString::from(url.clone()))
        .await
        .unwrap();
    let su = {
        let mut co = sea_orm::ConnectOptions::new(url.clone());
        co.max_connections(1).sqlx_logging(false);
        sea_orm::Database::connect(co).await.unwrap()
    };
    let w = World::seed(&app.db, &su).await;
    let audit_rows = "SELECT count(*) FROM public.audit_log WHERE operation = 'createCampaign'";
    let audited_before = scalar(&su, audit_rows).await;
    su.close().await.ok();
    let token = app.token(w.sme1.owner, Some(w.sme1.id));
    let app = Arc::new(app);

    // Load: two writers, two readers, until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = Vec::new();
    for worker in 0..4 {
        let (app, token, stop) = (app.clone(), token.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let started = Instant::now();
                let (status, body) = if worker < 2 {
                    app.graphql(
                        Some(&token),
                        "mutation($n: String!) { createCampaign(input: {name: $n}) { id } }",
                        json!({ "n": format!("load-{worker}-{n}") }),
                    )
                    .await
                } else {
                    app.graphql(Some(&token), "{ campaigns { totalCount } }", json!({}))
                        .await
                };
                got.push((judge(status, &body), started.elapsed(), worker < 2));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = EmbeddedPostgres::start(&options(true)).await.unwrap();
    let again = url::Url::parse(second.admin_url().expose_secret()).unwrap();
    backend.store(again.port().unwrap(), Ordering::SeqCst);
    // Served again, without restarting the gateway.
    let back = Instant::now();
    let mut recovered = false;
    while back.elapsed() < Duration::from_secs(30) {
        let (status, body) = app
            .graphql(Some(&token), "{ campaigns { totalCount } }", json!({}))
            .await;
        if judge(status, &body) == Got::Ok {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut results = Vec::new();
    for task in load {
        results.extend(task.await.unwrap());
    }
    assert!(recovered, "/graphql never answered again");

    let others: Vec<_> = results
        .iter()
        .filter(|(g, _, _)| matches!(g, Got::Other(_)))
        .collect();
    assert!(
        others.is_empty(),
        "answers that were neither ok nor unavailable: {others:#?}"
    );
    let unavailable = results
        .iter()
        .filter(|(g, _, _)| *g == Got::Unavailable)
        .count();
    assert!(unavailable > 0, "the outage was felt: {results:?}");
    let slowest = results.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(15),
        "a request hung for {slowest:?}"
    );
    let written = results
        .iter()
        .filter(|(g, _, w)| *g == Got::Ok && *w)
        .count();
    assert!(written > 0);

    // Nothing half written: each campaign of the load has its audit row,
    // and every one the gateway reported written exists.
    let su = {
        let mut co = sea_orm::ConnectOptions::new(url.clone());
        co.max_connections(1).sqlx_logging(false);
        sea_orm::Database::connect(co).await.unwrap()
    };
    let campaigns = scalar(
        &su,
        "SELECT count(*) FROM public.campaigns WHERE name LIKE 'load-%'",
    )
    .await;
    let audited = scalar(
        &su,
        "SELECT count(*) FROM public.campaigns c WHERE c.name LIKE 'load-%' AND EXISTS (
           SELECT 1 FROM public.audit_log a WHERE a.org_id = c.org_id AND a.target_id = c.id
             AND a.operation = 'createCampaign')",
    )
    .await;
    assert_eq!(campaigns, audited, "campaigns without their audit row");
    assert_eq!(
        scalar(&su, audit_rows).await - audited_before,
        campaigns,
        "audit rows of the load without their campaign"
    );
    assert!(
        usize::try_from(campaigns).unwrap() >= written,
        "{written} reported written, {campaigns} stored"
    );
    su.close().await.ok();
    drop(app);
    second.stop().await;
}

async fn call(app: &TestApp, token: &str) -> u16 {
    app.graphql(Some(token), "{ me { role } }", json!({}))
        .await
        .0
}

#[tokio::test]
async fn redis_stopped_each_replica_limits_alone_and_shared_buckets_resume() {
    use strata_server::ratelimit::{Rate, RateLimitConfig};
    use strata_tests::redis::RedisServer;
    if !strata_tests::tier::available(
        strata_tests::tier::Part::Redis,
        "redis_stopped_each_replica_limits_alone_and_shared_buckets_resume",
    ) {
        return;
    }
    let mut redis = RedisServer::start().await;
    let port = redis.port();
    let config = RateLimitConfig {
        per_user: Rate::per(3, Duration::from_secs(3600)),
        burst: 1,
        ..RateLimitConfig::off()
    };
    let a = TestApp::builder()
        .rate_limits(config.clone())
        .redis_url(redis.url.clone())
        .spawn()
        .await;
    let su = a.test_db.superuser().await;
    let w = World::seed(&a.db, &su).await;
    let b = TestApp::builder()
        .rate_limits(config)
        .redis_url(redis.url.clone())
        .spawn_beside(&a)
        .await;

    // Redis away: each replica's own buckets still refuse past the rate.
    redis.stop();
    let user = a.token(w.sme1.owner, Some(w.sme1.id));
    for app in [&a, &b] {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(call(app, &user).await);
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429], "{statuses:?}");
    }

    // Redis back on its port: one bucket for both replicas again.
    let _redis = RedisServer::start_on(port).await;
    // Traffic of another caller: the replicas find Redis again (each
    // reconnects when a request of theirs fails).
    let warm = a.token(w.sme1_admin, Some(w.sme1.id));
    for _ in 0..10 {
        for app in [&a, &b] {
            call(app, &warm).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let other = a.token(w.sme2.owner, Some(w.sme2.id));
    let mut statuses = Vec::new();
    for app in [&a, &b, &a, &b] {
        statuses.push(call(app, &other).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "with replicas' own buckets the fourth would pass: {statuses:?}"
    );
}
