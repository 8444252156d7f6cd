//! Credential verification: `Authorization: Bearer <JWT>` (HS256 with the
//! configured secret, RS256 and ES256 with keys from the configured JWKS
//! endpoint) or `Bearer strata_...` (API keys). Verification here answers
//! "who"; the database answers "what may they do", and [`UserCache`] keeps
//! that answer for a few seconds.
//!
//! Each key verifies exactly one algorithm: the secret HS256, an RSA key
//! from the JWKS RS256, a P-256 key ES256. A token whose header names
//! another algorithm than its key's is refused, so a public RSA key can
//! never be used as an HMAC secret, and `none` is never accepted.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use strata_domain::{OrgId, UserId};
use strata_persistence::Db;
use strata_persistence::context::{self, LoadedUser, ResolveError, ResolvedUser};

use crate::config::JwtConfig;
use uuid::Uuid;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 30;
/// However many unknown key ids arrive, the JWKS endpoint is asked at most
/// once in this interval (the fetch at start-up aside).
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(5);
/// Keys older than this are fetched again in the background, so a key
/// removed from the endpoint stops verifying without a restart.
const JWKS_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// One fetch of the JWKS endpoint, connection included.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// A larger key set is refused rather than read.
const JWKS_MAX_BYTES: usize = 256 * 1024;
/// Keys beyond this many in one set are ignored.
const JWKS_MAX_KEYS: usize = 64;
/// RSA keys with a shorter modulus are ignored.
const RSA_MIN_MODULUS_BYTES: usize = 256;
/// Resolved users kept at most by [`UserCache`].
const USER_CACHE_CAPACITY: u64 = 10_000;
/// Verified tokens kept at most by [`Verifier`].
const TOKEN_CACHE_CAPACITY: u64 = 10_000;
/// Longer tokens are verified every time rather than remembered.
const TOKEN_CACHE_MAX_LEN: usize = 4096;

/// The claims `strata token` and `--demo` write.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Active organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// E-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Longest `sub` accepted: identity providers' subjects are short
/// (`auth0|64f0...`, a Google number, a Keycloak UUID).
const SUB_MAX_LEN: usize = 255;

/// Names the user ids that Strata derives from a non-UUID `sub` (UUID v5
/// of the issuer and subject), so that the same subject always maps to the
/// same user.
const SUBJECT_NAMESPACE: Uuid = Uuid::from_u128(0x5f1d_7c2e_93a4_4b0e_8d61_2c7a_0e94_b3f5);

/// The user id for a token's subject: a UUID `sub` is the user id itself
/// (users who signed in with such tokens keep their rows); any other
/// subject maps to a stable UUID derived from the issuer and the subject,
/// so two providers' equal subjects stay two users.
pub fn user_id_for_subject(issuer: Option<&str>, sub: &str) -> UserId {
    if let Ok(id) = sub.parse::<UserId>() {
        return id;
    }
    let mut name = Vec::with_capacity(issuer.map_or(0, str::len) + 1 + sub.len());
    name.extend_from_slice(issuer.unwrap_or_default().as_bytes());
    name.push(0);
    name.extend_from_slice(sub.as_bytes());
    UserId::from_uuid(Uuid::new_v5(&SUBJECT_NAMESPACE, &name))
}

/// A string claim by name: `None` when absent, null or empty; an error
/// when present with another type.
fn string_claim<'a>(
    claims: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{name} is not a string"))),
    }
}

/// A verified user credential.
#[derive(Clone, Debug)]
pub struct VerifiedUser {
    /// The user.
    pub user_id: UserId,
    /// The organization the token names, if any.
    pub org_id: Option<OrgId>,
    /// E-mail, if the token carried one.
    pub email: Option<String>,
    /// Whether the provider verified that e-mail (`email_verified`), when
    /// the token says.
    pub email_verified: Option<bool>,
    /// Display name, if the token carried one.
    pub name: Option<String>,
    /// When the token was issued (`iat`, seconds since the epoch).
    pub issued_at: Option<i64>,
    /// Whether its `amr` names a method that proves a second factor.
    pub mfa: bool,
}

impl VerifiedUser {
    /// What the database needs of the token besides the user id.
    pub fn identity(&self) -> strata_persistence::auth::Identity<'_> {
        strata_persistence::auth::Identity {
            email: self.email.as_deref(),
            email_verified: self.email_verified == Some(true),
            name: self.name.as_deref(),
        }
    }

    /// What the token says about its session.
    pub fn session(&self) -> strata_persistence::context::Session {
        strata_persistence::context::Session {
            issued_at: self.issued_at,
            mfa: self.mfa,
        }
    }
}

