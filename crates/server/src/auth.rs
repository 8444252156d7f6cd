//! Credential verification: `Authorization: Bearer <JWT>` (HS256 with the
//! configured secret) or `Bearer strata_...` (API keys). Verification here
//! answers "who"; the database answers "what may they do".

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use strata_domain::{OrgId, UserId};

use crate::config::JwtConfig;

/// The claims Strata reads.
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

/// A verified user credential.
#[derive(Clone, Debug)]
pub struct VerifiedUser {
    /// The user.
    pub user_id: UserId,
    /// The organization the token names, if any.
    pub org_id: Option<OrgId>,
    /// E-mail, if the token carried one.
    pub email: Option<String>,
}

/// Why a credential was refused. The variants are for logs; clients see one
/// message whatever the reason.
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
}

/// Verifies tokens.
#[derive(Clone)]
pub struct Verifier {
    hs256: Option<DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl Verifier {
    /// A verifier for `cfg`.
    pub fn new(cfg: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &cfg.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Self {
            hs256: cfg
                .secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes())),
            validation,
        }
    }

    /// Verifies a JWT.
    pub fn verify(&self, token: &str) -> Result<VerifiedUser, AuthError> {
        let key = self
            .hs256
            .as_ref()
            .ok_or_else(|| AuthError::InvalidToken("no verification key configured".into()))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let claims = data.claims;
        let user_id = claims
            .sub
            .parse::<UserId>()
            .map_err(|_| AuthError::InvalidToken("sub is not a uuid".into()))?;
        let org_id = claims
            .org_id
            .as_deref()
            .map(str::parse::<OrgId>)
            .transpose()
            .map_err(|_| AuthError::InvalidToken("org_id is not a uuid".into()))?;
        Ok(VerifiedUser {
            user_id,
            org_id,
            email: claims.email.filter(|e| !e.is_empty() && e.len() <= 320),
        })
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
