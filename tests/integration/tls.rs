//! `sslmode` as libpq means it, through the gateway's own pool
//! (`Db::connect`), against real servers with TLS on: one with a
//! self-signed X.509 v1 certificate (what Citus generates), one with a
//! certificate signed by a CA of its own. `disable` never encrypts;
//! `prefer` and `require` encrypt without verifying (any certificate
//! version); `verify-ca` needs the certificate to chain to `sslrootcert`;
//! `verify-full` also needs the host name to match.

use std::path::{Path, PathBuf};
use std::process::Command;

use secrecy::{ExposeSecret, SecretString};
use strata_embedded::{EmbeddedOptions, EmbeddedPostgres};
use strata_persistence::{Db, PoolOptions};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The certificates: `v1.crt` (self-signed, version 1, CN localhost),
/// `ca.crt` and `chain.crt` (signed by it, v3, for DNS:localhost only),
/// with their keys.
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let subj = "/CN=localhost";
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "v1.key", "-subj", subj,
            "-out", "v1.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509", "-req", "-in", "v1.csr", "-signkey", "v1.key", "-days", "30", "-out", "v1.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-subj",
            "/CN=Strata test CA",
            "-days",
            "30",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "chain.key",
            "-subj",
            subj,
            "-out",
            "chain.csr",
        ],
    );
    std::fs::write(
        dir.join("chain.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "chain.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "chain.ext",
            "-out",
            "chain.crt",
        ],
    );
    let text = Command::new("openssl")
        .args(["x509", "-in", "v1.crt", "-noout", "-text"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "the self-signed certificate is X.509 v1"
    );
    // PostgreSQL reads the key as the cluster's user and wants it private.
    let owner = Command::new("id").args(["-u", "postgres"]).output().ok();
    let uid = owner
        .filter(|o| o.status.success() && running_as_root())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .ok()
        });
    for file in std::fs::read_dir(dir).unwrap().flatten() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        if let Some(uid) = uid {
            std::os::unix::fs::chown(file.path(), Some(uid), None).unwrap();
        }
    }
    if let Some(uid) = uid {
        std::os::unix::fs::chown(dir, Some(uid), None).unwrap();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

async fn server_with(dir: &Path, cert: &str) -> EmbeddedPostgres {
    EmbeddedPostgres::start(&EmbeddedOptions {
        data_dir: strata_tests::private_dir(&format!("strata-tls-{cert}")),
        remove_on_exit: true,
        database: "postgres".into(),
        settings: vec![
            "ssl=on".into(),
            format!(
                "ssl_cert_file={}",
                dir.join(format!("{cert}.crt")).display()
            ),
            format!("ssl_key_file={}", dir.join(format!("{cert}.key")).display()),
        ],
        trust_loopback: false,
    })
    .await
    .expect("start a PostgreSQL with TLS")
}

/// `pg`'s TCP URL with `host` and the query `params`.
fn url(pg: &EmbeddedPostgres, host: &str, params: &str) -> SecretString {
    let mut u = url::Url::parse(pg.tcp_admin_url().expose_secret()).unwrap();
    u.set_host(Some(host)).unwrap();
    u.set_query(Some(params));
    SecretString::from(u.to_string())
}

/// Whether `url` connects, and if so whether the session is encrypted.
async fn encrypted(url: &SecretString) -> Result<bool, String> {
    let db = Db::connect(
        url,
        &PoolOptions {
            max_connections: 1,
            min_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(10),
            ..PoolOptions::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let ssl = strata_tests::text(
        db.raw(),
        "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    db.close().await;
    Ok(ssl.as_deref() == Some("true"))
}

#[tokio::test]
async fn sslmode_means_what_it_means_for_libpq_with_v1_and_chained_certificates() {
    if !strata_tests::tier::available(strata_tests::tier::Part::OpenSsl, "tls") {
        return;
    }
    let dir: PathBuf = strata_tests::private_dir("strata-certs");
    certificates(&dir);
    let root = |name: &str| dir.join(name).display().to_string();
    let v1 = server_with(&dir, "v1").await;
    let chained = server_with(&dir, "chain").await;

    // (server, host, parameters, expected: Some(encrypted) or None when refused)
    let cases: Vec<(&EmbeddedPostgres, &str, String, Option<bool>)> = vec![
        (&v1, "localhost", "sslmode=disable".into(), Some(false)),
        (&v1, "localhost", "sslmode=prefer".into(), Some(true)),
        (&v1, "localhost", "sslmode=require".into(), Some(true)),
        (
            &v1,
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={}", root("ca.crt")),
            None,
        ),
        (
            &v1,
            "localhost",
            format!("sslmode=verify-full&sslrootcert={}", root("ca.crt")),
            None,
        ),
        (&chained, "localhost", "sslmode=disable".into(), Some(false)),
        (&chained, "localhost", "sslmode=prefer".into(), Some(true)),
        (&chained, "localhost", "sslmode=require".into(), Some(true)),
        (
            &chained,
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={}", root("ca.crt")),
            Some(true),
        ),
        (
            &chained,
            "localhost",
            format!("sslmode=verify-full&sslrootcert={}", root("ca.crt")),
            Some(true),
        ),
        // The certificate names localhost, not the address.
        (
            &chained,
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={}", root("ca.crt")),
            Some(true),
        ),
        (
            &chained,
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={}", root("ca.crt")),
            None,
        ),
        // Another root does not vouch for it.
        (
            &chained,
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={}", root("v1.crt")),
            None,
        ),
    ];
    for (server, host, params, expected) in cases {
        let got = encrypted(&url(server, host, &params)).await;
        match expected {
            Some(tls) => assert_eq!(got, Ok(tls), "{host} {params}"),
            None => assert!(got.is_err(), "{host} {params}: connected ({got:?})"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
