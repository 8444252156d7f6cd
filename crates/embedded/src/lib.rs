//! A supervisor for a private PostgreSQL cluster started from the server
//! binaries installed on the machine: for `strata serve` without a database
//! URL, for the test harness and for the benchmarks. No downloads, no
//! containers. It knows nothing of Strata's schema, tenants or roles: it
//! starts a cluster, makes sure one database exists, hands out superuser
//! URLs and stops the cluster with its owner. Migrations, pools and
//! everything that touches data belong to its callers, which is why it
//! does not depend on `strata-persistence`.
//!
//! The cluster runs under a small `sh` watchdog whose stdin is a pipe from
//! this process: when the pipe closes (we stop it, exit, or are killed), the
//! watchdog shuts PostgreSQL down with a fast shutdown. PostgreSQL refuses to
//! run as root, so when we are root the cluster runs as the `postgres` user.
//!
//! The cluster listens on 127.0.0.1 and on a Unix-domain socket in
//! `<data_dir>/run`; [`EmbeddedPostgres::url`] and
//! [`EmbeddedPostgres::admin_url`] name the socket
//! (`postgres://postgres:...@localhost:<port>/<db>?host=<data_dir>/run`),
//! which spares a loopback TCP round trip's kernel work. When the socket's
//! path would not fit in `sun_path` (a deep data directory), the cluster
//! listens on TCP only and the URLs are TCP URLs.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use thiserror::Error;

/// Why the embedded cluster could not start. Each message is one line a user
/// can act on.
#[derive(Debug, Error)]
pub enum EmbeddedError {
    /// No server binaries.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) were not found on PATH or under /usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL"
    )]
    NoBinaries,
    /// Running as root without an unprivileged user to run PostgreSQL as.
    #[error(
        "running as root, and there is no 'postgres' user to run the embedded PostgreSQL as: create one (useradd -r postgres) or set DATABASE_URL"
    )]
    NoUnprivilegedUser,
    /// The data directory is unusable.
    #[error("embedded PostgreSQL data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tool failed.
    #[error("embedded PostgreSQL: {0}")]
    Failed(String),
}

/// Where and how to run the cluster.
#[derive(Clone, Debug, Default)]
pub struct EmbeddedOptions {
    /// Directory holding the cluster (`pgdata/`) and its password.
    pub data_dir: PathBuf,
    /// Remove `data_dir` once PostgreSQL has stopped (test clusters).
    pub remove_on_exit: bool,
    /// Database to create and return a URL for.
    pub database: String,
    /// Further server settings, each `name=value`, given to `postgres -c`
    /// at every start (`shared_preload_libraries=citus`, say).
    pub settings: Vec<String>,
    /// Let connections over loopback TCP in without a password, whatever
    /// their role. Only for a private cluster whose nodes connect to each
    /// other as the session's role (a Citus coordinator and its workers);
    /// chosen when the cluster is first initialised. The Unix-domain socket
    /// still asks for the password.
    pub trust_loopback: bool,
}

/// A running private cluster.
pub struct EmbeddedPostgres {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    admin_url: SecretString,
    url: SecretString,
    tcp_admin_url: SecretString,
    socket_dir: Option<PathBuf>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("data_dir", &self.data_dir)
            .field("socket_dir", &self.socket_dir)
            .finish_non_exhaustive()
    }
}

struct RunAs {
    uid: u32,
    gid: u32,
}

/// Where a starting cluster's files are.
struct ClusterPaths<'a> {
    data_dir: &'a Path,
    pgdata: &'a Path,
    log: &'a Path,
    socket_dir: Option<&'a Path>,
}

fn find_bin_dir() -> Option<PathBuf> {
    find_bin_dir_in(
        std::env::var_os("PATH").as_deref(),
        Path::new("/usr/lib/postgresql"),
    )
}

/// The server binaries' directory: the first on `path` holding `initdb`
/// (and `postgres` beside it or beside its link's target), else the newest
/// `<lib_root>/<major>/bin`.
fn find_bin_dir_in(path: Option<&std::ffi::OsStr>, lib_root: &Path) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = path {
        for dir in std::env::split_paths(path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                // Debian links initdb into PATH; the real directory holds
                // postgres too.
                let real = std::fs::canonicalize(&initdb).ok();
                if let Some(parent) = real.as_deref().and_then(Path::parent)
                    && has_both(parent)
                {
                    return Some(parent.to_path_buf());
                }
                if has_both(&dir) {
                    return Some(dir);
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(lib_root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn run_as() -> Result<Option<RunAs>, EmbeddedError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some(RunAs {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })),
        _ => Err(EmbeddedError::NoUnprivilegedUser),
    }
}

fn command(program: impl AsRef<std::ffi::OsStr>, user: Option<&RunAs>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd)
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .env_remove("PGHOST");
    if let Some(u) = user {
        // The server's own client connections (an extension's, between
        // Citus nodes) look for certificates under $HOME, which must be
        // the cluster user's, not ours.
        cmd.uid(u.uid).gid(u.gid).env("HOME", cwd);
    }
    cmd
}

