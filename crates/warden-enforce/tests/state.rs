#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Mission state lives in the store: taint read in one session holds a publish in another
//! session of the mission, after a restart, and on another replica; a call budget is spent
//! exactly across replicas; a revocation reaches every replica; a store that fails denies.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use support::acme;
use warden_core::mission::Mission;
use warden_core::{Call, Outcome};
use warden_enforce::{Actor, Enforcer, Forward, Forwarded, How, MissionCell, Permitted};

const NOW: i64 = 1_763_629_200_000;

/// An upstream that answers with a fixed text.
struct Answer(&'static str);

impl Forward for Answer {
    type Output = String;
    type Error = std::convert::Infallible;

    async fn forward(self, call: Permitted<Call>) -> Forwarded<String, std::convert::Infallible> {
        drop(call.into_inner());
        Forwarded {
            result: Ok(self.0.to_string()),
            outcome: "result".into(),
            reason: String::new(),
            text: Some(self.0.to_string()),
        }
    }
}

const LOGS: &str = "2026-11-20T09:52:11Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password session=sess_c17ff4d0ba7b92d7 env=staging";

fn forum_mission(id: &str) -> Mission {
    acme()
        .grant(
            id,
            "answer-forum-question",
            "forum-helper",
            "alice",
            "Answer the FAQ question in T-1090",
            crate_now(),
        )
        .unwrap()
}

fn crate_now() -> i64 {
    warden_enforce::now_ms().max(NOW)
}

/// A session of a mission on one pipeline.
struct On<'a> {
    e: &'a Enforcer,
    mission: &'a Mission,
    cell: &'a MissionCell,
    session: &'a str,
}

impl On<'_> {
    /// Decide `server.tool(args)`; when allowed, forward it to an upstream answering `output`.
    async fn call(&self, server: &str, tool: &str, args: Value, output: &'static str) -> Outcome {
        let actor = Actor {
            mission: self.mission,
            cell: self.cell,
            session: self.session,
        };
        let v = self
            .e
            .decide(&actor, Call::new(server, tool, args), How::call())
            .await
            .unwrap();
        if let Some(p) = v.permitted {
            self.e
                .forward(&actor, p, Answer(output))
                .await
                .unwrap()
                .unwrap();
        }
        v.decision.decision
    }
}

fn on<'a>(
    e: &'a Enforcer,
    mission: &'a Mission,
    cell: &'a MissionCell,
    session: &'a str,
) -> On<'a> {
    On {
        e,
        mission,
        cell,
        session,
    }
}

/// Read auth logs about bob (security-sensitive) in session `s1`.
async fn read_logs(e: &Enforcer, m: &Mission, cell: &MissionCell) {
    let args = json!({"source": "auth", "query": "user=bob", "limit": 50});
    assert_eq!(
        on(e, m, cell, "s1")
            .call("logs", "query_logs", args, LOGS)
            .await,
        Outcome::Allow
    );
}

/// Publish a harmless answer to the forum in `session`.
async fn publish(e: &Enforcer, m: &Mission, cell: &MissionCell, session: &str) -> Outcome {
    let args = json!({"channel": "eng-help", "thread_id": "T-1090", "body": "The FAQ says: install the VPN client from the portal."});
    on(e, m, cell, session)
        .call("forum", "post_reply", args, "posted")
        .await
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("warden.db").display())
}

#[tokio::test]
async fn taint_holds_in_a_second_session_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let m = forum_mission("m-taint");
    {
        let store = warden_store::open(&url).await.unwrap();
        let e = Enforcer::start(acme(), store).await.unwrap();
        let cell = MissionCell::new(&m.id);
        // Before anything was read, the same answer may be published.
        let clean = forum_mission("m-clean");
        let clean_cell = MissionCell::new(&clean.id);
        assert_eq!(publish(&e, &clean, &clean_cell, "s0").await, Outcome::Allow);
        read_logs(&e, &m, &cell).await;
        // A second session of the mission in this process (its own cell, as a new MCP
        // connection after the first one's cell was dropped).
        let second = MissionCell::new(&m.id);
        assert_eq!(publish(&e, &m, &second, "s2").await, Outcome::Ask);
    }
    // Restart: a new pipeline on the same file.
    let store = warden_store::open(&url).await.unwrap();
    let e = Enforcer::start(acme(), store.clone()).await.unwrap();
    let cell = MissionCell::new(&m.id);
    assert_eq!(publish(&e, &m, &cell, "s3").await, Outcome::Ask);
    let report = warden_store::verify(store.as_ref(), warden_store::VerifyOptions::default())
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.first_fault());
}

