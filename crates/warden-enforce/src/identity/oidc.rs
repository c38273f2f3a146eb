//! OIDC/JWT: a token from the identity provider names a person.
//!
//! The checks, in order, each with its own [`IdentityError`]:
//!
//! 1. the header's `alg` is one the deployment allows (never `none`, never `HS*`: the
//!    configuration refuses them, and an unknown name is refused here);
//! 2. the header's `kid` names a key of the provider's set ([`super::jwks`]);
//! 3. that key is of the algorithm's type (an `RS256` token is never checked with an EC key,
//!    and a key that names its `alg` is used for that algorithm only);
//! 4. the signature, then `exp` and `nbf` (with the configured clock skew), `iss` and `aud`
//!    (all three required);
//! 5. the user claim names a directory user.
//!
//! The header is read by this module, not by `jsonwebtoken`, so that an algorithm it does not
//! know (`none`) is reported as refused rather than as a malformed token.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use warden_core::identity::{JwtAlgorithm, OidcConfig};

use super::jwks::KeyCache;
use super::{AuthMethod, IdentityError, Principal};

/// Largest token accepted, in bytes.
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The header fields Warden reads.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks the tokens of one identity provider.
pub(crate) struct OidcVerifier {
    pub config: OidcConfig,
    pub keys: KeyCache,
    pub users: Arc<HashSet<String>>,
}

fn jwt_algorithm(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Ps384 => Algorithm::PS384,
        JwtAlgorithm::Ps512 => Algorithm::PS512,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// True when `token` has the shape of a compact JWS: three base64url parts.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().take(2).all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn read_header(token: &str) -> Result<Header, IdentityError> {
    let part = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| IdentityError::Malformed("the header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| IdentityError::Malformed("the header is not a JSON object with `alg`".into()))
}

impl OidcVerifier {
    /// Check `token` and name the person it was issued to.
    pub async fn verify(&self, token: &str) -> Result<Principal, IdentityError> {
        let header = read_header(token)?;
        let alg = JwtAlgorithm::parse(&header.alg)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| IdentityError::AlgorithmNotAllowed(header.alg.clone()))?;
        let key = self.keys.key(header.kid.as_deref()).await?;
        if !key.fits(alg) {
            return Err(IdentityError::KeyMismatch {
                alg: alg.name().to_string(),
                kid: header.kid.unwrap_or_default(),
            });
        }
        let mut validation = Validation::new(jwt_algorithm(alg));
        validation.leeway = self.config.clock_skew_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(self.config.audience.as_slice());
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .map_err(|e| self.refusal(e.into_kind(), alg))?;
        let claims = data.claims;
        let claim = &self.config.user_claim;
        let user = claims
            .get(claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| IdentityError::MissingClaim(claim.clone()))?;
        if !self.users.contains(user) {
            return Err(IdentityError::NoSuchUser(user.to_string()));
        }
        Ok(Principal {
            user: user.to_string(),
            method: AuthMethod::Jwt,
            subject: claims
                .get("sub")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            issuer: Some(self.config.issuer.clone()),
            expires_at: claims.get("exp").and_then(|v| v.as_u64()),
        })
    }

    fn refusal(&self, kind: ErrorKind, alg: JwtAlgorithm) -> IdentityError {
        match kind {
            ErrorKind::ExpiredSignature => IdentityError::Expired,
            ErrorKind::ImmatureSignature => IdentityError::NotYetValid,
            ErrorKind::InvalidIssuer => IdentityError::WrongIssuer {
                expected: self.config.issuer.clone(),
            },
            ErrorKind::InvalidAudience => IdentityError::WrongAudience {
                expected: self.config.audience.join(", "),
            },
            ErrorKind::InvalidSignature => IdentityError::BadSignature,
            ErrorKind::InvalidAlgorithm => {
                IdentityError::AlgorithmNotAllowed(alg.name().to_string())
            }
            ErrorKind::MissingRequiredClaim(c) => IdentityError::MissingClaim(c),
            ErrorKind::InvalidClaimFormat(c) => {
                IdentityError::Malformed(format!("claim `{c}` has the wrong type"))
            }
            other => IdentityError::Malformed(format!("{other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("plain-local-token"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a b.c.d"));
    }
}
