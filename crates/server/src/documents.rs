//! Persisted documents: automatic persisted queries (a client sends the
//! SHA-256 of a query instead of its text once the server knows it), and an
//! allow-list mode that runs only operations registered in a manifest.
//!
//! Protocol (the one Apollo clients and most others speak): the request's
//! `extensions.persistedQuery` is `{"version": 1, "sha256Hash": "<hex>"}`.
//! A hash the server does not know answers `PersistedQueryNotFound`; the
//! client then sends hash and text together, and the server checks the hash
//! before it keeps the text.
//!
//! Automatic persisted queries are kept per organization: a hash another
//! tenant registered is unknown to everyone else, exactly like a hash
//! nobody registered (query texts may carry another tenant's ids or names,
//! and whether a text was sent is itself something to keep). A manifest's
//! operations, the deployment's own, are everyone's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_graphql::Value;
use sha2::{Digest, Sha256};

/// Why a request's document cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The hash is unknown here; send it again with the query text.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// Persisted queries are turned off.
    #[error("PersistedQueryNotSupported")]
    NotSupported,
    /// The hash does not match the query text, or is not a SHA-256.
    #[error("persistedQuery: the sha256Hash does not match the query")]
    HashMismatch,
    /// An unknown `persistedQuery` version or shape.
    #[error("persistedQuery: expected {{\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}}")]
    Malformed,
    /// Allow-list mode: not a registered operation.
    #[error("this server runs only registered operations, and this is not one of them")]
    NotAllowed,
    /// Neither a query nor a persisted query was sent.
    #[error("the request has no query")]
    Missing,
    /// The text is too long to be kept as a persisted query.
    #[error(
        "persistedQuery: documents longer than {MAX_PERSISTED} bytes are not persisted; send the text each time"
    )]
    TooLong,
}

/// A query to keep once the request that sent it has been authenticated,
/// charged and found valid: registration is never anonymous.
#[derive(Debug)]
pub struct Registration {
    key: String,
    text: Arc<str>,
}

/// Whose persisted queries a request reads and adds to: its organization's,
/// or those of requests without one.
fn scoped(scope: Option<uuid::Uuid>, hash: &str) -> String {
    match scope {
        Some(org) => format!("{org}:{hash}"),
        None => format!("-:{hash}"),
    }
}

/// The longest text kept as a persisted query.
pub const MAX_PERSISTED: usize = 64 * 1024;

/// The most bytes of comments and extra whitespace a document may carry and
/// still be kept: beyond this, padding would make a new key of the same
/// operation at will. Such a document runs, but is not kept.
pub const MAX_INSIGNIFICANT: usize = 2 * 1024;

/// Bytes of a GraphQL document that change nothing: comments, and
/// whitespace or commas beyond the one separator a token needs. Strings
/// and block strings are read over, not counted.
pub fn insignificant_bytes(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n' || b == b'\r')
                    .map_or(bytes.len(), |p| i + p);
                n += end - i;
                i = end;
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b',') {
                    i += 1;
                }
                n += i - start - 1;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    n
}

