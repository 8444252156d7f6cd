//! A private Redis server for tests that need one, started from the
//! `redis-server` binary on the machine on a free loopback port and stopped
//! when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Redis server of the test's own.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:<port>/`.
    pub url: String,
}

/// The binary tests start.
pub fn binary() -> String {
    if let Ok(b) = std::env::var("TEST_REDIS_SERVER")
        && !b.is_empty()
    {
        return b;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = std::path::Path::new(dir).join("redis-server");
        if p.is_file() {
            return p.display().to_string();
        }
    }
    "/usr/bin/redis-server".into()
}

impl RedisServer {
    /// Starts one; panics with what to install when the binary is missing.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Self::start_on(port).await
    }

    /// Starts one on `port` (a Redis started again where one was stopped).
    pub async fn start_on(port: u16) -> Self {
        let child = Command::new(binary())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (install it: apt-get install redis-server, or set TEST_REDIS_SERVER)");
        let server = Self {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start listening on port {port}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// Stops the server (to test what happens when Redis goes away).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
