//! The pipeline of one request: decide, log, commit, forward, absorb.
//!
//! The session's state is locked to decide and commit, and again to absorb; it is not locked
//! while the request is upstream, so the calls of one session run at once. A call is decided on
//! what the session has absorbed by then: the output of a call still running has not reached
//! the agent, so it cannot direct anything yet. Outputs are absorbed in the order their calls
//! complete, each before the agent receives it.
//!
//! What an upstream says about a request on the way (progress, log messages) reaches the agent
//! through a [`Relay`], and text in it is absorbed before it is passed on, like a result.

// Logging is deprecated by SEP-2577; clients of earlier revisions still use it.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolResult, ClientResult, ContentBlock, JsonObject, LoggingLevel,
    LoggingMessageNotification, LoggingMessageNotificationParam, ProgressNotification,
    ProgressNotificationParam, ProgressToken, ServerNotification, ServerRequest,
};
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warden_core::{Call, Decision, Receipt};
use warden_enforce::kill::{KillGuard, Tracked};
use warden_enforce::{Forward, Forwarded, How, Permitted, Verdict};

use super::text::{
    enforce_failure, enforce_failure_data, first_text, killed_error_data, killed_result,
    refusal_result, refusal_text, result_text, upstream_error_data, upstream_failure,
};
use super::{CallOutcome, Gateway, Session, PROMPTS_GET, RESOURCES_READ};
use crate::upstream::relay::NoteSink;
use crate::upstream::relay::{severity, NOTES_QUEUED};
use crate::upstream::{Asker, Note, Relay, Upstream, UpstreamError, ELICITATION, ROOTS, SAMPLING};

/// Pass `notes` to `peer` in order until every sender is gone (the request completed).
pub fn notify_peer(peer: rmcp::Peer<rmcp::RoleServer>) -> (Notes, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<ServerNotification>(NOTES_QUEUED);
    let task = tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            if peer.send_notification(n).await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// The longest Warden waits, after a request completed, for its last notes to reach the agent.
const FLUSH: Duration = Duration::from_secs(2);

/// Where the notifications about one request go, in order, on their way to the agent (at most
/// [`crate::upstream::relay::NOTES_QUEUED`] waiting; more are dropped).
pub type Notes = mpsc::Sender<ServerNotification>;

/// The agent's side of one request: how it gives up on it, and where notes about it go.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Fires when the agent cancels the request or goes away.
    pub cancel: CancellationToken,
    /// Where notifications about the request go (none: the agent hears nothing but the result).
    pub notes: Option<Notes>,
    /// The progress token the agent put on the request, if it wants progress.
    pub progress: Option<ProgressToken>,
    /// The agent's MCP peer, for the upstream's requests of the client (sampling, elicitation,
    /// roots); none: the session's peer, if it has one.
    pub peer: Option<Peer<RoleServer>>,
    /// For a client of the 2026-07-28 revision: where allowed requests of the client go, to be
    /// put to it as `input_required` (see [`super::rounds`]), instead of to its peer.
    pub inputs: Option<mpsc::Sender<super::rounds::Asked>>,
    /// The capabilities the client declared for this request (2026-07-28), if it did.
    pub offers: Option<rmcp::model::ClientCapabilities>,
    /// The least severe log level the client asked for on this request (2026-07-28:
    /// `io.modelcontextprotocol/logLevel` in `_meta`); the session's level otherwise.
    pub log_level: Option<LoggingLevel>,
    /// The approval request the agent names for this call (`warden/approval` in `_meta`): a
    /// retry after approval. Without it, an approval of the identical call is found anyway.
    pub approval: Option<String>,
}

impl Caller {
    /// A caller that only cancels.
    pub fn cancel_only(cancel: CancellationToken) -> Caller {
        Caller {
            cancel,
            ..Caller::default()
        }
    }
}

