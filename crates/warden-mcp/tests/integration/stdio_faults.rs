//! A stdio upstream that hangs or answers too much: a real child process
//! (`tests/fixtures/misbehaving_mcp.py`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_mcp::{Transport, UpstreamSettings};

use crate::common::*;

/// The misbehaving server as upstream `forum`, recording what it receives in `record`.
fn misbehaving(record: &std::path::Path, timeout: Duration) -> UpstreamSettings {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/misbehaving_mcp.py");
    UpstreamSettings::new(
        "forum",
        Transport::Command {
            program: "python3".into(),
            args: vec![script.display().to_string(), record.display().to_string()],
            env: Default::default(),
        },
    )
    .with_timeout(timeout)
}

fn thread(id: &str) -> serde_json::Value {
    json!({"channel": "eng-help", "thread_id": id})
}

fn decision_id(r: &rmcp::model::CallToolResult) -> String {
    r.structured_content.as_ref().unwrap()["decision_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_hung_stdio_upstream_is_cancelled_checked_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("received.jsonl");
    let log = Arc::new(MemoryLog::new());
    let gw = start(
        vec![misbehaving(&record, Duration::from_millis(1000))],
        log.clone(),
    )
    .await;
    let up = gw.upstream("forum").unwrap();
    assert!(
        up.wait_ready(Duration::from_secs(20)).await,
        "{:?}",
        up.status()
    );
    assert_eq!(up.status().connects, 1);
    let client = agent(&gw, &alice()).await;

    let r = call(client.peer(), "forum.read_thread", thread("T-HANG")).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("did not answer within 1000 ms"),
        "{}",
        text(&r)
    );
    let id = decision_id(&r);

    // The request was cancelled upstream.
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(&record)
                .unwrap_or_default()
                .contains("notifications/cancelled")
        })
        .await,
        "the upstream never received notifications/cancelled"
    );
    // The ping health check went unanswered too: the upstream was killed and restarted.
    assert!(
        up.wait_connects(2, Duration::from_secs(30)).await,
        "{:?}",
        up.status()
    );
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("\"ping\""));

    // Calls work again, at once.
    let started = Instant::now();
    let r = call(
        client.peer(),
        "forum.list_threads",
        json!({"channel": "eng-help"}),
    )
    .await;
    assert!(!is_error(&r), "{}", text(&r));
    assert!(started.elapsed() < Duration::from_secs(5));

    // The decision log records the outcome of the forward beside the decision.
    let outcomes = log.outcomes();
    let o = outcomes
        .iter()
        .find(|o| o.decision_id == id)
        .unwrap_or_else(|| panic!("no outcome for {id}: {outcomes:?}"));
    assert_eq!(o.outcome, "timeout");
    assert_eq!(o.tool, "forum.read_thread");
    assert!(o.reason.contains("did not answer"), "{o:?}");
    assert_eq!(outcomes.last().unwrap().outcome, "result");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_stdio_result_over_the_limit_is_refused_with_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("received.jsonl");
    let log = Arc::new(MemoryLog::new());
    let gw = start(
        vec![misbehaving(&record, Duration::from_secs(20))],
        log.clone(),
    )
    .await;
    let up = gw.upstream("forum").unwrap();
    assert!(
        up.wait_ready(Duration::from_secs(20)).await,
        "{:?}",
        up.status()
    );
    let client = agent(&gw, &alice()).await;

    let started = Instant::now();
    let r = call(client.peer(), "forum.read_thread", thread("T-HUGE")).await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(t.contains("over the limit of 8388608 bytes"), "{t}");
    // 17 MiB of text plus the JSON-RPC envelope.
    assert!(t.contains("a result of 1782587"), "{t}");
    assert!(!t.contains("did not answer"), "{t}");
    assert!(!t.contains("restarting"), "{t}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let o = log.outcomes();
    assert_eq!(o.last().unwrap().outcome, "too-large", "{o:?}");

    // Not restarted; the next call works.
    let r = call(client.peer(), "forum.read_thread", thread("T-1042")).await;
    assert!(!is_error(&r), "{}", text(&r));
    assert_eq!(text(&r), "thread T-1042");
    assert_eq!(up.status().connects, 1);
    client.cancel().await.unwrap();
}
