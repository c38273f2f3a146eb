//! Durable throughput of the audit chain with concurrent writers, beside a bare `sqlx` loop.
//!
//! ```text
//! cargo run --release -p warden-store --example durable_load -- [WRITERS] [SECONDS]
//! ```
//!
//! For SQLite (a file in a temporary folder, WAL, `synchronous=FULL`) and PostgreSQL
//! (`WARDEN_TEST_POSTGRES`, a schema of its own, dropped after), WRITERS tasks (default 64)
//! each append one decision record at a time for SECONDS (default 5), waiting for each to be
//! durable. The bare loop runs the same tasks, the same rows and the same commit policy: one
//! writer task takes everything queued (up to 2,048 rows), inserts it with the same statement in
//! one transaction, commits, and answers each task. It computes no hash, reads no head and
//! makes no checkpoint: what Warden adds is exactly that.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{Connection, Executor, QueryBuilder};
use tokio::sync::{mpsc, oneshot};
use warden_store::{
    canonical_string, generate_keypair, open_with, AuditColumns, AuditConfig, AuditInput,
    AuditKind, KeySource, Store,
};

const MAX_BATCH: usize = 2048;

fn record(writer: usize, n: usize) -> AuditInput {
    AuditInput {
        kind: AuditKind::Decision,
        at_ms: 1_760_000_000_000 + n as i64,
        columns: AuditColumns {
            decision_id: Some(format!("d-{writer}-{n}")),
            mission_id: Some(format!("m{}", writer % 8)),
            principal: Some("alice".into()),
            agent: Some("forum-helper".into()),
            tool: Some("forum/post_reply".into()),
            outcome: Some("allow".into()),
        },
        body: json!({
            "decision": "allow",
            "reasons": [{"policy": "permit-read-own-channel", "text": "alice may read eng-help"}],
            "exposure": {"count": 0, "members": []},
            "labels": {"internal": [{"tool": "forum/read_thread", "thread": "T-1042"}]},
            "call_digest": "4b1f0c5ad1e2b7c9f3a8d6e4c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3",
            "policy_version": "9f2c1e",
            "mission": {"id": format!("m{}", writer % 8), "purpose": "Answer Bob's question"},
        }),
    }
}

