#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! Mission tokens: granted, presented, narrowed and refused. Each refusal names its reason:
//! another agent's token, an expired one, a forged one (another key), a tampered one (one byte
//! flipped), a block that widens its parent (a tool, a host, a later expiry, a larger budget),
//! and a block Warden cannot read (made with the biscuit library directly).

mod support;

use base64::Engine as _;
use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::UnverifiedBiscuit;
use warden_core::mission::Budgets;
use warden_core::narrow::Narrowing;
use warden_enforce::token::{attenuate, mint, Grant, RootKey, TokenError, Verifier};

const NOW: i64 = 1_765_000_000_000;
const HOUR: i64 = 3_600_000;

fn grant() -> Grant {
    Grant {
        mission: "m-granted".into(),
        template: "answer-forum-question".into(),
        agent: "forum-helper".into(),
        principal: "alice".into(),
        purpose: "Help me answer Bob's question in T-1042".into(),
        granted_at_ms: NOW,
        expires_at_ms: NOW + HOUR,
        auth: "jwt".into(),
        narrowing: None,
    }
}

fn setup() -> (RootKey, Verifier, String) {
    let key = RootKey::generate();
    let verifier = Verifier::new(key.public(), support::acme());
    let token = mint(&key, &grant()).unwrap();
    (key, verifier, token)
}

#[test]
fn a_granted_token_gives_its_mission_to_its_agent() {
    let (_, verifier, token) = setup();
    let v = verifier.verify(&token, "forum-helper", NOW + 1).unwrap();
    let m = &v.mission;
    assert_eq!(m.id, "m-granted");
    assert_eq!(m.principal, "alice");
    assert_eq!(m.template, "answer-forum-question");
    assert_eq!(m.purpose, "Help me answer Bob's question in T-1042");
    assert_eq!(m.expires_at_ms, NOW + HOUR);
    assert_eq!(m.auth, "jwt");
    assert_eq!(m.chain, vec!["m-granted".to_string()]);
    // Again, from the cache: the same mission.
    let again = verifier.verify(&token, "forum-helper", NOW + 2).unwrap();
    assert_eq!(again.mission, v.mission);
}

