//! Who is calling `/mcp`: the agents' bearer tokens, the authentication layer that checks them,
//! and the mission the agent presents.
//!
//! Each agent's token is the value of the environment variable its `token_env` names. A request
//! without a valid `Authorization: Bearer <token>` gets HTTP 401 and never reaches MCP. Tokens
//! are compared as SHA-256 digests in constant time, against every agent (no early exit). The
//! `Authorization` header is removed from the request once checked, so nothing behind the layer
//! (handler, upstreams, logs) ever sees it.
//!
//! The agent then presents its mission: a mission token in `X-Warden-Mission-Token`, granted by
//! the person it acts for and verified offline ([`warden_enforce::token`]); the mission must be
//! this agent's. A refused token gets HTTP 403 with the reason, and the refusal is audited.
//! The identity headers (`X-Warden-Principal`, `X-Warden-Mission`, `X-Warden-Purpose`), with
//! which an agent could name anyone, are believed only from the authenticating proxy of
//! `[identity.proxy]`, or when the operator started Warden with `--insecure-identity`
//! ([`crate::settings::ServeSettings::insecure_identity`]); otherwise they are refused.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::gateway::{Claim, Gateway, Identity};

/// Header naming the person the agent acts for.
pub const PRINCIPAL_HEADER: &str = "x-warden-principal";
/// Header naming the mission template.
pub const MISSION_HEADER: &str = "x-warden-mission";
/// Header with the principal's purpose (trusted text).
pub const PURPOSE_HEADER: &str = "x-warden-purpose";
/// Header with the mission token the person granted.
pub const MISSION_TOKEN_HEADER: &str = "x-warden-mission-token";
/// Header that separates the sessions of a stateless (2026-07-28) client, which has no
/// `Mcp-Session-Id`: requests with different values never share taint.
pub const SESSION_HEADER: &str = "x-warden-session";

/// The path MCP is served at.
pub const MCP_PATH: &str = "/mcp";

/// Put on a request by the authentication layer: the agent its bearer token belongs to, and
/// the mission it presented.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The agent.
    pub agent: String,
    /// SHA-256 of the agent's token and of the mission token it presented (the tokens
    /// themselves are not kept): a session belongs to both credentials.
    pub token: [u8; 32],
    /// The mission: verified from a mission token, or named by trusted identity headers.
    pub claim: Option<Arc<Claim>>,
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
        found.map(|agent| Authenticated {
            agent,
            token: d,
            claim: None,
        })
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

/// What the authentication layer needs: the agents' tokens and the gateway (its mission-token
/// verifier, its settings, its audit).
#[derive(Debug)]
pub struct AuthState {
    /// The agents' tokens.
    pub tokens: Tokens,
    /// The gateway.
    pub gateway: Arc<Gateway>,
}

/// The authentication layer: 401 unless the bearer token belongs to an agent; 403 unless the
/// agent presents a mission it may act under (see the module doc).
pub async fn authenticate(
    State(state): State<Arc<AuthState>>,
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
    let Some(mut auth) = state.tokens.check(token.trim()) else {
        return unauthorized("unknown bearer token\n");
    };
    req.headers_mut().remove(header::AUTHORIZATION);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match claim(&state.gateway, &auth.agent, req.headers(), peer).await {
        Ok(Some((claim, mission_digest))) => {
            if let Some(d) = mission_digest {
                let mut h = Sha256::new();
                h.update(auth.token);
                h.update(d);
                auth.token = h.finalize().into();
            }
            auth.claim = Some(Arc::new(claim));
        }
        Ok(None) => {}
        Err(refused) => return forbidden(&refused),
    }
    req.headers_mut().remove(MISSION_TOKEN_HEADER);
    req.extensions_mut().insert(auth);
    next.run(req).await
}

fn forbidden(msg: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("{msg}\n")).into_response()
}

/// The mission a request presents, and the digest of its mission token: a verified mission
/// token, or identity headers where they are trusted; none when it presents nothing (the
/// session cannot open then, and says why). A refused mission token is audited.
async fn claim(
    gateway: &Gateway,
    agent: &str,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> Result<Option<(Claim, Option<[u8; 32]>)>, String> {
    let proxy = gateway.engine().config().identity.proxy.as_ref();
    // What the agent itself may have written: never believed beside a mission token.
    let named = [PRINCIPAL_HEADER, MISSION_HEADER, PURPOSE_HEADER]
        .iter()
        .any(|h| headers.contains_key(*h));
    if let Some(value) = headers.get(MISSION_TOKEN_HEADER) {
        if named {
            return Err(format!(
                "a request presents either a mission token ({MISSION_TOKEN_HEADER}) or identity headers, not both"
            ));
        }
        // A proxy's own user header, set on every request it passes on, is not the agent's
        // claim: the token decides.
        let token = value
            .to_str()
            .map_err(|_| format!("header `{MISSION_TOKEN_HEADER}` must be visible ASCII"))?;
        let verified = gateway.verify_mission_token(agent, token).await?;
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        return Ok(Some((Claim::Token(Box::new(verified)), Some(digest))));
    }
    let proxy_named = proxy.is_some_and(|p| headers.contains_key(p.header.as_str()));
    if !named && !proxy_named {
        return Ok(None);
    }
    let from_proxy = matches!((proxy, peer), (Some(p), Some(ip)) if p.trusts(ip));
    if from_proxy {
        let p = proxy.map(|p| p.header.as_str()).unwrap_or(PRINCIPAL_HEADER);
        let mut who = identity_from_headers(agent, headers, p)?;
        who.proxied = true;
        return Ok(Some((Claim::Headers(who), None)));
    }
    if gateway.settings().serve.insecure_identity {
        let who = identity_from_headers(agent, headers, PRINCIPAL_HEADER)?;
        return Ok(Some((Claim::Headers(who), None)));
    }
    let reason = "identity headers (X-Warden-Principal, X-Warden-Mission) are not trusted from an \
                  agent: present the mission token the person granted in X-Warden-Mission-Token";
    gateway.audit_refusal(agent, None, reason).await;
    Err(reason.to_string())
}

/// The claim of an authenticated request, or the reason there is none.
///
/// # Errors
/// A message saying what to present.
pub fn claim_of(auth: &Authenticated) -> Result<Arc<Claim>, String> {
    auth.claim.clone().ok_or_else(|| {
        "no mission: present the mission token the person granted in X-Warden-Mission-Token"
            .to_string()
    })
}

/// The identity of a session from its agent and the identity headers; `principal` is the
/// header naming the person (the proxy's own header, or `X-Warden-Principal`).
///
/// # Errors
/// A message naming the missing or unreadable header.
pub fn identity_from_headers(
    agent: &str,
    headers: &HeaderMap,
    principal: &str,
) -> Result<Identity, String> {
    let get = |name: &str, required: bool| -> Result<String, String> {
        match headers.get(name) {
            None if required => Err(format!(
                "missing header `{name}`: say who the agent acts for ({principal}) and under which mission template (X-Warden-Mission)"
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
        principal: get(principal, true)?,
        template: get(MISSION_HEADER, true)?,
        purpose: get(PURPOSE_HEADER, false)?,
        proxied: false,
    })
}
