//! Narrowed missions never widen: whatever sequence of narrowings is tried (widening ones
//! included), a child allows no call over the Acme catalog that its root does not, and
//! `attenuate` accepts only narrowings that lie within the parent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use globset::GlobBuilder;
use proptest::prelude::*;
use serde_json::Value;
use warden_core::mission::{Budgets, Mission, MissionUsage, PublishScope};
use warden_core::narrow::{Narrowing, WidenError};
use warden_core::session::SessionState;
use warden_core::{Breakers, Call, Engine, Outcome};

use crate::common::{acme, acme_dir, NOW};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(acme)
}

/// Every distinct call of the Acme scenarios: calls over the whole catalog.
fn calls() -> &'static Vec<(String, String, Value)> {
    static C: OnceLock<Vec<(String, String, Value)>> = OnceLock::new();
    C.get_or_init(|| {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(acme_dir().join("scenarios"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if v["kind"] != "call" {
                    continue;
                }
                let key = (
                    v["server"].as_str().unwrap_or("").to_string(),
                    v["tool"].as_str().unwrap_or("").to_string(),
                    v.get("args").cloned().unwrap_or(Value::Null),
                );
                if seen.insert(key.clone().2.to_string() + &key.0 + &key.1) {
                    out.push(key);
                }
            }
        }
        out
    })
}

const TOOLS: &[&str] = &[
    "forum.read_thread",
    "forum.list_threads",
    "forum.post_reply",
    "forum.*",
    "logs.query_logs",
    "logs.*",
    "files.read_file",
    "files.*",
    "web.fetch",
    "mail.send_email",
    "hr.search_employees",
    "acl.grant_access",
    "*",
];
const RESOURCES: &[&str] = &[
    "*",
    "eng-help",
    "eng-*",
    "all-hands",
    "logs:*",
    "logs:auth",
    "auth",
    "services/*",
    "services/billing/.env",
    "docs/public/*",
    "docs/public/faq.md",
    "*.md",
    "docs/**",
    "T-1042",
];
const HOSTS: &[&str] = &[
    "vendor.example",
    "*.vendor.example",
    "api.vendor.example",
    "*",
    "evil.example",
    "*.example",
];
const LABELS: &[&str] = &[
    "public",
    "internal",
    "pii",
    "hr-compensation",
    "security-sensitive",
    "user-data",
    "secret",
];
const AGENTS: &[&str] = &[
    "forum-helper",
    "hr-assistant",
    "ops-bot",
    "exec-assistant",
    "nobody",
];
const ROOTS: &[(&str, &str)] = &[
    ("answer-forum-question", "forum-helper"),
    ("triage", "exec-assistant"),
    ("vendor-check", "exec-assistant"),
    ("project-roster", "hr-assistant"),
    ("ops-change", "ops-bot"),
];

