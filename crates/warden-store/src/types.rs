//! The values the store takes and gives back.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// A SHA-256 digest: a record's hash, or the hash of the record before it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first record: 32 zero bytes.
    pub const ZERO: Hash = Hash([0; 32]);

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hexadecimal characters.
    pub fn from_hex(text: &str) -> Result<Hash, StoreError> {
        let bytes = hex::decode(text)
            .map_err(|e| StoreError::Invalid(format!("hash `{text}` is not hexadecimal: {e}")))?;
        Hash::from_slice(&bytes)
    }

    /// Takes exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, StoreError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| StoreError::Invalid(format!("a hash has 32 bytes, not {}", bytes.len())))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// What an audit record is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditKind {
    /// A decision: allow, deny or ask.
    Decision,
    /// The outcome of a forwarded call: result, upstream error, timeout, cancellation.
    Outcome,
    /// An approval given or refused.
    Approval,
    /// A breaker tripped or reset.
    Breaker,
    /// The kill switch.
    Kill,
    /// An administrative action.
    Admin,
    /// A mission granted, narrowed or revoked.
    Grant,
    /// A kind this release does not know: written by a newer release, or edited.
    Other(String),
}

impl AuditKind {
    /// The name stored in the database and hashed: `decision`, `outcome`, `approval`,
    /// `breaker`, `kill`, `admin`, `grant`, or the other name as it is.
    pub fn as_str(&self) -> &str {
        match self {
            AuditKind::Decision => "decision",
            AuditKind::Outcome => "outcome",
            AuditKind::Approval => "approval",
            AuditKind::Breaker => "breaker",
            AuditKind::Kill => "kill",
            AuditKind::Admin => "admin",
            AuditKind::Grant => "grant",
            AuditKind::Other(name) => name,
        }
    }

    /// The kind of a stored name (the inverse of [`AuditKind::as_str`]).
    pub fn from_name(name: &str) -> AuditKind {
        match name {
            "decision" => AuditKind::Decision,
            "outcome" => AuditKind::Outcome,
            "approval" => AuditKind::Approval,
            "breaker" => AuditKind::Breaker,
            "kill" => AuditKind::Kill,
            "admin" => AuditKind::Admin,
            "grant" => AuditKind::Grant,
            other => AuditKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(AuditKind::from_name(&String::deserialize(deserializer)?))
    }
}

/// The indexed columns of a record, beside its body. All of them are covered by the hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditColumns {
    /// The decision this record belongs to (a decision and its outcome share it).
    pub decision_id: Option<String>,
    /// The mission the call ran under.
    pub mission_id: Option<String>,
    /// The person (or service) the agent acts for.
    pub principal: Option<String>,
    /// The agent.
    pub agent: Option<String>,
    /// The tool, as `server/tool`.
    pub tool: Option<String>,
    /// The decision (`allow`, `deny`, `ask`) or the outcome (`result`, `error`, …).
    pub outcome: Option<String>,
}

/// One record to append.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditInput {
    /// What it is about.
    pub kind: AuditKind,
    /// When it happened, in Unix milliseconds, as the caller's clock says. The store reads no
    /// clock for anything the hash covers.
    pub at_ms: i64,
    /// The indexed columns.
    #[serde(flatten)]
    pub columns: AuditColumns,
    /// Everything else: reasons, exposure, labels with their sources, call digest, policy
    /// version. Any JSON value.
    pub body: Value,
}

/// Where an appended record landed in the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecordMeta {
    /// Its sequence number: 1 for the first record, then one more for each.
    pub seq: u64,
    /// Its hash (see the crate docs for what it covers).
    pub hash: Hash,
}

/// A stored record, as read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its sequence number.
    pub seq: u64,
    /// What it is about.
    pub kind: AuditKind,
    /// When it happened (Unix milliseconds, the caller's clock).
    pub at_ms: i64,
    /// The indexed columns.
    #[serde(flatten)]
    pub columns: AuditColumns,
    /// The body, parsed (a stored text that is not JSON any more is read as a JSON string).
    pub body: Value,
    /// The body exactly as stored: its canonical JSON text, written once when the record was
    /// appended. The hash covers these bytes, so verification never re-serialises anything.
    #[serde(skip)]
    pub body_text: String,
    /// The hash of the record before it ([`Hash::ZERO`] for the first).
    pub prev_hash: Hash,
    /// Its hash as stored.
    pub hash: Hash,
}

/// A signed statement that the chain had `hash` at `seq`, kept in the database and outside it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number of the last record covered.
    pub seq: u64,
    /// That record's hash.
    pub hash: Hash,
    /// When the checkpoint was made (Unix milliseconds, the store's clock; not hashed in the
    /// chain, but signed).
    pub at_ms: i64,
    /// The id of the signing key (see [`crate::key_id`]); none when no key is configured.
    pub key_id: Option<String>,
    /// The Ed25519 signature, 128 hexadecimal characters; none when no key is configured.
    pub signature: Option<String>,
}

/// A budget of a mission: how much was spent, against which limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Spent so far.
    pub spent: u64,
    /// The limit the last successful spend was checked against.
    pub limit: u64,
}

