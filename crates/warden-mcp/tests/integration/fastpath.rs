//! The `tools/call` fast path of `warden serve`, driven with plain HTTP requests so that each
//! response shows which path answered it (`application/json` from the fast path, an SSE stream
//! from rmcp).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;
use serde_json::{json, Value};

use crate::common::*;
use crate::http::{recorded_forum, serve, OPS_TOKEN, TOKEN};

/// What one POST came back with.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub session: Option<String>,
    /// The JSON-RPC message (from a JSON body or the SSE stream), `Null` when none.
    pub message: Value,
    pub body: String,
}

pub struct RawClient {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub session: Option<String>,
    pub next: u64,
}

pub fn message_of(content_type: &str, body: &str) -> Value {
    if content_type.starts_with("application/json") {
        return serde_json::from_str(body).unwrap_or(Value::Null);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or(Value::Null)
}

impl RawClient {
    pub fn new(addr: SocketAddr, token: &str) -> RawClient {
        RawClient {
            http: reqwest::Client::new(),
            url: format!("http://{addr}/mcp"),
            token: token.to_string(),
            session: None,
            next: 1,
        }
    }

    pub async fn post(&mut self, body: String) -> Reply {
        self.post_with(body, &[]).await
    }

    /// POST with the session's headers, `extra` replacing or adding some.
    pub async fn post_with(
        &mut self,
        body: String,
        extra: &[(&'static str, &'static str)],
    ) -> Reply {
        let mut h = reqwest::header::HeaderMap::new();
        let mut set = |k: &'static str, v: &str| {
            h.insert(k, reqwest::header::HeaderValue::from_str(v).unwrap());
        };
        set("authorization", &format!("Bearer {}", self.token));
        set("content-type", "application/json");
        set("accept", "application/json, text/event-stream");
        set("x-warden-principal", "alice");
        set("x-warden-mission", "answer-forum-question");
        set(
            "x-warden-purpose",
            "Help me answer Bob's question in T-1042",
        );
        if let Some(s) = &self.session {
            set("mcp-session-id", s);
            set("mcp-protocol-version", "2025-11-25");
        }
        for (k, v) in extra {
            set(k, v);
        }
        let b = self.http.post(&self.url).headers(h);
        let r = tokio::time::timeout(Duration::from_secs(10), b.body(body).send())
            .await
            .expect("an answer within 10 s")
            .expect("HTTP");
        let status = r.status().as_u16();
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type").unwrap_or_default();
        let session = header("mcp-session-id");
        // SSE streams of rmcp stay open after the response only for GET; a POST's ends.
        let body = tokio::time::timeout(Duration::from_secs(10), r.text())
            .await
            .expect("the body within 10 s")
            .expect("body");
        let message = message_of(&content_type, &body);
        Reply {
            status,
            content_type,
            session,
            message,
            body,
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        let id = self.next;
        self.next += 1;
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await
    }

    pub async fn open(&mut self) {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "0"}}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        self.session = r.session;
        assert!(self.session.is_some(), "no session id: {}", r.body);
        let n = self
            .post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into())
            .await;
        assert_eq!(n.status, 202, "{}", n.body);
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Reply {
        self.request("tools/call", json!({"name": tool, "arguments": args}))
            .await
    }
}

/// Warden in front of a fresh Acme, and a client whose session is open and has listed tools
/// (which opens Warden's session through rmcp); also returns the `tools/list` reply.
pub async fn served() -> (
    Arc<warden_mcp::Gateway>,
    Arc<MemoryLog>,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    RawClient,
    Reply,
) {
    let (gw, _acme, log) = start_acme().await;
    let (addr, stop) = serve(gw.clone()).await;
    let mut c = RawClient::new(addr, TOKEN);
    c.open().await;
    let list = c.request("tools/list", json!({})).await;
    (gw, log, addr, stop, c, list)
}

