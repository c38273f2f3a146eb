//! The enforcement pipeline: decide, log, commit, forward, absorb.
//!
//! One [`Session`] per downstream MCP session holds one granted mission and one
//! [`SessionState`]. Its mutex is held for the whole of a call — decision, log, forward and
//! absorb — so calls of one session are serialized and a read's output is in the session's
//! taint before the next call is decided. Different sessions run in parallel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolResult, ContentBlock, GetPromptResult, JsonObject, Prompt, ReadResourceResult,
    Resource, ResourceContents, Tool,
};
use rmcp::ErrorData;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use warden_core::mission::{Mission, MissionUsage};
use warden_core::model::{Reason, Stage};
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Decided, Decision, Engine, Outcome, Permitted};

use crate::log::{DecisionLog, EntryKind, LogEntry, LogError, OutcomeEntry};
use crate::settings::GatewaySettings;
use crate::upstream::{Upstream, UpstreamError, UpstreamStatus};

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
}

/// Counts live sessions; the count drops when a session is dropped.
struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct SessionInner {
    state: SessionState,
    usage: MissionUsage,
}

/// One downstream session: its mission and its state.
pub struct Session {
    id: String,
    /// What the log, explanations and traces call it ([`crate::naming::session_name`]).
    name: String,
    mission: Mission,
    /// Catalog names the mission may ever use (what `tools/list` may show).
    visible: BTreeSet<String>,
    /// SHA-256 of the bearer token that opened it (HTTP), checked on every request.
    token: Option<[u8; 32]>,
    inner: tokio::sync::Mutex<SessionInner>,
    last_used: Mutex<Instant>,
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

    /// A copy of the session state (for tests and diagnostics).
    pub async fn state(&self) -> SessionState {
        self.inner.lock().await.state.clone()
    }
}

