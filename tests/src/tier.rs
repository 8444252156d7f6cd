//! Test tiers that need a part from outside the Rust toolchain (Redis,
//! PgBouncer, Chromium with Node): on a machine without the part, such a
//! test is skipped with one line saying what to install, so that the
//! README's test command works on a fresh clone with only Rust and
//! PostgreSQL. `.ci/run` installs every part and sets
//! `STRATA_TEST_ALL_TIERS=1`, under which a missing part fails the test
//! instead: CI runs every tier.

use std::path::{Path, PathBuf};

/// A part some tests need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `redis-server`.
    Redis,
    /// `pgbouncer`.
    PgBouncer,
    /// Chromium, Node and the browser checks' packages.
    Browser,
    /// Node and the client checks' packages (the stock `graphql-ws`).
    Node,
    /// The citus extension, for a coordinator and two workers.
    Citus,
    /// The `openssl` command, which makes the TLS tests' certificates.
    OpenSsl,
}

impl Part {
    fn install(self) -> &'static str {
        match self {
            Part::Redis => "apt-get install redis-server (or set TEST_REDIS_SERVER)",
            Part::PgBouncer => "apt-get install pgbouncer (or set TEST_PGBOUNCER)",
            Part::Browser => {
                "apt-get install chromium nodejs npm && npm ci --prefix tests/browser (or set CHROMIUM)"
            }
            Part::Node => "apt-get install nodejs npm && npm ci --prefix tests/browser",
            Part::Citus => crate::citus::INSTALL,
            Part::OpenSsl => "apt-get install openssl",
        }
    }

    fn present(self) -> bool {
        match self {
            Part::Redis => Path::new(&crate::redis::binary()).is_file(),
            Part::PgBouncer => Path::new(&crate::pgbouncer::binary()).is_file(),
            Part::Browser => {
                Path::new(&chromium()).is_file()
                    && which("node").is_some()
                    && browser_dir().join("node_modules").is_dir()
            }
            Part::Node => {
                which("node").is_some()
                    && browser_dir().join("node_modules/graphql-ws").is_dir()
                    && browser_dir().join("node_modules/relay-compiler").is_dir()
            }
            Part::Citus => crate::citus::installed(),
            Part::OpenSsl => which("openssl").is_some(),
        }
    }
}

/// Whether `part` is here. When it is not, prints one line naming what to
/// install and returns `false` (the test then returns early), unless
/// `STRATA_TEST_ALL_TIERS=1`, where it panics: CI must run every tier.
pub fn available(part: Part, test: &str) -> bool {
    if part.present() {
        return true;
    }
    let line = format!(
        "skipped {test}: {part:?} is missing; install it: {}",
        part.install()
    );
    if std::env::var("STRATA_TEST_ALL_TIERS").is_ok_and(|v| v == "1") {
        panic!("{line} (STRATA_TEST_ALL_TIERS=1 runs every tier)");
    }
    // Once per part and test process: the Citus tier alone is a module
    // of tests.
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{part:?}");
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.contains(&key) {
        said.push(key);
        eprintln!("{line} (and every other test that needs it)");
    }
    false
}

/// The Chromium binary the browser checks drive.
pub fn chromium() -> String {
    std::env::var("CHROMIUM")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "/usr/bin/chromium".into())
}

/// `tests/browser`, where the browser checks and their packages are.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The first `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
