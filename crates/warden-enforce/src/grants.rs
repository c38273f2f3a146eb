//! Missions a person grants, and their revocation: the one place a mission token is made.
//!
//! A person proves who they are ([`crate::identity::Authenticator`]), then grants one of the
//! configuration's mission templates to one agent, for a purpose in their own words. The grant
//! is checked as the gateway would check it (the template, the agent, the person; an expiry
//! no later than the template allows; a narrowing that only narrows), stored, audited, and
//! returned as a mission token signed with Warden's root key. The CLI (`warden mission`) and
//! the HTTP API (`/v1/missions`) both call [`MissionAuthority`]; neither grants on its own.
//!
//! Revoking is allowed to the person a mission acts for, to the person who granted it, and to
//! the members of `[missions] revokers`; revoking every mission of an agent, or of someone
//! else, only to the latter. Every grant, revocation and refused mission token is a record of
//! the audit chain.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use warden_core::narrow::Narrowing;
use warden_core::{Breakers, Engine};
use warden_store::{
    AuditColumns, AuditInput, AuditKind, GrantFilter, GrantRecord, Revocation, Store, StoreError,
};

use crate::identity::Principal;
use crate::token::{self, Grant, RootKey, TokenError, Verified, Verifier};

/// Why a grant, a narrowing or a revocation was refused.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The person may not do this.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The request cannot be honoured (unknown template, agent, …).
    #[error("{0}")]
    Invalid(String),
    /// The token (to narrow) is refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed: nothing was granted or revoked.
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// What a person asks to grant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantRequest {
    /// The mission template.
    pub template: String,
    /// The agent it is for.
    pub agent: String,
    /// The person's own words for the task.
    pub purpose: String,
    /// How long it lasts, in milliseconds; none: as long as the template allows.
    pub expires_in_ms: Option<i64>,
    /// A narrowing of the template, made at the grant.
    pub narrowing: Option<Narrowing>,
}

/// A mission granted: its token and its stored record.
#[derive(Debug, Clone, Serialize)]
pub struct Granted {
    /// The mission id.
    pub mission: String,
    /// The mission token (give it to the agent; it is not stored).
    pub token: String,
    /// When it expires (Unix ms).
    pub expires_at_ms: i64,
    /// What was stored.
    pub record: GrantRecord,
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeTarget {
    /// One mission (and every mission narrowed from it).
    Mission(String),
    /// Every mission of an agent granted until now.
    Agent(String),
    /// Every mission acting for a person granted until now.
    Principal(String),
}

impl std::fmt::Display for RevokeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevokeTarget::Mission(m) => write!(f, "mission `{m}`"),
            RevokeTarget::Agent(a) => write!(f, "every mission of agent `{a}`"),
            RevokeTarget::Principal(p) => write!(f, "every mission acting for `{p}`"),
        }
    }
}

/// A stored grant and whether it was revoked.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The grant.
    #[serde(flatten)]
    pub grant: GrantRecord,
    /// Its revocation, if any (its own, or of its agent or principal since).
    pub revoked: Option<Revocation>,
}

/// Grants, narrows and revokes missions; verifies mission tokens.
pub struct MissionAuthority {
    key: RootKey,
    verifier: Verifier,
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for MissionAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MissionAuthority")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The hex SHA-256 of a token (what is stored and audited instead of the token).
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// A new mission id: `m-` and 16 random hex digits.
fn new_mission_id() -> Result<String, GrantError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| GrantError::Invalid(format!("no randomness for a mission id: {e}")))?;
    Ok(format!("m-{}", hex::encode(bytes)))
}

impl MissionAuthority {
    /// An authority signing with `key`, for `engine`'s configuration, keeping grants in
    /// `store`.
    pub fn new(key: RootKey, engine: Arc<Engine>, store: Arc<dyn Store>) -> MissionAuthority {
        let verifier = Verifier::new(key.public(), engine.clone());
        MissionAuthority {
            key,
            verifier,
            engine,
            store,
        }
    }

    /// The verifier of the tokens this authority grants.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The root public key, hex-encoded.
    pub fn public_hex(&self) -> String {
        self.key.public_hex()
    }

