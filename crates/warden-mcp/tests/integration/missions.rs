//! `warden serve` with mission tokens: an agent presents its own token and the mission token a
//! person granted; everything else is refused with the reason, and audited.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden_core::narrow::Narrowing;
use warden_enforce::grants::{GrantRequest, MissionAuthority, RevokeTarget};
use warden_enforce::identity::{AuthMethod, Principal};
use warden_enforce::token::{self, Grant, RootKey};
use warden_mcp::{Gateway, GatewaySettings};
use warden_store::AuditKind;

use crate::audit_log::{start_gateway_as, MemoryLog};
use crate::common::*;
use crate::http::{headers, serve, OPS_TOKEN, TOKEN};

/// The gateway's mission key, so that tests can mint tokens of their own.
const KEY: &str = "1c0ffee0ddba11ab1e5eed5a1ad0dd5ca1ab1e0ff1ce0b0a710ad0f5ca1ab1e5";

fn key() -> RootKey {
    RootKey::from_private_hex(KEY).unwrap()
}

struct Setup {
    gw: Arc<Gateway>,
    addr: SocketAddr,
    log: Arc<MemoryLog>,
    authority: MissionAuthority,
    _stop: tokio::sync::oneshot::Sender<()>,
    _acme: warden_acme::AcmeServer,
}

/// Warden in front of Acme over HTTP, believing no identity header.
async fn setup() -> Setup {
    let acme = warden_acme::AcmeServer::new();
    let log = Arc::new(MemoryLog::new());
    let settings = GatewaySettings {
        upstreams: acme_upstreams(&acme),
        ..GatewaySettings::default()
    };
    assert!(!settings.serve.insecure_identity);
    let gw = start_gateway_as(engine(), settings, log.clone(), key()).await;
    let (addr, stop) = serve(gw.clone()).await;
    Setup {
        authority: MissionAuthority::new(key(), engine(), log.store()),
        gw,
        addr,
        log,
        _stop: stop,
        _acme: acme,
    }
}

fn person(user: &str) -> Principal {
    Principal {
        user: user.into(),
        method: AuthMethod::Local,
        subject: None,
        issuer: None,
        expires_at: None,
    }
}

async fn grant(s: &Setup, user: &str, template: &str, agent: &str) -> (String, String) {
    let g = s
        .authority
        .grant(
            &person(user),
            &GrantRequest {
                template: template.into(),
                agent: agent.into(),
                purpose: "Help me answer Bob's question in T-1042".into(),
                expires_in_ms: Some(3_600_000),
                narrowing: None,
            },
            now(),
        )
        .await
        .unwrap();
    (g.mission, g.token)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn mission_headers(token: &str) -> HashMap<http::HeaderName, http::HeaderValue> {
    HashMap::from([(
        http::HeaderName::from_static("x-warden-mission-token"),
        http::HeaderValue::from_str(token).unwrap(),
    )])
}

async fn agent_with(addr: SocketAddr, agent_token: &str, mission_token: &str) -> Client {
    let t = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(agent_token)
            .custom_headers(mission_headers(mission_token)),
    );
    ().serve(t).await.unwrap()
}

