//! `POST /graphql` and `GET /graphql` as a pipeline of stages: negotiate
//! the answer's media type, admit the caller (authenticate and charge it),
//! read its operations, prepare them (persisted documents, `GET` safety),
//! take the organization's turn, run them. Each stage either hands the next
//! what it needs or stops the request with a `Rejection`, which carries
//! its status, its stable [`ErrorCode`] and the outcome the metrics record;
//! the outcome of every request is recorded in one place, `graphql`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_graphql::{ErrorExtensionValues, ServerError, Value};
use axum::extract::{ConnectInfo, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strata_graphql::{ErrorCode, RequestState};
use tracing::Instrument;

use crate::documents::{DocumentError, Registration};
use crate::http::{self, Incoming, Refusal};
use crate::ratelimit::{Caller, Limited};
use crate::routes::{AppState, after_commit, authenticate, caller, request_id};

/// What a request's outcome is counted as in
/// `strata_graphql_requests_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Ran without errors.
    Ok,
    /// Ran with errors, or did not commit.
    Error,
    /// Refused as written: unreadable, invalid, over a limit.
    BadRequest,
    /// Refused by a rate limit or the address block.
    RateLimited,
    /// No valid credential.
    Unauthenticated,
    /// A dependency (the database) could not be asked.
    Unavailable,
    /// Out of time.
    Timeout,
    /// The answer was larger than a response may be.
    TooLarge,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::BadRequest => "bad_request",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::TooLarge => "too_large",
        }
    }
}

/// Why a request stopped before any of its operations ran.
#[derive(Debug)]
pub(crate) struct Rejection {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    outcome: Outcome,
    /// Seconds until a retry may pass (`Retry-After`, `retryAfter`).
    retry_after: Option<u64>,
    /// Extra headers the status calls for (`WWW-Authenticate`, `Allow`).
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            outcome,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn unauthenticated() -> Self {
        let mut r = Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "authentication required: send a valid token or API key for an organization you belong to in 'Authorization: Bearer ...'",
            Outcome::Unauthenticated,
        );
        r.headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        r
    }

    fn limited(limited: &Limited) -> Self {
        crate::meters::rate_limited(limited.scope, "http");
        let secs = limited.retry_after_secs();
        tracing::info!(scope = limited.scope, "rate limited");
        let mut r = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "rate limit of this {} exceeded: retry in {secs} s",
                limited.scope
            ),
            Outcome::RateLimited,
        );
        r.retry_after = Some(secs);
        r
    }

    fn unreadable(refusal: Refusal) -> Self {
        tracing::info!(reason = %refusal.message, "unreadable graphql request");
        Self::new(
            refusal.status,
            refusal.code,
            refusal.message,
            Outcome::BadRequest,
        )
    }

    pub(crate) fn into_response(self, media: &'static str) -> Response {
        let mut ext = serde_json::json!({ "code": self.code.as_str() });
        if let (Some(secs), Some(map)) = (self.retry_after, ext.as_object_mut()) {
            map.insert("retryAfter".into(), secs.into());
        }
        let body =
            serde_json::json!({ "errors": [{ "message": self.message, "extensions": ext }] });
        let mut resp = json_response(self.status, media, &body);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}

/// The `/graphql` handler: runs the pipeline inside the request's span and
/// records its outcome and duration.
pub(crate) async fn graphql(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let span = tracing::info_span!(
        "graphql",
        request.id = %request_id,
        tenant.org_id = tracing::field::Empty,
        tenant.org_type = tracing::field::Empty,
        tenant.client_id = tracing::field::Empty,
        otel.name = %format_args!("{} /graphql", parts.method),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %parts.method,
        url.path = "/graphql",
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, &parts.headers);
    let mut tally = Tally::default();
    let response = async {
        let media = match http::response_type(&parts.headers) {
            Ok(m) => m,
            Err(refusal) => {
                let r = Rejection::unreadable(refusal);
                tally.refused(r.outcome);
                return r.into_response(http::JSON);
            }
        };
        match serve(&state, &parts, body, &request_id, &mut tally).await {
            Ok(served) => served.into_response(&state, media, &mut tally),
            Err(r) => {
                tally.refused(r.outcome);
                r.into_response(media)
            }
        }
    }
    .instrument(span.clone())
    .await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    tally.record(&state, started.elapsed());
    response
}

