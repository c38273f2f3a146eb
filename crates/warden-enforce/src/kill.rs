//! The kill switch on each replica: its identity and heartbeat, the registry of what is in
//! flight, and what a kill does when it arrives.
//!
//! Every [`Enforcer`] is a replica: at start it registers in the store with a random id and
//! its host and process id, then writes a heartbeat every [`HEARTBEAT`] from a task that ends
//! when the enforcer is dropped. A replica whose heartbeat is younger than [`LIVE_WINDOW_MS`]
//! is live.
//!
//! Whatever waits on behalf of a scope — a call upstream, a call held for approval — registers
//! with [`Enforcer::track`] and gets a [`KillGuard`]: a cancellation token that fires when a
//! kill covering its [`Tracked`] scope arrives (or when its parent token fires), and the kill's
//! reason. When [`warden_store::Change::Kill`] arrives, the replica reloads its breakers (the
//! kill set them), fires every registered guard the kill covers, then acknowledges the kill in
//! the store: from then on, no call of that scope is allowed on this replica, and none that was
//! in flight returns its result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use warden_core::mission::Mission;
use warden_core::Breakers;
use warden_store::{Replica, StoreError};

use crate::{now_ms, Actor, Enforcer};

/// How often a replica writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// How recent a heartbeat must be for its replica to be live (ms).
pub const LIVE_WINDOW_MS: i64 = 10_000;

/// What a kill stops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "name", rename_all = "snake_case")]
pub enum KillScope {
    /// Everything, on every replica.
    All,
    /// One session.
    Session(String),
    /// One mission and every mission narrowed from it.
    Mission(String),
    /// Every mission of an agent.
    Agent(String),
    /// Every mission acting for a person.
    Principal(String),
}

impl KillScope {
    /// The scope as stored: `all`, `session:NAME`, `mission:ID`, `agent:NAME`,
    /// `principal:NAME`.
    pub fn key(&self) -> String {
        match self {
            KillScope::All => "all".into(),
            KillScope::Session(s) => format!("session:{s}"),
            KillScope::Mission(m) => format!("mission:{m}"),
            KillScope::Agent(a) => format!("agent:{a}"),
            KillScope::Principal(p) => format!("principal:{p}"),
        }
    }

    /// The scope a stored key names; none for a key this release does not know.
    pub fn parse(key: &str) -> Option<KillScope> {
        if key == "all" {
            return Some(KillScope::All);
        }
        let (kind, name) = key.split_once(':')?;
        let name = name.to_string();
        match kind {
            "session" => Some(KillScope::Session(name)),
            "mission" => Some(KillScope::Mission(name)),
            "agent" => Some(KillScope::Agent(name)),
            "principal" => Some(KillScope::Principal(name)),
            _ => None,
        }
    }

    /// The key of the breaker row that stops this scope (`global` for everything).
    pub fn breaker_key(&self) -> String {
        match self {
            KillScope::All => "global".into(),
            other => other.key(),
        }
    }

    /// Whether this scope covers what `t` runs under.
    pub fn covers(&self, t: &Tracked) -> bool {
        match self {
            KillScope::All => true,
            KillScope::Session(s) => t.session == *s,
            KillScope::Mission(m) => t.missions.iter().any(|id| id == m),
            KillScope::Agent(a) => t.agent == *a,
            KillScope::Principal(p) => t.principal == *p,
        }
    }
}

impl std::fmt::Display for KillScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KillScope::All => write!(f, "everything"),
            KillScope::Session(s) => write!(f, "session `{s}`"),
            KillScope::Mission(m) => write!(f, "mission `{m}` (and those narrowed from it)"),
            KillScope::Agent(a) => write!(f, "agent `{a}`"),
            KillScope::Principal(p) => write!(f, "every mission acting for `{p}`"),
        }
    }
}

/// What an in-flight request runs under, for the kill switch to match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// The session's name.
    pub session: String,
    /// The mission's id, then the missions it was narrowed from.
    pub missions: Vec<String>,
    /// The agent.
    pub agent: String,
    /// The person the mission acts for.
    pub principal: String,
}

impl Tracked {
    /// What a request of `session` under `mission` runs under.
    pub fn of(mission: &Mission, session: &str) -> Tracked {
        Tracked {
            session: session.to_string(),
            missions: std::iter::once(&mission.id)
                .chain(&mission.chain)
                .cloned()
                .collect(),
            agent: mission.agent.clone(),
            principal: mission.principal.clone(),
        }
    }

    /// What a request of `actor` runs under.
    pub fn of_actor(actor: &Actor<'_>) -> Tracked {
        Tracked::of(actor.mission, actor.session)
    }

    /// Whether the breakers in force stop this scope; the breaker's key if so.
    fn stopped_by(&self, b: &Breakers) -> Option<String> {
        if b.global {
            return Some("global".into());
        }
        if b.agents.contains(&self.agent) {
            return Some(format!("agent:{}", self.agent));
        }
        if b.principals.contains(&self.principal) {
            return Some(format!("principal:{}", self.principal));
        }
        if b.sessions.contains(&self.session) {
            return Some(format!("session:{}", self.session));
        }
        self.missions
            .iter()
            .find(|m| b.tripped_missions.contains(*m))
            .map(|m| format!("mission:{m}"))
    }
}

