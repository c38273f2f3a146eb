//! Warden's client transport over a byte stream (a child's stdin/stdout, an in-process duplex):
//! one JSON-RPC message per line, with a bounded line length.
//!
//! rmcp's own stdio transport drops a line over its limit (16 MiB) without a word, so the request
//! it answered waits out its timeout. Here a line over `max_result_bytes` is discarded up to its
//! newline and turned into an error response for the request it answers: its id is read from the
//! top-level `"id"` at the start or the end of the line, and is accepted only if a request with
//! that id is in flight; when no id can be found and one request is in flight, that one gets
//! the error. The error carries [`TOO_LARGE`] in its data, which [`crate::upstream`] turns into
//! [`super::UpstreamError::TooLarge`]. A response that is JSON but not a JSON-RPC message gets a
//! [`MALFORMED`] error for its id the same way.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::model::{ErrorCode, ErrorData, NumberOrString, RequestId, ServerNotification};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::raw::RawLines;
use super::relay::InFlight;
use super::Note;

/// The `warden` value in the data of an error that stands for a line over the limit.
pub const TOO_LARGE: &str = "result-too-large";
/// The `warden` value in the data of an error that stands for a response of the wrong shape.
pub const MALFORMED: &str = "malformed-response";

/// How much of the start and the end of an oversized line is kept to find its id.
const KEEP: usize = 4096;
/// At most this many request ids are remembered as in flight.
const MAX_PENDING: usize = 65_536;

/// An oversized line being discarded.
struct Oversized {
    size: u64,
    head: Vec<u8>,
    tail: Vec<u8>,
}

