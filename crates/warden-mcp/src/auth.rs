//! Who is calling `/mcp`: the agents' bearer tokens, the authentication layer that checks them,
//! and the identity headers a session names its principal and mission with.
//!
//! Each agent's token is the value of the environment variable its `token_env` names. A request
//! without a valid `Authorization: Bearer <token>` gets HTTP 401 and never reaches MCP. Tokens
//! are compared as SHA-256 digests in constant time, against every agent (no early exit). The
//! `Authorization` header is removed from the request once checked, so nothing behind the layer
//! (handler, upstreams, logs) ever sees it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::gateway::Identity;

/// Header naming the person the agent acts for.
pub const PRINCIPAL_HEADER: &str = "x-warden-principal";
/// Header naming the mission template.
pub const MISSION_HEADER: &str = "x-warden-mission";
/// Header with the principal's purpose (trusted text).
pub const PURPOSE_HEADER: &str = "x-warden-purpose";
/// Header that separates the sessions of a stateless (2026-07-28) client, which has no
/// `Mcp-Session-Id`: requests with different values never share taint.
pub const SESSION_HEADER: &str = "x-warden-session";

/// The path MCP is served at.
pub const MCP_PATH: &str = "/mcp";

/// Put on a request by the authentication layer: the agent its bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The agent.
    pub agent: String,
    /// SHA-256 of the token (the token itself is not kept).
    pub token: [u8; 32],
}

/// The agents' token digests.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field(
                "agents",
                &self.digests.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

impl Tokens {
    /// Tokens from `(agent, token)` pairs; empty tokens are ignored.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tokens {
        Tokens {
            digests: pairs
                .into_iter()
                .filter(|(_, t)| !t.is_empty())
                .map(|(a, t)| (a.to_string(), digest(t)))
                .collect(),
        }
    }

    /// Read each agent's token from the environment variable its `token_env` names. Returns the
    /// tokens and a warning per agent that cannot authenticate.
    pub fn from_env(engine: &warden_core::Engine) -> (Tokens, Vec<String>) {
        let mut pairs = Vec::new();
        let mut warnings = Vec::new();
        for (id, a) in &engine.config().agents {
            match &a.token_env {
                None => warnings.push(format!(
                    "agent `{id}` has no `token_env`: it cannot connect over HTTP"
                )),
                Some(var) => match std::env::var(var) {
                    Ok(t) if !t.is_empty() => pairs.push((id.clone(), t)),
                    _ => warnings.push(format!(
                        "agent `{id}`: environment variable `{var}` is not set: it cannot connect over HTTP"
                    )),
                },
            }
        }
        (
            Tokens::new(pairs.iter().map(|(a, t)| (a.as_str(), t.as_str()))),
            warnings,
        )
    }

    /// The agent whose token this is.
    pub fn check(&self, token: &str) -> Option<Authenticated> {
        let d = digest(token);
        let mut found = None;
        for (agent, td) in &self.digests {
            if ct_eq(&d, td) && found.is_none() {
                found = Some(agent.clone());
            }
        }
        found.map(|agent| Authenticated { agent, token: d })
    }

    /// How many agents can authenticate.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// True when no agent can authenticate.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

fn unauthorized(msg: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"warden\"")],
        msg,
    )
        .into_response()
}

/// The authentication layer: 401 unless the bearer token belongs to an agent.
pub async fn authenticate(
    State(tokens): State<Arc<Tokens>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return unauthorized("missing `Authorization: Bearer <token>`\n");
    };
    // The scheme is case-insensitive (RFC 7235 §2.1); the token follows one or more spaces.
    let Some(token) = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
    else {
        return unauthorized("the Authorization header must be `Bearer <token>`\n");
    };
    let Some(auth) = tokens.check(token.trim()) else {
        return unauthorized("unknown bearer token\n");
    };
    req.headers_mut().remove(header::AUTHORIZATION);
    req.extensions_mut().insert(auth);
    next.run(req).await
}

/// The identity of a session from its agent and the identity headers.
///
/// # Errors
/// A message naming the missing or unreadable header.
pub fn identity_from_headers(agent: &str, headers: &HeaderMap) -> Result<Identity, String> {
    let get = |name: &str, required: bool| -> Result<String, String> {
        match headers.get(name) {
            None if required => Err(format!(
                "missing header `{name}`: say who the agent acts for (X-Warden-Principal) and under which mission template (X-Warden-Mission)"
            )),
            None => Ok(String::new()),
            Some(v) => v
                .to_str()
                .map(|s| s.trim().to_string())
                .map_err(|_| format!("header `{name}` must be visible ASCII")),
        }
    };
    Ok(Identity {
        agent: agent.to_string(),
        principal: get(PRINCIPAL_HEADER, true)?,
        template: get(MISSION_HEADER, true)?,
        purpose: get(PURPOSE_HEADER, false)?,
    })
}