/// Where the text of persisted queries is kept.
pub struct Documents {
    /// Automatic persisted queries accepted (and registered by clients).
    apq: bool,
    /// Registered operations by id (their SHA-256, or the manifest's id).
    allow_list: Option<HashMap<String, Arc<str>>>,
    /// SHA-256 of every allow-listed body, for requests that send text.
    allowed_hashes: std::collections::HashSet<String>,
    cache: moka::future::Cache<String, Arc<str>>,
    redis: Option<redis::aio::ConnectionManager>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("apq", &self.apq)
            .field("allow_list", &self.allow_list.as_ref().map(HashMap::len))
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

/// How long a persisted query is kept after its last use.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Documents {
    /// Persisted queries as configured: `apq` turns automatic persisted
    /// queries on; `allow_list` names a manifest, and then only its
    /// operations run. With Redis, persisted queries are shared by replicas.
    pub fn new(
        apq: bool,
        allow_list: Option<&Path>,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> anyhow::Result<Self> {
        let allow_list = allow_list.map(load_manifest).transpose()?;
        let allowed_hashes = allow_list
            .iter()
            .flat_map(|m| m.values())
            .map(|body| sha256_hex(body))
            .collect();
        Ok(Self {
            apq,
            allow_list,
            allowed_hashes,
            // Weighed by text length: at most 32 MiB of query text.
            cache: moka::future::Cache::builder()
                .weigher(|k: &String, v: &Arc<str>| {
                    u32::try_from(k.len() + v.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(32 * 1024 * 1024)
                .time_to_idle(KEEP)
                .build(),
            redis,
        })
    }

    /// Whether only registered operations run.
    pub fn allow_list_mode(&self) -> bool {
        self.allow_list.is_some()
    }

    /// Fills in the text of a persisted query of `scope` (the caller's
    /// organization), or refuses the request. A new persisted query comes
    /// back as a [`Registration`], to be kept with [`Documents::register`]
    /// once the request has proven itself.
    pub async fn resolve(
        &self,
        request: &mut async_graphql::Request,
        scope: Option<uuid::Uuid>,
    ) -> Result<Option<Registration>, DocumentError> {
        let persisted = match request.extensions.get("persistedQuery") {
            None => None,
            Some(v) => Some(persisted_hash(v)?),
        };
        let has_text = !request.query.trim().is_empty();
        match (persisted, has_text) {
            (None, false) => Err(DocumentError::Missing),
            (None, true) => match &self.allow_list {
                None => Ok(None),
                Some(_) if self.allowed_hashes.contains(&sha256_hex(&request.query)) => Ok(None),
                Some(_) => Err(DocumentError::NotAllowed),
            },
            (Some(hash), true) => {
                if sha256_hex(&request.query) != hash {
                    return Err(DocumentError::HashMismatch);
                }
                if self.allow_list.is_some() {
                    return if self.allowed_hashes.contains(&hash) {
                        Ok(None)
                    } else {
                        Err(DocumentError::NotAllowed)
                    };
                }
                if !self.apq {
                    return Err(DocumentError::NotSupported);
                }
                if request.query.len() > MAX_PERSISTED {
                    return Err(DocumentError::TooLong);
                }
                if insignificant_bytes(&request.query) > MAX_INSIGNIFICANT {
                    metrics::counter!("strata_persisted_queries_not_kept_total", "reason" => "padding")
                        .increment(1);
                    return Ok(None);
                }
                Ok(Some(Registration {
                    key: scoped(scope, &hash),
                    text: Arc::from(request.query.as_str()),
                }))
            }
            (Some(hash), false) => {
                if let Some(list) = &self.allow_list {
                    return match list.get(&hash) {
                        Some(text) => {
                            request.query = text.to_string();
                            Ok(None)
                        }
                        None => Err(DocumentError::NotAllowed),
                    };
                }
                if !self.apq {
                    return Err(DocumentError::NotSupported);
                }
                match self.load(&scoped(scope, &hash), &hash).await {
                    Some(text) => {
                        request.query = text.to_string();
                        Ok(None)
                    }
                    None => Err(DocumentError::NotFound),
                }
            }
        }
    }

    /// Keeps a persisted query sent by a request that was authenticated and
    /// whose document was valid.
    pub async fn register(&self, registration: Registration) {
        self.store(registration.key, registration.text).await;
    }

    async fn store(&self, key: String, text: Arc<str>) {
        if let Some(redis) = &self.redis {
            let mut conn = redis.clone();
            let key = format!("strata:apq:{key}");
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key)
                .arg(text.as_ref())
                .arg("EX")
                .arg(KEEP.as_secs());
            let set = cmd.exec_async(&mut conn);
            match tokio::time::timeout(Duration::from_millis(250), set).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot store a persisted query in Redis"),
                Err(_) => tracing::warn!("storing a persisted query in Redis timed out"),
            }
        }
        self.cache.insert(key, text).await;
    }

    /// The text kept under `key` (a scoped `hash`).
    async fn load(&self, key: &str, hash: &str) -> Option<Arc<str>> {
        if let Some(text) = self.cache.get(key).await {
            return Some(text);
        }
        let redis = self.redis.as_ref()?;
        let mut conn = redis.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("strata:apq:{key}"));
        let get = cmd.query_async::<Option<String>>(&mut conn);
        match tokio::time::timeout(Duration::from_millis(250), get).await {
            Ok(Ok(Some(text))) if sha256_hex(&text) == hash => {
                let text: Arc<str> = Arc::from(text);
                self.cache.insert(key.to_owned(), text.clone()).await;
                Some(text)
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read a persisted query from Redis");
                None
            }
            Err(_) => {
                tracing::warn!("reading a persisted query from Redis timed out");
                None
            }
        }
    }
}

/// The lowercase hex hash of a `persistedQuery` extension.
fn persisted_hash(v: &Value) -> Result<String, DocumentError> {
    let Value::Object(obj) = v else {
        return Err(DocumentError::Malformed);
    };
    let version_ok = matches!(obj.get("version"), Some(Value::Number(n)) if n.as_u64() == Some(1));
    let hash = match obj.get("sha256Hash") {
        Some(Value::String(h)) => h.to_ascii_lowercase(),
        _ => return Err(DocumentError::Malformed),
    };
    if !version_ok || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DocumentError::Malformed);
    }
    Ok(hash)
}