struct Entry {
    scope: Tracked,
    token: CancellationToken,
    killed: Arc<OnceLock<String>>,
}

/// The requests in flight on this replica, by a number of their own.
#[derive(Default)]
pub(crate) struct Registry {
    next: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fires every entry `scope` covers with `reason`; returns how many.
    pub(crate) fn fire(&self, scope: &KillScope, reason: &str) -> usize {
        let entries = self.lock();
        let mut fired = 0;
        for e in entries.values().filter(|e| scope.covers(&e.scope)) {
            let _ = e.killed.set(reason.to_string());
            e.token.cancel();
            fired += 1;
        }
        fired
    }

    /// How many requests are registered.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A request registered with the kill switch, until dropped.
#[must_use = "the request is tracked only while its guard lives"]
pub struct KillGuard {
    registry: Weak<Registry>,
    id: u64,
    token: CancellationToken,
    killed: Arc<OnceLock<String>>,
}

impl std::fmt::Debug for KillGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillGuard")
            .field("id", &self.id)
            .field("killed", &self.killed.get())
            .finish_non_exhaustive()
    }
}

impl KillGuard {
    /// Fires when a kill covers the request, or when the parent token given to
    /// [`Enforcer::track`] fires: wait on it, and give the request up when it does.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Why a kill stopped the request, if one did (check it after the request returns too:
    /// a result that arrives as the kill does must not reach the agent).
    pub fn killed(&self) -> Option<&str> {
        self.killed.get().map(String::as_str)
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.lock().remove(&self.id);
        }
    }
}

/// This process as a replica: its identity and what it has in flight.
pub(crate) struct Local {
    pub(crate) replica: Replica,
    pub(crate) registry: Arc<Registry>,
}

impl Local {
    /// A new identity: a random id, this host and process.
    pub(crate) fn new() -> Local {
        let mut bytes = [0u8; 8];
        // Without randomness, the time and pid still tell replicas apart.
        let id = match getrandom::fill(&mut bytes) {
            Ok(()) => format!("r-{}", hex::encode(bytes)),
            Err(_) => format!("r-{}-{}", now_ms(), std::process::id()),
        };
        let now = now_ms();
        Local {
            replica: Replica {
                id,
                name: format!("{}/{}", hostname(), std::process::id()),
                started_at_ms: now,
                heartbeat_at_ms: now,
            },
            registry: Arc::new(Registry::default()),
        }
    }
}

/// This host's name, as the kernel has it; `localhost` when it cannot be read.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Enforcer {
    /// This replica, as registered in the store.
    pub fn replica(&self) -> &Replica {
        &self.local.replica
    }

    /// Register a request of scope `scope` with the kill switch until the returned guard is
    /// dropped. Its token is a child of `parent` (the agent's own cancellation). If a stop in
    /// force already covers the scope (a kill that arrived between the decision and now), the
    /// token has fired already.
    pub fn track(&self, scope: Tracked, parent: &CancellationToken) -> KillGuard {
        let registry = &self.local.registry;
        let id = registry.next.fetch_add(1, Ordering::Relaxed);
        let token = parent.child_token();
        let killed = Arc::new(OnceLock::new());
        registry.lock().insert(
            id,
            Entry {
                scope: scope.clone(),
                token: token.clone(),
                killed: killed.clone(),
            },
        );
        // A kill reloads the breakers before it fires the registry: a request registered
        // before the fire is fired, one registered after it sees the breakers here.
        let b = self.breakers();
        if let Some(key) = scope.stopped_by(&b) {
            let why = b.reasons.get(&key).cloned();
            let _ = killed.set(why.unwrap_or_else(|| format!("the breaker `{key}` is tripped")));
            token.cancel();
        }
        KillGuard {
            registry: Arc::downgrade(registry),
            id,
            token,
            killed,
        }
    }

    /// How many requests are registered with the kill switch now.
    pub fn tracked(&self) -> usize {
        self.local.registry.len()
    }
}

/// Register this replica and keep its heartbeat until the enforcer is dropped.
pub(crate) async fn start(enforcer: &Arc<Enforcer>) -> Result<(), StoreError> {
    enforcer.store().heartbeat(enforcer.replica()).await?;
    let weak = Arc::downgrade(enforcer);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let Some(e) = weak.upgrade() else { return };
            let beat = Replica {
                heartbeat_at_ms: now_ms(),
                ..e.replica().clone()
            };
            if let Err(err) = e.store().heartbeat(&beat).await {
                tracing::warn!("store: cannot write this replica's heartbeat: {err}");
            }
        }
    });
    Ok(())
}

