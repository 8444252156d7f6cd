//! Signing out everywhere across replicas. `revokeSessions` writes the
//! revocation to the database; the replica that made it forgets what it
//! remembered of the user at once, and the others would within
//! `--auth-cache-ttl`. With Redis configured, the replica also publishes
//! the user's id on a channel every replica listens to, and each forgets
//! the user and re-checks its open subscriptions on receipt: at once
//! everywhere. The database stays the authority; a lost message only
//! delays the refusal to the cache's time-to-live.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use strata_domain::UserId;

use crate::auth::UserCache;
use crate::socket::Revocations;

/// The channel revocations are published on.
const CHANNEL: &str = "strata:sessions:revoked";

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

    /// Tells the other replicas that `user`'s sessions were revoked.
    /// Failing to reach Redis is logged: the database still refuses the
    /// user's old tokens once the other replicas' caches expire.
    pub async fn publish(&self, user: UserId) {
        let Some(redis) = &self.redis else {
            return;
        };
        let mut conn = redis.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(user.to_string())
            .query_async(&mut conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not publish a session revocation");
        }
    }
}

/// Listens for revocations published by any replica (this one included)
/// and applies them here, reconnecting after a failure, until the process
/// ends.
pub fn listen(client: redis::Client, users: UserCache, revocations: Arc<Revocations>) {
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
                            if let Ok(user) = text.parse::<UserId>() {
                                users.invalidate_user(user).await;
                                revocations.bump();
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
