//! `warden serve`: bearer tokens, identity headers, session isolation, no credentials upstream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_mcp::http::Tokens;
use warden_mcp::{Gateway, Transport, UpstreamSettings};

use crate::common::*;

pub const TOKEN: &str = "tok-forum-helper-0123456789";
pub const OPS_TOKEN: &str = "tok-ops-bot-9876543210";

pub async fn serve(gw: Arc<Gateway>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tokens = Tokens::new([("forum-helper", TOKEN), ("ops-bot", OPS_TOKEN)]);
    tokio::spawn(async move {
        warden_mcp::http::serve(gw, tokens, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop)
}

pub fn headers(principal: &str, mission: &str) -> HashMap<http::HeaderName, http::HeaderValue> {
    let mut h = HashMap::new();
    h.insert(
        http::HeaderName::from_static("x-warden-principal"),
        http::HeaderValue::from_str(principal).unwrap(),
    );
    h.insert(
        http::HeaderName::from_static("x-warden-mission"),
        http::HeaderValue::from_str(mission).unwrap(),
    );
    h.insert(
        http::HeaderName::from_static("x-warden-purpose"),
        http::HeaderValue::from_static("Help me answer Bob's question in T-1042"),
    );
    h
}

async fn http_agent(
    addr: SocketAddr,
    token: &str,
    principal: &str,
    mission: &str,
) -> Result<Client, String> {
    http_agent_with(addr, token, headers(principal, mission)).await
}

async fn http_agent_with(
    addr: SocketAddr,
    token: &str,
    headers: HashMap<http::HeaderName, http::HeaderValue>,
) -> Result<Client, String> {
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(token)
            .custom_headers(headers),
    );
    ().serve(t).await.map_err(|e| e.to_string())
}

async fn raw_post(addr: SocketAddr, auth: Option<&str>) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test]
async fn requests_without_a_valid_bearer_token_get_401() {
    let (gw, _acme, log) = start_acme().await;
    let (addr, stop) = serve(gw.clone()).await;
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic Zm9vOmJhcg=="),
        Some("Bearer "),
    ] {
        let r = raw_post(addr, auth).await;
        assert!(r.starts_with("HTTP/1.1 401"), "{auth:?}: {r}");
        assert!(
            r.to_ascii_lowercase().contains("www-authenticate: bearer"),
            "{r}"
        );
    }
    assert_eq!(gw.live_sessions(), 0);
    assert!(log.is_empty());
    // And a real client with a wrong token cannot connect.
    assert!(http_agent(addr, "wrong", "alice", "answer-forum-question")
        .await
        .is_err());
    let _ = stop.send(());
}

#[tokio::test]
async fn a_missing_mission_fails_the_handshake_clearly() {
    let (gw, _acme, _log) = start_acme().await;
    let (addr, stop) = serve(gw).await;
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(TOKEN),
    );
    let err = match ().serve(t).await {
        Ok(_) => panic!("no mission, no session"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("X-Warden-Mission-Token"), "{err}");
    // A principal the directory does not know is refused too.
    let err = http_agent(addr, TOKEN, "mallory", "answer-forum-question")
        .await
        .err()
        .unwrap();
    assert!(err.contains("unknown principal `mallory`"), "{err}");
    let _ = stop.send(());
}

