//! Throwing the kill switch: the person's side of a kill (`warden kill`, and the HTTP API
//! that follows).
//!
//! [`KillSwitch::kill`] checks that the person may kill the scope, revokes the missions'
//! tokens, trips the scope's breaker with `"kind": "kill"` and the reason, records the kill in
//! the store (which announces it to every replica), and waits until every replica that was
//! live when the kill was thrown has confirmed it, or the timeout passes. Every kill, allowed
//! or refused, and its confirmations are records of the audit chain (`kill`).
//!
//! Who may kill: the members of `[missions] revokers` anything; anyone the missions acting for
//! them (`--principal` themselves, `--mission` of a mission acting for them or that they
//! granted).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use warden_core::Engine;
use warden_store::{
    AuditColumns, AuditInput, AuditKind, GrantFilter, KillRecord, Replica, Store, StoreError,
};

use crate::grants::{GrantError, MissionAuthority, RevokeTarget};
use crate::identity::Principal;
use crate::kill::{kill_reason, KillScope, LIVE_WINDOW_MS};

/// Why a kill was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    /// The person may not kill this scope (the refusal is audited).
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The kill cannot be made as asked.
    #[error("{0}")]
    Invalid(String),
    /// Revoking the missions' tokens failed.
    #[error("cannot revoke: {0}")]
    Revoke(#[from] GrantError),
    /// The store failed.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// What came of a kill.
#[derive(Debug, Clone, Serialize)]
pub struct KillReport {
    /// The kill as stored.
    pub kill: KillRecord,
    /// The missions whose tokens were revoked by id.
    pub revoked: Vec<String>,
    /// The live replicas that confirmed the kill holds there.
    pub acknowledged: Vec<Replica>,
    /// The live replicas that did not confirm within the timeout.
    pub missing: Vec<Replica>,
}

impl KillReport {
    /// Whether every live replica confirmed.
    pub fn confirmed(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Throws kills: checks who may, revokes, trips, announces, waits for the replicas.
pub struct KillSwitch {
    authority: Arc<MissionAuthority>,
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillSwitch").finish_non_exhaustive()
    }
}

/// How often the thrower reads the confirmations while it waits.
const POLL: Duration = Duration::from_millis(100);

/// A new kill id: `k-` and 16 random hex digits.
fn new_kill_id() -> Result<String, KillError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| KillError::Invalid(format!("no randomness for a kill id: {e}")))?;
    Ok(format!("k-{}", hex::encode(bytes)))
}

impl KillSwitch {
    /// A kill switch for `engine`'s configuration on `store`, revoking through `authority`.
    pub fn new(
        authority: Arc<MissionAuthority>,
        engine: Arc<Engine>,
        store: Arc<dyn Store>,
    ) -> KillSwitch {
        KillSwitch {
            authority,
            engine,
            store,
        }
    }

    /// Whether `user` is in one of the `[missions] revokers` groups.
    fn is_revoker(&self, user: &str) -> bool {
        let cfg = self.engine.config();
        cfg.directory
            .user(user)
            .is_some_and(|u| cfg.grants.revokers.iter().any(|g| u.groups.contains(g)))
    }

    /// Whether `by` may kill `scope`; the refusal's text if not.
    async fn may_kill(&self, by: &Principal, scope: &KillScope) -> Result<(), KillError> {
        if self.is_revoker(&by.user) {
            return Ok(());
        }
        let own = match scope {
            KillScope::Principal(p) => *p == by.user,
            KillScope::Mission(m) => self
                .store
                .grant(m)
                .await?
                .is_some_and(|g| g.principal == by.user || g.granted_by == by.user),
            _ => false,
        };
        if own {
            Ok(())
        } else {
            Err(KillError::Forbidden(format!(
                "only members of `[missions] revokers` may kill {scope}; {} may kill only the \
                 missions that act for them or that they granted",
                by.user
            )))
        }
    }

