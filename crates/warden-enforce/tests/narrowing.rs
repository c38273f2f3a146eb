#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Missions narrowed for sub-agents, through the enforcement pipeline: a trace line that would
//! widen its parent or carries an unknown key is an error with its line; a child's calls count
//! against its parent's calls budget, and a child's own cap holds its calls alone. (The
//! narrowed-tool deny and the shared taint are in the corpus: `corpus/sub-agent-narrowed.jsonl`;
//! it is not among the Acme scenarios, which are also replayed over MCP, where missions are
//! not narrowed yet.)

mod support;

use serde_json::json;
use support::acme;
use warden_core::mission::{Budgets, Mission};
use warden_core::narrow::Narrowing;
use warden_core::trace::{Replayed, TraceError};
use warden_core::{Call, Outcome};
use warden_enforce::replay::Replayer;
use warden_enforce::{Actor, Enforcer, How, MissionCell};

const NOW: i64 = 1_763_629_200_000;

fn run(text: &str) -> Result<Vec<Replayed>, TraceError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = warden_store::open("memory:").await.unwrap();
        let replayer = Replayer::new(acme(), store).await.unwrap();
        replayer.replay("t.jsonl", text, NOW).await
    })
}

const ROOT: &str = r#"{"kind": "mission", "id": "m1", "template": "answer-forum-question", "agent": "forum-helper", "principal": "alice", "purpose": "Answer T-1042"}"#;
const READ: &str = r#"{"kind": "call", "mission": "sub", "session": "s", "server": "forum", "tool": "read_thread", "args": {"channel": "eng-help", "thread_id": "T-1042"}}"#;

fn error_of(lines: &[&str]) -> TraceError {
    match run(&lines.join("\n")) {
        Err(e) => e,
        Ok(r) => panic!("expected an error, replayed {} calls", r.len()),
    }
}

#[test]
fn a_narrowing_that_widens_is_an_error_with_its_line() {
    // A tool the parent's template does not offer.
    let e = error_of(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tools": ["web.fetch"]}"#,
        READ,
    ]);
    assert_eq!(e.line, 2);
    assert!(
        e.message.contains("`tools`") && e.message.contains("`web.fetch`"),
        "{e}"
    );
    // Narrower, then wider again.
    let e = error_of(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tools": ["forum.read_thread"]}"#,
        r#"{"kind": "mission", "id": "subsub", "parent": "sub", "tools": ["forum.*"]}"#,
    ]);
    assert_eq!(e.line, 3);
    assert!(e.message.contains("`forum.*`"), "{e}");
    // An expiry later than the parent's (the template's lifetime is 2h).
    let e = error_of(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "expires": "3h"}"#,
    ]);
    assert_eq!(e.line, 2);
    assert!(e.message.contains("expires_at_ms"), "{e}");
    // Another principal, or a parent no earlier line grants.
    let e = error_of(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "principal": "bob"}"#,
    ]);
    assert_eq!(e.line, 2);
    assert!(e.message.contains("`principal`"), "{e}");
    let e = error_of(&[
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tools": ["forum.read_thread"]}"#,
        ROOT,
    ]);
    assert_eq!(e.line, 1);
    // A narrowing within the parent replays.
    let ok = run(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tools": ["forum.read_thread"], "expires": "30m"}"#,
        READ,
    ]
    .join("\n"))
    .unwrap();
    assert_eq!(ok[0].decision.decision, Outcome::Allow);
}

#[test]
fn an_unknown_key_on_any_line_is_an_error_with_its_line() {
    let e = error_of(&[
        ROOT,
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tolls": ["forum.read_thread"]}"#,
    ]);
    assert_eq!(e.line, 2);
    assert!(e.message.contains("tolls"), "{e}");
    let e = error_of(&[
        r#"{"kind": "mission", "id": "m1", "template": "answer-forum-question", "agent": "forum-helper", "principal": "alice", "purpose": "p", "scope": "all"}"#,
    ]);
    assert_eq!(e.line, 1);
    assert!(e.message.contains("scope"), "{e}");
    let e = error_of(&[
        ROOT,
        r#"{"kind": "call", "mission": "m1", "session": "s", "server": "forum", "tool": "read_thread", "args": {}, "expected": "allow"}"#,
    ]);
    assert_eq!(e.line, 2);
    assert!(e.message.contains("`expected`"), "{e}");
}

#[test]
fn a_childs_calls_count_against_its_parents_budget() {
    // `ops-change` has a budget of 100 calls: 60 by the parent and 40 by its sub-agent use it.
    let mut lines = vec![
        r#"{"kind": "mission", "id": "m1", "template": "ops-change", "agent": "ops-bot", "principal": "dave", "purpose": "Tidy up log permissions"}"#.to_string(),
        r#"{"kind": "mission", "id": "sub", "parent": "m1", "tools": ["acl.get_acl"]}"#.to_string(),
    ];
    let call = |m: &str| {
        json!({"kind": "call", "mission": m, "session": format!("s-{m}"), "server": "acl", "tool": "get_acl", "args": {"resource": "logs:auth"}})
            .to_string()
    };
    lines.extend((0..60).map(|_| call("m1")));
    lines.extend((0..40).map(|_| call("sub")));
    lines.push(call("m1"));
    lines.push(call("sub"));
    let out = run(&lines.join("\n")).unwrap();
    assert_eq!(out.len(), 102);
    assert!(out[..100]
        .iter()
        .all(|r| r.decision.decision == Outcome::Allow));
    for r in &out[100..] {
        assert_eq!(r.decision.decision, Outcome::Deny, "line {}", r.line);
        assert!(
            r.decision.reasons[0].text.contains("budget of 100 calls"),
            "{:?}",
            r.decision.reasons
        );
    }
}

async fn decide(e: &Enforcer, m: &Mission, cell: &MissionCell) -> Outcome {
    let actor = Actor {
        mission: m,
        cell,
        session: "s",
    };
    let call = Call::new("acl", "get_acl", json!({"resource": "logs:auth"}));
    e.decide(&actor, call, How::call())
        .await
        .unwrap()
        .decision
        .decision
}

#[tokio::test]
async fn a_childs_own_calls_cap_holds_its_calls_and_leaves_the_parent_its_own() {
    let engine = acme();
    let store = warden_store::open("memory:").await.unwrap();
    let e = Enforcer::start(engine.clone(), store).await.unwrap();
    let now = warden_enforce::now_ms();
    let parent = engine
        .grant("m1", "ops-change", "ops-bot", "dave", "Tidy up", now)
        .unwrap();
    let n = Narrowing {
        tools: Some(vec!["acl.get_acl".into()]),
        budgets: Budgets {
            calls: Some(2),
            ..Budgets::default()
        },
        ..Narrowing::default()
    };
    let child = engine.attenuate(&parent, "sub", &n, now).unwrap();
    // Shared state: the child acts on its root's cell.
    let cell = MissionCell::new(child.root());
    // The parent's calls do not use the child's own cap...
    for _ in 0..3 {
        assert_eq!(decide(&e, &parent, &cell).await, Outcome::Allow);
    }
    assert_eq!(decide(&e, &child, &cell).await, Outcome::Allow);
    assert_eq!(decide(&e, &child, &cell).await, Outcome::Allow);
    // ...and the child's third is over it, while the parent goes on.
    assert_eq!(decide(&e, &child, &cell).await, Outcome::Deny);
    assert_eq!(decide(&e, &parent, &cell).await, Outcome::Allow);
    let (_, usage) = cell.snapshot().await;
    assert_eq!(usage.calls, 6);
}
