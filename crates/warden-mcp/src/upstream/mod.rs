//! Upstream MCP servers: one supervised client connection each.
//!
//! A supervisor task connects (spawning the child process, opening the HTTP session or calling
//! the in-process connector), lists the server's tools, resources and prompts into a cache, and
//! waits for the connection to end; then it marks the upstream down and reconnects with
//! exponential backoff (100 ms doubling to 5 s, reset after a connection that lived 10 s).
//! Calls made while an upstream is down fail at once with a clear error; calls in flight when it
//! dies fail when the transport closes, and at the latest at their deadline.
//!
//! Upstreams start in parallel: each has its own supervisor from [`Upstream::start`], and
//! [`Upstream::wait_until`] waits for one against a deadline the caller fixed once for all of
//! them. A command that cannot be started (the program does not exist, or is not executable) is
//! reported at once ([`UpstreamStatus::cannot_start`]) rather than waited for: nothing waits on
//! it, and its supervisor keeps retrying in the background, so the upstream comes up if the
//! program appears later.
//!
//! A request's deadline ([`Deadline`]) is `timeout_ms` without a word from the upstream, each
//! progress notification starting the wait again, up to `max_timeout_ms` in all; a tool may have
//! its own. A request that runs out of time is cancelled upstream (`notifications/cancelled`), and the upstream is
//! health-checked with a `ping` (deadline: its timeout, at most 5 s). If the ping fails too, the
//! upstream has stopped answering: it is killed and restarted at once, and until it is back every
//! call to it fails immediately ([`UpstreamError::Restarting`]) instead of waiting out the
//! timeout.
//!
//! Child processes and in-process servers are read through `lines::LineTransport`, which
//! refuses a message over the upstream's `max_result_bytes` with an error for the request it
//! answers ([`UpstreamError::TooLarge`]) rather than dropping it.
//!
//! Notifications and requests an upstream sends about a request in flight go to that request's
//! [`Relay`] (see [`relay`]), and from there, decided, to the agent that made it; nothing an
//! upstream sends reaches an agent otherwise. Warden advertises to an upstream only the client
//! capabilities ([`ClientAsks`]) the catalog describes for it, and refuses the rest.
//!
//! List changes (`notifications/*/list_changed`) refresh the cached lists; they and resource
//! updates are published as [`Change`]s for the gateway.

// Sampling, roots and logging are deprecated by SEP-2577; clients of earlier revisions use them.
#![allow(deprecated)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, ClientResult, CompleteRequest,
    CompleteRequestParams, CompleteResult, CreateMessageRequest, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequest, ElicitRequestParams, ElicitResult, ErrorCode,
    GetPromptRequest, GetPromptRequestParams, GetPromptResult, Implementation, JsonObject,
    ListRootsRequest, ListRootsResult, LoggingLevel, LoggingMessageNotificationParam, PingRequest,
    ProgressNotificationParam, Prompt, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResult, RequestId, Resource, ResourceTemplate, ResourceUpdatedNotificationParam,
    ResultType, ServerRequest, ServerResult, SetLevelRequest, SetLevelRequestParams,
    SubscribeRequest, SubscribeRequestParams, Tool, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{
    NotificationContext, PeerRequestOptions, RequestContext, RunningService, ServiceError,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, ServiceExt};
use tokio_util::sync::CancellationToken;
use warden_core::Call;
use warden_enforce::Permitted;

use rawhttp::RawHttp;
pub use settings::{Transport, UpstreamSettings};

mod error;
pub(crate) mod lines;
mod raw;
mod rawhttp;
pub mod relay;
mod requests;
pub(crate) mod session;
pub mod settings;
mod supervisor;

pub use error::UpstreamError;
use lines::LineTransport;
pub use raw::TaskSupport;
use raw::{RawLines, TaskTools};
use relay::InFlight;
pub use relay::{Asker, Deadline, Note, Relay};
use session::{Recording, SessionCell};
pub use supervisor::resolve_program;
use supervisor::supervise;

