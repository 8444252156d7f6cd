//! HTTP routes. `router(state)` is the test seam: tests drive it in-process
//! or over a socket. `/graphql` itself is [`crate::pipeline`]; the WebSocket
//! is [`crate::socket`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use strata_domain::OrgId;
use strata_graphql::{Committed, RequestState, StrataSchema};
use strata_persistence::Db;
use strata_persistence::context::ResolveError;

use crate::auth::{AuthError, UserCache, Verifier};
use crate::config::HttpConfig;
use crate::documents::Documents;
use crate::ratelimit::{Caller, OrgGates, RateLimiter};

/// Shared, request-independent state. Nothing tenant-specific lives here.
#[derive(Clone)]
pub struct AppState {
    /// The pool.
    pub db: Db,
    /// The schema served over HTTP.
    pub schema: StrataSchema,
    /// What operations cost, read from the schema's SDL.
    pub cost: Arc<strata_graphql::cost::CostModel>,
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
    pub sessions: crate::sessions::SessionRevocations,
    /// How long resolved credentials are reused.
    pub auth_cache_ttl: Duration,
    /// With `--demo`: the demo users and their tokens, as JSON, for
    /// GraphiQL's user picker.
    pub demo: Option<Arc<str>>,
    /// Requests and database time per organization, for `/metrics`.
    pub tenants: Arc<crate::meters::TopTenants>,
    /// Shutdown, for WebSockets to close with 1001.
    pub drain: crate::serve::Drain,
    /// Data exports being written.
    pub exports: crate::exports::Exports,
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
        .route(
            "/graphql",
            get(crate::pipeline::graphql).post(crate::pipeline::graphql),
        )
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/exports/{id}", get(crate::exports::download))
        .merge(crate::graphiql::routes(state.demo.clone()))
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
    crate::meters::pool(state.db.status());
    let mut text = state.metrics.render();
    text.push_str(&state.tenants.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
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
            ResolveError::MfaRequired => Ok(AuthError::MfaRequired),
            ResolveError::SessionRevoked => Ok(AuthError::SessionRevoked),
            ResolveError::Domain(d) => Err(d),
        })?;
    let credential = strata_graphql::Credential {
        email: user.email.clone(),
        email_verified: user.email_verified == Some(true),
        name: user.name.clone(),
        mfa: user.mfa,
    };
    Ok(RequestState::for_token(
        state.db.clone(),
        resolved,
        credential,
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
pub(crate) async fn after_commit(state: &AppState, rs: &RequestState, committed: Vec<Committed>) {
    for event in committed {
        match event {
            // A changed or removed membership takes effect at once here;
            // other processes see it within the cache's time-to-live.
            Committed::MembershipChanged(user) => {
                state.users.invalidate_user(user).await;
                state.revocations.bump();
            }
            Committed::ApiKeyRevoked => state.revocations.bump(),
            Committed::SessionsRevoked(user) => {
                state.users.invalidate_user(user).await;
                state.revocations.bump();
                state
                    .sessions
                    .publish(crate::sessions::Forget::User(user))
                    .await;
            }
            Committed::PolicyChanged(org) => {
                state.users.invalidate_org(org).await;
                state.revocations.bump();
                state
                    .sessions
                    .publish(crate::sessions::Forget::Org(org))
                    .await;
            }
            Committed::RunQueued(run) => {
                if let Some(ctx) = rs.context() {
                    state.runner.start(ctx.clone(), *run);
                }
            }
            Committed::RunCancelled(id) => state.runner.cancel(id),
            Committed::ExportStarted(export) => {
                if let Some(ctx) = rs.context() {
                    state.exports.start(ctx.clone(), *export);
                }
            }
        }
    }
}

pub(crate) fn caller(rs: &RequestState) -> Caller {
    let ctx = rs.context();
    Caller {
        api_key: ctx.and_then(|c| match c.actor() {
            strata_domain::Actor::ApiKey(id) => Some(id.as_uuid()),
            strata_domain::Actor::User(_) | strata_domain::Actor::System => None,
        }),
        user: rs.user_id().map(|u| u.as_uuid()),
        org: ctx.map(|c| c.org_id().as_uuid()),
        key_rate: ctx
            .and_then(|c| c.key_rate_per_minute())
            .map(|n| crate::ratelimit::Rate::per(n, std::time::Duration::from_secs(60))),
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
    if state.drain.is_stopping() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
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
