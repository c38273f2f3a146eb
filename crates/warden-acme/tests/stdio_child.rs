//! The `acme-mcp` binary as a stdio child process, driven by rmcp's child-process client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{call, is_error, text, tool_names};
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::json;

#[tokio::test]
async fn acme_mcp_serves_one_server_over_stdio() {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_acme-mcp"));
    command.args(["--server", "logs"]);
    let transport = TokioChildProcess::new(command).expect("spawn acme-mcp");
    let client = ().serve(transport).await.expect("client handshake");
    assert_eq!(tool_names(client.peer()).await, ["query_logs"]);
    let logs = call(
        client.peer(),
        "query_logs",
        json!({"source": "auth", "query": "LOCKOUT user=bob"}),
    )
    .await;
    assert!(!is_error(&logs));
    assert!(text(&logs).contains("reason=too_many_failures"));
    client.cancel().await.expect("close");
}

#[tokio::test]
async fn acme_mcp_serves_every_tool_over_stdio() {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_acme-mcp"));
    let transport = TokioChildProcess::new(command).expect("spawn acme-mcp");
    let client = ().serve(transport).await.expect("client handshake");
    common::exercise_all(client.peer()).await;
    client.cancel().await.expect("close");
}
