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

fn decide(e: &Engine, template: &str, principal: &str, path: &str) -> warden_core::Decision {
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
    e.decide(
        Call::new("files", "read_file", json!({ "path": path })),
        &m,
        &SessionState::new("s", "m"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW,
    )
    .decision
}

fn read(e: &Engine, template: &str, principal: &str, path: &str) -> Outcome {
    decide(e, template, principal, path).decision
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

#[test]
fn overlong_escapes_and_compatibility_forms_are_read_as_a_lenient_upstream_reads_them() {
    let e = engine();
    for internal in [
        "docs/public/%c0%ae%c0%ae/runbooks/auth.md",
        "docs/public/%e0%80%ae%e0%80%ae/runbooks/auth.md",
        "docs/public/．．/runbooks/auth.md",
        "docs/public/%EF%BC%8E%EF%BC%8E/runbooks/auth.md",
        "docs／public／．．／runbooks／auth.md",
    ] {
        let o = read(&e, "answer-forum-question", "erin", internal);
        assert_eq!(o, Outcome::Deny, "{internal}");
    }
    for outside in [
        "docs/%c0%ae%c0%ae/services/billing/config.toml",
        "docs/．．/services/billing/config.toml",
    ] {
        assert_eq!(
            read(&e, "docs-only", "alice", outside),
            Outcome::Deny,
            "{outside}"
        );
    }
}

/// Acme's files server (declared case-insensitive), and the same declared case-sensitive.
fn folded_and_strict() -> (Engine, Engine) {
    let catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    assert!(catalog.contains("case_insensitive = true"));
    let strict = catalog.replace("case_insensitive = true", "case_insensitive = false");
    (
        engine(),
        Engine::new(load_with(&acme_text(), &[("catalog.toml", &strict)]).unwrap()),
    )
}

fn labels_of(e: &Engine, path: &str) -> Vec<String> {
    let d = decide(e, "triage", "alice", path);
    d.flow.resource_labels.iter().cloned().collect()
}

#[test]
fn a_store_that_ignores_case_is_labelled_whatever_the_case() {
    let (folded, strict) = folded_and_strict();
    for secret in [
        "services/billing/.ENV",
        "services/billing/.Env.Production",
        "keys/Server.PEM",
        "home/bob/.ssh/ID_RSA",
        "SECRETS/deploy-token",
    ] {
        assert_eq!(labels_of(&folded, secret), ["secret"], "{secret}");
    }
    // Where the store tells case apart, `.ENV` is another file: its default labels, not public.
    assert_eq!(labels_of(&strict, "services/billing/.ENV"), ["internal"]);
    assert_eq!(labels_of(&folded, "DOCS/Public/faq.md"), ["public"]);
    assert_eq!(labels_of(&strict, "DOCS/Public/faq.md"), ["internal"]);
}
