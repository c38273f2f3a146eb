//! The decision log holds every decision before the upstream sees the call.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warden_mcp::{DecisionLog, JsonlLog, LogEntry, MemoryLog};

use crate::common::*;

fn probed(
    acme: &warden_acme::AcmeServer,
    log: &Arc<MemoryLog>,
) -> (Vec<warden_mcp::UpstreamSettings>, Vec<Probe>) {
    let mut ups = Vec::new();
    let mut probes = Vec::new();
    for s in ["forum", "logs", "files"] {
        let mut p = Probe::new(acme, s);
        p.log = Some(log.clone());
        let p2 = p.clone();
        ups.push(in_process(s, move || p2.clone()));
        probes.push(p);
    }
    (ups, probes)
}

#[tokio::test]
async fn every_decision_is_logged_before_the_upstream_sees_the_call() {
    let acme = warden_acme::AcmeServer::new();
    let log = Arc::new(MemoryLog::new());
    let (ups, probes) = probed(&acme, &log);
    let gw = start(ups, log.clone()).await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    call(
        p,
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    call(
        p,
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    )
    .await;
    call(p, "files.read_file", json!({"path": "docs/public/faq.md"})).await;
    call(p, "forum.send_dm", json!({"to": "alice", "body": "done"})).await;
    // A held call never reaches the upstream.
    call(
        p,
        "forum.post_reply",
        json!({"channel": "eng-help", "thread_id": "T-1042", "as_user": "alice", "body": "x"}),
    )
    .await;
    let seen: Vec<String> = probes.iter().flat_map(|p| p.seen()).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.iter().all(|s| s.starts_with("ok ")), "{seen:?}");
    assert_eq!(log.len(), 5);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_log_that_cannot_be_written_denies_and_forwards_nothing() {
    let acme = warden_acme::AcmeServer::new();
    let log = Arc::new(MemoryLog::new());
    let (ups, probes) = probed(&acme, &log);
    let gw = start(ups, log.clone()).await;
    let client = agent(&gw, &alice()).await;
    log.set_failing(true);
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(text(&r).contains("could not be recorded"), "{}", text(&r));
    assert_eq!(
        r.structured_content.as_ref().unwrap()["error"],
        "decision-log"
    );
    assert!(probes.iter().all(|p| p.seen().is_empty()));
    // The call was not counted either: once the log works again, the session carries on.
    log.set_failing(false);
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(!is_error(&r));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_jsonl_log_holds_every_decision_even_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/decisions.jsonl");
    let acme = warden_acme::AcmeServer::new();
    let log: Arc<dyn DecisionLog> = Arc::new(JsonlLog::open(&path).unwrap());
    let gw = start(acme_upstreams(&acme), log).await;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let client = agent(&gw, &alice()).await;
            for _ in 0..5 {
                call(
                    client.peer(),
                    "forum.read_thread",
                    json!({"channel": "eng-help", "thread_id": "T-1042"}),
                )
                .await;
            }
            // One refusal per session too.
            call(
                client.peer(),
                "hr.search_employees",
                json!({"query": format!("{i}"), "fields": ["name"]}),
            )
            .await;
            client.cancel().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Each allowed call's outcome follows its decision, appended without waiting for it.
    let outcomes = || {
        std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"kind\":\"outcome\""))
            .count()
    };
    assert!(eventually(Duration::from_secs(20), || outcomes() == 20).await);
    let text = std::fs::read_to_string(&path).unwrap();
    let entries: Vec<LogEntry> = text
        .lines()
        .filter(|l| !l.contains("\"kind\":\"outcome\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 24);
    assert_eq!(entries.iter().filter(|e| e.decision.is_allow()).count(), 20);
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.kind == warden_mcp::EntryKind::Unexposed)
            .count(),
        4
    );
    // Reopening appends.
    drop(gw);
    let again = JsonlLog::open(&path).unwrap();
    again.append(&entries[0]).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 45);
}

/// A log entry with nothing but the required fields.
fn bare_entry(outcome: &str) -> LogEntry {
    serde_json::from_value(json!({
        "kind": "decision", "id": "d-1", "decision": outcome, "reasons": [], "policies": [],
        "flow": {"resource_labels": [], "argument_labels": [], "labels": [], "sources": [],
                 "untrusted_direction": [], "untrusted_input": false, "sensitive": false,
                 "external_action": false},
        "tool": "a.b", "agent": "x", "principal": "y", "session": "s", "mission": "m",
        "call_digest": "", "at_ms": 0
    }))
    .unwrap()
}

#[test]
fn a_torn_last_line_is_closed_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    std::fs::write(&path, "{\"kind\":\"decision\",\"cut").unwrap();
    let log = JsonlLog::open(&path).unwrap();
    let d = bare_entry("deny");
    log.append(&d).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap();
    assert_eq!(serde_json::from_str::<LogEntry>(last).unwrap(), d);
}

#[test]
fn the_jsonl_log_starts_off_the_workers_and_measures_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.jsonl");
    let log = JsonlLog::open(&path).unwrap();
    // Until a write has shown how fast the medium is, appends are handed to a blocking thread.
    assert!(log.blocking());
    let unmeasured = log.write_time();
    let d = bare_entry("allow");
    log.append(&d).unwrap();
    let measured = log.write_time();
    assert!(measured < unmeasured, "{measured:?} vs {unmeasured:?}");
    // The answer follows the measurement, whichever it is on this machine's temp folder.
    assert_eq!(log.blocking(), measured > warden_mcp::INLINE_WRITE_LIMIT);
}
