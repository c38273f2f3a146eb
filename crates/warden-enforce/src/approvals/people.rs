//! What people do with approval requests: list, show, approve, deny, approve a narrower call.
//! The CLI (`warden approvals`) and the HTTP API call these; the approver is always the person
//! who authenticated, never a name passed in.

use std::sync::Arc;

use serde_json::json;
use warden_core::approve::CONSENT;
use warden_core::{Call, Decision, Engine};
use warden_store::{ApprovalFilter, Store, StoreError};

use super::{
    changes, record, Answer, HeldCall, Narrowed, Request, Stored, APPROVED, CANCELLED, DENIED,
    PENDING,
};
use crate::identity::Principal;

/// Why a person's answer was refused. Every refusal is audited.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No such request (or not one this person may see).
    #[error("no approval request `{0}`")]
    NotFound(String),
    /// The person may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The request cannot take this answer (expired, used, denied, …).
    #[error("{0}")]
    Closed(String),
    /// The answer is malformed (a narrower call on an unknown tool, …).
    #[error("{0}")]
    Invalid(String),
    /// The store failed: nothing was recorded.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// The result of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The request as it is now.
    pub request: Stored,
    /// The holds this answer approved (ask policy ids).
    pub approved: Vec<String>,
    /// The holds still waiting, with what they need.
    pub waiting: Vec<String>,
}

/// Approval requests, as people see and answer them.
#[derive(Debug, Clone)]
pub struct Approvals {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
}

/// How many times an answer is retried when another answer changed the request meanwhile.
const RETRIES: usize = 5;

impl Approvals {
    /// People's side of the requests in `store`, judged by `engine`'s approver policies.
    pub fn new(engine: Arc<Engine>, store: Arc<dyn Store>) -> Approvals {
        Approvals { engine, store }
    }

    /// Whether `who` may see a request: it acts for them, or they may approve one of its holds.
    fn may_see(&self, who: &Principal, r: &Request) -> bool {
        r.principal == who.user || self.approvable(who, r).next().is_some()
    }

