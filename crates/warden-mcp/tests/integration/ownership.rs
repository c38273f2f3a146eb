//! `warden serve`: an MCP session belongs to the token that opened it. Any other token gets the
//! 404 of an unknown session for every operation on it, and the decision log names sessions by
//! a keyed hash, never by their id.

use std::time::Duration;

use serde_json::{json, Value};
use warden_mcp::naming::session_name;

use crate::fastpath::{result_text, served, RawClient, Reply};
use crate::http::{OPS_TOKEN, TOKEN};

const UNKNOWN: &str = "Not Found: Session not found";

fn args() -> Value {
    json!({"channel": "eng-help", "thread_id": "T-1042"})
}

/// A GET or DELETE of session `sid` with `token`: status and body.
async fn raw(c: &RawClient, method: reqwest::Method, token: &str, sid: &str) -> (u16, String) {
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.http
            .request(method, &c.url)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", sid)
            .header("mcp-protocol-version", "2025-11-25")
            .send(),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        // An event stream stays open: its status is the answer.
        return (status, String::new());
    }
    (status, r.text().await.unwrap_or_default())
}

fn unknown(r: &Reply) {
    assert_eq!((r.status, r.body.as_str()), (404, UNKNOWN), "{}", r.body);
}

#[tokio::test]
async fn another_token_cannot_call_cancel_stream_or_delete_a_session() {
    let (gw, log, addr, stop, mut a, _) = served().await;
    let sid = a.session.clone().unwrap();
    // What a session id nobody opened gets, for reference.
    let mut stranger = RawClient::new(addr, TOKEN);
    stranger.session = Some("3f9a1c2e-0000-4000-8000-000000000000".into());
    unknown(&stranger.call("forum.read_thread", args()).await);

    let mut b = RawClient::new(addr, OPS_TOKEN);
    b.session = Some(sid.clone());
    unknown(&b.call("forum.read_thread", args()).await);
    unknown(&b.request("tools/list", json!({})).await);
    unknown(
        &b.post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                   "params": {"requestId": 3, "reason": "not yours"}})
            .to_string(),
        )
        .await,
    );
    assert_eq!(
        raw(&a, reqwest::Method::GET, OPS_TOKEN, &sid).await,
        (404, UNKNOWN.to_string())
    );
    assert_eq!(
        raw(&a, reqwest::Method::DELETE, OPS_TOKEN, &sid).await,
        (404, UNKNOWN.to_string())
    );
    assert_eq!(log.len(), 0, "nothing was decided for the other token");

    // The owner's session is untouched: it still calls, streams, and ends.
    let r = a.call("forum.read_thread", args()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(result_text(&r).contains("T-1042"), "{}", r.body);
    assert!(gw.find_http_session(&sid).is_some());
    assert_eq!(raw(&a, reqwest::Method::GET, TOKEN, &sid).await.0, 200);
    assert_eq!(raw(&a, reqwest::Method::DELETE, TOKEN, &sid).await.0, 204);
    unknown(&a.call("forum.read_thread", args()).await);
    let _ = stop.send(());
}

#[tokio::test]
async fn a_fresh_session_cannot_be_claimed_by_another_tokens_first_request() {
    let (gw, _log, addr, stop, _, _) = served().await;
    // A initializes but has sent nothing else.
    let mut a = RawClient::new(addr, TOKEN);
    a.open().await;
    let sid = a.session.clone().unwrap();
    // B races to be the first to use it.
    let mut b = RawClient::new(addr, OPS_TOKEN);
    b.session = Some(sid.clone());
    unknown(
        &b.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into())
            .await,
    );
    unknown(&b.request("tools/list", json!({})).await);
    unknown(&b.call("forum.read_thread", args()).await);
    assert!(gw.find_http_session(&sid).is_none(), "B opened nothing");
    // A's first request opens the session, as A.
    let r = a.request("tools/list", json!({})).await;
    assert!(r.body.contains("forum.read_thread"), "{}", r.body);
    let s = gw.find_http_session(&sid).expect("A's session");
    assert_eq!(
        s.token(),
        Some(
            &warden_mcp::http::Tokens::new([("x", TOKEN)])
                .check(TOKEN)
                .unwrap()
                .token
        )
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn the_decision_log_names_sessions_by_a_keyed_hash_never_by_id() {
    let acme = warden_acme::AcmeServer::new();
    let log = std::sync::Arc::new(crate::common::MemoryLog::new());
    let gw = crate::common::start(crate::common::acme_upstreams(&acme), log.clone()).await;
    let (addr, stop) = crate::http::serve(gw.clone()).await;
    let mut a = RawClient::new(addr, TOKEN);
    a.open().await;
    let _ = a.request("tools/list", json!({})).await;
    let sid = a.session.clone().unwrap();
    let read = a.call("forum.read_thread", args()).await;
    let denied = a
        .call(
            "acl.grant_access",
            json!({"resource": "repo:payments", "user": "bob"}),
        )
        .await;
    // Every record as `warden audit export` prints it; the two decisions (a forward's outcome
    // record names its decision, not the session).
    let records = log.store().audit_range(1, 100).await.unwrap();
    let text = serde_json::to_string(&records).unwrap();
    let lines: Vec<String> = records
        .iter()
        .filter(|r| r.kind == warden_store::AuditKind::Decision)
        .map(|r| r.body.to_string())
        .collect();
    let decisions: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(decisions.len(), 2, "{text}");
    let name = session_name(&sid);
    assert_eq!(gw.find_http_session(&sid).unwrap().name(), name);
    for line in decisions {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["session"], json!(name), "{line}");
        // The mission is named by a keyed hash too (of its key: token, agent, person,
        // template and purpose).
        let mission = gw.find_http_session(&sid).unwrap().mission().id.clone();
        assert!(mission.starts_with("m-"), "{mission}");
        assert_eq!(v["mission"], json!(mission), "{line}");
    }
    for (what, s) in [
        ("log", &text),
        ("allow", &read.body),
        ("deny", &denied.body),
    ] {
        assert!(!s.contains(&sid), "the session id is in the {what}: {s}");
    }
    assert!(denied.body.contains("Warden denied"), "{}", denied.body);
    let _ = stop.send(());
}
