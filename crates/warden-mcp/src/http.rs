//! `warden serve`: streamable HTTP at `/mcp`, behind bearer-token authentication.
//!
//! Each agent's token is the value of the environment variable its `token_env` names. A request
//! without a valid `Authorization: Bearer <token>` gets HTTP 401 and never reaches MCP. Tokens
//! are compared as SHA-256 digests in constant time, against every agent (no early exit). The
//! `Authorization` header is removed from the request once checked, so nothing behind the layer
//! (handler, upstreams, logs) ever sees it.
//!
//! The person the agent acts for and the mission come from the headers `X-Warden-Principal`,
//! `X-Warden-Mission` (a template name) and `X-Warden-Purpose`. This is a stand-in: signed
//! mission tokens will replace these headers, and then a caller can no longer name its own
//! mission.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::fastpath::{self, FastPath};
use crate::front::{self, Front};
use crate::gateway::{Gateway, Identity};
use crate::handler::{WardenHandler, MISSION_HEADER, PRINCIPAL_HEADER, PURPOSE_HEADER};
use crate::listener::{self, Limits};
use crate::owners::Owners;
use crate::session_caps::{self, SessionCaps};
use crate::tasks_http::TasksHttp;
use crate::GatewayError;

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

/// The axum router: `/mcp` behind the authentication layer, with the `tools/call` fast path.
pub fn router(gateway: Arc<Gateway>, tokens: Tokens, cancel: CancellationToken) -> axum::Router {
    router_with(gateway, tokens, cancel, true)
}

/// The axum router, with or without the `tools/call` fast path in front of rmcp (without it,
/// rmcp answers every request; the answers are the same, which the tests hold both paths to).
///
/// Layers, outermost first: authentication ([`authenticate`]), the front door
/// ([`crate::front::guard`]: session ownership, the initialization gate, malformed bodies),
/// tasks ([`crate::tasks_http::tasks`]), the fast path ([`fastpath::fast_call`]) when
/// `fast_path`, the session caps
/// ([`session_caps::limit`]: `initialize` refused beyond `[serve] max_sessions` and
/// `max_sessions_per_agent`), and rmcp.
pub fn router_with(
    gateway: Arc<Gateway>,
    tokens: Tokens,
    cancel: CancellationToken,
    fast_path: bool,
) -> axum::Router {
    let serve = &gateway.settings().serve;
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(cancel);
    config.max_request_body_bytes = serve.max_message_bytes;
    if !serve.allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(serve.allowed_hosts.clone());
    }
    let listen_loopback = serve
        .listen
        .parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(true);
    if serve.allowed_hosts.is_empty() && !listen_loopback {
        config = config.disable_allowed_hosts();
    }
    let gw = gateway.clone();
    // Idle sessions are closed by `fastpath::sweep`, which sees the calls rmcp does not.
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = None;
    let sessions = Arc::new(sessions);
    let stop = config.cancellation_token.clone();
    let allowed_hosts = config.allowed_hosts.clone();
    let service: StreamableHttpService<WardenHandler, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(WardenHandler::for_http(gw.clone())),
            sessions.clone(),
            config,
        );
    let owners = Arc::new(Owners::default());
    let caps = Arc::new(SessionCaps::new(
        serve.max_sessions,
        serve.max_sessions_per_agent,
        serve.max_message_bytes,
        sessions.clone(),
    ));
    let tasks = Arc::new(TasksHttp {
        gateway: gateway.clone(),
        sessions: sessions.clone(),
        max_bytes: serve.max_message_bytes,
        answering: Default::default(),
    });
    let fast = Arc::new(FastPath {
        gateway: gateway.clone(),
        sessions,
        max_bytes: serve.max_message_bytes,
        allowed_hosts,
        inflight: Default::default(),
    });
    let front = Arc::new(Front {
        owners: owners.clone(),
        max_bytes: serve.max_message_bytes,
    });
    tokio::spawn(fastpath::sweep(fast.clone(), owners, stop));
    let mut app = axum::Router::new().nest_service(MCP_PATH, service).layer(
        axum::middleware::from_fn_with_state(caps, session_caps::limit),
    );
    if fast_path {
        app = app.layer(axum::middleware::from_fn_with_state(
            fast,
            fastpath::fast_call,
        ));
    }
    app = app.layer(axum::middleware::from_fn_with_state(
        tasks,
        crate::tasks_http::tasks,
    ));
    app.layer(axum::middleware::from_fn_with_state(front, front::guard))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(tokens),
            authenticate,
        ))
}

/// Serve `gateway` on `listener` until `shutdown` completes, with the timeouts and connection
/// caps of `[serve]` ([`crate::listener`]).
///
/// # Errors
/// When the server task fails.
pub async fn serve(
    gateway: Arc<Gateway>,
    tokens: Tokens,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    serve_with(gateway, tokens, listener, axum::Router::new(), shutdown).await
}

/// [`serve`], with `routes` served beside [`MCP_PATH`] on the same listener and limits but
/// outside its authentication (health checks, …). `routes` must not route [`MCP_PATH`], which
/// keeps its own layers.
///
/// # Errors
/// When the server task fails.
pub async fn serve_with(
    gateway: Arc<Gateway>,
    tokens: Tokens,
    listener: tokio::net::TcpListener,
    routes: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let cancel = CancellationToken::new();
    let limits = Limits::from_settings(&gateway.settings().serve);
    let app = routes.merge(router(gateway, tokens, cancel.child_token()));
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    // The accept loop runs on a runtime worker, not on the thread that called `serve`, so a
    // new connection is not a wake-up of that thread and a hand-off to a worker.
    let task = tokio::spawn(listener::serve(listener, app, limits, cancel.clone()));
    let served = task
        .await
        .map_err(|e| std::io::Error::other(format!("the HTTP server task failed: {e}")));
    cancel.cancel();
    served?;
    Ok(())
}
