//! `warden audit`, `migrate` and `keygen` over a real store: an SQLite chain written through
//! `warden_store` with a key from `warden keygen` and an outside checkpoint file, then read,
//! exported and tampered with; `migrate` on a fresh file and on PostgreSQL (a schema of its
//! own; `WARDEN_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use warden_core::model::{Exposure, FlowFacts, LabelSource, Reason, Stage};
use warden_core::{Decision, Outcome};
use warden_store::{AuditColumns, AuditConfig, AuditInput, AuditKind, KeySource};

use crate::text;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn decision(id: &str, outcome: Outcome, reason: &str) -> Decision {
    let mut flow = FlowFacts::default();
    flow.labels.insert("secret".into());
    flow.sources.push(LabelSource {
        label: "secret".into(),
        source: "logs.query_logs".into(),
        call: 2,
        at_ms: 1_763_629_100_000,
        session: None,
    });
    flow.sensitive = true;
    flow.external_action = true;
    Decision {
        id: id.into(),
        decision: outcome,
        reasons: vec![Reason {
            stage: Stage::Flow,
            outcome,
            policy: Some("no-secrets-in-public".into()),
            text: reason.into(),
        }],
        policies: vec!["no-secrets-in-public".into()],
        ask_policies: vec![],
        approval: None,
        exposure: Some(Exposure {
            audience: 1200,
            count: 1199,
            external: 0,
            external_exposed: 0,
            sample: vec!["carol".into()],
            labels: BTreeSet::from(["secret".into()]),
        }),
        flow,
        tool: "forum.post_message".into(),
        effect: None,
        resource: Some("Channel::\"eng-help\"".into()),
        agent: "forum-helper".into(),
        principal: "bob".into(),
        session: "s1".into(),
        mission: "m1".into(),
        mission_chain: vec![],
        call_digest: "ab".repeat(32),
        at_ms: 1_763_629_200_000,
        elapsed_us: None,
    }
}

fn decision_record(d: &Decision, entry: &str) -> AuditInput {
    let mut body = serde_json::to_value(d).unwrap();
    body["entry"] = json!(entry);
    body["policy_version"] = json!("0badc0de");
    AuditInput {
        kind: AuditKind::Decision,
        at_ms: d.at_ms,
        columns: AuditColumns {
            decision_id: Some(d.id.clone()),
            mission_id: Some(d.mission.clone()),
            principal: Some(d.principal.clone()),
            agent: Some(d.agent.clone()),
            tool: Some(d.tool.clone()),
            outcome: Some(d.decision.to_string()),
        },
        body,
    }
}

fn outcome_record(id: &str, outcome: &str, reason: &str) -> AuditInput {
    AuditInput {
        kind: AuditKind::Outcome,
        at_ms: 1_763_629_200_500,
        columns: AuditColumns {
            decision_id: Some(id.into()),
            tool: Some("forum.post_message".into()),
            outcome: Some(outcome.into()),
            ..AuditColumns::default()
        },
        body: json!({"outcome": outcome, "reason": reason, "tool": "forum.post_message"}),
    }
}

/// A folder with `warden.toml`, a key pair and a chain of five records (checkpoints at 2 and
/// 4, and one at the tail).
struct Chain {
    dir: tempfile::TempDir,
}

impl Chain {
    fn new() -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), &["keygen", "--out", "audit"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::write(
            dir.path().join("warden.toml"),
            "store = \"sqlite://audit.db\"\n[audit]\nsigning_key = \"audit.pem\"\n\
             checkpoint_every = 2\ncheckpoint_seconds = 0\n",
        )
        .unwrap();
        let config = AuditConfig {
            signing_key: Some(KeySource::Path(dir.path().join("audit.pem"))),
            checkpoint_every: 2,
            checkpoint_seconds: 0,
            checkpoint_file: Some(dir.path().join("warden-checkpoints.jsonl")),
            ..AuditConfig::default()
        };
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        runtime().block_on(async {
            let store = warden_store::open_with(&url, config).await.unwrap();
            let allowed = decision("d-allow", Outcome::Allow, "the mission covers this post");
            let denied = decision(
                "d-deny",
                Outcome::Deny,
                "secret data would reach 1,199 readers of eng-help",
            );
            for record in [
                decision_record(&allowed, "decision"),
                outcome_record("d-allow", "result", ""),
                decision_record(&denied, "decision"),
                decision_record(
                    &decision("d-probe", Outcome::Deny, "never offered"),
                    "unexposed",
                ),
                AuditInput {
                    kind: AuditKind::Admin,
                    at_ms: 1_763_629_300_000,
                    columns: AuditColumns::default(),
                    body: json!({"action": "reload"}),
                },
            ] {
                store.append(vec![record]).await.unwrap();
            }
            store.checkpoint_now().await.unwrap();
        });
        Chain { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn warden(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--config", "warden.toml"]);
        run(self.path(), &all)
    }

    fn sql(&self, statement: &str) {
        let url = format!("sqlite://{}", self.path().join("audit.db").display());
        runtime().block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            conn.execute(statement).await.unwrap();
            conn.close().await.unwrap();
        });
    }
}