/// What a request is counted as: its organization, once known, and each
/// operation's outcome, name and time.
#[derive(Debug, Default)]
struct Tally {
    org: Option<(strata_domain::OrgId, &'static str)>,
    /// Outcome, operation label, time (none: the whole request's).
    ops: Vec<(Outcome, String, Option<Duration>)>,
}

impl Tally {
    /// The request was refused before any operation ran.
    fn refused(&mut self, outcome: Outcome) {
        self.ops = vec![(outcome, "none".to_owned(), None)];
    }

    /// Records the request's metrics, in one place.
    fn record(self, state: &AppState, elapsed: Duration) {
        let org_type = self.org.map_or("none", |(_, t)| t);
        for (outcome, operation, time) in self.ops {
            metrics::counter!("strata_graphql_requests_total", "outcome" => outcome.as_str())
                .increment(1);
            metrics::counter!(
                "strata_graphql_operations_total",
                "operation" => operation.clone(),
                "org_type" => org_type,
                "outcome" => outcome.as_str()
            )
            .increment(1);
            metrics::histogram!(
                "strata_graphql_operation_duration_seconds",
                "operation" => operation,
                "org_type" => org_type
            )
            .record(time.unwrap_or(elapsed).as_secs_f64());
        }
        metrics::histogram!("strata_graphql_request_duration_seconds")
            .record(elapsed.as_secs_f64());
        if let Some((org, _)) = self.org {
            state.tenants.request(org);
        }
    }
}

/// What a request's operations answered.
struct Served {
    batched: bool,
    answers: Vec<Answer>,
    /// Each answer's operation label and time.
    ran: Vec<(String, Option<Duration>)>,
}

impl Served {
    fn into_response(self, state: &AppState, media: &'static str, tally: &mut Tally) -> Response {
        let timeout = state.http.request_timeout;
        let cap = state.http.max_response_bytes;
        tally.ops = self
            .answers
            .iter()
            .zip(self.ran)
            .map(|(a, (op, time))| (a.outcome(), op, time))
            .collect();
        let resp = if self.batched {
            let body: Vec<AnswerBody<'_>> = self.answers.iter().map(|a| a.body(timeout)).collect();
            capped_response(StatusCode::OK, media, &body, cap)
        } else {
            let Some(answer) = self.answers.first() else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            let status = match answer {
                Answer::RequestError(_) if media == http::GRAPHQL_RESPONSE => {
                    StatusCode::BAD_REQUEST
                }
                Answer::TimedOut => StatusCode::GATEWAY_TIMEOUT,
                Answer::Limited(..) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::OK,
            };
            let resp = capped_response(status, media, &answer.body(timeout), cap);
            match (answer, resp) {
                (Answer::Limited(_, secs), Ok(mut resp)) => {
                    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                        resp.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    Ok(resp)
                }
                (_, resp) => resp,
            }
        };
        match resp {
            Ok(resp) => resp,
            Err(r) => {
                for op in &mut tally.ops {
                    op.0 = r.outcome;
                }
                r.into_response(media)
            }
        }
    }
}

/// The stages, in order.
async fn serve(
    state: &AppState,
    parts: &Parts,
    body: axum::body::Body,
    request_id: &str,
    tally: &mut Tally,
) -> Result<Served, Rejection> {
    let (rs, incoming) = admit(state, parts, body, request_id).await?;
    tally.org = rs.context().map(|c| (c.org_id(), c.org_type().as_str()));
    let who = caller(&rs);
    let (batched, mut requests) = operations(state, &who, incoming).await?;
    let prepared = prepare(state, parts, &who, &mut requests).await?;
    // One deadline for the whole request, batches included; waiting for
    // the organization's turn counts against it.
    let deadline = tokio::time::Instant::now() + state.http.request_timeout;
    let org = rs.context().map(|c| c.org_id().as_uuid());
    let Some(_turn) = state.gates.enter(org, deadline).await else {
        return Ok(Served {
            batched: false,
            answers: vec![Answer::TimedOut],
            ran: vec![(label(requests.first()), None)],
        });
    };
    let (answers, ran) = run(state, &rs, &who, requests, prepared, deadline).await;
    Ok(Served {
        batched,
        answers,
        ran,
    })
}

/// A request's body: already read (requests without a credential are read
/// before they are refused as unauthenticated), or still to be read.
enum Pending {
    Read(Incoming),
    Unread(axum::body::Body),
}

/// Authenticates the caller and charges it one request, then reads the
/// body. A request without any credential is answered as GraphQL over HTTP
/// says (400, 413, 415, 405...) before the 401, and a refused one counts
/// against its address like a failed login, so anonymous junk is not free
/// either. A caller with a credential is charged before its body is read:
/// a body that is refused costs its sender like any other request.
async fn admit(
    state: &AppState,
    parts: &Parts,
    body: axum::body::Body,
    request_id: &str,
) -> Result<(RequestState, Incoming), Rejection> {
    let headers = &parts.headers;
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client_ip = state.client_address(peer, headers);
    let limits = body_limits(state);
    let body = if headers.contains_key(header::AUTHORIZATION) {
        Pending::Unread(body)
    } else {
        // The address block applies on the failure path only: a request
        // without a credential is one. A valid credential is never refused
        // because of its neighbours' failures (behind a proxy every client
        // may share one address).
        state
            .limiter
            .check_address(client_ip)
            .map_err(|l| Rejection::limited(&l))?;
        match http::read(&parts.method, headers, parts.uri.query(), body, &limits).await {
            Ok(incoming) => Pending::Read(incoming),
            Err(refusal) => {
                state.limiter.authentication_failed(client_ip);
                return Err(Rejection::unreadable(refusal));
            }
        }
    };
    let rs = credential(state, headers, client_ip, request_id).await?;
    let incoming = match body {
        Pending::Read(incoming) => incoming,
        Pending::Unread(body) => {
            http::read(&parts.method, headers, parts.uri.query(), body, &limits)
                .await
                .map_err(Rejection::unreadable)?
        }
    };
    Ok((rs, incoming))
}

/// Resolves the request's credential (`Authorization`) and charges the
/// caller one request: a refused credential counts against its address
/// like a failed login. `/graphql` and the export downloads admit their
/// callers through it.
pub(crate) async fn credential(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: Option<std::net::IpAddr>,
    request_id: &str,
) -> Result<RequestState, Rejection> {
    let rs = match authenticate(state, headers, request_id).await {
        Ok(rs) => rs,
        Err(Ok(reason)) => {
            tracing::info!(reason = %reason, "authentication failed");
            crate::meters::auth_failed(reason.class(), "http");
            state
                .limiter
                .check_address(client_ip)
                .map_err(|l| Rejection::limited(&l))?;
            if matches!(reason, crate::auth::AuthError::MfaRequired) {
                // The credential is good; the organization wants more of it.
                return Err(Rejection::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::MfaRequired,
                    "this organization requires multi-factor authentication: sign in again with a second factor",
                    Outcome::Unauthenticated,
                ));
            }
            state.limiter.authentication_failed(client_ip);
            return Err(Rejection::unauthenticated());
        }
        Err(Err(e)) => {
            let gql = strata_graphql::domain_error(e);
            return Err(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                gql.message,
                Outcome::Unavailable,
            ));
        }
    };
    if let Some(ctx) = rs.context() {
        let span = tracing::Span::current();
        span.record("tenant.org_id", tracing::field::display(ctx.org_id()));
        span.record("tenant.org_type", ctx.org_type().as_str());
        if let strata_domain::ClientScope::Only(ids) = ctx.clients()
            && let [client] = ids.as_slice()
        {
            span.record("tenant.client_id", tracing::field::display(client));
        }
    }
    state
        .limiter
        .check(&caller(&rs), 1)
        .await
        .map_err(|l| Rejection::limited(&l))?;
    Ok(rs)
}

