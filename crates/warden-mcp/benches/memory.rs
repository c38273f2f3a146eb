//! Memory of one `warden proxy`, beside a bare rmcp stdio proxy, in the same run.
//!
//! ```text
//! cargo build --release -p warden -p warden-acme
//! cargo bench -p warden-mcp --bench memory
//! cargo bench -p warden-mcp --bench memory -- --calls 10000 --rounds 3
//! ```
//!
//! Stdio means one proxy process per client, so the memory of one process is what a host pays
//! per agent. Each proxy is started as an agent's client starts it (a child on stdio, with its
//! own `acme-mcp --server forum` child behind it), and its resident memory is read from
//! `/proc/PID/status` (the upstream child is not counted):
//!
//! - **idle**: after `initialize` and `tools/list`, and a second of rest;
//! - **under load**: at the end of `--calls` back-to-back `tools/call`s of `list_threads`
//!   (`forum.list_threads` through Warden, every one a decided, logged allow), and the peak
//!   (`VmHWM`) over the whole run.
//!
//! The bare proxy is this bench binary run again with `--bare-proxy`: an rmcp stdio server that
//! lists and calls the tools of an rmcp client of the same upstream child, with no policy, no
//! log and no state: the least any MCP proxy in Rust on rmcp holds. Warden is
//! `target/release/warden proxy --config tests/load/warden.toml` with the Acme policy pack,
//! catalog and 12,200-user directory, and its decision log on tmpfs.
//!
//! Under `cargo test --benches` (no `--bench` argument) it does nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, JsonObject, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;

const AGENT: &str = "forum-helper";
const PRINCIPAL: &str = "alice";
const MISSION: &str = "answer-forum-question";
const PURPOSE: &str = "Help me answer Bob's question in T-1042";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--bare-proxy") {
        rt.block_on(bare_proxy(args.get(1).expect("upstream program")));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let calls = opt("--calls", 10_000);
    let rounds = opt("--rounds", 3);
    rt.block_on(run(calls, rounds));
}

// ---------------------------------------------------------------------------------------------
// The bare proxy

/// The tools of the upstream, listed and called through, unchanged.
#[derive(Clone)]
struct Bare {
    upstream: Peer<RoleClient>,
}

fn relay_error(e: rmcp::service::ServiceError) -> ErrorData {
    ErrorData::internal_error(e.to_string(), None)
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.upstream.list_tools(request).await.map_err(relay_error)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.upstream
            .call_tool_once(request)
            .await
            .map_err(relay_error)
    }
}

async fn bare_proxy(program: &str) {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(["--server", "forum"]).kill_on_drop(true);
    let child = TokioChildProcess::new(cmd).expect("upstream child");
    let upstream = ().serve(child).await.expect("upstream handshake");
    let server = Bare {
        upstream: upstream.peer().clone(),
    }
    .serve(rmcp::transport::stdio())
    .await
    .expect("stdio server");
    let _ = server.waiting().await;
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// `target/release` (the bench runs from `target/release/deps`).
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps folder");
    deps.parent().expect("profile folder").to_path_buf()
}

/// VmRSS, VmHWM (KiB) and threads of a process.
fn memory(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("Threads:"))
}

struct Row {
    name: &'static str,
    idle: (u64, u64, u64),
    loaded: (u64, u64, u64),
    calls: usize,
}

async fn measure(
    name: &'static str,
    cmd: tokio::process::Command,
    tool: &str,
    calls: usize,
) -> Row {
    let mut cmd = cmd;
    cmd.kill_on_drop(true);
    let child = TokioChildProcess::new(cmd).unwrap_or_else(|e| panic!("{name}: {e}"));
    let pid = child.id().expect("pid");
    let client: RunningService<RoleClient, ()> =
        match tokio::time::timeout(Duration::from_secs(60), ().serve(child)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("{name}: handshake: {e}"),
            Err(_) => panic!("{name}: no handshake in 60 s"),
        };
    let listed = client.peer().list_all_tools().await.expect("tools/list");
    assert!(
        listed.iter().any(|t| t.name == tool),
        "{name} does not list {tool}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = memory(pid);
    let Some(args) = json!({ "channel": "eng-help" }).as_object().cloned() else {
        unreachable!()
    };
    let args: JsonObject = args;
    let mut ok = 0;
    for _ in 0..calls {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args.clone());
        match client.peer().call_tool_once(params).await {
            Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true) => ok += 1,
            other => panic!("{name}: {other:?}"),
        }
    }
    let loaded = memory(pid);
    let _ = client.cancel().await;
    Row {
        name,
        idle,
        loaded,
        calls: ok,
    }
}

async fn run(calls: usize, rounds: usize) {
    let release = release_dir();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root");
    let acme = release.join("acme-mcp");
    let warden = release.join("warden");
    for p in [&acme, &warden] {
        assert!(
            p.exists(),
            "{} is missing: cargo build --release -p warden -p warden-acme",
            p.display()
        );
    }
    let log_dir = Path::new("/dev/shm").join(format!("warden-memory-{}", std::process::id()));
    std::fs::create_dir_all(&log_dir).expect("log folder");
    println!("calls per proxy: {calls}; rounds: {rounds}; RSS in MiB, threads in the last column");
    println!(
        "{:<7} {:<12} {:>9} {:>12} {:>12} {:>8}",
        "round", "proxy", "idle RSS", "loaded RSS", "peak (HWM)", "threads"
    );
    for round in 1..=rounds {
        let mut bare = tokio::process::Command::new(std::env::current_exe().expect("exe"));
        bare.arg("--bare-proxy").arg(&acme);
        let mut proxy = tokio::process::Command::new(&warden);
        proxy
            .arg("proxy")
            .arg("--insecure-identity")
            .arg("--config")
            .arg(repo.join("tests/load/warden.toml"))
            .args(["--agent", AGENT, "--principal", PRINCIPAL])
            .args(["--mission", MISSION, "--purpose", PURPOSE])
            .arg("--store")
            .arg(format!(
                "sqlite://{}",
                log_dir.join(format!("round-{round}.db")).display()
            ))
            .current_dir(&repo);
        let rows = [
            measure("bare rmcp", bare, "list_threads", calls).await,
            measure("warden", proxy, "forum.list_threads", calls).await,
        ];
        for r in rows {
            let mib = |k: u64| k as f64 / 1024.0;
            println!(
                "{:<7} {:<12} {:>9.1} {:>12.1} {:>12.1} {:>4}/{:<3}  ({} calls)",
                round,
                r.name,
                mib(r.idle.0),
                mib(r.loaded.0),
                mib(r.loaded.1),
                r.idle.2,
                r.loaded.2,
                r.calls
            );
        }
    }
    let _ = std::fs::remove_dir_all(&log_dir);
}