/// A kill arrived (its breakers are reloaded already): stop what it covers here, then say so.
pub(crate) async fn apply(e: &Arc<Enforcer>, kill_id: &str) {
    let mut wait = Duration::from_millis(50);
    for _ in 0..8 {
        match apply_once(e, kill_id).await {
            Ok(()) => return,
            Err(err) => {
                tracing::warn!("store: cannot apply kill `{kill_id}`: {err}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// How far back a replica looks, after it may have missed changes, for kills it has not
/// confirmed (ms).
const CATCH_UP_MS: i64 = 60_000;

/// After changes may have been missed (the feed lagged or reconnected): apply and confirm the
/// recent kills this replica has not confirmed yet.
pub(crate) async fn catch_up(e: &Arc<Enforcer>) {
    let store = e.store();
    let since = now_ms().saturating_sub(CATCH_UP_MS);
    let kills = match store.kills().await {
        Ok(kills) => kills,
        Err(err) => {
            tracing::warn!("store: cannot read the kills to catch up on: {err}");
            return;
        }
    };
    for kill in kills.into_iter().filter(|k| k.at_ms >= since) {
        let mine = &e.replica().id;
        match store.kill_acks(&kill.id).await {
            Ok(acks) if acks.iter().any(|a| &a.replica_id == mine) => {}
            Ok(_) => apply(e, &kill.id).await,
            Err(err) => tracing::warn!("store: cannot read the confirmations of a kill: {err}"),
        }
    }
}

async fn apply_once(e: &Arc<Enforcer>, kill_id: &str) -> Result<(), StoreError> {
    let store = e.store();
    let Some(kill) = store.kill(kill_id).await? else {
        tracing::warn!("store: kill `{kill_id}` is announced but not stored");
        return Ok(());
    };
    match KillScope::parse(&kill.scope) {
        Some(scope) => {
            let fired = e
                .local
                .registry
                .fire(&scope, &kill_reason(&kill.by, &kill.reason));
            tracing::warn!(
                "kill `{}` by {}: {scope} stopped; {fired} request(s) in flight cancelled",
                kill.id,
                kill.by
            );
        }
        // A newer release's scope: stop everything rather than nothing.
        None => {
            e.local
                .registry
                .fire(&KillScope::All, &kill_reason(&kill.by, &kill.reason));
        }
    }
    store.ack_kill(&kill.id, &e.replica().id, now_ms()).await
}

/// The reason a kill gives, in refusals and cancelled requests.
pub fn kill_reason(by: &str, reason: &str) -> String {
    if reason.trim().is_empty() {
        format!("killed by {by}")
    } else {
        format!("killed by {by}: {}", reason.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked() -> Tracked {
        Tracked {
            session: "s1".into(),
            missions: vec!["m-child".into(), "m-root".into()],
            agent: "forum-helper".into(),
            principal: "bob".into(),
        }
    }

    #[test]
    fn scopes_round_trip_and_cover_what_they_name() {
        let t = tracked();
        for (scope, covers) in [
            (KillScope::All, true),
            (KillScope::Session("s1".into()), true),
            (KillScope::Session("s2".into()), false),
            (KillScope::Mission("m-root".into()), true),
            (KillScope::Mission("m-other".into()), false),
            (KillScope::Agent("forum-helper".into()), true),
            (KillScope::Agent("x".into()), false),
            (KillScope::Principal("bob".into()), true),
            (KillScope::Principal("carol".into()), false),
        ] {
            assert_eq!(KillScope::parse(&scope.key()), Some(scope.clone()));
            assert_eq!(scope.covers(&t), covers, "{scope}");
        }
        assert_eq!(KillScope::parse("planet:earth"), None);
        assert_eq!(KillScope::All.breaker_key(), "global");
        assert_eq!(KillScope::Agent("a".into()).breaker_key(), "agent:a");
    }

    #[test]
    fn a_fire_cancels_the_covered_entries_with_the_reason_only() {
        let registry = Arc::new(Registry::default());
        let guard = |scope: Tracked| {
            let id = registry.next.fetch_add(1, Ordering::Relaxed);
            let token = CancellationToken::new();
            let killed = Arc::new(OnceLock::new());
            registry.lock().insert(
                id,
                Entry {
                    scope,
                    token: token.clone(),
                    killed: killed.clone(),
                },
            );
            KillGuard {
                registry: Arc::downgrade(&registry),
                id,
                token,
                killed,
            }
        };
        let a = guard(tracked());
        let b = guard(Tracked {
            agent: "other".into(),
            ..tracked()
        });
        assert_eq!(registry.len(), 2);
        assert_eq!(
            registry.fire(&KillScope::Agent("forum-helper".into()), "killed by alice"),
            1
        );
        assert!(a.token().is_cancelled());
        assert_eq!(a.killed(), Some("killed by alice"));
        assert!(!b.token().is_cancelled());
        assert_eq!(b.killed(), None);
        drop(a);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn the_stop_in_force_names_its_breaker() {
        let t = tracked();
        let mut b = Breakers::default();
        assert_eq!(t.stopped_by(&b), None);
        b.tripped_missions.insert("m-root".into());
        assert_eq!(t.stopped_by(&b).as_deref(), Some("mission:m-root"));
        b.global = true;
        assert_eq!(t.stopped_by(&b).as_deref(), Some("global"));
    }
}