fn body_limits(state: &AppState) -> http::BodyLimits {
    http::BodyLimits {
        max_bytes: state.http.max_body_bytes,
        max_batch: state.http.max_batch,
        read_timeout: state.http.body_read_timeout,
    }
}

/// The request's operations; a batch is charged one request per operation
/// (the first was charged on admission).
async fn operations(
    state: &AppState,
    who: &Caller,
    incoming: Incoming,
) -> Result<(bool, Vec<async_graphql::Request>), Rejection> {
    let batched = matches!(incoming, Incoming::Batch(_));
    let requests = match incoming {
        Incoming::Single(r) => vec![*r],
        Incoming::Batch(v) => v,
    };
    let cost = u32::try_from(requests.len()).unwrap_or(u32::MAX);
    if state
        .limiter
        .max_cost_for(who)
        .is_some_and(|max| cost > max)
    {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::QueryTooComplex,
            format!(
                "the batch has {cost} operations, more than the rate limit ever allows at once"
            ),
            Outcome::BadRequest,
        ));
    }
    if cost > 1 {
        state
            .limiter
            .check(who, cost - 1)
            .await
            .map_err(|l| Rejection::limited(&l))?;
    }
    Ok((batched, requests))
}

/// Fills in persisted documents (new ones are kept only once their request
/// proved valid) and refuses a mutation or subscription over `GET`.
async fn prepare(
    state: &AppState,
    parts: &Parts,
    who: &Caller,
    requests: &mut [async_graphql::Request],
) -> Result<Vec<Result<Option<Registration>, DocumentError>>, Rejection> {
    let mut prepared = Vec::with_capacity(requests.len());
    for r in requests.iter_mut() {
        prepared.push(state.documents.resolve(r, who.org).await);
    }
    let is_get =
        parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    if is_get && requests.first().is_some_and(http::is_unsafe_over_get) {
        let mut r = Rejection::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "mutations and subscriptions are not run over GET: use POST (or the WebSocket for subscriptions)",
            Outcome::BadRequest,
        );
        r.headers
            .push((header::ALLOW, HeaderValue::from_static("POST")));
        return Err(r);
    }
    Ok(prepared)
}