#[test]
fn another_agent_cannot_present_it() {
    let (_, verifier, token) = setup();
    let e = verifier.verify(&token, "ops-bot", NOW + 1).unwrap_err();
    assert!(matches!(e, TokenError::WrongAgent { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("for agent `forum-helper`, not `ops-bot`"),
        "{e}"
    );
}

#[test]
fn an_expired_token_is_refused_cached_or_not() {
    let (key, verifier, token) = setup();
    verifier.verify(&token, "forum-helper", NOW + 1).unwrap();
    let e = verifier
        .verify(&token, "forum-helper", NOW + HOUR + 1)
        .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // A fresh verifier refuses it through the token's own Datalog check too.
    let fresh = Verifier::new(key.public(), support::acme());
    let e = fresh.verify_fresh(&token, NOW + HOUR + 1).unwrap_err();
    assert!(matches!(e, TokenError::Refused(_)), "{e}");
}

#[test]
fn a_token_signed_with_another_key_is_refused() {
    let (_, verifier, _) = setup();
    let forged = mint(&RootKey::generate(), &grant()).unwrap();
    let e = verifier
        .verify(&forged, "forum-helper", NOW + 1)
        .unwrap_err();
    assert!(matches!(e, TokenError::Invalid(_)), "{e}");
}

#[test]
fn a_token_with_any_byte_flipped_is_refused() {
    let (_, verifier, token) = setup();
    let engine = base64::engine::general_purpose::URL_SAFE;
    let bytes = engine.decode(&token).unwrap();
    // Every 7th byte, each flipped on its own: none verifies.
    for i in (0..bytes.len()).step_by(7) {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let t = engine.encode(&tampered);
        assert!(
            verifier.verify(&t, "forum-helper", NOW + 1).is_err(),
            "byte {i} flipped was accepted"
        );
    }
}

#[test]
fn a_narrower_token_gives_a_child_mission() {
    let (_, verifier, token) = setup();
    let child = attenuate(
        &token,
        &Narrowing {
            tools: Some(vec!["forum.read_thread".into()]),
            expires_at_ms: Some(NOW + HOUR / 2),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let v = verifier.verify(&child, "forum-helper", NOW + 1).unwrap();
    let m = &v.mission;
    assert_eq!(m.chain.len(), 2);
    assert_eq!(m.chain[0], "m-granted");
    assert_eq!(m.parent.as_deref(), Some("m-granted"));
    assert!(m.id.starts_with("m-") && m.id != "m-granted");
    assert_eq!(m.expires_at_ms, NOW + HOUR / 2);
    assert_eq!(m.narrowings.len(), 1);
    // The same narrowing made twice gives two different children: ids are not chosen.
    let other = attenuate(
        &token,
        &Narrowing {
            tools: Some(vec!["forum.read_thread".into()]),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let o = verifier.verify(&other, "forum-helper", NOW + 1).unwrap();
    assert_ne!(o.mission.id, m.id);
    // Past its own expiry the child is refused while its parent still holds.
    assert!(verifier
        .verify(&child, "forum-helper", NOW + HOUR / 2 + 1)
        .is_err());
    assert!(verifier
        .verify(&token, "forum-helper", NOW + HOUR / 2 + 1)
        .is_ok());
}

#[test]
fn a_block_that_widens_its_parent_is_refused() {
    let (_, verifier, token) = setup();
    let narrow = attenuate(
        &token,
        &Narrowing {
            tools: Some(vec!["forum.read_thread".into()]),
            hosts: Some(vec!["docs.partner.example".into()]),
            budgets: Budgets {
                calls: Some(5),
                ..Budgets::default()
            },
            ..Narrowing::default()
        },
    )
    .unwrap();
    let widenings = [
        // A tool the parent lacks.
        Narrowing {
            tools: Some(vec!["forum.post_reply".into()]),
            ..Narrowing::default()
        },
        // A tool the template never had.
        Narrowing {
            tools: Some(vec!["hr.search_employees".into()]),
            ..Narrowing::default()
        },
        // A later expiry.
        Narrowing {
            expires_at_ms: Some(NOW + 3 * HOUR),
            ..Narrowing::default()
        },
        // A larger budget.
        Narrowing {
            budgets: Budgets {
                calls: Some(6),
                ..Budgets::default()
            },
            ..Narrowing::default()
        },
        // Another host than the one the parent may reach.
        Narrowing {
            hosts: Some(vec!["attacker.example".into()]),
            ..Narrowing::default()
        },
    ];
    for w in widenings {
        let wider = attenuate(&narrow, &w).unwrap();
        let e = verifier
            .verify(&wider, "forum-helper", NOW + 1)
            .unwrap_err();
        assert!(
            matches!(e, TokenError::Widening { block: 2, .. }),
            "{w:?} was not refused as widening: {e}"
        );
    }
}

#[test]
fn a_block_warden_cannot_read_is_refused() {
    let (_, verifier, token) = setup();
    // A block made with the biscuit library alone: a fact, no Warden context.
    let plain = UnverifiedBiscuit::from_base64(&token)
        .unwrap()
        .append(
            BlockBuilder::new()
                .fact("tool(\"files.read_file\")")
                .unwrap(),
        )
        .unwrap()
        .to_base64()
        .unwrap();
    let e = verifier
        .verify(&plain, "forum-helper", NOW + 1)
        .unwrap_err();
    assert!(matches!(e, TokenError::Unreadable { block: 1, .. }), "{e}");
}

#[test]
fn a_grant_for_an_unknown_principal_or_too_long_is_refused() {
    let key = RootKey::generate();
    let verifier = Verifier::new(key.public(), support::acme());
    let mut g = grant();
    g.principal = "mallory".into();
    let e = verifier
        .verify(&mint(&key, &g).unwrap(), "forum-helper", NOW + 1)
        .unwrap_err();
    assert!(matches!(e, TokenError::Grant(_)), "{e}");
    let mut g = grant();
    g.expires_at_ms = NOW + 100 * HOUR;
    let e = verifier
        .verify(&mint(&key, &g).unwrap(), "forum-helper", NOW + 1)
        .unwrap_err();
    assert!(e.to_string().contains("expires after"), "{e}");
}

#[test]
fn root_keys_round_trip_through_hex() {
    let key = RootKey::generate();
    let again = RootKey::from_private_hex(&key.private_hex()).unwrap();
    assert_eq!(again.public_hex(), key.public_hex());
    assert!(RootKey::from_private_hex("not hex").is_err());
}
