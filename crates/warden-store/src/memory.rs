//! The in-memory backend: everything in one process, gone at exit.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::audit::{now_ms, seal, ChainBackend, CheckpointPlan, Committed, Writer};
use crate::checkpoint::AuditConfig;
use crate::error::StoreError;
use crate::feed::Feed;
use crate::mission::{check_labels, merge_sources};
use crate::replicas::{KillAck, KillRecord, Replica};
use crate::types::{
    AuditInput, AuditRecord, AuditRecordMeta, Backend, Budget, Change, Checkpoint, Exhausted,
    GrantFilter, GrantRecord, Hash, MissionState, Revocation, Taint,
};
use crate::{Store, MAX_PAGE};

#[derive(Debug, Default)]
struct State {
    records: Vec<AuditRecord>,
    checkpoints: Vec<Checkpoint>,
    missions: BTreeMap<String, MissionState>,
    revocations: BTreeMap<String, Revocation>,
    breakers: BTreeMap<String, Value>,
    /// Per mission: the last sequence number given out, and the events kept.
    journals: BTreeMap<String, (u64, BTreeMap<u64, Value>)>,
    /// Mission grants by mission id.
    grants: BTreeMap<String, GrantRecord>,
    /// Approval requests by id.
    approvals: BTreeMap<String, crate::types::ApprovalRecord>,
    /// Replicas, kills and their acknowledgements.
    kills: crate::replicas::MemoryKills,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written state: every change
        // below is one push or insert.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The in-memory store.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    shared: Arc<Shared>,
    writer: Writer,
    feed: Feed,
}

impl MemoryStore {
    pub(crate) fn new(config: AuditConfig, key: Option<SigningKey>) -> MemoryStore {
        let shared = Arc::new(Shared::default());
        let writer = Writer::spawn(shared.clone(), config, key);
        MemoryStore {
            shared,
            writer,
            feed: Feed::new(),
        }
    }
}

#[async_trait]
impl ChainBackend for Shared {
    async fn commit(
        &self,
        inputs: Vec<AuditInput>,
        plan: Option<&CheckpointPlan<'_>>,
    ) -> Result<Committed, StoreError> {
        let mut state = self.lock();
        let (seq, hash) = state
            .records
            .last()
            .map(|r| (r.seq, r.hash))
            .unwrap_or((0, Hash::ZERO));
        let mut metas = Vec::with_capacity(inputs.len());
        for sealed in seal(seq, hash, inputs) {
            metas.push(AuditRecordMeta {
                seq: sealed.seq,
                hash: sealed.hash,
            });
            state.records.push(AuditRecord {
                seq: sealed.seq,
                kind: sealed.input.kind,
                at_ms: sealed.input.at_ms,
                columns: sealed.input.columns,
                body: sealed.input.body,
                body_text: sealed.body_text,
                prev_hash: sealed.prev_hash,
                hash: sealed.hash,
            });
        }
        let checkpoint = plan.and_then(|plan| plan.make(metas.last()));
        if let Some(checkpoint) = &checkpoint {
            state.checkpoints.push(checkpoint.clone());
        }
        Ok(Committed { metas, checkpoint })
    }

    async fn tail(&self) -> Result<Option<AuditRecordMeta>, StoreError> {
        Ok(self.lock().records.last().map(|r| AuditRecordMeta {
            seq: r.seq,
            hash: r.hash,
        }))
    }

