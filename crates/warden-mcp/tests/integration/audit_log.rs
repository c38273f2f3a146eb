//! The decisions a test gateway recorded, read back from its in-memory store's audit chain, and
//! a store whose appends can be made to fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;
use warden_core::{Decision, Engine};
use warden_enforce::Enforcer;
use warden_mcp::{Gateway, GatewaySettings};
use warden_store::{
    AuditInput, AuditKind, AuditRecord, AuditRecordMeta, Backend, Change, Checkpoint, Exhausted,
    GrantFilter, GrantRecord, Hash, KillAck, KillRecord, MissionState, Replica, Revocation, Store,
    StoreError, Taint,
};

/// What kind of decision a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// A call to a tool the session was offered.
    Decision,
    /// A call to a tool it was never offered.
    Unexposed,
}

/// One decision read back (serialized as `warden audit export` prints it, without seq and hash).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    pub kind: EntryKind,
    #[serde(flatten)]
    pub decision: Decision,
}

/// One outcome read back.
#[derive(Debug, Clone)]
pub struct OutcomeEntry {
    pub decision_id: String,
    pub tool: String,
    pub outcome: String,
    pub reason: String,
}

/// A memory store whose appends fail while `failing` is set.
#[derive(Debug)]
pub struct FlakyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
}

/// The audit chain of a test gateway (an in-memory store), read synchronously.
#[derive(Debug)]
pub struct MemoryLog {
    store: Arc<FlakyStore>,
}

/// Poll a future that completes without waiting (the memory store's reads) to its end.
fn now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

impl Default for MemoryLog {
    fn default() -> Self {
        MemoryLog::new()
    }
}

impl MemoryLog {
    pub fn new() -> MemoryLog {
        let inner = now(warden_store::open("memory:")).expect("a memory store");
        MemoryLog {
            store: Arc::new(FlakyStore {
                inner,
                failing: AtomicBool::new(false),
            }),
        }
    }

