#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

//! The kill switch in one process: a kill stops the requests in flight of its scope (and only
//! those), its breaker denies what comes after, the replica confirms it, and a request tracked
//! after it arrived is stopped at once. Who may kill: revokers anything, a person their own
//! missions; refusals are audited.

mod support;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use warden_enforce::grants::MissionAuthority;
use warden_enforce::identity::{AuthMethod, Principal};
use warden_enforce::kill::{KillScope, Tracked};
use warden_enforce::killswitch::{KillError, KillSwitch};
use warden_enforce::token::RootKey;
use warden_enforce::Enforcer;
use warden_store::{AuditKind, Store};

fn person(user: &str) -> Principal {
    Principal {
        user: user.into(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    }
}

fn tracked(agent: &str, principal: &str) -> Tracked {
    Tracked {
        session: format!("s-{agent}"),
        missions: vec![format!("m-{agent}")],
        agent: agent.into(),
        principal: principal.into(),
    }
}

async fn setup() -> (Arc<dyn Store>, Arc<Enforcer>, KillSwitch) {
    let engine = support::acme();
    let store = warden_store::open("memory:").await.unwrap();
    let enforcer = Enforcer::start(engine.clone(), store.clone())
        .await
        .unwrap();
    let authority = Arc::new(MissionAuthority::new(
        RootKey::generate(),
        engine.clone(),
        store.clone(),
    ));
    let switch = KillSwitch::new(authority, engine, store.clone());
    (store, enforcer, switch)
}

#[tokio::test]
async fn a_kill_stops_its_scope_in_flight_and_after_and_the_replica_confirms() {
    let (store, enforcer, switch) = setup().await;
    let agent_cancelled = CancellationToken::new();
    let helper = enforcer.track(tracked("forum-helper", "alice"), &agent_cancelled);
    let ops = enforcer.track(tracked("ops-bot", "bob"), &CancellationToken::new());
    assert_eq!(enforcer.tracked(), 2);

    let report = switch
        .kill(
            &person("dave"),
            &KillScope::Agent("forum-helper".into()),
            "runaway",
            warden_enforce::now_ms(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(report.confirmed(), "{report:?}");
    let ids: Vec<&str> = report.acknowledged.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![enforcer.replica().id.as_str()]);
    assert_eq!(report.kill.scope, "agent:forum-helper");
    assert_eq!(report.kill.by, "dave");

    // In flight: the agent's request is stopped with the reason, the other agent's is not.
    assert!(helper.token().is_cancelled());
    assert_eq!(helper.killed(), Some("killed by dave: runaway"));
    assert!(!ops.token().is_cancelled());
    assert!(!agent_cancelled.is_cancelled());
    // After: the breaker is in force with the reason, and a new request is stopped at once.
    let b = enforcer.breakers();
    assert!(b.agents.contains("forum-helper"));
    assert_eq!(b.reasons["agent:forum-helper"], "killed by dave: runaway");
    let late = enforcer.track(tracked("forum-helper", "carol"), &CancellationToken::new());
    assert!(late.token().is_cancelled());
    assert_eq!(late.killed(), Some("killed by dave: runaway"));
    // The scope of the agent's missions is revoked.
    assert!(b.revoked_scopes.contains_key("agent:forum-helper"));

    let kills: Vec<_> = store
        .audit_range(1, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == AuditKind::Kill)
        .collect();
    let outcomes: Vec<&str> = kills
        .iter()
        .map(|r| r.columns.outcome.as_deref().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["killed", "confirmed"]);
    assert!(kills
        .iter()
        .all(|r| r.columns.principal.as_deref() == Some("dave")));
    drop((helper, ops, late));
    assert_eq!(enforcer.tracked(), 0);
}

#[tokio::test]
async fn a_person_may_kill_only_their_own_missions_and_refusals_are_audited() {
    let (store, enforcer, switch) = setup().await;
    let now = warden_enforce::now_ms();
    for scope in [
        KillScope::All,
        KillScope::Agent("forum-helper".into()),
        KillScope::Principal("bob".into()),
        KillScope::Session("s-1".into()),
        KillScope::Mission("m-unknown".into()),
    ] {
        let refused = switch
            .kill(&person("alice"), &scope, "", now, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, KillError::Forbidden(_)),
            "{scope}: {refused}"
        );
    }
    assert!(!enforcer.breakers().global);
    assert!(store.kills().await.unwrap().is_empty());
    let refusals = store
        .audit_range(1, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == AuditKind::Kill && r.columns.outcome.as_deref() == Some("refused"))
        .count();
    assert_eq!(refusals, 5);

    // Her own missions she may kill.
    let guard = enforcer.track(tracked("forum-helper", "alice"), &CancellationToken::new());
    let report = switch
        .kill(
            &person("alice"),
            &KillScope::Principal("alice".into()),
            "",
            now,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(report.confirmed());
    assert_eq!(guard.killed(), Some("killed by alice"));
}