/// Why a credential was refused. The variants are for logs; clients see one
/// message whatever the reason. No variant carries the credential.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing credentials")]
    Missing,
    /// Not `Bearer <token>`.
    #[error("malformed authorization header")]
    Malformed,
    /// The token failed verification.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// API keys are recognised but none matched.
    #[error("invalid api key")]
    InvalidApiKey,
    /// Not a member of the requested organization (or it does not exist).
    #[error("not a member of the requested organization")]
    NotAMember,
    /// The organization requires a second factor the token does not prove.
    #[error("the organization requires multi-factor authentication")]
    MfaRequired,
    /// The user's sessions were revoked after the token was issued.
    #[error("session revoked")]
    SessionRevoked,
}

impl AuthError {
    /// The reason's class, a bounded label for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::NotAMember => "not_a_member",
            AuthError::MfaRequired => "mfa_required",
            AuthError::SessionRevoked => "session_revoked",
        }
    }
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::InvalidToken(reason.into())
}

/// Token verification settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum VerifierConfigError {
    /// `STRATA_JWKS_URL` does not parse.
    #[error("STRATA_JWKS_URL is not a valid URL")]
    JwksUrl(#[source] url::ParseError),
    /// `STRATA_JWKS_URL` is not http(s) or names no host.
    #[error("STRATA_JWKS_URL must be an http:// or https:// URL with a host")]
    JwksScheme,
    /// The HTTP client for the JWKS endpoint cannot be set up.
    #[error("cannot set up the HTTP client for STRATA_JWKS_URL")]
    JwksClient(#[source] reqwest::Error),
}

/// Verifies tokens. Cheap to share behind an `Arc`; the JWKS keys it holds
/// are refreshed in place.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    jwks: Option<Arc<Jwks>>,
    validations: Validations,
    /// Which claims carry the organization, e-mail and name.
    claims: crate::config::ClaimNames,
    /// Tokens verified in the last few seconds, by their exact text, with
    /// the instant their `exp` passes. Checking a signature and decoding
    /// the claims is most of the cost of authenticating a request, and
    /// clients send the same token many times a second.
    verified: Option<moka::sync::Cache<Arc<str>, Remembered>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

/// One validation per accepted algorithm; each allows only its own.
struct Validations {
    hs256: Validation,
    rs256: Validation,
    es256: Validation,
}

impl Validations {
    fn new(cfg: &JwtConfig) -> Self {
        let build = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = LEEWAY_SECS;
            v.validate_exp = true;
            v.validate_nbf = true;
            // `iss` and `aud` are only compared when present: require them
            // when they are configured, or a token could simply omit them.
            let mut required = vec!["exp", "sub"];
            match &cfg.issuer {
                Some(iss) => {
                    v.set_issuer(&[iss]);
                    required.push("iss");
                }
                None => v.iss = None,
            }
            match &cfg.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            v
        };
        Self {
            hs256: build(Algorithm::HS256),
            rs256: build(Algorithm::RS256),
            es256: build(Algorithm::ES256),
        }
    }

    fn get(&self, alg: Algorithm) -> Option<&Validation> {
        match alg {
            Algorithm::HS256 => Some(&self.hs256),
            Algorithm::RS256 => Some(&self.rs256),
            Algorithm::ES256 => Some(&self.es256),
            _ => None,
        }
    }
}

