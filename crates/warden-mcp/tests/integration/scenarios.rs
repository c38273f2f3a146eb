//! The Acme scenario traces, replayed over real MCP.
//!
//! Two runs per trace:
//! - against scripted upstreams that return each call's trace `output`: every decision must be
//!   the one `warden_core::trace::replay` makes (the gateway adds nothing and loses nothing);
//! - against the real Acme servers: every decision must be what the trace expects, except the
//!   lines in [`OUTPUT_DEPENDENT`], whose expectation rests on the trace's invented output text.
//!
//! Lines with `at_ms` (clock jumps, e.g. an expired mission) cannot be replayed over a live
//! gateway, which reads the real clock; they are skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use warden_mcp::UpstreamSettings;

use crate::common::*;

/// Trace lines whose expectation depends on the trace's `output` text, which the real Acme
/// servers do not return word for word.
const OUTPUT_DEPENDENT: &[(&str, usize, &str)] = &[
    // Provenance attacks whose planted value (a link, a handle, an outside address) is in text
    // Acme's seeded threads, listings and files do not hold.
    (
        "v-prov-13-link-from-thread-in-reply.jsonl",
        3,
        "the thread's planted link",
    ),
    (
        "v-prov-14-link-host-from-thread-other-path.jsonl",
        3,
        "the thread's planted link",
    ),
    (
        "v-prov-16-handle-from-thread-title.jsonl",
        3,
        "the planted thread title",
    ),
    (
        "v-prov-20-outside-recipient-from-trusted-doc.jsonl",
        3,
        "docs/public/partners.md is not seeded",
    ),
    (
        "v-prov-21-link-from-thread-in-dm.jsonl",
        3,
        "the thread's planted link",
    ),
];

/// An upstream that serves the catalog's tools of one server and answers each call with the
/// text the test puts in `next`.
#[derive(Clone)]
struct Scripted {
    tools: Vec<String>,
    next: Arc<Mutex<String>>,
}

impl ServerHandler for Scripted {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.tools
                .iter()
                .map(|t| Tool::new(t.clone(), "scripted", Arc::new(Default::default())))
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        _r: CallToolRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let text = self.next.lock().unwrap().clone();
        Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
    }
}

fn scripted_upstreams(next: &Arc<Mutex<String>>) -> Vec<UpstreamSettings> {
    let engine = engine();
    let mut by_server: HashMap<String, Vec<String>> = HashMap::new();
    for t in engine.config().catalog.tools() {
        by_server
            .entry(t.server.clone())
            .or_default()
            .push(t.tool.clone());
    }
    by_server
        .into_iter()
        .map(|(server, tools)| {
            let h = Scripted {
                tools,
                next: next.clone(),
            };
            in_process(&server, move || h.clone())
        })
        .collect()
}

struct Mismatch {
    at: String,
    tool: String,
    mcp: String,
    want: String,
    summary: String,
}