/// Runs each operation in its own transaction, as if sent alone, until the
/// request's deadline.
async fn run(
    state: &AppState,
    rs: &RequestState,
    who: &Caller,
    requests: Vec<async_graphql::Request>,
    prepared: Vec<Result<Option<Registration>, DocumentError>>,
    deadline: tokio::time::Instant,
) -> (Vec<Answer>, Vec<(String, Option<Duration>)>) {
    let mut answers = Vec::with_capacity(requests.len());
    let mut ran = Vec::with_capacity(requests.len());
    let mut first = Some(rs.clone());
    for (request, prepared) in requests.into_iter().zip(prepared) {
        let op_state = first.take().unwrap_or_else(|| rs.sibling());
        let mut operation = label(Some(&request));
        let began = Instant::now();
        let answer = match prepared {
            Err(e) => Answer::RequestError(document_error(&e)),
            Ok(_) if tokio::time::Instant::now() >= deadline => Answer::TimedOut,
            Ok(registration) => {
                let answer = execute(state, op_state, who, request, deadline, &mut operation).await;
                if let (Answer::Result(_), Some(registration)) = (&answer, registration) {
                    register(state, who, registration).await;
                }
                answer
            }
        };
        answers.push(answer);
        ran.push((operation, Some(began.elapsed())));
    }
    (answers, ran)
}

/// The metrics label of a request's operation, from its `operationName`
/// (see [`execute`] for documents without one).
fn label(request: Option<&async_graphql::Request>) -> String {
    crate::meters::operation_label(request.and_then(|r| r.operation_name.as_deref()))
}

/// The name of a parsed document's only operation, if it has one.
fn only_operation(doc: &async_graphql::parser::types::ExecutableDocument) -> Option<String> {
    match &doc.operations {
        async_graphql::parser::types::DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        _ => None,
    }
}

/// Keeps a new persisted query, charged to its sender and organization;
/// past their budget the query ran but is not kept.
async fn register(state: &AppState, who: &Caller, registration: Registration) {
    match state.registrations.check(who, 1).await {
        Ok(()) => state.documents.register(registration).await,
        Err(limited) => {
            tracing::info!(scope = limited.scope, "persisted query not kept");
            metrics::counter!("strata_persisted_queries_not_kept_total", "reason" => "rate")
                .increment(1);
        }
    }
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
    /// Its estimated cost was more than its caller's buckets held: nothing
    /// ran. Seconds until it would pass.
    Limited(async_graphql::Response, u64),
}

impl Answer {
    fn outcome(&self) -> Outcome {
        match self {
            Answer::Result(r) if r.errors.is_empty() => Outcome::Ok,
            Answer::Result(_) | Answer::Failed(_) => Outcome::Error,
            Answer::RequestError(_) => Outcome::BadRequest,
            Answer::TimedOut => Outcome::Timeout,
            Answer::Limited(..) => Outcome::RateLimited,
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
            Answer::RequestError(r) | Answer::Limited(r, _) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("errors", &r.errors)?;
                map.end()
            }
            Answer::TimedOut => error_body(
                ErrorCode::QueryTooComplex,
                &format!(
                    "the request took longer than the {} ms allowed and was rolled back: ask for less",
                    self.timeout.as_millis()
                ),
            )
            .serialize(serializer),
        }
    }
}

