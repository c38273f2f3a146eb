//! The forwarding path for `tools/call` to a streamable HTTP upstream: one JSON-RPC request
//! per call over a pooled keep-alive connection.
//!
//! The supervisor in [`crate::upstream`] keeps an rmcp client session for the tool list and
//! health; calls go through this client instead, in that same MCP session (one session per
//! upstream, shared through `crate::upstream::session`). When the upstream says the session is
//! gone (HTTP 404), the call asks the supervisor's client to open a new one, waits for it and is
//! sent again, once. Its requests have ids of their own (from 2^40), apart from rmcp's in the
//! same session. It reads a JSON or an SSE response, answers `ping` from the upstream, refuses
//! every other request an upstream makes of the client, and sends `notifications/cancelled`
//! when a call is abandoned (timeout, client gone).
//!
//! Every failure is reported as what it is ([`UpstreamError`]): the upstream cannot be reached,
//! answers an HTTP error status, invalid JSON, another request's id or a malformed result, or a
//! response over `max_result_bytes`. SSE is parsed by `sse-stream`, in one pass.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming as Body};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rmcp::model::{CallToolResult, ErrorCode, ErrorData, JsonObject, ServerRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sse_stream::SseStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::session::{HttpSession, SessionCell, VERSION_HEADER};
use super::{Note, Relay, UpstreamError};

const SESSION_HEADER: &str = "mcp-session-id";
/// The first id of the calls path's requests: far above the ids rmcp's client gives its own
/// requests in the same session, and exact as a JSON number in every language.
const FIRST_ID: u64 = 1 << 40;
const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A JSON-RPC message from the upstream, with the result typed as `R`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
struct Incoming<R> {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
    result: Option<R>,
    #[serde(default)]
    error: Option<ErrorData>,
}

#[derive(Serialize)]
struct Outgoing<'a, P: Serialize> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: P,
}

/// A TCP stream that acknowledges every segment it reads at once. An upstream that leaves
/// Nagle's algorithm on writes a response's headers and its body (or SSE events) as separate
/// small segments and holds each one until the previous is acknowledged; with the client's
/// delayed acknowledgements that costs ~40 ms per response on a kept-alive connection.
struct QuickAck(TcpStream);

impl AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            #[cfg(target_os = "linux")]
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        r
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

type Sender = SendRequest<Full<Bytes>>;
type Driver = hyper::client::conn::http1::Connection<TokioIo<QuickAck>, Full<Bytes>>;

/// One kept-alive HTTP/1.1 connection. Its I/O is driven by the task using it (every await
/// on it also polls the connection), so a call costs no hand-off to a connection task.
struct Conn {
    sender: Sender,
    driver: Pin<Box<Driver>>,
    /// The connection ended (closed by the upstream or failed).
    ended: bool,
    /// The last response was read to its end: the connection can be reused.
    reusable: bool,
}