    /// Kill `scope` for the person `by` at `now_ms`, and wait up to `timeout` for every replica
    /// live then (a heartbeat in the last 10 s) to confirm. The report names the replicas that
    /// confirmed and those that did not.
    ///
    /// # Errors
    /// [`KillError::Forbidden`] when `by` may not kill it (audited, nothing else done);
    /// [`KillError::Revoke`] or [`KillError::Store`] when the store fails.
    pub async fn kill(
        &self,
        by: &Principal,
        scope: &KillScope,
        reason: &str,
        now_ms: i64,
        timeout: Duration,
    ) -> Result<KillReport, KillError> {
        if let Err(refused) = self.may_kill(by, scope).await {
            self.audit(
                by,
                scope,
                now_ms,
                "refused",
                json!({
                    "event": "refused",
                    "scope": scope.key(),
                    "by": by.user,
                    "reason": refused.to_string(),
                }),
            )
            .await?;
            return Err(refused);
        }
        let why = kill_reason(&by.user, reason);
        let id = new_kill_id()?;
        let revoked = self.revoke(by, scope, reason, now_ms).await?;
        self.store
            .set_breaker(
                &scope.breaker_key(),
                &json!({
                    "tripped": true,
                    "kind": "kill",
                    "kill": id,
                    "reason": why,
                    "by": by.user,
                    "at_ms": now_ms,
                }),
            )
            .await?;
        // Calls held for approval in the scope are cancelled: nobody can approve them now.
        let held = crate::approvals::Approvals::new(self.engine.clone(), self.store.clone())
            .cancel_where(|r| held_in(scope, r), &by.user, &why, now_ms)
            .await
            .map_err(|e| match e {
                crate::approvals::ApprovalError::Store(e) => KillError::Store(e),
                other => KillError::Store(StoreError::Invalid(other.to_string())),
            })?;
        if !held.is_empty() {
            tracing::info!("kill {id}: cancelled approval requests {}", held.join(", "));
        }
        let kill = KillRecord {
            id: id.clone(),
            scope: scope.key(),
            by: by.user.clone(),
            reason: reason.trim().to_string(),
            at_ms: now_ms,
        };
        // The replicas to wait for: those live when the kill is thrown.
        let live: Vec<Replica> = self
            .store
            .replicas()
            .await?
            .into_iter()
            .filter(|r| r.live_at(now_ms, LIVE_WINDOW_MS))
            .collect();
        self.audit(
            by,
            scope,
            now_ms,
            "killed",
            json!({
                "event": "killed",
                "kill": id,
                "scope": scope.key(),
                "by": by.user,
                "reason": why,
                "missions": revoked,
                "replicas": live.iter().map(|r| &r.id).collect::<Vec<_>>(),
            }),
        )
        .await?;
        self.store.put_kill(&kill).await?;
        let (acknowledged, missing) = self.wait(&id, live, timeout).await?;
        self.audit(
            by,
            scope,
            crate::now_ms(),
            if missing.is_empty() {
                "confirmed"
            } else {
                "unconfirmed"
            },
            json!({
                "event": "confirmations",
                "kill": id,
                "acknowledged": acknowledged.iter().map(|r| &r.id).collect::<Vec<_>>(),
                "missing": missing.iter().map(|r| &r.id).collect::<Vec<_>>(),
            }),
        )
        .await?;
        Ok(KillReport {
            kill,
            revoked,
            acknowledged,
            missing,
        })
    }

    /// Revoke the tokens of the missions `scope` covers: a mission by id; an agent's or a
    /// principal's as `warden mission revoke` does; every live granted mission for `All`.
    async fn revoke(
        &self,
        by: &Principal,
        scope: &KillScope,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, KillError> {
        let why = format!("killed: {}", kill_reason(&by.user, reason));
        Ok(match scope {
            KillScope::Mission(m) => {
                self.store.revoke(m, &why).await?;
                vec![m.clone()]
            }
            KillScope::Agent(a) => {
                self.authority
                    .revoke(by, &RevokeTarget::Agent(a.clone()), reason, now_ms)
                    .await?
            }
            KillScope::Principal(p) => {
                self.authority
                    .revoke(by, &RevokeTarget::Principal(p.clone()), reason, now_ms)
                    .await?
            }
            KillScope::All => {
                let live = GrantFilter {
                    live_at_ms: Some(now_ms),
                    ..GrantFilter::default()
                };
                let mut revoked = Vec::new();
                for g in self.store.grants(&live).await? {
                    self.store.revoke(&g.mission_id, &why).await?;
                    revoked.push(g.mission_id);
                }
                revoked
            }
            // A session has no token of its own: its breaker stops it.
            KillScope::Session(_) => Vec::new(),
        })
    }

    /// Wait until each of `live` confirmed kill `id`, or `timeout` passed: (confirmed,
    /// missing).
    async fn wait(
        &self,
        id: &str,
        live: Vec<Replica>,
        timeout: Duration,
    ) -> Result<(Vec<Replica>, Vec<Replica>), KillError> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let acks = self.store.kill_acks(id).await?;
            let (acknowledged, missing): (Vec<Replica>, Vec<Replica>) = live
                .iter()
                .cloned()
                .partition(|r| acks.iter().any(|a| a.replica_id == r.id));
            if missing.is_empty() || tokio::time::Instant::now() >= end {
                return Ok((acknowledged, missing));
            }
            tokio::time::sleep(POLL.min(end - tokio::time::Instant::now())).await;
        }
    }

    async fn audit(
        &self,
        by: &Principal,
        scope: &KillScope,
        at_ms: i64,
        outcome: &str,
        body: serde_json::Value,
    ) -> Result<(), KillError> {
        let (mission_id, agent) = match scope {
            KillScope::Mission(m) => (Some(m.clone()), None),
            KillScope::Agent(a) => (None, Some(a.clone())),
            _ => (None, None),
        };
        self.store
            .append(vec![AuditInput {
                kind: AuditKind::Kill,
                at_ms,
                columns: AuditColumns {
                    mission_id,
                    agent,
                    principal: Some(by.user.clone()),
                    tool: Some("warden/kill".into()),
                    outcome: Some(outcome.into()),
                    ..AuditColumns::default()
                },
                body,
            }])
            .await?;
        Ok(())
    }
}

/// Whether the approval request `r` is a call held in `scope`.
fn held_in(scope: &KillScope, r: &crate::approvals::Request) -> bool {
    match scope {
        KillScope::All => true,
        KillScope::Session(s) => &r.session == s,
        KillScope::Mission(m) => &r.mission == m || r.mission_chain.contains(m),
        KillScope::Agent(a) => &r.agent == a,
        KillScope::Principal(p) => &r.principal == p,
    }
}
