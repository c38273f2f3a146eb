//! Shared set-up of the fuzz targets: the Acme configuration in memory, its engine, and a
//! gateway in front of the in-process Acme servers, each built once per process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rmcp::ServiceExt;
use serde_json::Value;
use warden_core::config::MemorySources;
use warden_core::{Config, Engine};
use warden_enforce::Enforcer;
use warden_mcp::{Connector, Gateway, GatewaySettings, UpstreamSettings};
use warden_store::{
    AuditInput, AuditRecord, AuditRecordMeta, Backend, Change, Checkpoint, Exhausted, GrantFilter,
    GrantRecord, Hash, KillAck, KillRecord, MissionState, Replica, Revocation, Store, StoreError,
    Taint,
};

/// The Acme configuration files, by path relative to `warden.toml`.
pub const ACME_FILES: &[(&str, &str)] = &[
    (
        "warden.toml",
        include_str!("../../examples/acme/warden.toml"),
    ),
    (
        "catalog.toml",
        include_str!("../../examples/acme/catalog.toml"),
    ),
    (
        "missions.toml",
        include_str!("../../examples/acme/missions.toml"),
    ),
    (
        "directory.json",
        include_str!("../../examples/acme/directory.json"),
    ),
    (
        "policies/default.cedar",
        include_str!("../../examples/acme/policies/default.cedar"),
    ),
    (
        "policies/people.cedar",
        include_str!("../../examples/acme/policies/people.cedar"),
    ),
    (
        "approvers/default.cedar",
        include_str!("../../examples/acme/approvers/default.cedar"),
    ),
];

/// The small configuration in `fuzz/base/` that the config_loader target starts from: each
/// file of the Acme kind, with a few tools, people and policies, so that one load takes
/// milliseconds (the Acme configuration generates 12,194 people on every load).
pub const BASE_FILES: &[(&str, &str)] = &[
    ("warden.toml", include_str!("../base/warden.toml")),
    ("catalog.toml", include_str!("../base/catalog.toml")),
    ("missions.toml", include_str!("../base/missions.toml")),
    ("directory.json", include_str!("../base/directory.json")),
    (
        "policies/default.cedar",
        include_str!("../base/policies/default.cedar"),
    ),
];

/// The Acme files in memory, with `path` replaced by `text` when given.
pub fn acme_sources(replace: Option<(&str, String)>) -> MemorySources {
    sources_of(ACME_FILES, replace)
}

/// `files` in memory, with `path` replaced by `text` when given.
pub fn sources_of(files: &[(&str, &str)], replace: Option<(&str, String)>) -> MemorySources {
    let mut files: BTreeMap<String, String> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    if let Some((path, text)) = replace {
        files.insert(path.to_string(), text);
    }
    MemorySources(files)
}

/// Load a configuration from memory sources, `warden.toml` first.
pub fn load(sources: &MemorySources) -> Result<Config, warden_core::error::ConfigError> {
    let text = sources.0.get("warden.toml").cloned().unwrap_or_default();
    Config::load("warden.toml", &text, sources)
}

/// The Acme engine.
pub fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(Engine::new(load(&acme_sources(None)).unwrap())))
        .clone()
}

/// One single-threaded runtime for the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A store that keeps nothing: fuzzing makes millions of decisions. Appends succeed with
/// growing sequence numbers (journals too, per mission), mission data swaps always succeed, and reads find nothing.
#[derive(Debug, Default)]
pub struct Discard {
    seq: std::sync::atomic::AtomicU64,
    journal: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    feed: OnceLock<tokio::sync::broadcast::Sender<Change>>,
}

