//! The gateway: the enforcement pipeline, the upstreams and the live sessions.
//!
//! One [`Session`] per downstream MCP session holds one granted mission and its state (a
//! [`MissionCell`], shared by the mission's sessions and kept in the store). Every request goes
//! through the [`Enforcer`]: this crate parses and renders MCP. The pipeline of each request is in [`pipeline`]; resources, prompts and
//! completions in [`reads`]; the words agents read in [`text`]. Different sessions, and the
//! calls of one session, run in parallel.
//!
//! When an upstream's tools, resources or prompts change, Warden refreshes its lists and tells
//! every session that may see that upstream (`notifications/*/list_changed`); the session's
//! next list is filtered as always.

// Logging is deprecated by SEP-2577; clients of earlier revisions still use it.
#![allow(deprecated)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResult, LoggingLevel, Tool};
use rmcp::{Peer, RoleServer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use warden_core::mission::Mission;
use warden_core::session::SessionState;
use warden_core::{Breakers, Decision, Engine};
use warden_enforce::grants::MissionAuthority;
use warden_enforce::token::Verified;
use warden_enforce::{Actor, Enforcer, MissionCell};

use crate::settings::GatewaySettings;
use crate::upstream::{
    Change, ClientAsks, ListKind, Upstream, UpstreamStatus, ELICITATION, ROOTS, SAMPLING,
};

pub mod held;
pub mod missions;
pub mod pipeline;
pub mod reads;
pub mod rounds;
pub mod subscriptions;
pub mod tasks;
pub mod text;

pub use pipeline::Caller;
pub use text::{exposure_line, refusal_text, result_text, thousands};

/// The catalog tool name under which `resources/read` of a server is decided.
pub const RESOURCES_READ: &str = "resources/read";
/// The catalog tool name under which `prompts/get` of a server is decided.
pub const PROMPTS_GET: &str = "prompts/get";

/// Who a session acts as: the agent, the person it acts for, and the mission they agreed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The agent (authenticated by its bearer token over HTTP, named by the operator on stdio).
    pub agent: String,
    /// The person the agent acts for.
    pub principal: String,
    /// The mission template.
    pub template: String,
    /// The principal's own words for the task (trusted text).
    pub purpose: String,
    /// Named by the trusted authenticating proxy (`[identity.proxy]`), not by the operator.
    pub proxied: bool,
}

/// The mission a session runs under, as presented.
#[derive(Debug, Clone)]
pub enum Claim {
    /// A mission token a person granted, verified (see [`warden_enforce::token`]).
    Token(Box<Verified>),
    /// Named by identity headers or flags: from the trusted proxy, or allowed by
    /// `--insecure-identity` (local development only).
    Headers(Identity),
}

impl From<Identity> for Claim {
    fn from(who: Identity) -> Claim {
        Claim::Headers(who)
    }
}

impl Claim {
    /// The agent it is for.
    pub fn agent(&self) -> &str {
        match self {
            Claim::Token(v) => &v.mission.agent,
            Claim::Headers(who) => &who.agent,
        }
    }
}

