//! Hostile lines over stdio: every one gets an answer line in bounded time, and the session
//! keeps serving after it (library `serve_io` and the real `warden proxy` over pipes).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::common::*;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// One answer line, within a bound generous enough for a loaded machine.
async fn answer<R: AsyncBufRead + Unpin>(r: &mut R, what: &str) -> Value {
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), r.read_line(&mut line)).await;
    let n = read
        .unwrap_or_else(|_| panic!("no answer to {what}: the client would wait forever"))
        .unwrap();
    assert!(n > 0, "the session ended after {what}");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn nested(depth: usize) -> Vec<u8> {
    let mut v = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"forum.read_thread","arguments":{"a":"#.to_vec();
    v.extend(std::iter::repeat_n(b'[', depth));
    v.extend(std::iter::repeat_n(b']', depth));
    v.extend_from_slice(b"}}}\n");
    v
}

/// The hostile lines of the probe, each with the error code and id expected.
fn hostile() -> Vec<(&'static str, Vec<u8>, i64, Value)> {
    let digits = "9".repeat(400);
    vec![
        (
            "a 400-digit id",
            format!(r#"{{"jsonrpc":"2.0","id":{digits},"method":"tools/list"}}"#).into_bytes(),
            -32700,
            Value::Null,
        ),
        ("JSON nested 10,000 deep", nested(10_000), -32700, Value::Null),
        ("JSON nested 100,000 deep", nested(100_000), -32700, Value::Null),
        (
            "invalid UTF-8 in a string",
            b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"cursor\":\"\xff\xfe\"}}\n"
                .to_vec(),
            -32700,
            Value::Null,
        ),
        (
            "a request whose method is not a string",
            br#"{"jsonrpc":"2.0","id":"q-5","method":5}"#.to_vec(),
            -32600,
            Value::from("q-5"),
        ),
    ]
}

/// A request before `initialize`, then the hostile lines, each followed by a real request that
/// must still be answered.
async fn exercise<W, R>(w: &mut W, r: &mut R)
where
    W: AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    w.write_all(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"forum.read_thread","arguments":{}}}"#)
        .await
        .unwrap();
    w.write_all(b"\n").await.unwrap();
    let e = answer(r, "tools/call before initialize").await;
    assert_eq!(e["id"], 7, "{e}");
    assert_eq!(e["error"]["code"], -32600, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the session is not initialized: send initialize first"),
        "{e}"
    );

    w.write_all(format!("{INIT}\n{INITIALIZED}\n").as_bytes())
        .await
        .unwrap();
    let init = answer(r, "initialize").await;
    assert_eq!(init["id"], 1, "{init}");
    assert!(init["result"]["serverInfo"].is_object(), "{init}");

    for (i, (what, mut line, code, id)) in hostile().into_iter().enumerate() {
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        w.write_all(&line).await.unwrap();
        w.flush().await.unwrap();
        let e = answer(r, what).await;
        assert_eq!(e["error"]["code"], code, "{what}: {e}");
        assert_eq!(e["id"], id, "{what}: {e}");
        let list_id = 100 + i;
        w.write_all(
            format!(r#"{{"jsonrpc":"2.0","id":{list_id},"method":"tools/list"}}"#).as_bytes(),
        )
        .await
        .unwrap();
        w.write_all(b"\n").await.unwrap();
        let list = answer(r, &format!("tools/list after {what}")).await;
        assert_eq!(list["id"], list_id, "{what}: {list}");
        assert!(list["result"]["tools"].is_array(), "{what}: {list}");
    }
}

#[tokio::test]
async fn every_hostile_stdio_line_is_answered_and_the_session_goes_on() {
    let (gw, _acme, _log) = start_acme().await;
    let session = gw
        .open_session("stdio-hostile", &alice().into(), None)
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
    exercise(&mut w, &mut r).await;
    drop(w);
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn warden_proxy_answers_every_hostile_line_over_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_acme_proxy(&dir.path().join("d.jsonl"));
    let mut w = child.stdin.take().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    exercise(&mut w, &mut r).await;
    drop(w);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