    /// Grant `req` for the person `by`, at `now_ms`: the mission acts for `by`.
    ///
    /// # Errors
    /// [`GrantError::Invalid`] when the template, agent or narrowing cannot be granted to this
    /// person; [`GrantError::Store`] when it cannot be stored or audited (no token is given).
    pub async fn grant(
        &self,
        by: &Principal,
        req: &GrantRequest,
        now_ms: i64,
    ) -> Result<Granted, GrantError> {
        if req.purpose.trim().is_empty() {
            return Err(GrantError::Invalid(
                "say what the mission is for (`purpose`, in your own words)".into(),
            ));
        }
        let id = new_mission_id()?;
        let root = self
            .engine
            .grant(
                &id,
                &req.template,
                &req.agent,
                &by.user,
                &req.purpose,
                now_ms,
            )
            .map_err(GrantError::Invalid)?;
        let expires_at_ms = match req.expires_in_ms {
            None => root.expires_at_ms,
            Some(ms) if ms <= 0 => {
                return Err(GrantError::Invalid(
                    "the expiry must be in the future".into(),
                ))
            }
            Some(ms) if now_ms.saturating_add(ms) > root.expires_at_ms => {
                return Err(GrantError::Invalid(format!(
                    "the template `{}` allows missions of at most {} s",
                    req.template,
                    (root.expires_at_ms - now_ms) / 1000
                )))
            }
            Some(ms) => now_ms.saturating_add(ms),
        };
        let grant = Grant {
            mission: id.clone(),
            template: req.template.clone(),
            agent: req.agent.clone(),
            principal: by.user.clone(),
            purpose: req.purpose.clone(),
            granted_at_ms: now_ms,
            expires_at_ms,
            auth: by.method.as_str().to_string(),
            narrowing: req.narrowing.clone(),
        };
        let token = token::mint(&self.key, &grant)?;
        // The token is checked exactly as the gateway will check it (a widening narrowing is
        // refused here, not at the agent's first call).
        self.verifier.verify_fresh(&token, now_ms)?;
        let record = GrantRecord {
            mission_id: id.clone(),
            template: grant.template.clone(),
            agent: grant.agent.clone(),
            principal: grant.principal.clone(),
            purpose: grant.purpose.clone(),
            granted_by: by.user.clone(),
            auth: grant.auth.clone(),
            granted_at_ms: now_ms,
            expires_at_ms,
            narrowing: req
                .narrowing
                .as_ref()
                .and_then(|n| serde_json::to_value(n).ok()),
            token_digest: token_digest(&token),
            parent: None,
        };
        self.store.put_grant(&record).await?;
        let audited = self
            .audit(
                "granted",
                now_ms,
                AuditColumns {
                    mission_id: Some(id.clone()),
                    principal: Some(record.principal.clone()),
                    agent: Some(record.agent.clone()),
                    outcome: Some("granted".into()),
                    ..AuditColumns::default()
                },
                json!({
                    "event": "granted",
                    "reason": format!("{} granted `{}` to `{}`: {}", by.user, record.template, record.agent, record.purpose),
                    "template": record.template,
                    "purpose": record.purpose,
                    "granted_by": by.user,
                    "auth": record.auth,
                    "expires_at_ms": expires_at_ms,
                    "narrowing": record.narrowing,
                    "token_digest": record.token_digest,
                }),
            )
            .await;
        if let Err(e) = audited {
            // Not audited, not granted: the mission is revoked before anyone can use it.
            let _ = self
                .store
                .revoke(&id, "the grant could not be audited")
                .await;
            return Err(e);
        }
        Ok(Granted {
            mission: id,
            token,
            expires_at_ms,
            record,
        })
    }

    /// `token` narrowed by `narrowing`, checked: a narrowing that would widen the mission, or a
    /// token that is not valid, is refused here rather than at the sub-agent's first call.
    ///
    /// # Errors
    /// [`GrantError::Token`] naming why.
    pub fn attenuate(
        &self,
        token: &str,
        narrowing: &Narrowing,
        now_ms: i64,
    ) -> Result<(String, Verified), GrantError> {
        self.verifier.verify_fresh(token, now_ms)?;
        let child = token::attenuate(token, narrowing)?;
        let verified = self.verifier.verify_fresh(&child, now_ms)?;
        Ok((child, verified))
    }

    /// Whether `user` is in one of the `[missions] revokers` groups.
    fn is_revoker(&self, user: &str) -> bool {
        let cfg = self.engine.config();
        cfg.directory
            .user(user)
            .is_some_and(|u| cfg.grants.revokers.iter().any(|g| u.groups.contains(g)))
    }