/// Counts live sessions; the count drops when a session is dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One downstream session: its mission and its state.
pub struct Session {
    id: String,
    /// What the log, explanations and traces call it ([`crate::naming::session_name`]).
    name: String,
    mission: Mission,
    /// Catalog names the mission may ever use (what `tools/list` may show).
    visible: Arc<BTreeSet<String>>,
    /// SHA-256 of the bearer token that opened it (HTTP), checked on every request.
    token: Option<[u8; 32]>,
    /// The mission's state, shared by its sessions (see [`missions`]).
    inner: Arc<MissionCell>,
    last_used: Mutex<Instant>,
    /// The least severe log level the agent asked for (`logging/setLevel`); none: no log
    /// messages.
    log_level: Mutex<Option<LoggingLevel>>,
    /// The agent's MCP peer, for notifications that belong to no request (lists changed).
    peer: std::sync::OnceLock<Peer<RoleServer>>,
    /// The agent's `subscriptions/listen` streams (2026-07-28): such notifications go there.
    sinks: Mutex<Vec<(u64, rmcp::service::SubscriptionSink)>>,
    /// The tasks it started (see [`tasks`]).
    tasks: tasks::SessionTasks,
    _live: LiveGuard,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .field("mission", &self.mission.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session id (an HTTP `Mcp-Session-Id`: never logged or shown, see [`Session::name`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's name in the decision log, explanations and traces: a keyed hash of its id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The mission.
    pub fn mission(&self) -> &Mission {
        &self.mission
    }

    /// The token digest that opened it.
    pub fn token(&self) -> Option<&[u8; 32]> {
        self.token.as_ref()
    }

    /// How long since its last request.
    pub fn idle_for(&self) -> Duration {
        lock(&self.last_used).elapsed()
    }

    /// Note a request now.
    pub fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// The log level the agent asked for, if any.
    pub fn log_level(&self) -> Option<LoggingLevel> {
        *lock(&self.log_level)
    }

    /// Set the log level the agent asked for.
    pub fn set_log_level(&self, level: LoggingLevel) {
        *lock(&self.log_level) = Some(level);
    }

    /// Note the agent's MCP peer (the first one seen stays).
    pub fn attach_peer(&self, peer: &Peer<RoleServer>) {
        if self.peer.get().is_none() {
            let _ = self.peer.set(peer.clone());
        }
    }

    /// The agent's MCP peer, once one was seen.
    pub fn peer(&self) -> Option<&Peer<RoleServer>> {
        self.peer.get()
    }

    /// The agent's open `subscriptions/listen` streams.
    pub(crate) fn sinks(&self) -> Vec<rmcp::service::SubscriptionSink> {
        lock(&self.sinks).iter().map(|(_, s)| s.clone()).collect()
    }

    /// Add a `subscriptions/listen` stream; returns its number, for [`Session::remove_sink`].
    pub(crate) fn add_sink(&self, sink: rmcp::service::SubscriptionSink) -> u64 {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) as u64;
        lock(&self.sinks).push((n, sink));
        n
    }

    /// Remove stream `n`.
    pub(crate) fn remove_sink(&self, n: u64) {
        lock(&self.sinks).retain(|(k, _)| *k != n);
    }

    /// A copy of the mission's state as this process sees it (for tests and diagnostics).
    pub async fn state(&self) -> SessionState {
        self.inner.snapshot().await.0
    }

    /// Who acts in this session, for the enforcement pipeline.
    pub(crate) fn actor(&self) -> Actor<'_> {
        Actor {
            mission: &self.mission,
            cell: &self.inner,
            session: &self.name,
        }
    }
}

/// The gateway: the enforcement pipeline, the upstreams and the live sessions.
pub struct Gateway {
    enforcer: Arc<Enforcer>,
    upstreams: BTreeMap<String, Upstream>,
    live: Arc<AtomicUsize>,
    stateless: Mutex<HashMap<[u8; 32], Arc<Session>>>,
    /// Sessions of HTTP MCP sessions, by `Mcp-Session-Id`: shared by the rmcp handler of the
    /// session and the `tools/call` fast path.
    http_sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// `tools/call` requests answered by the HTTP fast path.
    fast_calls: AtomicUsize,
    /// Every session opened, to tell them when lists change.
    sessions: Mutex<Vec<Weak<Session>>>,
    /// URIs named in upstreams' results, and the upstream that named each (see [`reads`]).
    named_uris: Mutex<HashMap<String, String>>,
    /// The missions and their state, shared by their sessions (see [`missions`]).
    missions: missions::Missions,
    /// Resource subscriptions (see [`subscriptions`]).
    subscribers: Mutex<subscriptions::Subscribers>,
    /// Calls waiting for their 2026-07-28 client's answers (see [`rounds`]).
    parked: Mutex<rounds::ParkedCalls>,
    settings: GatewaySettings,
    /// Grants and verifies mission tokens; without one, no mission token is accepted.
    authority: std::sync::OnceLock<Arc<MissionAuthority>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .field("live_sessions", &self.live_sessions())
            .finish_non_exhaustive()
    }
}

