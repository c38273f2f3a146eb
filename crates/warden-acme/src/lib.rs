//! The Acme reference MCP server.
//!
//! Acme (see `shared/ACME.md`) is the company Warden's demo, examples and acceptance tests
//! protect. This crate serves its tools over real MCP (the `rmcp` crate) with seeded,
//! deterministic, fictional data held in memory:
//!
//! | server | tools |
//! | --- | --- |
//! | `forum` | `list_threads`, `read_thread`, `post_reply`, `create_post`, `send_dm` |
//! | `logs` | `query_logs` |
//! | `hr` | `search_employees` |
//! | `files` | `read_file`, `write_file` |
//! | `acl` | `get_acl`, `grant_access` |
//! | `web` | `fetch` |
//! | `mail` | `send_email` |
//!
//! One [`AcmeServer`] exposes every tool as `server.tool` (e.g. `forum.read_thread`);
//! [`AcmeServer::only`] exposes one server's tools under their bare names (e.g. `read_thread`),
//! which is how Warden runs Acme as several upstream servers. [`AcmeServer::with_employees`]
//! (`--employees N` on the command line) serves an HR directory of N people, the seeded ones
//! then generated ones, which `search_employees` pages through (`limit`, and `cursor` from a
//! page's `next_cursor`, or `offset`).
//!
//! Transports: [`serve_stdio`] / [`serve_stdio_for`] (one session over stdin/stdout),
//! [`serve_http`] / [`serve_http_for`] / [`serve_http_with_shutdown`] (streamable HTTP at
//! [`MCP_PATH`], one shared state for all sessions), and [`serve_transport`] for any rmcp
//! transport (e.g. an in-process `tokio::io::duplex`). [`cli::run`] is the command line the
//! `acme-mcp` binary and `warden acme-mcp` share.

pub mod cli;
mod delay;
mod filter;
mod hr;
mod rng;
mod seed;
mod server;
mod state;
mod tools;

use std::future::Future;
use std::sync::Arc;

use rmcp::service::ServerInitializeError;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{IntoTransport, StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServiceExt};
use tokio_util::sync::CancellationToken;

pub use delay::DELAY_ENV;
pub use server::AcmeServer;
pub use state::{DirectMessage, SentEmail};

/// The servers Acme is made of, in the order of ACME.md's tool table.
pub const SERVERS: &[&str] = &["forum", "logs", "hr", "files", "acl", "web", "mail"];

/// Every tool as `(server, tool)`; the full MCP name is `server.tool`, and a server started with
/// [`AcmeServer::only`] names its tools `tool`.
pub const TOOLS: &[(&str, &str)] = &[
    ("forum", "list_threads"),
    ("forum", "read_thread"),
    ("forum", "post_reply"),
    ("forum", "create_post"),
    ("forum", "send_dm"),
    ("logs", "query_logs"),
    ("hr", "search_employees"),
    ("files", "read_file"),
    ("files", "write_file"),
    ("acl", "get_acl"),
    ("acl", "grant_access"),
    ("web", "fetch"),
    ("mail", "send_email"),
];

/// The HTTP path the streamable HTTP transport is served at.
pub const MCP_PATH: &str = "/mcp";

/// Why serving Acme failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The name is not one of [`SERVERS`].
    #[error("unknown Acme server `{0}` (servers: forum, logs, hr, files, acl, web, mail)")]
    UnknownServer(String),
    /// The MCP session could not be initialized.
    #[error("MCP initialization failed: {0}")]
    Initialize(Box<ServerInitializeError>),
    /// The task serving the session failed.
    #[error("MCP session task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// Listening or accepting failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ServerInitializeError> for AcmeError {
    fn from(error: ServerInitializeError) -> Self {
        AcmeError::Initialize(Box::new(error))
    }
}

