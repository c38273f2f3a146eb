//! The PostgreSQL backend: many replicas on one database.
//!
//! - The audit batch locks the one-row `audit_head` (`SELECT … FOR UPDATE`) inside its
//!   transaction, so replicas append one after the other to one linear chain.
//! - A spend is one conditional upsert; an absorb locks only the rows of its labels, merges and
//!   writes them back in one transaction.
//! - Every change is announced with `pg_notify` in the same statement or transaction as the
//!   write (delivered at commit), on a channel named after the database and schema; each store
//!   listens with a [`PgListener`] and republishes what it hears on its in-process feed.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::audit::{now_ms, seal, timed, ChainBackend, CheckpointPlan, Committed, Writer};
use crate::canonical::canonical_string;
use crate::checkpoint::AuditConfig;
use crate::error::StoreError;
use crate::feed::Feed;
use crate::migrations::{self, failed, pending};
use crate::mission::{
    check_labels, merge_sources, parse_json, parse_sources, sources_text, to_i64, to_u64,
};
use crate::replicas::{KillAck, KillRecord, Replica};
use crate::sqlite::{body_of_column, hash_of_column, RECORD_COLUMNS};
use crate::types::{
    AuditColumns, AuditInput, AuditKind, AuditRecord, AuditRecordMeta, Backend, Budget, Change,
    Checkpoint, Exhausted, GrantFilter, GrantRecord, Hash, MissionState, Revocation, Taint,
};
use crate::{Store, MAX_PAGE};

/// A fixed key for the transaction-level advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x7761_7264_656e_0001;

async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        url: redact(url),
        reason: e.to_string(),
    })?;
    PgPoolOptions::new()
        .max_connections(8)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("cannot connect to `{}`: {reason}", redact(url)))
            }
            other => other,
        })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn run_migrations(pool: &PgPool) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    // Two replicas starting at once: the second waits, then finds nothing to do.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS warden_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, checksum BYTEA NOT NULL, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM warden_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    for migration in pending(migrations::POSTGRES, &applied)? {
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(migration, e))?;
        sqlx::query(
            "INSERT INTO warden_migrations (version, name, checksum, applied_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(migration.checksum())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(migrations::LATEST)
}

/// Runs the migrations of the database at `url`.
pub(crate) async fn migrate(url: &str) -> Result<i64, StoreError> {
    let pool = connect(url).await?;
    let result = run_migrations(&pool).await;
    pool.close().await;
    result
}

/// The PostgreSQL store.
#[derive(Debug)]
pub(crate) struct PgStore {
    db: Arc<Db>,
    writer: Writer,
    feed: Feed,
    listener: JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[derive(Debug)]
struct Db {
    pool: PgPool,
    channel: String,
}

impl PgStore {
    pub(crate) async fn open(
        url: &str,
        config: AuditConfig,
        key: Option<SigningKey>,
    ) -> Result<PgStore, StoreError> {
        let pool = connect(url).await?;
        run_migrations(&pool).await?;
        let place: String =
            sqlx::query_scalar("SELECT current_database() || '.' || current_schema()")
                .fetch_one(&pool)
                .await?;
        let channel = format!(
            "warden_{}",
            &hex::encode(Sha256::digest(place.as_bytes()))[..16]
        );
        let feed = Feed::new();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&channel).await?;
        let listener = tokio::spawn(listen(listener, feed.clone()));
        let db = Arc::new(Db { pool, channel });
        let writer = Writer::spawn(db.clone(), config, key);
        Ok(PgStore {
            db,
            writer,
            feed,
            listener,
        })
    }

    fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    fn notice(&self, change: &Change) -> String {
        serde_json::to_string(change).unwrap_or_default()
    }
}

