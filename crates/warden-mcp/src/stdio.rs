//! `warden proxy`: one MCP session over stdin/stdout.
//!
//! A framing guard sits between the client's byte stream and rmcp: each line is checked for
//! size and JSON syntax first. A line longer than the limit is answered with JSON-RPC
//! `-32600 Invalid Request` and skipped (never buffered whole); a line that is not JSON is
//! answered with `-32700 Parse error` (rmcp alone would drop it silently, leaving the client
//! waiting). Either way the session keeps serving. Guard replies are written between rmcp's
//! messages, never inside one.

use std::sync::Arc;

use rmcp::ServiceExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::gateway::{Gateway, Session};
use crate::handler::WardenHandler;
use crate::GatewayError;

enum Line {
    Complete(Vec<u8>),
    Oversized(usize),
    Eof,
}

/// Read one line, never holding more than `max` bytes of it.
async fn read_line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let mut oversized = false;
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if oversized {
                Line::Oversized(seen)
            } else if buf.is_empty() {
                Line::Eof
            } else {
                // A last line without a newline is still a message.
                Line::Complete(buf)
            });
        }
        let newline = available.iter().position(|b| *b == b'\n');
        let take = newline.map_or(available.len(), |i| i + 1);
        seen = seen.saturating_add(take);
        if !oversized {
            if buf.len() + take > max.saturating_add(1) {
                oversized = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(available.get(..take).unwrap_or_default());
            }
        }
        r.consume(take);
        if newline.is_some() {
            return Ok(if oversized {
                Line::Oversized(seen)
            } else {
                Line::Complete(buf)
            });
        }
    }
}

fn error_line(code: i64, message: &str) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message }
    }))
    .unwrap_or_default();
    v.push(b'\n');
    v
}

/// Check client lines and pass the good ones to rmcp.
async fn guard_input<R: AsyncRead + Unpin>(
    reader: R,
    mut to_rmcp: tokio::io::DuplexStream,
    replies: mpsc::Sender<Vec<u8>>,
    max: usize,
) {
    let mut r = BufReader::new(reader);
    loop {
        match read_line(&mut r, max).await {
            Err(_) | Ok(Line::Eof) => break,
            Ok(Line::Oversized(n)) => {
                let msg = format!(
                    "Invalid Request: the message is {n} bytes; Warden accepts at most {max} (serve.max_message_bytes)"
                );
                if replies.send(error_line(-32600, &msg)).await.is_err() {
                    break;
                }
            }
            Ok(Line::Complete(mut line)) => {
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                if body.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    let msg = format!("Parse error: the message is not JSON ({e})");
                    if replies.send(error_line(-32700, &msg)).await.is_err() {
                        break;
                    }
                    continue;
                }
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                if to_rmcp.write_all(&line).await.is_err() {
                    break;
                }
            }
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