/// Makes a fresh in-process connection: returns Warden's end of a duplex stream whose other end
/// is served by an MCP server (the function spawns it). Called once per (re)connection.
pub type Connector = Arc<dyn Fn() -> std::io::Result<tokio::io::DuplexStream> + Send + Sync>;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// A snapshot of an upstream's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The server name.
    pub name: String,
    /// Connected now.
    pub up: bool,
    /// Successful connections so far (1 + restarts).
    pub connects: u64,
    /// The child process id, for command upstreams that are up.
    pub pid: Option<u32>,
    /// Why it was last down.
    pub last_error: Option<String>,
    /// How many tools it serves.
    pub tools: usize,
    /// Its command cannot be started (the program does not exist or is not executable):
    /// `last_error` names the command. Nothing waits for it; it is retried in the background.
    pub cannot_start: bool,
}

#[derive(Clone, Default)]
struct Live {
    peer: Option<Peer<RoleClient>>,
    pid: Option<u32>,
    tools: Arc<HashMap<String, Tool>>,
    resources: Arc<Vec<Resource>>,
    templates: Arc<Vec<ResourceTemplate>>,
    prompts: Arc<Vec<Prompt>>,
    connects: u64,
    last_error: Option<String>,
    /// The upstream stopped answering and is being restarted (the circuit is open).
    hung: bool,
    /// The last attempt could not start its command (missing, or not executable).
    cannot_start: bool,
    /// Cancelled to make the supervisor kill the current connection.
    kill: Option<CancellationToken>,
}

struct Shared {
    name: String,
    live: RwLock<Live>,
    changed: tokio::sync::Notify,
    /// A health check is running.
    checking: AtomicBool,
    /// HTTP upstreams: the MCP session of the current connection, which calls share.
    session: SessionCell,
    /// Requests in flight, by progress token: where their notes go.
    inflight: Arc<InFlight>,
    /// The connection number and severity of the log level asked of it last.
    log_level: std::sync::Mutex<Option<(u64, u8)>>,
    /// What changed: a list (after the cache was refreshed), or a subscribed resource.
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Line transports: the requests sent past rmcp.
    lines: Arc<RawLines>,
    /// How its tools may run as tasks.
    tasks: TaskTools,
}

/// Something that changed upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One of its lists (the cache is fresh already).
    List(ListKind),
    /// A resource it was subscribed to (`notifications/resources/updated`).
    Updated(String),
    /// It connected again (after a restart): its subscriptions are gone.
    Reconnected,
}

/// The requests of the client an upstream may make of agents: those the catalog describes for
/// it (`server.sampling/createMessage`, `server.elicitation/create`, `server.roots/list`). Only
/// these capabilities are advertised to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientAsks {
    /// Sampling.
    pub sampling: bool,
    /// Elicitation.
    pub elicitation: bool,
    /// Roots.
    pub roots: bool,
}

/// Catalog name of the sampling requests of a server.
pub const SAMPLING: &str = "sampling/createMessage";
/// Catalog name of the elicitation requests of a server.
pub const ELICITATION: &str = "elicitation/create";
/// Catalog name of the roots requests of a server.
pub const ROOTS: &str = "roots/list";

impl ClientAsks {
    /// The client capabilities to advertise upstream.
    pub fn capabilities(&self) -> ClientCapabilities {
        let mut c = ClientCapabilities::default();
        if self.sampling {
            c.sampling = Some(Default::default());
        }
        if self.elicitation {
            c.elicitation = Some(Default::default());
        }
        if self.roots {
            c.roots = Some(Default::default());
        }
        c
    }
}