/// Republishes notifications on the in-process feed. A lost connection is reconnected by the
/// listener; since notifications sent meanwhile are lost, subscribers get [`Change::Resync`].
async fn listen(mut listener: PgListener, feed: Feed) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => match serde_json::from_str(notification.payload()) {
                Ok(change) => feed.send(change),
                Err(error) => tracing::warn!(%error, "unreadable store notification"),
            },
            Ok(None) => {
                tracing::warn!("store notifications interrupted; reconnecting");
                feed.send(Change::Resync);
            }
            Err(error) => {
                tracing::warn!(%error, "store notifications unavailable");
                feed.send(Change::Resync);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn record_of(row: &PgRow) -> Result<AuditRecord, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    let kind: String = row.try_get("kind")?;
    let prev: Vec<u8> = row.try_get("prev_hash")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    let body_text: String = row.try_get("body")?;
    Ok(AuditRecord {
        seq: to_u64(seq, "seq")?,
        kind: AuditKind::from_name(&kind),
        at_ms: row.try_get("at_ms")?,
        columns: AuditColumns {
            decision_id: row.try_get("decision_id")?,
            mission_id: row.try_get("mission_id")?,
            principal: row.try_get("principal")?,
            agent: row.try_get("agent")?,
            tool: row.try_get("tool")?,
            outcome: row.try_get("outcome")?,
        },
        body: body_of_column(&body_text),
        body_text,
        prev_hash: hash_of_column(&prev),
        hash: hash_of_column(&hash),
    })
}

