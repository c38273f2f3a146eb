//! People authenticating: who a principal or an approver is, proven rather than claimed.
//!
//! An agent never names the person it acts for; the person presents a credential and the
//! [`Authenticator`] names them:
//!
//! - a **local user token** (`[users.NAME] token_env = "VAR"`), compared as a SHA-256 digest in
//!   constant time against every user (`local`);
//! - an **OIDC/JWT** token from the identity provider of `[identity.oidc]`, checked against its
//!   published keys, which are refreshed on an unknown key id and periodically, so the provider
//!   can rotate keys without a restart (`oidc`, `jwks`).
//!
//! `[identity.proxy]` (a trusted authenticating proxy naming the user in a header) is parsed by
//! the core ([`warden_core::identity::ProxyConfig`]); the HTTP surface that sees the peer
//! address applies it, and [`Principal::from_proxy`] names the user it vouches for.
//!
//! Every refusal is an [`IdentityError`] whose text says which check failed. Nothing here
//! defaults to a person: no token, no principal.

mod jwks;
mod local;
mod oidc;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use warden_core::identity::JwksSource;
use warden_core::Config;

pub use jwks::RefreshPolicy;

use jwks::{KeyCache, KeySource};
use local::LocalTokens;
use oidc::{looks_like_jwt, OidcVerifier, MAX_TOKEN_BYTES};

/// How a person proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A JWT from the configured OIDC identity provider.
    Jwt,
    /// A local user token (`[users.NAME]`).
    Local,
    /// A header set by the trusted authenticating proxy (`[identity.proxy]`).
    Proxy,
    /// The agent's own MCP client, answering an elicitation: only for act-as consent, and only
    /// for agents whose client is operated by their principal (`[approvals] elicit_consent`).
    Client,
}

impl AuthMethod {
    /// Its name in records: `jwt`, `local` or `proxy`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::Local => "local",
            AuthMethod::Proxy => "proxy",
            AuthMethod::Client => "mcp-elicitation",
        }
    }
}

/// An authenticated person: a directory user and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The directory user's id.
    pub user: String,
    /// How they authenticated.
    pub method: AuthMethod,
    /// The token's `sub` claim (JWT only).
    pub subject: Option<String>,
    /// The token's issuer (JWT only).
    pub issuer: Option<String>,
    /// When the credential expires, in seconds since the Unix epoch (JWT only).
    pub expires_at: Option<u64>,
}

impl Principal {
    /// The person a trusted proxy names, once the caller has checked that the connection comes
    /// from [`warden_core::identity::ProxyConfig::trusts`] and read its header. The user must
    /// be in the directory.
    pub fn from_proxy(user: &str, config: &Config) -> Result<Principal, IdentityError> {
        if config.directory.user(user).is_none() {
            return Err(IdentityError::NoSuchUser(user.to_string()));
        }
        Ok(Principal {
            user: user.to_string(),
            method: AuthMethod::Proxy,
            subject: None,
            issuer: None,
            expires_at: None,
        })
    }
}

/// Why a person was not authenticated (or an authenticator could not be built).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Neither a user's local token nor a token of the identity provider.
    #[error("unknown token: it is no user's local token, and no identity provider token this deployment accepts")]
    UnknownToken,
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `exp` has passed (beyond the clock skew).
    #[error("token expired: sign in again for a fresh one")]
    Expired,
    /// `nbf` is in the future (beyond the clock skew).
    #[error("token not yet valid: its `nbf` is in the future")]
    NotYetValid,
    /// `aud` names none of the configured audiences.
    #[error("wrong audience: the token is not meant for Warden (accepted: {expected})")]
    WrongAudience {
        /// The audiences accepted.
        expected: String,
    },
    /// `iss` is not the configured issuer.
    #[error("wrong issuer: the token was not issued by `{expected}`")]
    WrongIssuer {
        /// The issuer accepted.
        expected: String,
    },
    /// The signature does not verify with the key the token names.
    #[error("bad signature: the token was altered or not signed by the identity provider")]
    BadSignature,
    /// The header's `alg` is not one the deployment allows (`none` and `HS*` never are).
    #[error("algorithm not allowed: `{0}` is not in identity.oidc.algorithms")]
    AlgorithmNotAllowed(String),
    /// The key the token names is not a key of its algorithm's type.
    #[error("algorithm `{alg}` does not fit key `{kid}`: a key is used only with algorithms of its own type")]
    KeyMismatch {
        /// The token's algorithm.
        alg: String,
        /// The key id.
        kid: String,
    },
    /// The token names a key the provider's key set does not hold, even after a refresh.
    #[error("unknown key id `{0}`: the identity provider's key set has no such key")]
    UnknownKeyId(String),
    /// A required claim is missing or not a string.
    #[error("missing claim `{0}`")]
    MissingClaim(String),
    /// The user the token names is not in the directory.
    #[error("no such directory user `{0}`")]
    NoSuchUser(String),
    /// No keys of the identity provider could be read: every token is refused until they can.
    #[error("JWKS unavailable: {0}")]
    JwksUnavailable(String),
    /// `identity.oidc.ca_file` cannot be read or holds no usable certificate (when building the
    /// authenticator).
    #[error("identity.oidc.ca_file `{path}`: {reason}")]
    CaFile {
        /// The file, as configured.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTPS client for the JWKS URL could not be set up (when building the authenticator),
    /// such as when the platform has no root certificates and no `ca_file` is configured.
    #[error("identity.oidc.jwks: cannot set up the HTTPS client: {0} (with no root certificates on this machine, name the provider's certificate authority in identity.oidc.ca_file)")]
    JwksClient(String),
    /// A user's token variable is not set (when building the authenticator).
    #[error("users.{user}: environment variable `{var}` is not set or empty")]
    MissingUserToken {
        /// The user.
        user: String,
        /// The variable.
        var: String,
    },
}