/// One of the lists an upstream serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `tools/list`.
    Tools,
    /// `resources/list` and `resources/templates/list`.
    Resources,
    /// `prompts/list`.
    Prompts,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self, reason: String) {
        self.fail(reason, false);
    }

    /// Mark it down for `reason`; `cannot_start`: its command could not be started at all.
    fn fail(&self, reason: String, cannot_start: bool) {
        self.session.clear();
        {
            let mut l = self.write();
            l.peer = None;
            l.pid = None;
            l.last_error = Some(reason);
            l.cannot_start = cannot_start;
        }
        self.changed.notify_waiters();
    }

    /// The connection numbered `connects` stopped answering: open the circuit and have the
    /// supervisor kill and restart it (unless it was replaced already).
    fn stopped_answering(&self, connects: u64) {
        {
            let mut l = self.write();
            if l.connects != connects || l.peer.is_none() {
                return;
            }
            l.hung = true;
            l.peer = None;
            l.pid = None;
            l.last_error = Some("it stopped answering".into());
            if let Some(k) = l.kill.take() {
                k.cancel();
            }
        }
        tracing::warn!(upstream = %self.name, "stopped answering; restarting it");
        self.changed.notify_waiters();
    }

    fn hung(&self) -> bool {
        self.read().hung
    }
}

/// One upstream server: its cached lists and, while connected, its peer.
pub struct Upstream {
    name: String,
    timeout: Duration,
    /// The deadline of requests, and of calls of tools without one of their own.
    deadline: Deadline,
    /// Deadlines of particular tools.
    tool_deadlines: HashMap<String, Deadline>,
    shared: Arc<Shared>,
    /// HTTP upstreams: the pooled client `tools/call` is forwarded over.
    raw: Option<Arc<RawHttp>>,
}

/// The longest a health check waits for the `ping` answer.
const HEALTH_DEADLINE: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The typed error for a JSON-RPC error the transport made up for a response it refused.
fn refused_response(name: &str, error: &ErrorData) -> Option<UpstreamError> {
    let data = error.data.as_ref()?;
    let name = name.to_string();
    match data.get("warden")?.as_str()? {
        lines::TOO_LARGE => Some(UpstreamError::TooLarge {
            name,
            limit: data
                .get("limit")
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or_default(),
            size: data.get("size").and_then(serde_json::Value::as_u64),
        }),
        lines::MALFORMED => Some(UpstreamError::Malformed {
            name,
            detail: data
                .get("detail")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string(),
        }),
        _ => None,
    }
}

fn map_err(shared: &Shared, timeout: Duration, e: ServiceError) -> UpstreamError {
    let name = shared.name.clone();
    match e {
        ServiceError::McpError(error) => {
            refused_response(&name, &error).unwrap_or_else(|| UpstreamError::Protocol {
                name,
                message: error.message.to_string(),
                error: Box::new(error),
            })
        }
        ServiceError::Timeout { .. } => UpstreamError::Timeout {
            name,
            ms: timeout.as_millis(),
        },
        ServiceError::Cancelled { .. } => UpstreamError::Cancelled,
        ServiceError::UnexpectedResponse => UpstreamError::Malformed {
            name,
            detail: "it is not the kind of result that was asked for".into(),
        },
        _ if shared.hung() => UpstreamError::Restarting { name },
        _ => UpstreamError::Exited { name },
    }
}

impl Upstream {
    /// Start supervising an upstream. The first connection is attempted at once in the
    /// background; [`Upstream::wait_ready`] waits for it. `scrub_env` names environment
    /// variables a child process must not inherit (the agents' token variables).
    pub fn start(
        settings: &UpstreamSettings,
        scrub_env: Vec<String>,
        stop: CancellationToken,
    ) -> Upstream {
        let shared = Arc::new(Shared {
            name: settings.name.clone(),
            live: RwLock::new(Live::default()),
            changed: tokio::sync::Notify::new(),
            checking: AtomicBool::new(false),
            session: SessionCell::default(),
            inflight: Arc::default(),
            log_level: std::sync::Mutex::new(None),
            changes: tokio::sync::broadcast::channel(256).0,
            lines: Arc::default(),
            tasks: TaskTools::default(),
        });
        let raw = match &settings.transport {
            Transport::Http { url } => {
                let session = shared.session.clone();
                match RawHttp::new(&settings.name, url, settings.max_result_bytes, session) {
                    Ok(r) => Some(Arc::new(r)),
                    Err(e) => {
                        tracing::warn!(upstream = %settings.name, "{e}; calls go through the MCP client");
                        None
                    }
                }
            }
            _ => None,
        };
        tokio::spawn(supervise(
            shared.clone(),
            settings.transport.clone(),
            settings.asks,
            settings.timeout,
            scrub_env,
            settings.max_result_bytes,
            stop,
        ));
        Upstream {
            name: settings.name.clone(),
            timeout: settings.timeout,
            deadline: Deadline {
                idle: settings.timeout,
                max: settings.max_timeout.max(settings.timeout),
            },
            tool_deadlines: settings
                .tool_deadlines
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            shared,
            raw,
        }
    }

