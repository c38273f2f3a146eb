//! Load test: the latency Warden adds to a `tools/call`, against the same call made directly to
//! the same upstream, side by side in one run, over streamable HTTP and stdio, at 1, 16 and 64
//! concurrent clients (each its own MCP session, each making its calls back to back).
//!
//! ```text
//! cargo build --release -p warden -p warden-acme
//! cargo bench -p warden-mcp --bench load
//! cargo bench -p warden-mcp --bench load -- --calls 20000 --clients 1,16,64 \
//!     --transports http,stdio --logs memory,shm,disk --secs 60 --warmup 2000 [--reference]
//! ```
//!
//! `--workers N` runs `warden serve --workers N` (default: one worker thread per core).
//!
//! `--warden-cpus LIST` runs every `warden` process under `taskset -c LIST` and this process (the
//! clients) and the upstreams on the other CPUs, as when Warden has cores of its own. Without it
//! everything shares every core, and at 16 and 64 clients the added latency is mostly the
//! clients' and the upstream's queueing behind Warden's CPU.
//!
//! `--reference` adds HTTP rows that are not part of the comparison but explain it: rmcp's
//! default HTTP client opens a new TCP connection per request (it disables pooling because a
//! reused connection stalls ~40 ms on delayed ACKs); the reference rows use a pooled client,
//! and an in-process Acme server whose sockets set TCP_NODELAY.
//! It also runs a bare TCP relay (no HTTP, no policy, no log; on Warden's CPUs with
//! `--warden-cpus`) in front of the same upstream: what one more hop costs before any work.
//!
//! The upstream is the Acme reference server (`target/release/acme-mcp --server forum`) and the
//! call is `list_threads {"channel": "eng-help"}` (a cheap read). The Warden configuration is
//! `tests/load/warden.toml`: the Acme policy pack, catalog, 12,200-user directory and labels, with
//! a larger call budget so one session can make a whole run. Every call through Warden is a real
//! decided allow (checked: every result must not be `isError`, and every decision-log entry of
//! the measured window must say `allow`), with flow analysis, output labelling, the mission's
//! state written to the store and the decision durably in the audit chain.
//!
//! - **HTTP.** One `acme-mcp --http 127.0.0.1:0` process serves both paths. Direct: each client
//!   opens its own MCP session on it. Warden: `target/release/warden serve` (one process per
//!   decision-log placement) with that URL as its `forum` upstream; each client authenticates
//!   with a bearer token and opens its own session.
//! - **stdio.** Direct: each client spawns its own `acme-mcp --server forum` child. Warden: each
//!   client spawns its own `warden proxy --config tests/load/warden.toml …`, which spawns its own
//!   `acme-mcp` child.
//! - **Store.** Every Warden run is made once per `--logs` placement: `memory` (the in-memory
//!   store, nothing durable: what Warden costs without the audit), `shm` (an SQLite store on
//!   tmpfs, `/dev/shm`) and `disk` (an SQLite store under `target/load/`), one store per `warden`
//!   process. The rows side by side are what the durable audit adds to one call.
//!
//! Per cell: warm-up (every client, `--warmup` calls in total), a barrier, then `--calls` calls in
//! total split over the clients, each loop bounded by count and by `--secs`. Latency is measured
//! per call in the client; throughput is calls over the wall time of the measured window; CPU is
//! read from `/proc/PID/stat` of the warden process(es), the upstream process(es) and this
//! process (the clients) at the start and end of the window.
//!
//! A breakdown follows, measured in process without MCP: `Engine::decide`, serializing the log
//! entry, `commit` + `absorb` of the real `list_threads` output, and `Store::append` (SQLite) on tmpfs
//! and on disk (1 and 16 writers).
//!
//! Under `cargo test --benches` (no `--bench` argument) only a short breakdown runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    clippy::too_many_arguments
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResponse, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{Peer, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Config, Engine, Sources};
use warden_store::{AuditColumns, AuditConfig, AuditInput, AuditKind, Store};

const AGENT: &str = "forum-helper";
const PRINCIPAL: &str = "alice";
const MISSION: &str = "answer-forum-question";
const PURPOSE: &str = "Help me answer Bob's question in T-1042";
const TOKEN_ENV: &str = "WARDEN_TOKEN_FORUM_HELPER";
const TOKEN: &str = "load-test-token-forum-helper-0123456789";
const CHANNEL: &str = "eng-help";

/// One call may take at most this long; past it the client stops (and the cell is flagged).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Warm-up of one cell may take at most this long.
const WARMUP_LIMIT: Duration = Duration::from_secs(30);
/// Starting a process or opening a session may take at most this long.
const START_LIMIT: Duration = Duration::from_secs(120);

type Client = RunningService<RoleClient, ()>;

/// Every process the bench started, checked for leftovers at the end.
static SPAWNED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    Http,
    Stdio,
}

