//! `warden serve` on a durable store, driven over real MCP (JSON-RPC over HTTP):
//!
//! - taint is the mission's, wherever the mission goes: read in one MCP session, it holds a
//!   post in a second session, after a restart on the same SQLite file, and on another replica
//!   on the same PostgreSQL database; a mission with another purpose still posts;
//! - a crash (SIGKILL under load) loses no record of a call a client saw allowed, and the chain
//!   still verifies after the restart;
//! - the store going away refuses calls (nothing is forwarded unrecorded), and its return is
//!   noticed without restarting Warden.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor};

use crate::cluster::Cluster;
use crate::{repo, text};

/// forum-helper's bearer token.
pub(crate) const TOKEN: &str = "durable-test-token";
const TEMPLATE: &str = "answer-forum-question";
const PURPOSE: &str = "Answer the FAQ question in T-1090";
/// How long one HTTP exchange may take (a store that is down answers well within it).
const EXCHANGE: Duration = Duration::from_secs(60);

/// The Acme configuration copied into `dir` (without its scenarios); returns its `warden.toml`.
pub(crate) fn acme_copy(dir: &Path) -> PathBuf {
    let from = repo().join("examples/acme");
    for sub in ["", "policies", "approvers"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    dir.join("warden.toml")
}

/// A running `warden serve`: killed (SIGKILL) when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    /// Its stderr, line by line (read by a thread, so the pipe never fills).
    lines: mpsc::Receiver<String>,
}

impl Server {
    /// `warden serve` on a free port of 127.0.0.1 with `config` and the store `store`, once it
    /// says it is serving; agents name their identity in headers (`--insecure-identity`).
    fn start(config: &Path, store: &str) -> Server {
        Server::start_with(config, store, &["--insecure-identity"], &[])
    }

    /// [`Server::start`] with `args` added and `env` set, agents' identity as `args` say.
    pub(crate) fn start_with(
        config: &Path,
        store: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(config)
            .args(["--store", store])
            .args(args)
            .env("WARDEN_TOKEN_FORUM_HELPER", TOKEN)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: String::new(),
            lines,
        };
        let said = server.wait_for("warden: serving http://");
        server.addr = said
            .split("serving http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap()
            .to_string();
        server
    }

    /// Wait (at most two minutes) for the stderr line containing `needle`; the lines up to it.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(needle) {
                        return seen;
                    }
                }
                Err(e) => {
                    let status = self.child.try_wait();
                    panic!("no `{needle}` on stderr ({e}; process: {status:?}); it said:\n{seen}")
                }
            }
        }
    }

    /// What it said on stderr so far (without waiting).
    fn said(&self) -> String {
        self.lines.try_iter().collect::<Vec<_>>().join("\n")
    }

    pub(crate) fn client(&self, purpose: &str) -> Client {
        Client::new(&self.addr, purpose)
    }

    /// A client presenting the mission token `token` (no identity headers).
    pub(crate) fn client_with_token(&self, token: &str) -> Client {
        let mut c = Client::new(&self.addr, "");
        c.mission_token = Some(token.to_string());
        c
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One MCP session of `forum-helper` for alice, over HTTP: JSON-RPC posted to `/mcp` with the
/// bearer token and the identity headers; answers read from a JSON body or an SSE stream.
pub(crate) struct Client {
    http: reqwest::Client,
    url: String,
    purpose: String,
    /// Presented instead of the identity headers, when set.
    mission_token: Option<String>,
    session: Option<String>,
    next: u64,
}

/// What a `tools/call` came back with.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The JSON-RPC message.
    message: Value,
}

impl Answer {
    pub(crate) fn result(&self) -> &Value {
        &self.message["result"]
    }

    pub(crate) fn is_error(&self) -> bool {
        self.result()["isError"] == json!(true)
    }

