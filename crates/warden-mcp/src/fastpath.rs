//! The `tools/call` fast path of `warden serve`.
//!
//! A `tools/call` in an MCP session that Warden already serves is handled here, in front of
//! rmcp's streamable HTTP service: the request is parsed once (id, tool name, arguments), run
//! through [`Gateway::call_tool`] exactly as the rmcp handler would run it, and answered with
//! one `application/json` JSON-RPC response. Every other request, and every `tools/call` this
//! path is not sure about (no known session, another token, a version or header it does not
//! check, a `Host` rmcp would refuse, an `Origin`, protocol keys in `_meta`, a batch, malformed
//! JSON), goes on to rmcp untouched (task-augmented calls never reach this path: see
//! `crate::tasks_http`),
//! which answers it or rejects it with the proper error. A call that asks for progress
//! (`_meta.progressToken`), or made in a session that asked for log messages, is answered with
//! an SSE stream instead (the notifications about the call, then its response) as soon as a
//! notification comes; a call that completes first is answered with JSON all the same.
//!
//! Cancellation: the calls in flight on this path are known by session and request id; a
//! `notifications/cancelled` for one of them is taken here (`202 Accepted`) and cancels it, so
//! the upstream request is cancelled in turn.
//!
//! Sessions: rmcp keeps no idle timer here (its keep-alive is off, since calls on this path do
//! not pass through it); [`sweep`] closes sessions idle for [`IDLE`] instead, counting both
//! paths' requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, JsonObject, ProgressToken};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticated, MCP_PATH};
use crate::front::{header, is_json, read_body};
use crate::gateway::{Caller, Gateway};
use crate::owners::Owners;

/// An MCP session with no request for this long is closed.
pub const IDLE: Duration = Duration::from_secs(300);
/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Protocol versions whose `tools/call` this path answers (the session-based revisions).
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What the fast path needs.
pub struct FastPath {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// rmcp's session manager (to check a session is still open, and to close idle ones).
    pub sessions: Arc<LocalSessionManager>,
    /// The largest request body accepted.
    pub max_bytes: usize,
    /// The `Host` values rmcp accepts (DNS-rebinding protection); empty accepts every host.
    /// A request whose `Host` is not among them goes on to rmcp, which refuses it.
    pub allowed_hosts: Vec<String>,
    /// The calls in flight on this path, by session id and JSON-RPC id.
    pub inflight: InFlightCalls,
}

type CallMap = HashMap<(String, String), CancellationToken>;

/// The calls in flight on the fast path: their cancellation, by session and request id.
#[derive(Default, Clone)]
pub struct InFlightCalls(Arc<std::sync::Mutex<CallMap>>);

impl InFlightCalls {
    fn map(&self) -> std::sync::MutexGuard<'_, CallMap> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `cancel` under (`sid`, `id`) until the guard is dropped.
    fn track(&self, sid: &str, id: &Value, cancel: CancellationToken) -> Tracked {
        let key = (sid.to_string(), id.to_string());
        self.map().insert(key.clone(), cancel);
        Tracked {
            calls: self.clone(),
            key,
        }
    }

    /// Cancel call `id` of session `sid`; false when no such call is in flight here.
    fn cancel(&self, sid: &str, id: &Value) -> bool {
        match self.map().get(&(sid.to_string(), id.to_string())) {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }
}

struct Tracked {
    calls: InFlightCalls,
    key: (String, String),
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.calls.map().remove(&self.key);
    }
}

/// `notifications/cancelled`, as far as this path reads it.
#[derive(Deserialize)]
struct Cancelled {
    jsonrpc: String,
    method: String,
    params: CancelledParams,
}

#[derive(Deserialize)]
struct CancelledParams {
    #[serde(rename = "requestId")]
    request_id: Value,
}

/// `host` or `host:port`, lowercased, without IPv6 brackets.
fn authority(value: &str) -> Option<(String, Option<u16>)> {
    let a = http::uri::Authority::try_from(value.trim()).ok()?;
    let host = a.host().trim_matches(['[', ']']).to_ascii_lowercase();
    Some((host, a.port_u16()))
}

/// The same rule as rmcp's: the host must equal an allowed host, and its port too when the
/// allowed entry names one.
fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some((host, port)) = header(headers, "host").and_then(authority) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|a| authority(a))
        .any(|(h, p)| h == host && p.is_none_or(|p| port == Some(p)))
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallRequest {
    jsonrpc: String,
    id: Value,
    method: String,
    params: CallParams,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallParams {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
    /// Request metadata (a progress token, trace context). Keys of the protocol's own
    /// namespace send the request to rmcp.
    #[serde(default, rename = "_meta")]
    meta: Option<JsonObject>,
}

#[derive(Serialize)]
struct CallResponse<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    result: &'a CallToolResult,
}

