//! The [`Enforcer`]: one pipeline for every surface.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use warden_core::mission::Mission;
use warden_core::model::{Reason, Stage};
use warden_core::{Breakers, Call, Decided, Decision, Engine, Outcome, Receipt};
use warden_store::{Backend, Store};

use crate::approvals::{NarrowedCall, Step};
use crate::audit::{decision_record, outcome_record, DECISION_ENTRY, UNEXPOSED_ENTRY};
use crate::mission::{MissionCell, CALLS};
use crate::{now_ms, EnforceError, Forward, Permitted};

/// Who is calling: the mission granted, its state, and the session acting now.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The mission the call runs under.
    pub mission: &'a Mission,
    /// The mission's state.
    pub cell: &'a MissionCell,
    /// The session's name (as decisions and explanations call it).
    pub session: &'a str,
}

/// How to decide one call.
#[derive(Debug, Clone, Default)]
pub struct How {
    /// The call names something the session was never offered: it is denied with this reason
    /// whatever the engine says, and recorded as `unexposed`.
    pub unexposed: Option<String>,
    /// Count it against the session and the mission (false for what the agent did not ask
    /// for, such as a subscription's updates).
    pub commit: bool,
    /// The approval request the caller names for this call (a retry after approval). Without
    /// one, an approved request bound to the identical call is found by its digest.
    pub approval: Option<String>,
    /// The request whose approver chose this call in place of the one held (see
    /// [`Verdict::narrowed`]).
    pub narrowed_from: Option<String>,
    /// Make an approval request when the call is held (false for offline evaluation: trace
    /// replay and policy tests, where nobody answers).
    pub request: bool,
}

impl How {
    /// A call decided offline (trace replay, policy tests): counted like the agent's, but a
    /// held call makes no approval request.
    pub fn offline() -> How {
        How {
            request: false,
            ..How::call()
        }
    }

    /// A call the agent made, on a tool it was offered.
    pub fn call() -> How {
        How {
            unexposed: None,
            commit: true,
            approval: None,
            narrowed_from: None,
            request: true,
        }
    }
}

/// A recorded decision and, when it allows, the call that may now leave.
#[derive(Debug)]
pub struct Verdict {
    /// The decision, as recorded.
    pub decision: Decision,
    /// The call, when allowed: forward it with [`Enforcer::forward`].
    pub permitted: Option<Permitted<Call>>,
    /// When the call is held and an approver chose a narrower call instead: decide that call
    /// with [`How::narrowed_from`] naming the request, and forward it if allowed.
    pub narrowed: Option<crate::approvals::NarrowedCall>,
}

/// The pipeline: the engine, the store, and the stops in force.
pub struct Enforcer {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    policy_version: String,
    /// The anomaly detectors that trip breakers (see `breakers`).
    pub(crate) detectors: crate::breakers::Detectors,
    /// Breakers and revocations in force, kept current from the store (see `watch`).
    pub(crate) breakers: RwLock<Breakers>,
    /// Set by the operator or tests, on top of what the store says.
    pub(crate) local_breakers: RwLock<Breakers>,
    pub(crate) clock: Clock,
    /// Tells approvers of new requests (`[approvals.webhook]`).
    pub(crate) webhook: Option<crate::approvals::webhook::Webhook>,
    /// This process as a replica, and its requests in flight (see `kill`).
    pub(crate) local: crate::kill::Local,
    /// Calls waiting for approval, woken by the feed follower (see `approvals::wait`).
    pub(crate) waiters: crate::approvals::Waiters,
}

/// Where the enforcer reads the time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock its owner sets (trace replay: each line has its time).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// Now, in milliseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(t) => t.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("store", &self.store.backend())
            .field("policy_version", &self.policy_version)
            .finish_non_exhaustive()
    }
}

