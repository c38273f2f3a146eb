//! What passes between an agent and an upstream besides requests and results: calls of one
//! session at once, progress (to the agent that asked, and no other), cancellation on every
//! path, deadlines that progress extends.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{ClientConfig, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use warden_acme::AcmeServer;
use warden_mcp::{Gateway, Transport, UpstreamSettings};

use crate::common::*;
use crate::fastpath::{result_text, RawClient};
use crate::http::{serve, TOKEN};

/// An agent that records the progress it hears.
#[derive(Clone, Default)]
struct Hears {
    progress: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Hears {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress
            .lock()
            .unwrap()
            .push(params.message.unwrap_or_default());
    }
}

async fn hearing_agent(gw: &Arc<Gateway>, hears: Hears) -> RunningService<RoleClient, Hears> {
    agent_as(gw, &alice(), hears).await
}

fn read(thread: &str) -> Value {
    json!({"channel": "eng-help", "thread_id": thread})
}

/// Warden in front of the probe (as the forum), with the probe's requests hanging on `T-HANG`.
async fn start_probe(timeout: Duration) -> (Arc<Gateway>, Probe) {
    let acme = AcmeServer::new();
    let mut probe = Probe::new(&acme, "forum");
    probe.hang = true;
    let ups = acme_with_probe(&acme, &probe, timeout);
    (start(ups, Arc::new(MemoryLog::new())).await, probe)
}

/// The probe (as the forum) served over streamable HTTP.
pub async fn probe_over_http(probe: &Probe, timeout: Duration) -> UpstreamSettings {
    let p = probe.clone();
    let svc = rmcp::transport::StreamableHttpService::new(
        move || Ok(p.clone()),
        Arc::new(
            rmcp::transport::streamable_http_server::session::local::LocalSessionManager::default(),
        ),
        rmcp::transport::StreamableHttpServerConfig::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().nest_service("/mcp", svc))
            .await
            .unwrap()
    });
    UpstreamSettings::new(
        "forum",
        Transport::Http {
            url: format!("http://{addr}/mcp"),
        },
    )
    .with_timeout(timeout)
}

/// `warden serve` in front of the probe reached over HTTP, and an open raw client session
/// (past `tools/list`, so calls take the fast path).
pub(crate) async fn served_probe() -> (Arc<Gateway>, Probe, SocketAddr, RawClient) {
    let acme = AcmeServer::new();
    let mut probe = Probe::new(&acme, "forum");
    probe.hang = true;
    let up = probe_over_http(&probe, Duration::from_secs(10)).await;
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    let (addr, stop) = serve(gw.clone()).await;
    std::mem::forget(stop);
    let mut c = RawClient::new(addr, TOKEN);
    c.open().await;
    c.request("tools/list", json!({})).await;
    (gw, probe, addr, c)
}

