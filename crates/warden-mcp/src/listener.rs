//! The connection layer of `warden serve`: an accept loop that serves the axum router over
//! HTTP/1.1 with timeouts and connection caps, so that clients that connect and do nothing, or
//! send a request slowly, cannot hold the listener.
//!
//! # Timeouts
//!
//! A connection is *in a request* from the moment its request head is parsed until its
//! response has been written (an SSE stream is a request in progress for as long as it is
//! open, and so is a slow tool call). Otherwise it is *idle*, and:
//!
//! - a connection that has not completed its first request head is closed
//!   [`Limits::header_timeout`] after it was accepted;
//! - a kept-alive connection is closed [`Limits::idle_timeout`] after its last response, or
//!   [`Limits::header_timeout`] after the first byte of its next request head if that comes
//!   first.
//!
//! A request's body must arrive within [`Limits::body_timeout`] of its head; past it, reading the
//! body fails (the handler answers with an error) and the connection is not reused.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a kept-alive connection
//! waits for its next request, so it cannot be told apart from the idle timeout.
//!
//! # Caps
//!
//! At most [`Limits::max_connections`] connections are held, and at most
//! [`Limits::max_connections_per_peer`] from one peer (an IPv4 address, or an IPv6 /64, since
//! one host usually owns a whole /64). A connection over a cap makes room by closing the
//! connection of that peer (per-peer cap) or of anyone (overall cap) that has been idle longest;
//! when none is idle, the new connection gets `503 Service Unavailable` and is closed. The
//! listener never stops accepting: when `accept` itself fails (out of file descriptors), the
//! longest-idle connection is closed and accepting resumes after a short pause.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::settings::ServeSettings;

/// How long the accept loop pauses after `accept` fails for want of resources.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a refused connection is told before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 52\r\n\r\nwarden: too many connections in progress; try again\n";

/// The timeouts and caps of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head.
    pub body_timeout: Duration,
    /// A kept-alive connection waits this long for its next request.
    pub idle_timeout: Duration,
    /// Connections held at once.
    pub max_connections: usize,
    /// Connections held at once per peer.
    pub max_connections_per_peer: usize,
}

impl Limits {
    /// The limits `[serve]` sets.
    pub fn from_settings(s: &ServeSettings) -> Limits {
        Limits {
            header_timeout: s.header_timeout,
            body_timeout: s.body_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections.max(1),
            max_connections_per_peer: s.max_connections_per_peer.max(1),
        }
    }
}

/// Whom a connection counts against: the IPv4 address, or the /64 of an IPv6 address.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// What the accept loop and the connection's task share about one connection. Times are
/// milliseconds since the listener's epoch, plus one (zero means "not set").
struct Conn {
    epoch: Instant,
    accepted: u64,
    /// Requests in progress.
    active: AtomicUsize,
    /// A request head has been parsed on this connection.
    served: AtomicBool,
    /// When the connection last became idle.
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived (idle connections only).
    head_started: AtomicU64,
    /// The deadline may have moved earlier.
    wake: Notify,
    /// The accept loop closed this connection to make room.
    shed: CancellationToken,
}

impl Conn {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms.saturating_sub(1))
    }

    fn is_idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }

    /// When an idle connection is closed; `None` while a request is in progress.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        if !self.served.load(Ordering::SeqCst) {
            return Some(self.at(self.accepted) + limits.header_timeout);
        }
        let idle = self.at(self.idle_since.load(Ordering::SeqCst)) + limits.idle_timeout;
        match self.head_started.load(Ordering::SeqCst) {
            0 => Some(idle),
            t => Some(idle.min(self.at(t) + limits.header_timeout)),
        }
    }

    /// Bytes arrived: on an idle connection, they start the next request head.
    fn saw_bytes(&self) {
        if self.is_idle()
            && self
                .head_started
                .compare_exchange(0, self.now(), Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.wake.notify_one();
        }
    }

    fn begin_request(self: &Arc<Self>) -> InRequest {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.served.store(true, Ordering::SeqCst);
        self.head_started.store(0, Ordering::SeqCst);
        InRequest(self.clone())
    }
}

/// A request in progress; dropped when its response has been written (or abandoned).
struct InRequest(Arc<Conn>);

impl Drop for InRequest {
    fn drop(&mut self) {
        let c = &self.0;
        c.idle_since.store(c.now(), Ordering::SeqCst);
        c.head_started.store(0, Ordering::SeqCst);
        if c.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            c.wake.notify_one();
        }
    }
}

/// The connections held, by id.
struct Registry {
    next: u64,
    conns: HashMap<u64, (IpAddr, Arc<Conn>)>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Registry {
    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let (peer, conn) = self.conns.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
        Some(conn)
    }