fn chown(path: &Path, user: Option<&RunAs>) -> Result<(), EmbeddedError> {
    if let Some(u) = user {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).map_err(|e| {
            EmbeddedError::DataDir {
                path: path.to_path_buf(),
                message: format!("cannot hand it to the postgres user: {e}"),
            }
        })?;
    }
    Ok(())
}

/// Whether the cluster's user can write into `dir` (every ancestor must be
/// searchable by it).
fn reachable_by(dir: &Path, user: Option<&RunAs>) -> bool {
    if user.is_none() {
        return true;
    }
    command("sh", user, Path::new("/"))
        .args([
            "-c",
            "test -d \"$1\" && test -w \"$1\" && test -x \"$1\"",
            "sh",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmbeddedError::Failed(format!("cannot find a free loopback port: {e}")))
}

/// Where a cluster goes when its user cannot reach the requested data
/// directory (only when running as root, see [`EmbeddedPostgres::start`]).
const FALLBACK_ROOT: &str = "/var/lib/strata";

/// A directory name for the cluster requested at `dir` (absolute): its last
/// component, readable, and a stable digest of the whole path, so two
/// checkouts never share a cluster and one checkout always finds its own.
fn fallback_name(dir: &Path) -> String {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let digest = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let last: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("{}-{digest:016x}", last.trim_matches('_'))
}

/// Longest socket path we hand to PostgreSQL: `sun_path` holds 107 bytes
/// and a NUL on Linux; stay clear of the limit.
const MAX_SOCKET_PATH: usize = 100;

/// The socket directory for a cluster in `data_dir` (absolute), or `None`
/// when the socket's path, with the longest port, would not fit in
/// `sun_path`, or is not UTF-8 (a URL could not name it).
fn socket_dir_for(data_dir: &Path) -> Option<PathBuf> {
    let dir = data_dir.join("run");
    let longest = dir.join(".s.PGSQL.65535");
    (dir.to_str().is_some() && longest.as_os_str().len() <= MAX_SOCKET_PATH).then_some(dir)
}

/// Creates the socket directory, private to the cluster's user.
fn make_socket_dir(dir: &Path, user: Option<&RunAs>) -> Result<(), EmbeddedError> {
    let err = |e: std::io::Error| EmbeddedError::DataDir {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    chown(dir, user)
}

/// `s` percent-encoded for a URL query value: everything but unreserved
/// characters and `/`, so that `+` and spaces survive both form decoding
/// (sqlx, node-postgres) and plain percent decoding (libpq).
fn encode_query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The superuser's URL of `database`: over the socket in `socket_dir` when
/// there is one (the `host` parameter selects it; the port names the socket
/// file), else over TCP.
fn cluster_url(password: &str, port: u16, database: &str, socket_dir: Option<&Path>) -> String {
    match socket_dir.and_then(Path::to_str) {
        Some(dir) => format!(
            "postgres://postgres:{password}@localhost:{port}/{database}?host={}",
            encode_query_value(dir)
        ),
        None => format!("postgres://postgres:{password}@127.0.0.1:{port}/{database}"),
    }
}

/// PostgreSQL's `unix_socket_directories` for `dir`: quoted, so that commas
/// and spaces in the path are part of the name.
fn socket_directories_setting(dir: Option<&Path>) -> std::ffi::OsString {
    let Some(dir) = dir else {
        return std::ffi::OsString::new();
    };
    let mut v = std::ffi::OsString::from("\"");
    v.push(dir.to_string_lossy().replace('"', "\"\""));
    v.push("\"");
    v
}

/// The first fatal line PostgreSQL wrote to `log` after byte `from`, other
/// than the ones it logs for connection attempts made while starting.
fn startup_failure(log: &Path, from: u64) -> Option<String> {
    let bytes = std::fs::read(log).ok()?;
    let new = bytes.get(usize::try_from(from).ok()?..)?;
    String::from_utf8_lossy(new)
        .lines()
        .find(|l| {
            (l.contains("FATAL") || l.contains("PANIC"))
                && !l.contains("starting up")
                && !l.contains("shutting down")
        })
        .map(|l| l.trim().to_owned())
}

impl EmbeddedPostgres {
    /// Initialises the cluster if needed, starts it, waits until it accepts
    /// connections and makes sure `opts.database` exists.
    pub async fn start(opts: &EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let bin = find_bin_dir().ok_or(EmbeddedError::NoBinaries)?;
        let user = run_as()?;
        let dir_err = |message: String| EmbeddedError::DataDir {
            path: opts.data_dir.clone(),
            message,
        };
        std::fs::create_dir_all(&opts.data_dir).map_err(|e| dir_err(e.to_string()))?;
        let data_dir = std::fs::canonicalize(&opts.data_dir).map_err(|e| dir_err(e.to_string()))?;
        chown(&data_dir, user.as_ref())?;
        let data_dir = if reachable_by(&data_dir, user.as_ref()) {
            data_dir
        } else {
            // Running as root in a private directory (a checkout in root's
            // home): the cluster's user cannot reach it, so the cluster
            // lives in a directory of its own named after the requested one
            // -- unless a cluster is already there, which must not be
            // silently replaced by an empty one.
            if data_dir.join("pgdata").exists() {
                return Err(dir_err(
                    "it holds a cluster the postgres user cannot reach (a parent directory is private); make it reachable or set STRATA_DATA_DIR".into(),
                ));
            }
            let alt = Path::new(FALLBACK_ROOT).join(fallback_name(&data_dir));
            let alt_err = |message: String| EmbeddedError::DataDir {
                path: alt.clone(),
                message,
            };
            // Root changes the owner and mode below: never through a link.
            for path in [Path::new(FALLBACK_ROOT), alt.as_path()] {
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(alt_err(format!("{} is a symbolic link", path.display())));
                }
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&alt)
                .map_err(|e| alt_err(e.to_string()))?;
            std::fs::set_permissions(&alt, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| alt_err(e.to_string()))?;
            chown(&alt, user.as_ref())?;
            if !reachable_by(&alt, user.as_ref()) {
                return Err(dir_err(
                    "the postgres user cannot reach it (a parent directory is private); set STRATA_DATA_DIR to a directory it can reach, e.g. /var/lib/strata".into(),
                ));
            }
            tracing::warn!(
                requested = %data_dir.display(),
                data_dir = %alt.display(),
                "the postgres user cannot reach the data directory (a parent directory is private); the embedded cluster is kept in its own directory instead"
            );
            alt
        };
        let pgdata = data_dir.join("pgdata");
        let pwfile = data_dir.join("superuser-password");
        let log = data_dir.join("postgres.log");

        if !pgdata.join("PG_VERSION").is_file() {
            let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
            let mut f = std::fs::File::create(&pwfile).map_err(|e| dir_err(e.to_string()))?;
            f.write_all(password.as_bytes())
                .map_err(|e| dir_err(e.to_string()))?;
            std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| dir_err(e.to_string()))?;
            chown(&pwfile, user.as_ref())?;
            let out = command(bin.join("initdb"), user.as_ref(), &data_dir)
                .arg("-D")
                .arg(&pgdata)
                .args([
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--auth-local=scram-sha-256",
                ])
                .arg(if opts.trust_loopback {
                    "--auth-host=trust"
                } else {
                    "--auth-host=scram-sha-256"
                })
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdin(Stdio::null())
                .output()
                .map_err(|e| EmbeddedError::Failed(format!("cannot run initdb: {e}")))?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&pgdata);
                let stderr = String::from_utf8_lossy(&out.stderr);
                let line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                return Err(EmbeddedError::Failed(format!("initdb failed: {line}")));
            }
        }
        let password = std::fs::read_to_string(&pwfile)
            .map_err(|e| dir_err(format!("cannot read the cluster password: {e}")))?;
        let password = password.trim();
        let socket_dir = socket_dir_for(&data_dir);
        if let Some(dir) = &socket_dir {
            make_socket_dir(dir, user.as_ref())?;
        }

        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let log_from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            let paths = ClusterPaths {
                data_dir: &data_dir,
                pgdata: &pgdata,
                log: &log,
                socket_dir: socket_dir.as_deref(),
            };
            let mut child = Self::spawn(&bin, user.as_ref(), &paths, port, opts)?;
            let url = |db: &str, socket: Option<&Path>| {
                SecretString::from(cluster_url(password, port, db, socket))
            };
            let admin_url = url("postgres", socket_dir.as_deref());
            match wait_ready(&mut child.0, &admin_url, &log, log_from).await {
                Ok(()) => {
                    let pg = Self {
                        child: Some(child.0),
                        stdin: Some(child.1),
                        admin_url,
                        url: url(&opts.database, socket_dir.as_deref()),
                        tcp_admin_url: url("postgres", None),
                        socket_dir,
                        data_dir,
                    };
                    pg.ensure_database(&opts.database).await?;
                    return Ok(pg);
                }
                Err(e) => {
                    drop(child.1);
                    let _ = child.0.wait();
                    last_err = e;
                    if !last_err.contains("TCP/IP") && !last_err.contains("in use") {
                        break;
                    }
                }
            }
        }
        Err(EmbeddedError::Failed(last_err))
    }

    fn spawn(
        bin: &Path,
        user: Option<&RunAs>,
        paths: &ClusterPaths<'_>,
        port: u16,
        opts: &EmbeddedOptions,
    ) -> Result<(Child, ChildStdin), EmbeddedError> {
        // $1 postgres, $2 PGDATA, $3 port, $4 log, $5 directory to remove,
        // $6 unix_socket_directories (empty: no socket), then further
        // `-c name=value` arguments.
        const WATCHDOG: &str = r#"
bin=$1; pgdata=$2; port=$3; log=$4; remove=$5; sockets=$6; shift 6
"$bin" -D "$pgdata" -p "$port" -c listen_addresses=127.0.0.1 -c "unix_socket_directories=$sockets" \
     -c max_connections=200 -c fsync=off -c synchronous_commit=off "$@" >>"$log" 2>&1 &
pid=$!
read _ignored
kill -INT "$pid" 2>/dev/null
wait "$pid"
if [ -n "$remove" ]; then rm -rf "$remove"; fi
"#;
        let remove = if opts.remove_on_exit {
            paths.data_dir.as_os_str().to_owned()
        } else {
            std::ffi::OsString::new()
        };
        let mut child = command("sh", user, paths.data_dir)
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(bin.join("postgres"))
            .arg(paths.pgdata)
            .arg(port.to_string())
            .arg(paths.log)
            .arg(remove)
            .arg(socket_directories_setting(paths.socket_dir))
            .args(opts.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| EmbeddedError::Failed(format!("cannot start postgres: {e}")))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| EmbeddedError::Failed("no pipe to the postgres watchdog".into()))?;
        Ok((child, stdin))
    }

    async fn ensure_database(&self, name: &str) -> Result<(), EmbeddedError> {
        let fail = |e: sqlx::Error| EmbeddedError::Failed(e.to_string());
        let mut admin = connect(&self.admin_url, CONNECT_TIMEOUT)
            .await
            .map_err(fail)?;
        let exists = sqlx::query("SELECT 1 AS one FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut admin)
            .await
            .map_err(fail)?
            .is_some();
        if !exists {
            let quoted = name.replace('"', "\"\"");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{quoted}\"")))
                .execute(&mut admin)
                .await
                .map_err(fail)?;
        }
        let _ = admin.close().await;
        Ok(())
    }

    /// URL of the application database (superuser), over the Unix-domain
    /// socket when the cluster has one.
    pub fn url(&self) -> &SecretString {
        &self.url
    }

    /// URL of the `postgres` maintenance database (superuser), over the
    /// Unix-domain socket when the cluster has one.
    pub fn admin_url(&self) -> &SecretString {
        &self.admin_url
    }

    /// [`Self::admin_url`] over loopback TCP, for comparing the transports.
    pub fn tcp_admin_url(&self) -> &SecretString {
        &self.tcp_admin_url
    }

    /// The TCP port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.tcp_admin_url
            .expose_secret()
            .parse::<PgConnectOptions>()
            .map_or(0, |o| o.get_port())
    }

    /// Where the cluster lives.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Shuts PostgreSQL down and waits for it (at most 30 s).
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            })
            .await;
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        // Closing the pipe is enough for the watchdog to stop PostgreSQL.
        drop(self.stdin.take());
    }
}

