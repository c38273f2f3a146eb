//! The seeded data, checked without MCP through `AcmeServer::call`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rmcp::model::CallToolResult;
use serde_json::{json, Value};
use warden_acme::AcmeServer;

fn call(server: &AcmeServer, name: &str, args: Value) -> CallToolResult {
    server
        .call(name, args.as_object().cloned())
        .expect("known tool")
}

fn text(result: &CallToolResult) -> String {
    result.content[0].as_text().unwrap().text.clone()
}

#[test]
fn every_log_source_has_at_least_fifty_records() {
    let acme = AcmeServer::new();
    for source in ["auth", "access", "deploy"] {
        let r = call(
            &acme,
            "logs.query_logs",
            json!({"source": source, "query": "*", "limit": 500}),
        );
        let s = r.structured_content.unwrap();
        assert!(s["matched"].as_u64().unwrap() >= 50, "{source}: {s}");
        assert_eq!(s["matched"], s["returned"]);
    }
}

#[test]
fn auth_logs_look_like_auth_logs() {
    let acme = AcmeServer::new();
    let r = call(
        &acme,
        "logs.query_logs",
        json!({"source": "auth", "query": "2026-11-20T09:14:03Z"}),
    );
    let line = text(&r);
    assert!(
        line.contains("2026-11-20T09:14:03Z auth FAIL user=bob ip=10.20.3.17 reason=invalid_password session=sess_"),
        "{line}"
    );
    let deploy = call(
        &acme,
        "logs.query_logs",
        json!({"source": "deploy", "query": "service=auth-svc version=3.2.0"}),
    );
    assert!(text(&deploy).contains("env=staging by=alice"));
    let deploy_all = call(
        &acme,
        "logs.query_logs",
        json!({"source": "deploy", "query": "*", "limit": 500}),
    );
    assert!(!text(&deploy_all).contains("user="));
}

#[test]
fn limits_are_bounded() {
    let acme = AcmeServer::new();
    let big = call(
        &acme,
        "logs.query_logs",
        json!({"source": "access", "query": "", "limit": 100_000}),
    );
    assert!(
        big.structured_content.unwrap()["returned"]
            .as_u64()
            .unwrap()
            <= 500
    );
    let zero = call(
        &acme,
        "logs.query_logs",
        json!({"source": "access", "query": "*", "limit": 0}),
    );
    assert_eq!(zero.is_error, Some(true));
    let bad = call(
        &acme,
        "logs.query_logs",
        json!({"source": "payroll", "query": "*"}),
    );
    assert_eq!(bad.is_error, Some(true));
}

#[test]
fn the_directory_holds_the_six_and_twenty_more() {
    let acme = AcmeServer::new();
    let r = call(
        &acme,
        "hr.search_employees",
        json!({"query": "*", "fields": ["name", "email", "phone", "salary", "ssn", "home_address", "team", "title"]}),
    );
    let s = r.structured_content.unwrap();
    assert_eq!(s["count"], 26);
    let employees = s["employees"].as_array().unwrap();
    let emails: Vec<&str> = employees
        .iter()
        .map(|e| e["email"].as_str().unwrap())
        .collect();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        assert!(emails.contains(&format!("{user}@acme.example").as_str()));
    }
    for e in employees {
        let ssn = e["ssn"].as_str().unwrap();
        assert_eq!(ssn.len(), 11);
        assert!(!ssn.starts_with('9') && !ssn.starts_with("000") && !ssn.starts_with("666"));
        assert!(e["home_address"].as_str().unwrap().contains(", CA "));
    }
}

