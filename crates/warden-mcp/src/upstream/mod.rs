//! Upstream MCP servers: one supervised client connection each.
//!
//! A supervisor task connects (spawning the child process, opening the HTTP session or calling
//! the in-process connector), lists the server's tools, resources and prompts into a cache, and
//! waits for the connection to end; then it marks the upstream down and reconnects with
//! exponential backoff (100 ms doubling to 5 s, reset after a connection that lived 10 s).
//! Calls made while an upstream is down fail at once with a clear error; calls in flight when it
//! dies fail when the transport closes, and at the latest at the upstream's `timeout_ms`.
//!
//! A call that times out is cancelled upstream (`notifications/cancelled`), and the upstream is
//! health-checked with a `ping` (deadline: its timeout, at most 5 s). If the ping fails too, the
//! upstream has stopped answering: it is killed and restarted at once, and until it is back every
//! call to it fails immediately ([`UpstreamError::Restarting`]) instead of waiting out the
//! timeout.
//!
//! Child processes and in-process servers are read through `lines::LineTransport`, which
//! refuses a message over the upstream's `max_result_bytes` with an error for the request it
//! answers ([`UpstreamError::TooLarge`]) rather than dropping it.
//!
//! Upstreams may not talk to the agent: Warden advertises no client capabilities upstream and
//! answers sampling, roots and elicitation requests with an error.

// Sampling and roots are deprecated by SEP-2577; Warden still refuses them explicitly.
#![allow(deprecated)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ClientRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorCode, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    Implementation, JsonObject, ListRootsResult, PingRequest, Prompt, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData, Peer, RoleClient, ServiceExt};
use tokio_util::sync::CancellationToken;
use warden_core::{Call, Permitted};

use crate::rawhttp::RawHttp;
use crate::settings::{Transport, UpstreamSettings};

mod error;
pub(crate) mod lines;
pub(crate) mod session;
mod supervisor;

pub use error::UpstreamError;
use lines::LineTransport;
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
}