/// A line-delimited JSON-RPC client transport with a line limit (see the module doc).
pub struct LineTransport<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    max: usize,
    over: Option<Oversized>,
    write: Arc<tokio::sync::Mutex<Option<W>>>,
    pending: Arc<Mutex<HashSet<RequestId>>>,
    child: Option<tokio::process::Child>,
    /// Where progress about requests in flight goes: taken here, in the order the upstream
    /// wrote it, so that it reaches its agent before the response does.
    notes: Option<Arc<InFlight>>,
    /// Requests Warden writes past rmcp; their responses are taken here.
    raw: Option<Arc<RawLines>>,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    /// A transport reading `read` and writing `write`; lines longer than `max` bytes are refused.
    pub fn new(read: R, write: W, max: usize) -> Self {
        LineTransport {
            read: BufReader::with_capacity(64 * 1024, read),
            line: Vec::new(),
            max,
            over: None,
            write: Arc::new(tokio::sync::Mutex::new(Some(write))),
            pending: Arc::new(Mutex::new(HashSet::new())),
            child: None,
            notes: None,
            raw: None,
        }
    }

    /// The same transport, passing progress about the requests in `notes` to their relays.
    pub(crate) fn with_notes(mut self, notes: Arc<InFlight>) -> Self {
        self.notes = Some(notes);
        self
    }

    /// The same transport, carrying the requests of `raw` too (see [`super::raw`]).
    pub(crate) fn with_raw(mut self, raw: Arc<RawLines>) -> Self {
        let write = self.write.clone();
        raw.attach(Arc::new(move |line: Vec<u8>| {
            let write = write.clone();
            Box::pin(async move { write_line(&write, &line).await })
        }));
        self.raw = Some(raw);
        self
    }

    /// The same transport, owning the child process it talks to: the child is killed when the
    /// transport is closed or dropped.
    pub fn with_child(mut self, child: tokio::process::Child) -> Self {
        self.child = Some(child);
        self
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The in-flight request a refused line answers, if it can be told.
    fn answered(&self, candidates: &[Option<RequestId>]) -> Option<RequestId> {
        let pending = self.pending();
        for id in candidates.iter().flatten() {
            if pending.contains(id) {
                return Some(id.clone());
            }
        }
        if pending.len() == 1 {
            return pending.iter().next().cloned();
        }
        None
    }

    /// Read until a whole line is in `self.line` (`Some(true)`), an oversized line has been
    /// discarded (`Some(false)`, the error response is returned by the caller), or the stream
    /// ended (`None`). Cancel-safe: all state lives on `self`.
    async fn read_line(&mut self) -> Option<bool> {
        loop {
            let (consumed, done) = {
                let available = match self.read.fill_buf().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("reading from the upstream failed: {e}");
                        return None;
                    }
                };
                if available.is_empty() {
                    return None;
                }
                let newline = available.iter().position(|b| *b == b'\n');
                let take = newline.map_or(available.len(), |i| i + 1);
                let chunk = available.get(..take).unwrap_or_default();
                if self.over.is_none() && self.line.len() + take > self.max + 1 {
                    // `max + 1`: the newline does not count.
                    let head = std::mem::take(&mut self.line);
                    self.over = Some(Oversized {
                        size: head.len() as u64,
                        head: head
                            .get(..KEEP.min(head.len()))
                            .unwrap_or_default()
                            .to_vec(),
                        tail: Vec::new(),
                    });
                }
                match &mut self.over {
                    Some(o) => {
                        o.size += take as u64;
                        if o.head.len() < KEEP {
                            let room = KEEP - o.head.len();
                            o.head.extend_from_slice(
                                chunk.get(..room.min(chunk.len())).unwrap_or_default(),
                            );
                        }
                        o.tail.extend_from_slice(chunk);
                        if o.tail.len() > 2 * KEEP {
                            let cut = o.tail.len() - KEEP;
                            o.tail.drain(..cut);
                        }
                    }
                    None => self.line.extend_from_slice(chunk),
                }
                (take, newline.is_some())
            };
            self.read.consume(consumed);
            if done {
                return Some(self.over.is_none());
            }
        }
    }

    /// The error response for the oversized line just discarded, if it answers a request.
    fn refuse_oversized(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let o = self.over.take()?;
        let tail = trim_newline(&o.tail);
        let size = o.size - (o.tail.len() - tail.len()) as u64;
        let ids = [leading_id(&o.head), trailing_id(tail)];
        let error = ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            format!(
                "the result is {size} bytes, over the limit of {} bytes",
                self.max
            ),
            Some(serde_json::json!({ "warden": TOO_LARGE, "size": size, "limit": self.max })),
        );
        if let Some(raw) = &self.raw {
            if raw.fail(&ids, error.clone()) {
                return None;
            }
        }
        let id = self.answered(&ids);
        let Some(id) = id else {
            tracing::warn!(
                size,
                limit = self.max,
                "an upstream message over the limit answers no request in flight; dropped"
            );
            return None;
        };
        self.pending().remove(&id);
        Some(RxJsonRpcMessage::<RoleClient>::error(error, Some(id)))
    }

    /// The message on the line just read, if any.
    fn parse_line(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        let line = trim_newline(&self.line);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if let Some(raw) = self.raw.as_ref().filter(|r| r.expects()) {
            if raw.deliver(&[leading_id(line), trailing_id(line)], line) {
                self.line.clear();
                return None;
            }
        }
        let parsed = serde_json::from_slice::<RxJsonRpcMessage<RoleClient>>(line);
        let out = match parsed {
            Ok(m) => {
                match &m {
                    RxJsonRpcMessage::<RoleClient>::Response(r) => {
                        self.pending().remove(&r.id);
                    }
                    RxJsonRpcMessage::<RoleClient>::Error(e) => {
                        if let Some(id) = &e.id {
                            self.pending().remove(id);
                        }
                    }
                    RxJsonRpcMessage::<RoleClient>::Notification(n) => {
                        if let (Some(notes), ServerNotification::ProgressNotification(p)) =
                            (&self.notes, &n.notification)
                        {
                            if let Some(relay) = notes.find(&p.params.progress_token) {
                                relay.hear(Note::Progress {
                                    progress: p.params.progress,
                                    total: p.params.total,
                                    message: p.params.message.clone(),
                                });
                                self.line.clear();
                                return None;
                            }
                        }
                    }
                    _ => {}
                }
                Some(m)
            }
            Err(e) => self.malformed(line, &e),
        };
        self.line.clear();
        out
    }

    /// A line that is not a message Warden understands: an error for the request it answers
    /// (when it is JSON with the id of a request in flight), else dropped.
    fn malformed(
        &self,
        line: &[u8],
        e: &serde_json::Error,
    ) -> Option<RxJsonRpcMessage<RoleClient>> {
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!("the upstream wrote a line that is not JSON: {e}");
                return None;
            }
        };
        if v.get("method").is_some() {
            tracing::debug!("ignoring an upstream message Warden does not know: {e}");
            return None;
        }
        let id = v.get("id").and_then(json_id);
        let id = id.filter(|id| self.pending().contains(id))?;
        self.pending().remove(&id);
        let error = ErrorData::new(
            ErrorCode::INTERNAL_ERROR,
            format!("the response is not a JSON-RPC response: {e}"),
            Some(serde_json::json!({ "warden": MALFORMED, "detail": e.to_string() })),
        );
        Some(RxJsonRpcMessage::<RoleClient>::error(error, Some(id)))
    }
}

impl<R, W> Transport<RoleClient> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let TxJsonRpcMessage::<RoleClient>::Request(r) = &item {
            let mut pending = self.pending();
            if pending.len() >= MAX_PENDING {
                pending.clear();
            }
            pending.insert(r.id.clone());
        }
        let write = self.write.clone();
        async move {
            let mut bytes = serde_json::to_vec(&item)?;
            bytes.push(b'\n');
            write_line(&write, &bytes).await
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            let whole = self.read_line().await?;
            let m = if whole {
                self.parse_line()
            } else {
                self.refuse_oversized()
            };
            if m.is_some() {
                return m;
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        if let Some(raw) = &self.raw {
            raw.detach();
        }
        drop(self.write.lock().await.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await;
        }
        Ok(())
    }
}

