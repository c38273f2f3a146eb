//! The stdio input guard: line framing and the check every line passes before rmcp sees it.
//!
//! rmcp's stdio transport drops, without a word, every line it cannot parse as a JSON-RPC
//! message for a syntax reason: invalid JSON, invalid UTF-8, JSON nested deeper than its parser
//! allows, a number too large to represent (a 400-digit id). The client then waits forever.
//! [`Guard::check`] parses each line exactly as rmcp will (the same message type, the same byte
//! order mark handling), so a line it forwards is one rmcp accepts, and every other line is
//! answered here:
//!
//! - not JSON, or JSON that cannot be represented (too deep, out-of-range numbers, bad UTF-8):
//!   `-32700 Parse error`, id `null`;
//! - JSON that is not a JSON-RPC message: `-32600 Invalid Request`, with the request's id when
//!   it can be read, `null` otherwise;
//! - a request other than `initialize`, `ping` or `server/discover` before the session is
//!   initialized, without the inline `_meta` of the stateless protocol: `-32600` "the session is
//!   not initialized: send initialize first", with the request's id (rmcp would answer with an
//!   unrelated complaint about `_meta`);
//! - a notification or response before `initialize` is skipped (nothing to answer; rmcp would
//!   end the session).
//!
//! The check is synchronous and does no I/O, so it can be tested and fuzzed on its own;
//! [`GuardedLines`] runs it over a byte stream with the proxy's own framing.

use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, ProtocolVersion};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// The UTF-8 byte order mark, which rmcp strips from the start of a line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// `-32700`: the line is not (representable) JSON.
pub const PARSE_ERROR: i64 = -32700;
/// `-32600`: the line is JSON but not a valid request.
pub const INVALID_REQUEST: i64 = -32600;

/// One framed input line.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, with its newline if it had one.
    Complete(Vec<u8>),
    /// A line longer than the limit, of this many bytes (newline included); its bytes were
    /// skipped, never buffered.
    Oversized(usize),
    /// The end of the input.
    Eof,
}

/// Read one line, never holding more than `max` bytes of it.
///
/// # Errors
/// When reading fails.
pub async fn read_line<R: AsyncRead + Unpin>(
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

/// What to do with one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the line to rmcp: it parses it as a message.
    Forward,
    /// Do not forward; write this JSON-RPC error line (newline included) to the client.
    Reply(Vec<u8>),
    /// Neither forward nor answer: a blank line, or a notification or response before
    /// `initialize`.
    Skip,
}

/// The per-session state of the input check.
#[derive(Debug, Clone)]
pub struct Guard {
    max: usize,
    initialized: bool,
}

impl Guard {
    /// A guard for a session whose lines may be at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            initialized: false,
        }
    }

    /// The answer to a line of `n` bytes, over the limit.
    pub fn oversized(&self, n: usize) -> Vec<u8> {
        let max = self.max;
        error_line(
            INVALID_REQUEST,
            &Value::Null,
            &format!(
                "Invalid Request: the message is {n} bytes; Warden accepts at most {max} (serve.max_message_bytes)"
            ),
        )
    }

    /// Check one line (with or without its newline).
    pub fn check(&mut self, line: &[u8]) -> Verdict {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Verdict::Skip;
        }
        let body = body.strip_prefix(BOM).unwrap_or(body);
        match serde_json::from_slice::<ClientJsonRpcMessage>(body) {
            Ok(message) => self.admit(&message),
            Err(e) if e.is_data() => self.invalid(body, &e),
            Err(e) => Verdict::Reply(error_line(
                PARSE_ERROR,
                &Value::Null,
                &format!("Parse error: the message is not valid JSON ({e})"),
            )),
        }
    }

    /// A message rmcp parses: forward it, unless the session is not ready for it.
    fn admit(&mut self, message: &ClientJsonRpcMessage) -> Verdict {
        if self.initialized {
            return Verdict::Forward;
        }
        let ClientJsonRpcMessage::Request(request) = message else {
            return Verdict::Skip;
        };
        match &request.request {
            ClientRequest::InitializeRequest(_) => {
                self.initialized = true;
                Verdict::Forward
            }
            ClientRequest::PingRequest(_) | ClientRequest::DiscoverRequest(_) => Verdict::Forward,
            other => {
                let missing = other
                    .get_meta()
                    .missing_required_keys(&ProtocolVersion::V_2026_07_28);
                if missing.is_empty() {
                    // A stateless request with its context inline: rmcp serves it.
                    return Verdict::Forward;
                }
                let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
                Verdict::Reply(error_line(
                    INVALID_REQUEST,
                    &id,
                    &format!(
                        "the session is not initialized: send initialize first (or, without a \
                         session, give every request the _meta fields {})",
                        missing.join(", ")
                    ),
                ))
            }
        }
    }

    /// JSON that rmcp cannot read as a message.
    fn invalid(&self, body: &[u8], e: &serde_json::Error) -> Verdict {
        let value = serde_json::from_slice::<Value>(body).ok();
        let object = value.as_ref().and_then(Value::as_object);
        if let Some(o) = object {
            let notification =
                o.get("method").is_some_and(Value::is_string) && !o.contains_key("id");
            if notification {
                // Notifications get no answer; rmcp ignores the unknown ones and answers the
                // rest as it always has, once the session is initialized.
                return if self.initialized {
                    Verdict::Forward
                } else {
                    Verdict::Skip
                };
            }
        }
        let id = object
            .and_then(|o| o.get("id"))
            .filter(|id| id.is_string() || id.is_number())
            .cloned()
            .unwrap_or(Value::Null);
        Verdict::Reply(error_line(
            INVALID_REQUEST,
            &id,
            &format!("Invalid Request: not a JSON-RPC message Warden accepts ({e})"),
        ))
    }
}

