//! Calls held for a person's approval.
//!
//! When a decision asks, the [`crate::Enforcer`] makes an approval request, bound to a digest
//! of the exact action: the agent, the principal, the mission chain, the canonical call and the
//! policy set's version ([`binding_digest`]). The request carries the decision's reasons, its
//! exposure (count, a sample of names, the labels with where each came from) and one [`Hold`]
//! per `@warden("ask")` policy that held the call: each needs its own approval, from people the
//! approver policies permit ([`warden_core::approve`]), `@approvers("N")` of them when the ask
//! policy says so.
//!
//! People answer through [`Approvals`] (the CLI, and the HTTP API): approve, deny, or approve
//! a narrower call instead ([`Approvals::approve_narrowed`]). An approved request is used once:
//! the identical call, decided again, goes through with the approved holds lifted, and the
//! request becomes `used` in one compare-and-swap, so two replicas cannot both use it. A request
//! that is expired, used, denied or bound to another call lifts nothing, and the attempt is a
//! record of the audit chain. Nothing is ever approved because time ran out.

mod held;
mod people;
mod wait;
pub mod webhook;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warden_core::approve::{HoldFacts, REVIEW};
use warden_core::mission::Mission;
use warden_core::model::{Exposure, LabelSource, Reason};
use warden_core::{Call, Decision, Engine};
use warden_store::{ApprovalRecord, AuditColumns, AuditInput, AuditKind};

pub use held::NarrowedCall;
pub(crate) use held::{approved_reasons, Step};
pub use people::{Answered, ApprovalError, Approvals};
pub use wait::Resolution;
pub(crate) use wait::Waiters;

/// Waiting for a person.
pub const PENDING: &str = "pending";
/// Every hold is approved; not used yet.
pub const APPROVED: &str = "approved";
/// A person refused it.
pub const DENIED: &str = "denied";
/// The approval was used by the call it was given for.
pub const USED: &str = "used";
/// Cancelled (the kill switch, or the mission was stopped).
pub const CANCELLED: &str = "cancelled";

/// A call, as a request shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldCall {
    /// The upstream server.
    pub server: String,
    /// The tool.
    pub tool: String,
    /// The arguments.
    pub args: Value,
}

impl HeldCall {
    /// The call itself.
    pub fn to_call(&self) -> Call {
        Call::new(&self.server, &self.tool, self.args.clone())
    }

    /// `server.tool`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.server, self.tool)
    }
}

impl From<&Call> for HeldCall {
    fn from(c: &Call) -> Self {
        HeldCall {
            server: c.server.clone(),
            tool: c.tool.clone(),
            args: c.args.clone(),
        }
    }
}

/// One reason a call is held, and who approved it so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    /// What the hold is about (the approver policies' `resource`).
    pub facts: HoldFacts,
    /// The ask policy's reason, in words.
    pub text: String,
    /// How many different people must approve it.
    pub needs: u32,
    /// Who approved it, in order.
    #[serde(default)]
    pub approved_by: Vec<String>,
}

impl Hold {
    /// Whether enough people approved it.
    pub fn met(&self) -> bool {
        self.approved_by.len() >= self.needs as usize
    }
}

/// One person's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Who answered (the authenticated user).
    pub by: String,
    /// How they authenticated (`local`, `jwt`, `proxy`).
    pub auth: String,
    /// `approve`, `deny` or `approve-narrowed`.
    pub verdict: String,
    /// The holds (ask policy ids) the answer covers.
    pub holds: Vec<String>,
    /// What they said.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// When (Unix milliseconds).
    pub at_ms: i64,
}

/// A narrower call an approver chose instead of the one held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Narrowed {
    /// Who chose it.
    pub by: String,
    /// The call that may go instead.
    pub call: HeldCall,
    /// What changed, in words (for the agent's result).
    pub changes: String,
}

/// The safe alternative the catalog offers for a held call (one action for an approver).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// The call.
    pub call: HeldCall,
    /// What it does, in words.
    pub text: String,
}

