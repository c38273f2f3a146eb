//! The pipeline's side of approvals: a held call makes (or finds) its request; an approved
//! request lifts its holds from the identical call once.

use std::collections::BTreeSet;

use serde_json::json;
use warden_core::model::{Outcome, Reason, Stage};
use warden_core::{Call, Decision};
use warden_store::ApprovalFilter;

use super::{
    alternative_of, binding_digest, holds_of, record, HeldCall, Request, Stored, APPROVED, DENIED,
    PENDING, USED,
};
use crate::{Actor, EnforceError, Enforcer};

/// What the pipeline does with a held call.
#[derive(Debug)]
pub(crate) enum Step {
    /// An approval matches: decide again with these holds lifted, then use it.
    Lift {
        /// The request to use.
        stored: Box<Stored>,
        /// The ask policies approved.
        lifted: BTreeSet<String>,
    },
    /// An approver chose a narrower call instead: that call is to be decided in its place.
    Narrowed {
        /// The request.
        id: String,
        /// The narrower call.
        call: HeldCall,
        /// What changed.
        changes: String,
    },
    /// Still held, waiting on this request.
    Held(String),
}

/// The narrower call the gateway decides in place of a held one.
#[derive(Debug, Clone, PartialEq)]
pub struct NarrowedCall {
    /// The request it answers.
    pub request: String,
    /// The call.
    pub call: Call,
    /// What changed, in words.
    pub changes: String,
}

impl Enforcer {
    /// What to do with the call `decision` holds, once decided: use a matching approval, or
    /// make (or find) the request it waits on. `reference` is the request the caller names.
    pub(crate) async fn held_step(
        &self,
        actor: &Actor<'_>,
        decision: &mut Decision,
        call: &Call,
        reference: Option<&str>,
        now_ms: i64,
    ) -> Result<Step, EnforceError> {
        let digest = binding_digest(decision, self.policy_version());
        let store = self.store();
        let candidates: Vec<Stored> = match reference {
            Some(id) => store
                .approval(id)
                .await?
                .and_then(Stored::of)
                .into_iter()
                .collect(),
            None => store
                .approvals(&ApprovalFilter {
                    digest: Some(digest.clone()),
                    limit: 8,
                    ..ApprovalFilter::default()
                })
                .await?
                .into_iter()
                .filter_map(Stored::of)
                .collect(),
        };
        if let Some(id) = reference {
            if candidates.is_empty() {
                self.refuse_use(decision, None, id, "no such approval request", now_ms)
                    .await?;
            }
        }
        let mut waiting = None;
        for s in candidates {
            let why = if s.request.digest != digest {
                Some("it was given for another call: the agent, the mission, the tool, an argument or the policies differ".to_string())
            } else if s.state == USED {
                Some(format!(
                    "it was used already ({})",
                    s.request.closed.as_deref().unwrap_or("by an earlier call")
                ))
            } else if s.state == DENIED {
                Some(format!(
                    "it was denied: {}",
                    s.request.closed.as_deref().unwrap_or("")
                ))
            } else if s.expired(now_ms) {
                Some("it expired".to_string())
            } else if s.state == APPROVED {
                if let Some(n) = &s.request.narrowed {
                    return Ok(Step::Narrowed {
                        id: s.request.id.clone(),
                        call: n.call.clone(),
                        changes: n.changes.clone(),
                    });
                }
                let lifted = s.met();
                if decision.ask_policies.iter().all(|p| lifted.contains(p)) {
                    return Ok(Step::Lift {
                        stored: Box::new(s),
                        lifted,
                    });
                }
                Some("it does not cover every reason this call is held for now".to_string())
            } else if s.state == PENDING {
                waiting.get_or_insert(s.request.id.clone());
                None
            } else {
                Some(format!("it is {}", s.state))
            };
            // Only an explicit use, or a retry of a call whose approval is spent, is refused
            // and audited; an older closed request of the same call is history.
            if let Some(why) = why {
                if reference.is_some() || (s.state == USED && waiting.is_none()) {
                    self.refuse_use(decision, Some(&s), &s.request.id, &why, now_ms)
                        .await?;
                }
                if reference.is_some() {
                    break;
                }
            }
        }
        if let Some(id) = waiting {
            return Ok(Step::Held(id));
        }
        let request = self.new_request(actor, decision, call, digest, now_ms);
        let id = request.id.clone();
        let stored = Stored {
            request,
            state: PENDING.into(),
            version: 1,
        };
        store.put_approval(&stored.record()).await?;
        store
            .append(vec![record(
                "requested",
                &stored.request,
                None,
                now_ms,
                json!({
                    "holds": stored.request.holds.iter().map(|h| &h.facts.policy).collect::<Vec<_>>(),
                    "expires_at_ms": stored.request.expires_at_ms,
                }),
            )])
            .await?;
        if let Some(hook) = &self.webhook {
            hook.notify(&stored.request);
        }
        Ok(Step::Held(id))
    }

    fn new_request(
        &self,
        actor: &Actor<'_>,
        decision: &Decision,
        call: &Call,
        digest: String,
        now_ms: i64,
    ) -> Request {
        let engine = self.engine();
        let settings = &engine.config().approvals;
        Request {
            id: super::new_id(),
            digest,
            decision_id: decision.id.clone(),
            agent: decision.agent.clone(),
            principal: decision.principal.clone(),
            mission: decision.mission.clone(),
            mission_chain: decision.mission_chain.clone(),
            session: decision.session.clone(),
            call: HeldCall::from(call),
            call_digest: decision.call_digest.clone(),
            policy_version: self.policy_version().to_string(),
            reasons: decision.reasons.clone(),
            exposure: decision.exposure.clone(),
            sources: decision.flow.sources.clone(),
            holds: holds_of(engine, decision, actor.mission),
            alternative: alternative_of(engine, call, &decision.principal),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(settings.expires_secs.saturating_mul(1000)),
            answers: Vec::new(),
            narrowed: None,
            closed: None,
        }
    }