#[tokio::test]
async fn taint_belongs_to_the_mission_and_sessions_end_with_their_clients() {
    let (gw, _acme, log) = start_acme().await;
    let (addr, stop) = serve(gw.clone()).await;
    let a = http_agent(addr, TOKEN, "alice", "answer-forum-question")
        .await
        .unwrap();
    let b = http_agent(addr, TOKEN, "alice", "answer-forum-question")
        .await
        .unwrap();
    // Another mission of the same agent and person: another purpose.
    let mut other = headers("alice", "answer-forum-question");
    other.insert(
        http::HeaderName::from_static("x-warden-purpose"),
        http::HeaderValue::from_static("Help me answer Carol's question in T-1043"),
    );
    let c = http_agent_with(addr, TOKEN, other).await.unwrap();
    let ops = http_agent(addr, OPS_TOKEN, "dave", "ops-change")
        .await
        .unwrap();
    // Each agent sees its own tools.
    assert!(tool_names(ops.peer())
        .await
        .contains(&"acl.grant_access".to_string()));
    assert!(!tool_names(a.peer())
        .await
        .contains(&"acl.grant_access".to_string()));
    // Session a reads the auth logs: the mission's taint makes a public post risky, from a
    // and from b, a second session of the same mission; c, another mission, is clean.
    let logs = call(
        a.peer(),
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    )
    .await;
    assert!(!is_error(&logs));
    let post = json!({"channel": "eng-help", "thread_id": "T-1042",
                      "body": "Have you tried resetting your password from the portal?"});
    let ra = call(a.peer(), "forum.post_reply", post.clone()).await;
    let rb = call(b.peer(), "forum.post_reply", post.clone()).await;
    let rc = call(c.peer(), "forum.post_reply", post).await;
    assert_ne!(outcome(&ra), "allow", "{}", text(&ra));
    assert_ne!(outcome(&rb), "allow", "{}", text(&rb));
    assert_eq!(outcome(&rc), "allow", "{}", text(&rc));
    // b's explanation names where the labels came from: a call of another session (a's), by
    // the name the log gives it; a's own explanation does not name its own session.
    let posts: Vec<_> = log
        .entries()
        .into_iter()
        .filter(|e| e.decision.tool == "forum.post_reply")
        .collect();
    let explained = |i: usize| serde_json::to_string(&posts[i].decision.reasons).unwrap();
    let a_session = &posts[0].decision.session;
    assert_ne!(a_session, &posts[1].decision.session);
    assert_eq!(posts[0].decision.mission, posts[1].decision.mission);
    assert_ne!(posts[0].decision.mission, posts[2].decision.mission);
    assert!(
        explained(1).contains("from logs.query_logs (call 1, ")
            && explained(1).contains(&format!(" in session {a_session})")),
        "{}",
        explained(1)
    );
    assert!(!explained(0).contains(" in session "), "{}", explained(0));
    // a's calls took the fast path (its session was open after tools/list); b's and c's first
    // calls went through rmcp, which opened their sessions.
    assert_eq!(gw.fast_calls(), 2);
    assert_eq!(gw.live_sessions(), 4);
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    c.cancel().await.unwrap();
    ops.cancel().await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), || gw.live_sessions() == 0).await,
        "sessions left: {}",
        gw.live_sessions()
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn a_2026_07_28_stateless_client_keeps_one_session_per_token_and_identity() {
    use rmcp::model::ProtocolVersion;
    use rmcp::{ClientLifecycleMode, ClientServiceExt};
    let (gw, _acme, log) = start_acme().await;
    let (addr, stop) = serve(gw.clone()).await;
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(TOKEN)
            .custom_headers(headers("alice", "answer-forum-question")),
    );
    let client = ClientConfig::new(ClientCapabilities::default(), Implementation::new("t", "0"))
        .serve_with_lifecycle(
            t,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    call(
        client.peer(),
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    )
    .await;
    let r = call(
        client.peer(),
        "forum.post_reply",
        json!({"channel": "eng-help", "thread_id": "T-1042", "body": "Have you tried resetting your password?"}),
    )
    .await;
    // The second request saw the first one's taint: same session.
    assert_ne!(outcome(&r), "allow", "{}", text(&r));
    let e = log.entries();
    assert_eq!(e[0].decision.session, e[1].decision.session);
    assert!(e[0].decision.session.starts_with("s-"));
    client.cancel().await.unwrap();
    let _ = stop.send(());
}

/// Records the Authorization header each upstream request carried.
#[derive(Clone)]
pub struct HeaderRecorder {
    pub inner: warden_acme::AcmeServer,
    /// The `Authorization` header of each `tools/call`.
    pub seen: Arc<Mutex<Vec<Option<String>>>>,
    /// The `Mcp-Session-Id` of each `tools/call`.
    pub sessions: Arc<Mutex<Vec<String>>>,
}

impl ServerHandler for HeaderRecorder {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.inner.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let auth = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.seen.lock().unwrap().push(auth);
        let sid = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.sessions.lock().unwrap().push(sid);
        self.inner.call_tool(request, context).await
    }
}

/// Acme's forum over streamable HTTP, recording what each `tools/call` carried: the recorder,
/// the server's session manager, and the upstream settings that reach it.
pub async fn recorded_forum() -> (HeaderRecorder, Arc<LocalSessionManager>, UpstreamSettings) {
    let recorder = HeaderRecorder {
        inner: warden_acme::AcmeServer::only("forum").unwrap(),
        seen: Arc::new(Mutex::new(Vec::new())),
        sessions: Arc::new(Mutex::new(Vec::new())),
    };
    let r2 = recorder.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let svc = rmcp::transport::StreamableHttpService::new(
        move || Ok(r2.clone()),
        sessions.clone(),
        rmcp::transport::StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().nest_service("/mcp", svc))
            .await
            .unwrap()
    });
    let upstream = UpstreamSettings::new(
        "forum",
        Transport::Http {
            url: format!("http://{addr}/mcp"),
        },
    )
    .with_timeout(Duration::from_secs(10));
    (recorder, sessions, upstream)
}

#[tokio::test]
async fn http_upstreams_work_and_never_see_the_clients_credentials() {
    let (recorder, _, upstream) = recorded_forum().await;
    let log = Arc::new(MemoryLog::new());
    let gw = start(vec![upstream], log).await;
    assert!(gw.upstream_status()[0].up, "{:?}", gw.upstream_status());
    let (addr, stop) = serve(gw.clone()).await;
    let a = http_agent(addr, TOKEN, "alice", "answer-forum-question")
        .await
        .unwrap();
    let r = call(
        a.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(text(&r).contains("T-1042"));
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen, vec![None]);
    a.cancel().await.unwrap();
    let _ = stop.send(());
}

#[tokio::test]
async fn an_oversized_http_message_is_refused_with_413() {
    let acme = warden_acme::AcmeServer::new();
    let settings = warden_mcp::GatewaySettings {
        upstreams: acme_upstreams(&acme),
        serve: warden_mcp::ServeSettings {
            max_message_bytes: 2048,
            ..Default::default()
        },
        ..Default::default()
    };
    let gw = start_gateway(engine(), settings, Arc::new(MemoryLog::new())).await;
    let (addr, stop) = serve(gw).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(4096)
    );
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    let _ = stop.send(());
}
