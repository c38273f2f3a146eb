//! One parser decides what the upstream receives: every request variant goes to two Wardens
//! in front of two identical Acme servers, one served with the `tools/call` fast path and one
//! without it (rmcp answers everything), and both must answer the same — status, the
//! JSON-RPC message (the fast path answers in JSON, rmcp in an SSE stream; the message is
//! compared, modulo decision ids), the session header — and decide and log the same calls (the
//! log entries compared modulo ids, session names and times; their call digests show the
//! arguments decided, which are the arguments forwarded).
//!
//! The variants: the gateway bypasses of DESIGN §8 (batches smuggling calls, Content-Type
//! tricks, `text/plain` POSTs, a UTF-8 BOM, duplicated protocol headers, a session id replayed
//! by another agent), header duplication, header values that are not UTF-8, every protocol
//! version, Accept and Content-Type variants, and bodies that JSON parsers disagree on.
//! (Header-name case never reaches either path: hyper lowercases names when it parses.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::common::MemoryLog;
use crate::fastpath::{message_of, RawClient};
use crate::front::acme_served;
use crate::http::{OPS_TOKEN, TOKEN};

/// One request to send to both.
struct Variant {
    name: &'static str,
    method: reqwest::Method,
    /// Headers replacing the session's defaults (`None` removes one), appended in order (so a
    /// name given twice is sent twice). Values are bytes: they need not be UTF-8.
    headers: Vec<(&'static str, Option<&'static [u8]>)>,
    /// Send with the other agent's token.
    other_agent: bool,
    body: Vec<u8>,
}

fn call_body(id: u64, name: &str, args: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": args}})
    .to_string()
    .into_bytes()
}

fn read_args() -> Value {
    json!({"channel": "eng-help", "thread_id": "T-1042"})
}

fn post(
    name: &'static str,
    headers: Vec<(&'static str, Option<&'static [u8]>)>,
    body: Vec<u8>,
) -> Variant {
    Variant {
        name,
        method: reqwest::Method::POST,
        headers,
        other_agent: false,
        body,
    }
}