#[tokio::test]
async fn the_calls_of_one_session_run_at_once() {
    let (gw, probe) = start_probe(Duration::from_secs(30)).await;
    let client = agent(&gw, &alice()).await;
    let peer = client.peer().clone();
    let hung = tokio::spawn({
        let peer = peer.clone();
        async move { call(&peer, "forum.read_thread", read("T-HANG")).await }
    });
    assert!(eventually(Duration::from_secs(5), || probe.seen().len() == 1).await);
    // While the first call hangs upstream, the session's next call is decided and answered.
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        call(&peer, "forum.read_thread", read("T-1042")),
    )
    .await
    .expect("the second call does not wait for the first");
    assert!(text(&r).contains("Staging login"), "{}", text(&r));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!hung.is_finished());
    hung.abort();
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn progress_reaches_the_agent_that_asked_and_no_other() {
    let (gw, _probe) = start_probe(Duration::from_secs(30)).await;
    let (a, b) = (Hears::default(), Hears::default());
    let ca = hearing_agent(&gw, a.clone()).await;
    let cb = hearing_agent(&gw, b.clone()).await;
    let (ra, rb) = tokio::join!(
        call(ca.peer(), "forum.read_thread", read("T-SLOW-A")),
        call(cb.peer(), "forum.read_thread", read("T-SLOW-B")),
    );
    assert_eq!(text(&ra), "slow read of T-SLOW-A done");
    assert_eq!(text(&rb), "slow read of T-SLOW-B done");
    let (pa, pb) = (
        a.progress.lock().unwrap().clone(),
        b.progress.lock().unwrap().clone(),
    );
    assert_eq!(
        pa,
        (1..=4)
            .map(|i| format!("step {i} of T-SLOW-A"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pb,
        (1..=4)
            .map(|i| format!("step {i} of T-SLOW-B"))
            .collect::<Vec<_>>()
    );
    ca.cancel().await.unwrap();
    cb.cancel().await.unwrap();
}

#[tokio::test]
async fn progress_extends_a_deadline_up_to_its_maximum() {
    // A 300 ms deadline: the slow read (600 ms, progress every 150 ms) completes; a call that
    // says nothing ends at 300 ms.
    let (gw, probe) = start_probe(Duration::from_millis(300)).await;
    let client = agent(&gw, &alice()).await;
    let r = call(client.peer(), "forum.read_thread", read("T-SLOW-1")).await;
    assert_eq!(text(&r), "slow read of T-SLOW-1 done", "{}", text(&r));
    let started = Instant::now();
    let r = call(client.peer(), "forum.read_thread", read("T-HANG")).await;
    assert!(text(&r).contains("300 ms"), "{}", text(&r));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        eventually(Duration::from_secs(5), || probe
            .cancelled
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    client.cancel().await.unwrap();

    // With a maximum of 400 ms for the tool, progress cannot carry the slow read to its end.
    let acme = AcmeServer::new();
    let p = Probe::new(&acme, "forum");
    let p2 = p.clone();
    let up = in_process("forum", move || p2.clone())
        .with_timeout(Duration::from_millis(300))
        .with_tool_deadline(
            "read_thread",
            warden_mcp::Deadline {
                idle: Duration::from_millis(300),
                max: Duration::from_millis(400),
            },
        );
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    let client = agent(&gw, &alice()).await;
    let r = call(client.peer(), "forum.read_thread", read("T-SLOW-2")).await;
    assert!(text(&r).contains("400 ms"), "{}", text(&r));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn cancellation_reaches_the_upstream_for_every_call_over_http() {
    let (gw, probe, _addr, c) = served_probe().await;
    let c = Arc::new(tokio::sync::Mutex::new(c));
    for n in 1..=2u64 {
        // Each call on the fast path: a hanging read, then its cancellation by request id.
        let id = 100 + n;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "forum.read_thread", "arguments": read("T-HANG")}})
        .to_string();
        let (session, url) = {
            let g = c.lock().await;
            (g.session.clone(), g.url.clone())
        };
        let mut caller = RawClient {
            http: reqwest::Client::new(),
            url,
            token: TOKEN.into(),
            session,
            next: 1,
        };
        let hung = tokio::spawn(async move { caller.post(body).await });
        assert!(
            eventually(Duration::from_secs(5), || probe.seen().len() == n as usize).await,
            "{:?}",
            probe.seen()
        );
        let cancelled = c
            .lock()
            .await
            .post(
                json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                       "params": {"requestId": id, "reason": "the user gave up"}})
                .to_string(),
            )
            .await;
        assert_eq!(cancelled.status, 202, "{}", cancelled.body);
        assert!(
            eventually(Duration::from_secs(5), || probe
                .cancelled
                .load(Ordering::SeqCst)
                == n as usize)
            .await,
            "call {n} was not cancelled upstream"
        );
        let r = tokio::time::timeout(Duration::from_secs(5), hung)
            .await
            .unwrap()
            .unwrap();
        assert!(result_text(&r).contains("cancelled"), "{}", r.body);
    }
    assert!(gw.fast_calls() >= 2);
}

#[tokio::test]
async fn progress_over_http_reaches_only_the_session_that_asked() {
    let (gw, _probe, addr, mut a) = served_probe().await;
    let mut b = RawClient::new(addr, TOKEN);
    b.open().await;
    b.request("tools/list", json!({})).await;
    // Both use the same progress token: each still hears only about its own call.
    let call = |thread: &str| {
        json!({"name": "forum.read_thread", "arguments": read(thread),
               "_meta": {"progressToken": "same"}})
    };
    let (ra, rb) = tokio::join!(
        a.request("tools/call", call("T-SLOW-A")),
        b.request("tools/call", call("T-SLOW-B")),
    );
    for (r, mine, theirs) in [(&ra, "T-SLOW-A", "T-SLOW-B"), (&rb, "T-SLOW-B", "T-SLOW-A")] {
        assert!(
            r.content_type.starts_with("text/event-stream"),
            "{}",
            r.body
        );
        let progress: Vec<Value> = r
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 4, "{}", r.body);
        for p in &progress {
            assert_eq!(p["params"]["progressToken"], "same");
            let m = p["params"]["message"].as_str().unwrap();
            assert!(m.ends_with(mine) && !m.contains(theirs), "{m}");
        }
        assert_eq!(result_text(r), format!("slow read of {mine} done"));
    }
    assert!(gw.fast_calls() >= 2);
}

/// The Acme forum, changing: it serves `read_thread` only until `grown` (then `list_threads`
/// too), keeps the peer of its last `tools/list` (to say its list changed), serves one
/// resource and records the subscriptions it is asked for.
#[derive(Clone)]
struct GrowingForum {
    inner: AcmeServer,
    grown: Arc<std::sync::atomic::AtomicBool>,
    peer: Arc<Mutex<Option<rmcp::Peer<rmcp::RoleServer>>>>,
    subscribed: Arc<Mutex<Vec<String>>>,
}