impl Net {
    fn name(self) -> &'static str {
        match self {
            Net::Http => "HTTP",
            Net::Stdio => "stdio",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The in-memory store (`memory:`): nothing durable, the reference for what the audit costs.
    Memory,
    Shm,
    Disk,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Memory => "memory",
            Place::Shm => "tmpfs",
            Place::Disk => "disk",
        }
    }

    /// The `--store` of a Warden whose store file would be `path`.
    fn url(self, path: &Path) -> String {
        match self {
            Place::Memory => "memory:".to_string(),
            _ => store_url(path),
        }
    }

    /// The store files to read decisions from after a run (none in memory: another process's).
    fn readable(self, paths: Vec<PathBuf>) -> Vec<PathBuf> {
        match self {
            Place::Memory => Vec::new(),
            _ => paths,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    /// HTTP only: direct, with a reqwest client that keeps connections alive (rmcp's default
    /// client opens a new TCP connection per request). A reference for what pooling would save
    /// on Warden's upstream hop; not one of the compared paths.
    DirectPooled,
    /// HTTP only, with `--reference`: an in-process Acme server whose sockets set TCP_NODELAY,
    /// with rmcp's default client (`false`) or a pooled one (`true`).
    NoDelay(bool),
    /// HTTP only, with `--reference`: Warden (log on the first placement) with a pooled client.
    WardenPooled(Place),
    Warden(Place),
    /// HTTP only, with `--held N`: Warden while N other calls of other sessions wait for an
    /// approval (each held call is waiting on the store's change feed the whole window).
    WardenHeld(Place, usize),
    /// HTTP only, with `--reference`: a bare TCP relay in front of the same upstream (no HTTP,
    /// no policy, no log), on Warden's CPUs: what one more hop costs on this machine; with
    /// rmcp's default client (`false`) or a pooled one (`true`).
    Relay(bool),
}

impl Route {
    fn name(self) -> String {
        match self {
            Route::Direct => "direct".into(),
            Route::DirectPooled => "reference: direct, pooled HTTP client".into(),
            Route::NoDelay(false) => "reference: in-process Acme with TCP_NODELAY".into(),
            Route::NoDelay(true) => {
                "reference: in-process Acme with TCP_NODELAY, pooled HTTP client".into()
            }
            Route::Warden(p) => format!("Warden, log on {}", p.name()),
            Route::WardenHeld(p, n) => {
                format!(
                    "Warden, log on {}, {n} calls held for approval meanwhile",
                    p.name()
                )
            }
            Route::Relay(false) => "reference: bare TCP relay, no policy".into(),
            Route::Relay(true) => "reference: bare TCP relay, no policy, pooled HTTP client".into(),
            Route::WardenPooled(p) => {
                format!("reference: Warden, log on {}, pooled HTTP client", p.name())
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Opts {
    calls: usize,
    warmup: usize,
    clients: Vec<usize>,
    nets: Vec<Net>,
    places: Vec<Place>,
    secs: f64,
    breakdown_calls: usize,
    reference: bool,
    /// `warden serve --workers`; `None` leaves Warden's default (one per core).
    workers: Option<usize>,
    /// `--held N`: an HTTP row per placement with N calls held for approval meanwhile.
    held: usize,
    /// `--warden-cpus LIST`: Warden runs on these CPUs (`taskset -c LIST`) and this process,
    /// its clients and the upstream on the others, as on a machine of Warden's own.
    warden_cpus: Option<String>,
}

fn parse_opts() -> Option<Opts> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        return None;
    }
    let mut o = Opts {
        calls: 20_000,
        warmup: 2_000,
        clients: vec![1, 16, 64],
        nets: vec![Net::Http, Net::Stdio],
        places: vec![Place::Shm, Place::Disk],
        secs: 60.0,
        breakdown_calls: 20_000,
        reference: false,
        workers: None,
        warden_cpus: None,
        held: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--calls" => o.calls = val().parse().expect("--calls N"),
            "--warmup" => o.warmup = val().parse().expect("--warmup N"),
            "--secs" => o.secs = val().parse().expect("--secs S"),
            "--breakdown" => o.breakdown_calls = val().parse().expect("--breakdown N"),
            "--reference" => o.reference = true,
            "--workers" => o.workers = Some(val().parse().expect("--workers N")),
            "--warden-cpus" => o.warden_cpus = Some(val()),
            "--held" => o.held = val().parse().expect("--held N"),
            "--clients" => {
                o.clients = val()
                    .split(',')
                    .map(|s| s.trim().parse().expect("--clients 1,16,64"))
                    .collect()
            }
            "--transports" => {
                o.nets = val()
                    .split(',')
                    .map(|s| match s.trim() {
                        "http" => Net::Http,
                        "stdio" => Net::Stdio,
                        other => panic!("unknown transport `{other}` (http, stdio)"),
                    })
                    .collect()
            }
            "--logs" => {
                o.places = val()
                    .split(',')
                    .map(|s| match s.trim() {
                        "memory" => Place::Memory,
                        "shm" | "tmpfs" => Place::Shm,
                        "disk" => Place::Disk,
                        other => panic!("unknown store placement `{other}` (memory, shm, disk)"),
                    })
                    .collect()
            }
            _ => {}
        }
    }
    Some(o)
}

// ---------------------------------------------------------------------------------------------
// Paths, processes, CPU

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `target/release` (the bench runs from `target/release/deps`).
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (ppid, utime + stime in ticks) of a process.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ppid = f.get(1)?.parse().ok()?;
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ppid, ticks))
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| proc_stat(*p))
        .map(|(_, t)| t)
        .sum()
}

/// Child processes of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                if proc_stat(p).map(|(pp, _)| pp) == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Keep the last lines a child writes on stderr (for diagnostics); send the first line
/// containing `serving http://` to `url`.
fn drain_stderr<R>(
    stderr: R,
    tail: Arc<Mutex<Vec<String>>>,
    url: Option<tokio::sync::oneshot::Sender<String>>,
) where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut url = url;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(i) = line.find("serving http://") {
                if let Some(tx) = url.take() {
                    let u = line[i + "serving ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(u);
                }
            }
            let mut t = tail.lock().unwrap();
            if t.len() >= 50 {
                t.remove(0);
            }
            t.push(line);
        }
    });
}

/// A long-lived server process (HTTP) whose URL is read from its stderr.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    url: String,
    tail: Arc<Mutex<Vec<String>>>,
}

async fn start_server(mut cmd: tokio::process::Command, what: &str) -> Server {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id().expect("pid");
    SPAWNED.lock().unwrap().push(pid);
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    drain_stderr(child.stderr.take().expect("stderr"), tail.clone(), Some(tx));
    let url = match tokio::time::timeout(START_LIMIT, rx).await {
        Ok(Ok(u)) => u,
        _ => panic!(
            "{what} did not start; its stderr:\n{}",
            tail.lock().unwrap().join("\n")
        ),
    };
    Server {
        child,
        pid,
        url,
        tail,
    }
}

