//! Acme as child processes (`acme-mcp --server NAME`), supervised by Warden.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use warden_mcp::{Transport, UpstreamSettings};

use crate::common::*;

fn child(
    name: &str,
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
) -> UpstreamSettings {
    UpstreamSettings::new(name, Transport::Command { program, args, env })
        .with_timeout(Duration::from_secs(10))
}

fn acme_child(name: &str) -> UpstreamSettings {
    let bin = workspace_bin("warden-acme", "acme-mcp");
    child(
        name,
        bin.display().to_string(),
        vec!["--server".into(), name.into()],
        BTreeMap::new(),
    )
}

#[tokio::test]
async fn the_sev1_incident_through_child_process_upstreams() {
    let log = Arc::new(MemoryLog::new());
    let gw = start(vec![acme_child("forum"), acme_child("logs")], log.clone()).await;
    for s in gw.upstream_status() {
        assert!(s.up, "{s:?}");
        assert!(s.pid.is_some());
    }
    let client = agent(&gw, &alice()).await;
    let p = client.peer();
    let r = call(
        p,
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(
        text(&r).contains("Login to staging keeps failing"),
        "{}",
        text(&r)
    );
    let logs = call(
        p,
        "logs.query_logs",
        json!({"source": "auth", "query": "user=bob", "limit": 50}),
    )
    .await;
    let line = text(&logs)
        .lines()
        .find(|l| l.contains("user=bob"))
        .unwrap()
        .to_string();
    let reply = call(
        p,
        "forum.post_reply",
        json!({"channel": "eng-help", "thread_id": "T-1042", "as_user": "alice", "body": format!("see:\n{line}")}),
    )
    .await;
    assert_eq!(outcome(&reply), "ask", "{}", text(&reply));
    let dm = call(
        p,
        "forum.send_dm",
        json!({"to": "alice", "body": format!("see:\n{line}")}),
    )
    .await;
    assert!(!is_error(&dm), "{}", text(&dm));
    let outcomes: Vec<_> = log
        .entries()
        .iter()
        .map(|e| e.decision.decision.as_str())
        .collect();
    assert_eq!(outcomes, ["allow", "allow", "ask", "allow"]);
    client.cancel().await.unwrap();
    gw.shutdown();
}

#[tokio::test]
async fn a_killed_child_is_reported_and_restarted() {
    let gw = start(vec![acme_child("forum")], Arc::new(MemoryLog::new())).await;
    let client = agent(&gw, &alice()).await;
    let args = json!({"channel": "eng-help", "thread_id": "T-1042"});
    assert!(!is_error(
        &call(client.peer(), "forum.read_thread", args.clone()).await
    ));
    let pid = gw.upstream_status()[0].pid.unwrap();
    let st = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let u = gw.upstream("forum").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !u.status().up
            || u.status().connects >= 2)
        .await
    );
    let r = call(client.peer(), "forum.read_thread", args.clone()).await;
    if is_error(&r) {
        assert!(text(&r).contains("upstream `forum`"), "{}", text(&r));
    }
    assert!(
        u.wait_connects(2, Duration::from_secs(15)).await,
        "{:?}",
        u.status()
    );
    assert_ne!(u.status().pid, Some(pid));
    let r = call(client.peer(), "forum.read_thread", args).await;
    assert!(!is_error(&r), "{}", text(&r));
    client.cancel().await.unwrap();
    gw.shutdown();
}

#[tokio::test]
async fn children_do_not_inherit_the_agents_tokens() {
    // The variable an agent's `token_env` names must never reach an upstream process.
    std::env::set_var("WARDEN_TOKEN_FORUM_HELPER", "secret-token-value");
    let bin = workspace_bin("warden-acme", "acme-mcp");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.txt");
    let mut env = BTreeMap::new();
    env.insert("OUT".to_string(), out.display().to_string());
    env.insert("ACME".to_string(), bin.display().to_string());
    let up = child(
        "forum",
        "sh".into(),
        vec![
            "-c".into(),
            "env > \"$OUT\"; exec \"$ACME\" --server forum".into(),
        ],
        env,
    );
    let gw = start(vec![up], Arc::new(MemoryLog::new())).await;
    assert!(gw.upstream_status()[0].up, "{:?}", gw.upstream_status());
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(seen.contains("OUT="));
    assert!(
        !seen.contains("WARDEN_TOKEN_FORUM_HELPER"),
        "token leaked to the child"
    );
    assert!(!seen.contains("secret-token-value"));
    gw.shutdown();
}