fn subset(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(pool, 0..=3.min(pool.len()))
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

fn narrowing() -> impl Strategy<Value = Narrowing> {
    let scope = prop::sample::select(vec![
        PublishScope::None,
        PublishScope::Principal,
        PublishScope::Internal,
        PublishScope::Any,
    ]);
    let fields = prop::sample::subsequence(vec!["name", "title", "team", "email", "salary"], 0..=5);
    (
        (
            prop::option::weighted(0.6, subset(TOOLS)),
            prop::option::weighted(0.4, subset(RESOURCES)),
            prop::option::weighted(0.3, subset(HOSTS)),
            prop::option::weighted(0.3, -60_000i64..20_000_000),
            prop::option::weighted(0.2, prop::sample::select(AGENTS)),
        ),
        (
            prop::option::weighted(0.3, 0u64..300),
            prop::option::weighted(0.2, 0u64..1000),
            prop::option::weighted(0.3, subset(LABELS)),
            prop::option::weighted(0.3, scope),
            prop::option::weighted(0.2, fields),
        ),
    )
        .prop_map(
            |(
                (tools, resources, hosts, expires, agent),
                (calls, records, labels, publish, fields),
            )| {
                Narrowing {
                    tools,
                    resources,
                    hosts,
                    // Relative to the clock; made absolute when applied.
                    expires_at_ms: expires,
                    agent: agent.map(String::from),
                    budgets: Budgets {
                        calls,
                        records,
                        bytes: None,
                    },
                    read_labels: labels.map(|l| l.into_iter().collect()),
                    publish_to: publish,
                    arg_values: fields.map(|f| {
                        BTreeMap::from([(
                            "hr.search_employees".to_string(),
                            BTreeMap::from([(
                                "fields".to_string(),
                                f.into_iter().map(String::from).collect(),
                            )]),
                        )])
                    }),
                }
            },
        )
}

fn decide(e: &Engine, m: &Mission, call: &(String, String, Value)) -> Outcome {
    let d = e.decide(
        Call::new(call.0.clone(), call.1.clone(), call.2.clone()),
        m,
        &SessionState::new("s", &m.id),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW + 5_000,
    );
    d.decision.decision
}

/// Strings a glob pattern may be asked about: the pools and some variations.
fn probes() -> Vec<String> {
    let mut out: Vec<String> = RESOURCES
        .iter()
        .chain(HOSTS)
        .map(|s| s.replace('*', "x"))
        .collect();
    out.extend(
        [
            "eng-help",
            "eng-",
            "eng-x/y",
            "logs:",
            "services/a/b",
            "docs/public/",
            "docs/x.md",
            "a.md",
            "api.vendor.example",
            "vendor.example",
            "x.vendor.example",
            "evil.example",
            "EVIL.example",
            "",
            "docs",
            "docs/a/b",
        ]
        .map(String::from),
    );
    out
}

fn matches(patterns: &[String], s: &str, ci: bool) -> bool {
    patterns.iter().any(|p| {
        GlobBuilder::new(p)
            .case_insensitive(ci)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(s))
    })
}

/// An independent look at an accepted narrowing: nothing it names is outside the parent.
fn assert_within(e: &Engine, parent: &Mission, n: &Narrowing) -> Result<(), TestCaseError> {
    let t = &e.config().templates[&parent.template];
    if let Some(tools) = &n.tools {
        for spec in e.config().catalog.tools() {
            let named = tools.iter().any(|p| {
                warden_core::pattern::ToolPattern::parse(p).is_some_and(|p| p.matches(&spec.name))
            });
            prop_assert!(
                !named || warden_core::narrow::allows_tool(t, &parent.narrowings, &spec.name),
                "{} accepted in {tools:?}",
                spec.name
            );
        }
    }
    for (child, base, of, ci) in [
        (
            &n.resources,
            t.resource_patterns(),
            (|x: &Narrowing| x.resources.clone()) as fn(&Narrowing) -> Option<Vec<String>>,
            false,
        ),
        (
            &n.hosts,
            t.host_patterns(),
            |x: &Narrowing| x.hosts.clone(),
            true,
        ),
    ] {
        let Some(child) = child else { continue };
        for s in probes() {
            if matches(child, &s, ci) {
                prop_assert!(base.is_empty() || matches(base, &s, ci), "{s} in {child:?}");
                for earlier in &parent.narrowings {
                    if let Some(p) = of(earlier) {
                        prop_assert!(matches(&p, &s, ci), "{s} in {child:?}, not in {p:?}");
                    }
                }
            }
        }
    }
    if let Some(at) = n.expires_at_ms {
        prop_assert!(at <= parent.expires_at_ms);
    }
    if let Some(labels) = &n.read_labels {
        for ceiling in t.read_labels.iter().chain(
            parent
                .narrowings
                .iter()
                .filter_map(|x| x.read_labels.as_ref()),
        ) {
            prop_assert!(labels.is_subset(ceiling));
        }
    }
    if let Some(scope) = n.publish_to {
        prop_assert!(scope.within(t.publish_to));
        for p in parent.narrowings.iter().filter_map(|x| x.publish_to) {
            prop_assert!(scope.within(p));
        }
    }
    if let Some(c) = n.budgets.calls {
        let caps = std::iter::once(t.budgets.calls)
            .chain(parent.narrowings.iter().map(|x| x.budgets.calls))
            .flatten();
        for cap in caps {
            prop_assert!(c <= cap);
        }
    }
    if let Some(a) = &n.agent {
        prop_assert!(e.config().agents.contains_key(a));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_chain_of_narrowings_allows_what_its_root_does_not(
        root in prop::sample::select(ROOTS),
        steps in prop::collection::vec(narrowing(), 1..4),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 6),
    ) {
        let e = engine();
        let root = e.grant("m0", root.0, root.1, "alice", "answer the question", NOW).unwrap();
        let mut chain = vec![root.clone()];
        for (i, mut n) in steps.into_iter().enumerate() {
            n.expires_at_ms = n.expires_at_ms.map(|d| NOW + d);
            let parent = chain.last().unwrap().clone();
            match e.attenuate(&parent, &format!("m{}", i + 1), &n, NOW + 1_000) {
                Ok(child) => {
                    assert_within(e, &parent, &n)?;
                    prop_assert_eq!(child.depth(), parent.depth() + 1);
                    prop_assert_eq!(child.root(), "m0");
                    prop_assert!(child.expires_at_ms <= parent.expires_at_ms);
                    chain.push(child);
                }
                Err(WidenError::Wider { parent: p, .. }) => prop_assert_eq!(p, parent.id),
                Err(_) => {}
            }
        }
        let all = calls();
        for pick in &picks {
            let call = pick.get(all);
            let at_root = decide(e, &root, call);
            for m in chain.iter().skip(1) {
                let at_child = decide(e, m, call);
                if at_child == Outcome::Allow {
                    prop_assert_eq!(at_root, Outcome::Allow, "{:?} allowed under {:?}", call, m);
                }
                if at_root == Outcome::Deny {
                    prop_assert_eq!(at_child, Outcome::Deny, "{:?} under {:?}", call, m);
                }
            }
        }
    }

    #[test]
    fn a_hand_made_wider_narrowing_is_still_enforced_as_an_intersection(
        n in narrowing(),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 6),
    ) {
        // A mission that skipped `attenuate`: its narrowings are enforced all the same.
        let e = engine();
        let root = e.grant("m0", "answer-forum-question", "forum-helper", "alice", "p", NOW).unwrap();
        let mut forged = root.clone();
        forged.id = "m1".into();
        forged.chain.push("m1".into());
        forged.agent = n.agent.clone().unwrap_or(forged.agent);
        forged.narrowings.push(Narrowing { expires_at_ms: None, ..n });
        for pick in &picks {
            let call = pick.get(calls());
            if decide(e, &forged, call) == Outcome::Allow {
                prop_assert_eq!(decide(e, &root, call), Outcome::Allow, "{:?}", call);
            }
        }
    }
}

