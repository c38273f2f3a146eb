//! Approval requests on every backend: read back as written, a taken id refused, lists
//! filtered by state, digest and principal, newest first; a swap wins only at the version it
//! read, so of many concurrent users of one approval exactly one wins (also across two stores
//! on one PostgreSQL database), and every change is announced on the feed.

use std::sync::Arc;

use serde_json::json;
use warden_store::{open, ApprovalFilter, ApprovalRecord, Change, Store, StoreError};

use crate::support::{PgSchema, SqliteFile};

fn request(id: &str, digest: &str, principal: &str, at: i64) -> ApprovalRecord {
    ApprovalRecord {
        id: id.into(),
        digest: digest.into(),
        state: "pending".into(),
        agent: "forum-helper".into(),
        principal: principal.into(),
        mission_id: "m1".into(),
        tool: "forum.post_reply".into(),
        created_at_ms: at,
        expires_at_ms: at + 3_600_000,
        version: 1,
        body: json!({"holds": ["ask-exposure"], "n": at}),
    }
}

async fn round_trip(store: Arc<dyn Store>) {
    let mut feed = store.subscribe();
    assert_eq!(store.approval("a1").await.unwrap(), None);
    store
        .put_approval(&request("a1", "d1", "alice", 10))
        .await
        .unwrap();
    assert!(matches!(
        store.put_approval(&request("a1", "d9", "bob", 11)).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .put_approval(&request("a2", "d1", "bob", 20))
        .await
        .unwrap();
    store
        .put_approval(&request("a3", "d3", "alice", 30))
        .await
        .unwrap();
    assert_eq!(
        store.approval("a1").await.unwrap().unwrap(),
        request("a1", "d1", "alice", 10)
    );
    let ids = |rs: Vec<ApprovalRecord>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.approvals(&ApprovalFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["a3", "a2", "a1"]);
    let by_digest = ApprovalFilter {
        digest: Some("d1".into()),
        ..ApprovalFilter::default()
    };
    assert_eq!(
        ids(store.approvals(&by_digest).await.unwrap()),
        ["a2", "a1"]
    );
    let alice_one = ApprovalFilter {
        principal: Some("alice".into()),
        limit: 1,
        ..ApprovalFilter::default()
    };
    assert_eq!(ids(store.approvals(&alice_one).await.unwrap()), ["a3"]);

    // A swap at the version read wins once; a stale one writes nothing.
    let mut approved = request("a1", "d1", "alice", 10);
    approved.state = "approved".into();
    approved.body = json!({"approved_by": ["dave"]});
    assert!(store.swap_approval(&approved, 1).await.unwrap());
    assert!(!store.swap_approval(&approved, 1).await.unwrap());
    let now = store.approval("a1").await.unwrap().unwrap();
    assert_eq!((now.state.as_str(), now.version), ("approved", 2));
    assert_eq!(now.body, json!({"approved_by": ["dave"]}));
    assert!(!store
        .swap_approval(&request("nope", "d", "x", 1), 1)
        .await
        .unwrap());
    let pending = ApprovalFilter {
        state: Some("pending".into()),
        ..ApprovalFilter::default()
    };
    assert_eq!(ids(store.approvals(&pending).await.unwrap()), ["a3", "a2"]);

    let mut seen = Vec::new();
    while let Ok(Ok(c)) = tokio::time::timeout(std::time::Duration::from_secs(2), feed.recv()).await
    {
        seen.push(c);
        if seen.len() == 4 {
            break;
        }
    }
    for id in ["a1", "a2", "a3"] {
        assert!(
            seen.contains(&Change::Approval(id.into())),
            "{id}: {seen:?}"
        );
    }
}

/// Many tasks on `stores` try to use one approved request at version 2: exactly one wins.
async fn used_once(stores: Vec<Arc<dyn Store>>) {
    let mut r = request("u1", "du", "alice", 5);
    stores[0].put_approval(&r).await.unwrap();
    r.state = "approved".into();
    assert!(stores[0].swap_approval(&r, 1).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % stores.len()].clone();
        let mut used = r.clone();
        used.state = "used".into();
        used.body = json!({"used_by": i});
        tasks.push(tokio::spawn(async move {
            store.swap_approval(&used, 2).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    let now = stores[0].approval("u1").await.unwrap().unwrap();
    assert_eq!((now.state.as_str(), now.version), ("used", 3));
}

#[tokio::test]
async fn approvals_on_every_backend() {
    let file = SqliteFile::new();
    let schema = PgSchema::new().await;
    for url in ["memory:", file.url.as_str(), schema.url.as_str()] {
        round_trip(open(url).await.unwrap()).await;
    }
}

#[tokio::test]
async fn an_approval_is_used_once_across_replicas() {
    used_once(vec![open("memory:").await.unwrap()]).await;
    let file = SqliteFile::new();
    used_once(vec![open(&file.url).await.unwrap()]).await;
    let schema = PgSchema::new().await;
    used_once(vec![
        open(&schema.url).await.unwrap(),
        open(&schema.url).await.unwrap(),
    ])
    .await;
}
