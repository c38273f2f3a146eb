//! The SQLite backend: one file, WAL journal, `synchronous=FULL`.
//!
//! Writes that read before they write (the audit batch, absorb) start with `BEGIN IMMEDIATE`,
//! so two writers never both read the same head. The change feed is in-process only: other
//! processes on the same file do not see each other's changes (use PostgreSQL for replicas).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ed25519_dalek::SigningKey;
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::broadcast;

use crate::audit::{now_ms, seal, timed, ChainBackend, CheckpointPlan, Committed, Writer};
use crate::checkpoint::AuditConfig;
use crate::error::StoreError;
use crate::feed::Feed;
use crate::migrations::{self, failed, pending};
use crate::mission::{
    check_labels, merge_sources, parse_json, parse_sources, sources_text, to_i64, to_u64,
};
use crate::replicas::{KillAck, KillRecord, Replica};
use crate::types::{
    AuditColumns, AuditInput, AuditKind, AuditRecord, AuditRecordMeta, Backend, Budget, Change,
    Checkpoint, Exhausted, GrantFilter, GrantRecord, Hash, MissionState, Revocation, Taint,
};
use crate::{Store, MAX_PAGE};

/// Rows per INSERT statement (12 parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 500;

/// The columns of `audit_record`, in the order the readers select them.
pub(crate) const RECORD_COLUMNS: &str = "seq, kind, at_ms, decision_id, mission_id, principal, \
                                         agent, tool, outcome, body, prev_hash, hash";

fn options(path: &str) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}")).map_err(|e| {
        StoreError::InvalidUrl {
            url: format!("sqlite://{path}"),
            reason: e.to_string(),
        }
    })?;
    Ok(options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true))
}

async fn connect(path: &str) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(4)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with(options(path)?)
        .await
        .map_err(|e| at_open(path, e.into()))
}

/// Names the file in errors at open.
fn at_open(path: &str, error: StoreError) -> StoreError {
    match error {
        StoreError::Corrupt(reason) => StoreError::Corrupt(format!("`{path}`: {reason}")),
        StoreError::Unavailable(reason) => {
            StoreError::Unavailable(format!("cannot open `{path}`: {reason}"))
        }
        other => other,
    }
}

