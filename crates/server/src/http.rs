//! GraphQL over HTTP: reading requests and choosing responses' media type
//! and status, following the GraphQL-over-HTTP specification.
//!
//! - `GET /graphql?query=...&variables=...` (and `HEAD`) runs queries only; a mutation
//!   over GET is 405 (GET must be safe: links, prefetchers and caches follow
//!   it).
//! - `POST /graphql` takes `application/json` (a request, or a JSON array of
//!   them when batching is on); any other content type is 415.
//! - Responses are `application/graphql-response+json` when the client
//!   accepts it, else `application/json`; with the former a request that
//!   fails before execution (unparseable, invalid) is 400, with the latter
//!   200, as the specification says for each.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use strata_graphql::ErrorCode;

/// The GraphQL-over-HTTP response media type.
pub const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
/// The legacy response media type.
pub const JSON: &str = "application/json";

/// A request the gateway will not read, and the answer it gets.
#[derive(Debug)]
pub struct Refusal {
    /// HTTP status.
    pub status: StatusCode,
    /// `extensions.code`.
    pub code: ErrorCode,
    /// A message that says what to change.
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, message)
    }
}

/// What a client sent: one operation or a batch.
#[derive(Debug)]
pub enum Incoming {
    /// One operation.
    Single(Box<async_graphql::Request>),
    /// Several, answered by a JSON array in the same order.
    Batch(Vec<async_graphql::Request>),
}

impl Incoming {
    /// How many operations.
    pub fn len(&self) -> usize {
        match self {
            Incoming::Single(_) => 1,
            Incoming::Batch(v) => v.len(),
        }
    }

    /// Whether there is none (an empty batch).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The media type to answer with, or 406 when the client accepts neither.
pub fn response_type(headers: &HeaderMap) -> Result<&'static str, Refusal> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    if accept.trim().is_empty() {
        return Ok(JSON);
    }
    // Each type's quality is that of the most specific range naming it
    // (RFC 9110, 12.5.1); the higher wins, GraphQL's own type on a tie.
    // `*/*` and `application/*` stand for the legacy type only: a client
    // that names neither gets what every client understands.
    let mut graphql: Option<(u8, f32)> = None;
    let mut json: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                let p = p.trim().to_ascii_lowercase();
                p.strip_prefix("q=")
                    .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            })
            .next_back()
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        let (slot, specificity) = match media.as_str() {
            GRAPHQL_RESPONSE => (&mut graphql, 3),
            JSON => (&mut json, 3),
            "application/*" => (&mut json, 2),
            "*/*" => (&mut json, 1),
            _ => continue,
        };
        match slot {
            Some((s, current)) if *s > specificity => {}
            Some((s, current)) if *s == specificity => *current = current.max(q),
            _ => *slot = Some((specificity, q)),
        }
    }
    let quality = |t: Option<(u8, f32)>| t.map_or(0.0, |(_, q)| q);
    let (g, j) = (quality(graphql), quality(json));
    if g > 0.0 && g >= j {
        Ok(GRAPHQL_RESPONSE)
    } else if j > 0.0 {
        Ok(JSON)
    } else {
        Err(Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            ErrorCode::BadUserInput,
            format!("responses are {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither"),
        ))
    }
}

/// Bounds on reading a request body.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Most operations in a batch; 0 turns batching off.
    pub max_batch: usize,
    /// Longest the whole body may take to arrive.
    pub read_timeout: std::time::Duration,
}

/// Reads a GraphQL request from an HTTP request, within `limits`: a body
/// larger than allowed is 413, one that has not fully arrived in time
/// (sent a byte at a time, to hold the connection) is 408.
pub async fn read(
    method: &Method,
    headers: &HeaderMap,
    query_string: Option<&str>,
    body: Body,
    limits: &BodyLimits,
) -> Result<Incoming, Refusal> {
    if *method == Method::GET || *method == Method::HEAD {
        return read_get(query_string.unwrap_or("")).map(|r| Incoming::Single(Box::new(r)));
    }
    let max_body = limits.max_bytes;
    check_content_type(headers)?;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::QueryTooComplex,
            format!("the request body is larger than {max_body} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(limits.read_timeout, axum::body::to_bytes(body, max_body));
    let Ok(read) = read.await else {
        return Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BadUserInput,
            format!(
                "the request body did not arrive within {} ms: send it at once",
                limits.read_timeout.as_millis()
            ),
        ));
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if limit {
                too_large()
            } else {
                Refusal::bad("the request body could not be read")
            });
        }
    };
    parse_body(&bytes, limits.max_batch)
}

fn check_content_type(headers: &HeaderMap) -> Result<(), Refusal> {
    let unsupported = || {
        Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "POST /graphql takes a JSON body: send 'Content-Type: application/json'",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case(JSON) {
        return Err(unsupported());
    }
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim().eq_ignore_ascii_case("charset")
            && !v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported());
        }
    }
    Ok(())
}

fn parse_body(bytes: &[u8], max_batch: usize) -> Result<Incoming, Refusal> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        if max_batch == 0 {
            return Err(Refusal::bad(
                "batched requests are turned off: send one operation per request",
            ));
        }
        let batch: Vec<async_graphql::Request> =
            serde_json::from_slice(bytes).map_err(|e| not_a_request(&e))?;
        if batch.is_empty() {
            return Err(Refusal::bad("the batch is empty"));
        }
        if batch.len() > max_batch {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::QueryTooComplex,
                format!(
                    "the batch has {} operations; at most {max_batch} are allowed",
                    batch.len()
                ),
            ));
        }
        return Ok(Incoming::Batch(batch));
    }
    let request: async_graphql::Request =
        serde_json::from_slice(bytes).map_err(|e| not_a_request(&e))?;
    Ok(Incoming::Single(Box::new(request)))
}

