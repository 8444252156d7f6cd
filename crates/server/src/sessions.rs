//! Signing out everywhere across replicas. `revokeSessions` writes the
//! revocation to the database; the replica that made it forgets what it
//! remembered of the user at once, and the others would within
//! `--auth-cache-ttl`. With Redis configured, the replica also publishes
//! the user's id on a channel every replica listens to, and each forgets
//! the user and re-checks its open subscriptions on receipt: at once
//! everywhere. The database stays the authority; a lost message only
//! delays the refusal to the cache's time-to-live.

use std::time::Duration;

use futures_util::StreamExt as _;
use strata_domain::{OrgId, UserId};

/// The channel revocations are published on.
const CHANNEL: &str = "strata:sessions:revoked";

/// What every replica must forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forget {
    /// A user whose sessions were revoked.
    User(UserId),
    /// The members of an organization whose sign-in policy changed.
    Org(OrgId),
}

impl Forget {
    fn message(self) -> String {
        match self {
            Forget::User(u) => format!("user:{u}"),
            Forget::Org(o) => format!("org:{o}"),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once(':')?;
        match kind {
            "user" => id.parse().ok().map(Forget::User),
            "org" => id.parse().ok().map(Forget::Org),
            _ => None,
        }
    }
}

/// Publishes revocations to the other replicas (when Redis is configured).
#[derive(Clone, Default)]
pub struct SessionRevocations {
    redis: Option<redis::aio::ConnectionManager>,
}

impl std::fmt::Debug for SessionRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRevocations")
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl SessionRevocations {
    /// Publishing on `redis`, or nowhere.
    pub fn new(redis: Option<redis::aio::ConnectionManager>) -> Self {
        Self { redis }
    }

    /// Tells the other replicas what to forget. Failing to reach Redis is
    /// logged: the database still refuses the old tokens once the other
    /// replicas' caches expire.
    pub async fn publish(&self, what: Forget) {
        let Some(redis) = &self.redis else {
            return;
        };
        let mut conn = redis.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(what.message())
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not publish a session revocation");
        }
    }
}

/// Listens for revocations published by any replica (this one included)
/// and hands each to `apply`, reconnecting after a failure, until the
/// process ends.
pub fn listen<F, Fut>(client: redis::Client, apply: F)
where
    F: Fn(Forget) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                    Ok(()) => {
                        backoff = Duration::from_millis(200);
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(text) = msg.get_payload::<String>() else {
                                continue;
                            };
                            if let Some(what) = Forget::parse(&text) {
                                apply(what).await;
                            }
                        }
                        tracing::warn!("the session revocation channel closed; reconnecting");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot subscribe to session revocations"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot reach Redis for session revocations"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_as_written_and_garbage_as_nothing() {
        for what in [
            Forget::User(UserId::generate()),
            Forget::Org(OrgId::generate()),
        ] {
            assert_eq!(Forget::parse(&what.message()), Some(what));
        }
        for garbage in ["", "user:", "org:nope", "team:x", "plain"] {
            assert_eq!(Forget::parse(garbage), None, "{garbage}");
        }
    }
}
