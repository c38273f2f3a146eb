//! Upstream crashes and hangs, clients that leave mid-call, garbage on stdin.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use warden_mcp::{Connector, UpstreamSettings};

use crate::common::*;

#[tokio::test]
async fn a_crashed_upstream_gives_a_clear_error_and_is_restarted() {
    let acme = warden_acme::AcmeServer::new();
    let forum = acme.subset(Some("forum")).unwrap();
    let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
    let t2 = tasks.clone();
    let connector: Connector = Arc::new(move || {
        let view = forum.clone();
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        t2.lock().unwrap().push(tokio::spawn(async move {
            let _ = warden_acme::serve_transport(view, theirs).await;
        }));
        Ok(ours)
    });
    let up = UpstreamSettings::in_process("forum", connector).with_timeout(Duration::from_secs(5));
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    let client = agent(&gw, &alice()).await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    assert!(!is_error(
        &call(client.peer(), "forum.read_thread", args.clone()).await
    ));

    // Crash: the server side of the connection disappears.
    for t in tasks.lock().unwrap().drain(..) {
        t.abort();
    }
    let started = Instant::now();
    let r = call(client.peer(), "forum.read_thread", args.clone()).await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(t.contains("upstream `forum`"), "{t}");
    assert!(
        t.contains("down") || t.contains("closed the connection"),
        "{t}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "within the timeout"
    );

    // Restarted with backoff; calls work again in the same session.
    let u = gw.upstream("forum").unwrap();
    assert!(
        u.wait_connects(2, Duration::from_secs(10)).await,
        "{:?}",
        u.status()
    );
    let r = call(client.peer(), "forum.read_thread", args).await;
    assert!(!is_error(&r), "{}", text(&r));
    client.cancel().await.unwrap();
}

fn hanging(acme: &warden_acme::AcmeServer, timeout: Duration) -> (UpstreamSettings, Probe) {
    let mut p = Probe::new(acme, "forum");
    p.hang = true;
    let p2 = p.clone();
    (
        in_process("forum", move || p2.clone()).with_timeout(timeout),
        p,
    )
}

#[tokio::test]
async fn a_hanging_upstream_times_out_and_the_request_is_cancelled_upstream() {
    let acme = warden_acme::AcmeServer::new();
    let (up, probe) = hanging(&acme, Duration::from_millis(400));
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    let client = agent(&gw, &alice()).await;
    let started = Instant::now();
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-HANG"}),
    )
    .await;
    let took = started.elapsed();
    assert!(is_error(&r));
    assert!(
        text(&r).contains("did not answer within 400 ms"),
        "{}",
        text(&r)
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        eventually(Duration::from_secs(20), || probe
            .cancelled
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // The session is not stuck.
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(!is_error(&r));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_client_leaving_mid_call_cancels_upstream_and_leaks_no_session() {
    let acme = warden_acme::AcmeServer::new();
    let (up, probe) = hanging(&acme, Duration::from_secs(60));
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    for round in 1..=3 {
        let client = agent(&gw, &alice()).await;
        let peer = client.peer().clone();
        let pending = tokio::spawn(async move {
            let _ = peer
                .call_tool(
                    rmcp::model::CallToolRequestParams::new("forum.read_thread").with_arguments(
                        json!({"channel": "eng-help", "thread_id": "T-HANG"})
                            .as_object()
                            .cloned()
                            .unwrap(),
                    ),
                )
                .await;
        });
        assert!(eventually(Duration::from_secs(20), || probe.seen().len() == round).await);
        assert_eq!(gw.live_sessions(), 1);
        drop(client); // the agent goes away mid-call
        assert!(
            eventually(Duration::from_secs(20), || probe
                .cancelled
                .load(Ordering::SeqCst)
                == round)
            .await,
            "the upstream request was cancelled"
        );
        assert!(
            eventually(Duration::from_secs(20), || gw.live_sessions() == 0).await,
            "sessions left: {}",
            gw.live_sessions()
        );
        pending.abort();
    }
}

async fn read_json_line<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> serde_json::Value {
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut line))
        .await
        .expect("an answer in time")
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// Garbage, an oversized line, then a real session: errors for the first two, service after.
async fn exercise_framing<W, R>(w: &mut W, r: &mut R, max: usize)
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncBufRead + Unpin,
{
    w.write_all(b"this is not json {{{\n").await.unwrap();
    let e = read_json_line(r).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert!(e["id"].is_null());
    let big = format!("{{\"pad\":\"{}\"}}\n", "x".repeat(max + 10));
    w.write_all(big.as_bytes()).await.unwrap();
    let e = read_json_line(r).await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("at most"),
        "{e}"
    );
    for m in [INIT, INITIALIZED] {
        w.write_all(format!("{m}\n").as_bytes()).await.unwrap();
    }
    let init = read_json_line(r).await;
    assert_eq!(init["id"], 1, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "warden", "{init}");
    w.write_all(b"\x00\xff not utf8 either\n").await.unwrap();
    let e = read_json_line(r).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    w.write_all(format!("{LIST}\n").as_bytes()).await.unwrap();
    let list = read_json_line(r).await;
    assert_eq!(list["id"], 2, "{list}");
    assert!(list["result"]["tools"].is_array(), "{list}");
}

#[tokio::test]
async fn garbage_and_oversized_lines_on_the_stdio_transport_get_errors_and_service_goes_on() {
    let acme = warden_acme::AcmeServer::new();
    let settings = warden_mcp::GatewaySettings {
        upstreams: acme_upstreams(&acme),
        serve: warden_mcp::ServeSettings {
            max_message_bytes: 4096,
            ..Default::default()
        },
        ..Default::default()
    };
    let gw = start_gateway(engine(), settings, Arc::new(MemoryLog::new())).await;
    let session = gw
        .open_session("stdio-test", &alice().into(), None)
        .unwrap();
    let (client_w, server_r) = tokio::io::duplex(1 << 20);
    let (server_w, client_r) = tokio::io::duplex(1 << 20);
    let served = tokio::spawn(warden_mcp::stdio::serve_io(
        gw.clone(),
        session,
        server_r,
        server_w,
    ));
    let mut w = client_w;
    let mut r = BufReader::new(client_r);
    exercise_framing(&mut w, &mut r, 4096).await;
    drop(w); // EOF ends the session
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(eventually(Duration::from_secs(2), || gw.live_sessions() == 0).await);
}

#[tokio::test]
async fn warden_proxy_answers_garbage_with_a_parse_error_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_acme_proxy(&dir.path().join("d.jsonl"));
    let mut w = child.stdin.take().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    exercise_framing(
        &mut w,
        &mut r,
        warden_mcp::settings::DEFAULT_MAX_MESSAGE_BYTES,
    )
    .await;
    drop(w);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_stdio_session_over_a_real_rmcp_client_works_end_to_end() {
    let (gw, _acme, log) = start_acme().await;
    let session = gw.open_session("stdio-e2e", &alice().into(), None).unwrap();
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    let (sr, sw) = tokio::io::split(server_io);
    tokio::spawn(warden_mcp::stdio::serve_io(gw.clone(), session, sr, sw));
    let client = ().serve(client_io).await.unwrap();
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(text(&r).contains("T-1042"));
    assert_eq!(log.len(), 1);
    client.cancel().await.unwrap();
}
