//! The steps of a decision, in order (breakers, resolve, ceiling, mission, flow, policy,
//! combine), and the commit that counts it.

use std::collections::BTreeSet;

use cedar_policy::EntityUid;

use super::context::{ARGS, ARG_SUMMARIES};
use super::explain::{explain_flow, uid_text};
use super::types::{Allowed, Breakers, Call, Ctx, Decided, Inner, Receipt};
use super::Engine;
use crate::catalog::{Resolved, ToolSpec};
use crate::detect::fingerprint::SentTails;
use crate::entity::uid;
use crate::mission::{Mission, MissionUsage};
use crate::model::{Decision, Outcome, Reason, Stage};
use crate::policy::Evaluation;
use crate::session::{HistoryEntry, SessionState};

impl Engine {
    /// Decide one call. Pure: the same inputs give the same decision.
    pub fn decide(
        &self,
        call: Call,
        mission: &Mission,
        session: &SessionState,
        usage: &MissionUsage,
        breakers: &Breakers,
        now_ms: i64,
    ) -> Decided {
        self.decide_lifting(
            call,
            mission,
            session,
            usage,
            breakers,
            now_ms,
            &BTreeSet::new(),
        )
    }

    /// [`Engine::decide`], with the holds of the `@warden("ask")` policies in `lifted` lifted:
    /// a person approved them for this very call. Nothing else changes: a deny still denies,
    /// and an ask policy not in `lifted` still holds the call.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_lifting(
        &self,
        call: Call,
        mission: &Mission,
        session: &SessionState,
        usage: &MissionUsage,
        breakers: &Breakers,
        now_ms: i64,
        lifted: &BTreeSet<String>,
    ) -> Decided {
        let name = call.name();
        let (call_bytes, digest) = call.canonical();
        let cx = Ctx {
            call: &call,
            name: name.clone(),
            mission,
            session,
            usage,
            breakers,
            now_ms,
            digest,
            call_bytes,
            lifted,
        };
        let (mut decision, permit) = self.decide_inner(&cx);
        decision.tool = name;
        let (allowed, held) = match permit {
            Some(p) if decision.decision == Outcome::Allow => (
                Some(Allowed {
                    inner: call,
                    receipt: Receipt {
                        decision_id: decision.id.clone(),
                        ..p.receipt
                    },
                }),
                None,
            ),
            _ if decision.decision == Outcome::Ask => (None, Some(call)),
            _ => (None, None),
        };
        Decided {
            decision,
            allowed,
            held,
        }
    }

    fn decide_inner(&self, cx: &Ctx<'_>) -> Inner {
        let cfg = &self.config;
        let call = cx.call;
        let mission = cx.mission;
        // 0. Input bounds.
        let arg_bytes = cx.call_bytes;
        if arg_bytes > cfg.limits.max_argument_bytes {
            return cx.deny(
                Stage::Input,
                format!(
                    "the arguments are {arg_bytes} bytes; the limit is {}",
                    cfg.limits.max_argument_bytes
                ),
            );
        }
        if cx.name.len() > 256 {
            return cx.deny(
                Stage::Input,
                "the tool name is longer than 256 bytes".into(),
            );
        }
        // 1. Breakers.
        let b = cx.breakers;
        if b.global {
            return cx.deny(
                Stage::Breaker,
                format!(
                    "the global kill switch is on{}: every call is denied until a person resets it",
                    b.why("global")
                ),
            );
        }
        if b.agents.contains(&mission.agent) {
            let key = format!("agent:{}", mission.agent);
            return cx.deny(
                Stage::Breaker,
                format!(
                    "the breaker of agent `{}` is tripped{}",
                    mission.agent,
                    b.why(&key)
                ),
            );
        }
        if b.principals.contains(&mission.principal) {
            let key = format!("principal:{}", mission.principal);
            return cx.deny(
                Stage::Breaker,
                format!(
                    "the breaker of principal `{}` is tripped{}",
                    mission.principal,
                    b.why(&key)
                ),
            );
        }
        if b.sessions.contains(&cx.session.id) {
            let key = format!("session:{}", cx.session.id);
            return cx.deny(
                Stage::Breaker,
                format!(
                    "the breaker of session `{}` is tripped{}",
                    cx.session.id,
                    b.why(&key)
                ),
            );
        }
        let chain = std::iter::once(&mission.id).chain(&mission.chain);
        if let Some(tripped) = chain.clone().find(|id| b.tripped_missions.contains(*id)) {
            let key = format!("mission:{tripped}");
            return cx.deny(
                Stage::Breaker,
                format!(
                    "the breaker of mission `{tripped}` is tripped{}",
                    b.why(&key)
                ),
            );
        }
        // Revoking a mission revokes every mission narrowed from it.
        if let Some(revoked) = chain.into_iter().find(|id| b.missions.contains(*id)) {
            return cx.deny(
                Stage::Breaker,
                if *revoked == mission.id {
                    format!("the mission `{revoked}` was revoked")
                } else {
                    format!(
                        "the mission `{revoked}` was revoked, and with it the mission `{}` narrowed from it",
                        mission.id
                    )
                },
            );
        }
        if let Some((scope, _)) = b.scope_revoking(mission) {
            let (what, name) = scope.split_once(':').unwrap_or(("", &scope));
            return cx.deny(
                Stage::Breaker,
                format!(
                    "every mission of {what} `{name}` granted until then was revoked, and with it the mission `{}`",
                    mission.id
                ),
            );
        }
        // 2. Resolve.
        let Some(spec) = cfg.catalog.get(&cx.name) else {
            return cx.deny(
                Stage::Resolve,
                format!(
                    "unknown tool `{}`: the catalog does not describe it, so it is denied",
                    cx.name
                ),
            );
        };
        let resolved = match spec.resolve(&call.args, &cfg.directory) {
            Ok(r) => r,
            Err(e) => return cx.deny(Stage::Resolve, e.to_string()),
        };
        let resource_uid = uid(&resolved.resource_type, &resolved.resource_id);
        let mut out = self.decide_resolved(cx, spec, &resolved, &resource_uid);
        out.0.effect = Some(spec.effect);
        out.0.resource = Some(uid_text(
            &resolved.resource_type,
            &resolved.resource_id,
            &resource_uid,
        ));
        out
    }

    fn decide_resolved(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        resource_uid: &EntityUid,
    ) -> Inner {
        let cfg = &self.config;
        let mission = cx.mission;
        // 3. Ceiling.
        let Some(agent) = cfg.agents.get(&mission.agent) else {
            return cx.deny(Stage::Ceiling, format!("unknown agent `{}`", mission.agent));
        };
        if !agent.may_use(&spec.name) {
            return cx.deny(
                Stage::Ceiling,
                format!(
                    "`{}` is outside the ceiling of agent `{}` (it may use {})",
                    spec.name,
                    agent.id,
                    agent
                        .ceiling
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        // 4. Mission.
        let Some(template) = cfg.templates.get(&mission.template) else {
            return cx.deny(
                Stage::Mission,
                format!("unknown mission template `{}`", mission.template),
            );
        };
        if cfg.directory.user(&mission.principal).is_none() {
            return cx.deny(
                Stage::Mission,
                format!(
                    "unknown principal `{}`: the directory has no such user",
                    mission.principal
                ),
            );
        }
        if let Err(v) = template.check(
            mission,
            cx.usage,
            spec,
            &cx.call.args,
            &resolved.resource_id,
            &resolved.labels,
            resolved.audience.as_ref(),
            cx.now_ms,
        ) {
            return cx.deny(Stage::Mission, v.0);
        }
        // 5. Flow.
        let (flow, exposure, advice) = self.flow(cx, spec, resolved, template);
        // 6. Policy, twice. Typed arguments are built only when policies read them.
        let argv = if self.wanted.top(ARGS) || self.wanted.top(ARG_SUMMARIES) {
            match spec.typed_args(&cx.call.args) {
                Ok(v) => Some(v),
                Err(e) => return cx.deny(Stage::Resolve, e.to_string()),
            }
        } else {
            None
        };
        if let Some(text) = argv
            .as_ref()
            .and_then(|v| crate::args::refuse_summarised(spec, v, cfg.policies.context_use()))
        {
            return cx.deny(Stage::Flow, text);
        }
        let context = match self.context(
            cx,
            spec,
            resolved,
            &flow,
            exposure.as_ref(),
            advice,
            template,
            &self.wanted,
            argv.as_ref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                return cx.deny(
                    Stage::Flow,
                    format!("could not build the policy context: {e}"),
                )
            }
        };
        let action = uid("Action", &spec.name);
        let agent_uid = uid("Agent", &mission.agent);
        let user_uid = uid("User", &mission.principal);
        // Contexts are built as values, unchecked, and only with what policies read. Debug
        // builds (every test) also build the whole context and check it against the schema.
        // A summarised required argument is absent from `args`, which the schema does not
        // allow: such contexts are not checked.
        #[cfg(debug_assertions)]
        if let Ok(argv) = spec.typed_args(&cx.call.args) {
            let full = self.context(
                cx,
                spec,
                resolved,
                &flow,
                exposure.as_ref(),
                advice,
                template,
                &super::context::Wanted::ALL,
                Some(&argv),
            );
            let checked = full.and_then(|c| {
                if !argv.summarised.is_empty() {
                    return Ok(());
                }
                cedar_policy::Request::new(
                    agent_uid.clone(),
                    action.clone(),
                    resource_uid.clone(),
                    c,
                    Some(cfg.policies.schema()),
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = checked {
                return cx.deny(
                    Stage::Flow,
                    format!("the policy context does not conform to the schema: {e}"),
                );
            }
        }
        let entities = cfg.directory.entities();
        let ancestors = cfg.directory.ancestors(&mission.principal);
        let groups = [
            uid("Action", spec.effect.as_str()),
            uid("Action", &spec.server),
        ];
        let (by_agent, by_user) = cfg.policies.evaluate_pair(
            &agent_uid,
            &user_uid,
            &ancestors,
            &action,
            &groups,
            resource_uid,
            context,
            entities,
        );
        // 7. Combine.
        let mut d = self.combine(cx, spec, resolved, &by_agent, &by_user);
        if d.decision != Outcome::Allow {
            if let Some(text) = explain_flow(&flow, exposure.as_ref(), resolved) {
                d.reasons.push(Reason {
                    stage: Stage::Flow,
                    outcome: d.decision,
                    policy: None,
                    text,
                });
            }
        }
        d.flow = flow;
        d.exposure = exposure;
        let allowed = (d.decision == Outcome::Allow).then(|| Allowed {
            inner: (),
            receipt: Receipt {
                decision_id: String::new(),
                tool: spec.name.clone(),
                resource_labels: resolved.labels.clone(),
            },
        });
        (d, allowed)
    }

    /// A policy's `@reason`, or the fallback (built only when there is no reason).
    fn policy_text(&self, id: &str, fallback: impl FnOnce() -> String) -> String {
        self.config
            .policies
            .info(id)
            .and_then(|i| i.reason.clone())
            .unwrap_or_else(fallback)
    }

    fn combine(
        &self,
        cx: &Ctx<'_>,
        spec: &ToolSpec,
        resolved: &Resolved,
        by_agent: &Evaluation,
        by_user: &Evaluation,
    ) -> Decision {
        let m = cx.mission;
        let mut reasons = Vec::new();
        let mut policies = BTreeSet::new();
        // Only the "no permit" reasons say what the call does.
        let what = || {
            format!(
                "{} `{}` on `{}`",
                spec.effect, spec.name, resolved.resource_id
            )
        };
        // Errors deny.
        for (stage, ev) in [
            (Stage::AgentPolicy, by_agent),
            (Stage::PrincipalPolicy, by_user),
        ] {
            for e in &ev.errors {
                reasons.push(Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: None,
                    text: format!("policy evaluation failed, so the call is denied: {e}"),
                });
            }
        }
        // Hard forbids deny.
        for (stage, ev) in [
            (Stage::AgentPolicy, by_agent),
            (Stage::PrincipalPolicy, by_user),
        ] {
            for id in &ev.forbids {
                if !policies.insert(id.clone()) {
                    continue;
                }
                reasons.push(Reason {
                    stage,
                    outcome: Outcome::Deny,
                    policy: Some(id.clone()),
                    text: self.policy_text(id, || format!("forbidden by policy `{id}`")),
                });
            }
        }
        // No permit denies.
        if by_agent.permits.is_empty() && by_agent.forbids.is_empty() {
            reasons.push(Reason {
                stage: Stage::AgentPolicy,
                outcome: Outcome::Deny,
                policy: None,
                text: format!("no policy permits agent `{}` to {}", m.agent, what()),
            });
        }
        if by_user.permits.is_empty() && by_user.forbids.is_empty() {
            reasons.push(Reason {
                stage: Stage::PrincipalPolicy,
                outcome: Outcome::Deny,
                policy: None,
                text: format!(
                    "`{}` may not {} themselves, so agent `{}` may not do it on their behalf",
                    m.principal,
                    what(),
                    m.agent
                ),
            });
        }
        let denied = reasons.iter().any(|r| r.outcome == Outcome::Deny);
        let mut asks = BTreeSet::new();
        if !denied {
            for (stage, ev) in [
                (Stage::AgentPolicy, by_agent),
                (Stage::PrincipalPolicy, by_user),
            ] {
                for id in &ev.asks {
                    if cx.lifted.contains(id) {
                        continue;
                    }
                    if asks.insert(id.clone()) {
                        policies.insert(id.clone());
                        reasons.push(Reason {
                            stage,
                            outcome: Outcome::Ask,
                            policy: Some(id.clone()),
                            text: self
                                .policy_text(id, || format!("needs approval under policy `{id}`")),
                        });
                    }
                }
            }
        }
        let outcome = if denied {
            Outcome::Deny
        } else if !asks.is_empty() {
            Outcome::Ask
        } else {
            for (stage, ev) in [
                (Stage::AgentPolicy, by_agent),
                (Stage::PrincipalPolicy, by_user),
            ] {
                for id in &ev.permits {
                    if !policies.insert(id.clone()) {
                        continue;
                    }
                    reasons.push(Reason {
                        stage,
                        outcome: Outcome::Allow,
                        policy: Some(id.clone()),
                        text: self.policy_text(id, || format!("permitted by policy `{id}`")),
                    });
                }
            }
            Outcome::Allow
        };
        let mut d = cx.decision(outcome, reasons);
        d.policies = policies.into_iter().collect();
        d.ask_policies = asks.into_iter().collect();
        d
    }

    /// Count a decided call in the session and, when allowed, in the mission's usage. Call this
    /// once per decision, after the decision is durably logged.
    pub fn commit(
        &self,
        decision: &Decision,
        session: &mut SessionState,
        usage: &mut MissionUsage,
    ) {
        self.commit_applied(&Committed::of(decision), session, usage);
    }

    /// [`Engine::commit`] of a decision as its [`Committed`] event (from a mission's journal).
    pub fn commit_applied(
        &self,
        c: &Committed,
        session: &mut SessionState,
        usage: &mut MissionUsage,
    ) {
        session.calls += 1;
        if c.outcome == Outcome::Allow {
            if !c.sent_tails.is_empty() {
                session.sent_tails.clone_from(&c.sent_tails);
            }
            session.allowed += 1;
            usage.calls += 1;
        }
        session.remember(HistoryEntry {
            call: session.calls,
            tool: c.tool.clone(),
            outcome: c.outcome,
            at_ms: c.at_ms,
        });
    }
}

/// What committing a decision changes in its mission's state, as a mission's journal keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    /// The outcome.
    pub outcome: Outcome,
    /// The tool.
    pub tool: String,
    /// When it was decided.
    pub at_ms: i64,
    /// The fingerprints of what an allowed call sent.
    #[serde(default, skip_serializing_if = "SentTails::is_empty")]
    pub sent_tails: SentTails,
}

impl Committed {
    /// The event of `decision`.
    pub fn of(decision: &Decision) -> Committed {
        Committed {
            outcome: decision.decision,
            tool: decision.tool.clone(),
            at_ms: decision.at_ms,
            sent_tails: decision.flow.sent_tails.clone(),
        }
    }
}
