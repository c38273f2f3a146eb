//! Circuit breakers tripped by the anomaly detectors, and reset by people.
//!
//! The [`Enforcer`] feeds every decision and every output it absorbs to the detectors of
//! [`warden_core::anomaly`]. When one trips, the breaker holds at once in this process (the next
//! call is denied with the detector's reason), is written to the store (`set_breaker`), so every
//! replica follows it through the change feed, and is audited (`breaker/tripped`). A tripped
//! breaker stays tripped until a member of `[breakers] resetters` resets it through
//! [`BreakerControl::reset`] (`warden breaker reset`); a refused reset is audited too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use warden_core::anomaly::{Anomalies, DecisionSeen, OutputSeen, Trip, Who};
use warden_core::model::Stage;
use warden_core::{Breakers, Decision, Engine};
use warden_store::{AuditColumns, AuditInput, AuditKind, Store, StoreError};

use crate::identity::Principal;
use crate::{Actor, Enforcer};

/// Who a trip is written as, in the breaker's state.
pub const TRIPPED_BY: &str = "warden";

/// The detectors an [`Enforcer`] feeds, and the breakers they tripped in this process.
#[derive(Debug)]
pub(crate) struct Detectors {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    anomalies: Anomalies,
    /// Keys this process tripped; once the breaker no longer holds (reset, here or on another
    /// replica), the detectors start again from zero for that key.
    tripped: BTreeSet<String>,
}