/// Write `line` (newline included) and flush, unless the transport is closed.
async fn write_line<W: AsyncWrite + Unpin>(
    write: &tokio::sync::Mutex<Option<W>>,
    line: &[u8],
) -> std::io::Result<()> {
    let mut w = write.lock().await;
    let Some(w) = w.as_mut() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    w.write_all(line).await?;
    w.flush().await
}

fn trim_newline(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn json_id(v: &Value) -> Option<RequestId> {
    match v {
        Value::Number(n) => n.as_i64().map(NumberOrString::Number),
        Value::String(s) => Some(NumberOrString::String(s.as_str().into())),
        _ => None,
    }
}

/// An id value in raw JSON text: a whole number or a string without escapes.
fn id_value(raw: &[u8]) -> Option<RequestId> {
    if let Some(s) = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) {
        if s.contains(&b'\\') || s.contains(&b'"') {
            return None;
        }
        return std::str::from_utf8(s)
            .ok()
            .map(|s| NumberOrString::String(s.into()));
    }
    std::str::from_utf8(raw)
        .ok()?
        .parse::<i64>()
        .ok()
        .map(NumberOrString::Number)
}

/// The top-level `"id"` of a JSON object whose start is `head`, when it appears in `head`.
fn leading_id(head: &[u8]) -> Option<RequestId> {
    let mut depth = 0usize;
    let mut i = 0usize;
    // Whether the string that starts at depth 1 is in key position.
    let mut key_position = false;
    while let Some(&b) = head.get(i) {
        match b {
            b'{' | b'[' => {
                depth += 1;
                key_position = b == b'{' && depth == 1;
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' => key_position = depth == 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while let Some(&c) = head.get(j) {
                    match c {
                        b'\\' => j += 2,
                        b'"' => break,
                        _ => j += 1,
                    }
                }
                let s = head.get(start..j)?;
                i = j;
                if depth == 1 && key_position && s == b"id" {
                    let rest = head.get(j + 1..)?;
                    let rest = skip_ws(rest).strip_prefix(b":")?;
                    let rest = skip_ws(rest);
                    let end = if rest.first() == Some(&b'"') {
                        rest.iter().skip(1).position(|c| *c == b'"')? + 2
                    } else {
                        rest.iter()
                            .position(|c| !(c.is_ascii_digit() || *c == b'-'))?
                    };
                    return id_value(rest.get(..end)?);
                }
                key_position = false;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    s.get(n..).unwrap_or_default()
}

fn skip_ws_back(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// The top-level `"id"` of a JSON object that ends with `… ,"id": VALUE }` (the order some SDKs
/// write responses in).
fn trailing_id(tail: &[u8]) -> Option<RequestId> {
    let s = skip_ws_back(tail).strip_suffix(b"}")?;
    let s = skip_ws_back(s);
    let start = if s.last() == Some(&b'"') {
        s.len() - 1 - s.iter().rev().skip(1).position(|c| *c == b'"')? - 1
    } else {
        s.len()
            - s.iter()
                .rev()
                .take_while(|c| c.is_ascii_digit() || **c == b'-')
                .count()
    };
    let id = id_value(s.get(start..)?)?;
    let before = skip_ws_back(s.get(..start)?).strip_suffix(b":")?;
    let before = skip_ws_back(before).strip_suffix(b"\"id\"")?;
    skip_ws_back(before).strip_suffix(b",")?;
    Some(id)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_at_the_start_or_the_end_of_a_line() {
        let n = |i| Some(NumberOrString::Number(i));
        assert_eq!(
            leading_id(br#"{"jsonrpc":"2.0","id":7,"result":{"x""#),
            n(7)
        );
        assert_eq!(
            leading_id(br#"{"id" : "a-1","result""#),
            Some(NumberOrString::String("a-1".into()))
        );
        // An `id` inside the result is not the response's id.
        assert_eq!(leading_id(br#"{"result":{"id":3,"content":[{"te"#), None);
        assert_eq!(leading_id(br#"{"result":"\"id\":4","#), None);
        assert_eq!(trailing_id(br#"xx"}]},"jsonrpc":"2.0","id":12}"#), n(12));
        assert_eq!(trailing_id(br#"xx"}]},"jsonrpc":"2.0","id":-1 }  "#), n(-1));
        assert_eq!(
            trailing_id(br#"x"},"id":"q"}"#),
            Some(NumberOrString::String("q".into()))
        );
        assert_eq!(trailing_id(br#"x","inner":{"id":5}}"#), None);
        assert_eq!(trailing_id(br#"x"id":5}"#), None);
    }
}