/// Reads an allow-list manifest: either a JSON object of `id → query`, or
/// a persisted-query manifest `{"operations": [{"id", "body", ...}]}`.
fn load_manifest(path: &Path) -> anyhow::Result<HashMap<String, Arc<str>>> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the allow-list {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&raw)
        .with_context(|| format!("the allow-list {} is not JSON", path.display()))?;
    let mut out = HashMap::new();
    match &json {
        serde_json::Value::Object(map) if map.get("operations").is_some_and(|o| o.is_array()) => {
            for op in map["operations"].as_array().into_iter().flatten() {
                let body = op.get("body").and_then(|b| b.as_str()).with_context(|| {
                    format!(
                        "the allow-list {}: an operation has no \"body\"",
                        path.display()
                    )
                })?;
                // Operations are called by the SHA-256 of their text; an
                // id of another kind could never be sent.
                if let Some(id) = op.get("id").and_then(|i| i.as_str())
                    && !id.eq_ignore_ascii_case(&sha256_hex(body))
                {
                    anyhow::bail!(
                        "the allow-list {}: operation \"{id}\" is not the SHA-256 of its body",
                        path.display()
                    );
                }
                out.insert(sha256_hex(body), Arc::from(body));
            }
        }
        serde_json::Value::Object(map) => {
            for (id, body) in map {
                let body = body.as_str().with_context(|| {
                    format!(
                        "the allow-list {}: \"{id}\" is not a query string",
                        path.display()
                    )
                })?;
                out.insert(id.to_ascii_lowercase(), Arc::from(body));
            }
        }
        _ => anyhow::bail!(
            "the allow-list {} must be a JSON object of id to query, or a manifest with \"operations\"",
            path.display()
        ),
    }
    anyhow::ensure!(
        !out.is_empty(),
        "the allow-list {} registers no operation",
        path.display()
    );
    Ok(out)
}

#[cfg(test)]
mod insignificant_tests {
    use super::*;