async fn run_migrations(pool: &SqlitePool) -> Result<i64, StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS warden_migrations (version INTEGER PRIMARY KEY, \
         name TEXT NOT NULL, checksum BLOB NOT NULL, applied_ms INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let applied: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT version, checksum FROM warden_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    for migration in pending(migrations::SQLITE, &applied)? {
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(migration, e))?;
        sqlx::query(
            "INSERT INTO warden_migrations (version, name, checksum, applied_ms) \
             VALUES (?, ?, ?, ?)",
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

/// Runs the migrations of the file at `path`.
pub(crate) async fn migrate(path: &str) -> Result<i64, StoreError> {
    let pool = connect(path).await?;
    let result = run_migrations(&pool).await.map_err(|e| at_open(path, e));
    pool.close().await;
    result
}

/// The SQLite store.
#[derive(Debug)]
pub(crate) struct SqliteStore {
    db: Arc<Db>,
    writer: Writer,
    feed: Feed,
}

#[derive(Debug)]
struct Db {
    pool: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(
        path: &str,
        config: AuditConfig,
        key: Option<SigningKey>,
    ) -> Result<SqliteStore, StoreError> {
        let pool = connect(path).await?;
        run_migrations(&pool).await.map_err(|e| at_open(path, e))?;
        let db = Arc::new(Db { pool });
        let writer = Writer::spawn(db.clone(), config, key);
        Ok(SqliteStore {
            db,
            writer,
            feed: Feed::new(),
        })
    }

    fn pool(&self) -> &SqlitePool {
        &self.db.pool
    }
}

pub(crate) fn hash_of_column(bytes: &[u8]) -> Hash {
    // A hash of the wrong length is damage; it can match nothing, so verification reports it.
    Hash::from_slice(bytes).unwrap_or(Hash([0xff; 32]))
}

/// A body that is not JSON any more (edited by hand) is read as the string it holds: its hash
/// cannot match, so verification names the record instead of failing to read it.
pub(crate) fn body_of_column(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn record_of(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
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

/// Merges `taint` into a mission's rows in one `BEGIN IMMEDIATE` transaction on `conn`.
async fn absorb_on(
    conn: &mut SqliteConnection,
    mission_id: &str,
    taint: &Taint,
) -> Result<(), StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for (label, sources) in taint {
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT sources FROM mission_taint WHERE mission_id = ? AND label = ?",
        )
        .bind(mission_id)
        .bind(label)
        .fetch_optional(&mut *tx)
        .await?;
        let existing = match existing {
            Some(text) => parse_sources(&text)?,
            None => Vec::new(),
        };
        let merged = merge_sources(&existing, sources);
        sqlx::query(
            "INSERT INTO mission_taint (mission_id, label, sources) VALUES (?, ?, ?) \
             ON CONFLICT (mission_id, label) DO UPDATE SET sources = excluded.sources",
        )
        .bind(mission_id)
        .bind(label)
        .bind(sources_text(&merged))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Stores a checkpoint on `conn` (in whatever transaction it is in).
async fn insert_checkpoint(
    conn: &mut SqliteConnection,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoint (seq, hash, at_ms, key_id, signature) \
         VALUES (?, ?, ?, ?, ?)",
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

/// Seals and inserts a batch in one `BEGIN IMMEDIATE` transaction on `conn`.
async fn commit_on(
    conn: &mut SqliteConnection,
    inputs: Vec<AuditInput>,
    plan: Option<&CheckpointPlan<'_>>,
) -> Result<Committed, StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let (seq, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
    let sealed = seal(to_u64(seq, "head seq")?, hash_of_column(&hash), inputs);
    for chunk in sealed.chunks(ROWS_PER_INSERT) {
        let mut insert: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO audit_record ({RECORD_COLUMNS}) "));
        insert.push_values(chunk, |mut row, record| {
            let c = &record.input.columns;
            row.push_bind(record.seq as i64)
                .push_bind(record.input.kind.as_str())
                .push_bind(record.input.at_ms)
                .push_bind(c.decision_id.as_deref())
                .push_bind(c.mission_id.as_deref())
                .push_bind(c.principal.as_deref())
                .push_bind(c.agent.as_deref())
                .push_bind(c.tool.as_deref())
                .push_bind(c.outcome.as_deref())
                .push_bind(record.body_text.as_str())
                .push_bind(&record.prev_hash.0[..])
                .push_bind(&record.hash.0[..]);
        });
        insert.build().execute(&mut *tx).await?;
    }
    let metas: Vec<AuditRecordMeta> = sealed
        .iter()
        .map(|s| AuditRecordMeta {
            seq: s.seq,
            hash: s.hash,
        })
        .collect();
    if let Some(last) = metas.last() {
        sqlx::query("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1")
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
        // On failure the connection is closed rather than returned to the pool: a transaction
        // the database ended by itself (a failed COMMIT on a full disk) must not leave the
        // pool's bookkeeping behind.
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
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
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
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE seq >= ? ORDER BY seq LIMIT ?"
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
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE seq = ?"
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
                "SELECT {RECORD_COLUMNS} FROM audit_record WHERE decision_id = ? ORDER BY seq"
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
                "SELECT seq FROM audit_record WHERE hash = ? ORDER BY seq LIMIT 1",
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
            let mut tx = self.pool().begin().await?;
            let mut state = MissionState::default();
            let taint: Vec<(String, String)> =
                sqlx::query_as("SELECT label, sources FROM mission_taint WHERE mission_id = ?")
                    .bind(mission_id)
                    .fetch_all(&mut *tx)
                    .await?;
            for (label, sources) in taint {
                state.taint.insert(label, parse_sources(&sources)?);
            }
            let data: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT key, value, version FROM mission_data WHERE mission_id = ?")
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
                sqlx::query_as("SELECT name, spent, lim FROM mission_budget WHERE mission_id = ?")
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
        timed(async {
            let mut conn = self.pool().acquire().await?;
            let result = absorb_on(&mut conn, mission_id, taint).await;
            if result.is_err() {
                conn.close_on_drop();
            }
            result
        })
        .await?;
        self.feed.send(Change::Mission(mission_id.to_string()));
        Ok(())
    }

    async fn put_mission_data(
        &self,
        mission_id: &str,
        key: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        timed(async {
            sqlx::query(
                "INSERT INTO mission_data (mission_id, key, value, version) VALUES (?, ?, ?, 1) \
                 ON CONFLICT (mission_id, key) DO UPDATE SET value = excluded.value, \
                 version = mission_data.version + 1",
            )
            .bind(mission_id)
            .bind(key)
            .bind(crate::canonical::canonical_string(value))
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await?;
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
        let expected_i = to_i64(expected, "version")?;
        let text = crate::canonical::canonical_string(value);
        let swapped = timed(async {
            let done = if expected == 0 {
                sqlx::query(
                    "INSERT INTO mission_data (mission_id, key, value, version) VALUES (?, ?, ?, 1) \
                     ON CONFLICT (mission_id, key) DO NOTHING",
                )
                .bind(mission_id)
                .bind(key)
                .bind(&text)
                .execute(self.pool())
                .await?
            } else {
                sqlx::query(
                    "UPDATE mission_data SET value = ?, version = version + 1 \
                     WHERE mission_id = ? AND key = ? AND version = ?",
                )
                .bind(&text)
                .bind(mission_id)
                .bind(key)
                .bind(expected_i)
                .execute(self.pool())
                .await?
            };
            Ok::<_, StoreError>((done.rows_affected() == 1).then_some(expected + 1))
        })
        .await?;
        if swapped.is_some() {
            self.feed.send(Change::Mission(mission_id.to_string()));
        }
        Ok(swapped)
    }

    async fn journal_append(&self, mission_id: &str, events: &[Value]) -> Result<u64, StoreError> {
        crate::journal::sqlite_append(self.pool(), mission_id, events).await
    }

    async fn journal_since(
        &self,
        mission_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Value)>, StoreError> {
        crate::journal::sqlite_since(self.pool(), mission_id, after, limit).await
    }

    async fn journal_prune(&self, mission_id: &str, upto: u64) -> Result<(), StoreError> {
        crate::journal::sqlite_prune(self.pool(), mission_id, upto).await
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
            // One statement: the first spend inserts, later ones add only while the total
            // stays within the limit (`spent <= lim - amount` cannot overflow).
            let spent: Option<i64> = sqlx::query_scalar(
                "INSERT INTO mission_budget (mission_id, name, spent, lim) \
                 SELECT ?1, ?2, ?3, ?4 WHERE ?3 <= ?4 \
                 ON CONFLICT (mission_id, name) DO UPDATE \
                 SET spent = mission_budget.spent + excluded.spent, lim = excluded.lim \
                 WHERE mission_budget.spent <= excluded.lim - excluded.spent \
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
                        "SELECT spent FROM mission_budget WHERE mission_id = ? AND name = ?",
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
        timed(async {
            sqlx::query(
                "INSERT INTO revocation (mission_id, reason, at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (mission_id) DO NOTHING",
            )
            .bind(mission_id)
            .bind(reason)
            .bind(now_ms())
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await?;
        self.feed.send(Change::Revoked(mission_id.to_string()));
        Ok(())
    }

    async fn is_revoked(&self, mission_id: &str) -> Result<Option<Revocation>, StoreError> {
        timed(async {
            let row: Option<(String, String, i64)> = sqlx::query_as(
                "SELECT mission_id, reason, at_ms FROM revocation WHERE mission_id = ?",
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
        timed(async {
            sqlx::query(
                "INSERT INTO breaker (key, state, updated_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET state = excluded.state, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(key)
            .bind(crate::canonical::canonical_string(state))
            .bind(now_ms())
            .execute(self.pool())
            .await?;
            Ok(())
        })
        .await?;
        self.feed.send(Change::Breaker(key.to_string()));
        Ok(())
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
        crate::grants::sqlite_put(self.pool(), grant).await
    }

    async fn grant(&self, mission_id: &str) -> Result<Option<GrantRecord>, StoreError> {
        crate::grants::sqlite_get(self.pool(), mission_id).await
    }

    async fn grants(&self, filter: &GrantFilter) -> Result<Vec<GrantRecord>, StoreError> {
        crate::grants::sqlite_list(self.pool(), filter).await
    }

    async fn put_approval(&self, request: &crate::types::ApprovalRecord) -> Result<(), StoreError> {
        crate::approvals::sqlite_put(self.pool(), request).await?;
        self.feed.send(Change::Approval(request.id.clone()));
        Ok(())
    }

    async fn approval(&self, id: &str) -> Result<Option<crate::types::ApprovalRecord>, StoreError> {
        crate::approvals::sqlite_get(self.pool(), id).await
    }

    async fn approvals(
        &self,
        filter: &crate::types::ApprovalFilter,
    ) -> Result<Vec<crate::types::ApprovalRecord>, StoreError> {
        crate::approvals::sqlite_list(self.pool(), filter).await
    }

    async fn swap_approval(
        &self,
        request: &crate::types::ApprovalRecord,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let done = crate::approvals::sqlite_swap(self.pool(), request, expected).await?;
        if done {
            self.feed.send(Change::Approval(request.id.clone()));
        }
        Ok(done)
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    async fn heartbeat(&self, replica: &Replica) -> Result<(), StoreError> {
        crate::replicas::sqlite_heartbeat(self.pool(), replica).await
    }

    async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        crate::replicas::sqlite_replicas(self.pool()).await
    }

    async fn put_kill(&self, kill: &KillRecord) -> Result<(), StoreError> {
        crate::replicas::sqlite_put_kill(self.pool(), kill).await?;
        self.feed.send(Change::Kill(kill.id.clone()));
        Ok(())
    }

    async fn kill(&self, id: &str) -> Result<Option<KillRecord>, StoreError> {
        crate::replicas::sqlite_kill(self.pool(), id).await
    }

    async fn kills(&self) -> Result<Vec<KillRecord>, StoreError> {
        crate::replicas::sqlite_kills(self.pool()).await
    }

    async fn ack_kill(
        &self,
        kill_id: &str,
        replica_id: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        crate::replicas::sqlite_ack(self.pool(), kill_id, replica_id, at_ms).await
    }

    async fn kill_acks(&self, kill_id: &str) -> Result<Vec<KillAck>, StoreError> {
        crate::replicas::sqlite_acks(self.pool(), kill_id).await
    }
}
