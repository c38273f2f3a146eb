//! Calls held for approval: the gateway holds the agent's request while a person decides.
//!
//! A held call waits up to `[approvals] wait` for its request to be answered, sending progress
//! notifications when the agent gave a progress token. Approved in time, the call is decided
//! again (the approval is used once) and forwarded, and the agent gets the real result; an
//! approver's narrower call is decided in full in its place, and the result says what changed.
//! Denied, the agent gets the approver's reason; still pending, an error that names the
//! request, and the identical call retried after approval goes through once.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, ContentBlock, ProgressNotification, ProgressNotificationParam,
    ServerNotification,
};
use rmcp::model::{ClientResult, ElicitationAction, ServerRequest};
use warden_core::approve::CONSENT;
use warden_core::{Decision, Outcome};
use warden_enforce::approvals::{Approvals, Resolution, Stored};
use warden_enforce::kill::Tracked;
use warden_enforce::{How, Permitted, Verdict};

use super::pipeline::Caller;
use super::text::refusal_result;
use super::{CallOutcome, Gateway, Session};
use warden_core::Call;

/// The decision to act on, the call permitted (if any), and what an approver changed.
pub(crate) type Settled = (Decision, Option<Permitted<Call>>, Option<String>);

/// How many times one request goes round (held, approved, decided again) before giving up.
const ROUNDS: usize = 3;

impl Gateway {
    /// Settle a verdict: wait for a held call's approval, decide again once it is approved,
    /// and decide an approver's narrower call in its place. `Err` is what the agent receives
    /// when the call does not go.
    pub(crate) async fn settle(
        self: &Arc<Self>,
        session: &Arc<Session>,
        mut verdict: Verdict,
        caller: &Caller,
    ) -> Result<Settled, CallOutcome> {
        for _ in 0..ROUNDS {
            if let Some(n) = verdict.narrowed.take() {
                let how = How {
                    narrowed_from: Some(n.request.clone()),
                    ..How::call()
                };
                let v = self
                    .decide_with(session, n.call, how)
                    .await
                    .map_err(|(decision, result)| CallOutcome { decision, result })?;
                return match v.permitted {
                    Some(p) => Ok((v.decision, Some(p), Some(n.changes))),
                    None => Err(refused(v.decision)),
                };
            }
            if verdict.permitted.is_some() || verdict.decision.decision != Outcome::Ask {
                return Ok((verdict.decision, verdict.permitted, None));
            }
            let Some(id) = verdict.decision.approval.clone() else {
                return Ok((verdict.decision, None, None));
            };
            let wait = self.engine().config().approvals.wait_secs;
            if wait <= 0 {
                return Ok((verdict.decision, None, None));
            }
            let wait = Duration::from_secs(u64::try_from(wait).unwrap_or(0));
            self.elicit_consent(session, caller, &id, wait).await;
            // A kill that covers the session ends the wait at once.
            let guard = self
                .enforcer
                .track(Tracked::of_actor(&session.actor()), &caller.cancel);
            let resolution = self
                .enforcer
                .wait_approval(
                    &id,
                    wait,
                    |waited| progress(caller, &id, waited, wait),
                    guard.token().cancelled(),
                )
                .await
                .map_err(|e| CallOutcome {
                    decision: Some(verdict.decision.clone()),
                    result: super::text::enforce_failure(&verdict.decision.tool, &e),
                })?;
            match resolution {
                Resolution::Approved => {
                    let call = self.held_call(&id).await.ok_or_else(|| {
                        closed(&verdict.decision, &format!("request `{id}` is gone"))
                    })?;
                    let how = How {
                        approval: Some(id.clone()),
                        ..How::call()
                    };
                    verdict = self
                        .decide_with(session, call, how)
                        .await
                        .map_err(|(decision, result)| CallOutcome { decision, result })?;
                }
                Resolution::Denied(why) => {
                    return Err(closed(
                        &verdict.decision,
                        &format!("the approval request `{id}` was {why}"),
                    ))
                }
                Resolution::Cancelled(why) => {
                    return Err(closed(
                        &verdict.decision,
                        &format!("the approval request `{id}` was {why}"),
                    ))
                }
                Resolution::Closed(why) => return Err(closed(&verdict.decision, &why)),
                _ if guard.killed().is_some() => {
                    let why = guard.killed().unwrap_or_default().to_string();
                    return Err(closed(&verdict.decision, &why));
                }
                Resolution::Pending | Resolution::Abandoned => {
                    return Ok((verdict.decision, None, None));
                }
            }
        }
        Ok((verdict.decision, verdict.permitted, None))
    }