/// An approval request: what the store keeps in its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Its id (`apr-…`).
    pub id: String,
    /// What it is bound to ([`binding_digest`]).
    pub digest: String,
    /// The decision that held the call.
    pub decision_id: String,
    /// The agent.
    pub agent: String,
    /// The person the agent acts for.
    pub principal: String,
    /// The mission.
    pub mission: String,
    /// The missions from the root of its chain (narrowed missions only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mission_chain: Vec<String>,
    /// The session (its name).
    pub session: String,
    /// The call held.
    pub call: HeldCall,
    /// SHA-256 of the canonical call.
    pub call_digest: String,
    /// The policy set's version.
    pub policy_version: String,
    /// The decision's reasons.
    pub reasons: Vec<Reason>,
    /// Who would see what, when the call reaches an audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
    /// The labels flowing into the call, with where each came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<LabelSource>,
    /// One per ask policy that held the call.
    pub holds: Vec<Hold>,
    /// The catalog's safe alternative, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<Alternative>,
    /// When it was made.
    pub created_at_ms: i64,
    /// When it lapses, unanswered or unused.
    pub expires_at_ms: i64,
    /// Every answer, in order.
    #[serde(default)]
    pub answers: Vec<Answer>,
    /// The narrower call approved instead, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narrowed: Option<Narrowed>,
    /// How it ended: the reason of a denial or cancellation, or the decision that used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
}

/// A request with its stored state and version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// The request.
    pub request: Request,
    /// `pending`, `approved`, `denied`, `used` or `cancelled`.
    pub state: String,
    /// Its version in the store.
    pub version: u64,
}

impl Stored {
    /// From the store's row; `None` when its body is not a request.
    pub fn of(r: ApprovalRecord) -> Option<Stored> {
        let request: Request = serde_json::from_value(r.body).ok()?;
        Some(Stored {
            request,
            state: r.state,
            version: r.version,
        })
    }

    /// The store's row.
    pub fn record(&self) -> ApprovalRecord {
        let r = &self.request;
        ApprovalRecord {
            id: r.id.clone(),
            digest: r.digest.clone(),
            state: self.state.clone(),
            agent: r.agent.clone(),
            principal: r.principal.clone(),
            mission_id: r.mission.clone(),
            tool: r.call.name(),
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            version: self.version,
            body: serde_json::to_value(r).unwrap_or(Value::Null),
        }
    }

    /// Whether it lapsed by `now_ms` (an expired request is never used, whatever its state).
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms >= self.request.expires_at_ms
    }

    /// Its state as people read it: `expired` for a pending or approved request past its time.
    pub fn state_at(&self, now_ms: i64) -> &str {
        if self.expired(now_ms) && (self.state == PENDING || self.state == APPROVED) {
            "expired"
        } else {
            &self.state
        }
    }

    /// The ask policies whose holds are met.
    pub fn met(&self) -> BTreeSet<String> {
        self.request
            .holds
            .iter()
            .filter(|h| h.met())
            .map(|h| h.facts.policy.clone())
            .collect()
    }
}