    pub(crate) fn text(&self) -> String {
        self.result()["content"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    /// Allowed and answered by the upstream: a result that is no error and no word of Warden.
    pub(crate) fn allowed(&self) -> bool {
        self.result().is_object() && !self.is_error() && !self.text().starts_with("Warden")
    }

    /// Held for approval.
    pub(crate) fn held(&self) -> bool {
        self.is_error() && self.text().contains("Warden held")
    }
}

/// The JSON-RPC message with an id in a response body (JSON, or an SSE stream).
fn message_of(content_type: &str, body: &str) -> Value {
    if content_type.starts_with("application/json") {
        return serde_json::from_str(body).unwrap_or(Value::Null);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or(Value::Null)
}

impl Client {
    fn new(addr: &str, purpose: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            url: format!("http://{addr}/mcp"),
            purpose: purpose.to_string(),
            mission_token: None,
            session: None,
            next: 1,
        }
    }

    /// POST `body`: the status, the session header and the JSON-RPC message; `Err` when the
    /// exchange failed (no answer, connection refused or reset, timeout).
    pub(crate) async fn post(&self, body: Value) -> Result<(u16, Option<String>, Value), String> {
        let mut req = self
            .http
            .post(&self.url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        req = match &self.mission_token {
            Some(t) => req.header("x-warden-mission-token", t),
            None => req
                .header("x-warden-principal", "alice")
                .header("x-warden-mission", TEMPLATE)
                .header("x-warden-purpose", &self.purpose),
        };
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", "2025-11-25");
        }
        let exchange = async {
            let r = req.body(body.to_string()).send().await?;
            let status = r.status().as_u16();
            let header = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let content_type = header("content-type").unwrap_or_default();
            let session = header("mcp-session-id");
            let body = r.text().await?;
            Ok::<_, reqwest::Error>((status, session, message_of(&content_type, &body), body))
        };
        match tokio::time::timeout(EXCHANGE, exchange).await {
            Err(_) => Err(format!("no answer within {EXCHANGE:?}")),
            Ok(Err(e)) => Err(format!("HTTP: {e}")),
            Ok(Ok((status, session, message, body))) => {
                if status == 200 && message.is_null() {
                    Err(format!("no JSON-RPC answer in: {body}"))
                } else {
                    Ok((status, session, message))
                }
            }
        }
    }

    /// `initialize` and `notifications/initialized`: a new MCP session.
    pub(crate) async fn open(&mut self) -> Result<(), String> {
        let id = self.next;
        self.next += 1;
        let init = json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "durable-test", "version": "1"}}});
        let (status, session, message) = self.post(init).await?;
        if status != 200 || message.get("result").is_none() {
            return Err(format!("initialize: HTTP {status}: {message}"));
        }
        self.session = Some(session.ok_or("initialize: no mcp-session-id")?);
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _, _) = self.post(note).await?;
        if status != 202 {
            return Err(format!("notifications/initialized: HTTP {status}"));
        }
        Ok(())
    }

    /// `tools/call`; `Err` when no JSON-RPC result came back.
    pub(crate) async fn try_call(&mut self, tool: &str, args: Value) -> Result<Answer, String> {
        let id = self.next;
        self.next += 1;
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let (status, _, message) = self.post(call).await?;
        if status != 200 || message.get("result").is_none() {
            return Err(format!("tools/call {tool}: HTTP {status}: {message}"));
        }
        Ok(Answer { message })
    }

    pub(crate) async fn call(&mut self, tool: &str, args: Value) -> Answer {
        self.try_call(tool, args).await.unwrap()
    }

    /// Read the auth logs about bob: security-sensitive output, which taints the mission.
    pub(crate) async fn read_logs(&mut self) -> Answer {
        self.call(
            "logs.query_logs",
            json!({"source": "auth", "query": "user=bob", "limit": 50}),
        )
        .await
    }

    /// Post a harmless answer in the forum's eng-help channel, read by thousands.
    pub(crate) async fn post_reply(&mut self) -> Answer {
        self.call(
            "forum.post_reply",
            json!({"channel": "eng-help", "thread_id": "T-1090",
                   "body": "The FAQ says: install the VPN client from the portal."}),
        )
        .await
    }
}

/// A new session of `server` for a mission with `purpose`.
async fn session(server: &Server, purpose: &str) -> Client {
    let mut c = server.client(purpose);
    c.open().await.unwrap();
    c
}

