//! Revocations and breakers: read from the store at start, then kept current by its change
//! feed, so a stop made on any replica holds on every replica at its next call.

use std::sync::{Arc, Weak};

use tokio::sync::broadcast;
use warden_core::Breakers;
use warden_store::{Backend, Change};

use crate::{EnforceError, Enforcer};

/// Read every revocation and breaker from the store.
pub(crate) async fn reload(enforcer: &Enforcer) -> Result<(), EnforceError> {
    let store = enforcer.store();
    let mut b = Breakers::default();
    for r in store.revocations().await? {
        if Breakers::is_scope(&r.mission_id) {
            // `agent:NAME#MS`: each revocation of a scope is its own row; the latest holds.
            let scope = match r.mission_id.rsplit_once('#') {
                Some((scope, n)) if n.bytes().all(|c| c.is_ascii_digit()) => scope.to_string(),
                _ => r.mission_id.clone(),
            };
            let at = b.revoked_scopes.entry(scope).or_insert(r.at_ms);
            *at = (*at).max(r.at_ms);
        } else {
            b.missions.insert(r.mission_id);
        }
    }
    for (key, state) in store.breakers().await? {
        if !tripped(&state) {
            continue;
        }
        match key.split_once(':') {
            None if key == "global" => b.global = true,
            Some(("agent", name)) => {
                b.agents.insert(name.to_string());
            }
            Some(("principal", name)) => {
                b.principals.insert(name.to_string());
            }
            Some(("session", name)) => {
                b.sessions.insert(name.to_string());
            }
            Some(("mission", name)) => {
                b.tripped_missions.insert(name.to_string());
            }
            _ => {
                tracing::warn!("store: breaker `{key}` names no scope this release knows");
                continue;
            }
        }
        if let Some(reason) = state.get("reason").and_then(serde_json::Value::as_str) {
            b.reasons.insert(key.clone(), reason.to_string());
        }
    }
    *enforcer.breakers.write().unwrap_or_else(|p| p.into_inner()) = b;
    Ok(())
}

/// Whether a breaker's stored state stops calls: `{"tripped": true, …}` or `true`.
fn tripped(state: &serde_json::Value) -> bool {
    state
        .get("tripped")
        .and_then(serde_json::Value::as_bool)
        .or_else(|| state.as_bool())
        .unwrap_or(false)
}

/// How often the stops are read again from an SQLite store, which other processes may write.
const SQLITE_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Follow the store's changes until the enforcer is gone.
pub(crate) async fn follow(enforcer: Weak<Enforcer>, mut changes: broadcast::Receiver<Change>) {
    // Another process writing the same SQLite file (`warden breaker reset`, `warden mission
    // revoke`) is not in this process's change feed: read the stops again now and then.
    let poll = match enforcer.upgrade().map(|e| e.store().backend()) {
        Some(Backend::Sqlite) => Some(SQLITE_POLL),
        _ => None,
    };
    loop {
        let change = match poll {
            None => changes.recv().await,
            Some(every) => match tokio::time::timeout(every, changes.recv()).await {
                Ok(change) => change,
                Err(_) => Ok(Change::Resync),
            },
        };
        let Some(e) = enforcer.upgrade() else { return };
        match change {
            Ok(Change::Revoked(id)) if Breakers::is_scope(&id) => {
                // The time it holds from is in the store.
                reload_until_done(&e).await;
            }
            Ok(Change::Revoked(id)) => {
                e.breakers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .missions
                    .insert(id);
            }
            Ok(Change::Breaker(_)) => reload_until_done(&e).await,
            Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                e.waiters.wake_all();
                reload_until_done(&e).await;
                crate::kill::catch_up(&e).await;
            }
            Ok(Change::Kill(id)) => {
                reload_until_done(&e).await;
                crate::kill::apply(&e, &id).await;
            }
            Ok(Change::Approval(id)) => e.waiters.wake(&id),
            Ok(Change::Mission(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Reload, retrying while the store is unavailable (the stops in force stay as they were).
async fn reload_until_done(e: &Arc<Enforcer>) {
    let mut wait = std::time::Duration::from_millis(50);
    while let Err(err) = reload(e).await {
        tracing::warn!("store: cannot reload revocations and breakers: {err}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(2));
    }
}
