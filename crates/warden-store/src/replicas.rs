//! Replicas and the kill switch (see [`crate::Store::heartbeat`] and [`crate::Store::put_kill`]).
//!
//! Every replica of Warden on a store registers itself with a heartbeat and writes it again
//! every few seconds; a replica whose heartbeat is recent is live. A kill is a row naming its
//! scope, the person who threw it and why; putting it announces [`crate::Change::Kill`] to
//! every replica, and each replica, once the kill holds there, acknowledges it with a row of
//! its own. The thrower waits for the acknowledgements of the live replicas.
//!
//! The SQL of both database backends is here; the in-memory backend keeps a [`MemoryKills`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, SqlitePool};

use crate::audit::timed;
use crate::StoreError;

/// A replica of Warden on this store, as its last heartbeat said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// Its id, random at each start.
    pub id: String,
    /// Where it runs, for people: `host/pid`.
    pub name: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// Its last heartbeat (Unix ms).
    pub heartbeat_at_ms: i64,
}

impl Replica {
    /// Whether its last heartbeat is within `window_ms` before `now_ms`.
    pub fn live_at(&self, now_ms: i64, window_ms: i64) -> bool {
        self.heartbeat_at_ms > now_ms.saturating_sub(window_ms)
    }
}

/// A kill thrown by a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillRecord {
    /// Its id.
    pub id: String,
    /// What it stops: `all`, `session:NAME`, `mission:ID`, `agent:NAME` or `principal:NAME`.
    pub scope: String,
    /// The person who threw it (as authenticated).
    pub by: String,
    /// Why, in their words.
    pub reason: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// A replica's confirmation that a kill holds there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KillAck {
    /// The kill.
    pub kill_id: String,
    /// The replica.
    pub replica_id: String,
    /// When it confirmed (Unix ms).
    pub at_ms: i64,
}

/// The error of a second kill under one id.
pub(crate) fn taken(id: &str) -> StoreError {
    StoreError::Conflict(format!("kill id `{id}` is taken"))
}

/// Replicas, kills and acknowledgements of the in-memory backend.
#[derive(Debug, Default)]
pub(crate) struct MemoryKills {
    replicas: BTreeMap<String, Replica>,
    kills: BTreeMap<String, KillRecord>,
    acks: BTreeMap<(String, String), i64>,
}

impl MemoryKills {
    pub(crate) fn heartbeat(&mut self, replica: &Replica) {
        let kept = self
            .replicas
            .entry(replica.id.clone())
            .or_insert_with(|| replica.clone());
        kept.name.clone_from(&replica.name);
        kept.heartbeat_at_ms = replica.heartbeat_at_ms;
    }

    pub(crate) fn replicas(&self) -> Vec<Replica> {
        self.replicas.values().cloned().collect()
    }

    pub(crate) fn put_kill(&mut self, kill: &KillRecord) -> Result<(), StoreError> {
        if self.kills.contains_key(&kill.id) {
            return Err(taken(&kill.id));
        }
        self.kills.insert(kill.id.clone(), kill.clone());
        Ok(())
    }

    pub(crate) fn kill(&self, id: &str) -> Option<KillRecord> {
        self.kills.get(id).cloned()
    }

    pub(crate) fn kills(&self) -> Vec<KillRecord> {
        let mut kills: Vec<KillRecord> = self.kills.values().cloned().collect();
        kills.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        kills
    }

    pub(crate) fn ack(&mut self, kill_id: &str, replica_id: &str, at_ms: i64) {
        self.acks
            .entry((kill_id.to_string(), replica_id.to_string()))
            .or_insert(at_ms);
    }

    pub(crate) fn acks(&self, kill_id: &str) -> Vec<KillAck> {
        self.acks
            .iter()
            .filter(|((k, _), _)| k == kill_id)
            .map(|((k, r), at)| KillAck {
                kill_id: k.clone(),
                replica_id: r.clone(),
                at_ms: *at,
            })
            .collect()
    }
}

type ReplicaRow = (String, String, i64, i64);
type KillRow = (String, String, String, String, i64);

fn replica_of((id, name, started_at_ms, heartbeat_at_ms): ReplicaRow) -> Replica {
    Replica {
        id,
        name,
        started_at_ms,
        heartbeat_at_ms,
    }
}

