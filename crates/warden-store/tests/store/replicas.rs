//! Two replicas on one PostgreSQL schema; group commit on every backend.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_store::{open, verify, Change, Store, VerifyOptions};

use crate::support::{input, PgSchema, SqliteFile};

async fn two_replicas() -> (PgSchema, Arc<dyn Store>, Arc<dyn Store>) {
    let schema = PgSchema::new().await;
    let a = open(&schema.url).await.unwrap();
    let b = open(&schema.url).await.unwrap();
    (schema, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_spent_from_two_replicas_allows_exactly_its_limit() {
    let (_schema, a, b) = two_replicas().await;
    let mut tasks = Vec::new();
    for i in 0..240 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.spend("m1", "calls", 1, 100).await.unwrap().is_ok()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 100);
    assert_eq!(
        a.load_mission("m1").await.unwrap().budgets["calls"].spent,
        100
    );
    assert_eq!(
        b.spend("m1", "calls", 1, 100)
            .await
            .unwrap()
            .unwrap_err()
            .spent,
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_appending_at_once_build_one_chain() {
    let (_schema, a, b) = two_replicas().await;
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.append(vec![input(i), input(i + 1)]).await.unwrap()
        }));
    }
    let mut seqs = BTreeSet::new();
    for task in tasks {
        let metas = task.await.unwrap();
        // A caller's records are consecutive.
        assert_eq!(metas[1].seq, metas[0].seq + 1);
        seqs.extend(metas.iter().map(|m| m.seq));
    }
    assert_eq!(seqs, (1..=800).collect());
    let report = verify(b.as_ref(), VerifyOptions::default()).await.unwrap();
    assert!(report.ok(), "{:?}", report.faults);
    assert_eq!(report.records, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_the_other_replica_within_a_second() {
    let (_schema, a, b) = two_replicas().await;
    let mut feed = b.subscribe();
    let started = Instant::now();
    a.revoke("m7", "stop").await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match feed.recv().await {
                Ok(Change::Revoked(id)) if id == "m7" => break,
                Ok(_) => continue,
                Err(e) => panic!("feed closed: {e}"),
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "no revocation on the other replica within 1 s"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(b.is_revoked("m7").await.unwrap().unwrap().reason, "stop");

    // Breakers and mission changes travel the same way.
    a.set_breaker("global", &serde_json::json!({"tripped": true}))
        .await
        .unwrap();
    let breaker = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let Ok(Change::Breaker(key)) = feed.recv().await {
                break key;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(breaker, "global");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taint_absorbed_on_one_replica_is_seen_on_the_other() {
    let (_schema, a, b) = two_replicas().await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let taint = [
                ("secret".to_string(), vec![serde_json::json!({"call": i})]),
                (format!("l{}", i % 3), vec![serde_json::json!(i)]),
            ]
            .into();
            store.absorb("m1", &taint).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let state = b.load_mission("m1").await.unwrap();
    // Nothing lost: every replica's sources are in the union.
    assert_eq!(state.taint["secret"].len(), 40);
    assert_eq!(state.taint.len(), 4);
}

async fn group_commit(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.append(vec![input(i)]).await.unwrap()[0].seq })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for task in tasks {
        seqs.insert(task.await.unwrap());
    }
    assert_eq!(seqs, (1..=1000).collect());
    let report = verify(store.as_ref(), VerifyOptions::default())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.faults);
    assert_eq!(report.records, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_memory() {
    group_commit(open("memory:").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_sqlite() {
    let file = SqliteFile::new();
    group_commit(open(&file.url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_postgres() {
    let schema = PgSchema::new().await;
    group_commit(open(&schema.url).await.unwrap()).await;
}
