//! The health routes of `warden serve`, beside `/mcp` and without a token (load balancers and
//! orchestrators call them):
//!
//! - `GET /healthz`: the process is alive and serving HTTP: always `200` with
//!   `{"status":"alive"}`.
//! - `GET /readyz`: `200` with `{"status":"ready","not_ready":[]}` when the store answers and
//!   every upstream is connected; otherwise `503` with `{"status":"not-ready","not_ready":[…]}`,
//!   one entry per part that is not ready: `{"check":"store","name":"sqlite","reason":"…"}` or
//!   `{"check":"upstream","name":"forum","reason":"…"}`. The store is pinged with a bound of
//!   two seconds.
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
    /// What kind of part: `store` or `upstream`.
    pub check: &'static str,
    /// Its name.
    pub name: String,
    /// Why it is not ready.
    pub reason: String,
}

/// How long readiness waits for the store to answer.
const STORE_PING: std::time::Duration = std::time::Duration::from_secs(2);

/// The parts of `gateway` that are not ready: its store (pinged), then its upstreams.
pub async fn not_ready(gateway: &Gateway) -> Vec<NotReady> {
    let store = gateway.enforcer().store();
    let name = format!("{:?}", store.backend()).to_lowercase();
    let mut out = Vec::new();
    match tokio::time::timeout(STORE_PING, store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.push(NotReady {
            check: "store",
            name,
            reason: e.to_string(),
        }),
        Err(_) => out.push(NotReady {
            check: "store",
            name,
            reason: format!("no answer within {} s", STORE_PING.as_secs()),
        }),
    }
    out.extend(upstreams_not_ready(gateway));
    out
}

/// The upstreams of `gateway` that are not connected.
fn upstreams_not_ready(gateway: &Gateway) -> Vec<NotReady> {
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
    let missing = not_ready(&gateway).await;
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
