//! Servers under test, the load generator and what is read off `/proc`.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

/// A server process the bench started.
pub struct Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl Server {
    /// Starts `cmd` (stdout and stderr to `log`) and waits until
    /// `ready_path` answers (with a 2xx status if `require_success`), for at
    /// most `wait`.
    pub async fn start(
        name: &str,
        mut cmd: Command,
        port: u16,
        ready_path: &str,
        log: &Path,
        require_success: bool,
        wait: Duration,
    ) -> Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Self { port, child };
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}{ready_path}");
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("{name} exited at start ({status}); see {}", log.display());
            }
            if let Ok(r) = client.get(&url).send().await
                && (r.status().is_success() || !require_success)
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.stop();
                bail!("{name} did not become ready; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Fields of `/proc/<pid>/stat` after the command name: (ppid, utime,
/// stime, cutime, cstime).
fn stat(pid: u32) -> Option<(u32, u64, u64, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is the state (field 3); ppid is field 4, utime..cstime 14..17.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((
        u32::try_from(num(1)?).ok()?,
        num(11)?,
        num(12)?,
        num(13)?,
        num(14)?,
    ))
}

/// CPU ticks (user + system) a process has used.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat(pid).map(|(_, u, s, _, _)| u + s).unwrap_or(0)
}

/// CPU ticks of a PostgreSQL server: the postmaster (with the children it
/// has reaped) and every live child.
pub fn pg_cpu_ticks(postmaster: u32) -> u64 {
    let mut total = stat(postmaster)
        .map(|(_, u, s, cu, cs)| u + s + cu + cs)
        .unwrap_or(0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, u, s, _, _)) = stat(pid)
                && ppid == postmaster
            {
                total += u + s;
            }
        }
    }
    total
}

/// The parent of a process.
pub fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|(ppid, ..)| ppid)
}

/// Peak resident set size (VmHWM) in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Counters read from Strata's `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// GraphQL requests answered without errors.
    pub ok: f64,
    /// GraphQL requests with any other outcome.
    pub failed: f64,
    /// SQL statements sent in request transactions.
    pub statements: f64,
}

/// Reads Strata's counters.
pub async fn counters(client: &reqwest::Client, port: u16) -> Result<Counters> {
    let text = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut c = Counters::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        if name.starts_with("strata_graphql_requests_total") {
            if name.contains("outcome=\"ok\"") {
                c.ok += value;
            } else {
                c.failed += value;
            }
        } else if name.starts_with("strata_sql_statements_total") {
            c.statements += value;
        }
    }
    Ok(c)
}

/// One request of a Lua script: bearer token and JSON body.
#[derive(Clone, Debug)]
pub struct Request {
    /// Bearer token.
    pub token: String,
    /// JSON body.
    pub body: String,
}

fn lua_string(s: &str) -> String {
    let mut level = 1;
    loop {
        let eq = "=".repeat(level);
        if !s.contains(&format!("]{eq}]")) {
            return format!("[{eq}[{s}]{eq}]");
        }
        level += 1;
    }
}

/// Writes a wrk script that sends `requests` round-robin (each thread
/// starting elsewhere), formatted once at start, and prints its summary
/// as one JSON line.
pub fn write_lua(path: &Path, http_path: &str, requests: &[Request]) -> Result<()> {
    let mut s = String::from(
        "-- Generated by strata-bench: rotates pre-formatted requests over many tenants.\n\
         local tokens = {\n",
    );
    for r in requests {
        s.push_str(&format!("  {},\n", lua_string(&r.token)));
    }
    s.push_str("}\nlocal bodies = {\n");
    for r in requests {
        s.push_str(&format!("  {},\n", lua_string(&r.body)));
    }
    s.push_str(&format!(
        "}}\nlocal http_path = {}\n",
        lua_string(http_path)
    ));
    s.push_str(
        r#"local reqs = {}
local i = 0
threads_started = 0

function setup(thread)
  thread:set("tid", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  for k = 1, #bodies do
    reqs[k] = wrk.format("POST", http_path, {
      ["Authorization"] = "Bearer " .. tokens[k],
      ["Content-Type"] = "application/json",
      ["Accept"] = "application/json",
    }, bodies[k])
  end
  i = (tid or 0) * 7919
end

function request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"#,
    );
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

/// What wrk reported.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Wrk {
    /// Completed requests.
    pub requests: u64,
    /// Run time in microseconds.
    pub duration_us: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Socket errors.
    pub connect: u64,
    /// Read errors.
    pub read: u64,
    /// Write errors.
    pub write: u64,
    /// Responses with a status >= 400.
    pub status: u64,
    /// Timeouts.
    pub timeout: u64,
    /// Median latency.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl Wrk {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.duration_us == 0 {
            0.0
        } else {
            self.requests as f64 / (self.duration_us as f64 / 1e6)
        }
    }

    /// Socket errors, timeouts and non-2xx answers.
    pub fn transport_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }
}

/// wrk settings.
#[derive(Clone, Debug)]
pub struct WrkOptions {
    /// Threads.
    pub threads: u32,
    /// Connections.
    pub connections: u32,
}

/// Runs wrk for `duration` against `port` with `script`.
pub async fn wrk(opts: &WrkOptions, port: u16, script: &Path, duration: Duration) -> Result<Wrk> {
    let secs = duration.as_secs().max(1);
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{}", opts.threads))
        .arg(format!("-c{}", opts.connections))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run wrk (install it: apt-get install wrk)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| {
            anyhow!(
                "wrk printed no summary: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    Ok(serde_json::from_str(line)?)
}

/// The machine the numbers were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

/// Describes this machine.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        cpu_model,
        memory_gib,
        kernel,
    }
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Sends one GraphQL request and returns the status and parsed body.
pub async fn post(
    client: &reqwest::Client,
    port: u16,
    token: &str,
    body: &str,
    request_id: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let mut req = client
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_owned());
    if let Some(id) = request_id {
        req = req.header("x-request-id", id);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, value))
}