/// The labels a mission has read, each with the sources it came from (a set of JSON values,
/// deduplicated and ordered by their canonical text).
pub type Taint = BTreeMap<String, Vec<Value>>;

/// What the store keeps about one mission. A mission never seen is empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MissionState {
    /// The labels it has read, with their sources.
    pub taint: Taint,
    /// Counters and history, opaque to the store: the engine owns them.
    pub data: BTreeMap<String, Value>,
    /// The version of each data entry: 1 when first written, one more at each write (see
    /// [`crate::Store::swap_mission_data`]).
    #[serde(default)]
    pub versions: BTreeMap<String, u64>,
    /// Its budgets by name.
    pub budgets: BTreeMap<String, Budget>,
}

impl MissionState {
    /// Writes one data entry and bumps its version; returns the new version.
    pub(crate) fn put(&mut self, key: &str, value: &Value) -> u64 {
        self.data.insert(key.to_string(), value.clone());
        let version = self.versions.entry(key.to_string()).or_insert(0);
        *version += 1;
        *version
    }
}

/// A spend refused: it would go over the limit. Nothing was spent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exhausted {
    /// The budget.
    pub budget: String,
    /// Spent so far.
    pub spent: u64,
    /// What was asked for.
    pub requested: u64,
    /// The limit.
    pub limit: u64,
}

/// A revoked mission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The mission.
    pub mission_id: String,
    /// Why, in the words of whoever revoked it.
    pub reason: String,
    /// When (Unix milliseconds, the store's clock).
    pub at_ms: i64,
}

/// A mission a person granted (the token itself is never stored, only its digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// The mission's id, as in its token; one grant per id.
    pub mission_id: String,
    /// The mission template it was granted from.
    pub template: String,
    /// The agent it was granted to.
    pub agent: String,
    /// The person (or service) the agent acts for under it.
    pub principal: String,
    /// The purpose, in the words of whoever granted it.
    pub purpose: String,
    /// The authenticated user who made the grant.
    pub granted_by: String,
    /// How they authenticated (`local`, `jwt`, `proxy`).
    pub auth: String,
    /// When it was granted (Unix milliseconds, the granter's clock).
    pub granted_at_ms: i64,
    /// When it expires (Unix milliseconds): it is expired from this instant on.
    pub expires_at_ms: i64,
    /// The narrowing made at the grant, as JSON.
    pub narrowing: Option<Value>,
    /// Hex SHA-256 of the mission token.
    pub token_digest: String,
    /// The mission it narrows, for grants of attenuated tokens recorded by Warden.
    pub parent: Option<String>,
}

/// Which grants to list (see [`crate::Store::grants`]). The default lists them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantFilter {
    /// Only grants to this agent, when set.
    pub agent: Option<String>,
    /// Only grants for this principal, when set.
    pub principal: Option<String>,
    /// Only grants not expired at this time (Unix milliseconds), when set: those with
    /// `expires_at_ms > live_at_ms`.
    pub live_at_ms: Option<i64>,
    /// At most this many, newest first (0: no limit).
    pub limit: u32,
}

/// A call held for a person's approval, as stored (see [`crate::Store::put_approval`]). The
/// store keeps the columns it filters on; what the request says is the enforcer's, in `body`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The request's id.
    pub id: String,
    /// What it is bound to: a digest of the agent, the principal, the mission chain, the
    /// canonical call and the policy version.
    pub digest: String,
    /// `pending`, `approved`, `denied`, `used` or `cancelled`.
    pub state: String,
    /// The agent that made the call.
    pub agent: String,
    /// The person it acts for.
    pub principal: String,
    /// The mission it runs under.
    pub mission_id: String,
    /// `server.tool`.
    pub tool: String,
    /// When it was made (Unix milliseconds).
    pub created_at_ms: i64,
    /// When it lapses unanswered or unused (Unix milliseconds).
    pub expires_at_ms: i64,
    /// Grows by one with every change, from 1.
    pub version: u64,
    /// The request itself (reasons, exposure, holds, answers).
    pub body: Value,
}

/// Which approval requests to list (see [`crate::Store::approvals`]). The default lists all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalFilter {
    /// Only requests in this state, when set.
    pub state: Option<String>,
    /// Only requests bound to this digest, when set.
    pub digest: Option<String>,
    /// Only requests of this principal's missions, when set.
    pub principal: Option<String>,
    /// At most this many, newest first (0: no limit).
    pub limit: u32,
}

/// A change other replicas must act on, from [`crate::Store::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", content = "id", rename_all = "snake_case")]
pub enum Change {
    /// A mission was revoked.
    Revoked(String),
    /// A breaker's state changed.
    Breaker(String),
    /// A mission's taint or data changed.
    Mission(String),
    /// An approval request was made, answered, used or cancelled (its id).
    Approval(String),
    /// The kill switch was thrown (the kill's id): every replica stops the scope and says so.
    Kill(String),
    /// Changes may have been missed (the feed lagged or reconnected): reload what you cache.
    Resync,
}

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// In process memory; gone at exit.
    Memory,
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}
