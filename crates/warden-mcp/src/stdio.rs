//! `warden proxy`: one MCP session over stdin/stdout.
//!
//! A framing guard ([`frame`]) sits between the client's byte stream and rmcp: each line is
//! checked for size and parsed as rmcp will parse it first. A line longer than the limit is
//! answered with JSON-RPC `-32600 Invalid Request` and skipped (never buffered whole); a line
//! rmcp could not read is answered with `-32700 Parse error` or `-32600 Invalid Request` (rmcp
//! alone would drop many of them silently, leaving the client waiting). Either way the session
//! keeps serving: every line gets an answer. Guard replies are written between rmcp's messages,
//! never inside one.
//!
//! Tasks (2025-11-25), which rmcp's types do not carry, are taken here: a `tools/call` with
//! `task` and the `tasks/*` requests are answered by [`Gateway::task_request`], and the
//! responses to `initialize` and `tools/list` get Warden's task support added on the way out
//! ([`Gateway::advertise_tasks`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::ServiceExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::gateway::tasks::{is_task_request, Advertised};
use crate::gateway::{Gateway, Session};
use crate::handler::WardenHandler;
use crate::GatewayError;

pub mod frame;

use frame::{GuardedLines, Step};

/// The requests whose responses from rmcp carry Warden's task support, by id.
type Watched = Arc<Mutex<HashMap<String, Advertised>>>;

/// What the input side does with a line besides forwarding it.
enum Routed {
    /// A request about tasks: Warden answers it (rmcp's types do not carry tasks).
    Task {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    /// A request whose response gets Warden's task support added on the way out.
    Watch(String, Advertised),
    /// `notifications/cancelled` of this request.
    Cancelled(String),
}

/// Whether `needle` occurs in `hay`.
fn has(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// How a line is routed (read only when it may concern tasks).
fn route(line: &[u8]) -> Option<Routed> {
    if !(has(line, b"\"task")
        || has(line, b"\"initialize\"")
        || has(line, b"\"tools/list\"")
        || has(line, b"notifications/cancelled"))
    {
        return None;
    }
    let mut v: Value = serde_json::from_slice(line).ok()?;
    let method = v.get("method")?.as_str()?.to_string();
    let params = v.get_mut("params").map(Value::take);
    let Some(id) = v.get_mut("id").map(Value::take) else {
        let cancelled = params.as_ref()?.get("requestId")?.to_string();
        return (method == "notifications/cancelled").then_some(Routed::Cancelled(cancelled));
    };
    if is_task_request(&method, params.as_ref()) {
        return Some(Routed::Task { id, method, params });
    }
    Advertised::of(&method).map(|kind| Routed::Watch(id.to_string(), kind))
}

/// The JSON-RPC response line to request `id`.
fn response_line(id: &Value, answer: Result<Value, rmcp::ErrorData>) -> Vec<u8> {
    let message = match answer {
        Ok(result) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(error) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "error": error }),
    };
    let mut line = message.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Check client lines and pass the good ones to rmcp; answer requests about tasks.
async fn guard_input<R: AsyncRead + Unpin>(
    reader: R,
    mut to_rmcp: tokio::io::DuplexStream,
    replies: mpsc::Sender<Vec<u8>>,
    max: usize,
    served: (Arc<Gateway>, Arc<Session>, Watched),
) {
    let (gateway, session, watched) = served;
    let mut lines = GuardedLines::new(reader, max);
    let mut answering: HashMap<String, CancellationToken> = HashMap::new();
    while let Some(step) = lines.next_step().await {
        let sent = match step {
            Step::Forward(line) => match route(&line) {
                Some(Routed::Task { id, method, params }) => {
                    let cancel = CancellationToken::new();
                    answering.retain(|_, c| !c.is_cancelled());
                    answering.insert(id.to_string(), cancel.clone());
                    let (gateway, session, replies) =
                        (gateway.clone(), session.clone(), replies.clone());
                    tokio::spawn(async move {
                        let answer = gateway
                            .task_request(&session, &method, params, &cancel)
                            .await;
                        cancel.cancel();
                        let _ = replies.send(response_line(&id, answer)).await;
                    });
                    true
                }
                Some(Routed::Cancelled(id)) if answering.contains_key(&id) => {
                    if let Some(c) = answering.remove(&id) {
                        c.cancel();
                    }
                    true
                }
                routed => {
                    if let Some(Routed::Watch(id, kind)) = routed {
                        let mut w = watched.lock().unwrap_or_else(|p| p.into_inner());
                        if w.len() < 1024 {
                            w.insert(id, kind);
                        }
                    }
                    to_rmcp.write_all(&line).await.is_ok()
                }
            },
            Step::Reply(reply) => replies.send(reply).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    let _ = to_rmcp.shutdown().await;
}

/// `line` (a response from rmcp) with Warden's task support added, if it answers a watched
/// request.
async fn advertised(gateway: &Gateway, watched: &Watched, line: Vec<u8>) -> Vec<u8> {
    if watched.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        return line;
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(&line) else {
        return line;
    };
    let Some(id) = v.get("id").map(Value::to_string) else {
        return line;
    };
    let kind = watched
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    let (Some(kind), Some(result)) = (kind, v.get_mut("result")) else {
        return line;
    };
    gateway.advertise_tasks(kind, result).await;
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// Copy rmcp's output to the client line by line, slipping guard replies in between.
async fn merge_output<W: AsyncWrite + Unpin>(
    from_rmcp: tokio::io::DuplexStream,
    mut replies: mpsc::Receiver<Vec<u8>>,
    mut writer: W,
    served: (Arc<Gateway>, Watched),
) {
    let (gateway, watched) = served;
    let mut from_rmcp = BufReader::with_capacity(64 * 1024, from_rmcp);
    let mut line = Vec::new();
    let mut replies_open = true;
    loop {
        tokio::select! {
            biased;
            // Cancel-safe: a partial line stays in `line` for the next round.
            n = from_rmcp.read_until(b'\n', &mut line) => {
                match n { Ok(0) | Err(_) => break, Ok(_) => {} }
                if line.last() != Some(&b'\n') {
                    continue;
                }
                let out = advertised(&gateway, &watched, std::mem::take(&mut line)).await;
                if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() { return; }
            }
            r = replies.recv(), if line.is_empty() && replies_open => match r {
                Some(reply) => {
                    if writer.write_all(&reply).await.is_err() || writer.flush().await.is_err() { return; }
                }
                None => replies_open = false,
            },
        }
    }
    if !line.is_empty() {
        let _ = writer.write_all(&line).await;
    }
    while let Ok(reply) = replies.try_recv() {
        let _ = writer.write_all(&reply).await;
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
    let watched = Watched::default();
    let served = (gateway.clone(), session.clone(), watched.clone());
    let input = tokio::spawn(guard_input(reader, guard_side, tx, max, served));
    let output = tokio::spawn(merge_output(
        merge_side,
        rx,
        writer,
        (gateway.clone(), watched),
    ));
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
