//! Mission journals: numbers without gaps from 1 per mission, events read back in order and
//! paged, pruning, and concurrent appenders (two stores on one database) that never get the
//! same number nor lose an event.

use std::sync::Arc;

use serde_json::json;
use warden_store::{open, Store};

use crate::support::{PgSchema, SqliteFile};

async fn journal(store: Arc<dyn Store>) {
    assert!(store.journal_since("m1", 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store
            .journal_append("m1", &[json!({"n": 1}), json!({"n": 2})])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .journal_append("m2", &[json!({"n": 1})])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .journal_append("m1", &[json!({"n": 3})])
            .await
            .unwrap(),
        3
    );

    let all = store.journal_since("m1", 0, 10).await.unwrap();
    assert_eq!(
        all,
        vec![
            (1, json!({"n": 1})),
            (2, json!({"n": 2})),
            (3, json!({"n": 3}))
        ]
    );
    assert_eq!(
        store.journal_since("m1", 1, 1).await.unwrap(),
        vec![(2, json!({"n": 2}))]
    );
    assert!(store.journal_since("m1", 3, 10).await.unwrap().is_empty());

    store.journal_prune("m1", 2).await.unwrap();
    assert_eq!(
        store.journal_since("m1", 0, 10).await.unwrap(),
        vec![(3, json!({"n": 3}))]
    );
    // Numbers go on after a prune; the other mission is untouched.
    assert_eq!(
        store
            .journal_append("m1", &[json!({"n": 4})])
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.journal_since("m2", 0, 10).await.unwrap().len(), 1);
}

/// Two stores on one database append to one mission at once: every number is given once, and
/// every event is read back under its number.
async fn concurrent(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for (w, store) in [a.clone(), b, a.clone(), a.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25 {
                let last = store
                    .journal_append(
                        "shared",
                        &[
                            json!({"w": w, "i": i}),
                            json!({"w": w, "i": i, "second": true}),
                        ],
                    )
                    .await
                    .unwrap();
                got.push(last);
            }
            got
        }));
    }
    let mut lasts = Vec::new();
    for t in tasks {
        lasts.extend(t.await.unwrap());
    }
    lasts.sort_unstable();
    lasts.dedup();
    assert_eq!(lasts.len(), 100, "an append number was given twice");
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = a.journal_since("shared", after, 64).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        events.extend(page);
    }
    assert_eq!(events.len(), 200);
    for (i, (seq, event)) in events.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        // The two events of one append are adjacent, first then second.
        if event.get("second").is_some() {
            let (_, before) = &events[i - 1];
            assert_eq!(before.get("w"), event.get("w"));
            assert_eq!(before.get("i"), event.get("i"));
        }
    }
}

#[tokio::test]
async fn memory_journal() {
    let store = open("memory:").await.unwrap();
    journal(store.clone()).await;
    concurrent(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_journal() {
    let file = SqliteFile::new();
    journal(open(&file.url).await.unwrap()).await;
    let other = SqliteFile::new();
    concurrent(
        open(&other.url).await.unwrap(),
        open(&other.url).await.unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_journal() {
    let schema = PgSchema::new().await;
    journal(open(&schema.url).await.unwrap()).await;
    let other = PgSchema::new().await;
    concurrent(
        open(&other.url).await.unwrap(),
        open(&other.url).await.unwrap(),
    )
    .await;
}
