//! The front door of `warden serve`: one layer in front of both the `tools/call` fast path
//! ([`crate::fastpath`]) and rmcp's streamable HTTP service, so that what it decides holds for
//! both.
//!
//! - **Session ownership.** A request naming an MCP session (`Mcp-Session-Id`) is served only
//!   for the bearer token that opened it ([`Owners`]); for any other token, and for a session
//!   Warden does not know, the answer is rmcp's own 404 for an unknown session, byte for byte.
//!   This holds for POST of requests and notifications (`notifications/cancelled` included),
//!   GET of the event stream and DELETE. The owner is recorded from the `initialize` response
//!   that creates the session, before it is sent. More than one `Mcp-Session-Id` header is a 400.
//! - **Initialization.** In a session, requests other than `ping` are refused with a JSON-RPC
//!   error until the client has sent `notifications/initialized`. Stateless requests (no
//!   session, 2026-07-28) are not affected.
//! - **Malformed bodies.** A JSON POST whose body is not JSON gets HTTP 400 with a JSON-RPC
//!   `-32700 Parse error`; JSON that is not one JSON-RPC message of MCP (a batch, an array, a
//!   duplicated member, a wrong `jsonrpc`) gets HTTP 400 with `-32600 Invalid Request`.
//!   Requests with another content type are left to rmcp (HTTP 415).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Authenticated, MCP_PATH};
use crate::owners::{Access, Owners};

/// The session header of streamable HTTP.
pub const SESSION_ID: &str = "mcp-session-id";

/// JSON-RPC: the body is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC: the JSON is not a valid request.
pub const INVALID_REQUEST: i32 = -32600;

/// What the front door needs.
#[derive(Debug)]
pub struct Front {
    /// The owners of the open sessions.
    pub owners: Arc<Owners>,
    /// The largest request body accepted.
    pub max_bytes: usize,
}

/// The parts of a JSON-RPC message the front door looks at; the rest is checked for syntax only.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
}

/// The value of header `name` when it is visible ASCII (its first value).
/// The whole request body, or the `413` for one over `max` bytes.
pub(crate) async fn read_body(
    body: axum::body::Body,
    max: usize,
) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, max).await.map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Payload Too Large: request body exceeds {max} bytes"),
        )
            .into_response()
    })
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the request's `Content-Type` is `application/json` (parameters allowed), by rmcp's
/// rule: the first `Content-Type` header, its essence before `;`, compared without case.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    header(headers, header::CONTENT_TYPE.as_str()).is_some_and(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// rmcp's answer to a request for a session it does not have.
pub fn session_not_found() -> Response {
    let mut r = Response::new(Body::from("Not Found: Session not found"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r
}

/// A JSON-RPC error response with HTTP status `status`.
pub fn rpc_error(status: StatusCode, id: Option<&Value>, code: i32, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    });
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// The layer: session ownership, the initialization gate and malformed bodies, for both paths.
pub async fn guard(State(front): State<Arc<Front>>, req: Request, next: Next) -> Response {
    if req.uri().path() != MCP_PATH {
        return next.run(req).await;
    }
    let Some(token) = req.extensions().get::<Authenticated>().map(|a| a.token) else {
        // Behind the authentication layer this does not happen; rmcp's handler refuses it.
        return next.run(req).await;
    };
    let mut ids = req.headers().get_all(SESSION_ID).iter();
    let first = ids.next();
    if ids.next().is_some() {
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: more than one Mcp-Session-Id header".into(),
        );
    }
    // rmcp reads a session id that is not visible ASCII as no session id; so does this layer.
    let sid = first.and_then(|v| v.to_str().ok()).map(str::to_string);
    let access = match &sid {
        Some(s) => match front.owners.check(s, &token) {
            Access::NotFound => return session_not_found(),
            a => Some(a),
        },
        None => None,
    };
    match *req.method() {
        Method::POST => post(&front, req, next, sid.as_deref(), access, token).await,
        Method::DELETE => {
            let mut resp = next.run(req).await;
            if let Some(s) = &sid {
                if resp.status().is_success() {
                    front.owners.forget(s);
                }
            }
            // The session is closed when rmcp answers: say so as clients expect (`204 No
            // Content`), not `202 Accepted`, which the SDKs report as a failed termination.
            if resp.status() == StatusCode::ACCEPTED {
                *resp.status_mut() = StatusCode::NO_CONTENT;
                *resp.body_mut() = Body::empty();
            }
            resp
        }
        _ => next.run(req).await,
    }
}

async fn post(
    front: &Front,
    req: Request,
    next: Next,
    sid: Option<&str>,
    access: Option<Access>,
    token: [u8; 32],
) -> Response {
    if !is_json(req.headers()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes): Result<Bytes, _> = axum::body::to_bytes(body, front.max_bytes).await else {
        return plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload Too Large: request body exceeds {} bytes",
                front.max_bytes
            ),
        );
    };
    let envelope = match serde_json::from_slice::<Envelope>(&bytes) {
        Ok(e) => e,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                PARSE_ERROR,
                &format!("Parse error: the body is not JSON: {e}"),
            )
        }
        Err(e) => {
            let why = if bytes.trim_ascii_start().starts_with(b"[") {
                "JSON-RPC batches are not accepted; send one message per request".to_string()
            } else {
                e.to_string()
            };
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                &format!("Invalid Request: {why}"),
            );
        }
    };
    let method = envelope.method.as_deref();
    if access == Some(Access::Uninitialized) && envelope.id.is_some() && method != Some("ping") {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            envelope.id.as_ref(),
            INVALID_REQUEST,
            "Invalid Request: this MCP session is not initialized yet: send `notifications/initialized` after the `initialize` response, then requests",
        );
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if resp.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        // The content type was JSON: rmcp could not read the body as an MCP message.
        let detail = axum::body::to_bytes(resp.into_body(), 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let detail = detail
            .strip_prefix("fail to deserialize request body")
            .unwrap_or(&detail)
            .trim();
        return rpc_error(
            StatusCode::BAD_REQUEST,
            envelope.id.as_ref(),
            INVALID_REQUEST,
            &format!("Invalid Request: not a JSON-RPC message of MCP: {detail}"),
        );
    }
    if resp.status().is_success() {
        match (sid, method) {
            (Some(s), Some("notifications/initialized")) => front.owners.initialized(s),
            (None, Some("initialize")) => {
                if let Some(new) = header(resp.headers(), SESSION_ID) {
                    front.owners.claim(new, token);
                }
            }
            _ => {}
        }
    }
    resp
}
