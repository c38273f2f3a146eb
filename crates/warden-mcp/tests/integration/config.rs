//! `[servers]` and `[serve]`: what is accepted, and every mistake reported at once with its line.

use std::path::Path;
use std::time::Duration;

use warden_core::Config;
use warden_mcp::{GatewaySettings, Transport};

use crate::common::*;

fn settings(extra: &str) -> Result<GatewaySettings, String> {
    let base = std::fs::read_to_string(acme_dir().join("warden.toml")).unwrap();
    // Drop any [servers]/[serve] the example may carry, then add ours.
    let mut kept = String::new();
    let mut skipping = false;
    for line in base.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']');
            skipping = name == "servers" || name.starts_with("servers.") || name == "serve";
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let text = format!("{kept}\n{extra}");
    let cfg = Config::load("warden.toml", &text, &Files(acme_dir())).map_err(|e| e.to_string())?;
    GatewaySettings::from_config(&cfg, "warden.toml", Some(&text), Path::new("/etc/warden"))
        .map_err(|e| e.to_string())
}

#[test]
fn command_url_and_serve_tables_are_read() {
    let s = settings(
        r#"
[servers.forum]
command = "@acme-mcp"
args = ["--server", "forum"]
env = { RUST_LOG = "warn" }

[servers.logs]
url = "http://127.0.0.1:8931/mcp"
timeout_ms = 2500

[serve]
listen = "0.0.0.0:9000"
max_message_bytes = 65536
allowed_hosts = ["warden.internal"]
workers = 3
"#,
    )
    .unwrap();
    assert_eq!(s.upstreams.len(), 2);
    let forum = s.upstreams.iter().find(|u| u.name == "forum").unwrap();
    match &forum.transport {
        Transport::Command { program, args, env } => {
            assert_eq!(program, "@acme-mcp");
            assert_eq!(args, &["--server", "forum"]);
            assert_eq!(env["RUST_LOG"], "warn");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(forum.timeout, Duration::from_secs(10));
    let logs = s.upstreams.iter().find(|u| u.name == "logs").unwrap();
    assert!(
        matches!(&logs.transport, Transport::Http { url } if url == "http://127.0.0.1:8931/mcp")
    );
    assert_eq!(logs.timeout, Duration::from_millis(2500));
    assert_eq!(s.serve.listen, "0.0.0.0:9000");
    assert_eq!(s.serve.max_message_bytes, 65536);
    assert_eq!(s.serve.allowed_hosts, ["warden.internal"]);
    assert_eq!(s.serve.workers, Some(3));
    // Catalog servers without an upstream are warnings, not errors.
    assert!(
        s.warnings.iter().any(|w| w.contains("`hr`")),
        "{:?}",
        s.warnings
    );
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let err = settings(
        r#"
[servers.forum]
command = "acme-mcp"
url = "http://127.0.0.1:1/mcp"

[servers.logs]
comand = "acme-mcp"

[servers."files.v2"]
command = "x"

[servers.hr]
url = "ftp://example"
timeout_ms = 0

[servers.web]
command = "x"
args = "--server web"

[serve]
listen = "everywhere"
max_message_bytes = 10
workers = 0
"#,
    )
    .unwrap_err();
    for needle in [
        "servers.forum: give either `command` (a child process) or `url` (streamable HTTP), not both",
        "servers.logs: unknown key `comand`",
        "server name `files.v2` may use only letters",
        "servers.hr.url `ftp://example` must start with http:// or https://",
        "servers.hr.timeout_ms must be a whole number",
        "servers.web.args must be an array of strings",
        "serve.listen must be an address",
        "serve.max_message_bytes must be a whole number",
        "serve.workers must be a whole number of threads between 1 and 1024",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    assert!(err.contains("warden.toml:"), "{err}");
    // `servers.logs` also lacks `command`/`url`: ten problems in all, reported together.
    assert!(err.starts_with("10 problem(s)"), "{err}");
}

#[test]
fn no_servers_table_is_fine() {
    let s = settings("").unwrap();
    assert!(s.upstreams.is_empty());
    assert_eq!(s.serve.max_message_bytes, 4 << 20);
    assert_eq!(s.serve.listen, "127.0.0.1:8080");
    assert_eq!(s.serve.workers, None);
}

#[test]
fn serve_timeouts_and_caps_are_read_and_checked() {
    let s = settings(
        r#"
[serve]
header_timeout_ms = 2000
body_timeout_ms = 3000
idle_timeout_ms = 4000
max_connections = 100
max_connections_per_peer = 10
max_sessions = 50
max_sessions_per_agent = 5
"#,
    )
    .unwrap();
    assert_eq!(s.serve.header_timeout, Duration::from_secs(2));
    assert_eq!(s.serve.body_timeout, Duration::from_secs(3));
    assert_eq!(s.serve.idle_timeout, Duration::from_secs(4));
    assert_eq!(s.serve.max_connections, 100);
    assert_eq!(s.serve.max_connections_per_peer, 10);
    assert_eq!(s.serve.max_sessions, 50);
    assert_eq!(s.serve.max_sessions_per_agent, 5);
    let d = settings("").unwrap().serve;
    assert_eq!(
        (d.header_timeout, d.idle_timeout, d.max_connections),
        (Duration::from_secs(10), Duration::from_secs(60), 4096)
    );
    let err = settings(
        r#"
[serve]
header_timeout_ms = 0
max_connections = "many"
max_sessions_per_agent = -1
"#,
    )
    .unwrap_err();
    for needle in [
        "serve.header_timeout_ms must be a whole number of milliseconds between 1 and 3600000",
        "serve.max_connections must be a whole number of connections",
        "serve.max_sessions_per_agent must be a whole number of sessions",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
}
