//! `warden serve` under connection and session floods: silent and half-sent sockets time out,
//! idle connections are shed for real clients, one peer cannot hold every connection, idle
//! keep-alive ends but streams and slow calls do not, and sessions are capped per agent and
//! overall. Everything on loopback, with small configured limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use warden_mcp::{GatewaySettings, ServeSettings, UpstreamSettings};

use crate::common::*;
use crate::http::{headers, serve, OPS_TOKEN, TOKEN};

/// Generous bound for anything the server should do promptly.
const PROMPTLY: Duration = Duration::from_secs(10);

async fn start_serving(
    upstreams: Vec<UpstreamSettings>,
    serve_settings: ServeSettings,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let settings = GatewaySettings {
        upstreams,
        serve: serve_settings,
        ..Default::default()
    };
    let gw = start_gateway(engine(), settings, Arc::new(MemoryLog::new())).await;
    serve(gw).await
}

async fn start_acme_serving(
    serve_settings: ServeSettings,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    warden_acme::AcmeServer,
) {
    let acme = warden_acme::AcmeServer::new();
    let (addr, stop) = start_serving(acme_upstreams(&acme), serve_settings).await;
    (addr, stop, acme)
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from, 0))).unwrap();
    s.connect(addr).await.unwrap()
}

/// Read until the server closes the connection; `None` if it is still open after `limit`.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&out).into_owned())
}

/// Open `n` sockets from `from` that send nothing; the receiver yields one item per socket the
/// server closes.
async fn silent_sockets(
    from: [u8; 4],
    addr: SocketAddr,
    n: usize,
) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let mut s = connect_from(from, addr).await;
        let tx = tx.clone();
        tokio::spawn(async move {
            if read_until_closed(&mut s, Duration::from_secs(60))
                .await
                .is_some()
            {
                let _ = tx.send(());
            }
        });
        // Accepted in order, so that "oldest" is well defined.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rx
}

/// Wait until `n` items arrived, up to [`PROMPTLY`]; how many did.
async fn count(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>, n: usize) -> usize {
    let mut got = 0;
    let _ = tokio::time::timeout(PROMPTLY, async {
        while got < n && rx.recv().await.is_some() {
            got += 1;
        }
    })
    .await;
    got
}

/// An rmcp client over HTTP as alice on the forum mission: it initializes and reads a thread.
async fn agent_reads_a_thread(addr: SocketAddr) {
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(TOKEN)
            .custom_headers(headers("alice", "answer-forum-question")),
    );
    let client = tokio::time::timeout(PROMPTLY, ().serve(t))
        .await
        .expect("the agent initializes in time")
        .expect("the agent initializes");
    let r = tokio::time::timeout(
        PROMPTLY,
        call(
            client.peer(),
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        ),
    )
    .await
    .expect("the call is answered in time");
    assert!(!is_error(&r), "{}", text(&r));
    let _ = client.cancel().await;
}