    /// Revoke `target` for the person `by`. Returns the missions revoked by id (a scope also
    /// revokes missions the store does not list, such as narrowings made offline: see
    /// [`Breakers::revoked_scopes`]).
    ///
    /// # Errors
    /// [`GrantError::Forbidden`] when `by` may not revoke it; [`GrantError::Store`].
    pub async fn revoke(
        &self,
        by: &Principal,
        target: &RevokeTarget,
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, GrantError> {
        let revoker = self.is_revoker(&by.user);
        let why = if reason.trim().is_empty() {
            format!("revoked by {}", by.user)
        } else {
            format!("revoked by {}: {}", by.user, reason.trim())
        };
        let mut revoked = Vec::new();
        match target {
            RevokeTarget::Mission(id) => {
                let allowed = match self.store.grant(id).await? {
                    Some(g) => revoker || g.principal == by.user || g.granted_by == by.user,
                    None => revoker,
                };
                if !allowed {
                    return Err(GrantError::Forbidden(format!(
                        "{} may revoke only the missions that act for them or that they granted",
                        by.user
                    )));
                }
                self.store.revoke(id, &why).await?;
                revoked.push(id.clone());
            }
            RevokeTarget::Agent(name) | RevokeTarget::Principal(name) => {
                let (scope, filter) = match target {
                    RevokeTarget::Agent(_) => (
                        Breakers::agent_scope(name),
                        GrantFilter {
                            agent: Some(name.clone()),
                            live_at_ms: Some(now_ms),
                            ..GrantFilter::default()
                        },
                    ),
                    _ => (
                        Breakers::principal_scope(name),
                        GrantFilter {
                            principal: Some(name.clone()),
                            live_at_ms: Some(now_ms),
                            ..GrantFilter::default()
                        },
                    ),
                };
                let own = matches!(target, RevokeTarget::Principal(p) if *p == by.user);
                if !revoker && !own {
                    return Err(GrantError::Forbidden(format!(
                        "only members of `[missions] revokers` may revoke {target}"
                    )));
                }
                // Each stored grant is revoked by id, so the missions narrowed from them go
                // too; the scope then covers every other mission granted until now.
                for g in self.store.grants(&filter).await? {
                    self.store.revoke(&g.mission_id, &why).await?;
                    revoked.push(g.mission_id);
                }
                self.store
                    .revoke(&format!("{scope}#{now_ms}"), &why)
                    .await?;
            }
        }
        self.audit(
            "revoked",
            now_ms,
            AuditColumns {
                mission_id: match target {
                    RevokeTarget::Mission(id) => Some(id.clone()),
                    _ => None,
                },
                principal: Some(by.user.clone()),
                outcome: Some("revoked".into()),
                ..AuditColumns::default()
            },
            json!({
                "event": "revoked",
                "reason": format!("{why}: {target}"),
                "target": target.to_string(),
                "missions": revoked,
            }),
        )
        .await?;
        Ok(revoked)
    }

    /// Whether `who` may see `l`: a mission acting for them or granted by them; any mission
    /// for a member of `[missions] revokers`.
    fn may_see(&self, who: &Principal, l: &GrantRecord) -> bool {
        l.principal == who.user || l.granted_by == who.user || self.is_revoker(&who.user)
    }

    /// The stored grants matching `filter` that `who` may see, each with its revocation.
    ///
    /// # Errors
    /// [`GrantError::Store`].
    pub async fn list(
        &self,
        who: &Principal,
        filter: &GrantFilter,
    ) -> Result<Vec<Listed>, GrantError> {
        let revocations = self.store.revocations().await?;
        let grants = self.store.grants(filter).await?;
        Ok(grants
            .into_iter()
            .filter(|g| self.may_see(who, g))
            .map(|grant| {
                let revoked = revocation_of(&grant, &revocations);
                Listed { grant, revoked }
            })
            .collect())
    }

    /// One stored grant with its revocation, if `who` may see it.
    ///
    /// # Errors
    /// [`GrantError::Store`].
    pub async fn show(
        &self,
        who: &Principal,
        mission_id: &str,
    ) -> Result<Option<Listed>, GrantError> {
        let Some(grant) = self
            .store
            .grant(mission_id)
            .await?
            .filter(|g| self.may_see(who, g))
        else {
            return Ok(None);
        };
        let revocations = self.store.revocations().await?;
        let revoked = revocation_of(&grant, &revocations);
        Ok(Some(Listed { grant, revoked }))
    }

    /// Record that agent `agent` presented a mission (a token, or identity headers: `None`)
    /// that was refused, and why.
    ///
    /// # Errors
    /// [`GrantError::Store`] when the record cannot be written.
    pub async fn audit_refusal(
        &self,
        agent: &str,
        token: Option<&str>,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), GrantError> {
        self.audit(
            "refused",
            now_ms,
            AuditColumns {
                agent: Some(agent.to_string()),
                outcome: Some("refused".into()),
                ..AuditColumns::default()
            },
            json!({
                "event": "refused",
                "reason": reason,
                "token_digest": token.map(token_digest),
            }),
        )
        .await
    }

    async fn audit(
        &self,
        event: &str,
        at_ms: i64,
        columns: AuditColumns,
        body: serde_json::Value,
    ) -> Result<(), GrantError> {
        self.store
            .append(vec![AuditInput {
                kind: AuditKind::Grant,
                at_ms,
                columns: AuditColumns {
                    tool: Some(format!("mission/{event}")),
                    ..columns
                },
                body,
            }])
            .await?;
        Ok(())
    }
}

/// The revocation that holds for `grant`: its own, else the latest of its agent's or its
/// principal's scope made at or after it was granted.
fn revocation_of(grant: &GrantRecord, revocations: &[Revocation]) -> Option<Revocation> {
    if let Some(r) = revocations
        .iter()
        .find(|r| r.mission_id == grant.mission_id)
    {
        return Some(r.clone());
    }
    let scopes = [
        Breakers::agent_scope(&grant.agent),
        Breakers::principal_scope(&grant.principal),
    ];
    revocations
        .iter()
        .filter(|r| {
            r.at_ms >= grant.granted_at_ms
                && r.mission_id
                    .rsplit_once('#')
                    .is_some_and(|(s, _)| scopes.iter().any(|k| k == s))
        })
        .max_by_key(|r| r.at_ms)
        .cloned()
}
