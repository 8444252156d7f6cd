//! A private PgBouncer for tests that need one, started from the
//! `pgbouncer` binary on the machine on a free loopback port, in front of one
//! database of the test cluster, in transaction pooling mode with a small
//! server pool (so client connections really take turns on the same server
//! connections). Stopped when dropped.
//!
//! PgBouncer refuses to run as root; when the tests run as root it runs as
//! the `postgres` user, as the embedded PostgreSQL does.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// A running PgBouncer of the test's own.
pub struct PgBouncer {
    child: Child,
    dir: PathBuf,
    /// The upstream URL's credentials and database, through PgBouncer.
    pub url: SecretString,
}

/// The binary tests start.
pub fn binary() -> String {
    if let Ok(b) = std::env::var("TEST_PGBOUNCER")
        && !b.is_empty()
    {
        return b;
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = std::path::Path::new(dir).join("pgbouncer");
        if p.is_file() {
            return p.display().to_string();
        }
    }
    "/usr/sbin/pgbouncer".into()
}

/// The uid and gid of `postgres` when this process is root, from
/// `/etc/passwd`.
fn run_as() -> Option<(u32, u32)> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("running as root: a postgres user to run pgbouncer as");
    let mut fields = line.split(':').skip(2);
    let uid = fields.next().and_then(|f| f.parse().ok()).expect("a uid");
    let gid = fields.next().and_then(|f| f.parse().ok()).expect("a gid");
    Some((uid, gid))
}

/// A value for PgBouncer's files, between double quotes.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgBouncer {
    /// Starts one in front of the database `upstream` names, letting in the
    /// user and password of `upstream` (SCRAM), with `pool_size` server
    /// connections; panics with what to install when the binary is missing.
    pub async fn start(upstream: &SecretString, pool_size: u32) -> Self {
        let up = url::Url::parse(upstream.expose_secret()).expect("a valid database url");
        let user = up.username().to_owned();
        let password = up.password().unwrap_or_default().to_owned();
        let database = up.path().trim_start_matches('/').to_owned();
        let host = match up.host_str() {
            None | Some("localhost") => "127.0.0.1".to_owned(),
            Some(h) => h.to_owned(),
        };
        let server_port = up.port().unwrap_or(5432);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");

        let dir = std::env::temp_dir().join(format!(
            "strata-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the pgbouncer directory");
        let ini = dir.join("pgbouncer.ini");
        let userlist = dir.join("userlist.txt");
        let log = dir.join("pgbouncer.log");
        std::fs::write(
            &userlist,
            format!("{} {}\n", quoted(&user), quoted(&password)),
        )
        .expect("write userlist.txt");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {database} = host={host} port={server_port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = scram-sha-256\n\
                 auth_file = {}\n\
                 logfile = {}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 min_pool_size = 0\n\
                 reserve_pool_size = 0\n\
                 max_client_conn = 500\n\
                 ignore_startup_parameters = extra_float_digits\n",
                userlist.display(),
                log.display(),
            ),
        )
        .expect("write pgbouncer.ini");
        let user_ids = run_as();
        if let Some((uid, gid)) = user_ids {
            for p in [&dir, &ini, &userlist] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let mut cmd = Command::new(binary());
        cmd.arg(&ini)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = user_ids {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd.spawn().expect(
            "start pgbouncer (install it: apt-get install pgbouncer, or set TEST_PGBOUNCER)",
        );
        let mut through = up.clone();
        through.set_query(None);
        let _ = through.set_host(Some("127.0.0.1"));
        let _ = through.set_port(Some(port));
        let mut bouncer = Self {
            child,
            dir,
            url: SecretString::from(through.to_string()),
        };
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return bouncer;
            }
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                panic!(
                    "pgbouncer exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("pgbouncer did not start listening on port {port}");
    }

    /// What PgBouncer logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