/// The shared PostgreSQL server of the tests.
fn pg_base() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema of its own on the shared server (left for the server's owner to drop).
async fn pg_schema() -> String {
    let base = pg_base();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("te_{}_{}_{n}", std::process::id(), warden_enforce::now_ms());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at `{base}` is unreachable ({e})"));
    conn.execute(format!("CREATE SCHEMA {name}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options[search_path]={name}")
}

#[tokio::test]
async fn taint_absorbed_on_one_replica_holds_on_the_other() {
    let url = pg_schema().await;
    let a = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let b = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let m = forum_mission("m-replicas");
    let on_a = MissionCell::new(&m.id);
    let on_b = MissionCell::new(&m.id);
    // B has seen the mission before A reads anything.
    assert_eq!(
        on(&b, &m, &on_b, "s0")
            .call(
                "forum",
                "read_thread",
                json!({"channel": "eng-help", "thread_id": "T-1090"}),
                "T-1090 by bob: where is the VPN FAQ?"
            )
            .await,
        Outcome::Allow
    );
    read_logs(&a, &m, &on_a).await;
    assert_eq!(publish(&b, &m, &on_b, "s2").await, Outcome::Ask);
    // Both replicas wrote one chain.
    let report = warden_store::verify(
        warden_store::open(&url).await.unwrap().as_ref(),
        warden_store::VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.ok(), "{:?}", report.first_fault());
}

#[tokio::test]
async fn two_replicas_spend_a_100_call_budget_exactly() {
    let url = pg_schema().await;
    let m = acme()
        .grant(
            "m-budget",
            "ops-change",
            "ops-bot",
            "dave",
            "Tidy up log permissions",
            crate_now(),
        )
        .unwrap();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let e = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
            .await
            .unwrap();
        replicas.push(e);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (r, e) in replicas.iter().enumerate() {
        for w in 0..4 {
            let e = e.clone();
            let m = m.clone();
            tasks.spawn(async move {
                // Each task is a session of its own on its replica.
                let cell = MissionCell::new(&m.id);
                let session = format!("s{r}-{w}");
                let mut allowed = 0;
                for _ in 0..40 {
                    let o = on(&e, &m, &cell, &session)
                        .call(
                            "files",
                            "read_file",
                            json!({"path": "docs/public/faq.md"}),
                            "# FAQ",
                        )
                        .await;
                    if o == Outcome::Allow {
                        allowed += 1;
                    }
                }
                allowed
            });
        }
    }
    let mut allowed = 0;
    while let Some(n) = tasks.join_next().await {
        allowed += n.unwrap();
    }
    assert_eq!(allowed, 100, "320 attempts on a 100-call budget");
}

#[tokio::test]
async fn a_revocation_on_one_replica_stops_the_other_within_a_second() {
    let url = pg_schema().await;
    let a = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let b_store = warden_store::open(&url).await.unwrap();
    let b = Enforcer::start(acme(), b_store.clone()).await.unwrap();
    let m = forum_mission("m-revoked");
    let cell = MissionCell::new(&m.id);
    let read = json!({"channel": "eng-help", "thread_id": "T-1090"});
    assert_eq!(
        on(&a, &m, &cell, "s1")
            .call("forum", "read_thread", read.clone(), "T-1090")
            .await,
        Outcome::Allow
    );
    b_store
        .revoke(&m.id, "the person withdrew it")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let o = on(&a, &m, &cell, "s1")
            .call("forum", "read_thread", read.clone(), "T-1090")
            .await;
        if o == Outcome::Deny {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the revocation did not reach the other replica within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(b);
}

#[tokio::test]
async fn a_store_that_cannot_be_written_denies_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let store = warden_store::open(&url).await.unwrap();
    let e = Enforcer::start(acme(), store).await.unwrap();
    let m = forum_mission("m-outage");
    let cell = MissionCell::new(&m.id);
    let actor = Actor {
        mission: &m,
        cell: &cell,
        session: "s1",
    };
    let read = || {
        Call::new(
            "forum",
            "read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1090"}),
        )
    };
    assert!(e
        .decide(&actor, read(), How::call())
        .await
        .unwrap()
        .permitted
        .is_some());
    // Another process holds the database's write lock (as a full disk or a stuck writer
    // would keep writes from landing).
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    blocker.execute("BEGIN EXCLUSIVE").await.unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        e.decide(&actor, read(), How::call()),
    )
    .await
    .expect("a refusal, not a hang");
    let err = refused.expect_err("no call may be allowed while the audit cannot be written");
    assert!(
        err.to_string().contains("could not be durably recorded")
            || err.to_string().contains("store"),
        "{err}"
    );
    blocker.execute("ROLLBACK").await.unwrap();
    drop(blocker);
    // Back: allowed again, without a restart.
    let v = e.decide(&actor, read(), How::call()).await.unwrap();
    assert!(v.permitted.is_some(), "{:?}", v.decision.reasons);
}

