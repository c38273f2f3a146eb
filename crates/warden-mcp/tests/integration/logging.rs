//! The audit chain holds every decision before the upstream sees the call; a decision that
//! cannot be recorded denies the call.

use std::sync::Arc;

use serde_json::json;

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
    assert_eq!(r.structured_content.as_ref().unwrap()["error"], "audit");
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