impl GrowingForum {
    fn new() -> GrowingForum {
        GrowingForum {
            inner: AcmeServer::new().subset(Some("forum")).unwrap(),
            grown: Arc::default(),
            peer: Arc::default(),
            subscribed: Arc::default(),
        }
    }
}

#[allow(deprecated)]
impl rmcp::ServerHandler for GrowingForum {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        Ok(rmcp::model::ListResourcesResult::with_all_items(vec![
            rmcp::model::Resource::new("faq://vpn", "vpn"),
        ]))
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        self.subscribed.lock().unwrap().push(request.uri);
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<rmcp::model::PaginatedRequestParams>,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        *self.peer.lock().unwrap() = Some(context.peer.clone());
        let mut all = self.inner.list_tools(request, context).await?;
        let grown = self.grown.load(Ordering::SeqCst);
        all.tools
            .retain(|t| t.name == "read_thread" || (grown && t.name == "list_threads"));
        Ok(all)
    }

    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        self.inner.call_tool(request, context).await
    }
}

/// Records the tool-list changes it hears.
#[derive(Clone, Default)]
struct HearsLists(Arc<std::sync::atomic::AtomicUsize>);

impl ClientHandler for HearsLists {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_changed_tool_list_is_refreshed_and_told_to_the_sessions_that_see_it() {
    let acme = AcmeServer::new();
    let forum = GrowingForum::new();
    let f = forum.clone();
    let mut ups = acme_upstreams(&acme);
    ups.retain(|u| u.name != "forum");
    ups.push(in_process("forum", move || f.clone()));
    let gw = start(ups, Arc::new(MemoryLog::new())).await;
    let (a, ops) = (HearsLists::default(), HearsLists::default());
    let ca = agent_as(&gw, &alice(), a.clone()).await;
    let cops = agent_as(
        &gw,
        &who("ops-bot", "dave", "ops-change", "rotate the billing key"),
        ops.clone(),
    )
    .await;
    assert!(!tool_names(ca.peer())
        .await
        .contains(&"forum.list_threads".to_string()));
    tool_names(cops.peer()).await;

    forum.grown.store(true, Ordering::SeqCst);
    let peer = forum.peer.lock().unwrap().clone().unwrap();
    peer.notify_tool_list_changed().await.unwrap();

    assert!(eventually(Duration::from_secs(5), || a.0.load(Ordering::SeqCst) == 1).await);
    assert!(tool_names(ca.peer())
        .await
        .contains(&"forum.list_threads".to_string()));
    // The ops mission sees nothing of the forum: it is not told.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ops.0.load(Ordering::SeqCst), 0);
    ca.cancel().await.unwrap();
    cops.cancel().await.unwrap();
}

#[tokio::test]
#[allow(deprecated)]
async fn subscriptions_are_renewed_when_the_upstream_restarts() {
    let engine = engine_with_catalog(FORUM_RESOURCES_READ);
    let forum = GrowingForum::new();
    // Each connection is served until the test cuts it.
    let cuts: Arc<Mutex<Vec<tokio_util::sync::CancellationToken>>> = Arc::default();
    let (f, c) = (forum.clone(), cuts.clone());
    let connector: warden_mcp::Connector = Arc::new(move || {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let ct = tokio_util::sync::CancellationToken::new();
        c.lock().unwrap().push(ct.clone());
        let handler = f.clone();
        tokio::spawn(async move {
            if let Ok(running) = handler.serve_with_ct(theirs, ct).await {
                let _ = running.waiting().await;
            }
        });
        Ok(ours)
    });
    let settings = warden_mcp::GatewaySettings {
        upstreams: vec![UpstreamSettings::in_process("forum", connector)],
        ..warden_mcp::GatewaySettings::default()
    };
    let gw = start_gateway(engine, settings, Arc::new(MemoryLog::new())).await;
    let client = agent(&gw, &alice()).await;
    client
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new("faq://vpn"))
        .await
        .unwrap();
    assert_eq!(*forum.subscribed.lock().unwrap(), vec!["faq://vpn"]);
    // The upstream's connection ends; Warden reconnects and subscribes again.
    let first = cuts.lock().unwrap()[0].clone();
    first.cancel();
    assert!(
        gw.upstream("forum")
            .unwrap()
            .wait_connects(2, Duration::from_secs(10))
            .await
    );
    assert!(
        eventually(Duration::from_secs(5), || forum
            .subscribed
            .lock()
            .unwrap()
            .len()
            == 2)
        .await,
        "{:?}",
        forum.subscribed.lock().unwrap()
    );
    client.cancel().await.unwrap();
}