#[test]
fn files_hold_secrets_and_public_docs() {
    let acme = AcmeServer::new();
    let env = text(&call(
        &acme,
        "files.read_file",
        json!({"path": "services/billing/.env"}),
    ));
    for key in [
        "STRIPE_SECRET_KEY=sk_live_",
        "DATABASE_URL=postgres://billing:",
        "@db.internal/billing",
        "AWS_ACCESS_KEY_ID=AKIA",
        "AWS_SECRET_ACCESS_KEY=",
    ] {
        assert!(env.contains(key), "{key}");
    }
    let pem = text(&call(
        &acme,
        "files.read_file",
        json!({"path": "secrets/deploy-key.pem"}),
    ));
    assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    assert!(pem.trim_end().ends_with("-----END RSA PRIVATE KEY-----"));
    let faq = text(&call(
        &acme,
        "files.read_file",
        json!({"path": "./docs/public/faq.md"}),
    ));
    assert!(faq.contains("frequently asked questions"));
    assert!(!faq.contains("sk_live") && !faq.contains("@db.internal"));
    for path in ["README.md", "docs/runbooks/auth.md"] {
        assert_eq!(
            call(&acme, "files.read_file", json!({"path": path})).is_error,
            Some(false)
        );
    }
    let escape = call(&acme, "files.read_file", json!({"path": "../etc/passwd"}));
    assert_eq!(escape.is_error, Some(true));
    // Deterministic: a second server has the same secrets.
    let again = text(&call(
        &AcmeServer::new(),
        "files.read_file",
        json!({"path": "services/billing/.env"}),
    ));
    assert_eq!(env, again);
}

#[test]
fn forum_threads_are_where_acme_md_says() {
    let acme = AcmeServer::new();
    let t1050 = call(
        &acme,
        "forum.read_thread",
        json!({"channel": "eng-help", "thread_id": "T-1050"}),
    );
    assert!(text(&t1050).contains("failed logins"));
    for channel in [
        "eng-help",
        "all-hands",
        "platform-private",
        "hr-private",
        "security-incidents",
    ] {
        let r = call(&acme, "forum.list_threads", json!({"channel": channel}));
        let threads = r.structured_content.unwrap()["threads"]
            .as_array()
            .unwrap()
            .len();
        assert!(threads >= 2, "{channel}");
    }
    let unknown = call(&acme, "forum.list_threads", json!({"channel": "random"}));
    assert_eq!(unknown.is_error, Some(true));
    let created = call(
        &acme,
        "forum.create_post",
        json!({"channel": "all-hands", "title": "Hi", "body": "Hello"}),
    );
    let id = created.structured_content.unwrap()["thread_id"]
        .as_str()
        .unwrap()
        .to_string();
    let read = call(
        &acme,
        "forum.read_thread",
        json!({"channel": "all-hands", "thread_id": id}),
    );
    assert!(text(&read).contains("Hello"));
}

#[test]
fn acl_and_web_and_mail() {
    let acme = AcmeServer::new();
    for resource in [
        "logs:auth",
        "logs:access",
        "logs:deploy",
        "channel:eng-help",
        "repo:services",
    ] {
        assert_eq!(
            call(&acme, "acl.get_acl", json!({"resource": resource})).is_error,
            Some(false)
        );
    }
    let deploy = call(&acme, "acl.get_acl", json!({"resource": "logs:deploy"}));
    assert_eq!(
        deploy.structured_content.unwrap()["grants"]["read"],
        json!(["engineering"])
    );
    let bad_group = call(
        &acme,
        "acl.grant_access",
        json!({"resource": "logs:auth", "group": "everyone", "permission": "read"}),
    );
    assert_eq!(bad_group.is_error, Some(true));
    let status = call(
        &acme,
        "web.fetch",
        json!({"url": "https://vendor.example/status"}),
    );
    assert!(text(&status).contains("All systems operational"));
    assert!(!text(&status).contains("evil"));
    let ftp = call(
        &acme,
        "web.fetch",
        json!({"url": "ftp://vendor.example/status"}),
    );
    assert_eq!(ftp.is_error, Some(true));
    let bad_to = call(
        &acme,
        "mail.send_email",
        json!({"to": "not an address", "subject": "s", "body": "b"}),
    );
    assert_eq!(bad_to.is_error, Some(true));
    assert!(acme.outbox().is_empty());
}

#[test]
fn tool_definitions_have_object_schemas() {
    for tool in AcmeServer::new().tools() {
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        assert!(tool.description.is_some());
        assert!(tool.annotations.is_some());
    }
}