/// How long opening a connection to a cluster that is up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to `url`, opened within `within`. Its statements are not
/// logged: they are the supervisor's own, not the application's, and the
/// application's log should show only the application's.
async fn connect(url: &SecretString, within: Duration) -> Result<PgConnection, sqlx::Error> {
    let opts = url
        .expose_secret()
        .parse::<PgConnectOptions>()?
        .disable_statement_logging();
    tokio::time::timeout(within, PgConnection::connect_with(&opts))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} s", within.as_secs()),
            ))
        })?
}

async fn wait_ready(
    child: &mut Child,
    admin_url: &SecretString,
    log: &Path,
    log_from: u64,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The watchdog shell outlives a postgres that failed to start; the
        // log tells.
        if let Some(line) = startup_failure(log, log_from) {
            return Err(format!("postgres could not start: {line}"));
        }
        if let Ok(Some(_)) = child.try_wait() {
            return Err(format!("postgres exited at start; see {}", log.display()));
        }
        if let Ok(conn) = connect(admin_url, Duration::from_secs(2)).await {
            let _ = conn.close().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "postgres did not accept connections within 60 s; see {}",
                log.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;
    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;

    use super::{
        EmbeddedError, cluster_url, fallback_name, find_bin_dir_in, socket_dir_for,
        socket_directories_setting,
    };

    #[test]
    fn socket_urls_name_the_directory_the_port_and_the_database() {
        for dir in ["/var/lib/strata/run", "/tmp/a b+c%d,e\"f/ü/run"] {
            let url = cluster_url("pw", 54321, "strata", Some(Path::new(dir)));
            let opts = PgConnectOptions::from_str(&url).unwrap();
            assert_eq!(
                opts.get_socket(),
                Some(&Path::new(dir).to_path_buf()),
                "{url}"
            );
            assert_eq!(opts.get_port(), 54321);
            assert_eq!(opts.get_database(), Some("strata"));
            assert_eq!(opts.get_username(), "postgres");
            // What derived URLs are built with keeps the socket.
            let mut u = url::Url::parse(&url).unwrap();
            u.set_path("/other");
            let opts = PgConnectOptions::from_str(u.as_str()).unwrap();
            assert_eq!(opts.get_socket(), Some(&Path::new(dir).to_path_buf()));
            assert_eq!(opts.get_database(), Some("other"));
        }
        let tcp = PgConnectOptions::from_str(&cluster_url("pw", 5, "postgres", None)).unwrap();
        assert_eq!((tcp.get_socket(), tcp.get_host()), (None, "127.0.0.1"));
    }

    #[test]
    fn server_binaries_are_found_on_path_or_under_the_newest_version_else_one_line_says_what_to_do()
    {
        let root = std::env::temp_dir().join(format!("strata-bins-{}", std::process::id()));
        let make = |dir: &Path| {
            std::fs::create_dir_all(dir).unwrap();
            for bin in ["initdb", "postgres"] {
                std::fs::write(dir.join(bin), "").unwrap();
            }
        };
        let lib = root.join("lib");
        let empty = root.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        // Nothing anywhere: no directory, and the error is one actionable line.
        assert_eq!(find_bin_dir_in(Some(empty.as_os_str()), &lib), None);
        assert_eq!(find_bin_dir_in(None, &lib), None);
        let message = EmbeddedError::NoBinaries.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
        // Under the library root, the newest major version wins.
        make(&lib.join("14/bin"));
        make(&lib.join("16/bin"));
        std::fs::create_dir_all(lib.join("17/bin")).unwrap();
        assert_eq!(
            find_bin_dir_in(Some(empty.as_os_str()), &lib),
            Some(lib.join("16/bin"))
        );
        // On PATH, before the library root.
        let on_path = root.join("path");
        make(&on_path);
        let path = std::env::join_paths([&empty, &on_path]).unwrap();
        assert_eq!(find_bin_dir_in(Some(&path), &lib), Some(on_path));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_fallback_directory_is_stable_distinct_and_plain() {
        let a = fallback_name(Path::new("/srv/checkout/strata/.strata"));
        assert_eq!(a, fallback_name(Path::new("/srv/checkout/strata/.strata")));
        assert_ne!(a, fallback_name(Path::new("/srv/other/strata/.strata")));
        assert!(a.starts_with("strata-"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)),
            "{a}"
        );
        let odd = fallback_name(Path::new("/srv/a dir/ünïcode name with spaces and more"));
        assert!(odd.len() <= 24 + 17, "{odd}");
        assert!(!odd.contains(' '), "{odd}");
    }

    #[test]
    fn a_deep_data_directory_gets_no_socket() {
        assert_eq!(
            socket_dir_for(Path::new("/var/lib/strata")),
            Some(Path::new("/var/lib/strata/run").to_path_buf())
        );
        let deep = format!("/{}", "d".repeat(90));
        assert_eq!(socket_dir_for(Path::new(&deep)), None);
    }

    #[test]
    fn the_socket_directory_setting_is_quoted() {
        assert_eq!(socket_directories_setting(None), "");
        assert_eq!(
            socket_directories_setting(Some(Path::new("/a, \"b"))),
            "\"/a, \"\"b\""
        );
    }
}
