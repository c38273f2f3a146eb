//! `/v1/missions` on `warden serve`: what `warden mission` does, over HTTP.
//!
//! - `POST /v1/missions` `{"template","agent","purpose","expires"?,"narrowing"?}`: grant a
//!   mission acting for the caller; `201` with `{"mission","token","expires_at_ms","record"}`.
//! - `POST /v1/missions/attenuate` `{"token","expires"?,"agent"?,"narrowing"?}`: a narrower
//!   token, checked now; `200` with `{"token","mission","agent","expires_at_ms"}`. Any holder
//!   of a token may narrow it: no credential is needed.
//! - `POST /v1/missions/revoke` `{"mission"|"agent"|"principal","reason"?}`: `200` with
//!   `{"revoked":[…]}`.
//! - `GET /v1/missions[?agent=&principal=&all=true]` and `GET /v1/missions/{id}`: the grants
//!   the caller may see (those acting for them or granted by them; every grant for a member of
//!   `[missions] revokers`).
//!
//! The caller is a person: `Authorization: Bearer` with a local user token or the identity
//! provider's JWT, checked by the same [`Authenticator`] as the CLI's, or the user named by the
//! trusted proxy of `[identity.proxy]` on a connection from it. An agent's token is not a
//! person's. Errors are `{"error": "…"}` with 400 (bad request), 401 (not authenticated), 403
//! (not allowed), 404 or 503 (the store failed).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use warden_core::narrow::Narrowing;
use warden_core::Engine;
use warden_enforce::grants::{GrantError, GrantRequest, MissionAuthority, RevokeTarget};
use warden_enforce::identity::{Authenticator, Principal};
use warden_store::GrantFilter;

use crate::fs::now_ms;
use crate::mission_cmd::duration_ms;

/// Where the routes are.
pub const MISSIONS: &str = "/v1/missions";

/// What the routes share.
pub struct MissionsApi {
    /// Grants and revokes.
    pub authority: Arc<MissionAuthority>,
    /// Authenticates people (none: the configuration's people cannot sign in, and every
    /// request that needs a person is refused with 503).
    pub people: Option<Arc<Authenticator>>,
    /// The configuration (directory, revokers, proxy).
    pub engine: Arc<Engine>,
}

/// The routes.
pub fn routes(api: Arc<MissionsApi>) -> Router {
    Router::new()
        .route(MISSIONS, post(grant).get(list))
        .route(&format!("{MISSIONS}/attenuate"), post(attenuate))
        .route(&format!("{MISSIONS}/revoke"), post(revoke))
        .route(&format!("{MISSIONS}/{{id}}"), get(show))
        .with_state(api)
}

pub(crate) fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": msg.to_string() }))).into_response()
}

fn refused(e: GrantError) -> Response {
    let status = match &e {
        GrantError::Forbidden(_) => StatusCode::FORBIDDEN,
        GrantError::Invalid(_) | GrantError::Token(_) => StatusCode::BAD_REQUEST,
        GrantError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e)
}

/// The person calling, or the response that says why there is none: the trusted proxy's user
/// on a connection from it, else the bearer credential checked by `people`.
pub(crate) async fn person(
    engine: &Engine,
    people: Option<&Authenticator>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Principal, Response> {
    let cfg = engine.config();
    if let (Some(proxy), Some(peer)) = (&cfg.identity.proxy, peer) {
        if proxy.trusts(peer.ip()) {
            if let Some(user) = headers.get(proxy.header.as_str()) {
                let user = user.to_str().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        "the proxy's header is not visible ASCII",
                    )
                })?;
                return Principal::from_proxy(user.trim(), cfg)
                    .map_err(|e| error(StatusCode::UNAUTHORIZED, e));
            }
        }
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "present your credential: `Authorization: Bearer <token>` (a user token or your identity provider's JWT)",
            )
        })?;
    let people = people.ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "people cannot authenticate on this server: see its start-up warnings",
        )
    })?;
    people
        .authenticate(bearer)
        .await
        .map_err(|e| error(StatusCode::UNAUTHORIZED, format!("not authenticated: {e}")))
}

/// The body of `POST /v1/missions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    template: String,
    agent: String,
    purpose: String,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    narrowing: Option<Narrowing>,
}

async fn grant(
    State(api): State<Arc<MissionsApi>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<GrantBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let who = match person(
        &api.engine,
        api.people.as_deref(),
        &headers,
        peer.map(|c| c.0 .0),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let expires_in_ms = match body.expires.as_deref().map(duration_ms).transpose() {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let req = GrantRequest {
        template: body.template,
        agent: body.agent,
        purpose: body.purpose,
        expires_in_ms,
        narrowing: body.narrowing,
    };
    match api.authority.grant(&who, &req, now_ms()).await {
        Ok(g) => (StatusCode::CREATED, Json(json!(g))).into_response(),
        Err(e) => refused(e),
    }
}

/// The body of `POST /v1/missions/attenuate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttenuateBody {
    token: String,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    narrowing: Option<Narrowing>,
}

async fn attenuate(
    State(api): State<Arc<MissionsApi>>,
    body: Result<Json<AttenuateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now = now_ms();
    let mut n = body.narrowing.unwrap_or_default();
    match body.expires.as_deref().map(duration_ms).transpose() {
        Ok(Some(ms)) => n.expires_at_ms = Some(now.saturating_add(ms)),
        Ok(None) => {}
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    }
    if body.agent.is_some() {
        n.agent = body.agent;
    }
    match api.authority.attenuate(&body.token, &n, now) {
        Ok((token, v)) => Json(json!({
            "token": token,
            "mission": v.mission.id,
            "agent": v.mission.agent,
            "expires_at_ms": v.mission.expires_at_ms,
        }))
        .into_response(),
        Err(e) => refused(e),
    }
}

/// The body of `POST /v1/missions/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    #[serde(default)]
    mission: Option<String>,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(api): State<Arc<MissionsApi>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<RevokeBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let who = match person(
        &api.engine,
        api.people.as_deref(),
        &headers,
        peer.map(|c| c.0 .0),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let target = match (body.mission, body.agent, body.principal) {
        (Some(m), None, None) => RevokeTarget::Mission(m),
        (None, Some(a), None) => RevokeTarget::Agent(a),
        (None, None, Some(p)) => RevokeTarget::Principal(p),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "name exactly one of `mission`, `agent` or `principal`",
            )
        }
    };
    match api
        .authority
        .revoke(&who, &target, &body.reason, now_ms())
        .await
    {
        Ok(revoked) => Json(json!({ "revoked": revoked })).into_response(),
        Err(e) => refused(e),
    }
}

/// The query of `GET /v1/missions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn list(
    State(api): State<Arc<MissionsApi>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let who = match person(
        &api.engine,
        api.people.as_deref(),
        &headers,
        peer.map(|c| c.0 .0),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let filter = GrantFilter {
        agent: q.agent,
        principal: q.principal,
        live_at_ms: (!q.all).then(now_ms),
        limit: 0,
    };
    match api.authority.list(&who, &filter).await {
        Ok(seen) => Json(json!(seen)).into_response(),
        Err(e) => refused(e),
    }
}

async fn show(
    State(api): State<Arc<MissionsApi>>,
    Path(id): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let who = match person(
        &api.engine,
        api.people.as_deref(),
        &headers,
        peer.map(|c| c.0 .0),
    )
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    match api.authority.show(&who, &id).await {
        Ok(Some(l)) => Json(json!(l)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no mission `{id}` that you may see"),
        ),
        Err(e) => refused(e),
    }
}
