//! `/v1/approvals` on `warden serve`: what `warden approvals` does, over HTTP.
//!
//! - `GET /v1/approvals[?state=pending|approved|denied|used|cancelled|all]`: the requests the
//!   caller may see (those acting for them, and those they may approve a hold of), newest first.
//! - `GET /v1/approvals/{id}`: one request.
//! - `POST /v1/approvals/{id}/approve` `{"reason"?}`: approve every hold the caller may.
//! - `POST /v1/approvals/{id}/deny` `{"reason"?}`.
//! - `POST /v1/approvals/{id}/approve-narrowed` `{"alternative": true}` or
//!   `{"tool": "server.tool", "args": {…}}`, and `"reason"?`: approve a narrower call instead.
//!
//! The caller is a person, authenticated as for `/v1/missions` (a bearer user token or JWT, or
//! the trusted proxy's user); the approver is whoever that proves. Errors are `{"error": "…"}`
//! with 400, 401, 403 (not allowed: audited), 404, 409 (the request is closed or expired) or
//! 503 (the store failed).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warden_core::{Call, Engine};
use warden_enforce::approvals::{ApprovalError, Approvals, Stored};
use warden_enforce::identity::{Authenticator, Principal};

use crate::fs::now_ms;
use crate::missions_http::{error, person};

/// Where the routes are.
pub const APPROVALS: &str = "/v1/approvals";

/// What the routes share.
pub struct ApprovalsApi {
    /// The requests.
    pub approvals: Approvals,
    /// Authenticates people.
    pub people: Option<Arc<Authenticator>>,
    /// The configuration.
    pub engine: Arc<Engine>,
}

/// The routes.
pub fn routes(api: Arc<ApprovalsApi>) -> Router {
    Router::new()
        .route(APPROVALS, get(list))
        .route(&format!("{APPROVALS}/{{id}}"), get(show))
        .route(&format!("{APPROVALS}/{{id}}/{{answer}}"), post(answer))
        .with_state(api)
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

async fn who(api: &ApprovalsApi, headers: &HeaderMap, peer: Peer) -> Result<Principal, Response> {
    person(
        &api.engine,
        api.people.as_deref(),
        headers,
        peer.map(|c| c.0 .0),
    )
    .await
}

fn refused(e: ApprovalError) -> Response {
    let status = match &e {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::Forbidden(_) => StatusCode::FORBIDDEN,
        ApprovalError::Closed(_) => StatusCode::CONFLICT,
        ApprovalError::Invalid(_) => StatusCode::BAD_REQUEST,
        ApprovalError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e)
}

fn view(s: &Stored) -> Value {
    json!({
        "id": s.request.id,
        "state": s.state_at(now_ms()),
        "version": s.version,
        "request": s.request,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
}

async fn list(
    State(api): State<Arc<ApprovalsApi>>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    let who = match who(&api, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let state = q.state.unwrap_or_else(|| "pending".into());
    let state = (state != "all").then_some(state);
    match api.approvals.list(&who, state.as_deref(), 0).await {
        Ok(all) => {
            Json(json!({ "requests": all.iter().map(view).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => refused(e),
    }
}

async fn show(
    State(api): State<Arc<ApprovalsApi>>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match who(&api, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match api.approvals.show(&who, &id).await {
        Ok(s) => Json(view(&s)).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    alternative: bool,
    #[serde(default)]
    tool: Option<String>,
    #[serde(default)]
    args: Option<Value>,
}

async fn answer(
    State(api): State<Arc<ApprovalsApi>>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, answer)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let who = match who(&api, &headers, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        AnswerBody::default()
    } else {
        match serde_json::from_slice::<AnswerBody>(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not an answer: {e}"),
                )
            }
        }
    };
    let now = now_ms();
    let done = match answer.as_str() {
        "approve" => api
            .approvals
            .approve(&who, &id, &body.reason, now)
            .await
            .map(|a| a.request),
        "deny" => api.approvals.deny(&who, &id, &body.reason, now).await,
        "approve-narrowed" => {
            let call = match narrower(&api, &who, &id, &body).await {
                Ok(c) => c,
                Err(r) => return r,
            };
            api.approvals
                .approve_narrowed(&who, &id, call, &body.reason, now)
                .await
                .map(|a| a.request)
        }
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no answer `{other}`: approve, deny or approve-narrowed"),
            )
        }
    };
    match done {
        Ok(s) => Json(view(&s)).into_response(),
        Err(e) => refused(e),
    }
}

/// The narrower call an `approve-narrowed` body names.
async fn narrower(
    api: &ApprovalsApi,
    who: &Principal,
    id: &str,
    body: &AnswerBody,
) -> Result<Call, Response> {
    let s = api.approvals.show(who, id).await.map_err(refused)?;
    if body.alternative {
        return s
            .request
            .alternative
            .map(|a| a.call.to_call())
            .ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("request `{id}` offers no alternative"),
                )
            });
    }
    let (Some(tool), Some(args)) = (&body.tool, &body.args) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "name the narrower call: `{\"alternative\": true}` or `{\"tool\": \"server.tool\", \"args\": {…}}`",
        ));
    };
    let Some((server, tool)) = tool.split_once('.') else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("`{tool}` is not `server.tool`"),
        ));
    };
    if !args.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "`args` must be a JSON object",
        ));
    }
    Ok(Call::new(server, tool, args.clone()))
}
