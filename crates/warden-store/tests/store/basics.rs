//! Append and read back, checkpoints, reopening, refusing damage at open.

use std::sync::Arc;

use serde_json::json;
use warden_store::{
    generate_keypair, open, open_with, read_outside, verify, AuditConfig, Backend, KeySource,
    Store, StoreError, VerifyOptions,
};

use crate::support::{input, PgSchema, SqliteFile};

async fn round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.audit_tail_seq().await.unwrap(), 0);
    assert_eq!(store.checkpoint_now().await.unwrap(), None);
    let metas = store.append((0..10).map(input).collect()).await.unwrap();
    assert_eq!(
        metas.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let more = store.append(vec![input(10)]).await.unwrap();
    assert_eq!(more[0].seq, 11);
    assert_eq!(store.audit_tail_seq().await.unwrap(), 11);

    let records = store.audit_range(1, 100).await.unwrap();
    assert_eq!(records.len(), 11);
    for (i, record) in records.iter().enumerate() {
        let sent = input(i);
        assert_eq!(record.seq, i as u64 + 1);
        assert_eq!(record.kind, sent.kind);
        assert_eq!(record.columns, sent.columns);
        assert_eq!(record.body, sent.body);
        assert_eq!(record.at_ms, sent.at_ms);
    }
    assert_eq!(records[4].hash, metas[4].hash);
    assert_eq!(records[5].prev_hash, metas[4].hash);
    assert_eq!(store.audit_range(5, 2).await.unwrap().len(), 2);
    assert_eq!(store.audit_get(3).await.unwrap().unwrap().seq, 3);
    assert!(store.audit_get(99).await.unwrap().is_none());
    let decision = store.audit_by_decision("d1").await.unwrap();
    assert_eq!(
        decision.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(
        store.audit_seq_of_hash(&metas[2].hash).await.unwrap(),
        Some(3)
    );
    let report = verify(store.as_ref(), VerifyOptions::default())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.faults);
    assert_eq!(report.records, 11);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn memory_round_trip() {
    let store = open("memory:").await.unwrap();
    assert_eq!(store.backend(), Backend::Memory);
    round_trip(store).await;
}

#[tokio::test]
async fn sqlite_round_trip() {
    let file = SqliteFile::new();
    let store = open(&file.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    round_trip(store).await;
}

#[tokio::test]
async fn postgres_round_trip() {
    let schema = PgSchema::new().await;
    let store = open(&schema.url).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    round_trip(store).await;
}

#[tokio::test]
async fn checkpoints_are_signed_and_kept_outside() {
    let file = SqliteFile::new();
    let key = generate_keypair().unwrap();
    let outside = file.dir.path().join("checkpoints.jsonl");
    let config = AuditConfig {
        signing_key: Some(KeySource::Key(Box::new(key.clone()))),
        checkpoint_every: 4,
        checkpoint_seconds: 0,
        checkpoint_file: Some(outside.clone()),
        ..AuditConfig::default()
    };
    let store = open_with(&file.url, config).await.unwrap();
    for i in 0..10 {
        store.append(vec![input(i)]).await.unwrap();
    }
    // A checkpoint on demand returns once every checkpoint before it is written outside too.
    let now = store.checkpoint_now().await.unwrap().unwrap();
    assert_eq!(now.seq, 10);
    let kept = read_outside(&outside).unwrap();
    assert_eq!(
        kept.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![4, 8, 10]
    );
    assert_eq!(store.checkpoints().await.unwrap(), kept);
    let report = verify(
        store.as_ref(),
        VerifyOptions {
            public_key: Some(key.verifying_key()),
            outside_checkpoints: Some(outside.clone()),
            page_size: Some(3),
        },
    )
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.faults);
    assert_eq!(report.checkpoints, 6);
    assert_eq!(report.signatures, 6);
    // Another key does not verify them.
    let other = generate_keypair().unwrap();
    let report = verify(
        store.as_ref(),
        VerifyOptions {
            public_key: Some(other.verifying_key()),
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.first_fault().unwrap().seq, 4);
}

#[tokio::test]
async fn a_missing_checkpoint_file_is_an_error_once_there_are_checkpoints() {
    let store = open("memory:").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = VerifyOptions {
        outside_checkpoints: Some(dir.path().join("none.jsonl")),
        ..VerifyOptions::default()
    };
    store.append(vec![input(0)]).await.unwrap();
    assert!(verify(store.as_ref(), options.clone()).await.unwrap().ok());
    store.checkpoint_now().await.unwrap();
    assert!(matches!(
        verify(store.as_ref(), options).await.unwrap_err(),
        StoreError::File { .. }
    ));
}

#[tokio::test]
async fn checkpoints_by_time() {
    let store = open_with(
        "memory:",
        AuditConfig {
            checkpoint_every: 0,
            checkpoint_seconds: 1,
            ..AuditConfig::default()
        },
    )
    .await
    .unwrap();
    store.append(vec![input(0), input(1)]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.checkpoints().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(store.checkpoints().await.unwrap()[0].seq, 2);
}

#[tokio::test]
async fn sqlite_state_survives_reopening() {
    let file = SqliteFile::new();
    {
        let store = open(&file.url).await.unwrap();
        store.append((0..5).map(input).collect()).await.unwrap();
        let taint = [("secret".to_string(), vec![json!({"tool": "drive/read"})])].into();
        store.absorb("m1", &taint).await.unwrap();
        assert_eq!(store.spend("m1", "calls", 3, 10).await.unwrap(), Ok(7));
        store.revoke("m2", "left the company").await.unwrap();
        store
            .set_breaker("agent:x", &json!({"tripped": true}))
            .await
            .unwrap();
    }
    let store = open(&file.url).await.unwrap();
    let mission = store.load_mission("m1").await.unwrap();
    assert_eq!(mission.taint["secret"], vec![json!({"tool": "drive/read"})]);
    assert_eq!(mission.budgets["calls"].spent, 3);
    assert_eq!(
        store
            .spend("m1", "calls", 8, 10)
            .await
            .unwrap()
            .unwrap_err()
            .spent,
        3
    );
    assert!(store.is_revoked("m2").await.unwrap().is_some());
    assert_eq!(
        store.breakers().await.unwrap()["agent:x"],
        json!({"tripped": true})
    );
    let metas = store.append(vec![input(5)]).await.unwrap();
    assert_eq!(metas[0].seq, 6);
    assert!(verify(store.as_ref(), VerifyOptions::default())
        .await
        .unwrap()
        .ok());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let file = SqliteFile::new();
    std::fs::write(file.path(), vec![0x5a; 8192]).unwrap();
    let error = open(&file.url).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    // Nothing was reset.
    assert_eq!(std::fs::read(file.path()).unwrap(), vec![0x5a; 8192]);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let file = SqliteFile::new();
    drop(open(&file.url).await.unwrap());
    let sql = crate::support::Sql::sqlite(&file.path()).await;
    sql.exec("INSERT INTO warden_migrations VALUES (99, 'future', X'00', 0)")
        .await;
    let error = open(&file.url).await.unwrap_err();
    assert!(matches!(error, StoreError::Migration(_)), "{error:?}");
    assert!(error.to_string().contains("99"), "{error}");
    assert!(matches!(
        warden_store::migrate(&file.url).await.unwrap_err(),
        StoreError::Migration(_)
    ));
}

#[tokio::test]
async fn migrate_alone_and_bad_urls() {
    let file = SqliteFile::new();
    assert_eq!(warden_store::migrate(&file.url).await.unwrap(), 6);
    let schema = PgSchema::new().await;
    assert_eq!(warden_store::migrate(&schema.url).await.unwrap(), 6);
    assert_eq!(warden_store::migrate(&schema.url).await.unwrap(), 6);
    for url in ["mysql://x", "sqlite://", "memory"] {
        assert!(matches!(
            open(url).await.unwrap_err(),
            StoreError::InvalidUrl { .. }
        ));
    }
}
