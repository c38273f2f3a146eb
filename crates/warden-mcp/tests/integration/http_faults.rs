//! An HTTP upstream that plays the MCP handshake and then answers `tools/call` wrongly: each
//! fault gets its own error, and none says the upstream is being restarted.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use warden_mcp::{Transport, UpstreamSettings};

use crate::common::*;

fn json_reply(body: String) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    h.insert("mcp-session-id", "s-1".parse().unwrap());
    (StatusCode::OK, h, body).into_response()
}

fn result(id: &Value, result: Value) -> Response {
    json_reply(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
}

async fn mcp(body: String) -> Response {
    let Ok(msg) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    match msg["method"].as_str().unwrap_or_default() {
        "initialize" => result(
            &id,
            json!({
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "faulty", "version": "0"},
            }),
        ),
        m if m.starts_with("notifications/") => StatusCode::ACCEPTED.into_response(),
        "ping" => result(&id, json!({})),
        "tools/list" => result(
            &id,
            json!({"tools": [{"name": "read_thread", "inputSchema": {"type": "object"}}]}),
        ),
        "tools/call" => match msg["params"]["arguments"]["thread_id"].as_str() {
            Some("T-BADJSON") => json_reply("{\"jsonrpc\": \"2.0\", \"id\": ".into()),
            Some("T-500") => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
            Some("T-WRONGID") => result(
                &json!(id.as_u64().unwrap() + 1000),
                json!({"content": [{"type": "text", "text": "someone else's"}]}),
            ),
            Some("T-HUGE") => result(
                &id,
                json!({"content": [{"type": "text", "text": "x".repeat(9 << 20)}]}),
            ),
            Some("T-SHAPE") => result(&id, json!({"content": "not a list"})),
            other => result(
                &id,
                json!({"content": [{"type": "text", "text": format!("thread {}", other.unwrap_or_default())}]}),
            ),
        },
        _ => json_reply(
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no"}})
                .to_string(),
        ),
    }
}

async fn faulty_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(mcp)
            .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
            .delete(|| async { StatusCode::OK }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn http_upstream_faults_are_each_reported_as_what_they_are() {
    let addr = faulty_upstream().await;
    let up = UpstreamSettings::new(
        "forum",
        Transport::Http {
            url: format!("http://{addr}/mcp"),
        },
    );
    let log = Arc::new(MemoryLog::new());
    let gw = start(vec![up], log.clone()).await;
    let u = gw.upstream("forum").unwrap();
    assert!(u.status().up, "{:?}", u.status());
    let client = agent(&gw, &alice()).await;
    let cases = [
        ("T-BADJSON", "answered with invalid JSON", "invalid-json"),
        ("T-500", "answered HTTP 500: boom", "http-status"),
        ("T-WRONGID", "answered request id", "wrong-id"),
        ("T-HUGE", "over the limit of 8388608 bytes", "too-large"),
        ("T-SHAPE", "answered with a malformed result", "malformed"),
    ];
    for (thread, expected, code) in cases {
        let r = call(
            client.peer(),
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": thread}),
        )
        .await;
        assert!(is_error(&r), "{thread}");
        let t = text(&r);
        assert!(t.contains(expected), "{thread}: {t}");
        assert!(!t.contains("restarting"), "{thread}: {t}");
        assert!(!t.contains("closed the connection"), "{thread}: {t}");
        assert_eq!(log.outcomes().last().unwrap().outcome, code, "{thread}");
    }
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert_eq!(text(&r), "thread T-1042");
    assert_eq!(u.status().connects, 1);
    client.cancel().await.unwrap();
}