/// Merges `taint` into a mission's rows in one transaction on `conn`, and announces it.
async fn absorb_on(
    conn: &mut PgConnection,
    mission_id: &str,
    taint: &Taint,
    channel: &str,
    notice: &str,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    // Labels in sorted order (a BTreeMap), so two absorbs lock rows in the same order.
    for (label, sources) in taint {
        sqlx::query(
            "INSERT INTO mission_taint (mission_id, label, sources) VALUES ($1, $2, '[]') \
             ON CONFLICT (mission_id, label) DO NOTHING",
        )
        .bind(mission_id)
        .bind(label)
        .execute(&mut *tx)
        .await?;
        let existing: String = sqlx::query_scalar(
            "SELECT sources FROM mission_taint WHERE mission_id = $1 AND label = $2 \
             FOR UPDATE",
        )
        .bind(mission_id)
        .bind(label)
        .fetch_one(&mut *tx)
        .await?;
        let merged = merge_sources(&parse_sources(&existing)?, sources);
        sqlx::query("UPDATE mission_taint SET sources = $3 WHERE mission_id = $1 AND label = $2")
            .bind(mission_id)
            .bind(label)
            .bind(sources_text(&merged))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(notice)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Stores a checkpoint on `conn` (in whatever transaction it is in).
async fn insert_checkpoint(
    conn: &mut PgConnection,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoint (seq, hash, at_ms, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(to_i64(checkpoint.seq, "seq")?)
    .bind(&checkpoint.hash.0[..])
    .bind(checkpoint.at_ms)
    .bind(checkpoint.key_id.as_deref())
    .bind(checkpoint.signature.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// Seals and inserts a batch in one transaction on `conn`, under the head row's lock.
async fn commit_on(
    conn: &mut PgConnection,
    inputs: Vec<AuditInput>,
    plan: Option<&CheckpointPlan<'_>>,
) -> Result<Committed, StoreError> {
    let mut tx = conn.begin().await?;
    let (seq, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let sealed = seal(to_u64(seq, "head seq")?, hash_of_column(&hash), inputs);
    let n = sealed.len();
    let mut seqs = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut decisions = Vec::with_capacity(n);
    let mut missions = Vec::with_capacity(n);
    let mut principals = Vec::with_capacity(n);
    let mut agents = Vec::with_capacity(n);
    let mut tools = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut prevs = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut metas = Vec::with_capacity(n);
    for record in sealed {
        seqs.push(to_i64(record.seq, "seq")?);
        kinds.push(record.input.kind.as_str().to_string());
        times.push(record.input.at_ms);
        let c = record.input.columns;
        decisions.push(c.decision_id);
        missions.push(c.mission_id);
        principals.push(c.principal);
        agents.push(c.agent);
        tools.push(c.tool);
        outcomes.push(c.outcome);
        bodies.push(record.body_text);
        prevs.push(record.prev_hash.0.to_vec());
        hashes.push(record.hash.0.to_vec());
        metas.push(AuditRecordMeta {
            seq: record.seq,
            hash: record.hash,
        });
    }
    sqlx::query(&format!(
        "INSERT INTO audit_record ({RECORD_COLUMNS}) SELECT * FROM UNNEST(\
         $1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[])"
    ))
    .bind(&seqs)
    .bind(&kinds)
    .bind(&times)
    .bind(&decisions)
    .bind(&missions)
    .bind(&principals)
    .bind(&agents)
    .bind(&tools)
    .bind(&outcomes)
    .bind(&bodies)
    .bind(&prevs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    if let Some(last) = metas.last() {
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(to_i64(last.seq, "seq")?)
            .bind(&last.hash.0[..])
            .execute(&mut *tx)
            .await?;
    }
    let checkpoint = plan.and_then(|plan| plan.make(metas.last()));
    if let Some(checkpoint) = &checkpoint {
        insert_checkpoint(&mut tx, checkpoint).await?;
    }
    tx.commit().await?;
    Ok(Committed { metas, checkpoint })
}

#[async_trait]
impl ChainBackend for Db {
    async fn commit(
        &self,
        inputs: Vec<AuditInput>,
        plan: Option<&CheckpointPlan<'_>>,
    ) -> Result<Committed, StoreError> {
        // On failure the connection is closed rather than returned to the pool (see the
        // SQLite backend): the next batch starts on a clean connection and re-reads the head.
        let mut conn = self.pool.acquire().await?;
        let result = commit_on(&mut conn, inputs, plan).await;
        if result.is_err() {
            conn.close_on_drop();
        }
        result
    }

    async fn tail(&self) -> Result<Option<AuditRecordMeta>, StoreError> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, hash FROM audit_record ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(seq, hash)| {
            Ok(AuditRecordMeta {
                seq: to_u64(seq, "seq")?,
                hash: hash_of_column(&hash),
            })
        })
        .transpose()
    }

    async fn last_checkpoint_seq(&self) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoint")
            .fetch_one(&self.pool)
            .await?;
        to_u64(seq.unwrap_or(0), "checkpoint seq")
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_checkpoint(&mut conn, checkpoint).await
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(async {
            sqlx::query("SELECT 1").execute(self.pool()).await?;
            Ok(())
        })
        .await
    }

    async fn append(&self, records: Vec<AuditInput>) -> Result<Vec<AuditRecordMeta>, StoreError> {
        self.writer.append(records).await
    }

    async fn checkpoint_now(&self) -> Result<Option<Checkpoint>, StoreError> {
        self.writer.checkpoint().await
    }

    async fn audit_range(&self, from_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        timed(async {
            let rows = sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE seq >= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(from)
            .bind(i64::from(limit.min(MAX_PAGE)))
            .fetch_all(self.pool())
            .await?;
            rows.iter().map(record_of).collect()
        })
        .await
    }

    async fn audit_get(&self, seq: u64) -> Result<Option<AuditRecord>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(None);
        };
        timed(async {
            let row = sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE seq = $1"
            ))
            .bind(seq)
            .fetch_optional(self.pool())
            .await?;
            row.as_ref().map(record_of).transpose()
        })
        .await
    }

    async fn audit_by_decision(&self, decision_id: &str) -> Result<Vec<AuditRecord>, StoreError> {
        timed(async {
            let rows = sqlx::query(&format!(
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE decision_id = $1 ORDER BY seq"
            ))
            .bind(decision_id)
            .fetch_all(self.pool())
            .await?;
            rows.iter().map(record_of).collect()
        })
        .await
    }

    async fn audit_tail_seq(&self) -> Result<u64, StoreError> {
        timed(async { Ok(self.db.tail().await?.map(|t| t.seq).unwrap_or(0)) }).await
    }

    async fn audit_seq_of_hash(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        timed(async {
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM audit_record WHERE hash = $1 ORDER BY seq LIMIT 1",
            )
            .bind(&hash.0[..])
            .fetch_optional(self.pool())
            .await?;
            seq.map(|s| to_u64(s, "seq")).transpose()
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        timed(async {
            let rows = sqlx::query(
                "SELECT seq, hash, at_ms, key_id, signature FROM audit_checkpoint \
                 ORDER BY seq, id",
            )
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|row| {
                    let hash: Vec<u8> = row.try_get("hash")?;
                    Ok(Checkpoint {
                        seq: to_u64(row.try_get("seq")?, "checkpoint seq")?,
                        hash: hash_of_column(&hash),
                        at_ms: row.try_get("at_ms")?,
                        key_id: row.try_get("key_id")?,
                        signature: row.try_get("signature")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn load_mission(&self, mission_id: &str) -> Result<MissionState, StoreError> {
        timed(async {
            // One snapshot for the three reads.
            let mut tx = self.pool().begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            let mut state = MissionState::default();
            let taint: Vec<(String, String)> =
                sqlx::query_as("SELECT label, sources FROM mission_taint WHERE mission_id = $1")
                    .bind(mission_id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (label, sources) in taint {
                state.taint.insert(label, parse_sources(&sources)?);
            }
            let data: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT key, value, version FROM mission_data WHERE mission_id = $1",
            )
            .bind(mission_id)
            .fetch_all(&mut *tx)
            .await?;
            for (key, value, version) in data {
                state
                    .data
                    .insert(key.clone(), parse_json(&value, "mission data")?);
                state
                    .versions
                    .insert(key, u64::try_from(version).unwrap_or(0));
            }
            let budgets: Vec<(String, i64, i64)> =
                sqlx::query_as("SELECT name, spent, lim FROM mission_budget WHERE mission_id = $1")
                    .bind(mission_id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (name, spent, limit) in budgets {
                state.budgets.insert(
                    name,
                    Budget {
                        spent: to_u64(spent, "spent")?,
                        limit: to_u64(limit, "limit")?,
                    },
                );
            }
            tx.commit().await?;
            Ok(state)
        })
        .await
    }

    async fn absorb(&self, mission_id: &str, taint: &Taint) -> Result<(), StoreError> {
        check_labels(taint.keys())?;
        if taint.is_empty() {
            return Ok(());
        }
        let notice = self.notice(&Change::Mission(mission_id.to_string()));
        timed(async {
            let mut conn = self.pool().acquire().await?;
            let result = absorb_on(&mut conn, mission_id, taint, &self.db.channel, &notice).await;
            if result.is_err() {
                conn.close_on_drop();
            }
            result
        })
        .await
    }

    async fn put_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        let notice = self.notice(&Change::Mission(mission_id.to_string()));
        timed(async {
            sqlx::query(
                "WITH w AS (INSERT INTO mission_data (mission_id, key, value, version) \
                 VALUES ($1, $2, $3, 1) ON CONFLICT (mission_id, key) DO UPDATE \
                 SET value = EXCLUDED.value, version = mission_data.version + 1) \
                 SELECT pg_notify($4, $5)",
            )
            .bind(mission_id)
            .bind(key)
            .bind(canonical_string(value))
            .bind(&self.db.channel)
            .bind(&notice)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn swap_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let expected_i = to_i64(expected, "version")?;
        let text = canonical_string(value);
        let notice = self.notice(&Change::Mission(mission_id.to_string()));
        timed(async {
            // The notice is sent only when the row was written (`w` returns a row).
            let written: Option<i64> = if expected == 0 {
                sqlx::query_as(
                    "WITH w AS (INSERT INTO mission_data (mission_id, key, value, version) \
                     VALUES ($1, $2, $3, 1) ON CONFLICT (mission_id, key) DO NOTHING \
                     RETURNING version) SELECT pg_notify($4, $5)::text, version FROM w",
                )
                .bind(mission_id)
                .bind(key)
                .bind(&text)
                .bind(&self.db.channel)
                .bind(&notice)
                .fetch_optional(self.pool())
                .await?
                .map(|(_, v): (Option<String>, i64)| v)
            } else {
                sqlx::query_as(
                    "WITH w AS (UPDATE mission_data SET value = $3, version = version + 1 \
                     WHERE mission_id = $1 AND key = $2 AND version = $6 RETURNING version) \
                     SELECT pg_notify($4, $5)::text, version FROM w",
                )
                .bind(mission_id)
                .bind(key)
                .bind(&text)
                .bind(&self.db.channel)
                .bind(&notice)
                .bind(expected_i)
                .fetch_optional(self.pool())
                .await?
                .map(|(_, v): (Option<String>, i64)| v)
            };
            Ok(written.map(|v| u64::try_from(v).unwrap_or(0)))
        })
        .await
    }

    async fn journal_append(&self, mission_id: &str, events: &[Value]) -> Result<u64, StoreError> {
        crate::journal::pg_append(self.pool(), mission_id, events).await
    }

    async fn journal_since(
        &self,
        mission_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        crate::journal::pg_since(self.pool(), mission_id, after, limit).await
    }

    async fn journal_prune(&self, mission_id: &str, upto: u64) -> Result<(), StoreError> {
        crate::journal::pg_prune(self.pool(), mission_id, upto).await
    }

    async fn spend(
        &self,
        mission_id: &str,
        budget: &str,
        amount: u64,
        limit: u64,
    ) -> Result<Result<u64, Exhausted>, StoreError> {
        let amount_i = to_i64(amount, "amount")?;
        let limit_i = to_i64(limit, "limit")?;
        timed(async {
            // One statement: the row lock of the upsert serialises concurrent spends, and the
            // condition is checked against the committed total (`spent <= lim - amount`
            // cannot overflow).
            let spent: Option<i64> = sqlx::query_scalar(
                "INSERT INTO mission_budget AS b (mission_id, name, spent, lim) \
                 SELECT $1, $2, $3, $4 WHERE $3 <= $4 \
                 ON CONFLICT (mission_id, name) DO UPDATE \
                 SET spent = b.spent + EXCLUDED.spent, lim = EXCLUDED.lim \
                 WHERE b.spent <= EXCLUDED.lim - EXCLUDED.spent \
                 RETURNING spent",
            )
            .bind(mission_id)
            .bind(budget)
            .bind(amount_i)
            .bind(limit_i)
            .fetch_optional(self.pool())
            .await?;
            match spent {
                Some(total) => Ok(Ok(limit.saturating_sub(to_u64(total, "spent")?))),
                None => {
                    let spent: Option<i64> = sqlx::query_scalar(
                        "SELECT spent FROM mission_budget WHERE mission_id = $1 AND name = $2",
                    )
                    .bind(mission_id)
                    .bind(budget)
                    .fetch_optional(self.pool())
                    .await?;
                    Ok(Err(Exhausted {
                        budget: budget.to_string(),
                        spent: to_u64(spent.unwrap_or(0), "spent")?,
                        requested: amount,
                        limit,
                    }))
                }
            }
        })
        .await
    }

    async fn revoke(&self, mission_id: &str, reason: &str) -> Result<(), StoreError> {
        let notice = self.notice(&Change::Revoked(mission_id.to_string()));
        timed(async {
            sqlx::query(
                "WITH w AS (INSERT INTO revocation (mission_id, reason, at_ms) \
                 VALUES ($1, $2, $3) ON CONFLICT (mission_id) DO NOTHING) \
                 SELECT pg_notify($4, $5)",
            )
            .bind(mission_id)
            .bind(reason)
            .bind(now_ms())
            .bind(&self.db.channel)
            .bind(&notice)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, mission_id: &str) -> Result<Option<Revocation>, StoreError> {
        timed(async {
            let row: Option<(String, String, i64)> = sqlx::query_as(
                "SELECT mission_id, reason, at_ms FROM revocation WHERE mission_id = $1",
            )
            .bind(mission_id)
            .fetch_optional(self.pool())
            .await?;
            Ok(row.map(|(mission_id, reason, at_ms)| Revocation {
                mission_id,
                reason,
                at_ms,
            }))
        })
        .await
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        timed(async {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT mission_id, reason, at_ms FROM revocation ORDER BY mission_id",
            )
            .fetch_all(self.pool())
            .await?;
            let mut revocations: Vec<Revocation> = rows
                .into_iter()
                .map(|(mission_id, reason, at_ms)| Revocation {
                    mission_id,
                    reason,
                    at_ms,
                })
                .collect();
            // By bytes, whatever the database's collation.
            revocations.sort_by(|a, b| a.mission_id.cmp(&b.mission_id));
            Ok(revocations)
        })
        .await
    }

    async fn set_breaker(&self, key: &str, state: &Value) -> Result<(), StoreError> {
        let notice = self.notice(&Change::Breaker(key.to_string()));
        timed(async {
            sqlx::query(
                "WITH w AS (INSERT INTO breaker (key, state, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET state = EXCLUDED.state, \
                 updated_ms = EXCLUDED.updated_ms) \
                 SELECT pg_notify($4, $5)",
            )
            .bind(key)
            .bind(canonical_string(state))
            .bind(now_ms())
            .bind(&self.db.channel)
            .bind(&notice)
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await
    }

    async fn breakers(&self) -> Result<BTreeMap<String, Value>, StoreError> {
        timed(async {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT key, state FROM breaker ORDER BY key")
                    .fetch_all(self.pool())
                    .await?;
            rows.into_iter()
                .map(|(key, state)| Ok((key, parse_json(&state, "breaker state")?)))
                .collect()
        })
        .await
    }

    async fn put_grant(&self, grant: &GrantRecord) -> Result<(), StoreError> {
        crate::grants::pg_put(self.pool(), grant).await
    }

    async fn grant(&self, mission_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        crate::grants::pg_get(self.pool(), mission_id).await
    }

    async fn grants(&self, filter: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        crate::grants::pg_list(self.pool(), filter).await
    }

    async fn put_approval(&self, request: &crate::types::ApprovalRecord) -> Result<(), StoreError> {
        let notice = self.notice(&Change::Approval(request.id.clone()));
        crate::approvals::pg_put(self.pool(), request, &self.db.channel, &notice).await
    }

    async fn approval(&self, id: &str) -> Result<Option<crate::types::ApprovalRecord>, StoreError> {
        crate::approvals::pg_get(self.pool(), id).await
    }

    async fn approvals(
        &self,
        filter: &crate::types::ApprovalFilter,
    ) -> Result<Vec<crate::types::ApprovalRecord>, StoreError> {
        crate::approvals::pg_list(self.pool(), filter).await
    }

    async fn swap_approval(
        &self,
        request: &crate::types::ApprovalRecord,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let notice = self.notice(&Change::Approval(request.id.clone()));
        crate::approvals::pg_swap(self.pool(), request, expected, &self.db.channel, &notice).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    async fn heartbeat(&self, replica: &Replica) -> Result<(), StoreError> {
        crate::replicas::pg_heartbeat(self.pool(), replica).await
    }

    async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        crate::replicas::pg_replicas(self.pool()).await
    }

    async fn put_kill(&self, kill: &KillRecord) -> Result<(), StoreError> {
        let notice = self.notice(&Change::Kill(kill.id.clone()));
        crate::replicas::pg_put_kill(self.pool(), kill, &self.db.channel, &notice).await
    }

    async fn kill(&self, id: &str) -> Result<Option<KillRecord>, StoreError> {
        crate::replicas::pg_kill(self.pool(), id).await
    }

    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError> {
        crate::replicas::pg_kills(self.pool()).await
    }

    async fn ack_kill(
        &self,
        kill_id: &str,
        replica_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        crate::replicas::pg_ack(self.pool(), kill_id, replica_id, at_ms).await
    }

    async fn kill_acks(&self, kill_id: &str) -> Result<Vec<KillAck>, StoreError> {
        crate::replicas::pg_acks(self.pool(), kill_id).await
    }
}
