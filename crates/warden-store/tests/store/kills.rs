//! Replicas and the kill switch: heartbeats keep the first start time, kills read back and are
//! announced on the feed, a taken kill id is refused, acknowledgements are kept once; two
//! stores on one PostgreSQL schema see each other's heartbeats, kills and acknowledgements.

use std::sync::Arc;
use std::time::Duration;

use warden_store::{open, Change, KillAck, KillRecord, Replica, Store, StoreError};

use crate::support::{PgSchema, SqliteFile};

fn replica(id: &str, started: i64, beat: i64) -> Replica {
    Replica {
        id: id.to_string(),
        name: format!("host-{id}/42"),
        started_at_ms: started,
        heartbeat_at_ms: beat,
    }
}

fn kill(id: &str, scope: &str, at: i64) -> KillRecord {
    KillRecord {
        id: id.to_string(),
        scope: scope.to_string(),
        by: "alice@example.com".into(),
        reason: "the agent is posting salaries".into(),
        at_ms: at,
    }
}

/// The next change on `feed` that is a kill, within 5 s.
async fn next_kill(feed: &mut tokio::sync::broadcast::Receiver<Change>) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Change::Kill(id) = feed.recv().await.unwrap() {
                return id;
            }
        }
    })
    .await
    .expect("no kill on the feed within 5 s")
}

async fn kills(store: Arc<dyn Store>) {
    assert!(store.replicas().await.unwrap().is_empty());
    store.heartbeat(&replica("r2", 100, 100)).await.unwrap();
    store.heartbeat(&replica("r1", 200, 200)).await.unwrap();
    // Again, later: the start time stays, the heartbeat moves.
    store.heartbeat(&replica("r2", 999, 300)).await.unwrap();
    let replicas = store.replicas().await.unwrap();
    assert_eq!(
        replicas,
        vec![replica("r1", 200, 200), replica("r2", 100, 300)]
    );
    assert!(replicas[1].live_at(305, 10));
    assert!(!replicas[1].live_at(310, 10));

    let mut feed = store.subscribe();
    assert_eq!(store.kill("k1").await.unwrap(), None);
    store.put_kill(&kill("k2", "all", 20)).await.unwrap();
    assert_eq!(next_kill(&mut feed).await, "k2");
    store
        .put_kill(&kill("k1", "agent:forum-helper", 10))
        .await
        .unwrap();
    assert_eq!(next_kill(&mut feed).await, "k1");
    let taken = store.put_kill(&kill("k1", "all", 30)).await.unwrap_err();
    assert!(matches!(taken, StoreError::Conflict(_)), "{taken:?}");
    assert_eq!(
        store.kill("k1").await.unwrap(),
        Some(kill("k1", "agent:forum-helper", 10))
    );
    assert_eq!(
        store.kills().await.unwrap(),
        vec![kill("k1", "agent:forum-helper", 10), kill("k2", "all", 20)]
    );

    assert!(store.kill_acks("k1").await.unwrap().is_empty());
    store.ack_kill("k1", "r2", 50).await.unwrap();
    store.ack_kill("k1", "r1", 60).await.unwrap();
    store.ack_kill("k1", "r2", 70).await.unwrap();
    let ack = |r: &str, at| KillAck {
        kill_id: "k1".into(),
        replica_id: r.into(),
        at_ms: at,
    };
    assert_eq!(
        store.kill_acks("k1").await.unwrap(),
        vec![ack("r1", 60), ack("r2", 50)]
    );
    assert!(store.kill_acks("k2").await.unwrap().is_empty());
}

#[tokio::test]
async fn kills_in_memory() {
    kills(open("memory:").await.unwrap()).await;
}

#[tokio::test]
async fn kills_on_sqlite() {
    let file = SqliteFile::new();
    kills(open(&file.url).await.unwrap()).await;
}

#[tokio::test]
async fn kills_on_postgres() {
    let schema = PgSchema::new().await;
    kills(open(&schema.url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_put_on_one_replica_reaches_the_other_and_its_ack_comes_back() {
    let schema = PgSchema::new().await;
    let a = open(&schema.url).await.unwrap();
    let b = open(&schema.url).await.unwrap();
    let mut feed = b.subscribe();
    a.heartbeat(&replica("ra", 1, 1)).await.unwrap();
    b.heartbeat(&replica("rb", 2, 2)).await.unwrap();
    assert_eq!(a.replicas().await.unwrap().len(), 2);
    a.put_kill(&kill("k", "session:s1", 5)).await.unwrap();
    let id = next_kill(&mut feed).await;
    assert_eq!(b.kill(&id).await.unwrap().unwrap().scope, "session:s1");
    b.ack_kill(&id, "rb", 6).await.unwrap();
    let acks = a.kill_acks("k").await.unwrap();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].replica_id, "rb");
}