/// What an approval is bound to: SHA-256 over the agent, the principal, the mission chain, the
/// canonical call and the policy set's version. Changing any argument changes it.
pub fn binding_digest(decision: &Decision, policy_version: &str) -> String {
    let chain: Vec<&String> = if decision.mission_chain.is_empty() {
        vec![&decision.mission]
    } else {
        decision.mission_chain.iter().collect()
    };
    let text = json!([
        "warden-approval/v1",
        decision.agent,
        decision.principal,
        decision.mission,
        chain,
        decision.call_digest,
        policy_version
    ])
    .to_string();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A fresh request id.
fn new_id() -> String {
    let mut bytes = [0u8; 9];
    if getrandom::fill(&mut bytes).is_err() {
        // The id only needs to be unique; the store refuses a duplicate.
        bytes = (crate::now_ms() as u128).to_le_bytes()[..9]
            .try_into()
            .unwrap_or([0; 9]);
    }
    format!("apr-{}", hex::encode(bytes))
}

/// The holds of a decision: one per ask policy, as the engine's policies describe them.
pub fn holds_of(engine: &Engine, decision: &Decision, mission: &Mission) -> Vec<Hold> {
    let policies = &engine.config().policies;
    decision
        .ask_policies
        .iter()
        .map(|id| {
            let info = policies.info(id);
            let text = decision
                .reasons
                .iter()
                .find(|r| r.policy.as_deref() == Some(id.as_str()))
                .map(|r| r.text.clone())
                .unwrap_or_else(|| format!("held by policy `{id}`"));
            Hold {
                facts: facts_of(
                    engine,
                    decision,
                    mission,
                    id,
                    info.and_then(|i| i.hold.clone()),
                ),
                text,
                needs: info.map(|i| i.approvers).unwrap_or(1).max(1),
                approved_by: Vec::new(),
            }
        })
        .collect()
}

/// The facts of the hold `policy` makes on `decision`.
pub fn facts_of(
    engine: &Engine,
    decision: &Decision,
    mission: &Mission,
    policy: &str,
    kind: Option<String>,
) -> HoldFacts {
    let exposure = decision.exposure.as_ref();
    HoldFacts {
        kind: kind.unwrap_or_else(|| REVIEW.to_string()),
        policy: policy.to_string(),
        principal: decision.principal.clone(),
        agent: decision.agent.clone(),
        tool: decision.tool.clone(),
        effect: decision
            .effect
            .map(|e| e.as_str().to_string())
            .unwrap_or_default(),
        // Confidentiality labels only (reader-set `channel:` labels are counted in the
        // exposure): what an approver must be cleared for to judge the call.
        labels: decision
            .flow
            .labels
            .iter()
            .chain(exposure.into_iter().flat_map(|e| e.labels.iter()))
            .map(|l| l.to_string())
            .filter(|l| engine.config().is_confidentiality(l) && !l.starts_with("channel:"))
            .collect(),
        resource_labels: decision.flow.resource_labels.clone(),
        exposure: exposure.map(|e| e.count).unwrap_or(0),
        audience: exposure.map(|e| e.audience).unwrap_or(0),
        mission: decision.mission.clone(),
        template: mission.template.clone(),
    }
}

/// The safe alternative the catalog entry of `call`'s tool offers (`private = { tool, args }`),
/// filled in for this call and principal.
pub fn alternative_of(engine: &Engine, call: &Call, principal: &str) -> Option<Alternative> {
    let spec = engine.config().catalog.get(&call.name())?;
    let alt = spec.private.as_ref()?;
    let (server, tool) = alt.tool.split_once('.')?;
    let mut args = serde_json::Map::new();
    for (k, template) in &alt.args {
        let value = if template == "{principal}" {
            Value::String(principal.to_string())
        } else if let Some(arg) = template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            call.args.get(arg).cloned()?
        } else {
            Value::String(template.clone())
        };
        args.insert(k.clone(), value);
    }
    Some(Alternative {
        call: HeldCall {
            server: server.to_string(),
            tool: tool.to_string(),
            args: Value::Object(args),
        },
        text: alt.text.replace("{principal}", principal),
    })
}

/// What changed between the held call and a narrower one, in words.
pub fn changes(from: &HeldCall, to: &HeldCall) -> String {
    let mut out = Vec::new();
    if from.name() != to.name() {
        out.push(format!("`{}` instead of `{}`", to.name(), from.name()));
    }
    let empty = serde_json::Map::new();
    let a = from.args.as_object().unwrap_or(&empty);
    let b = to.args.as_object().unwrap_or(&empty);
    for (k, v) in b {
        match a.get(k) {
            None => out.push(format!("`{k}` set to {}", short(v))),
            Some(old) if old != v => out.push(format!("`{k}` changed to {}", short(v))),
            Some(_) => {}
        }
    }
    for k in a.keys().filter(|k| !b.contains_key(*k)) {
        out.push(format!("`{k}` removed"));
    }
    if out.is_empty() {
        "nothing".into()
    } else {
        out.join("; ")
    }
}

fn short(v: &Value) -> String {
    let t = v.to_string();
    if t.chars().count() > 60 {
        format!("{}…", t.chars().take(60).collect::<String>())
    } else {
        t
    }
}

/// An audit record of kind `approval` (`tool` is `approval/<event>`).
pub(crate) fn record(
    event: &str,
    r: &Request,
    by: Option<&str>,
    at_ms: i64,
    body: Value,
) -> AuditInput {
    let mut body = body;
    if let Value::Object(m) = &mut body {
        m.insert("event".into(), Value::String(event.into()));
        m.insert("request".into(), Value::String(r.id.clone()));
        m.insert("digest".into(), Value::String(r.digest.clone()));
        m.insert("call".into(), Value::String(r.call.name()));
        if let Some(by) = by {
            m.insert("by".into(), Value::String(by.into()));
        }
    }
    AuditInput {
        kind: AuditKind::Approval,
        at_ms,
        columns: AuditColumns {
            decision_id: Some(r.decision_id.clone()),
            mission_id: Some(r.mission.clone()),
            principal: Some(by.unwrap_or(&r.principal).to_string()),
            agent: Some(r.agent.clone()),
            tool: Some(format!("approval/{event}")),
            outcome: Some(event.to_string()),
        },
        body,
    }
}