impl Gateway {
    fn exposed(&self, session: &Session, call: &Call) -> Result<(), String> {
        let name = call.name();
        if call.server.is_empty() && call.tool == RESOURCES_READ {
            let uri = call.args.get("uri").and_then(Value::as_str).unwrap_or("");
            return Err(format!(
                "no upstream server this session may read resources of serves `{uri}`"
            ));
        }
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
            RESOURCES_READ | PROMPTS_GET | SAMPLING | ELICITATION | ROOTS => true,
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

    /// Decide `call` for `session` through the enforcement pipeline (decide, record durably,
    /// commit); returns the recorded decision and, when allowed, the permitted call. `Err`
    /// carries the refusal to return when the pipeline could not record or read the store.
    pub(crate) async fn decide(
        &self,
        session: &Session,
        call: Call,
    ) -> Result<(Decision, Option<Permitted<Call>>), (Option<Decision>, CallToolResult)> {
        self.decide_how(session, call, true).await
    }

    /// Decide `call` for `session` and record it, without counting it against the session or
    /// the mission (for what the agent did not ask for: a subscription's updates).
    pub(crate) async fn decide_only(
        &self,
        session: &Session,
        call: Call,
    ) -> Result<(Decision, Option<Permitted<Call>>), (Option<Decision>, CallToolResult)> {
        self.decide_how(session, call, false).await
    }

    async fn decide_how(
        &self,
        session: &Session,
        call: Call,
        commit: bool,
    ) -> Result<(Decision, Option<Permitted<Call>>), (Option<Decision>, CallToolResult)> {
        let how = How {
            commit,
            ..How::call()
        };
        self.decide_with(session, call, how)
            .await
            .map(|v| (v.decision, v.permitted))
    }

    /// Decide `call` for `session` as `how` says (the call's exposure to the session is
    /// checked here).
    pub(crate) async fn decide_with(
        &self,
        session: &Session,
        call: Call,
        how: How,
    ) -> Result<Verdict, (Option<Decision>, CallToolResult)> {
        let how = How {
            unexposed: self.exposed(session, &call).err(),
            ..how
        };
        let tool = call.name();
        match self.enforcer.decide(&session.actor(), call, how).await {
            Ok(v) => Ok(v),
            Err(e) => {
                tracing::error!("enforcement: {e}");
                let decision = e.decision().cloned();
                Err((decision, enforce_failure(&tool, &e)))
            }
        }
    }

    /// The relay of a permitted request of `session` from `caller`, and the task that passes
    /// its notes on: each note the agent asked for (progress when it gave a token, log messages
    /// at or above the level its session set) is absorbed into the session, then sent.
    fn relay(
        self: &std::sync::Arc<Self>,
        session: &std::sync::Arc<Session>,
        permitted: &Permitted<Call>,
        caller: &Caller,
    ) -> (Relay, Option<Arc<Drain>>) {
        let receipt = permitted.receipt().clone();
        let asker: Arc<dyn Asker> = Arc::new(AskAgent {
            gateway: self.clone(),
            session: session.clone(),
            peer: caller.peer.clone(),
            inputs: caller.inputs.clone(),
            offers: caller.offers.clone(),
            server: permitted.get().server.clone(),
        });
        let Some(out) = caller.notes.clone() else {
            return (
                Relay::with_asker(caller.cancel.clone(), None, Some(asker)),
                None,
            );
        };
        let drain = Arc::new(Drain {
            to: Mutex::new(DrainState::Idle(Box::new(DrainTask {
                gateway: self.clone(),
                session: session.clone(),
                receipt,
                token: caller.progress.clone(),
                asked_level: caller.log_level,
                out,
            }))),
        });
        let sink: Arc<dyn NoteSink> = drain.clone();
        (
            Relay::with_asker(caller.cancel.clone(), Some(sink), Some(asker)),
            Some(drain),
        )
    }

    /// Register a permitted request of `session` with the kill switch: the returned caller's
    /// cancellation fires when the agent gives up or a kill covers the session, and then the
    /// request is cancelled upstream.
    fn track(&self, session: &Session, caller: &Caller) -> (KillGuard, Caller) {
        let guard = self
            .enforcer
            .track(Tracked::of_actor(&session.actor()), &caller.cancel);
        let caller = Caller {
            cancel: guard.token().clone(),
            ..caller.clone()
        };
        (guard, caller)
    }

    /// Handle one `tools/call`: decide, log, commit; forward when allowed and absorb the
    /// output. Never a protocol error: refusals and upstream failures are tool results with
    /// `isError`.
    pub async fn call_tool(
        self: &std::sync::Arc<Self>,
        session: &std::sync::Arc<Session>,
        name: &str,
        args: Option<JsonObject>,
        caller: &Caller,
    ) -> CallOutcome {
        let (server, tool) = name.split_once('.').unwrap_or(("", name));
        let call = Call::new(server, tool, Value::Object(args.unwrap_or_default()));
        session.touch();
        let how = How {
            approval: caller.approval.clone(),
            ..How::call()
        };
        let verdict = match self.decide_with(session, call, how).await {
            Ok(v) => v,
            Err((decision, result)) => return CallOutcome { decision, result },
        };
        let (decision, permitted, changed) = match self.settle(session, verdict, caller).await {
            Ok(x) => x,
            Err(out) => return out,
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
        if let Some(level) = caller.log_level.filter(|_| up.logs()) {
            up.want_logs(level).await;
        }
        // An output whose catalog entry names untrusted fields, or the field naming whom each
        // record is about, is read as its structured content, where fields can be told apart
        // (as text it counts as untrusted whole, and as no one's own data).
        let split = self
            .engine()
            .config()
            .catalog
            .get(&p.get().name())
            .is_some_and(|s| !s.untrusted_fields.is_empty() || s.subject.is_some());
        let server = p.get().server.clone();
        let (guard, caller) = self.track(session, caller);
        let (relay, drain) = self.relay(session, &p, &caller);
        let to = ToUpstream {
            up,
            relay: &relay,
            send: send_call,
            split,
            text_of: call_text,
            ok_outcome: call_outcome,
            guard: &guard,
        };
        let sent = self.enforcer.forward(&session.actor(), p, to).await;
        flush(relay, drain).await;
        if let Some(why) = guard.killed() {
            return CallOutcome {
                result: killed_result(&decision, why),
                decision: Some(decision),
            };
        }
        let result = match sent {
            Ok(Ok(mut r)) => {
                self.note_named(&server, &r.content);
                if let Some(changes) = changed {
                    super::held::note_changes(&mut r, &changes);
                }
                r
            }
            Ok(Err(e)) => upstream_failure(&decision, &e),
            Err(e) => {
                tracing::error!("enforcement: {e}");
                enforce_failure(&decision.tool, &e)
            }
        };
        CallOutcome {
            decision: Some(decision),
            result,
        }
    }

    /// Decide a request that reads from an upstream (`resources/read`, `prompts/get`) as
    /// `call`, log and commit it; when allowed, `send` it to its upstream and feed the text
    /// `text_of` finds in the result to the session. A refusal or failure is a JSON-RPC error
    /// with the reason; `what` names the thing read in the error when its upstream is gone.
    pub(crate) async fn forward_read<R>(
        self: &std::sync::Arc<Self>,
        session: &std::sync::Arc<Session>,
        call: Call,
        caller: &Caller,
        what: &str,
        send: SendFn<R>,
        text_of: fn(&R, bool) -> String,
    ) -> Result<R, ErrorData>
    where
        R: std::marker::Send + 'static,
    {
        session.touch();
        let (decision, permitted) = self
            .decide(session, call)
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
        if let Some(level) = caller.log_level.filter(|_| up.logs()) {
            up.want_logs(level).await;
        }
        let (guard, caller) = self.track(session, caller);
        let (relay, drain) = self.relay(session, &p, &caller);
        let to = ToUpstream {
            up,
            relay: &relay,
            send,
            split: false,
            text_of,
            ok_outcome: read_outcome::<R>,
            guard: &guard,
        };
        let sent = self.enforcer.forward(&session.actor(), p, to).await;
        flush(relay, drain).await;
        if let Some(why) = guard.killed() {
            return Err(killed_error_data(&decision, why));
        }
        match sent {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(upstream_error_data(&decision, &e)),
            Err(e) => Err(enforce_failure_data(&decision.tool, &e)),
        }
    }
}

/// What sending a request upstream returns.
pub(crate) type SendFut<'u, R> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<R, UpstreamError>> + std::marker::Send + 'u>,
>;

/// How a request is sent upstream.
pub(crate) type SendFn<R> = for<'u> fn(&'u Upstream, Permitted<Call>, &'u Relay) -> SendFut<'u, R>;

fn send_call<'u>(
    up: &'u Upstream,
    p: Permitted<Call>,
    relay: &'u Relay,
) -> SendFut<'u, CallToolResult> {
    Box::pin(up.call(p, relay))
}

