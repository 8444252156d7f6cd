//! `GET /graphql/ws`: subscriptions over the `graphql-transport-ws`
//! protocol (the one the `graphql-ws` client speaks).
//!
//! Written here rather than taken from async-graphql's socket server because
//! that one cannot do what tenancy needs: it closes with its own codes
//! (1011, 1002 with long reasons) where the protocol names 4400, 4401, 4408
//! and 4409, it has no initialisation deadline, and it runs every
//! subscription with the context of `connection_init`. Here every
//! `subscribe` authenticates again (through the same caches as HTTP), is
//! charged to the caller's rate-limit buckets, passes the allow-list and the
//! shape limits, and starts through the organization's in-flight gate; each
//! event a subscription sends re-checks the credential first.
//!
//! Close codes: 4400 invalid message, 4401 `subscribe` before the
//! connection was acknowledged, 4403 a credential that is refused (at
//! `connection_init`, or revoked while the socket is open), 4408 no
//! `connection_init` in time, 4409 a subscription id already in use, 4429 a
//! second `connection_init`, a caller over its rate or over its sockets;
//! 1001 a peer that stopped answering pings, or the server shutting down
//! (SIGTERM: every socket is closed before the process exits).
//! Reasons stay within the 123 bytes a close frame may carry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::futures_util::StreamExt as _;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use axum::http::{HeaderMap, HeaderValue, header};
use futures_util::SinkExt as _;
use serde_json::{Value, json};
use strata_graphql::{RequestState, SocketSession, Turn};
use strata_persistence::context::VerifiedContext;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::pipeline::ensure_codes;
use crate::routes::{AppState, authenticate, caller, request_id};
use strata_graphql::ErrorCode;

/// The protocol's close codes.
mod close {
    pub const INVALID_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY: u16 = 4429;
    /// The peer stopped answering pings, or the server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
}

/// The longest reason a close frame may carry (RFC 6455: 125 bytes of
/// payload, two of them the code).
const MAX_REASON: usize = 123;

/// Options of the socket endpoint.
#[derive(Clone, Copy, Debug)]
pub struct SocketOptions {
    /// How long a connection may stay open without `connection_init`.
    pub init_timeout: Duration,
    /// How often an idle connection is pinged; one that sent nothing for
    /// two of these is closed.
    pub keepalive: Duration,
    /// Sockets one API key or user may hold open at once, per process.
    pub max_per_principal: usize,
    /// Subscriptions one socket may hold at once.
    pub max_subscriptions: usize,
}

/// Open sockets per principal (an API key or a user).
#[derive(Debug, Default)]
pub struct SocketCounts {
    open: Mutex<HashMap<Uuid, usize>>,
}

/// One open socket of a principal; released when dropped.
struct SocketSlot {
    counts: Arc<SocketCounts>,
    principal: Uuid,
}

impl SocketCounts {
    fn enter(self: &Arc<Self>, principal: Uuid, max: usize) -> Option<SocketSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(principal).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counts: self.clone(),
            principal,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.principal);
            }
        }
    }
}

/// What goes out on the socket.
enum Out {
    Text(String),
    Ping,
    Close(u16, String),
}

fn close_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// A message from the client, as far as this endpoint reads it.
enum ClientMessage {
    Init(Value),
    Ping,
    Pong,
    Subscribe { id: String, payload: Value },
    Complete { id: String },
}

fn parse(text: &str) -> Option<ClientMessage> {
    let v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    let id = || {
        obj.get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    };
    match obj.get("type")?.as_str()? {
        "connection_init" => {
            let payload = obj.get("payload").cloned().unwrap_or(Value::Null);
            (payload.is_null() || payload.is_object()).then_some(ClientMessage::Init(payload))
        }
        "ping" => Some(ClientMessage::Ping),
        "pong" => Some(ClientMessage::Pong),
        "subscribe" => {
            let payload = obj.get("payload")?;
            if !payload.get("query").is_some_and(Value::is_string) {
                return None;
            }
            Some(ClientMessage::Subscribe {
                id: id()?,
                payload: payload.clone(),
            })
        }
        "complete" => Some(ClientMessage::Complete { id: id()? }),
        _ => None,
    }
}