impl Verifier {
    /// A verifier for `cfg`. Fetches nothing yet: see [`Verifier::prefetch`].
    pub fn new(cfg: &JwtConfig) -> Result<Self, VerifierConfigError> {
        let jwks = match cfg.jwks_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => Some(Arc::new(Jwks::new(url)?)),
            _ => None,
        };
        Ok(Self {
            hs256: cfg
                .secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
            jwks,
            validations: Validations::new(cfg),
            claims: cfg.claims.clone(),
            verified: None,
        })
    }

    /// Remembers verified tokens for `ttl` (never past their `exp`), so a
    /// token sent again within it is not verified again; zero turns this
    /// off. A JWKS key removed from the endpoint therefore stops being
    /// honoured at most `ttl` later, as a removed membership does.
    pub fn remember_for(mut self, ttl: Duration) -> Self {
        self.verified = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .time_to_live(ttl)
                .build()
        });
        self
    }

    /// Fetches the JWKS keys, if an endpoint is configured. An unreachable
    /// endpoint is logged and does not fail: the keys are fetched again when
    /// a token needs them.
    pub async fn prefetch(&self) {
        if let Some(jwks) = &self.jwks {
            match jwks.fetch_and_store().await {
                Ok(keys) => tracing::info!(jwks.keys = keys, "jwks keys loaded"),
                Err(e) => tracing::warn!(
                    error = %e,
                    "the jwks endpoint is unavailable at start; its keys will be fetched when a token needs them"
                ),
            }
        }
    }

    /// Verifies a JWT: signature with the key its header names, then `exp`,
    /// `nbf` and, when configured, `iss` and `aud`.
    pub async fn verify(&self, token: &str) -> Result<VerifiedUser, AuthError> {
        let Some(cache) = &self.verified else {
            return self.verify_now(token).await.map(|(user, _)| user);
        };
        // Read before verifying: a set stored meanwhile makes the entry
        // stale at once.
        let generation = self.key_generation();
        if let Some(hit) = cache.get(token) {
            if Instant::now() < hit.until && hit.generation == generation {
                return Ok(hit.user);
            }
            cache.invalidate(token);
        }
        let (user, exp) = self.verify_now(token).await?;
        if token.len() <= TOKEN_CACHE_MAX_LEN
            && let Some(left) = exp.and_then(seconds_left)
        {
            let entry = Remembered {
                user: user.clone(),
                until: Instant::now() + left,
                generation,
            };
            cache.insert(token.into(), entry);
        }
        Ok(user)
    }

    /// Which JWKS key set is current (0 without an endpoint).
    fn key_generation(&self) -> u64 {
        self.jwks.as_ref().map_or(0, |j| {
            j.generation.load(std::sync::atomic::Ordering::Acquire)
        })
    }

    /// Verifies a token without the cache; returns its `exp` too.
    async fn verify_now(&self, token: &str) -> Result<(VerifiedUser, Option<f64>), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let jwks_key;
        let key = match header.alg {
            Algorithm::HS256 => {
                if let (Some(kid), Some(jwks)) = (header.kid.as_deref(), &self.jwks)
                    && jwks.names(kid)
                {
                    return Err(invalid("the algorithm does not match the key"));
                }
                self.hs256
                    .as_ref()
                    .ok_or_else(|| invalid("no HS256 secret is configured"))?
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| invalid("no JWKS endpoint is configured"))?;
                jwks_key = jwks.key_for(header.kid.as_deref(), header.alg).await?;
                &jwks_key.key
            }
            _ => return Err(invalid("algorithm not accepted")),
        };
        let validation = self
            .validations
            .get(header.alg)
            .ok_or_else(|| invalid("algorithm not accepted"))?;
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token, key, validation,
        )
        .map_err(|e| invalid(e.to_string()))?
        .claims;
        let sub = string_claim(&claims, "sub")?.ok_or_else(|| invalid("sub is empty"))?;
        if sub.len() > SUB_MAX_LEN || sub.chars().any(char::is_control) {
            return Err(invalid("sub is too long or holds control characters"));
        }
        let issuer = string_claim(&claims, "iss").ok().flatten();
        let user_id = user_id_for_subject(issuer, sub);
        let org_id = string_claim(&claims, &self.claims.org)?
            .map(str::parse::<OrgId>)
            .transpose()
            .map_err(|_| invalid(format!("{} is not a uuid", self.claims.org)))?;
        let email = string_claim(&claims, &self.claims.email)?
            .filter(|e| e.len() <= 320 && e.contains('@'))
            .map(str::to_owned);
        let email_verified = match claims.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => Some(*b),
            // Some providers (Cognito, older Okta) send it as a string.
            Some(serde_json::Value::String(s)) => Some(s == "true"),
            _ => None,
        };
        let name = string_claim(&claims, &self.claims.name)
            .ok()
            .flatten()
            .map(|n| n.chars().take(200).collect::<String>());
        let exp = claims.get("exp").and_then(serde_json::Value::as_f64);
        #[allow(clippy::cast_possible_truncation)]
        let issued_at = claims
            .get("iat")
            .and_then(serde_json::Value::as_f64)
            .filter(|t| t.is_finite())
            .map(|t| t.floor() as i64);
        // `amr` is a list of strings (RFC 8176); some providers send one.
        let mfa = match claims.get("amr") {
            Some(serde_json::Value::Array(methods)) => methods
                .iter()
                .filter_map(serde_json::Value::as_str)
                .any(|m| self.claims.mfa_methods.iter().any(|a| a == m)),
            Some(serde_json::Value::String(m)) => self.claims.mfa_methods.iter().any(|a| a == m),
            _ => false,
        };
        Ok((
            VerifiedUser {
                user_id,
                org_id,
                email,
                email_verified,
                name,
                issued_at,
                mfa,
            },
            exp,
        ))
    }
}

