//! `warden kill` against real `warden serve` replicas on one PostgreSQL database:
//!
//! - with a call in flight on a slow upstream tool, `warden kill --all` returns 0 naming both
//!   replicas as confirmed; the call in flight comes back as an error naming the kill, never
//!   the upstream's result, and the upstream hears `notifications/cancelled`; after it
//!   returned, every call on either replica is denied with the kill's reason;
//! - a replica whose heartbeat is stale is not waited for; one with a recent heartbeat that
//!   does not confirm is named, and the exit code is 1;
//! - a person who may not kill is refused (exit 2), and the refusal is audited.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::durable::{acme_copy, Server};
use crate::text;

const ALICE: &str = "alice-kill-test-token";
/// dave is in `security`, a `[missions] revokers` group.
const DAVE: &str = "dave-kill-test-token";
const PURPOSE: &str = "Answer the FAQ question in T-1090 (kill)";

fn pg_base() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A schema of its own on the shared PostgreSQL server: its URL and a connection to it.
async fn schema() -> (String, String, PgConnection) {
    let base = pg_base();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("kill_{}_{nanos}", std::process::id());
    let mut conn = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at `{base}` is unreachable: {e}"));
    conn.execute(format!("CREATE SCHEMA {name}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={name}");
    (url, name, conn)
}

/// The Acme configuration in `dir`, with dave as a local user too.
fn config(dir: &Path) -> std::path::PathBuf {
    let config = acme_copy(dir);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[users.dave]\ntoken_env = \"WARDEN_USER_DAVE\"\n";
    std::fs::write(&config, text).unwrap();
    config
}

/// `warden ARGS --config CONFIG --store STORE` as the person whose token is `who`.
fn warden_as(config: &Path, store: &str, who: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--store", store])
        .env("WARDEN_USER_ALICE", ALICE)
        .env("WARDEN_USER_DAVE", DAVE)
        .env("WARDEN_USER_TOKEN", who)
        .output()
        .unwrap()
}

/// Every record of the chain.
fn export(store: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "export", "--format", "jsonl", "--store", store])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn start(config: &Path, store: &str) -> Server {
    Server::start_with(
        config,
        store,
        &["--insecure-identity"],
        &[
            ("WARDEN_USER_ALICE", ALICE),
            ("WARDEN_USER_DAVE", DAVE),
            ("ACME_MCP_DELAY", "read_thread=20000"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_stops_both_replicas_and_the_call_in_flight_and_returns_when_both_confirmed() {
    let (store, name, mut conn) = schema().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("acme"));
    let mut a = start(&config, &store);
    let b = start(&config, &store);

    // A slow call in flight on A.
    let mut slow = a.client(PURPOSE);
    slow.open().await.unwrap();
    let in_flight = tokio::spawn(async move {
        let answer = slow
            .call(
                "forum.read_thread",
                json!({"channel": "eng-help", "thread_id": "T-1042"}),
            )
            .await;
        (answer, Instant::now())
    });
    // It is in flight once its decision is recorded (it is forwarded right after).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {name}.audit_record WHERE kind = 'decision' \
             AND tool LIKE '%read_thread%'"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        if n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the slow call was never decided");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!in_flight.is_finished(), "the slow call is not slow");

    let out = warden_as(
        &config,
        &store,
        DAVE,
        &[
            "kill",
            "--all",
            "--reason",
            "runaway agent",
            "--timeout",
            "20s",
        ],
    );
    let returned = Instant::now();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("confirmed"))
            .count(),
        2,
        "{stdout}"
    );
    assert!(!stdout.contains("missing"), "{stdout}");

    // After it returned, nothing is allowed on either replica: denied with the kill's reason.
    for server in [&a, &b] {
        let mut c = server.client(PURPOSE);
        c.open().await.unwrap();
        let denied = c
            .call("forum.list_threads", json!({"channel": "eng-help"}))
            .await;
        assert!(denied.is_error(), "{denied:?}");
        assert!(denied.text().contains("runaway agent"), "{denied:?}");
        assert!(denied.text().contains("killed by dave"), "{denied:?}");
    }

    // The call in flight came back as the kill's error, not the thread.
    let (answer, answered) = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the call in flight never came back")
        .unwrap();
    assert!(answer.is_error(), "{answer:?}");
    assert!(
        answer.text().contains("killed by dave: runaway agent"),
        "{answer:?}"
    );
    assert!(!answer.text().contains("VPN"), "{answer:?}");
    assert_eq!(answer.result()["structuredContent"]["error"], "killed");
    // It was stopped by the kill (long before the tool's 20 s), and cancelled upstream.
    assert!(answered < returned + Duration::from_secs(10));
    a.wait_for("`read_thread` was cancelled by the client");

    // The kill and its confirmations are audited with who did it.
    drop((a, b));
    let kills: Vec<Value> = export(&store)
        .into_iter()
        .filter(|r| r["kind"] == "kill")
        .collect();
    assert!(
        kills
            .iter()
            .any(|r| r["outcome"] == "killed" && r["principal"] == "dave"),
        "{kills:?}"
    );
    assert!(
        kills.iter().any(|r| r["outcome"] == "confirmed"),
        "{kills:?}"
    );
    conn.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_replica_that_does_not_confirm_is_named_and_a_stale_one_is_not_waited_for() {
    let (store, name, mut conn) = schema().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir.path().join("acme"));
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["migrate", "--store", &store])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Heartbeats written directly: one a minute old (down), one just now (live, but no process
    // behind it to confirm anything).
    conn.execute(
        format!(
            "INSERT INTO {name}.replicas (id, name, started_at_ms, heartbeat_at_ms) VALUES \
             ('r-stale', 'gone/1', {old}, {old}), ('r-silent', 'hung/2', {now}, {now})",
            old = now - 60_000
        )
        .as_str(),
    )
    .await
    .unwrap();

    // alice is no revoker: she may not kill another agent's missions; the refusal is audited.
    let refused = warden_as(
        &config,
        &store,
        ALICE,
        &["kill", "--agent", "ops-bot", "--timeout", "2s"],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("not allowed"),
        "{}",
        text(&refused.stderr)
    );

    // The silent replica keeps its heartbeat going (it is hung, not gone), however long the
    // command takes to start.
    let beating = {
        let mut conn = PgConnection::connect(&pg_base()).await.unwrap();
        let name = name.clone();
        tokio::spawn(async move {
            loop {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                conn.execute(
                    format!(
                        "UPDATE {name}.replicas SET heartbeat_at_ms = {now} WHERE id = 'r-silent'"
                    )
                    .as_str(),
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let out = warden_as(
        &config,
        &store,
        DAVE,
        &[
            "kill",
            "--session",
            "s-1234",
            "--timeout",
            "2s",
            "--format",
            "json",
        ],
    );
    beating.abort();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["kill"]["scope"], "session:s-1234");
    assert_eq!(report["kill"]["by"], "dave");
    assert_eq!(report["acknowledged"], json!([]));
    let missing: Vec<&str> = report["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(missing, vec!["r-silent"]);
    assert!(
        text(&out.stderr).contains("r-silent (hung/2)"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("r-stale"),
        "{}",
        text(&out.stderr)
    );

    let kills: Vec<Value> = export(&store)
        .into_iter()
        .filter(|r| r["kind"] == "kill")
        .collect();
    assert!(
        kills
            .iter()
            .any(|r| r["outcome"] == "refused" && r["principal"] == "alice"),
        "{kills:?}"
    );
    assert!(
        kills.iter().any(|r| r["outcome"] == "unconfirmed"),
        "{kills:?}"
    );
    conn.execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
        .await
        .unwrap();
}