/// An MCP request on its way to its upstream: `send` takes the permitted call, `text_of` finds
/// the text the mission reads in the answer (`split`: as structured content), `ok_outcome`
/// names an answer for the audit.
struct ToUpstream<'u, R> {
    up: &'u Upstream,
    relay: &'u Relay,
    send: SendFn<R>,
    split: bool,
    text_of: fn(&R, bool) -> String,
    ok_outcome: fn(&R) -> &'static str,
    /// The request's registration with the kill switch: once it fired, nothing the upstream
    /// answered is read or returned, even an answer that arrived as the kill did.
    guard: &'u KillGuard,
}

impl<'u, R: std::marker::Send + 'static> Forward for ToUpstream<'u, R> {
    type Output = R;
    type Error = UpstreamError;

    async fn forward(self, call: Permitted<Call>) -> Forwarded<R, UpstreamError> {
        let result = (self.send)(self.up, call, self.relay).await;
        if let Some(why) = self.guard.killed() {
            return Forwarded {
                outcome: "killed".into(),
                reason: why.to_string(),
                text: None,
                result: Err(UpstreamError::Cancelled),
            };
        }
        match result {
            Ok(r) => Forwarded {
                outcome: (self.ok_outcome)(&r).to_string(),
                reason: String::new(),
                text: Some((self.text_of)(&r, self.split)),
                result: Ok(r),
            },
            Err(e) => Forwarded {
                outcome: e.code().to_string(),
                reason: e.to_string(),
                text: None,
                result: Err(e),
            },
        }
    }
}