impl Server {
    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Clients

fn tool_args() -> JsonObject {
    let Value::Object(m) = json!({ "channel": CHANNEL }) else {
        unreachable!()
    };
    m
}

async fn connect_http(url: &str, warden: bool, pooled: bool) -> Client {
    let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if warden {
        let mut h = HashMap::new();
        h.insert(
            http::HeaderName::from_static("x-warden-principal"),
            http::HeaderValue::from_static(PRINCIPAL),
        );
        h.insert(
            http::HeaderName::from_static("x-warden-mission"),
            http::HeaderValue::from_static(MISSION),
        );
        h.insert(
            http::HeaderName::from_static("x-warden-purpose"),
            http::HeaderValue::from_static(PURPOSE),
        );
        cfg = cfg.auth_header(TOKEN).custom_headers(h);
    }
    let t = if pooled {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client");
        StreamableHttpClientTransport::with_client(client, cfg)
    } else {
        StreamableHttpClientTransport::from_config(cfg)
    };
    tokio::time::timeout(START_LIMIT, ().serve(t))
        .await
        .expect("HTTP session: timed out")
        .unwrap_or_else(|e| panic!("HTTP session with {url}: {e}"))
}

/// Calls held for approval, each in a session of its own, waiting while the window runs.
struct Held {
    clients: Vec<Client>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Open `k` sessions on Warden at `url` and make in each a call that is held for approval (a
/// reply under the principal's name: act-as consent), each with other words, so each waits on a
/// request of its own; returns once every request is made (2 s after the last call).
async fn hold_calls(url: &str, k: usize) -> Held {
    let mut clients = Vec::with_capacity(k);
    let mut tasks = Vec::with_capacity(k);
    for i in 0..k {
        let c = connect_http(url, true, false).await;
        let peer = c.peer().clone();
        let Value::Object(args) = json!({
            "channel": CHANNEL,
            "thread_id": "T-1042",
            "as_user": PRINCIPAL,
            "body": format!("Held reply number {i}: try resetting your password."),
        }) else {
            unreachable!()
        };
        tasks.push(tokio::spawn(async move {
            let r = peer
                .call_tool(CallToolRequestParams::new("forum.post_reply").with_arguments(args))
                .await;
            eprintln!("    a held call ended: {:?}", r.map(|r| r.content));
        }));
        clients.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    Held { clients, tasks }
}

/// A stdio client with its child process (pid) and the child's stderr tail.
struct StdioClient {
    client: Client,
    pid: u32,
    tail: Arc<Mutex<Vec<String>>>,
}

async fn connect_stdio(mut cmd: tokio::process::Command, what: String) -> StdioClient {
    cmd.kill_on_drop(true);
    let (proc, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = proc.id().expect("pid");
    SPAWNED.lock().unwrap().push(pid);
    let tail = Arc::new(Mutex::new(Vec::new()));
    if let Some(s) = stderr {
        drain_stderr(s, tail.clone(), None);
    }
    let client = match tokio::time::timeout(START_LIMIT, ().serve(proc)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "{what}: MCP handshake failed: {e}; stderr:\n{}",
            tail.lock().unwrap().join("\n")
        ),
        Err(_) => panic!("{what}: no MCP handshake within {START_LIMIT:?}"),
    };
    StdioClient { client, pid, tail }
}

/// Start `n` stdio clients, at most 8 at a time.
async fn connect_stdio_many(
    n: usize,
    make: impl Fn(usize) -> (tokio::process::Command, String),
) -> Vec<StdioClient> {
    let mut out: Vec<Option<StdioClient>> = (0..n).map(|_| None).collect();
    let mut set = JoinSet::new();
    for i in 0..n {
        if set.len() >= 8 {
            let (j, c) = set.join_next().await.unwrap().unwrap();
            out[j] = Some(c);
        }
        let (cmd, what) = make(i);
        set.spawn(async move { (i, connect_stdio(cmd, what).await) });
    }
    while let Some(r) = set.join_next().await {
        let (j, c) = r.unwrap();
        out[j] = Some(c);
    }
    out.into_iter().map(Option::unwrap).collect()
}

async fn close_all(clients: Vec<Client>) {
    let mut set = JoinSet::new();
    for c in clients {
        set.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.cancel()).await;
        });
    }
    while set.join_next().await.is_some() {}
}

/// One call: `Ok(bytes of text)` for a result that is not `isError`.
async fn one(peer: &Peer<RoleClient>, tool: &str, args: &JsonObject) -> Result<usize, String> {
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args.clone());
    match tokio::time::timeout(CALL_TIMEOUT, peer.call_tool_once(params)).await {
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("transport: {e}")),
        Ok(Ok(CallToolResponse::Complete(r))) => {
            let text: usize = r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.len()))
                .sum();
            if r.is_error == Some(true) {
                let t: Vec<String> = r
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                    .collect();
                Err(format!("isError: {}", t.join(" ")))
            } else {
                Ok(text)
            }
        }
        Ok(Ok(other)) => Err(format!("unexpected response {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Measurement

#[derive(Debug, Default)]
struct DecisionStats {
    entries: usize,
    allowed: usize,
    /// `elapsed_us` of each entry, sorted.
    elapsed_us: Vec<u64>,
}

#[derive(Debug, Default)]
struct Measured {
    /// Latency of each successful measured call, ns, sorted.
    lat: Vec<u64>,
    wall: Duration,
    errors: usize,
    warmup_errors: usize,
    first_error: Option<String>,
    stopped_by_time: bool,
    result_bytes: usize,
    /// CPU seconds in the measured window.
    warden_cpu: Option<f64>,
    upstream_cpu: f64,
    client_cpu: f64,
    /// Resident memory of the warden process(es) at the end of the window, MiB.
    warden_rss_mib: Option<f64>,
    decisions: Option<DecisionStats>,
}

impl Measured {
    fn ok(&self) -> usize {
        self.lat.len()
    }

    fn pct(&self, p: f64) -> f64 {
        pct(&self.lat, p) / 1000.0
    }

    fn mean_us(&self) -> f64 {
        if self.lat.is_empty() {
            return f64::NAN;
        }
        self.lat.iter().sum::<u64>() as f64 / self.lat.len() as f64 / 1000.0
    }

    fn rate(&self) -> f64 {
        self.ok() as f64 / self.wall.as_secs_f64()
    }

    fn valid(&self) -> bool {
        self.errors == 0 && self.warmup_errors == 0 && self.first_error.is_none()
    }
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// What to watch while a cell runs.
struct Probe {
    warden: Vec<u32>,
    upstream: Vec<u32>,
    logs: Vec<PathBuf>,
}

/// The `sqlite://` URL of a store file.
fn store_url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

/// Remove a store file and its journal and checkpoints.
fn remove_store(p: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
    }
    if let Some(dir) = p.parent() {
        let _ = std::fs::remove_file(dir.join("warden-checkpoints.jsonl"));
    }
}

/// A store file opened to read (no checkpoints written from here).
async fn open_store(p: &Path) -> Option<Arc<dyn Store>> {
    let config = AuditConfig {
        checkpoint_every: 0,
        checkpoint_seconds: 0,
        ..AuditConfig::default()
    };
    warden_store::open_with(&store_url(p), config).await.ok()
}

/// The last audit record's sequence number in the store file `p` (0 if none).
async fn tail_seq(p: &Path) -> u64 {
    match open_store(p).await {
        Some(s) => s.audit_tail_seq().await.unwrap_or(0),
        None => 0,
    }
}

/// The decisions recorded in the store file `path` after record `offset`.
async fn read_decisions(path: &Path, offset: u64, into: &mut DecisionStats) {
    let Some(store) = open_store(path).await else {
        return;
    };
    let mut from = offset + 1;
    loop {
        let Ok(page) = store.audit_range(from, warden_store::MAX_PAGE).await else {
            return;
        };
        let Some(last) = page.last().map(|r| r.seq) else {
            return;
        };
        for r in page {
            // What came of each forward is recorded beside its decision; only decisions count.
            if r.kind != AuditKind::Decision {
                continue;
            }
            into.entries += 1;
            if r.columns.outcome.as_deref() == Some("allow") {
                into.allowed += 1;
            }
            if let Some(us) = r.body.get("elapsed_us").and_then(Value::as_u64) {
                into.elapsed_us.push(us);
            }
        }
        from = last + 1;
    }
}

/// Warm up every client, then make `total` calls split over them, back to back, each client
/// bounded by its count and by `limit`.
async fn drive(
    peers: Vec<Peer<RoleClient>>,
    tool: &str,
    warmup: usize,
    total: usize,
    limit: Duration,
    probe: &Probe,
    tck: f64,
) -> Measured {
    let n = peers.len();
    let warm_each = warmup.div_ceil(n).max(5);
    let calls_each = total.div_ceil(n);
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut set = JoinSet::new();
    for peer in peers {
        let barrier = barrier.clone();
        let tool = tool.to_string();
        set.spawn(async move {
            let args = tool_args();
            let mut first_error = None;
            let mut warm_errors = 0usize;
            let mut bytes = 0usize;
            let until = Instant::now() + WARMUP_LIMIT;
            for _ in 0..warm_each {
                if Instant::now() >= until {
                    break;
                }
                match one(&peer, &tool, &args).await {
                    Ok(b) => bytes = b,
                    Err(e) => {
                        warm_errors += 1;
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
            // Two barriers: every warm-up is over (the coordinator takes its snapshots), then go.
            barrier.wait().await;
            barrier.wait().await;
            let deadline = Instant::now() + limit;
            let mut lat = Vec::with_capacity(calls_each);
            let mut errors = 0usize;
            let mut by_time = false;
            if warm_errors == 0 {
                for _ in 0..calls_each {
                    if Instant::now() >= deadline {
                        by_time = true;
                        break;
                    }
                    let t = Instant::now();
                    let r = one(&peer, &tool, &args).await;
                    let dt = t.elapsed();
                    match r {
                        Ok(_) => lat.push(dt.as_nanos() as u64),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                            break;
                        }
                    }
                }
            }
            (lat, errors, warm_errors, first_error, by_time, bytes)
        });
    }
    barrier.wait().await;
    let mut offsets: Vec<u64> = Vec::new();
    for p in &probe.logs {
        offsets.push(tail_seq(p).await);
    }
    let me = std::process::id();
    let w0 = cpu_ticks(&probe.warden);
    let u0 = cpu_ticks(&probe.upstream);
    let c0 = cpu_ticks(&[me]);
    let t0 = Instant::now();
    barrier.wait().await;
    let mut m = Measured::default();
    while let Some(r) = set.join_next().await {
        let (lat, errors, warm_errors, first_error, by_time, bytes) = r.expect("client task");
        m.lat.extend(lat);
        m.errors += errors;
        m.warmup_errors += warm_errors;
        if m.first_error.is_none() {
            m.first_error = first_error;
        }
        m.stopped_by_time |= by_time;
        m.result_bytes = m.result_bytes.max(bytes);
    }
    m.wall = t0.elapsed();
    let w1 = cpu_ticks(&probe.warden);
    let u1 = cpu_ticks(&probe.upstream);
    let c1 = cpu_ticks(&[me]);
    if !probe.warden.is_empty() {
        m.warden_cpu = Some(w1.saturating_sub(w0) as f64 / tck);
    }
    m.upstream_cpu = u1.saturating_sub(u0) as f64 / tck;
    if !probe.warden.is_empty() {
        m.warden_rss_mib =
            Some(probe.warden.iter().map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0);
    }
    m.client_cpu = c1.saturating_sub(c0) as f64 / tck;
    if !probe.logs.is_empty() {
        let mut d = DecisionStats::default();
        for (p, off) in probe.logs.iter().zip(offsets) {
            read_decisions(p, off, &mut d).await;
        }
        d.elapsed_us.sort_unstable();
        m.decisions = Some(d);
    }
    m.lat.sort_unstable();
    m
}

// ---------------------------------------------------------------------------------------------
// The runs

struct Cell {
    net: Net,
    clients: usize,
    route: Route,
    m: Measured,
}

struct Env {
    repo: PathBuf,
    warden: PathBuf,
    acme: PathBuf,
    shm_dir: PathBuf,
    disk_dir: PathBuf,
    tck: f64,
}

impl Env {
    fn log_dir(&self, p: Place) -> &Path {
        match p {
            Place::Memory | Place::Shm => &self.shm_dir,
            Place::Disk => &self.disk_dir,
        }
    }
}

fn progress(cell: &Cell) {
    let m = &cell.m;
    let mut s = format!(
        "  {:<5} {:>2} clients  {:<22} {:>6} calls in {:>6.2} s  p50 {:>8.1} µs  p99 {:>8.1} µs  mean {:>8.1} µs  {:>8.0} calls/s",
        cell.net.name(),
        cell.clients,
        cell.route.name(),
        m.ok(),
        m.wall.as_secs_f64(),
        m.pct(50.0),
        m.pct(99.0),
        m.mean_us(),
        m.rate()
    );
    if let Some(c) = m.warden_cpu {
        let _ = write!(s, "  warden CPU {c:.2} s");
    }
    if let Some(d) = &m.decisions {
        let _ = write!(
            s,
            "  log {}/{} allow, decide p50 {} µs",
            d.allowed,
            d.entries,
            pct(&d.elapsed_us, 50.0)
        );
    }
    if m.stopped_by_time {
        s.push_str("  [time limit]");
    }
    if let Some(e) = &m.first_error {
        let _ = write!(
            s,
            "\n    ERROR ({} errors): {e}",
            m.errors + m.warmup_errors
        );
    }
    eprintln!("{s}");
}

fn http_config(env: &Env, upstream: &str) -> PathBuf {
    let text = std::fs::read_to_string(env.repo.join("tests/load/warden.toml")).expect("config");
    let abs = text.replace("\"../../", &format!("\"{}/", env.repo.display()));
    let (head, rest) = abs.split_once("# BEGIN servers").expect("BEGIN servers");
    let (_, tail) = rest.split_once("# END servers").expect("END servers");
    let out = format!(
        "{head}# BEGIN servers (generated by the load bench)\n[servers.forum]\nurl = \"{upstream}\"\n# END servers{tail}"
    );
    let dir = env.repo.join("target/load");
    std::fs::create_dir_all(&dir).expect("target/load");
    let path = dir.join("warden-http.toml");
    std::fs::write(&path, out).expect("write config");
    path
}

/// The `warden` command, under `taskset -c LIST` with `--warden-cpus` (taskset execs it, so the
/// process id is Warden's).
fn warden_command(env: &Env, o: &Opts) -> tokio::process::Command {
    match &o.warden_cpus {
        Some(cpus) => {
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.args(["-c", cpus]).arg(&env.warden);
            cmd
        }
        None => tokio::process::Command::new(&env.warden),
    }
}

/// A bare TCP relay to `upstream` (`host:port`) on its own thread and single-threaded runtime,
/// pinned to `cpus` when given: one more hop with nothing done on it.
fn start_relay(upstream: String, cpus: Option<String>) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Some(cpus) = cpus {
            // "/proc/thread-self" links to "PID/task/TID".
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .expect("thread id");
            let ok = std::process::Command::new("taskset")
                .args(["-p", "-c", &cpus, &tid])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "taskset could not pin the relay");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("relay runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("relay bind");
            tx.send(l.local_addr().expect("relay addr"))
                .expect("relay addr");
            while let Ok((mut down, _)) = l.accept().await {
                let up = upstream.clone();
                tokio::spawn(async move {
                    let _ = down.set_nodelay(true);
                    let Ok(mut upc) = tokio::net::TcpStream::connect(&up).await else {
                        return;
                    };
                    let _ = upc.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut upc).await;
                });
            }
        });
    });
    rx.recv().expect("relay started")
}

