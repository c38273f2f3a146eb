//! Who a call reaches: an optional audience argument left out adds no one; a recipient the
//! directory does not know is an outsider the policy decides on, not an error.

use serde_json::json;
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme_dir, acme_text, load_with, NOW};

/// Acme with one more tool: a note that may also be sent to someone (`cc`, optional).
fn engine() -> Engine {
    let mut catalog = std::fs::read_to_string(acme_dir().join("catalog.toml")).unwrap();
    catalog.push_str(
        "\n[tools.\"forum.save_note\"]\neffect = \"write\"\nrequired = [\"body\"]\n\
         resource = { type = \"Resource\", id = \"notes\" }\n\
         audience = { kind = \"user\", arg = \"cc\" }\n",
    );
    Engine::new(load_with(&acme_text(), &[("catalog.toml", &catalog)]).unwrap())
}

fn decide(e: &Engine, tool: &str, args: serde_json::Value) -> (Outcome, String) {
    let m = e
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "notes",
            NOW,
        )
        .unwrap();
    let (server, tool) = tool.split_once('.').unwrap();
    let d = e.decide(
        Call::new(server, tool, args),
        &m,
        &SessionState::new("s", "m"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW,
    );
    (d.decision.decision, d.decision.summary())
}

#[test]
fn an_optional_audience_argument_left_out_adds_no_one() {
    let e = engine();
    for args in [
        json!({"body": "remember the rotation"}),
        json!({"body": "remember the rotation", "cc": null}),
        json!({"body": "remember the rotation", "cc": ""}),
    ] {
        let (o, why) = decide(&e, "forum.save_note", args.clone());
        assert_ne!(o, Outcome::Deny, "{args}: {why}");
        assert!(!why.contains("needs the argument"), "{args}: {why}");
    }
}

#[test]
fn a_recipient_the_directory_does_not_know_is_an_outsider_not_an_error() {
    let e = engine();
    let (o, why) = decide(
        &e,
        "forum.send_dm",
        json!({"to": "nobody-here", "body": "Welcome aboard!"}),
    );
    assert_eq!(o, Outcome::Allow, "{why}");
    assert!(!why.contains("unknown"), "{why}");
}