/// Stateless sessions idle longer than this are forgotten.
const STATELESS_IDLE: Duration = Duration::from_secs(30 * 60);
/// At most this many stateless sessions are kept; past it the idlest are dropped.
const STATELESS_MAX: usize = 10_000;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What happened to one call, for callers that want more than the MCP result.
#[derive(Debug)]
pub struct CallOutcome {
    /// The decision as logged (`None` when it could not be recorded: then the call was denied).
    pub decision: Option<Decision>,
    /// What the agent receives.
    pub result: CallToolResult,
}

impl Gateway {
    /// Start the gateway: start every upstream and wait (up to each one's timeout, in
    /// parallel) for the first connections. An upstream whose command cannot be started (the
    /// program does not exist or is not executable) is not waited for. The gateway starts
    /// whatever happens to its upstreams and fails closed on those that are down: their tools
    /// are not offered, and calls to them are refused with the reason
    /// ([`Gateway::upstream_status`] says which and why). They keep retrying in the background.
    pub async fn start(enforcer: Arc<Enforcer>, settings: GatewaySettings) -> Arc<Gateway> {
        let stop = CancellationToken::new();
        let engine = enforcer.engine_arc().clone();
        let scrub: Vec<String> = engine
            .config()
            .agents
            .values()
            .filter_map(|a| a.token_env.clone())
            .collect();
        let mut upstreams = BTreeMap::new();
        let catalog = &engine.config().catalog;
        for u in &settings.upstreams {
            let mut u = u.clone();
            let described = |what: &str| catalog.get(&format!("{}.{what}", u.name)).is_some();
            u.asks = ClientAsks {
                sampling: described(SAMPLING),
                elicitation: described(ELICITATION),
                roots: described(ROOTS),
            };
            upstreams.insert(
                u.name.clone(),
                Upstream::start(&u, scrub.clone(), stop.child_token()),
            );
        }
        // Every supervisor is running already; each wait's deadline counts from this one
        // instant, so waiting for them in turn takes as long as the slowest, not the sum.
        let begun = tokio::time::Instant::now();
        for u in upstreams.values() {
            let _ = u.wait_until(begun + u.timeout()).await;
        }
        drop(engine);
        let gateway = Arc::new(Gateway {
            enforcer,
            upstreams,
            live: Arc::new(AtomicUsize::new(0)),
            stateless: Mutex::new(HashMap::new()),
            http_sessions: Mutex::new(HashMap::new()),
            fast_calls: AtomicUsize::new(0),
            sessions: Mutex::new(Vec::new()),
            named_uris: Mutex::new(HashMap::new()),
            missions: missions::Missions::default(),
            subscribers: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            settings,
            authority: std::sync::OnceLock::new(),
            stop,
        });
        for (name, u) in &gateway.upstreams {
            tokio::spawn(pass_on_changes(
                Arc::downgrade(&gateway),
                name.clone(),
                u.changes(),
                gateway.stop.child_token(),
            ));
        }
        gateway
    }

    /// Grant and verify mission tokens with `authority` (once; later calls are ignored).
    pub fn set_authority(&self, authority: Arc<MissionAuthority>) {
        let _ = self.authority.set(authority);
    }

    /// The mission authority, if one was set.
    pub fn authority(&self) -> Option<&Arc<MissionAuthority>> {
        self.authority.get()
    }

    /// The mission `token` gives agent `agent` now. A refused token is audited before the
    /// reason is returned (a token that cannot be audited is refused all the same).
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify_mission_token(&self, agent: &str, token: &str) -> Result<Verified, String> {
        let Some(authority) = self.authority() else {
            return Err(
                "this gateway accepts no mission tokens (no mission key is configured)".into(),
            );
        };
        match authority.verifier().verify(token, agent, crate::now_ms()) {
            Ok(v) => Ok(v),
            Err(e) => {
                let reason = e.to_string();
                self.audit_refusal(agent, Some(token), &reason).await;
                Err(reason)
            }
        }
    }

