//! What an upstream asks of the client (here roots) during an agent's call: advertised only
//! when the catalog describes it, decided in the session of the call, relayed to a client of
//! the session-based revisions during the call, and to a 2026-07-28 client in rounds
//! (`input_required`), whose `requestState` no other session can use.

// Roots are deprecated by SEP-2577; clients of the session-based revisions still use them.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, InputRequest,
    ListRootsResult, Root,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::json;
use warden_acme::AcmeServer;
use warden_mcp::{Caller, Gateway, GatewaySettings};

use crate::common::*;

const ROOTS: &str = r#"
[tools."forum.roots/list"]
effect = "read"
resource = { type = "Resource", id = "roots" }
default_labels = ["internal"]
"#;

/// Warden in front of a forum that asks the client for its roots in `list_threads`, with
/// `forum.roots/list` in the catalog.
async fn start_asking() -> (Arc<Gateway>, Arc<MemoryLog>) {
    let acme = AcmeServer::new();
    let mut probe = Probe::new(&acme, "forum");
    probe.ask_client = true;
    let ups = acme_with_probe(&acme, &probe, std::time::Duration::from_secs(10));
    let log = Arc::new(MemoryLog::new());
    let settings = GatewaySettings {
        upstreams: ups,
        ..GatewaySettings::default()
    };
    let gw = start_gateway(engine_with_catalog(ROOTS), settings, log.clone()).await;
    (gw, log)
}

/// A client with roots.
#[derive(Clone, Default)]
struct HasRoots(Arc<Mutex<usize>>);

impl ClientHandler for HasRoots {
    fn get_info(&self) -> ClientConfig {
        let mut caps = ClientCapabilities::default();
        caps.roots = Some(Default::default());
        ClientConfig::new(caps, rmcp::model::Implementation::new("roots-client", "0"))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        *self.0.lock().unwrap() += 1;
        Ok(ListRootsResult::new(vec![Root::new(
            "file:///srv/alice-project",
        )]))
    }
}

fn list_threads() -> CallToolRequestParams {
    CallToolRequestParams::new("forum.list_threads")
        .with_arguments(json!({"channel": "eng-help"}).as_object().unwrap().clone())
}

#[tokio::test]
async fn roots_are_decided_and_relayed_to_the_client_during_the_call() {
    let (gw, log) = start_asking().await;
    let asked = HasRoots::default();
    let client = agent_as(&gw, &alice(), asked.clone()).await;
    let r = call(
        client.peer(),
        "forum.list_threads",
        json!({"channel": "eng-help"}),
    )
    .await;
    let t = text(&r);
    // Warden advertised roots (the catalog describes them), and nothing else...
    assert!(t.contains(r#"caps={"roots":{}}"#), "{t}");
    // ...and the upstream got the client's roots, through a logged decision.
    assert!(t.contains("roots=file:///srv/alice-project"), "{t}");
    assert_eq!(*asked.0.lock().unwrap(), 1);
    let decided: Vec<String> = log
        .entries()
        .iter()
        .filter(|e| e.kind == EntryKind::Decision)
        .map(|e| format!("{} {:?}", e.decision.tool, e.decision.decision))
        .collect();
    assert!(
        decided.contains(&"forum.roots/list Allow".to_string()),
        "{decided:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_call_in_rounds_is_resumed_only_by_its_own_session_and_once() {
    let (gw, _log) = start_asking().await;
    let a = gw.open_session("rounds-a", &alice().into(), None).unwrap();
    let b = gw.open_session("rounds-b", &alice().into(), None).unwrap();
    let mut caps = ClientCapabilities::default();
    caps.roots = Some(Default::default());
    let caller = Caller {
        offers: Some(caps),
        ..Caller::default()
    };
    let first = gw
        .call_tool_rounds(&a, list_threads(), &caller)
        .await
        .unwrap();
    let CallToolResponse::InputRequired(asked) = first else {
        panic!("expected input_required, got {first:?}")
    };
    let token = asked.request_state.clone().unwrap();
    let (key, request) = asked.input_requests.unwrap().into_iter().next().unwrap();
    assert!(matches!(request, InputRequest::ListRoots(_)), "{request:?}");

    let answer = |uri: &str| {
        let mut p = list_threads();
        p.request_state = Some(token.clone());
        p.input_responses = Some(
            [(key.clone(), json!({"roots": [{"uri": uri}]}))]
                .into_iter()
                .collect(),
        );
        p
    };
    // Another session presenting a's requestState is refused, and cannot answer for a.
    let stolen = gw
        .call_tool_rounds(&b, answer("file:///srv/b"), &caller)
        .await;
    assert!(stolen.is_err(), "{stolen:?}");
    // So is a's own session naming another tool.
    let mut other = answer("file:///srv/x");
    other.name = "forum.read_thread".into();
    assert!(gw.call_tool_rounds(&a, other, &caller).await.is_err());
    // a resumes its call: the upstream gets a's answer, and the call completes.
    let done = gw
        .call_tool_rounds(&a, answer("file:///srv/alice-project"), &caller)
        .await
        .unwrap();
    let CallToolResponse::Complete(r) = done else {
        panic!("expected the result, got {done:?}")
    };
    assert!(
        text(&r).contains("roots=file:///srv/alice-project"),
        "{}",
        text(&r)
    );
    // The requestState was used once.
    assert!(gw
        .call_tool_rounds(&a, answer("file:///srv/again"), &caller)
        .await
        .is_err());
}

#[tokio::test]
async fn a_session_parks_a_bounded_number_of_calls() {
    // Over HTTP each roots request comes on its own call's stream, so calls park side by side.
    let mut probe = Probe::new(&AcmeServer::new(), "forum");
    probe.ask_client = true;
    let up = crate::notes::probe_over_http(&probe, std::time::Duration::from_secs(10)).await;
    let settings = GatewaySettings {
        upstreams: vec![up],
        ..GatewaySettings::default()
    };
    let gw = start_gateway(
        engine_with_catalog(ROOTS),
        settings,
        Arc::new(MemoryLog::new()),
    )
    .await;
    let a = gw
        .open_session("rounds-cap", &alice().into(), None)
        .unwrap();
    let mut caps = ClientCapabilities::default();
    caps.roots = Some(Default::default());
    let caller = Caller {
        offers: Some(caps),
        ..Caller::default()
    };
    for _ in 0..warden_mcp::gateway::rounds::MAX_PARKED_PER_SESSION {
        let r = gw.call_tool_rounds(&a, list_threads(), &caller).await;
        assert!(matches!(r, Ok(CallToolResponse::InputRequired(_))), "{r:?}");
    }
    let over = gw.call_tool_rounds(&a, list_threads(), &caller).await;
    let Err(e) = over else {
        panic!("expected a refusal, got {over:?}")
    };
    assert!(e.message.contains("too many calls"), "{}", e.message);
}
