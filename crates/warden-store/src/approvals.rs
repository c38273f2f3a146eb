//! Approval requests on SQLite and PostgreSQL (see [`crate::Store::put_approval`]).
//!
//! A request is one row; what it says is a JSON body the store does not read. Every change is
//! a compare-and-swap on `version`, so two approvers, or two replicas using one approval,
//! cannot both win.

use sqlx::{PgPool, SqlitePool};

use crate::audit::timed;
use crate::canonical::canonical_string;
use crate::mission::parse_json;
use crate::types::{ApprovalFilter, ApprovalRecord};
use crate::StoreError;

/// The columns of `approval_requests`, in the order of [`Row`].
const COLUMNS: &str = "id, digest, state, agent, principal, mission_id, tool, created_at_ms, \
                       expires_at_ms, version, body";

/// A row of `approval_requests`, as selected with [`COLUMNS`].
type Row = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
);

fn record_of(row: Row) -> Result<ApprovalRecord, StoreError> {
    let (
        id,
        digest,
        state,
        agent,
        principal,
        mission_id,
        tool,
        created_at_ms,
        expires_at_ms,
        version,
        body,
    ) = row;
    let body = parse_json(&body, &format!("the approval request `{id}`"))?;
    Ok(ApprovalRecord {
        id,
        digest,
        state,
        agent,
        principal,
        mission_id,
        tool,
        created_at_ms,
        expires_at_ms,
        version: u64::try_from(version).unwrap_or(0),
        body,
    })
}

/// The error of a second request under one id.
pub(crate) fn taken(id: &str) -> StoreError {
    StoreError::Conflict(format!("approval request id `{id}` is taken"))
}

/// Whether a request passes `filter` (the in-memory backend; the same rules as the SQL).
pub(crate) fn matches(r: &ApprovalRecord, filter: &ApprovalFilter) -> bool {
    filter.state.as_ref().is_none_or(|s| &r.state == s)
        && filter.digest.as_ref().is_none_or(|d| &r.digest == d)
        && filter.principal.as_ref().is_none_or(|p| &r.principal == p)
}

/// Sorts requests newest first and keeps at most `limit` (0: all).
pub(crate) fn newest_first(mut all: Vec<ApprovalRecord>, limit: u32) -> Vec<ApprovalRecord> {
    all.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    if limit > 0 {
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    all
}

/// The `WHERE … ORDER BY … LIMIT` of a listing, with `p(n)` writing the n-th placeholder, and
/// the text parameters in order.
fn listing(filter: &ApprovalFilter, p: fn(usize) -> String) -> (String, Vec<String>, i64) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    for (column, value) in [
        ("state", &filter.state),
        ("digest", &filter.digest),
        ("principal", &filter.principal),
    ] {
        if let Some(v) = value {
            params.push(v.clone());
            conditions.push(format!("{column} = {}", p(params.len())));
        }
    }
    let mut sql = format!("SELECT {COLUMNS} FROM approval_requests");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at_ms DESC, id DESC");
    let limit = if filter.limit == 0 {
        i64::MAX
    } else {
        i64::from(filter.limit)
    };
    sql.push_str(&format!(" LIMIT {}", p(params.len() + 1)));
    (sql, params, limit)
}

fn version_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("version {v} is out of range")))
}

/// [`crate::Store::put_approval`] on SQLite.
pub(crate) async fn sqlite_put(pool: &SqlitePool, r: &ApprovalRecord) -> Result<(), StoreError> {
    let body = canonical_string(&r.body);
    let version = version_i64(r.version)?;
    let written: Option<(String,)> = timed(async {
        Ok(sqlx::query_as(&format!(
            "INSERT INTO approval_requests ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
             ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING RETURNING id"
        ))
        .bind(&r.id)
        .bind(&r.digest)
        .bind(&r.state)
        .bind(&r.agent)
        .bind(&r.principal)
        .bind(&r.mission_id)
        .bind(&r.tool)
        .bind(r.created_at_ms)
        .bind(r.expires_at_ms)
        .bind(version)
        .bind(&body)
        .fetch_optional(pool)
        .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&r.id))
}

/// [`crate::Store::approval`] on SQLite.
pub(crate) async fn sqlite_get(
    pool: &SqlitePool,
    id: &str,
) -> Result<Option<ApprovalRecord>, StoreError> {
    let row: Option<Row> = timed(async {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?)
    })
    .await?;
    row.map(record_of).transpose()
}