    /// Audit that agent `agent` presented a mission (`token`, or identity headers: `None`)
    /// that was refused, and why. Without a mission authority, or when the store fails, the
    /// refusal is logged instead (it is refused all the same).
    pub async fn audit_refusal(&self, agent: &str, token: Option<&str>, reason: &str) {
        let audited = match self.authority() {
            Some(a) => a
                .audit_refusal(agent, token, reason, crate::now_ms())
                .await
                .map_err(|e| e.to_string()),
            None => Err("no mission authority".to_string()),
        };
        if let Err(e) = audited {
            tracing::warn!(
                "audit: cannot record a refused mission of agent `{agent}` ({reason}): {e}"
            );
        }
    }

    /// The agent of `session` asked for log messages at `level` and above: ask every upstream it
    /// may use that serves logs for them.
    pub async fn set_log_level(&self, session: &Session, level: LoggingLevel) {
        session.set_log_level(level);
        for (name, u) in &self.upstreams {
            let prefix = format!("{name}.");
            if u.logs() && session.visible.iter().any(|v| v.starts_with(&prefix)) {
                u.want_logs(level).await;
            }
        }
    }

    /// Tell every session that may see something of upstream `server` that its `kind` list
    /// changed.
    async fn list_changed(&self, server: &str, kind: ListKind) {
        let prefix = format!("{server}.");
        let sessions: Vec<Arc<Session>> = {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|w| w.strong_count() > 0);
            sessions
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|s| s.visible.iter().any(|v| v.starts_with(&prefix)))
                .collect()
        };
        for s in sessions {
            let sinks = s.sinks();
            if !sinks.is_empty() {
                for sink in sinks {
                    let _ = match kind {
                        ListKind::Tools => sink.notify_tool_list_changed().await,
                        ListKind::Resources => sink.notify_resource_list_changed().await,
                        ListKind::Prompts => sink.notify_prompt_list_changed().await,
                    };
                }
            } else if let Some(peer) = s.peer.get() {
                let _ = match kind {
                    ListKind::Tools => peer.notify_tool_list_changed().await,
                    ListKind::Resources => peer.notify_resource_list_changed().await,
                    ListKind::Prompts => peer.notify_prompt_list_changed().await,
                };
            }
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        self.enforcer.engine()
    }

    /// The enforcement pipeline.
    pub fn enforcer(&self) -> &Arc<Enforcer> {
        &self.enforcer
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }

    /// An upstream by server name.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.get(name)
    }

    /// Health of every upstream.
    pub fn upstream_status(&self) -> Vec<UpstreamStatus> {
        self.upstreams.values().map(Upstream::status).collect()
    }

    /// What the catalog does not cover of what the upstreams offer (as of their lists now):
    /// tools it does not describe (calls to them are denied), and arguments a tool's input
    /// schema names that its catalog entry does not declare (calls that pass them are denied).
    /// One line each, for the operator.
    pub fn catalog_gaps(&self) -> Vec<String> {
        let catalog = &self.engine().config().catalog;
        let mut out = Vec::new();
        for (server, u) in &self.upstreams {
            let mut tools = u.tools();
            tools.sort_by(|a, b| a.name.cmp(&b.name));
            for t in tools {
                let name = format!("{server}.{}", t.name);
                let Some(spec) = catalog.get(&name) else {
                    out.push(format!(
                        "upstream tool `{name}` is not in the catalog: calls to it are denied"
                    ));
                    continue;
                };
                let missing: Vec<String> = t
                    .input_schema
                    .get("properties")
                    .and_then(serde_json::Value::as_object)
                    .into_iter()
                    .flat_map(|p| p.keys())
                    .filter(|k| !spec.declares(k))
                    .map(|k| format!("`{k}`"))
                    .collect();
                if !missing.is_empty() {
                    out.push(format!(
                        "`{name}` takes {} (its input schema says so), which its catalog entry does not declare: calls that pass them are denied",
                        missing.join(", ")
                    ));
                }
            }
        }
        out
    }

    /// Sessions alive now (stdio, HTTP and stateless).
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Replace the breakers set in this process (on top of the store's).
    pub fn set_breakers(&self, b: Breakers) {
        self.enforcer.set_breakers(b);
    }

    /// Stop every upstream (children are killed) and refuse further work.
    pub fn shutdown(&self) {
        self.stop.cancel();
        lock(&self.stateless).clear();
        lock(&self.http_sessions).clear();
        // Parked calls are cancelled upstream as they are dropped.
        lock(&self.parked).clear();
        lock(&self.subscribers).clear();
    }

    /// The session of HTTP MCP session `sid`, opened for `who` on first use. Later requests get
    /// the same session whatever their identity headers say; the caller checks the token.
    ///
    /// # Errors
    /// As [`Gateway::open_session`].
    pub fn http_session(
        &self,
        sid: &str,
        who: &Claim,
        token: [u8; 32],
    ) -> Result<Arc<Session>, crate::GatewayError> {
        let mut map = lock(&self.http_sessions);
        if let Some(s) = map.get(sid) {
            return Ok(s.clone());
        }
        let s = self.open_session(sid, who, Some(token))?;
        map.insert(sid.to_string(), s.clone());
        Ok(s)
    }

    /// How many `tools/call` requests the HTTP fast path has answered.
    pub fn fast_calls(&self) -> usize {
        self.fast_calls.load(Ordering::Relaxed)
    }

    /// Count one `tools/call` answered by the HTTP fast path.
    pub fn count_fast_call(&self) {
        self.fast_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The open session of HTTP MCP session `sid`, if any.
    pub fn find_http_session(&self, sid: &str) -> Option<Arc<Session>> {
        lock(&self.http_sessions).get(sid).cloned()
    }

    /// Forget HTTP session `sid` (its MCP session ended), if it is still `session`.
    pub fn end_http_session(&self, sid: &str, session: &Arc<Session>) {
        let mut map = lock(&self.http_sessions);
        if map.get(sid).is_some_and(|s| Arc::ptr_eq(s, session)) {
            map.remove(sid);
            session.tasks.cancel_all();
        }
    }

    /// Forget every HTTP session that `keep` rejects (its MCP session is gone).
    pub fn retain_http_sessions(&self, keep: impl Fn(&str, &Session) -> bool) {
        lock(&self.http_sessions).retain(|sid, s| {
            let kept = keep(sid, s);
            if !kept {
                s.tasks.cancel_all();
            }
            kept
        });
    }

    /// The HTTP sessions idle for longer than `idle`.
    pub fn idle_http_sessions(&self, idle: Duration) -> Vec<String> {
        lock(&self.http_sessions)
            .iter()
            .filter(|(_, s)| s.idle_for() > idle)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Open a session under the mission `who` presents. Its decisions name it by
    /// [`crate::naming::session_name`] of `id`. A mission token's session runs under the
    /// token's mission, with the state of the root of its chain (a sub-agent's taint is its
    /// parent's); a mission named by headers is granted here, `m-` and a hash of the identity.
    ///
    /// # Errors
    /// When the template, agent or principal is unknown or the template is not for the agent.
    pub fn open_session(
        &self,
        id: &str,
        who: &Claim,
        token: Option<[u8; 32]>,
    ) -> Result<Arc<Session>, crate::GatewayError> {
        let now = crate::now_ms();
        let name = crate::naming::session_name(id);
        let visible = |mission: &Mission| -> BTreeSet<String> {
            self.engine()
                .visible_tools(mission)
                .into_iter()
                .map(|s| s.name.clone())
                .collect()
        };
        let entry = match who {
            Claim::Token(v) => {
                let key = missions::token_key(&v.mission.id);
                self.missions.get_or_grant(&key, now, |_| {
                    let mission = (*v.mission).clone();
                    let seen = visible(&mission);
                    Ok::<_, crate::GatewayError>((mission, seen))
                })?
            }
            Claim::Headers(who) => {
                let key = missions::mission_key(who, token.as_ref());
                self.missions.get_or_grant(&key, now, |mission_id| {
                    let mut mission = self
                        .engine()
                        .grant(
                            mission_id,
                            &who.template,
                            &who.agent,
                            &who.principal,
                            &who.purpose,
                            now,
                        )
                        .map_err(crate::GatewayError::Mission)?;
                    if who.proxied {
                        mission.auth = "proxy".into();
                    }
                    let seen = visible(&mission);
                    Ok::<_, crate::GatewayError>((mission, seen))
                })?
            }
        };
        self.live.fetch_add(1, Ordering::SeqCst);
        let session = Arc::new(Session {
            id: id.to_string(),
            visible: entry.visible,
            token,
            inner: entry.state,
            mission: entry.mission,
            name,
            last_used: Mutex::new(Instant::now()),
            log_level: Mutex::new(None),
            peer: std::sync::OnceLock::new(),
            sinks: Mutex::new(Vec::new()),
            tasks: tasks::SessionTasks::default(),
            _live: LiveGuard(self.live.clone()),
        });
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= 1024 && sessions.len().is_power_of_two() {
            sessions.retain(|w| w.strong_count() > 0);
        }
        sessions.push(Arc::downgrade(&session));
        Ok(session)
    }

    /// The session for stateless requests (no `Mcp-Session-Id`): keyed by the bearer token, the
    /// identity headers and the client's `X-Warden-Session` value (`hint`, may be empty), so the
    /// same caller with the same mission keeps its taint and separate sessions stay separate.
    ///
    /// # Errors
    /// As [`Gateway::open_session`].
    pub fn stateless_session(
        &self,
        who: &Claim,
        token: [u8; 32],
        hint: &str,
    ) -> Result<Arc<Session>, crate::GatewayError> {
        let mut h = Sha256::new();
        h.update(match who {
            Claim::Token(v) => missions::token_key(&v.mission.id),
            Claim::Headers(who) => missions::mission_key(who, Some(&token)),
        });
        h.update(token);
        h.update(hint.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let mut map = lock(&self.stateless);
        if let Some(s) = map.get(&key) {
            *lock(&s.last_used) = Instant::now();
            return Ok(s.clone());
        }
        if map.len() >= STATELESS_MAX {
            map.retain(|_, s| lock(&s.last_used).elapsed() < STATELESS_IDLE);
        }
        if map.len() >= STATELESS_MAX {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| *lock(&s.last_used))
                .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        let id = format!("sl-{}", hex::encode(key.get(..12).unwrap_or_default()));
        let s = self.open_session(&id, who, Some(token))?;
        map.insert(key, s.clone());
        Ok(s)
    }

    /// The tools `session` may see: the mission's visible catalog tools that their upstream
    /// serves, named `server.tool`, in catalog order.
    pub fn list_tools(&self, session: &Session) -> Vec<Tool> {
        let mut out = Vec::new();
        for spec in self.engine().visible_tools(&session.mission) {
            if let Some(t) = self
                .upstreams
                .get(&spec.server)
                .and_then(|u| u.tool(&spec.tool))
            {
                let mut t = t;
                t.name = spec.name.clone().into();
                out.push(t);
            }
        }
        out
    }
}

/// Pass `server`'s changes on to the sessions, until the gateway stops.
async fn pass_on_changes(
    gateway: Weak<Gateway>,
    server: String,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
    stop: CancellationToken,
) {
    loop {
        let change = tokio::select! {
            _ = stop.cancelled() => return,
            k = changes.recv() => match k {
                Ok(k) => k,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
        };
        let Some(gw) = gateway.upgrade() else { return };
        match change {
            Change::List(kind) => gw.list_changed(&server, kind).await,
            Change::Updated(uri) => gw.resource_updated(&server, &uri).await,
            Change::Reconnected => gw.resubscribe(&server).await,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