fn warden_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// `warden audit verify --store URL` passes.
fn assert_chain_verifies(store: &str) {
    let out = warden_cli(&["audit", "verify", "--store", store]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Every record of the chain, as `warden audit export --format jsonl` prints them.
fn export(store: &str) -> Vec<Value> {
    let out = warden_cli(&["audit", "export", "--format", "jsonl", "--store", store]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taint_holds_in_a_second_session_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = acme_copy(&dir.path().join("acme"));
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());

    let server = Server::start(&config, &store);
    // Before anything is read, the answer may be posted (a mission of its own).
    let mut clean = session(&server, "Answer the FAQ question in T-1090 (clean)").await;
    let posted = clean.post_reply().await;
    assert!(posted.allowed(), "{posted:?}");

    let mut first = session(&server, PURPOSE).await;
    let read = first.read_logs().await;
    assert!(read.allowed(), "{read:?}");
    // A second MCP session, same token and identity: the same mission, tainted.
    let mut second = session(&server, PURPOSE).await;
    let post = second.post_reply().await;
    assert!(post.held(), "a second session posted: {post:?}");
    drop((first, second, clean));

    // Restart on the same file: the mission's taint is still there.
    server.kill();
    let server = Server::start(&config, &store);
    let mut third = session(&server, PURPOSE).await;
    let post = third.post_reply().await;
    assert!(post.held(), "posted after a restart: {post:?}");
    // Control: another purpose is another mission, which read nothing.
    let mut other = session(&server, "Answer the FAQ question in T-1090 (again)").await;
    let post = other.post_reply().await;
    assert!(post.allowed(), "{post:?}");
    drop(server);
    assert_chain_verifies(&store);
}

/// The shared PostgreSQL server of the tests.
fn pg_base() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taint_read_on_one_replica_holds_a_post_on_the_other() {
    let base = pg_base();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("durable_{}_{nanos}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at `{base}` is unreachable: {e}"));
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let store = format!("{base}{separator}options[search_path]={schema}");

    let dir = tempfile::tempdir().unwrap();
    let config = acme_copy(&dir.path().join("acme"));
    let a = Server::start(&config, &store);
    let b = Server::start(&config, &store);
    // B knows the mission before A reads anything.
    let mut on_b = session(&b, PURPOSE).await;
    let read = on_b
        .call(
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
        .await;
    assert!(read.allowed(), "{read:?}");
    let mut on_a = session(&a, PURPOSE).await;
    let read = on_a.read_logs().await;
    assert!(read.allowed(), "{read:?}");
    // The session B already had, and a new one on B: both held.
    let post = on_b.post_reply().await;
    assert!(post.held(), "replica B posted after A read: {post:?}");
    let mut again = session(&b, PURPOSE).await;
    let post = again.post_reply().await;
    assert!(post.held(), "a new session on B posted: {post:?}");
    // Control: another mission posts on B.
    let mut other = session(&b, "Answer the FAQ question in T-1090 (replica)").await;
    let post = other.post_reply().await;
    assert!(post.allowed(), "{post:?}");

    drop((a, b));
    // Both replicas wrote one chain.
    assert_chain_verifies(&store);
    conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loses_no_record_of_an_allowed_call() {
    const TOOL: &str = "forum.read_thread";
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    let dir = tempfile::tempdir().unwrap();
    let config = acme_copy(&dir.path().join("acme"));
    let store = format!("sqlite://{}", dir.path().join("warden.db").display());
    let server = Server::start(&config, &store);

    // Four clients call in a loop until the server dies; each counts the calls it saw allowed.
    // A mission may make 50 calls: each client opens a new mission every 40.
    let allowed_so_far = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for reader in 0..4 {
        let addr = server.addr.clone();
        let args = args.clone();
        let allowed_so_far = allowed_so_far.clone();
        clients.spawn(async move {
            let mut allowed = 0u64;
            for batch in 0.. {
                let purpose = format!("Read T-1042 (reader {reader}, batch {batch})");
                let mut c = Client::new(&addr, &purpose);
                if c.open().await.is_err() {
                    return allowed;
                }
                for _ in 0..40 {
                    match c.try_call(TOOL, args.clone()).await {
                        Ok(a) if a.allowed() => {
                            allowed += 1;
                            allowed_so_far.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(a) => panic!("reader {reader}: {a:?}"),
                        // The server is gone.
                        Err(_) => return allowed,
                    }
                }
            }
            allowed
        });
    }
    // Let the load run (two seconds, and at least 40 calls), then SIGKILL the server in the
    // middle of it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) || allowed_so_far.load(Ordering::Relaxed) < 40
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} calls allowed in two minutes",
            allowed_so_far.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let mut seen = 0;
    let collect = async {
        while let Some(n) = clients.join_next().await {
            seen += n.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), collect)
        .await
        .expect("the clients stop once the server is gone");
    assert!(seen >= 40, "{seen}");

    // Restarted on the same file, the gateway goes on.
    let server = Server::start(&config, &store);
    let mut after = session(&server, "Read T-1042 after the crash").await;
    let read = after.call(TOOL, args.clone()).await;
    assert!(read.allowed(), "{read:?}");
    drop(server);

    assert_chain_verifies(&store);
    let recorded = export(&store)
        .iter()
        .filter(|r| r["kind"] == "decision" && r["tool"] == TOOL && r["decision"] == "allow")
        .count() as u64;
    assert!(
        recorded > seen,
        "{recorded} allow records of {TOOL}, for {seen} calls seen allowed before the crash and one after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_going_away_refuses_calls_until_it_is_back() {
    let cluster = tokio::task::spawn_blocking(Cluster::new).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = acme_copy(&dir.path().join("acme"));
    let mut server = Server::start(&config, &cluster.url());
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    let mut c = session(&server, "Read T-1042 through an outage").await;
    let read = c.call("forum.read_thread", args.clone()).await;
    assert!(read.allowed(), "{read:?}");

    cluster.stop();
    let refused = c.call("forum.read_thread", args.clone()).await;
    assert!(refused.is_error(), "{refused:?}");
    let why = refused.text();
    assert!(
        why.contains("the store is unavailable") || why.contains("could not be recorded"),
        "{why}"
    );
    assert!(!why.contains("Login to staging"), "{why}");
    assert_eq!(refused.result()["structuredContent"]["decision"], "deny");

    // Back: within seconds, the same session is served again, by the same process.
    cluster.start();
    let back = Instant::now();
    loop {
        let a = c.call("forum.read_thread", args.clone()).await;
        if a.allowed() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "still refused {:?} after the store came back: {a:?}\n{}",
            back.elapsed(),
            server.said()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(server.running(), "{}", server.said());
    // A new session too.
    let mut fresh = session(&server, "Read T-1042 after the outage").await;
    let read = fresh.call("forum.read_thread", args).await;
    assert!(read.allowed(), "{read:?}");
    drop(server);
    assert_chain_verifies(&cluster.url());
}