impl Detectors {
    /// The detectors `[breakers]` configures.
    pub(crate) fn new(engine: &Engine) -> Detectors {
        let cfg = engine.config();
        Detectors {
            inner: Mutex::new(Inner {
                anomalies: Anomalies::new(cfg.breakers.clone(), &cfg.sensitive),
                tripped: BTreeSet::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget what was counted for `key`.
    pub(crate) fn forget(&self, key: &str) {
        let mut inner = self.lock();
        inner.anomalies.reset(key);
        inner.tripped.remove(key);
    }

    /// Run `f` on the detectors, after forgetting the keys whose breakers were reset; keep only
    /// the trips of breakers not already tripped. `now` (the breakers in force) is read only
    /// when there is something to compare with it.
    fn run(
        &self,
        now: impl Fn() -> Breakers,
        f: impl FnOnce(&mut Anomalies) -> Vec<Trip>,
    ) -> Vec<Trip> {
        let mut inner = self.lock();
        if !inner.tripped.is_empty() {
            let b = now();
            let reset: Vec<String> = inner
                .tripped
                .iter()
                .filter(|k| !holds(&b, k))
                .cloned()
                .collect();
            for k in reset {
                inner.anomalies.reset(&k);
                inner.tripped.remove(&k);
            }
        }
        let mut trips = f(&mut inner.anomalies);
        if !trips.is_empty() {
            let b = now();
            trips.retain(|t| !holds(&b, &t.scope_key));
        }
        for t in &trips {
            inner.tripped.insert(t.scope_key.clone());
        }
        trips
    }
}

/// Whether the breaker `key` holds in `b`.
pub(crate) fn holds(b: &Breakers, key: &str) -> bool {
    match key.split_once(':') {
        None => key == "global" && b.global,
        Some(("agent", n)) => b.agents.contains(n),
        Some(("principal", n)) => b.principals.contains(n),
        Some(("session", n)) => b.sessions.contains(n),
        Some(("mission", n)) => b.tripped_missions.contains(n),
        Some(_) => false,
    }
}

/// Set (`on`) or clear the breaker `key` in `b`, with its reason.
fn set(b: &mut Breakers, key: &str, reason: Option<&str>, on: bool) {
    let name = |n: &str| n.to_string();
    match key.split_once(':') {
        None if key == "global" => b.global = on,
        Some(("agent", n)) if on => drop(b.agents.insert(name(n))),
        Some(("agent", n)) => drop(b.agents.remove(n)),
        Some(("principal", n)) if on => drop(b.principals.insert(name(n))),
        Some(("principal", n)) => drop(b.principals.remove(n)),
        Some(("session", n)) if on => drop(b.sessions.insert(name(n))),
        Some(("session", n)) => drop(b.sessions.remove(n)),
        Some(("mission", n)) if on => drop(b.tripped_missions.insert(name(n))),
        Some(("mission", n)) => drop(b.tripped_missions.remove(n)),
        _ => return,
    }
    match (on, reason) {
        (true, Some(r)) => drop(b.reasons.insert(key.to_string(), r.to_string())),
        (false, _) => drop(b.reasons.remove(key)),
        _ => {}
    }
}

/// Whether `key` names a breaker: `global`, `agent:NAME`, `principal:NAME`, `session:NAME`,
/// `mission:ID`.
pub fn is_breaker_key(key: &str) -> bool {
    match key.split_once(':') {
        None => key == "global",
        Some((scope, name)) => {
            !name.is_empty() && matches!(scope, "agent" | "principal" | "session" | "mission")
        }
    }
}

impl Enforcer {
    /// Feed a recorded decision to the detectors (calls the agent made, not those a breaker
    /// already stopped), and trip what they find.
    pub(crate) async fn watch_decision(
        &self,
        actor: &Actor<'_>,
        decision: &Decision,
        resource_labels: Option<&BTreeSet<String>>,
        counted: bool,
    ) {
        let stopped = decision
            .reasons
            .first()
            .is_some_and(|r| r.stage == Stage::Breaker);
        if !counted || stopped {
            return;
        }
        let empty = BTreeSet::new();
        let seen = DecisionSeen {
            who: who(actor),
            tool: &decision.tool,
            outcome: decision.decision,
            resource: decision.resource.as_deref(),
            resource_labels: resource_labels.unwrap_or(&empty),
            exposed: decision.exposure.as_ref().map_or(0, |e| e.count),
            now_ms: decision.at_ms,
        };
        let trips = self.detectors.run(|| self.breakers(), |a| a.decided(&seen));
        self.trip(actor, trips, decision.at_ms).await;
    }

    /// Feed an absorbed output (its records and bytes) to the detectors.
    pub(crate) async fn watch_output(
        &self,
        actor: &Actor<'_>,
        records: u64,
        bytes: u64,
        now_ms: i64,
    ) {
        let records_budget = self
            .engine()
            .config()
            .templates
            .get(&actor.mission.template)
            .and_then(|t| t.budgets.records);
        let seen = OutputSeen {
            who: who(actor),
            records,
            bytes,
            records_budget,
            now_ms,
        };
        let trips = self
            .detectors
            .run(|| self.breakers(), |a| a.returned(&seen));
        self.trip(actor, trips, now_ms).await;
    }

    /// Trip each breaker: at once in this process, then in the store (every replica), then in
    /// the audit chain. A store that fails is logged; the trip holds here regardless.
    async fn trip(&self, actor: &Actor<'_>, trips: Vec<Trip>, now_ms: i64) {
        for t in trips {
            {
                let mut b = self.breakers.write().unwrap_or_else(|p| p.into_inner());
                set(&mut b, &t.scope_key, Some(&t.reason), true);
            }
            tracing::warn!("breaker `{}` tripped: {}", t.scope_key, t.reason);
            let state = json!({
                "tripped": true,
                "reason": t.reason,
                "detector": t.detector.as_str(),
                "at_ms": now_ms,
                "by": TRIPPED_BY,
            });
            if let Err(e) = self.store().set_breaker(&t.scope_key, &state).await {
                tracing::error!("store: cannot record breaker `{}`: {e}", t.scope_key);
            }
            let record = AuditInput {
                kind: AuditKind::Breaker,
                at_ms: now_ms,
                columns: AuditColumns {
                    mission_id: Some(actor.mission.id.clone()),
                    principal: Some(actor.mission.principal.clone()),
                    agent: Some(actor.mission.agent.clone()),
                    tool: Some("breaker/tripped".into()),
                    outcome: Some("tripped".into()),
                    ..AuditColumns::default()
                },
                body: json!({
                    "event": "tripped",
                    "key": t.scope_key,
                    "scope": t.scope_key.split(':').next().unwrap_or_default(),
                    "detector": t.detector.as_str(),
                    "reason": t.reason,
                    "session": actor.session,
                    "by": TRIPPED_BY,
                }),
            };
            if let Err(e) = self.store().append(vec![record]).await {
                tracing::error!("audit: cannot record breaker `{}`: {e}", t.scope_key);
            }
        }
    }
}

fn who<'a>(actor: &Actor<'a>) -> Who<'a> {
    Who {
        session: actor.session,
        // A narrowed mission shares its root's state: the root's id names them all.
        mission: actor.cell.id(),
        agent: &actor.mission.agent,
        principal: &actor.mission.principal,
    }
}

/// Why a breaker operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    /// The person may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The key names no breaker, or a breaker that is not tripped.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// One breaker as the store holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerState {
    /// Its key (`global`, `agent:NAME`, `principal:NAME`, `session:NAME`, `mission:ID`).
    pub key: String,
    /// Whether it stops calls now.
    pub tripped: bool,
    /// Why it was tripped.
    pub reason: Option<String>,
    /// The detector that tripped it, if one did.
    pub detector: Option<String>,
    /// When it was last tripped or reset (Unix ms).
    pub at_ms: Option<i64>,
    /// Who tripped it (`warden` for a detector) or reset it.
    pub by: Option<String>,
    /// The state as stored.
    pub state: Value,
}

impl BreakerState {
    fn of(key: String, state: Value) -> BreakerState {
        let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_string);
        BreakerState {
            tripped: state
                .get("tripped")
                .and_then(Value::as_bool)
                .or_else(|| state.as_bool())
                .unwrap_or(false),
            reason: text("reason"),
            detector: text("detector"),
            at_ms: state.get("at_ms").and_then(Value::as_i64),
            by: text("by"),
            key,
            state,
        }
    }
}

