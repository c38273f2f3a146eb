//! Warden's durable store: the tamper-evident audit chain, mission state, mission grants,
//! revocations and breakers, behind one [`Store`] trait with three backends chosen by URL:
//!
//! | URL | backend |
//! | --- | --- |
//! | `memory:` | process memory, gone at exit (tests, dry runs) |
//! | `sqlite://PATH` (or `sqlite:PATH`) | one file, WAL journal, `synchronous=FULL`: an append is on disk when it returns; the file is created if missing |
//! | `postgres://…` (or `postgresql://…`) | many replicas on one database; changes reach every replica by `LISTEN/NOTIFY` |
//!
//! [`open`] runs the versioned migrations (also available alone as [`migrate`]). A file that
//! is not a database, or a schema newer than this release, is an error at open, never a reset.
//!
//! # The audit chain
//!
//! Records are appended with [`Store::append`] and numbered `seq = 1, 2, 3, …`. Appends from
//! many tasks are batched by one writer task into one transaction (group commit); an append
//! returns only after its transaction committed. On PostgreSQL the batch transaction locks a
//! one-row head table (`SELECT … FOR UPDATE`), so replicas writing at once still build one
//! linear chain.
//!
//! ## Canonical encoding and hash
//!
//! A record's hash is
//!
//! ```text
//! hash(seq) = SHA-256( canonical(record) || prev_hash )
//! ```
//!
//! where `prev_hash` is the raw 32 bytes of the previous record's hash (32 zero bytes for
//! `seq = 1`) and `canonical(record)` is the UTF-8 JSON text of this object:
//!
//! ```text
//! {"agent":A,"at_ms":T,"body":B,"decision_id":D,"kind":K,"mission_id":M,
//!  "outcome":O,"principal":P,"seq":S,"tool":X,"v":1}
//! ```
//!
//! (shown on two lines; there is no whitespace at all). `A`, `D`, `M`, `O`, `P`, `X` are JSON
//! strings or `null`; `T` (Unix milliseconds, from the caller) and `S` are integers in
//! decimal; `K` is the kind's name (`decision`, `outcome`, `approval`, `breaker`, `kill`,
//! `admin`, `grant`); `B` is the body. JSON is written canonically, recursively:
//!
//! - objects: members in ascending order of their keys' UTF-8 bytes, `{"k":v,…}`, no
//!   whitespace anywhere;
//! - arrays in their order, `[a,b]`; `true`, `false`, `null`;
//! - strings: UTF-8 as is, except `"` → `\"`, `\` → `\\`, and control characters U+0000 to
//!   U+001F: `\b \t \n \f \r` for those five, `\u00XX` (lowercase hex) for the others; nothing
//!   else is escaped (not `/`, not non-ASCII);
//! - integers (JSON numbers without fraction or exponent that fit in `i64` or `u64`) in
//!   decimal (`-5`, `18446744073709551615`); every other number is an IEEE 754 double, written
//!   with the fewest significant digits that read back as the same double: in plain decimal
//!   with at least one digit after the point when `1e-5 <= |x| < 1e16` (`1.0`, `0.1`, `-0.0`,
//!   `0.00001`, `1000000000000000.0`), otherwise in exponent form with a signed exponent
//!   (`1e-6`, `1e+16`, `1.2345678901234568e+17`). An integer beyond 64 bits is such a double.
//!
//! The body is canonicalised once, when the record is appended, and stored as that text
//! (`body` column); the hash covers the stored bytes. A verifier therefore never re-serialises
//! a body: it splices the stored text in as `B` and recomputes the hash from the stored columns
//! alone. The rules are those of `serde_json`'s compact writer over sorted keys; they are close
//! to RFC 8785 (JCS) but not the same for numbers that are not integers and for keys outside
//! the Basic Multilingual Plane.
//!
//! ## Checkpoints
//!
//! Every [`AuditConfig::checkpoint_every`] records or [`AuditConfig::checkpoint_seconds`]
//! seconds, the writer makes a [`Checkpoint`] `{seq, hash, at_ms, key_id, signature}`, stores
//! it in the database and appends it as one JSON line to [`AuditConfig::checkpoint_file`]
//! (synced). A checkpoint due by count is stored in the transaction of the batch that reaches
//! it; its outside copy is written right after the commit by a task of its own, in order, so
//! no append waits for the file. [`Store::checkpoint_now`] returns only once every checkpoint
//! before it is on disk outside too. The Ed25519 signature covers the UTF-8 text
//!
//! ```text
//! warden-audit-checkpoint/v1\n{seq}\n{hash as 64 lowercase hex}\n{at_ms}\n{key_id}
//! ```
//!
//! and `key_id` is the first 16 hex characters of SHA-256 of the 32-byte public key. Keys are
//! PKCS#8 (private) and SPKI (public) PEM files, as OpenSSL writes them for Ed25519.
//!
//! ## Verifying
//!
//! [`verify`] reads the chain in pages from the start and names the first bad record with its
//! fault: edited, deleted, inserted, reordered, truncated (the store ends before a checkpoint
//! kept outside), a checkpoint that does not match the record at its seq, a bad signature, or
//! a checkpoint in the database that differs from the one kept outside.
//!
//! # Mission state
//!
//! Per mission: taint (labels with their sources), opaque data the engine owns, budgets.
//! [`Store::absorb`] merges (never loses what another replica added), [`Store::spend`] is one
//! conditional statement (two replicas cannot both spend the last unit), revocations and breaker
//! states are rows. No lock outlives the statement or transaction that takes it.
//!
//! # Mission grants
//!
//! A mission a person grants is recorded with [`Store::put_grant`] as a [`GrantRecord`]: who
//! granted which template to which agent for whom, how they authenticated, until when, and
//! the SHA-256 of the token (never the token). One grant per mission id: a second is
//! [`StoreError::Conflict`]. [`Store::grants`] lists them by agent, principal and expiry,
//! newest first.
//!
//! # Replicas and the kill switch
//!
//! Each replica registers with [`Store::heartbeat`] and writes it again every few seconds;
//! [`Store::replicas`] lists them with their last heartbeat. A kill ([`KillRecord`]: scope, who,
//! why, when) is recorded with [`Store::put_kill`], which announces [`Change::Kill`] on the
//! feed; each replica that made it hold there records [`Store::ack_kill`], and the thrower
//! reads [`Store::kill_acks`].
//!
//! # Change feed
//!
//! [`Store::subscribe`] gives every [`Change`] (revocations, breakers, mission taint and data)
//! made from then on. On PostgreSQL each write sends `pg_notify` in its own statement or
//! transaction, and every store listens, so a change reaches every replica well within a
//! second; if the listening connection drops, subscribers get [`Change::Resync`] (reload what
//! you cache) while it reconnects. On memory and SQLite the feed is in-process only.
//!
//! # Failing closed
//!
//! Every operation has a deadline; an unreachable or full database is
//! [`StoreError::Unavailable`], quickly. The same store value works again once the database is
//! back: pools reconnect, and the writer re-reads the chain's head in every batch.

