//! The HTTP request path of `warden serve`: `warden_mcp::http::router` (authentication, the
//! fast path, rmcp's streamable HTTP service) in front of the in-process Acme servers, driven
//! with axum's `oneshot`, one gateway for the whole run.
//!
//! Input: up to four requests separated by a line `====`. Each is a request line
//! `METHOD [PATH]`, header lines `name: value` (raw bytes), a blank line and the body. `$SESSION`
//! in a header value stands for the last `mcp-session-id` Warden returned, so a sequence can
//! initialize and then call. Every session opened is deleted at the end, so the run's memory
//! stays flat.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use warden_mcp::http::{router, Tokens};

const TOKEN: &str = "fuzz-token";
const AGENT: &str = "forum-helper";

fn app() -> axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| {
        let gateway = warden_fuzz::acme_gateway();
        let _entered = warden_fuzz::runtime().enter();
        router(
            gateway,
            Tokens::new([(AGENT, TOKEN)]),
            CancellationToken::new(),
        )
    })
    .clone()
}

fn split<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

fn replace(value: &[u8], session: &str) -> Vec<u8> {
    let pieces = split(value, b"$SESSION");
    pieces.join(session.as_bytes())
}

/// One request from its text, or `None` when it cannot be built (an invalid method, path or
/// header name is refused by the HTTP parser before Warden).
fn request(raw: &[u8], session: &str) -> Option<Request<Body>> {
    let (head, body) = match raw.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&raw[..i], &raw[i + 2..]),
        None => (raw, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let mut parts = first.splitn(2, |b| *b == b' ');
    let method = Method::from_bytes(parts.next().unwrap_or_default()).ok()?;
    let path = match parts.next() {
        Some(p) if !p.is_empty() => std::str::from_utf8(p).ok()?.to_string(),
        _ => "/mcp".to_string(),
    };
    let mut builder = Request::builder().method(method).uri(path);
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        let value = HeaderValue::from_bytes(&replace(value, session)).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(Body::from(body.to_vec())).ok()
}

fn delete(session: &str) -> Option<Request<Body>> {
    Request::builder()
        .method(Method::DELETE)
        .uri("/mcp")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-session-id", session)
        .body(Body::empty())
        .ok()
}

fuzz_target!(|data: &[u8]| {
    let app = app();
    warden_fuzz::runtime().block_on(async {
        let mut session = String::new();
        let mut opened = Vec::new();
        for raw in split(data, b"\n====\n").into_iter().take(4) {
            let Some(req) = request(raw, &session) else {
                continue;
            };
            let streaming_get = req.method() == Method::GET;
            let response = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(req))
                .await
                .expect("a response within 5 s");
            let Ok(response) = response;
            if let Some(id) = response
                .headers()
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
            {
                session = id.to_string();
                opened.push(session.clone());
            }
            if streaming_get && response.status().is_success() {
                // An event stream stays open by design: take what is ready and let it go.
                let mut body = response.into_body();
                let _ = tokio::time::timeout(Duration::from_millis(1), body.frame()).await;
                continue;
            }
            let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
                .await
                .expect("the whole body within 5 s");
            let _ = body.map(|b| b.to_bytes());
        }
        for id in opened {
            if let Some(req) = delete(&id) {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(req)).await;
            }
        }
    });
});
