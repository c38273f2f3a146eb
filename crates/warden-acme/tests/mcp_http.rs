//! The Acme server over streamable HTTP, with rmcp's reqwest client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use common::{call, text, tool_names};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tokio::sync::oneshot;
use warden_acme::{serve_http_with_shutdown, AcmeServer, MCP_PATH};

/// Serves `server` on 127.0.0.1:0; returns its address and a shutdown trigger.
async fn start(
    server: AcmeServer,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        serve_http_with_shutdown(listener, server, async {
            let _ = stopped.await;
        })
        .await
        .expect("serve http");
    });
    (addr, stop, task)
}

async fn connect(addr: SocketAddr) -> RunningService<RoleClient, ()> {
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}{MCP_PATH}"));
    ().serve(transport).await.expect("client handshake")
}

#[tokio::test]
async fn every_tool_works_over_streamable_http() {
    let (addr, stop, task) = start(AcmeServer::new()).await;
    let client = connect(addr).await;
    common::exercise_all(client.peer()).await;
    client.cancel().await.expect("close");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sessions_share_one_state() {
    let (addr, stop, task) = start(AcmeServer::new()).await;
    let first = connect(addr).await;
    let second = connect(addr).await;
    call(
        first.peer(),
        "files.write_file",
        json!({"path": "docs/public/notes.md", "content": "from session one"}),
    )
    .await;
    let read = call(
        second.peer(),
        "files.read_file",
        json!({"path": "docs/public/notes.md"}),
    )
    .await;
    assert_eq!(text(&read), "from session one");
    first.cancel().await.expect("close");
    second.cancel().await.expect("close");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_subset_server_over_http() {
    let (addr, stop, task) = start(AcmeServer::only("mail").unwrap()).await;
    let client = connect(addr).await;
    assert_eq!(tool_names(client.peer()).await, ["send_email"]);
    let sent = call(
        client.peer(),
        "send_email",
        json!({"to": ["alice@acme.example", "frank@acme.example"], "subject": "roster", "body": "names"}),
    )
    .await;
    let s = sent.structured_content.unwrap();
    assert_eq!(s["to"], json!(["alice@acme.example", "frank@acme.example"]));
    client.cancel().await.expect("close");
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn serve_http_for_rejects_an_unknown_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = warden_acme::serve_http_for(listener, Some("payroll"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("payroll"));
}