mod approvals;
mod audit;
mod canonical;
mod checkpoint;
mod error;
mod feed;
mod grants;
mod journal;
mod memory;
mod migrations;
mod mission;
mod postgres;
mod replicas;
mod sqlite;
mod types;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::broadcast;

pub use canonical::{canonical_string, hash_of, record_bytes, record_hash, RECORD_VERSION};
pub use checkpoint::{
    generate_keypair, key_id, load_signing_key, load_verifying_key, make_checkpoint, read_outside,
    save_signing_key, save_verifying_key, signed_message, verify_checkpoint, AuditConfig,
    KeySource,
};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::StoreError;
pub use mission::{merge_sources, MAX_LABEL_BYTES, MAX_SOURCES_PER_LABEL};
pub use replicas::{KillAck, KillRecord, Replica};
pub use types::{
    ApprovalFilter, ApprovalRecord, AuditColumns, AuditInput, AuditKind, AuditRecord,
    AuditRecordMeta, Backend, Budget, Change, Checkpoint, Exhausted, GrantFilter, GrantRecord,
    Hash, MissionState, Revocation, Taint,
};
pub use verify::{verify, Fault, FaultKind, VerifyOptions, VerifyReport};

/// The most records [`Store::audit_range`] returns at once.
pub const MAX_PAGE: u32 = 10_000;

