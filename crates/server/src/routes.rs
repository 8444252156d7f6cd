//! HTTP routes. `router(state)` is the test seam: tests drive it in-process
//! or over a socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{ErrorExtensionValues, ServerError, Value};
use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use strata_domain::OrgId;
use strata_graphql::{Committed, ErrorCode, RequestState, StrataSchema};
use strata_persistence::Db;
use strata_persistence::context::ResolveError;
use tracing::Instrument;

use crate::auth::{AuthError, UserCache, Verifier};
use crate::config::HttpConfig;
use crate::documents::{DocumentError, Documents};
use crate::http::{self, Incoming, Refusal};
use crate::ratelimit::{Caller, Limited, OrgGates, RateLimiter};

/// Shared, request-independent state. Nothing tenant-specific lives here.
#[derive(Clone)]
pub struct AppState {
    /// The pool.
    pub db: Db,
    /// The schema served over HTTP.
    pub schema: StrataSchema,
    /// The schema that runs introspection-only queries (deeper limits).
    pub introspection_schema: StrataSchema,
    /// The schema served over the WebSocket (the same, checking each
    /// operation's shape as it arrives).
    pub socket_schema: StrataSchema,
    /// Shape limits HTTP requests are checked against before they run.
    pub limits: Arc<strata_graphql::Limits>,
    /// Token verification.
    pub verifier: Arc<Verifier>,
    /// Recently resolved users (memberships for a few seconds).
    pub users: UserCache,
    /// Metrics, rendered at `/metrics`.
    pub metrics: PrometheusHandle,
    /// Executes agent runs.
    pub runner: Arc<strata_runner::Runner>,
    /// Per-tenant rate limits.
    pub limiter: RateLimiter,
    /// Per-organization concurrency.
    pub gates: OrgGates,
    /// Registrations of persisted queries per principal and organization
    /// (buckets of their own, apart from the request limits).
    pub registrations: RateLimiter,
    /// Persisted queries and the allow-list.
    pub documents: Arc<Documents>,
    /// Syntax trees of recently run query texts.
    pub parsed: Arc<crate::parsed::ParsedDocuments>,
    /// HTTP-level limits and options.
    pub http: Arc<HttpConfig>,
    /// Open WebSockets per principal.
    pub socket_counts: Arc<crate::socket::SocketCounts>,
    /// Commits that revoked access, for sockets to re-check at once.
    pub revocations: Arc<crate::socket::Revocations>,
    /// How long resolved credentials are reused.
    pub auth_cache_ttl: Duration,
}

impl AppState {
    /// The WebSocket endpoint's options.
    pub fn sockets(&self) -> crate::socket::SocketOptions {
        crate::socket::SocketOptions {
            init_timeout: self.http.ws_init_timeout,
            keepalive: self.http.ws_keepalive,
            max_per_principal: self.http.max_sockets_per_principal,
            max_subscriptions: self.http.max_subscriptions,
        }
    }

    /// The address a request comes from: the peer, or, when the peer is a
    /// trusted proxy, the client it names in `Forwarded` or
    /// `X-Forwarded-For`.
    pub fn client_address(
        &self,
        peer: Option<std::net::IpAddr>,
        headers: &HeaderMap,
    ) -> Option<std::net::IpAddr> {
        crate::proxy::client_address(&self.http.trusted_proxies, peer, headers)
    }
}