pub fn result_text(r: &Reply) -> String {
    r.message["result"]["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn decision(r: &Reply) -> String {
    r.message["result"]["structuredContent"]["decision"]
        .as_str()
        .unwrap_or("allow")
        .to_string()
}

#[tokio::test]
async fn calls_in_a_served_session_are_answered_in_front_of_rmcp_and_share_its_taint() {
    // The first request that needs the session (tools/list) goes through rmcp and opens it.
    let (gw, log, _addr, stop, mut c, list) = served().await;
    assert!(
        list.content_type.starts_with("text/event-stream"),
        "{}",
        list.content_type
    );
    assert!(list.body.contains("forum.read_thread"), "{}", list.body);
    // Now calls are answered as JSON, with the upstream's real result.
    let read = c
        .call(
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
        .await;
    assert_eq!(read.status, 200);
    assert!(
        read.content_type.starts_with("application/json"),
        "{}",
        read.content_type
    );
    assert_eq!(read.message["id"], json!(3));
    assert!(result_text(&read).contains("T-1042"), "{}", read.body);
    assert!(
        read.message["result"].get("resultType").is_none(),
        "{}",
        read.body
    );
    // The logs it reads taint the session the rmcp handler opened: a public post is held.
    let logs = c
        .call(
            "logs.query_logs",
            json!({"source": "auth", "query": "user=bob"}),
        )
        .await;
    assert_eq!(decision(&logs), "allow", "{}", logs.body);
    let post = c
        .call(
            "forum.post_reply",
            json!({"channel": "eng-help", "thread_id": "T-1042",
                   "body": "Have you tried resetting your password from the portal?"}),
        )
        .await;
    assert!(post.content_type.starts_with("application/json"));
    assert_eq!(
        post.message["result"]["isError"],
        json!(true),
        "{}",
        post.body
    );
    assert_ne!(decision(&post), "allow", "{}", post.body);
    assert!(result_text(&post).contains("Warden"), "{}", post.body);
    let sid = c.session.clone().unwrap();
    let s = gw
        .find_http_session(&sid)
        .expect("the session is registered");
    assert!(s
        .state()
        .await
        .taint
        .keys()
        .any(|l| &**l == "security-sensitive"));
    // Every call was logged, the fast path's included.
    assert_eq!(log.len(), 3);
    // A tool the mission never sees is still decided, logged and explained.
    let grant = c
        .call(
            "acl.grant_access",
            json!({"resource": "repo:payments", "user": "bob"}),
        )
        .await;
    assert_eq!(
        grant.message["result"]["isError"],
        json!(true),
        "{}",
        grant.body
    );
    assert_eq!(decision(&grant), "deny", "{}", grant.body);
    assert_eq!(log.len(), 4);
    let _ = stop.send(());
}

#[tokio::test]
async fn what_the_fast_path_cannot_check_is_left_to_rmcp() {
    let (gw, log, addr, stop, mut c, _) = served().await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    // Another agent's token on this session: for it the session does not exist.
    let mut other = RawClient::new(addr, OPS_TOKEN);
    other.session = c.session.clone();
    let r = other.call("forum.read_thread", args.clone()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    // A call with a progress token is answered here too: as JSON when it completes before any
    // progress (an SSE stream otherwise, see `notes`); task augmentation is
    // Warden's tasks (see `tasks.rs`), not this path's.
    let fast_before = gw.fast_calls();
    let r = c
        .request(
            "tools/call",
            json!({"name": "forum.read_thread", "arguments": args, "_meta": {"progressToken": 7}}),
        )
        .await;
    assert!(r.content_type.starts_with("application/json"), "{}", r.body);
    assert!(result_text(&r).contains("T-1042"), "{}", r.body);
    assert_eq!(gw.fast_calls(), fast_before + 1);
    let r = c
        .request(
            "tools/call",
            json!({"name": "forum.read_thread", "arguments": args, "task": {"ttl": 60000}}),
        )
        .await;
    assert!(r.content_type.starts_with("application/json"), "{}", r.body);
    assert!(
        r.message.pointer("/result/task/taskId").is_some(),
        "{}",
        r.body
    );
    assert_eq!(gw.fast_calls(), fast_before + 1);
    // A malformed body gets rmcp's JSON-RPC error, not a crash or an allow.
    let r = c
        .post(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"#.into())
        .await;
    assert!(r.status >= 400, "{} {}", r.status, r.body);
    // An unsupported protocol version header is rmcp's to refuse.
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
                      "params":{"name":"forum.read_thread","arguments":{}}})
    .to_string();
    let r = c
        .post_with(call.clone(), &[("mcp-protocol-version", "1999-01-01")])
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A Host rmcp does not accept (DNS rebinding) is refused by rmcp, and nothing is decided;
    // a browser's request (Origin) is rmcp's to judge too.
    let before = log.len();
    let r = c
        .post_with(call.clone(), &[("host", "attacker.example")])
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(log.len(), before, "nothing was decided");
    let r = c
        .post_with(call, &[("origin", "http://localhost:1234")])
        .await;
    assert!(
        r.content_type.starts_with("text/event-stream"),
        "{}",
        r.content_type
    );
    // Oversized: 413.
    let big = "x".repeat(gw.settings().serve.max_message_bytes + 1);
    let r = c.call("forum.read_thread", json!({"channel": big})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    let before = log.len();
    // A session that ended is not served: 404, nothing decided.
    let sid = c.session.clone().unwrap();
    let del = c
        .http
        .delete(&c.url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    assert!(
        eventually(Duration::from_secs(10), || gw
            .find_http_session(&sid)
            .is_none())
        .await,
        "the ended session is still registered"
    );
    let r = c.call("forum.read_thread", args).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(log.len(), before);
    let _ = stop.send(());
}

/// The ids of the sessions the upstream holds open.
async fn open_sessions(sessions: &LocalSessionManager) -> Vec<String> {
    let mut ids: Vec<String> = sessions
        .sessions
        .read()
        .await
        .keys()
        .map(|k| k.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn calls_to_an_http_upstream_share_the_one_session_of_its_client() {
    let (recorder, up_sessions, upstream) = recorded_forum().await;
    let gw = start(vec![upstream], Arc::new(MemoryLog::new())).await;
    let (addr, stop) = serve(gw.clone()).await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    // Two agents' sessions, several calls each: the upstream sees one session, Warden's.
    for _ in 0..2 {
        let mut c = RawClient::new(addr, TOKEN);
        c.open().await;
        let _ = c.request("tools/list", json!({})).await;
        for _ in 0..3 {
            let r = c.call("forum.read_thread", args.clone()).await;
            assert!(result_text(&r).contains("T-1042"), "{}", r.body);
        }
    }
    let open = open_sessions(&up_sessions).await;
    assert_eq!(open.len(), 1, "one upstream session: {open:?}");
    let used = recorder.sessions.lock().unwrap().clone();
    assert_eq!(used.len(), 6);
    assert!(used.iter().all(|s| *s == open[0]), "{used:?} vs {open:?}");
    let _ = stop.send(());
}

#[tokio::test]
async fn an_http_upstream_that_loses_wardens_session_gets_a_new_one() {
    let (recorder, up_sessions, upstream) = recorded_forum().await;
    let gw = start(vec![upstream], Arc::new(MemoryLog::new())).await;
    let (addr, stop) = serve(gw.clone()).await;
    let mut c = RawClient::new(addr, TOKEN);
    c.open().await;
    let _ = c.request("tools/list", json!({})).await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    let first = c.call("forum.read_thread", args.clone()).await;
    assert!(result_text(&first).contains("T-1042"), "{}", first.body);
    let used = recorder.sessions.lock().unwrap().clone();
    assert_eq!(used.len(), 1);
    // The upstream forgets Warden's one session.
    up_sessions
        .close_session(&used[0].clone().into())
        .await
        .unwrap();
    assert!(open_sessions(&up_sessions).await.is_empty());
    let second = c.call("forum.read_thread", args).await;
    assert!(result_text(&second).contains("T-1042"), "{}", second.body);
    let used = recorder.sessions.lock().unwrap().clone();
    assert_eq!(used.len(), 2, "the call ran exactly once more");
    assert_ne!(used[0], used[1], "on a new session");
    // The new session is the only one, and the lists and health use it too: no restart.
    assert_eq!(open_sessions(&up_sessions).await, vec![used[1].clone()]);
    let status = &gw.upstream_status()[0];
    assert!(status.up, "{status:?}");
    assert_eq!(status.connects, 1, "{status:?}");
    let mut fresh = RawClient::new(addr, TOKEN);
    fresh.open().await;
    let listed = fresh.request("tools/list", json!({})).await;
    assert!(listed.body.contains("forum.read_thread"), "{}", listed.body);
    let _ = stop.send(());
}