#[tokio::test]
async fn an_upstream_that_cannot_start_is_down_with_a_clear_error() {
    let up = child(
        "forum",
        "/nonexistent/acme-mcp".into(),
        vec![],
        BTreeMap::new(),
    );
    let log = Arc::new(MemoryLog::new());
    let gw = start(
        vec![up.with_timeout(Duration::from_millis(500))],
        log.clone(),
    )
    .await;
    let s = &gw.upstream_status()[0];
    assert!(!s.up);
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("cannot start `/nonexistent/acme-mcp`"),
        "{s:?}"
    );
    forum_fails_closed(&gw).await;
    gw.shutdown();
}

/// The forum upstream is down: its tools are not offered, and a call to one is refused as
/// unexposed (the upstream has no tools).
async fn forum_fails_closed(gw: &Arc<warden_mcp::Gateway>) {
    let client = agent(gw, &alice()).await;
    let names = tool_names(client.peer()).await;
    assert!(!names.iter().any(|n| n.starts_with("forum.")), "{names:?}");
    let r = call(
        client.peer(),
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1042"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(text(&r).contains("it is down"), "{}", text(&r));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn at_name_means_the_binary_beside_the_running_executable() {
    let bin = workspace_bin("warden-acme", "acme-mcp");
    // Test binaries live in target/debug/deps; `@acme-mcp` finds target/debug/acme-mcp.
    let found = warden_mcp::upstream::resolve_program("@acme-mcp").unwrap();
    assert_eq!(found.canonicalize().unwrap(), bin.canonicalize().unwrap());
    let err = warden_mcp::upstream::resolve_program("@no-such-binary").unwrap_err();
    assert!(
        err.to_string().contains("was not found beside warden"),
        "{err}"
    );
    assert_eq!(
        warden_mcp::upstream::resolve_program("plain").unwrap(),
        std::path::PathBuf::from("plain")
    );
}

/// A watchdog, not a measurement: far longer than a start that does not wait for commands that
/// cannot start, far shorter than the hour the upstreams below would otherwise be waited for.
const WATCHDOG: Duration = Duration::from_secs(120);

#[tokio::test]
async fn commands_that_cannot_start_are_reported_at_once_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("not-executable-mcp");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    let hour = Duration::from_secs(3600);
    let ups = vec![
        child(
            "forum",
            "/nonexistent/forum-mcp".into(),
            vec![],
            BTreeMap::new(),
        )
        .with_timeout(hour),
        child(
            "logs",
            not_executable.display().to_string(),
            vec![],
            BTreeMap::new(),
        )
        .with_timeout(hour),
        child("hr", "@no-such-binary".into(), vec![], BTreeMap::new()).with_timeout(hour),
        acme_child("files").with_timeout(hour),
    ];
    let gw = tokio::time::timeout(WATCHDOG, start(ups, Arc::new(MemoryLog::new())))
        .await
        .expect("the gateway waited for upstreams whose commands cannot start");
    let status: BTreeMap<String, _> = gw
        .upstream_status()
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
    let error = |name: &str| {
        let s = &status[name];
        assert!(!s.up && s.cannot_start, "{s:?}");
        s.last_error.clone().unwrap_or_default()
    };
    let e = error("forum");
    assert!(
        e.contains("cannot start `/nonexistent/forum-mcp`: the program does not exist"),
        "{e}"
    );
    let e = error("logs");
    assert!(
        e.contains(&format!(
            "cannot start `{}`: the program is not executable",
            not_executable.display()
        )),
        "{e}"
    );
    let e = error("hr");
    assert!(
        e.contains("cannot start `@no-such-binary`") && e.contains("was not found beside warden"),
        "{e}"
    );
    // The upstream that can start is up; the others fail closed.
    assert!(status["files"].up, "{:?}", status["files"]);
    forum_fails_closed(&gw).await;
    gw.shutdown();
}

#[tokio::test]
async fn upstreams_start_concurrently() {
    // Each child waits, before it becomes Acme, until every one of them has been started: they
    // all come up only if they are started together.
    const N: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let acme = workspace_bin("warden-acme", "acme-mcp");
    let names = ["forum", "logs", "hr", "files"];
    let ups = names
        .iter()
        .map(|name| {
            let mut env = BTreeMap::new();
            env.insert("DIR".to_string(), dir.path().display().to_string());
            env.insert("ACME".to_string(), acme.display().to_string());
            env.insert("ME".to_string(), name.to_string());
            let script = format!(
                "touch \"$DIR/$ME\"; i=0; \
                 while [ \"$(ls \"$DIR\" | wc -l)\" -lt {N} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; \
                 exec \"$ACME\" --server \"$ME\""
            );
            child(name, "sh".into(), vec!["-c".into(), script], env)
                .with_timeout(Duration::from_secs(60))
        })
        .collect();
    let gw = start(ups, Arc::new(MemoryLog::new())).await;
    for s in gw.upstream_status() {
        assert!(s.up, "{s:?}");
        assert_eq!(s.connects, 1, "{s:?}");
    }
    gw.shutdown();
}
