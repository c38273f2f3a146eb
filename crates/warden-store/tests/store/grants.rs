//! Mission grants: read back as written (with and without a narrowing), a second grant under
//! one mission id refused with the first kept, lists filtered by agent, principal, expiry and
//! count, newest first; two stores on one PostgreSQL database see each other's grants.

use std::sync::Arc;

use serde_json::json;
use warden_store::{open, GrantFilter, GrantRecord, Store, StoreError};

use crate::support::{PgSchema, SqliteFile};

/// A grant of mission `id` to `agent` for `principal` at `at`, for an hour.
fn grant(id: &str, agent: &str, principal: &str, at: i64) -> GrantRecord {
    GrantRecord {
        mission_id: id.to_string(),
        template: "forum-reply".into(),
        agent: agent.to_string(),
        principal: principal.to_string(),
        purpose: format!("answer the thread for {principal}"),
        granted_by: "alice@example.com".into(),
        auth: "local".into(),
        granted_at_ms: at,
        expires_at_ms: at + 3_600_000,
        narrowing: None,
        token_digest: format!("{:0>64}", hex_of(id)),
        parent: None,
    }
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn ids(grants: &[GrantRecord]) -> Vec<&str> {
    grants.iter().map(|g| g.mission_id.as_str()).collect()
}

async fn grants(store: Arc<dyn Store>) {
    assert_eq!(store.grant("m1").await.unwrap(), None);
    assert!(store
        .grants(&GrantFilter::default())
        .await
        .unwrap()
        .is_empty());

    // Round trips, without and with a narrowing and a parent.
    let plain = grant("m1", "forum-helper", "bob", 1_000);
    store.put_grant(&plain).await.unwrap();
    assert_eq!(store.grant("m1").await.unwrap(), Some(plain.clone()));
    let narrowed = GrantRecord {
        narrowing: Some(json!({
            "tools": ["forum/post_reply"],
            "budgets": {"calls": 5},
            "note": "\"quoted\" and ünïcode",
            "ratio": 0.5,
        })),
        parent: Some("m1".into()),
        auth: "jwt".into(),
        ..grant("m2", "forum-helper", "carol", 2_000)
    };
    store.put_grant(&narrowed).await.unwrap();
    assert_eq!(store.grant("m2").await.unwrap(), Some(narrowed.clone()));

    // A second grant under a taken id is refused; the first stays.
    let again = grant("m1", "other-agent", "mallory", 9_000);
    let error = store.put_grant(&again).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert!(error.to_string().contains("`m1`"), "{error}");
    assert_eq!(store.grant("m1").await.unwrap(), Some(plain.clone()));

    // More grants: m3 and m4 at the same time (the tie is broken by id, descending).
    store
        .put_grant(&grant("m3", "mailer", "bob", 3_000))
        .await
        .unwrap();
    store
        .put_grant(&grant("m4", "forum-helper", "bob", 3_000))
        .await
        .unwrap();
    store
        .put_grant(&GrantRecord {
            expires_at_ms: 1_500,
            ..grant("m0", "mailer", "carol", 500)
        })
        .await
        .unwrap();

    let all = store.grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["m4", "m3", "m2", "m1", "m0"]);
    assert_eq!(all[2], narrowed);

    let by_agent = GrantFilter {
        agent: Some("forum-helper".into()),
        ..GrantFilter::default()
    };
    assert_eq!(
        ids(&store.grants(&by_agent).await.unwrap()),
        ["m4", "m2", "m1"]
    );
    let by_principal = GrantFilter {
        principal: Some("carol".into()),
        ..GrantFilter::default()
    };
    assert_eq!(
        ids(&store.grants(&by_principal).await.unwrap()),
        ["m2", "m0"]
    );
    let both = GrantFilter {
        agent: Some("mailer".into()),
        principal: Some("bob".into()),
        ..GrantFilter::default()
    };
    assert_eq!(ids(&store.grants(&both).await.unwrap()), ["m3"]);
    let nobody = GrantFilter {
        agent: Some("nobody".into()),
        ..GrantFilter::default()
    };
    assert!(store.grants(&nobody).await.unwrap().is_empty());

    // Live at a time: expired from `expires_at_ms` on.
    let live = |at| GrantFilter {
        live_at_ms: Some(at),
        ..GrantFilter::default()
    };
    assert_eq!(
        ids(&store.grants(&live(1_499)).await.unwrap()),
        ["m4", "m3", "m2", "m1", "m0"]
    );
    assert_eq!(
        ids(&store.grants(&live(1_500)).await.unwrap()),
        ["m4", "m3", "m2", "m1"]
    );
    assert_eq!(
        ids(&store.grants(&live(3_601_000)).await.unwrap()),
        ["m4", "m3", "m2"]
    );
    assert!(store.grants(&live(3_603_000)).await.unwrap().is_empty());

    // At most so many, newest first; with the other conditions too.
    let limited = |limit| GrantFilter {
        limit,
        ..GrantFilter::default()
    };
    assert_eq!(ids(&store.grants(&limited(2)).await.unwrap()), ["m4", "m3"]);
    assert_eq!(store.grants(&limited(0)).await.unwrap().len(), 5);
    assert_eq!(store.grants(&limited(50)).await.unwrap().len(), 5);
    let everything = GrantFilter {
        agent: Some("forum-helper".into()),
        principal: Some("bob".into()),
        live_at_ms: Some(3_600_999),
        limit: 1,
    };
    assert_eq!(ids(&store.grants(&everything).await.unwrap()), ["m4"]);
}

#[tokio::test]
async fn memory_grants() {
    grants(open("memory:").await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_grants() {
    let file = SqliteFile::new();
    grants(open(&file.url).await.unwrap()).await;
    // Kept in the file.
    let reopened = open(&file.url).await.unwrap();
    assert_eq!(
        reopened
            .grants(&GrantFilter::default())
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_grants() {
    let schema = PgSchema::new().await;
    grants(open(&schema.url).await.unwrap()).await;
}

/// Two stores on one database: each sees what the other granted, and an id taken on one is
/// taken on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_grants() {
    let schema = PgSchema::new().await;
    let a = open(&schema.url).await.unwrap();
    let b = open(&schema.url).await.unwrap();
    let first = grant("shared", "forum-helper", "bob", 10);
    a.put_grant(&first).await.unwrap();
    assert_eq!(b.grant("shared").await.unwrap(), Some(first.clone()));
    let error = b
        .put_grant(&grant("shared", "mailer", "carol", 20))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    b.put_grant(&grant("other", "mailer", "carol", 20))
        .await
        .unwrap();
    assert_eq!(
        ids(&a.grants(&GrantFilter::default()).await.unwrap()),
        ["other", "shared"]
    );
    assert_eq!(a.grant("shared").await.unwrap(), Some(first));

    // Many grants under one id at once, from both stores: exactly one is recorded.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .put_grant(&grant("raced", &format!("agent-{i}"), "bob", 30))
                .await
        }));
    }
    let mut recorded = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => recorded.push(i),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("grant {i}: {other:?}"),
        }
    }
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let kept = a.grant("raced").await.unwrap().unwrap();
    assert_eq!(kept.agent, format!("agent-{}", recorded[0]));
}