    async fn last_checkpoint_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .iter()
            .map(|c| c.seq)
            .max()
            .unwrap_or(0))
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.lock().checkpoints.push(checkpoint.clone());
        Ok(())
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn append(&self, records: Vec<AuditInput>) -> Result<Vec<AuditRecordMeta>, StoreError> {
        self.writer.append(records).await
    }

    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.writer.checkpoint().await
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let state = self.shared.lock();
        let start = state.records.partition_point(|r| r.seq < from_seq);
        let limit = limit.min(MAX_PAGE) as usize;
        Ok(state
            .records
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn audit_get(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
        let state = self.shared.lock();
        let index = state.records.partition_point(|r| r.seq < seq);
        Ok(state.records.get(index).filter(|r| r.seq == seq).cloned())
    }

    async fn audit_by_decision(&self, decision_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let state = self.shared.lock();
        Ok(state
            .records
            .iter()
            .filter(|r| r.columns.decision_id.as_deref() == Some(decision_id))
            .cloned()
            .collect())
    }

    async fn audit_tail_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .shared
            .lock()
            .records
            .last()
            .map(|r| r.seq)
            .unwrap_or(0))
    }

    async fn audit_seq_of_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        let state = self.shared.lock();
        Ok(state
            .records
            .iter()
            .find(|r| &r.hash == hash)
            .map(|r| r.seq))
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut checkpoints = self.shared.lock().checkpoints.clone();
        checkpoints.sort_by_key(|c| c.seq);
        Ok(checkpoints)
    }

    async fn load_mission(&self, mission_id: &str) -> Result<MissionState, StoreError> {
        Ok(self
            .shared
            .lock()
            .missions
            .get(mission_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn absorb(&self, mission_id: &str, taint: &Taint) -> Result<(), StoreError> {
        check_labels(taint.keys())?;
        {
            let mut state = self.shared.lock();
            let mission = state.missions.entry(mission_id.to_string()).or_default();
            for (label, sources) in taint {
                let merged = merge_sources(
                    mission.taint.get(label).map(Vec::as_slice).unwrap_or(&[]),
                    sources,
                );
                mission.taint.insert(label.clone(), merged);
            }
        }
        self.feed.send(Change::Mission(mission_id.to_string()));
        Ok(())
    }

    async fn put_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.shared
            .lock()
            .missions
            .entry(mission_id.to_string())
            .or_default()
            .put(key, value);
        self.feed.send(Change::Mission(mission_id.to_string()));
        Ok(())
    }

    async fn swap_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let swapped = {
            let mut shared = self.shared.lock();
            let mission = shared.missions.entry(mission_id.to_string()).or_default();
            if mission.versions.get(key).copied().unwrap_or(0) == expected {
                Some(mission.put(key, value))
            } else {
                None
            }
        };
        if swapped.is_some() {
            self.feed.send(Change::Mission(mission_id.to_string()));
        }
        Ok(swapped)
    }

    async fn journal_append(&self, mission_id: &str, events: &[Value]) -> Result<u64, StoreError> {
        let mut state = self.shared.lock();
        let (last, kept) = state.journals.entry(mission_id.to_string()).or_default();
        for e in events {
            *last += 1;
            kept.insert(*last, e.clone());
        }
        Ok(*last)
    }

    async fn journal_since(
        &self,
        mission_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        let state = self.shared.lock();
        Ok(state
            .journals
            .get(mission_id)
            .map(|(_, kept)| {
                kept.range(after.saturating_add(1)..)
                    .take(limit as usize)
                    .map(|(s, v)| (*s, v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn journal_prune(&self, mission_id: &str, upto: u64) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        if let Some((_, kept)) = state.journals.get_mut(mission_id) {
            *kept = kept.split_off(&upto.saturating_add(1));
        }
        Ok(())
    }

    async fn spend(
        &self,
        mission_id: &str,
        budget: &str,
        amount: u64,
        limit: u64,
    ) -> Result<Result<u64, Exhausted>, StoreError> {
        crate::mission::to_i64(amount, "amount")?;
        crate::mission::to_i64(limit, "limit")?;
        let mut state = self.shared.lock();
        let mission = state.missions.entry(mission_id.to_string()).or_default();
        let spent = mission.budgets.get(budget).map(|b| b.spent).unwrap_or(0);
        match spent.checked_add(amount) {
            Some(total) if total <= limit => {
                mission.budgets.insert(
                    budget.to_string(),
                    Budget {
                        spent: total,
                        limit,
                    },
                );
                Ok(Ok(limit - total))
            }
            _ => Ok(Err(Exhausted {
                budget: budget.to_string(),
                spent,
                requested: amount,
                limit,
            })),
        }
    }

    async fn revoke(&self, mission_id: &str, reason: &str) -> Result<(), StoreError> {
        self.shared
            .lock()
            .revocations
            .entry(mission_id.to_string())
            .or_insert_with(|| Revocation {
                mission_id: mission_id.to_string(),
                reason: reason.to_string(),
                at_ms: now_ms(),
            });
        self.feed.send(Change::Revoked(mission_id.to_string()));
        Ok(())
    }

    async fn is_revoked(&self, mission_id: &str) -> Result<Option<Revocation>, StoreError> {
        Ok(self.shared.lock().revocations.get(mission_id).cloned())
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        Ok(self.shared.lock().revocations.values().cloned().collect())
    }

    async fn set_breaker(&self, key: &str, state: &Value) -> Result<(), StoreError> {
        self.shared
            .lock()
            .breakers
            .insert(key.to_string(), state.clone());
        self.feed.send(Change::Breaker(key.to_string()));
        Ok(())
    }

    async fn breakers(&self) -> Result<BTreeMap<String, Value>, StoreError> {
        Ok(self.shared.lock().breakers.clone())
    }

    async fn put_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        match self.shared.lock().grants.entry(grant.mission_id.clone()) {
            Entry::Occupied(_) => Err(crate::grants::taken(&grant.mission_id)),
            Entry::Vacant(slot) => {
                slot.insert(grant.clone());
                Ok(())
            }
        }
    }

    async fn grant(&self, mission_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        Ok(self.shared.lock().grants.get(mission_id).cloned())
    }

    async fn grants(&self, filter: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        let matching = self
            .shared
            .lock()
            .grants
            .values()
            .filter(|g| crate::grants::matches(g, filter))
            .cloned()
            .collect();
        Ok(crate::grants::newest_first(matching, filter.limit))
    }

    async fn put_approval(&self, request: &crate::types::ApprovalRecord) -> Result<(), StoreError> {
        match self.shared.lock().approvals.entry(request.id.clone()) {
            Entry::Occupied(_) => return Err(crate::approvals::taken(&request.id)),
            Entry::Vacant(slot) => {
                slot.insert(request.clone());
            }
        }
        self.feed.send(Change::Approval(request.id.clone()));
        Ok(())
    }

    async fn approval(&self, id: &str) -> Result<Option<crate::types::ApprovalRecord>, StoreError> {
        Ok(self.shared.lock().approvals.get(id).cloned())
    }

    async fn approvals(
        &self,
        filter: &crate::types::ApprovalFilter,
    ) -> Result<Vec<crate::types::ApprovalRecord>, StoreError> {
        let matching = self
            .shared
            .lock()
            .approvals
            .values()
            .filter(|r| crate::approvals::matches(r, filter))
            .cloned()
            .collect();
        Ok(crate::approvals::newest_first(matching, filter.limit))
    }

    async fn swap_approval(
        &self,
        request: &crate::types::ApprovalRecord,
        expected: u64,
    ) -> Result<bool, StoreError> {
        {
            let mut state = self.shared.lock();
            let Some(slot) = state.approvals.get_mut(&request.id) else {
                return Ok(false);
            };
            if slot.version != expected {
                return Ok(false);
            }
            slot.state = request.state.clone();
            slot.body = request.body.clone();
            slot.version = expected + 1;
        }
        self.feed.send(Change::Approval(request.id.clone()));
        Ok(true)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    async fn heartbeat(&self, replica: &Replica) -> Result<(), StoreError> {
        self.shared.lock().kills.heartbeat(replica);
        Ok(())
    }

    async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        Ok(self.shared.lock().kills.replicas())
    }

    async fn put_kill(&self, kill: &KillRecord) -> Result<(), StoreError> {
        self.shared.lock().kills.put_kill(kill)?;
        self.feed.send(Change::Kill(kill.id.clone()));
        Ok(())
    }

    async fn kill(&self, id: &str) -> Result<Option<KillRecord>, StoreError> {
        Ok(self.shared.lock().kills.kill(id))
    }

    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError> {
        Ok(self.shared.lock().kills.kills())
    }

    async fn ack_kill(
        &self,
        kill_id: &str,
        replica_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.shared.lock().kills.ack(kill_id, replica_id, at_ms);
        Ok(())
    }

    async fn kill_acks(&self, kill_id: &str) -> Result<Vec<KillAck>, StoreError> {
        Ok(self.shared.lock().kills.acks(kill_id))
    }
}
