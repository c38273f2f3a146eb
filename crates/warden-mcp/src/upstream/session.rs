//! The one MCP session Warden holds with a streamable HTTP upstream.
//!
//! The supervisor's rmcp client opens the session (the `initialize` handshake), keeps its event
//! stream, and opens a new one when the upstream forgets it (HTTP 404). The calls path
//! (`crate::upstream::rawhttp`) sends its `tools/call` requests in that same session instead of opening a
//! second one: [`Recording`], the HTTP client given to rmcp, publishes the session id and the
//! negotiated protocol version each time a message rmcp sent after the handshake was accepted,
//! and [`SessionCell`] hands them to the calls path.
//!
//! When the calls path finds the session gone, it asks the supervisor's client for any request
//! (a `ping`); rmcp then meets the 404 itself, initializes again, and the new session is
//! published here on its next message.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
};
use sse_stream::{Error as SseError, Sse};
use tokio::sync::watch;

/// The header that carries the negotiated protocol version.
pub(crate) const VERSION_HEADER: &str = "mcp-protocol-version";
/// The version a request states when rmcp gave none (a server on the oldest protocol, which
/// ignores the header).
const FALLBACK_VERSION: &str = "2025-03-26";

/// One MCP session with an HTTP upstream, as its requests name it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HttpSession {
    /// The `Mcp-Session-Id`; `None` for an upstream that keeps no sessions.
    pub(crate) id: Option<HeaderValue>,
    /// The `MCP-Protocol-Version` negotiated in the handshake.
    pub(crate) version: HeaderValue,
}

/// The current session of one HTTP upstream, shared by the supervisor's client and the calls
/// path.
#[derive(Clone, Debug)]
pub(crate) struct SessionCell(Arc<watch::Sender<Option<Arc<HttpSession>>>>);

impl Default for SessionCell {
    fn default() -> Self {
        SessionCell(Arc::new(watch::channel(None).0))
    }
}

impl SessionCell {
    /// Record the session a message was accepted in; a change of id or version replaces the
    /// current session and wakes the callers waiting for one.
    fn publish(&self, id: Option<&str>, version: Option<&HeaderValue>) {
        let id = id.and_then(|s| HeaderValue::from_str(s).ok());
        let version = version
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static(FALLBACK_VERSION));
        let next = HttpSession { id, version };
        self.0.send_if_modified(|cur| {
            if cur.as_deref() == Some(&next) {
                return false;
            }
            *cur = Some(Arc::new(next));
            true
        });
    }

    /// Forget the session: the connection that held it ended.
    pub(crate) fn clear(&self) {
        self.0.send_replace(None);
    }

    /// The current session, waiting for one if there is none or if it is `stale` (a session
    /// the caller found gone). The caller bounds the wait.
    pub(crate) async fn current(
        &self,
        stale: Option<&Arc<HttpSession>>,
    ) -> Option<Arc<HttpSession>> {
        let mut rx = self.0.subscribe();
        let fresh = |s: &Option<Arc<HttpSession>>| {
            s.as_ref()
                .is_some_and(|s| !stale.is_some_and(|st| Arc::ptr_eq(st, s)))
        };
        let seen = rx.wait_for(fresh).await.ok()?;
        seen.clone()
    }
}

/// rmcp's reqwest client, publishing the session of every message it delivers after the
/// handshake into a [`SessionCell`].
#[derive(Clone)]
pub(crate) struct Recording {
    inner: reqwest::Client,
    cell: SessionCell,
}

impl Recording {
    /// A client that publishes into `cell`.
    pub(crate) fn new(cell: SessionCell) -> Recording {
        Recording {
            inner: reqwest::Client::default(),
            cell,
        }
    }

    /// Publish the session a message was sent in, if it was accepted.
    fn record<T, E>(&self, r: &Result<T, E>, sent: Sent) {
        if let (Ok(_), Some((id, version))) = (r, sent.0) {
            self.cell.publish(id.as_deref(), version.as_ref());
        }
    }
}

/// The session and version a message was sent with; `None` for the handshake itself, whose
/// response names the session the following messages use.
struct Sent(Option<(Option<Arc<str>>, Option<HeaderValue>)>);

impl Sent {
    fn of(
        message: &ClientJsonRpcMessage,
        session_id: &Option<Arc<str>>,
        headers: &HashMap<HeaderName, HeaderValue>,
    ) -> Sent {
        let handshake = matches!(message, ClientJsonRpcMessage::Request(r)
            if matches!(r.request, ClientRequest::InitializeRequest(_)));
        Sent((!handshake).then(|| (session_id.clone(), headers.get(VERSION_HEADER).cloned())))
    }
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
type StreamResult =
    Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for Recording {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let sent = Sent::of(&message, &session_id, &custom_headers);
        let r = (self.inner)
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await;
        self.record(&r, sent);
        r
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> PostResult {
        let sent = Sent::of(&message, &session_id, &custom_headers);
        let (headers, max) = (custom_headers, max_sse_event_size);
        let r = (self.inner)
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max,
            )
            .await;
        self.record(&r, sent);
        r
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<reqwest::Error>> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> StreamResult {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> StreamResult {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_session_wakes_a_caller_waiting_past_a_stale_one() {
        let cell = SessionCell::default();
        let v = HeaderValue::from_static("2025-11-25");
        cell.publish(Some("one"), Some(&v));
        let first = cell.current(None).await.expect("a session");
        assert_eq!(first.id.as_ref().map(|h| h.as_bytes()), Some(&b"one"[..]));

        // The same session published again is not a new one.
        cell.publish(Some("one"), Some(&v));
        let again = cell.current(None).await.expect("a session");
        assert!(Arc::ptr_eq(&first, &again));

        let waiter = {
            let cell = cell.clone();
            let stale = first.clone();
            tokio::spawn(async move { cell.current(Some(&stale)).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cell.publish(Some("two"), Some(&v));
        let second = waiter.await.expect("joined").expect("a session");
        assert_eq!(second.id.as_ref().map(|h| h.as_bytes()), Some(&b"two"[..]));
    }

    #[tokio::test]
    async fn a_cleared_cell_has_no_session_until_one_is_published() {
        let cell = SessionCell::default();
        cell.publish(None, None);
        let s = cell.current(None).await.expect("a session");
        assert_eq!(s.id, None);
        assert_eq!(s.version, HeaderValue::from_static(FALLBACK_VERSION));
        cell.clear();
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), cell.current(None)).await;
        assert!(pending.is_err(), "no session after clear");
    }
}
