//! `warden proxy` and `warden serve` as processes: `@acme-mcp` served by the warden binary
//! alone, commands that cannot start named at once, and the health routes over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::repo;

/// The Acme configuration copied into `dir` (without its scenarios), with `extra` appended to
/// its `warden.toml`; returns the copy's `warden.toml`.
fn acme_copy(dir: &Path, extra: &str) -> PathBuf {
    let from = repo().join("examples/acme");
    for sub in ["", "policies", "approvers"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let config = dir.join("warden.toml");
    let text = std::fs::read_to_string(&config).unwrap() + extra;
    std::fs::write(&config, text).unwrap();
    config
}

/// Kills the process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every stderr line of `child`, as they come, read by a thread (so the pipe never fills).
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Wait for the stderr line containing `needle` (the lines before it are returned too).
fn wait_for(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return seen;
                }
            }
            Err(e) => panic!("no `{needle}` on stderr ({e}); it said:\n{seen}"),
        }
    }
}

/// One JSON-RPC exchange over the proxy's stdio: send `msg`, read lines up to the answer to `id`.
fn rpc(
    stdin: &mut impl Write,
    stdout: &mut impl BufRead,
    msg: Value,
    id: Option<u64>,
) -> Option<Value> {
    writeln!(stdin, "{msg}").unwrap();
    stdin.flush().unwrap();
    let id = id?;
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the proxy closed stdout"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == json!(id) {
            return Some(v);
        }
    }
}

#[test]
fn acme_upstreams_need_only_the_warden_binary() {
    // A folder holding warden and nothing else: `@acme-mcp` cannot be a binary beside it.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let warden = bin.join("warden");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_warden"), &warden).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_warden"), &warden).unwrap();
    }
    let config = acme_copy(&dir.path().join("acme"), "");
    let mut child = Command::new(&warden)
        .args(["proxy", "--insecure-identity", "--config"])
        .arg(&config)
        .args(["--agent", "forum-helper", "--principal", "alice"])
        .args(["--mission", "answer-forum-question"])
        .args(["--purpose", "Help me answer Bob's question in T-1042"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let _running = Running(child);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "cli-test", "version": "1"}}});
    let r = rpc(&mut stdin, &mut stdout, init, Some(1)).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    let said = wait_for(&lines, "proxy session");
    assert!(!said.contains("upstream `"), "{said}");
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    rpc(&mut stdin, &mut stdout, note, None);
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let r = rpc(&mut stdin, &mut stdout, list, Some(2)).unwrap();
    let names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"forum.read_thread"), "{names:?}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "forum.read_thread", "arguments": {"channel": "eng-help", "thread_id": "T-1042"}}});
    let r = rpc(&mut stdin, &mut stdout, call, Some(3)).unwrap();
    assert_ne!(r["result"]["isError"], json!(true), "{r}");
    assert!(
        r.to_string().contains("Login to staging keeps failing"),
        "{r}"
    );
}

/// `GET path` over a fresh connection: the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {out}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (code, body.to_string())
}

/// `warden serve` on a free port with the Acme configuration plus `extra`; its address, the
/// process, and what it said on stderr before it listened.
fn serve(dir: &Path, extra: &str) -> (String, Running, String) {
    let config = acme_copy(dir, extra);
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "serve",
            "--insecure-identity",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env("WARDEN_TOKEN_FORUM_HELPER", "cli-test-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let running = Running(child);
    let said = wait_for(&lines, "warden: serving http://");
    let addr = said
        .split("serving http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    (addr, running, said)
}

#[test]
fn serve_answers_health_and_readiness_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _running, _) = serve(dir.path(), "");
    let (code, body) = get(&addr, "/healthz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "alive"
    );
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    assert_eq!(v["not_ready"], json!([]), "{v}");
    // `/mcp` still wants a token.
    let (code, body) = get(&addr, "/mcp");
    assert_eq!(code, 401, "{body}");
}

#[test]
fn an_upstream_that_cannot_start_is_named_and_makes_serve_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "\n[servers.ghost]\ncommand = \"/nonexistent/ghost-mcp\"\n";
    let (addr, _running, said) = serve(dir.path(), extra);
    assert!(
        said.contains(
            "upstream `ghost`: cannot start `/nonexistent/ghost-mcp`: the program does not exist"
        ),
        "{said}"
    );
    let (code, _) = get(&addr, "/healthz");
    assert_eq!(code, 200);
    let (code, body) = get(&addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not-ready", "{v}");
    let missing = v["not_ready"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{v}");
    assert_eq!(missing[0]["check"], "upstream");
    assert_eq!(missing[0]["name"], "ghost");
    assert!(
        missing[0]["reason"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/ghost-mcp"),
        "{v}"
    );
}
