//! A mission's state: held by the sessions of the mission in this process, kept in the store.
//!
//! The store keeps a mission as a **journal** of what changed its state: each decision
//! committed ([`Committed`]) and each output absorbed (the call's [`Receipt`] and the text),
//! numbered in the order the store took them ([`Store::journal_append`]). Every process folds
//! the events it has not seen yet into its own copy of the state through the same engine
//! functions that made them (`commit_applied`, `absorb`), so replicas converge on the same
//! taint, counters and usage, and nothing any replica absorbed is lost.
//!
//! Writing an event costs what the event holds (one output), not what the mission holds: the
//! state itself (up to a few MiB of provenance text) is written only as an occasional snapshot
//! ([`STATE_KEY`], with the journal number it covers, by compare-and-swap), from which a
//! process taking the mission up starts; the events the snapshot covers are then dropped,
//! keeping [`PRUNE_MARGIN`] of them for processes that are a little behind. A process further
//! behind than that notices the gap and starts again from the snapshot.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warden_core::engine::Committed;
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Engine, Receipt};
use warden_store::{MissionState, Store};

use crate::EnforceError;

/// The key of a mission's state snapshot among its data entries in the store.
pub const STATE_KEY: &str = "state";

/// The budget name under which allowed calls are spent in the store.
pub(crate) const CALLS: &str = "calls";

/// A snapshot is written once this many events have been folded since the last one.
const SNAPSHOT_EVERY: u64 = 256;

/// Events kept in the journal behind a snapshot, for processes that have not read them yet.
pub const PRUNE_MARGIN: u64 = 1024;

/// Decisions committed but not yet journaled before they are written without waiting for an
/// absorb.
const PENDING_MAX: usize = 64;

/// Journal events read per page.
const PAGE: u32 = 512;

/// What the store keeps under [`STATE_KEY`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    state: SessionState,
    usage: MissionUsage,
    /// The journal number the snapshot covers (every event up to it is in it).
    #[serde(default)]
    upto: u64,
}

/// One journal event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Event {
    /// A decision committed.
    Commit(Committed),
    /// An output absorbed.
    Absorb {
        receipt: Receipt,
        text: String,
        at_ms: i64,
    },
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
    /// The state decisions read: the journal folded up to `applied`, this process's own
    /// events after it (`own`), and what it has not journaled yet (`pending`).
    pub(crate) state: SessionState,
    /// The usage, folded the same way.
    pub(crate) usage: MissionUsage,
    /// Calls spent in the store's call budget (when the mission has one).
    spent_calls: u64,
    /// Every journal event up to this number is in `state`.
    applied: u64,
    /// This process's journaled events after `applied` (in `state` already: skipped when read).
    own: BTreeSet<u64>,
    /// Events in `state` that the journal does not have yet.
    pending: Vec<Value>,
    /// The version of the snapshot entry last read or written (0: none).
    snapshot_version: u64,
    /// The journal number that snapshot covers.
    snapshot_upto: u64,
    /// Whether the store has been read since this process took the mission up.
    loaded: bool,
}