    /// An approval that lifts nothing: say why in the decision and audit the attempt.
    async fn refuse_use(
        &self,
        decision: &mut Decision,
        stored: Option<&Stored>,
        id: &str,
        why: &str,
        now_ms: i64,
    ) -> Result<(), EnforceError> {
        let text = format!("the approval `{id}` does not apply: {why}");
        decision.reasons.push(Reason {
            stage: Stage::Approval,
            outcome: decision.decision,
            policy: None,
            text: text.clone(),
        });
        let body = json!({ "reason": why, "attempt": decision.id, "tool": decision.tool });
        let input = match stored {
            Some(s) => record("refused", &s.request, None, now_ms, body),
            None => {
                let mut r = super::people::placeholder(id, Some(decision));
                r.digest = binding_digest(decision, self.policy_version());
                record("refused", &r, None, now_ms, body)
            }
        };
        self.store().append(vec![input]).await?;
        Ok(())
    }

    /// Mark `stored` used by `decision` (compare-and-swap): false when another call used it, or
    /// it changed, first.
    pub(crate) async fn use_approval(
        &self,
        stored: &Stored,
        decision: &Decision,
        now_ms: i64,
    ) -> Result<bool, EnforceError> {
        let mut next = stored.clone();
        next.state = USED.into();
        next.request.closed = Some(format!("used by decision {}", decision.id));
        if !self
            .store()
            .swap_approval(&next.record(), stored.version)
            .await?
        {
            return Ok(false);
        }
        self.store()
            .append(vec![record(
                "used",
                &stored.request,
                None,
                now_ms,
                json!({ "decision": decision.id, "tool": decision.tool }),
            )])
            .await?;
        Ok(true)
    }
}

impl Enforcer {
    /// The approved narrower call `call`, chosen in request `id`, is held by `decision`: it may
    /// go only when every hold is one the approver who chose it may approve. Returns the request
    /// and the holds to lift; otherwise turns the decision into a deny that says why.
    pub(crate) async fn narrowed_step(
        &self,
        actor: &Actor<'_>,
        decision: &mut Decision,
        call: &Call,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<(Stored, BTreeSet<String>)>, EnforceError> {
        let stored = match self.narrowed_request(id, call, now_ms).await? {
            Ok(s) => s,
            Err(why) => {
                crate::enforcer::refuse(decision, Stage::Approval, why);
                return Ok(None);
            }
        };
        let Some(by) = stored.request.narrowed.as_ref().map(|n| n.by.clone()) else {
            return Ok(None);
        };
        let engine = self.engine();
        let cfg = engine.config();
        let mut lifted = BTreeSet::new();
        for hold in holds_of(engine, decision, actor.mission) {
            let may = cfg
                .approvals
                .policies
                .may_approve(&cfg.directory, &by, &hold.facts);
            if !may.allowed {
                crate::enforcer::refuse(
                    decision,
                    Stage::Approval,
                    format!(
                        "the narrower call `{by}` chose in request `{id}` is itself held ({}), and `{by}` may not approve that: {}",
                        hold.text, may.reason
                    ),
                );
                return Ok(None);
            }
            lifted.insert(hold.facts.policy);
        }
        Ok(Some((stored, lifted)))
    }

    /// The request `id`, when it is approved with `call` as its narrower call and still usable;
    /// otherwise why not.
    async fn narrowed_request(
        &self,
        id: &str,
        call: &Call,
        now_ms: i64,
    ) -> Result<Result<Stored, String>, EnforceError> {
        let Some(s) = self.store().approval(id).await?.and_then(Stored::of) else {
            return Ok(Err(format!("there is no approval request `{id}`")));
        };
        let chosen = s.request.narrowed.as_ref().map(|n| &n.call);
        Ok(if s.state != APPROVED {
            Err(format!("the approval request `{id}` is {}", s.state))
        } else if s.expired(now_ms) {
            Err(format!("the approval request `{id}` expired"))
        } else if chosen != Some(&HeldCall::from(call)) {
            Err(format!(
                "this is not the narrower call approved in request `{id}`"
            ))
        } else {
            Ok(s)
        })
    }

    /// Use request `id` for the narrower call `decision` allowed on its own.
    pub(crate) async fn use_narrowed(
        &self,
        id: &str,
        call: &Call,
        decision: &Decision,
        now_ms: i64,
    ) -> Result<bool, EnforceError> {
        match self.narrowed_request(id, call, now_ms).await? {
            Ok(s) => self.use_approval(&s, decision, now_ms).await,
            Err(_) => Ok(false),
        }
    }
}

/// The reasons an approved call shows: who approved each hold.
pub(crate) fn approved_reasons(s: &Stored) -> Vec<Reason> {
    s.request
        .holds
        .iter()
        .map(|h| Reason {
            stage: Stage::Approval,
            outcome: Outcome::Allow,
            policy: Some(h.facts.policy.clone()),
            text: format!(
                "approved by {} in request `{}` ({})",
                h.approved_by.join(", "),
                s.request.id,
                h.text
            ),
        })
        .collect()
}