/// Whether the `Accept` headers name both `application/json` and `text/event-stream`. Only
/// plain lists are read here: a value with parameters or quotes (`q=0`, quoted commas) makes
/// this path step aside, and rmcp applies its full rule.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for v in headers.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else {
            return false;
        };
        if v.contains([';', '"']) {
            return false;
        }
        for part in v.split(',') {
            let essence = part.trim();
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && sse
}

/// The middleware: answers the `tools/call` requests it can, passes on everything else.
pub async fn fast_call(State(fast): State<Arc<FastPath>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST
        || req.uri().path() != MCP_PATH
        || !accepts_json_and_sse(req.headers())
        || !is_json(req.headers())
        || req
            .headers()
            .get("mcp-protocol-version")
            .is_some_and(|v| !v.to_str().is_ok_and(|v| VERSIONS.contains(&v)))
        // Browsers' requests (Origin) and SEP-2243 parameter headers are rmcp's to check.
        || req.headers().contains_key(header::ORIGIN)
        || req
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("mcp-param-"))
        || !host_allowed(req.headers(), &fast.allowed_hosts)
    {
        return next.run(req).await;
    }
    let Some(sid) = header(req.headers(), "mcp-session-id").map(str::to_string) else {
        return next.run(req).await;
    };
    let Some(session) = fast.gateway.find_http_session(&sid) else {
        return next.run(req).await;
    };
    let same_token = req
        .extensions()
        .get::<Authenticated>()
        .is_some_and(|a| session.token() == Some(&a.token));
    if !same_token {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match read_body(body, fast.max_bytes).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    if let Ok(c) = serde_json::from_slice::<Cancelled>(&bytes) {
        if c.jsonrpc == "2.0"
            && c.method == "notifications/cancelled"
            && fast.inflight.cancel(&sid, &c.params.request_id)
        {
            return StatusCode::ACCEPTED.into_response();
        }
    }
    let call = match serde_json::from_slice::<CallRequest>(&bytes) {
        Ok(c)
            if c.jsonrpc == "2.0"
                && c.method == "tools/call"
                && (c.id.is_string() || c.id.is_i64() || c.id.is_u64())
                && c.params.meta.as_ref().is_none_or(|m| {
                    !m.keys().any(|k| k.starts_with("io.modelcontextprotocol/"))
                })
                && header(&parts.headers, "mcp-method").is_none_or(|m| m == "tools/call")
                && header(&parts.headers, "mcp-name").is_none_or(|n| n == c.params.name) =>
        {
            c
        }
        _ => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let open = fast
        .sessions
        .has_session(&sid.clone().into())
        .await
        .unwrap_or(false);
    // A session whose agent's client may be asked for its principal's consent goes to rmcp,
    // which can put an elicitation to the client while the call is held.
    let elicits = fast
        .gateway
        .engine()
        .config()
        .approvals
        .elicit_consent
        .contains(&session.actor().mission.agent);
    if !open || elicits {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    fast.gateway.count_fast_call();
    let progress = call
        .params
        .meta
        .as_ref()
        .and_then(|m| m.get("progressToken"))
        .and_then(|v| serde_json::from_value::<ProgressToken>(v.clone()).ok());
    if progress.is_some() || session.log_level().is_some() {
        return streamed(&fast, &sid, session, call, progress).await;
    }
    // Dropped with this future when the client goes away: the upstream call is cancelled.
    let cancel = CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let _tracked = fast.inflight.track(&sid, &call.id, cancel.clone());
    let approval = approval_of(&call);
    let out = fast
        .gateway
        .call_tool(
            &session,
            &call.params.name,
            call.params.arguments,
            &Caller {
                approval,
                ..Caller::cancel_only(cancel)
            },
        )
        .await;
    match response_json(&call.id, out.result) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the result: {e}\n"),
        )
            .into_response(),
    }
}

/// The JSON-RPC response with `result` to request `id`.
fn response_json(id: &Value, mut result: CallToolResult) -> serde_json::Result<Vec<u8>> {
    // `resultType` belongs to 2026-07-28; the session-based revisions do not have it.
    result.result_type = None;
    serde_json::to_vec(&CallResponse {
        jsonrpc: "2.0",
        id,
        result: &result,
    })
}