struct Run {
    records: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.seconds
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Runs `writers` tasks calling `append` for `seconds`.
async fn drive<F, Fut>(writers: usize, seconds: u64, append: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let append = append.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0;
                while Instant::now() < end {
                    let t = Instant::now();
                    append(w, n).await;
                    latencies.push(t.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Run {
        records: latencies.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
        latencies,
    }
}

async fn warden(url: &str, dir: &std::path::Path, writers: usize, seconds: u64) -> Run {
    let config = AuditConfig {
        signing_key: Some(KeySource::Key(Box::new(generate_keypair().unwrap()))),
        checkpoint_every: std::env::var("CHECKPOINT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        checkpoint_seconds: 60,
        checkpoint_file: Some(dir.join("checkpoints.jsonl")),
        max_batch: MAX_BATCH,
    };
    let store: Arc<dyn Store> = open_with(url, config).await.unwrap();
    drive(writers, seconds, move |w, n| {
        let store = store.clone();
        async move {
            store.append(vec![record(w, n)]).await.unwrap();
        }
    })
    .await
}

/// One bare row: the same columns, the body as canonical text, a dummy hash.
struct Row {
    input: AuditInput,
    body: String,
}

type Job = (Row, oneshot::Sender<()>);

const BARE_TABLE: &str = "CREATE TABLE bare_record (seq BIGINT PRIMARY KEY, kind TEXT NOT NULL, \
     at_ms BIGINT NOT NULL, decision_id TEXT, mission_id TEXT, principal TEXT, agent TEXT, \
     tool TEXT, outcome TEXT, body TEXT NOT NULL, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL)";

/// The same index as the audit table's, so both write the same pages.
const BARE_INDEX: &str =
    "CREATE INDEX bare_record_decision ON bare_record (decision_id) WHERE decision_id IS NOT NULL";

async fn bare<W, Fut>(writers: usize, seconds: u64, mut write: W) -> Run
where
    W: FnMut(Vec<Row>, u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (queue, mut jobs) = mpsc::channel::<Job>(16_384);
    tokio::spawn(async move {
        let mut seq = 0u64;
        while let Some(job) = jobs.recv().await {
            let mut batch = vec![job];
            while batch.len() < MAX_BATCH {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let (rows, replies): (Vec<Row>, Vec<_>) = batch.into_iter().unzip();
            let n = rows.len() as u64;
            write(rows, seq).await;
            seq += n;
            for reply in replies {
                let _ = reply.send(());
            }
        }
    });
    drive(writers, seconds, move |w, n| {
        let queue = queue.clone();
        async move {
            let input = record(w, n);
            let body = canonical_string(&input.body);
            let (reply, done) = oneshot::channel();
            queue.send((Row { input, body }, reply)).await.unwrap();
            done.await.unwrap();
        }
    })
    .await
}

async fn bare_sqlite(path: &std::path::Path, writers: usize, seconds: u64) -> Run {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    conn.execute(BARE_TABLE.replace("BYTEA", "BLOB").as_str())
        .await
        .unwrap();
    conn.execute(BARE_INDEX).await.unwrap();
    let conn = Arc::new(tokio::sync::Mutex::new(conn));
    bare(writers, seconds, move |rows, seq| {
        let conn = conn.clone();
        async move {
            let mut conn = conn.lock().await;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
            for (chunk_index, chunk) in rows.chunks(500).enumerate() {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO bare_record (seq, kind, at_ms, decision_id, mission_id, \
                     principal, agent, tool, outcome, body, prev_hash, hash) ",
                );
                insert.push_values(chunk.iter().enumerate(), |mut b, (i, row)| {
                    let c = &row.input.columns;
                    let n = seq as i64 + (chunk_index * 500 + i) as i64 + 1;
                    b.push_bind(n)
                        .push_bind(row.input.kind.as_str())
                        .push_bind(row.input.at_ms)
                        .push_bind(c.decision_id.as_deref())
                        .push_bind(c.mission_id.as_deref())
                        .push_bind(c.principal.as_deref())
                        .push_bind(c.agent.as_deref())
                        .push_bind(c.tool.as_deref())
                        .push_bind(c.outcome.as_deref())
                        .push_bind(row.body.as_str())
                        .push_bind(&[0u8; 32][..])
                        .push_bind(&[1u8; 32][..]);
                });
                insert.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    })
    .await
}

async fn bare_pg(url: &str, writers: usize, seconds: u64) -> Run {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    pool.execute(BARE_TABLE).await.unwrap();
    pool.execute(BARE_INDEX).await.unwrap();
    bare(writers, seconds, move |rows, seq| {
        let pool = pool.clone();
        async move {
            let n = rows.len();
            let seqs: Vec<i64> = (0..n as i64).map(|i| seq as i64 + i + 1).collect();
            let kinds: Vec<String> = rows.iter().map(|r| r.input.kind.as_str().into()).collect();
            let times: Vec<i64> = rows.iter().map(|r| r.input.at_ms).collect();
            let col = |f: fn(&AuditColumns) -> &Option<String>| -> Vec<Option<String>> {
                rows.iter().map(|r| f(&r.input.columns).clone()).collect()
            };
            let bodies: Vec<String> = rows.iter().map(|r| r.body.clone()).collect();
            let prevs: Vec<Vec<u8>> = vec![vec![0u8; 32]; n];
            let hashes: Vec<Vec<u8>> = vec![vec![1u8; 32]; n];
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(
                "INSERT INTO bare_record (seq, kind, at_ms, decision_id, mission_id, principal, \
                 agent, tool, outcome, body, prev_hash, hash) SELECT * FROM UNNEST(\
                 $1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[])",
            )
            .bind(&seqs)
            .bind(&kinds)
            .bind(&times)
            .bind(col(|c| &c.decision_id))
            .bind(col(|c| &c.mission_id))
            .bind(col(|c| &c.principal))
            .bind(col(|c| &c.agent))
            .bind(col(|c| &c.tool))
            .bind(col(|c| &c.outcome))
            .bind(&bodies)
            .bind(&prevs)
            .bind(&hashes)
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    })
    .await
}

fn line(name: &str, run: &mut Run) {
    let p50 = run.percentile(0.5).as_secs_f64() * 1e3;
    let p99 = run.percentile(0.99).as_secs_f64() * 1e3;
    println!(
        "{name:<28} {:>9.0} records/s  ({} records in {:.1} s; append p50 {p50:.2} ms, p99 {p99:.2} ms)",
        run.rate(),
        run.records,
        run.seconds,
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let writers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    println!("{writers} concurrent writers, {seconds} s per run, batches of up to {MAX_BATCH}");

    let dir = tempfile::tempdir().unwrap();
    let mut w = warden(
        &format!("sqlite://{}", dir.path().join("warden.db").display()),
        dir.path(),
        writers,
        seconds,
    )
    .await;
    let mut b = bare_sqlite(&dir.path().join("bare.db"), writers, seconds).await;
    line("sqlite  warden-store", &mut w);
    line("sqlite  bare sqlx loop", &mut b);
    println!("sqlite  ratio {:.2}", w.rate() / b.rate());

    let base = std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let mut w = warden(&url, dir.path(), writers, seconds).await;
    let mut b = bare_pg(&url, writers, seconds).await;
    line("postgres warden-store", &mut w);
    line("postgres bare sqlx loop", &mut b);
    println!("postgres ratio {:.2}", w.rate() / b.rate());
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}
