//! `warden serve`: streamable HTTP at `/mcp`, behind bearer-token authentication.
//!
//! Who the caller is (tokens, the authentication layer, the identity headers) is decided in
//! [`crate::auth`]; its items are re-exported here.
//!
//! The mission comes from the mission token in `X-Warden-Mission-Token`, which the person the
//! agent acts for granted; identity headers are believed only from a trusted proxy or with
//! `--insecure-identity` (see [`crate::auth`]).

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::fastpath::{self, FastPath};
use crate::front::{self, Front};
use crate::gateway::Gateway;
use crate::handler::WardenHandler;
use crate::listener::{self, Limits};
use crate::owners::Owners;
use crate::session_caps::{self, SessionCaps};
use crate::tasks_http::TasksHttp;
use crate::GatewayError;

pub use crate::auth::{
    authenticate, identity_from_headers, AuthState, Authenticated, Tokens, MCP_PATH,
    MISSION_HEADER, MISSION_TOKEN_HEADER, PRINCIPAL_HEADER, PURPOSE_HEADER, SESSION_HEADER,
};

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
    let auth = Arc::new(AuthState {
        tokens,
        gateway: gateway.clone(),
    });
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
        .layer(axum::middleware::from_fn_with_state(auth, authenticate))
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
