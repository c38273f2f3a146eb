//! `tools/list` shows exactly the mission's visible tools that the upstreams serve.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn each_agent_sees_only_its_mission_tools() {
    let (gw, _acme, _log) = start_acme().await;
    let cases = [
        (
            who("forum-helper", "alice", "answer-forum-question", "T-1042"),
            vec![
                "forum.list_threads",
                "forum.read_thread",
                "forum.post_reply",
                "forum.create_post",
                "forum.send_dm",
                "logs.query_logs",
                "files.read_file",
            ],
        ),
        (
            who(
                "hr-assistant",
                "frank",
                "project-roster",
                "roster for project X",
            ),
            vec!["forum.send_dm", "hr.search_employees"],
        ),
        (
            who("ops-bot", "dave", "ops-change", "rotate the billing key"),
            vec![
                "logs.query_logs",
                "files.read_file",
                "files.write_file",
                "acl.get_acl",
                "acl.grant_access",
            ],
        ),
    ];
    for (who, expected) in cases {
        let client = agent(&gw, &who).await;
        let mut got = tool_names(client.peer()).await;
        got.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "tools of {}", who.agent);
        // The same set the engine computes.
        let m = gw
            .engine()
            .grant("m", &who.template, &who.agent, &who.principal, "", 0)
            .unwrap();
        let mut engine_names: Vec<String> = gw
            .engine()
            .visible_tools(&m)
            .into_iter()
            .map(|s| s.name.clone())
            .collect();
        engine_names.sort();
        assert_eq!(got, engine_names);
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn listed_tools_keep_the_upstream_schema() {
    let (gw, acme, _log) = start_acme().await;
    let client = agent(&gw, &alice()).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    let upstream = acme.subset(Some("forum")).unwrap().tools();
    let read = tools
        .iter()
        .find(|t| t.name == "forum.read_thread")
        .unwrap();
    let orig = upstream.iter().find(|t| t.name == "read_thread").unwrap();
    assert_eq!(read.input_schema, orig.input_schema);
    assert_eq!(read.description, orig.description);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_tool_the_upstream_does_not_serve_is_not_listed() {
    // Only the forum upstream runs: logs and files tools are absent from the list, and calls to
    // them are refused as unexposed.
    let acme = warden_acme::AcmeServer::new();
    let forum = acme.subset(Some("forum")).unwrap();
    let log = std::sync::Arc::new(MemoryLog::new());
    let gw = start(
        vec![in_process("forum", move || forum.clone())],
        log.clone(),
    )
    .await;
    let client = agent(&gw, &alice()).await;
    let names = tool_names(client.peer()).await;
    assert!(names.iter().all(|n| n.starts_with("forum.")), "{names:?}");
    let r = call(
        client.peer(),
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("no upstream server `logs` is configured"),
        "{}",
        text(&r)
    );
    assert_eq!(log.entries().last().unwrap().kind, EntryKind::Unexposed);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_operator_is_told_what_the_catalog_does_not_cover() {
    // Acme's catalog covers every tool and argument Acme's servers offer.
    let (gw, _acme, _log) = start_acme().await;
    assert_eq!(gw.catalog_gaps(), Vec::<String>::new());
    // Without `limit` declared (nor typed, nor counted, which declare it too), and without
    // `forum.create_post`, both are named.
    let engine = engine_editing_catalog(|c| {
        let c = c
            .replace("optional = [\"limit\"]\n", "")
            .replace("types = { limit = \"long\" }\n", "")
            .replace("count_arg = \"limit\"\ncount_default = 20\n", "");
        let start = c.find("[tools.\"forum.create_post\"]").unwrap();
        let end = c[start + 1..].find("\n[tools.").unwrap() + start + 1;
        format!("{}{}", &c[..start], &c[end + 1..])
    });
    let acme = warden_acme::AcmeServer::new();
    let settings = warden_mcp::GatewaySettings {
        upstreams: acme_upstreams(&acme),
        ..Default::default()
    };
    let gw = start_gateway(engine, settings, std::sync::Arc::new(MemoryLog::new())).await;
    let gaps = gw.catalog_gaps();
    assert!(
        gaps.iter()
            .any(|g| g.starts_with("`logs.query_logs` takes `limit`")),
        "{gaps:#?}"
    );
    assert!(
        gaps.iter()
            .any(|g| g.starts_with("upstream tool `forum.create_post` is not in the catalog")),
        "{gaps:#?}"
    );
    assert_eq!(gaps.len(), 2, "{gaps:#?}");
}
