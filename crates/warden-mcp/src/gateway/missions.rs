//! Missions and their state: what a mission has read belongs to the mission, not to a
//! connection.
//!
//! Every session opened under the same mission grant shares one state (taint, provenance text,
//! history, budgets): a second MCP session, a reconnect, a stateless request. An agent cannot
//! wash its taint by opening a new session.
//!
//! A mission presented as a mission token is the token's mission ([`token_key`]): every
//! session, replica and restart presenting it, or a token narrowed from it, finds its state. A
//! mission named by trusted headers (or, for local development, by the operator) is
//! [`mission_key`]: the agent's token (over HTTP), the agent, the principal, the template and
//! the purpose. These two functions are the one place keys are made.
//!
//! The states are [`MissionCell`]s of the enforcement pipeline, which keeps them in the store:
//! the mission id is a hash of the key ([`mission_id`]), the same on every replica and after a
//! restart. At most [`MAX_DORMANT`] missions without a live session are kept; past
//! that, the one idle longest is forgotten.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use warden_core::mission::Mission;
use warden_enforce::MissionCell;

use super::{lock, Identity};

/// The most missions kept that no live session uses.
pub const MAX_DORMANT: usize = 4096;

/// What identifies a mission (see the module doc).
pub type MissionKey = [u8; 32];

/// The key of the mission `who` runs under, opened with the agent token whose digest is
/// `token` (none over stdio).
pub fn mission_key(who: &Identity, token: Option<&[u8; 32]>) -> MissionKey {
    let mut h = Sha256::new();
    h.update(token.copied().unwrap_or_default());
    for part in [
        who.agent.as_str(),
        who.principal.as_str(),
        who.template.as_str(),
        who.purpose.as_str(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// The key of the mission of a mission token: its mission id (which the token's signature
/// fixes), apart from every key of [`mission_key`].
pub fn token_key(mission_id: &str) -> MissionKey {
    let mut h = Sha256::new();
    h.update(b"mission-token\0");
    h.update(mission_id.as_bytes());
    h.finalize().into()
}

/// The id of the mission under `key`: `m-` and 16 hex digits of its SHA-256. The same on every
/// replica and after a restart, so the mission's state in the store is found again; it reveals
/// nothing of the token or identity it was made from.
pub fn mission_id(key: &MissionKey) -> String {
    let digest = Sha256::digest(key);
    format!("m-{}", hex::encode(digest.get(..8).unwrap_or_default()))
}

/// One mission: its grant, what it may use, and its state.
#[derive(Clone)]
pub(crate) struct MissionEntry {
    pub(crate) mission: Mission,
    pub(crate) visible: Arc<BTreeSet<String>>,
    pub(crate) state: Arc<MissionCell>,
    last_used: Instant,
}

/// The missions Warden knows, by key.
#[derive(Default)]
pub(crate) struct Missions {
    map: Mutex<HashMap<MissionKey, MissionEntry>>,
}

impl Missions {
    /// The mission under `key`; granted by `grant` (given the mission id) when there is none,
    /// or when its grant has expired at `now_ms` (the state carries over: a grant made again
    /// washes nothing out).
    pub(crate) fn get_or_grant<E>(
        &self,
        key: &MissionKey,
        now_ms: i64,
        grant: impl FnOnce(&str) -> Result<(Mission, BTreeSet<String>), E>,
    ) -> Result<MissionEntry, E> {
        let mut map = lock(&self.map);
        if let Some(e) = map.get_mut(key) {
            e.last_used = Instant::now();
            if now_ms < e.mission.expires_at_ms {
                return Ok(e.clone());
            }
            let (mission, visible) = grant(&e.mission.id)?;
            e.mission = mission;
            e.visible = Arc::new(visible);
            return Ok(e.clone());
        }
        let id = mission_id(key);
        let (mission, visible) = grant(&id)?;
        // A narrowed mission keeps its state in the root of its chain: what a sub-agent reads
        // taints its parent, and the parent's taint holds for it.
        let root = mission.chain.first().unwrap_or(&mission.id);
        let state = map
            .values()
            .find(|e| e.state.id() == root)
            .map(|e| e.state.clone())
            .unwrap_or_else(|| Arc::new(MissionCell::new(root.clone())));
        let entry = MissionEntry {
            visible: Arc::new(visible),
            state,
            mission,
            last_used: Instant::now(),
        };
        let dormant = map
            .values()
            .filter(|e| Arc::strong_count(&e.state) == 1)
            .count();
        if dormant >= MAX_DORMANT {
            if let Some(oldest) = map
                .iter()
                .filter(|(_, e)| Arc::strong_count(&e.state) == 1)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(*key, entry.clone());
        Ok(entry)
    }
}
