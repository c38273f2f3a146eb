//! Memory of one stdio proxy process: `warden proxy` beside the bare rmcp proxy
//! (`examples/bare_proxy.rs`), in the same run, each in front of its own `acme-mcp --server
//! forum` child.
//!
//! ```text
//! scripts/proxy-memory.sh                  # builds the release binaries, then runs this
//! target/release/examples/proxy_memory [--calls 10000] [--concurrency 16]
//! ```
//!
//! For each proxy: start it as a child on pipes, open an MCP session (initialize), list the
//! tools, wait a second and read `VmRSS`, `VmHWM` and `Threads` from `/proc/PID/status` (idle);
//! then make `--calls` `tools/call`s (`list_threads {"channel": "eng-help"}`, through Warden
//! `forum.list_threads`, a real decided allow with its fsync'd decision log entry) with
//! `--concurrency` in flight, as fast as they are answered, sampling `VmRSS` every 20 ms (peak
//! under load), and read the status again at the end. The upstream child is reported on its
//! own line. Warden runs `tests/load/warden.toml`: the Acme configuration (policy pack,
//! catalog, 12,194-user directory) with one upstream and a call budget large enough for the
//! run. The decision log goes to a temporary folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResponse};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tokio::task::JoinSet;

const AGENT: &str = "forum-helper";
const PRINCIPAL: &str = "alice";
const MISSION: &str = "answer-forum-question";
const PURPOSE: &str = "Help me answer Bob's question in T-1042";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const START_LIMIT: Duration = Duration::from_secs(120);

/// Memory figures of one process, KiB, and its thread count.
#[derive(Debug, Default, Clone, Copy)]
struct Status {
    rss: u64,
    hwm: u64,
    threads: u64,
}

fn status(pid: u32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Status {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

/// Child processes of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

struct Opts {
    calls: usize,
    concurrency: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        calls: 10_000,
        concurrency: 16,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("`{a}` wants a number"))
        };
        match a.as_str() {
            "--calls" => o.calls = value(),
            "--concurrency" => o.concurrency = value(),
            "--bench" => {}
            other => panic!("unknown argument `{other}` (--calls N, --concurrency N)"),
        }
    }
    o
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `target/release` (this runs from `target/release/examples`).
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("profile folder")
        .to_path_buf()
}

/// One measured proxy.
struct Row {
    name: &'static str,
    idle: Status,
    upstream_idle: Status,
    peak_rss: u64,
    end: Status,
    upstream_end: Status,
    calls: usize,
    secs: f64,
}

async fn measure(
    name: &'static str,
    mut cmd: tokio::process::Command,
    tool: &str,
    o: &Opts,
) -> Row {
    cmd.kill_on_drop(true).current_dir(repo());
    let (proc, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    if let Some(mut s) = stderr {
        // Drained so the proxy never blocks on a full pipe.
        tokio::spawn(async move { tokio::io::copy(&mut s, &mut tokio::io::sink()).await });
    }
    let pid = proc.id().expect("pid");
    let client: RunningService<RoleClient, ()> = tokio::time::timeout(START_LIMIT, ().serve(proc))
        .await
        .unwrap_or_else(|_| panic!("{name}: no MCP handshake within {START_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{name}: MCP handshake failed: {e}"));
    let tools = client.list_tools(None).await.expect("tools/list");
    assert!(
        tools.tools.iter().any(|t| t.name == tool),
        "{name}: `{tool}` is not listed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let upstream = children_of(pid);
    assert_eq!(upstream.len(), 1, "{name}: one upstream child");
    let idle = status(pid);
    let upstream_idle = status(upstream[0]);

    let peak = Arc::new(AtomicU64::new(idle.rss));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(status(pid).rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..o.concurrency {
        let (peer, next, tool) = (client.peer().clone(), next.clone(), tool.to_string());
        let calls = o.calls as u64;
        set.spawn(async move {
            let mut ok = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let params = CallToolRequestParams::new(tool.clone()).with_arguments(
                    json!({ "channel": "eng-help" })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
                match tokio::time::timeout(CALL_TIMEOUT, peer.call_tool_once(params)).await {
                    Ok(Ok(CallToolResponse::Complete(r))) if r.is_error != Some(true) => ok += 1,
                    other => panic!("{tool}: not a successful result: {other:?}"),
                }
            }
            ok
        });
    }
    let mut calls = 0;
    while let Some(r) = set.join_next().await {
        calls += r.expect("caller task");
    }
    let secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let end = status(pid);
    let upstream_end = status(upstream[0]);
    let _ = tokio::time::timeout(Duration::from_secs(10), client.cancel()).await;
    Row {
        name,
        idle,
        upstream_idle,
        peak_rss: peak.load(Ordering::Relaxed).max(end.rss),
        end,
        upstream_end,
        calls,
        secs,
    }
}

#[tokio::main]
async fn main() {
    let o = opts();
    let release = release_dir();
    let repo = repo();
    let acme = release.join("acme-mcp");
    let warden = release.join("warden");
    let bare = release.join("examples/bare_proxy");
    for b in [&acme, &warden, &bare] {
        assert!(
            b.exists(),
            "`{}` is missing: run scripts/proxy-memory.sh (it builds the release binaries)",
            b.display()
        );
    }
    let logs = tempfile::tempdir().expect("temporary folder");

    let mut cmd = tokio::process::Command::new(&warden);
    cmd.arg("proxy")
        .arg("--config")
        .arg(repo.join("tests/load/warden.toml"))
        .args(["--agent", AGENT, "--principal", PRINCIPAL])
        .args(["--mission", MISSION, "--purpose", PURPOSE])
        .arg("--decision-log")
        .arg(logs.path().join("proxy.jsonl"));
    let w = measure("warden proxy", cmd, "forum.list_threads", &o).await;

    let mut cmd = tokio::process::Command::new(&bare);
    cmd.arg(&acme).args(["--server", "forum"]);
    let b = measure("bare rmcp proxy", cmd, "list_threads", &o).await;

    println!(
        "{} tools/call, {} in flight, one client over stdio; MiB; threads of the proxy process",
        o.calls, o.concurrency
    );
    println!();
    println!("| process | idle VmRSS | idle VmHWM | threads | load peak VmRSS | end VmRSS | end VmHWM | calls/s | upstream idle / end VmRSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in [&w, &b] {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {} / {} |",
            r.name,
            mib(r.idle.rss),
            mib(r.idle.hwm),
            r.end.threads,
            mib(r.peak_rss),
            mib(r.end.rss),
            mib(r.end.hwm),
            r.calls as f64 / r.secs,
            mib(r.upstream_idle.rss),
            mib(r.upstream_end.rss),
        );
    }
}
