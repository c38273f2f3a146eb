//! Mission grants on SQLite and PostgreSQL (see [`crate::Store::put_grant`]).
//!
//! Both backends run the same SQL text: only the placeholders (`?N` on SQLite, `$N` on
//! PostgreSQL) and the collation of the tie-break differ, so the statements, the parameters
//! and the mapping of rows to [`GrantRecord`] are written once, here. A grant is inserted
//! with `ON CONFLICT DO NOTHING … RETURNING`: no row back means the mission id was taken,
//! and the first grant is left as it was.

use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::sqlite::SqliteArguments;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::audit::timed;
use crate::canonical::canonical_string;
use crate::mission::parse_json;
use crate::types::{GrantFilter, GrantRecord};
use crate::StoreError;

/// The columns of `mission_grants`, in the order of [`Row`] and of the insert's parameters.
const COLUMNS: &str = "mission_id, template, agent, principal, purpose, granted_by, auth, \
                       granted_at_ms, expires_at_ms, narrowing, token_digest, parent";

/// A row of `mission_grants`, as selected with [`COLUMNS`].
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
    Option<String>,
    String,
    Option<String>,
);

/// The SQL dialect a statement is written for.
#[derive(Clone, Copy)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The `n`-th parameter (from 1).
    fn param(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// The mission id compared byte by byte, whatever the database's collation (SQLite's
    /// default collation already is).
    fn id_bytes(self) -> &'static str {
        match self {
            Dialect::Sqlite => "mission_id",
            Dialect::Postgres => "mission_id COLLATE \"C\"",
        }
    }
}

/// A parameter of a statement, bound in order.
enum Param {
    Text(String),
    MaybeText(Option<String>),
    Int(i64),
}

/// The insert, with the grant's values as its parameters.
fn insert(dialect: Dialect, grant: &GrantRecord) -> (String, Vec<Param>) {
    let params = vec![
        Param::Text(grant.mission_id.clone()),
        Param::Text(grant.template.clone()),
        Param::Text(grant.agent.clone()),
        Param::Text(grant.principal.clone()),
        Param::Text(grant.purpose.clone()),
        Param::Text(grant.granted_by.clone()),
        Param::Text(grant.auth.clone()),
        Param::Int(grant.granted_at_ms),
        Param::Int(grant.expires_at_ms),
        Param::MaybeText(grant.narrowing.as_ref().map(canonical_string)),
        Param::Text(grant.token_digest.clone()),
        Param::MaybeText(grant.parent.clone()),
    ];
    let places: Vec<String> = (1..=params.len()).map(|n| dialect.param(n)).collect();
    let sql = format!(
        "INSERT INTO mission_grants ({COLUMNS}) VALUES ({}) \
         ON CONFLICT (mission_id) DO NOTHING RETURNING mission_id",
        places.join(", ")
    );
    (sql, params)
}

/// The select of one mission's grant.
fn select_one(dialect: Dialect, mission_id: &str) -> (String, Vec<Param>) {
    (
        format!(
            "SELECT {COLUMNS} FROM mission_grants WHERE mission_id = {}",
            dialect.param(1)
        ),
        vec![Param::Text(mission_id.to_string())],
    )
}

/// The select of the grants matching `filter`, newest first.
fn select(dialect: Dialect, filter: &GrantFilter) -> (String, Vec<Param>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    let mut condition = |clause: &str, param: Param| {
        params.push(param);
        conditions.push(format!("{clause} {}", dialect.param(params.len())));
    };
    if let Some(agent) = &filter.agent {
        condition("agent =", Param::Text(agent.clone()));
    }
    if let Some(principal) = &filter.principal {
        condition("principal =", Param::Text(principal.clone()));
    }
    if let Some(at) = filter.live_at_ms {
        condition("expires_at_ms >", Param::Int(at));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM mission_grants");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY granted_at_ms DESC, {} DESC",
        dialect.id_bytes()
    ));
    if filter.limit > 0 {
        params.push(Param::Int(i64::from(filter.limit)));
        sql.push_str(&format!(" LIMIT {}", dialect.param(params.len())));
    }
    (sql, params)
}

/// A stored row as a grant; a narrowing that is not JSON any more is damage.
fn record_of(row: Row) -> Result<GrantRecord, StoreError> {
    let (
        mission_id,
        template,
        agent,
        principal,
        purpose,
        granted_by,
        auth,
        granted_at_ms,
        expires_at_ms,
        narrowing,
        token_digest,
        parent,
    ) = row;
    let narrowing = narrowing
        .map(|text| parse_json(&text, &format!("the narrowing of mission `{mission_id}`")))
        .transpose()?;
    Ok(GrantRecord {
        mission_id,
        template,
        agent,
        principal,
        purpose,
        granted_by,
        auth,
        granted_at_ms,
        expires_at_ms,
        narrowing,
        token_digest,
        parent,
    })
}

/// The error of a second grant under one mission id.
pub(crate) fn taken(mission_id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "mission id `{mission_id}` is taken: a grant was recorded under it already"
    ))
}