    /// Close the connection idle longest among those `of` accepts; false when none is idle.
    fn shed_oldest_idle(&mut self, of: impl Fn(IpAddr) -> bool) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, (peer, c))| of(*peer) && c.is_idle())
            .min_by_key(|(_, (_, c))| c.idle_since.load(Ordering::SeqCst))
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.remove(id)) {
            Some(conn) => {
                conn.shed.cancel();
                true
            }
            None => false,
        }
    }
}

/// The listener's state, shared by the accept loop and the connection tasks.
struct Shared {
    limits: Limits,
    epoch: Instant,
    registry: Mutex<Registry>,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a slot for a connection from `peer`, making room if needed; `None` when full of
    /// busy connections.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let key = peer_key(peer);
        let mut reg = self.registry();
        let of_peer = reg.per_peer.get(&key).copied().unwrap_or(0);
        if of_peer >= self.limits.max_connections_per_peer && !reg.shed_oldest_idle(|p| p == key) {
            return None;
        }
        if reg.conns.len() >= self.limits.max_connections && !reg.shed_oldest_idle(|_| true) {
            return None;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let conn = Arc::new(Conn {
            epoch: self.epoch,
            accepted: now,
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(now),
            head_started: AtomicU64::new(0),
            wake: Notify::new(),
            shed: CancellationToken::new(),
        });
        let id = reg.next;
        reg.next += 1;
        reg.conns.insert(id, (key, conn.clone()));
        *reg.per_peer.entry(key).or_insert(0) += 1;
        Some(Slot {
            shared: self.clone(),
            id,
            conn,
        })
    }
}

/// A connection's place in the registry, given up when its task ends.
struct Slot {
    shared: Arc<Shared>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.registry().remove(self.id);
    }
}

/// The TCP stream, noting when bytes arrive.
struct Watched {
    tcp: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.saw_bytes();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The request body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} ms")]
struct BodyTimeout(u128);

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(self.limit.as_millis()).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request in progress until it is written or dropped.
struct TrackedBody {
    inner: Body,
    _request: InRequest,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// True for `accept` errors about one connection (the listener is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Serve `app` on `listener` with `limits` until `stop` is cancelled, then let the connections
/// finish their requests (idle ones are closed at once) and return.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let epoch = Instant::now();
    let shared = Arc::new(Shared {
        limits,
        epoch,
        registry: Mutex::new(Registry {
            next: 0,
            conns: HashMap::new(),
            per_peer: HashMap::new(),
        }),
    });
    let tasks = TaskTracker::new();
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => {
                failing = false;
                a
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: free the longest-idle connection and try
                // again shortly, without spinning.
                if !failing {
                    tracing::warn!("warden serve: accepting a connection failed: {e}");
                    failing = true;
                }
                shared.registry().shed_oldest_idle(|_| true);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        // Responses go out as soon as they are written (rmcp's SSE streams write the head and
        // each event separately; with Nagle on, a kept-alive client would wait on each).
        let _ = tcp.set_nodelay(true);
        match shared.admit(peer.ip()) {
            Some(slot) => {
                tasks.spawn(connection(tcp, peer, slot, app.clone(), stop.clone()));
            }
            None => {
                let _ = tcp.try_write(REFUSED);
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Serve one connection until it ends, times out, is shed, or the server stops.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    app: axum::Router,
    stop: CancellationToken,
) {
    let limits = slot.shared.limits;
    let conn = slot.conn.clone();
    let io = TokioIo::new(Watched {
        tcp,
        conn: conn.clone(),
    });
    let c = conn.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let request = c.begin_request();
        let mut req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
                limit: limits.body_timeout,
            })
        });
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move {
            let response = tower_service::Service::call(&mut app, req).await?;
            Ok::<_, Infallible>(response.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    _request: request,
                })
            }))
        }
    });
    let http = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(http);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(&limits);
        tokio::select! {
            _ = http.as_mut() => break,
            _ = conn.shed.cancelled(), if !stopping => {
                if conn.is_idle() {
                    break;
                }
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
            _ = stop.cancelled(), if !stopping => {
                if conn.is_idle() {
                    break;
                }
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
            _ = conn.wake.notified() => {}
            _ = sleep_until(deadline) => {
                if conn.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    break;
                }
            }
        }
    }
    drop(slot);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        let c: IpAddr = "2001:db8:1:3::1"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        assert_eq!(peer_key(a), peer_key(b));
        assert_ne!(peer_key(a), peer_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.7"
            .parse()
            .unwrap_or(IpAddr::V4([0; 4].into()));
        assert_eq!(peer_key(mapped), IpAddr::V4([10, 0, 0, 7].into()));
    }
}
