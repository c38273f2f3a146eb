//! Helpers: the Acme engine, upstreams, agents, calls.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use warden_acme::AcmeServer;
use warden_core::{Config, Engine, Sources};
use warden_mcp::{Connector, Gateway, GatewaySettings, Identity, UpstreamSettings, WardenHandler};

pub use crate::audit_log::*;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn acme_dir() -> PathBuf {
    repo().join("examples/acme")
}

/// Files relative to a folder.
pub struct Files(pub PathBuf);

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

/// The Acme configuration, loaded once per test binary.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let text = std::fs::read_to_string(acme_dir().join("warden.toml")).unwrap();
            let cfg = Config::load("warden.toml", &text, &Files(acme_dir())).unwrap();
            Arc::new(Engine::new(cfg))
        })
        .clone()
}

pub fn who(agent: &str, principal: &str, template: &str, purpose: &str) -> Identity {
    Identity {
        agent: agent.into(),
        principal: principal.into(),
        template: template.into(),
        purpose: purpose.into(),
        proxied: false,
    }
}

pub fn alice() -> Identity {
    who(
        "forum-helper",
        "alice",
        "answer-forum-question",
        "Help me answer Bob's question in T-1042",
    )
}

/// An in-process upstream served by `make()` (a fresh handler per connection).
pub fn in_process<H, F>(name: &str, make: F) -> UpstreamSettings
where
    H: ServerHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let connector: Connector = Arc::new(move || {
        let handler = make();
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        tokio::spawn(async move {
            if let Ok(running) = handler.serve(theirs).await {
                let _ = running.waiting().await;
            }
        });
        Ok(ours)
    });
    UpstreamSettings::in_process(name, connector)
}

/// Every Acme server in process, sharing `acme`'s state.
pub fn acme_upstreams(acme: &AcmeServer) -> Vec<UpstreamSettings> {
    warden_acme::SERVERS
        .iter()
        .map(|s| {
            let view = acme.subset(Some(s)).unwrap();
            in_process(s, move || view.clone())
        })
        .collect()
}

pub async fn start(upstreams: Vec<UpstreamSettings>, log: Arc<MemoryLog>) -> Arc<Gateway> {
    let settings = GatewaySettings {
        upstreams,
        ..GatewaySettings::default()
    };
    start_gateway(engine(), settings, log).await
}

/// Warden in front of a fresh in-process Acme, with a memory log.
pub async fn start_acme() -> (Arc<Gateway>, AcmeServer, Arc<MemoryLog>) {
    let acme = AcmeServer::new();
    let log = Arc::new(MemoryLog::new());
    let gw = start(acme_upstreams(&acme), log.clone()).await;
    (gw, acme, log)
}

pub type Client = RunningService<RoleClient, ()>;

static NEXT: AtomicUsize = AtomicUsize::new(1);

/// An rmcp client connected to Warden over a duplex stream, as `who`.
pub async fn agent(gw: &Arc<Gateway>, who: &Identity) -> Client {
    agent_as(gw, who, ()).await
}

