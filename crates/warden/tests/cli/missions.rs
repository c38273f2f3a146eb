//! `warden mission` and mission tokens through `warden serve` and `warden proxy`, as processes:
//! a person grants with their own credential (CLI and HTTP), an agent presents the token, a
//! narrower token is refused what its parent had, revocation stops the next call, and the
//! identity headers are believed only from the configured proxy.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::durable::{acme_copy, Server, TOKEN};
use crate::text;

const ALICE: &str = "alice-cli-test-token";
const DAVE: &str = "dave-cli-test-token";
const PURPOSE: &str = "Help me answer Bob's question in T-1042";

/// The Acme configuration in `dir` with dave as a local user too (a `security` member, so a
/// revoker), and `extra` appended.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = acme_copy(dir);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[users.dave]\ntoken_env = \"WARDEN_USER_DAVE\"\n"
        + extra;
    std::fs::write(&config, text).unwrap();
    config
}

/// `warden mission ARGS` as the person whose token is `who`.
fn mission(config: &Path, store: &str, who: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("mission")
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--store", store])
        .env("WARDEN_USER_ALICE", ALICE)
        .env("WARDEN_USER_DAVE", DAVE)
        .env("WARDEN_USER_TOKEN", who)
        .output()
        .unwrap()
}

fn grant(config: &Path, store: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "grant",
        "--template",
        "answer-forum-question",
        "--agent",
        "forum-helper",
        "--purpose",
        PURPOSE,
        "--expires",
        "1h",
    ];
    args.extend_from_slice(extra);
    let out = mission(config, store, ALICE, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("granted mission m-"));
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_person_grants_lists_narrows_and_revokes_missions_with_their_credential() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let store = format!("sqlite://{}", dir.path().join("w.db").display());
    let token = grant(&config, &store, &[]);
    assert!(token.len() > 100, "{token}");
    assert!(
        dir.path().join("missions.pem").exists(),
        "the key is made beside warden.toml"
    );

    // The grant is listed, as alice's, with her words.
    let out = mission(&config, &store, ALICE, &["list", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &listed[0];
    assert_eq!(g["principal"], "alice");
    assert_eq!(g["granted_by"], "alice");
    assert_eq!(g["auth"], "local");
    assert_eq!(g["purpose"], PURPOSE);
    assert!(g["revoked"].is_null());
    let id = g["mission_id"].as_str().unwrap().to_string();

    // A wrong credential is refused (exit 2), naming why.
    let out = mission(&config, &store, "not-a-token", &["list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not authenticated"));
    // A longer mission than the template allows is refused.
    let out = mission(
        &config,
        &store,
        ALICE,
        &[
            "grant",
            "--template",
            "answer-forum-question",
            "--agent",
            "forum-helper",
            "--purpose",
            "x",
            "--expires",
            "3h",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("at most"),
        "{}",
        text(&out.stderr)
    );

    // Narrowed offline, checked against the configuration when asked.
    let narrowed = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "mission",
            "attenuate",
            &token,
            "--tools",
            "forum.read_thread",
        ])
        .args(["--expires", "10m", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(narrowed.status.success(), "{}", text(&narrowed.stderr));
    assert!(text(&narrowed.stderr).contains("narrowed to mission m-"));
    let widened = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "mission",
            "attenuate",
            &token,
            "--tools",
            "acl.grant_access",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(widened.status.code(), Some(2));
    assert!(
        text(&widened.stderr).contains("widens its parent"),
        "{}",
        text(&widened.stderr)
    );

    // dave (security) sees alice's mission and revokes it; the audit chain says so.
    let out = mission(&config, &store, DAVE, &["show", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("live until"));
    let out = mission(
        &config,
        &store,
        DAVE,
        &["revoke", &id, "--reason", "test over"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = mission(&config, &store, ALICE, &["show", &id]);
    assert!(
        text(&out.stdout).contains("revoked (revoked by dave: test over)"),
        "{}",
        text(&out.stdout)
    );
    let tail = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["audit", "tail", "--store", &store])
        .output()
        .unwrap();
    let tail = text(&tail.stdout);
    assert!(tail.contains("grant") && tail.contains("granted"), "{tail}");
    assert!(tail.contains("revoked"), "{tail}");
}

/// JSON-RPC `initialize` posted to `/mcp` with `headers`: the status and body.
async fn initialize(addr: &str, headers: &[(&str, &str)]) -> (u16, String) {
    initialize_from(reqwest::Client::new(), addr, headers).await
}

/// [`initialize`] over `client` (bound to a chosen local address, say).
async fn initialize_from(
    client: reqwest::Client,
    addr: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut req = client
        .post(format!("http://{addr}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "missions-test", "version": "1"}}});
    let r = req.body(init.to_string()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `POST url` with a JSON body as `bearer`: the status and the JSON answer.
async fn post_json(url: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_grants_over_http_and_holds_agents_to_their_mission_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "\n[identity.proxy]\nheader = \"x-forwarded-user\"\nfrom = [\"127.0.0.2/32\"]\n",
    );
    let store = format!("sqlite://{}", dir.path().join("w.db").display());
    let server = Server::start_with(
        &config,
        &store,
        &[],
        &[("WARDEN_USER_ALICE", ALICE), ("WARDEN_USER_DAVE", DAVE)],
    );
    let url = format!("http://{}/v1/missions", server.addr);
    let body = json!({"template": "answer-forum-question", "agent": "forum-helper",
        "purpose": PURPOSE, "expires": "1h",
        "narrowing": {"tools": ["forum.*", "logs.query_logs"]}});
    // An agent's token is no person's.
    let (status, _) = post_json(&url, TOKEN, &body).await;
    assert_eq!(status, 401);
    let (status, granted) = post_json(&url, ALICE, &body).await;
    assert_eq!(status, 201, "{granted}");
    let token = granted["token"].as_str().unwrap().to_string();
    let id = granted["mission"].as_str().unwrap().to_string();
    assert_eq!(granted["record"]["principal"], "alice");

    // The agent presents both credentials: the mission's tools, and its calls go through.
    let mut agent = server.client_with_token(&token);
    agent.open().await.unwrap();
    let read = agent
        .call(
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
        .await;
    assert!(read.allowed(), "{read:?}");
    // The grant's narrowing holds: files.read_file is in the template, not in the grant.
    let file = agent
        .call("files.read_file", json!({"path": "/eng/README.md"}))
        .await;
    assert!(!file.allowed(), "{file:?}");

    // Identity headers from an agent are refused, and audited; from 127.0.0.1, which is not
    // the configured proxy, too.
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = initialize(
        &server.addr,
        &[
            ("authorization", &bearer),
            ("x-warden-principal", "dave"),
            ("x-warden-mission", "ops-change"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not trusted"), "{body}");
    let (status, body) = initialize(
        &server.addr,
        &[
            ("authorization", &bearer),
            ("x-forwarded-user", "dave"),
            ("x-warden-mission", "ops-change"),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // From the proxy's address (127.0.0.2), its user header names the person; beside a
    // mission token, it is the token that decides.
    let from_proxy = || {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap()
    };
    let (status, body) = initialize_from(
        from_proxy(),
        &server.addr,
        &[
            ("authorization", &bearer),
            ("x-forwarded-user", "alice"),
            ("x-warden-mission", "answer-forum-question"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = initialize_from(
        from_proxy(),
        &server.addr,
        &[
            ("authorization", &bearer),
            ("x-forwarded-user", "dave"),
            ("x-warden-mission-token", &token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = initialize_from(
        from_proxy(),
        &server.addr,
        &[
            ("authorization", &bearer),
            ("x-forwarded-user", "mallory"),
            ("x-warden-mission", "answer-forum-question"),
        ],
    )
    .await;
    assert!(
        body.contains("unknown principal `mallory`"),
        "a user the directory does not know: {status} {body}"
    );

    // alice revokes over HTTP; the agent's next call is denied.
    let (status, answer) = post_json(
        &format!("{url}/revoke"),
        ALICE,
        &json!({"mission": id, "reason": "answered"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let denied = agent
        .call(
            "forum.read_thread",
            json!({"channel": "eng-help", "thread_id": "T-1042"}),
        )
        .await;
    assert!(denied.text().contains("was revoked"), "{denied:?}");
    // Listing shows it revoked.
    let listed = reqwest::Client::new()
        .get(format!("{url}?all=true"))
        .header("authorization", format!("Bearer {ALICE}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["mission_id"], id.as_str());
    assert!(listed[0]["revoked"]["reason"]
        .as_str()
        .unwrap()
        .contains("answered"));
}

#[test]
fn proxy_runs_under_a_mission_token_and_refuses_bare_identity_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let store = format!("sqlite://{}", dir.path().join("w.db").display());
    // Without a token, the identity flags alone are refused.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["proxy", "--config"])
        .arg(&config)
        .args(["--store", &store])
        .args(["--agent", "forum-helper", "--principal", "dave"])
        .args(["--mission", "ops-change"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--insecure-identity"),
        "{}",
        text(&out.stderr)
    );
    // With a token of another agent, refused too.
    let token = grant(&config, &store, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["proxy", "--config"])
        .arg(&config)
        .args(["--store", &store, "--agent", "ops-bot"])
        .env("WARDEN_MISSION_TOKEN", &token)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is for agent `forum-helper`, not `ops-bot`"),
        "{}",
        text(&out.stderr)
    );
    // With alice's token, the session opens under her mission (stdin closed: it ends).
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["proxy", "--config"])
        .arg(&config)
        .args(["--store", &store])
        .env("WARDEN_MISSION_TOKEN", &token)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = text(&out.stderr);
    assert!(
        said.contains("agent `forum-helper` for `alice` on mission `m-"),
        "{said}"
    );
    assert!(!said.contains("insecure"), "{said}");
}