fn variants() -> Vec<Variant> {
    let read = || call_body(7, "forum.read_thread", read_args());
    let h = |k: &'static str, v: &'static str| (k, Some(v.as_bytes()));
    let mut out = vec![
        post("plain call", vec![], read()),
        post(
            "unexposed tool",
            vec![],
            call_body(8, "acl.grant_access", json!({"resource": "repo:payments", "user": "bob"})),
        ),
        post("unknown tool", vec![], call_body(9, "forum.nope", json!({}))),
        post("no arguments", vec![], br#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"forum.list_threads"}}"#.to_vec()),
        post("null arguments", vec![], br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"forum.list_threads","arguments":null}}"#.to_vec()),
        post("array arguments", vec![], br#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"forum.list_threads","arguments":[]}}"#.to_vec()),
        post("numeric name", vec![], br#"{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":5}}"#.to_vec()),
        post("duplicated name", vec![], br#"{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"forum.read_thread","name":"acl.grant_access","arguments":{}}}"#.to_vec()),
        post("duplicated method", vec![], br#"{"jsonrpc":"2.0","id":15,"method":"tools/list","method":"tools/call","params":{"name":"forum.read_thread","arguments":{}}}"#.to_vec()),
        post("duplicated argument", vec![], br#"{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"forum.read_thread","arguments":{"thread_id":"T-1042","thread_id":"T-9999","channel":"eng-help"}}}"#.to_vec()),
        post("string id", vec![], br#"{"jsonrpc":"2.0","id":"a-17","method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("float id", vec![], br#"{"jsonrpc":"2.0","id":18.5,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("null id", vec![], br#"{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("huge id", vec![], br#"{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("jsonrpc 1.0", vec![], br#"{"jsonrpc":"1.0","id":19,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("no jsonrpc", vec![], br#"{"id":20,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}}}"#.to_vec()),
        post("unknown member", vec![], br#"{"jsonrpc":"2.0","id":21,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{}},"extra":1}"#.to_vec()),
        post("unknown param", vec![], br#"{"jsonrpc":"2.0","id":22,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{},"extra":1}}"#.to_vec()),
        post("progress token", vec![], br#"{"jsonrpc":"2.0","id":23,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{},"_meta":{"progressToken":1}}}"#.to_vec()),
        post("protocol meta", vec![], br#"{"jsonrpc":"2.0","id":24,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}"#.to_vec()),
        post("task", vec![], br#"{"jsonrpc":"2.0","id":25,"method":"tools/call","params":{"name":"forum.list_threads","arguments":{},"task":{"ttl":1000}}}"#.to_vec()),
        post("trailing garbage", vec![], [read(), b"}".to_vec()].concat()),
        post("leading whitespace", vec![], [b" \r\n\t".to_vec(), read()].concat()),
        post("utf-8 bom", vec![], [b"\xef\xbb\xbf".to_vec(), read()].concat()),
        post("invalid utf-8 in a string", vec![], b"{\"jsonrpc\":\"2.0\",\"id\":26,\"method\":\"tools/call\",\"params\":{\"name\":\"forum.read_thread\",\"arguments\":{\"thread_id\":\"T-\xff\"}}}".to_vec()),
        post("escaped name", vec![], br#"{"jsonrpc":"2.0","id":27,"method":"tools\/call","params":{"name":"forum.read\u005fthread","arguments":{"channel":"eng-help","thread_id":"T-1042"}}}"#.to_vec()),
        post("nul in name", vec![], br#"{"jsonrpc":"2.0","id":28,"method":"tools/call","params":{"name":"forum.read_thread\u0000","arguments":{}}}"#.to_vec()),
        post("batch of one call", vec![], [b"[".to_vec(), read(), b"]".to_vec()].concat()),
        post("batch smuggling a call", vec![], [b"[{\"jsonrpc\":\"2.0\",\"id\":29,\"method\":\"ping\"},".to_vec(), call_body(30, "acl.grant_access", json!({"resource": "repo:payments", "user": "bob"})), b"]".to_vec()].concat()),
        post("empty batch", vec![], b"[]".to_vec()),
        post("empty body", vec![], Vec::new()),
        post("not json", vec![], b"tools/call forum.read_thread".to_vec()),
        post("notification cancelled", vec![], br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#.to_vec()),
        post("ping", vec![], br#"{"jsonrpc":"2.0","id":31,"method":"ping"}"#.to_vec()),
        post("tools/list", vec![], br#"{"jsonrpc":"2.0","id":32,"method":"tools/list"}"#.to_vec()),
        post("a response", vec![], br#"{"jsonrpc":"2.0","id":33,"result":{}}"#.to_vec()),
        post("content-type charset", vec![h("content-type", "application/json; charset=utf-8")], read()),
        post("content-type upper case", vec![h("content-type", "APPLICATION/JSON")], read()),
        post("content-type odd params", vec![h("content-type", "Application/Json;charset=\"UTF-8\";x=y")], read()),
        post("content-type json-seq", vec![h("content-type", "application/json-seq")], read()),
        post("content-type text/plain", vec![h("content-type", "text/plain")], read()),
        post("content-type missing", vec![("content-type", None)], read()),
        post("content-type twice, text first", vec![h("content-type", "text/plain"), h("content-type", "application/json")], read()),
        post("content-type twice, json first", vec![h("content-type", "application/json"), h("content-type", "text/plain")], read()),
        post("content-type not utf-8", vec![("content-type", Some(b"application/json; x=\xff"))], read()),
        post("accept json only", vec![h("accept", "application/json")], read()),
        post("accept q=0", vec![h("accept", "application/json;q=0, text/event-stream")], read()),
        post("accept quoted", vec![h("accept", "application/json;x=\"a,text/event-stream\"")], read()),
        post("accept wildcard", vec![h("accept", "*/*")], read()),
        post("accept split", vec![h("accept", "application/json"), h("accept", "text/event-stream")], read()),
        post("accept upper case", vec![h("accept", "APPLICATION/JSON, TEXT/EVENT-STREAM")], read()),
        post("session id twice", vec![("mcp-session-id", None), h("mcp-session-id", "SID"), h("mcp-session-id", "SID")], read()),
        post("unknown session id", vec![h("mcp-session-id", "00000000-0000-4000-8000-000000000000")], read()),
        post("session id not utf-8", vec![("mcp-session-id", Some(b"\xff\xfe"))], read()),
        post("no session id", vec![("mcp-session-id", None)], read()),
        post("version twice, differing", vec![h("mcp-protocol-version", "2025-11-25"), h("mcp-protocol-version", "2024-11-05")], read()),
        post("version twice, same", vec![h("mcp-protocol-version", "2025-11-25"), h("mcp-protocol-version", "2025-11-25")], read()),
        post("version unknown", vec![h("mcp-protocol-version", "1999-01-01")], read()),
        post("version missing", vec![("mcp-protocol-version", None)], read()),
        post("version not utf-8", vec![("mcp-protocol-version", Some(b"2025-11-25\xff"))], read()),
        post("mcp-method mismatch", vec![h("mcp-method", "tools/list")], read()),
        post("mcp-method twice", vec![h("mcp-method", "tools/call"), h("mcp-method", "tools/list")], read()),
        post("mcp-name mismatch", vec![h("mcp-method", "tools/call"), h("mcp-name", "acl.grant_access")], read()),
        post("mcp-name not utf-8", vec![h("mcp-method", "tools/call"), ("mcp-name", Some(b"forum.read_thread\xe9"))], read()),
        post("mcp-param header", vec![h("mcp-param-thread_id", "T-9999")], read()),
        post("purpose not utf-8", vec![("x-warden-purpose", Some(b"caf\xe9"))], read()),
        post("mission twice", vec![h("x-warden-mission", "answer-forum-question"), h("x-warden-mission", "triage-incident")], read()),
        post("origin", vec![h("origin", "http://evil.example")], read()),
        post("host", vec![h("host", "attacker.example")], read()),
        Variant {
            name: "session replayed by another agent",
            method: reqwest::Method::POST,
            headers: vec![],
            other_agent: true,
            body: read(),
        },
        Variant {
            name: "cancel replayed by another agent",
            method: reqwest::Method::POST,
            headers: vec![],
            other_agent: true,
            body: br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#.to_vec(),
        },
        Variant {
            name: "delete by another agent",
            method: reqwest::Method::DELETE,
            headers: vec![],
            other_agent: true,
            body: Vec::new(),
        },
        Variant {
            name: "put",
            method: reqwest::Method::PUT,
            headers: vec![],
            other_agent: false,
            body: read(),
        },
    ];
    for v in [
        "2024-11-05",
        "2025-03-26",
        "2025-06-18",
        "2025-11-25",
        "2026-07-28",
    ] {
        out.push(post(
            "protocol version",
            vec![("mcp-protocol-version", Some(v.as_bytes()))],
            read(),
        ));
    }
    out
}

/// One Warden, with or without the fast path, and a session open on it.
struct Side {
    log: Arc<MemoryLog>,
    client: RawClient,
    _gw: Arc<warden_mcp::Gateway>,
    _acme: warden_acme::AcmeServer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn side(fast: bool) -> (Side, SocketAddr) {
    let (gw, acme, log, addr, stop) = acme_served(fast).await;
    let mut client = RawClient::new(addr, TOKEN);
    client.open().await;
    let list = client.request("tools/list", json!({})).await;
    assert!(list.body.contains("forum.read_thread"), "{}", list.body);
    (
        Side {
            log,
            client,
            _gw: gw,
            _acme: acme,
            _stop: stop,
        },
        addr,
    )
}

/// What both must agree on.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    /// Whether the answer names a session.
    session_header: bool,
    /// The JSON-RPC message, normalized; or the body when it is not JSON-RPC.
    message: Value,
    /// The log entries it added, normalized.
    decided: Vec<Value>,
}

/// Drop what differs between two runs of the same thing: ids, names and times.
fn normalize(v: &mut Value, decision_ids: &[String]) {
    match v {
        Value::Object(m) => {
            for k in [
                "id",
                "session",
                "mission",
                "at_ms",
                "elapsed_us",
                "decision_id",
                "taskId",
                "createdAt",
                "lastUpdatedAt",
            ] {
                m.remove(k);
            }
            for x in m.values_mut() {
                normalize(x, decision_ids);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| normalize(x, decision_ids)),
        Value::String(s) => {
            for id in decision_ids {
                *s = s.replace(id.as_str(), "<decision>");
            }
        }
        _ => {}
    }
}

async fn send(side: &mut Side, v: &Variant) -> Answer {
    let before = side.log.len();
    let c = &side.client;
    let sid = c.session.clone().unwrap();
    let token = if v.other_agent { OPS_TOKEN } else { TOKEN };
    let mut defaults: Vec<(&str, Vec<u8>)> = vec![
        ("authorization", format!("Bearer {token}").into_bytes()),
        ("content-type", b"application/json".to_vec()),
        ("accept", b"application/json, text/event-stream".to_vec()),
        ("x-warden-principal", b"alice".to_vec()),
        ("x-warden-mission", b"answer-forum-question".to_vec()),
        (
            "x-warden-purpose",
            b"Help me answer Bob's question in T-1042".to_vec(),
        ),
        ("mcp-session-id", sid.clone().into_bytes()),
        ("mcp-protocol-version", b"2025-11-25".to_vec()),
    ];
    let named: Vec<&str> = v.headers.iter().map(|(k, _)| *k).collect();
    defaults.retain(|(k, _)| !named.contains(k));
    let mut h = HeaderMap::new();
    for (k, val) in defaults {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_bytes(&val).unwrap(),
        );
    }
    for (k, val) in &v.headers {
        if let Some(val) = val {
            let val = if *val == b"SID" { sid.as_bytes() } else { val };
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_bytes(val).unwrap(),
            );
        }
    }
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.http
            .request(v.method.clone(), &c.url)
            .headers(h)
            .body(v.body.clone())
            .send(),
    )
    .await
    .unwrap_or_else(|_| panic!("{}: an answer within 10 s", v.name))
    .unwrap();
    let status = r.status().as_u16();
    let session_header = r.headers().contains_key("mcp-session-id");
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .unwrap_or_else(|_| panic!("{}: the body within 10 s", v.name))
        .unwrap_or_default();
    if body.contains("\"taskId\"") {
        // A task is decided in the background: wait (bounded) for its decision to be logged.
        for _ in 0..500 {
            if side.log.len() > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let entries = side.log.entries();
    let added = entries.get(before..).unwrap_or_default();
    let ids: Vec<String> = added.iter().map(|e| e.decision.id.clone()).collect();
    let mut message = message_of(&content_type, &body);
    if message.is_null() {
        message = Value::String(body);
    }
    normalize(&mut message, &ids);
    let decided = added
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            normalize(&mut v, &ids);
            v
        })
        .collect();
    Answer {
        status,
        session_header,
        message,
        decided,
    }
}

#[tokio::test]
async fn the_fast_path_and_rmcp_answer_every_variant_alike() {
    let (mut fast, _) = side(true).await;
    let (mut slow, _) = side(false).await;
    let mut differ = Vec::new();
    for v in variants() {
        let a = send(&mut fast, &v).await;
        let b = send(&mut slow, &v).await;
        if a != b {
            differ.push(format!(
                "{}:\n  fast path: {a:?}\n  rmcp:      {b:?}",
                v.name
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "the paths disagree:\n{}",
        differ.join("\n")
    );
    // The calls went through both: the fast path answered some, and both sessions still serve.
    assert!(fast.log.len() > 5, "{}", fast.log.len());
    assert_eq!(fast.log.len(), slow.log.len());
    for s in [&mut fast, &mut slow] {
        let r = s.client.call("forum.read_thread", read_args()).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert!(fast._gw.fast_calls() > 0);
    assert_eq!(slow._gw.fast_calls(), 0);
}