    #[test]
    fn comments_and_extra_whitespace_count_and_strings_do_not() {
        assert_eq!(insignificant_bytes("{ me { id } }"), 0);
        assert_eq!(insignificant_bytes("{  me }"), 1);
        assert_eq!(insignificant_bytes("{ me } # pad"), 5);
        assert_eq!(insignificant_bytes("{ f(a: \"#  ,, \") }"), 0);
        assert_eq!(insignificant_bytes("{ f(a: \"\"\" # x\n  \"\"\") }"), 0);
        let padded = format!("{{ me }}\n#{}", "x".repeat(5000));
        assert!(insignificant_bytes(&padded) > MAX_INSIGNIFICANT);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(query: &str, hash: Option<&str>) -> async_graphql::Request {
        let mut json = serde_json::json!({ "query": query });
        if let Some(h) = hash {
            json["extensions"] =
                serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": h } });
        }
        serde_json::from_value(json).unwrap()
    }

    async fn refused(docs: &Documents, r: &mut async_graphql::Request) -> DocumentError {
        docs.resolve(r, None).await.unwrap_err()
    }

    #[tokio::test]
    async fn a_hash_is_unknown_until_registered_with_matching_text() {
        let docs = Documents::new(true, None, None).unwrap();
        let q = "{ me { user { id } } }";
        let h = sha256_hex(q);
        assert_eq!(
            refused(&docs, &mut request("", Some(&h))).await,
            DocumentError::NotFound
        );
        let mut wrong = request("{ organization { id } }", Some(&h));
        assert_eq!(
            refused(&docs, &mut wrong).await,
            DocumentError::HashMismatch
        );
        let registration = docs
            .resolve(&mut request(q, Some(&h)), None)
            .await
            .unwrap()
            .unwrap();
        // Not kept until registered.
        assert_eq!(
            refused(&docs, &mut request("", Some(&h))).await,
            DocumentError::NotFound
        );
        docs.register(registration).await;
        let mut r = request("", Some(&h));
        assert!(docs.resolve(&mut r, None).await.unwrap().is_none());
        assert_eq!(r.query, q);
        // Another organization's hash is as unknown as any.
        let mut theirs = request("", Some(&h));
        assert_eq!(
            docs.resolve(&mut theirs, Some(uuid::Uuid::new_v4()))
                .await
                .unwrap_err(),
            DocumentError::NotFound
        );
        let long = format!(
            "{{ me {{ user {{ id }} }} }} #{}",
            "x".repeat(MAX_PERSISTED)
        );
        let mut r = request(&long, Some(&sha256_hex(&long)));
        assert_eq!(refused(&docs, &mut r).await, DocumentError::TooLong);
        assert_eq!(
            refused(&docs, &mut request("", Some("zz"))).await,
            DocumentError::Malformed
        );
        assert_eq!(
            refused(&docs, &mut request("", None)).await,
            DocumentError::Missing
        );
    }

    #[tokio::test]
    async fn allow_list_mode_runs_only_registered_operations() {
        let dir = std::env::temp_dir().join(format!("strata-allow-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ops.json");
        let q = "query Me { me { user { id } } }";
        std::fs::write(
            &file,
            serde_json::json!({ "operations": [{ "id": sha256_hex(q), "body": q, "name": "Me" }] })
                .to_string(),
        )
        .unwrap();
        let docs = Documents::new(true, Some(&file), None).unwrap();
        assert!(
            docs.resolve(&mut request(q, None), None)
                .await
                .unwrap()
                .is_none()
        );
        let mut by_id = request("", Some(&sha256_hex(q)));
        assert!(
            docs.resolve(&mut by_id, Some(uuid::Uuid::new_v4()))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(by_id.query, q);
        let other = "{ organization { id } }";
        assert_eq!(
            refused(&docs, &mut request(other, None)).await,
            DocumentError::NotAllowed
        );
        let mut register = request(other, Some(&sha256_hex(other)));
        assert_eq!(
            refused(&docs, &mut register).await,
            DocumentError::NotAllowed
        );

        // An id that is not the body's SHA-256 could never be called.
        std::fs::write(
            &file,
            serde_json::json!({ "operations": [{ "id": "me-v1", "body": q }] }).to_string(),
        )
        .unwrap();
        assert!(Documents::new(true, Some(&file), None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
