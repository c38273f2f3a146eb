//! Helpers: PostgreSQL schemas of their own, records, SQL on the store's database.

use std::path::PathBuf;

use serde_json::json;
use sqlx::{Connection, Executor};
use warden_store::{AuditColumns, AuditInput, AuditKind};

/// The shared PostgreSQL server of the tests.
pub fn pg_base() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn random_name(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    format!("{prefix}{}", hex::encode(bytes))
}

/// A schema of its own on the shared server, dropped when this value is.
pub struct PgSchema {
    pub url: String,
    base: String,
    name: String,
}

impl PgSchema {
    pub async fn new() -> PgSchema {
        let base = pg_base();
        let name = random_name("t_");
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!(
                "PostgreSQL at `{base}` is unreachable ({e}); start it (`.ci/run` does) or set \
                 WARDEN_TEST_POSTGRES"
            )
            });
        conn.execute(format!("CREATE SCHEMA {name}").as_str())
            .await
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={name}");
        PgSchema { url, base, name }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        // Dropping runs inside a runtime; do it on a thread with its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    let _ = conn
                        .execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// A decision record, different for each `i`.
pub fn input(i: usize) -> AuditInput {
    AuditInput {
        kind: if i % 3 == 2 {
            AuditKind::Outcome
        } else {
            AuditKind::Decision
        },
        at_ms: 1_760_000_000_000 + i as i64,
        columns: AuditColumns {
            decision_id: Some(format!("d{}", i / 3)),
            mission_id: Some(format!("m{}", i % 5)),
            principal: Some("alice".into()),
            agent: Some("forum-helper".into()),
            tool: Some("forum/post_reply".into()),
            outcome: Some(if i.is_multiple_of(2) { "allow" } else { "deny" }.into()),
        },
        body: json!({
            "reasons": [{"policy": "no-exposure", "text": format!("reason {i}")}],
            "exposure": {"count": i % 4, "members": ["bob", "carol"]},
            "labels": {"secret": [{"tool": "drive/read", "at": i}]},
            "ratio": 0.25,
        }),
    }
}

/// A temporary folder and an SQLite URL inside it.
pub struct SqliteFile {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl SqliteFile {
    pub fn new() -> SqliteFile {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("warden.db").display());
        SqliteFile { dir, url }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("warden.db")
    }
}

/// Plain SQL on a store's database, beside the store.
pub enum Sql {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Sql {
    pub async fn sqlite(path: &std::path::Path) -> Sql {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(std::time::Duration::from_secs(5));
        Sql::Sqlite(sqlx::SqlitePool::connect_with(options).await.unwrap())
    }

    pub async fn pg(url: &str) -> Sql {
        Sql::Pg(sqlx::PgPool::connect(url).await.unwrap())
    }

    pub async fn exec(&self, sql: &str) {
        match self {
            Sql::Sqlite(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
            Sql::Pg(pool) => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// A bytes literal in this database's dialect.
    pub fn bytes(&self, bytes: &[u8]) -> String {
        match self {
            Sql::Sqlite(_) => format!("X'{}'", hex::encode(bytes)),
            Sql::Pg(_) => format!("decode('{}', 'hex')", hex::encode(bytes)),
        }
    }
}