fn error_body(code: ErrorCode, message: &str) -> serde_json::Value {
    serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] })
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
/// but refused with `QUERY_TOO_COMPLEX`, as soon as serialization passes
/// the cap (it is never held whole as bytes).
fn capped_response(
    status: StatusCode,
    media: &'static str,
    body: &impl serde::Serialize,
    cap: usize,
) -> Result<Response, Rejection> {
    let mut out = Capped {
        bytes: Vec::with_capacity(cap.min(16 * 1024)),
        cap,
    };
    match serde_json::to_writer(&mut out, body) {
        Ok(()) => Ok((status, [(header::CONTENT_TYPE, media)], out.bytes).into_response()),
        Err(e) if e.is_io() => {
            tracing::info!(max_bytes = cap, "answer larger than the response cap");
            Err(Rejection::new(
                StatusCode::OK,
                ErrorCode::QueryTooComplex,
                format!(
                    "the answer is larger than the {cap} bytes a response may hold: ask for less (smaller pages, fewer fields)"
                ),
                Outcome::TooLarge,
            ))
        }
        Err(_) => Ok(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
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

fn document_error(e: &DocumentError) -> async_graphql::Response {
    // Clients recognise PersistedQueryNotFound by its message and then send
    // the text; the code stays one of the contract's.
    let mut err = ServerError::new(e.to_string(), None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", ErrorCode::BadUserInput.as_str());
    err.extensions = Some(ext);
    async_graphql::Response::from_errors(vec![err])
}

/// Gives every error a stable code. Ours carry one already; async-graphql's
/// own carry none, and are told apart by where they come from, never by
/// their wording: an error with a path is a resolver's that escaped its
/// code (ours to fix, `INTERNAL`); a request error without a location is
/// one of the schema's depth or complexity limits (`QUERY_TOO_COMPLEX`:
/// async-graphql raises those for the document as a whole); one with a
/// location is a validation rule's (`BAD_USER_INPUT`). Parse errors and the
/// other shape limits are classified where they are raised
/// (`strata_graphql::check_shape`).
pub(crate) fn ensure_codes(errors: &mut [ServerError]) {
    for err in errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        // An argument the executor could not read (a null for a non-null
        // argument given through a nullable variable, a value out of a
        // scalar's range) is the caller's input, even under a path.
        let bad_argument = [
            "Failed to parse",
            "Expected input type",
            "Invalid value for argument",
        ]
        .iter()
        .any(|p| err.message.starts_with(p));
        let code = if bad_argument {
            ErrorCode::BadUserInput
        } else if !err.path.is_empty() {
            ErrorCode::Internal
        } else if err.locations.is_empty() {
            ErrorCode::QueryTooComplex
        } else {
            ErrorCode::BadUserInput
        };
        let mut ext = err.extensions.take().unwrap_or_default();
        ext.set("code", code.as_str());
        err.extensions = Some(ext);
    }
}

/// Charges an operation's estimated cost (the rows it reads, from the
/// schema's `@cost`/`@listSize`) to its caller's buckets, beyond the one
/// unit every operation was charged on admission: one expensive query
/// spends what a hundred cheap ones do. Free when no limit is on.
async fn charge(
    state: &AppState,
    who: &Caller,
    request: &mut async_graphql::Request,
) -> Result<(), Answer> {
    if !state.limiter.enabled() && who.key_rate.is_none() {
        return Ok(());
    }
    let variables = std::mem::take(&mut request.variables);
    let operation = request.operation_name.clone();
    let estimate = request
        .parsed_query()
        .map(|doc| state.cost.estimate(doc, operation.as_deref(), &variables))
        .unwrap_or(1);
    request.variables = variables;
    let cost = u32::try_from(estimate).unwrap_or(u32::MAX);
    let refusal = |code: ErrorCode, message: String, extra: &[(&str, Value)]| {
        let mut err = ServerError::new(message, None);
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", code.as_str());
        ext.set("cost", cost);
        for (k, v) in extra {
            ext.set(*k, v.clone());
        }
        err.extensions = Some(ext);
        async_graphql::Response::from_errors(vec![err])
    };
    if let Some(max) = state.limiter.max_cost_for(who)
        && cost > max
    {
        return Err(Answer::RequestError(refusal(
            ErrorCode::QueryTooComplex,
            format!(
                "this operation costs {cost} units (rows it may read), more than the rate limit ever allows at once ({max}): ask for less"
            ),
            &[],
        )));
    }
    if cost <= 1 {
        return Ok(());
    }
    match state.limiter.check(who, cost - 1).await {
        Ok(()) => Ok(()),
        Err(limited) => {
            let secs = limited.retry_after_secs();
            // One unit was charged on admission and is spent either way.
            let remaining = limited.remaining(cost - 1);
            tracing::info!(scope = limited.scope, cost, "rate limited by cost");
            Err(Answer::Limited(
                refusal(
                    ErrorCode::RateLimited,
                    format!(
                        "this operation costs {cost} units and this {}'s bucket holds {remaining} now: retry in {secs} s, or ask for less",
                        limited.scope
                    ),
                    &[
                        ("remaining", Value::from(remaining)),
                        ("retryAfter", Value::from(secs)),
                    ],
                ),
                secs,
            ))
        }
    }
}

/// Runs one operation until `deadline`, then commits and acts on what
/// committed. A timed-out operation is rolled back. A document sent
/// without `operationName` gets its only operation's name as `operation`
/// (the metrics label), once it passed the shape checks.
async fn execute(
    state: &AppState,
    rs: RequestState,
    who: &Caller,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
    operation: &mut String,
) -> Answer {
    let mut request = request;
    let checked =
        tracing::trace_span!("graphql.parse", otel.name = "graphql.parse").in_scope(|| {
            state.parsed.prepare(&mut request);
            strata_graphql::check_shape(&state.limits, &mut request)
        });
    if let Err(err) = checked {
        let mut resp = async_graphql::Response::from_errors(vec![err]);
        ensure_codes(&mut resp.errors);
        return Answer::RequestError(resp);
    }
    if let Err(refused) = charge(state, who, &mut request).await {
        return refused;
    }
    let operation_name = request.operation_name.clone();
    let mut kind = "query";
    let introspection = match request.parsed_query() {
        Ok(doc) => {
            if operation_name.is_none() {
                *operation = crate::meters::operation_label(only_operation(doc).as_deref());
            }
            kind = operation_type(doc, operation_name.as_deref());
            strata_graphql::is_introspection_only(doc, operation_name.as_deref())
        }
        Err(_) => false,
    };
    // GraphQL semantic conventions: `{type} {name}`, the name and type as
    // attributes (never the document or its variables).
    let op_span = tracing::trace_span!(
        "graphql.operation",
        otel.name = %format_args!("{kind} {operation}"),
        graphql.operation.name = %operation,
        graphql.operation.type = kind,
    );
    execute_operation(state, rs, request, deadline, introspection)
        .instrument(op_span)
        .await
}

/// The type of the operation `name` picks in `doc` (`query`, `mutation`,
/// `subscription`).
fn operation_type(
    doc: &async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> &'static str {
    use async_graphql::parser::types::{DocumentOperations, OperationType};
    let ty = match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) => ops.values().next().map(|op| op.node.ty),
    };
    match ty {
        Some(OperationType::Mutation) => "mutation",
        Some(OperationType::Subscription) => "subscription",
        _ => "query",
    }
}

/// Runs a checked operation, commits and acts on what committed.
async fn execute_operation(
    state: &AppState,
    rs: RequestState,
    request: async_graphql::Request,
    deadline: tokio::time::Instant,
    introspection: bool,
) -> Answer {
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
                timeout_ms =
                    u64::try_from(state.http.request_timeout.as_millis()).unwrap_or(u64::MAX),
                "request timed out"
            );
            let durable = rs.take_durable();
            after_commit(state, &rs, durable).await;
            tokio::spawn(async move { rs.abort().await });
            return Answer::TimedOut;
        }
    };
    let request_error = http::is_request_error(&resp);
    match rs.finish().await {
        Ok(committed) => after_commit(state, &rs, committed).await,
        Err(e) => {
            // The transaction did not commit: nothing it did may be
            // reported as done. What committed on its own did happen.
            after_commit(state, &rs, rs.take_durable()).await;
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