/// A token verified a moment ago.
#[derive(Clone)]
struct Remembered {
    user: VerifiedUser,
    /// When its `exp` passes.
    until: Instant,
    /// The JWKS key set it was verified against.
    generation: u64,
}

/// How long until `exp` (seconds since the epoch) passes, if it has not.
/// The leeway the validation allows is not added: a remembered token ends
/// at its `exp` and is then verified again.
fn seconds_left(exp: f64) -> Option<Duration> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let left = exp - now;
    if !(left.is_finite() && left > 0.0) {
        return None;
    }
    Duration::try_from_secs_f64(left.min(86_400.0)).ok()
}

/// A key from the JWKS endpoint and the one algorithm it verifies.
struct JwksKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys of one successful fetch.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<JwksKey>>,
    without_kid: Vec<Arc<JwksKey>>,
    fetched: Option<Instant>,
}

enum Lookup {
    Found(Arc<JwksKey>),
    /// No such key (yet): a refresh may bring it.
    Unknown,
    /// A key is there but may not verify this token.
    Refused(&'static str),
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) if k.alg == alg => Lookup::Found(Arc::clone(k)),
                Some(_) => Lookup::Refused("the algorithm does not match the key"),
                None => Lookup::Unknown,
            },
            // Without a key id, a key is picked only when exactly one can
            // verify this algorithm.
            None => {
                let mut fitting = self
                    .by_kid
                    .values()
                    .chain(&self.without_kid)
                    .filter(|k| k.alg == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Lookup::Found(Arc::clone(k)),
                    (None, _) => Lookup::Unknown,
                    (Some(_), Some(_)) => Lookup::Refused("no key id and several keys fit"),
                }
            }
        }
    }

    fn is_stale(&self) -> bool {
        self.fetched.is_none_or(|t| t.elapsed() >= JWKS_MAX_AGE)
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed")]
    Http(#[source] reqwest::Error),
    #[error("the key set is larger than {JWKS_MAX_BYTES} bytes")]
    TooLarge,
    #[error("the key set is not a JWK set")]
    NotAKeySet(#[source] serde_json::Error),
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        // The URL may carry credentials: keep it out of the message.
        Self::Http(e.without_url())
    }
}

/// The JWKS endpoint and the keys last fetched from it.
struct Jwks {
    url: reqwest::Url,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Counts the key sets stored: a token verified with an earlier set is
    /// verified again rather than taken from [`Verifier`]'s cache, so a key
    /// removed from the endpoint stops verifying as soon as the new set is
    /// in.
    generation: std::sync::atomic::AtomicU64,
    /// When a refresh was last attempted (not the start-up fetch); held
    /// while one runs, so concurrent refreshes become one.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    fn new(address: &str) -> Result<Self, VerifierConfigError> {
        // The parse error names no part of the URL, which may carry
        // credentials.
        let url = url::Url::parse(address).map_err(VerifierConfigError::JwksUrl)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(VerifierConfigError::JwksScheme);
        }
        let client = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(VerifierConfigError::JwksClient)?;
        Ok(Self {
            url,
            client,
            keys: RwLock::new(Arc::new(KeySet::default())),
            generation: std::sync::atomic::AtomicU64::new(0),
            last_refresh: tokio::sync::Mutex::new(None),
        })
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether `kid` names a key of the set (without fetching).
    fn names(&self, kid: &str) -> bool {
        self.current().by_kid.contains_key(kid)
    }

    /// The key for a token's `kid` and `alg`, refreshing the set once if the
    /// key is unknown (within the refresh interval).
    async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<JwksKey>, AuthError> {
        let keys = self.current();
        match keys.lookup(kid, alg) {
            Lookup::Found(k) => {
                if keys.is_stale() {
                    self.refresh_in_background();
                }
                return Ok(k);
            }
            Lookup::Refused(why) => return Err(invalid(why)),
            Lookup::Unknown => {}
        }
        self.refresh().await;
        match self.current().lookup(kid, alg) {
            Lookup::Found(k) => Ok(k),
            Lookup::Refused(why) => Err(invalid(why)),
            Lookup::Unknown => Err(invalid("unknown key")),
        }
    }

    /// Fetches the set again unless a refresh was attempted less than
    /// [`JWKS_MIN_REFRESH`] ago. Callers arriving while one runs wait for it
    /// and then find the interval not yet over.
    async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch_and_store().await {
            Ok(keys) => tracing::debug!(jwks.keys = keys, "jwks keys refreshed"),
            Err(e) => {
                tracing::warn!(error = %e, "the jwks endpoint is unavailable; keeping the keys fetched before")
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let due = self
            .last_refresh
            .try_lock()
            .is_ok_and(|last| last.is_none_or(|t| t.elapsed() >= JWKS_MIN_REFRESH));
        if due {
            let jwks = Arc::clone(self);
            tokio::spawn(async move { jwks.refresh().await });
        }
    }

    /// Fetches the set and replaces the keys with it; returns how many keys
    /// are usable. On failure the keys fetched before stay.
    async fn fetch_and_store(&self) -> Result<usize, FetchError> {
        let set = self.fetch().await?;
        let usable = set.by_kid.len() + set.without_kid.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(usable)
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let mut resp = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?
            .error_for_status()?;
        if resp
            .content_length()
            .is_some_and(|n| n > JWKS_MAX_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > JWKS_MAX_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let doc: Document = serde_json::from_slice(&body).map_err(FetchError::NotAKeySet)?;
        let mut set = KeySet {
            fetched: Some(Instant::now()),
            ..KeySet::default()
        };
        // Keys Strata cannot use (other types, curves or algorithms, keys
        // for encryption, unknown fields' values) are skipped one by one,
        // never the whole set.
        for value in doc.keys.into_iter().take(JWKS_MAX_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = usable_key(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.entry(kid).or_insert(key);
                }
                None => set.without_kid.push(key),
            }
        }
        Ok(set)
    }
}

/// The key and its one algorithm, if Strata may verify signatures with it:
/// RSA keys of at least 2048 bits for RS256, P-256 keys for ES256.
fn usable_key(jwk: &Jwk) -> Option<JwksKey> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    if jwk
        .common
        .key_algorithm
        .is_some_and(|a| a != KeyAlgorithm::from(alg))
    {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    if let DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
        let significant = n.iter().skip_while(|b| **b == 0).count();
        if significant < RSA_MIN_MODULUS_BYTES {
            return None;
        }
    }
    Some(JwksKey { alg, key })
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct UserKey {
    user: UserId,
    org: Option<OrgId>,
    email: Option<String>,
    email_verified: bool,
}

/// Recently resolved users: a verified user's record and memberships, kept
/// for a short time-to-live so a burst of requests does not open an
/// `app_auth` transaction each. A removed membership stops working within
/// the time-to-live.
///
/// Only resolutions that found an active organization are kept: failures of
/// the database never are, and neither are users without one (so a user who
/// just created or joined an organization sees it on the next request). The
/// tenant context is rebuilt for every request, with that request's id.
#[derive(Clone)]
pub struct UserCache {
    entries: Option<moka::future::Cache<UserKey, Arc<LoadedUser>>>,
}

impl std::fmt::Debug for UserCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCache")
            .field("enabled", &self.entries.is_some())
            .finish_non_exhaustive()
    }
}