/// Serves one upgraded connection until either side closes it.
pub async fn serve(
    socket: WebSocket,
    state: AppState,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
) {
    let _open = crate::meters::Raised::new("strata_ws_connections");
    let _held = state.drain.hold();
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Out>(64);
    let writer = tokio::spawn(async move {
        while let Some(msg) = outgoing.recv().await {
            let (frame, last) = match msg {
                Out::Text(t) => (Message::Text(Utf8Bytes::from(t)), false),
                Out::Ping => (Message::Ping(Default::default()), false),
                Out::Close(code, reason) => (
                    Message::Close(Some(CloseFrame {
                        code,
                        reason: Utf8Bytes::from(close_reason(&reason)),
                    })),
                    true,
                ),
            };
            if sink.send(frame).await.is_err() || last {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let opts = state.sockets();
    let mut conn = Connection {
        state,
        headers,
        client_ip,
        out,
        subscriptions: HashMap::new(),
        session: None,
        slot: None,
    };
    conn.run(&mut stream, opts).await;
    for (_, task) in conn.subscriptions.drain() {
        task.abort();
    }
    drop(conn);
    let _ = writer.await;
}

struct Connection {
    state: AppState,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
    out: mpsc::Sender<Out>,
    subscriptions: HashMap<String, JoinHandle<()>>,
    /// Set once the connection is acknowledged.
    session: Option<Session>,
    slot: Option<SocketSlot>,
}

/// What an acknowledged connection knows of its caller.
struct Session {
    check: Arc<SocketCheck>,
    socket: SocketSession,
}

type Incoming = futures_util::stream::SplitStream<WebSocket>;

impl Connection {
    async fn close(&self, code: u16, reason: &str) {
        let _ = self.out.send(Out::Close(code, reason.to_owned())).await;
    }

    async fn send(&self, msg: Value) {
        let _ = self.out.send(Out::Text(msg.to_string())).await;
    }

    async fn run(&mut self, stream: &mut Incoming, opts: SocketOptions) {
        let init_deadline = tokio::time::Instant::now() + opts.init_timeout;
        let mut keepalive =
            tokio::time::interval_at(tokio::time::Instant::now() + opts.keepalive, opts.keepalive);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let drain = self.state.drain.clone();
        loop {
            let acked = self.session.is_some();
            let frame = tokio::select! {
                frame = stream.next() => frame,
                () = drain.stopping() => {
                    self.close(close::GOING_AWAY, "the server is shutting down").await;
                    return;
                }
                () = tokio::time::sleep_until(init_deadline), if !acked => {
                    self.close(close::INIT_TIMEOUT, "Connection initialisation timeout").await;
                    return;
                }
                _ = keepalive.tick() => {
                    if heard.elapsed() >= opts.keepalive * 2 {
                        self.close(close::GOING_AWAY, "the peer stopped answering pings").await;
                        return;
                    }
                    let _ = self.out.send(Out::Ping).await;
                    continue;
                }
                Some(id) = done_rx.recv() => {
                    if self.subscriptions.get(&id).is_some_and(JoinHandle::is_finished) {
                        self.subscriptions.remove(&id);
                    }
                    continue;
                }
            };
            let Some(Ok(frame)) = frame else { return };
            heard = tokio::time::Instant::now();
            let text = match frame {
                Message::Text(t) => t,
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Binary(_) => {
                    self.close(close::INVALID_MESSAGE, "Invalid message received")
                        .await;
                    return;
                }
            };
            let Some(msg) = parse(text.as_str()) else {
                self.close(close::INVALID_MESSAGE, "Invalid message received")
                    .await;
                return;
            };
            match msg {
                ClientMessage::Ping => self.send(json!({ "type": "pong" })).await,
                ClientMessage::Pong => {}
                ClientMessage::Init(_) if acked => {
                    self.close(close::TOO_MANY, "Too many initialisation requests")
                        .await;
                    return;
                }
                ClientMessage::Init(payload) => {
                    if let Err((code, reason)) = self.init(&payload, opts).await {
                        self.close(code, &reason).await;
                        return;
                    }
                    self.send(json!({ "type": "connection_ack" })).await;
                }
                ClientMessage::Subscribe { .. } if !acked => {
                    self.close(close::UNAUTHORIZED, "Unauthorized").await;
                    return;
                }
                ClientMessage::Subscribe { id, payload } => {
                    if self
                        .subscriptions
                        .get(&id)
                        .is_some_and(|t| !t.is_finished())
                    {
                        self.close(
                            close::DUPLICATE_ID,
                            &format!("Subscriber for {id} already exists"),
                        )
                        .await;
                        return;
                    }
                    let task = self.subscribe(id.clone(), payload, done_tx.clone());
                    self.subscriptions.insert(id, task);
                }
                ClientMessage::Complete { id } => {
                    if let Some(task) = self.subscriptions.remove(&id) {
                        task.abort();
                    }
                }
            }
        }
    }

    /// Authenticates `connection_init`; the error is the close frame.
    async fn init(&mut self, payload: &Value, opts: SocketOptions) -> Result<(), (u16, String)> {
        if let Some(value) = init_credential(payload) {
            let value = HeaderValue::from_str(&value)
                .map_err(|_| (close::FORBIDDEN, "Forbidden".to_owned()))?;
            self.headers.insert(header::AUTHORIZATION, value);
        }
        if let Some(org) = payload
            .get("X-Strata-Org")
            .or_else(|| payload.get("x-strata-org"))
            .and_then(Value::as_str)
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            self.headers.insert("x-strata-org", org);
        }
        let request_id = request_id(&self.headers);
        let rs = match authenticate(&self.state, &self.headers, &request_id).await {
            Ok(rs) => rs,
            Err(Ok(reason)) => {
                tracing::info!(reason = %reason, "subscription authentication failed");
                crate::meters::auth_failed(reason.class(), "ws");
                if self.state.limiter.check_address(self.client_ip).is_err() {
                    return Err((close::TOO_MANY, "Too many failed authentications".into()));
                }
                self.state.limiter.authentication_failed(self.client_ip);
                return Err((close::FORBIDDEN, "Forbidden".into()));
            }
            Err(Err(e)) => {
                tracing::warn!(error = %e, "subscription authentication could not complete");
                return Err((close::FORBIDDEN, "Forbidden: try again later".into()));
            }
        };
        let who = caller(&rs);
        if let Err(limited) = self.state.limiter.check(&who, 1).await {
            crate::meters::rate_limited(limited.scope, "ws");
            return Err((
                close::TOO_MANY,
                format!(
                    "Too many requests: retry in {} s",
                    limited.retry_after_secs()
                ),
            ));
        }
        if let Some(principal) = who.api_key.or(who.user) {
            match self
                .state
                .socket_counts
                .enter(principal, opts.max_per_principal)
            {
                Some(slot) => self.slot = Some(slot),
                None => {
                    metrics::counter!("strata_ws_refused_total", "reason" => "sockets")
                        .increment(1);
                    return Err((
                        close::TOO_MANY,
                        format!(
                            "Too many sockets: at most {} open at once per credential",
                            opts.max_per_principal
                        ),
                    ));
                }
            }
        }
        let check = Arc::new(SocketCheck {
            state: self.state.clone(),
            headers: self.headers.clone(),
            request_id,
            caller: who,
            memo: Mutex::new(None),
        });
        let socket = SocketSession::new(opts.max_subscriptions).with_check(check.clone());
        self.session = Some(Session { check, socket });
        Ok(())
    }

    fn subscribe(
        &self,
        id: String,
        payload: Value,
        done: mpsc::UnboundedSender<String>,
    ) -> JoinHandle<()> {
        let out = self.out.clone();
        let state = self.state.clone();
        let (check, socket) = match &self.session {
            Some(s) => (s.check.clone(), s.socket.clone()),
            None => return tokio::spawn(async {}),
        };
        tokio::spawn(async move {
            let _running = crate::meters::Raised::new("strata_ws_subscriptions");
            let send = |msg: Value| {
                let out = out.clone();
                async move {
                    let _ = out.send(Out::Text(msg.to_string())).await;
                }
            };
            let errors =
                |id: &str, code: ErrorCode, message: &str, extra: Option<(&str, Value)>| {
                    let mut ext = json!({ "code": code.as_str() });
                    if let (Some((k, v)), Some(map)) = (extra, ext.as_object_mut()) {
                        map.insert(k.to_owned(), v);
                    }
                    json!({ "id": id, "type": "error", "payload": [
                        { "message": message, "extensions": ext }
                    ]})
                };
            match Subscribe::start(&state, &check, socket, payload).await {
                Err(Refused::Revoked) => {
                    send(errors(
                        &id,
                        ErrorCode::Unauthenticated,
                        "the credential of this connection no longer allows access: reconnect with a valid one",
                        None,
                    ))
                    .await;
                    let _ = out
                        .send(Out::Close(close::FORBIDDEN, "Forbidden".into()))
                        .await;
                }
                Err(Refused::Limited(limited)) => {
                    crate::meters::rate_limited(limited.scope, "ws");
                    let secs = limited.retry_after_secs();
                    send(errors(
                        &id,
                        ErrorCode::RateLimited,
                        &format!(
                            "rate limit of this {} exceeded: retry in {secs} s",
                            limited.scope
                        ),
                        Some(("retryAfter", json!(secs))),
                    ))
                    .await;
                }
                Err(Refused::Busy) => {
                    send(errors(
                        &id,
                        ErrorCode::RateLimited,
                        "the organization has too many requests in flight: retry shortly",
                        None,
                    ))
                    .await;
                }
                Err(Refused::Request(code, message)) => {
                    send(errors(&id, code, &message, None)).await;
                }
                Err(Refused::Invalid(mut resp)) => {
                    ensure_codes(&mut resp.errors);
                    send(json!({ "id": id, "type": "error", "payload": resp.errors })).await;
                }
                Ok(mut stream) => {
                    while let Some(mut resp) = stream.next().await {
                        ensure_codes(&mut resp.errors);
                        let payload = match serde_json::to_value(&resp) {
                            Ok(v) => v,
                            Err(_) => break,
                        };
                        send(json!({ "id": id, "type": "next", "payload": payload })).await;
                    }
                    send(json!({ "id": id, "type": "complete" })).await;
                }
            }
            let _ = done.send(id);
        })
    }
}

/// Why a `subscribe` did not start.
enum Refused {
    /// The credential no longer allows access: the socket closes.
    Revoked,
    /// Over the caller's rate.
    Limited(crate::ratelimit::Limited),
    /// The organization's in-flight gate did not open in time.
    Busy,
    /// Refused before parsing (allow-list, persisted query, payload).
    Request(ErrorCode, String),
    /// The document does not parse, validate or fit the limits.
    Invalid(async_graphql::Response),
}

struct Subscribe;

impl Subscribe {
    /// Checks and starts one subscription: authenticated again, charged,
    /// allowed, in shape, and run through the organization's gate until its
    /// first answer.
    async fn start(
        state: &AppState,
        check: &Arc<SocketCheck>,
        socket: SocketSession,
        payload: Value,
    ) -> Result<
        async_graphql::futures_util::stream::BoxStream<'static, async_graphql::Response>,
        Refused,
    > {
        let rs = check.fresh().await.ok_or(Refused::Revoked)?;
        state
            .limiter
            .check(&caller(&rs), 1)
            .await
            .map_err(Refused::Limited)?;
        let mut payload = payload;
        if let Some(map) = payload.as_object_mut() {
            // `null` is how some clients say "no variables" or "no
            // extensions".
            map.retain(|_, v| !v.is_null());
        }
        let mut request: async_graphql::Request = serde_json::from_value(payload).map_err(|_| {
            Refused::Request(
                ErrorCode::BadUserInput,
                "the subscribe payload must be {\"query\": String, \"variables\"?: Object, \"operationName\"?: String, \"extensions\"?: Object}".into(),
            )
        })?;
        let scope = rs.context().map(|c| c.org_id().as_uuid());
        if let Err(e) = state.documents.resolve(&mut request, scope).await {
            return Err(Refused::Request(ErrorCode::BadUserInput, e.to_string()));
        }
        state.parsed.prepare(&mut request);
        if let Err(err) = strata_graphql::check_shape(&state.limits, &mut request) {
            return Err(Refused::Invalid(async_graphql::Response::from_errors(
                vec![err],
            )));
        }
        let org = rs.context().map(|c| c.org_id().as_uuid());
        let deadline = tokio::time::Instant::now() + state.http.request_timeout;
        let turn = state
            .gates
            .enter(org, deadline)
            .await
            .ok_or(Refused::Busy)?;
        let mut session = async_graphql::Data::default();
        session.insert(socket);
        let mut stream = state
            .socket_schema
            .execute_stream_with_session_data(request.data(rs), Arc::new(session));
        // The first answer runs the subscription's resolver (its first read)
        // inside the organization's turn; later reads take their own.
        let first = stream.next().await;
        drop(turn);
        match first {
            None => Ok(Box::pin(async_graphql::futures_util::stream::empty())),
            Some(resp) if crate::http::is_request_error(&resp) => Err(Refused::Invalid(resp)),
            Some(resp) => Ok(Box::pin(
                async_graphql::futures_util::stream::once(async move { resp }).chain(stream),
            )),
        }
    }
}

/// Re-authenticates a socket's credential while it is open: an expired
/// token, a revoked key or a removed membership ends its subscriptions, and
/// a changed role or client scope applies to what they read next.
///
/// A check is remembered for at most the auth cache's time-to-live (and
/// never past a second), and forgotten at once when this process commits a
/// change to memberships or keys.
pub(crate) struct SocketCheck {
    state: AppState,
    headers: HeaderMap,
    request_id: String,
    /// Who the connection's caller is charged as (its key or user, and its
    /// organization do not change while it is open).
    caller: crate::ratelimit::Caller,
    memo: Mutex<Option<Memo>>,
}

struct Memo {
    at: tokio::time::Instant,
    epoch: u64,
    context: VerifiedContext,
}

/// How long a socket's check is remembered at most.
const MEMO_TTL: Duration = Duration::from_secs(1);

impl SocketCheck {
    /// Authenticates the credential again now, for a new subscription.
    async fn fresh(&self) -> Option<RequestState> {
        let epoch = self.state.revocations.current();
        let rs = authenticate(&self.state, &self.headers, &self.request_id)
            .await
            .ok()?;
        if let Some(ctx) = rs.context() {
            self.remember(epoch, ctx.clone());
        }
        Some(rs)
    }

    fn remember(&self, epoch: u64, context: VerifiedContext) {
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *memo = Some(Memo {
            at: tokio::time::Instant::now(),
            epoch,
            context,
        });
    }

    fn remembered(&self) -> Option<VerifiedContext> {
        let ttl = self.state.auth_cache_ttl.min(MEMO_TTL);
        let memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.as_ref()
            .filter(|m| m.epoch == self.state.revocations.current() && m.at.elapsed() < ttl)
            .map(|m| m.context.clone())
    }
}

#[async_trait::async_trait]
impl strata_graphql::Revalidate for SocketCheck {
    async fn current(&self) -> Option<VerifiedContext> {
        if let Some(ctx) = self.remembered() {
            return Some(ctx);
        }
        self.fresh().await.and_then(|rs| rs.context().cloned())
    }

    async fn turn(&self) -> Option<Turn> {
        // Charged before anything else, the credential's check included: a
        // caller out of budget costs the database nothing.
        if self.state.limiter.check(&self.caller, 1).await.is_err() {
            metrics::counter!("strata_ws_polls_skipped_total", "reason" => "rate_limited")
                .increment(1);
            return None;
        }
        // A poll waits for its organization's turn no longer than a poll
        // period: a busy organization polls less, and others not at all
        // less.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        match self.state.gates.enter(self.caller.org, deadline).await {
            Some(permit) => Some(Box::new(permit)),
            None => {
                metrics::counter!("strata_ws_polls_skipped_total", "reason" => "busy").increment(1);
                None
            }
        }
    }
}

/// The credential in a `connection_init` payload, as an Authorization value.
fn init_credential(payload: &Value) -> Option<String> {
    let get = |k: &str| payload.get(k).and_then(Value::as_str).map(str::trim);
    if let Some(v) = get("Authorization").or_else(|| get("authorization")) {
        return Some(v.to_owned());
    }
    get("token")
        .or_else(|| get("authToken"))
        .map(|t| format!("Bearer {t}"))
}

/// Counts commits that revoke access (a membership changed, a key revoked),
/// so that sockets forget what they remembered of their caller at once.
#[derive(Debug, Default)]
pub struct Revocations(std::sync::atomic::AtomicU64);

impl Revocations {
    /// The current count.
    pub fn current(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records one more revocation.
    pub fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(200);
        let r = close_reason(&long);
        assert!(r.len() <= MAX_REASON);
        assert!(long.starts_with(&r));
        assert_eq!(close_reason("Forbidden"), "Forbidden");
    }

    #[test]
    fn messages_without_a_usable_shape_are_invalid() {
        assert!(parse("not json").is_none());
        assert!(parse(r#"{"type": "subscribe", "id": "", "payload": {"query": "x"}}"#).is_none());
        assert!(parse(r#"{"type": "subscribe", "id": "1", "payload": {}}"#).is_none());
        assert!(parse(r#"{"type": "whatever"}"#).is_none());
        assert!(parse(r#"{"type": "connection_init", "payload": 3}"#).is_none());
        assert!(matches!(
            parse(
                r#"{"type": "subscribe", "id": "1", "payload": {"query": "subscription { x }"}}"#
            ),
            Some(ClientMessage::Subscribe { .. })
        ));
        assert!(matches!(
            parse(r#"{"type": "connection_init"}"#),
            Some(ClientMessage::Init(Value::Null))
        ));
    }

    #[test]
    fn a_principal_holds_at_most_its_sockets() {
        let counts = Arc::new(SocketCounts::default());
        let who = Uuid::new_v4();
        let a = counts.enter(who, 2).unwrap();
        let _b = counts.enter(who, 2).unwrap();
        assert!(counts.enter(who, 2).is_none());
        assert!(counts.enter(Uuid::new_v4(), 2).is_some());
        drop(a);
        assert!(counts.enter(who, 2).is_some());
    }
}