fn kill_of((id, scope, by, reason, at_ms): KillRow) -> KillRecord {
    KillRecord {
        id,
        scope,
        by,
        reason,
        at_ms,
    }
}

fn ack_of(kill_id: &str, (replica_id, at_ms): (String, i64)) -> KillAck {
    KillAck {
        kill_id: kill_id.to_string(),
        replica_id,
        at_ms,
    }
}

/// Sorts by bytes, whatever the database's collation.
fn by_id(mut replicas: Vec<Replica>) -> Vec<Replica> {
    replicas.sort_by(|a, b| a.id.cmp(&b.id));
    replicas
}

fn kills_in_order(mut kills: Vec<KillRecord>) -> Vec<KillRecord> {
    kills.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    kills
}

fn acks_in_order(mut acks: Vec<KillAck>) -> Vec<KillAck> {
    acks.sort_by(|a, b| a.replica_id.cmp(&b.replica_id));
    acks
}

const REPLICA_COLUMNS: &str = "id, name, started_at_ms, heartbeat_at_ms";
const KILL_COLUMNS: &str = "id, scope, by_user, reason, at_ms";

/// [`crate::Store::heartbeat`] on SQLite.
pub(crate) async fn sqlite_heartbeat(pool: &SqlitePool, r: &Replica) -> Result<(), StoreError> {
    timed(async {
        sqlx::query(
            "INSERT INTO replicas (id, name, started_at_ms, heartbeat_at_ms) VALUES (?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
             heartbeat_at_ms = excluded.heartbeat_at_ms",
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(r.started_at_ms)
        .bind(r.heartbeat_at_ms)
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

/// [`crate::Store::replicas`] on SQLite.
pub(crate) async fn sqlite_replicas(pool: &SqlitePool) -> Result<Vec<Replica>, StoreError> {
    let sql = format!("SELECT {REPLICA_COLUMNS} FROM replicas");
    let rows: Vec<ReplicaRow> =
        timed(async { Ok(sqlx::query_as(&sql).fetch_all(pool).await?) }).await?;
    Ok(by_id(rows.into_iter().map(replica_of).collect()))
}

/// [`crate::Store::put_kill`] on SQLite (the caller announces it).
pub(crate) async fn sqlite_put_kill(pool: &SqlitePool, k: &KillRecord) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO kills ({KILL_COLUMNS}) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO NOTHING RETURNING id"
    );
    let written: Option<(String,)> = timed(async {
        Ok(sqlx::query_as(&sql)
            .bind(&k.id)
            .bind(&k.scope)
            .bind(&k.by)
            .bind(&k.reason)
            .bind(k.at_ms)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&k.id))
}

/// [`crate::Store::kill`] on SQLite.
pub(crate) async fn sqlite_kill(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<KillRecord>, StoreError> {
    let sql = format!("SELECT {KILL_COLUMNS} FROM kills WHERE id = ?");
    let row: Option<KillRow> =
        timed(async { Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?) }).await?;
    Ok(row.map(kill_of))
}

/// [`crate::Store::kills`] on SQLite.
pub(crate) async fn sqlite_kills(pool: &SqlitePool) -> Result<Vec<KillRecord>, StoreError> {
    let sql = format!("SELECT {KILL_COLUMNS} FROM kills");
    let rows: Vec<KillRow> =
        timed(async { Ok(sqlx::query_as(&sql).fetch_all(pool).await?) }).await?;
    Ok(kills_in_order(rows.into_iter().map(kill_of).collect()))
}

/// [`crate::Store::ack_kill`] on SQLite.
pub(crate) async fn sqlite_ack(
    pool: &SqlitePool,
    kill_id: &str,
    replica_id: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    timed(async {
        sqlx::query(
            "INSERT INTO kill_acks (kill_id, replica_id, at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (kill_id, replica_id) DO NOTHING",
        )
        .bind(kill_id)
        .bind(replica_id)
        .bind(at_ms)
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

/// [`crate::Store::kill_acks`] on SQLite.
pub(crate) async fn sqlite_acks(
    pool: &SqlitePool,
    kill_id: &str,
) -> Result<Vec<KillAck>, StoreError> {
    let rows: Vec<(String, i64)> = timed(async {
        Ok(
            sqlx::query_as("SELECT replica_id, at_ms FROM kill_acks WHERE kill_id = ?")
                .bind(kill_id)
                .fetch_all(pool)
                .await?,
        )
    })
    .await?;
    Ok(acks_in_order(
        rows.into_iter().map(|r| ack_of(kill_id, r)).collect(),
    ))
}

/// [`crate::Store::heartbeat`] on PostgreSQL.
pub(crate) async fn pg_heartbeat(pool: &PgPool, r: &Replica) -> Result<(), StoreError> {
    timed(async {
        sqlx::query(
            "INSERT INTO replicas (id, name, started_at_ms, heartbeat_at_ms) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
             heartbeat_at_ms = EXCLUDED.heartbeat_at_ms",
        )
        .bind(&r.id)
        .bind(&r.name)
        .bind(r.started_at_ms)
        .bind(r.heartbeat_at_ms)
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

/// [`crate::Store::replicas`] on PostgreSQL.
pub(crate) async fn pg_replicas(pool: &PgPool) -> Result<Vec<Replica>, StoreError> {
    let sql = format!("SELECT {REPLICA_COLUMNS} FROM replicas");
    let rows: Vec<ReplicaRow> =
        timed(async { Ok(sqlx::query_as(&sql).fetch_all(pool).await?) }).await?;
    Ok(by_id(rows.into_iter().map(replica_of).collect()))
}

/// [`crate::Store::put_kill`] on PostgreSQL: the row and the notice `notice` on `channel` in
/// one statement (the notice only when the row was written).
pub(crate) async fn pg_put_kill(
    pool: &PgPool,
    k: &KillRecord,
    channel: &str,
    notice: &str,
) -> Result<(), StoreError> {
    let sql = format!(
        "WITH w AS (INSERT INTO kills ({KILL_COLUMNS}) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING RETURNING id) \
         SELECT w.id, pg_notify($6, $7)::text FROM w"
    );
    let written: Option<(String, String)> = timed(async {
        Ok(sqlx::query_as(&sql)
            .bind(&k.id)
            .bind(&k.scope)
            .bind(&k.by)
            .bind(&k.reason)
            .bind(k.at_ms)
            .bind(channel)
            .bind(notice)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&k.id))
}

/// [`crate::Store::kill`] on PostgreSQL.
pub(crate) async fn pg_kill(pool: &PgPool, id: &str) -> Result<Option<KillRecord>, StoreError> {
    let sql = format!("SELECT {KILL_COLUMNS} FROM kills WHERE id = $1");
    let row: Option<KillRow> =
        timed(async { Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?) }).await?;
    Ok(row.map(kill_of))
}

/// [`crate::Store::kills`] on PostgreSQL.
pub(crate) async fn pg_kills(pool: &PgPool) -> Result<Vec<KillRecord>, StoreError> {
    let sql = format!("SELECT {KILL_COLUMNS} FROM kills");
    let rows: Vec<KillRow> =
        timed(async { Ok(sqlx::query_as(&sql).fetch_all(pool).await?) }).await?;
    Ok(kills_in_order(rows.into_iter().map(kill_of).collect()))
}

/// [`crate::Store::ack_kill`] on PostgreSQL.
pub(crate) async fn pg_ack(
    pool: &PgPool,
    kill_id: &str,
    replica_id: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    timed(async {
        sqlx::query(
            "INSERT INTO kill_acks (kill_id, replica_id, at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (kill_id, replica_id) DO NOTHING",
        )
        .bind(kill_id)
        .bind(replica_id)
        .bind(at_ms)
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

/// [`crate::Store::kill_acks`] on PostgreSQL.
pub(crate) async fn pg_acks(pool: &PgPool, kill_id: &str) -> Result<Vec<KillAck>, StoreError> {
    let rows: Vec<(String, i64)> = timed(async {
        Ok(
            sqlx::query_as("SELECT replica_id, at_ms FROM kill_acks WHERE kill_id = $1")
                .bind(kill_id)
                .fetch_all(pool)
                .await?,
        )
    })
    .await?;
    Ok(acks_in_order(
        rows.into_iter().map(|r| ack_of(kill_id, r)).collect(),
    ))
}