impl UserCache {
    /// A cache whose entries live `ttl`; zero disables it.
    pub fn new(ttl: Duration) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            moka::future::Cache::builder()
                .max_capacity(USER_CACHE_CAPACITY)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build()
        });
        Self { entries }
    }

    /// Forgets everything cached about `user` (their memberships changed).
    pub async fn invalidate_user(&self, user: UserId) {
        if let Some(entries) = &self.entries {
            // Only fails when closures are not supported, which the builder
            // turns on.
            let _ = entries.invalidate_entries_if(move |k, _| k.user == user);
            entries.run_pending_tasks().await;
        }
    }

    /// Forgets what a revocation names: a user, or an organization's
    /// members.
    pub async fn forget(&self, what: crate::sessions::Forget) {
        match what {
            crate::sessions::Forget::User(user) => self.invalidate_user(user).await,
            crate::sessions::Forget::Org(org) => self.invalidate_org(org).await,
        }
    }

    /// Forgets everything cached about the members of `org` (its sign-in
    /// policy changed).
    pub async fn invalidate_org(&self, org: OrgId) {
        if let Some(entries) = &self.entries {
            let _ = entries
                .invalidate_entries_if(move |_, v| v.memberships().iter().any(|m| m.org_id == org));
            entries.run_pending_tasks().await;
        }
    }

    /// Resolves `user` acting in `requested` (or their only organization),
    /// from the cache when a recent resolution is there.
    pub async fn resolve(
        &self,
        db: &Db,
        user: &VerifiedUser,
        requested: Option<OrgId>,
        request_id: &str,
    ) -> Result<ResolvedUser, ResolveError> {
        let Some(entries) = &self.entries else {
            return context::resolve_user(
                db,
                user.user_id,
                &user.identity(),
                requested,
                user.session(),
                request_id,
            )
            .await;
        };
        let key = UserKey {
            user: user.user_id,
            org: requested,
            email: user.email.clone(),
            email_verified: user.email_verified == Some(true),
        };
        if let Some(hit) = entries.get(&key).await {
            return context::select(&hit, requested, user.session(), request_id);
        }
        let loaded = context::load_user(db, user.user_id, &user.identity(), request_id).await?;
        let resolved = context::select(&loaded, requested, user.session(), request_id);
        if matches!(
            resolved,
            Err(ResolveError::MfaRequired | ResolveError::SessionRevoked)
        ) {
            // A refusal of this token leaves the user's record worth
            // keeping: the same token comes back refused at no cost.
            entries.insert(key, Arc::new(loaded)).await;
            return resolved;
        }
        let resolved = resolved?;
        if resolved.context.is_some() {
            entries.insert(key, Arc::new(loaded)).await;
        }
        Ok(resolved)
    }
}