/// The text of a tool result the mission reads: its structured content when the catalog splits
/// it by field, else its text.
fn call_text(r: &CallToolResult, split: bool) -> String {
    match &r.structured_content {
        Some(v) if split => v.to_string(),
        _ => result_text(r),
    }
}

/// `tool-error` for a result the tool marked as an error, else `result`.
fn call_outcome(r: &CallToolResult) -> &'static str {
    if r.is_error == Some(true) {
        "tool-error"
    } else {
        "result"
    }
}

fn read_outcome<R>(_: &R) -> &'static str {
    "result"
}

/// Decides the requests an upstream makes of the client during one of a session's requests,
/// as calls of `server.sampling/createMessage`, `server.elicitation/create` and
/// `server.roots/list` with the request's parameters as arguments, and relays the allowed ones
/// to the agent's client. What the server says in them is absorbed into the session first.
struct AskAgent {
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    peer: Option<Peer<RoleServer>>,
    inputs: Option<mpsc::Sender<super::rounds::Asked>>,
    offers: Option<rmcp::model::ClientCapabilities>,
    server: String,
}

impl Asker for AskAgent {
    fn ask(
        &self,
        request: ServerRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<ClientResult, ErrorData>> + Send + '_>,
    > {
        Box::pin(self.decide_and_relay(request))
    }
}

impl AskAgent {
    async fn decide_and_relay(&self, request: ServerRequest) -> Result<ClientResult, ErrorData> {
        let (tool, params) = match &request {
            ServerRequest::CreateMessageRequest(r) => (SAMPLING, serde_json::to_value(&r.params)),
            ServerRequest::ElicitRequest(r) => (ELICITATION, serde_json::to_value(&r.params)),
            ServerRequest::ListRootsRequest(_) => (ROOTS, Ok(Value::Object(Default::default()))),
            _ => {
                return Err(ErrorData::invalid_request(
                    "Warden relays sampling, elicitation and roots requests only",
                    None,
                ))
            }
        };
        let args = match params {
            Ok(Value::Object(m)) => Value::Object(m),
            _ => Value::Object(Default::default()),
        };
        let text = if tool == ROOTS {
            String::new()
        } else {
            args.to_string()
        };
        let session = &self.session;
        let gateway = &self.gateway;
        let call = Call::new(self.server.clone(), tool, args);
        let (decision, permitted) = gateway
            .decide(session, call)
            .await
            .map_err(|(_, r)| ErrorData::invalid_request(first_text(&r), r.structured_content))?;
        let Some(p) = permitted else {
            return Err(ErrorData::invalid_request(
                refusal_text(&decision),
                serde_json::to_value(&decision).ok(),
            ));
        };
        // The request goes to the agent's client, not upstream: the permit is spent here.
        let receipt = p.receipt().clone();
        drop(p.into_inner());
        let absorb = async |text: &str| -> Result<(), ErrorData> {
            if text.is_empty() {
                return Ok(());
            }
            gateway
                .enforcer
                .absorb(&session.actor(), &receipt, text)
                .await
                .map_err(|e| enforce_failure_data(&decision.tool, &e))
        };
        let peer = self.peer.clone().or_else(|| session.peer.get().cloned());
        let caps = self.offers.clone().or_else(|| {
            peer.as_ref()
                .and_then(|p| p.peer_info())
                .map(|i| i.capabilities.clone())
        });
        let offered = caps.is_some_and(|c| match tool {
            SAMPLING => c.sampling.is_some(),
            ELICITATION => c.elicitation.is_some(),
            _ => c.roots.is_some(),
        });
        if let (true, Some(inputs)) = (offered, &self.inputs) {
            // A 2026-07-28 client: the request is put to it as `input_required`.
            absorb(&text).await?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            if inputs.send((request, tx)).await.is_err() {
                return Err(ErrorData::internal_error(
                    "the agent's call has ended",
                    None,
                ));
            }
            let answer = rx.await.unwrap_or_else(|_| {
                Err(ErrorData::invalid_request(
                    "the agent's client did not come back with an answer",
                    None,
                ))
            });
            let (outcome, why) = match &answer {
                Ok(_) => ("result", String::new()),
                Err(e) => ("client-error", e.message.to_string()),
            };
            gateway.enforcer.record_outcome(&receipt, outcome, &why);
            return answer;
        }
        let Some(peer) = peer.filter(|_| offered) else {
            let why = format!(
                "Warden allowed `{}` (decision {}), but the agent's client does not offer {tool}",
                decision.tool, decision.id
            );
            gateway
                .enforcer
                .record_outcome(&receipt, "unsupported", &why);
            return Err(ErrorData::invalid_request(why, None));
        };
        absorb(&text).await?;
        match peer.send_request(request).await {
            Ok(r) => {
                gateway.enforcer.record_outcome(&receipt, "result", "");
                Ok(r)
            }
            Err(e) => {
                gateway
                    .enforcer
                    .record_outcome(&receipt, "client-error", &e.to_string());
                Err(match e {
                    rmcp::ServiceError::McpError(e) => e,
                    other => ErrorData::internal_error(
                        format!("the agent's client did not answer: {other}"),
                        None,
                    ),
                })
            }
        }
    }
}

/// Let the notes of a completed request reach the agent before its result does.
async fn flush(relay: Relay, drain: Option<Arc<Drain>>) {
    drop(relay);
    let Some(d) = drain else { return };
    let running = std::mem::replace(&mut *d.state(), DrainState::Done);
    if let DrainState::Running(tx, task) = running {
        drop(tx);
        let _ = tokio::time::timeout(FLUSH, task).await;
    }
}

/// What passes the notes of one request on: started by the first note, so a request the
/// upstream says nothing about costs no task.
pub(crate) struct Drain {
    to: Mutex<DrainState>,
}

enum DrainState {
    Idle(Box<DrainTask>),
    Running(mpsc::Sender<Note>, tokio::task::JoinHandle<()>),
    Done,
}

impl Drain {
    fn state(&self) -> std::sync::MutexGuard<'_, DrainState> {
        self.to.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl NoteSink for Drain {
    fn send(&self, note: Note) {
        let mut st = self.state();
        if let DrainState::Idle(_) = &*st {
            let DrainState::Idle(task) = std::mem::replace(&mut *st, DrainState::Done) else {
                return;
            };
            let (tx, rx) = mpsc::channel::<Note>(NOTES_QUEUED);
            *st = DrainState::Running(tx, tokio::spawn(task.run(rx)));
        }
        if let DrainState::Running(tx, _) = &*st {
            let _ = tx.try_send(note);
        }
    }
}

/// Each note the agent asked for (progress when it gave a token, log messages at or above its
/// level) is absorbed into the session, then sent on.
struct DrainTask {
    gateway: Arc<Gateway>,
    session: Arc<Session>,
    receipt: Receipt,
    token: Option<ProgressToken>,
    asked_level: Option<LoggingLevel>,
    out: Notes,
}

impl DrainTask {
    async fn run(self, mut rx: mpsc::Receiver<Note>) {
        let DrainTask {
            gateway,
            session,
            receipt,
            token,
            asked_level,
            out,
        } = self;
        while let Some(note) = rx.recv().await {
            let wanted = match &note {
                Note::Progress { .. } => token.is_some(),
                Note::Log { level, .. } => asked_level
                    .or_else(|| session.log_level())
                    .is_some_and(|min| severity(*level) >= severity(min)),
            };
            if !wanted {
                continue;
            }
            let text = note.text();
            if !text.is_empty() {
                // What the mission reads must be durable before the agent reads it.
                if let Err(e) = gateway
                    .enforcer
                    .absorb(&session.actor(), &receipt, &text)
                    .await
                {
                    tracing::error!("enforcement: a note was withheld from the agent: {e}");
                    continue;
                }
            }
            let n = match note {
                Note::Progress {
                    progress,
                    total,
                    message,
                } => {
                    let Some(token) = token.clone() else { continue };
                    let mut p = ProgressNotificationParam::new(token, progress);
                    p.total = total;
                    p.message = message;
                    ServerNotification::ProgressNotification(ProgressNotification::new(p))
                }
                Note::Log {
                    level,
                    logger,
                    data,
                } => {
                    let mut m = LoggingMessageNotificationParam::new(level, data);
                    m.logger = logger;
                    ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(
                        m,
                    ))
                }
            };
            if let Err(mpsc::error::TrySendError::Closed(_)) = out.try_send(n) {
                break;
            }
        }
    }
}