fn root() -> Mission {
    engine()
        .grant(
            "m1",
            "answer-forum-question",
            "forum-helper",
            "alice",
            "p",
            NOW,
        )
        .unwrap()
}

fn field(r: Result<Mission, WidenError>) -> &'static str {
    match r {
        Err(WidenError::Wider { field, .. }) => field,
        other => panic!("expected a widening error, got {other:?}"),
    }
}

#[test]
fn each_field_refuses_to_widen() {
    let e = engine();
    let m = root();
    let narrow = |n: Narrowing| e.attenuate(&m, "m2", &n, NOW);
    let tools = |t: &[&str]| Narrowing {
        tools: Some(t.iter().map(|s| s.to_string()).collect()),
        ..Narrowing::default()
    };
    assert_eq!(field(narrow(tools(&["web.fetch"]))), "tools");
    assert_eq!(field(narrow(tools(&["*"]))), "tools");
    assert!(narrow(tools(&["forum.read_thread"])).is_ok());
    assert!(narrow(tools(&["forum.*"])).is_ok());
    let child = narrow(tools(&["forum.read_thread"])).unwrap();
    // Once narrowed to one tool, its server's wildcard is wider.
    assert_eq!(
        field(e.attenuate(&child, "m3", &tools(&["forum.*"]), NOW)),
        "tools"
    );
    let later = Narrowing {
        expires_at_ms: Some(m.expires_at_ms + 1),
        ..Narrowing::default()
    };
    assert_eq!(field(narrow(later)), "expires_at_ms");
    let calls = Narrowing {
        budgets: Budgets {
            calls: Some(51),
            ..Budgets::default()
        },
        ..Narrowing::default()
    };
    assert_eq!(field(narrow(calls)), "budgets");
    let res = |r: &[&str]| Narrowing {
        resources: Some(r.iter().map(|s| s.to_string()).collect()),
        ..Narrowing::default()
    };
    let eng = narrow(res(&["eng-*"])).unwrap();
    assert!(e.attenuate(&eng, "m3", &res(&["eng-help"]), NOW).is_ok());
    assert!(e.attenuate(&eng, "m3", &res(&["eng-help-*"]), NOW).is_ok());
    assert_eq!(
        field(e.attenuate(&eng, "m3", &res(&["*"]), NOW)),
        "resources"
    );
    assert_eq!(
        field(e.attenuate(&eng, "m3", &res(&["e*"]), NOW)),
        "resources"
    );
    assert_eq!(
        field(e.attenuate(&eng, "m3", &res(&["{eng,x}-*"]), NOW)),
        "resources"
    );
    assert_eq!(
        field(e.attenuate(&eng, "m3", &res(&["all-hands"]), NOW)),
        "resources"
    );
    let labels = Narrowing {
        read_labels: Some(["internal".to_string()].into()),
        ..Narrowing::default()
    };
    let low = narrow(labels).unwrap();
    let up = Narrowing {
        read_labels: Some(["internal".to_string(), "secret".to_string()].into()),
        ..Narrowing::default()
    };
    assert_eq!(field(e.attenuate(&low, "m3", &up, NOW)), "read_labels");
    let private = narrow(Narrowing {
        publish_to: Some(PublishScope::Principal),
        ..Narrowing::default()
    })
    .unwrap();
    let public = Narrowing {
        publish_to: Some(PublishScope::Any),
        ..Narrowing::default()
    };
    assert_eq!(
        field(e.attenuate(&private, "m3", &public, NOW)),
        "publish_to"
    );
    // hr-assistant may use `hr.search_employees`, outside forum-helper's ceiling... but the
    // template does not offer it; `forum.send_dm` it shares. exec-assistant adds nothing the
    // template offers that forum-helper lacks.
    let agent = |a: &str| Narrowing {
        agent: Some(a.to_string()),
        ..Narrowing::default()
    };
    assert!(matches!(
        narrow(agent("nobody")),
        Err(WidenError::UnknownAgent(_))
    ));
    assert!(narrow(agent("exec-assistant")).is_ok());
    // A child id already in the chain.
    assert!(matches!(
        narrow(Narrowing::default()).and_then(|c| e.attenuate(
            &c,
            "m1",
            &Narrowing::default(),
            NOW
        )),
        Err(WidenError::BadId(_))
    ));
}