/// Mints an HS256 token (for `strata token` and `--demo`).
pub fn mint(
    secret: &SecretString,
    user: UserId,
    org: Option<OrgId>,
    email: Option<&str>,
    ttl: std::time::Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let claims = Claims {
        sub: user.to_string(),
        org_id: org.map(|o| o.to_string()),
        email: email.map(str::to_owned),
        exp: now.saturating_add(ttl),
        iat: Some(now),
        iss: issuer.map(str::to_owned),
        aud: audience.map(str::to_owned),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(ttl: Duration) -> (Verifier, SecretString) {
        let secret = SecretString::from("a-test-secret-of-some-length");
        let cfg = JwtConfig {
            secret: Some(secret.clone()),
            jwks_url: None,
            issuer: None,
            audience: None,
            claims: Default::default(),
        };
        let v = Verifier::new(&cfg).expect("valid config").remember_for(ttl);
        (v, secret)
    }

    /// A ten-minute token for `user`, signed with `secret`.
    fn token_for(secret: &SecretString, user: UserId) -> String {
        mint(
            secret,
            user,
            None,
            None,
            Duration::from_secs(600),
            None,
            None,
        )
        .expect("minted")
    }

    #[test]
    fn a_remembered_token_ends_at_its_exp_not_later() {
        assert_eq!(seconds_left(0.0), None, "long past");
        assert_eq!(seconds_left(f64::NAN), None);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_secs_f64();
        let left = seconds_left(now + 60.0).expect("in the future");
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(55));
        assert_eq!(
            seconds_left(1e300),
            Some(Duration::from_secs(86_400)),
            "capped, never a panic"
        );
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_a_forged_one_never_is() {
        let (v, secret) = verifier(Duration::from_secs(5));
        let user = UserId::generate();
        let token = token_for(&secret, user);
        assert_eq!(v.verify(&token).await.expect("valid").user_id, user);
        let Some(cache) = &v.verified else {
            panic!("the cache is on");
        };
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1);
        assert_eq!(v.verify(&token).await.expect("remembered").user_id, user);

        // The same claims under another key: refused, and not remembered.
        let other = SecretString::from("another-secret-of-some-length");
        let forged = token_for(&other, user);
        assert!(v.verify(&forged).await.is_err());
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 1);
    }

    #[tokio::test]
    async fn zero_ttl_remembers_nothing() {
        let (v, secret) = verifier(Duration::ZERO);
        assert!(v.verified.is_none());
        let token = token_for(&secret, UserId::generate());
        assert!(v.verify(&token).await.is_ok());
    }
}
