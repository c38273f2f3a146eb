#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! Breakers through the pipeline: a detector's trip denies the next call at once, is in the
//! store and the audit chain; only a member of `[breakers] resetters` resets it, and a refused
//! reset is audited too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use warden_core::{Config, Engine, Outcome, Sources};
use warden_enforce::identity::{AuthMethod, Principal};
use warden_enforce::replay::Replayer;
use warden_enforce::{BreakerControl, BreakerError};
use warden_store::AuditKind;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const NOW: i64 = 1_763_629_200_000;

struct Files(PathBuf);

impl Sources for Files {
    fn read(&self, path: &str) -> Result<String, String> {
        if path == "warden.toml" {
            let text = std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())?;
            return Ok(text
                + "\n[breakers]\nresetters = [\"security\"]\n[breakers.call_rate]\nmax_calls = 3\n");
        }
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }

    fn list(&self, dir: &str, ext: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(ext))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

fn engine() -> Arc<Engine> {
    let files = Files(repo().join("examples/acme"));
    let text = files.read("warden.toml").unwrap();
    Arc::new(Engine::new(
        Config::load("warden.toml", &text, &files).unwrap(),
    ))
}

fn person(user: &str) -> Principal {
    Principal {
        user: user.to_string(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    }
}

const MISSION: &str = r#"{"kind":"mission","id":"m1","template":"answer-forum-question","agent":"forum-helper","principal":"alice","purpose":"Help me answer Bob's question in T-1042"}"#;
const READ: &str = r#"{"kind":"call","mission":"m1","session":"s1","server":"forum","tool":"read_thread","args":{"channel":"eng-help","thread_id":"T-1042"},"output":"ok"}"#;

#[tokio::test]
async fn a_trip_denies_the_next_call_until_a_resetter_resets_it() {
    let store = warden_store::open("memory:").await.unwrap();
    let replayer = Replayer::new(engine(), store.clone()).await.unwrap();
    let trace = format!("{MISSION}\n{READ}\n{READ}\n{READ}\n{READ}\n{READ}\n");
    let out = replayer.replay("t.jsonl", &trace, NOW).await.unwrap();
    let outcomes: Vec<Outcome> = out.iter().map(|r| r.decision.decision).collect();
    // The fourth call goes over three a minute: it trips, and the fifth is denied.
    assert_eq!(
        outcomes,
        vec![
            Outcome::Allow,
            Outcome::Allow,
            Outcome::Allow,
            Outcome::Allow,
            Outcome::Deny
        ]
    );
    let why = &out[4].decision.reasons[0].text;
    assert_eq!(
        why,
        "the breaker of mission `m1` is tripped: mission `m1` made 4 calls in 1 minute; the limit is 3"
    );
    let stored = store.breakers().await.unwrap();
    assert_eq!(stored["mission:m1"]["tripped"], true);
    assert_eq!(stored["mission:m1"]["detector"], "call_rate");

    let control = BreakerControl::of(replayer.enforcer().clone());
    let listed = control.list().await.unwrap();
    assert!(listed.iter().any(|b| b.key == "mission:m1" && b.tripped));

    // alice is the mission's principal, not a resetter: refused.
    let refused = control
        .reset(&person("alice"), "mission:m1", "", NOW + 10_000)
        .await;
    assert!(
        matches!(refused, Err(BreakerError::Forbidden(_))),
        "{refused:?}"
    );
    // A key that names nothing, or nothing tripped, is refused without a write.
    for bad in ["mission:", "planet:x", "agent:nobody"] {
        let r = control.reset(&person("dave"), bad, "", NOW).await;
        assert!(matches!(r, Err(BreakerError::Invalid(_))), "{bad}: {r:?}");
    }
    // dave is in `security`.
    let reset = control
        .reset(
            &person("dave"),
            "mission:m1",
            "looked into it",
            NOW + 20_000,
        )
        .await
        .unwrap();
    assert!(!reset.tripped);
    assert_eq!(reset.by.as_deref(), Some("dave"));
    assert!(!replayer
        .enforcer()
        .breakers()
        .tripped_missions
        .contains("m1"));

    // The audit chain: the trip, the refusal (with who), the reset (with who and why).
    let records = store.audit_range(1, 1000).await.unwrap();
    let breaker: Vec<_> = records
        .iter()
        .filter(|r| r.kind == AuditKind::Breaker)
        .collect();
    let tools: Vec<&str> = breaker
        .iter()
        .map(|r| r.columns.tool.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        tools,
        vec!["breaker/tripped", "breaker/reset-refused", "breaker/reset"]
    );
    assert_eq!(breaker[1].columns.principal.as_deref(), Some("alice"));
    assert_eq!(breaker[2].columns.principal.as_deref(), Some("dave"));
    assert!(breaker[2].body["reason"]
        .as_str()
        .unwrap()
        .contains("looked into it"));
}