/// Serves `server` over one rmcp transport until the peer closes it.
///
/// `transport` is anything rmcp turns into a server transport: `rmcp::transport::stdio()`, a
/// `(reader, writer)` pair, a `tokio::io::DuplexStream`, a TCP stream, …
///
/// # Errors
/// When the MCP handshake fails or the session task fails.
pub async fn serve_transport<T, E, A>(server: AcmeServer, transport: T) -> Result<(), AcmeError>
where
    T: IntoTransport<RoleServer, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let running = server.serve(transport).await?;
    running.waiting().await?;
    Ok(())
}

/// Serves every Acme tool (dotted names) for one MCP session over stdin/stdout.
///
/// # Errors
/// See [`serve_transport`].
pub async fn serve_stdio() -> Result<(), AcmeError> {
    serve_stdio_for(None).await
}

/// Serves one Acme server's tools (bare names), or all of them for `None`, for one MCP session
/// over stdin/stdout.
///
/// # Errors
/// [`AcmeError::UnknownServer`], or see [`serve_transport`].
pub async fn serve_stdio_for(server: Option<&str>) -> Result<(), AcmeError> {
    let acme = AcmeServer::new().subset(server)?;
    serve_transport(acme, rmcp::transport::stdio()).await
}

/// The streamable HTTP service for `server` (to mount at [`MCP_PATH`]). Every session is served
/// by a clone of `server`, so all sessions share one state. Cancelling `cancel` ends every
/// session.
///
/// Stateful sessions (`Mcp-Session-Id`) are used for clients that initialize with a protocol
/// version before 2026-07-28; later versions are served statelessly, as rmcp does. `Host` headers
/// are checked against rmcp's loopback default unless `any_host` is true.
pub fn http_service(
    server: AcmeServer,
    cancel: CancellationToken,
    any_host: bool,
) -> StreamableHttpService<AcmeServer, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default().with_cancellation_token(cancel);
    if any_host {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// An axum router serving `server` at [`MCP_PATH`]; see [`http_service`].
pub fn router(server: AcmeServer, cancel: CancellationToken, any_host: bool) -> axum::Router {
    axum::Router::new().nest_service(MCP_PATH, http_service(server, cancel, any_host))
}

/// Serves every Acme tool (dotted names) over streamable HTTP at [`MCP_PATH`] on `listener`,
/// until the listener fails. All sessions share one state.
///
/// # Errors
/// When accepting connections fails.
pub async fn serve_http(listener: tokio::net::TcpListener) -> Result<(), AcmeError> {
    serve_http_for(listener, None).await
}

/// Serves one Acme server's tools (bare names), or all of them for `None`, over streamable HTTP
/// at [`MCP_PATH`] on `listener`.
///
/// # Errors
/// [`AcmeError::UnknownServer`], or when accepting connections fails.
pub async fn serve_http_for(
    listener: tokio::net::TcpListener,
    server: Option<&str>,
) -> Result<(), AcmeError> {
    let acme = AcmeServer::new().subset(server)?;
    serve_http_with_shutdown(listener, acme, std::future::pending()).await
}

/// Serves `server` over streamable HTTP at [`MCP_PATH`] on `listener` until `shutdown`
/// completes; then every session is ended and the function returns.
///
/// A listener bound to a loopback address accepts only loopback `Host` headers (rmcp's DNS
/// rebinding protection); a listener bound to any other address accepts every `Host`.
///
/// # Errors
/// When reading the listener's address or accepting connections fails.
pub async fn serve_http_with_shutdown(
    listener: tokio::net::TcpListener,
    server: AcmeServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AcmeError> {
    let any_host = !listener.local_addr()?.ip().is_loopback();
    let cancel = CancellationToken::new();
    let app = router(server, cancel.child_token(), any_host);
    let stop = cancel.clone();
    // Like Node's and Python's HTTP servers: TCP_NODELAY, so the head and the events of an SSE
    // response are not held back for a kept-alive client's acknowledgement.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await?;
    cancel.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_table_matches_the_specs() {
        let specs: Vec<(&str, &str)> = tools::SPECS.iter().map(|s| (s.server, s.tool)).collect();
        assert_eq!(specs, TOOLS);
        for (server, _) in TOOLS {
            assert!(SERVERS.contains(server));
        }
    }
}
