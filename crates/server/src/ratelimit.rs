//! Per-tenant rate limits: a token bucket per API key, per user and per
//! organization, checked after authentication and before anything runs.
//!
//! Buckets follow GCRA (the generic cell rate algorithm: a bucket is the
//! time at which it would be full again). In one process they live in
//! memory (`governor`). With a Redis URL they live in Redis, so every
//! replica draws from the same buckets; there one Lua script checks and
//! charges all of a request's buckets atomically, in one round trip, with
//! Redis's clock (replicas' clocks never disagree about a bucket).
//!
//! If Redis cannot be reached in time, the process's in-memory buckets
//! decide instead (a metric and a warning say so): an outage of Redis must
//! neither fail requests nor lift the limits. Every bucket key carries the
//! same hash tag, so the script also runs on a Redis Cluster (on one shard).
//!
//! Failed authentications are counted per client address; past their limit
//! an address is refused for a while before its credentials are looked at,
//! so floods of random keys cannot occupy the database.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

/// A rate: `count` requests per `period`. A count of 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period.
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate {
        count: 0,
        period: Duration::from_secs(1),
    };

    /// `count` requests a second.
    pub const fn per_second(count: u32) -> Self {
        Self {
            count,
            period: Duration::from_secs(1),
        }
    }

    /// `count` requests per `period`.
    pub const fn per(count: u32, period: Duration) -> Self {
        Self { count, period }
    }

    /// Whether this rate limits anything.
    pub fn is_on(self) -> bool {
        self.count > 0 && !self.period.is_zero()
    }

    /// The time one request's token takes to come back (GCRA's emission
    /// interval), at least a microsecond.
    fn emission(self) -> Duration {
        (self.period / self.count.max(1)).max(Duration::from_micros(1))
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N` (a second), or `N/PERIOD` with a duration such as `s`, `min`,
    /// `h`, `10s` or `1h`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (count, period) = match s.trim().split_once('/') {
            None => (s.trim(), None),
            Some((c, p)) => (c.trim(), Some(p.trim())),
        };
        let count: u32 = count.parse().map_err(|_| {
            format!("'{s}' is not a rate: expected N or N/PERIOD, e.g. 50 or 600/min")
        })?;
        let period = match period {
            None => Duration::from_secs(1),
            Some(p) => {
                // A bare unit ("min") is one of it.
                let p = if p.starts_with(|c: char| c.is_ascii_digit()) {
                    p.to_owned()
                } else {
                    format!("1{p}")
                };
                humantime::parse_duration(&p)
                    .map_err(|e| format!("'{s}': the period is not a duration ({e})"))?
            }
        };
        if period.is_zero() {
            return Err(format!("'{s}': the period must be longer than zero"));
        }
        Ok(Self { count, period })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.count,
            humantime::format_duration(self.period)
        )
    }
}

/// Per-tenant rates; a rate of 0 turns a dimension off.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Per API key.
    pub per_key: Rate,
    /// Per user (whatever organization they act in).
    pub per_user: Rate,
    /// Per organization (its users and keys together).
    pub per_org: Rate,
    /// A bucket holds this many periods of its rate: the burst allowed
    /// after a quiet spell (for a rate per second, seconds of it).
    pub burst: u32,
    /// Failed authentications per client address; past them the address
    /// is refused without checking its credentials for a while.
    pub auth_failures_per_ip: Rate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_key: Rate::per_second(50),
            per_user: Rate::per_second(50),
            per_org: Rate::per_second(200),
            burst: 2,
            auth_failures_per_ip: Rate::per_second(10),
        }
    }
}

impl RateLimitConfig {
    /// Every limit off.
    pub fn off() -> Self {
        Self {
            per_key: Rate::OFF,
            per_user: Rate::OFF,
            per_org: Rate::OFF,
            burst: 1,
            auth_failures_per_ip: Rate::OFF,
        }
    }
}

/// Who a request is charged to.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The API key, when a key calls.
    pub api_key: Option<Uuid>,
    /// The user, when a user calls.
    pub user: Option<Uuid>,
    /// The active organization, if any.
    pub org: Option<Uuid>,
    /// The API key's own rate (`rateLimitPerMinute`), used for its bucket
    /// instead of the per-key rate; the organization's still applies.
    pub key_rate: Option<Rate>,
}

/// A refused request: when the caller may try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// How long until the request would pass.
    pub retry_after: Duration,
    /// Which bucket refused it.
    pub scope: &'static str,
    /// How long that bucket takes to earn one unit back (zero when no
    /// bucket refused: the address block).
    pub per_unit: Duration,
}

impl Limited {
    /// The units the refusing bucket holds now, for a charge of `cost` that
    /// it refused: the cost less what it still has to earn back.
    pub fn remaining(&self, cost: u32) -> u64 {
        if self.per_unit.is_zero() {
            return 0;
        }
        let owed = self
            .retry_after
            .as_nanos()
            .div_ceil(self.per_unit.as_nanos().max(1));
        u64::from(cost).saturating_sub(u64::try_from(owed).unwrap_or(u64::MAX))
    }

    /// `Retry-After` in whole seconds, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        let nanos = self.retry_after.as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000_000))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    scope: &'static str,
    rate: Rate,
}

impl Bucket {
    /// How many requests a full bucket lets through at once.
    fn capacity(self, burst: u32) -> u32 {
        self.rate.count.saturating_mul(burst.max(1)).max(1)
    }
}

/// A governor quota for `rate` holding `burst` periods of it.
fn quota(rate: Rate, burst: u32) -> Option<Quota> {
    if !rate.is_on() {
        return None;
    }
    let capacity = NonZeroU32::new(rate.count.saturating_mul(burst.max(1)))?;
    Some(Quota::with_period(rate.emission())?.allow_burst(capacity))
}

/// The limiter shared by every request of the process.
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.inner.config;
        f.debug_struct("RateLimiter")
            .field("per_key", &c.per_key)
            .field("per_user", &c.per_user)
            .field("per_org", &c.per_org)
            .field("burst", &c.burst)
            .field("auth_failures_per_ip", &c.auth_failures_per_ip)
            .field("redis", &self.inner.redis.is_some())
            .finish()
    }
}

struct Inner {
    config: RateLimitConfig,
    key: Option<(Bucket, DefaultKeyedRateLimiter<Uuid>)>,
    user: Option<(Bucket, DefaultKeyedRateLimiter<Uuid>)>,
    org: Option<(Bucket, DefaultKeyedRateLimiter<Uuid>)>,
    redis: Option<redis::aio::ConnectionManager>,
    /// In-memory buckets of the keys with a rate of their own, by key and
    /// rate (a changed rate starts a fresh bucket).
    overrides: moka::sync::Cache<(Uuid, u32, Duration), Arc<governor::DefaultDirectRateLimiter>>,
    failures: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses refused until the given time, after too many failures.
    blocked: moka::sync::Cache<IpAddr, Instant>,
    /// The Redis hash tag its bucket keys are under (`rl`, `pq`): limiters
    /// sharing one Redis never share a bucket.
    space: &'static str,
}

fn memory(
    scope: &'static str,
    rate: Rate,
    burst: u32,
) -> Option<(Bucket, DefaultKeyedRateLimiter<Uuid>)> {
    let quota = quota(rate, burst)?;
    Some((
        Bucket { scope, rate },
        DefaultKeyedRateLimiter::keyed(quota),
    ))
}

/// Connects to the Redis that replicas share (rate-limit buckets, persisted
/// queries); fails when it cannot be reached at start.
pub async fn connect_redis(
    url: &secrecy::SecretString,
) -> anyhow::Result<redis::aio::ConnectionManager> {
    use secrecy::ExposeSecret as _;
    let client = redis::Client::open(url.expose_secret())
        .map_err(|e| anyhow::anyhow!("STRATA_REDIS_URL is not a valid Redis URL: {e}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1);
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_connection_manager_with_config(config),
    )
    .await
    .map_err(|_| anyhow::anyhow!("cannot reach Redis at STRATA_REDIS_URL (timed out)"))?
    .map_err(|e| anyhow::anyhow!("cannot reach Redis at STRATA_REDIS_URL: {e}"))
}

/// How long a request waits for Redis before it is let through.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

impl RateLimiter {
    /// A limiter for `config`, keeping its buckets in `redis` when given.
    pub fn new(config: RateLimitConfig, redis: Option<redis::aio::ConnectionManager>) -> Self {
        Self::in_space(config, redis, "rl")
    }

    /// A limiter whose Redis buckets live under the hash tag `space`,
    /// apart from every other limiter's.
    pub fn in_space(
        config: RateLimitConfig,
        redis: Option<redis::aio::ConnectionManager>,
        space: &'static str,
    ) -> Self {
        let b = config.burst;
        let inner = Inner {
            key: memory("api key", config.per_key, b),
            user: memory("user", config.per_user, b),
            org: memory("organization", config.per_org, b),
            overrides: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            failures: quota(config.auth_failures_per_ip, b).map(DefaultKeyedRateLimiter::keyed),
            blocked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            config,
            redis,
            space,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Whether any limit is on.
    pub fn enabled(&self) -> bool {
        self.inner.key.is_some() || self.inner.user.is_some() || self.inner.org.is_some()
    }

    /// The most requests one call may be charged at once: the smallest
    /// bucket's capacity (a larger batch could never pass).
    pub fn max_cost(&self) -> Option<u32> {
        [&self.inner.key, &self.inner.user, &self.inner.org]
            .into_iter()
            .flatten()
            .map(|(b, _)| b.capacity(self.inner.config.burst))
            .min()
    }

    /// [`max_cost`](Self::max_cost) for `caller`: a key with a rate of its
    /// own is bounded by its own bucket instead of the per-key one.
    pub fn max_cost_for(&self, caller: &Caller) -> Option<u32> {
        let burst = self.inner.config.burst;
        let own = caller
            .api_key
            .and(caller.key_rate)
            .filter(|r| r.is_on())
            .map(|rate| {
                Bucket {
                    scope: "api key",
                    rate,
                }
                .capacity(burst)
            });
        let key = if own.is_some() {
            None
        } else {
            self.inner.key.as_ref()
        };
        [key, self.inner.user.as_ref(), self.inner.org.as_ref()]
            .into_iter()
            .flatten()
            .map(|(b, _)| b.capacity(burst))
            .chain(own)
            .min()
    }

    /// Refuses an address that failed to authenticate too often lately.
    pub fn check_address(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        let Some(ip) = ip else { return Ok(()) };
        match self.inner.blocked.get(&ip) {
            Some(until) if until > Instant::now() => Err(Limited {
                retry_after: until - Instant::now(),
                scope: "client address",
                per_unit: Duration::ZERO,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `ip`; past the limit, the
    /// address is refused until its bucket refills.
    pub fn authentication_failed(&self, ip: Option<IpAddr>) {
        let (Some(ip), Some(failures)) = (ip, &self.inner.failures) else {
            return;
        };
        if let Err(not_until) = failures.check_key(&ip) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(failures.clock()));
            // Refused for at least a second, so a flood cannot pass by
            // trickling.
            let wait = wait.max(Duration::from_secs(1));
            self.inner.blocked.insert(ip, Instant::now() + wait);
            metrics::counter!("strata_auth_failures_blocked_total").increment(1);
        }
    }

    /// Whether buckets live in Redis.
    pub fn shared(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// Charges `cost` requests to `caller`'s buckets: the narrowest first
    /// (key or user, then organization), so one busy caller cannot drain
    /// its organization's bucket beyond its own rate.
    pub async fn check(&self, caller: &Caller, cost: u32) -> Result<(), Limited> {
        let cost = cost.max(1);
        let key_override = caller.api_key.zip(caller.key_rate.filter(|r| r.is_on()));
        let buckets = [
            (&self.inner.key, caller.api_key, "key"),
            (&self.inner.user, caller.user, "user"),
            (&self.inner.org, caller.org, "org"),
        ];
        if let Some(redis) = &self.inner.redis {
            let mut wanted: Vec<(Bucket, String)> = Vec::with_capacity(3);
            if let Some((key, rate)) = key_override {
                wanted.push((
                    Bucket {
                        scope: "api key",
                        rate,
                    },
                    format!("strata:{{{}}}:key:{key}", self.inner.space),
                ));
            }
            wanted.extend(
                buckets
                    .iter()
                    .filter(|(_, _, prefix)| key_override.is_none() || *prefix != "key")
                    .filter_map(|(limiter, id, prefix)| {
                        let (bucket, _) = limiter.as_ref()?;
                        Some((
                            *bucket,
                            format!("strata:{{{}}}:{prefix}:{}", self.inner.space, id.as_ref()?),
                        ))
                    }),
            );
            // When Redis does not answer, this process's own buckets decide.
            if let Some(decision) = self.check_redis(redis.clone(), &wanted, cost).await {
                return decision;
            }
        }
        self.check_memory(caller, cost)
    }

    fn check_memory(&self, caller: &Caller, cost: u32) -> Result<(), Limited> {
        let n = NonZeroU32::new(cost).unwrap_or(NonZeroU32::MIN);
        let key_override = caller.api_key.zip(caller.key_rate.filter(|r| r.is_on()));
        if let Some((key, rate)) = key_override {
            self.check_override(key, rate, n)?;
        }
        let buckets = [
            (
                &self.inner.key,
                caller.api_key.filter(|_| key_override.is_none()),
            ),
            (&self.inner.user, caller.user),
            (&self.inner.org, caller.org),
        ];
        for (limiter, id) in buckets {
            let (Some((bucket, limiter)), Some(id)) = (limiter, id) else {
                continue;
            };
            match limiter.check_key_n(&id, n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    return Err(Limited {
                        retry_after: not_until
                            .wait_time_from(governor::clock::Clock::now(limiter.clock())),
                        scope: bucket.scope,
                        per_unit: bucket.rate.emission(),
                    });
                }
                // More than the bucket can ever hold at once.
                Err(_) => {
                    return Err(Limited {
                        retry_after: bucket.rate.emission().saturating_mul(cost),
                        scope: bucket.scope,
                        per_unit: bucket.rate.emission(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Charges `n` to the bucket of a key with a rate of its own.
    fn check_override(&self, key: Uuid, rate: Rate, n: NonZeroU32) -> Result<(), Limited> {
        let Some(quota) = quota(rate, self.inner.config.burst) else {
            return Ok(());
        };
        let limiter = self
            .inner
            .overrides
            .get_with((key, rate.count, rate.period), || {
                Arc::new(governor::RateLimiter::direct(quota))
            });
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Limited {
                retry_after: not_until.wait_time_from(governor::clock::Clock::now(limiter.clock())),
                scope: "api key",
                per_unit: rate.emission(),
            }),
            Err(_) => Err(Limited {
                retry_after: rate.emission().saturating_mul(n.get()),
                scope: "api key",
                per_unit: rate.emission(),
            }),
        }
    }

    async fn check_redis(
        &self,
        mut conn: redis::aio::ConnectionManager,
        buckets: &[(Bucket, String)],
        cost: u32,
    ) -> Option<Result<(), Limited>> {
        if buckets.is_empty() {
            return Some(Ok(()));
        }
        let burst = self.inner.config.burst;
        let mut invocation = GCRA.prepare_invoke();
        invocation.arg(cost);
        for (bucket, key) in buckets {
            // Microseconds between two requests, and how far ahead of now a
            // bucket may be booked (its capacity).
            let emission =
                u64::try_from(bucket.rate.emission().as_micros()).unwrap_or(u64::MAX / 4);
            invocation
                .key(key)
                .arg(emission)
                .arg(emission.saturating_mul(u64::from(bucket.capacity(burst))));
        }
        let reply: Result<Result<(i64, i64), redis::RedisError>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn)).await;
        match reply {
            Ok(Ok((0, _))) => Some(Ok(())),
            Ok(Ok((wait_us, index))) => {
                let bucket = usize::try_from(index - 1)
                    .ok()
                    .and_then(|i| buckets.get(i))
                    .map(|(b, _)| *b);
                Some(Err(Limited {
                    retry_after: Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
                    scope: bucket.map_or("organization", |b| b.scope),
                    per_unit: bucket.map_or(Duration::ZERO, |b| b.rate.emission()),
                }))
            }
            Ok(Err(e)) => {
                redis_failed(&e.to_string());
                None
            }
            Err(_) => {
                redis_failed("timed out");
                None
            }
        }
    }

    /// Forgets in-memory buckets that are full again (they hold nothing a
    /// fresh bucket would not). Call now and then.
    pub fn forget_idle(&self) {
        for (_, limiter) in [&self.inner.key, &self.inner.user, &self.inner.org]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(failures) = &self.inner.failures {
            failures.retain_recent();
            failures.shrink_to_fit();
        }
    }
}

fn redis_failed(reason: &str) {
    metrics::counter!("strata_rate_limit_backend_errors_total").increment(1);
    tracing::warn!(
        reason,
        "rate-limit store unavailable; letting the request through"
    );
}

/// GCRA over several buckets at once. KEYS: the buckets. ARGV[1]: the cost;
/// then per bucket its emission interval and capacity, in microseconds. A
/// bucket's value is its theoretical arrival time (microseconds, Redis
/// clock). Either every bucket is charged, or none is and the reply says how
/// long to wait and which bucket (1-based) refused.
static GCRA: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local wait, refused = 0, 0
local tats = {}
for i, key in ipairs(KEYS) do
  local emission = tonumber(ARGV[2 * i])
  local capacity = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + emission * cost
  local allowed_at = new_tat - capacity
  if allowed_at > now and allowed_at - now > wait then
    wait, refused = allowed_at - now, i
  end
  tats[i] = new_tat
end
if wait > 0 then return {wait, refused} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
end
return {0, 0}
",
    )
});

/// How many requests of one organization execute at once: beyond that its
/// requests wait their turn (until their deadline), so one tenant's heavy
/// traffic cannot hold every database connection while others wait.
#[derive(Clone)]
pub struct OrgGates {
    per_org: usize,
    gates: moka::sync::Cache<Uuid, Arc<tokio::sync::Semaphore>>,
}

impl std::fmt::Debug for OrgGates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgGates")
            .field("per_org", &self.per_org)
            .finish()
    }
}

impl OrgGates {
    /// At most `per_org` requests of an organization at once; 0 is no limit.
    pub fn new(per_org: usize) -> Self {
        Self {
            per_org,
            // A gate unused for ten minutes is forgotten (one in use is not:
            // whoever holds a permit holds the gate too).
            gates: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Waits for `org`'s turn until `deadline`; `None` when the deadline
    /// passed first. Without a limit or an organization, passes at once.
    pub async fn enter(
        &self,
        org: Option<Uuid>,
        deadline: tokio::time::Instant,
    ) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
        let Some(org) = org.filter(|_| self.per_org > 0) else {
            return Some(None);
        };
        let gate = self
            .gates
            .get_with(org, || Arc::new(tokio::sync::Semaphore::new(self.per_org)));
        match tokio::time::timeout_at(deadline, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Some(Some(permit)),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rates_are_a_count_and_a_period() {
        let r = |s: &str| s.parse::<Rate>();
        assert_eq!(r("50").unwrap(), Rate::per_second(50));
        assert_eq!(r("50/s").unwrap(), Rate::per_second(50));
        assert_eq!(r("1/h").unwrap(), Rate::per(1, Duration::from_secs(3600)));
        assert_eq!(
            r("600/min").unwrap(),
            Rate::per(600, Duration::from_secs(60))
        );
        assert_eq!(
            r(" 5 / 10s ").unwrap(),
            Rate::per(5, Duration::from_secs(10))
        );
        assert_eq!(
            r("1000/1h").unwrap(),
            Rate::per(1000, Duration::from_secs(3600))
        );
        assert!(!r("0").unwrap().is_on());
        assert!(r("ten").is_err());
        assert!(r("10/0s").is_err());
        assert!(r("10/fortnights").is_err());
        assert!(r("-1").is_err());
        // One token comes back every period / count.
        assert_eq!(r("10/min").unwrap().emission(), Duration::from_secs(6));
    }

    #[tokio::test]
    async fn a_slow_rate_holds_its_burst_and_says_how_long_to_wait() {
        let limiter = RateLimiter::new(
            RateLimitConfig {
                per_user: Rate::per(2, Duration::from_secs(3600)),
                burst: 1,
                ..RateLimitConfig::off()
            },
            None,
        );
        let caller = Caller {
            api_key: None,
            user: Some(Uuid::new_v4()),
            org: None,
            key_rate: None,
        };
        assert_eq!(limiter.max_cost(), Some(2));
        assert!(limiter.check(&caller, 2).await.is_ok());
        let refused = limiter.check(&caller, 1).await.unwrap_err();
        assert_eq!(refused.scope, "user");
        // Half an hour per token.
        assert!((1700..=1800).contains(&refused.retry_after_secs()));
    }
}