    /// The store the gateway records in.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Make every append fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.store.failing.store(failing, Ordering::SeqCst);
    }

    fn records(&self) -> Vec<AuditRecord> {
        now(self.store.inner.audit_range(1, warden_store::MAX_PAGE)).unwrap_or_default()
    }

    /// Every decision, in order.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.records()
            .into_iter()
            .filter(|r| r.kind == AuditKind::Decision)
            .map(|r| LogEntry {
                kind: if r.body.get("entry").and_then(Value::as_str) == Some("unexposed") {
                    EntryKind::Unexposed
                } else {
                    EntryKind::Decision
                },
                decision: serde_json::from_value(r.body).expect("a decision record"),
            })
            .collect()
    }

    /// Every outcome, in order.
    pub fn outcomes(&self) -> Vec<OutcomeEntry> {
        self.records()
            .into_iter()
            .filter(|r| r.kind == AuditKind::Outcome)
            .map(|r| OutcomeEntry {
                decision_id: r.columns.decision_id.unwrap_or_default(),
                tool: r.columns.tool.unwrap_or_default(),
                outcome: r.columns.outcome.unwrap_or_default(),
                reason: r
                    .body
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect()
    }

    /// How many decisions.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A gateway for `engine` recording in `log`'s store, with a mission authority of its own key.
/// Most tests name their identities by headers, so these are believed
/// (`insecure_identity`); `missions.rs` holds the gateway to mission tokens with it off.
pub async fn start_gateway(
    engine: Arc<Engine>,
    mut settings: GatewaySettings,
    log: Arc<MemoryLog>,
) -> Arc<Gateway> {
    settings.serve.insecure_identity = true;
    start_gateway_as(
        engine,
        settings,
        log,
        warden_enforce::token::RootKey::generate(),
    )
    .await
}

/// [`start_gateway`] with `settings` as they are, signing mission tokens with `key`.
pub async fn start_gateway_as(
    engine: Arc<Engine>,
    settings: GatewaySettings,
    log: Arc<MemoryLog>,
    key: warden_enforce::token::RootKey,
) -> Arc<Gateway> {
    let authority = warden_enforce::grants::MissionAuthority::new(key, engine.clone(), log.store());
    let enforcer = Enforcer::start(engine, log.store())
        .await
        .expect("the enforcer starts");
    let gw = Gateway::start(enforcer, settings).await;
    gw.set_authority(Arc::new(authority));
    gw
}

#[async_trait]
impl Store for FlakyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn append(&self, records: Vec<AuditInput>) -> Result<Vec<AuditRecordMeta>, StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the test made appends fail".into()));
        }
        self.inner.append(records).await
    }
    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint_now().await
    }
    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_range(from_seq, limit).await
    }
    async fn audit_get(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
        self.inner.audit_get(seq).await
    }
    async fn audit_by_decision(&self, id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        self.inner.audit_by_decision(id).await
    }
    async fn audit_tail_seq(&self) -> Result<u64, StoreError> {
        self.inner.audit_tail_seq().await
    }
    async fn audit_seq_of_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.inner.audit_seq_of_hash(hash).await
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints().await
    }
    async fn journal_append(&self, id: &str, events: &[Value]) -> Result<u64, StoreError> {
        self.inner.journal_append(id, events).await
    }
    async fn journal_since(
        &self,
        id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        self.inner.journal_since(id, after, limit).await
    }
    async fn journal_prune(&self, id: &str, upto: u64) -> Result<(), StoreError> {
        self.inner.journal_prune(id, upto).await
    }
    async fn load_mission(&self, id: &str) -> Result<MissionState, StoreError> {
        self.inner.load_mission(id).await
    }
    async fn absorb(&self, id: &str, taint: &Taint) -> Result<(), StoreError> {
        self.inner.absorb(id, taint).await
    }
    async fn put_mission_data(&self, id: &str, key: &str, value: &Value) -> Result<(), StoreError> {
        self.inner.put_mission_data(id, key, value).await
    }
    async fn swap_mission_data(
        &self,
        id: &str,
        key: &str,
        value: &Value,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.inner.swap_mission_data(id, key, value, expected).await
    }
    async fn spend(
        &self,
        id: &str,
        budget: &str,
        amount: u64,
        limit: u64,
    ) -> Result<Result<u64, Exhausted>, StoreError> {
        self.inner.spend(id, budget, amount, limit).await
    }
    async fn revoke(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        self.inner.revoke(id, reason).await
    }
    async fn is_revoked(&self, id: &str) -> Result<Option<Revocation>, StoreError> {
        self.inner.is_revoked(id).await
    }
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.inner.revocations().await
    }
    async fn set_breaker(&self, key: &str, state: &Value) -> Result<(), StoreError> {
        self.inner.set_breaker(key, state).await
    }
    async fn breakers(&self) -> Result<BTreeMap<String, Value>, StoreError> {
        self.inner.breakers().await
    }
    async fn put_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        self.inner.put_grant(grant).await
    }
    async fn grant(&self, id: &str) -> Result<Option<GrantRecord>, StoreError> {
        self.inner.grant(id).await
    }
    async fn grants(&self, filter: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        self.inner.grants(filter).await
    }
    async fn put_approval(&self, r: &warden_store::ApprovalRecord) -> Result<(), StoreError> {
        self.inner.put_approval(r).await
    }
    async fn approval(&self, id: &str) -> Result<Option<warden_store::ApprovalRecord>, StoreError> {
        self.inner.approval(id).await
    }
    async fn approvals(
        &self,
        f: &warden_store::ApprovalFilter,
    ) -> Result<Vec<warden_store::ApprovalRecord>, StoreError> {
        self.inner.approvals(f).await
    }
    async fn swap_approval(
        &self,
        r: &warden_store::ApprovalRecord,
        expected: u64,
    ) -> Result<bool, StoreError> {
        self.inner.swap_approval(r, expected).await
    }
    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.subscribe()
    }
    async fn heartbeat(&self, replica: &Replica) -> Result<(), StoreError> {
        self.inner.heartbeat(replica).await
    }
    async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        self.inner.replicas().await
    }
    async fn put_kill(&self, kill: &KillRecord) -> Result<(), StoreError> {
        self.inner.put_kill(kill).await
    }
    async fn kill(&self, id: &str) -> Result<Option<KillRecord>, StoreError> {
        self.inner.kill(id).await
    }
    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError> {
        self.inner.kills().await
    }
    async fn ack_kill(&self, kill_id: &str, replica_id: &str, at: i64) -> Result<(), StoreError> {
        self.inner.ack_kill(kill_id, replica_id, at).await
    }
    async fn kill_acks(&self, kill_id: &str) -> Result<Vec<KillAck>, StoreError> {
        self.inner.kill_acks(kill_id).await
    }
}