#[async_trait::async_trait]
impl Store for Discard {
    fn backend(&self) -> Backend {
        Backend::Memory
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn append(&self, records: Vec<AuditInput>) -> Result<Vec<AuditRecordMeta>, StoreError> {
        use std::sync::atomic::Ordering;
        Ok(records
            .iter()
            .map(|_| AuditRecordMeta {
                seq: self.seq.fetch_add(1, Ordering::Relaxed) + 1,
                hash: Hash::ZERO,
            })
            .collect())
    }
    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        Ok(None)
    }
    async fn audit_range(&self, _: u64, _: u32) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn audit_get(&self, _: u64) -> Result<Option<AuditRecord>, StoreError> {
        Ok(None)
    }
    async fn audit_by_decision(&self, _: &str) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn audit_tail_seq(&self) -> Result<u64, StoreError> {
        Ok(self.seq.load(std::sync::atomic::Ordering::Relaxed))
    }
    async fn audit_seq_of_hash(&self, _: &Hash) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(Vec::new())
    }
    async fn journal_append(&self, mission: &str, events: &[Value]) -> Result<u64, StoreError> {
        let mut heads = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        let head = heads.entry(mission.to_string()).or_default();
        *head += events.len() as u64;
        Ok(*head)
    }
    async fn journal_since(&self, _: &str, _: u64, _: u32) -> Result<Vec<(u64, Value)>, StoreError> {
        Ok(Vec::new())
    }
    async fn journal_prune(&self, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn load_mission(&self, _: &str) -> Result<MissionState, StoreError> {
        Ok(MissionState::default())
    }
    async fn absorb(&self, _: &str, _: &Taint) -> Result<(), StoreError> {
        Ok(())
    }
    async fn put_mission_data(&self, _: &str, _: &str, _: &Value) -> Result<(), StoreError> {
        Ok(())
    }
    async fn swap_mission_data(
        &self,
        _: &str,
        _: &str,
        _: &Value,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        Ok(Some(expected + 1))
    }
    async fn spend(
        &self,
        _: &str,
        _: &str,
        _: u64,
        limit: u64,
    ) -> Result<Result<u64, Exhausted>, StoreError> {
        Ok(Ok(limit))
    }
    async fn revoke(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn is_revoked(&self, _: &str) -> Result<Option<Revocation>, StoreError> {
        Ok(None)
    }
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        Ok(Vec::new())
    }
    async fn set_breaker(&self, _: &str, _: &Value) -> Result<(), StoreError> {
        Ok(())
    }
    async fn breakers(&self) -> Result<BTreeMap<String, Value>, StoreError> {
        Ok(BTreeMap::new())
    }
    async fn put_grant(&self, _: &GrantRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn grant(&self, _: &str) -> Result<Option<GrantRecord>, StoreError> {
        Ok(None)
    }
    async fn grants(&self, _: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn put_approval(&self, _: &warden_store::ApprovalRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn approval(&self, _: &str) -> Result<Option<warden_store::ApprovalRecord>, StoreError> {
        Ok(None)
    }
    async fn approvals(
        &self,
        _: &warden_store::ApprovalFilter,
    ) -> Result<Vec<warden_store::ApprovalRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn swap_approval(
        &self,
        _: &warden_store::ApprovalRecord,
        _: u64,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.feed
            .get_or_init(|| tokio::sync::broadcast::channel(1).0)
            .subscribe()
    }
    async fn heartbeat(&self, _: &Replica) -> Result<(), StoreError> {
        Ok(())
    }
    async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        Ok(Vec::new())
    }
    async fn put_kill(&self, _: &KillRecord) -> Result<(), StoreError> {
        Ok(())
    }
    async fn kill(&self, _: &str) -> Result<Option<KillRecord>, StoreError> {
        Ok(None)
    }
    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn ack_kill(&self, _: &str, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn kill_acks(&self, _: &str) -> Result<Vec<KillAck>, StoreError> {
        Ok(Vec::new())
    }
}

/// The enforcement pipeline for the Acme engine on a [`Discard`] store.
pub async fn enforcer() -> Arc<Enforcer> {
    Enforcer::start(engine(), Arc::new(Discard::default()))
        .await
        .unwrap()
}

/// A gateway in front of every Acme server, in process, logging to [`Discard`].
pub fn acme_gateway() -> Arc<Gateway> {
    static GATEWAY: OnceLock<Arc<Gateway>> = OnceLock::new();
    GATEWAY
        .get_or_init(|| {
            runtime().block_on(async {
                let acme = warden_acme::AcmeServer::new();
                let upstreams = warden_acme::SERVERS
                    .iter()
                    .map(|s| {
                        let view = acme.subset(Some(s)).unwrap();
                        let connector: Connector = Arc::new(move || {
                            let handler = view.clone();
                            let (ours, theirs) = tokio::io::duplex(256 * 1024);
                            tokio::spawn(async move {
                                if let Ok(running) = handler.serve(theirs).await {
                                    let _ = running.waiting().await;
                                }
                            });
                            Ok(ours)
                        });
                        UpstreamSettings::in_process(*s, connector)
                    })
                    .collect();
                let mut settings = GatewaySettings {
                    upstreams,
                    ..GatewaySettings::default()
                };
                // The seeds name their identity in headers, so that inputs reach the MCP
                // paths behind the authentication layer (mission tokens are tested elsewhere).
                settings.serve.insecure_identity = true;
                Gateway::start(enforcer().await, settings).await
            })
        })
        .clone()
}
