#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! The golden corpus: every Acme scenario and corpus trace, replayed through the enforcement
//! pipeline (on an in-memory store), decides as each line expects and as its snapshot says.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::{acme, repo};
use warden_core::trace::Replayed;
use warden_core::Engine;
use warden_enforce::replay::Replayer;

/// A fixed clock for deterministic snapshots: 2026-11-20T09:00:00Z.
const NOW: i64 = 1_763_629_200_000;

/// Replay one file through a fresh pipeline on its own in-memory store.
fn replay(engine: &Arc<Engine>, name: &str, text: &str, start: i64) -> Vec<Replayed> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = warden_store::open("memory:").await.unwrap();
        let replayer = Replayer::new(engine.clone(), store).await.unwrap();
        replayer.replay(name, text, start).await.unwrap()
    })
}

fn traces() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in ["examples/acme/scenarios", "corpus"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "jsonl") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_trace_decides_as_expected_and_matches_its_snapshot() {
    let engine = acme();
    let files = traces();
    assert!(files.len() >= 30, "the corpus has {} traces", files.len());
    let mut mismatches = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let results = replay(&engine, &name, &text, NOW);
        assert!(!results.is_empty(), "{name} has no calls");
        let mut snap = Vec::new();
        for r in &results {
            if r.mismatch() {
                mismatches.push(format!(
                    "{name}:{} expected {:?} got {} ({})",
                    r.line,
                    r.expect,
                    r.decision.decision,
                    r.decision.summary()
                ));
            }
            let d = &r.decision;
            snap.push(json!({
                "line": r.line,
                "tool": d.tool,
                "decision": d.decision,
                "reasons": d.reasons,
                "policies": d.policies,
                "ask_policies": d.ask_policies,
                "exposure": d.exposure,
                "labels": d.flow.labels,
                "argument_labels": d.flow.argument_labels,
                "untrusted_direction": d.flow.untrusted_direction,
            }));
        }
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(repo().join("corpus/decisions"));
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_json_snapshot!(name.trim_end_matches(".jsonl"), snap));
    }
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn a_deny_always_says_why() {
    let engine = acme();
    for path in traces() {
        let text = std::fs::read_to_string(&path).unwrap();
        for r in replay(&engine, "t", &text, NOW) {
            let d = &r.decision;
            assert!(!d.reasons.is_empty(), "{}: no reasons", d.tool);
            assert!(
                d.reasons
                    .iter()
                    .any(|x| x.outcome == d.decision && !x.text.is_empty()),
                "{}: no reason for {}",
                d.tool,
                d.decision
            );
            assert!(d.id.starts_with("d-") && d.id.len() == 22);
            assert_eq!(d.call_digest.len(), 64);
        }
    }
}
