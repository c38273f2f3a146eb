//! Warden's MCP gateway: an MCP server to the agent, an MCP client to each upstream server, and
//! the decision engine in between.
//!
//! ```text
//! agent ──MCP──▶ WardenHandler ──▶ Gateway::call_tool ──▶ Enforcer::decide (warden-enforce)
//!                                      │ decide, audit (durably), commit ── a store failure denies
//!                                      │ deny / ask ─▶ tool result with isError and the reason
//!                                      └ allow ─▶ Enforcer::forward ─▶ Upstream::call(Permitted<Call>)
//!                                                 ─▶ absorb (durably) ─▶ agent
//! ```
//!
//! # Parts
//!
//! - [`settings`]: the `[servers]` and `[serve]` tables of `warden.toml`, validated with every
//!   problem reported at once.
//! - [`upstream`]: one supervised connection per upstream server (a child process over stdio,
//!   streamable HTTP, or an in-process duplex). A crashed upstream is restarted with backoff;
//!   its lists are cached and refreshed on `notifications/*/list_changed` and on every
//!   reconnect. What an upstream sends about a request in flight (progress, log messages, and
//!   sampling, roots and elicitation requests, which are decided) goes to that request's agent
//!   only ([`upstream::relay`]); only the client capabilities the catalog describes are
//!   advertised upstream.
//! - [`gateway`]: MCP requests through the enforcement pipeline ([`gateway::pipeline`]) and the
//!   sessions (each with its granted mission, whose state the pipeline keeps in the store);
//!   the calls of a session run at once, each output absorbed before its agent
//!   receives it. Resources, prompts and completions ([`gateway::reads`]), subscriptions
//!   ([`gateway::subscriptions`]), calls in rounds for 2026-07-28 clients ([`gateway::rounds`]).
//!   `docs/mcp.md` describes every MCP feature through Warden.
//! - [`handler`]: the rmcp `ServerHandler` the agent talks to.
//! - [`stdio`] and [`http`]: the downstream transports (`warden proxy`, `warden serve`).
//! - [`front`]: the layer in front of both HTTP paths: a session is served only for the token
//!   that opened it ([`owners`]), requests wait for `notifications/initialized`, malformed
//!   bodies get JSON-RPC errors.
//! - [`naming`]: sessions are named in logs and texts by a keyed hash of their id.
//! - [`listener`] is `warden serve`'s accept loop: header, body and idle timeouts, and caps on
//!   connections overall and per peer that shed the longest-idle connection first;
//!   [`session_caps`] caps the MCP sessions open at once, overall and per agent.
//! - [`fastpath`]: `warden serve` answers `tools/call` in an MCP session it already serves in
//!   front of rmcp (same pipeline, one parse, one JSON response); everything else goes to rmcp.
//!   `tools/call` to an `http://` upstream goes out as one JSON-RPC POST over kept-alive
//!   connections (`rawhttp`), in the one MCP session the supervised rmcp client holds with
//!   that upstream (`upstream::session`); lists, resources, prompts and health stay on that
//!   client.
//!
//! # Invariants
//!
//! - Only a [`warden_enforce::Permitted`] call can be forwarded: [`upstream::Upstream::call`]
//!   takes one by value, and only the enforcer makes them, once the decision is durably in the
//!   audit chain; if it cannot be written the call is denied.
//! - The client's `Authorization` header and Warden's own agent tokens never reach an upstream:
//!   the HTTP front strips the header after authenticating, upstream HTTP clients send no
//!   credentials, and child processes are started without the agents' token variables.
//! - A tool the mission may never use is absent from `tools/list`; a call to it is still decided
//!   (and logged, as an `unexposed` entry) and answered with the reason.

pub mod auth;
pub mod error;
pub mod fastpath;
pub mod front;
pub mod gateway;
pub mod handler;
pub mod http;
pub mod listener;
pub mod naming;
pub mod owners;
pub mod session_caps;
pub mod settings;
pub mod stdio;
pub mod tasks_http;
pub mod upstream;

pub use error::GatewayError;
pub use gateway::{Caller, Claim, Gateway, Identity, Session};
pub use handler::WardenHandler;
pub use settings::{GatewaySettings, ServeSettings, Transport, UpstreamSettings};
pub use upstream::{Connector, Deadline, Note, Relay, Upstream, UpstreamError, UpstreamStatus};

/// Milliseconds since the Unix epoch (the gateway owns the clock; the core is handed the time).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