/// A replica that took a mission up long ago, while another made so many calls that the
/// journal behind the latest snapshot was dropped, notices the gap and starts again from the
/// snapshot: it then counts exactly what was decided (nothing twice, nothing lost) and holds
/// the taint absorbed before the snapshot. A replica taking the mission up afresh sees the same.
#[tokio::test]
async fn a_replica_far_behind_starts_again_from_the_snapshot() {
    let url = pg_schema().await;
    let a = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let b = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let m = forum_mission("m-far-behind");
    let on_a = MissionCell::new(&m.id);
    let on_b = MissionCell::new(&m.id);
    let thread = json!({"channel": "eng-help", "thread_id": "T-1090"});
    let faq = "T-1090 by bob: where is the VPN FAQ?";
    assert_eq!(
        on(&b, &m, &on_b, "s0")
            .call("forum", "read_thread", thread.clone(), faq)
            .await,
        Outcome::Allow
    );
    read_logs(&a, &m, &on_a).await;
    // Past the mission's 50-call budget every call is denied; each still commits (one event).
    let calls = 1_400;
    for _ in 0..calls {
        on(&a, &m, &on_a, "s1")
            .call("forum", "read_thread", thread.clone(), faq)
            .await;
    }
    a.flush(&on_a).await.unwrap();
    let store = warden_store::open(&url).await.unwrap();
    let kept = store.journal_since(&m.id, 0, 1).await.unwrap();
    assert!(
        kept.first().is_some_and(|(seq, _)| *seq > 2),
        "the journal behind the snapshot was not dropped: {kept:?}"
    );

    // B decides again: it must notice that the events after its position are gone.
    assert_eq!(
        on(&b, &m, &on_b, "s0")
            .call("forum", "read_thread", thread.clone(), faq)
            .await,
        Outcome::Deny
    );
    let (state_b, usage_b) = on_b.snapshot().await;
    let total = 1 + 1 + calls + 1;
    assert_eq!(state_b.calls, total as u64);
    assert_eq!(usage_b.calls, 50);
    assert!(!state_b.taint.is_empty(), "the logs' taint was lost");
    b.flush(&on_b).await.unwrap();

    let c = Enforcer::start(acme(), warden_store::open(&url).await.unwrap())
        .await
        .unwrap();
    let on_c = MissionCell::new(&m.id);
    assert_eq!(publish(&c, &m, &on_c, "s9").await, Outcome::Deny);
    let (state_c, usage_c) = on_c.snapshot().await;
    assert_eq!(state_c.calls, total as u64 + 1);
    assert_eq!(usage_c, usage_b);
    assert_eq!(state_c.taint, state_b.taint);
}