    /// Ask the agent's own client for the principal's act-as consent to request `id`
    /// (an MCP elicitation), when the configuration says the agent's client is operated by its
    /// principal and the client accepts elicitations. Anything but an explicit yes leaves the
    /// request as it was.
    async fn elicit_consent(
        self: &Arc<Self>,
        session: &Arc<Session>,
        caller: &Caller,
        id: &str,
        wait: Duration,
    ) {
        let actor = session.actor();
        let cfg = self.engine().config();
        if !cfg.approvals.elicit_consent.contains(&actor.mission.agent) {
            return;
        }
        let peer = caller.peer.clone().or_else(|| session.peer().cloned());
        let caps = caller.offers.clone().or_else(|| {
            peer.as_ref()
                .and_then(|p| p.peer_info())
                .map(|i| i.capabilities.clone())
        });
        let accepts = caps.is_some_and(|c| c.elicitation.is_some());
        let Some(s) = self
            .enforcer
            .store()
            .approval(id)
            .await
            .ok()
            .flatten()
            .and_then(Stored::of)
        else {
            return;
        };
        let consent: Vec<&str> = s
            .request
            .holds
            .iter()
            .filter(|h| h.facts.kind == CONSENT && !h.met())
            .map(|h| h.text.as_str())
            .collect();
        if !accepts || consent.is_empty() {
            return;
        }
        let message = format!(
            "Warden: {} wants to run `{}` under your name, {} ({}). Do you consent? (request {id})",
            s.request.agent,
            s.request.call.name(),
            s.request.principal,
            consent.join("; ")
        );
        let Ok(request) = serde_json::from_value::<ServerRequest>(serde_json::json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "elicitation/create",
            "params": {
                "mode": "form",
                "message": message,
                "requestedSchema": {
                    "type": "object",
                    "properties": {
                        "consent": {
                            "type": "boolean",
                            "title": "I consent",
                            "description": format!("let {} act under my name for this call", s.request.agent),
                        }
                    },
                    "required": ["consent"],
                },
            },
        })) else {
            tracing::warn!("approvals: cannot build the consent elicitation for {id}");
            return;
        };
        // A 2026-07-28 client is asked through `input_required`; an earlier one directly.
        let ask = async {
            if let Some(inputs) = &caller.inputs {
                let (tx, rx) = tokio::sync::oneshot::channel();
                if inputs.send((request, tx)).await.is_err() {
                    return None;
                }
                rx.await.ok().and_then(Result::ok)
            } else {
                peer?.send_request(request).await.ok()
            }
        };
        let answer = tokio::time::timeout(wait, ask).await;
        let yes = matches!(&answer, Ok(Some(ClientResult::ElicitResult(r)))
            if r.action == ElicitationAction::Accept
                && r.content.as_ref().and_then(|c| c.get("consent")).and_then(serde_json::Value::as_bool) == Some(true));
        if !yes {
            return;
        }
        let approvals = Approvals::new(
            self.enforcer.engine_arc().clone(),
            self.enforcer.store().clone(),
        );
        if let Err(e) = approvals
            .consent_through_client(id, warden_enforce::now_ms())
            .await
        {
            tracing::warn!("approvals: consent through the client for {id} not recorded: {e}");
        }
    }

    /// The call request `id` holds.
    async fn held_call(&self, id: &str) -> Option<Call> {
        let r = self.enforcer.store().approval(id).await.ok()??;
        Stored::of(r).map(|s| s.request.call.to_call())
    }
}

/// A progress notification for a call waiting on request `id`.
fn progress(caller: &Caller, id: &str, waited: Duration, wait: Duration) {
    let (Some(notes), Some(token)) = (&caller.notes, &caller.progress) else {
        return;
    };
    let p = ProgressNotificationParam::new(token.clone(), waited.as_secs_f64().floor())
        .with_total(wait.as_secs_f64())
        .with_message(format!(
            "held by Warden: waiting for a person to answer approval request {id}"
        ));
    let _ = notes.try_send(ServerNotification::ProgressNotification(
        ProgressNotification::new(p),
    ));
}

fn refused(decision: Decision) -> CallOutcome {
    let result = refusal_result(&decision);
    CallOutcome {
        decision: Some(decision),
        result,
    }
}

/// The error of a held call that will not go: `why`, with the decision as structured content.
fn closed(decision: &Decision, why: &str) -> CallOutcome {
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "Warden denied `{}`: {why} (decision {})",
        decision.tool, decision.id
    ))]);
    result.structured_content = serde_json::to_value(decision).ok();
    CallOutcome {
        decision: Some(decision.clone()),
        result,
    }
}

/// Tell the agent what an approver changed: a first text block, and `warden/changed` in the
/// result's `_meta`.
pub(crate) fn note_changes(r: &mut CallToolResult, changes: &str) {
    r.content.insert(
        0,
        ContentBlock::text(format!(
            "Warden: an approver changed this call before it went: {changes}"
        )),
    );
    let mut meta = r.meta.take().unwrap_or_default();
    meta.0.insert(
        "warden/changed".into(),
        serde_json::Value::String(changes.to_string()),
    );
    r.meta = Some(meta);
}