/// Run a trace over MCP; `next` (when scripted) receives each call's trace output first.
/// Returns (mismatches against replay, mismatches against expect, calls checked).
async fn run_trace(
    file: &str,
    text: &str,
    upstreams: Vec<UpstreamSettings>,
    next: Option<&Arc<Mutex<String>>>,
) -> (Vec<Mismatch>, Vec<Mismatch>, usize) {
    let engine = engine();
    let replayed = {
        let store = warden_store::open("memory:").await.unwrap();
        let replayer = warden_enforce::replay::Replayer::new(engine.clone(), store)
            .await
            .unwrap();
        replayer
            .replay(file, text, warden_mcp::now_ms())
            .await
            .unwrap()
    };
    let by_line: HashMap<usize, String> = replayed
        .iter()
        .map(|r| (r.line, r.decision.decision.as_str().to_string()))
        .collect();
    let log = Arc::new(MemoryLog::new());
    let gw = start(upstreams, log.clone()).await;
    let mut missions: HashMap<String, warden_mcp::Identity> = HashMap::new();
    let mut clients: HashMap<String, Client> = HashMap::new();
    let (mut vs_replay, mut vs_expect) = (Vec::new(), Vec::new());
    let mut checked = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(raw).unwrap();
        if v.get("at_ms").is_some() {
            continue;
        }
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match s("kind").as_str() {
            "mission" => {
                missions.insert(
                    s("id"),
                    who(&s("agent"), &s("principal"), &s("template"), &s("purpose")),
                );
            }
            "call" => {
                let Some(who) = missions.get(&s("mission")).cloned() else {
                    continue;
                };
                let key = format!("{}/{}", s("mission"), s("session"));
                if !clients.contains_key(&key) {
                    clients.insert(key.clone(), agent(&gw, &who).await);
                }
                if let Some(next) = next {
                    *next.lock().unwrap() = v
                        .get("output")
                        .map(warden_core::trace::output_text)
                        .unwrap_or_default();
                }
                let name = format!("{}.{}", s("server"), s("tool"));
                let before = log.len();
                let args = v
                    .get("args")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default()));
                call(clients[&key].peer(), &name, args).await;
                let entries = log.entries();
                assert_eq!(
                    entries.len(),
                    before + 1,
                    "{file}:{line}: one decision per call"
                );
                let d = &entries[before].decision;
                let mcp = d.decision.as_str().to_string();
                checked += 1;
                let mk = |want: String| Mismatch {
                    at: format!("{file}:{line}"),
                    tool: name.clone(),
                    mcp: mcp.clone(),
                    want,
                    summary: d.summary(),
                };
                let replay = by_line.get(&line).cloned().unwrap_or_default();
                if mcp != replay {
                    vs_replay.push(mk(replay));
                }
                if let Some(e) = v.get("expect").and_then(|x| x.as_str()) {
                    if e != mcp {
                        vs_expect.push(mk(e.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    for (_, c) in clients {
        c.cancel().await.unwrap();
    }
    gw.shutdown();
    (vs_replay, vs_expect, checked)
}

fn traces() -> Vec<(String, String)> {
    let dir = acme_dir().join("scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "the Acme scenarios are there");
    files
        .iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(f).unwrap(),
            )
        })
        .collect()
}

fn report(what: &str, ms: &[Mismatch]) {
    for m in ms {
        eprintln!(
            "{what}: {} {}: over MCP {}, wanted {} ({})",
            m.at, m.tool, m.mcp, m.want, m.summary
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_mcp_with_the_traces_outputs_decide_exactly_as_replay() {
    let mut all = Vec::new();
    let mut checked = 0;
    for (name, text) in traces() {
        let next = Arc::new(Mutex::new(String::new()));
        let (vs_replay, _, c) =
            run_trace(&name, &text, scripted_upstreams(&next), Some(&next)).await;
        all.extend(vs_replay);
        checked += c;
    }
    report("differs from replay", &all);
    assert!(checked > 60, "{checked}");
    assert!(
        all.is_empty(),
        "{} decisions differ from replay (see stderr)",
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_mcp_against_the_real_acme_servers_decide_as_expected() {
    let mut unexpected = Vec::new();
    let mut checked = 0;
    for (name, text) in traces() {
        let acme = warden_acme::AcmeServer::new();
        let (_, vs_expect, c) = run_trace(&name, &text, acme_upstreams(&acme), None).await;
        checked += c;
        for m in vs_expect {
            match OUTPUT_DEPENDENT
                .iter()
                .find(|(f, l, _)| m.at == format!("{f}:{l}"))
            {
                Some((_, _, why)) => eprintln!("output-dependent: {} {}: {why}", m.at, m.tool),
                None => unexpected.push(m),
            }
        }
    }
    report("differs from expect", &unexpected);
    assert!(checked > 60, "{checked}");
    assert!(
        unexpected.is_empty(),
        "{} decisions differ from the traces' expectations (see stderr); if a new trace's expectation rests on its invented `output`, add it to OUTPUT_DEPENDENT",
        unexpected.len()
    );
}