/// [`crate::Store::approvals`] on SQLite.
pub(crate) async fn sqlite_list(
    pool: &SqlitePool,
    filter: &ApprovalFilter,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    let (sql, params, limit) = listing(filter, |n| format!("?{n}"));
    let rows: Vec<Row> = timed(async {
        let mut q = sqlx::query_as(&sql);
        for p in &params {
            q = q.bind(p);
        }
        Ok(q.bind(limit).fetch_all(pool).await?)
    })
    .await?;
    rows.into_iter().map(record_of).collect()
}

/// [`crate::Store::swap_approval`] on SQLite.
pub(crate) async fn sqlite_swap(
    pool: &SqlitePool,
    r: &ApprovalRecord,
    expected: u64,
) -> Result<bool, StoreError> {
    let body = canonical_string(&r.body);
    let expected = version_i64(expected)?;
    let done = timed(async {
        Ok(sqlx::query(
            "UPDATE approval_requests SET state = ?1, body = ?2, version = version + 1 \
             WHERE id = ?3 AND version = ?4",
        )
        .bind(&r.state)
        .bind(&body)
        .bind(&r.id)
        .bind(expected)
        .execute(pool)
        .await?)
    })
    .await?;
    Ok(done.rows_affected() == 1)
}

/// [`crate::Store::put_approval`] on PostgreSQL; `channel` and `notice` announce it.
pub(crate) async fn pg_put(
    pool: &PgPool,
    r: &ApprovalRecord,
    channel: &str,
    notice: &str,
) -> Result<(), StoreError> {
    let body = canonical_string(&r.body);
    let version = version_i64(r.version)?;
    let written: Option<(Option<String>,)> = timed(async {
        Ok(sqlx::query_as(&format!(
            "WITH w AS (INSERT INTO approval_requests ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
             $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING RETURNING id) \
             SELECT pg_notify($12, $13)::text FROM w"
        ))
        .bind(&r.id)
        .bind(&r.digest)
        .bind(&r.state)
        .bind(&r.agent)
        .bind(&r.principal)
        .bind(&r.mission_id)
        .bind(&r.tool)
        .bind(r.created_at_ms)
        .bind(r.expires_at_ms)
        .bind(version)
        .bind(&body)
        .bind(channel)
        .bind(notice)
        .fetch_optional(pool)
        .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&r.id))
}

/// [`crate::Store::approval`] on PostgreSQL.
pub(crate) async fn pg_get(pool: &PgPool, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
    let row: Option<Row> = timed(async {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM approval_requests WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?)
    })
    .await?;
    row.map(record_of).transpose()
}

/// [`crate::Store::approvals`] on PostgreSQL.
pub(crate) async fn pg_list(
    pool: &PgPool,
    filter: &ApprovalFilter,
) -> Result<Vec<ApprovalRecord>, StoreError> {
    let (sql, params, limit) = listing(filter, |n| format!("${n}"));
    let sql = sql.replace("id DESC", "id COLLATE \"C\" DESC");
    let rows: Vec<Row> = timed(async {
        let mut q = sqlx::query_as(&sql);
        for p in &params {
            q = q.bind(p);
        }
        Ok(q.bind(limit).fetch_all(pool).await?)
    })
    .await?;
    rows.into_iter().map(record_of).collect()
}

/// [`crate::Store::swap_approval`] on PostgreSQL; `channel` and `notice` announce it.
pub(crate) async fn pg_swap(
    pool: &PgPool,
    r: &ApprovalRecord,
    expected: u64,
    channel: &str,
    notice: &str,
) -> Result<bool, StoreError> {
    let body = canonical_string(&r.body);
    let expected = version_i64(expected)?;
    let written: Option<(Option<String>,)> = timed(async {
        Ok(sqlx::query_as(
            "WITH w AS (UPDATE approval_requests SET state = $1, body = $2, \
             version = version + 1 WHERE id = $3 AND version = $4 RETURNING id) \
             SELECT pg_notify($5, $6)::text FROM w",
        )
        .bind(&r.state)
        .bind(&body)
        .bind(&r.id)
        .bind(expected)
        .bind(channel)
        .bind(notice)
        .fetch_optional(pool)
        .await?)
    })
    .await?;
    Ok(written.is_some())
}