/// Keep this process (the clients) and the upstreams it starts off Warden's CPUs.
fn pin_off(cpus: &str) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warden: Vec<usize> = cpus
        .split(',')
        .flat_map(|r| match r.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().expect("--warden-cpus")
                ..=b.trim().parse().expect("--warden-cpus"))
                .collect::<Vec<_>>(),
            None => vec![r.trim().parse().expect("--warden-cpus 1 or 1-3")],
        })
        .collect();
    let rest: Vec<String> = (0..n)
        .filter(|c| !warden.contains(c))
        .map(|c| c.to_string())
        .collect();
    assert!(
        !rest.is_empty(),
        "--warden-cpus leaves no CPU for the clients and the upstream"
    );
    let ok = std::process::Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &rest.join(","),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset could not pin the load generator");
    eprintln!(
        "Warden on CPU {cpus}; clients and upstreams on CPU {}",
        rest.join(",")
    );
}

async fn run_http(env: &Env, o: &Opts, cells: &mut Vec<Cell>) {
    let mut acme_cmd = tokio::process::Command::new(&env.acme);
    acme_cmd.args(["--server", "forum", "--http", "127.0.0.1:0"]);
    let acme = start_server(acme_cmd, "acme-mcp --http").await;
    let upstream = acme.url.clone();
    eprintln!("HTTP upstream: {upstream} (pid {})", acme.pid);
    let config = http_config(env, &upstream);
    // The bare relay is a reference row: started only with `--reference`.
    let relay_url = if o.reference {
        let up = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("upstream address")
            .to_string();
        format!("http://{}/mcp", start_relay(up, o.warden_cpus.clone()))
    } else {
        String::new()
    };
    // Reference server: Acme in process, TCP_NODELAY on every accepted socket.
    let nodelay_cancel = tokio_util::sync::CancellationToken::new();
    let nodelay_url = {
        use axum::serve::ListenerExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = warden_acme::router(
            warden_acme::AcmeServer::only("forum").expect("forum"),
            nodelay_cancel.child_token(),
            false,
        );
        // `LOAD_NODELAY=0` leaves Nagle on, to show that it causes the 40 ms stalls.
        let nodelay = std::env::var("LOAD_NODELAY").map_or(true, |v| v != "0");
        let listener = listener.tap_io(move |tcp| {
            let _ = tcp.set_nodelay(nodelay);
        });
        let stop = nodelay_cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        format!("http://{addr}/mcp")
    };
    let mut wardens: Vec<(Place, Server, PathBuf)> = Vec::new();
    for &place in &o.places {
        let log = env.log_dir(place).join("http-serve.db");
        remove_store(&log);
        let mut cmd = warden_command(env, o);
        cmd.arg("serve")
            .arg("--insecure-identity")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--store")
            .arg(place.url(&log))
            .env(TOKEN_ENV, TOKEN);
        if let Some(n) = o.workers {
            cmd.args(["--workers", &n.to_string()]);
        }
        let s = start_server(cmd, "warden serve").await;
        eprintln!(
            "Warden (log on {}): {} (pid {}), log {}",
            place.name(),
            s.url,
            s.pid,
            log.display()
        );
        wardens.push((place, s, log));
    }
    for &n in &o.clients {
        let mut routes = vec![Route::Direct];
        routes.extend(o.places.iter().map(|p| Route::Warden(*p)));
        if o.held > 0 {
            routes.extend(o.places.iter().map(|p| Route::WardenHeld(*p, o.held)));
        }
        if o.reference {
            routes.extend([
                Route::DirectPooled,
                Route::NoDelay(false),
                Route::NoDelay(true),
            ]);
            routes.extend(o.places.first().map(|p| Route::WardenPooled(*p)));
            routes.extend([Route::Relay(false), Route::Relay(true)]);
        }
        for route in routes {
            let (url, tool, probe) = match route {
                Route::Relay(_) => (
                    relay_url.clone(),
                    "list_threads",
                    Probe {
                        warden: vec![],
                        upstream: vec![acme.pid],
                        logs: vec![],
                    },
                ),
                Route::NoDelay(_) => (
                    nodelay_url.clone(),
                    "list_threads",
                    Probe {
                        warden: vec![],
                        upstream: vec![],
                        logs: vec![],
                    },
                ),
                Route::Direct | Route::DirectPooled => (
                    upstream.clone(),
                    "list_threads",
                    Probe {
                        warden: vec![],
                        upstream: vec![acme.pid],
                        logs: vec![],
                    },
                ),
                Route::Warden(place) | Route::WardenPooled(place) | Route::WardenHeld(place, _) => {
                    let (_, s, log) = wardens.iter().find(|(p, _, _)| *p == place).unwrap();
                    (
                        s.url.clone(),
                        "forum.list_threads",
                        Probe {
                            warden: vec![s.pid],
                            upstream: vec![acme.pid],
                            logs: place.readable(vec![log.clone()]),
                        },
                    )
                }
            };
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                clients.push(
                    connect_http(
                        &url,
                        matches!(
                            route,
                            Route::Warden(_) | Route::WardenPooled(_) | Route::WardenHeld(..)
                        ),
                        matches!(
                            route,
                            Route::DirectPooled
                                | Route::NoDelay(true)
                                | Route::WardenPooled(_)
                                | Route::Relay(true)
                        ),
                    )
                    .await,
                );
            }
            let peers = clients.iter().map(|c| c.peer().clone()).collect();
            // Reference rows only explain the others: at most 10 s each.
            let secs = match route {
                Route::DirectPooled
                | Route::NoDelay(_)
                | Route::WardenPooled(_)
                | Route::Relay(_) => o.secs.min(10.0),
                _ => o.secs,
            };
            let held = match route {
                Route::WardenHeld(_, k) => Some(hold_calls(&url, k).await),
                _ => None,
            };
            let m = drive(
                peers,
                tool,
                o.warmup,
                o.calls,
                Duration::from_secs_f64(secs),
                &probe,
                env.tck,
            )
            .await;
            close_all(clients).await;
            if let Some(held) = held {
                let waiting = held.tasks.iter().filter(|t| !t.is_finished()).count();
                eprintln!(
                    "    {waiting} of {} held calls were still waiting for approval at the end of the window",
                    held.tasks.len()
                );
                assert_eq!(
                    waiting,
                    held.tasks.len(),
                    "a held call ended during the window"
                );
                for t in &held.tasks {
                    t.abort();
                }
                close_all(held.clients).await;
            }
            let cell = Cell {
                net: Net::Http,
                clients: n,
                route,
                m,
            };
            progress(&cell);
            if cell.m.first_error.is_some() {
                for (_, s, _) in &wardens {
                    eprintln!(
                        "    warden serve stderr:\n{}",
                        s.tail.lock().unwrap().join("\n")
                    );
                }
            }
            cells.push(cell);
        }
    }
    for (_, s, log) in wardens {
        s.stop().await;
        if log.starts_with(&env.shm_dir) {
            let _ = std::fs::remove_file(&log);
        }
    }
    acme.stop().await;
    nodelay_cancel.cancel();
}

