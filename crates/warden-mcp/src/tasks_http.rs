//! Tasks over `warden serve` (2025-11-25), which rmcp's types do not carry.
//!
//! A middleware in front of rmcp (and of the fast path), behind authentication and the front
//! door: in an MCP session rmcp has open, a `tools/call` with `task` and the `tasks/*` requests
//! are answered by [`Gateway::task_request`] as one JSON response; a `notifications/cancelled`
//! for one of them (a `tasks/result` waiting) is taken here. The responses to `initialize` and
//! `tools/list` get Warden's task support added on the way out ([`Gateway::advertise_tasks`]),
//! in a JSON body or in the `data` of SSE events. Everything else passes through untouched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::{claim_of, Authenticated, MCP_PATH};
use crate::front::{header, is_json, read_body};
use crate::gateway::tasks::{is_task_request, Advertised};
use crate::gateway::Gateway;

/// The largest response Warden reads whole to add its task support to.
const MAX_ADVERTISED_BYTES: usize = 64 * 1024 * 1024;

/// What the middleware needs.
pub struct TasksHttp {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// rmcp's session manager (a task request needs a session rmcp has open).
    pub sessions: Arc<LocalSessionManager>,
    /// The largest request body accepted.
    pub max_bytes: usize,
    /// The task requests being answered, by session and request id.
    pub answering: Mutex<HashMap<(String, String), CancellationToken>>,
}

impl std::fmt::Debug for TasksHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TasksHttp").finish_non_exhaustive()
    }
}

impl TasksHttp {
    fn answering(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.answering.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `needle` occurs in `hay`.
fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn json_response(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The middleware (see the module doc).
pub async fn tasks(State(t): State<Arc<TasksHttp>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.uri().path() != MCP_PATH || !is_json(req.headers()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = match read_body(body, t.max_bytes).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let pass = |parts, bytes| next.run(Request::from_parts(parts, Body::from(bytes)));
    let cancels = !t.answering().is_empty() && has(&bytes, b"notifications/cancelled");
    if !(cancels
        || has(&bytes, b"\"task")
        || has(&bytes, b"\"initialize\"")
        || has(&bytes, b"\"tools/list\""))
    {
        return pass(parts, bytes).await;
    }
    let Ok(mut message) = serde_json::from_slice::<Value>(&bytes) else {
        return pass(parts, bytes).await;
    };
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let sid = header(&parts.headers, "mcp-session-id").map(str::to_string);
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return pass(parts, bytes).await;
    }
    if method == "notifications/cancelled" {
        let of = message.pointer("/params/requestId").map(Value::to_string);
        if let (Some(sid), Some(of)) = (&sid, of) {
            if let Some(c) = t.answering().remove(&(sid.clone(), of)) {
                c.cancel();
                return StatusCode::ACCEPTED.into_response();
            }
        }
        return pass(parts, bytes).await;
    }
    let Some(id) = message.get_mut("id").map(Value::take) else {
        return pass(parts, bytes).await;
    };
    let params = message.get_mut("params").map(Value::take);
    if is_task_request(&method, params.as_ref()) {
        let Some(sid) = sid else {
            return pass(parts, bytes).await;
        };
        let open = t
            .sessions
            .has_session(&sid.clone().into())
            .await
            .unwrap_or(false);
        let Some(auth) = parts.extensions.get::<Authenticated>() else {
            return pass(parts, bytes).await;
        };
        if !open {
            return pass(parts, bytes).await;
        }
        let session = match t.gateway.find_http_session(&sid) {
            Some(s) => s,
            None => {
                let who = match claim_of(auth) {
                    Ok(w) => w,
                    Err(e) => return json_response(error(&id, e)),
                };
                match t.gateway.http_session(&sid, &who, auth.token) {
                    Ok(s) => s,
                    Err(e) => return json_response(error(&id, e.to_string())),
                }
            }
        };
        if session.token() != Some(&auth.token) {
            return json_response(error(
                &id,
                "this MCP session belongs to another agent token".into(),
            ));
        }
        let key = (sid, id.to_string());
        let cancel = CancellationToken::new();
        t.answering().insert(key.clone(), cancel.clone());
        let _drop_cancels = cancel.clone().drop_guard();
        let answer = t
            .gateway
            .task_request(&session, &method, params, &cancel)
            .await;
        t.answering().remove(&key);
        let body = match answer {
            Ok(result) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(e) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": e }),
        };
        return json_response(body);
    }
    let Some(kind) = Advertised::of(&method) else {
        return pass(parts, bytes).await;
    };
    let resp = pass(parts, bytes).await;
    advertise(&t.gateway, kind, resp).await
}

fn error(id: &Value, message: String) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": -32600, "message": message },
    })
}

/// `resp` with Warden's task support added to the result it carries (JSON, or SSE `data`).
async fn advertise(gateway: &Gateway, kind: Advertised, resp: Response) -> Response {
    if resp.status() != StatusCode::OK {
        return resp;
    }
    let content_type = header(resp.headers(), header::CONTENT_TYPE.as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let sse = content_type.starts_with("text/event-stream");
    if !sse && !content_type.starts_with("application/json") {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ADVERTISED_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("cannot read the response: {e}"),
            )
                .into_response()
        }
    };
    let patched = if sse {
        let text = String::from_utf8_lossy(&bytes);
        let mut out = String::with_capacity(text.len() + 128);
        for line in text.split_inclusive('\n') {
            match line.strip_prefix("data:") {
                Some(data) => match patch(gateway, kind, data.trim()).await {
                    Some(p) => {
                        out.push_str("data: ");
                        out.push_str(&p);
                        out.push('\n');
                    }
                    None => out.push_str(line),
                },
                None => out.push_str(line),
            }
        }
        out.into_bytes()
    } else {
        match std::str::from_utf8(&bytes) {
            Ok(text) => match patch(gateway, kind, text).await {
                Some(p) => p.into_bytes(),
                None => bytes.to_vec(),
            },
            Err(_) => bytes.to_vec(),
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(patched))
}

/// `data` (a JSON-RPC response) with the task support added, if it has a result.
async fn patch(gateway: &Gateway, kind: Advertised, data: &str) -> Option<String> {
    let mut v: Value = serde_json::from_str(data).ok()?;
    let result = v.get_mut("result")?;
    gateway.advertise_tasks(kind, result).await;
    Some(v.to_string())
}