/// The durable state of Warden. Used as `Arc<dyn Store>`; every method is safe to call from
/// many tasks at once, and on PostgreSQL from many replicas at once.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Whether the database answers (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Appends records to the audit chain and returns their places, in order, once they are
    /// committed (durable).
    async fn append(&self, records: Vec<AuditInput>) -> Result<Vec<AuditRecordMeta>, StoreError>;

    /// Makes a checkpoint of the chain's tail now; none when the chain is empty.
    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError>;

    /// Up to `limit` records (at most [`MAX_PAGE`]) with `seq >= from_seq`, in order.
    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// The record with this sequence number.
    async fn audit_get(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError>;

    /// Every record of one decision (the decision, then its outcome, …), in order.
    async fn audit_by_decision(&self, decision_id: &str) -> Result<Vec<AuditRecord>, StoreError>;

    /// The last sequence number (0 when the chain is empty).
    async fn audit_tail_seq(&self) -> Result<u64, StoreError>;

    /// The sequence number of the record whose stored hash is `hash` (the lowest, if several).
    /// Verification uses it to tell an insertion from a reordering.
    async fn audit_seq_of_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError>;

    /// Every checkpoint kept in the database, by sequence number.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError>;

    /// A mission's state (empty if never seen).
    async fn load_mission(&self, mission_id: &str) -> Result<MissionState, StoreError>;

    /// Adds labels with their sources to a mission's taint: a union with what is there.
    async fn absorb(&self, mission_id: &str, taint: &Taint) -> Result<(), StoreError>;

    /// Sets one entry of a mission's opaque data (counters, history).
    async fn put_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError>;

    /// Replaces one entry of a mission's data if its version is still `expected` (0: the entry
    /// does not exist), and returns its new version; `None` when another writer changed it
    /// first, and then nothing is written. Writers that read, merge and swap this way never
    /// lose each other's changes.
    async fn swap_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
        expected: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// Appends events to a mission's journal, in order, and returns the sequence number of
    /// the last (a mission's numbers start at 1 and have no gaps). Events of one mission become
    /// visible to readers in sequence order, on every replica.
    async fn journal_append(&self, mission_id: &str, events: &[Value]) -> Result<u64, StoreError>;

    /// The events of a mission's journal after sequence number `after`, in order, at most
    /// `limit` of them.
    async fn journal_since(
        &self,
        mission_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Value)>, StoreError>;

    /// Drops the events of a mission's journal up to and including `upto` (a snapshot of the
    /// state covers them).
    async fn journal_prune(&self, mission_id: &str, upto: u64) -> Result<(), StoreError>;

    /// Spends `amount` of a mission's budget if `spent + amount <= limit`, atomically, and
    /// returns what remains; otherwise spends nothing and says how much was spent.
    async fn spend(
        &self,
        mission_id: &str,
        budget: &str,
        amount: u64,
        limit: u64,
    ) -> Result<Result<u64, Exhausted>, StoreError>;

    /// Revokes a mission. Revoking it again keeps the first reason.
    async fn revoke(&self, mission_id: &str, reason: &str) -> Result<(), StoreError>;

    /// The revocation of a mission, if it was revoked.
    async fn is_revoked(&self, mission_id: &str) -> Result<Option<Revocation>, StoreError>;

    /// Every revocation, by mission id.
    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError>;

    /// Sets a breaker's state (opaque JSON).
    async fn set_breaker(&self, key: &str, state: &Value) -> Result<(), StoreError>;

    /// Every breaker's state, by key.
    async fn breakers(&self) -> Result<BTreeMap<String, Value>, StoreError>;

    /// Records a grant. A second grant with the same mission id is
    /// [`StoreError::Conflict`], and nothing is written: the first grant stays as it was.
    async fn put_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;

    /// The grant of a mission, if one was recorded.
    async fn grant(&self, mission_id: &str) -> Result<Option<GrantRecord>, StoreError>;

    /// The grants matching `filter`, newest first: by `granted_at_ms` descending, then by
    /// `mission_id` descending (byte order), so the order is the same on every backend.
    async fn grants(&self, filter: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError>;

    /// Records a new approval request (its `version` is 1). A second request with the same id
    /// is [`StoreError::Conflict`]. Sends [`Change::Approval`].
    async fn put_approval(&self, request: &ApprovalRecord) -> Result<(), StoreError>;

    /// The approval request with this id.
    async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;

    /// The approval requests matching `filter`, newest first (by `created_at_ms`, then id).
    async fn approvals(&self, filter: &ApprovalFilter) -> Result<Vec<ApprovalRecord>, StoreError>;

    /// Replaces the state and body of a request if its version is still `expected`, and makes
    /// its version `expected + 1`; false when another writer changed it first (nothing is
    /// written then). Sends [`Change::Approval`] when written. This is how an approval is
    /// answered, and used exactly once.
    async fn swap_approval(
        &self,
        request: &ApprovalRecord,
        expected: u64,
    ) -> Result<bool, StoreError>;

    /// Changes made by this or any other replica from now on.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// Registers a replica, or writes its heartbeat again: its name and `heartbeat_at_ms`
    /// are updated, its `started_at_ms` is kept from the first call.
    async fn heartbeat(&self, replica: &Replica) -> Result<(), StoreError>;

    /// Every replica that ever wrote a heartbeat, by id (see [`Replica::live_at`]).
    async fn replicas(&self) -> Result<Vec<Replica>, StoreError>;

    /// Records a kill and announces it to every replica ([`Change::Kill`] with its id). A
    /// second kill with the same id is [`StoreError::Conflict`], and nothing is written.
    async fn put_kill(&self, kill: &KillRecord) -> Result<(), StoreError>;

    /// The kill with this id.
    async fn kill(&self, id: &str) -> Result<Option<KillRecord>, StoreError>;

    /// Every kill, oldest first (by `at_ms`, then id).
    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError>;

    /// Records that a replica confirmed a kill holds there; again is nothing (the first time
    /// is kept).
    async fn ack_kill(&self, kill_id: &str, replica_id: &str, at_ms: i64)
        -> Result<(), StoreError>;

    /// The confirmations of a kill, by replica id.
    async fn kill_acks(&self, kill_id: &str) -> Result<Vec<KillAck>, StoreError>;
}

/// What a URL names.
enum Target {
    Memory,
    Sqlite(String),
    Postgres(String),
}

fn parse_url(url: &str) -> Result<Target, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url == "memory:" || url == "memory://" {
        Ok(Target::Memory)
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err(invalid("name a file: `sqlite://PATH`"));
        }
        Ok(Target::Sqlite(path.to_string()))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Target::Postgres(url.to_string()))
    } else {
        Err(invalid(
            "use `memory:`, `sqlite://PATH` or `postgres://USER@HOST/DATABASE`",
        ))
    }
}

/// Opens the store named by `url` with default checkpoints (see [`AuditConfig`]), running
/// its migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with(url, AuditConfig::default()).await
}

/// Opens the store named by `url`, running its migrations, with `config` for the audit chain.
pub async fn open_with(url: &str, config: AuditConfig) -> Result<Arc<dyn Store>, StoreError> {
    let key = config.load_key()?;
    match parse_url(url)? {
        Target::Memory => Ok(Arc::new(memory::MemoryStore::new(config, key))),
        Target::Sqlite(path) => Ok(Arc::new(
            sqlite::SqliteStore::open(&path, config, key).await?,
        )),
        Target::Postgres(url) => Ok(Arc::new(postgres::PgStore::open(&url, config, key).await?)),
    }
}

/// Runs the migrations of the store named by `url` and returns the schema version it is at.
pub async fn migrate(url: &str) -> Result<i64, StoreError> {
    match parse_url(url)? {
        Target::Memory => Ok(migrations::LATEST),
        Target::Sqlite(path) => sqlite::migrate(&path).await,
        Target::Postgres(url) => postgres::migrate(&url).await,
    }
}