#[test]
fn a_narrowed_mission_names_itself_and_what_it_may_use_when_it_refuses() {
    let e = engine();
    let m = root();
    let n = Narrowing {
        tools: Some(vec!["forum.read_thread".into()]),
        ..Narrowing::default()
    };
    let child = e.attenuate(&m, "sub", &n, NOW).unwrap();
    assert_eq!(child.chain, vec!["m1".to_string(), "sub".to_string()]);
    assert_eq!(child.parent.as_deref(), Some("m1"));
    let call = Call::new(
        "files",
        "read_file",
        serde_json::json!({"path": "docs/public/faq.md"}),
    );
    let d = e.decide(
        call.clone(),
        &child,
        &SessionState::new("s", "sub"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW + 1000,
    );
    assert_eq!(d.decision.decision, Outcome::Deny);
    let text = &d.decision.reasons[0].text;
    assert!(
        text.contains("`sub`") && text.contains("`forum.read_thread`"),
        "{text}"
    );
    let d = e.decide(
        call,
        &m,
        &SessionState::new("s", "m1"),
        &MissionUsage::default(),
        &Breakers::default(),
        NOW + 1000,
    );
    assert_eq!(d.decision.decision, Outcome::Allow);
    // The tools a sub-agent's session is shown are the narrowed ones.
    let shown: Vec<&str> = e
        .visible_tools(&child)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(shown, vec!["forum.read_thread"]);
    // Revoking the parent revokes the child.
    let mut b = Breakers::default();
    b.missions.insert("m1".into());
    let d = e.decide(
        Call::new(
            "forum",
            "read_thread",
            serde_json::json!({"channel": "eng-help", "thread_id": "T-1042"}),
        ),
        &child,
        &SessionState::new("s", "sub"),
        &MissionUsage::default(),
        &b,
        NOW + 1000,
    );
    assert_eq!(d.decision.decision, Outcome::Deny);
}