/// Whether a grant passes `filter`, for the in-memory backend: the same rules as the SQL of
/// [`select`].
pub(crate) fn matches(grant: &GrantRecord, filter: &GrantFilter) -> bool {
    filter.agent.as_ref().is_none_or(|a| &grant.agent == a)
        && filter
            .principal
            .as_ref()
            .is_none_or(|p| &grant.principal == p)
        && filter.live_at_ms.is_none_or(|at| grant.expires_at_ms > at)
}

/// Sorts grants newest first, as the SQL of [`select`] does, and keeps at most `limit`
/// (0: all).
pub(crate) fn newest_first(mut grants: Vec<GrantRecord>, limit: u32) -> Vec<GrantRecord> {
    grants.sort_by(|a, b| (b.granted_at_ms, &b.mission_id).cmp(&(a.granted_at_ms, &a.mission_id)));
    if limit > 0 {
        grants.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    grants
}

fn bind_sqlite<'q, O>(
    mut query: QueryAs<'q, Sqlite, O, SqliteArguments<'q>>,
    params: Vec<Param>,
) -> QueryAs<'q, Sqlite, O, SqliteArguments<'q>> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::MaybeText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
        };
    }
    query
}

fn bind_pg<'q, O>(
    mut query: QueryAs<'q, Postgres, O, PgArguments>,
    params: Vec<Param>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::MaybeText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
        };
    }
    query
}

/// [`crate::Store::put_grant`] on SQLite.
pub(crate) async fn sqlite_put(pool: &SqlitePool, grant: &GrantRecord) -> Result<(), StoreError> {
    let (sql, params) = insert(Dialect::Sqlite, grant);
    let written: Option<(String,)> = timed(async {
        Ok(bind_sqlite(sqlx::query_as(&sql), params)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&grant.mission_id))
}

/// [`crate::Store::grant`] on SQLite.
pub(crate) async fn sqlite_get(
    pool: &SqlitePool,
    mission_id: &str,
) -> Result<Option<GrantRecord>, StoreError> {
    let (sql, params) = select_one(Dialect::Sqlite, mission_id);
    let row: Option<Row> = timed(async {
        Ok(bind_sqlite(sqlx::query_as(&sql), params)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    row.map(record_of).transpose()
}

/// [`crate::Store::grants`] on SQLite.
pub(crate) async fn sqlite_list(
    pool: &SqlitePool,
    filter: &GrantFilter,
) -> Result<Vec<GrantRecord>, StoreError> {
    let (sql, params) = select(Dialect::Sqlite, filter);
    let rows: Vec<Row> = timed(async {
        Ok(bind_sqlite(sqlx::query_as(&sql), params)
            .fetch_all(pool)
            .await?)
    })
    .await?;
    rows.into_iter().map(record_of).collect()
}

/// [`crate::Store::put_grant`] on PostgreSQL.
pub(crate) async fn pg_put(pool: &PgPool, grant: &GrantRecord) -> Result<(), StoreError> {
    let (sql, params) = insert(Dialect::Postgres, grant);
    let written: Option<(String,)> = timed(async {
        Ok(bind_pg(sqlx::query_as(&sql), params)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    written.map(|_| ()).ok_or_else(|| taken(&grant.mission_id))
}

/// [`crate::Store::grant`] on PostgreSQL.
pub(crate) async fn pg_get(
    pool: &PgPool,
    mission_id: &str,
) -> Result<Option<GrantRecord>, StoreError> {
    let (sql, params) = select_one(Dialect::Postgres, mission_id);
    let row: Option<Row> = timed(async {
        Ok(bind_pg(sqlx::query_as(&sql), params)
            .fetch_optional(pool)
            .await?)
    })
    .await?;
    row.map(record_of).transpose()
}

/// [`crate::Store::grants`] on PostgreSQL.
pub(crate) async fn pg_list(
    pool: &PgPool,
    filter: &GrantFilter,
) -> Result<Vec<GrantRecord>, StoreError> {
    let (sql, params) = select(Dialect::Postgres, filter);
    let rows: Vec<Row> = timed(async {
        Ok(bind_pg(sqlx::query_as(&sql), params)
            .fetch_all(pool)
            .await?)
    })
    .await?;
    rows.into_iter().map(record_of).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_select_names_each_condition_once_in_order() {
        let filter = GrantFilter {
            agent: Some("a".into()),
            principal: None,
            live_at_ms: Some(5),
            limit: 3,
        };
        let (sql, params) = select(Dialect::Postgres, &filter);
        assert_eq!(
            sql,
            format!(
                "SELECT {COLUMNS} FROM mission_grants WHERE agent = $1 AND expires_at_ms > $2 \
                 ORDER BY granted_at_ms DESC, mission_id COLLATE \"C\" DESC LIMIT $3"
            )
        );
        assert_eq!(params.len(), 3);
        let (sql, params) = select(Dialect::Sqlite, &GrantFilter::default());
        assert_eq!(
            sql,
            format!(
                "SELECT {COLUMNS} FROM mission_grants ORDER BY granted_at_ms DESC, mission_id DESC"
            )
        );
        assert!(params.is_empty());
    }
}
