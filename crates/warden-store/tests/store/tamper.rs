//! Tampering with plain SQL, on SQLite and PostgreSQL; `verify` names the first bad record.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;
use warden_store::{
    canonical_string, generate_keypair, hash_of, open_with, verify, AuditColumns, AuditConfig,
    AuditKind, FaultKind, KeySource, SigningKey, Store, VerifyOptions, VerifyReport,
};

use crate::support::{input, PgSchema, Sql, SqliteFile};

/// A chain of 20 records, checkpointed every 5 (at 5, 10, 15, 20, and 20 again on demand),
/// signed, kept outside.
struct Chain {
    store: Arc<dyn Store>,
    sql: Sql,
    key: SigningKey,
    outside: PathBuf,
    _dir: tempfile::TempDir,
    _sqlite: Option<SqliteFile>,
    _pg: Option<PgSchema>,
}

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Pg,
}

impl Chain {
    async fn new(db: Db) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("checkpoints.jsonl");
        let key = generate_keypair().unwrap();
        let config = AuditConfig {
            signing_key: Some(KeySource::Key(Box::new(key.clone()))),
            checkpoint_every: 5,
            checkpoint_seconds: 0,
            checkpoint_file: Some(outside.clone()),
            ..AuditConfig::default()
        };
        let (url, sqlite, pg) = match db {
            Db::Sqlite => {
                let file = SqliteFile::new();
                (file.url.clone(), Some(file), None)
            }
            Db::Pg => {
                let schema = PgSchema::new().await;
                (schema.url.clone(), None, Some(schema))
            }
        };
        let store = open_with(&url, config).await.unwrap();
        for i in 0..20 {
            store.append(vec![input(i)]).await.unwrap();
        }
        // Another checkpoint at 20, and every one before it written outside.
        store.checkpoint_now().await.unwrap();
        let sql = match (&sqlite, &pg) {
            (Some(file), _) => Sql::sqlite(&file.path()).await,
            (_, Some(schema)) => Sql::pg(&schema.url).await,
            _ => unreachable!(),
        };
        Chain {
            store,
            sql,
            key,
            outside,
            _dir: dir,
            _sqlite: sqlite,
            _pg: pg,
        }
    }

    async fn verify(&self) -> VerifyReport {
        verify(
            self.store.as_ref(),
            VerifyOptions {
                public_key: Some(self.key.verifying_key()),
                outside_checkpoints: Some(self.outside.clone()),
                page_size: Some(4),
            },
        )
        .await
        .unwrap()
    }

    async fn expect(&self, seq: u64, kind: FaultKind) {
        let report = self.verify().await;
        let first = report
            .first_fault()
            .unwrap_or_else(|| panic!("tampering not detected; expected {kind} at {seq}"));
        assert_eq!((first.seq, first.kind), (seq, kind), "{:?}", report.faults);
    }
}

async fn untouched(db: Db) {
    let chain = Chain::new(db).await;
    let report = chain.verify().await;
    assert!(report.ok(), "{:?}", report.faults);
    assert_eq!(report.records, 20);
    assert_eq!(report.checkpoints, 10);
}

