//! The health routes of `warden serve`, beside `/mcp` and without a token (load balancers and
//! orchestrators call them):
//!
//! - `GET /healthz`: the process is alive and serving HTTP: always `200` with
//!   `{"status":"alive"}`.
//! - `GET /readyz`: `200` with `{"status":"ready","not_ready":[]}` when every upstream is
//!   connected; otherwise `503` with `{"status":"not-ready","not_ready":[…]}`, one entry per
//!   part that is not ready: `{"check":"upstream","name":"forum","reason":"…"}`. (The store
//!   will be one of the checks once there is one.)
//!
//! Neither says anything an agent's token would protect: names of upstreams and why they are
//! down are what an operator sees on stderr already.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use warden_mcp::Gateway;

/// Where liveness is answered.
pub const HEALTHZ: &str = "/healthz";
/// Where readiness is answered.
pub const READYZ: &str = "/readyz";

/// A part of Warden that is not ready.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct NotReady {
    /// What kind of part: `upstream`.
    pub check: &'static str,
    /// Its name.
    pub name: String,
    /// Why it is not ready.
    pub reason: String,
}

/// The parts of `gateway` that are not ready.
pub fn not_ready(gateway: &Gateway) -> Vec<NotReady> {
    gateway
        .upstream_status()
        .into_iter()
        .filter(|s| !s.up)
        .map(|s| NotReady {
            check: "upstream",
            name: s.name,
            reason: s.last_error.unwrap_or_else(|| "not connected yet".into()),
        })
        .collect()
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

async fn readyz(State(gateway): State<Arc<Gateway>>) -> (StatusCode, Json<Value>) {
    let missing = not_ready(&gateway);
    let (code, status) = if missing.is_empty() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not-ready")
    };
    (code, Json(json!({"status": status, "not_ready": missing})))
}

/// The health routes, for [`warden_mcp::http::serve_with`].
pub fn routes(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(HEALTHZ, get(healthz))
        .route(READYZ, get(readyz))
        .with_state(gateway)
}
