//! `warden proxy`: one MCP session over stdin/stdout.
//!
//! A framing guard ([`frame`]) sits between the client's byte stream and rmcp: each line is
//! checked for size and parsed as rmcp will parse it first. A line longer than the limit is
//! answered with JSON-RPC `-32600 Invalid Request` and skipped (never buffered whole); a line
//! rmcp could not read is answered with `-32700 Parse error` or `-32600 Invalid Request` (rmcp
//! alone would drop many of them silently, leaving the client waiting). Either way the session
//! keeps serving: every line gets an answer. Guard replies are written between rmcp's messages,
//! never inside one.

use std::sync::Arc;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::gateway::{Gateway, Session};
use crate::handler::WardenHandler;
use crate::GatewayError;

pub mod frame;

use frame::{GuardedLines, Step};

/// Check client lines and pass the good ones to rmcp.
async fn guard_input<R: AsyncRead + Unpin>(
    reader: R,
    mut to_rmcp: tokio::io::DuplexStream,
    replies: mpsc::Sender<Vec<u8>>,
    max: usize,
) {
    let mut lines = GuardedLines::new(reader, max);
    while let Some(step) = lines.next_step().await {
        let sent = match step {
            Step::Forward(line) => to_rmcp.write_all(&line).await.is_ok(),
            Step::Reply(reply) => replies.send(reply).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    let _ = to_rmcp.shutdown().await;
}

/// Copy rmcp's output to the client, slipping guard replies in between whole messages.
async fn merge_output<W: AsyncWrite + Unpin>(
    mut from_rmcp: tokio::io::DuplexStream,
    mut replies: mpsc::Receiver<Vec<u8>>,
    mut writer: W,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut at_boundary = true;
    let mut replies_open = true;
    loop {
        tokio::select! {
            biased;
            n = from_rmcp.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => break, Ok(n) => n };
                let chunk = buf.get(..n).unwrap_or_default();
                if writer.write_all(chunk).await.is_err() { return; }
                at_boundary = chunk.last() == Some(&b'\n');
                if at_boundary && writer.flush().await.is_err() { return; }
            }
            r = replies.recv(), if at_boundary && replies_open => match r {
                Some(line) => {
                    if writer.write_all(&line).await.is_err() || writer.flush().await.is_err() { return; }
                }
                None => replies_open = false,
            },
        }
    }
    while let Ok(line) = replies.try_recv() {
        let _ = writer.write_all(&line).await;
    }
    let _ = writer.flush().await;
}

/// Serve one session over any byte streams (stdin/stdout for `warden proxy`) until the client
/// closes its side.
///
/// # Errors
/// When the MCP handshake fails.
pub async fn serve_io<R, W>(
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    reader: R,
    writer: W,
) -> Result<(), GatewayError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let max = gateway.settings().serve.max_message_bytes;
    let (guard_side, rmcp_in) = tokio::io::duplex(256 * 1024);
    let (rmcp_out, merge_side) = tokio::io::duplex(256 * 1024);
    let (tx, rx) = mpsc::channel(64);
    let input = tokio::spawn(guard_input(reader, guard_side, tx, max));
    let output = tokio::spawn(merge_output(merge_side, rx, writer));
    let handler = WardenHandler::for_session(gateway, session);
    // rmcp reads from one duplex and writes to the other.
    let served = match handler.serve((rmcp_in, rmcp_out)).await {
        Ok(running) => running
            .waiting()
            .await
            .map(|_| ())
            .map_err(GatewayError::from),
        Err(e) => Err(GatewayError::Handshake(e.to_string())),
    };
    input.abort();
    let _ = output.await;
    served
}

/// Serve one session over this process's stdin and stdout.
///
/// # Errors
/// As [`serve_io`].
pub async fn serve_stdio(gateway: Arc<Gateway>, session: Arc<Session>) -> Result<(), GatewayError> {
    serve_io(gateway, session, tokio::io::stdin(), tokio::io::stdout()).await
}