async fn edited_body(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(r#"UPDATE audit_record SET body = '{"reasons":[]}' WHERE seq = 7"#)
        .await;
    chain.expect(7, FaultKind::Edited).await;
}

async fn edited_column(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec("UPDATE audit_record SET outcome = 'allow' WHERE seq = 4")
        .await;
    chain.expect(4, FaultKind::Edited).await;
}

async fn body_no_longer_json(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec("UPDATE audit_record SET body = 'oops' WHERE seq = 3")
        .await;
    chain.expect(3, FaultKind::Edited).await;
}

async fn deleted(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec("DELETE FROM audit_record WHERE seq = 7")
        .await;
    chain.expect(7, FaultKind::Deleted).await;
}

async fn deleted_and_renumbered(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(
            "DELETE FROM audit_record WHERE seq = 7; \
             UPDATE audit_record SET seq = -(seq - 1) WHERE seq > 7; \
             UPDATE audit_record SET seq = -seq WHERE seq < 0;",
        )
        .await;
    chain.expect(7, FaultKind::Deleted).await;
}

async fn reordered(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(
            "UPDATE audit_record SET seq = -7 WHERE seq = 7; \
             UPDATE audit_record SET seq = 7 WHERE seq = 8; \
             UPDATE audit_record SET seq = 8 WHERE seq = -7;",
        )
        .await;
    chain.expect(7, FaultKind::Reordered).await;
}

/// A record slipped in at 7 by someone who can compute SHA-256: its own hash is right, the
/// next record's link is not.
async fn inserted_with_a_right_hash(db: Db) {
    let chain = Chain::new(db).await;
    let prev = chain.store.audit_get(6).await.unwrap().unwrap().hash;
    let body = json!({"forged": true});
    let columns = AuditColumns {
        decision_id: Some("forged".into()),
        ..AuditColumns::default()
    };
    let hash = hash_of(7, &AuditKind::Decision, 5, &columns, &body, &prev);
    let sql = format!(
        "UPDATE audit_record SET seq = -seq - 1 WHERE seq >= 7; \
         UPDATE audit_record SET seq = -seq WHERE seq < 0; \
         INSERT INTO audit_record (seq, kind, at_ms, decision_id, body, prev_hash, hash) \
         VALUES (7, 'decision', 5, 'forged', '{}', {}, {});",
        canonical_string(&body),
        chain.sql.bytes(&prev.0),
        chain.sql.bytes(&hash.0)
    );
    chain.sql.exec(&sql).await;
    chain.expect(7, FaultKind::Inserted).await;
}

/// The same with a made-up hash.
async fn inserted_with_a_wrong_hash(db: Db) {
    let chain = Chain::new(db).await;
    let prev = chain.store.audit_get(6).await.unwrap().unwrap().hash;
    let sql = format!(
        "UPDATE audit_record SET seq = -seq - 1 WHERE seq >= 7; \
         UPDATE audit_record SET seq = -seq WHERE seq < 0; \
         INSERT INTO audit_record (seq, kind, at_ms, body, prev_hash, hash) \
         VALUES (7, 'decision', 5, '{{}}', {}, {});",
        chain.sql.bytes(&prev.0),
        chain.sql.bytes(&[9; 32])
    );
    chain.sql.exec(&sql).await;
    chain.expect(7, FaultKind::Inserted).await;
}

/// The tail cut after the checkpoint at 15, the database's own checkpoints and head
/// adjusted: only the checkpoints kept outside show it.
async fn truncated(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(
            "DELETE FROM audit_record WHERE seq > 12; \
             DELETE FROM audit_checkpoint WHERE seq > 12; \
             UPDATE audit_head SET seq = 12, hash = (SELECT hash FROM audit_record WHERE seq = 12);",
        )
        .await;
    chain.expect(13, FaultKind::Truncated).await;
    // Without the copy kept outside, nothing in the database can tell.
    let inside_only = verify(chain.store.as_ref(), VerifyOptions::default())
        .await
        .unwrap();
    assert!(inside_only.ok());
    // Appending after the cut goes on from the head: still caught, the chain is short of the
    // checkpoint at 15.
    chain.store.append(vec![input(50)]).await.unwrap();
    chain.expect(14, FaultKind::Truncated).await;
}

async fn signature_swapped(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(
            "UPDATE audit_checkpoint SET signature = \
             (SELECT signature FROM audit_checkpoint WHERE seq = 5) WHERE seq = 10",
        )
        .await;
    chain.expect(10, FaultKind::BadSignature).await;
}

async fn checkpoint_swapped(db: Db) {
    let chain = Chain::new(db).await;
    chain
        .sql
        .exec(
            "UPDATE audit_checkpoint SET hash = \
             (SELECT hash FROM audit_record WHERE seq = 9) WHERE seq = 10",
        )
        .await;
    let report = chain.verify().await;
    let at_ten: Vec<FaultKind> = report
        .faults
        .iter()
        .filter(|f| f.seq == 10)
        .map(|f| f.kind)
        .collect();
    assert_eq!(report.first_fault().unwrap().seq, 10);
    assert!(at_ten.contains(&FaultKind::CheckpointSwapped), "{at_ten:?}");
    assert!(
        at_ten.contains(&FaultKind::CheckpointMismatch),
        "{at_ten:?}"
    );
    assert!(at_ten.contains(&FaultKind::BadSignature), "{at_ten:?}");
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { super::$name(super::Db::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { super::$name(super::Db::Pg).await })*
        }
    };
}

both!(
    untouched,
    edited_body,
    edited_column,
    body_no_longer_json,
    deleted,
    deleted_and_renumbered,
    reordered,
    inserted_with_a_right_hash,
    inserted_with_a_wrong_hash,
    truncated,
    signature_swapped,
    checkpoint_swapped,
);
