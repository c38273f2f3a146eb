use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};
use warden_core::mission::MissionUsage;
use warden_core::session::SessionState;
use warden_core::trace::{steps, Step};
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme, NOW};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(acme)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,40}".prop_map(Value::String),
        prop::sample::select(vec![
            "eng-help",
            "all-hands",
            "auth",
            "deploy",
            "alice",
            "bob",
            "T-1042",
            "services/billing/.env",
            "docs/public/faq.md",
            "drop@evil.example",
            "bob@acme.example",
            "logs:auth",
            "all-employees",
            "name",
            "salary",
            "AKIAIOSFODNN7EXAMPLE",
            "grant all-employees read access",
            "chmod 777 /",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "channel",
                    "thread_id",
                    "body",
                    "as_user",
                    "to",
                    "source",
                    "query",
                    "fields",
                    "path",
                    "content",
                    "resource",
                    "group",
                    "permission",
                    "url",
                    "subject",
                    "title",
                    "limit",
                    "x",
                ])
                .prop_map(String::from),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn tool_name() -> impl Strategy<Value = (String, String)> {
    let known: Vec<(String, String)> = engine()
        .config()
        .catalog
        .tools()
        .map(|t| (t.server.clone(), t.tool.clone()))
        .collect();
    prop_oneof![prop::sample::select(known), (".{0,12}", ".{0,12}"),]
}

const PEOPLE: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank"];

fn missions() -> Vec<(&'static str, &'static str)> {
    vec![
        ("answer-forum-question", "forum-helper"),
        ("project-roster", "hr-assistant"),
        ("ops-change", "ops-bot"),
        ("triage", "exec-assistant"),
        // Templates given to agents whose ceiling is narrower than the template.
        ("triage", "forum-helper"),
        ("ops-change", "hr-assistant"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn decide_never_panics_and_never_allows_beyond_the_ceiling(
        (server, tool) in tool_name(),
        args in json_value(),
        who in prop::sample::select(PEOPLE.to_vec()),
        m in prop::sample::select(missions()),
        before in prop::collection::vec((tool_name(), json_value(), ".{0,80}"), 0..3),
    ) {
        let e = engine();
        let mission = e.grant("m", m.0, m.1, who, "purpose", NOW).unwrap();
        let mut session = SessionState::new("s", "m");
        let mut usage = MissionUsage::default();
        let b = Breakers::default();
        for ((s, t), a, out) in before {
            let d = e.decide(Call::new(s, t, a), &mission, &session, &usage, &b, NOW);
            e.commit(&d.decision, &mut session, &mut usage);
            if let Some(p) = d.allowed.as_ref() {
                e.absorb(p.receipt(), &out, &mut session, &mut usage, NOW);
            }
        }
        let call = Call::new(server, tool, args);
        let name = call.name();
        let d = e.decide(call, &mission, &session, &usage, &b, NOW + 1);
        let agent = &e.config().agents[m.1];
        if !agent.may_use(&name) || e.config().catalog.get(&name).is_none() {
            prop_assert_ne!(d.decision.decision, Outcome::Allow);
            prop_assert!(d.allowed.is_none());
        }
        prop_assert_eq!(d.allowed.is_some(), d.decision.decision == Outcome::Allow);
        prop_assert!(!d.decision.reasons.is_empty());
    }

    #[test]
    fn a_tripped_breaker_always_denies(args in json_value(), global in any::<bool>()) {
        let e = engine();
        let mission = e.grant("m", "answer-forum-question", "forum-helper", "alice", "p", NOW).unwrap();
        let mut b = Breakers::default();
        if global { b.global = true } else { b.agents.insert("forum-helper".into()); }
        let d = e.decide(Call::new("forum", "read_thread", args), &mission, &SessionState::new("s", "m"), &MissionUsage::default(), &b, NOW);
        prop_assert_eq!(d.decision.decision, Outcome::Deny);
    }

    #[test]
    fn trace_reading_never_panics_on_arbitrary_lines(lines in prop::collection::vec(".{0,200}", 0..8)) {
        let _ = steps("t", &lines.join("\n"), NOW);
    }

    #[test]
    fn any_arguments_and_output_of_a_trace_are_decided_and_absorbed(args in json_value(), output in json_value()) {
        let text = format!(
            "{}\n{}\n",
            json!({"kind":"mission","id":"m1","template":"answer-forum-question","agent":"forum-helper","principal":"alice","purpose":"p"}),
            json!({"kind":"call","mission":"m1","session":"s1","server":"forum","tool":"read_thread","args":args,"output":output}),
        );
        let read = steps("t", &text, NOW);
        prop_assert!(read.is_ok());
        let e = engine();
        let mission = e.grant("m1", "answer-forum-question", "forum-helper", "alice", "p", NOW).unwrap();
        let mut session = SessionState::new("s1", "m1");
        let mut usage = MissionUsage::default();
        for step in read.unwrap() {
            if let Step::Call { call, output, now, .. } = step {
                let d = e.decide(call, &mission, &session, &usage, &Breakers::default(), now);
                e.commit(&d.decision, &mut session, &mut usage);
                if let (Some(a), Some(o)) = (d.allowed, output) {
                    e.absorb(a.receipt(), &warden_core::trace::output_text(&o), &mut session, &mut usage, now);
                }
            }
        }
    }

    #[test]
    fn config_loading_never_panics(text in ".{0,300}") {
        let _ = crate::common::load_with(&text, &[]);
    }
}

#[test]
fn huge_arguments_are_denied_not_scanned_forever() {
    let e = engine();
    let mission = e
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "p",
            NOW,
        )
        .unwrap();
    let body = "a".repeat(300 * 1024);
    let d = e.decide(
        Call::new(
            "forum",
            "post_reply",
            json!({"channel":"eng-help","thread_id":"T-1","body":body}),
        ),
        &mission,
        &SessionState::new("s", "m"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW,
    );
    assert_eq!(d.decision.decision, Outcome::Deny);
    assert!(
        d.decision.summary().contains("limit"),
        "{}",
        d.decision.summary()
    );
}

#[test]
fn hostile_outputs_still_taint_the_session() {
    let e = engine();
    let mission = e
        .grant("m", "ops-change", "ops-bot", "dave", "p", NOW)
        .unwrap();
    let mut s = SessionState::new("s", "m");
    let mut u = MissionUsage::default();
    let b = Breakers::default();
    let d = e.decide(
        Call::new("files", "read_file", json!({"path":"README.md"})),
        &mission,
        &s,
        &u,
        &b,
        NOW,
    );
    let p = d.allowed.expect("reading the README is allowed");
    e.commit(&d.decision, &mut s, &mut u);
    // A 3 MiB output with a key past the scan limit, plus binary junk.
    let mut out = "x".repeat(3 << 20);
    out.push_str("\u{0}\u{1}\u{fffd}AKIAIOSFODNN7EXAMPLE");
    let labels = e.absorb(p.receipt(), &out, &mut s, &mut u, NOW);
    assert!(
        labels.contains("secret"),
        "not fully scanned output is labelled as the most sensitive: {labels:?}"
    );
    let d = e.decide(
        Call::new(
            "files",
            "write_file",
            json!({"path":"docs/x.md","content":"hello"}),
        ),
        &mission,
        &s,
        &u,
        &b,
        NOW,
    );
    assert_eq!(
        d.decision.decision,
        Outcome::Deny,
        "{:?}",
        d.decision.reasons
    );
}