impl Enforcer {
    /// The pipeline for `engine` on `store`: reads the revocations and breakers in force and
    /// follows the store's changes from then on, and registers as a replica with a heartbeat
    /// (the tasks end when the enforcer is dropped).
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn start(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Enforcer>, EnforceError> {
        Enforcer::start_with(engine, store, Clock::System).await
    }

    /// [`Enforcer::start`], reading the time from `clock`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn start_with(
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
        clock: Clock,
    ) -> Result<Arc<Enforcer>, EnforceError> {
        let policy_version = engine.config().policies.version();
        let webhook = crate::approvals::webhook::Webhook::from_config(engine.config())
            .map_err(|e| EnforceError::Config(e.to_string()))?;
        let detectors = crate::breakers::Detectors::new(&engine);
        let enforcer = Arc::new(Enforcer {
            engine,
            store,
            policy_version,
            detectors,
            breakers: RwLock::new(Breakers::default()),
            local_breakers: RwLock::new(Breakers::default()),
            clock,
            webhook,
            local: crate::kill::Local::new(),
            waiters: crate::approvals::Waiters::default(),
        });
        let changes = enforcer.store.subscribe();
        crate::watch::reload(&enforcer).await?;
        crate::kill::start(&enforcer).await?;
        tokio::spawn(crate::watch::follow(Arc::downgrade(&enforcer), changes));
        Ok(enforcer)
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, shared.
    pub fn engine_arc(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The version of the policy set decisions are made with.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// Whether other processes may write the same missions (PostgreSQL): then every decision
    /// reads its mission's state first.
    fn shared(&self) -> bool {
        self.store.backend() == Backend::Postgres
    }

    /// Set breakers in force in this process, on top of the store's (tests, local operators).
    pub fn set_breakers(&self, b: Breakers) {
        *self
            .local_breakers
            .write()
            .unwrap_or_else(|p| p.into_inner()) = b;
    }

    /// The breakers in force now: the store's and this process's.
    pub fn breakers(&self) -> Breakers {
        let mut b = self
            .breakers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let local = self
            .local_breakers
            .read()
            .unwrap_or_else(|p| p.into_inner());
        b.global |= local.global;
        b.agents.extend(local.agents.iter().cloned());
        b.principals.extend(local.principals.iter().cloned());
        b.sessions.extend(local.sessions.iter().cloned());
        b.missions.extend(local.missions.iter().cloned());
        b.tripped_missions
            .extend(local.tripped_missions.iter().cloned());
        for (k, r) in &local.reasons {
            b.reasons.entry(k.clone()).or_insert_with(|| r.clone());
        }
        for (k, at) in &local.revoked_scopes {
            let e = b.revoked_scopes.entry(k.clone()).or_insert(*at);
            *e = (*e).max(*at);
        }
        b
    }

    /// Decide `call` for `actor`, record the decision durably and commit it. The call may
    /// leave only through the returned [`Permitted`].
    ///
    /// # Errors
    /// When the mission's state cannot be read, the call budget cannot be spent, or the
    /// decision cannot be recorded: the call is refused ([`EnforceError`] says why).
    pub async fn decide(
        &self,
        actor: &Actor<'_>,
        call: Call,
        how: How,
    ) -> Result<Verdict, EnforceError> {
        let mission_id = actor.cell.id();
        let mut local = actor.cell.lock().await;
        local
            .refresh(&self.engine, self.store.as_ref(), mission_id, self.shared())
            .await?;
        if local.state.id != actor.session {
            local.state.id = actor.session.to_string();
        }
        let started = Instant::now();
        let now = self.clock.now();
        let b = self.breakers();
        let usage = local.decision_usage();
        let Decided {
            mut decision,
            mut allowed,
            held,
        } = self
            .engine
            .decide(call, actor.mission, &local.state, &usage, &b, now);
        let mut narrowed = None;
        if let (Some(call), true, true, None) = (held, how.commit, how.request, &how.unexposed) {
            let lifted = match &how.narrowed_from {
                Some(id) => {
                    self.narrowed_step(actor, &mut decision, &call, id, now)
                        .await?
                }
                None => match self
                    .held_step(actor, &mut decision, &call, how.approval.as_deref(), now)
                    .await?
                {
                    Step::Held(id) => {
                        decision.approval = Some(id);
                        None
                    }
                    Step::Narrowed { id, call, changes } => {
                        decision.reasons.push(Reason {
                            stage: Stage::Approval,
                            outcome: Outcome::Ask,
                            policy: None,
                            text: format!(
                                "an approver chose a narrower call in request `{id}`: {changes}"
                            ),
                        });
                        decision.approval = Some(id.clone());
                        narrowed = Some(NarrowedCall {
                            request: id,
                            call: call.to_call(),
                            changes,
                        });
                        None
                    }
                    Step::Lift { stored, lifted } => Some((*stored, lifted)),
                },
            };
            if let Some((stored, lifted)) = lifted {
                let again = self.engine.decide_lifting(
                    call,
                    actor.mission,
                    &local.state,
                    &usage,
                    &b,
                    now,
                    &lifted,
                );
                if again.decision.is_allow()
                    && self.use_approval(&stored, &again.decision, now).await?
                {
                    decision = again.decision;
                    allowed = again.allowed;
                    decision.approval = Some(stored.request.id.clone());
                    decision
                        .reasons
                        .extend(crate::approvals::approved_reasons(&stored));
                } else {
                    decision.approval = Some(stored.request.id.clone());
                    decision.reasons.push(Reason {
                        stage: Stage::Approval,
                        outcome: decision.decision,
                        policy: None,
                        text: format!(
                            "the approval `{}` was used by another call first",
                            stored.request.id
                        ),
                    });
                }
            }
        } else if let (Some(id), Outcome::Allow) = (&how.narrowed_from, decision.decision) {
            // A narrower call allowed on its own still uses the approval that chose it.
            let used = match allowed.as_ref() {
                Some(a) => self.use_narrowed(id, a.get(), &decision, now).await?,
                None => false,
            };
            {
                if !used {
                    allowed = None;
                    refuse(
                        &mut decision,
                        Stage::Approval,
                        format!("the approval `{id}` that chose this call is not usable any more"),
                    );
                }
            }
        }
        let entry = match how.unexposed {
            None => DECISION_ENTRY,
            Some(why) => {
                refuse(&mut decision, Stage::Resolve, why);
                allowed = None;
                UNEXPOSED_ENTRY
            }
        };
        // The call budget is spent in the store before the decision is recorded: two replicas
        // cannot both spend its last unit. A narrowed mission spends on every mission of its
        // chain that has a calls cap (its own, its ancestors'), the deepest first: a child's
        // calls count against its parent's budget, and any exhausted cap denies.
        if how.commit && allowed.is_some() {
            for (id, limit) in self.calls_caps(actor.mission).into_iter().rev() {
                let is_cell = id == mission_id;
                match self.store.spend(&id, CALLS, 1, limit).await? {
                    Ok(left) if is_cell => local.spent(limit.saturating_sub(left)),
                    Ok(_) => {}
                    Err(exhausted) => {
                        if is_cell {
                            local.spent(exhausted.spent);
                        }
                        allowed = None;
                        refuse(
                            &mut decision,
                            Stage::Mission,
                            format!("the mission `{id}` has used its budget of {limit} calls"),
                        );
                        break;
                    }
                }
            }
        }
        decision.elapsed_us = Some(started.elapsed().as_micros() as u64);
        let record = decision_record(&decision, entry, &self.policy_version);
        let seq = match self.store.append(vec![record]).await {
            Ok(meta) => meta.first().map(|m| m.seq).unwrap_or(0),
            Err(source) => {
                tracing::error!("audit: cannot record decision {}: {source}", decision.id);
                if decision.decision == Outcome::Allow {
                    decision.decision = Outcome::Deny;
                }
                return Err(EnforceError::Audit {
                    decision: Box::new(decision),
                    source,
                });
            }
        };
        if how.commit {
            local
                .commit(&self.engine, self.store.as_ref(), mission_id, &decision)
                .await?;
        }
        let labels = allowed.as_ref().map(|a| a.receipt().resource_labels());
        self.watch_decision(actor, &decision, labels, how.commit)
            .await;
        let permitted = allowed.map(|a| Permitted::new(a, seq));
        Ok(Verdict {
            decision,
            permitted,
            narrowed,
        })
    }

    /// The calls caps to spend on, from the root of the mission's chain down (see
    /// [`warden_core::narrow::calls_caps`]); none when its template is unknown (the decision
    /// denies then).
    fn calls_caps(&self, mission: &Mission) -> Vec<(String, u64)> {
        self.engine
            .config()
            .templates
            .get(&mission.template)
            .map(|t| warden_core::narrow::calls_caps(t, mission))
            .unwrap_or_default()
    }

    /// Absorb `text`, read by the call `receipt` allowed, into the mission, and write the
    /// mission's state to the store before returning: the caller hands the text on only after.
    ///
    /// # Errors
    /// When the store cannot be written: the text must then not reach the agent.
    pub async fn absorb(
        &self,
        actor: &Actor<'_>,
        receipt: &Receipt,
        text: &str,
    ) -> Result<(), EnforceError> {
        let mut local = actor.cell.lock().await;
        if local.state.id != actor.session {
            local.state.id = actor.session.to_string();
        }
        let (before, now) = (local.usage.records, self.clock.now());
        local
            .absorb(
                &self.engine,
                self.store.as_ref(),
                actor.cell.id(),
                receipt,
                text,
                now,
            )
            .await?;
        let records = local.usage.records.saturating_sub(before);
        drop(local);
        self.watch_output(actor, records, text.len() as u64, now)
            .await;
        Ok(())
    }

    /// Write what the mission's state has that the store does not (after decisions that were
    /// not followed by an absorb).
    ///
    /// # Errors
    /// When the store cannot be written.
    pub async fn flush(&self, cell: &MissionCell) -> Result<(), EnforceError> {
        let mut local = cell.lock().await;
        local
            .flush(&self.engine, self.store.as_ref(), cell.id())
            .await
    }

    /// Record what came of a forward (`outcome`, and a short `reason`), without waiting: the
    /// decision's record is durable already.
    pub fn record_outcome(&self, receipt: &Receipt, outcome: &str, reason: &str) {
        let record = outcome_record(
            receipt.decision_id(),
            receipt.tool(),
            outcome,
            reason,
            self.clock.now(),
        );
        let store = self.store.clone();
        let id = receipt.decision_id().to_string();
        tokio::spawn(async move {
            if let Err(e) = store.append(vec![record]).await {
                tracing::error!("audit: cannot record the outcome of decision {id}: {e}");
            }
        });
    }

    /// Forward a permitted call through `to`, record its outcome, and absorb what it read
    /// (durably) before handing the result back.
    ///
    /// # Errors
    /// When what the output brought in cannot be written to the store: the output is
    /// withheld.
    pub async fn forward<F: Forward>(
        &self,
        actor: &Actor<'_>,
        permitted: Permitted<Call>,
        to: F,
    ) -> Result<Result<F::Output, F::Error>, EnforceError> {
        let receipt = permitted.receipt().clone();
        let done = to.forward(permitted).await;
        self.record_outcome(&receipt, &done.outcome, &done.reason);
        if let (Ok(_), Some(text)) = (&done.result, &done.text) {
            self.absorb(actor, &receipt, text).await?;
        }
        Ok(done.result)
    }
}

/// Turn `decision` into a deny for `why`, first among its reasons.
pub(crate) fn refuse(decision: &mut Decision, stage: Stage, why: String) {
    if decision.decision != Outcome::Deny {
        decision.decision = Outcome::Deny;
        decision.reasons.insert(
            0,
            Reason {
                stage,
                outcome: Outcome::Deny,
                policy: None,
                text: why,
            },
        );
    }
}
