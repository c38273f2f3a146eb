//! A path or URI spelled another way is labelled and bounded as its canonical form.

use serde_json::json;
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme_dir, acme_text, load_with, NOW};

/// Acme with one more template: docs only.
fn engine() -> Engine {
    let mut missions = std::fs::read_to_string(acme_dir().join("missions.toml")).unwrap();
    missions.push_str(
        "\n[\"docs-only\"]\ndescription = \"Read the docs\"\ntools = [\"files.read_file\"]\n\
         resources = [\"docs/**\"]\nlifetime = \"1h\"\n",
    );
    Engine::new(load_with(&acme_text(), &[("missions.toml", &missions)]).unwrap())
}

fn read(e: &Engine, template: &str, principal: &str, path: &str) -> Outcome {
    let m = e
        .grant(
            "m",
            template,
            "forum-helper",
            principal,
            "read the docs",
            NOW,
        )
        .unwrap();
    let d = e.decide(
        Call::new("files", "read_file", json!({ "path": path })),
        &m,
        &SessionState::new("s", "m"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW,
    );
    d.decision.decision
}

#[test]
fn a_resource_outside_the_mission_cannot_be_spelled_inside_it() {
    let e = engine();
    for inside in [
        "docs/runbooks/auth.md",
        "./docs/runbooks/auth.md",
        "docs//runbooks/auth.md",
    ] {
        assert_eq!(
            read(&e, "docs-only", "alice", inside),
            Outcome::Allow,
            "{inside}"
        );
    }
    for outside in [
        "docs/../services/billing/config.toml",
        "docs/%2e%2e/services/billing/config.toml",
        "docs%2F..%2Fservices/billing/config.toml",
        "docs\\..\\services\\billing\\config.toml",
    ] {
        assert_eq!(
            read(&e, "docs-only", "alice", outside),
            Outcome::Deny,
            "{outside}"
        );
    }
}

#[test]
fn labels_follow_the_file_the_upstream_reads() {
    let e = engine();
    // erin, a contractor, may read public docs however they are spelled, and nothing else.
    for public in [
        "docs/public/faq.md",
        "./docs/public/faq.md",
        "docs/public//faq.md",
    ] {
        let o = read(&e, "answer-forum-question", "erin", public);
        assert_eq!(o, Outcome::Allow, "{public}");
    }
    for internal in [
        "docs/public/../runbooks/auth.md",
        "docs/public/%2e%2e/runbooks/auth.md",
        "docs/public/%252e%252e/runbooks/auth.md",
    ] {
        let o = read(&e, "answer-forum-question", "erin", internal);
        assert_eq!(o, Outcome::Deny, "{internal}");
    }
}
