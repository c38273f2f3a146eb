//! `warden serve`'s front door, on both paths (with and without the fast path): malformed
//! bodies get JSON-RPC errors with HTTP 400, unreadable `tools/call` params get -32602, the
//! `Bearer` scheme is matched without case, and a session serves requests only after
//! `notifications/initialized`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use warden_mcp::http::Tokens;
use warden_mcp::Gateway;

use crate::common::*;
use crate::fastpath::{RawClient, Reply};
use crate::http::{OPS_TOKEN, TOKEN};

/// Serve `gw` with the router with (`fast`) or without the fast path.
pub async fn serve_router(
    gw: Arc<Gateway>,
    fast: bool,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tokens = Tokens::new([("forum-helper", TOKEN), ("ops-bot", OPS_TOKEN)]);
    let cancel = CancellationToken::new();
    let app = warden_mcp::http::router_with(gw, tokens, cancel.clone(), fast);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
                cancel.cancel();
            })
            .await;
    });
    (addr, stop)
}

/// Acme behind Warden, served with or without the fast path.
pub async fn acme_served(
    fast: bool,
) -> (
    Arc<Gateway>,
    warden_acme::AcmeServer,
    Arc<MemoryLog>,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let (gw, acme, log) = start_acme().await;
    let (addr, stop) = serve_router(gw.clone(), fast).await;
    (gw, acme, log, addr, stop)
}

fn code(r: &Reply) -> i64 {
    r.message["error"]["code"].as_i64().unwrap_or_default()
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_json_rpc_error_on_both_paths() {
    for fast in [true, false] {
        let (_gw, _acme, log, addr, stop) = acme_served(fast).await;
        let mut c = RawClient::new(addr, TOKEN);
        c.open().await;
        let _ = c.request("tools/list", json!({})).await;
        for (body, want) in [
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"#,
                -32700,
            ),
            (
                "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}",
                -32700,
            ),
            ("", -32700),
            (
                r#"[{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"forum.read_thread","arguments":{}}}]"#,
                -32600,
            ),
            (r#"{"jsonrpc":"1.0","id":9,"method":"ping"}"#, -32600),
            (
                r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","method":"tools/call"}"#,
                -32600,
            ),
        ] {
            let r = c.post(body.into()).await;
            assert_eq!(r.status, 400, "fast={fast} {body}: {}", r.body);
            assert!(
                r.content_type.starts_with("application/json"),
                "fast={fast} {body}: {}",
                r.content_type
            );
            assert_eq!(code(&r), want, "fast={fast} {body}: {}", r.body);
        }
        assert_eq!(log.len(), 0, "nothing was decided");
        let _ = stop.send(());
    }
}

#[tokio::test]
async fn unreadable_tools_call_params_get_invalid_params_on_both_paths() {
    for fast in [true, false] {
        let (_gw, _acme, log, addr, stop) = acme_served(fast).await;
        let mut c = RawClient::new(addr, TOKEN);
        c.open().await;
        let _ = c.request("tools/list", json!({})).await;
        for params in [
            json!({"name": 5}),
            json!({"arguments": {}}),
            json!({"name": "forum.read_thread", "arguments": "T-1042"}),
        ] {
            let r = c.request("tools/call", params.clone()).await;
            assert_eq!(code(&r), -32602, "fast={fast} {params}: {}", r.body);
            assert!(
                r.message["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("tools/call"),
                "{}",
                r.body
            );
        }
        // An unknown method is still -32601.
        let r = c.request("tools/invoke", json!({})).await;
        assert_eq!(code(&r), -32601, "fast={fast}: {}", r.body);
        assert_eq!(log.len(), 0);
        let _ = stop.send(());
    }
}

async fn initialize_with(addr: SocketAddr, authorization: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: {authorization}\r\nX-Warden-Principal: alice\r\nX-Warden-Mission: answer-forum-question\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_without_case() {
    let (_gw, _acme, _log, addr, stop) = acme_served(true).await;
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let r = initialize_with(addr, &format!("{scheme} {TOKEN}")).await;
        assert!(r.starts_with("HTTP/1.1 200"), "{scheme}: {r}");
    }
    for bad in [
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
        format!("Bearerx {TOKEN}"),
        "Bearer nope".to_string(),
    ] {
        let r = initialize_with(addr, &bad).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{bad}: {r}");
    }
    let _ = stop.send(());
}

#[tokio::test]
async fn a_session_serves_requests_only_after_notifications_initialized() {
    for fast in [true, false] {
        let (gw, _acme, log, addr, stop) = acme_served(fast).await;
        let mut c = RawClient::new(addr, TOKEN);
        let init = c
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}),
            )
            .await;
        assert_eq!(init.status, 200, "{}", init.body);
        c.session = init.session;
        let sid = c.session.clone().unwrap();
        for (method, params) in [
            ("tools/list", json!({})),
            (
                "tools/call",
                json!({"name": "forum.read_thread",
                       "arguments": {"channel": "eng-help", "thread_id": "T-1042"}}),
            ),
        ] {
            let r = c.request(method, params).await;
            assert_eq!(r.status, 400, "fast={fast} {method}: {}", r.body);
            assert_eq!(code(&r), -32600, "{}", r.body);
            assert!(r.body.contains("notifications/initialized"), "{}", r.body);
        }
        assert!(
            gw.find_http_session(&sid).is_none(),
            "no session was opened"
        );
        assert_eq!(log.len(), 0, "nothing was decided");
        // ping is answered.
        let r = c.request("ping", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.message.get("result").is_some(), "{}", r.body);
        // Once initialized, the session serves.
        let n = c
            .post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into())
            .await;
        assert_eq!(n.status, 202, "{}", n.body);
        let r = c.request("tools/list", json!({})).await;
        assert!(r.body.contains("forum.read_thread"), "{}", r.body);
        let _ = stop.send(());
    }
}