    /// The holds of `r` that `who` may approve (met or not).
    fn approvable<'r>(
        &'r self,
        who: &'r Principal,
        r: &'r Request,
    ) -> impl Iterator<Item = &'r super::Hold> + 'r {
        let cfg = self.engine.config();
        r.holds.iter().filter(move |h| {
            cfg.approvals
                .policies
                .may_approve(&cfg.directory, &who.user, &h.facts)
                .allowed
        })
    }

    /// The requests `who` may see, newest first; `state` filters (`pending`, …).
    pub async fn list(
        &self,
        who: &Principal,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Stored>, ApprovalError> {
        let rows = self
            .store
            .approvals(&ApprovalFilter {
                state: state.map(String::from),
                limit: 0,
                ..ApprovalFilter::default()
            })
            .await?;
        let mut out: Vec<Stored> = rows
            .into_iter()
            .filter_map(Stored::of)
            .filter(|s| self.may_see(who, &s.request))
            .collect();
        if limit > 0 {
            out.truncate(limit as usize);
        }
        Ok(out)
    }

    /// One request, if `who` may see it.
    pub async fn show(&self, who: &Principal, id: &str) -> Result<Stored, ApprovalError> {
        self.store
            .approval(id)
            .await?
            .and_then(Stored::of)
            .filter(|s| self.may_see(who, &s.request))
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))
    }

    /// Approve every hold of request `id` that `who` may approve.
    pub async fn approve(
        &self,
        who: &Principal,
        id: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Answered, ApprovalError> {
        self.answer(who, id, note, None, false, now_ms).await
    }

    /// The principal's act-as consent to request `id`, given through the agent's own MCP client
    /// (an elicitation the client answered). Only the consent holds are approved, and only when
    /// the configuration says this agent's client is operated by its principal.
    pub async fn consent_through_client(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Answered, ApprovalError> {
        let s = self
            .store
            .approval(id)
            .await?
            .and_then(Stored::of)
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        if !self
            .engine
            .config()
            .approvals
            .elicit_consent
            .contains(&s.request.agent)
        {
            return Err(ApprovalError::Forbidden(format!(
                "the client of agent `{}` is not one its principal operates (`[approvals] elicit_consent`)",
                s.request.agent
            )));
        }
        let who = Principal {
            user: s.request.principal.clone(),
            method: crate::identity::AuthMethod::Client,
            subject: None,
            issuer: None,
            expires_at: None,
        };
        self.answer(
            &who,
            id,
            "consent given through the agent's MCP client",
            None,
            true,
            now_ms,
        )
        .await
    }

    /// Approve a narrower call instead of request `id`'s: `who` must be allowed to approve
    /// every hold that is not act-as consent (a narrower call does not act as anyone unless
    /// it says so itself, and then it is held again). The narrower call is decided again, in
    /// full, when the agent's call is: it goes only when allowed on its own, or held only for
    /// reasons `who` may approve.
    pub async fn approve_narrowed(
        &self,
        who: &Principal,
        id: &str,
        call: Call,
        note: &str,
        now_ms: i64,
    ) -> Result<Answered, ApprovalError> {
        let name = call.name();
        if self.engine.config().catalog.get(&name).is_none() {
            return Err(ApprovalError::Invalid(format!(
                "the catalog does not describe `{name}`"
            )));
        }
        self.answer(who, id, note, Some(call), false, now_ms).await
    }

    /// Deny request `id`: anyone who may approve one of its holds, or its principal, may.
    pub async fn deny(
        &self,
        who: &Principal,
        id: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Stored, ApprovalError> {
        for _ in 0..RETRIES {
            let s = self.load(who, id, "deny", now_ms).await?;
            if s.request.principal != who.user && self.approvable(who, &s.request).next().is_none()
            {
                return Err(self
                    .refused(
                        who,
                        &s,
                        "deny",
                        ApprovalError::Forbidden(format!(
                            "`{}` may approve none of its holds",
                            who.user
                        )),
                        now_ms,
                    )
                    .await);
            }
            let mut next = s.clone();
            next.state = DENIED.into();
            let why = if reason.is_empty() {
                format!("denied by {}", who.user)
            } else {
                format!("denied by {}: {reason}", who.user)
            };
            next.request.closed = Some(why.clone());
            next.request.answers.push(Answer {
                by: who.user.clone(),
                auth: who.method.as_str().to_string(),
                verdict: "deny".into(),
                holds: s
                    .request
                    .holds
                    .iter()
                    .map(|h| h.facts.policy.clone())
                    .collect(),
                note: reason.to_string(),
                at_ms: now_ms,
            });
            if self.store.swap_approval(&next.record(), s.version).await? {
                self.store
                    .append(vec![record(
                        "denied",
                        &s.request,
                        Some(&who.user),
                        now_ms,
                        json!({ "reason": reason, "auth": who.method.as_str() }),
                    )])
                    .await?;
                next.version = s.version + 1;
                return Ok(next);
            }
        }
        Err(ApprovalError::Closed(format!(
            "request `{id}` kept changing; try again"
        )))
    }

    /// Cancel every pending or approved request `matches` selects (the kill switch); returns
    /// their ids.
    pub async fn cancel_where(
        &self,
        matches: impl Fn(&Request) -> bool,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, ApprovalError> {
        let mut out = Vec::new();
        for state in [PENDING, APPROVED] {
            let rows = self
                .store
                .approvals(&ApprovalFilter {
                    state: Some(state.into()),
                    ..ApprovalFilter::default()
                })
                .await?;
            for s in rows.into_iter().filter_map(Stored::of) {
                if !matches(&s.request) {
                    continue;
                }
                let mut next = s.clone();
                next.state = CANCELLED.into();
                next.request.closed = Some(format!("cancelled by {by}: {reason}"));
                if self.store.swap_approval(&next.record(), s.version).await? {
                    self.store
                        .append(vec![record(
                            "cancelled",
                            &s.request,
                            Some(by),
                            now_ms,
                            json!({ "reason": reason }),
                        )])
                        .await?;
                    out.push(s.request.id.clone());
                }
            }
        }
        Ok(out)
    }

    async fn answer(
        &self,
        who: &Principal,
        id: &str,
        note: &str,
        narrowed: Option<Call>,
        consent_only: bool,
        now_ms: i64,
    ) -> Result<Answered, ApprovalError> {
        let verdict = if narrowed.is_some() {
            "approve-narrowed"
        } else {
            "approve"
        };
        for _ in 0..RETRIES {
            let s = self.load(who, id, verdict, now_ms).await?;
            if s.state != PENDING {
                return Err(self
                    .refused(
                        who,
                        &s,
                        verdict,
                        ApprovalError::Closed(format!("request `{id}` is {} already", s.state)),
                        now_ms,
                    )
                    .await);
            }
            let cfg = self.engine.config();
            let mut next = s.clone();
            let mut approved = Vec::new();
            let mut refusals = Vec::new();
            let mut already = Vec::new();
            for hold in &mut next.request.holds {
                if consent_only && hold.facts.kind != CONSENT {
                    continue;
                }
                let may =
                    cfg.approvals
                        .policies
                        .may_approve(&cfg.directory, &who.user, &hold.facts);
                if !may.allowed {
                    if narrowed.is_some() && hold.facts.kind == CONSENT {
                        continue;
                    }
                    refusals.push(format!("{}: {}", hold.facts.policy, may.reason));
                    continue;
                }
                if hold.approved_by.contains(&who.user) {
                    already.push(hold.facts.policy.clone());
                    continue;
                }
                if !hold.met() {
                    hold.approved_by.push(who.user.clone());
                    approved.push(hold.facts.policy.clone());
                }
            }
            let refuse = |e: ApprovalError| self.refused(who, &s, verdict, e, now_ms);
            if narrowed.is_some() && !refusals.is_empty() {
                return Err(refuse(ApprovalError::Forbidden(format!(
                    "to choose a narrower call, `{}` must be allowed to approve every hold but consent; not {}",
                    who.user,
                    refusals.join("; ")
                )))
                .await);
            }
            if approved.is_empty() && narrowed.is_none() {
                let why = if !already.is_empty() {
                    format!(
                        "`{}` approved every hold they may approve already ({}){}",
                        who.user,
                        already.join(", "),
                        if refusals.is_empty() {
                            String::new()
                        } else {
                            format!("; not {}", refusals.join("; "))
                        }
                    )
                } else if refusals.is_empty() {
                    format!("every hold `{}` may approve is met already", who.user)
                } else {
                    format!(
                        "`{}` may approve none of its holds: {}",
                        who.user,
                        refusals.join("; ")
                    )
                };
                return Err(refuse(ApprovalError::Forbidden(why)).await);
            }
            let held = next.request.call.clone();
            if let Some(call) = &narrowed {
                let to = HeldCall::from(call);
                next.request.narrowed = Some(Narrowed {
                    by: who.user.clone(),
                    changes: changes(&held, &to),
                    call: to,
                });
                next.state = APPROVED.into();
            } else if next.request.holds.iter().all(super::Hold::met) {
                next.state = APPROVED.into();
            }
            next.request.answers.push(Answer {
                by: who.user.clone(),
                auth: who.method.as_str().to_string(),
                verdict: verdict.into(),
                holds: approved.clone(),
                note: note.to_string(),
                at_ms: now_ms,
            });
            if !self.store.swap_approval(&next.record(), s.version).await? {
                continue;
            }
            next.version = s.version + 1;
            let waiting: Vec<String> = next
                .request
                .holds
                .iter()
                .filter(|h| !h.met())
                .map(|h| {
                    format!(
                        "{} ({} of {} approvals)",
                        h.facts.policy,
                        h.approved_by.len(),
                        h.needs
                    )
                })
                .collect();
            let event = if narrowed.is_some() {
                "approved-narrowed"
            } else {
                "approved"
            };
            self.store
                .append(vec![record(
                    event,
                    &s.request,
                    Some(&who.user),
                    now_ms,
                    json!({
                        "holds": approved,
                        "waiting": waiting,
                        "state": next.state,
                        "note": note,
                        "auth": who.method.as_str(),
                        "narrowed": next.request.narrowed,
                    }),
                )])
                .await?;
            return Ok(Answered {
                request: next,
                approved,
                waiting,
            });
        }
        Err(ApprovalError::Closed(format!(
            "request `{id}` kept changing; try again"
        )))
    }

    /// The request, open for an answer: refused (and audited) when it is missing, hidden from
    /// `who`, or expired.
    async fn load(
        &self,
        who: &Principal,
        id: &str,
        verdict: &str,
        now_ms: i64,
    ) -> Result<Stored, ApprovalError> {
        let Some(s) = self.store.approval(id).await?.and_then(Stored::of) else {
            return Err(self.refused_unknown(who, id, verdict, now_ms).await);
        };
        if who.user == s.request.agent {
            return Err(self
                .refused(
                    who,
                    &s,
                    verdict,
                    ApprovalError::Forbidden("an agent never approves".into()),
                    now_ms,
                )
                .await);
        }
        if s.expired(now_ms) && (s.state == PENDING || s.state == APPROVED) {
            return Err(self
                .refused(
                    who,
                    &s,
                    verdict,
                    ApprovalError::Closed(format!("request `{id}` expired")),
                    now_ms,
                )
                .await);
        }
        Ok(s)
    }

    /// Audit a refused answer and return its error.
    async fn refused(
        &self,
        who: &Principal,
        s: &Stored,
        verdict: &str,
        error: ApprovalError,
        now_ms: i64,
    ) -> ApprovalError {
        let input = record(
            "refused",
            &s.request,
            Some(&who.user),
            now_ms,
            json!({ "answer": verdict, "reason": error.to_string(), "auth": who.method.as_str() }),
        );
        match self.store.append(vec![input]).await {
            Ok(_) => error,
            Err(e) => ApprovalError::Store(e),
        }
    }

    async fn refused_unknown(
        &self,
        who: &Principal,
        id: &str,
        verdict: &str,
        now_ms: i64,
    ) -> ApprovalError {
        let r = placeholder(id, None);
        let input = record(
            "refused",
            &r,
            Some(&who.user),
            now_ms,
            json!({ "answer": verdict, "reason": "no such request" }),
        );
        match self.store.append(vec![input]).await {
            Ok(_) => ApprovalError::NotFound(id.to_string()),
            Err(e) => ApprovalError::Store(e),
        }
    }
}

/// A request that names only `id` and the call `decision` was about (for audit records of
/// attempts on requests that do not exist).
pub(crate) fn placeholder(id: &str, decision: Option<&Decision>) -> Request {
    let field = |f: fn(&Decision) -> &String| decision.map(f).cloned().unwrap_or_default();
    Request {
        id: id.to_string(),
        digest: String::new(),
        decision_id: field(|d| &d.id),
        agent: field(|d| &d.agent),
        principal: field(|d| &d.principal),
        mission: field(|d| &d.mission),
        mission_chain: Vec::new(),
        session: field(|d| &d.session),
        call: HeldCall {
            server: String::new(),
            tool: field(|d| &d.tool),
            args: serde_json::Value::Null,
        },
        call_digest: field(|d| &d.call_digest),
        policy_version: String::new(),
        reasons: Vec::new(),
        exposure: None,
        sources: Vec::new(),
        holds: Vec::new(),
        alternative: None,
        created_at_ms: 0,
        expires_at_ms: 0,
        answers: Vec::new(),
        narrowed: None,
        closed: None,
    }
}