async fn call(c: &Client, tool: &str, args: serde_json::Value) -> String {
    let r = c
        .call_tool(
            CallToolRequestParams::new(tool.to_string())
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    outcome(&r)
}

/// `initialize` with the given headers, raw: the status line and body.
async fn raw_initialize(addr: SocketAddr, headers: &[(&str, &str)]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

/// The reasons of the audited mission-token refusals.
async fn refusals(log: &MemoryLog) -> Vec<String> {
    let store = log.store();
    store
        .audit_range(1, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == AuditKind::Grant && r.columns.outcome.as_deref() == Some("refused"))
        .map(|r| r.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_granted_mission_token_opens_a_session_under_that_mission() {
    let s = setup().await;
    let (mission, token) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let c = agent_with(s.addr, TOKEN, &token).await;
    let tools = c.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "forum.read_thread"));
    assert!(!tools.iter().any(|t| t.name.starts_with("acl.")));
    let out = call(
        &c,
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert_eq!(out, "allow");
    let d = s.log.entries().last().cloned().unwrap().decision;
    assert_eq!(d.mission, mission);
    assert_eq!(d.principal, "alice");
    assert_eq!(d.agent, "forum-helper");
    let _ = c.cancel().await;
}

#[tokio::test]
async fn refused_mission_tokens_get_403_with_the_reason_and_are_audited() {
    let s = setup().await;
    let (_, ops) = grant(&s, "dave", "ops-change", "ops-bot").await;
    let (_, good) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let at = now();
    let expired = token::mint(
        &key(),
        &Grant {
            mission: "m-expired".into(),
            template: "answer-forum-question".into(),
            agent: "forum-helper".into(),
            principal: "alice".into(),
            purpose: "old".into(),
            granted_at_ms: at - 7_200_000,
            expires_at_ms: at - 60_000,
            auth: "local".into(),
            narrowing: None,
        },
    )
    .unwrap();
    let forged = token::mint(
        &RootKey::generate(),
        &Grant {
            mission: "m-forged".into(),
            template: "ops-change".into(),
            agent: "forum-helper".into(),
            principal: "dave".into(),
            purpose: "forged".into(),
            granted_at_ms: at,
            expires_at_ms: at + 60_000,
            auth: "local".into(),
            narrowing: None,
        },
    )
    .unwrap();
    let mut tampered = good.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let widening = token::attenuate(
        &good,
        &Narrowing {
            tools: Some(vec!["forum.*".into(), "acl.grant_access".into()]),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let later = token::attenuate(
        &good,
        &Narrowing {
            expires_at_ms: Some(at + 48 * 3_600_000),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let cases: [(&str, &str, &str); 6] = [
        (
            "another agent's",
            &ops,
            "is for agent `ops-bot`, not `forum-helper`",
        ),
        ("expired", &expired, "expired"),
        ("forged", &forged, "not valid"),
        ("tampered", &tampered, "not valid"),
        ("widening (a tool)", &widening, "widens its parent"),
        ("widening (a later expiry)", &later, "widens its parent"),
    ];
    for (what, token, why) in cases {
        let r = raw_initialize(
            s.addr,
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("X-Warden-Mission-Token", token),
            ],
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 403"), "{what}: {r}");
        assert!(r.contains(why), "{what}: wants `{why}` in {r}");
    }
    let audited = refusals(&s.log).await;
    assert_eq!(audited.len(), cases.len(), "{audited:#?}");
    for ((what, _, why), reason) in cases.iter().zip(&audited) {
        assert!(reason.contains(why), "{what}: audited `{reason}`");
    }
    // ops-bot's own token opens ops-bot's mission.
    let ok = raw_initialize(
        s.addr,
        &[
            ("Authorization", &format!("Bearer {OPS_TOKEN}")),
            ("X-Warden-Mission-Token", &ops),
        ],
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(refusals(&s.log).await.len(), cases.len());
}

#[tokio::test]
async fn identity_headers_from_an_agent_are_refused_and_audited() {
    let s = setup().await;
    let mut h: Vec<(String, String)> = headers("dave", "ops-change")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    h.push(("Authorization".into(), format!("Bearer {TOKEN}")));
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = raw_initialize(s.addr, &h).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("identity headers"), "{r}");
    assert!(r.contains("X-Warden-Mission-Token"), "{r}");
    assert_eq!(refusals(&s.log).await.len(), 1);
    // A token and headers together are refused too: which would be believed?
    let (_, token) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let mut both = h.clone();
    both.push(("X-Warden-Mission-Token", &token));
    let r = raw_initialize(s.addr, &both).await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    // Nothing at all: no mission, no session.
    let r = raw_initialize(s.addr, &[("Authorization", &format!("Bearer {TOKEN}"))]).await;
    assert!(
        !r.starts_with("HTTP/1.1 200") || r.contains("no mission"),
        "{r}"
    );
    assert_eq!(s.gw.live_sessions(), 0);
}

#[tokio::test]
async fn a_sub_agent_is_held_to_its_narrowing_and_its_reads_taint_the_parent() {
    let s = setup().await;
    let (parent_id, parent) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let child = token::attenuate(
        &parent,
        &Narrowing {
            tools: Some(vec!["logs.query_logs".into(), "forum.read_thread".into()]),
            agent: Some("exec-assistant".into()),
            ..Narrowing::default()
        },
    )
    .unwrap();
    // Handed to exec-assistant, the child is exec-assistant's alone: forum-helper presenting
    // it is refused.
    let r = raw_initialize(
        s.addr,
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("X-Warden-Mission-Token", &child),
        ],
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("is for agent `exec-assistant`"), "{r}");

    // Narrowed for forum-helper itself (same agent), the child works, within its tools.
    let child = token::attenuate(
        &parent,
        &Narrowing {
            tools: Some(vec!["logs.query_logs".into(), "forum.read_thread".into()]),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let sub = agent_with(s.addr, TOKEN, &child).await;
    let names: Vec<String> = sub
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.contains(&"forum.post_reply".to_string()),
        "{names:?}"
    );
    let post = json!({"channel": "eng-help", "thread_id": "T-1042", "body": "Try resetting your password."});
    assert_eq!(call(&sub, "forum.post_reply", post.clone()).await, "deny");
    let refused = s.log.entries().last().cloned().unwrap().decision;
    assert_ne!(refused.mission, parent_id, "the child has its own id");
    // The sub-agent reads the auth logs (security-sensitive).
    let logs = json!({"source": "auth", "query": "user=bob", "limit": 50});
    assert_eq!(call(&sub, "logs.query_logs", logs).await, "allow");

    // The parent never read them, yet its public post is held: the taint is the mission's.
    let parent_agent = agent_with(s.addr, TOKEN, &parent).await;
    let held = call(&parent_agent, "forum.post_reply", post.clone()).await;
    assert_ne!(held, "allow");
    // A mission alice granted apart, with nothing read, posts the same words.
    let (_, fresh) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let fresh_agent = agent_with(s.addr, TOKEN, &fresh).await;
    assert_eq!(call(&fresh_agent, "forum.post_reply", post).await, "allow");
    for c in [sub, parent_agent, fresh_agent] {
        let _ = c.cancel().await;
    }
}

#[tokio::test]
async fn revoking_a_mission_stops_it_and_every_mission_narrowed_from_it() {
    let s = setup().await;
    let (parent_id, parent) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let child = token::attenuate(
        &parent,
        &Narrowing {
            tools: Some(vec!["forum.read_thread".into()]),
            ..Narrowing::default()
        },
    )
    .unwrap();
    let p = agent_with(s.addr, TOKEN, &parent).await;
    let c = agent_with(s.addr, TOKEN, &child).await;
    let read = json!({"channel": "eng-help", "thread_id": "T-1042"});
    assert_eq!(call(&p, "forum.read_thread", read.clone()).await, "allow");
    assert_eq!(call(&c, "forum.read_thread", read.clone()).await, "allow");
    // bob may not revoke alice's mission.
    let err = s
        .authority
        .revoke(
            &person("bob"),
            &RevokeTarget::Mission(parent_id.clone()),
            "",
            now(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    s.authority
        .revoke(
            &person("alice"),
            &RevokeTarget::Mission(parent_id.clone()),
            "done",
            now(),
        )
        .await
        .unwrap();
    let stopped = eventually(Duration::from_secs(1), || {
        s.gw.enforcer().breakers().missions.contains(&parent_id)
    })
    .await;
    assert!(stopped);
    assert_eq!(call(&p, "forum.read_thread", read.clone()).await, "deny");
    assert!(s.log.entries().last().unwrap().decision.reasons[0]
        .text
        .contains("was revoked"));
    assert_eq!(call(&c, "forum.read_thread", read).await, "deny");
    let reason = s.log.entries().last().unwrap().decision.reasons[0]
        .text
        .clone();
    assert!(reason.contains("narrowed from it"), "{reason}");
    let _ = p.cancel().await;
    let _ = c.cancel().await;
}

#[tokio::test]
async fn revoking_every_mission_of_an_agent_spares_later_grants() {
    let s = setup().await;
    let (_, before) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let a = agent_with(s.addr, TOKEN, &before).await;
    let read = json!({"channel": "eng-help", "thread_id": "T-1042"});
    assert_eq!(call(&a, "forum.read_thread", read.clone()).await, "allow");
    // alice is no revoker: she may revoke her own missions, not every mission of an agent.
    assert!(s
        .authority
        .revoke(
            &person("alice"),
            &RevokeTarget::Agent("forum-helper".into()),
            "",
            now()
        )
        .await
        .is_err());
    s.authority
        .revoke(
            &person("alice"),
            &RevokeTarget::Principal("alice".into()),
            "laptop stolen",
            now(),
        )
        .await
        .unwrap();
    let stopped = eventually(Duration::from_secs(1), || {
        !s.gw.enforcer().breakers().revoked_scopes.is_empty()
    })
    .await;
    assert!(stopped);
    assert_eq!(call(&a, "forum.read_thread", read.clone()).await, "deny");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (_, after) = grant(&s, "alice", "answer-forum-question", "forum-helper").await;
    let b = agent_with(s.addr, TOKEN, &after).await;
    assert_eq!(call(&b, "forum.read_thread", read).await, "allow");
    let _ = a.cancel().await;
    let _ = b.cancel().await;
}
