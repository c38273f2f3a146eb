#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
//! Calls held for approval: the sev1 post is held for alice's consent and for an exposure
//! approver; approvals are bound to the exact call, used once, refused (and audited) when
//! replayed with other arguments, used twice, used after expiry, or given by the agent, the
//! requester or someone not permitted; an approver can choose the private alternative instead.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use support::acme;
use warden_core::mission::Mission;
use warden_core::{Call, Outcome};
use warden_enforce::approvals::{Approvals, Stored, APPROVED, USED};
use warden_enforce::identity::{AuthMethod, Principal};
use warden_enforce::{
    Actor, Clock, Enforcer, Forward, Forwarded, How, MissionCell, Permitted, Verdict,
};
use warden_store::{AuditKind, Store};

const NOW: i64 = 1_763_629_200_000;

struct Answer(&'static str);

impl Forward for Answer {
    type Output = String;
    type Error = std::convert::Infallible;

    async fn forward(self, call: Permitted<Call>) -> Forwarded<String, std::convert::Infallible> {
        drop(call.into_inner());
        Forwarded {
            result: Ok(self.0.to_string()),
            outcome: "result".into(),
            reason: String::new(),
            text: Some(self.0.to_string()),
        }
    }
}

const LOGS: &str = "2026-11-20T09:14:03Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password session=s-8f21\n2026-11-20T09:15:40Z auth FAIL user=bob ip=10.20.3.17 reason=account_locked session=s-8f23";

fn person(user: &str) -> Principal {
    Principal {
        user: user.into(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    }
}

struct Sev1 {
    e: Arc<Enforcer>,
    store: Arc<dyn Store>,
    clock: Arc<AtomicI64>,
    mission: Mission,
    cell: MissionCell,
    people: Approvals,
}

impl Sev1 {
    /// alice's forum-helper, which has read bob's thread and the auth logs.
    async fn start() -> Sev1 {
        Sev1::start_with(acme()).await
    }

    /// The same on another engine.
    async fn start_with(engine: Arc<warden_core::Engine>) -> Sev1 {
        let store = warden_store::open("memory:").await.unwrap();
        let clock = Arc::new(AtomicI64::new(NOW));
        let e = Enforcer::start_with(engine.clone(), store.clone(), Clock::Manual(clock.clone()))
            .await
            .unwrap();
        let mission = engine
            .grant(
                "m-sev1",
                "answer-forum-question",
                "forum-helper",
                "alice",
                "Help me answer Bob's question in T-1042",
                NOW,
            )
            .unwrap();
        let s = Sev1 {
            people: Approvals::new(engine, store.clone()),
            e,
            store,
            clock,
            cell: MissionCell::new(mission.id.clone()),
            mission,
        };
        s.run(
            "forum",
            "read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
        .await;
        s.run(
            "logs",
            "query_logs",
            json!({"source": "auth", "query": "user=bob", "limit": 50}),
        )
        .await;
        s
    }

    fn actor(&self) -> Actor<'_> {
        Actor {
            mission: &self.mission,
            cell: &self.cell,
            session: "s1",
        }
    }

    async fn decide(&self, server: &str, tool: &str, args: Value, how: How) -> Verdict {
        self.e
            .decide(&self.actor(), Call::new(server, tool, args), how)
            .await
            .unwrap()
    }

    async fn run(&self, server: &str, tool: &str, args: Value) -> Outcome {
        let v = self.decide(server, tool, args, How::call()).await;
        if let Some(p) = v.permitted {
            self.e
                .forward(&self.actor(), p, Answer(LOGS))
                .await
                .unwrap()
                .unwrap();
        }
        v.decision.decision
    }

    async fn post(&self, body: &str, how: How) -> Verdict {
        self.decide(
            "forum",
            "post_reply",
            json!({"channel": "eng-help", "thread_id": "T-1042", "as_user": "alice", "body": body}),
            how,
        )
        .await
    }

    async fn request(&self, id: &str) -> Stored {
        Stored::of(self.store.approval(id).await.unwrap().unwrap()).unwrap()
    }

    /// The approval records of the chain: (event, by, reason).
    async fn approval_records(&self) -> Vec<(String, String, String)> {
        let all = self.store.audit_range(1, 10_000).await.unwrap();
        all.into_iter()
            .filter(|r| r.kind == AuditKind::Approval)
            .map(|r| {
                let b = &r.body;
                let s = |k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                (s("event"), s("by"), s("reason"))
            })
            .collect()
    }
}

const BODY: &str = "Bob, your account got locked:\n2026-11-20T09:15:40Z auth FAIL user=bob ip=10.20.3.17 reason=account_locked session=s-8f23";

#[tokio::test]
async fn the_sev1_post_is_held_for_consent_and_exposure_and_goes_once_both_are_approved() {
    let s = Sev1::start().await;
    let v = s.post(BODY, How::call()).await;
    assert_eq!(v.decision.decision, Outcome::Ask);
    let id = v.decision.approval.clone().expect("a request");
    let r = s.request(&id).await;
    let kinds: Vec<&str> = r
        .request
        .holds
        .iter()
        .map(|h| h.facts.kind.as_str())
        .collect();
    assert!(kinds.contains(&"consent"), "{kinds:?}");
    assert!(kinds.contains(&"exposure"), "{kinds:?}");
    let exposure = r.request.exposure.as_ref().unwrap();
    assert!(exposure.count > 2_000 && !exposure.sample.is_empty());
    assert!(r
        .request
        .sources
        .iter()
        .any(|src| src.source.to_string() == "logs.query_logs"));
    let alt = r
        .request
        .alternative
        .as_ref()
        .expect("the private alternative");
    assert_eq!(alt.call.name(), "forum.send_dm");
    assert_eq!(alt.call.args["to"], "alice");

    // The same call again, unapproved, waits on the same request.
    let again = s.post(BODY, How::call()).await;
    assert_eq!(again.decision.approval.as_deref(), Some(id.as_str()));

    // Nobody but the permitted: the requester on the exposure, bob, the agent.
    let alice = s
        .people
        .approve(&person("alice"), &id, "", NOW)
        .await
        .unwrap();
    assert_eq!(alice.approved, vec!["ask-act-as".to_string()]);
    assert_eq!(alice.request.state, "pending");
    let err = s
        .people
        .approve(&person("alice"), &id, "", NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    for who in ["bob", "forum-helper"] {
        let err = s
            .people
            .approve(&person(who), &id, "", NOW)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("not allowed"), "{who}: {err}");
    }
    // Still held.
    assert_eq!(
        s.post(BODY, How::call()).await.decision.decision,
        Outcome::Ask
    );
    let dave = s
        .people
        .approve(&person("dave"), &id, "ok", NOW)
        .await
        .unwrap();
    assert_eq!(dave.request.state, APPROVED);

    // The identical call goes, once.
    let v = s.post(BODY, How::call()).await;
    assert_eq!(
        v.decision.decision,
        Outcome::Allow,
        "{:?}",
        v.decision.reasons
    );
    assert!(v.permitted.is_some());
    assert_eq!(v.decision.approval.as_deref(), Some(id.as_str()));
    assert!(v
        .decision
        .reasons
        .iter()
        .any(|r| r.text.contains("approved by dave")));
    assert_eq!(s.request(&id).await.state, USED);
    let twice = s.post(BODY, How::call()).await;
    assert_eq!(twice.decision.decision, Outcome::Ask);
    assert_ne!(twice.decision.approval.as_deref(), Some(id.as_str()));
    assert!(twice
        .decision
        .reasons
        .iter()
        .any(|r| r.text.contains("used already")));
    // An explicit replay of the used approval is refused too.
    let replay = s
        .post(
            BODY,
            How {
                approval: Some(id.clone()),
                ..How::call()
            },
        )
        .await;
    assert_eq!(replay.decision.decision, Outcome::Ask);

    let records = s.approval_records().await;
    let refused: Vec<&(String, String, String)> =
        records.iter().filter(|r| r.0 == "refused").collect();
    for who in ["alice", "bob", "forum-helper"] {
        assert!(refused.iter().any(|r| r.1 == who), "{who}: {records:?}");
    }
    assert!(
        refused.iter().any(|r| r.2.contains("used already")),
        "{records:?}"
    );
    assert!(records.iter().any(|r| r.0 == "used"));
    assert!(records.iter().any(|r| r.0 == "approved" && r.1 == "dave"));
}

#[tokio::test]
async fn an_approval_does_not_carry_over_to_changed_arguments_or_past_its_expiry() {
    let s = Sev1::start().await;
    let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
    s.people
        .approve(&person("alice"), &id, "", NOW)
        .await
        .unwrap();
    s.people
        .approve(&person("dave"), &id, "", NOW)
        .await
        .unwrap();

    // Another body under the same approval: refused and audited, and held on its own request.
    let changed = s
        .post(
            &format!("{BODY}\nand more"),
            How {
                approval: Some(id.clone()),
                ..How::call()
            },
        )
        .await;
    assert_eq!(changed.decision.decision, Outcome::Ask);
    assert!(changed
        .decision
        .reasons
        .iter()
        .any(|r| r.text.contains("another call")));
    let records = s.approval_records().await;
    assert!(records
        .iter()
        .any(|r| r.0 == "refused" && r.2.contains("another call")));
    // The approval itself is still unused.
    assert_eq!(s.request(&id).await.state, APPROVED);

    // After its expiry (an hour), the identical call is held again, and that is audited.
    s.clock.store(NOW + 3_600_001, Ordering::Relaxed);
    let late = s
        .post(
            BODY,
            How {
                approval: Some(id.clone()),
                ..How::call()
            },
        )
        .await;
    assert_eq!(late.decision.decision, Outcome::Ask);
    assert!(late.permitted.is_none());
    let records = s.approval_records().await;
    assert!(records
        .iter()
        .any(|r| r.0 == "refused" && r.2.contains("expired")));
    // Nobody answers an expired request either.
    let err = s
        .people
        .approve(&person("dave"), &id, "", NOW + 3_600_001)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[tokio::test]
async fn an_approver_chooses_the_private_answer_and_only_that_goes() {
    let s = Sev1::start().await;
    let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
    // alice may not choose for the exposure; dave may.
    let alt = s
        .request(&id)
        .await
        .request
        .alternative
        .unwrap()
        .call
        .to_call();
    let err = s
        .people
        .approve_narrowed(&person("alice"), &id, alt.clone(), "", NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("not allowed"), "{err}");
    let done = s
        .people
        .approve_narrowed(&person("dave"), &id, alt.clone(), "DM her instead", NOW)
        .await
        .unwrap();
    assert_eq!(done.request.state, APPROVED);

    // The agent's identical retry is pointed at the narrower call, which goes on its own.
    let v = s.post(BODY, How::call()).await;
    assert!(v.permitted.is_none());
    let n = v.narrowed.expect("the narrower call");
    assert_eq!(n.call, alt);
    assert!(n.changes.contains("forum.send_dm"), "{}", n.changes);
    let dm =
        s.e.decide(
            &s.actor(),
            n.call.clone(),
            How {
                narrowed_from: Some(n.request.clone()),
                ..How::call()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        dm.decision.decision,
        Outcome::Allow,
        "{:?}",
        dm.decision.reasons
    );
    assert_eq!(s.request(&id).await.state, USED);
    // Not twice, and not a different call under the same request.
    let again =
        s.e.decide(
            &s.actor(),
            n.call.clone(),
            How {
                narrowed_from: Some(n.request.clone()),
                ..How::call()
            },
        )
        .await
        .unwrap();
    assert!(again.permitted.is_none(), "{:?}", again.decision.reasons);
    let other = Call::new("forum", "send_dm", json!({"to": "bob", "body": BODY}));
    let v =
        s.e.decide(
            &s.actor(),
            other,
            How {
                narrowed_from: Some(id.clone()),
                ..How::call()
            },
        )
        .await
        .unwrap();
    assert!(v.permitted.is_none(), "{:?}", v.decision.reasons);
}

#[tokio::test]
async fn a_denial_closes_the_request_and_only_people_who_may_approve_deny() {
    let s = Sev1::start().await;
    let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
    let err = s
        .people
        .deny(&person("bob"), &id, "no", NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("not allowed"), "{err}");
    let denied = s
        .people
        .deny(&person("dave"), &id, "this leaks auth logs", NOW)
        .await
        .unwrap();
    assert_eq!(denied.state, "denied");
    assert!(denied
        .request
        .closed
        .unwrap()
        .contains("this leaks auth logs"));
    let err = s
        .people
        .approve(&person("dave"), &id, "", NOW)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("denied"), "{err}");
    // bob sees nothing of it.
    assert!(s.people.show(&person("bob"), &id).await.is_err());
    assert_eq!(
        s.people.list(&person("dave"), None, 0).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn the_same_arguments_in_another_order_are_the_same_call() {
    let s = Sev1::start().await;
    let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
    s.people
        .approve(&person("alice"), &id, "", NOW)
        .await
        .unwrap();
    s.people
        .approve(&person("dave"), &id, "", NOW)
        .await
        .unwrap();
    let reordered =
        json!({"body": BODY, "as_user": "alice", "thread_id": "T-1042", "channel": "eng-help"});
    let v = s
        .decide("forum", "post_reply", reordered, How::call())
        .await;
    assert_eq!(
        v.decision.decision,
        Outcome::Allow,
        "{:?}",
        v.decision.reasons
    );
}

/// A webhook receiver: answers 500 to the first post, then 200; keeps every post.
async fn receiver() -> (
    String,
    Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
) {
    use axum::http::StatusCode;
    let got: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let mut all = seen.lock().unwrap();
                all.push((headers, body));
                if all.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn approvers_are_told_by_a_signed_webhook_that_retries() {
    const SECRET: &str = "a-webhook-secret-of-some-length";
    std::env::set_var("WARDEN_TEST_WEBHOOK_SECRET", SECRET);
    for format in ["json", "slack"] {
        let (url, got) = receiver().await;
        let engine = support::acme_with(&format!(
            "\n[approvals.webhook]\nurl = \"{url}\"\nsecret_env = \"WARDEN_TEST_WEBHOOK_SECRET\"\nformat = \"{format}\"\n"
        ));
        let s = Sev1::start_with(engine).await;
        let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
        // The first post fails (500) and is retried after 500 ms.
        for _ in 0..100 {
            if got.lock().unwrap().len() >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let posts = got.lock().unwrap().clone();
        assert_eq!(posts.len(), 2, "{format}: one failure, one retry");
        assert_eq!(posts[0].1, posts[1].1, "the retry posts the same body");
        let (headers, body) = &posts[1];
        let ts: i64 = headers["x-warden-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let sig = headers["x-warden-signature"].to_str().unwrap();
        assert_eq!(
            sig,
            warden_enforce::approvals::webhook::signature(SECRET.as_bytes(), ts, body)
        );
        assert_ne!(
            sig,
            warden_enforce::approvals::webhook::signature(b"another secret entirely", ts, body)
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["event"], "approval.requested");
        assert_eq!(v["request"], id.as_str());
        assert_eq!(v["principal"], "alice");
        assert!(v["exposure"]["count"].as_u64().unwrap() > 2_000);
        if format == "slack" {
            let text = v["text"].as_str().unwrap();
            assert!(
                text.contains(&id) && text.contains("forum.post_reply"),
                "{text}"
            );
        } else {
            assert!(v.get("text").is_none());
        }
    }
}

#[tokio::test]
async fn policy_can_ask_for_two_approvers_of_a_group() {
    let dir = tempfile::tempdir().unwrap();
    // Two approvers for an exposure; frank joins security (and its clearances) beside dave.
    let engine = support::acme_edited(dir.path(), |name, text| match name {
        "policies/default.cedar" => text.replace(
            "@hold(\"exposure\")",
            "@hold(\"exposure\")\n@approvers(\"2\")",
        ),
        "directory.json" => {
            let mut d: Value = serde_json::from_str(&text).unwrap();
            for e in d.as_array_mut().unwrap() {
                if e["uid"]["id"] == "frank" {
                    e["parents"]
                        .as_array_mut()
                        .unwrap()
                        .push(json!({"type": "Group", "id": "security"}));
                    e["attrs"]["clearances"] =
                        json!(["internal", "security-sensitive", "user-data"]);
                }
            }
            d.to_string()
        }
        _ => text,
    });
    let s = Sev1::start_with(engine).await;
    let id = s.post(BODY, How::call()).await.decision.approval.unwrap();
    let exposure = |st: &Stored| {
        st.request
            .holds
            .iter()
            .find(|h| h.facts.kind == "exposure")
            .cloned()
            .unwrap()
    };
    assert_eq!(exposure(&s.request(&id).await).needs, 2);
    s.people
        .approve(&person("alice"), &id, "", NOW)
        .await
        .unwrap();
    let one = s
        .people
        .approve(&person("dave"), &id, "", NOW)
        .await
        .unwrap();
    assert_eq!(one.request.state, "pending");
    assert_eq!(
        one.waiting,
        vec!["ask-exposure (1 of 2 approvals)".to_string()]
    );
    // The same person twice is still one approver.
    assert!(s
        .people
        .approve(&person("dave"), &id, "", NOW)
        .await
        .is_err());
    assert_eq!(
        s.post(BODY, How::call()).await.decision.decision,
        Outcome::Ask
    );
    let two = s
        .people
        .approve(&person("frank"), &id, "", NOW)
        .await
        .unwrap();
    assert_eq!(two.request.state, APPROVED);
    assert_eq!(exposure(&two.request).approved_by, vec!["dave", "frank"]);
    assert_eq!(
        s.post(BODY, How::call()).await.decision.decision,
        Outcome::Allow
    );
}