impl Conn {
    /// Send `req`, driving the connection until the response head arrives.
    async fn send(
        &mut self,
        req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Body>, String> {
        if self.ended {
            return Err("the connection is closed".into());
        }
        self.reusable = false;
        let Conn { sender, driver, .. } = self;
        let exchange = async {
            sender.ready().await?;
            sender.send_request(req).await
        };
        let r = tokio::select! {
            biased;
            r = exchange => r.map_err(|e| e.to_string()),
            r = driver.as_mut() => {
                self.ended = true;
                Err(match r {
                    Ok(()) => "the upstream closed the connection".to_string(),
                    Err(e) => e.to_string(),
                })
            }
        };
        r
    }

    /// The next frame of `body`, driving the connection meanwhile.
    async fn frame(
        &mut self,
        body: &mut Body,
    ) -> Option<Result<hyper::body::Frame<Bytes>, String>> {
        if !self.ended {
            tokio::select! {
                biased;
                f = body.frame() => {
                    if f.is_none() {
                        self.reusable = true;
                    }
                    return f.map(|r| r.map_err(|e| e.to_string()));
                }
                _ = self.driver.as_mut() => {
                    self.ended = true;
                }
            }
        }
        // The connection is done: what it read is still in the body.
        body.frame().await.map(|r| r.map_err(|e| e.to_string()))
    }
}

/// Kept-alive HTTP/1.1 connections to one upstream.
struct Pool {
    /// `host:port`.
    authority: String,
    host: HeaderValue,
    /// The request target (path and query).
    target: http::Uri,
    idle: Mutex<Vec<Conn>>,
}

/// At most this many idle connections are kept per upstream.
const MAX_IDLE: usize = 64;
/// After its response, the rest of an SSE stream is read for this long; a stream still open
/// then is closed rather than reused.
const DRAIN_LIMIT: Duration = Duration::from_millis(20);

impl Pool {
    fn new(url: &str) -> Result<Pool, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("`{url}`: only http:// is forwarded directly"));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        let authority = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
        let host = HeaderValue::from_str(auth.as_str())
            .map_err(|_| format!("`{url}`: the host is not a header value"))?;
        let target = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|e| format!("`{url}`: {e}"))?;
        Ok(Pool {
            authority,
            host,
            target,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn conn(&self) -> Result<Conn, String> {
        loop {
            let Some(c) = self.idle().pop() else { break };
            if !c.ended && !c.sender.is_closed() {
                return Ok(c);
            }
        }
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(QuickAck(tcp)))
            .await
            .map_err(|e| format!("HTTP handshake with {}: {e}", self.authority))?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            ended: false,
            reusable: false,
        })
    }

    fn give_back(&self, c: Conn) {
        if c.ended || !c.reusable || c.sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// POST `body` with `headers` on a pooled connection; the connection comes back with the
    /// response, to be given back once the body has been read to its end.
    async fn post(
        &self,
        headers: &[(&'static str, &HeaderValue)],
        body: Bytes,
    ) -> Result<(http::Response<Body>, Conn), String> {
        let mut req = http::Request::post(self.target.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, ACCEPT_BOTH);
        for (k, v) in headers {
            req = req.header(*k, (*v).clone());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let mut conn = self.conn().await?;
        let resp = conn
            .send(req)
            .await
            .map_err(|e| format!("request to {}: {e}", self.authority))?;
        Ok((resp, conn))
    }
}

/// The pooled JSON-RPC client of one HTTP upstream.
pub(crate) struct RawHttp {
    name: String,
    pool: Arc<Pool>,
    sessions: SessionCell,
    next_id: AtomicU64,
    max_bytes: usize,
}

/// What one POST came back with.
enum Posted<R> {
    /// The response to the request.
    Done(Result<R, ErrorData>),
    /// The upstream does not know the session (HTTP 404): wait for a new one and retry.
    SessionGone,
}

impl RawHttp {
    /// A client for `url` (http:// only) that sends its calls in the session `sessions` holds;
    /// responses larger than `max_bytes` are refused.
    pub(crate) fn new(
        name: &str,
        url: &str,
        max_bytes: usize,
        sessions: SessionCell,
    ) -> Result<RawHttp, String> {
        Ok(RawHttp {
            name: name.to_string(),
            pool: Arc::new(Pool::new(url)?),
            sessions,
            next_id: AtomicU64::new(FIRST_ID),
            max_bytes,
        })
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Unreachable {
            name: self.name.clone(),
            detail: why.to_string(),
        }
    }

    fn malformed(&self, why: impl std::fmt::Display) -> UpstreamError {
        UpstreamError::Malformed {
            name: self.name.clone(),
            detail: why.to_string(),
        }
    }

    fn too_large(&self, size: Option<u64>) -> UpstreamError {
        UpstreamError::TooLarge {
            name: self.name.clone(),
            limit: self.max_bytes,
            size,
        }
    }

    fn status(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        let body = String::from_utf8_lossy(body.get(..200).unwrap_or(body));
        UpstreamError::HttpStatus {
            name: self.name.clone(),
            status: status.as_u16(),
            body: body.trim().to_string(),
        }
    }

    /// Why `text` (which did not parse as a response to request `id`) is not one.
    fn unreadable(&self, text: &[u8], id: u64, e: &serde_json::Error) -> UpstreamError {
        let v: Value = match serde_json::from_slice(text) {
            Ok(v) => v,
            Err(e) => {
                return UpstreamError::InvalidJson {
                    name: self.name.clone(),
                    detail: e.to_string(),
                }
            }
        };
        match v.get("id") {
            Some(got) if got.as_u64() != Some(id) => self.wrong_id(id, Some(got)),
            _ => self.malformed(e),
        }
    }

    fn wrong_id(&self, id: u64, got: Option<&Value>) -> UpstreamError {
        UpstreamError::WrongId {
            name: self.name.clone(),
            expected: id.to_string(),
            got: got.map_or_else(|| "none".to_string(), Value::to_string),
        }
    }

    fn protocol(&self, error: ErrorData) -> UpstreamError {
        UpstreamError::Protocol {
            name: self.name.clone(),
            message: error.message.to_string(),
            error: Box::new(error),
        }
    }

    /// The current session; when `stale` is the current one, the one that replaces it. The
    /// caller bounds the wait.
    async fn session(
        &self,
        stale: Option<&Arc<HttpSession>>,
    ) -> Result<Arc<HttpSession>, UpstreamError> {
        self.sessions
            .current(stale)
            .await
            .ok_or_else(|| self.unreachable("the upstream's session was closed"))
    }

    fn headers(session: &HttpSession) -> Vec<(&'static str, &HeaderValue)> {
        let mut h = vec![(VERSION_HEADER, &session.version)];
        if let Some(id) = &session.id {
            h.push((SESSION_HEADER, id));
        }
        h
    }

    /// POST a message that needs no answer, in the background.
    fn notify(&self, session: &HttpSession, message: &Value) {
        tokio::spawn(post_back(
            self.pool.clone(),
            session.id.clone(),
            session.version.clone(),
            Bytes::from(message.to_string()),
        ));
    }

    /// Forward `tools/call` of `tool` with `args`. When the upstream no longer knows the
    /// session (the call was not run then), `renew` asks for a new one, and the call is sent
    /// again in it, once.
    pub(crate) async fn call(
        &self,
        tool: &str,
        args: &JsonObject,
        relay: &Relay,
        renew: impl Fn(),
    ) -> Result<CallToolResult, UpstreamError> {
        let params = serde_json::json!({ "name": tool, "arguments": args });
        self.request("tools/call", params, relay, renew).await
    }

    /// Send request `method` with `params` (an object; Warden's progress token is added to its
    /// `_meta`) and read its result as `R`; the session is renewed as for [`RawHttp::call`].
    pub(crate) async fn request<R: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        mut params: Value,
        relay: &Relay,
        renew: impl Fn(),
    ) -> Result<R, UpstreamError> {
        let mut session = self.session(None).await?;
        for attempt in 0..2 {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if let Value::Object(m) = &mut params {
                let meta = m
                    .entry("_meta")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(meta) = meta {
                    meta.insert(
                        "progressToken".into(),
                        Value::String(format!("warden-{id}")),
                    );
                }
            }
            let body = serde_json::to_vec(&Outgoing {
                jsonrpc: "2.0",
                id,
                method,
                params: &params,
            })
            .map_err(|e| self.unreachable(e))?;
            let mut guard = Abandon {
                raw: self,
                session: session.clone(),
                id,
                armed: true,
            };
            let (resp, sender) = self
                .pool
                .post(&Self::headers(&session), body.into())
                .await
                .map_err(|e| self.unreachable(e))?;
            let posted = self.read::<R>(resp, sender, id, &session, relay).await;
            guard.armed = false;
            match posted? {
                Posted::Done(Ok(r)) => return Ok(r),
                Posted::Done(Err(e)) => return Err(self.protocol(e)),
                Posted::SessionGone if attempt == 0 => {
                    renew();
                    session = self.session(Some(&session)).await?;
                }
                Posted::SessionGone => break,
            }
        }
        Err(self.status(
            StatusCode::NOT_FOUND,
            b"the upstream lost the new session too",
        ))
    }

    /// Read the response to request `id`: a JSON body, or an SSE stream up to the response.
    /// The connection goes back to the pool if the body ended.
    async fn read<R: for<'de> Deserialize<'de>>(
        &self,
        resp: http::Response<Body>,
        mut conn: Conn,
        id: u64,
        session: &HttpSession,
        relay: &Relay,
    ) -> Result<Posted<R>, UpstreamError> {
        let r = self.read_on::<R>(resp, &mut conn, id, session, relay).await;
        self.pool.give_back(conn);
        r
    }

    async fn read_on<R: for<'de> Deserialize<'de>>(
        &self,
        resp: http::Response<Body>,
        conn: &mut Conn,
        id: u64,
        session: &HttpSession,
        relay: &Relay,
    ) -> Result<Posted<R>, UpstreamError> {
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let mut body = resp.into_body();
        if status == StatusCode::NOT_FOUND && session.id.is_some() {
            let _ = self.body(body, conn).await;
            return Ok(Posted::SessionGone);
        }
        if !content_type.starts_with("text/event-stream") {
            let bytes = self.body(body, conn).await?;
            return match serde_json::from_slice::<Incoming<R>>(&bytes) {
                Ok(m) => self.settle(m, id),
                Err(_) if !status.is_success() => Err(self.status(status, &bytes)),
                Err(e) => Err(self.unreadable(&bytes, id, &e)),
            };
        }
        if !status.is_success() {
            return Err(self.status(status, b""));
        }
        let max = self.max_bytes;
        let over = AtomicBool::new(false);
        let chunks = futures_util::stream::unfold(
            (&mut *conn, &mut body, 0usize, &over),
            move |(conn, body, read, over)| async move {
                loop {
                    match conn.frame(body).await? {
                        Err(e) => {
                            let e = std::io::Error::other(e);
                            return Some((Err(e), (conn, body, read, over)));
                        }
                        Ok(frame) => {
                            if let Ok(chunk) = frame.into_data() {
                                let read = read + chunk.len();
                                if read > max {
                                    over.store(true, Ordering::Relaxed);
                                    return None;
                                }
                                return Some((Ok(chunk), (conn, body, read, over)));
                            }
                        }
                    }
                }
            },
        );
        let mut events = std::pin::pin!(SseStream::from_bytes_stream(Box::pin(chunks)));
        let mut done = None;
        while let Some(event) = events.next().await {
            let event =
                event.map_err(|e| self.unreachable(format!("reading the event stream: {e}")))?;
            let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                continue;
            };
            let m = serde_json::from_str::<Incoming<R>>(&data)
                .map_err(|e| self.unreadable(data.as_bytes(), id, &e))?;
            if let Some(posted) = self.settle_or_answer(m, id, session, relay) {
                done = Some(posted?);
                break;
            }
        }
        if let Some(done) = done {
            // The stream should end right after the response; then the connection is reused.
            let _ = tokio::time::timeout(DRAIN_LIMIT, async {
                while let Some(Ok(_)) = events.next().await {}
            })
            .await;
            return Ok(done);
        }
        if over.load(Ordering::Relaxed) {
            return Err(self.too_large(None));
        }
        Err(self.malformed("the event stream ended without a response"))
    }

    /// The whole body, bounded.
    async fn body(&self, mut body: Body, conn: &mut Conn) -> Result<Vec<u8>, UpstreamError> {
        let announced = hyper::body::Body::size_hint(&body).exact();
        if announced.is_some_and(|n| n > self.max_bytes as u64) {
            return Err(self.too_large(announced));
        }
        let mut out = Vec::new();
        while let Some(frame) = conn.frame(&mut body).await {
            let frame = frame.map_err(|e| self.unreachable(e))?;
            if let Ok(chunk) = frame.into_data() {
                if out.len() + chunk.len() > self.max_bytes {
                    return Err(self.too_large(None));
                }
                out.extend_from_slice(&chunk);
            }
        }
        Ok(out)
    }

    /// The outcome when `m` is the response to request `id`.
    fn settle<R>(&self, m: Incoming<R>, id: u64) -> Result<Posted<R>, UpstreamError> {
        if m.method.is_some() {
            return Err(self.malformed("a request or notification came instead of the response"));
        }
        if m.id.as_ref().and_then(Value::as_u64) != Some(id) {
            // An error about an unreadable request may come without an id.
            if let (None, Some(e)) = (&m.id, m.error) {
                return Ok(Posted::Done(Err(e)));
            }
            return Err(self.wrong_id(id, m.id.as_ref()));
        }
        match (m.result, m.error) {
            (_, Some(e)) => Ok(Posted::Done(Err(e))),
            (Some(r), None) => Ok(Posted::Done(Ok(r))),
            (None, None) => Err(self.malformed("the response has neither a result nor an error")),
        }
    }

    /// As [`RawHttp::settle`]; a request from the upstream on the stream is answered (ping) or
    /// refused, in the background; progress and log messages on the stream are about this call
    /// and go to its `relay`; other notifications are dropped.
    fn settle_or_answer<R>(
        &self,
        m: Incoming<R>,
        id: u64,
        session: &HttpSession,
        relay: &Relay,
    ) -> Option<Result<Posted<R>, UpstreamError>> {
        if let Some(method) = &m.method {
            let Some(req_id) = &m.id else {
                if let Some(note) = note_of(method, m.params.as_ref()) {
                    relay.hear(note);
                }
                return None;
            };
            if method == "ping" {
                let reply = serde_json::json!({ "jsonrpc": "2.0", "id": req_id, "result": {} });
                self.notify(session, &reply);
                return None;
            }
            // A request of the client on this call's stream belongs to this call: its relay
            // decides it and asks the agent; the answer is posted back.
            let request = serde_json::from_value::<ServerRequest>(serde_json::json!({
                "method": method,
                "params": m.params.clone().unwrap_or(Value::Object(Default::default())),
            }));
            let relay = relay.clone();
            let (pool, sid, version) = (
                self.pool.clone(),
                session.id.clone(),
                session.version.clone(),
            );
            let req_id = req_id.clone();
            let method = method.clone();
            tokio::spawn(async move {
                let answer = match request {
                    Ok(r) => relay.ask(r).await,
                    Err(e) => Err(ErrorData::new(
                        ErrorCode::METHOD_NOT_FOUND,
                        format!("Warden does not relay `{method}` requests from upstream servers to agents: {e}"),
                        None,
                    )),
                };
                let reply = match answer {
                    Ok(r) => serde_json::json!({ "jsonrpc": "2.0", "id": req_id, "result": r }),
                    Err(e) => serde_json::json!({ "jsonrpc": "2.0", "id": req_id, "error": e }),
                };
                post_back(pool, sid, version, Bytes::from(reply.to_string())).await;
            });
            return None;
        }
        Some(self.settle(m, id))
    }
}

/// POST `body` (a response or notification for the upstream) in session `sid`, reading and
/// dropping the answer.
async fn post_back(pool: Arc<Pool>, sid: Option<HeaderValue>, version: HeaderValue, body: Bytes) {
    let mut h = vec![(VERSION_HEADER, &version)];
    if let Some(id) = &sid {
        h.push((SESSION_HEADER, id));
    }
    if let Ok((resp, mut conn)) = pool.post(&h, body).await {
        let mut body = resp.into_body();
        while let Some(Ok(_)) = conn.frame(&mut body).await {}
        pool.give_back(conn);
    }
}

/// The note a notification on a call's own response stream carries, if it is one Warden relays.
#[allow(deprecated)]
fn note_of(method: &str, params: Option<&Value>) -> Option<Note> {
    let params = params?.clone();
    match method {
        "notifications/progress" => {
            let p: rmcp::model::ProgressNotificationParam = serde_json::from_value(params).ok()?;
            Some(Note::Progress {
                progress: p.progress,
                total: p.total,
                message: p.message,
            })
        }
        "notifications/message" => {
            let p: rmcp::model::LoggingMessageNotificationParam =
                serde_json::from_value(params).ok()?;
            Some(Note::Log {
                level: p.level,
                logger: p.logger,
                data: p.data,
            })
        }
        _ => None,
    }
}

/// Sends `notifications/cancelled` for request `id` when dropped while armed: the call was
/// abandoned (timeout or client gone) before its response arrived.
struct Abandon<'a> {
    raw: &'a RawHttp,
    session: Arc<HttpSession>,
    id: u64,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if !self.armed || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let note = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": self.id, "reason": "Warden abandoned the call (timeout or the client went away)" },
        });
        self.raw.notify(&self.session, &note);
    }
}
