//! Facts about rmcp that Warden's MCP proxy relies on, checked against the Acme server: a
//! hand-written `ServerHandler` delegating to another, what a handler sees of the HTTP request
//! (session id, authorization and custom headers), and the negotiated protocol version.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::{call, text};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;
use warden_acme::AcmeServer;

/// What the handler saw of one `tools/call`.
#[derive(Clone, Debug, Default)]
struct Seen {
    tool: String,
    http: bool,
    session: Option<String>,
    authorization: Option<String>,
    agent: Option<String>,
    protocol: Option<String>,
    client: Option<String>,
}

/// A proxy-shaped handler: records the request context, then delegates to Acme.
#[derive(Clone)]
struct Recorder {
    inner: AcmeServer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ServerHandler for Recorder {
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
        let parts = context.extensions.get::<http::request::Parts>();
        let header = |name: &str| {
            parts
                .and_then(|p| p.headers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        self.seen.lock().unwrap().push(Seen {
            tool: request.name.to_string(),
            http: parts.is_some(),
            session: header("mcp-session-id"),
            authorization: header("authorization"),
            agent: header("x-warden-agent"),
            protocol: context.protocol_version().map(|v| v.as_str().to_string()),
            client: context.client_info().map(|i| i.name),
        });
        self.inner.call_tool(request, context).await
    }
}

#[tokio::test]
async fn an_http_handler_sees_session_and_headers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        inner: AcmeServer::only("forum").unwrap(),
        seen: seen.clone(),
    };
    let service: StreamableHttpService<Recorder, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(recorder.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let connect = |token: &'static str| {
        let mut headers = HashMap::new();
        headers.insert(
            http::HeaderName::from_static("x-warden-agent"),
            http::HeaderValue::from_static("forum-helper"),
        );
        let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(token)
            .custom_headers(headers);
        let transport = StreamableHttpClientTransport::from_config(config);
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("warden-test", "0.0.1"),
        )
        .serve(transport)
    };
    let a = connect("token-a").await.unwrap();
    let b = connect("token-b").await.unwrap();
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    call(a.peer(), "read_thread", args.clone()).await;
    call(a.peer(), "list_threads", json!({"channel": "eng-help"})).await;
    let r = call(b.peer(), "read_thread", args).await;
    assert!(text(&r).contains("T-1042"));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert!(s.http);
        assert!(s.session.is_some());
        assert_eq!(s.agent.as_deref(), Some("forum-helper"));
        // `initialize` with rmcp's default client lands on the newest version that still has
        // an initialize handshake.
        assert_eq!(s.protocol.as_deref(), Some("2025-11-25"));
        assert_eq!(s.client.as_deref(), Some("warden-test"));
    }
    assert_eq!(seen[0].session, seen[1].session);
    assert_ne!(seen[0].session, seen[2].session);
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer token-a"));
    assert_eq!(seen[2].authorization.as_deref(), Some("Bearer token-b"));
    assert_eq!(seen[0].tool, "read_thread");

    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    server.abort();
}

#[tokio::test]
async fn a_stdio_style_handler_sees_no_http_parts() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        inner: AcmeServer::new(),
        seen: seen.clone(),
    };
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let running = recorder.serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let client = ().serve(client_io).await.unwrap();
    call(
        client.peer(),
        "web.fetch",
        json!({"url": "https://vendor.example/status"}),
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].http);
    assert_eq!(seen[0].session, None);
    assert_eq!(seen[0].protocol.as_deref(), Some("2025-11-25"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_2026_07_28_client_is_served_statelessly() {
    use rmcp::model::ProtocolVersion;
    use rmcp::{ClientLifecycleMode, ClientServiceExt};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        inner: AcmeServer::new(),
        seen: seen.clone(),
    };
    let service: StreamableHttpService<Recorder, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(recorder.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header("token-c"),
    );
    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("warden-test", "0.0.1"),
    )
    .serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    assert_eq!(
        common::tool_names(client.peer()).await,
        common::dotted_names()
    );
    call(
        client.peer(),
        "logs.query_logs",
        json!({"source": "deploy", "query": "*"}),
    )
    .await;
    call(
        client.peer(),
        "logs.query_logs",
        json!({"source": "deploy", "query": "*"}),
    )
    .await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert!(s.http);
        // No Mcp-Session-Id in 2026-07-28: every request stands alone and carries its own
        // protocol version and client info in `_meta`.
        assert_eq!(s.session, None);
        assert_eq!(s.protocol.as_deref(), Some("2026-07-28"));
        assert_eq!(s.client.as_deref(), Some("warden-test"));
        assert_eq!(s.authorization.as_deref(), Some("Bearer token-c"));
    }
    client.cancel().await.unwrap();
    server.abort();
}