#[tokio::test]
async fn a_silent_socket_is_closed_within_the_header_timeout() {
    let (addr, stop, _acme) = start_acme_serving(ServeSettings {
        header_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let got = read_until_closed(&mut s, PROMPTLY).await;
    assert_eq!(got.as_deref(), Some(""), "closed, without a word");
    let _ = stop.send(());
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed() {
    let (addr, stop, _acme) = start_acme_serving(ServeSettings {
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    // On a new connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .await
        .unwrap();
    assert!(read_until_closed(&mut s, PROMPTLY).await.is_some());

    // On a kept-alive connection, after a first request: the header timeout applies to the
    // next head, not the (long) idle timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(PROMPTLY, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 401"));
    s.write_all(b"POST /mcp HTTP/1.1\r\nHo").await.unwrap();
    assert!(read_until_closed(&mut s, PROMPTLY).await.is_some());
    let _ = stop.send(());
}

#[tokio::test]
async fn idle_sockets_beyond_max_connections_do_not_lock_out_an_agent() {
    const N: usize = 8;
    let (addr, stop, _acme) = start_acme_serving(ServeSettings {
        max_connections: N,
        max_connections_per_peer: 10 * N,
        // Long timeouts: sockets close here only to make room.
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let mut closed = silent_sockets([127, 0, 0, 1], addr, 3 * N).await;
    assert_eq!(
        count(&mut closed, 2 * N).await,
        2 * N,
        "the oldest idle sockets are closed to make room"
    );
    agent_reads_a_thread(addr).await;
    let _ = stop.send(());
}

#[tokio::test]
async fn one_peer_cannot_take_every_connection() {
    const M: usize = 4;
    let (addr, stop, _acme) = start_acme_serving(ServeSettings {
        max_connections: M + 4,
        max_connections_per_peer: M,
        header_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_secs(600),
        body_timeout: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    // Idle sockets of 127.0.0.2 beyond its cap push out its own oldest, not others'.
    let mut closed = silent_sockets([127, 0, 0, 2], addr, 3 * M).await;
    assert_eq!(count(&mut closed, 2 * M).await, 2 * M);

    // 127.0.0.2 fills its cap with requests in progress (bodies that never come)...
    let mut busy = Vec::new();
    for _ in 0..M {
        let mut s = connect_from([127, 0, 0, 2], addr).await;
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        busy.push(s);
    }
    assert_eq!(count(&mut closed, M).await, M, "its idle sockets made room");
    // ... so its next connection is refused at once,
    let mut s = connect_from([127, 0, 0, 2], addr).await;
    let refused = read_until_closed(&mut s, PROMPTLY).await;
    assert!(
        refused
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 503")),
        "{refused:?}"
    );
    // ... while 127.0.0.1 is still served.
    agent_reads_a_thread(addr).await;
    drop(busy);
    let _ = stop.send(());
}

/// One POST with a fresh connection (no pooled connection the server may close meanwhile).
async fn post(
    addr: SocketAddr,
    token: &str,
    session: Option<&str>,
    principal: &str,
    mission: &str,
    body: Value,
) -> (u16, Option<String>, String) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut b = http
        .post(format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-warden-principal", principal)
        .header("x-warden-mission", mission);
    if let Some(s) = session {
        b = b
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let r = tokio::time::timeout(PROMPTLY, b.body(body.to_string()).send())
        .await
        .expect("an answer in time")
        .expect("HTTP");
    let status = r.status().as_u16();
    let sid = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = tokio::time::timeout(PROMPTLY, r.text())
        .await
        .expect("the body in time")
        .expect("body");
    (status, sid, text)
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
           "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                      "clientInfo": {"name": "flood", "version": "0"}}})
}

/// Open an MCP session; its id.
async fn open(addr: SocketAddr, token: &str, principal: &str, mission: &str) -> String {
    let (status, sid, body) = post(addr, token, None, principal, mission, initialize(1)).await;
    assert_eq!(status, 200, "{body}");
    let sid = sid.expect("a session id");
    let (status, _, body) = post(
        addr,
        token,
        Some(&sid),
        principal,
        mission,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    sid
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_but_streams_and_slow_calls_are_not() {
    let acme = warden_acme::AcmeServer::new();
    let mut slow = Probe::new(&acme, "forum");
    slow.hang = true;
    let p = slow.clone();
    let upstream = in_process("forum", move || p.clone()).with_timeout(Duration::from_millis(1500));
    let (addr, stop) = start_serving(
        vec![upstream],
        ServeSettings {
            idle_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;

    // A kept-alive connection with nothing more to ask is closed after its response.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut s, PROMPTLY).await;
    assert!(
        got.as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 401")),
        "{got:?}"
    );

    // An open SSE stream is a request in progress: it outlives the idle timeout.
    let sid = open(addr, TOKEN, "alice", "answer-forum-question").await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {sid}\r\nMcp-Protocol-Version: 2025-11-25\r\nX-Warden-Principal: alice\r\nX-Warden-Mission: answer-forum-question\r\n\r\n"
    );
    stream.write_all(get.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(PROMPTLY, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(
        read_until_closed(&mut stream, Duration::from_millis(1500)).await,
        None,
        "the stream is still open five idle timeouts later"
    );

    // A call that takes longer than the idle timeout gets its answer.
    let (status, _, body) = post(
        addr,
        TOKEN,
        Some(&sid),
        "alice",
        "answer-forum-question",
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": "forum.read_thread",
                          "arguments": {"channel": "eng-help", "thread_id": "T-HANG"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"id\":7"), "{body}");
    drop(stream);
    let _ = stop.send(());
}

#[tokio::test]
async fn sessions_are_capped_per_agent_and_overall() {
    let (addr, stop, _acme) = start_acme_serving(ServeSettings {
        max_sessions_per_agent: 3,
        max_sessions: 4,
        ..Default::default()
    })
    .await;
    let forum = |addr| open(addr, TOKEN, "alice", "answer-forum-question");
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(forum(addr).await);
    }
    // A fourth is refused with an error that names the cap.
    let (status, sid, body) = post(
        addr,
        TOKEN,
        None,
        "alice",
        "answer-forum-question",
        initialize(42),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(sid, None);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["id"], 42);
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_sessions_per_agent"), "{body}");
    assert!(message.contains("3 MCP sessions"), "{body}");
    // An MCP SDK client shows the same message.
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(TOKEN)
            .custom_headers(headers("alice", "answer-forum-question")),
    );
    let err = match tokio::time::timeout(PROMPTLY, ().serve(t)).await.unwrap() {
        Ok(_) => panic!("a fourth session opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("max_sessions_per_agent"), "{err}");

    // Another agent still opens one.
    let ops = open(addr, OPS_TOKEN, "dave", "ops-change").await;

    // Closing a session frees its slot.
    let http = reqwest::Client::new();
    let r = http
        .delete(format!("http://{addr}/mcp"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("mcp-session-id", mine.remove(0))
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    mine.push(forum(addr).await);

    // Four open: the overall cap refuses even an agent under its own.
    let (status, _, body) = post(addr, OPS_TOKEN, None, "dave", "ops-change", initialize(9)).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_sessions"), "{body}");
    assert!(!body.contains("max_sessions_per_agent"), "{body}");
    drop(ops);
    let _ = stop.send(());
}
