//! Mission journals on SQLite and PostgreSQL (see [`crate::Store::journal_append`]).
//!
//! Appending first moves the mission's head row (`mission_journal_head`) by the number of
//! events, which takes that row's lock until the transaction ends, then inserts the events
//! under the numbers it got. Two appends to one mission therefore commit in sequence order,
//! and a reader that sees event `n` has every event before it.

use serde_json::Value;
use sqlx::{PgPool, SqlitePool};

use crate::audit::timed;
use crate::mission::{to_i64, to_u64};
use crate::StoreError;

fn count(events: &[Value]) -> Result<i64, StoreError> {
    i64::try_from(events.len())
        .map_err(|_| StoreError::Invalid("too many journal events at once".into()))
}

fn seq_of(v: i64) -> Result<u64, StoreError> {
    to_u64(v, "journal sequence number")
}

fn seq_to(v: u64) -> Result<i64, StoreError> {
    to_i64(v, "journal sequence number")
}

fn body_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// [`crate::Store::journal_append`] on SQLite.
pub(crate) async fn sqlite_append(
    pool: &SqlitePool,
    mission_id: &str,
    events: &[Value],
) -> Result<u64, StoreError> {
    let n = count(events)?;
    timed(async {
        let mut tx = pool.begin().await?;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO mission_journal_head (mission_id, seq) VALUES (?1, ?2) \
             ON CONFLICT (mission_id) DO UPDATE SET seq = mission_journal_head.seq + ?2 \
             RETURNING seq",
        )
        .bind(mission_id)
        .bind(n)
        .fetch_one(&mut *tx)
        .await?;
        for (i, e) in events.iter().enumerate() {
            sqlx::query("INSERT INTO mission_journal (mission_id, seq, body) VALUES (?, ?, ?)")
                .bind(mission_id)
                .bind(last - n + 1 + i as i64)
                .bind(crate::canonical::canonical_string(e))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        seq_of(last)
    })
    .await
}

/// [`crate::Store::journal_since`] on SQLite.
pub(crate) async fn sqlite_since(
    pool: &SqlitePool,
    mission_id: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<(u64, Value)>, StoreError> {
    let after = seq_to(after)?;
    timed(async {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM mission_journal WHERE mission_id = ? AND seq > ? \
             ORDER BY seq LIMIT ?",
        )
        .bind(mission_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|(s, b)| Ok((seq_of(s)?, body_of(&b))))
            .collect()
    })
    .await
}

/// [`crate::Store::journal_prune`] on SQLite.
pub(crate) async fn sqlite_prune(
    pool: &SqlitePool,
    mission_id: &str,
    upto: u64,
) -> Result<(), StoreError> {
    let upto = seq_to(upto)?;
    timed(async {
        sqlx::query("DELETE FROM mission_journal WHERE mission_id = ? AND seq <= ?")
            .bind(mission_id)
            .bind(upto)
            .execute(pool)
            .await?;
        Ok(())
    })
    .await
}

/// [`crate::Store::journal_append`] on PostgreSQL.
pub(crate) async fn pg_append(
    pool: &PgPool,
    mission_id: &str,
    events: &[Value],
) -> Result<u64, StoreError> {
    let n = count(events)?;
    let bodies: Vec<String> = events
        .iter()
        .map(crate::canonical::canonical_string)
        .collect();
    timed(async {
        let mut tx = pool.begin().await?;
        let last: i64 = sqlx::query_scalar(
            "INSERT INTO mission_journal_head (mission_id, seq) VALUES ($1, $2) \
             ON CONFLICT (mission_id) DO UPDATE SET seq = mission_journal_head.seq + $2 \
             RETURNING seq",
        )
        .bind(mission_id)
        .bind(n)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO mission_journal (mission_id, seq, body) \
             SELECT $1, $2 + ord, body FROM UNNEST($3::text[]) WITH ORDINALITY AS t(body, ord)",
        )
        .bind(mission_id)
        .bind(last - n)
        .bind(&bodies)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        seq_of(last)
    })
    .await
}

/// [`crate::Store::journal_since`] on PostgreSQL.
pub(crate) async fn pg_since(
    pool: &PgPool,
    mission_id: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<(u64, Value)>, StoreError> {
    let after = seq_to(after)?;
    timed(async {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, body FROM mission_journal WHERE mission_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(mission_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
        rows.into_iter()
            .map(|(s, b)| Ok((seq_of(s)?, body_of(&b))))
            .collect()
    })
    .await
}

/// [`crate::Store::journal_prune`] on PostgreSQL.
pub(crate) async fn pg_prune(pool: &PgPool, mission_id: &str, upto: u64) -> Result<(), StoreError> {
    let upto = seq_to(upto)?;
    timed(async {
        sqlx::query("DELETE FROM mission_journal WHERE mission_id = $1 AND seq <= $2")
            .bind(mission_id)
            .bind(upto)
            .execute(pool)
            .await?;
        Ok(())
    })
    .await
}