async fn run_stdio(env: &Env, o: &Opts, cells: &mut Vec<Cell>) {
    let config = env.repo.join("tests/load/warden.toml");
    for &n in &o.clients {
        let mut routes = vec![Route::Direct];
        routes.extend(o.places.iter().map(|p| Route::Warden(*p)));
        for route in routes {
            let (clients, tool, probe) = match route {
                Route::Direct => {
                    let cs = connect_stdio_many(n, |i| {
                        let mut cmd = tokio::process::Command::new(&env.acme);
                        cmd.args(["--server", "forum"]);
                        (cmd, format!("acme-mcp #{i}"))
                    })
                    .await;
                    let upstream = cs.iter().map(|c| c.pid).collect();
                    (
                        cs,
                        "list_threads",
                        Probe {
                            warden: vec![],
                            upstream,
                            logs: vec![],
                        },
                    )
                }
                Route::DirectPooled
                | Route::NoDelay(_)
                | Route::WardenPooled(_)
                | Route::WardenHeld(..)
                | Route::Relay(_) => {
                    unreachable!("HTTP only")
                }
                Route::Warden(place) => {
                    let dir = env.log_dir(place).join(format!("stdio-{n}"));
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir).expect("log folder");
                    let logs: Vec<PathBuf> =
                        (0..n).map(|i| dir.join(format!("proxy-{i}.db"))).collect();
                    let cs = connect_stdio_many(n, |i| {
                        let mut cmd = warden_command(env, o);
                        cmd.arg("proxy")
                            .arg("--insecure-identity")
                            .arg("--config")
                            .arg(&config)
                            .args(["--agent", AGENT, "--principal", PRINCIPAL])
                            .args(["--mission", MISSION, "--purpose", PURPOSE])
                            .arg("--store")
                            .arg(place.url(&logs[i]))
                            .current_dir(&env.repo);
                        (cmd, format!("warden proxy #{i}"))
                    })
                    .await;
                    let warden: Vec<u32> = cs.iter().map(|c| c.pid).collect();
                    // Each proxy's upstream child is up once the proxy answered initialize.
                    let upstream: Vec<u32> = warden.iter().flat_map(|p| children_of(*p)).collect();
                    SPAWNED.lock().unwrap().extend(&upstream);
                    (
                        cs,
                        "forum.list_threads",
                        Probe {
                            warden,
                            upstream,
                            logs: place.readable(logs),
                        },
                    )
                }
            };
            let peers = clients.iter().map(|c| c.client.peer().clone()).collect();
            let m = drive(
                peers,
                tool,
                o.warmup,
                o.calls,
                Duration::from_secs_f64(o.secs),
                &probe,
                env.tck,
            )
            .await;
            if m.first_error.is_some() {
                if let Some(c) = clients.first() {
                    eprintln!(
                        "    child #0 stderr:\n{}",
                        c.tail.lock().unwrap().join("\n")
                    );
                }
            }
            close_all(clients.into_iter().map(|c| c.client).collect()).await;
            if let Route::Warden(Place::Shm) = route {
                let _ = std::fs::remove_dir_all(env.shm_dir.join(format!("stdio-{n}")));
            }
            let cell = Cell {
                net: Net::Stdio,
                clients: n,
                route,
                m,
            };
            progress(&cell);
            cells.push(cell);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Breakdown, in process

struct Files(PathBuf);

impl Sources for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.0.join(dir)).map_err(|e| e.to_string())? {
            let name = e.map_err(|e| e.to_string())?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(ext) {
                out.push(format!("{}/{name}", dir.trim_end_matches('/')));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn stats_line(name: &str, ns: &mut [u64]) -> String {
    ns.sort_unstable();
    let mean = if ns.is_empty() {
        f64::NAN
    } else {
        ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0
    };
    format!(
        "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
        ns.len(),
        pct(ns, 50.0) / 1000.0,
        pct(ns, 99.0) / 1000.0,
        pct(ns, 99.9) / 1000.0,
        mean
    )
}

/// Append `per_writer` decision records from each of `writers` tasks to an SQLite store at
/// `path`; per-append latencies (ns) and the appends per second.
fn store_appends(
    path: &Path,
    record: &AuditInput,
    writers: usize,
    per_writer: usize,
) -> (Vec<u64>, f64) {
    remove_store(path);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(async {
        let store = open_store(path).await.expect("open the store");
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..writers {
            let store = store.clone();
            let record = record.clone();
            set.spawn(async move {
                let mut v = Vec::with_capacity(per_writer);
                for _ in 0..per_writer {
                    let t = Instant::now();
                    store.append(vec![record.clone()]).await.expect("append");
                    v.push(t.elapsed().as_nanos() as u64);
                }
                v
            });
        }
        let mut all = Vec::new();
        while let Some(v) = set.join_next().await {
            all.extend(v.expect("writer"));
        }
        let rate = all.len() as f64 / t0.elapsed().as_secs_f64();
        (all, rate)
    });
    remove_store(path);
    out
}

fn breakdown(repo: &Path, shm_dir: &Path, disk_dir: &Path, n: usize) -> String {
    let dir = repo.join("tests/load");
    let text = std::fs::read_to_string(dir.join("warden.toml")).expect("tests/load/warden.toml");
    let t = Instant::now();
    let cfg = Config::load("warden.toml", &text, &Files(dir)).expect("load config");
    let engine = Engine::new(cfg);
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let now = warden_mcp::now_ms();
    let mission = engine
        .grant("m-load", MISSION, AGENT, PRINCIPAL, PURPOSE, now)
        .expect("grant");
    let acme = warden_acme::AcmeServer::only("forum").expect("forum");
    let output = acme
        .call("list_threads", Some(tool_args()))
        .expect("list_threads");
    let output = warden_mcp::gateway::result_text(&output);
    let mut state = SessionState::new("s-load", mission.id.clone());
    let mut usage = MissionUsage::default();
    let breakers = Breakers::default();
    let args = Value::Object(tool_args());
    let (mut decide, mut ser, mut absorb) = (Vec::new(), Vec::new(), Vec::new());
    // (first call, last call, decide ns, commit + absorb ns) per stretch of the session.
    let mut buckets: Vec<(usize, usize, Vec<u64>, Vec<u64>)> =
        [(1, 100), (1_001, 2_000), (10_001, 20_000)]
            .into_iter()
            .filter(|(a, _)| *a <= n)
            .map(|(a, b)| (a, b, Vec::new(), Vec::new()))
            .collect();
    let mut sample_entry = None;
    for i in 1..=n {
        let t0 = Instant::now();
        let d = engine.decide(
            Call::new("forum", "list_threads", args.clone()),
            &mission,
            &state,
            &usage,
            &breakers,
            now,
        );
        let t1 = Instant::now();
        let entry = AuditInput {
            kind: AuditKind::Decision,
            at_ms: d.decision.at_ms,
            columns: AuditColumns {
                decision_id: Some(d.decision.id.clone()),
                outcome: Some(d.decision.decision.as_str().to_string()),
                ..AuditColumns::default()
            },
            body: warden_enforce::decision_body(&d.decision, "decision", "bench"),
        };
        let bytes = warden_store::canonical_string(&entry.body).into_bytes();
        let t2 = Instant::now();
        let p = d
            .allowed
            .unwrap_or_else(|| panic!("call {i} not allowed: {:?}", d.decision.reasons));
        engine.commit(&d.decision, &mut state, &mut usage);
        engine.absorb(p.receipt(), &output, &mut state, &mut usage, now);
        let t3 = Instant::now();
        let dn = (t1 - t0).as_nanos() as u64;
        let an = (t3 - t2).as_nanos() as u64;
        decide.push(dn);
        ser.push((t2 - t1).as_nanos() as u64);
        absorb.push(an);
        for (a, b, v, w) in &mut buckets {
            if i >= *a && i <= *b {
                v.push(dn);
                w.push(an);
            }
        }
        if sample_entry.is_none() {
            sample_entry = Some((entry, bytes.len()));
        }
    }
    let (entry, entry_bytes) = sample_entry.expect("at least one call");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Engine load (tests/load/warden.toml): {load_ms:.0} ms. `list_threads` output: {} bytes; one decision-log line: {entry_bytes} bytes. One session, {n} calls; untrusted text kept after the run: {} bytes.\n",
        output.len(),
        state.untrusted_text.text.len()
    );
    out.push_str("| step (in process, one thread) | n | p50 µs | p99 µs | p99.9 µs | mean µs |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    out.push_str(&stats_line("`Engine::decide`", &mut decide));
    for (a, b, v, _) in &mut buckets {
        out.push_str(&stats_line(
            &format!("`Engine::decide`, calls {a}–{b} of the session"),
            v,
        ));
    }
    out.push_str(&stats_line("serialize the log entry", &mut ser));
    out.push_str(&stats_line(
        "`commit` + `absorb` (labels and detectors on the output)",
        &mut absorb,
    ));
    for (a, b, _, w) in &mut buckets {
        out.push_str(&stats_line(
            &format!("`commit` + `absorb`, calls {a}–{b} of the session"),
            w,
        ));
    }
    // The session's untrusted text is capped at 1 MiB: the push that passes the cap drops the
    // oldest quarter (moving the rest), so that cost comes once per 256 KiB appended.
    for (name, full) in [
        ("an empty buffer", false),
        (
            "a full (1 MiB) buffer: the push that cuts it, once per 256 KiB",
            true,
        ),
    ] {
        let mut v = Vec::new();
        for _ in 0..(n / 10).clamp(50, 2_000) {
            let mut t = warden_core::session::BoundedText::default();
            if full {
                // With spare capacity, as in a long session: only the drain moves bytes.
                let mut text = String::with_capacity(2 * warden_core::session::MAX_TEXT);
                text.push_str(&"x".repeat(warden_core::session::MAX_TEXT));
                t.text = text;
            }
            let t0 = Instant::now();
            t.push(&output);
            v.push(t0.elapsed().as_nanos() as u64);
            std::hint::black_box(&t);
        }
        out.push_str(&stats_line(
            &format!("`BoundedText::push` of the output into {name}"),
            &mut v,
        ));
    }
    // The gateway moves every decision-log append to tokio's blocking pool.
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let v = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..(n / 10).clamp(50, 2_000) {
                let t0 = Instant::now();
                tokio::task::spawn_blocking(|| std::hint::black_box(1))
                    .await
                    .expect("blocking");
                v.push(t0.elapsed().as_nanos() as u64);
            }
            v
        });
        let mut v = v;
        out.push_str(&stats_line(
            "`spawn_blocking` round trip (empty closure)",
            &mut v,
        ));
    }
    let appends = (n / 10).clamp(50, 2_000);
    let mut rates = String::new();
    for (place, dir) in [("tmpfs", shm_dir), ("disk", disk_dir)] {
        for threads in [1usize, 16] {
            let per = (appends / threads).max(10);
            let (mut v, rate) = store_appends(&dir.join("append-bench.db"), &entry, threads, per);
            out.push_str(&stats_line(
                &format!("`Store::append` (SQLite) on {place}, {threads} writer(s)"),
                &mut v,
            ));
            let _ = write!(rates, "{place}, {threads} writer(s): {rate:.0} appends/s; ");
        }
    }
    let _ = writeln!(out, "\nAudit append throughput: {rates}");
    out
}