#[derive(Clone, Default)]
struct Live {
    peer: Option<Peer<RoleClient>>,
    pid: Option<u32>,
    tools: Arc<HashMap<String, Tool>>,
    resources: Arc<Vec<Resource>>,
    prompts: Arc<Vec<Prompt>>,
    connects: u64,
    last_error: Option<String>,
    /// The upstream stopped answering and is being restarted (the circuit is open).
    hung: bool,
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
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Live> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self, reason: String) {
        self.session.clear();
        {
            let mut l = self.write();
            l.peer = None;
            l.pid = None;
            l.last_error = Some(reason);
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
    shared: Arc<Shared>,
    /// HTTP upstreams: the pooled client `tools/call` is forwarded over.
    raw: Option<RawHttp>,
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
        });
        let raw = match &settings.transport {
            Transport::Http { url } => {
                let session = shared.session.clone();
                match RawHttp::new(&settings.name, url, settings.max_result_bytes, session) {
                    Ok(r) => Some(r),
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
            settings.timeout,
            scrub_env,
            settings.max_result_bytes,
            stop,
        ));
        Upstream {
            name: settings.name.clone(),
            timeout: settings.timeout,
            shared,
            raw,
        }
    }

    /// The server name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Wait until the upstream has connected at least `connects` times, or `limit` passes.
    /// Returns whether it is up.
    pub async fn wait_connects(&self, connects: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.changed.notified();
            {
                let l = self.shared.read();
                if l.connects >= connects && l.peer.is_some() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Wait until the upstream is connected, or `limit` passes. Returns whether it is up.
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
        }
    }

    /// The cached tool definition of `tool` (as the upstream names it).
    pub fn tool(&self, tool: &str) -> Option<Tool> {
        self.shared.read().tools.get(tool).cloned()
    }

    /// True when the upstream's cached list has `tool`.
    pub fn has_tool(&self, tool: &str) -> bool {
        self.shared.read().tools.contains_key(tool)
    }

    /// The cached resources.
    pub fn resources(&self) -> Arc<Vec<Resource>> {
        self.shared.read().resources.clone()
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

    /// Run `fut` (a request on connection `live`) within the timeout and until `cancel`.
    async fn bounded<T, E>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
        live: &(Peer<RoleClient>, u64),
        cancel: &CancellationToken,
        map: impl FnOnce(E) -> UpstreamError,
    ) -> Result<T, UpstreamError> {
        // Dropping `fut` (timeout or cancellation) sends `notifications/cancelled` upstream.
        let r = tokio::select! {
            r = tokio::time::timeout(self.timeout, fut) => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(map(e)),
                Err(_) => Err(UpstreamError::Timeout { name: self.name.clone(), ms: self.timeout.as_millis() }),
            },
            _ = cancel.cancelled() => Err(UpstreamError::Cancelled),
        };
        if matches!(r, Err(UpstreamError::Timeout { .. })) {
            self.health_check(live);
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

    /// Forward an authorized tool call. The upstream's result is returned unchanged.
    ///
    /// # Errors
    /// When the upstream is down, times out, closes, answers with a JSON-RPC error or asks for
    /// client input; or when `cancel` fires (the request is then cancelled upstream).
    pub async fn call(
        &self,
        permitted: &Permitted<Call>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, UpstreamError> {
        let call = permitted.get();
        let live = self.peer()?;
        if let Some(raw) = &self.raw {
            let empty = JsonObject::new();
            let args = match &call.args {
                serde_json::Value::Object(m) => m,
                _ => &empty,
            };
            // When the upstream forgot the session, any request of the supervisor's client
            // meets the 404 and opens a new one, which the call then waits for.
            let renew = || {
                let peer = live.0.clone();
                tokio::spawn(async move {
                    let ping = ClientRequest::PingRequest(PingRequest::default());
                    let _ = tokio::time::timeout(HEALTH_DEADLINE, peer.send_request(ping)).await;
                });
            };
            // Dropping the call (timeout or cancellation) sends `notifications/cancelled`.
            let mut r = self
                .bounded(raw.call(&call.tool, args, renew), &live, cancel, |e| e)
                .await?;
            if r.result_type.is_none() {
                r.result_type = Some(rmcp::model::ResultType::COMPLETE);
            }
            return Ok(r);
        }
        let mut params = CallToolRequestParams::new(call.tool.clone());
        if let serde_json::Value::Object(m) = &call.args {
            params = params.with_arguments(JsonObject::clone(m));
        }
        match self
            .bounded(
                live.0.call_tool_once(params),
                &live,
                cancel,
                self.rmcp_error(),
            )
            .await?
        {
            CallToolResponse::Complete(mut r) => {
                // An upstream on an older protocol leaves `resultType` out; downstream peers on
                // 2026-07-28 require it (rmcp strips it again for older downstream peers).
                if r.result_type.is_none() {
                    r.result_type = Some(rmcp::model::ResultType::COMPLETE);
                }
                Ok(r)
            }
            CallToolResponse::InputRequired(_) => Err(UpstreamError::Unsupported {
                name: self.name.clone(),
                what: "asked for input from the client".into(),
            }),
            _ => Err(UpstreamError::Unsupported {
                name: self.name.clone(),
                what: "answered with a task".into(),
            }),
        }
    }

    /// Forward an authorized `resources/read` (the call's `uri` argument).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn read_resource(
        &self,
        permitted: &Permitted<Call>,
        cancel: &CancellationToken,
    ) -> Result<ReadResourceResult, UpstreamError> {
        let uri = permitted
            .get()
            .args
            .get("uri")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let live = self.peer()?;
        match self
            .bounded(
                live.0
                    .read_resource_once(ReadResourceRequestParams::new(uri)),
                &live,
                cancel,
                self.rmcp_error(),
            )
            .await?
        {
            ReadResourceResponse::Complete(r) => Ok(r),
            _ => Err(UpstreamError::Unsupported {
                name: self.name.clone(),
                what: "asked for input from the client".into(),
            }),
        }
    }

    /// Forward an authorized `prompts/get` (the call's `name` and `arguments` arguments).
    ///
    /// # Errors
    /// As [`Upstream::call`].
    pub async fn get_prompt(
        &self,
        permitted: &Permitted<Call>,
        cancel: &CancellationToken,
    ) -> Result<GetPromptResult, UpstreamError> {
        let args = &permitted.get().args;
        let name = args
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let mut params = GetPromptRequestParams::new(name);
        if let Some(serde_json::Value::Object(m)) = args.get("arguments") {
            params = params.with_arguments(m.clone());
        }
        let live = self.peer()?;
        match self
            .bounded(
                live.0.get_prompt_once(params),
                &live,
                cancel,
                self.rmcp_error(),
            )
            .await?
        {
            GetPromptResponse::Complete(r) => Ok(r),
            _ => Err(UpstreamError::Unsupported {
                name: self.name.clone(),
                what: "asked for input from the client".into(),
            }),
        }
    }

    /// The name the supervisor uses in messages.
    pub fn label(&self) -> &str {
        &self.shared.name
    }
}