/// One SSE event carrying `json`.
fn event(json: &[u8]) -> Bytes {
    let mut e = Vec::with_capacity(json.len() + 8);
    e.extend_from_slice(b"data: ");
    e.extend_from_slice(json);
    e.extend_from_slice(b"\n\n");
    Bytes::from(e)
}

/// Answer `call`, whose client may hear notes about it (progress for `progress`, log messages
/// at the session's level): as one JSON response when the call completes before any note, else
/// as an SSE stream of the notes and then the response. The client going away cancels the call.
/// The approval request the call names in its `_meta`, if any.
fn approval_of(call: &CallRequest) -> Option<String> {
    call.params
        .meta
        .as_ref()
        .and_then(|m| m.get(crate::handler::APPROVAL_META))
        .and_then(|v| v.as_str())
        .map(String::from)
}

async fn streamed(
    fast: &Arc<FastPath>,
    sid: &str,
    session: Arc<crate::gateway::Session>,
    call: CallRequest,
    progress: Option<ProgressToken>,
) -> Response {
    let cancel = CancellationToken::new();
    let cancel_on_drop = cancel.clone().drop_guard();
    let tracked = fast.inflight.track(sid, &call.id, cancel.clone());
    let (notes, mut rx) = tokio::sync::mpsc::channel(crate::upstream::relay::NOTES_QUEUED);
    let caller = Caller {
        cancel,
        notes: Some(notes),
        progress,
        peer: None,
        inputs: None,
        offers: None,
        log_level: None,
        approval: approval_of(&call),
    };
    let gateway = fast.gateway.clone();
    let id = call.id.clone();
    let mut handle = tokio::spawn(async move {
        let out = gateway
            .call_tool(&session, &call.params.name, call.params.arguments, &caller)
            .await;
        out.result
    });
    let first = tokio::select! {
        biased;
        Some(n) = rx.recv() => n,
        out = &mut handle => {
            return match out.map(|r| response_json(&id, r)) {
                Ok(Ok(body)) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body)
                    .into_response(),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "the call failed inside Warden\n")
                    .into_response(),
            };
        }
    };
    struct State {
        first: Option<rmcp::model::ServerNotification>,
        notes: tokio::sync::mpsc::Receiver<rmcp::model::ServerNotification>,
        result: Option<tokio::task::JoinHandle<CallToolResult>>,
        id: Value,
        _cancel_on_drop: tokio_util::sync::DropGuard,
        _tracked: Tracked,
    }
    let state = State {
        first: Some(first),
        notes: rx,
        result: Some(handle),
        id,
        _cancel_on_drop: cancel_on_drop,
        _tracked: tracked,
    };
    let body = futures_util::stream::unfold(state, |mut st| async move {
        let note = match st.first.take() {
            Some(n) => Some(n),
            None => st.notes.recv().await,
        };
        if let Some(n) = note {
            let mut v = serde_json::to_value(&n).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("jsonrpc".into(), Value::from("2.0"));
            }
            let bytes = serde_json::to_vec(&v).unwrap_or_default();
            return Some((Ok::<_, std::convert::Infallible>(event(&bytes)), st));
        }
        let result = st.result.take()?.await.ok()?;
        let bytes = response_json(&st.id, result).ok()?;
        Some((Ok(event(&bytes)), st))
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Close MCP sessions idle for longer than [`IDLE`] until `stop`: sessions Warden serves by
/// their last request, sessions that never opened one (initialized, then silent) from when the
/// sweep first saw them.
/// Owners of sessions that are gone are forgotten.
pub async fn sweep(fast: Arc<FastPath>, owners: Arc<Owners>, stop: CancellationToken) {
    let mut unopened: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        let mut close = fast.gateway.idle_http_sessions(IDLE);
        let live: Vec<String> = fast
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .map(|k| k.to_string())
            .collect();
        let now = Instant::now();
        // Normally the handler forgets its session when the MCP session ends; this is the net.
        // (A session opened after `live` was read has just been used: it stays.)
        fast.gateway.retain_http_sessions(|sid, s| {
            s.idle_for() < SWEEP_EVERY || live.iter().any(|l| l == sid)
        });
        unopened.retain(|k, _| live.contains(k));
        owners.retain_live(&live, SWEEP_EVERY);
        for sid in &live {
            if fast.gateway.find_http_session(sid).is_some() {
                unopened.remove(sid);
            } else if now.duration_since(*unopened.entry(sid.clone()).or_insert(now)) > IDLE {
                close.push(sid.clone());
            }
        }
        for sid in close {
            unopened.remove(&sid);
            let _ = fast.sessions.close_session(&sid.into()).await;
        }
    }
}