// ---------------------------------------------------------------------------------------------
// Report

fn f(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

fn report(cells: &[Cell], o: &Opts) -> String {
    let mut out = String::new();
    out.push_str("| transport | clients | path | calls | p50 µs | p99 µs | mean µs | calls/s | added p50 µs | added p99 µs | decide p50/p99 µs | Warden CPU µs/call | Warden calls/s per core |\n");
    out.push_str(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for c in cells {
        let m = &c.m;
        let direct = cells
            .iter()
            .find(|d| d.net == c.net && d.clients == c.clients && d.route == Route::Direct)
            .map(|d| &d.m);
        let (added50, added99) = match (c.route, direct) {
            (Route::Warden(_) | Route::WardenHeld(..) | Route::Relay(false), Some(d)) => {
                (f(m.pct(50.0) - d.pct(50.0)), f(m.pct(99.0) - d.pct(99.0)))
            }
            _ => ("".into(), "".into()),
        };
        let decide = m
            .decisions
            .as_ref()
            .map(|d| {
                format!(
                    "{}/{}",
                    f(pct(&d.elapsed_us, 50.0)),
                    f(pct(&d.elapsed_us, 99.0))
                )
            })
            .unwrap_or_default();
        let (cpu_call, per_core) = match m.warden_cpu {
            Some(cpu) if m.ok() > 0 && cpu > 0.0 => (
                f(cpu * 1e6 / m.ok() as f64),
                format!("{:.0}", m.ok() as f64 / cpu),
            ),
            _ => ("".into(), "".into()),
        };
        let mut path = c.route.name();
        if !m.valid() {
            path.push_str(" **(errors)**");
        }
        if m.stopped_by_time {
            path.push_str(" (time limit)");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            c.net.name(),
            c.clients,
            path,
            m.ok(),
            f(m.pct(50.0)),
            f(m.pct(99.0)),
            f(m.mean_us()),
            m.rate(),
            added50,
            added99,
            decide,
            cpu_call,
            per_core
        );
    }
    out.push_str("\nCPU per call in the measured window (µs of CPU per call; the clients are this process):\n\n");
    out.push_str("| transport | clients | path | Warden | upstream | clients | total | wall s | Warden RSS MiB |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for c in cells {
        let m = &c.m;
        let per = |s: f64| f(s * 1e6 / m.ok().max(1) as f64);
        let w = m.warden_cpu.unwrap_or(0.0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            c.net.name(),
            c.clients,
            c.route.name(),
            m.warden_cpu.map(per).unwrap_or_default(),
            per(m.upstream_cpu),
            per(m.client_cpu),
            per(w + m.upstream_cpu + m.client_cpu),
            m.wall.as_secs_f64(),
            m.warden_rss_mib
                .map(|r| format!("{r:.0}"))
                .unwrap_or_default()
        );
    }
    let bad: Vec<&Cell> = cells.iter().filter(|c| !c.m.valid()).collect();
    if !bad.is_empty() {
        out.push_str("\nCells with errors:\n");
        for c in bad {
            let _ = writeln!(
                out,
                "- {} {} clients {}: {} errors; first: {}",
                c.net.name(),
                c.clients,
                c.route.name(),
                c.m.errors + c.m.warmup_errors,
                c.m.first_error.as_deref().unwrap_or("")
            );
        }
    }
    let not_allow: Vec<String> = cells
        .iter()
        .filter_map(|c| {
            let d = c.m.decisions.as_ref()?;
            (d.allowed != d.entries || d.entries < c.m.ok()).then(|| {
                format!(
                    "- {} {} clients {}: {} log entries, {} allow, {} calls",
                    c.net.name(),
                    c.clients,
                    c.route.name(),
                    d.entries,
                    d.allowed,
                    c.m.ok()
                )
            })
        })
        .collect();
    if !not_allow.is_empty() {
        out.push_str("\nDecision-log mismatches:\n");
        out.push_str(&not_allow.join("\n"));
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n{} calls per cell after {} warm-up calls; every loop bounded by {} s.",
        o.calls, o.warmup, o.secs
    );
    out
}

fn sh(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn machine(env: &Env) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let fs =
        |p: &Path| sh("df", &["--output=fstype", &p.display().to_string()]).replace("Type\n", "");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "Machine: {} CPUs ({model}), Linux {}, {}; load average at start: {}.\nDecision logs: {} ({}), {} ({}).",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        sh("uname", &["-r"]),
        sh("rustc", &["-V"]),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        env.shm_dir.display(),
        fs(&env.shm_dir),
        env.disk_dir.display(),
        fs(&env.disk_dir),
    )
}

fn main() {
    let repo = repo();
    let pid = std::process::id();
    let shm_root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let shm_dir = shm_root.join(format!("warden-load-{pid}"));
    let disk_dir = repo.join("target/load/logs");
    std::fs::create_dir_all(&shm_dir).expect("shm folder");
    std::fs::create_dir_all(&disk_dir).expect("disk log folder");

    let Some(o) = parse_opts() else {
        // `cargo test --benches`: a short in-process breakdown only.
        let b = breakdown(&repo, &shm_dir, &disk_dir, 50);
        let _ = std::fs::remove_dir_all(&shm_dir);
        println!("{b}");
        println!("(quick mode: run `cargo bench -p warden-mcp --bench load` for the load test)");
        return;
    };
    let release = release_dir();
    let env = Env {
        warden: release.join("warden"),
        acme: release.join("acme-mcp"),
        repo: repo.clone(),
        shm_dir: shm_dir.clone(),
        disk_dir: disk_dir.clone(),
        tck: clk_tck(),
    };
    for b in [&env.warden, &env.acme] {
        if !b.exists() {
            eprintln!(
                "load: `{}` is missing; build it first: cargo build --release -p warden -p warden-acme",
                b.display()
            );
            std::process::exit(2);
        }
    }
    let stale = |b: &Path| {
        std::fs::metadata(b)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| {
                let age = t.elapsed().unwrap_or_default();
                format!("{} (built {} s ago)", b.display(), age.as_secs())
            })
            .unwrap_or_default()
    };
    let command = format!(
        "cargo build --release -p warden -p warden-acme && cargo bench -p warden-mcp --bench load -- --calls {} --warmup {} --clients {} --transports {} --logs {} --secs {}",
        o.calls,
        o.warmup,
        o.clients.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        o.nets.iter().map(|n| n.name().to_lowercase()).collect::<Vec<_>>().join(","),
        o.places.iter().map(|p| match p { Place::Memory => "memory", Place::Shm => "shm", Place::Disk => "disk" }).collect::<Vec<_>>().join(","),
        o.secs
    ) + if o.reference { " --reference" } else { "" }
        + &o.workers.map(|n| format!(" --workers {n}")).unwrap_or_default()
        + &o.warden_cpus.as_ref().map(|c| format!(" --warden-cpus {c}")).unwrap_or_default();
    if let Some(cpus) = &o.warden_cpus {
        pin_off(cpus);
    }
    let machine = machine(&env);
    eprintln!("{machine}");
    eprintln!("Binaries: {}; {}", stale(&env.warden), stale(&env.acme));
    eprintln!("Command: {command}\n");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut cells = Vec::new();
    let started = Instant::now();
    rt.block_on(async {
        for net in &o.nets {
            match net {
                Net::Http => run_http(&env, &o, &mut cells).await,
                Net::Stdio => run_stdio(&env, &o, &mut cells).await,
            }
        }
    });
    drop(rt);
    let load_secs = started.elapsed().as_secs_f64();
    eprintln!("\nBreakdown ({} calls in process)…", o.breakdown_calls);
    let b = breakdown(&repo, &shm_dir, &disk_dir, o.breakdown_calls);
    let _ = std::fs::remove_dir_all(&shm_dir);
    // Every process the bench started (and the proxies' upstreams) must be gone.
    std::thread::sleep(Duration::from_millis(500));
    let leftovers: Vec<u32> = SPAWNED
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|p| {
            let exe = std::fs::read_link(format!("/proc/{p}/exe")).ok();
            exe.as_deref() == Some(env.warden.as_path())
                || exe.as_deref() == Some(env.acme.as_path())
        })
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "## MCP gateway load test\n");
    let _ = writeln!(md, "{machine}\n");
    let _ = writeln!(md, "Command: `{command}` (load phase {load_secs:.0} s)\n");
    md.push_str(&report(&cells, &o));
    let _ = writeln!(md, "\n### Where the time goes (in process, no MCP)\n");
    md.push_str(&b);
    if !leftovers.is_empty() {
        let _ = writeln!(
            md,
            "\nWARNING: child processes still running: {leftovers:?}"
        );
    }
    let out = repo.join("target/load/report.md");
    let _ = std::fs::write(&out, &md);
    println!("{md}");
    eprintln!("(also written to {})", out.display());
}
