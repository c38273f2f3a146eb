//! A mission's state: held by the sessions of the mission in this process, kept in the store.
//!
//! The store keeps it as one data entry ([`STATE_KEY`]) with a version. Writing is
//! read-merge-swap: the state is written only if the entry's version is the one last read;
//! otherwise the newer entry is read, merged in ([`SessionState::merge_from`], which only
//! adds), and the write is tried again. Usage counters are written as what was stored plus what
//! this process added since, so two replicas' counts add up.

use serde::{Deserialize, Serialize};
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_store::{MissionState, Store};

use crate::EnforceError;

/// The key of a mission's state among its data entries in the store.
pub const STATE_KEY: &str = "state";

/// The budget name under which allowed calls are spent in the store.
pub(crate) const CALLS: &str = "calls";

/// How many times a write is retried against concurrent writers before it gives up.
const SWAP_ATTEMPTS: usize = 16;

/// What the store keeps under [`STATE_KEY`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    state: SessionState,
    usage: MissionUsage,
}

/// The state of one mission in this process, shared by its sessions; the enforcer locks it to
/// decide and to absorb.
#[derive(Debug)]
pub struct MissionCell {
    id: String,
    local: tokio::sync::Mutex<Local>,
}

/// The state as this process sees it.
#[derive(Debug)]
pub(crate) struct Local {
    /// The state decisions read (what the store held, merged with what this process added).
    pub(crate) state: SessionState,
    /// The usage this process counts: what the store held plus what it added since.
    pub(crate) usage: MissionUsage,
    /// Usage as the store held it at the last read or write.
    stored_usage: MissionUsage,
    /// Calls spent in the store's call budget (when the mission has one).
    spent_calls: u64,
    /// The version of the stored entry this state last read or wrote (0: none yet).
    version: u64,
    /// Whether the store has been read since this process took the mission up.
    loaded: bool,
    /// Whether there are changes the store does not have yet.
    pub(crate) dirty: bool,
}

impl MissionCell {
    /// The cell of mission `id`, not yet read from the store.
    pub fn new(id: impl Into<String>) -> MissionCell {
        let id = id.into();
        MissionCell {
            local: tokio::sync::Mutex::new(Local {
                state: SessionState::new("", id.clone()),
                usage: MissionUsage::default(),
                stored_usage: MissionUsage::default(),
                spent_calls: 0,
                version: 0,
                loaded: false,
                dirty: false,
            }),
            id,
        }
    }

    /// The mission id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of the state as this process sees it (for diagnostics and tests).
    pub async fn snapshot(&self) -> (SessionState, MissionUsage) {
        let local = self.local.lock().await;
        (local.state.clone(), local.usage)
    }

    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Local> {
        self.local.lock().await
    }
}

impl Local {
    /// Whether the store must be read before deciding: the first time, and always on a store
    /// other replicas write.
    pub(crate) fn needs_load(&self, shared: bool) -> bool {
        !self.loaded || shared
    }

    /// Merge what the store holds into this state.
    pub(crate) fn apply(
        &mut self,
        mission: &str,
        stored: &MissionState,
    ) -> Result<(), EnforceError> {
        let version = stored.versions.get(STATE_KEY).copied().unwrap_or(0);
        if let Some(v) = stored.data.get(STATE_KEY) {
            if version != self.version {
                let s: Stored =
                    serde_json::from_value(v.clone()).map_err(|e| EnforceError::State {
                        mission: mission.to_string(),
                        reason: e.to_string(),
                    })?;
                let added = self.added();
                self.state.merge_from(&s.state);
                self.stored_usage = s.usage;
                self.version = version;
                self.set_usage(added);
            }
        }
        if let Some(b) = stored.budgets.get(CALLS) {
            self.spent_calls = self.spent_calls.max(b.spent);
        }
        self.loaded = true;
        Ok(())
    }

    /// What this process added to the usage since the store last had it.
    fn added(&self) -> MissionUsage {
        MissionUsage {
            calls: self.usage.calls.saturating_sub(self.stored_usage.calls),
            records: self.usage.records.saturating_sub(self.stored_usage.records),
            bytes: self.usage.bytes.saturating_sub(self.stored_usage.bytes),
        }
    }

    fn set_usage(&mut self, added: MissionUsage) {
        self.usage = MissionUsage {
            calls: self.stored_usage.calls + added.calls,
            records: self.stored_usage.records + added.records,
            bytes: self.stored_usage.bytes + added.bytes,
        };
    }

    /// A call was spent in the store's budget, which now says `spent`.
    pub(crate) fn spent(&mut self, spent: u64) {
        self.spent_calls = self.spent_calls.max(spent);
    }

    /// The usage a decision reads: what this state counted, and at least the calls the store's
    /// budget says were spent (by any replica).
    pub(crate) fn decision_usage(&self) -> MissionUsage {
        MissionUsage {
            calls: self.usage.calls.max(self.spent_calls),
            ..self.usage
        }
    }

    /// Write the state to the store (read-merge-swap; see the module doc).
    pub(crate) async fn persist(
        &mut self,
        store: &dyn Store,
        mission: &str,
    ) -> Result<(), EnforceError> {
        for _ in 0..SWAP_ATTEMPTS {
            let value = serde_json::to_value(Stored {
                state: self.state.clone(),
                usage: self.usage,
            })
            .map_err(|e| EnforceError::State {
                mission: mission.to_string(),
                reason: e.to_string(),
            })?;
            if let Some(version) = store
                .swap_mission_data(mission, STATE_KEY, &value, self.version)
                .await?
            {
                self.version = version;
                self.stored_usage = self.usage;
                self.dirty = false;
                return Ok(());
            }
            let stored = store.load_mission(mission).await?;
            self.apply(mission, &stored)?;
        }
        Err(EnforceError::State {
            mission: mission.to_string(),
            reason: format!("other writers changed it {SWAP_ATTEMPTS} times in a row"),
        })
    }
}