/// A client with handler `client` connected to Warden over a duplex stream, as `who`.
pub async fn agent_as<H: rmcp::ClientHandler>(
    gw: &Arc<Gateway>,
    who: &Identity,
    client: H,
) -> RunningService<RoleClient, H> {
    let id = format!("t-{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let session = gw.open_session(&id, &who.clone().into(), None).unwrap();
    let handler = WardenHandler::for_session(gw.clone(), session);
    let (server_io, client_io) = tokio::io::duplex(256 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = handler.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    client.serve(client_io).await.unwrap()
}

/// Every Acme server in process, the forum served by `probe` instead (with `timeout`).
pub fn acme_with_probe(
    acme: &AcmeServer,
    probe: &Probe,
    timeout: Duration,
) -> Vec<UpstreamSettings> {
    let p = probe.clone();
    let mut ups = acme_upstreams(acme);
    ups.retain(|u| u.name != "forum");
    ups.push(in_process("forum", move || p.clone()).with_timeout(timeout));
    ups
}

pub async fn call(peer: &Peer<RoleClient>, name: &str, args: Value) -> CallToolResult {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    match peer
        .call_tool_once(CallToolRequestParams::new(name.to_string()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    {
        CallToolResponse::Complete(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_error(r: &CallToolResult) -> bool {
    r.is_error == Some(true)
}

pub async fn tool_names(peer: &Peer<RoleClient>) -> Vec<String> {
    peer.list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// The outcome in a result's structured decision (refusals), or `allow` for a plain result.
pub fn outcome(r: &CallToolResult) -> String {
    r.structured_content
        .as_ref()
        .and_then(|v| v.get("decision"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| "allow".into())
}

/// Wait until `f` holds, up to `limit`.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A workspace binary, built once per test run.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == bin) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", package, "--bin", bin])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(status.success(), "cargo build -p {package} --bin {bin}");
        built.push(bin.to_string());
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"));
    target.join("debug").join(bin)
}

/// An Acme server wrapper that watches what reaches the upstream.
#[derive(Clone)]
pub struct Probe {
    pub inner: AcmeServer,
    pub server: &'static str,
    /// Check on receipt that the log's last entry allows this very call.
    pub log: Option<Arc<MemoryLog>>,
    /// What the probe saw (`ok tool`, or a problem).
    pub seen: Arc<Mutex<Vec<String>>>,
    /// `read_thread` of `T-HANG` never answers (until cancelled).
    pub hang: bool,
    /// Cancellations the probe observed.
    pub cancelled: Arc<AtomicUsize>,
    /// `list_threads` asks the client for roots, sampling and elicitation first.
    pub ask_client: bool,
}

impl Probe {
    pub fn new(acme: &AcmeServer, server: &'static str) -> Probe {
        Probe {
            inner: acme.subset(Some(server)).unwrap(),
            server,
            log: None,
            seen: Arc::new(Mutex::new(Vec::new())),
            hang: false,
            cancelled: Arc::new(AtomicUsize::new(0)),
            ask_client: false,
        }
    }

    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[allow(deprecated)]
impl ServerHandler for Probe {
    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.inner.list_tools(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let full = format!("{}.{}", self.server, request.name);
        if let Some(log) = &self.log {
            let entries = log.entries();
            let ok = entries.last().is_some_and(|e| {
                e.kind == EntryKind::Decision && e.decision.is_allow() && e.decision.tool == full
            });
            self.seen.lock().unwrap().push(if ok {
                format!("ok {full}")
            } else {
                format!(
                    "NOT LOGGED {full}: last entry {:?}",
                    entries.last().map(|e| &e.decision.tool)
                )
            });
        } else {
            self.seen.lock().unwrap().push(format!("ok {full}"));
        }
        let thread = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("thread_id"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if let Some(which) = thread.strip_prefix("T-SLOW") {
            // Four steps of 150 ms, each reported (when asked) with the thread named, then a
            // result of the probe's own; cancellation ends it early.
            let token = context.meta.get_progress_token();
            for step in 1..=4u32 {
                tokio::select! {
                    _ = context.ct.cancelled() => {
                        self.cancelled.fetch_add(1, Ordering::SeqCst);
                        return Ok(CallToolResult::error(vec![ContentBlock::text("cancelled")]).into());
                    }
                    _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                }
                if let Some(token) = &token {
                    let mut p =
                        rmcp::model::ProgressNotificationParam::new(token.clone(), f64::from(step));
                    p.total = Some(4.0);
                    p.message = Some(format!("step {step} of T-SLOW{which}"));
                    let _ = context.peer.notify_progress(p).await;
                }
            }
            return Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                "slow read of T-SLOW{which} done"
            ))])
            .into());
        }
        if self.hang && thread == "T-HANG" {
            tokio::select! {
                _ = context.ct.cancelled() => {
                    self.cancelled.fetch_add(1, Ordering::SeqCst);
                    return Ok(CallToolResult::error(vec![ContentBlock::text("cancelled")]).into());
                }
                _ = tokio::time::sleep(Duration::from_secs(120)) => {}
            }
        }
        if self.ask_client && request.name == "list_threads" {
            let peer = context.peer.clone();
            let caps = peer
                .peer_info()
                .map(|i| serde_json::to_string(&i.capabilities).unwrap())
                .unwrap_or_default();
            let roots = match peer.list_roots().await {
                Ok(r) => r
                    .roots
                    .iter()
                    .map(|x| x.uri.clone())
                    .collect::<Vec<_>>()
                    .join(","),
                Err(e) => e.to_string(),
            };
            let out = format!("caps={caps}\nroots={roots}");
            return Ok(CallToolResult::success(vec![ContentBlock::text(out)]).into());
        }
        self.inner.call_tool(request, context).await
    }
}

/// `warden proxy` over pipes in front of the Acme configuration, as `forum-helper` for alice on
/// the forum-question mission, logging to `log`; killed when dropped.
pub fn spawn_acme_proxy(log: &Path) -> tokio::process::Child {
    tokio::process::Command::new(workspace_bin("warden", "warden"))
        .args(["proxy", "--insecure-identity", "--config"])
        .arg(acme_dir().join("warden.toml"))
        .arg("--store")
        .arg(format!("sqlite://{}", log.display()))
        .env("WARDEN_AGENT", "forum-helper")
        .env("WARDEN_PRINCIPAL", "alice")
        .env("WARDEN_MISSION", "answer-forum-question")
        .env("WARDEN_PURPOSE", "Help me answer Bob's question in T-1042")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A catalog entry for reading the forum's resources.
pub const FORUM_RESOURCES_READ: &str = r#"
[tools."forum.resources/read"]
effect = "read"
required = ["uri"]
resource = { type = "File", arg = "uri" }
default_labels = ["internal"]
"#;

/// The Acme configuration with `extra` appended to its catalog.
pub fn engine_with_catalog(extra: &str) -> Arc<Engine> {
    engine_editing_catalog(|c| c + extra)
}

/// The Acme engine with its catalog text changed by `edit`.
pub fn engine_editing_catalog(edit: impl Fn(String) -> String) -> Arc<Engine> {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(&acme_dir(), dir.path());
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    copy(&acme_dir().join("policies"), &dir.path().join("policies"));
    std::fs::create_dir(dir.path().join("approvers")).unwrap();
    copy(&acme_dir().join("approvers"), &dir.path().join("approvers"));
    let catalog = std::fs::read_to_string(dir.path().join("catalog.toml")).unwrap();
    std::fs::write(dir.path().join("catalog.toml"), edit(catalog)).unwrap();
    let text = std::fs::read_to_string(dir.path().join("warden.toml")).unwrap();
    let cfg = Config::load("warden.toml", &text, &Files(dir.path().to_path_buf()))
        .unwrap_or_else(|e| panic!("{e:?}"));
    Arc::new(Engine::new(cfg))
}
