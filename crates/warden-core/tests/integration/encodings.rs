//! Content that cannot hide: secrets behind encodings, look-alike letters and invisible
//! characters, split over calls, or read and sent again in part are found by `decide`.

use serde_json::json;
use warden_core::mission::{Mission, MissionUsage};
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::NOW;

fn acme() -> &'static Engine {
    static E: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    E.get_or_init(crate::common::acme)
}

fn forum_mission(e: &Engine) -> (Mission, SessionState, MissionUsage) {
    let m = e
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "bob",
            "Help me answer the deploy key question",
            NOW,
        )
        .unwrap();
    (m, SessionState::new("s", "m"), MissionUsage::default())
}

fn post(body: &str) -> Call {
    Call::new(
        "forum",
        "post_reply",
        json!({"channel": "eng-help", "thread_id": "T-1100", "body": body}),
    )
}

/// Decide and commit a call; returns the decision's outcome and whether its arguments were
/// labelled secret.
fn send(e: &Engine, st: &mut (Mission, SessionState, MissionUsage), call: Call) -> (Outcome, bool) {
    let d = e.decide(call, &st.0, &st.1, &st.2, &Breakers::default(), NOW);
    e.commit(&d.decision, &mut st.1, &mut st.2);
    (
        d.decision.decision,
        d.decision.flow.argument_labels.contains("secret"),
    )
}

#[test]
fn encoded_and_disguised_secrets_are_denied_in_a_post() {
    let e = acme();
    let aws = "AKIAIOSFODNN7EXAMPLE";
    let pct: String = aws.bytes().map(|b| format!("%{b:02X}")).collect();
    let zw: String = aws.chars().flat_map(|c| [c, '\u{200D}']).collect();
    let cyr = "АКІАІОЅFОDNN7ЕХАМРLЕ";
    let b32 = data_encoding_free_base32(&format!("key={aws}"));
    for body in [pct, zw, cyr.to_owned(), b32, aws.chars().rev().collect()] {
        let mut st = forum_mission(e);
        let (outcome, secret) = send(e, &mut st, post(&format!("here: {body}")));
        assert!(secret, "{body}");
        assert_eq!(outcome, Outcome::Deny, "{body}");
    }
    let mut st = forum_mission(e);
    assert_eq!(
        send(e, &mut st, post("Ask the platform team to rotate it.")),
        (Outcome::Allow, false)
    );
}

/// RFC 4648 base32, written out so the test does not share the detector's decoder.
fn data_encoding_free_base32(s: &str) -> String {
    const ALPHA: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in s.as_bytes() {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHA[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHA[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

#[test]
fn a_key_split_over_two_posts_is_denied_at_the_second() {
    let e = acme();
    let mut st = forum_mission(e);
    assert_eq!(
        send(e, &mut st, post("first half: AKIAIOSFODNN")),
        (Outcome::Allow, false)
    );
    assert!(!st.1.sent_tails.is_empty());
    assert_eq!(send(e, &mut st, post("7EXAMPLE")), (Outcome::Deny, true));
    // The mission's other sessions share what was sent.
    let mut other = forum_mission(e);
    assert_eq!(
        send(e, &mut other, post("first half: AKIAIOSFODNN")).0,
        Outcome::Allow
    );
    other.1.id = "s2".into();
    assert_eq!(send(e, &mut other, post("7EXAMPLE")), (Outcome::Deny, true));
    // A denied call sent nothing: it does not start a split.
    let mut third = forum_mission(e);
    let before = third.1.sent_tails.clone();
    let _ = send(
        e,
        &mut third,
        post("-----BEGIN RSA PRIVATE KEY-----\nMIIEow"),
    );
    assert_eq!(third.1.sent_tails, before);
}

#[test]
fn parts_of_a_read_secret_are_labelled_and_fingerprints_keep_no_secret() {
    let e = acme();
    let m = e
        .grant(
            "m",
            "ops-change",
            "ops-bot",
            "dave",
            "Rotate billing credentials",
            NOW,
        )
        .unwrap();
    let mut s = SessionState::new("s", "m");
    let mut u = MissionUsage::default();
    let read = Call::new(
        "files",
        "read_file",
        json!({"path": "services/billing/.env"}),
    );
    let d = e.decide(read, &m, &s, &u, &Breakers::default(), NOW);
    let p = d.allowed.expect("reading is allowed");
    e.commit(&d.decision, &mut s, &mut u);
    let secret = "sk_live_51HqLyjWDarjtT1zdp7dcXYZ0123456789abcdef";
    e.absorb(
        p.receipt(),
        &format!("STRIPE_SECRET_KEY={secret}\n"),
        &mut s,
        &mut u,
        NOW,
    );
    assert!(!s.secret_prints.is_empty());
    // The fingerprints hold no part of the secret's text.
    let prints = serde_json::to_string(&s.secret_prints)
        .unwrap()
        .to_lowercase();
    assert!(!prints.contains("0123456789abcdef") && !prints.contains("hqlyjwd"));
    let saved = serde_json::to_string(&s).unwrap();
    let back: SessionState = serde_json::from_str(&saved).unwrap();
    assert_eq!(back.secret_prints, s.secret_prints);

    let write = |content: &str| {
        Call::new(
            "files",
            "write_file",
            json!({"path": "docs/notes.md", "content": content}),
        )
    };
    for part in [
        "ends with 0123456789abcdef",
        "s k _ l i v e _ 5 1 H q L y j W D a r",
        "fedcba9876543210ZYXcd7pdz1",
        "S\nK\n_\nL\nI\nV\nE\n_\n5\n1\nH\nQ\nL\nY",
    ] {
        let d = e.decide(write(part), &m, &back, &u, &Breakers::default(), NOW);
        assert!(d.decision.flow.argument_labels.contains("secret"), "{part}");
        assert_eq!(d.decision.decision, Outcome::Deny, "{part}");
    }
    let d = e.decide(
        write("rotation done"),
        &m,
        &back,
        &u,
        &Breakers::default(),
        NOW,
    );
    assert!(!d.decision.flow.argument_labels.contains("secret"));
}