#[test]
fn verify_passes_then_names_the_edited_record() {
    let chain = Chain::new();
    let out = chain.warden(&["audit", "verify", "--public-key", "audit.pub.pem"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("ok: 5 records, "), "{stdout}");

    chain.sql(r#"UPDATE audit_record SET body = '{"reasons":[]}' WHERE seq = 3"#);
    let out = chain.warden(&["audit", "verify", "--public-key", "audit.pub.pem"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("record 3: edited"), "{stdout}");
}

#[test]
fn verify_with_another_key_fails_and_a_missing_store_is_exit_2() {
    let chain = Chain::new();
    let out = run(chain.path(), &["keygen", "--out", "other"]);
    assert!(out.status.success());
    let out = chain.warden(&["audit", "verify", "--public-key", "other.pub.pem"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("bad checkpoint signature"),
        "{}",
        text(&out.stdout)
    );

    let out = run(chain.path(), &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("--config") || err.contains("--store"), "{err}");

    std::fs::write(
        chain.path().join("junk.db"),
        "not a database at all, not at all",
    )
    .unwrap();
    let out = run(
        chain.path(),
        &["audit", "verify", "--store", "sqlite://junk.db"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("junk.db"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn export_prints_one_line_per_record_with_its_kind() {
    let chain = Chain::new();
    let out = chain.warden(&["audit", "export", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["decision", "outcome", "decision", "unexposed", "admin"]
    );
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert_eq!(lines[0]["id"], "d-allow");
    assert_eq!(lines[0]["policy_version"], "0badc0de");
    assert!(lines[0].get("entry").is_none());
    assert_eq!(lines[0]["hash"].as_str().unwrap().len(), 64);
    assert_eq!(lines[1]["decision_id"], "d-allow");
    assert_eq!(lines[1]["outcome"], "result");
    assert_eq!(lines[4]["body"]["action"], "reload");
    // The decision line is what the decision log wrote: it reads back as a decision.
    let d: Decision = serde_json::from_value(lines[2].clone()).unwrap();
    assert_eq!(d.id, "d-deny");

    let out = chain.warden(&["audit", "export", "--from", "4"]);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let out = chain.warden(&["audit", "export", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn show_explains_a_decision_and_its_outcome() {
    let chain = Chain::new();
    let out = chain.warden(&["audit", "show", "d-deny"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for want in [
        "decision d-deny",
        "[flow] deny, policy no-secrets-in-public: secret data would reach 1,199 readers",
        "1,199 of 1,200",
        "secret from logs.query_logs (call 2",
        "0badc0de",
        "forum-helper",
        "2025-11-20T09:00:00.000Z",
    ] {
        assert!(stdout.contains(want), "missing `{want}` in:\n{stdout}");
    }

    let out = chain.warden(&["audit", "show", "#2"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("decision d-allow"), "{stdout}");
    assert!(stdout.contains("outcome result"), "{stdout}");

    let out = chain.warden(&["audit", "show", "d-nowhere"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn tail_prints_the_last_records() {
    let chain = Chain::new();
    let out = chain.warden(&["audit", "tail", "-n", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].contains("unexposed") && lines[0].contains("forum-helper→bob"));
    assert!(lines[0].contains("never offered"), "{stdout}");
    assert!(lines[1].contains("admin"), "{stdout}");
}

#[test]
fn keygen_writes_a_pair_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["keygen", "--private", "k.pem", "--public", "k.pub"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("key id "));
    let private = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("k.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = run(
        dir.path(),
        &["keygen", "--private", "k.pem", "--public", "k2.pub"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("exists"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("k2.pub").exists());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k.pem")).unwrap(),
        private
    );
}

#[test]
fn migrate_prints_the_schema_version_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["migrate", "--store", "sqlite://fresh.db"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: schema version "),
        "{}",
        text(&out.stdout)
    );
    assert!(dir.path().join("fresh.db").exists());
    // Again: nothing to do, same version.
    let again = run(dir.path(), &["migrate", "--store", "sqlite://fresh.db"]);
    assert_eq!(text(&again.stdout), text(&out.stdout));
}

fn pg_base() -> String {
    std::env::var("WARDEN_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

#[test]
fn migrate_prints_the_schema_version_on_postgres() {
    let base = pg_base();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("cli_{}_{nanos}", std::process::id());
    let rt = runtime();
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at `{base}` is unreachable: {e}"));
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
    });
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["migrate", "--store", &url]);
    rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
        conn.execute(format!("DROP SCHEMA IF EXISTS {schema} CASCADE").as_str())
            .await
            .unwrap();
    });
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: schema version "),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn tail_follow_prints_records_appended_later() {
    use std::io::BufRead;
    let chain = Chain::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "audit",
            "tail",
            "-n",
            "0",
            "--follow",
            "--config",
            "warden.toml",
        ])
        .current_dir(chain.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // Give the follower time to open the store, then append.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let url = format!("sqlite://{}", chain.path().join("audit.db").display());
    runtime().block_on(async {
        let store = warden_store::open(&url).await.unwrap();
        store
            .append(vec![outcome_record(
                "d-deny",
                "timeout",
                "no answer in 30 s",
            )])
            .await
            .unwrap();
    });
    let line = received.recv_timeout(std::time::Duration::from_secs(10));
    child.kill().unwrap();
    let _ = child.wait();
    let line = line.unwrap();
    assert!(line.trim_start().starts_with("6 "), "{line}");
    assert!(
        line.contains("timeout") && line.contains("no answer in 30 s"),
        "{line}"
    );
}
