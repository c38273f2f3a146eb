//! Allow returns the upstream's own result; deny and ask are tool errors with the reason.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn an_allowed_call_returns_the_upstreams_result_unchanged() {
    let (gw, acme, log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    let via_warden = call(client.peer(), "forum.read_thread", args.clone()).await;
    let direct = acme
        .subset(Some("forum"))
        .unwrap()
        .call("read_thread", args.as_object().cloned())
        .unwrap();
    assert!(!is_error(&via_warden));
    assert_eq!(via_warden.content, direct.content);
    assert_eq!(via_warden.structured_content, direct.structured_content);
    let e = log.entries();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EntryKind::Decision);
    assert!(e[0].decision.is_allow());
    assert_eq!(e[0].decision.tool, "forum.read_thread");
    // The output was absorbed: the thread's channel label is in the session.
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_denied_call_is_a_tool_error_with_the_reason() {
    let (gw, _acme, log) = start_acme().await;
    // confused deputy: bob may not read the auth logs, so his agent may not either.
    let bob = who(
        "forum-helper",
        "bob",
        "answer-forum-question",
        "Why do my logins fail?",
    );
    let client = agent(&gw, &bob).await;
    let r = call(
        client.peer(),
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    )
    .await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(t.starts_with("Warden denied `logs.query_logs`: "), "{t}");
    let d = log.entries().last().unwrap().decision.clone();
    assert!(t.contains(&d.id), "{t}");
    let s = r.structured_content.unwrap();
    assert_eq!(s["decision"], "deny");
    assert_eq!(s["id"], d.id.as_str());
    assert!(!s["reasons"].as_array().unwrap().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_held_call_says_approval_required_and_shows_the_exposure() {
    let (gw, acme, _log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    call(
        p,
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    let logs = call(
        p,
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob", "limit": 50}),
    )
    .await;
    assert!(!is_error(&logs));
    let line = text(&logs)
        .lines()
        .find(|l| l.contains("user=bob"))
        .unwrap()
        .to_string();
    let r = call(
        p,
        "forum.post_reply",
        json!({"channel": "eng-help", "thread_id": "T-1042", "as_user": "alice",
               "body": format!("Bob, your account got locked:\n{line}")}),
    )
    .await;
    assert!(is_error(&r));
    let t = text(&r);
    assert!(
        t.starts_with("Warden held `forum.post_reply`: approval required: "),
        "{t}"
    );
    assert!(t.contains("2,999 of 3,000"), "{t}");
    let s = r.structured_content.unwrap();
    assert_eq!(s["decision"], "ask");
    assert_eq!(s["exposure"]["count"], 2999);
    // Nothing was posted.
    let thread = acme
        .subset(Some("forum"))
        .unwrap()
        .call(
            "read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"})
                .as_object()
                .cloned(),
        )
        .unwrap();
    assert!(!text(&thread).contains("your account got locked"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn calls_to_unexposed_tools_are_refused_and_audited() {
    let (gw, _acme, log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    for (name, needle) in [
        ("hr.search_employees", "ceiling"),
        ("forum.delete_everything", "unknown tool"),
        ("payroll.run", "unknown tool"),
        ("no_dot_at_all", "unknown tool"),
    ] {
        let r = call(p, name, json!({"query": "x", "fields": ["name"]})).await;
        assert!(is_error(&r), "{name}");
        let t = text(&r);
        assert!(t.starts_with("Warden denied `"), "{name}: {t}");
        assert!(t.contains(needle), "{name}: {t}");
        let e = log.entries().last().unwrap().clone();
        assert_eq!(e.kind, EntryKind::Unexposed, "{name}");
        assert_eq!(e.decision.decision, warden_core::Outcome::Deny);
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn upstream_requests_to_the_client_are_refused() {
    let acme = warden_acme::AcmeServer::new();
    let mut probe = Probe::new(&acme, "forum");
    probe.ask_client = true;
    let log = std::sync::Arc::new(MemoryLog::new());
    let p2 = probe.clone();
    let gw = start(vec![in_process("forum", move || p2.clone())], log).await;
    let client = agent(&gw, &alice()).await;
    let r = call(
        client.peer(),
        "forum.list_threads",
        json!({"channel": "eng-help"}),
    )
    .await;
    let t = text(&r);
    // Warden advertised no sampling, roots or elicitation upstream...
    assert!(t.contains("caps={}"), "{t}");
    // ...and refused the roots request.
    assert!(t.contains("does not relay roots"), "{t}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unknown_methods_are_method_not_found() {
    let (gw, _acme, _log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let r = client
        .peer()
        .send_request(rmcp::model::ClientRequest::CustomRequest(
            rmcp::model::CustomRequest::new("warden/nope", None),
        ))
        .await;
    match r {
        Err(rmcp::ServiceError::McpError(e)) => assert_eq!(e.code.0, -32601),
        other => panic!("{other:?}"),
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_and_prompts_fail_closed_without_catalog_entries() {
    let (gw, _acme, log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    assert!(p.list_all_resources().await.unwrap().is_empty());
    assert!(p.list_all_prompts().await.unwrap().is_empty());
    let r = p
        .read_resource(rmcp::model::ReadResourceRequestParams::new(
            "file:///etc/passwd",
        ))
        .await;
    let Err(rmcp::ServiceError::McpError(e)) = r else {
        panic!("{r:?}")
    };
    assert!(e.message.contains("Warden denied"), "{}", e.message);
    assert_eq!(log.entries().last().unwrap().kind, EntryKind::Unexposed);
    let r = p
        .get_prompt(rmcp::model::GetPromptRequestParams::new("forum.summarize"))
        .await;
    let Err(rmcp::ServiceError::McpError(e)) = r else {
        panic!("{r:?}")
    };
    assert!(
        e.message.contains("Warden denied `forum.prompts/get`"),
        "{}",
        e.message
    );
    client.cancel().await.unwrap();
}
