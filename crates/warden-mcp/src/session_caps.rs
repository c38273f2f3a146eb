//! Caps on the MCP sessions of `warden serve`: at most `[serve] max_sessions` open at once, and
//! at most `[serve] max_sessions_per_agent` per agent.
//!
//! Only `initialize` opens a session (rmcp creates it, and its worker, before Warden's handler
//! sees the request), so the cap is checked in front of rmcp, in a layer behind authentication:
//! a `POST` without `Mcp-Session-Id` whose body may be an `initialize` takes a slot for its
//! agent, or is refused; the slot is kept if the answer names a new session. A session gives its
//! slot back when rmcp no longer holds it (closed with `DELETE`, reaped idle, or failed): the
//! slots are checked against rmcp's sessions whenever a cap is reached.
//!
//! A refusal is HTTP 503 with `Retry-After` and a JSON-RPC error naming the cap. 503 rather than
//! 429: rmcp's client drops the body of a 429 and reports only the status, while it reads a 5xx
//! JSON body and surfaces its JSON-RPC error to the caller (the TypeScript SDK shows the body of
//! either).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Authenticated;

const SESSION_ID: &str = "mcp-session-id";

/// The session caps and the sessions they count.
pub struct SessionCaps {
    max_sessions: usize,
    max_per_agent: usize,
    max_bytes: usize,
    sessions: Arc<LocalSessionManager>,
    held: Mutex<Held>,
}

impl std::fmt::Debug for SessionCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCaps")
            .field("max_sessions", &self.max_sessions)
            .field("max_per_agent", &self.max_per_agent)
            .finish_non_exhaustive()
    }
}

/// Slots taken: open sessions by id, and per agent its open and opening sessions.
#[derive(Default)]
struct Held {
    open: HashMap<String, String>,
    per_agent: HashMap<String, usize>,
    opening: usize,
}

impl Held {
    fn give_back(&mut self, agent: &str) {
        if let Some(n) = self.per_agent.get_mut(agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_agent.remove(agent);
            }
        }
    }
}

/// Which cap refused a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    Overall(usize),
    PerAgent(usize),
}

/// A slot taken by an `initialize` in progress; given back unless it opened a session.
struct Opening {
    caps: Arc<SessionCaps>,
    agent: String,
    settled: bool,
}

impl Opening {
    /// The request ended; `session` is the id of the session it opened, if any.
    fn settle(mut self, session: Option<String>) {
        let mut held = self.caps.held();
        held.opening = held.opening.saturating_sub(1);
        match session {
            Some(sid) => {
                held.open.insert(sid, self.agent.clone());
            }
            None => held.give_back(&self.agent),
        }
        self.settled = true;
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if !self.settled {
            let mut held = self.caps.held();
            held.opening = held.opening.saturating_sub(1);
            held.give_back(&self.agent);
        }
    }
}

impl SessionCaps {
    /// Caps over the sessions of `sessions`; request bodies larger than `max_bytes` are refused.
    pub fn new(
        max_sessions: usize,
        max_per_agent: usize,
        max_bytes: usize,
        sessions: Arc<LocalSessionManager>,
    ) -> SessionCaps {
        SessionCaps {
            max_sessions: max_sessions.max(1),
            max_per_agent: max_per_agent.max(1),
            max_bytes,
            sessions,
            held: Mutex::new(Held::default()),
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_take(&self, agent: &str) -> Result<(), Cap> {
        let mut held = self.held();
        if held.per_agent.get(agent).copied().unwrap_or(0) >= self.max_per_agent {
            return Err(Cap::PerAgent(self.max_per_agent));
        }
        if held.open.len() + held.opening >= self.max_sessions {
            return Err(Cap::Overall(self.max_sessions));
        }
        held.opening += 1;
        *held.per_agent.entry(agent.to_string()).or_insert(0) += 1;
        Ok(())
    }

    /// Take a slot for a session of `agent`, first giving back those of sessions rmcp no longer
    /// holds when a cap is reached.
    async fn take(self: &Arc<Self>, agent: &str) -> Result<Opening, Cap> {
        if self.try_take(agent).is_err() {
            let live: HashSet<String> = self
                .sessions
                .sessions
                .read()
                .await
                .keys()
                .map(|k| k.to_string())
                .collect();
            let mut held = self.held();
            let gone: Vec<(String, String)> = held
                .open
                .iter()
                .filter(|(sid, _)| !live.contains(*sid))
                .map(|(s, a)| (s.clone(), a.clone()))
                .collect();
            for (sid, agent) in gone {
                held.open.remove(&sid);
                held.give_back(&agent);
            }
            drop(held);
            self.try_take(agent)?;
        }
        Ok(Opening {
            caps: self.clone(),
            agent: agent.to_string(),
            settled: false,
        })
    }
}

/// Just enough of a JSON-RPC message to tell an `initialize`.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    id: Option<Value>,
}

fn refused(id: Value, cap: Cap, agent: &str) -> Response {
    let (key, limit, message) = match cap {
        Cap::PerAgent(n) => (
            "max_sessions_per_agent",
            n,
            format!(
                "agent `{agent}` already has {n} MCP sessions open, the most `[serve] max_sessions_per_agent` allows: close one (HTTP DELETE with its Mcp-Session-Id) or let one idle out, then try again"
            ),
        ),
        Cap::Overall(n) => (
            "max_sessions",
            n,
            format!(
                "Warden already has {n} MCP sessions open, the most `[serve] max_sessions` allows: try again later"
            ),
        ),
    };
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32000, "message": message, "data": {"cap": key, "limit": limit}},
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::RETRY_AFTER, "5"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The layer: refuses an `initialize` beyond the caps, and counts the sessions opened.
pub async fn limit(State(caps): State<Arc<SessionCaps>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.headers().contains_key(SESSION_ID) {
        return next.run(req).await;
    }
    let Some(agent) = req
        .extensions()
        .get::<Authenticated>()
        .map(|a| a.agent.clone())
    else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, caps.max_bytes).await {
        Ok(b) => b,
        Err(e) if too_large(&e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Payload Too Large: the request body is larger than {} bytes\n",
                    caps.max_bytes
                ),
            )
                .into_response()
        }
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}\n"),
            )
                .into_response()
        }
    };
    // Anything not surely another method may be an `initialize` to rmcp: it takes a slot.
    let probe = serde_json::from_slice::<Probe>(&bytes).ok();
    let req = Request::from_parts(parts, Body::from(bytes));
    if probe
        .as_ref()
        .is_some_and(|p| p.method.as_deref() != Some("initialize"))
    {
        return next.run(req).await;
    }
    let id = probe.and_then(|p| p.id).unwrap_or(Value::Null);
    let opening = match caps.take(&agent).await {
        Ok(o) => o,
        Err(cap) => return refused(id, cap, &agent),
    };
    // Run to the end even if the client leaves, so that the session rmcp opens is counted.
    let run = tokio::spawn(async move {
        let response = next.run(req).await;
        let sid = response
            .headers()
            .get(SESSION_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        opening.settle(sid);
        response
    });
    match run.await {
        Ok(response) => response,
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the initialize request failed: {e}\n"),
        )
            .into_response(),
    }
}