/// The gateway's routes.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.http.cors_origins);
    let router = Router::new()
        .route("/graphql", get(graphql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::graphiql::routes())
        .with_state(state);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for browser clients on other origins: none unless origins are
/// configured. Credentials travel in the Authorization header, never in
/// cookies, so credentialed CORS is not needed.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-strata-org"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
            .max_age(Duration::from_secs(3600)),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn json_response(
    status: StatusCode,
    media: &'static str,
    body: &impl serde::Serialize,
) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, media)], bytes).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serializes an answer of at most `cap` bytes; a larger one is not sent
/// but refused with `QUERY_TOO_COMPLEX`, as soon as serialization passes the
/// cap (it is never held whole as bytes).
fn capped_response(
    status: StatusCode,
    media: &'static str,
    body: &impl serde::Serialize,
    cap: usize,
) -> Response {
    let mut out = Capped {
        bytes: Vec::with_capacity(cap.min(16 * 1024)),
        cap,
    };
    match serde_json::to_writer(&mut out, body) {
        Ok(()) => (status, [(header::CONTENT_TYPE, media)], out.bytes).into_response(),
        Err(e) if e.is_io() => {
            outcome("too_large");
            tracing::info!(max_bytes = cap, "answer larger than the response cap");
            json_response(
                StatusCode::OK,
                media,
                &error_body(
                    ErrorCode::QueryTooComplex.as_str(),
                    &format!(
                        "the answer is larger than the {cap} bytes a response may hold: ask for less (smaller pages, fewer fields)"
                    ),
                ),
            )
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A byte buffer that refuses to grow past its cap.
struct Capped {
    bytes: Vec<u8>,
    cap: usize,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.cap {
            return Err(std::io::Error::other("response cap"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

fn unauthenticated(media: &'static str) -> Response {
    let mut resp = json_response(
        StatusCode::UNAUTHORIZED,
        media,
        &error_body(
            "UNAUTHENTICATED",
            "authentication required: send a valid token or API key for an organization you belong to in 'Authorization: Bearer ...'",
        ),
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

fn requested_org(headers: &HeaderMap) -> Result<Option<OrgId>, AuthError> {
    match headers.get("x-strata-org") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<OrgId>().ok())
            .map(Some)
            .ok_or(AuthError::NotAMember),
    }
}

/// Resolves the caller into per-request state, or says why not.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<RequestState, Result<AuthError, strata_domain::DomainError>> {
    let token = bearer(headers).map_err(Ok)?;
    if token.starts_with("strata_") {
        return authenticate_api_key(state, headers, token, request_id).await;
    }
    let user = state.verifier.verify(token).await.map_err(Ok)?;
    let org = requested_org(headers).map_err(Ok)?.or(user.org_id);
    let resolved = state
        .users
        .resolve(&state.db, &user, org, request_id)
        .await
        .map_err(|e| match e {
            ResolveError::NotAMember => Ok(AuthError::NotAMember),
            ResolveError::Domain(d) => Err(d),
        })?;
    Ok(RequestState::for_user(
        state.db.clone(),
        resolved,
        request_id.to_owned(),
    ))
}

/// Resolves an API key (`Bearer strata_...`) into per-request state. A key
/// acts only in its own organization: naming another in `X-Strata-Org` is
/// refused like an unknown key.
async fn authenticate_api_key(
    state: &AppState,
    headers: &HeaderMap,
    secret: &str,
    request_id: &str,
) -> Result<RequestState, Result<AuthError, strata_domain::DomainError>> {
    use strata_persistence::context::{ApiKeyError, resolve_api_key};

    let org = requested_org(headers).map_err(Ok)?;
    let context = resolve_api_key(&state.db, secret, org, request_id)
        .await
        .map_err(|e| match e {
            ApiKeyError::Unknown | ApiKeyError::Inactive => Ok(AuthError::InvalidApiKey),
            ApiKeyError::OtherOrganization => Ok(AuthError::NotAMember),
            ApiKeyError::Domain(d) => Err(d),
        })?;
    Ok(RequestState::for_context(
        state.db.clone(),
        context,
        request_id.to_owned(),
    ))
}

/// Acts on what a request's committed mutations asked for.
async fn after_commit(state: &AppState, rs: &RequestState, committed: Vec<Committed>) {
    for event in committed {
        match event {
            // A changed or removed membership takes effect at once here;
            // other processes see it within the cache's time-to-live.
            Committed::MembershipChanged(user) => {
                state.users.invalidate_user(user).await;
                state.revocations.bump();
            }
            Committed::ApiKeyRevoked => state.revocations.bump(),
            Committed::RunQueued(run) => {
                if let Some(ctx) = rs.context() {
                    state.runner.start(ctx.clone(), *run);
                }
            }
            Committed::RunCancelled(id) => state.runner.cancel(id),
        }
    }
}

/// Gives every error a stable code: async-graphql's own parse, validation and
/// limit errors carry none.
pub(crate) fn ensure_codes(errors: &mut [ServerError]) {
    for err in errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let msg = err.message.to_ascii_lowercase();
        let code = if msg.contains("too complex")
            || msg.contains("too deep")
            || msg.contains("recursion")
            || msg.contains("directives")
            || msg.contains("too many")
            || msg.contains("too large")
        {
            "QUERY_TOO_COMPLEX"
        } else if err.locations.is_empty() && err.path.is_empty() && msg.contains("internal") {
            "INTERNAL"
        } else {
            "BAD_USER_INPUT"
        };
        let mut ext = err
            .extensions
            .take()
            .unwrap_or_else(ErrorExtensionValues::default);
        ext.set("code", code);
        err.extensions = Some(ext);
    }
}

fn refusal_response(media: &'static str, refusal: Refusal) -> Response {
    json_response(
        refusal.status,
        media,
        &error_body(refusal.code, &refusal.message),
    )
}

fn rate_limited(media: &'static str, limited: &Limited) -> Response {
    let secs = limited.retry_after_secs();
    let body = serde_json::json!({ "errors": [{
        "message": format!("rate limit of this {} exceeded: retry in {secs} s", limited.scope),
        "extensions": { "code": "RATE_LIMITED", "retryAfter": secs },
    }] });
    let mut resp = json_response(StatusCode::TOO_MANY_REQUESTS, media, &body);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

pub(crate) fn caller(rs: &RequestState) -> Caller {
    let ctx = rs.context();
    Caller {
        api_key: ctx.and_then(|c| match c.actor() {
            strata_domain::Actor::ApiKey(id) => Some(id.as_uuid()),
            strata_domain::Actor::User(_) => None,
        }),
        user: rs.user_id().map(|u| u.as_uuid()),
        org: ctx.map(|c| c.org_id().as_uuid()),
    }
}

/// A request's body: already read (requests without a credential are read
/// before they are refused as unauthenticated), or still to be read.
enum Pending {
    Read(Incoming),
    Unread(axum::body::Body),
}

async fn graphql(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = state.client_address(peer, &parts.headers);
    let request_id = request_id(headers);
    let span = tracing::info_span!(
        "graphql",
        request.id = %request_id,
        tenant.org_id = tracing::field::Empty,
        tenant.org_type = tracing::field::Empty,
    );
    let response = async {
        let media = match http::response_type(headers) {
            Ok(m) => m,
            Err(refusal) => return refusal_response(http::JSON, refusal),
        };
        let limits = http::BodyLimits {
            max_bytes: state.http.max_body_bytes,
            max_batch: state.http.max_batch,
            read_timeout: state.http.body_read_timeout,
        };
        // A request without any credential is answered as GraphQL over HTTP
        // says (400, 413, 415, 405...) before the 401, and a refused one
        // counts against its address like a failed login, so anonymous junk
        // is not free either.
        let body = if headers.contains_key(axum::http::header::AUTHORIZATION) {
            Pending::Unread(body)
        } else {
            // The address block applies on the failure path only: a request
            // without a credential is one. A valid credential is never
            // refused because of its neighbours' failures (behind a proxy
            // every client may share one address).
            if let Err(limited) = state.limiter.check_address(client_ip) {
                outcome("rate_limited");
                return rate_limited(media, &limited);
            }
            match http::read(&parts.method, headers, parts.uri.query(), body, &limits).await {
                Ok(incoming) => Pending::Read(incoming),
                Err(refusal) => {
                    tracing::info!(reason = %refusal.message, "unreadable graphql request");
                    state.limiter.authentication_failed(client_ip);
                    outcome("bad_request");
                    return refusal_response(media, refusal);
                }
            }
        };
        // Otherwise the caller is known, and charged one request, before the
        // body is read: a body that is refused (too large, too slow, not
        // JSON, too many operations, a mutation over GET) costs its sender
        // like any other request, so junk cannot be sent for free.
        let rs = match authenticate(&state, headers, &request_id).await {
            Ok(rs) => rs,
            Err(Ok(reason)) => {
                tracing::info!(reason = %reason, "authentication failed");
                if let Err(limited) = state.limiter.check_address(client_ip) {
                    outcome("rate_limited");
                    return rate_limited(media, &limited);
                }
                state.limiter.authentication_failed(client_ip);
                outcome("unauthenticated");
                return unauthenticated(media);
            }
            Err(Err(e)) => {
                let gql = strata_graphql::domain_error(e);
                outcome("unavailable");
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    media,
                    &error_body("INTERNAL", &gql.message),
                );
            }
        };
        if let Some(ctx) = rs.context() {
            let span = tracing::Span::current();
            span.record("tenant.org_id", tracing::field::display(ctx.org_id()));
            span.record("tenant.org_type", ctx.org_type().as_str());
        }
        let caller = caller(&rs);
        if let Err(limited) = state.limiter.check(&caller, 1).await {
            tracing::info!(scope = limited.scope, "rate limited");
            outcome("rate_limited");
            return rate_limited(media, &limited);
        }
        let read = match body {
            Pending::Read(incoming) => Ok(incoming),
            Pending::Unread(body) => {
                http::read(&parts.method, headers, parts.uri.query(), body, &limits).await
            }
        };
        let incoming = match read {
            Ok(i) => i,
            Err(refusal) => {
                tracing::info!(reason = %refusal.message, "unreadable graphql request");
                outcome("bad_request");
                return refusal_response(media, refusal);
            }
        };
        let is_get = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
        let batched = matches!(incoming, Incoming::Batch(_));
        let mut requests = match incoming {
            Incoming::Single(r) => vec![*r],
            Incoming::Batch(v) => v,
        };
        let cost = u32::try_from(requests.len()).unwrap_or(u32::MAX);
        if state.limiter.max_cost().is_some_and(|max| cost > max) {
            outcome("bad_request");
            return refusal_response(
                media,
                Refusal {
                    status: StatusCode::BAD_REQUEST,
                    code: "QUERY_TOO_COMPLEX",
                    message: format!(
                        "the batch has {cost} operations, more than the rate limit ever allows at once"
                    ),
                },
            );
        }
        // A batch costs one request per operation: the rest of it now.
        if cost > 1
            && let Err(limited) = state.limiter.check(&caller, cost - 1).await
        {
            tracing::info!(scope = limited.scope, "rate limited");
            outcome("rate_limited");
            return rate_limited(media, &limited);
        }
        // New persisted documents are kept only after the request is found
        // valid.
        let mut prepared = Vec::with_capacity(requests.len());
        for r in &mut requests {
            prepared.push(state.documents.resolve(r).await);
        }
        if is_get
            && requests.first().is_some_and(http::is_unsafe_over_get)
        {
            outcome("bad_request");
            let mut resp = refusal_response(
                media,
                Refusal {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    code: "BAD_USER_INPUT",
                    message: "mutations and subscriptions are not run over GET: use POST (or the WebSocket for subscriptions)".into(),
                },
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return resp;
        }
        // One deadline for the whole request, batches included; waiting for
        // the organization's turn counts against it.
        let deadline = tokio::time::Instant::now() + state.http.request_timeout;
        let org = rs.context().map(|c| c.org_id().as_uuid());
        let Some(_turn) = state.gates.enter(org, deadline).await else {
            outcome("timeout");
            let timeout = state.http.request_timeout;
            return json_response(
                StatusCode::GATEWAY_TIMEOUT,
                media,
                &Answer::TimedOut.body(timeout),
            );
        };
        let mut answers: Vec<Answer> = Vec::with_capacity(requests.len());
        let mut first = Some(rs.clone());
        for (request, prepared) in requests.into_iter().zip(prepared) {
            // Each operation of a batch runs in its own transaction, as if
            // sent alone.
            let op_state = first.take().unwrap_or_else(|| rs.sibling());
            let answer = match prepared {
                Err(e) => Answer::RequestError(document_error(&e)),
                Ok(_) if tokio::time::Instant::now() >= deadline => Answer::TimedOut,
                Ok(registration) => {
                    let answer = execute(&state, op_state, request, deadline).await;
                    if let (Answer::Result(_), Some(registration)) = (&answer, registration) {
                        // Each new key is charged to its sender and its
                        // organization; past that, the query ran but is
                        // not kept.
                        match state.registrations.check(&caller, 1).await {
                            Ok(()) => state.documents.register(registration).await,
                            Err(limited) => {
                                tracing::info!(scope = limited.scope, "persisted query not kept");
                                metrics::counter!("strata_persisted_queries_not_kept_total", "reason" => "rate")
                                    .increment(1);
                            }
                        }
                    }
                    answer
                }
            };
            outcome(answer.outcome());
            answers.push(answer);
        }
        if batched {
            let timeout = state.http.request_timeout;
            let body: Vec<AnswerBody<'_>> = answers.iter().map(|a| a.body(timeout)).collect();
            return capped_response(StatusCode::OK, media, &body, state.http.max_response_bytes);
        }
        let Some(answer) = answers.pop() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let status = match &answer {
            Answer::RequestError(_) if media == http::GRAPHQL_RESPONSE => StatusCode::BAD_REQUEST,
            Answer::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::OK,
        };
        capped_response(
            status,
            media,
            &answer.body(state.http.request_timeout),
            state.http.max_response_bytes,
        )
    }
    .instrument(span)
    .await;
    metrics::histogram!("strata_graphql_request_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    response
}

/// What became of one operation.
enum Answer {
    /// It ran (possibly with field errors).
    Result(async_graphql::Response),
    /// Nothing ran: the document was refused before execution (does not
    /// parse or validate, breaks a limit, unknown persisted query).
    RequestError(async_graphql::Response),
    /// It ran but its transaction did not commit: nothing it did stands.
    Failed(async_graphql::Response),
    /// It ran out of time and was rolled back, or was not started because
    /// the request's time was up.
    TimedOut,
}

impl Answer {
    fn outcome(&self) -> &'static str {
        match self {
            Answer::Result(r) if r.errors.is_empty() => "ok",
            Answer::Result(_) | Answer::Failed(_) => "error",
            Answer::RequestError(_) => "bad_request",
            Answer::TimedOut => "timeout",
        }
    }

    /// The response body. A request error has no `data` entry at all, as
    /// the GraphQL-over-HTTP specification asks. Serialized straight from
    /// the response, never through an intermediate JSON tree.
    fn body(&self, timeout: Duration) -> AnswerBody<'_> {
        AnswerBody {
            answer: self,
            timeout,
        }
    }
}

struct AnswerBody<'a> {
    answer: &'a Answer,
    timeout: Duration,
}

impl serde::Serialize for AnswerBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.answer {
            Answer::Result(r) | Answer::Failed(r) => r.serialize(serializer),
            Answer::RequestError(r) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("errors", &r.errors)?;
                map.end()
            }
            Answer::TimedOut => error_body(
                "QUERY_TOO_COMPLEX",
                &format!(
                    "the request took longer than the {} ms allowed and was rolled back: ask for less",
                    self.timeout.as_millis()
                ),
            )
            .serialize(serializer),
        }
    }
}

fn outcome(outcome: &'static str) {
    metrics::counter!("strata_graphql_requests_total", "outcome" => outcome).increment(1);
}

fn document_error(e: &DocumentError) -> async_graphql::Response {
    // Clients recognise PersistedQueryNotFound by its message and then send
    // the text; the code stays one of the contract's.
    let mut err = ServerError::new(e.to_string(), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    err.extensions = Some(ext);
    async_graphql::Response::from_errors(vec![err])
}

/// Runs one operation until `deadline`, then commits and acts on what
/// committed. A timed-out operation is rolled back.
async fn execute(
    state: &AppState,
    rs: RequestState,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
) -> Answer {
    let mut request = request;
    state.parsed.prepare(&mut request);
    if let Err(err) = strata_graphql::check_shape(&state.limits, &mut request) {
        let mut resp = async_graphql::Response::from_errors(vec![err]);
        ensure_codes(&mut resp.errors);
        return Answer::RequestError(resp);
    }
    let operation = request.operation_name.clone();
    let introspection = request
        .parsed_query()
        .is_ok_and(|doc| strata_graphql::is_introspection_only(doc, operation.as_deref()));
    let schema = if introspection {
        &state.introspection_schema
    } else {
        &state.schema
    };
    let run = schema.execute(request.data(rs.clone()));
    let mut resp = match tokio::time::timeout_at(deadline, run).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(
                timeout_ms = state.http.request_timeout.as_millis() as u64,
                "request timed out"
            );
            tokio::spawn(async move { rs.abort().await });
            return Answer::TimedOut;
        }
    };
    let request_error = http::is_request_error(&resp);
    match rs.finish().await {
        Ok(committed) => after_commit(state, &rs, committed).await,
        Err(e) => {
            // The transaction did not commit: nothing it did may be
            // reported as done.
            let gql = strata_graphql::domain_error(e);
            let mut failed = async_graphql::Response::from_errors(vec![ServerError::new(
                gql.message.clone(),
                None,
            )]);
            failed.errors[0].extensions = gql.extensions;
            failed.data = Value::Null;
            ensure_codes(&mut failed.errors);
            return Answer::Failed(failed);
        }
    }
    ensure_codes(&mut resp.errors);
    if request_error {
        Answer::RequestError(resp)
    } else {
        Answer::Result(resp)
    }
}

async fn graphql_ws(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Subscriptions authenticate like HTTP requests: with the upgrade
    // request's Authorization header, or with `Authorization` (or `token`)
    // in the `connection_init` payload. Until one succeeds, nothing runs.
    let client_ip = state.client_address(
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        &headers,
    );
    upgrade
        .protocols(["graphql-transport-ws"])
        .on_upgrade(move |socket| crate::socket::serve(socket, state, headers, client_ip))
}