/// The gateway: engine, upstreams, decision log and live sessions.
pub struct Gateway {
    engine: Arc<Engine>,
    upstreams: BTreeMap<String, Upstream>,
    log: Arc<dyn DecisionLog>,
    breakers: RwLock<Breakers>,
    live: Arc<AtomicUsize>,
    stateless: Mutex<HashMap<[u8; 32], Arc<Session>>>,
    /// Sessions of HTTP MCP sessions, by `Mcp-Session-Id`: shared by the rmcp handler of the
    /// session and the `tools/call` fast path.
    http_sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// `tools/call` requests answered by the HTTP fast path.
    fast_calls: AtomicUsize,
    settings: GatewaySettings,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The text of a tool result that Warden labels: its text blocks and embedded text resources;
/// the structured content when there is no text.
pub fn result_text(r: &CallToolResult) -> String {
    let mut out = String::new();
    for c in &r.content {
        match c {
            ContentBlock::Text(t) => push_line(&mut out, &t.text),
            ContentBlock::Resource(e) => {
                if let ResourceContents::TextResourceContents { text, .. } = &e.resource {
                    push_line(&mut out, text);
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        if let Some(v) = &r.structured_content {
            out = v.to_string();
        }
    }
    out
}

fn push_line(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(s);
}

/// Format a count with thousands separators (`2,999`).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line describing a decision's exposure, when anyone is exposed.
pub fn exposure_line(d: &Decision) -> Option<String> {
    let x = d.exposure.as_ref().filter(|x| x.count > 0)?;
    let labels = x.labels.iter().cloned().collect::<Vec<_>>().join(", ");
    Some(format!(
        "{} of {} people in the audience are not cleared for {}",
        thousands(x.count),
        thousands(x.audience),
        labels
    ))
}

/// The text an agent reads for a call that was not allowed.
pub fn refusal_text(d: &Decision) -> String {
    let mut text = match d.decision {
        Outcome::Ask => format!(
            "Warden held `{}`: approval required: {} (decision {})",
            d.tool,
            d.summary(),
            d.id
        ),
        _ => format!(
            "Warden denied `{}`: {} (decision {})",
            d.tool,
            d.summary(),
            d.id
        ),
    };
    if let Some(x) = exposure_line(d) {
        text.push_str("\nexposure: ");
        text.push_str(&x);
    }
    text
}

fn refusal_result(d: &Decision) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(refusal_text(d))]);
    r.structured_content = serde_json::to_value(d).ok();
    r
}

fn log_failure_text(tool: &str, id: &str, e: &LogError) -> String {
    format!(
        "Warden denied `{tool}`: the decision could not be recorded ({e}); nothing was forwarded (decision {id})"
    )
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
    /// parallel) for the first connections. Upstreams that are not up yet keep retrying in the
    /// background.
    pub async fn start(
        engine: Arc<Engine>,
        settings: GatewaySettings,
        log: Arc<dyn DecisionLog>,
    ) -> Arc<Gateway> {
        let stop = CancellationToken::new();
        let scrub: Vec<String> = engine
            .config()
            .agents
            .values()
            .filter_map(|a| a.token_env.clone())
            .collect();
        let mut upstreams = BTreeMap::new();
        for u in &settings.upstreams {
            upstreams.insert(
                u.name.clone(),
                Upstream::start(u, scrub.clone(), stop.child_token()),
            );
        }
        let waits = upstreams.values().map(|u| u.wait_ready(u.timeout()));
        for w in waits {
            // Sequential awaits of futures that all started at once: total wait is the slowest.
            let _ = w.await;
        }
        Arc::new(Gateway {
            engine,
            upstreams,
            log,
            breakers: RwLock::new(Breakers::default()),
            live: Arc::new(AtomicUsize::new(0)),
            stateless: Mutex::new(HashMap::new()),
            http_sessions: Mutex::new(HashMap::new()),
            fast_calls: AtomicUsize::new(0),
            settings,
            stop,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
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

    /// Sessions alive now (stdio, HTTP and stateless).
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Replace the breakers in force.
    pub fn set_breakers(&self, b: Breakers) {
        *self.breakers.write().unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// Stop every upstream (children are killed) and refuse further work.
    pub fn shutdown(&self) {
        self.stop.cancel();
        lock(&self.stateless).clear();
        lock(&self.http_sessions).clear();
    }

    /// The session of HTTP MCP session `sid`, opened for `who` on first use. Later requests get
    /// the same session whatever their identity headers say; the caller checks the token.
    ///
    /// # Errors
    /// As [`Gateway::open_session`].
    pub fn http_session(
        &self,
        sid: &str,
        who: &Identity,
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
        }
    }

    /// Forget every HTTP session that `keep` rejects (its MCP session is gone).
    pub fn retain_http_sessions(&self, keep: impl Fn(&str, &Session) -> bool) {
        lock(&self.http_sessions).retain(|sid, s| keep(sid, s));
    }

    /// The HTTP sessions idle for longer than `idle`.
    pub fn idle_http_sessions(&self, idle: Duration) -> Vec<String> {
        lock(&self.http_sessions)
            .iter()
            .filter(|(_, s)| s.idle_for() > idle)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Open a session: grant the mission for `who`. Its decisions name it by
    /// [`crate::naming::session_name`] of `id`, its mission `m-` and that name.
    ///
    /// # Errors
    /// When the template, agent or principal is unknown or the template is not for the agent.
    pub fn open_session(
        &self,
        id: &str,
        who: &Identity,
        token: Option<[u8; 32]>,
    ) -> Result<Arc<Session>, crate::GatewayError> {
        let now = crate::now_ms();
        let name = crate::naming::session_name(id);
        let mission = self
            .engine
            .grant(
                &format!("m-{name}"),
                &who.template,
                &who.agent,
                &who.principal,
                &who.purpose,
                now,
            )
            .map_err(crate::GatewayError::Mission)?;
        let visible = self
            .engine
            .visible_tools(&mission)
            .into_iter()
            .map(|s| s.name.clone())
            .collect();
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(Arc::new(Session {
            id: id.to_string(),
            visible,
            token,
            inner: tokio::sync::Mutex::new(SessionInner {
                state: SessionState::new(&name, mission.id.clone()),
                usage: MissionUsage::default(),
            }),
            mission,
            name,
            last_used: Mutex::new(Instant::now()),
            _live: LiveGuard(self.live.clone()),
        }))
    }

    /// The session for stateless requests (no `Mcp-Session-Id`): keyed by the bearer token, the
    /// identity headers and the client's `X-Warden-Session` value (`hint`, may be empty), so the
    /// same caller with the same mission keeps its taint and separate sessions stay separate.
    ///
    /// # Errors
    /// As [`Gateway::open_session`].
    pub fn stateless_session(
        &self,
        who: &Identity,
        token: [u8; 32],
        hint: &str,
    ) -> Result<Arc<Session>, crate::GatewayError> {
        let mut h = Sha256::new();
        h.update(token);
        for part in [
            who.agent.as_str(),
            who.principal.as_str(),
            who.template.as_str(),
            who.purpose.as_str(),
            hint,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
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
        for spec in self.engine.visible_tools(&session.mission) {
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

    fn exposed(&self, session: &Session, call: &Call) -> Result<(), String> {
        let name = call.name();
        if !session.visible.contains(&name) {
            return Err(format!(
                "`{name}` is not offered to this session (it is not in its tools/list)"
            ));
        }
        let Some(u) = self.upstreams.get(&call.server) else {
            return Err(format!(
                "no upstream server `{}` is configured, so `{name}` is not offered",
                call.server
            ));
        };
        let present = match call.tool.as_str() {
            RESOURCES_READ | PROMPTS_GET => true,
            t => u.has_tool(t),
        };
        if !present {
            return Err(format!(
                "upstream `{}` does not serve a tool `{}` (it is {}), so `{name}` is not offered",
                call.server,
                call.tool,
                if u.status().up { "up" } else { "down" }
            ));
        }
        Ok(())
    }

    /// Append durably, on this thread when the log is fast enough ([`DecisionLog::blocking`]),
    /// else on the blocking pool; the entry comes back (moved, not cloned).
    async fn append(&self, entry: LogEntry) -> Result<LogEntry, (Option<LogEntry>, LogError)> {
        if !self.log.blocking() {
            return match self.log.append(&entry) {
                Ok(()) => Ok(entry),
                Err(e) => Err((Some(entry), e)),
            };
        }
        let log = self.log.clone();
        match tokio::task::spawn_blocking(move || {
            let r = log.append(&entry);
            (entry, r)
        })
        .await
        {
            Ok((entry, Ok(()))) => Ok(entry),
            Ok((entry, Err(e))) => Err((Some(entry), e)),
            Err(e) => Err((
                None,
                LogError::Unavailable(format!("the log writer failed: {e}")),
            )),
        }
    }

    /// Append what came of the forward `decision` allowed (`outcome` and a short `reason`).
    /// The reply does not wait for it: on a log that blocks, it is appended on the blocking
    /// pool.
    fn record_outcome(&self, decision: &Decision, outcome: &str, reason: String) {
        let entry = OutcomeEntry {
            kind: EntryKind::Outcome,
            decision_id: decision.id.clone(),
            tool: decision.tool.clone(),
            outcome: outcome.to_string(),
            reason,
            at_ms: u64::try_from(crate::now_ms()).unwrap_or(0),
        };
        let append = {
            let log = self.log.clone();
            move || {
                if let Err(e) = log.append_outcome(&entry) {
                    tracing::error!("decision log: cannot record an outcome: {e}");
                }
            }
        };
        if self.log.blocking() {
            drop(tokio::task::spawn_blocking(append));
        } else {
            append();
        }
    }

    /// Decide `call` for `session`, log it, commit it; returns the logged decision and, when
    /// allowed, the permitted call. `Err` carries the refusal to return when logging failed.
    async fn decide(
        &self,
        session: &Session,
        inner: &mut SessionInner,
        call: Call,
    ) -> Result<(Decision, Option<Permitted<Call>>), (Option<Decision>, CallToolResult)> {
        let exposed = self.exposed(session, &call);
        let started = Instant::now();
        let now = crate::now_ms();
        let Decided {
            mut decision,
            mut permitted,
        } = {
            let b = self.breakers.read().unwrap_or_else(|p| p.into_inner());
            self.engine
                .decide(call, &session.mission, &inner.state, &inner.usage, &b, now)
        };
        let kind = match exposed {
            Ok(()) => EntryKind::Decision,
            Err(why) => {
                if decision.decision != Outcome::Deny {
                    decision.decision = Outcome::Deny;
                    decision.reasons.insert(
                        0,
                        Reason {
                            stage: Stage::Resolve,
                            outcome: Outcome::Deny,
                            policy: None,
                            text: why,
                        },
                    );
                }
                permitted = None;
                EntryKind::Unexposed
            }
        };
        decision.elapsed_us = Some(started.elapsed().as_micros() as u64);
        let tool = decision.tool.clone();
        let id = decision.id.clone();
        let decision = match self.append(LogEntry { kind, decision }).await {
            Ok(entry) => entry.decision,
            Err((entry, e)) => {
                tracing::error!("decision log: {e}");
                let mut r = CallToolResult::error(vec![ContentBlock::text(log_failure_text(
                    &tool, &id, &e,
                ))]);
                r.structured_content = Some(serde_json::json!({
                    "decision": "deny",
                    "error": "decision-log",
                    "message": e.to_string(),
                    "decision_id": id,
                }));
                let denied = entry.map(|mut en| {
                    en.decision.decision = Outcome::Deny;
                    en.decision
                });
                return Err((denied, r));
            }
        };
        self.engine
            .commit(&decision, &mut inner.state, &mut inner.usage);
        Ok((decision, permitted))
    }

    /// Handle one `tools/call`: decide, log, commit; forward when allowed and absorb the
    /// output. Never a protocol error: refusals and upstream failures are tool results with
    /// `isError`.
    pub async fn call_tool(
        &self,
        session: &Session,
        name: &str,
        args: Option<JsonObject>,
        cancel: &CancellationToken,
    ) -> CallOutcome {
        let (server, tool) = name.split_once('.').unwrap_or(("", name));
        let call = Call::new(server, tool, Value::Object(args.unwrap_or_default()));
        session.touch();
        let mut inner = session.inner.lock().await;
        let (decision, permitted) = match self.decide(session, &mut inner, call).await {
            Ok(x) => x,
            Err((decision, result)) => return CallOutcome { decision, result },
        };
        let Some(p) = permitted else {
            let result = refusal_result(&decision);
            return CallOutcome {
                decision: Some(decision),
                result,
            };
        };
        let Some(up) = self.upstreams.get(&p.get().server) else {
            let result = CallToolResult::error(vec![ContentBlock::text(format!(
                "no upstream server `{}` is configured",
                p.get().server
            ))]);
            return CallOutcome {
                decision: Some(decision),
                result,
            };
        };
        let result = match up.call(&p, cancel).await {
            Ok(r) => {
                let outcome = if r.is_error == Some(true) {
                    "tool-error"
                } else {
                    "result"
                };
                self.record_outcome(&decision, outcome, String::new());
                let text = result_text(&r);
                let SessionInner { state, usage } = &mut *inner;
                self.engine.absorb(&p, &text, state, usage, crate::now_ms());
                r
            }
            Err(e) => {
                self.record_outcome(&decision, e.code(), e.to_string());
                upstream_failure(&decision, &e)
            }
        };
        CallOutcome {
            decision: Some(decision),
            result,
        }
    }

    fn server_of_resource(&self, session: &Session, uri: &str) -> Option<String> {
        self.upstreams
            .iter()
            .filter(|(name, _)| {
                session
                    .visible
                    .contains(&format!("{name}.{RESOURCES_READ}"))
            })
            .find(|(_, u)| u.resources().iter().any(|r| r.uri == uri))
            .map(|(name, _)| name.clone())
    }

    /// The resources `session` may read: those of upstreams whose `server.resources/read` the
    /// mission may use.
    pub fn list_resources(&self, session: &Session) -> Vec<Resource> {
        let mut out = Vec::new();
        for (name, u) in &self.upstreams {
            if session
                .visible
                .contains(&format!("{name}.{RESOURCES_READ}"))
            {
                out.extend(u.resources().iter().cloned());
            }
        }
        out
    }

    /// The prompts `session` may get, named `server.prompt`.
    pub fn list_prompts(&self, session: &Session) -> Vec<Prompt> {
        let mut out = Vec::new();
        for (name, u) in &self.upstreams {
            if session.visible.contains(&format!("{name}.{PROMPTS_GET}")) {
                for p in u.prompts().iter() {
                    let mut p = p.clone();
                    p.name = format!("{name}.{}", p.name);
                    out.push(p);
                }
            }
        }
        out
    }

    /// Handle `resources/read`: decided as a call of `server.resources/read` with `{"uri"}`.
    ///
    /// # Errors
    /// A JSON-RPC error with the reason when the read is not allowed or fails.
    pub async fn read_resource(
        &self,
        session: &Session,
        uri: &str,
        cancel: &CancellationToken,
    ) -> Result<ReadResourceResult, ErrorData> {
        let server = self.server_of_resource(session, uri).unwrap_or_default();
        let call = Call::new(server, RESOURCES_READ, serde_json::json!({ "uri": uri }));
        let send = async |up: &Upstream, p: &Permitted<Call>| up.read_resource(p, cancel).await;
        self.forward_read(session, call, "resource", send, |r: &ReadResourceResult| {
            let mut text = String::new();
            for c in &r.contents {
                if let ResourceContents::TextResourceContents { text: t, .. } = c {
                    push_line(&mut text, t);
                }
            }
            text
        })
        .await
    }

    /// Handle `prompts/get` of `server.prompt`: decided as a call of `server.prompts/get` with
    /// `{"name", "arguments"}`.
    ///
    /// # Errors
    /// A JSON-RPC error with the reason when the prompt is not allowed or fails.
    pub async fn get_prompt(
        &self,
        session: &Session,
        name: &str,
        arguments: Option<JsonObject>,
        cancel: &CancellationToken,
    ) -> Result<GetPromptResult, ErrorData> {
        let (server, prompt) = name.split_once('.').unwrap_or(("", name));
        let mut args = serde_json::Map::new();
        args.insert("name".into(), Value::String(prompt.to_string()));
        if let Some(a) = arguments {
            args.insert("arguments".into(), Value::Object(a));
        }
        let call = Call::new(server, PROMPTS_GET, Value::Object(args));
        let send = async |up: &Upstream, p: &Permitted<Call>| up.get_prompt(p, cancel).await;
        self.forward_read(session, call, "prompt", send, |r: &GetPromptResult| {
            let mut text = String::new();
            for m in &r.messages {
                if let Some(t) = m.content.as_text() {
                    push_line(&mut text, &t.text);
                }
            }
            text
        })
        .await
    }

    /// Decide a request that reads from an upstream (`resources/read`, `prompts/get`) as
    /// `call`, log and commit it; when allowed, `send` it to its upstream and feed the text
    /// `text_of` finds in the result to the session. A refusal or failure is a JSON-RPC error
    /// with the reason; `what` names the thing read in the error when its upstream is gone.
    async fn forward_read<R>(
        &self,
        session: &Session,
        call: Call,
        what: &str,
        send: impl AsyncFnOnce(&Upstream, &Permitted<Call>) -> Result<R, UpstreamError>,
        text_of: impl FnOnce(&R) -> String,
    ) -> Result<R, ErrorData> {
        let mut inner = session.inner.lock().await;
        let (decision, permitted) = self
            .decide(session, &mut inner, call)
            .await
            .map_err(|(_, r)| ErrorData::invalid_request(first_text(&r), r.structured_content))?;
        let Some(p) = permitted else {
            return Err(ErrorData::invalid_request(
                refusal_text(&decision),
                serde_json::to_value(&decision).ok(),
            ));
        };
        let up = self.upstreams.get(&p.get().server).ok_or_else(|| {
            ErrorData::internal_error(format!("the upstream of this {what} is gone"), None)
        })?;
        let r = match send(up, &p).await {
            Ok(r) => {
                self.record_outcome(&decision, "result", String::new());
                r
            }
            Err(e) => {
                self.record_outcome(&decision, e.code(), e.to_string());
                return Err(upstream_error_data(&decision, &e));
            }
        };
        let text = text_of(&r);
        let SessionInner { state, usage } = &mut *inner;
        self.engine.absorb(&p, &text, state, usage, crate::now_ms());
        Ok(r)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn first_text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

fn upstream_failure(d: &Decision, e: &UpstreamError) -> CallToolResult {
    let mut r = CallToolResult::error(vec![ContentBlock::text(format!(
        "Warden allowed `{}` (decision {}), but the call failed: {e}",
        d.tool, d.id
    ))]);
    r.structured_content = Some(serde_json::json!({
        "decision": "allow",
        "decision_id": d.id,
        "error": "upstream",
        "message": e.to_string(),
    }));
    r
}

fn upstream_error_data(d: &Decision, e: &UpstreamError) -> ErrorData {
    match e {
        UpstreamError::Protocol { error, .. } => (**error).clone(),
        _ => ErrorData::internal_error(
            format!(
                "Warden allowed `{}` (decision {}), but the call failed: {e}",
                d.tool, d.id
            ),
            None,
        ),
    }
}