/// Authenticates people by a bearer credential: a local user token or an identity provider's
/// JWT. Shared behind an `Arc`; key refreshes need no restart.
pub struct Authenticator {
    local: LocalTokens,
    oidc: Option<OidcVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("local", &self.local)
            .field("oidc", &self.oidc.as_ref().map(|o| &o.config.issuer))
            .finish()
    }
}

impl Authenticator {
    /// Build from a loaded configuration. `base_dir` is the folder of `warden.toml` (a JWKS file
    /// and `identity.oidc.ca_file` are relative to it; the CA file is read here, so a missing or
    /// broken one is an error at start); `env` reads an environment variable (the users'
    /// tokens). A user whose variable is unset or empty is an error: a configured person who
    /// cannot sign in is a deployment mistake, not something to skip quietly.
    pub fn from_config(
        config: &Config,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Authenticator, IdentityError> {
        Authenticator::with_refresh(config, base_dir, env, RefreshPolicy::default())
    }

    /// [`Authenticator::from_config`] with a chosen key refresh policy.
    pub fn with_refresh(
        config: &Config,
        base_dir: &Path,
        env: impl Fn(&str) -> Option<String>,
        refresh: RefreshPolicy,
    ) -> Result<Authenticator, IdentityError> {
        let mut pairs = Vec::new();
        for (user, u) in &config.identity.users {
            match env(&u.token_env).filter(|t| !t.is_empty()) {
                Some(token) => pairs.push((user.clone(), token)),
                None => {
                    return Err(IdentityError::MissingUserToken {
                        user: user.clone(),
                        var: u.token_env.clone(),
                    })
                }
            }
        }
        let oidc = match config.identity.oidc.as_ref() {
            None => None,
            Some(o) => {
                let source = match &o.jwks {
                    JwksSource::File(f) => KeySource::File(base_dir.join(f)),
                    JwksSource::Url(u) => {
                        let ca = o.ca_file.as_deref().map(|f| (base_dir.join(f), f));
                        KeySource::Url {
                            url: u.clone(),
                            client: jwks::client(ca.as_ref().map(|(p, f)| (p.as_path(), *f)))?,
                        }
                    }
                };
                let users: HashSet<String> =
                    config.directory.user_ids().map(str::to_string).collect();
                Some(OidcVerifier {
                    config: o.clone(),
                    keys: KeyCache::new(source, refresh),
                    users: Arc::new(users),
                })
            }
        };
        Ok(Authenticator {
            local: LocalTokens::new(pairs),
            oidc,
        })
    }

    /// Who presents `bearer`: a local user token first, else a JWT of the identity provider.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, IdentityError> {
        if bearer.len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        if let Some(user) = self.local.find(bearer) {
            return Ok(Principal {
                user: user.to_string(),
                method: AuthMethod::Local,
                subject: None,
                issuer: None,
                expires_at: None,
            });
        }
        match &self.oidc {
            Some(oidc) if looks_like_jwt(bearer) => oidc.verify(bearer).await,
            _ => Err(IdentityError::UnknownToken),
        }
    }
}