/// The breakers, for people: list them, and reset one (members of `[breakers] resetters`).
pub struct BreakerControl {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    enforcer: Option<Arc<Enforcer>>,
}

impl std::fmt::Debug for BreakerControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerControl").finish_non_exhaustive()
    }
}

impl BreakerControl {
    /// Breakers of `store`, under `engine`'s configuration.
    pub fn new(engine: Arc<Engine>, store: Arc<dyn Store>) -> BreakerControl {
        BreakerControl {
            engine,
            store,
            enforcer: None,
        }
    }

    /// Breakers of `enforcer`'s store; a reset also clears the trip in that process at once.
    pub fn of(enforcer: Arc<Enforcer>) -> BreakerControl {
        BreakerControl {
            engine: enforcer.engine_arc().clone(),
            store: enforcer.store().clone(),
            enforcer: Some(enforcer),
        }
    }

    /// Whether `user` is in one of the `[breakers] resetters` groups.
    fn is_resetter(&self, user: &str) -> bool {
        let cfg = self.engine.config();
        cfg.directory
            .user(user)
            .is_some_and(|u| cfg.breakers.resetters.iter().any(|g| u.groups.contains(g)))
    }

    /// Every breaker the store knows, tripped or not, by key.
    ///
    /// # Errors
    /// [`BreakerError::Store`].
    pub async fn list(&self) -> Result<Vec<BreakerState>, BreakerError> {
        let all: BTreeMap<String, Value> = self.store.breakers().await?;
        Ok(all
            .into_iter()
            .map(|(k, v)| BreakerState::of(k, v))
            .collect())
    }

    /// Reset the breaker `key` for the person `by`, saying why. Only members of
    /// `[breakers] resetters` may; a refusal is audited, and so is the reset.
    ///
    /// # Errors
    /// [`BreakerError::Forbidden`] (audited), [`BreakerError::Invalid`] for a key that names
    /// no tripped breaker, [`BreakerError::Store`].
    pub async fn reset(
        &self,
        by: &Principal,
        key: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<BreakerState, BreakerError> {
        if !is_breaker_key(key) {
            return Err(BreakerError::Invalid(format!(
                "`{key}` names no breaker: give `global`, `agent:NAME`, `principal:NAME`, `session:NAME` or `mission:ID`"
            )));
        }
        if !self.is_resetter(&by.user) {
            let why = format!(
                "{} may not reset breakers: only members of `[breakers] resetters` may",
                by.user
            );
            self.audit("reset-refused", "refused", by, key, &why, now_ms)
                .await?;
            return Err(BreakerError::Forbidden(why));
        }
        let before = self
            .store
            .breakers()
            .await?
            .remove(key)
            .map(|v| BreakerState::of(key.to_string(), v));
        let Some(before) = before.filter(|b| b.tripped) else {
            return Err(BreakerError::Invalid(format!(
                "the breaker `{key}` is not tripped"
            )));
        };
        let state = json!({
            "tripped": false,
            "reason": reason.trim(),
            "at_ms": now_ms,
            "by": by.user,
            "was": {
                "reason": before.reason,
                "detector": before.detector,
                "at_ms": before.at_ms,
                "by": before.by,
            },
        });
        self.store.set_breaker(key, &state).await?;
        if let Some(e) = &self.enforcer {
            for b in [&e.breakers, &e.local_breakers] {
                set(
                    &mut b.write().unwrap_or_else(|p| p.into_inner()),
                    key,
                    None,
                    false,
                );
            }
            e.detectors.forget(key);
        }
        let why = format!(
            "reset by {}{}; it was tripped: {}",
            by.user,
            if reason.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", reason.trim())
            },
            before.reason.as_deref().unwrap_or("no reason given")
        );
        self.audit("reset", "reset", by, key, &why, now_ms).await?;
        Ok(BreakerState::of(key.to_string(), state))
    }

    async fn audit(
        &self,
        event: &str,
        outcome: &str,
        by: &Principal,
        key: &str,
        reason: &str,
        at_ms: i64,
    ) -> Result<(), BreakerError> {
        self.store
            .append(vec![AuditInput {
                kind: AuditKind::Breaker,
                at_ms,
                columns: AuditColumns {
                    principal: Some(by.user.clone()),
                    tool: Some(format!("breaker/{event}")),
                    outcome: Some(outcome.into()),
                    mission_id: key.strip_prefix("mission:").map(str::to_string),
                    agent: key.strip_prefix("agent:").map(str::to_string),
                    ..AuditColumns::default()
                },
                body: json!({
                    "event": event,
                    "key": key,
                    "by": by.user,
                    "method": by.method,
                    "reason": reason,
                }),
            }])
            .await?;
        Ok(())
    }
}