fn not_a_request(e: &serde_json::Error) -> Refusal {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "the body is not valid JSON (UTF-8)",
        Category::Data => {
            "the body is not a GraphQL request: expected {\"query\": string, \"variables\"?: object, \"operationName\"?: string}"
        }
    };
    Refusal::bad(format!("{what} (line {}, column {})", e.line(), e.column()))
}

fn read_get(query_string: &str) -> Result<async_graphql::Request, Refusal> {
    let mut json = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let value = match k.as_ref() {
            "query" | "operationName" => serde_json::Value::String(v.into_owned()),
            "variables" | "extensions" => serde_json::from_str(&v)
                .map_err(|_| Refusal::bad(format!("the '{k}' parameter is not a JSON object")))?,
            _ => continue,
        };
        if json.insert(k.into_owned(), value).is_some() {
            return Err(Refusal::bad("a parameter is given twice"));
        }
    }
    serde_json::from_value(serde_json::Value::Object(json))
        .map_err(|_| Refusal::bad("the parameters are not a GraphQL request"))
}

/// Whether the operation a GET request would run is a mutation (or a
/// subscription): those are refused over GET. A document that does not
/// parse is left to the executor, which explains what is wrong.
pub fn is_unsafe_over_get(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::OperationType;
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    matches!(
        strata_graphql::operation_type(&doc, request.operation_name.as_deref()),
        Some(OperationType::Mutation | OperationType::Subscription)
    )
}

/// Whether a response reports a request error (nothing executed: the
/// document did not parse or validate, or a limit refused it) rather than
/// a result, possibly partial.
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, v.parse().unwrap());
        h
    }

    #[test]
    fn the_response_type_follows_accept() {
        assert_eq!(response_type(&HeaderMap::new()).unwrap(), JSON);
        assert_eq!(response_type(&accept("*/*")).unwrap(), JSON);
        assert_eq!(
            response_type(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            ))
            .unwrap(),
            GRAPHQL_RESPONSE
        );
        assert_eq!(
            response_type(&accept(
                "application/graphql-response+json;q=0, application/json"
            ))
            .unwrap(),
            JSON
        );
        assert_eq!(
            response_type(&accept("text/html")).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn the_highest_quality_wins_and_zero_is_not_acceptable() {
        let t = |v: &str| response_type(&accept(v));
        assert_eq!(
            t("application/json, application/graphql-response+json;q=0.5").unwrap(),
            JSON
        );
        assert_eq!(
            t("application/json;q=0.4, application/graphql-response+json;q=0.5").unwrap(),
            GRAPHQL_RESPONSE
        );
        // Equal: GraphQL's own type.
        assert_eq!(
            t("application/json;q=0.8, application/graphql-response+json;q=0.8").unwrap(),
            GRAPHQL_RESPONSE
        );
        // The most specific range decides: JSON is refused although */* is
        // welcome.
        assert_eq!(
            t("*/*;q=0.9, application/json;q=0").unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        assert_eq!(t("application/*;q=0.3, */*;q=0").unwrap(), JSON);
        assert_eq!(
            t("application/graphql-response+json;q=0.1, */*;q=0.9").unwrap(),
            JSON
        );
        assert_eq!(
            t("application/graphql-response+json;q=0")
                .unwrap_err()
                .status,
            StatusCode::NOT_ACCEPTABLE
        );
        // Spelling: case, spaces, a malformed q counts as zero.
        assert_eq!(
            t("Application/JSON; Q=0.2 , application/graphql-response+json ; q=0.1").unwrap(),
            JSON
        );
        assert_eq!(
            t("application/graphql-response+json;q=x, application/json").unwrap(),
            JSON
        );
    }

    #[test]
    fn get_parameters_become_a_request_and_mutations_are_unsafe() {
        let r = read_get("query=mutation%20%7B%20x%20%7D").unwrap();
        assert!(is_unsafe_over_get(&r));
        let r = read_get("query=%7B%20me%20%7B%20role%20%7D%20%7D&variables=%7B%7D").unwrap();
        assert!(!is_unsafe_over_get(&r));
        let r = read_get("query=query%20A%7Bme%7Bx%7D%7D%20mutation%20B%7Bx%7D&operationName=B")
            .unwrap();
        assert!(is_unsafe_over_get(&r));
        assert!(read_get("query=x&variables=notjson").is_err());
    }

    #[test]
    fn bodies_are_single_requests_or_bounded_batches() {
        assert!(matches!(
            parse_body(br#"{"query":"{ me { role } }"}"#, 0).unwrap(),
            Incoming::Single(_)
        ));
        assert_eq!(
            parse_body(br#"[{"query":"{a}"}]"#, 0).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_body(br#"[{"query":"{a}"},{"query":"{b}"}]"#, 2)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_body(br#"[{"query":"{a}"},{"query":"{b}"}]"#, 1)
                .unwrap_err()
                .code,
            ErrorCode::QueryTooComplex
        );
        assert_eq!(
            parse_body(b"{\"query\": \"\xff\"}", 1).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            parse_body(b"{nope", 1).unwrap_err().code,
            ErrorCode::BadUserInput
        );
    }
}