    /// The server name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The per-request timeout (without a word from the upstream).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Wait until the upstream has connected at least `connects` times, its command cannot be
    /// started, or `limit` passes. Returns whether it is up.
    pub async fn wait_connects(&self, connects: u64, limit: Duration) -> bool {
        self.wait_connects_until(connects, tokio::time::Instant::now() + limit)
            .await
    }

    /// Wait until the upstream is connected, its command cannot be started, or `deadline`
    /// passes. Returns whether it is up. Waiting for several upstreams one after another with
    /// the same start instant takes as long as the slowest, not the sum.
    pub async fn wait_until(&self, deadline: tokio::time::Instant) -> bool {
        self.wait_connects_until(1, deadline).await
    }

    async fn wait_connects_until(&self, connects: u64, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.shared.changed.notified();
            {
                let l = self.shared.read();
                if l.connects >= connects && l.peer.is_some() {
                    return true;
                }
                if l.cannot_start {
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Wait until the upstream is connected, its command cannot be started, or `limit` passes.
    /// Returns whether it is up.
    pub async fn wait_ready(&self, limit: Duration) -> bool {
        self.wait_connects(1, limit).await
    }

    /// Its health.
    pub fn status(&self) -> UpstreamStatus {
        let l = self.shared.read();
        UpstreamStatus {
            name: self.name.clone(),
            up: l.peer.is_some(),
            connects: l.connects,
            pid: l.pid,
            last_error: l.last_error.clone(),
            tools: l.tools.len(),
            cannot_start: l.cannot_start,
        }
    }

    /// The cached tool definition of `tool` (as the upstream names it).
    pub fn tool(&self, tool: &str) -> Option<Tool> {
        self.shared.read().tools.get(tool).cloned()
    }

    /// Every cached tool definition.
    pub fn tools(&self) -> Vec<Tool> {
        self.shared.read().tools.values().cloned().collect()
    }

    /// True when the upstream's cached list has `tool`.
    pub fn has_tool(&self, tool: &str) -> bool {
        self.shared.read().tools.contains_key(tool)
    }

    /// The cached resources.
    pub fn resources(&self) -> Arc<Vec<Resource>> {
        self.shared.read().resources.clone()
    }

    /// The cached resource templates.
    pub fn templates(&self) -> Arc<Vec<ResourceTemplate>> {
        self.shared.read().templates.clone()
    }

    /// Told what changed: lists (after the cache was refreshed) and subscribed resources.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// The cached prompts.
    pub fn prompts(&self) -> Arc<Vec<Prompt>> {
        self.shared.read().prompts.clone()
    }

    /// The peer of the current connection and its number.
    fn peer(&self) -> Result<(Peer<RoleClient>, u64), UpstreamError> {
        let l = self.shared.read();
        if l.hung {
            return Err(UpstreamError::Restarting {
                name: self.name.clone(),
            });
        }
        match &l.peer {
            Some(p) if !p.is_transport_closed() => Ok((p.clone(), l.connects)),
            _ => Err(UpstreamError::Down {
                name: self.name.clone(),
                reason: l
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not connected yet".into()),
            }),
        }
    }

    /// The deadline of a request for `tool` (as the upstream names it; `None` for requests
    /// that are not tool calls).
    pub fn deadline(&self, tool: Option<&str>) -> Deadline {
        tool.and_then(|t| self.tool_deadlines.get(t))
            .copied()
            .unwrap_or(self.deadline)
    }

    /// Run `fut` (a request on connection `live`) until it answers, its deadline passes (every
    /// note the relay hears restarts the idle wait, up to the deadline's maximum) or the
    /// relay's agent cancels it.
    async fn bounded<T, E>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
        live: &(Peer<RoleClient>, u64),
        relay: &Relay,
        deadline: Deadline,
        map: impl FnOnce(E) -> UpstreamError,
    ) -> Result<T, UpstreamError> {
        let start = tokio::time::Instant::now();
        let end = start + deadline.max;
        let mut idle_until = (start + deadline.idle).min(end);
        tokio::pin!(fut);
        let r = loop {
            tokio::select! {
                biased;
                r = &mut fut => break r.map_err(map),
                _ = relay.cancel.cancelled() => break Err(UpstreamError::Cancelled),
                _ = relay.beat() => {
                    idle_until = (tokio::time::Instant::now() + deadline.idle).min(end);
                }
                _ = tokio::time::sleep_until(idle_until), if relay.asking() && idle_until < end => {
                    idle_until = (tokio::time::Instant::now() + deadline.idle).min(end);
                }
                _ = tokio::time::sleep_until(idle_until) => {
                    let limit = if idle_until >= end { deadline.max } else { deadline.idle };
                    break Err(UpstreamError::Timeout { name: self.name.clone(), ms: limit.as_millis() });
                }
            }
        };
        if matches!(r, Err(UpstreamError::Timeout { .. })) {
            self.health_check(live);
        }
        r
    }

    /// Send `request` on connection `live` and wait for its result within `deadline`. Notes the
    /// upstream sends about it (by the progress token rmcp put on it) go to `relay`; a request
    /// given up on (deadline, cancellation) is cancelled upstream.
    async fn request(
        &self,
        live: &(Peer<RoleClient>, u64),
        request: ClientRequest,
        relay: &Relay,
        deadline: Deadline,
    ) -> Result<ServerResult, UpstreamError> {
        let handle = live
            .0
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(self.rmcp_error())?;
        let _routed = self
            .shared
            .inflight
            .register(handle.progress_token.clone(), relay.clone());
        let mut abandon = CancelUpstream {
            peer: live.0.clone(),
            id: Some(handle.id.clone()),
        };
        let r = self
            .bounded(
                handle.await_response(),
                live,
                relay,
                deadline,
                self.rmcp_error(),
            )
            .await;
        if !matches!(
            r,
            Err(UpstreamError::Timeout { .. } | UpstreamError::Cancelled)
        ) {
            abandon.id = None;
        }
        r
    }

    /// After a timeout: `ping` the upstream; if that goes unanswered too, it has stopped
    /// answering and is restarted. One check at a time.
    fn health_check(&self, (peer, connects): &(Peer<RoleClient>, u64)) {
        if self.shared.checking.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = self.shared.clone();
        let peer = peer.clone();
        let connects = *connects;
        let deadline = self.timeout.min(HEALTH_DEADLINE);
        tokio::spawn(async move {
            let ping = peer.send_request(ClientRequest::PingRequest(PingRequest::default()));
            let answered = matches!(tokio::time::timeout(deadline, ping).await, Ok(Ok(_)));
            if !answered {
                shared.stopped_answering(connects);
            }
            shared.checking.store(false, Ordering::SeqCst);
        });
    }

    fn rmcp_error(&self) -> impl FnOnce(ServiceError) -> UpstreamError + '_ {
        |e| map_err(&self.shared, self.timeout, e)
    }

    /// The name the supervisor uses in messages.
    pub fn label(&self) -> &str {
        &self.shared.name
    }
}

/// Sends `notifications/cancelled` for request `id` when dropped with one: the request was given
/// up on (deadline, or the agent cancelled) before its response arrived.
struct CancelUpstream {
    peer: Peer<RoleClient>,
    id: Option<RequestId>,
}

impl Drop for CancelUpstream {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let peer = self.peer.clone();
        tokio::spawn(async move {
            let note = CancelledNotificationParam::new(
                Some(id),
                Some("Warden gave up on the request (deadline, or the agent cancelled it)".into()),
            );
            let _ = peer.notify_cancelled(note).await;
        });
    }
}