/// A JSON-RPC error line, newline included.
pub fn error_line(code: i64, id: &Value, message: &str) -> Vec<u8> {
    let mut v = serde_json::to_vec(&serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message }
    }))
    .unwrap_or_default();
    v.push(b'\n');
    v
}

/// What the guarded input yields for one line.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Pass these bytes (a whole line, newline included) to rmcp.
    Forward(Vec<u8>),
    /// Write this error line to the client.
    Reply(Vec<u8>),
}

/// A byte stream framed into lines of at most `max` bytes, each checked by a [`Guard`].
pub struct GuardedLines<R> {
    reader: BufReader<R>,
    guard: Guard,
    max: usize,
}

impl<R: AsyncRead + Unpin> GuardedLines<R> {
    /// Frame and check `reader`.
    pub fn new(reader: R, max: usize) -> Self {
        Self {
            reader: BufReader::new(reader),
            guard: Guard::new(max),
            max,
        }
    }

    /// The next line to forward or answer; `None` at the end of the input or when reading
    /// fails.
    pub async fn next_step(&mut self) -> Option<Step> {
        loop {
            match read_line(&mut self.reader, self.max).await {
                Err(_) | Ok(Line::Eof) => return None,
                Ok(Line::Oversized(n)) => return Some(Step::Reply(self.guard.oversized(n))),
                Ok(Line::Complete(mut line)) => match self.guard.check(&line) {
                    Verdict::Skip => {}
                    Verdict::Reply(reply) => return Some(Step::Reply(reply)),
                    Verdict::Forward => {
                        if line.last() != Some(&b'\n') {
                            line.push(b'\n');
                        }
                        return Some(Step::Forward(line));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;

    fn reply(v: Verdict) -> Value {
        match v {
            Verdict::Reply(line) => serde_json::from_slice(&line).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn initialized() -> Guard {
        let mut g = Guard::new(1 << 20);
        assert_eq!(g.check(INIT.as_bytes()), Verdict::Forward);
        g
    }

    #[test]
    fn lines_rmcp_would_drop_are_answered_with_a_parse_error() {
        let mut g = initialized();
        let big_id = format!(
            r#"{{"jsonrpc":"2.0","id":{},"method":"ping"}}"#,
            "9".repeat(400)
        );
        let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        let bad_utf8 =
            b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"x\":\"\xff\"}".to_vec();
        for line in [big_id.into_bytes(), deep.into_bytes(), bad_utf8] {
            let e = reply(g.check(&line));
            assert_eq!(e["error"]["code"], PARSE_ERROR, "{e}");
            assert_eq!(e["id"], Value::Null, "{e}");
        }
    }

    #[test]
    fn json_that_is_not_a_message_is_an_invalid_request_with_its_id() {
        let mut g = initialized();
        let e = reply(g.check(br#"{"jsonrpc":"2.0","id":"a","method":5}"#));
        assert_eq!(e["error"]["code"], INVALID_REQUEST, "{e}");
        assert_eq!(e["id"], "a");
        let e = reply(g.check(b"[1,2]"));
        assert_eq!(e["id"], Value::Null, "{e}");
    }

    #[test]
    fn before_initialize_a_call_is_refused_with_its_id_and_notifications_are_skipped() {
        let mut g = Guard::new(1 << 20);
        let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}"#;
        let e = reply(g.check(call));
        assert_eq!(e["id"], 7, "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("the session is not initialized: send initialize first"));
        let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(g.check(note), Verdict::Skip);
        assert_eq!(
            g.check(br#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#),
            Verdict::Forward
        );
        // A UTF-8 byte order mark is allowed, as rmcp allows it.
        let bom = [b"\xEF\xBB\xBF".as_slice(), INIT.as_bytes()].concat();
        assert_eq!(g.check(&bom), Verdict::Forward);
        assert_eq!(g.check(call), Verdict::Forward);
        assert_eq!(g.check(note), Verdict::Forward);
    }

    #[test]
    fn a_stateless_request_with_its_context_inline_is_forwarded_before_initialize() {
        let mut g = Guard::new(1 << 20);
        let line = br#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"t","version":"0"}}}}"#;
        assert_eq!(g.check(line), Verdict::Forward);
    }
}