impl MissionCell {
    /// The cell of mission `id`, not yet read from the store.
    pub fn new(id: impl Into<String>) -> MissionCell {
        let id = id.into();
        MissionCell {
            local: tokio::sync::Mutex::new(Local {
                state: SessionState::new("", id.clone()),
                usage: MissionUsage::default(),
                spent_calls: 0,
                applied: 0,
                own: BTreeSet::new(),
                pending: Vec::new(),
                snapshot_version: 0,
                snapshot_upto: 0,
                loaded: false,
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

fn state_error(mission: &str, reason: impl ToString) -> EnforceError {
    EnforceError::State {
        mission: mission.to_string(),
        reason: reason.to_string(),
    }
}

impl Local {
    /// Bring the state up to date with the store before a decision: the first time, from the
    /// snapshot and the journal after it; then, on a store other replicas write, the journal
    /// events they added since.
    pub(crate) async fn refresh(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
        shared: bool,
    ) -> Result<(), EnforceError> {
        if !self.loaded {
            let stored = store.load_mission(mission).await?;
            self.restart_from(engine, mission, &stored)?;
            self.loaded = true;
            self.sync(engine, store, mission).await
        } else if shared {
            self.sync(engine, store, mission).await
        } else {
            Ok(())
        }
    }

    /// Start again from the stored snapshot, then apply what this process has not journaled.
    fn restart_from(
        &mut self,
        engine: &Engine,
        mission: &str,
        stored: &MissionState,
    ) -> Result<(), EnforceError> {
        let snapshot = match stored.data.get(STATE_KEY) {
            Some(v) => {
                serde_json::from_value::<Stored>(v.clone()).map_err(|e| state_error(mission, e))?
            }
            None => Stored::default(),
        };
        self.state = snapshot.state;
        self.state.mission = mission.to_string();
        self.usage = snapshot.usage;
        self.applied = snapshot.upto;
        self.snapshot_upto = snapshot.upto;
        self.snapshot_version = stored.versions.get(STATE_KEY).copied().unwrap_or(0);
        self.own.clear();
        if let Some(b) = stored.budgets.get(CALLS) {
            self.spent_calls = self.spent_calls.max(b.spent);
        }
        for e in self.pending.clone() {
            self.apply(engine, mission, &e)?;
        }
        Ok(())
    }

    /// Fold the journal events after `applied` that this process did not write.
    async fn sync(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
    ) -> Result<(), EnforceError> {
        loop {
            let rows = store.journal_since(mission, self.applied, PAGE).await?;
            if let Some((first, _)) = rows.first() {
                if *first != self.applied + 1 {
                    // The events in between were dropped behind a newer snapshot.
                    let stored = store.load_mission(mission).await?;
                    self.restart_from(engine, mission, &stored)?;
                    if self.applied + 1 < *first {
                        return Err(state_error(
                            mission,
                            format!(
                                "journal events {} to {} are missing",
                                self.applied + 1,
                                first - 1
                            ),
                        ));
                    }
                    continue;
                }
            }
            let full = rows.len() == PAGE as usize;
            for (seq, event) in rows {
                if !self.own.remove(&seq) {
                    self.apply(engine, mission, &event)?;
                }
                self.applied = seq;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn apply(&mut self, engine: &Engine, mission: &str, event: &Value) -> Result<(), EnforceError> {
        let event: Event =
            serde_json::from_value(event.clone()).map_err(|e| state_error(mission, e))?;
        match event {
            Event::Commit(c) => engine.commit_applied(&c, &mut self.state, &mut self.usage),
            Event::Absorb {
                receipt,
                text,
                at_ms,
            } => {
                engine.absorb(&receipt, &text, &mut self.state, &mut self.usage, at_ms);
            }
        }
        Ok(())
    }

    /// Commit `decision` to the state; journaled with the next absorb (or once
    /// [`PENDING_MAX`] are waiting).
    ///
    /// # Errors
    /// When the event cannot be encoded.
    pub(crate) async fn commit(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
        decision: &warden_core::Decision,
    ) -> Result<(), EnforceError> {
        let c = Committed::of(decision);
        engine.commit_applied(&c, &mut self.state, &mut self.usage);
        self.pending
            .push(serde_json::to_value(Event::Commit(c)).map_err(|e| state_error(mission, e))?);
        if self.pending.len() >= PENDING_MAX {
            // The decision is recorded already; a failed write keeps the events pending for
            // the next one.
            if let Err(e) = self.write(engine, store, mission).await {
                tracing::warn!("mission {mission}: cannot journal committed decisions yet: {e}");
            }
        }
        Ok(())
    }

    /// Absorb `text`, read by the call `receipt` allowed, and journal it (with the commits
    /// waiting) before returning.
    pub(crate) async fn absorb(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
        receipt: &Receipt,
        text: &str,
        at_ms: i64,
    ) -> Result<(), EnforceError> {
        engine.absorb(receipt, text, &mut self.state, &mut self.usage, at_ms);
        let event = Event::Absorb {
            receipt: receipt.clone(),
            text: text.to_string(),
            at_ms,
        };
        self.pending
            .push(serde_json::to_value(event).map_err(|e| state_error(mission, e))?);
        self.write(engine, store, mission).await
    }

    /// Journal what is pending. When nothing else was journaled since this process last read,
    /// its state now covers the journal up to the new end, and a snapshot is written when one
    /// is due.
    async fn write(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
    ) -> Result<(), EnforceError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let n = self.pending.len() as u64;
        let last = store.journal_append(mission, &self.pending).await?;
        self.pending.clear();
        let first = last + 1 - n;
        self.own.extend(first..=last);
        if first != self.applied + 1 {
            // Another process journaled in between: read it now.
            self.sync(engine, store, mission).await?;
        } else {
            self.own.clear();
            self.applied = last;
        }
        if self.own.is_empty() && self.applied >= self.snapshot_upto + SNAPSHOT_EVERY {
            self.write_snapshot(store, mission).await?;
        }
        Ok(())
    }

    /// Write the state as the snapshot covering the journal up to `applied`, unless another
    /// process wrote one covering as much; then drop the events it covers, but the margin.
    async fn write_snapshot(
        &mut self,
        store: &dyn Store,
        mission: &str,
    ) -> Result<(), EnforceError> {
        let value = serde_json::to_value(StoredRef {
            state: &self.state,
            usage: &self.usage,
            upto: self.applied,
        })
        .map_err(|e| state_error(mission, e))?;
        match store
            .swap_mission_data(mission, STATE_KEY, &value, self.snapshot_version)
            .await?
        {
            Some(version) => {
                self.snapshot_version = version;
                self.snapshot_upto = self.applied;
                if let Some(upto) = self.applied.checked_sub(PRUNE_MARGIN) {
                    store.journal_prune(mission, upto).await?;
                }
            }
            None => {
                // Another process wrote a snapshot: learn which, and try again later.
                let stored = store.load_mission(mission).await?;
                self.snapshot_version = stored.versions.get(STATE_KEY).copied().unwrap_or(0);
                self.snapshot_upto = stored
                    .data
                    .get(STATE_KEY)
                    .and_then(|v| v.get("upto"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .max(self.snapshot_upto);
            }
        }
        Ok(())
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

    /// Journal what is pending (after decisions that were not followed by an absorb).
    pub(crate) async fn flush(
        &mut self,
        engine: &Engine,
        store: &dyn Store,
        mission: &str,
    ) -> Result<(), EnforceError> {
        self.write(engine, store, mission).await
    }
}

/// [`Stored`] by reference, to write a snapshot without copying the state.
#[derive(Serialize)]
struct StoredRef<'a> {
    state: &'a SessionState,
    usage: &'a MissionUsage,
    upto: u64,
}
